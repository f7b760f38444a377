//! Carrying out the scheduler's actions, each on its own task so a slow
//! worker or a slow DFS never holds the scheduler: results come back as
//! scheduler events (launched / launch failed, task committed, job
//! committed / aborted).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tusk_proto::compute::LaunchTaskRequest;

use super::Jobtracker;
use crate::error::{JobtrackerError, Result};
use crate::sched::{Action, AttemptState, Finished, Launch};

/// Tries of a job commit or abort while the DFS is unavailable (~2 min).
const JOB_OUTPUT_TRIES: u32 = 16;
/// Tries of a task commit before the attempt counts as failed.
const TASK_COMMIT_TRIES: u32 = 3;

/// Runs `op` until it succeeds, fails for good, or `tries` are spent;
/// waits 0.5 s, 1 s, 2 s ... (at most 10 s) between tries of retryable errors.
async fn retrying<F, Fut>(what: &str, tries: u32, mut op: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut delay = Duration::from_millis(500);
    let mut n = 1;
    loop {
        match op().await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() && n < tries => {
                tracing::warn!("{what}: {e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                n += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Jobtracker {
    pub(super) fn dispatch(self: &Arc<Self>, actions: Vec<Action>) {
        for action in actions {
            let jt = self.clone();
            match action {
                Action::Launch(l) => {
                    tokio::spawn(async move { jt.launch(l).await });
                }
                Action::Kill { worker_addr, attempt_id, reason } => {
                    tokio::spawn(async move {
                        // A kill that does not get through is sent again with
                        // the worker's next heartbeat answer.
                        if let Err(e) = jt.link.kill(&worker_addr, &attempt_id, &reason).await {
                            tracing::warn!("{attempt_id}: kill: {e}");
                        }
                    });
                }
                Action::CommitTask { job_id, task_id, attempt_id } => {
                    tokio::spawn(async move { jt.commit_task(&job_id, &task_id, &attempt_id).await });
                }
                Action::Discard { job_id, attempt_id } => {
                    tokio::spawn(async move {
                        let Some(engine) = jt.engine_of(&job_id) else { return };
                        if let Err(e) = engine.discard_attempt(&job_id, &attempt_id).await {
                            tracing::warn!("{attempt_id}: discarding its output: {e}");
                        }
                    });
                }
                Action::CommitJob { job_id } => {
                    tokio::spawn(async move { jt.commit_job(&job_id).await });
                }
                Action::AbortJob { job_id } => {
                    tokio::spawn(async move { jt.abort_job(&job_id).await });
                }
                Action::JobFinished { job_id } => {
                    for engine in &self.engines {
                        engine.detach(&job_id);
                    }
                    self.finished.notify_waiters();
                    self.persist.notify_one();
                }
                Action::ForgetWorker { addr } => self.link.forget(&addr),
            }
        }
    }

    async fn launch(self: Arc<Self>, l: Launch) {
        let plan = self
            .engine_of(&l.job_id)
            .ok_or_else(|| JobtrackerError::Internal(format!("{}: no engine", l.job_id)))
            .and_then(|e| e.launch(&l));
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                let f = Finished {
                    worker_id: l.worker_id.clone(),
                    attempt_id: l.attempt_id.clone(),
                    state: AttemptState::Failed,
                    diagnostics: format!("cannot build the task: {e}"),
                    stderr_tail: String::new(),
                    counters: Vec::new(),
                    result_json: String::new(),
                };
                self.attempt_finished(f);
                return;
            }
        };
        let req = LaunchTaskRequest {
            job_id: l.job_id.clone(),
            task_id: l.task_id.clone(),
            attempt_id: l.attempt_id.clone(),
            engine: plan.engine,
            spec_json: plan.spec_json,
            memory_bytes: plan.memory_bytes,
            progress_timeout_ms: plan.progress_timeout_ms,
            env: plan.env,
        };
        match self.link.launch(&l.worker_addr, req).await {
            Ok(()) => self.with_sched(|s, now| s.attempt_launched(&l.attempt_id, now)),
            Err(e) => self.with_sched(|s, now| s.launch_failed(&l.attempt_id, &e, now)),
        }
    }

    async fn commit_task(self: Arc<Self>, job_id: &str, task_id: &str, attempt_id: &str) {
        let result = match self.engine_of(job_id) {
            Some(engine) => {
                retrying(attempt_id, TASK_COMMIT_TRIES, || engine.commit_task(job_id, task_id, attempt_id)).await
            }
            None => Err(JobtrackerError::Internal(format!("{job_id}: no engine"))),
        };
        if let Err(e) = &result {
            tracing::warn!("{attempt_id}: task commit failed: {e}");
        }
        self.with_sched(|s, now| s.task_committed(attempt_id, result.map_err(|e| e.to_string()), now));
    }

    async fn commit_job(self: Arc<Self>, job_id: &str) {
        // COMMITTING must be on disk before the output moves: a restart then
        // finishes the commit instead of deleting a half-moved output. When
        // it cannot be saved, nothing moves: the job fails and its output
        // is deleted (a restart would otherwise delete the output of a job
        // already reported SUCCEEDED).
        let result = match (self.persist_now(job_id).await, self.engine_of(job_id)) {
            (Err(e), _) => Err(JobtrackerError::Internal(format!("saving the COMMITTING state: {e}"))),
            (Ok(()), Some(engine)) => retrying(job_id, JOB_OUTPUT_TRIES, || engine.commit_job(job_id)).await,
            (Ok(()), None) => Err(JobtrackerError::Internal(format!("{job_id}: no engine"))),
        };
        if let Err(e) = &result {
            tracing::error!("{job_id}: job commit failed: {e}");
        }
        self.with_sched(|s, now| s.job_committed(job_id, result.map_err(|e| e.to_string()), now));
    }

    async fn abort_job(self: Arc<Self>, job_id: &str) {
        let result = match self.engine_of(job_id) {
            Some(engine) => retrying(job_id, JOB_OUTPUT_TRIES, || engine.abort_job(job_id)).await,
            None => Err(JobtrackerError::Internal(format!("{job_id}: no engine"))),
        };
        if let Err(e) = &result {
            tracing::error!("{job_id}: deleting the output: {e}");
        }
        self.with_sched(|s, now| s.job_aborted(job_id, result.err().map(|e| e.to_string()), now));
    }
}
