//! Generating the TPC-H tables with `tpchgen-arrow` and loading them
//! through a [`Session`].
//!
//! Generation is CPU-bound: each generator part runs on a blocking thread
//! and hands its batches through a small channel to the session's
//! `append_batches`, which writes one Parquet file set and commits it like an
//! INSERT. The next part is generated while the current one is written, and
//! each part of a table becomes its own append, so a table has (at least)
//! one file per part.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator, PartSuppGenerator,
    RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow, SupplierArrow,
};

use super::{TABLES, compare::result_rows, create_statements};
use crate::error::{Result, SqlError};
use crate::outcome::Outcome;
use crate::session::Session;

/// Batches a generator part hands over before it waits for the writer.
const CHANNEL_BATCHES: usize = 4;

/// One table, loaded.
#[derive(Debug, Clone)]
pub struct TableLoad {
    /// The table's name (`lineitem`).
    pub name: &'static str,
    /// Its DFS directory (from the metastore).
    pub location: String,
    /// Rows written.
    pub rows: u64,
    /// Appends (one per generator part), so at least this many files.
    pub parts: usize,
    /// Bytes of the generated Arrow batches in memory.
    pub arrow_bytes: u64,
    /// Generating and writing it.
    pub elapsed: Duration,
}

/// What [`load`] did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The database holding the tables.
    pub db: String,
    /// The TPC-H scale factor.
    pub scale: f64,
    /// The tables in load order ([`TABLES`]).
    pub tables: Vec<TableLoad>,
    /// Dropping, creating and loading everything.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Rows in all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// The load of `table`.
    pub fn table(&self, name: &str) -> Option<&TableLoad> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// Creates database `db` afresh (dropping it, and every table in it, if it
/// exists) with the eight TPC-H tables, and loads them at scale factor
/// `scale`, generating each table (except NATION and REGION, which have a
/// fixed 25 and 5 rows) in `parts` parts, one append each. Leaves the
/// session in the database it was in. `default` is refused: it is never
/// dropped.
pub async fn load(session: &mut Session, db: &str, scale: f64, parts: usize) -> Result<LoadReport> {
    load_with_progress(session, db, scale, parts, &mut |_| {}).await
}

/// [`load`], calling `on_table` as each table is done.
pub async fn load_with_progress(
    session: &mut Session,
    db: &str,
    scale: f64,
    parts: usize,
    on_table: &mut (dyn FnMut(&TableLoad) + Send),
) -> Result<LoadReport> {
    let db = db.to_lowercase();
    if db == "default" || db.is_empty() || !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(SqlError::invalid(format!("TPC-H database {db:?}: give a plain name other than default")));
    }
    if !(scale.is_finite() && scale > 0.0) {
        return Err(SqlError::invalid(format!("TPC-H scale factor {scale}: must be positive")));
    }
    let parts = parts.clamp(1, i32::MAX as usize);
    let started = Instant::now();
    session.execute(&format!("DROP DATABASE IF EXISTS {db} CASCADE")).await?;
    session.execute(&format!("CREATE DATABASE {db}")).await?;
    for st in create_statements(&db) {
        session.execute(&st).await?;
    }
    let mut tables = Vec::new();
    for name in TABLES {
        let t = Instant::now();
        let Some(table) = Table::named(name) else {
            return Err(SqlError::invalid(format!("no TPC-H table {name}")));
        };
        let location = location(session, &db, name).await?;
        let parts = if table.fixed_size() { 1 } else { parts };
        let qualified = format!("{db}.{name}");
        let arrow_bytes = Arc::new(AtomicU64::new(0));
        let mut rows = 0;
        let mut next = Some(generate(table, scale, 1, parts, arrow_bytes.clone()));
        for part in 1..=parts {
            let Some((stream, producer)) = next.take() else { break };
            if part < parts {
                next = Some(generate(table, scale, part + 1, parts, arrow_bytes.clone()));
            }
            rows += session.append_batches(&qualified, stream, false).await?;
            producer.await.map_err(|e| SqlError::execution(format!("generating {name} part {part}: {e}")))?;
        }
        let done = TableLoad {
            name,
            location,
            rows,
            parts,
            arrow_bytes: arrow_bytes.load(Ordering::Relaxed),
            elapsed: t.elapsed(),
        };
        on_table(&done);
        tables.push(done);
    }
    Ok(LoadReport { db, scale, tables, elapsed: started.elapsed() })
}

