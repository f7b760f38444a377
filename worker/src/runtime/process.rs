//! The plain process runtime: each task is a child process of the worker in
//! its own process group (so the whole tree it starts can be signalled at
//! once), with `PR_SET_PDEATHSIG = SIGTERM` (a dying worker takes its tasks
//! along: SIGTERM ends a task, and `tusk task` answers it by killing its
//! whole process group, so the programs it started go too) and
//! `RLIMIT_CORE = 0` (a crashing task leaves no core file).
//!
//! Children are forked by one long-lived thread, the spawner: Linux sends
//! the parent-death signal when the *thread* that forked the child exits,
//! and tokio's blocking threads come and go. The spawner lives as long as
//! the [`ProcessRuntime`]; dropping the runtime therefore kills its tasks.
//!
//! With a warm pool ([`ProcessRuntime::with_warm`]), an attempt of the
//! task program starts in a process started ahead of it (see [`warm`]).

use futures::FutureExt;
use futures::future::BoxFuture;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::{ExitOutcome, LaunchSpec, RunningTask, TaskControl, TaskRuntime, procfs};
use crate::error::{Result, WorkerError};

mod warm;

pub(crate) use warm::WarmConfig;

type SpawnReply = oneshot::Sender<std::io::Result<Child>>;

/// Hands commands to the spawner thread.
#[derive(Clone)]
struct Spawner(std::sync::mpsc::Sender<(Command, SpawnReply)>);

impl Spawner {
    async fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        let gone = || std::io::Error::other("the task spawner thread is gone");
        let (tx, rx) = oneshot::channel();
        self.0.send((cmd, tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// Runs tasks as child processes (see the module docs).
pub(crate) struct ProcessRuntime {
    spawner: Spawner,
    warm: Option<Arc<warm::WarmPool>>,
    /// Added to every task process's environment (before the attempt's own).
    base_env: Arc<Vec<(String, String)>>,
}

impl ProcessRuntime {
    /// Starts the spawner thread; call inside a tokio runtime (the children
    /// are reaped by it).
    pub(crate) fn start() -> Result<ProcessRuntime> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| WorkerError::Config(format!("the process runtime needs a tokio runtime: {e}")))?;
        let (tx, rx) = std::sync::mpsc::channel::<(Command, SpawnReply)>();
        std::thread::Builder::new()
            .name("tusk-task-spawner".into())
            .spawn(move || {
                let _in_runtime = handle.enter();
                while let Ok((mut cmd, reply)) = rx.recv() {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .map_err(|e| WorkerError::Config(format!("cannot start the task spawner thread: {e}")))?;
        Ok(ProcessRuntime { spawner: Spawner(tx), warm: None, base_env: Arc::default() })
    }

    /// Starts every task process (warm ones included: call before
    /// [`ProcessRuntime::with_warm`]) with `env` added to the worker's.
    pub(crate) fn with_env(mut self, env: Vec<(String, String)>) -> ProcessRuntime {
        self.base_env = Arc::new(env);
        self
    }

    /// Keeps `config.count` processes of the task program started ahead of
    /// attempts (none when 0).
    pub(crate) fn with_warm(mut self, config: WarmConfig) -> ProcessRuntime {
        if config.count > 0 {
            let pool = warm::WarmPool::new(config, self.spawner.clone(), self.base_env.clone());
            pool.refill();
            self.warm = Some(pool);
        }
        self
    }

    /// `program args` in `cwd` with `env` added, in its own process group,
    /// stdout piped (see the module docs for the rest).
    fn command<'a>(
        program: &std::path::Path,
        args: &[std::ffi::OsString],
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
        cwd: &std::path::Path,
        stdin: Stdio,
        stderr: &std::path::Path,
    ) -> Result<Command> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr)
            .map_err(|e| WorkerError::io(stderr, e))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env)
            .current_dir(cwd)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .kill_on_drop(true);
        let parent = nix::unistd::getpid();
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe system calls (prctl, getppid, setrlimit);
        // its errors are built from errno values without allocating.
        unsafe {
            cmd.pre_exec(move || {
                use nix::sys::resource::{Resource, setrlimit};
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
                // The worker died between fork and prctl: do not outlive it.
                if nix::unistd::getppid() != parent {
                    return Err(nix::errno::Errno::ESRCH.into());
                }
                setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
                Ok(())
            });
        }
        Ok(cmd)
    }
}

impl TaskRuntime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<RunningTask>> {
        async move {
            if let Some(pool) = &self.warm
                && let Some(task) = pool.launch(&spec).await
            {
                tracing::debug!(attempt = %spec.attempt_id, "task started in a warm process");
                return task;
            }
            let base = self.base_env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            let env = base.chain(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let cmd = ProcessRuntime::command(&spec.program, &spec.args, env, &spec.cwd, Stdio::null(), &spec.stderr)?;
            let child = self.spawner.spawn(cmd).await.map_err(|e| WorkerError::Runtime {
                attempt_id: spec.attempt_id.clone(),
                message: format!("cannot start {}: {e}", spec.program.display()),
            })?;
            tracing::debug!(
                attempt = %spec.attempt_id,
                program = %spec.program.display(),
                memory_limit = spec.limits.memory_bytes,
                "task process started (the worker's watchdog enforces the memory limit)"
            );
            running(child, &spec)
        }
        .boxed()
    }
}

/// The [`RunningTask`] of a started child.
fn running(mut child: Child, spec: &LaunchSpec) -> Result<RunningTask> {
    let pid = child.id().ok_or_else(|| WorkerError::Runtime {
        attempt_id: spec.attempt_id.clone(),
        message: "the task process exited before it was watched".into(),
    })?;
    let stdout = child.stdout.take().ok_or_else(|| WorkerError::Runtime {
        attempt_id: spec.attempt_id.clone(),
        message: "the task's stdout is not piped".into(),
    })?;
    let pgid = pid as i32;
    let attempt_id = spec.attempt_id.clone();
    // Kills the group if the exit is dropped before it resolved
    // (even if it was never polled).
    let mut guard = GroupGuard(Some(pgid));
    let exit = async move {
        let status = child.wait().await;
        guard.disarm();
        let status = status
            .map_err(|e| WorkerError::Runtime { attempt_id, message: format!("waiting for the task: {e}") })?;
        Ok(outcome(status))
    };
    Ok(RunningTask {
        pid,
        stdout: Box::pin(stdout),
        exit: exit.boxed(),
        control: Arc::new(ProcessGroup { pgid }),
    })
}

fn outcome(status: std::process::ExitStatus) -> ExitOutcome {
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitOutcome::Code(c),
        (None, Some(s)) => ExitOutcome::Signal(s),
        (None, None) => ExitOutcome::Code(-1),
    }
}

/// Signals sent to a task's process group.
struct ProcessGroup {
    pgid: i32,
}

fn signal_group(pgid: i32, signal: Signal) {
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, "cannot send {signal} to the task's process group: {e}"),
    }
}

impl TaskControl for ProcessGroup {
    fn terminate(&self) {
        signal_group(self.pgid, Signal::SIGTERM);
    }

    fn kill(&self) {
        signal_group(self.pgid, Signal::SIGKILL);
    }

    fn memory_usage(&self) -> BoxFuture<'static, u64> {
        let pgid = self.pgid;
        async move { tokio::task::spawn_blocking(move || procfs::group_rss(pgid)).await.unwrap_or(0) }.boxed()
    }
}

/// SIGKILLs a process group when dropped while armed. Moved whole into the
/// exit future (a method call, not a field access, so the closure capture
/// takes the guard itself rather than a copy of its field).
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            signal_group(pgid, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests;
