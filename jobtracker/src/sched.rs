//! The scheduling core: pure logic, no network, no clock of its own (every
//! call takes `now`, milliseconds since the epoch).
//!
//! Jobs are made of stages, stages of tasks, tasks of attempts; a task may
//! prefer locations (datanodes and racks holding its input). Events come in
//! as method calls (a job submitted, a worker registered or heartbeating, an
//! attempt finished, a commit done, a fetch failure reported, time passing);
//! what the jobtracker must do about them comes out as [`Action`]s ("launch
//! attempt A of task T on worker W", "kill attempt A", "commit the job"),
//! which the caller carries out without holding the scheduler.
//! Nothing here knows MapReduce: the engine describes stages with
//! [`StageDraft`]s.

mod assign;
mod lifecycle;
mod model;
mod pending;
mod shuffle;
mod speculate;
mod workers;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

pub(crate) use lifecycle::{Finished, KillOutcome};
pub(crate) use model::{
    Attempt, AttemptState, Ending, Job, JobState, Locality, Prefs, Stage, StageStats, Task, TaskState,
};
pub(crate) use shuffle::UpstreamOutputs;
pub(crate) use workers::{AttemptProgress, HeartbeatReply, Worker, WorkerReg};

use crate::error::{JobtrackerError, Result};
use crate::ids;
use model::Task as TaskModel;

/// An ending job waits at most this long for its attempts to die before its
/// output is committed or deleted.
pub(crate) const DRAIN_TIMEOUT_MS: i64 = 10_000;

/// Finished jobs whose attempts keep their results (`result_json`) in
/// memory; older ones drop them (their clients have read them).
pub(crate) const RESULTS_KEPT: usize = 32;

/// Scheduling knobs (from the jobtracker configuration).
#[derive(Debug, Clone)]
pub(crate) struct SchedConfig {
    pub(crate) locality_wait_ms: i64,
    pub(crate) worker_expiry_ms: i64,
    pub(crate) max_fetch_failures: u32,
    pub(crate) retained_jobs: usize,
    /// After a restart, how long a job that was running waits before its
    /// output is deleted (lets re-registering workers kill its attempts first).
    pub(crate) restart_grace_ms: i64,
}

/// A new job, as the engine planned it.
#[derive(Debug, Clone)]
pub(crate) struct JobDraft {
    pub(crate) name: String,
    pub(crate) output: String,
    pub(crate) doc: serde_json::Value,
    pub(crate) stages: Vec<StageDraft>,
}

/// A stage of a new job.
#[derive(Debug, Clone)]
pub(crate) struct StageDraft {
    pub(crate) name: String,
    pub(crate) letter: String,
    pub(crate) counter_suffix: String,
    /// One entry per task: where it would like to run.
    pub(crate) tasks: Vec<Prefs>,
    pub(crate) max_attempts: u32,
    pub(crate) speculative: bool,
    /// Stages whose outputs this one reads (all earlier).
    pub(crate) upstreams: Vec<usize>,
    pub(crate) slowstart: f64,
    pub(crate) commits_output: bool,
    pub(crate) outputs_on_workers: bool,
}

/// An attempt to start on a worker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Launch {
    pub(crate) job_id: String,
    pub(crate) task_id: String,
    pub(crate) attempt_id: String,
    pub(crate) attempt_number: u32,
    pub(crate) stage: usize,
    pub(crate) stage_name: String,
    pub(crate) task_index: u32,
    pub(crate) worker_id: String,
    pub(crate) worker_addr: String,
}

/// What the jobtracker must do after an event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Launch(Launch),
    Kill {
        worker_addr: String,
        attempt_id: String,
        reason: String,
    },
    /// Move a successful attempt's output to its task's committed place,
    /// then report [`Scheduler::task_committed`].
    CommitTask {
        job_id: String,
        task_id: String,
        attempt_id: String,
    },
    /// Delete what an attempt that will not be committed wrote.
    Discard {
        job_id: String,
        attempt_id: String,
    },
    /// Commit the job's output, then report [`Scheduler::job_committed`].
    CommitJob {
        job_id: String,
    },
    /// Delete the job's output, then report [`Scheduler::job_aborted`].
    AbortJob {
        job_id: String,
    },
    /// The job reached a final state.
    JobFinished {
        job_id: String,
    },
    /// The worker is gone (drop connections to it).
    ForgetWorker {
        addr: String,
    },
}

/// How soon a changed job must reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Urgency {
    /// Progress only.
    Lazy,
    /// Task and attempt changes.
    Soon,
    /// Job state changes.
    Now,
}

