//! Life of attempts, tasks and jobs: launched, finished (succeeded, failed,
//! killed), committed; a job that is done commits, a job with a task failed
//! too often (or killed) aborts; an ending job first waits for its attempts
//! to die so nothing writes into its output afterwards.

use super::{Action, AttemptRef, AttemptState, DRAIN_TIMEOUT_MS, Ending, JobState, Scheduler, TaskState, Urgency};
use crate::error::{JobtrackerError, Refusal, Result};

/// How an attempt ended, as its worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finished {
    pub(crate) worker_id: String,
    pub(crate) attempt_id: String,
    pub(crate) state: AttemptState,
    pub(crate) diagnostics: String,
    pub(crate) stderr_tail: String,
    pub(crate) counters: Vec<(String, String, i64)>,
    pub(crate) result_json: String,
}

/// The answer to a kill request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KillOutcome {
    /// False when the job was already over (or committing).
    pub(crate) killed: bool,
    pub(crate) state: JobState,
}

impl Scheduler {
    /// The worker accepted the launch: the attempt runs.
    pub(crate) fn attempt_launched(&mut self, attempt_id: &str, now: i64) {
        if let Some(r) = self.locate(attempt_id) {
            self.attempt_launched_at(r, now);
        }
    }

    pub(super) fn attempt_launched_at(&mut self, r: AttemptRef, now: i64) {
        let Some(job) = self.jobs.get_mut(&r.seq) else { return };
        let a = &mut job.stages[r.stage].tasks[r.task as usize].attempts[r.attempt];
        if a.state != AttemptState::Starting {
            return;
        }
        a.state = AttemptState::Running;
        if job.first_running_ms == 0 {
            job.first_running_ms = now;
        }
        self.mark(r.seq, Urgency::Soon, now);
    }

    /// The worker could not be asked to run the attempt: it is KILLED (no
    /// failure counted), its task goes back to the queue, and the worker
    /// takes no new attempts until it heartbeats again.
    pub(crate) fn launch_failed(&mut self, attempt_id: &str, error: &str, now: i64) {
        let Some(r) = self.locate(attempt_id) else { return };
        let Some(a) = self.attempt(r) else { return };
        if !a.state.is_active() {
            return;
        }
        let wid = a.worker_id.clone();
        if let Some(w) = self.workers.get_mut(&wid) {
            w.suspect = true;
        }
        tracing::warn!("{attempt_id}: launch on worker {wid} failed: {error}");
        self.end_attempt(r, AttemptState::Killed, &format!("launch on worker {wid} failed: {error}"), "", now);
    }

    /// A worker reports an attempt over. Reports about unknown attempts,
    /// attempts of another worker, or attempts already over are ignored.
    pub(crate) fn attempt_finished(&mut self, f: Finished, now: i64) {
        let Some(r) = self.locate(&f.attempt_id) else { return };
        let Some(a) = self.attempt_mut(r) else { return };
        if a.worker_id != f.worker_id || !a.state.is_active() {
            return;
        }
        if a.state == AttemptState::Starting {
            // It ran (and ended) before the launch answer came back.
            self.attempt_launched_at(r, now);
        }
        let Some(a) = self.attempt_mut(r) else { return };
        if !f.counters.is_empty() {
            a.counters = f.counters;
        }
        a.stderr_tail = f.stderr_tail;
        let kill_reason = a.kill_reason.clone();
        let Some(job) = self.jobs.get(&r.seq) else { return };
        let task = job.task(r.stage, r.task);
        let wanted = job.accepting() && task.success.is_none() && task.committing.is_none();
        match f.state {
            AttemptState::Succeeded if wanted => {
                let commits = job.stages[r.stage].commits_output;
                if let Some(a) = self.attempt_mut(r) {
                    a.result_json = f.result_json;
                    a.progress = 1.0;
                }
                if commits {
                    self.start_task_commit(r, now);
                } else {
                    self.mark_succeeded(r, now);
                }
            }
            AttemptState::Succeeded => {
                let why =
                    kill_reason.unwrap_or_else(|| "discarded: another attempt of the task succeeded first".into());
                self.end_attempt(r, AttemptState::Killed, &why, "", now);
            }
            AttemptState::Failed if kill_reason.is_none() => {
                self.end_attempt(r, AttemptState::Failed, &f.diagnostics, "", now);
            }
            _ => {
                let why = kill_reason.unwrap_or(f.diagnostics);
                self.end_attempt(r, AttemptState::Killed, &why, "", now);
            }
        }
    }

