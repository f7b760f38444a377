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
    let rt = ProcessRuntime::start().unwrap().with_env(vec![("TUSK_BASE_VAR".into(), "base".into())]);
    let script = "echo \"$TUSK_TEST_VAR $TUSK_BASE_VAR\"; pwd; ulimit -c; echo oops >&2; exit 3";
    let mut task = rt.launch(spec(dir.path(), script)).await.unwrap();
    let mut out = String::new();
    task.stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(task.exit.await.unwrap(), ExitOutcome::Code(3));
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(out, format!("hello there base\n{}\n0\n", cwd.display()));
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

/// A task program speaking the warm protocol (as `tusk task --warm` does):
/// waits for a start line, takes on the attempt and runs `task SCRIPT` as
/// `sh -c SCRIPT`, with `WARM_PID` set to its own pid; after a script that
/// succeeded it goes back to its directory, stderr and environment, says it
/// is ready and waits for the next line; else it exits with its status.
const WARM_PROGRAM: &str = r#"#!/bin/sh
if [ "$1" = task ] && [ "$2" = --warm ]; then
  exec python3 -c '
import json, os, subprocess, sys
home, err, env = os.getcwd(), os.dup(2), dict(os.environ)
for line in sys.stdin:
    s = json.loads(line)
    os.dup2(os.open(s["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), 2)
    os.chdir(s["cwd"])
    os.environ.update(dict(s["env"]))
    os.environ["WARM_PID"] = str(os.getpid())
    code = subprocess.call([sys.argv[1]] + s["args"])
    if code != 0:
        sys.exit(code)
    os.chdir(home); os.dup2(err, 2); os.environ.clear(); os.environ.update(env)
    print("@tusk ready", flush=True)
' "$0"
fi
exec /bin/sh -c "$2"
"#;

fn warm_runtime(dir: &Path, count: usize) -> (ProcessRuntime, std::path::PathBuf) {
    reusing_runtime(dir, count, 1)
}

/// A runtime keeping `count` warm processes, each serving up to `attempts`.
fn reusing_runtime(dir: &Path, count: usize, attempts: u32) -> (ProcessRuntime, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let program = dir.join("task.sh");
    std::fs::write(&program, WARM_PROGRAM).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let warm_dir = dir.join("warm");
    std::fs::create_dir_all(&warm_dir).unwrap();
    let config = WarmConfig { program: program.clone(), dir: warm_dir, count, attempts };
    let rt = ProcessRuntime::start().unwrap().with_env(vec![("TUSK_BASE_VAR".into(), "base".into())]);
    (rt.with_warm(config), program)
}

/// An attempt of the warm-capable `program` running `script`.
fn task_spec(cwd: &Path, program: &Path, script: &str) -> LaunchSpec {
    LaunchSpec { program: program.to_path_buf(), args: vec!["task".into(), script.into()], ..spec(cwd, "") }
}

fn idle(rt: &ProcessRuntime) -> Vec<u32> {
    rt.warm.as_ref().map(|p| p.idle()).unwrap_or_default()
}

/// A runtime with one warm process, once it waits: the runtime, the task
/// program and the waiting process's pid.
async fn one_waiting(dir: &Path) -> (ProcessRuntime, std::path::PathBuf, u32) {
    one_waiting_serving(dir, 1).await
}

/// As [`one_waiting`], the process serving up to `attempts` attempts.
async fn one_waiting_serving(dir: &Path, attempts: u32) -> (ProcessRuntime, std::path::PathBuf, u32) {
    let (rt, program) = reusing_runtime(dir, 1, attempts);
    eventually("a warm process", || idle(&rt).len() == 1).await;
    let waiting = idle(&rt)[0];
    (rt, program, waiting)
}

#[tokio::test]
async fn an_attempt_starts_in_a_warm_process_which_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, program, waiting) = one_waiting(dir.path()).await;
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let script = "echo \"$TUSK_TEST_VAR $TUSK_BASE_VAR\"; pwd; echo \"$WARM_PID\"; echo oops >&2; exit 3";
    let mut task = rt.launch(task_spec(&work, &program, script)).await.unwrap();
    assert_eq!(task.pid, waiting, "the attempt runs in the waiting process");
    let mut out = String::new();
    task.stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(task.exit.await.unwrap(), ExitOutcome::Code(3));
    // Its environment, working directory and stderr are the attempt's.
    let cwd = std::fs::canonicalize(&work).unwrap();
    assert_eq!(out, format!("hello there base\n{}\n{waiting}\n", cwd.display()));
    assert_eq!(std::fs::read_to_string(work.join("stderr")).unwrap(), "oops\n");
    // Another one waits in its place.
    eventually("a new warm process", || idle(&rt).len() == 1 && idle(&rt)[0] != waiting).await;
}

#[tokio::test]
async fn other_programs_and_dead_warm_processes_start_the_plain_way() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, program, waiting) = one_waiting(dir.path()).await;
    // Not the task program: a plain start, the warm process keeps waiting.
    let task = rt.launch(spec(dir.path(), "exit 4")).await.unwrap();
    assert_ne!(task.pid, waiting);
    assert_eq!(task.exit.await.unwrap(), ExitOutcome::Code(4));
    assert_eq!(idle(&rt), vec![waiting]);
    // A warm process that died is passed over.
    nix::sys::signal::kill(Pid::from_raw(waiting as i32), Signal::SIGKILL).unwrap();
    let dead = || std::fs::read_to_string(format!("/proc/{waiting}/stat")).is_ok_and(|s| s.contains(") Z "));
    eventually("the warm process to die", dead).await;
    let mut task = rt.launch(task_spec(dir.path(), &program, "echo \"plain ${WARM_PID:-start}\"")).await.unwrap();
    let mut out = String::new();
    task.stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!((task.exit.await.unwrap(), out.as_str()), (ExitOutcome::Code(0), "plain start\n"));
}

