use super::*;
use crate::runtime::Limits;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncReadExt;

fn spec(dir: &Path, script: &str) -> LaunchSpec {
    LaunchSpec {
        attempt_id: "attempt_test".into(),
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        env: vec![("TUSK_TEST_VAR".into(), "hello there".into())],
        cwd: dir.to_path_buf(),
        stderr: dir.join("stderr"),
        limits: Limits::default(),
    }
}

/// Polls `cond` until it holds, failing the test after 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn runs_in_its_directory_with_env_piped_stdout_and_stderr_file() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::start().unwrap();
    let script = "echo \"$TUSK_TEST_VAR\"; pwd; ulimit -c; echo oops >&2; exit 3";
    let mut task = rt.launch(spec(dir.path(), script)).await.unwrap();
    let mut out = String::new();
    task.stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(task.exit.await.unwrap(), ExitOutcome::Code(3));
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(out, format!("hello there\n{}\n0\n", cwd.display()));
    assert_eq!(std::fs::read_to_string(dir.path().join("stderr")).unwrap(), "oops\n");
}

#[tokio::test]
async fn kill_takes_the_whole_process_group_including_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::start().unwrap();
    let task = rt.launch(spec(dir.path(), "sleep 1000 & sleep 1000; echo never")).await.unwrap();
    let pgid = task.pid as i32;
    // The shell and both sleeps (one of them a background grandchild).
    eventually("the task's processes", || procfs::group_members(pgid).len() >= 3).await;
    assert_eq!(nix::unistd::getpgid(Some(Pid::from_raw(pgid))).unwrap().as_raw(), pgid, "own process group");
    task.control.kill();
    assert_eq!(task.exit.await.unwrap(), ExitOutcome::Signal(9));
    eventually("every process of the group to die", || procfs::group_members(pgid).is_empty()).await;
}

#[tokio::test]
async fn terminate_asks_the_group_to_stop() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::start().unwrap();
    let task = rt.launch(spec(dir.path(), "sleep 1000 & wait")).await.unwrap();
    let pgid = task.pid as i32;
    eventually("the background sleep", || procfs::group_members(pgid).len() >= 2).await;
    task.control.terminate();
    assert_eq!(task.exit.await.unwrap(), ExitOutcome::Signal(15));
    eventually("the background sleep to stop", || procfs::group_members(pgid).is_empty()).await;
}

#[tokio::test]
async fn dropping_the_exit_kills_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::start().unwrap();
    let task = rt.launch(spec(dir.path(), "sleep 1000 & sleep 1000")).await.unwrap();
    let pgid = task.pid as i32;
    eventually("the task's processes", || procfs::group_members(pgid).len() >= 2).await;
    drop(task);
    eventually("every process of the group to die", || procfs::group_members(pgid).is_empty()).await;
}

#[tokio::test]
async fn memory_usage_sums_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::start().unwrap();
    let task = rt.launch(spec(dir.path(), "sleep 1000 & sleep 1000")).await.unwrap();
    let pgid = task.pid as i32;
    eventually("the task's processes", || procfs::group_members(pgid).len() >= 3).await;
    let one = procfs::group_members(pgid).iter().map(|m| m.rss_bytes).min().unwrap();
    let used = task.control.memory_usage().await;
    assert!(used > one, "group usage {used} should exceed one member's {one}");
    task.control.kill();
    task.exit.await.unwrap();
}

#[tokio::test]
async fn a_missing_program_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::start().unwrap();
    let mut s = spec(dir.path(), "");
    s.program = dir.path().join("no-such-tusk");
    let e = rt.launch(s).await.err().expect("launch must fail").to_string();
    assert!(e.contains("no-such-tusk") && e.contains("attempt_test"), "{e}");
}

#[tokio::test]
async fn tasks_die_with_their_parent_thread() {
    // PR_SET_PDEATHSIG (SIGTERM) fires when the thread that forked the task
    // exits: the spawner thread ends with the runtime, as the worker's
    // threads end when it dies.
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::start().unwrap();
    let task = rt.launch(spec(dir.path(), "exec sleep 1000")).await.unwrap();
    drop(rt);
    let exit = tokio::time::timeout(Duration::from_secs(10), task.exit).await.expect("the task outlived its parent");
    assert_eq!(exit.unwrap(), ExitOutcome::Signal(15));
}
