//! The worker's core: its attempts and slots, and the operations the gRPC
//! handlers and the jobtracker actor call (launch, kill, progress for
//! heartbeats, cleanup, where an attempt's files are). Knows nothing of
//! tonic.
//!
//! Every attempt launched since the worker started has an entry until its
//! job is cleaned up. An entry belongs to the worker identity (`epoch`) that
//! launched it: when the jobtracker asks the worker to register again, the
//! worker takes a new id, kills the old identity's attempts and forgets them.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tusk_proto::compute::{
    AttemptFinishedRequest, AttemptProgress, AttemptState, Counters, LaunchTaskRequest, WorkerHeartbeatRequest,
};

use crate::attempt::{self, AttemptPlan, Outcome};
use crate::error::{Result, WorkerError};
use crate::logs;
use crate::runtime::TaskRuntime;

/// Engines whose tasks `tusk task --engine <name>` runs.
pub(crate) const ENGINES: [&str; 2] = ["mapreduce", "sql"];
/// The engine of a launch that names none.
pub(crate) const DEFAULT_ENGINE: &str = "mapreduce";

/// What the worker was configured with, resolved at start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub slots: u32,
    /// The host announced to the jobtracker.
    pub host: String,
    pub local_dirs: Vec<PathBuf>,
    pub task_executable: PathBuf,
    /// Memory limit of an attempt whose launch names none.
    pub default_memory_bytes: u64,
    /// How long logs of cleaned-up attempts are kept (zero: not kept).
    pub log_retain: Duration,
}

/// Who the worker currently is to the jobtracker.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub worker_id: String,
    pub epoch: u64,
}

/// A finished attempt waiting to be reported to the jobtracker.
#[derive(Debug)]
pub(crate) struct FinishedReport {
    pub epoch: u64,
    pub request: AttemptFinishedRequest,
}

struct Entry {
    job_id: String,
    /// The local dir holding the attempt's directory.
    local_dir: PathBuf,
    dir: PathBuf,
    epoch: u64,
    phase: Phase,
}

enum Phase {
    Running {
        progress: f32,
        status: String,
        counters: Counters,
        /// Carries the reason of a kill request to the attempt's supervisor.
        kill: watch::Sender<Option<String>>,
    },
    Finished {
        state: AttemptState,
        /// Final counters, for heartbeats sent before the report is taken.
        counters: Counters,
        reported: bool,
    },
}

#[derive(Default)]
struct State {
    attempts: HashMap<String, Entry>,
    running: u32,
}

/// The worker's attempts and slots.
pub(crate) struct Worker {
    pub settings: Settings,
    pub runtime: Arc<dyn TaskRuntime>,
    state: Mutex<State>,
    identity: RwLock<Identity>,
    /// Bumped whenever an attempt finishes or is reported (waiters poll the
    /// state again).
    changed: watch::Sender<u64>,
    finished: mpsc::UnboundedSender<FinishedReport>,
    stopping: AtomicBool,
    next_dir: AtomicUsize,
}

impl Worker {
    pub(crate) fn new(
        settings: Settings,
        runtime: Arc<dyn TaskRuntime>,
        worker_id: String,
    ) -> (Arc<Worker>, mpsc::UnboundedReceiver<FinishedReport>) {
        let (finished, rx) = mpsc::unbounded_channel();
        let worker = Worker {
            settings,
            runtime,
            state: Mutex::new(State::default()),
            identity: RwLock::new(Identity { worker_id, epoch: 0 }),
            changed: watch::channel(0).0,
            finished,
            stopping: AtomicBool::new(false),
            next_dir: AtomicUsize::new(0),
        };
        (Arc::new(worker), rx)
    }

    pub(crate) fn identity(&self) -> Identity {
        self.identity.read().clone()
    }

