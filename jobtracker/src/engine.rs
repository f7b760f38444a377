//! The seam between the scheduler and what jobs mean. The scheduler knows
//! stages, tasks and locations; an [`Engine`] knows how a submitted job
//! becomes stages (planning), what an attempt is told to do (its task
//! definition) and how output is committed. MapReduce is the only engine
//! today ([`mapreduce::MapReduceEngine`]); the SQL engine will be another.

pub(crate) mod mapreduce;

use futures::future::BoxFuture;
use std::collections::HashMap;

use crate::error::Result;
use crate::sched::{JobDraft, Launch};

/// Defaults a job's configuration may override.
#[derive(Debug, Clone)]
pub(crate) struct EngineDefaults {
    pub(crate) max_attempts: u32,
    pub(crate) speculative: bool,
    pub(crate) reduce_slowstart: f64,
    pub(crate) task_timeout_ms: u64,
    pub(crate) task_memory_mb: u64,
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
