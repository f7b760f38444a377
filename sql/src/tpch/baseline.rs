//! [`Baseline`]: plain single-process DataFusion over the Parquet files of
//! a loaded TPC-H database, for comparing Tusk's figures with.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use tusk_client::Client;

use super::{LoadReport, query};
use crate::error::{Result, SqlError};
use crate::script;
use crate::store::{self, DfsStore};

/// A DataFusion `SessionContext` with its default configuration, reading
/// the same files as Tusk through [`DfsStore`] (`dfs:///…` URLs), with
/// each TPC-H table registered as an external Parquet table under its
/// plain name. No metastore, no Tusk planning: the engine alone.
pub struct Baseline {
    ctx: SessionContext,
}

impl Baseline {
    /// A baseline over the tables `report` loaded.
    pub async fn new(dfs: Client, report: &LoadReport) -> Result<Baseline> {
        let tables: Vec<(&str, &str)> = report.tables.iter().map(|t| (t.name, t.location.as_str())).collect();
        Baseline::with_tables(dfs, &tables).await
    }

    /// A baseline over `(name, DFS directory)` tables.
    pub async fn with_tables(dfs: Client, tables: &[(&str, &str)]) -> Result<Baseline> {
        let ctx = SessionContext::new();
        store::register(ctx.runtime_env().as_ref(), Arc::new(DfsStore::new(dfs)));
        for (name, location) in tables {
            let url = store::table_url(location, true).map_err(SqlError::execution)?;
            let ddl = format!("CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION '{url}'");
            ctx.sql(&ddl).await.map_err(|e| SqlError::execution(format!("{ddl}: {e}")))?;
        }
        Ok(Baseline { ctx })
    }

    /// Runs TPC-H query `n` and returns the rows of its result set (for
    /// Q15, of the query between creating and dropping the view; the view
    /// is dropped even when the query fails).
    pub async fn run_query(&self, n: usize) -> Result<Vec<RecordBatch>> {
        let text = query(n).ok_or_else(|| SqlError::invalid(format!("no TPC-H query {n} (1 to 22)")))?;
        let ran = self.run_statements(text).await;
        if ran.is_err() && n == 15 {
            let _ = self.run_statements("DROP VIEW IF EXISTS revenue0").await;
        }
        let mut sets = ran?.into_iter().flatten();
        match (sets.next(), sets.next()) {
            (Some(batches), None) => Ok(batches),
            _ => Err(SqlError::invalid(format!("TPC-H query {n}: expected exactly one result set"))),
        }
    }

    /// Runs each statement of `text`; `Some(rows)` for those with a result set.
    async fn run_statements(&self, text: &str) -> Result<Vec<Option<Vec<RecordBatch>>>> {
        let mut out = Vec::new();
        for st in script::split(text) {
            let df = self.ctx.sql(&st.text).await.map_err(SqlError::execution)?;
            let has_columns = !df.schema().fields().is_empty();
            let batches = df.collect().await.map_err(SqlError::execution)?;
            out.push(has_columns.then_some(batches));
        }
        Ok(out)
    }
}