impl Urgency {
    fn delay_ms(self) -> i64 {
        match self {
            Urgency::Lazy => 5000,
            Urgency::Soon => 1000,
            Urgency::Now => 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Dirty {
    urgency: Urgency,
    since: i64,
}

/// A job serialized for the store.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) job_id: String,
    pub(crate) seq: u32,
    pub(crate) version: u64,
    pub(crate) bytes: std::result::Result<Vec<u8>, String>,
}

/// Where an attempt lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AttemptRef {
    pub(crate) seq: u32,
    pub(crate) stage: usize,
    pub(crate) task: u32,
    pub(crate) attempt: usize,
}

/// The scheduler: every job, every worker, and what to do next.
#[derive(Debug)]
pub(crate) struct Scheduler {
    cfg: SchedConfig,
    jobs: BTreeMap<u32, Job>,
    ids: HashMap<String, u32>,
    /// Attempts of jobs that are not finished.
    attempts: HashMap<String, AttemptRef>,
    workers: workers::Workers,
    outbox: Vec<Action>,
    dirty: HashMap<u32, Dirty>,
    /// Ids of jobs dropped from the history (their files can go).
    forgotten: Vec<String>,
}

impl Scheduler {
    pub(crate) fn new(cfg: SchedConfig) -> Scheduler {
        Scheduler {
            cfg,
            jobs: BTreeMap::new(),
            ids: HashMap::new(),
            attempts: HashMap::new(),
            workers: workers::Workers::default(),
            outbox: Vec::new(),
            dirty: HashMap::new(),
            forgotten: Vec::new(),
        }
    }

    /// Builds a job from the engine's plan (state RUNNING, every task pending).
    pub(crate) fn new_job(
        id: String,
        seq: u32,
        user: &str,
        engine: &str,
        draft: JobDraft,
        submit_ms: i64,
        now: i64,
    ) -> Job {
        let stages = draft
            .stages
            .into_iter()
            .map(|d| Stage {
                tasks: (0u32..)
                    .zip(d.tasks)
                    .map(|(i, prefs)| TaskModel::new(ids::task_id(&id, &d.letter, i), i, prefs))
                    .collect(),
                name: d.name,
                letter: d.letter,
                counter_suffix: d.counter_suffix,
                max_attempts: d.max_attempts.max(1),
                speculative: d.speculative,
                upstreams: d.upstreams,
                slowstart: d.slowstart,
                commits_output: d.commits_output,
                outputs_on_workers: d.outputs_on_workers,
                stats: StageStats::default(),
            })
            .collect();
        Job {
            id,
            seq,
            name: draft.name,
            user: user.to_string(),
            engine: engine.to_string(),
            output: draft.output,
            state: JobState::Running,
            ending: None,
            submit_ms,
            start_ms: now,
            finish_ms: 0,
            first_running_ms: 0,
            stages,
            diagnostics: String::new(),
            doc: draft.doc,
            rt: Default::default(),
        }
    }

    /// Accepts a new job; its tasks become schedulable at once.
    pub(crate) fn add_job(&mut self, mut job: Job, now: i64) -> Result<()> {
        if self.ids.contains_key(&job.id) {
            return Err(JobtrackerError::Internal(format!("{}: job id used twice", job.id)));
        }
        job.check_shape().map_err(|e| JobtrackerError::Internal(format!("{}: {e}", job.id)))?;
        self.fill_racks(&mut job);
        job.rebuild_runtime();
        let seq = job.seq;
        self.ids.insert(job.id.clone(), seq);
        self.jobs.insert(seq, job);
        self.mark(seq, Urgency::Now, now);
        if self.jobs.get(&seq).is_some_and(|j| j.all_done()) {
            self.begin_ending(seq, Ending::Commit, "", now);
        }
        Ok(())
    }

    /// Tasks that prefer datanodes but name no racks (SQL stages: the
    /// client knows only the hosts) get the racks the namenode reported for
    /// those datanodes, so that delay scheduling can fall back to rack-local.
    fn fill_racks(&self, job: &mut Job) {
        for t in job.stages.iter_mut().flat_map(|s| s.tasks.iter_mut()) {
            if !t.prefs.racks.is_empty() || t.prefs.hosts.is_empty() {
                continue;
            }
            let mut racks: Vec<String> =
                t.prefs.hosts.iter().filter_map(|h| self.workers.known_rack(h)).map(str::to_string).collect();
            racks.sort_unstable();
            racks.dedup();
            t.prefs.racks = racks;
        }
    }

    /// Takes back a job read from disk after a restart: finished jobs stay
    /// as they were; a committing job commits again (the commit is
    /// idempotent); a running job fails (`jobtracker restarted while the job
    /// was running`) and its output is deleted.
    pub(crate) fn load_job(&mut self, mut job: Job, now: i64) -> Result<()> {
        let seq = job.seq;
        job.check_shape().map_err(|e| JobtrackerError::Corrupt { path: job.id.clone(), message: e })?;
        if self.ids.contains_key(&job.id) || self.jobs.contains_key(&seq) {
            return Err(JobtrackerError::Corrupt { path: job.id.clone(), message: "job number used twice".into() });
        }
        self.ids.insert(job.id.clone(), seq);
        if job.state.is_finished() {
            job.rebuild_runtime();
            self.jobs.insert(seq, job);
            return Ok(());
        }
        for s in &mut job.stages {
            for t in &mut s.tasks {
                t.committing = None;
                if t.state == TaskState::Running {
                    t.state = TaskState::Pending;
                }
                for a in &mut t.attempts {
                    if a.state.is_active() || a.state == AttemptState::Committing {
                        a.state = AttemptState::Killed;
                        a.finish_ms = now;
                        a.diagnostics = "jobtracker restarted".to_string();
                    }
                }
            }
        }
        job.rebuild_runtime();
        job.rt.end_not_before = now + self.cfg.restart_grace_ms;
        let ending = match job.ending {
            _ if job.state == JobState::Committing && job.ending != Some(Ending::Fail) => Ending::Commit,
            Some(Ending::Kill) => Ending::Kill,
            _ => Ending::Fail,
        };
        if ending == Ending::Commit {
            job.rt.end_not_before = 0;
        }
        self.jobs.insert(seq, job);
        let diag = if ending == Ending::Fail { "jobtracker restarted while the job was running" } else { "" };
        self.begin_ending(seq, ending, diag, now);
        self.mark(seq, Urgency::Now, now);
        Ok(())
    }