    fn start_task_commit(&mut self, r: AttemptRef, now: i64) {
        let Some(job) = self.jobs.get_mut(&r.seq) else { return };
        let job_id = job.id.clone();
        let task = job.task_mut(r.stage, r.task);
        let task_id = task.id.clone();
        task.committing = Some(r.attempt);
        let a = &mut task.attempts[r.attempt];
        a.state = AttemptState::Committing;
        a.status = "committing".to_string();
        let (attempt_id, wid) = (a.id.clone(), a.worker_id.clone());
        job.rt.active = job.rt.active.saturating_sub(1);
        job.refresh_task(r.stage, r.task);
        if let Some(w) = self.workers.get_mut(&wid) {
            w.running.remove(&attempt_id);
        }
        self.outbox.push(Action::CommitTask { job_id, task_id, attempt_id });
        self.mark(r.seq, Urgency::Soon, now);
    }

    /// The output of a committing attempt was moved into place (or not).
    pub(crate) fn task_committed(&mut self, attempt_id: &str, result: std::result::Result<(), String>, now: i64) {
        let Some(r) = self.locate(attempt_id) else { return };
        let Some(a) = self.attempt(r) else { return };
        if a.state != AttemptState::Committing {
            return;
        }
        match result {
            Ok(()) => self.mark_succeeded(r, now),
            Err(e) => {
                if let Some(job) = self.jobs.get_mut(&r.seq) {
                    job.task_mut(r.stage, r.task).committing = None;
                }
                self.end_attempt(r, AttemptState::Failed, &format!("task commit failed: {e}"), "", now);
            }
        }
    }

    /// The attempt's output counts: the task is done, its other attempts die.
    fn mark_succeeded(&mut self, r: AttemptRef, now: i64) {
        let Some(job) = self.jobs.get_mut(&r.seq) else { return };
        let task = job.task_mut(r.stage, r.task);
        task.committing = None;
        task.success = Some(r.attempt);
        let a = &mut task.attempts[r.attempt];
        let was_active = a.state.is_active();
        a.state = AttemptState::Succeeded;
        a.finish_ms = now;
        a.progress = 1.0;
        let (attempt_id, wid, took) = (a.id.clone(), a.worker_id.clone(), now - a.start_ms);
        let others: Vec<usize> = task.active().map(|(i, _)| i).filter(|i| *i != r.attempt).collect();
        let stats = &mut job.stages[r.stage].stats;
        stats.done_ms_sum += took.max(0);
        stats.done_count += 1;
        if was_active {
            job.rt.active = job.rt.active.saturating_sub(1);
        }
        job.refresh_task(r.stage, r.task);
        if job.rt.done[r.stage] as usize == job.stages[r.stage].tasks.len() {
            job.rt.complete_at[r.stage] = now;
        }
        let all_done = job.accepting() && job.all_done();
        if was_active && let Some(w) = self.workers.get_mut(&wid) {
            w.running.remove(&attempt_id);
        }
        for ai in others {
            self.kill_attempt(
                AttemptRef { attempt: ai, ..r },
                &format!("another attempt ({attempt_id}) of the task succeeded"),
            );
        }
        self.mark(r.seq, Urgency::Soon, now);
        if all_done {
            self.begin_ending(r.seq, Ending::Commit, "", now);
        }
        self.check_ending(r.seq, now);
    }

    /// Asks the attempt's worker to kill it; it stays active until the worker
    /// reports it over (or is lost).
    pub(super) fn kill_attempt(&mut self, r: AttemptRef, reason: &str) {
        let Some(a) = self.attempt_mut(r) else { return };
        if !a.state.is_active() || a.kill_reason.is_some() {
            return;
        }
        a.kill_reason = Some(reason.to_string());
        let action =
            Action::Kill { worker_addr: a.worker_addr.clone(), attempt_id: a.id.clone(), reason: reason.to_string() };
        self.outbox.push(action);
    }

