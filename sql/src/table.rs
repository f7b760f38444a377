//! [`TuskTable`]: a catalog table as DataFusion sees it.
//!
//! The partitions come from the metastore (not from the directory tree):
//! filters on partition columns are evaluated against the registered
//! partitions' values, and only the kept partitions' directories are listed
//! and read. Files are cut into one byte range per DFS block (Parquet row
//! groups and text lines are read by the range holding their start), and
//! ranges are grouped into scan partitions by the datanodes holding them,
//! so a scan task can run beside its blocks.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, lit, try_cast, when};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::projection::ProjectionExec;
use object_store::{ObjectMeta, ObjectStore};
use parking_lot::Mutex;
use tusk_client::BlockLocation;
use tusk_metastore::paths;
use tusk_proto::metastore as pb;

use crate::error::{Result, SqlError};
use crate::format::{Format, Storage};
use crate::dist::planner::{BlockHosts, FileBlocks};
use crate::stats::{FileFacts, StatsCache};
use crate::store::{self, DfsStore};
use crate::types;

/// A catalog table with its partitions, ready to scan.
#[derive(Debug)]
pub struct TuskTable {
    pub table: pb::Table,
    pub partitions: Vec<pb::Partition>,
    schema: SchemaRef,
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    storage: Storage,
    store: Arc<DfsStore>,
    stats: Arc<StatsCache>,
    /// Listings made for this statement, by directories: a statement
    /// planned twice (see `Engine::physical_plan`) lists once.
    listed: Mutex<HashMap<Vec<String>, Vec<Listed>>>,
}

/// One partition directory to read and the values of its partition columns.
#[derive(Debug, Clone)]
pub struct PartitionDir {
    pub dir: String,
    pub values: Vec<ScalarValue>,
}

impl TuskTable {
    pub fn new(table: pb::Table, partitions: Vec<pb::Partition>, store: Arc<DfsStore>, stats: Arc<StatsCache>) -> Result<TuskTable> {
        let data = types::arrow_fields(&table.columns)?;
        let partition_fields = types::arrow_fields(&table.partition_columns)?;
        let file_schema = Arc::new(Schema::new(data.clone()));
        let schema = Arc::new(Schema::new(data.into_iter().chain(partition_fields.iter().cloned()).collect::<Vec<_>>()));
        let storage = Storage::of(&table)?;
        Ok(TuskTable { table, partitions, schema, file_schema, partition_fields, storage, store, stats, listed: Mutex::default() })
    }

    /// Directory of a registered partition.
    pub fn partition_dir(&self, p: &pb::Partition) -> String {
        if !p.location.is_empty() {
            return p.location.clone();
        }
        let names: Vec<&str> = self.table.partition_columns.iter().map(|c| c.name.as_str()).collect();
        format!("{}/{}", self.table.location.trim_end_matches('/'), paths::partition_path(&names, &p.values))
    }

