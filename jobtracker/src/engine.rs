//! The seam between the scheduler and what jobs mean. The scheduler knows
//! stages, tasks and locations; an [`Engine`] knows how a submitted job
//! becomes stages (planning), what an attempt is told to do (its task
//! definition) and how output is committed: MapReduce
//! ([`mapreduce::MapReduceEngine`]) and distributed SQL queries
//! ([`sql::SqlEngine`]).

pub(crate) mod mapreduce;
pub(crate) mod sql;

use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::sched::{JobDraft, Launch};

/// The jobs an engine has attached, by id, each with the user it runs as.
pub(crate) struct Attached<T> {
    engine: &'static str,
    jobs: parking_lot::Mutex<HashMap<String, Arc<T>>>,
}

/// A job an engine keeps: it runs as a user (DFS work is done as them).
pub(crate) trait JobUser {
    fn user(&self) -> &str;
}

impl<T: JobUser> Attached<T> {
    pub(crate) fn new(engine: &'static str) -> Attached<T> {
        Attached { engine, jobs: parking_lot::Mutex::new(HashMap::new()) }
    }

    pub(crate) fn get(&self, job_id: &str) -> Result<Arc<T>> {
        self.jobs.lock().get(job_id).cloned().ok_or_else(|| {
            crate::error::JobtrackerError::Internal(format!("{job_id}: not attached to the {} engine", self.engine))
        })
    }

    pub(crate) fn insert(&self, job_id: &str, job: T) {
        self.jobs.lock().insert(job_id.to_string(), Arc::new(job));
    }

    pub(crate) fn remove(&self, job_id: &str) {
        self.jobs.lock().remove(job_id);
    }

    /// The job and a DFS client acting as its user.
    pub(crate) async fn with_client(&self, dfs: &crate::dfs::Dfs, job_id: &str) -> Result<(tusk_client::Client, Arc<T>)> {
        let job = self.get(job_id)?;
        Ok((dfs.client(job.user()).await?, job))
    }
}

/// Defaults a job's configuration may override.
#[derive(Debug, Clone)]
pub(crate) struct EngineDefaults {
    pub(crate) max_attempts: u32,
    pub(crate) speculative: bool,
    pub(crate) reduce_slowstart: f64,
    pub(crate) task_timeout_ms: u64,
    pub(crate) task_memory_mb: u64,
}

#[cfg(test)]
impl EngineDefaults {
    /// The jobtracker's defaults with Hadoop's reduce slowstart (engine tests).
    pub(crate) fn for_tests() -> EngineDefaults {
        EngineDefaults { max_attempts: 4, speculative: true, reduce_slowstart: 0.05, task_timeout_ms: 600_000, task_memory_mb: 1024 }
    }
}

/// What a worker is sent to start an attempt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LaunchPlan {
    /// Engine name (`LaunchTaskRequest.engine`).
    pub(crate) engine: String,
    /// The task definition handed to the task process.
    pub(crate) spec_json: String,
    pub(crate) memory_bytes: u64,
    /// 0: never.
    pub(crate) progress_timeout_ms: u64,
    pub(crate) env: HashMap<String, String>,
}

/// A kind of job. Planning runs inside SubmitJob, so a bad job is refused
/// before it gets an id; the error message is shown to the user verbatim.
/// Output operations may be slow (DFS); the jobtracker never calls them
/// while holding the scheduler.
pub(crate) trait Engine: Send + Sync {
    /// Name clients use in `SubmitJobRequest.engine`.
    fn name(&self) -> &'static str;

    /// Checks and plans a job submitted by `user`, and prepares its output
    /// (MapReduce: validate, compute splits, create `OUT/_temporary/0`).
    fn plan<'a>(&'a self, user: &'a str, spec_json: &'a str) -> BoxFuture<'a, Result<JobDraft>>;

    /// Makes a job known under its id (after planning, or after a restart
    /// for a job that still has output work to do).
    fn attach(&self, job_id: &str, user: &str, doc: &serde_json::Value) -> Result<()>;

    /// Forgets a finished job.
    fn detach(&self, job_id: &str);

    /// What to send to the worker for this attempt.
    fn launch(&self, launch: &Launch) -> Result<LaunchPlan>;

    /// Moves a successful attempt's output to its task's committed place.
    fn commit_task<'a>(&'a self, job_id: &'a str, task_id: &'a str, attempt_id: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Deletes what an attempt that will not be committed wrote.
    fn discard_attempt<'a>(&'a self, job_id: &'a str, attempt_id: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Publishes the job's output (idempotent).
    fn commit_job<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Deletes the job's output (a failed or killed job).
    fn abort_job<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, Result<()>>;
}
