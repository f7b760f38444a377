//! The jobtracker's core: the scheduler behind one lock, the engines, the
//! store and the link to workers. The gRPC services call the entry points
//! here; each takes the lock briefly, then carries out the scheduler's
//! actions (launches, kills, commits) outside it, on their own tasks.

mod actions;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tusk_common::now_ms;
use tusk_proto::compute::{ClusterStatusResponse, JobReport};

use crate::config::JobtrackerConfig;
use crate::engine::Engine;
use crate::error::{JobtrackerError, Refusal, Result};
use crate::ids;
use crate::launcher::WorkerLink;
use crate::report;
use crate::sched::{
    AttemptProgress, Finished, HeartbeatReply, Job, KillOutcome, SchedConfig, Scheduler, UpstreamOutputs, WorkerReg,
};
use crate::store::{Meta, Store};

/// How long KillJob waits for the job's attempts to stop and its output to go.
const KILL_WAIT: Duration = Duration::from_secs(40);

pub(crate) struct Jobtracker {
    cfg: JobtrackerConfig,
    sched: Mutex<Scheduler>,
    engines: Vec<Arc<dyn Engine>>,
    store: Store,
    link: Arc<dyn WorkerLink>,
    /// Start time of the first run (in every id).
    start_ms: i64,
    /// Number of the next job.
    next_seq: Mutex<u32>,
    /// Wakes the scheduling loop.
    pub(crate) kick: Notify,
    /// Wakes the persister.
    pub(crate) persist: Notify,
    /// Wakes the rack refresher.
    pub(crate) racks_wanted: Arc<Notify>,
    /// Signalled whenever a job reaches a final state.
    finished: Notify,
}

/// The scheduling knobs of a configuration.
pub(crate) fn sched_config(cfg: &JobtrackerConfig) -> SchedConfig {
    SchedConfig {
        locality_wait_ms: cfg.locality_wait_ms as i64,
        worker_expiry_ms: cfg.worker_expiry_ms as i64,
        max_fetch_failures: cfg.max_fetch_failures,
        retained_jobs: cfg.retained_jobs,
        restart_grace_ms: (3 * cfg.heartbeat_interval_ms).min(cfg.worker_expiry_ms) as i64,
    }
}

impl Jobtracker {
    pub(crate) fn new(
        cfg: JobtrackerConfig,
        store: Store,
        meta: Meta,
        engines: Vec<Arc<dyn Engine>>,
        link: Arc<dyn WorkerLink>,
    ) -> Jobtracker {
        Jobtracker {
            sched: Mutex::new(Scheduler::new(sched_config(&cfg))),
            cfg,
            engines,
            store,
            link,
            start_ms: meta.start_ms,
            next_seq: Mutex::new(1),
            kick: Notify::new(),
            persist: Notify::new(),
            racks_wanted: Arc::new(Notify::new()),
            finished: Notify::new(),
        }
    }

    /// Runs `f` on the scheduler, then carries out what it asked for and
    /// wakes the scheduling loop.
    fn with_sched<R>(self: &Arc<Self>, f: impl FnOnce(&mut Scheduler, i64) -> R) -> R {
        let r = self.with_sched_quiet(f);
        self.kick.notify_one();
        r
    }

    fn with_sched_quiet<R>(self: &Arc<Self>, f: impl FnOnce(&mut Scheduler, i64) -> R) -> R {
        let now = now_ms();
        let (r, actions) = {
            let mut s = self.sched.lock();
            let r = f(&mut s, now);
            (r, s.take_actions())
        };
        self.dispatch(actions);
        r
    }

