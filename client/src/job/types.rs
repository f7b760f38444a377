//! What the jobtracker reports about jobs and workers, as plain Rust values
//! (serializable, so `tusk job ... --json` prints them as they are), and
//! their conversion from the wire types.

use serde::Serialize;
use tusk_proto::compute as pb;

/// State of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// A state this client does not know (a newer jobtracker).
    Unknown,
    /// Accepted, splits being computed.
    Prep,
    Running,
    /// Every task done, output being moved into place.
    Committing,
    Succeeded,
    Failed,
    Killed,
}

impl JobState {
    /// True once the job can no longer change (succeeded, failed, killed).
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Killed)
    }

    /// The name shown to users (`RUNNING`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Unknown => "UNKNOWN",
            JobState::Prep => "PREP",
            JobState::Running => "RUNNING",
            JobState::Committing => "COMMITTING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
            JobState::Killed => "KILLED",
        }
    }

    pub(crate) fn from_proto(v: i32) -> JobState {
        use pb::JobState as P;
        match P::try_from(v) {
            Ok(P::JobPrep) => JobState::Prep,
            Ok(P::JobRunning) => JobState::Running,
            Ok(P::JobCommitting) => JobState::Committing,
            Ok(P::JobSucceeded) => JobState::Succeeded,
            Ok(P::JobFailed) => JobState::Failed,
            Ok(P::JobKilled) => JobState::Killed,
            Ok(P::Unspecified) | Err(_) => JobState::Unknown,
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// State of a task (all its attempts together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    Unknown,
    Pending,
    Running,
    Succeeded,
    Failed,
    Killed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Unknown => "UNKNOWN",
            TaskState::Pending => "PENDING",
            TaskState::Running => "RUNNING",
            TaskState::Succeeded => "SUCCEEDED",
            TaskState::Failed => "FAILED",
            TaskState::Killed => "KILLED",
        }
    }

    pub(crate) fn from_proto(v: i32) -> TaskState {
        use pb::TaskState as P;
        match P::try_from(v) {
            Ok(P::TaskPending) => TaskState::Pending,
            Ok(P::TaskRunning) => TaskState::Running,
            Ok(P::TaskSucceeded) => TaskState::Succeeded,
            Ok(P::TaskFailed) => TaskState::Failed,
            Ok(P::TaskKilled) => TaskState::Killed,
            Ok(P::Unspecified) | Err(_) => TaskState::Unknown,
        }
    }
}

/// State of one attempt of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptState {
    Unknown,
    Starting,
    Running,
    Succeeded,
    Failed,
    /// Killed on purpose (job killed, speculative loser, preempted, worker
    /// lost): does not count towards the task's failures.
    Killed,
}

impl AttemptState {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Unknown => "UNKNOWN",
            AttemptState::Starting => "STARTING",
            AttemptState::Running => "RUNNING",
            AttemptState::Succeeded => "SUCCEEDED",
            AttemptState::Failed => "FAILED",
            AttemptState::Killed => "KILLED",
        }
    }

    pub(crate) fn from_proto(v: i32) -> AttemptState {
        use pb::AttemptState as P;
        match P::try_from(v) {
            Ok(P::AttemptStarting) => AttemptState::Starting,
            Ok(P::AttemptRunning) => AttemptState::Running,
            Ok(P::AttemptSucceeded) => AttemptState::Succeeded,
            Ok(P::AttemptFailed) => AttemptState::Failed,
            Ok(P::AttemptKilled) => AttemptState::Killed,
            Ok(P::Unspecified) | Err(_) => AttemptState::Unknown,
        }
    }
}

/// Where an attempt ran relative to its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Locality {
    Unknown,
    DataLocal,
    RackLocal,
    OffRack,
    /// The task has no input location (reducers, generators).
    NoPreference,
}

impl Locality {
    pub(crate) fn from_proto(v: i32) -> Locality {
        use pb::Locality as P;
        match P::try_from(v) {
            Ok(P::DataLocal) => Locality::DataLocal,
            Ok(P::RackLocal) => Locality::RackLocal,
            Ok(P::OffRack) => Locality::OffRack,
            Ok(P::NoPreference) => Locality::NoPreference,
            Ok(P::Unspecified) | Err(_) => Locality::Unknown,
        }
    }
}

