//! Tusk SQL: a Hive-style catalog and HiveQL on Apache DataFusion.
//!
//! A [`Session`] parses HiveQL ([`hiveql`]), keeps DDL in the metastore (a
//! role of the jobtracker, `tusk_metastore`), reads and writes table data in
//! the DFS through [`store::DfsStore`], and plans queries with DataFusion.

mod ddl;
mod dist;
mod dml;
mod error;
mod exec;
mod format;
mod hiveql;
mod outcome;
pub mod script;
mod session;
mod show;
mod stats;
pub mod store;
mod table;
pub mod tpch;
pub mod task;
mod types;
mod udf;
mod write;

pub use error::{Position, Result, SqlError};
pub use outcome::{Outcome, StatementResult};
pub use session::{SINGLE_TASK_MAX_BYTES, Session, SqlConfig};
