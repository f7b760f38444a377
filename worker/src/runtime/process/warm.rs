//! Warm task processes, as Tez's pre-warmed and reused containers or
//! Hadoop's JVM reuse: the worker keeps a few processes of the task program
//! started ahead of any attempt (`<program> task --warm`), each in its own
//! process group with the parent-death signal, like any task. Such a
//! process has already been loaded and linked and has warmed DataFusion up;
//! it waits for one [`WarmStart`] line on its stdin, takes on the attempt's
//! stderr file, working directory and environment, and runs the attempt
//! exactly as a process started for it would. That takes its start-up (a
//! few milliseconds of exec, linking and initialization, on every stage of
//! every job) off the attempt's critical path.
//!
//! A process whose attempt succeeded tidies up (its threads gone, its
//! working directory, stderr and environment its own again) and says so
//! with [`READY_LINE`]; the worker then counts the attempt's process as
//! exited with status 0 and keeps the process for the next attempt, up to
//! `attempts` of them. A reused process keeps the heap its earlier attempts
//! grew: a new process pays a page fault for every page it touches, which
//! cost a tenth of the CPU of TPC-H's tasks. Only a process whose group
//! holds nothing but itself is kept; any other ending (failure, kill, a
//! left-over child, no ready line) ends the process as before, and a new
//! one is started in its place.
//!
//! An attempt takes an idle process if one is alive (the one that served
//! the most attempts: its heap is the warmest), waits a moment for one
//! that is tidying up and will be kept, else is started the plain way. A
//! process taken for its last attempt is replaced at once. Idle processes die
//! with the pool (their stdin closes and they are killed on drop) or with
//! the worker.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{Notify, oneshot};
use tusk_mapreduce::control::{READY_LINE, WARM_FLAG, WarmStart};

use super::{ProcessRuntime, Spawner};
use crate::error::{Result, WorkerError};
use crate::runtime::{ExitOutcome, LaunchSpec, RunningTask, TaskControl, procfs};
use futures::FutureExt;
use futures::future::BoxFuture;

/// How long an attempt waits for a process that is tidying up after its
/// last attempt before it is started the plain way.
const RETURN_WAIT: Duration = Duration::from_millis(200);
/// Longest stdout line looked at whole; longer lines pass in pieces.
const MAX_LINE: u64 = 1 << 16;

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
    /// Attempts one process serves, one after another (1: no reuse).
    pub attempts: u32,
}

/// An idle warm process.
struct Warm {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Attempts it has served.
    served: u32,
    /// Its current attempt is its last (`attempts` reached): it is not
    /// counted as busy, and a replacement starts when it is taken.
    last: bool,
}

pub(super) struct WarmPool {
    config: WarmConfig,
    spawner: Spawner,
    /// The runtime's environment for every task process.
    base_env: Arc<Vec<(String, String)>>,
    state: Mutex<State>,
    /// Signalled when a process comes back from an attempt.
    returned: Notify,
}

#[derive(Default)]
struct State {
    idle: Vec<Warm>,
    /// Processes being started (counted against `config.count`).
    starting: usize,
    /// Processes running an attempt or tidying up after one (counted too).
    busy: usize,
    /// Of those, the ones tidying up after a successful attempt.
    returning: usize,
}

impl WarmPool {
    pub(super) fn new(config: WarmConfig, spawner: Spawner, base_env: Arc<Vec<(String, String)>>) -> Arc<WarmPool> {
        Arc::new(WarmPool { config, spawner, base_env, state: Mutex::default(), returned: Notify::new() })
    }

    /// Idle processes now.
    #[cfg(test)]
    pub(super) fn idle(&self) -> Vec<u32> {
        self.state.lock().map(|s| s.idle.iter().filter_map(|w| w.child.id()).collect()).unwrap_or_default()
    }