/// One counter (`TaskCounter` / `MAP_INPUT_RECORDS` = 42).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counter {
    pub group: String,
    pub name: String,
    pub value: i64,
}

fn counters_from_proto(c: Option<pb::Counters>) -> Vec<Counter> {
    c.map(|c| c.counters.into_iter().map(|c| Counter { group: c.group, name: c.name, value: c.value }).collect())
        .unwrap_or_default()
}

fn counter_in(counters: &[Counter], group: &str, name: &str) -> i64 {
    counters.iter().filter(|c| c.group == group && c.name == name).map(|c| c.value).sum()
}

/// Tasks of one stage (`map`, `reduce`) counted by state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSummary {
    pub name: String,
    pub total: u32,
    pub pending: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub killed: u32,
    /// 0.0 ..= 1.0.
    pub progress: f32,
}

/// One attempt of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptReport {
    pub attempt_id: String,
    pub state: AttemptState,
    pub worker_id: String,
    /// Address of the worker's WorkerService (logs: [`JobClient::task_log`](crate::JobClient::task_log)).
    pub worker_addr: String,
    pub start_ms: i64,
    pub finish_ms: i64,
    pub progress: f32,
    pub status: String,
    pub locality: Locality,
    pub speculative: bool,
    /// Why it failed or was killed.
    pub diagnostics: String,
    /// Last lines of its stderr (failed attempts), kept by the jobtracker.
    pub stderr_tail: String,
    pub counters: Vec<Counter>,
    /// What it reported when it succeeded (engine-specific JSON), for the
    /// jobtracker's most recent jobs.
    pub result_json: String,
}

/// One task and its attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskReport {
    pub task_id: String,
    /// `map` or `reduce`.
    pub stage: String,
    pub index: u32,
    pub state: TaskState,
    pub progress: f32,
    pub attempts: Vec<AttemptReport>,
}

/// Everything the jobtracker knows about a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobReport {
    pub job_id: String,
    pub name: String,
    pub user: String,
    pub engine: String,
    pub state: JobState,
    pub submit_ms: i64,
    pub start_ms: i64,
    pub finish_ms: i64,
    pub stages: Vec<StageSummary>,
    /// Why the job failed or was killed: the task, the reason and the tail
    /// of its stderr.
    pub diagnostics: String,
    pub counters: Vec<Counter>,
    /// Output directory, empty when none.
    pub output: String,
    /// Every task, when asked for (`with_tasks`).
    pub tasks: Vec<TaskReport>,
    /// Milliseconds from submission to the first attempt running.
    pub first_launch_ms: i64,
}

impl JobReport {
    /// The stage called `name` (`map`, `reduce`), if the job has one.
    pub fn stage(&self, name: &str) -> Option<&StageSummary> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The value of a job counter (0 when absent).
    pub fn counter(&self, group: &str, name: &str) -> i64 {
        counter_in(&self.counters, group, name)
    }

    pub(crate) fn from_proto(r: pb::JobReport) -> JobReport {
        JobReport {
            job_id: r.job_id,
            name: r.name,
            user: r.user,
            engine: r.engine,
            state: JobState::from_proto(r.state),
            submit_ms: r.submit_ms,
            start_ms: r.start_ms,
            finish_ms: r.finish_ms,
            stages: r
                .stages
                .into_iter()
                .map(|s| StageSummary {
                    name: s.name,
                    total: s.total,
                    pending: s.pending,
                    running: s.running,
                    succeeded: s.succeeded,
                    failed: s.failed,
                    killed: s.killed,
                    progress: s.progress,
                })
                .collect(),
            diagnostics: r.diagnostics,
            counters: counters_from_proto(r.counters),
            output: r.output,
            tasks: r.tasks.into_iter().map(task_from_proto).collect(),
            first_launch_ms: r.first_launch_ms,
        }
    }
}

fn task_from_proto(t: pb::TaskReport) -> TaskReport {
    TaskReport {
        task_id: t.task_id,
        stage: t.stage,
        index: t.index,
        state: TaskState::from_proto(t.state),
        progress: t.progress,
        attempts: t
            .attempts
            .into_iter()
            .map(|a| AttemptReport {
                attempt_id: a.attempt_id,
                state: AttemptState::from_proto(a.state),
                worker_id: a.worker_id,
                worker_addr: a.worker_addr,
                start_ms: a.start_ms,
                finish_ms: a.finish_ms,
                progress: a.progress,
                status: a.status,
                locality: Locality::from_proto(a.locality),
                speculative: a.speculative,
                diagnostics: a.diagnostics,
                stderr_tail: a.stderr_tail,
                result_json: a.result_json,
                counters: counters_from_proto(a.counters),
            })
            .collect(),
    }
}

