//! The life of one attempt on this worker: its directory, its process
//! (through the task runtime), its control channel, the progress timeout,
//! the memory watchdog, kills, and how it ended.
//!
//! Directory `<local_dir>/jobs/<job_id>/<attempt_id>/`: `task.json` (the
//! task definition as received), `work/` (the task's working directory),
//! `output/` (map output), `scratch/` (spills, fetched segments), `stdout`
//! (the task's non-control stdout lines), `stderr`.
//!
//! The task runs as `<task_executable> task --engine <engine> --spec
//! <dir>/task.json --output-dir <dir>/output --scratch-dir <dir>/scratch`
//! with the worker's environment plus the launch's plus `TUSK_ATTEMPT_ID`
//! and `TUSK_TASK_MEMORY_BYTES` (its memory limit).
//! Whatever the engine, a successful attempt's `output/file.out` and
//! `output/file.out.index` (the map-output layout) are what
//! `FetchMapOutput` serves.

mod channel;
mod outcome;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tusk_mapreduce::control::ControlLine;
use tusk_proto::compute::Counters;

use crate::error::{Result, WorkerError};
use crate::runtime::{ExitOutcome, LaunchSpec, Limits, RunningTask, TaskControl};
use futures::future::BoxFuture;
use crate::worker::Worker;
use channel::ControlChannel;
pub(crate) use outcome::Outcome;
use outcome::{Done, Stopped, counters};

/// How often the memory watchdog measures a task.
const MEMORY_CHECK: Duration = Duration::from_millis(500);
/// Between SIGTERM and SIGKILL of a task killed on request.
const KILL_GRACE: Duration = Duration::from_secs(1);
/// How long the rest of stdout is read after the task's main process exited.
const DRAIN: Duration = Duration::from_secs(2);
/// How long a task that printed its `done` line may take to exit before
/// its process group is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// What the worker decided to run.
#[derive(Debug, Clone)]
pub(crate) struct AttemptPlan {
    pub attempt_id: String,
    /// `mapreduce` or `sql` (`tusk task --engine`).
    pub engine: String,
    pub dir: PathBuf,
    pub spec_json: String,
    pub env: Vec<(String, String)>,
    pub program: PathBuf,
    /// Resident memory limit of the task's process group.
    pub memory_bytes: u64,
    /// Killed after this long without a control line.
    pub progress_timeout: Option<Duration>,
}

/// Runs an attempt to its end. Never fails: whatever goes wrong becomes the
/// attempt's outcome.
pub(crate) async fn run(worker: &Arc<Worker>, plan: AttemptPlan, kill: watch::Receiver<Option<String>>) -> Outcome {
    if let Some(reason) = kill.borrow().clone() {
        return Outcome::killed(reason, Counters::default());
    }
    match start(worker, &plan).await {
        Ok(task) => supervise(worker, &plan, task, kill).await,
        Err(e) => {
            tracing::warn!(attempt = %plan.attempt_id, "cannot start the task: {e}");
            Outcome::failed(format!("cannot start the task: {e}"), String::new(), Counters::default())
        }
    }
}

/// Creates the attempt's directory and starts its process.
async fn start(worker: &Arc<Worker>, plan: &AttemptPlan) -> Result<RunningTask> {
    let dir = plan.dir.clone();
    let spec_json = plan.spec_json.clone();
    tokio::task::spawn_blocking(move || prepare_dir(&dir, &spec_json)).await.map_err(|e| WorkerError::Runtime {
        attempt_id: plan.attempt_id.clone(),
        message: format!("preparing: {e}"),
    })??;
    let arg = |p: PathBuf| p.into_os_string();
    let spec = LaunchSpec {
        attempt_id: plan.attempt_id.clone(),
        program: plan.program.clone(),
        args: vec![
            "task".into(),
            "--engine".into(),
            plan.engine.clone().into(),
            "--spec".into(),
            arg(plan.dir.join("task.json")),
            "--output-dir".into(),
            arg(plan.dir.join("output")),
            "--scratch-dir".into(),
            arg(plan.dir.join("scratch")),
        ],
        env: plan.env.clone(),
        cwd: plan.dir.join("work"),
        stderr: plan.dir.join("stderr"),
        limits: Limits { memory_bytes: plan.memory_bytes },
    };
    worker.runtime.launch(spec).await
}

/// The attempt's directory, fresh, with `task.json` and empty logs.
fn prepare_dir(dir: &Path, spec_json: &str) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| WorkerError::io(dir, e))?;
    }
    for sub in ["work", "output", "scratch"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| WorkerError::io(&d, e))?;
    }
    let spec = dir.join("task.json");
    std::fs::write(&spec, spec_json).map_err(|e| WorkerError::io(&spec, e))?;
    for log in ["stdout", "stderr"] {
        let p = dir.join(log);
        std::fs::File::create(&p).map_err(|e| WorkerError::io(&p, e))?;
    }
    Ok(())
}

/// Deletes what a finished attempt no longer needs: `work/`, `scratch/`,
/// and `output/` unless it succeeded (its map output is served until the
/// job is over).
pub(crate) fn tidy_dir(dir: &Path, keep_output: bool) {
    let mut gone = vec!["work", "scratch"];
    if !keep_output {
        gone.push("output");
    }
    for sub in gone {
        crate::logs::remove_dir(&dir.join(sub));
    }
}