    fn engine(&self, name: &str) -> Result<Arc<dyn Engine>> {
        self.engines.iter().find(|e| e.name() == name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.engines.iter().map(|e| e.name()).collect();
            JobtrackerError::invalid(format!("unknown engine {name:?}; this jobtracker runs: {}", known.join(", ")))
        })
    }

    fn engine_of(&self, job_id: &str) -> Option<Arc<dyn Engine>> {
        let name = self.sched.lock().job(job_id).map(|j| j.engine.clone())?;
        self.engine(&name).ok()
    }

    /// Takes back the jobs found on disk (see [`Scheduler::load_job`]).
    pub(crate) fn load(self: &Arc<Self>, jobs: Vec<Job>) {
        let max_seq = jobs.iter().map(|j| j.seq).max().unwrap_or(0);
        {
            let mut next = self.next_seq.lock();
            *next = (*next).max(max_seq + 1);
        }
        for job in &jobs {
            if job.state.is_finished() {
                continue;
            }
            let attached = self.engine(&job.engine).and_then(|e| e.attach(&job.id, &job.user, &job.doc));
            if let Err(e) = attached {
                tracing::error!("{}: cannot finish its output work after the restart: {e}", job.id);
            }
        }
        self.with_sched(|s, now| {
            for job in jobs {
                let id = job.id.clone();
                if let Err(e) = s.load_job(job, now) {
                    tracing::error!("{id}: stored job skipped: {e}");
                }
            }
            s.prune_history();
        });
    }

    /// SubmitJob: plans the job with its engine (a bad job is refused
    /// here, with the engine's message), gives it an id, persists it and
    /// hands it to the scheduler, which launches its first tasks at once.
    pub(crate) async fn submit(self: &Arc<Self>, user: &str, engine: &str, spec_json: &str) -> Result<String> {
        let submit_ms = now_ms();
        if user.trim().is_empty() {
            return Err(JobtrackerError::invalid("SubmitJob: no user given"));
        }
        let engine = self.engine(engine)?;
        let draft = engine.plan(user, spec_json).await?;
        let seq = {
            let mut next = self.next_seq.lock();
            *next += 1;
            *next - 1
        };
        let id = ids::job_id(self.start_ms, seq);
        let job = Scheduler::new_job(id.clone(), seq, user, engine.name(), draft, submit_ms, now_ms());
        engine.attach(&id, user, &job.doc)?;
        let saved = async {
            let bytes =
                serde_json::to_vec(&job).map_err(|e| JobtrackerError::Internal(format!("{id}: encoding: {e}")))?;
            self.store.write_job(&id, 0, bytes).await
        };
        if let Err(e) = saved.await {
            if let Err(a) = engine.abort_job(&id).await {
                tracing::warn!("{id}: deleting the output of a job that could not be saved: {a}");
            }
            engine.detach(&id);
            return Err(e);
        }
        tracing::info!("{id}: submitted by {user} ({}, {} stages)", job.name, job.stages.len());
        self.with_sched(|s, now| s.add_job(job, now))?;
        Ok(id)
    }

    pub(crate) fn job_report(&self, job_id: &str, with_tasks: bool) -> Result<JobReport> {
        let s = self.sched.lock();
        let job = s.job(job_id).ok_or_else(|| JobtrackerError::no_such_job(job_id))?;
        Ok(report::job_report(job, with_tasks))
    }

    /// The job's report once it has finished, or after `wait`.
    pub(crate) async fn job_report_when_finished(&self, job_id: &str, with_tasks: bool, wait: Duration) -> Result<JobReport> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let finished = self.sched.lock().job(job_id).map(|j| j.state.is_finished());
            match finished {
                None => return Err(JobtrackerError::no_such_job(job_id)),
                Some(true) => return self.job_report(job_id, with_tasks),
                Some(false) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return self.job_report(job_id, with_tasks);
                    }
                }
            }
        }
    }

    pub(crate) fn list_jobs(&self, running_only: bool) -> Vec<JobReport> {
        let s = self.sched.lock();
        s.jobs().filter(|j| !running_only || !j.state.is_finished()).map(|j| report::job_report(j, false)).collect()
    }

    /// KillJob: stops the job, then waits (bounded) until its attempts are
    /// gone and its output deleted, so the answer carries the final state.
    pub(crate) async fn kill_job(self: &Arc<Self>, job_id: &str, user: &str) -> Result<KillOutcome> {
        let out = self.with_sched(|s, now| s.kill_job(job_id, user, now))?;
        if !out.killed {
            return Ok(out);
        }
        let deadline = tokio::time::Instant::now() + KILL_WAIT;
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let state = self.sched.lock().job(job_id).map(|j| j.state);
            match state {
                Some(s) if s.is_finished() => return Ok(KillOutcome { killed: true, state: s }),
                None => return Err(JobtrackerError::no_such_job(job_id)),
                Some(s) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Ok(KillOutcome { killed: true, state: s });
                    }
                }
            }
        }
    }

    pub(crate) fn cluster_status(&self) -> ClusterStatusResponse {
        let s = self.sched.lock();
        let now = now_ms();
        ClusterStatusResponse {
            workers: s.workers().map(|w| report::worker_info(w, now)).collect(),
            running_jobs: s.jobs().filter(|j| !j.state.is_finished()).count() as u32,
        }
    }

    /// RegisterWorker: returns the heartbeat interval.
    pub(crate) fn register_worker(self: &Arc<Self>, protocol_version: u32, reg: WorkerReg) -> Result<u64> {
        if protocol_version != tusk_proto::PROTOCOL_VERSION {
            return Err(JobtrackerError::refused(
                Refusal::Incompatible,
                format!(
                    "worker {} speaks protocol version {protocol_version}, this jobtracker {}",
                    reg.id,
                    tusk_proto::PROTOCOL_VERSION
                ),
            ));
        }
        if reg.id.trim().is_empty() || reg.addr.trim().is_empty() {
            return Err(JobtrackerError::invalid("RegisterWorker: worker_id and addr are required"));
        }
        if reg.slots == 0 {
            return Err(JobtrackerError::invalid(format!("worker {}: slots = 0: must be at least 1", reg.id)));
        }
        tracing::info!("worker {} registered: {} ({} slots, datanode {:?})", reg.id, reg.addr, reg.slots, reg.datanode);
        let unplaced = self.with_sched(|s, now| {
            s.register_worker(reg, now);
            s.has_unplaced_worker()
        });
        if unplaced {
            self.racks_wanted.notify_one();
        }
        Ok(self.cfg.heartbeat_interval_ms)
    }

    pub(crate) fn heartbeat(self: &Arc<Self>, worker_id: &str, running: Vec<AttemptProgress>) -> HeartbeatReply {
        self.with_sched(|s, now| s.heartbeat(worker_id, running, now))
    }

    pub(crate) fn attempt_finished(self: &Arc<Self>, f: Finished) {
        self.with_sched(|s, now| s.attempt_finished(f, now));
    }

    pub(crate) fn upstream_outputs(
        &self,
        job_id: &str,
        attempt_id: &str,
        upstream: Option<usize>,
    ) -> Result<UpstreamOutputs> {
        self.sched.lock().upstream_outputs(job_id, attempt_id, upstream)
    }

    pub(crate) fn fetch_failure(
        self: &Arc<Self>,
        job_id: &str,
        reporter: &str,
        map_attempt: &str,
        reason: &str,
    ) -> Result<()> {
        self.with_sched(|s, now| s.fetch_failure(job_id, reporter, map_attempt, reason, now))
    }

    pub(crate) fn set_racks(self: &Arc<Self>, racks: HashMap<String, String>) {
        self.with_sched(|s, _| s.set_racks(racks));
    }

    /// One pass of the scheduling loop: time-based work, then slot assignment.
    pub(crate) fn schedule_pass(self: &Arc<Self>) {
        self.with_sched_quiet(|s, now| {
            s.tick(now);
            s.schedule(now);
        });
    }

    /// Writes the jobs whose changes are due (all changed jobs with
    /// `force`) and deletes the files of jobs dropped from the history.
    pub(crate) async fn flush(&self, force: bool) {
        let (snapshots, forgotten) = {
            let mut s = self.sched.lock();
            let due = s.take_due(now_ms(), force);
            let snaps: Vec<_> = due.into_iter().filter_map(|seq| s.snapshot(seq)).collect();
            (snaps, s.take_forgotten())
        };
        for snap in snapshots {
            let written = match snap.bytes {
                Ok(bytes) => self.store.write_job(&snap.job_id, snap.version, bytes).await,
                Err(e) => Err(JobtrackerError::Internal(format!("{}: encoding: {e}", snap.job_id))),
            };
            if let Err(e) = written {
                tracing::error!("{}: saving the job: {e}", snap.job_id);
                self.sched.lock().remark(snap.seq, now_ms());
            }
        }
        for id in forgotten {
            if let Err(e) = self.store.delete_job(&id).await {
                tracing::warn!("{id}: forgetting the job: {e}");
            }
        }
    }

    /// Writes one job at once (before its output is committed).
    async fn persist_now(&self, job_id: &str) -> Result<()> {
        let snap = {
            let mut s = self.sched.lock();
            let seq = s.require_job(job_id)?;
            s.snapshot(seq)
        };
        let Some(snap) = snap else { return Ok(()) };
        let bytes = snap.bytes.map_err(|e| JobtrackerError::Internal(format!("{job_id}: encoding: {e}")))?;
        self.store.write_job(job_id, snap.version, bytes).await
    }
}

#[cfg(test)]
mod tests;
