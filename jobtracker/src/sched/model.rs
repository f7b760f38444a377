//! What the scheduler knows: jobs made of stages, stages of tasks, tasks of
//! attempts. These types are also the persisted form of a job (one JSON
//! document per job); the indexes in [`JobRuntime`] are rebuilt on load.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::pending::PendingSet;

/// Public state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum JobState {
    Running,
    /// Every task done; the output is being moved into place.
    Committing,
    Succeeded,
    Failed,
    Killed,
}

impl JobState {
    pub(crate) fn is_finished(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Killed)
    }
}

/// How a job that stopped launching work is going to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Ending {
    /// Every task is done: commit the output (state COMMITTING).
    Commit,
    /// A task failed too often, or the commit failed: abort, then FAILED.
    Fail,
    /// Killed by a user: abort, then KILLED.
    Kill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TaskState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Killed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AttemptState {
    /// Launch sent to the worker, not confirmed yet.
    Starting,
    Running,
    /// The process succeeded; its output is being committed (no slot held).
    Committing,
    Succeeded,
    Failed,
    Killed,
}

impl AttemptState {
    /// Holds a slot on its worker.
    pub(crate) fn is_active(self) -> bool {
        matches!(self, AttemptState::Starting | AttemptState::Running)
    }

    pub(crate) fn is_finished(self) -> bool {
        matches!(self, AttemptState::Succeeded | AttemptState::Failed | AttemptState::Killed)
    }
}

/// Where an attempt ran relative to its task's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Locality {
    DataLocal,
    RackLocal,
    OffRack,
    NoPreference,
}

impl Locality {
    /// Delay-scheduling level: 0 data-local, 1 rack-local, 2 anywhere.
    pub(crate) fn level(self) -> Option<u8> {
        match self {
            Locality::DataLocal => Some(0),
            Locality::RackLocal => Some(1),
            Locality::OffRack => Some(2),
            Locality::NoPreference => None,
        }
    }
}

/// Where a task would like to run: datanode transfer addresses holding its
/// input, and their racks. Empty: anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Prefs {
    pub(crate) hosts: Vec<String>,
    pub(crate) racks: Vec<String>,
}

impl Prefs {
    pub(crate) fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.racks.is_empty()
    }
}

/// One run of a task on a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Attempt {
    pub(crate) id: String,
    pub(crate) number: u32,
    pub(crate) worker_id: String,
    pub(crate) worker_addr: String,
    pub(crate) worker_host: String,
    pub(crate) state: AttemptState,
    pub(crate) start_ms: i64,
    pub(crate) finish_ms: i64,
    pub(crate) progress: f32,
    pub(crate) status: String,
    pub(crate) locality: Locality,
    pub(crate) speculative: bool,
    pub(crate) diagnostics: String,
    pub(crate) stderr_tail: String,
    /// (group, name, value), as last reported.
    pub(crate) counters: Vec<(String, String, i64)>,
    /// Engine-specific result of a successful attempt (a query's rows, up
    /// to 1 MiB). Kept in memory only, and only for the most recent jobs
    /// ([`RESULTS_KEPT`](crate::sched::RESULTS_KEPT)): the client that
    /// waits for a query reads it at once.
    #[serde(skip)]
    pub(crate) result_json: String,
    /// Set when the jobtracker asked the worker to kill it: why.
    pub(crate) kill_reason: Option<String>,
    /// Reports from downstream tasks that could not fetch its output.
    pub(crate) fetch_failures: u32,
}

impl Default for Attempt {
    fn default() -> Self {
        Attempt {
            id: String::new(),
            number: 0,
            worker_id: String::new(),
            worker_addr: String::new(),
            worker_host: String::new(),
            state: AttemptState::Starting,
            start_ms: 0,
            finish_ms: 0,
            progress: 0.0,
            status: String::new(),
            locality: Locality::NoPreference,
            speculative: false,
            diagnostics: String::new(),
            stderr_tail: String::new(),
            counters: Vec::new(),
            result_json: String::new(),
            kill_reason: None,
            fetch_failures: 0,
        }
    }
}

/// A unit of work of a stage (a map over one split, one reduce partition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Task {
    pub(crate) id: String,
    pub(crate) index: u32,
    pub(crate) prefs: Prefs,
    pub(crate) state: TaskState,
    pub(crate) attempts: Vec<Attempt>,
    /// Failed attempts so far (killed ones do not count).
    pub(crate) failures: u32,
    /// Index in `attempts` of the attempt whose output counts.
    pub(crate) success: Option<usize>,
    /// Index of the attempt whose output is being committed.
    pub(crate) committing: Option<usize>,
    /// Workers where an attempt of this task failed (avoided by retries).
    pub(crate) failed_on: BTreeSet<String>,
}

impl Task {
    pub(crate) fn new(id: String, index: u32, prefs: Prefs) -> Task {
        Task {
            id,
            index,
            prefs,
            state: TaskState::Pending,
            attempts: Vec::new(),
            failures: 0,
            success: None,
            committing: None,
            failed_on: BTreeSet::new(),
        }
    }

