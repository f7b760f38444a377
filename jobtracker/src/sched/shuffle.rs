//! Where a downstream attempt finds its upstream stages' outputs, and what
//! happens when it cannot fetch one (fetch failures re-run the upstream task
//! named, whichever stage it belongs to).

use super::{AttemptState, Scheduler, Urgency};
use crate::error::{JobtrackerError, Result};

/// The outputs a downstream attempt may fetch.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UpstreamOutputs {
    /// Tasks in the upstream stage.
    pub(crate) total: u32,
    /// (task index, successful attempt, address of its worker), for every
    /// upstream task done so far.
    pub(crate) outputs: Vec<(u32, String, String)>,
    /// The asking attempt should stop.
    pub(crate) abort: bool,
}

impl Scheduler {
    /// Outputs of stage `upstream` (by default the first stage it reads)
    /// that attempt `attempt_id` of job `job_id` reads. Asking for a stage
    /// its own stage does not read is an error.
    pub(crate) fn upstream_outputs(
        &self,
        job_id: &str,
        attempt_id: &str,
        upstream: Option<usize>,
    ) -> Result<UpstreamOutputs> {
        let seq = self.require_job(job_id)?;
        let aborted = UpstreamOutputs { abort: true, ..Default::default() };
        let Some(r) = self.locate(attempt_id).filter(|r| r.seq == seq) else { return Ok(aborted) };
        let (Some(job), Some(a)) = (self.jobs.get(&seq), self.attempt(r)) else { return Ok(aborted) };
        if !job.accepting() || !a.state.is_active() || a.kill_reason.is_some() {
            return Ok(aborted);
        }
        let reads = &job.stages[r.stage].upstreams;
        let up = match upstream {
            None => *reads.first().ok_or_else(|| {
                JobtrackerError::invalid(format!("{attempt_id}: its stage reads no other stage's output"))
            })?,
            Some(u) if reads.contains(&u) => u,
            Some(u) => {
                return Err(JobtrackerError::invalid(format!(
                    "{attempt_id}: its stage ({}) does not read stage {u} (it reads {reads:?})",
                    job.stages[r.stage].name
                )));
            }
        };
        let tasks = &job.stages[up].tasks;
        let outputs = tasks
            .iter()
            .filter_map(|t| {
                let a = &t.attempts[t.success?];
                Some((t.index, a.id.clone(), a.worker_addr.clone()))
            })
            .collect();
        Ok(UpstreamOutputs { total: tasks.len() as u32, outputs, abort: false })
    }

    /// A downstream attempt could not fetch `map_attempt`'s output. After
    /// `max_fetch_failures` reports (at once when its worker is lost) that
    /// attempt is declared FAILED and its task runs again.
    pub(crate) fn fetch_failure(
        &mut self,
        job_id: &str,
        reporter: &str,
        map_attempt: &str,
        reason: &str,
        now: i64,
    ) -> Result<()> {
        let seq = self.require_job(job_id)?;
        if !self.jobs.get(&seq).is_some_and(|j| j.accepting()) {
            return Ok(());
        }
        let Some(r) = self.locate(map_attempt).filter(|r| r.seq == seq) else {
            return Err(JobtrackerError::invalid(format!("{map_attempt}: not an attempt of {job_id}")));
        };
        let max = self.cfg.max_fetch_failures;
        let Some(job) = self.jobs.get(&seq) else { return Ok(()) };
        let task = job.task(r.stage, r.task);
        if !job.accepting() || task.success != Some(r.attempt) {
            return Ok(());
        }
        let worker = task.attempts[r.attempt].worker_id.clone();
        let worker_gone = !self.workers.is_live(&worker);
        let Some(a) = self.attempt_mut(r) else { return Ok(()) };
        a.fetch_failures += 1;
        let n = a.fetch_failures;
        tracing::warn!("{map_attempt}: fetch failure {n} reported by {reporter}: {reason}");
        self.mark(seq, Urgency::Soon, now);
        if n < max && !worker_gone {
            return Ok(());
        }
        let diag = if worker_gone {
            format!("output lost: worker {worker} is gone (reported by {reporter}: {reason})")
        } else {
            format!("too many fetch failures ({n}); last reported by {reporter}: {reason}")
        };
        let Some(job) = self.jobs.get_mut(&seq) else { return Ok(()) };
        let stage = &mut job.stages[r.stage];
        stage.stats.failed += 1;
        let max_attempts = stage.max_attempts;
        let task = &mut stage.tasks[r.task as usize];
        task.success = None;
        task.failures += 1;
        task.failed_on.insert(worker);
        let give_up = task.failures >= max_attempts;
        let a = &mut task.attempts[r.attempt];
        a.state = AttemptState::Failed;
        a.diagnostics = diag;
        job.refresh_task(r.stage, r.task);
        if give_up {
            self.fail_task(r, now);
        }
        Ok(())
    }
}
