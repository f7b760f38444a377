//! The definition of a distributed SQL query as the jobtracker's `sql`
//! engine receives it (`SubmitJobRequest.spec_json`) and as its task
//! processes receive their part (`LaunchTaskRequest.spec_json`).
//!
//! The plan is cut by the client (`tusk-sql`) into stages; each stage's plan
//! fragment is opaque here (serialized DataFusion plan, base64), so the
//! jobtracker and the workers never link DataFusion.
//!
//! Outputs:
//! - [`SqlOutput::Shuffle`]: each task writes `partitions` Arrow IPC
//!   segments into its attempt's `output/file.out` + `file.out.index` (the
//!   MapReduce map-output layout), served by its worker
//!   (`WorkerService.FetchMapOutput`); downstream tasks find them through
//!   `TaskUmbilical.GetMapOutputs` with `upstream_stage` set.
//! - [`SqlOutput::Result`]: the last stage; each task writes its rows as one
//!   Arrow IPC file `<result_dir>/_temporary/<attempt_id>/part-NNNNN.arrow`;
//!   the task commit renames it to `<result_dir>/part-NNNNN.arrow` (NNNNN =
//!   task index, 5 digits). The client reads the parts in task order once
//!   the job succeeded and deletes `result_dir`.

use serde::{Deserialize, Serialize};

/// Engine name of SQL jobs.
pub const SQL_ENGINE: &str = "sql";

/// What a stage's tasks produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlOutput {
    /// Shuffle output on the worker, `partitions` segments per task.
    Shuffle { partitions: u32 },
    /// Result files in the DFS (the last stage).
    Result,
}

/// A stage of a SQL job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlStageSpec {
    /// Shown in reports (`stage-0`, ...).
    pub name: String,
    /// The stage's plan fragment (DataFusion physical plan, serialized,
    /// base64). Task `i` runs partition `i` of it.
    pub plan: String,
    /// Per task: datanode transfer addresses holding its input (empty:
    /// anywhere). The number of entries is the number of tasks.
    pub task_hosts: Vec<Vec<String>>,
    /// Indexes of the stages whose outputs this one reads (all earlier).
    pub upstreams: Vec<usize>,
    pub output: SqlOutput,
}

/// A SQL job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlJobSpec {
    /// Shown in reports (the statement, shortened).
    pub name: String,
    pub stages: Vec<SqlStageSpec>,
    /// DFS directory receiving the last stage's result files (created by
    /// the client; deleted by the jobtracker if the job fails).
    pub result_dir: String,
    /// Namenode `host:port` the tasks read the DFS through.
    pub namenode: String,
    /// Task failures allowed before the query fails (0: the jobtracker's default).
    #[serde(default)]
    pub max_attempts: u32,
}

/// What one SQL task attempt is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlTaskSpec {
    pub job_id: String,
    pub task_id: String,
    pub attempt_id: String,
    /// The user the job runs as (DFS access).
    pub user: String,
    /// Index of the stage in the job.
    pub stage: usize,
    /// Index of the task in its stage (the plan partition it runs).
    pub task_index: u32,
    /// The stage's plan fragment (base64).
    pub plan: String,
    pub upstreams: Vec<usize>,
    pub output: SqlOutput,
    pub result_dir: String,
    pub namenode: String,
    /// Jobtracker `host:port` (TaskUmbilical).
    pub jobtracker: String,
}

/// Name of a result part: `part-00003.arrow`.
pub fn result_part_name(task_index: u32) -> String {
    format!("part-{task_index:05}.arrow")
}
