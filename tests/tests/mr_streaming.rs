//! Issue 5: Hadoop Streaming scripts run unchanged. Each job's output is
//! compared with piping the same input through the same scripts locally
//! (`cat input | mapper | sort | reducer`).

use std::path::Path;
use std::process::{Command, Stdio};
use tusk_tests::TestCluster;
use tusk_tests::jobs::{counter, job_id_in, sorted_lines, text_corpus};

const PY_MAPPER: &str = r#"#!/usr/bin/env python3
import os, sys
n = 0
for line in sys.stdin:
    for word in line.split():
        print(f"{word}\t1")
    n += 1
sys.stderr.write(f"reporter:counter:Demo,Lines,{n}\n")
sys.stderr.write("reporter:status:mapped\n")
"#;

const PY_REDUCER: &str = r#"#!/usr/bin/env python3
import sys
current, total = None, 0
for line in sys.stdin:
    key, _, value = line.rstrip("\n").partition("\t")
    if key != current:
        if current is not None:
            print(f"{current}\t{total}")
        current, total = key, 0
    total += int(value)
if current is not None:
    print(f"{current}\t{total}")
"#;

/// `cat input | mapper | sort | reducer` with the scripts in `dir`.
fn local_pipeline(dir: &Path, input: &[u8], mapper: &str, reducer: &str) -> Vec<u8> {
    let script = format!("cat input | {mapper} | LC_ALL=C sort | {reducer}");
    std::fs::write(dir.join("input"), input).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "local pipeline {script} failed");
    out.stdout
}

fn write_script(dir: &Path, name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// Python mapper and reducer shipped with `-file`, several reducers, a
/// combiner, job configuration and reporter counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_streaming_job_equals_the_local_pipeline() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(2).workers(2).replication(2).start()?;
    let client = cluster.client().await?;
    let input = text_corpus(30_000, 7);
    client.write_all("/words.txt", &input, false).await?;
    let local = tempfile::tempdir()?;
    let mapper = write_script(local.path(), "mapper.py", PY_MAPPER);
    let reducer = write_script(local.path(), "reducer.py", PY_REDUCER);

    let out = cluster.job_ok(&[
        "streaming", "-D", "mapreduce.job.name=pywc", "-Dstream.custom=1", "-input", "/words.txt", "-output", "/pywc",
        "-mapper", "mapper.py", "-combiner", "reducer.py", "-reducer", "reducer.py", "-file", &mapper, "-file",
        &reducer, "-numReduceTasks", "3",
    ]);
    let id = job_id_in(&out).unwrap_or_else(|| panic!("no job id in {out}"));
    let expected = local_pipeline(local.path(), &input, "mapper.py", "reducer.py");
    assert_eq!(sorted_lines(&cluster.job_output("/pywc").await?), sorted_lines(&expected));

    let report = cluster.job_report(&id).await?;
    assert_eq!(report.name, "pywc");
    assert_eq!(counter(&report, "Demo", "Lines"), 30_000, "reporter:counter lines were not counted");
    Ok(())
}

/// Shell mapper and reducer given as command lines; the task environment
/// carries the job configuration with dots turned into underscores, the
/// task's ids and `-cmdenv` variables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_streaming_job_sees_its_environment() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(2).workers(2).replication(2).start()?;
    let client = cluster.client().await?;
    let mut input = Vec::new();
    for i in 0..20_000 {
        input.extend_from_slice(format!("{}\tvalue {i}\n", i % 97).as_bytes());
    }
    client.write_all("/kv.txt", &input, false).await?;
    // Count the values of each key; sort -n-free so the local pipeline and the job agree.
    let mapper = "cut -f1";
    let reducer = "uniq -c | awk '{print $2 \"\\t\" $1}'";
    cluster.job_ok(&[
        "streaming", "--input", "/kv.txt", "--output", "/counts", "--mapper", mapper, "--reducer", reducer,
        "--num-reduce-tasks", "2",
    ]);
    let local = tempfile::tempdir()?;
    let expected = local_pipeline(local.path(), &input, mapper, reducer);
    assert_eq!(sorted_lines(&cluster.job_output("/counts").await?), sorted_lines(&expected));

    // Map-only: every task prints its environment.
    cluster.job_ok(&[
        "streaming", "-input", "/kv.txt", "-output", "/env", "-numReduceTasks", "0", "-cmdenv", "GREETING=hello",
        "-D", "my.setting=42", "-mapper",
        "sh -c 'cat >/dev/null; echo \"$mapreduce_job_id $mapreduce_task_id $mapreduce_task_attempt_id $my_setting $GREETING $mapreduce_map_input_file\"'",
    ]);
    let env = String::from_utf8(cluster.job_output("/env").await?)?;
    let first = env.lines().next().unwrap_or_default().to_string();
    let f: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(f.len(), 6, "{env}");
    assert!(f[0].starts_with("job_") && f[1].starts_with("task_") && f[2].starts_with("attempt_"), "{first}");
    assert_eq!(&f[3..5], ["42", "hello"], "{first}");
    assert!(f[5].ends_with("/kv.txt"), "{first}");
    Ok(())
}