#[tokio::test]
async fn idle_warm_processes_die_with_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, _) = warm_runtime(dir.path(), 2);
    eventually("two warm processes", || idle(&rt).len() == 2).await;
    let pids = idle(&rt);
    drop(rt);
    // Gone, or a zombie not reaped yet.
    let alive = |p: &u32| std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| !s.contains(") Z "));
    eventually("the warm processes to die", || !pids.iter().any(alive)).await;
}

/// Runs `script` as an attempt of `program`: its pid, exit and stdout.
async fn attempt(rt: &ProcessRuntime, cwd: &Path, program: &Path, script: &str) -> (u32, ExitOutcome, String, Arc<dyn TaskControl>) {
    let mut task = rt.launch(task_spec(cwd, program, script)).await.unwrap();
    let mut out = String::new();
    task.stdout.read_to_string(&mut out).await.unwrap();
    (task.pid, task.exit.await.unwrap(), out, task.control)
}

#[tokio::test]
async fn a_process_whose_attempt_succeeded_serves_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, program, waiting) = one_waiting_serving(dir.path(), 3).await;
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();

    // The ready line ends the attempt (exit 0) without reaching it.
    let script = "echo \"one $TUSK_TEST_VAR\"; pwd; echo oops >&2";
    let (pid, exit, out, first) = attempt(&rt, &work, &program, script).await;
    let cwd = std::fs::canonicalize(&work).unwrap();
    assert_eq!((pid, exit, out), (waiting, ExitOutcome::Code(0), format!("one hello there\n{}\n", cwd.display())));
    assert_eq!(std::fs::read_to_string(work.join("stderr")).unwrap(), "oops\n");
    eventually("the process back in the pool", || idle(&rt) == vec![waiting]).await;

    // The second attempt runs in the same process; the first one's control
    // no longer reaches it.
    let script = "while [ ! -e go ]; do sleep 0.01; done; echo two";
    let mut second = rt.launch(task_spec(&work, &program, script)).await.unwrap();
    assert_eq!(second.pid, waiting);
    first.kill();
    first.terminate();
    assert_eq!(first.memory_usage().await, 0);
    assert!(second.control.memory_usage().await > 0);
    std::fs::write(work.join("go"), "").unwrap();
    let mut out = String::new();
    second.stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!((second.exit.await.unwrap(), out.as_str()), (ExitOutcome::Code(0), "two\n"));

    // Its third attempt is its last: then a new process takes its place.
    eventually("the process back in the pool", || idle(&rt) == vec![waiting]).await;
    let (pid, exit, _, _) = attempt(&rt, &work, &program, "true").await;
    assert_eq!((pid, exit), (waiting, ExitOutcome::Code(0)));
    eventually("a new warm process", || idle(&rt).len() == 1 && idle(&rt)[0] != waiting).await;
    let gone = || std::fs::read_to_string(format!("/proc/{waiting}/stat")).map_or(true, |s| s.contains(") Z "));
    eventually("the used-up process to exit", gone).await;
}

#[tokio::test]
async fn a_failed_attempt_or_a_left_over_child_ends_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, program, first) = one_waiting_serving(dir.path(), 100).await;
    let (pid, exit, _, _) = attempt(&rt, dir.path(), &program, "exit 3").await;
    assert_eq!((pid, exit), (first, ExitOutcome::Code(3)));
    eventually("a new warm process", || idle(&rt).len() == 1 && idle(&rt)[0] != first).await;

    // A child left running: the attempt succeeded, but its whole group goes.
    let second = idle(&rt)[0];
    let (pid, exit, _, _) = attempt(&rt, dir.path(), &program, "sleep 1000 >/dev/null 2>&1 &").await;
    assert_eq!((pid, exit), (second, ExitOutcome::Code(0)));
    eventually("the group to be killed", || procfs::group_members(second as i32).is_empty()).await;
    eventually("a new warm process", || idle(&rt).len() == 1 && idle(&rt)[0] != second).await;
}

#[tokio::test]
async fn a_process_on_its_last_attempt_is_replaced_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, program, waiting) = one_waiting(dir.path()).await;
    let script = "while [ ! -e go ]; do sleep 0.01; done";
    let task = rt.launch(task_spec(dir.path(), &program, script)).await.unwrap();
    assert_eq!(task.pid, waiting);
    eventually("a replacement while the attempt runs", || idle(&rt).len() == 1 && idle(&rt)[0] != waiting).await;
    let replacement = idle(&rt)[0];
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert_eq!(task.exit.await.unwrap(), ExitOutcome::Code(0));
    let (pid, exit, _, _) = attempt(&rt, dir.path(), &program, "true").await;
    assert_eq!((pid, exit), (replacement, ExitOutcome::Code(0)));
}
