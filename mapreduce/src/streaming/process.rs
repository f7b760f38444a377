//! Starting a streaming command (`sh -c COMMAND`) and making sure it never
//! outlives its task: it stays in the task's process group (the worker
//! kills the group), it gets SIGKILL when the thread that started it dies
//! (PR_SET_PDEATHSIG), and it is killed when its handle is dropped.

use super::Role;
use super::env::command_env;
use crate::api::TaskContext;
use crate::error::{Result, TaskError};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};

/// A running command and its pipes.
pub(crate) struct Spawned {
    pub(crate) child: RunningChild,
    pub(crate) stdin: ChildStdin,
    pub(crate) stdout: ChildStdout,
    pub(crate) stderr: ChildStderr,
}

/// Starts `sh -c command` in the task's working directory with the
/// streaming environment.
///
/// The parent-death signal fires when the *thread* that forked the child
/// exits, so the caller must spawn and wait from the same thread (the
/// runners do: they spawn, read stdout and wait on the caller's thread).
pub(crate) fn spawn(role: Role, command: &str, ctx: &TaskContext) -> Result<Spawned> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(&ctx.work_dir)
        .envs(command_env(ctx, std::env::var_os("PATH")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| {
        TaskError::User(format!("{role} command '{command}': cannot start sh in {}: {e}", ctx.work_dir.display()))
    })?;
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let child = RunningChild { child, reaped: false };
    match (stdin, stdout, stderr) {
        (Some(stdin), Some(stdout), Some(stderr)) => {
            grow_pipe(&stdin);
            grow_pipe(&stdout);
            Ok(Spawned { child, stdin, stdout, stderr })
        }
        // Cannot happen with Stdio::piped(); the guard kills the child.
        _ => Err(TaskError::User(format!("{role} command '{command}': pipes to the process are missing"))),
    }
}

#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls (prctl, getppid); it allocates
    // nothing and touches no locks.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The parent may have died between fork and prctl: then the
            // signal never comes, so refuse to run.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("the task process exited while starting the command"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// Pipe capacity asked for (Linux allows unprivileged processes up to
/// `/proc/sys/fs/pipe-max-size`, 1 MiB by default).
#[cfg(target_os = "linux")]
const PIPE_CAPACITY: i32 = 1 << 20;

/// Enlarges a pipe from the default 64 KiB so big records stream with
/// fewer wake-ups; best effort (the default size works, only slower).
#[cfg(target_os = "linux")]
fn grow_pipe(fd: impl std::os::fd::AsFd) {
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_CAPACITY));
}

#[cfg(not(target_os = "linux"))]
fn grow_pipe(_fd: impl std::os::fd::AsFd) {}

/// A child process that is killed and reaped when dropped unless it was
/// waited for.
pub(crate) struct RunningChild {
    child: Child,
    reaped: bool,
}

impl RunningChild {
    /// Kills the child (best effort: it may have exited already).
    pub(crate) fn kill(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
        }
    }

    /// Waits for the child to exit.
    pub(crate) fn wait(&mut self, role: Role, command: &str) -> Result<ExitStatus> {
        let status = self
            .child
            .wait()
            .map_err(|e| TaskError::io(format!("{role} command '{command}': wait for the process"), e))?;
        self.reaped = true;
        Ok(status)
    }
}

impl Drop for RunningChild {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The error for a command that did not exit with status 0 (`None` for 0).
pub(crate) fn status_error(role: Role, command: &str, status: ExitStatus) -> Option<TaskError> {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return None;
    }
    let msg = match (status.code(), status.signal()) {
        (Some(127), _) => format!("{role} command '{command}' exited with status 127 (command not found?)"),
        (Some(126), _) => format!("{role} command '{command}' exited with status 126 (not executable?)"),
        (Some(code), _) => format!("{role} command '{command}' exited with status {code}"),
        (None, Some(sig)) => format!("{role} command '{command}' was killed by signal {sig}"),
        (None, None) => format!("{role} command '{command}' failed: {status}"),
    };
    Some(TaskError::User(msg))
}