/// Watches a started task until its main process exited, then decides.
async fn supervise(
    worker: &Arc<Worker>,
    plan: &AttemptPlan,
    task: RunningTask,
    mut kill: watch::Receiver<Option<String>>,
) -> Outcome {
    let RunningTask { pid, stdout, mut exit, control } = task;
    tracing::debug!(attempt = %plan.attempt_id, pid, "task started");
    let mut channel = ControlChannel::new(stdout, plan.dir.join("stdout"));
    let mut last_line = Instant::now();
    let mut stopped: Option<Stopped> = None;
    let mut sigkill_at: Option<Instant> = None;
    let mut kill_open = true;
    let mut done: Option<Done> = None;
    let mut latest = Counters::default();
    // The first measure after one period: most tasks are over sooner, and
    // a measure walks /proc.
    let mut memory = tokio::time::interval_at(Instant::now() + MEMORY_CHECK, MEMORY_CHECK);
    memory.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    let watch_memory = plan.memory_bytes > 0;

    let exited = loop {
        let idle_deadline = last_line + plan.progress_timeout.unwrap_or(far);
        tokio::select! {
            r = &mut exit => break r,
            line = channel.next(), if !channel.at_eof() => {
                if let Some(line) = line {
                    last_line = Instant::now();
                    on_line(worker, &plan.attempt_id, line, &mut done, &mut latest);
                }
                if let Some(done) = done.take() {
                    // The done line is the task's commit (Hadoop's `done()`):
                    // its output is complete, so it succeeded now, even if a
                    // kill arrived meanwhile; tearing the process down is
                    // off the job's critical path.
                    channel.flush();
                    tokio::spawn(reap(plan.attempt_id.clone(), exit, control));
                    return Outcome::succeeded(done);
                }
            }
            _ = memory.tick(), if watch_memory && stopped.is_none() => {
                let used = control.memory_usage().await;
                if used > plan.memory_bytes {
                    tracing::info!(attempt = %plan.attempt_id, used, limit = plan.memory_bytes, "killing a task over its memory limit");
                    stopped = Some(Stopped::Memory { used, limit: plan.memory_bytes });
                    control.kill();
                }
            }
            _ = tokio::time::sleep_until(idle_deadline), if plan.progress_timeout.is_some() && stopped.is_none() => {
                let timeout = plan.progress_timeout.unwrap_or(far);
                tracing::info!(attempt = %plan.attempt_id, "killing a task without progress for {timeout:?}");
                stopped = Some(Stopped::NoProgress(timeout));
                control.kill();
            }
            changed = kill.changed(), if kill_open && stopped.is_none() => {
                match changed.ok().and_then(|()| kill.borrow_and_update().clone()) {
                    Some(reason) => {
                        tracing::info!(attempt = %plan.attempt_id, %reason, "killing a task on request");
                        stopped = Some(Stopped::Killed(reason));
                        control.terminate();
                        sigkill_at = Some(Instant::now() + KILL_GRACE);
                    }
                    None => kill_open = false,
                }
            }
            _ = tokio::time::sleep_until(sigkill_at.unwrap_or_else(|| Instant::now() + far)), if sigkill_at.is_some() => {
                control.kill();
                sigkill_at = None;
            }
        }
    };
    // Whatever the main process left running goes too.
    control.kill();
    let drain = async {
        while let Some(line) = channel.next().await {
            on_line(worker, &plan.attempt_id, line, &mut done, &mut latest);
        }
    };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        tracing::warn!(attempt = %plan.attempt_id, "the task's stdout stayed open after it exited");
    }
    channel.flush();
    let exited = exited.map_err(|e| e.to_string());
    let stderr = plan.dir.join("stderr");
    tokio::task::spawn_blocking(move || Outcome::decide(stopped, exited, done, latest, &stderr))
        .await
        .unwrap_or_else(|e| Outcome::failed(format!("deciding the outcome: {e}"), String::new(), Counters::default()))
}

/// Waits (at most [`EXIT_GRACE`]) for a task that printed its `done` line
/// to exit, then kills whatever it left running.
async fn reap(attempt_id: String, exit: BoxFuture<'static, Result<ExitOutcome>>, control: Arc<dyn TaskControl>) {
    match tokio::time::timeout(EXIT_GRACE, exit).await {
        Ok(Ok(ExitOutcome::Code(0))) => {}
        Ok(Ok(other)) => tracing::warn!(attempt = %attempt_id, "the task ended with {other} after its done line"),
        Ok(Err(e)) => tracing::warn!(attempt = %attempt_id, "after its done line: {e}"),
        // Dropping the exit future kills the process group.
        Err(_) => tracing::warn!(attempt = %attempt_id, "the task did not exit within {EXIT_GRACE:?} of its done line"),
    }
    control.kill();
}

/// A control line: progress goes to the next heartbeat, `done` is kept.
fn on_line(worker: &Worker, attempt_id: &str, line: ControlLine, done: &mut Option<Done>, latest: &mut Counters) {
    match line {
        ControlLine::Progress { progress, status, counters: c } => {
            let c = counters(c);
            *latest = c.clone();
            let progress = if progress.is_finite() { progress.clamp(0.0, 1.0) } else { 0.0 };
            worker.update_progress(attempt_id, progress, status, c);
        }
        ControlLine::Done { result_json, counters: c } => {
            let c = counters(c);
            *latest = c.clone();
            worker.update_progress(attempt_id, 1.0, String::new(), c.clone());
            *done = Some(Done { result_json, counters: c });
        }
    }
}
