//! Streaming runners against real `sh`, `awk` and `python3` commands.

use super::*;
use crate::api::TaskContext;
use crate::spec::InputFormat;
use crate::user::memio::{Record, VecEmit, VecGrouped, VecReader, context, lines, records};

fn map(command: &str, ctx: &TaskContext, input: Vec<Record>) -> Result<Vec<Record>> {
    let mut reader = VecReader::new(input);
    let mut out = VecEmit::default();
    Box::new(StreamingMap::new(command)?).run(&mut reader, &mut out, ctx)?;
    Ok(out.records)
}

fn reduce(command: &str, role: ReduceRole, ctx: &TaskContext, input: Vec<Record>) -> Result<Vec<Record>> {
    let mut grouped = VecGrouped::from_records(input);
    let mut out = VecEmit::default();
    Box::new(StreamingReduce::new(command, role)?).run(&mut grouped, &mut out, ctx)?;
    Ok(out.records)
}

/// A map context working in a fresh temp dir.
fn ctx_in(dir: &tempfile::TempDir, is_map: bool) -> TaskContext {
    let mut ctx = context(is_map);
    ctx.work_dir = dir.path().to_path_buf();
    ctx
}

const WC_MAPPER: &str = r#"
import sys
for line in sys.stdin:
    for word in line.split():
        print(word + "\t1")
"#;

const WC_REDUCER: &str = r#"
import sys
current, total = None, 0
for line in sys.stdin:
    word, count = line.rstrip("\n").split("\t", 1)
    if word != current:
        if current is not None:
            print("%s\t%d" % (current, total))
        current, total = word, 0
    total += int(count)
if current is not None:
    print("%s\t%d" % (current, total))
"#;

#[test]
fn cat_mapper_passes_key_value_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = records(&[("a", "1"), ("b", "x\ty"), ("line without tab", ""), ("", "empty key")]);
    let out = map("cat", &ctx_in(&dir, true), input).unwrap();
    assert_eq!(
        lines(&out),
        vec!["a\t1", "b\tx\ty", "line without tab\t", "\tempty key"],
        "key = up to the first tab, value = the rest"
    );
}

#[test]
fn text_input_mapper_sees_only_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = ctx_in(&dir, true);
    ctx.spec.job.input_format = InputFormat::Text;
    let input = records(&[("0", "hello world"), ("12", "second line")]);
    let out = map("awk '{print $2 \"\\t\" $1}'", &ctx, input).unwrap();
    assert_eq!(lines(&out), vec!["world\thello", "line\tsecond"]);
}

#[test]
fn python_word_count_matches_a_local_count() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mapper.py"), format!("#!/usr/bin/env python3\n{WC_MAPPER}")).unwrap();
    std::fs::write(dir.path().join("reducer.py"), WC_REDUCER).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("mapper.py"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut ctx = ctx_in(&dir, true);
    ctx.spec.job.input_format = InputFormat::Text;
    let text = ["the cat sat", "on the mat", "", "the end"];
    let input: Vec<Record> =
        text.iter().enumerate().map(|(i, l)| (i.to_string().into_bytes(), l.as_bytes().to_vec())).collect();
    // Found through PATH (the work dir comes first), as `-mapper mapper.py -file mapper.py`.
    let mapped = map("mapper.py", &ctx, input).unwrap();
    assert_eq!(mapped.len(), 8);
    assert!(mapped.iter().all(|(_, v)| v == b"1"));

    let reduced = reduce("python3 reducer.py", ReduceRole::Reduce, &ctx_in(&dir, false), mapped).unwrap();
    let mut expected = std::collections::BTreeMap::<&str, u32>::new();
    for w in text.iter().flat_map(|l| l.split_whitespace()) {
        *expected.entry(w).or_default() += 1;
    }
    let expected: Vec<String> = expected.iter().map(|(w, n)| format!("{w}\t{n}")).collect();
    assert_eq!(lines(&reduced), expected);
}

#[test]
fn reducer_sees_sorted_key_value_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = records(&[("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
    let out = reduce("cat", ReduceRole::Reduce, &ctx_in(&dir, false), input).unwrap();
    assert_eq!(lines(&out), vec!["a\t1", "b\t2", "b\t3", "c\t"]);
}

#[test]
fn task_variables_and_conf_are_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = ctx_in(&dir, true);
    ctx.spec.job.conf.insert("my.custom-key".into(), "custom value".into());
    ctx.spec.job.env.insert("FROM_CMDENV".into(), "ok".into());
    let cmd = "echo \"$mapreduce_task_partition\"; echo \"p=$mapreduce_task_ismap $mapreduce_map_input_file\"; \
               echo \"c=$my_custom_key\"; echo \"e=$FROM_CMDENV\"; echo \"a=$mapreduce_task_attempt_id\"; pwd";
    let out = map(cmd, &ctx, vec![]).unwrap();
    let dir_path = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(
        lines(&out),
        vec![
            "3\t".to_string(),
            "p=true /in/part-0\t".to_string(),
            "c=custom value\t".to_string(),
            "e=ok\t".to_string(),
            "a=attempt_17_0001_m_000003_0\t".to_string(),
            format!("{}\t", dir_path.display()),
        ]
    );
    let out = reduce(
        "echo $mapreduce_task_partition $mapreduce_task_ismap",
        ReduceRole::Reduce,
        &ctx_in(&dir, false),
        vec![],
    )
    .unwrap();
    assert_eq!(lines(&out), vec!["2 false\t"]);
}

#[test]
fn reporter_lines_update_counters_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_in(&dir, true);
    let cmd = "while read l; do echo \"reporter:counter:Custom,Lines,1\" >&2; echo \"$l\"; done; \
               echo 'reporter:counter:Custom,Bytes,40' >&2; echo 'reporter:status:all done' >&2; echo 'plain note' >&2";
    let out = map(cmd, &ctx, records(&[("a", "1"), ("b", "2"), ("c", "3")])).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(ctx.reporter.counter("Custom", "Lines"), 3);
    assert_eq!(ctx.reporter.counter("Custom", "Bytes"), 40);
    assert_eq!(ctx.reporter.status(), "all done");
}