/// A worker as the jobtracker sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerInfo {
    pub worker_id: String,
    /// Its WorkerService address.
    pub addr: String,
    pub host: String,
    pub rack: String,
    /// Transfer address of the datanode beside it, empty when none.
    pub datanode: String,
    pub slots: u32,
    /// CPU cores of its machine (0: not reported).
    pub cores: u32,
    pub running: u32,
    pub last_contact_ms: i64,
    pub live: bool,
}

/// The workers and how busy the cluster is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStatus {
    pub workers: Vec<WorkerInfo>,
    pub running_jobs: u32,
}

impl ClusterStatus {
    /// Workers currently heartbeating.
    pub fn live_workers(&self) -> impl Iterator<Item = &WorkerInfo> {
        self.workers.iter().filter(|w| w.live)
    }

    pub(crate) fn from_proto(r: pb::ClusterStatusResponse) -> ClusterStatus {
        ClusterStatus {
            workers: r
                .workers
                .into_iter()
                .map(|w| WorkerInfo {
                    worker_id: w.worker_id,
                    addr: w.addr,
                    host: w.host,
                    rack: w.rack,
                    datanode: w.datanode,
                    slots: w.slots,
                    cores: w.cores,
                    running: w.running,
                    last_contact_ms: w.last_contact_ms,
                    live: w.live,
                })
                .collect(),
            running_jobs: r.running_jobs,
        }
    }
}

/// What a kill request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KillOutcome {
    /// False when the job had already finished.
    pub killed: bool,
    /// The job's state after the request.
    pub state: JobState,
}

/// A piece of an attempt's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLog {
    pub data: Vec<u8>,
    /// Length of the whole log file.
    pub total_len: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_convert_with_their_states_and_counters() {
        let counters =
            |v| Some(pb::Counters { counters: vec![pb::Counter { group: "G".into(), name: "N".into(), value: v }] });
        let r = pb::JobReport {
            job_id: "job_1_0001".into(),
            state: pb::JobState::JobSucceeded as i32,
            stages: vec![pb::StageSummary {
                name: "map".into(),
                total: 3,
                succeeded: 3,
                progress: 1.0,
                ..Default::default()
            }],
            counters: counters(7),
            tasks: vec![pb::TaskReport {
                task_id: "task_1_0001_m_000000".into(),
                stage: "map".into(),
                state: pb::TaskState::TaskSucceeded as i32,
                attempts: vec![pb::AttemptReport {
                    attempt_id: "attempt_1_0001_m_000000_0".into(),
                    state: pb::AttemptState::AttemptFailed as i32,
                    locality: pb::Locality::RackLocal as i32,
                    counters: counters(2),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            first_launch_ms: 12,
            ..Default::default()
        };
        let r = JobReport::from_proto(r);
        assert_eq!(r.state, JobState::Succeeded);
        assert!(r.state.is_finished());
        assert_eq!(r.stage("map").map(|s| s.total), Some(3));
        assert!(r.stage("reduce").is_none());
        assert_eq!(r.counter("G", "N"), 7);
        assert_eq!(r.counter("G", "other"), 0);
        let a = &r.tasks[0].attempts[0];
        assert_eq!(
            (r.tasks[0].state, a.state, a.locality),
            (TaskState::Succeeded, AttemptState::Failed, Locality::RackLocal)
        );
        assert_eq!(a.counters[0].value, 2);
        assert_eq!(r.first_launch_ms, 12);
    }

    #[test]
    fn unknown_enum_values_are_unknown_not_errors() {
        assert_eq!(JobState::from_proto(99), JobState::Unknown);
        assert!(!JobState::Unknown.is_finished());
        assert!(!JobState::Committing.is_finished());
        assert_eq!(TaskState::from_proto(-1), TaskState::Unknown);
        assert_eq!(AttemptState::from_proto(0), AttemptState::Unknown);
        assert_eq!(Locality::from_proto(42), Locality::Unknown);
        assert_eq!(JobState::Killed.to_string(), "KILLED");
    }
}
