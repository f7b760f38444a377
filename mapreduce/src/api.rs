//! The contract between the engine and user code (built-in functions,
//! Hadoop Streaming commands, identity).
//!
//! The engine hands a [`MapRunner`] the whole split as a [`RecordReader`]
//! and an [`Emit`] that partitions, sorts and spills; it hands a
//! [`ReduceRunner`] (reducer or combiner) the merged, sorted input as a
//! [`GroupedReader`] and an [`Emit`] that writes output (or spill records).
//! Both run on a blocking thread and may use scoped threads (the readers
//! and emitters are `Send`).

use crate::error::Result;
use crate::spec::TaskSpec;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Records of a split, in order.
pub trait RecordReader: Send {
    /// Reads the next record into `key` and `value` (both cleared first);
    /// false at the end of the split.
    fn next(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<bool>;
}

/// Sorted records grouped by key.
pub trait GroupedReader: Send {
    /// Moves to the next key group; false at the end. Values of the current
    /// group not read yet are skipped.
    fn next_key(&mut self) -> Result<bool>;
    /// Key of the current group.
    fn key(&self) -> &[u8];
    /// Next value of the current group; `None` when the group is over.
    fn next_value(&mut self) -> Result<Option<&[u8]>>;
}

/// Where user code puts its output records.
pub trait Emit: Send {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
}

/// Runs a map function over a whole split.
pub trait MapRunner: Send {
    fn run(self: Box<Self>, input: &mut dyn RecordReader, out: &mut dyn Emit, ctx: &TaskContext) -> Result<()>;
}

/// Runs a reduce function (or a combiner) over grouped, sorted input.
pub trait ReduceRunner: Send {
    fn run(self: Box<Self>, input: &mut dyn GroupedReader, out: &mut dyn Emit, ctx: &TaskContext) -> Result<()>;
}

/// Whether a [`ReduceRunner`] reduces or combines (a combiner's output goes
/// back into map output, and it may run many times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceRole {
    Combine,
    Reduce,
}

/// What user code may know and do about the attempt running it.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub spec: TaskSpec,
    /// The attempt's working directory (files from `-file` are here; user
    /// commands run here).
    pub work_dir: PathBuf,
    /// DFS path of the map's input file (empty for reducers and generated input).
    pub input_file: String,
    pub reporter: Reporter,
}

/// Counters and status of an attempt; cheap to clone, shared between threads.
#[derive(Debug, Clone, Default)]
pub struct Reporter {
    inner: Arc<Mutex<ReporterState>>,
}

#[derive(Debug, Default)]
struct ReporterState {
    counters: BTreeMap<(String, String), i64>,
    status: String,
    /// Bumped on every call: the engine reports liveness from it.
    ticks: u64,
}

impl Reporter {
    fn with<R>(&self, f: impl FnOnce(&mut ReporterState) -> R) -> R {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.ticks += 1;
        f(&mut s)
    }
    /// Adds `amount` to counter `group`/`name`.
    pub fn incr(&self, group: &str, name: &str, amount: i64) {
        self.with(|s| *s.counters.entry((group.to_string(), name.to_string())).or_insert(0) += amount);
    }
    /// Sets the attempt's status message.
    pub fn set_status(&self, status: &str) {
        self.with(|s| s.status = status.to_string());
    }
    /// Marks the attempt alive (no counter change).
    pub fn progress(&self) {
        self.with(|_| ());
    }
    /// Every counter: (group, name, value).
    pub fn counters(&self) -> Vec<(String, String, i64)> {
        self.with(|s| s.counters.iter().map(|((g, n), v)| (g.clone(), n.clone(), *v)).collect())
    }
    /// The value of one counter (0 when never set).
    pub fn counter(&self, group: &str, name: &str) -> i64 {
        self.with(|s| s.counters.get(&(group.to_string(), name.to_string())).copied().unwrap_or(0))
    }
    pub fn status(&self) -> String {
        self.with(|s| s.status.clone())
    }
    /// How many reporter calls so far (changes whenever anything happened).
    pub fn ticks(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).ticks
    }
}

/// Counter groups and names shared with Hadoop's.
pub mod counters {
    pub const TASK: &str = "TaskCounter";
    pub const JOB: &str = "JobCounter";
    pub const FS: &str = "FileSystemCounter";

    pub const MAP_INPUT_RECORDS: &str = "MAP_INPUT_RECORDS";
    pub const MAP_OUTPUT_RECORDS: &str = "MAP_OUTPUT_RECORDS";
    pub const MAP_OUTPUT_BYTES: &str = "MAP_OUTPUT_BYTES";
    pub const COMBINE_INPUT_RECORDS: &str = "COMBINE_INPUT_RECORDS";
    pub const COMBINE_OUTPUT_RECORDS: &str = "COMBINE_OUTPUT_RECORDS";
    pub const SPILLED_RECORDS: &str = "SPILLED_RECORDS";
    pub const REDUCE_INPUT_GROUPS: &str = "REDUCE_INPUT_GROUPS";
    pub const REDUCE_INPUT_RECORDS: &str = "REDUCE_INPUT_RECORDS";
    pub const REDUCE_OUTPUT_RECORDS: &str = "REDUCE_OUTPUT_RECORDS";
    pub const REDUCE_SHUFFLE_BYTES: &str = "REDUCE_SHUFFLE_BYTES";
    pub const HDFS_BYTES_READ: &str = "HDFS_BYTES_READ";
    pub const HDFS_BYTES_WRITTEN: &str = "HDFS_BYTES_WRITTEN";

    pub const DATA_LOCAL_MAPS: &str = "DATA_LOCAL_MAPS";
    pub const RACK_LOCAL_MAPS: &str = "RACK_LOCAL_MAPS";
    pub const OTHER_LOCAL_MAPS: &str = "OTHER_LOCAL_MAPS";
    pub const TOTAL_LAUNCHED_MAPS: &str = "TOTAL_LAUNCHED_MAPS";
    pub const TOTAL_LAUNCHED_REDUCES: &str = "TOTAL_LAUNCHED_REDUCES";
    pub const NUM_FAILED_MAPS: &str = "NUM_FAILED_MAPS";
    pub const NUM_FAILED_REDUCES: &str = "NUM_FAILED_REDUCES";
    pub const NUM_KILLED_MAPS: &str = "NUM_KILLED_MAPS";
    pub const NUM_KILLED_REDUCES: &str = "NUM_KILLED_REDUCES";
    pub const SPECULATIVE_MAPS: &str = "SPECULATIVE_MAPS";
    pub const SPECULATIVE_REDUCES: &str = "SPECULATIVE_REDUCES";
}
