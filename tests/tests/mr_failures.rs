//! Issue 5: jobs survive lost tasks and lost workers. A worker is killed
//! with SIGKILL mid-job, a mapper fails on one record, a mapper straggles.

use std::time::Duration;
use tusk_mapreduce::api::counters::JOB;
use tusk_client::{AttemptState, JobState};
use tusk_tests::TestCluster;
use tusk_tests::jobs::{counter, sorted_lines};

/// Numbered lines, each unique, so a duplicated or lost record shows.
fn numbered_lines(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(format!("{i:08} line number {i} of the input, padded to some length\n").as_bytes());
    }
    out
}

/// Kill -9 a worker while a job with several reducers runs: the job
/// succeeds, and its output is identical to a clean run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_job_the_output_equals_a_clean_run() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(3).workers(3).replication(2).fast_worker_expiry(2000).start()?;
    let client = cluster.client().await?;
    let input = numbered_lines(120_000); // ~9 MiB: 9 maps of 1 MiB blocks
    client.write_all("/lines.txt", &input, false).await?;
    // Each map takes at least a second, so the kill lands mid-job.
    let args = |out: &str| -> Vec<String> {
        ["streaming", "-input", "/lines.txt", "-output", out, "-mapper", "sh -c 'sleep 1; cat'", "-reducer", "cat", "-numReduceTasks", "3"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let clean: Vec<String> = args("/clean");
    cluster.job_ok(&clean.iter().map(String::as_str).collect::<Vec<_>>());
    let clean_out = cluster.job_output("/clean").await?;
    assert_eq!(sorted_lines(&clean_out), sorted_lines(&input), "the clean run lost or duplicated records");

    let faulty: Vec<String> = args("/faulty");
    let id = cluster.submit(&faulty.iter().map(String::as_str).collect::<Vec<_>>());
    // Wait until worker-1 has finished a map (its output must then be
    // recomputed) and the job still runs, then kill it.
    let jc = cluster.job_client().await?;
    let victim = std::fs::read_to_string(cluster.dir().join("run").join("worker-1.addr"))?.trim().to_string();
    tusk_tests::eventually(Duration::from_secs(60), || async {
        let Ok(r) = jc.job(&id, true).await else { return false };
        let attempts: Vec<_> = r.tasks.iter().flat_map(|t| t.attempts.iter()).collect();
        attempts.iter().any(|a| a.worker_addr == victim && a.state == AttemptState::Succeeded)
            && attempts.iter().any(|a| a.state == AttemptState::Running)
    })
    .await?;
    cluster.kill9("worker-1")?;
    let report = cluster.wait_job(&id, Duration::from_secs(180)).await?;
    assert_eq!(report.state, JobState::Succeeded, "{}", report.diagnostics);
    assert_eq!(cluster.job_output("/faulty").await?, clean_out, "output differs from the clean run");
    Ok(())
}

/// A mapper that fails on one record is retried, then the job fails with
/// that attempt's stderr tail in its diagnostics, and no output is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapper_failing_on_a_record_fails_the_job_with_its_stderr() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(2).workers(2).replication(2).start()?;
    let client = cluster.client().await?;
    let mut input = numbered_lines(30_000);
    input.extend_from_slice(b"POISON record\n");
    input.extend_from_slice(&numbered_lines(100));
    client.write_all("/poisoned.txt", &input, false).await?;
    let mapper = r#"sh -c 'while IFS= read -r l; do case "$l" in *POISON*) echo "cannot parse record: $l" >&2; exit 3;; esac; printf "%s\n" "$l"; done'"#;
    let err = cluster.job_err(&["streaming", "-input", "/poisoned.txt", "-output", "/never", "-mapper", mapper, "-reducer", "cat"]);
    assert!(err.contains("cannot parse record: POISON record"), "stderr tail missing from the error: {err}");
    assert!(err.contains("task_"), "the failed task is not named: {err}");
    assert!(client.try_stat("/never").await?.is_none(), "a failed job left its output directory");

    let jc = cluster.job_client().await?;
    let jobs = jc.list().await?;
    let job = jobs.iter().find(|j| j.output == "/never").expect("the failed job is listed");
    assert_eq!(job.state, JobState::Failed);
    let report = jc.job(&job.job_id, true).await?;
    let failed = report.tasks.iter().find(|t| t.attempts.iter().filter(|a| a.state == AttemptState::Failed).count() == 4);
    assert!(failed.is_some(), "no task failed 4 times: {:?}", report.tasks.iter().map(|t| t.attempts.len()).collect::<Vec<_>>());
    // `tusk job logs` shows the attempts' stderr, fetched from their workers.
    let logs = cluster.job_ok(&["logs", &job.job_id]);
    assert!(logs.contains("cannot parse record: POISON record"), "{logs}");
    Ok(())
}

/// A mapper that straggles on one split (only its first attempt sleeps)
/// triggers a speculative attempt; the job finishes long before the
/// straggler would, and the output holds every record exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn straggler_gets_a_speculative_attempt_and_no_duplicates() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(2).workers(2).replication(2).start()?;
    let client = cluster.client().await?;
    let input = numbered_lines(60_000); // ~4.5 MiB: 5 splits
    client.write_all("/straggle.txt", &input, false).await?;
    let mapper = r#"sh -c 'case "$mapreduce_map_input_start:$mapreduce_task_attempt_id" in 0:*_0) sleep 600;; esac; cat'"#;
    let id = cluster.submit(&["streaming", "-input", "/straggle.txt", "-output", "/spec", "-mapper", mapper, "-reducer", "cat", "-numReduceTasks", "2"]);
    let report = cluster.wait_job(&id, Duration::from_secs(120)).await?;
    assert_eq!(report.state, JobState::Succeeded, "{}", report.diagnostics);
    assert!(counter(&report, JOB, "SPECULATIVE_MAPS") >= 1, "no speculative map was launched");
    let straggler = report.tasks.iter().find(|t| t.attempts.len() >= 2).expect("a task with two attempts");
    assert!(straggler.attempts.iter().any(|a| a.speculative), "no attempt marked speculative");
    assert!(straggler.attempts.iter().any(|a| a.state == AttemptState::Killed), "the loser was not killed");
    assert_eq!(sorted_lines(&cluster.job_output("/spec").await?), sorted_lines(&input));
    let listing: Vec<String> = client.list("/spec").await?.into_iter().map(|f| f.path).collect();
    assert!(!listing.iter().any(|p| p.contains("_temporary")), "{listing:?}");
    Ok(())
}

/// Pids of the processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
                && tusk_tests::process_alive(*pid)
        })
        .collect()
}

/// A worker killed with SIGKILL takes its attempts along, and everything
/// they started (a streaming mapper's own children too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_takes_its_tasks_programs_along() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(1).workers(1).replication(1).start()?;
    let client = cluster.client().await?;
    client.write_all("/in.txt", b"one line\n", false).await?;
    let marker = format!("tusk-orphan-check-{}", std::process::id());
    let mapper = format!("sh -c 'sleep 600; echo {marker}'");
    cluster.submit(&["streaming", "-input", "/in.txt", "-output", "/orphans", "-mapper", &mapper, "-reducer", "cat"]);
    tusk_tests::wait_until(Duration::from_secs(30), || !processes_with(&marker).is_empty())?;
    cluster.kill9("worker-0")?;
    tusk_tests::wait_until(Duration::from_secs(10), || processes_with(&marker).is_empty())
        .map_err(|e| anyhow::anyhow!("{e}: still running: {:?}", processes_with(&marker)))?;
    Ok(())
}