/// The DFS directory of `db.table`, as the metastore has it.
async fn location(session: &mut Session, db: &str, table: &str) -> Result<String> {
    let described = session.execute(&format!("DESCRIBE FORMATTED {db}.{table}")).await?;
    let Outcome::Rows { batches, .. } = described else {
        return Err(SqlError::invalid(format!("DESCRIBE FORMATTED {db}.{table} returned no rows")));
    };
    let rows = result_rows(&batches).map_err(SqlError::execution)?;
    rows.into_iter()
        .find(|r| r.first().is_some_and(|c| c.trim() == "Location:"))
        .and_then(|r| r.get(1).map(|l| l.trim().to_string()))
        .ok_or_else(|| SqlError::invalid(format!("DESCRIBE FORMATTED {db}.{table} shows no Location")))
}

/// Starts generating part `part` of `parts` of `table` on a blocking
/// thread; returns the stream of its batches and the thread's handle. The
/// thread stops early when the stream is dropped.
fn generate(
    table: Table,
    scale: f64,
    part: usize,
    parts: usize,
    arrow_bytes: Arc<AtomicU64>,
) -> (datafusion::execution::SendableRecordBatchStream, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<std::result::Result<RecordBatch, DataFusionError>>(CHANNEL_BATCHES);
    let producer = tokio::task::spawn_blocking(move || {
        for batch in table.batches(scale, part as i32, parts as i32) {
            let batch = batch.map_err(DataFusionError::from);
            if let Ok(b) = &batch {
                arrow_bytes.fetch_add(b.get_array_memory_size() as u64, Ordering::Relaxed);
            }
            let failed = batch.is_err();
            if tx.blocking_send(batch).is_err() || failed {
                break;
            }
        }
    });
    let batches = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    (Box::pin(RecordBatchStreamAdapter::new(table.schema(), batches)), producer)
}

/// A TPC-H table and its generator.
#[derive(Debug, Clone, Copy)]
enum Table {
    Region,
    Nation,
    Supplier,
    Customer,
    Part,
    PartSupp,
    Orders,
    LineItem,
}

type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

impl Table {
    fn named(name: &str) -> Option<Table> {
        Some(match name {
            "region" => Table::Region,
            "nation" => Table::Nation,
            "supplier" => Table::Supplier,
            "customer" => Table::Customer,
            "part" => Table::Part,
            "partsupp" => Table::PartSupp,
            "orders" => Table::Orders,
            "lineitem" => Table::LineItem,
            _ => return None,
        })
    }

    /// NATION and REGION do not scale: every part would hold all their rows.
    fn fixed_size(self) -> bool {
        matches!(self, Table::Region | Table::Nation)
    }

    fn schema(self) -> SchemaRef {
        match self {
            Table::Region => RegionArrow::schema_ref(),
            Table::Nation => NationArrow::schema_ref(),
            Table::Supplier => SupplierArrow::schema_ref(),
            Table::Customer => CustomerArrow::schema_ref(),
            Table::Part => PartArrow::schema_ref(),
            Table::PartSupp => PartSuppArrow::schema_ref(),
            Table::Orders => OrderArrow::schema_ref(),
            Table::LineItem => LineItemArrow::schema_ref(),
        }
    }

    /// The batches of part `part` (1-based) of `parts`.
    fn batches(self, scale: f64, part: i32, parts: i32) -> Batches {
        match self {
            Table::Region => Box::new(RegionArrow::new(RegionGenerator::new(scale, part, parts))),
            Table::Nation => Box::new(NationArrow::new(NationGenerator::new(scale, part, parts))),
            Table::Supplier => Box::new(SupplierArrow::new(SupplierGenerator::new(scale, part, parts))),
            Table::Customer => Box::new(CustomerArrow::new(CustomerGenerator::new(scale, part, parts))),
            Table::Part => Box::new(PartArrow::new(PartGenerator::new(scale, part, parts))),
            Table::PartSupp => Box::new(PartSuppArrow::new(PartSuppGenerator::new(scale, part, parts))),
            Table::Orders => Box::new(OrderArrow::new(OrderGenerator::new(scale, part, parts))),
            Table::LineItem => Box::new(LineItemArrow::new(LineItemGenerator::new(scale, part, parts))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_together_hold_every_row_once() {
        let rows = |t: Table, part, parts| t.batches(0.001, part, parts).map(|b| b.unwrap().num_rows()).sum::<usize>();
        for name in TABLES {
            let t = Table::named(name).unwrap();
            let whole = rows(t, 1, 1);
            assert!(whole > 0, "{name}");
            if !t.fixed_size() {
                assert_eq!(rows(t, 1, 3) + rows(t, 2, 3) + rows(t, 3, 3), whole, "{name}");
            }
            let schema = t.schema();
            assert!(t.batches(0.001, 1, 1).all(|b| b.unwrap().schema() == schema), "{name}");
        }
        assert_eq!(rows(Table::Nation, 1, 1), 25);
        assert_eq!(rows(Table::Region, 2, 3), 5, "fixed tables ignore parts");
    }
}
