//! What the planner knows of a table's Parquet files before reading them:
//! row counts, sizes and column bounds (DataFusion sizes join sides with
//! them: a small build side is broadcast to every probe task instead of
//! both sides being shuffled), and where each row group starts (scans are
//! cut at row groups, so tasks get equal shares). Read from the footers
//! and kept for the session, as Hive keeps `numRows`/`totalSize` in its
//! metastore.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{Result, Statistics};
use datafusion::datasource::physical_plan::FileGroup;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use object_store::{ObjectMeta, ObjectStore};
use parking_lot::Mutex;

/// A Parquet file's footer facts.
#[derive(Debug)]
pub struct FileFacts {
    pub stats: Arc<Statistics>,
    /// Row groups in file order.
    pub row_groups: Vec<RowGroup>,
}

/// Where a row group starts (its first page, the offset DataFusion uses
/// to decide which byte range reads it) and its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowGroup {
    pub start: u64,
    pub rows: u64,
}

/// Footer facts by file, valid while the file's size and modification time
/// are unchanged. Shared by the tables of one session.
#[derive(Debug, Default)]
pub struct StatsCache {
    files: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug)]
struct Cached {
    size: u64,
    modified_ms: i64,
    schema: SchemaRef,
    facts: Arc<FileFacts>,
}

/// Footers not cached yet are read this many at a time.
const FOOTER_READS: usize = 8;

impl StatsCache {
    /// The facts of each file in `files` (by location), reading the footers
    /// not cached yet. A file whose footer cannot be read has none (the
    /// scan reports the error when it runs).
    pub async fn facts(
        &self,
        state: &dyn Session,
        store: Arc<dyn ObjectStore>,
        file_schema: &SchemaRef,
        files: &[ObjectMeta],
    ) -> HashMap<String, Arc<FileFacts>> {
        let missing: Vec<&ObjectMeta> = {
            let cached = self.files.lock();
            files.iter().filter(|m| !cached.get(m.location.as_ref()).is_some_and(|c| c.is_for(m, file_schema))).collect()
        };
        let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        for chunk in missing.chunks(FOOTER_READS) {
            let reads = chunk.iter().map(|meta| {
                let (store, cache) = (store.clone(), cache.clone());
                async move {
                    let read = async {
                        let md = DFParquetMetadata::new(store.as_ref(), meta).with_file_metadata_cache(Some(cache)).fetch_metadata().await?;
                        let stats = DFParquetMetadata::statistics_from_parquet_metadata(&md, file_schema)?;
                        let row_groups = md
                            .row_groups()
                            .iter()
                            .map(|rg| {
                                let col = rg.column(0);
                                let start = col.dictionary_page_offset().unwrap_or_else(|| col.data_page_offset());
                                RowGroup { start: start.max(0) as u64, rows: rg.num_rows().max(0) as u64 }
                            })
                            .collect();
                        Ok::<_, datafusion::error::DataFusionError>(FileFacts { stats: Arc::new(stats), row_groups })
                    };
                    (meta, read.await)
                }
            });
            for (meta, facts) in futures::future::join_all(reads).await {
                match facts {
                    Ok(facts) => {
                        let entry = Cached {
                            size: meta.size,
                            modified_ms: meta.last_modified.timestamp_millis(),
                            schema: file_schema.clone(),
                            facts: Arc::new(facts),
                        };
                        self.files.lock().insert(meta.location.to_string(), entry);
                    }
                    Err(e) => tracing::debug!(file = %meta.location, "no footer facts: {e}"),
                }
            }
        }
        let cached = self.files.lock();
        files
            .iter()
            .filter_map(|m| {
                let c = cached.get(m.location.as_ref()).filter(|c| c.is_for(m, file_schema))?;
                Some((m.location.to_string(), c.facts.clone()))
            })
            .collect()
    }
}

impl Cached {
    fn is_for(&self, meta: &ObjectMeta, schema: &SchemaRef) -> bool {
        self.size == meta.size && self.modified_ms == meta.last_modified.timestamp_millis() && self.schema == *schema
    }
}

/// Each group's statistics (the sum of its files') and the table's.
pub fn of_groups(groups: Vec<FileGroup>, schema: &SchemaRef) -> Result<(Vec<FileGroup>, Statistics)> {
    let groups = groups
        .into_iter()
        .map(|g| {
            let stats = Statistics::try_merge_iter(g.iter().filter_map(|f| f.statistics.as_deref()), schema)?;
            Ok(g.with_statistics(Arc::new(stats)))
        })
        .collect::<Result<Vec<FileGroup>>>()?;
    let total = Statistics::try_merge_iter(groups.iter().filter_map(|g| g.file_statistics(None)), schema)?;
    Ok((groups, total))
}

/// The estimated statistics of a fraction of a file (some of its row
/// groups): counts and sizes scaled, bounds kept, all inexact.
pub fn share_of(stats: &Statistics, fraction: f64) -> Statistics {
    let fraction = fraction.clamp(0.0, 1.0);
    let mut s = stats.clone().to_inexact();
    s.num_rows = s.num_rows.with_estimated_selectivity(fraction);
    s.total_byte_size = s.total_byte_size.with_estimated_selectivity(fraction);
    for c in &mut s.column_statistics {
        c.null_count = c.null_count.with_estimated_selectivity(fraction);
        c.byte_size = c.byte_size.with_estimated_selectivity(fraction);
        c.sum_value = Precision::Absent;
    }
    s
}

/// Byte ranges of a file of `size` bytes, one per row group: each holds
/// its row group's start and no other's (the first starts at 0, the last
/// ends at the end of the file). With their rows.
pub fn row_group_ranges(row_groups: &[RowGroup], size: u64) -> Vec<(u64, u64, u64)> {
    let n = row_groups.len();
    (0..n)
        .map(|i| {
            let start = if i == 0 { 0 } else { row_groups[i].start };
            let end = if i + 1 == n { size } else { row_groups[i + 1].start };
            (start, end.max(start), row_groups[i].rows)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::ColumnStatistics;

    #[test]
    fn a_range_gets_its_share_of_the_counts() {
        let stats = Statistics {
            num_rows: Precision::Exact(1000),
            total_byte_size: Precision::Exact(8000),
            column_statistics: vec![ColumnStatistics::new_unknown().with_null_count(Precision::Exact(100))],
        };
        let s = share_of(&stats, 0.25);
        assert_eq!(s.num_rows, Precision::Inexact(250));
        assert_eq!(s.total_byte_size, Precision::Inexact(2000));
        assert_eq!(s.column_statistics[0].null_count, Precision::Inexact(25));
    }

    #[test]
    fn each_row_group_range_holds_its_own_start_only() {
        let rgs = [RowGroup { start: 4, rows: 10 }, RowGroup { start: 100, rows: 20 }, RowGroup { start: 250, rows: 5 }];
        let r = row_group_ranges(&rgs, 400);
        assert_eq!(r, vec![(0, 100, 10), (100, 250, 20), (250, 400, 5)]);
        for (i, (s, e, _)) in r.iter().enumerate() {
            for (j, g) in rgs.iter().enumerate() {
                assert_eq!((*s..*e).contains(&g.start), i == j);
            }
        }
        assert!(row_group_ranges(&[], 10).is_empty());
    }
}