    /// Starts processes (in the background) until `count` are idle,
    /// starting or busy with an attempt they may come back from. A process
    /// that cannot be started is logged and not retried until another one
    /// ends.
    pub(super) fn refill(self: &Arc<Self>) {
        let missing = match self.state.lock() {
            Ok(mut s) => {
                let missing = self.config.count.saturating_sub(s.idle.len() + s.starting + s.busy);
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

    async fn start_one(&self) -> Result<Warm> {
        let c = &self.config;
        let args = ["task".into(), WARM_FLAG.into()];
        let stderr = c.dir.join("warm.stderr");
        let env = self.base_env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let cmd = ProcessRuntime::command(&c.program, &args, env, &c.dir, Stdio::piped(), &stderr)?;
        let mut child = self.spawner.spawn(cmd).await.map_err(|e| WorkerError::io(&c.program, e))?;
        let missing = |what: &str| WorkerError::io(&c.program, std::io::Error::other(format!("{what} not piped")));
        let stdin = child.stdin.take().ok_or_else(|| missing("stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| missing("stdout"))?;
        Ok(Warm { child, stdin, stdout: BufReader::new(stdout), served: 0, last: false })
    }

    /// An idle process that is still alive, the one that served the most
    /// attempts first; `Err` with the number of processes tidying up when
    /// none is idle.
    fn take(&self) -> std::result::Result<Warm, usize> {
        let Ok(mut state) = self.state.lock() else { return Err(0) };
        state.idle.sort_by_key(|w| w.served);
        while let Some(mut w) = state.idle.pop() {
            if matches!(w.child.try_wait(), Ok(None)) {
                w.last = w.served + 1 >= self.config.attempts;
                if !w.last {
                    state.busy += 1;
                }
                return Ok(w);
            }
        }
        Err(state.returning)
    }

    /// An idle process, waiting up to [`RETURN_WAIT`] for one tidying up.
    async fn take_or_wait(&self) -> Option<Warm> {
        let deadline = tokio::time::Instant::now() + RETURN_WAIT;
        loop {
            let returned = self.returned.notified();
            match self.take() {
                Ok(w) => return Some(w),
                Err(0) => return None,
                Err(_) => {
                    if tokio::time::timeout_at(deadline, returned).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// `spec` started in a warm process, or `None` (no live idle process,
    /// or not an attempt of the task program): start it the plain way.
    pub(super) async fn launch(self: &Arc<Self>, spec: &LaunchSpec) -> Option<Result<RunningTask>> {
        let line = start_line(&self.config, spec)?;
        while let Some(mut w) = self.take_or_wait().await {
            // A process that died meanwhile cannot take the line: killed
            // (on drop) and the next one tried.
            let sent = async {
                w.stdin.write_all(line.as_bytes()).await?;
                w.stdin.flush().await
            };
            if sent.await.is_ok() {
                if w.last {
                    self.refill();
                }
                return Some(self.running(w, spec));
            }
            self.ended(w.last);
        }
        None
    }

    /// A taken process ended (or will): another one is started in its place.
    fn ended(self: &Arc<Self>, last: bool) {
        if !last
            && let Ok(mut s) = self.state.lock()
        {
            s.busy = s.busy.saturating_sub(1);
        }
        self.refill();
    }

    /// The [`RunningTask`] of attempt `spec` in process `w`: its stdout is
    /// passed on up to the ready line, and its exit is the process's or,
    /// after a ready line, status 0.
    fn running(self: &Arc<Self>, w: Warm, spec: &LaunchSpec) -> Result<RunningTask> {
        let Some(pid) = w.child.id() else {
            self.ended(w.last);
            return Err(WorkerError::Runtime {
                attempt_id: spec.attempt_id.clone(),
                message: "the warm task process exited before it was watched".into(),
            });
        };
        let control = Arc::new(AttemptControl { pgid: pid as i32, released: Mutex::new(false) });
        let (to_attempt, stdout) = tokio::io::duplex(MAX_LINE as usize);
        let (exit_tx, exit_rx) = oneshot::channel();
        let pool = Arc::clone(self);
        let watched = Arc::clone(&control);
        tokio::spawn(async move { pool.serve(w, watched, to_attempt, exit_tx).await });
        let attempt_id = spec.attempt_id.clone();
        // Kills the attempt if the exit is dropped before it resolved.
        let guard = KillOnDrop(Some(Arc::clone(&control)));
        let exit = async move {
            let exit = exit_rx.await;
            let mut guard = guard;
            guard.0 = None;
            exit.map_err(|_| WorkerError::Runtime { attempt_id, message: "the warm process's watcher is gone".into() })
        };
        Ok(RunningTask { pid, stdout: Box::pin(stdout), exit: exit.boxed(), control })
    }

    /// Passes `w`'s stdout on to the attempt until its ready line or its
    /// end, and sends the attempt's exit. After a ready line, the process is
    /// kept for another attempt if it is alone in its group and has served
    /// fewer than `attempts`; else it is ended.
    async fn serve(
        self: &Arc<Self>,
        mut w: Warm,
        control: Arc<AttemptControl>,
        mut to_attempt: tokio::io::DuplexStream,
        exit: oneshot::Sender<ExitOutcome>,
    ) {
        let ready = pass_on(&mut w.stdout, &mut to_attempt).await;
        drop(to_attempt);
        w.served += 1;
        let pgid = control.pgid;
        if !ready {
            let status = match w.child.wait().await {
                Ok(status) => super::outcome(status),
                Err(_) => ExitOutcome::Code(-1),
            };
            let _ = exit.send(status);
            return self.ended(w.last);
        }
        let reusable = !w.last;
        if reusable && let Ok(mut s) = self.state.lock() {
            s.returning += 1;
        }
        let alone = tokio::task::spawn_blocking(move || procfs::group_members(pgid))
            .await
            .is_ok_and(|m| m.len() == 1 && m[0].pid == pgid);
        // From here the attempt's control no longer reaches the process.
        let released = control.release();
        let _ = exit.send(ExitOutcome::Code(0));
        if reusable && let Ok(mut s) = self.state.lock() {
            s.returning = s.returning.saturating_sub(1);
            if alone && released {
                s.busy = s.busy.saturating_sub(1);
                s.idle.push(w);
                drop(s);
                self.returned.notify_waiters();
                return;
            }
        }
        // Not kept: whoever waits for a returning process stops waiting.
        self.returned.notify_waiters();
        if !alone {
            super::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
        }
        // Its stdin closes: it exits.
        let Warm { mut child, stdin, last, .. } = w;
        drop(stdin);
        self.ended(last);
        let _ = child.wait().await;
    }
}

/// Stops or measures one attempt's process group, until the process is
/// released for another attempt; from then on it does nothing.
struct AttemptControl {
    pgid: i32,
    /// Held while signalling, so a release never races a kill.
    released: Mutex<bool>,
}

impl AttemptControl {
    /// Releases the process from this attempt; false if the lock is
    /// poisoned (the process is then not reused).
    fn release(&self) -> bool {
        match self.released.lock() {
            Ok(mut r) => {
                *r = true;
                true
            }
            Err(_) => false,
        }
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Ok(released) = self.released.lock()
            && !*released
        {
            super::signal_group(self.pgid, signal);
        }
    }
}

impl TaskControl for AttemptControl {
    fn terminate(&self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    fn kill(&self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }

    fn memory_usage(&self) -> BoxFuture<'static, u64> {
        let pgid = self.pgid;
        let released = self.released.lock().map(|r| *r).unwrap_or(true);
        async move {
            if released {
                return 0;
            }
            tokio::task::spawn_blocking(move || procfs::group_rss(pgid)).await.unwrap_or(0)
        }
        .boxed()
    }
}

/// Kills the attempt (see [`AttemptControl`]) when dropped while armed.
struct KillOnDrop(Option<Arc<AttemptControl>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.kill();
        }
    }
}

/// Copies `from` to `to` line by line until [`READY_LINE`] (true) or the
/// end of `from` (false). Lines go on even when `to` is no longer read.
async fn pass_on(from: &mut (impl AsyncBufRead + Unpin), to: &mut (impl AsyncWriteExt + Unpin)) -> bool {
    let mut line = Vec::new();
    let mut at_start = true;
    let mut open = true;
    loop {
        line.clear();
        match (&mut *from).take(MAX_LINE).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        if at_start && line.strip_suffix(b"\n") == Some(READY_LINE.as_bytes()) {
            return true;
        }
        at_start = line.ends_with(b"\n");
        if open && to.write_all(&line).await.is_err() {
            open = false;
        }
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
