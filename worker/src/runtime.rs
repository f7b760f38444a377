//! The task-runtime abstraction: how an attempt's process is started,
//! watched and stopped. [`ProcessRuntime`] (a child process in its own
//! process group) is the only implementation; container runtimes come later
//! behind the same trait.
//!
//! A runtime hands back a [`RunningTask`]: the task's stdout (the control
//! channel), a future resolving when the task's main process has exited and
//! been reaped, and a shared [`TaskControl`] to stop it or measure it from
//! elsewhere (kill requests, the memory watchdog) while that future is
//! being awaited.

pub(crate) mod process;
pub(crate) mod procfs;

use futures::future::BoxFuture;
use std::ffi::OsString;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::AsyncRead;

use crate::error::Result;

pub(crate) use process::{ProcessRuntime, WarmConfig};

/// What to run for one attempt.
#[derive(Debug, Clone)]
pub(crate) struct LaunchSpec {
    /// Names the task in errors and logs.
    pub attempt_id: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Added to the worker's own environment.
    pub env: Vec<(String, String)>,
    /// Working directory of the task.
    pub cwd: PathBuf,
    /// File receiving the task's stderr (appended to).
    pub stderr: PathBuf,
    pub limits: Limits,
}

/// Resource limits of a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Resident memory of everything the task runs, in bytes (0: none).
    /// The process runtime measures it ([`TaskControl::memory_usage`]) and
    /// the worker's watchdog enforces it; a container runtime may also hand
    /// it to the kernel.
    pub memory_bytes: u64,
}

/// How a task's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitOutcome {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl std::fmt::Display for ExitOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitOutcome::Code(c) => write!(f, "exit status {c}"),
            ExitOutcome::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Stops and measures a running task; shared, usable while its exit is
/// awaited elsewhere.
pub(crate) trait TaskControl: Send + Sync {
    /// Asks everything the task runs to stop (SIGTERM to the process group).
    fn terminate(&self);
    /// Kills everything the task runs, at once (SIGKILL to the process
    /// group). Also used after the main process exited, to end what it left
    /// running.
    fn kill(&self);
    /// Resident memory of everything the task runs, in bytes.
    fn memory_usage(&self) -> BoxFuture<'static, u64>;
}

/// A started task.
pub(crate) struct RunningTask {
    /// Process id of the task's main process (also its process group id for
    /// the process runtime).
    pub pid: u32,
    /// The task's stdout: the control channel.
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    /// Resolves once the main process has exited and been reaped. Dropping
    /// it before then kills the task.
    pub exit: BoxFuture<'static, Result<ExitOutcome>>,
    pub control: Arc<dyn TaskControl>,
}

/// Starts tasks.
pub(crate) trait TaskRuntime: Send + Sync {
    /// Name announced to the jobtracker ("process").
    fn name(&self) -> &'static str;
    /// Starts `spec`; fails when the program cannot be started.
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<RunningTask>>;
}
