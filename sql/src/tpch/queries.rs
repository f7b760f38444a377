//! The 22 TPC-H queries and their known answers at scale factor 0.01.
//!
//! Derived from the TPC-H specification; results are not comparable to
//! published TPC-H results.
//!
//! Each query is written from the specification (3.0.1, §2.4) with its
//! validation substitution parameters, in the dialect both Tusk (HiveQL on
//! DataFusion) and DataFusion's own SQL accept: `date '…' ± interval 'n'
//! day|month|year`, `extract(year from …)`, `substring(… from 1 for 2)`.

use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{Result, SqlError};
use crate::outcome::Outcome;
use crate::session::Session;

/// Query texts, `QUERIES[n - 1]` for query `n`. Q15 holds three statements.
pub const QUERIES: [&str; 22] = [
    include_str!("queries/q01.sql"),
    include_str!("queries/q02.sql"),
    include_str!("queries/q03.sql"),
    include_str!("queries/q04.sql"),
    include_str!("queries/q05.sql"),
    include_str!("queries/q06.sql"),
    include_str!("queries/q07.sql"),
    include_str!("queries/q08.sql"),
    include_str!("queries/q09.sql"),
    include_str!("queries/q10.sql"),
    include_str!("queries/q11.sql"),
    include_str!("queries/q12.sql"),
    include_str!("queries/q13.sql"),
    include_str!("queries/q14.sql"),
    include_str!("queries/q15.sql"),
    include_str!("queries/q16.sql"),
    include_str!("queries/q17.sql"),
    include_str!("queries/q18.sql"),
    include_str!("queries/q19.sql"),
    include_str!("queries/q20.sql"),
    include_str!("queries/q21.sql"),
    include_str!("queries/q22.sql"),
];

/// The scale factor of the known answers ([`answer`]).
pub const ANSWER_SCALE: f64 = 0.01;

/// Known results at scale factor [`ANSWER_SCALE`]: a header line, then one
/// `|`-separated line per row (an empty cell is NULL).
const ANSWERS: [&str; 22] = [
    include_str!("answers/sf0.01/q01.csv"),
    include_str!("answers/sf0.01/q02.csv"),
    include_str!("answers/sf0.01/q03.csv"),
    include_str!("answers/sf0.01/q04.csv"),
    include_str!("answers/sf0.01/q05.csv"),
    include_str!("answers/sf0.01/q06.csv"),
    include_str!("answers/sf0.01/q07.csv"),
    include_str!("answers/sf0.01/q08.csv"),
    include_str!("answers/sf0.01/q09.csv"),
    include_str!("answers/sf0.01/q10.csv"),
    include_str!("answers/sf0.01/q11.csv"),
    include_str!("answers/sf0.01/q12.csv"),
    include_str!("answers/sf0.01/q13.csv"),
    include_str!("answers/sf0.01/q14.csv"),
    include_str!("answers/sf0.01/q15.csv"),
    include_str!("answers/sf0.01/q16.csv"),
    include_str!("answers/sf0.01/q17.csv"),
    include_str!("answers/sf0.01/q18.csv"),
    include_str!("answers/sf0.01/q19.csv"),
    include_str!("answers/sf0.01/q20.csv"),
    include_str!("answers/sf0.01/q21.csv"),
    include_str!("answers/sf0.01/q22.csv"),
];

/// The text of query `n` (1 to 22).
pub fn query(n: usize) -> Option<&'static str> {
    n.checked_sub(1).and_then(|i| QUERIES.get(i)).copied()
}

/// The known result of query `n` at scale factor [`ANSWER_SCALE`], as CSV.
pub fn answer(n: usize) -> Option<&'static str> {
    n.checked_sub(1).and_then(|i| ANSWERS.get(i)).copied()
}

/// Runs query `n` in `session` (in its current database) and returns the
/// rows of its result set. For Q15 the view is dropped again even when the
/// query fails, so that the next run can create it.
pub async fn run_query(session: &mut Session, n: usize) -> Result<Vec<RecordBatch>> {
    let text = query(n).ok_or_else(|| SqlError::invalid(format!("no TPC-H query {n} (1 to 22)")))?;
    let mut results = Vec::new();
    let ran = session.run_script(text, &mut |r| results.push(r.outcome)).await;
    if let Err(e) = ran {
        if n == 15 {
            let _ = session.execute("DROP VIEW IF EXISTS revenue0").await;
        }
        return Err(e);
    }
    let mut sets = results.into_iter().filter_map(|o| match o {
        Outcome::Rows { batches, .. } => Some(batches),
        Outcome::Done(_) => None,
    });
    match (sets.next(), sets.next()) {
        (Some(batches), None) => Ok(batches),
        _ => Err(SqlError::invalid(format!("TPC-H query {n}: expected exactly one result set"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_and_answer_is_there() {
        assert!(query(0).is_none() && query(23).is_none() && answer(23).is_none());
        for n in 1..=22 {
            let q = query(n).unwrap();
            assert!(q.starts_with(&format!("-- Q{n} ")), "q{n}");
            let statements = crate::script::split(q);
            assert_eq!(statements.len(), if n == 15 { 3 } else { 1 }, "q{n}");
            let a = answer(n).unwrap();
            assert!(a.lines().count() >= 2, "q{n}: header and rows");
        }
    }
}
