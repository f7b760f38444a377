//! Warm task processes, as Tez's pre-warmed containers or Hadoop's JVM
//! reuse: the worker keeps a few processes of the task program started
//! ahead of any attempt (`<program> task --warm`), each in its own process
//! group with the parent-death signal, like any task. Such a process has
//! already been loaded and linked and has warmed DataFusion up; it waits
//! for one [`WarmStart`] line on its stdin, takes on the attempt's stderr
//! file, working directory and environment, and runs the attempt exactly
//! as a process started for it would. That takes its start-up (a few
//! milliseconds of exec, linking and initialization, on every stage of
//! every job) off the attempt's critical path.
//!
//! An attempt takes an idle process if one is alive, else it is started
//! the plain way; either way the pool then starts a replacement. Each
//! process serves one attempt and exits with it, so isolation, limits,
//! kills and logs are those of a plain start. Idle processes die with the
//! pool (their stdin closes and they are killed on drop) or with the worker.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tusk_mapreduce::control::{WARM_FLAG, WarmStart};

use super::{ProcessRuntime, Spawner};
use crate::runtime::LaunchSpec;

/// What the pool keeps ready.
#[derive(Debug, Clone)]
pub(crate) struct WarmConfig {
    /// The task program (`tusk`); only attempts running `<program> task
    /// ...` start in a warm process.
    pub program: PathBuf,
    /// Working directory of idle processes; their stderr (before an attempt
    /// is theirs) goes to `warm.stderr` in it.
    pub dir: PathBuf,
    /// Processes kept waiting.
    pub count: usize,
}

/// An idle warm process.
struct Warm {
    child: Child,
    stdin: ChildStdin,
}

pub(super) struct WarmPool {
    config: WarmConfig,
    spawner: Spawner,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    idle: Vec<Warm>,
    /// Processes being started (counted against `config.count`).
    starting: usize,
}

impl WarmPool {
    pub(super) fn new(config: WarmConfig, spawner: Spawner) -> Arc<WarmPool> {
        Arc::new(WarmPool { config, spawner, state: Mutex::default() })
    }

    /// Idle processes now.
    #[cfg(test)]
    pub(super) fn idle(&self) -> Vec<u32> {
        self.state.lock().map(|s| s.idle.iter().filter_map(|w| w.child.id()).collect()).unwrap_or_default()
    }

    /// Starts processes (in the background) until `count` are idle or
    /// starting. A process that cannot be started is logged and not retried
    /// until the next attempt takes one.
    pub(super) fn refill(self: &Arc<Self>) {
        let missing = match self.state.lock() {
            Ok(mut s) => {
                let missing = self.config.count.saturating_sub(s.idle.len() + s.starting);
                s.starting += missing;
                missing
            }
            Err(_) => 0,
        };
        for _ in 0..missing {
            let pool = Arc::clone(self);
            tokio::spawn(async move {
                let started = pool.start_one().await;
                if let Err(e) = &started {
                    tracing::warn!(program = %pool.config.program.display(), "cannot start a warm task process: {e}");
                }
                if let Ok(mut s) = pool.state.lock() {
                    s.starting = s.starting.saturating_sub(1);
                    s.idle.extend(started.ok());
                }
            });
        }
    }

    async fn start_one(&self) -> crate::error::Result<Warm> {
        let c = &self.config;
        let args = ["task".into(), WARM_FLAG.into()];
        let stderr = c.dir.join("warm.stderr");
        let cmd = ProcessRuntime::command(&c.program, &args, [], &c.dir, Stdio::piped(), &stderr)?;
        let mut child = self.spawner.spawn(cmd).await.map_err(|e| crate::error::WorkerError::io(&c.program, e))?;
        let stdin = child.stdin.take().ok_or_else(|| crate::error::WorkerError::io(&c.program, std::io::Error::other("stdin not piped")))?;
        Ok(Warm { child, stdin })
    }

    /// An idle process that is still alive.
    fn take(&self) -> Option<Warm> {
        let mut state = self.state.lock().ok()?;
        while let Some(mut w) = state.idle.pop() {
            if matches!(w.child.try_wait(), Ok(None)) {
                return Some(w);
            }
        }
        None
    }

    /// `spec` started in a warm process, or `None` (no live idle process,
    /// or not an attempt of the task program): start it the plain way.
    pub(super) async fn launch(self: &Arc<Self>, spec: &LaunchSpec) -> Option<Child> {
        let line = start_line(&self.config, spec)?;
        let mut child = None;
        while let Some(mut w) = self.take() {
            // A process that died meanwhile cannot take the line: killed
            // (on drop) and the next one tried.
            let sent = async {
                w.stdin.write_all(line.as_bytes()).await?;
                w.stdin.flush().await
            };
            if sent.await.is_ok() {
                child = Some(w.child);
                break;
            }
        }
        self.refill();
        child
    }
}

/// The [`WarmStart`] line of `spec`, if it runs `<program> task ...` and
/// its paths and arguments are UTF-8.
fn start_line(config: &WarmConfig, spec: &LaunchSpec) -> Option<String> {
    if spec.program != config.program || spec.args.first().is_none_or(|a| a != "task") {
        return None;
    }
    let args = spec.args.iter().map(|a| a.to_str().map(str::to_string)).collect::<Option<Vec<String>>>()?;
    let start = WarmStart {
        args,
        env: spec.env.clone(),
        cwd: spec.cwd.to_str()?.to_string(),
        stderr: spec.stderr.to_str()?.to_string(),
    };
    let mut line = serde_json::to_string(&start).ok()?;
    line.push('\n');
    Some(line)
}