#[test]
fn failing_command_names_role_command_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let err = map("cat >/dev/null; exit 3", &ctx_in(&dir, true), records(&[("a", "1")])).unwrap_err();
    assert_eq!(err.to_string(), "mapper command 'cat >/dev/null; exit 3' exited with status 3");
    let err = reduce("exit 4", ReduceRole::Combine, &ctx_in(&dir, true), records(&[("a", "1")])).unwrap_err();
    assert_eq!(err.to_string(), "combiner command 'exit 4' exited with status 4");
    let err = reduce("exit 5", ReduceRole::Reduce, &ctx_in(&dir, false), vec![]).unwrap_err();
    assert_eq!(err.to_string(), "reducer command 'exit 5' exited with status 5");
}

#[test]
fn missing_command_hints_at_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = map("no-such-command-xyz --flag", &ctx_in(&dir, true), records(&[("a", "1")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mapper command 'no-such-command-xyz --flag' exited with status 127 (command not found?)"
    );
}

#[test]
fn nonzero_exit_can_be_tolerated_by_conf() {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = ctx_in(&dir, true);
    ctx.spec.job.conf.insert("stream.non.zero.exit.is.failure".into(), "false".into());
    let out = map("echo x; exit 9", &ctx, vec![]).unwrap();
    assert_eq!(lines(&out), vec!["x\t"]);
}

#[test]
fn early_exit_is_fine_with_status_zero_and_fails_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let input: Vec<Record> = (0..200_000).map(|i| (format!("k{i}").into_bytes(), b"v".to_vec())).collect();
    let out = map("head -n 2", &ctx_in(&dir, true), input.clone()).unwrap();
    assert_eq!(lines(&out), vec!["k0\tv", "k1\tv"]);
    let err = map("head -n 1; exit 1", &ctx_in(&dir, true), input).unwrap_err();
    assert!(err.to_string().contains("exited with status 1"), "{err}");
}

#[test]
fn big_input_through_cat_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    // ~50 MB in and out: both pipes fill up many times over.
    let value = vec![b'x'; 1000];
    let n = 50_000;
    let input: Vec<Record> = (0..n).map(|i| (format!("{i:08}").into_bytes(), value.clone())).collect();
    let out = map("cat", &ctx_in(&dir, true), input).unwrap();
    assert_eq!(out.len(), n);
    assert!(out.iter().enumerate().all(|(i, (k, v))| *k == format!("{i:08}").into_bytes() && *v == value));
}

#[test]
fn big_output_from_small_input_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    // The command writes ~20 MB before it reads anything.
    let cmd = "python3 -c 'import sys\nfor i in range(400000): print(\"%d\\t%s\" % (i, \"y\" * 40))\nsys.stdin.read()'";
    let input: Vec<Record> = (0..100_000).map(|i| (format!("{i}").into_bytes(), vec![b'z'; 100])).collect();
    let out = map(cmd, &ctx_in(&dir, true), input).unwrap();
    assert_eq!(out.len(), 400_000);
}

#[test]
fn emit_failure_stops_an_endless_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut reader = VecReader::new(vec![]);
    let mut out = VecEmit { fail_at: Some(1000), ..VecEmit::default() };
    let err =
        Box::new(StreamingMap::new("yes line").unwrap()).run(&mut reader, &mut out, &ctx_in(&dir, true)).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
}

#[test]
fn input_failure_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let input: Vec<Record> = (0..10).map(|i| (format!("{i}").into_bytes(), b"v".to_vec())).collect();
    let mut reader = VecReader::failing_after(input, 5);
    let mut out = VecEmit::default();
    let err = Box::new(StreamingMap::new("cat").unwrap()).run(&mut reader, &mut out, &ctx_in(&dir, true)).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
}

#[test]
fn missing_work_dir_is_a_clear_error() {
    let mut ctx = context(true);
    ctx.work_dir = "/nonexistent/tusk/work".into();
    let err = map("cat", &ctx, vec![]).unwrap_err();
    assert!(err.to_string().contains("cannot start sh in /nonexistent/tusk/work"), "{err}");
}