    /// The directories a scan with `filters` reads.
    pub fn pruned_dirs(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<PartitionDir>> {
        if self.partition_fields.is_empty() {
            return Ok(vec![PartitionDir { dir: self.table.location.clone(), values: vec![] }]);
        }
        let mut values: Vec<Vec<ScalarValue>> = Vec::with_capacity(self.partitions.len());
        for p in &self.partitions {
            let mut row = Vec::with_capacity(self.partition_fields.len());
            for (f, v) in self.partition_fields.iter().zip(&p.values) {
                row.push(partition_value(v, f.data_type())?);
            }
            values.push(row);
        }
        let mut keep = vec![true; self.partitions.len()];
        let names: Vec<&str> = self.partition_fields.iter().map(|f| f.name().as_str()).collect();
        let part_filters: Vec<&Expr> = filters.iter().filter(|f| expr_applicable_for_cols(&names, f)).collect();
        if !part_filters.is_empty() && !self.partitions.is_empty() {
            let schema = Arc::new(Schema::new(self.partition_fields.clone()));
            let columns = (0..self.partition_fields.len())
                .map(|c| ScalarValue::iter_to_array(values.iter().map(|r| r[c].clone())))
                .collect::<DfResult<Vec<ArrayRef>>>()
                .map_err(SqlError::execution)?;
            let batch = RecordBatch::try_new_with_options(
                schema.clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(values.len())),
            )
            .map_err(SqlError::execution)?;
            let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(SqlError::execution)?;
            for f in part_filters {
                let expr = state.create_physical_expr(f.clone(), &df_schema).map_err(SqlError::execution)?;
                let out = expr.evaluate(&batch).and_then(|v| v.into_array(batch.num_rows())).map_err(SqlError::execution)?;
                let Some(mask) = out.as_any().downcast_ref::<BooleanArray>() else {
                    continue;
                };
                for (i, k) in keep.iter_mut().enumerate() {
                    *k &= mask.is_valid(i) && mask.value(i);
                }
            }
        }
        Ok(self
            .partitions
            .iter()
            .zip(values)
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|((p, values), _)| PartitionDir { dir: self.partition_dir(p), values })
            .collect())
    }

    /// The files of the kept directories with their blocks.
    pub async fn list(&self, dirs: &[PartitionDir]) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        for d in dirs {
            let prefix = object_path(&d.dir)?;
            let listed = match self.store.list_with_delimiter(Some(&prefix)).await {
                Ok(l) => l.objects,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(SqlError::Dfs(e.to_string())),
            };
            let mut objects = listed;
            objects.sort_by(|a, b| a.location.cmp(&b.location));
            for meta in objects {
                if meta.size == 0 {
                    continue;
                }
                let dfs_path = store::dfs_path(&meta.location);
                let blocks = self.store.block_locations(&dfs_path, 0, meta.size).await.unwrap_or_default();
                out.push(Listed { meta, blocks, values: d.values.clone() });
            }
        }
        Ok(out)
    }

    /// The byte ranges to scan: a Parquet file with known footer facts is
    /// cut at its row groups (with each range's share of the statistics);
    /// another splittable file is cut at its blocks; the rest are whole.
    /// Each range carries the hosts of the block holding most of it.
    pub fn cut(&self, files: Vec<Listed>, facts: &HashMap<String, Arc<FileFacts>>) -> Vec<PartitionedFile> {
        let mut out = Vec::new();
        for l in files {
            let size = l.meta.size;
            let file_facts = facts.get(l.meta.location.as_ref());
            let cuts: Vec<(u64, u64, Option<f64>)> = match file_facts {
                Some(f) if !f.row_groups.is_empty() => {
                    let rows: u64 = f.row_groups.iter().map(|g| g.rows).sum();
                    crate::stats::row_group_ranges(&f.row_groups, size)
                        .into_iter()
                        .map(|(s, e, r)| (s, e, Some(if rows == 0 { 0.0 } else { r as f64 / rows as f64 })))
                        .collect()
                }
                _ if self.storage.splittable() && l.blocks.len() > 1 => {
                    l.blocks.iter().map(|b| (b.offset, (b.offset + b.length).min(size), None)).collect()
                }
                _ => vec![(0, size, None)],
            };
            let whole = cuts.len() == 1;
            for (s, e, share) in cuts {
                let mut f = PartitionedFile::new_from_meta(l.meta.clone());
                if !whole {
                    f = f.with_range(s as i64, e as i64);
                }
                f.partition_values = l.values.clone();
                if let Some(facts) = file_facts {
                    let stats = match share {
                        Some(x) if !whole => Arc::new(crate::stats::share_of(&facts.stats, x)),
                        _ => facts.stats.clone(),
                    };
                    f = f.with_statistics(stats);
                }
                f.extensions.insert(BlockHosts(hosts_of_range(&l.blocks, s, e)));
                f.extensions.insert(FileBlocks(l.blocks.len()));
                out.push(f);
            }
        }
        out
    }
}

/// A listed data file.
#[derive(Debug, Clone)]
pub struct Listed {
    pub meta: ObjectMeta,
    pub blocks: Vec<BlockLocation>,
    /// Its partition's values.
    pub values: Vec<ScalarValue>,
}

/// The hosts of the block holding most of bytes `start..end`.
fn hosts_of_range(blocks: &[BlockLocation], start: u64, end: u64) -> Vec<String> {
    blocks
        .iter()
        .map(|b| (b, (b.offset + b.length).min(end).saturating_sub(b.offset.max(start))))
        .filter(|(_, overlap)| *overlap > 0)
        .max_by_key(|(b, overlap)| (*overlap, std::cmp::Reverse(b.offset)))
        .or_else(|| blocks.first().map(|b| (b, 0)))
        .map(|(b, _)| b.hosts.clone())
        .unwrap_or_default()
}

/// The object-store path of a DFS location (`/a/b` or `dfs:///a/b`).
pub fn object_path(location: &str) -> Result<object_store::path::Path> {
    let p = location.strip_prefix("dfs://").unwrap_or(location);
    if !p.starts_with('/') {
        return Err(SqlError::unsupported(format!("location {location:?}: only DFS paths (/dir or dfs:///dir) are supported")));
    }
    object_store::path::Path::parse(p.trim_matches('/')).map_err(|e| SqlError::invalid(format!("location {location:?}: {e}")))
}

/// A partition value from its directory text.
pub fn partition_value(v: &str, t: &datafusion::arrow::datatypes::DataType) -> Result<ScalarValue> {
    if v == paths::DEFAULT_PARTITION {
        return ScalarValue::try_new_null(t).map_err(SqlError::execution);
    }
    ScalarValue::try_from_string(v.to_string(), t)
        .map_err(|e| SqlError::invalid(format!("partition value {v:?} is not a {t}: {e}")))
}