    /// Attempts holding a slot.
    pub(crate) fn active(&self) -> impl Iterator<Item = (usize, &Attempt)> {
        self.attempts.iter().enumerate().filter(|(_, a)| a.state.is_active())
    }

    fn busy(&self) -> bool {
        self.committing.is_some() || self.attempts.iter().any(|a| a.state.is_active())
    }

    /// 0..=1, as shown in reports.
    pub(crate) fn progress(&self) -> f32 {
        if self.success.is_some() {
            return 1.0;
        }
        self.active().map(|(_, a)| a.progress).fold(0.0, f32::max).clamp(0.0, 1.0)
    }
}

/// Launch, failure and locality counts of a stage (its job counters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct StageStats {
    pub(crate) launched: i64,
    pub(crate) failed: i64,
    pub(crate) killed: i64,
    pub(crate) speculative: i64,
    pub(crate) data_local: i64,
    pub(crate) rack_local: i64,
    pub(crate) other_local: i64,
    /// Sum and count of the durations of successful attempts (speculation).
    pub(crate) done_ms_sum: i64,
    pub(crate) done_count: i64,
}

/// A set of like tasks (MapReduce: "map", "reduce").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stage {
    pub(crate) name: String,
    /// Letter in task ids (`m`, `r`).
    pub(crate) letter: String,
    /// Suffix of its job counters (`MAPS` → `TOTAL_LAUNCHED_MAPS`).
    pub(crate) counter_suffix: String,
    pub(crate) tasks: Vec<Task>,
    pub(crate) max_attempts: u32,
    pub(crate) speculative: bool,
    /// The stages whose outputs this one reads (a join reads two); its
    /// tasks start once every task of each upstream stage is launched and
    /// `slowstart` of each one's tasks are done. Jobs stored before stages
    /// could read several have `"upstream": <n> | null` instead: read too.
    #[serde(default, alias = "upstream", deserialize_with = "upstreams_compat")]
    pub(crate) upstreams: Vec<usize>,
    pub(crate) slowstart: f64,
    /// Task output goes to the job's output and must be committed.
    pub(crate) commits_output: bool,
    /// Task output stays on the worker (map output): lost with the worker
    /// while a downstream stage still needs it.
    pub(crate) outputs_on_workers: bool,
    pub(crate) stats: StageStats,
}

/// Reads `upstreams` (a list) or the older `upstream` (a stage index or null).
fn upstreams_compat<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Many(Vec<usize>),
        One(usize),
    }
    Ok(match Option::<Stored>::deserialize(d)? {
        None => Vec::new(),
        Some(Stored::One(u)) => vec![u],
        Some(Stored::Many(v)) => v,
    })
}

/// A submitted job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) seq: u32,
    pub(crate) name: String,
    pub(crate) user: String,
    pub(crate) engine: String,
    /// Output directory, empty when none.
    pub(crate) output: String,
    pub(crate) state: JobState,
    pub(crate) ending: Option<Ending>,
    pub(crate) submit_ms: i64,
    pub(crate) start_ms: i64,
    pub(crate) finish_ms: i64,
    /// When the first attempt was confirmed running (0: not yet).
    pub(crate) first_running_ms: i64,
    pub(crate) stages: Vec<Stage>,
    pub(crate) diagnostics: String,
    /// The engine's own description of the job (MapReduce: spec and splits).
    pub(crate) doc: serde_json::Value,
    #[serde(skip)]
    pub(crate) rt: JobRuntime,
}

/// Indexes and scheduling state of a job, rebuilt from the tasks on load.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobRuntime {
    /// Per stage: tasks waiting for a slot (only while the job accepts work).
    pub(crate) pending: Vec<PendingSet>,
    /// (stage, task) of tasks with an active or committing attempt.
    pub(crate) running: BTreeSet<(usize, u32)>,
    /// Per stage: succeeded tasks.
    pub(crate) done: Vec<u32>,
    /// Per stage: when its last task succeeded (meaningful while every
    /// task is done): downstream tasks had their input from then on.
    pub(crate) complete_at: Vec<i64>,
    /// Attempts holding a slot (fair share counts these).
    pub(crate) active: u32,
    /// Delay scheduling: level of the last launch with a location.
    pub(crate) loc_level: u8,
    /// Delay scheduling: when the job first passed on a slot since its last launch.
    pub(crate) skipped_since: Option<i64>,
    /// The commit or abort of an ending job has been asked for.
    pub(crate) end_sent: bool,
    /// An ending job stops waiting for its attempts to die at this time.
    pub(crate) end_deadline: i64,
    /// An ending job does not commit or abort before this time (after a
    /// restart: workers re-register and get their attempts killed first).
    pub(crate) end_not_before: i64,
    /// Workers that ran attempts of this job (told to clean up at the end).
    pub(crate) workers: BTreeSet<String>,
    /// Bumped at every snapshot: the store never replaces a newer one.
    pub(crate) version: u64,
}

impl Job {
    /// The job launches new attempts.
    pub(crate) fn accepting(&self) -> bool {
        self.state == JobState::Running && self.ending.is_none()
    }

