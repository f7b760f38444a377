//! Distributed execution: DataFusion's physical plan is cut into stages at
//! its exchanges ([`planner`]), each stage's fragment is serialized with
//! datafusion-proto ([`codec`]) and run as tasks by the jobtracker's `sql`
//! engine on workers ([`crate::task`]); stages exchange data through Arrow
//! IPC shuffle files served by the workers ([`reader`]); a selective
//! join build side filters its probe side's rows before their shuffle
//! ([`filter`]); a task narrows its fragment to its own partition so that
//! DataFusion's dynamic filters work inside it ([`narrow`]).

pub(crate) mod codec;
pub(crate) mod filter;
pub(crate) mod narrow;
pub(crate) mod planner;
pub(crate) mod reader;
pub(crate) mod run;
pub(crate) mod subquery;

use std::path::PathBuf;

use tusk_mapreduce::api::Reporter;

/// What a task's shuffle readers need, handed to them through the session
/// configuration (`SessionConfig::with_extension`).
#[derive(Debug, Clone)]
pub struct ShuffleEnv {
    pub job_id: String,
    pub attempt_id: String,
    /// Jobtracker `host:port` (TaskUmbilical).
    pub jobtracker: String,
    /// Where fetched segments too big for memory go.
    pub scratch_dir: PathBuf,
    /// Liveness and counters of the attempt.
    pub reporter: Reporter,
}