/// Spreads ranges over at most `n` groups (scan tasks), largest first:
/// each group has a home datanode (round-robin over the hosts holding the
/// blocks), and a range goes to the least loaded group at home on one of
/// its hosts unless that group would be a whole range ahead of the least
/// loaded one; then it goes there.
pub fn balance(mut files: Vec<PartitionedFile>, n: usize) -> Vec<FileGroup> {
    let n = n.max(1).min(files.len().max(1));
    let len = |f: &PartitionedFile| match &f.range {
        Some(r) => (r.end - r.start) as u64,
        None => f.object_meta.size,
    };
    let hosts_of = |f: &PartitionedFile| f.extensions.get::<BlockHosts>().map(|h| h.0.clone()).unwrap_or_default();
    let mut all_hosts: Vec<String> = files.iter().flat_map(hosts_of).collect();
    all_hosts.sort();
    all_hosts.dedup();
    files.sort_by(|a, b| len(b).cmp(&len(a)).then_with(|| a.object_meta.location.cmp(&b.object_meta.location)));
    let mut groups: Vec<(u64, Option<String>, Vec<PartitionedFile>)> =
        (0..n).map(|i| (0, (!all_hosts.is_empty()).then(|| all_hosts[i % all_hosts.len()].clone()), Vec::new())).collect();
    for f in files {
        let size = len(&f);
        let hosts = hosts_of(&f);
        let least = groups.iter().map(|g| g.0).min().unwrap_or(0);
        let local = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.1.as_ref().is_some_and(|h| hosts.contains(h)))
            .min_by_key(|(_, g)| g.0)
            .map(|(i, g)| (i, g.0));
        let pick = match local {
            Some((i, load)) if load <= least + size => Some(i),
            _ => groups.iter().enumerate().min_by_key(|(_, g)| g.0).map(|(i, _)| i),
        };
        if let Some(i) = pick {
            groups[i].0 += size;
            groups[i].2.push(f);
        }
    }
    groups.into_iter().filter(|g| !g.2.is_empty()).map(|g| FileGroup::new(g.2)).collect()
}

#[async_trait]
impl TableProvider for TuskTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let names: Vec<&str> = self.partition_fields.iter().map(|f| f.name().as_str()).collect();
        Ok(filters
            .iter()
            .map(|f| {
                if !names.is_empty() && expr_applicable_for_cols(&names, f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let dirs = self.pruned_dirs(state, filters).map_err(to_df)?;
        let key: Vec<String> = dirs.iter().map(|d| d.dir.clone()).collect();
        let cached = self.listed.lock().get(&key).cloned();
        let listed = match cached {
            Some(l) => l,
            None => {
                let l = self.list(&dirs).await.map_err(to_df)?;
                self.listed.lock().insert(key, l.clone());
                l
            }
        };
        let with_stats = self.storage.format == Format::Parquet;
        let facts = if with_stats {
            let metas: Vec<ObjectMeta> = listed.iter().map(|l| l.meta.clone()).collect();
            let store: Arc<dyn ObjectStore> = self.store.clone();
            self.stats.facts(state, store, &self.file_schema, &metas).await
        } else {
            HashMap::new()
        };
        let files = self.cut(listed, &facts);
        if files.is_empty() {
            // Nothing to read (an empty table or every partition pruned).
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let format = self.storage.file_format();
        let groups = balance(files, state.config().target_partitions());
        // Statistics for the planner only when every file has them: a
        // partial sum would understate the table.
        let (groups, statistics) = if with_stats && groups.iter().all(|g| g.iter().all(|f| f.statistics.is_some())) {
            let (groups, stats) = crate::stats::of_groups(groups, &self.schema)?;
            (groups, Some(stats))
        } else {
            (groups, None)
        };
        // Hive text: fields are read as strings, then the null marker becomes
        // NULL and the rest is converted leniently (a value that does not
        // parse is NULL, as with Hive's LazySimpleSerDe).
        let text = self.storage.format == Format::TextFile;
        let scan_schema = if text {
            Arc::new(Schema::new(
                self.file_schema.fields().iter().map(|f| f.as_ref().clone().with_data_type(DataType::Utf8)).collect::<Vec<_>>(),
            ))
        } else {
            self.file_schema.clone()
        };
        let source = format.file_source(
            TableSchema::builder(scan_schema).with_table_partition_cols(self.partition_fields.clone()).build(),
        );
        let mut conf = FileScanConfigBuilder::new(store::object_store_url(), source)
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit);
        if let Some(stats) = statistics {
            conf = conf.with_statistics(stats);
        }
        let conf = conf.build();
        let plan = format.create_physical_plan(state, conf).await?;
        if !text {
            return Ok(plan);
        }
        let out = plan.schema();
        let df_schema = DFSchema::try_from(out.as_ref().clone())?;
        let mut exprs = Vec::with_capacity(out.fields().len());
        for f in out.fields() {
            let column = Expr::Column(Column::new_unqualified(f.name()));
            let e = match self.file_schema.field_with_name(f.name()) {
                Ok(target) => {
                    let null = ScalarValue::try_new_null(target.data_type())?;
                    when(column.clone().eq(lit(self.storage.null.clone())), lit(null))
                        .otherwise(try_cast(column, target.data_type().clone()))?
                }
                Err(_) => column,
            };
            exprs.push((state.create_physical_expr(e, &df_schema)?, f.name().clone()));
        }
        Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
    }
}

fn to_df(e: SqlError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Table metadata for display, by name.
pub fn options_text(o: &HashMap<String, String>) -> String {
    let mut v: Vec<_> = o.iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.sort();
    v.join(", ")
}