    pub(crate) fn task(&self, si: usize, ti: u32) -> &Task {
        &self.stages[si].tasks[ti as usize]
    }

    pub(crate) fn task_mut(&mut self, si: usize, ti: u32) -> &mut Task {
        &mut self.stages[si].tasks[ti as usize]
    }

    /// Checks the indexes a stored job carries (stage links, task
    /// positions, attempt references), so a damaged file cannot make the
    /// scheduler index out of bounds.
    pub(crate) fn check_shape(&self) -> Result<(), String> {
        for (si, s) in self.stages.iter().enumerate() {
            if let Some(u) = s.upstreams.iter().find(|u| **u >= si) {
                return Err(format!("stage {} reads stage {u}, which does not come before it", s.name));
            }
            for (ti, t) in s.tasks.iter().enumerate() {
                if t.index as usize != ti {
                    return Err(format!("task {} is at position {ti} but has index {}", t.id, t.index));
                }
                let n = t.attempts.len();
                if t.success.is_some_and(|a| a >= n) || t.committing.is_some_and(|a| a >= n) {
                    return Err(format!("task {} names an attempt it does not have", t.id));
                }
            }
        }
        Ok(())
    }

    /// Rebuilds [`JobRuntime`] from the tasks (after load).
    pub(crate) fn rebuild_runtime(&mut self) {
        let n = self.stages.len();
        self.rt.pending = vec![PendingSet::default(); n];
        self.rt.done = vec![0; n];
        self.rt.running.clear();
        self.rt.active = 0;
        self.rt.complete_at = self
            .stages
            .iter()
            .map(|s| s.tasks.iter().filter_map(|t| Some(t.attempts.get(t.success?)?.finish_ms)).max().unwrap_or(0))
            .collect();
        for si in 0..n {
            for ti in 0..self.stages[si].tasks.len() as u32 {
                let t = self.task(si, ti);
                let (active, done) = (t.active().count() as u32, t.state == TaskState::Succeeded);
                self.rt.active += active;
                self.rt.done[si] += done as u32;
                self.index_task(si, ti);
            }
        }
    }

    /// Recomputes a task's state from its attempts and keeps the indexes in step.
    pub(crate) fn refresh_task(&mut self, si: usize, ti: u32) {
        let accepting = self.accepting();
        let t = self.task_mut(si, ti);
        let old = t.state;
        let new = if t.success.is_some() {
            TaskState::Succeeded
        } else if t.busy() {
            TaskState::Running
        } else if accepting || old == TaskState::Succeeded || old == TaskState::Running {
            TaskState::Pending
        } else {
            old
        };
        t.state = new;
        if old == TaskState::Succeeded && new != TaskState::Succeeded {
            self.rt.done[si] -= 1;
        } else if old != TaskState::Succeeded && new == TaskState::Succeeded {
            self.rt.done[si] += 1;
        }
        self.index_task(si, ti);
    }

    fn index_task(&mut self, si: usize, ti: u32) {
        let accepting = self.accepting();
        let t = &self.stages[si].tasks[ti as usize];
        if t.state == TaskState::Pending && accepting {
            self.rt.pending[si].insert(ti, &t.prefs);
        } else {
            self.rt.pending[si].remove(ti, &t.prefs);
        }
        if t.state == TaskState::Running {
            self.rt.running.insert((si, ti));
        } else {
            self.rt.running.remove(&(si, ti));
        }
    }

    /// Stops launching: empties the pending sets.
    pub(crate) fn stop_accepting(&mut self) {
        for p in &mut self.rt.pending {
            p.clear();
        }
    }

    /// Whether stage `si` may launch tasks now (each of its upstream stages
    /// has every task launched or done, and enough of them done).
    pub(crate) fn stage_ready(&self, si: usize) -> bool {
        let slowstart = self.stages[si].slowstart;
        self.stages[si].upstreams.iter().all(|&up| {
            let total = self.stages[up].tasks.len();
            self.rt.pending[up].is_empty() && (total == 0 || self.rt.done[up] as f64 >= slowstart * total as f64)
        })
    }

    /// Every task of stage `si` succeeded.
    pub(crate) fn stage_complete(&self, si: usize) -> bool {
        self.rt.done[si] as usize == self.stages[si].tasks.len()
    }

    /// Some stage reading stage `si`'s output still has tasks to finish.
    pub(crate) fn output_needed(&self, si: usize) -> bool {
        (0..self.stages.len()).any(|di| self.stages[di].upstreams.contains(&si) && !self.stage_complete(di))
    }

    /// Every task of every stage succeeded.
    pub(crate) fn all_done(&self) -> bool {
        (0..self.stages.len()).all(|si| self.stage_complete(si))
    }

    pub(crate) fn stage_progress(&self, si: usize) -> f32 {
        let tasks = &self.stages[si].tasks;
        if tasks.is_empty() {
            return 1.0;
        }
        tasks.iter().map(Task::progress).sum::<f32>() / tasks.len() as f32
    }
}
