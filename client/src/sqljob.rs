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
//! - With [`SqlJobSpec::direct_results`] (queries), a last-stage task whose
//!   rows take at most its share of [`DIRECT_RESULT_MAX_BYTES`] of Arrow IPC
//!   (the stage's tasks share it, so that the job report carrying them
//!   stays small) hands them back in its attempt's `result_json`
//!   ([`SqlTaskResult`]) instead, as
//!   Spark returns small task results to its driver: no file, no commit.
//!   A bigger result is written to the attempt's file as above and not
//!   committed: the result names it and the client reads it from there.
//! - With [`SqlJobSpec::write`] (INSERT, CTAS), the last stage writes table
//!   files instead of rows: each task writes them under
//!   `<result_dir>/_temporary/<attempt_id>/data/` (partition directories
//!   inside) and a one-row summary as its result part; the task commit
//!   also renames that `data` directory to `<result_dir>/task-NNNNN`.
//!   `result_dir` is then the write's hidden staging directory, which the
//!   client flattens and hands to the metastore's `CommitWrite`.

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

/// How the last stage of a writing job (INSERT, CTAS) writes its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlWriteSpec {
    /// The table's data columns: name and SQL type, as in the catalog.
    pub columns: Vec<(String, String)>,
    /// The table's storage format and its options (the catalog's words).
    pub format: String,
    pub format_options: std::collections::HashMap<String, String>,
    /// The table's partition columns, in order.
    pub partition_names: Vec<String>,
    /// Values of the leading static partition columns; the rows carry the
    /// dynamic ones after the data columns.
    pub static_values: Vec<String>,
    /// Data file names start with this (unique per statement).
    pub file_stem: String,
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
    /// Set when the last stage writes table files (see the module docs).
    #[serde(default)]
    pub write: Option<SqlWriteSpec>,
    /// The last stage's tasks hand small results back in their attempt
    /// reports (see the module docs); the result directory is then created
    /// only by a task whose result is too big.
    #[serde(default)]
    pub direct_results: bool,
}

/// The most Arrow IPC bytes the last stage's tasks hand back in their
/// reports, together ([`SqlJobSpec::direct_results`]); Spark's
/// `spark.task.maxDirectResultSize` is the same 1 MiB, per task.
pub const DIRECT_RESULT_MAX_BYTES: usize = 1 << 20;

/// A last-stage task's `result_json` when the job has
/// [`SqlJobSpec::direct_results`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlTaskResult {
    /// The rows: one Arrow IPC stream, base64.
    Rows(String),
    /// The rows are in this DFS file (one Arrow IPC stream).
    File(String),
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
    /// The job's write, for a task of its last stage.
    #[serde(default)]
    pub write: Option<SqlWriteSpec>,
    /// A task of the last stage hands its result back when its Arrow IPC
    /// takes at most this many bytes (see [`SqlJobSpec::direct_results`]);
    /// 0: it writes a file.
    #[serde(default)]
    pub direct_result_max_bytes: u64,
}

/// Name of a result part: `part-00003.arrow`.
pub fn result_part_name(task_index: u32) -> String {
    format!("part-{task_index:05}.arrow")
}

/// Where a writing task's attempt puts its data files:
/// `<result_dir>/_temporary/<attempt_id>/data`.
pub fn attempt_data_dir(result_dir: &str, attempt_id: &str) -> String {
    format!("{}/_temporary/{attempt_id}/data", result_dir.trim_end_matches('/'))
}

/// Where a writing task's committed data files are: `<result_dir>/task-00003`.
pub fn task_data_dir(result_dir: &str, task_index: u32) -> String {
    format!("{}/task-{task_index:05}", result_dir.trim_end_matches('/'))
}