    /// Everything to do since the last call.
    pub(crate) fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.outbox)
    }

    fn mark(&mut self, seq: u32, urgency: Urgency, now: i64) {
        let d = self.dirty.entry(seq).or_insert(Dirty { urgency, since: now });
        d.urgency = d.urgency.max(urgency);
    }

    /// Jobs whose changes are due on disk (all of them with `force`), unmarked.
    pub(crate) fn take_due(&mut self, now: i64, force: bool) -> Vec<u32> {
        let due: Vec<u32> = self
            .dirty
            .iter()
            .filter(|(_, d)| force || now - d.since >= d.urgency.delay_ms())
            .map(|(s, _)| *s)
            .collect();
        for s in &due {
            self.dirty.remove(s);
        }
        due
    }

    /// Marks a job whose write failed, to retry it.
    pub(crate) fn remark(&mut self, seq: u32, now: i64) {
        self.mark(seq, Urgency::Soon, now);
    }

    /// The job as JSON with a version number higher than any before.
    pub(crate) fn snapshot(&mut self, seq: u32) -> Option<Snapshot> {
        let job = self.jobs.get_mut(&seq)?;
        job.rt.version += 1;
        let bytes = serde_json::to_vec(job);
        Some(Snapshot { job_id: job.id.clone(), seq, version: job.rt.version, bytes: bytes.map_err(|e| e.to_string()) })
    }

    /// Ids of jobs dropped from the history since the last call.
    pub(crate) fn take_forgotten(&mut self) -> Vec<String> {
        std::mem::take(&mut self.forgotten)
    }

    pub(crate) fn job(&self, job_id: &str) -> Option<&Job> {
        self.jobs.get(self.ids.get(job_id)?)
    }

    /// Every job, oldest first.
    pub(crate) fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    pub(crate) fn workers(&self) -> impl Iterator<Item = &Worker> {
        self.workers.iter()
    }

    fn locate(&self, attempt_id: &str) -> Option<AttemptRef> {
        self.attempts.get(attempt_id).copied()
    }

    fn attempt(&self, r: AttemptRef) -> Option<&model::Attempt> {
        self.jobs.get(&r.seq)?.stages.get(r.stage)?.tasks.get(r.task as usize)?.attempts.get(r.attempt)
    }

    fn attempt_mut(&mut self, r: AttemptRef) -> Option<&mut model::Attempt> {
        self.jobs.get_mut(&r.seq)?.stages.get_mut(r.stage)?.tasks.get_mut(r.task as usize)?.attempts.get_mut(r.attempt)
    }

    /// Accepting jobs in fair-share order: fewest attempts holding slots
    /// first, then the earliest submitted.
    fn fair_order(&self) -> Vec<u32> {
        let mut v: Vec<(u32, u32)> =
            self.jobs.values().filter(|j| j.accepting()).map(|j| (j.rt.active, j.seq)).collect();
        v.sort_unstable();
        v.into_iter().map(|(_, s)| s).collect()
    }

    /// Drops the oldest finished jobs (by number) beyond `retained_jobs`.
    /// The newest job is never dropped, so its number survives restarts.
    pub(crate) fn prune_history(&mut self) {
        let finished: Vec<u32> = self.jobs.values().filter(|j| j.state.is_finished()).map(|j| j.seq).collect();
        let old = finished.len().saturating_sub(RESULTS_KEPT);
        for seq in &finished[..old] {
            if let Some(j) = self.jobs.get_mut(seq) {
                let attempts = j.stages.iter_mut().flat_map(|s| s.tasks.iter_mut()).flat_map(|t| t.attempts.iter_mut());
                for a in attempts.filter(|a| !a.result_json.is_empty()) {
                    a.result_json = String::new();
                }
            }
        }
        let excess = finished.len().saturating_sub(self.cfg.retained_jobs);
        for seq in finished.into_iter().take(excess) {
            if let Some(j) = self.jobs.remove(&seq) {
                self.ids.remove(&j.id);
                self.dirty.remove(&seq);
                self.forgotten.push(j.id);
            }
        }
    }
}