    /// Ends an attempt that held a slot (or was committing): frees the slot,
    /// counts it, re-queues or fails its task, and moves an ending job on.
    pub(super) fn end_attempt(&mut self, r: AttemptRef, state: AttemptState, diag: &str, tail: &str, now: i64) {
        let Some(job) = self.jobs.get_mut(&r.seq) else { return };
        let job_id = job.id.clone();
        let aborting = matches!(job.ending, Some(Ending::Fail | Ending::Kill));
        let stage = &mut job.stages[r.stage];
        let (commits, max_attempts) = (stage.commits_output, stage.max_attempts);
        match state {
            AttemptState::Failed => stage.stats.failed += 1,
            AttemptState::Killed => stage.stats.killed += 1,
            _ => {}
        }
        let task = &mut stage.tasks[r.task as usize];
        let a = &mut task.attempts[r.attempt];
        let was_active = a.state.is_active();
        a.state = state;
        a.finish_ms = now;
        if !diag.is_empty() {
            a.diagnostics = diag.to_string();
        }
        if !tail.is_empty() {
            a.stderr_tail = tail.to_string();
        }
        let (attempt_id, wid) = (a.id.clone(), a.worker_id.clone());
        if state == AttemptState::Failed {
            task.failures += 1;
            task.failed_on.insert(wid.clone());
        }
        let give_up = state == AttemptState::Failed && task.failures >= max_attempts && task.success.is_none();
        if was_active {
            job.rt.active = job.rt.active.saturating_sub(1);
        }
        job.refresh_task(r.stage, r.task);
        if was_active && let Some(w) = self.workers.get_mut(&wid) {
            w.running.remove(&attempt_id);
        }
        if commits && !aborting {
            self.outbox.push(Action::Discard { job_id, attempt_id });
        }
        self.mark(r.seq, Urgency::Soon, now);
        if give_up {
            self.fail_task(r, now);
        }
        self.check_ending(r.seq, now);
    }

    /// A task failed `max_attempts` times: the job fails, naming it.
    pub(super) fn fail_task(&mut self, r: AttemptRef, now: i64) {
        let Some(job) = self.jobs.get_mut(&r.seq) else { return };
        if !job.accepting() {
            return;
        }
        let task = job.task_mut(r.stage, r.task);
        task.state = TaskState::Failed;
        let a = &task.attempts[r.attempt];
        let mut diag = format!(
            "task {} failed {} times; last attempt {} on worker {}: {}",
            task.id, task.failures, a.id, a.worker_host, a.diagnostics
        );
        if !a.stderr_tail.trim().is_empty() {
            diag.push('\n');
            diag.push_str(a.stderr_tail.trim_end());
        }
        self.begin_ending(r.seq, Ending::Fail, &diag, now);
    }

    /// A user kills the job.
    pub(crate) fn kill_job(&mut self, job_id: &str, user: &str, now: i64) -> Result<KillOutcome> {
        let seq = *self.ids.get(job_id).ok_or_else(|| JobtrackerError::no_such_job(job_id))?;
        let job = self.jobs.get(&seq).ok_or_else(|| JobtrackerError::no_such_job(job_id))?;
        if job.state.is_finished() || job.state == JobState::Committing {
            return Ok(KillOutcome { killed: false, state: job.state });
        }
        if job.ending.is_none() {
            let diag = if user.is_empty() { "killed".to_string() } else { format!("killed by {user}") };
            self.begin_ending(seq, Ending::Kill, &diag, now);
        }
        Ok(KillOutcome { killed: true, state: self.jobs.get(&seq).map(|j| j.state).unwrap_or(JobState::Killed) })
    }

    /// The job stops launching; its attempts are killed; once they are gone
    /// (or after [`DRAIN_TIMEOUT_MS`]) the output is committed or aborted.
    pub(super) fn begin_ending(&mut self, seq: u32, ending: Ending, diag: &str, now: i64) {
        let Some(job) = self.jobs.get_mut(&seq) else { return };
        job.ending = Some(ending);
        if ending == Ending::Commit {
            job.state = JobState::Committing;
        }
        if !diag.is_empty() && job.diagnostics.is_empty() {
            job.diagnostics = diag.to_string();
        }
        job.stop_accepting();
        job.rt.end_sent = false;
        job.rt.end_deadline = now + DRAIN_TIMEOUT_MS;
        let reason = match ending {
            Ending::Commit => "job is done",
            Ending::Fail => "job failed",
            Ending::Kill => "job killed",
        };
        let mut active = Vec::new();
        for (si, s) in job.stages.iter().enumerate() {
            for t in &s.tasks {
                active.extend(t.active().map(|(ai, _)| AttemptRef { seq, stage: si, task: t.index, attempt: ai }));
            }
        }
        for r in active {
            self.kill_attempt(r, reason);
        }
        self.mark(seq, Urgency::Now, now);
        self.check_ending(seq, now);
    }

