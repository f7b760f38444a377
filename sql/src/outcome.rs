//! What a statement gives back.

use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

/// The result of one statement.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A result set (queries, SHOW, DESCRIBE, EXPLAIN).
    Rows { schema: SchemaRef, batches: Vec<RecordBatch> },
    /// A statement without rows; the text says what was done
    /// ("OK", "inserted 120 rows into default.sales").
    Done(String),
}

impl Outcome {
    /// Rows in a result set (0 for `Done`).
    pub fn row_count(&self) -> usize {
        match self {
            Outcome::Rows { batches, .. } => batches.iter().map(|b| b.num_rows()).sum(),
            Outcome::Done(_) => 0,
        }
    }
}

/// One statement of a script, run.
#[derive(Debug, Clone)]
pub struct StatementResult {
    /// The statement as run (after `--hivevar` substitution).
    pub text: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
}
