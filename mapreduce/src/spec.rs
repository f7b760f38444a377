//! What a MapReduce job is ([`JobSpec`], sent by the client as JSON) and
//! what one task attempt is told to do ([`TaskSpec`], sent by the
//! jobtracker through a worker to the task process as JSON).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A MapReduce job as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobSpec {
    /// Display name (`mapreduce.job.name`).
    pub name: String,
    /// Input paths: files, directories (their files, not recursively; names
    /// starting with `_` or `.` skipped, as Hadoop's hidden-file filter), or
    /// globs (`*`, `?`, `[abc]`, `{a,b}` in any component).
    pub inputs: Vec<String>,
    pub input_format: InputFormat,
    pub mapper: Program,
    /// Runs on map output at spill and merge time (same contract as a reducer).
    pub combiner: Option<Program>,
    /// The reducer; ignored when `reduces == 0` (map-only job).
    pub reducer: Program,
    pub partitioner: Partitioner,
    /// Number of reduce tasks (`mapreduce.job.reduces`); 0: map-only, the
    /// maps write the output.
    pub reduces: u32,
    /// Output directory; must not exist when the job is submitted.
    pub output: String,
    pub output_format: OutputFormat,
    /// Job configuration (`-D key=value`), exported to streaming tasks'
    /// environment with non-alphanumerics turned into `_`.
    pub conf: BTreeMap<String, String>,
    /// Extra environment of the task processes (`-cmdenv K=V`).
    pub env: BTreeMap<String, String>,
    /// DFS paths of files to place in each task's working directory (under
    /// their base name); `tusk job streaming -file` uploads local files to
    /// a staging directory first and lists them here.
    pub files: Vec<String>,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            name: String::new(),
            inputs: Vec::new(),
            input_format: InputFormat::Text,
            mapper: Program::Identity,
            combiner: None,
            reducer: Program::Identity,
            partitioner: Partitioner::Hash,
            reduces: 1,
            output: String::new(),
            output_format: OutputFormat::Text,
            conf: BTreeMap::new(),
            env: BTreeMap::new(),
            files: Vec::new(),
        }
    }
}

/// How input bytes become records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputFormat {
    /// Lines (`\n`, a trailing `\r` removed); key = the line's byte offset
    /// in the file (decimal text), value = the line. A line crossing a split
    /// boundary belongs to the split where it starts (Hadoop's
    /// LineRecordReader). Streaming mappers see only the line.
    Text,
    /// Lines split at the first tab: key = before, value = after (the whole
    /// line and an empty value when there is no tab).
    KeyValueText,
    /// 100-byte gensort/TeraSort records: key = first 10 bytes, value = the
    /// other 90. A record belongs to the split where it starts.
    Tera,
    /// No input files: `maps` synthetic splits over row numbers `0..rows`
    /// (teragen). Key = the row number as 8 big-endian bytes, value empty.
    Range { rows: u64, maps: u32 },
    /// One split per input file, whatever its size (teravalidate);
    /// records as [`InputFormat::Tera`].
    WholeFileTera,
}

/// The user code of a map, combine or reduce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Program {
    /// Passes records through unchanged.
    Identity,
    /// A Hadoop Streaming command line, run with `sh -c` in the task's
    /// working directory: records are lines on stdin/stdout, `key\tvalue`.
    Command { command: String },
    /// A built-in function (see [`crate::builtin`]), with arguments.
    Builtin { name: String, args: Vec<String> },
}

/// Which reducer gets a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Partitioner {
    /// CRC32C of the key's bytes modulo the number of reducers.
    Hash,
    /// Total order: reducer i gets keys in `[split_points[i-1],
    /// split_points[i])`; `split_points` are sorted, hex-encoded keys,
    /// `reduces - 1` of them (TeraSort's sampled partitioner).
    TotalOrder { split_points: Vec<String> },
}

/// How output records become bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputFormat {
    /// `key\tvalue\n`; `key\n` when the value is empty (a streaming line
    /// without a tab comes back unchanged).
    Text,
    /// Key bytes then value bytes, nothing between or after (TeraSort).
    Raw,
}

/// A piece of input for one map task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Split {
    /// Bytes `[start, start + length)` of a DFS file; `hosts` are the
    /// datanodes holding the block(s) (transfer addresses), `racks` their
    /// racks, for locality.
    File { path: String, start: u64, length: u64, file_length: u64, hosts: Vec<String>, racks: Vec<String> },
    /// Rows `[first_row, first_row + rows)` of a generated input.
    Range { first_row: u64, rows: u64 },
}

/// What one task attempt does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// `job_<jtstart>_<seq>`.
    pub job_id: String,
    /// `task_<jtstart>_<seq>_m_000003` / `_r_000000`.
    pub task_id: String,
    /// `attempt_<jtstart>_<seq>_m_000003_1`.
    pub attempt_id: String,
    /// 0 for the first attempt of the task.
    pub attempt_number: u32,
    pub kind: TaskKind,
    pub job: JobSpec,
    /// Namenode RPC address.
    pub namenode: String,
    /// Jobtracker RPC address (TaskUmbilical).
    pub jobtracker: String,
    /// The user the job runs as (DFS identity of the task).
    pub user: String,
}

/// Map or reduce, with what it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskKind {
    /// Map task `index`, reading `split`.
    Map { index: u32, split: Split },
    /// Reduce task for `partition`, merging the outputs of `num_maps` maps.
    Reduce { partition: u32, num_maps: u32 },
}

/// What a finished attempt reports back (the `result_json` of
/// `AttemptFinished`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskResult {
    /// Map: bytes of each partition of its output.
    pub partition_bytes: Vec<u64>,
    /// Files written under the attempt's output directory (DFS paths).
    pub output_files: Vec<String>,
}

/// Staging area of a job's output: attempt `a` of task `t` writes under
/// `work_path(output, a)`; task commit renames it to
/// `committed_task_path(output, t)`; job commit moves every committed
/// task's files into `output` and writes `_SUCCESS`.
pub mod layout {
    /// `OUT/_temporary`: everything uncommitted; deleted at job commit or abort.
    pub fn temporary(output: &str) -> String {
        format!("{}/_temporary", output.trim_end_matches('/'))
    }
    /// `OUT/_temporary/0/_temporary/<attempt>`: where an attempt writes.
    pub fn work_path(output: &str, attempt_id: &str) -> String {
        format!("{}/0/_temporary/{attempt_id}", temporary(output))
    }
    /// `OUT/_temporary/0/<task>`: a committed task's files.
    pub fn committed_task_path(output: &str, task_id: &str) -> String {
        format!("{}/0/{task_id}", temporary(output))
    }
    /// `OUT/_SUCCESS`.
    pub fn success_marker(output: &str) -> String {
        format!("{}/_SUCCESS", output.trim_end_matches('/'))
    }
    /// Output file name of reduce partition `p` (`part-r-00000`) or of map
    /// `p` in a map-only job (`part-m-00000`).
    pub fn part_name(map_only: bool, p: u32) -> String {
        format!("part-{}-{p:05}", if map_only { 'm' } else { 'r' })
    }
}