    pub(crate) fn runtime_name(&self) -> &'static str {
        self.runtime.name()
    }

    /// Accepts an attempt and starts it in the background. Idempotent: a
    /// launch of an attempt this worker already has is a no-op. Failures to
    /// start the process are reported as a FAILED attempt, like its other
    /// failures.
    pub(crate) fn launch(self: &Arc<Self>, req: LaunchTaskRequest) -> Result<()> {
        check_id("job_id", &req.job_id)?;
        check_id("task_id", &req.task_id)?;
        check_id("attempt_id", &req.attempt_id)?;
        let engine = if req.engine.is_empty() { DEFAULT_ENGINE } else { req.engine.as_str() };
        if !ENGINES.contains(&engine) {
            return Err(WorkerError::InvalidRequest(format!(
                "attempt {}: unknown engine '{}' (this worker runs: {})",
                req.attempt_id,
                req.engine,
                ENGINES.join(", ")
            )));
        }
        let engine = engine.to_string();
        let identity = self.identity();
        let (kill_tx, kill_rx) = watch::channel(None);
        let plan = {
            let mut state = self.state.lock();
            // Checked under the lock: `stop` sets it under the lock too, so
            // an attempt is either refused or among those `stop` kills.
            if self.stopping.load(Ordering::SeqCst) {
                return Err(WorkerError::ShuttingDown(identity.worker_id));
            }
            if state.attempts.contains_key(&req.attempt_id) {
                return Ok(());
            }
            if state.running >= self.settings.slots {
                return Err(WorkerError::NoFreeSlot {
                    attempt_id: req.attempt_id,
                    slots: self.settings.slots,
                    worker_id: identity.worker_id,
                });
            }
            let dirs = &self.settings.local_dirs;
            let local_dir = dirs[self.next_dir.fetch_add(1, Ordering::Relaxed) % dirs.len()].clone();
            let dir = local_dir.join("jobs").join(&req.job_id).join(&req.attempt_id);
            state.running += 1;
            let entry = Entry {
                job_id: req.job_id.clone(),
                local_dir,
                dir: dir.clone(),
                epoch: identity.epoch,
                phase: Phase::Running {
                    progress: 0.0,
                    status: String::new(),
                    counters: Counters::default(),
                    kill: kill_tx,
                },
            };
            state.attempts.insert(req.attempt_id.clone(), entry);
            let mut env: Vec<(String, String)> = req.env.into_iter().collect();
            env.sort();
            env.push(("TUSK_ATTEMPT_ID".into(), req.attempt_id.clone()));
            let memory_bytes = match req.memory_bytes {
                0 => self.settings.default_memory_bytes,
                m => m,
            };
            env.push((tusk_mapreduce::control::TASK_MEMORY_ENV.into(), memory_bytes.to_string()));
            env.push((tusk_mapreduce::control::WORKER_HOST_ENV.into(), self.settings.host.clone()));
            AttemptPlan {
                attempt_id: req.attempt_id,
                engine,
                dir,
                spec_json: req.spec_json,
                env,
                program: self.settings.task_executable.clone(),
                memory_bytes,
                progress_timeout: (req.progress_timeout_ms > 0).then(|| Duration::from_millis(req.progress_timeout_ms)),
            }
        };
        tracing::info!(attempt = %plan.attempt_id, dir = %plan.dir.display(), "launching attempt");
        let worker = Arc::clone(self);
        tokio::spawn(async move {
            let (attempt_id, dir) = (plan.attempt_id.clone(), plan.dir.clone());
            let supervisor = tokio::spawn({
                let worker = Arc::clone(&worker);
                async move { attempt::run(&worker, plan, kill_rx).await }
            });
            // A bug in the supervisor must still free the slot and report.
            let outcome = supervisor.await.unwrap_or_else(|e| {
                tracing::error!(attempt = %attempt_id, "the attempt's supervisor failed: {e}");
                Outcome::failed(
                    format!("worker error while supervising the attempt: {e}"),
                    String::new(),
                    Counters::default(),
                )
            });
            let keep_output = outcome.state == AttemptState::AttemptSucceeded;
            worker.finish(&attempt_id, outcome);
            // Only the map output of a success (and the logs) are needed now.
            let _ = tokio::task::spawn_blocking(move || attempt::tidy_dir(&dir, keep_output)).await;
        });
        Ok(())
    }

    /// Records the progress of a running attempt (from its control channel).
    pub(crate) fn update_progress(
        &self,
        attempt_id: &str,
        new_progress: f32,
        new_status: String,
        new_counters: Counters,
    ) {
        if let Some(Entry { phase: Phase::Running { progress, status, counters, .. }, .. }) =
            self.state.lock().attempts.get_mut(attempt_id)
        {
            *progress = new_progress;
            *status = new_status;
            *counters = new_counters;
        }
    }

    /// An attempt's supervisor is done: frees its slot and queues the report.
    fn finish(&self, attempt_id: &str, outcome: Outcome) {
        let epoch = {
            let mut state = self.state.lock();
            let Some(entry) = state.attempts.get_mut(attempt_id) else { return };
            if !matches!(entry.phase, Phase::Running { .. }) {
                return;
            }
            entry.phase = Phase::Finished { state: outcome.state, counters: outcome.counters.clone(), reported: false };
            let epoch = entry.epoch;
            state.running = state.running.saturating_sub(1);
            epoch
        };
        tracing::info!(
            attempt = attempt_id,
            state = outcome.state.as_str_name(),
            diagnostics = %outcome.diagnostics,
            "attempt finished"
        );
        let request = AttemptFinishedRequest {
            worker_id: String::new(),
            attempt_id: attempt_id.to_string(),
            state: outcome.state as i32,
            diagnostics: outcome.diagnostics,
            stderr_tail: outcome.stderr_tail,
            counters: Some(outcome.counters),
            result_json: outcome.result_json,
        };
        let _ = self.finished.send(FinishedReport { epoch, request });
        self.bump();
    }

    /// The jobtracker heard about a finished attempt (or will never need to).
    pub(crate) fn mark_reported(&self, attempt_id: &str) {
        if let Some(Entry { phase: Phase::Finished { reported, .. }, .. }) =
            self.state.lock().attempts.get_mut(attempt_id)
        {
            *reported = true;
        }
        self.bump();
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Asks a running attempt to stop (SIGTERM, SIGKILL a second later); it
    /// then finishes KILLED with `reason`. False when the attempt is unknown.
    pub(crate) fn kill(&self, attempt_id: &str, reason: &str) -> bool {
        let state = self.state.lock();
        match state.attempts.get(attempt_id) {
            Some(Entry { phase: Phase::Running { kill, .. }, .. }) => {
                kill.send_if_modified(|r| {
                    r.is_none() && {
                        *r = Some(reason.to_string());
                        true
                    }
                });
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// The heartbeat's view of this worker: attempts running or not yet
    /// reported, and free slots.
    pub(crate) fn heartbeat_request(&self) -> WorkerHeartbeatRequest {
        let identity = self.identity();
        let state = self.state.lock();
        let mut running = Vec::new();
        for (id, e) in state.attempts.iter().filter(|(_, e)| e.epoch == identity.epoch) {
            match &e.phase {
                Phase::Running { progress, status, counters, .. } => running.push(AttemptProgress {
                    attempt_id: id.clone(),
                    progress: *progress,
                    status: status.clone(),
                    counters: Some(counters.clone()),
                }),
                Phase::Finished { reported: false, counters, .. } => running.push(AttemptProgress {
                    attempt_id: id.clone(),
                    progress: 1.0,
                    status: String::new(),
                    counters: Some(counters.clone()),
                }),
                Phase::Finished { .. } => {}
            }
        }
        running.sort_by(|a, b| a.attempt_id.cmp(&b.attempt_id));
        WorkerHeartbeatRequest {
            worker_id: identity.worker_id,
            running,
            free_slots: self.settings.slots.saturating_sub(state.running),
        }
    }

    /// Takes a new identity for a new registration; kills and forgets the
    /// attempts of the old one (the jobtracker considers them gone).
    pub(crate) fn renew_identity(self: &Arc<Self>, new_id: String) -> Identity {
        let old_epoch = {
            let mut identity = self.identity.write();
            let old = identity.epoch;
            *identity = Identity { worker_id: new_id, epoch: old + 1 };
            old
        };
        let worker = Arc::clone(self);
        tokio::spawn(async move {
            worker.forget_attempts(|e| e.epoch <= old_epoch, "worker registered again with the jobtracker").await;
        });
        self.identity()
    }

    /// A job is over: kills what still runs of it, deletes its local files
    /// (keeping the attempts' logs for `log_retain`).
    pub(crate) async fn cleanup_job(&self, job_id: &str) {
        self.forget_attempts(|e| e.job_id == job_id, "job is over").await;
        if self.state.lock().attempts.values().any(|e| e.job_id == job_id) {
            return;
        }
        let dirs = self.settings.local_dirs.clone();
        let job_id = job_id.to_string();
        let _ = tokio::task::spawn_blocking(move || {
            for d in dirs {
                logs::remove_dir(&d.join("jobs").join(&job_id));
            }
        })
        .await;
    }

    /// Kills the matching attempts, waits for them to end (at most a few
    /// seconds), drops their entries and deletes their directories. An
    /// attempt still running after that keeps its entry (and its slot until
    /// its process is gone).
    async fn forget_attempts(&self, matches: impl Fn(&Entry) -> bool, reason: &str) {
        let ids: Vec<String> =
            self.state.lock().attempts.iter().filter(|(_, e)| matches(e)).map(|(id, _)| id.clone()).collect();
        for id in &ids {
            self.kill(id, reason);
        }
        let still_running = || {
            let state = self.state.lock();
            ids.iter().any(|id| matches!(state.attempts.get(id), Some(Entry { phase: Phase::Running { .. }, .. })))
        };
        if !self.wait_until(Duration::from_secs(5), still_running).await {
            tracing::warn!("attempts still running 5 s after their kill: their files stay until they end");
        }
        let removed: Vec<(String, Entry)> = {
            let mut state = self.state.lock();
            let finished: Vec<&String> = ids
                .iter()
                .filter(|id| matches!(state.attempts.get(*id), Some(Entry { phase: Phase::Finished { .. }, .. })))
                .collect();
            finished.into_iter().filter_map(|id| state.attempts.remove(id).map(|e| (id.clone(), e))).collect()
        };
        if removed.is_empty() {
            return;
        }
        let retain = !self.settings.log_retain.is_zero();
        let _ = tokio::task::spawn_blocking(move || {
            for (id, e) in removed {
                logs::retire_attempt_dir(&e.local_dir, &e.dir, &id, retain);
            }
        })
        .await;
        self.bump();
    }

    /// Waits until `cond` is false, or `limit` passed (returns false then).
    async fn wait_until(&self, limit: Duration, cond: impl Fn() -> bool) -> bool {
        let mut rx = self.changed.subscribe();
        let waiting = async {
            loop {
                rx.borrow_and_update();
                if !cond() {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(limit, waiting).await.is_ok()
    }

    /// Stops taking attempts and kills the running ones; waits until they
    /// ended and their reports went out (each wait bounded).
    pub(crate) async fn stop(&self, reason: &str) {
        let ids: Vec<String> = {
            let state = self.state.lock();
            self.stopping.store(true, Ordering::SeqCst);
            state.attempts.keys().cloned().collect()
        };
        for id in &ids {
            self.kill(id, reason);
        }
        if !self.wait_until(Duration::from_secs(5), || self.state.lock().running > 0).await {
            tracing::warn!("attempts still running at shutdown");
        }
        let epoch = self.identity().epoch;
        let unreported = || {
            let state = self.state.lock();
            state
                .attempts
                .values()
                .any(|e| e.epoch == epoch && matches!(e.phase, Phase::Finished { reported: false, .. }))
        };
        self.wait_until(Duration::from_secs(2), unreported).await;
    }

    /// Directory holding the map output of a SUCCEEDED attempt of `job_id`.
    pub(crate) fn map_output_dir(&self, job_id: &str, attempt_id: &str) -> Result<PathBuf> {
        let state = self.state.lock();
        let entry =
            state.attempts.get(attempt_id).ok_or_else(|| WorkerError::UnknownAttempt(attempt_id.to_string()))?;
        if entry.job_id != job_id {
            return Err(WorkerError::UnknownAttempt(format!("{attempt_id} of job {job_id}")));
        }
        match entry.phase {
            Phase::Finished { state: AttemptState::AttemptSucceeded, .. } => Ok(entry.dir.join("output")),
            Phase::Finished { state, .. } => Err(WorkerError::NoMapOutput {
                attempt_id: attempt_id.to_string(),
                reason: format!("the attempt ended {}", state.as_str_name()),
            }),
            Phase::Running { .. } => Err(WorkerError::NoMapOutput {
                attempt_id: attempt_id.to_string(),
                reason: "the attempt is still running".into(),
            }),
        }
    }

    /// The `stream` ("stdout" or "stderr") log file of an attempt: in its
    /// directory while its job runs, in the retained logs afterwards.
    pub(crate) fn log_path(&self, attempt_id: &str, stream: &str) -> Result<PathBuf> {
        check_id("attempt_id", attempt_id)?;
        let name = match stream {
            "" | "stderr" => "stderr",
            "stdout" => "stdout",
            other => {
                return Err(WorkerError::InvalidRequest(format!("log stream '{other}' is not one of stderr, stdout")));
            }
        };
        if let Some(e) = self.state.lock().attempts.get(attempt_id) {
            return Ok(e.dir.join(name));
        }
        logs::retained_log(&self.settings.local_dirs, attempt_id, name)
            .ok_or_else(|| WorkerError::UnknownAttempt(attempt_id.to_string()))
    }
}

/// Ids become path components: refuse anything that could escape the
/// attempt's directory.
pub(crate) fn check_id(field: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(WorkerError::InvalidRequest(format!("{field}: '{id}' is not a valid id (letters, digits, '_', '-', '.')")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_the_attempt_directory() {
        check_id("attempt_id", "attempt_1700000000000_0001_m_000003_0").unwrap();
        for bad in ["", "..", ".hidden", "a/b", "a b", "x\0"] {
            let e = check_id("attempt_id", bad).unwrap_err().to_string();
            assert!(e.starts_with("attempt_id: "), "{e}");
        }
    }
}