    /// Commits or aborts an ending job once nothing runs or commits any more.
    pub(super) fn check_ending(&mut self, seq: u32, now: i64) {
        let Some(job) = self.jobs.get(&seq) else { return };
        let Some(ending) = job.ending else { return };
        if job.rt.end_sent {
            return;
        }
        let drained = job.rt.running.is_empty() && job.rt.active == 0;
        if now < job.rt.end_deadline && (!drained || now < job.rt.end_not_before) {
            return;
        }
        if !drained {
            let mut stuck = Vec::new();
            for (si, s) in job.stages.iter().enumerate() {
                for t in &s.tasks {
                    stuck.extend(t.active().map(|(ai, _)| AttemptRef { seq, stage: si, task: t.index, attempt: ai }));
                }
            }
            tracing::warn!("{}: {} attempts did not stop in time", job.id, stuck.len());
            for r in stuck {
                self.end_attempt(r, AttemptState::Killed, "did not stop in time", "", now);
            }
        }
        let Some(job) = self.jobs.get_mut(&seq) else { return };
        if job.rt.end_sent {
            return;
        }
        job.rt.end_sent = true;
        let job_id = job.id.clone();
        self.outbox.push(match ending {
            Ending::Commit => Action::CommitJob { job_id },
            Ending::Fail | Ending::Kill => Action::AbortJob { job_id },
        });
    }

    /// The output was committed (`Ok`): SUCCEEDED; or the commit failed:
    /// the output is deleted and the job FAILED.
    pub(crate) fn job_committed(&mut self, job_id: &str, result: std::result::Result<(), String>, now: i64) {
        let Some(&seq) = self.ids.get(job_id) else { return };
        let Some(job) = self.jobs.get_mut(&seq) else { return };
        if job.ending != Some(Ending::Commit) {
            return;
        }
        match result {
            Ok(()) => self.finish_job(seq, JobState::Succeeded, now),
            Err(e) => {
                job.ending = Some(Ending::Fail);
                job.diagnostics = format!("job commit failed: {e}");
                job.rt.end_sent = false;
                self.check_ending(seq, now);
                self.mark(seq, Urgency::Now, now);
            }
        }
    }

    /// The output of a failed or killed job was deleted (`problem`: it could not be).
    pub(crate) fn job_aborted(&mut self, job_id: &str, problem: Option<String>, now: i64) {
        let Some(&seq) = self.ids.get(job_id) else { return };
        let Some(job) = self.jobs.get_mut(&seq) else { return };
        let state = match job.ending {
            Some(Ending::Fail) => JobState::Failed,
            Some(Ending::Kill) => JobState::Killed,
            _ => return,
        };
        if let Some(p) = problem {
            job.diagnostics.push_str(&format!("\n(could not delete the output: {p})"));
        }
        self.finish_job(seq, state, now);
    }

    fn finish_job(&mut self, seq: u32, state: JobState, now: i64) {
        let Some(job) = self.jobs.get_mut(&seq) else { return };
        job.state = state;
        job.ending = None;
        job.finish_ms = now;
        let mut ids = Vec::new();
        for s in &mut job.stages {
            for t in &mut s.tasks {
                if matches!(t.state, TaskState::Pending | TaskState::Running) {
                    t.state = TaskState::Killed;
                }
                for a in &mut t.attempts {
                    ids.push(a.id.clone());
                    if !a.state.is_finished() {
                        a.state = AttemptState::Killed;
                        a.finish_ms = now;
                    }
                }
            }
        }
        let workers = std::mem::take(&mut job.rt.workers);
        let job_id = job.id.clone();
        job.stop_accepting();
        job.rt.running.clear();
        job.rt.active = 0;
        job.rt.skipped_since = None;
        for id in ids {
            self.attempts.remove(&id);
        }
        for w in workers {
            if let Some(w) = self.workers.get_mut(&w).filter(|w| w.live) {
                w.cleanup.insert(job_id.clone());
            }
        }
        tracing::info!("{job_id}: {state:?}");
        self.outbox.push(Action::JobFinished { job_id });
        self.mark(seq, Urgency::Now, now);
        self.prune_history();
    }

    /// Time passes: lost workers, ending jobs past their drain deadline.
    pub(crate) fn tick(&mut self, now: i64) {
        self.expire_workers(now);
        let ending: Vec<u32> =
            self.jobs.values().filter(|j| j.ending.is_some() && !j.rt.end_sent).map(|j| j.seq).collect();
        for seq in ending {
            self.check_ending(seq, now);
        }
    }

    /// Refuses a job id the scheduler does not know.
    pub(crate) fn require_job(&self, job_id: &str) -> Result<u32> {
        self.ids
            .get(job_id)
            .copied()
            .ok_or_else(|| JobtrackerError::refused(Refusal::NotFound, format!("{job_id}: no such job")))
    }
}
