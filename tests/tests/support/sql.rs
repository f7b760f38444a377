//! Helpers for SQL tests: a session on a test cluster and result sets as
//! strings. Included by the SQL test files only (`#[path]`), so the other
//! test binaries do not link DataFusion.

#![allow(dead_code)]

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use tusk_sql::{Outcome, Session, SqlConfig};

use tusk_tests::TestCluster;

/// A SQL session on `cluster`, in the `default` database.
pub async fn session(cluster: &TestCluster) -> anyhow::Result<Session> {
    Ok(Session::connect(SqlConfig::new(cluster.namenode.clone(), cluster.jobtracker.clone())).await?)
}

/// A session on `cluster` that runs every query reading tables as stages
/// of parallel tasks, however small its input (no single-task shortcut).
pub async fn staged_session(cluster: &TestCluster) -> anyhow::Result<Session> {
    let mut config = SqlConfig::new(cluster.namenode.clone(), cluster.jobtracker.clone());
    config.single_task_max_bytes = 0;
    Ok(Session::connect(config).await?)
}

/// Rows of a result set, each cell as Arrow displays it (`NULL` for nulls).
pub fn rows(outcome: &Outcome) -> Vec<Vec<String>> {
    let Outcome::Rows { batches, .. } = outcome else {
        return vec![];
    };
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts)).collect::<Result<_, _>>().unwrap_or_default();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out
}

/// Runs one statement and returns its rows.
pub async fn query(s: &mut Session, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let o = s.execute(sql).await.map_err(|e| anyhow::anyhow!("{sql}: {e}"))?;
    Ok(rows(&o))
}

/// Runs statements that must succeed.
pub async fn exec(s: &mut Session, sql: &str) -> anyhow::Result<()> {
    s.execute(sql).await.map_err(|e| anyhow::anyhow!("{sql}: {e}"))?;
    Ok(())
}

/// Runs a statement that must fail; returns the error text.
pub async fn fails(s: &mut Session, sql: &str) -> String {
    match s.execute(sql).await {
        Ok(o) => panic!("{sql}: expected an error, got {o:?}"),
        Err(e) => e.to_string(),
    }
}

/// `[["a","b"],…]` from string slices, for comparisons.
pub fn table(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect()
}
