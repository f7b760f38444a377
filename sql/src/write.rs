//! Writing query output into a staging directory: one file per output
//! partition directory (`k1=v1/k2=v2/`), in the table's format. Nothing
//! written here is visible in the table until the metastore commits it
//! (`CommitWrite`): the staging directory's name starts with `.`, which
//! every reader skips.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use object_store::ObjectStore;
use tusk_client::sqljob::SqlWriteSpec;
use tusk_metastore::paths;
use tusk_proto::metastore as pb;

use crate::error::{Result, SqlError};
use crate::format::{FileWriter, Storage};
use crate::store::DfsStore;
use crate::table::object_path;

/// Hive's `hive.exec.max.dynamic.partitions` default.
pub const MAX_DYNAMIC_PARTITIONS: usize = 1000;

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct WriteTarget {
    /// DFS directory receiving the files (hidden, e.g. `<table>/.tusk-staging-<id>`).
    pub staging: String,
    pub storage: Storage,
    /// Schema of the data files (the table's data columns).
    pub file_schema: SchemaRef,
    /// Partition column names, in order.
    pub partition_names: Vec<String>,
    /// Values of the leading static partition columns.
    pub static_values: Vec<String>,
    /// File name stem, unique per write (`part-<id>`).
    pub file_stem: String,
}

impl WriteTarget {
    /// The target of one task of a distributed write: its attempt's data
    /// directory, file names made unique by the task index.
    pub fn for_task(w: &SqlWriteSpec, data_dir: &str, task_index: u32) -> Result<WriteTarget> {
        let columns: Vec<pb::Column> =
            w.columns.iter().map(|(name, t)| pb::Column { name: name.clone(), data_type: t.clone(), comment: String::new() }).collect();
        Ok(WriteTarget {
            staging: data_dir.to_string(),
            storage: Storage::from_options(&w.format, &w.format_options)?,
            file_schema: Arc::new(Schema::new(crate::types::arrow_fields(&columns)?)),
            partition_names: w.partition_names.clone(),
            static_values: w.static_values.clone(),
            file_stem: format!("{}-{task_index:05}", w.file_stem),
        })
    }
}

/// What a write produced.
#[derive(Debug, Default)]
pub struct WriteSummary {
    pub rows: u64,
    pub files: u64,
    /// Values of every partition written.
    pub partitions: Vec<Vec<String>>,
}

impl WriteSummary {
    /// Adds another task's summary (partitions kept once, in order).
    pub fn merge(&mut self, other: WriteSummary) {
        self.rows += other.rows;
        self.files += other.files;
        for p in other.partitions {
            if !self.partitions.contains(&p) {
                self.partitions.push(p);
            }
        }
    }
}

/// A write's summary as one row (`rows`, `files`, `partitions` as JSON),
/// how a task of a distributed write reports it.
pub fn summary_batch(s: &WriteSummary) -> Result<RecordBatch> {
    let partitions = serde_json::to_string(&s.partitions).map_err(SqlError::execution)?;
    let schema = Schema::new(vec![
        Field::new("rows", DataType::UInt64, false),
        Field::new("files", DataType::UInt64, false),
        Field::new("partitions", DataType::Utf8, false),
    ]);
    let columns: Vec<ArrayRef> =
        vec![Arc::new(UInt64Array::from(vec![s.rows])), Arc::new(UInt64Array::from(vec![s.files])), Arc::new(StringArray::from(vec![partitions]))];
    RecordBatch::try_new(Arc::new(schema), columns).map_err(SqlError::execution)
}

/// The summaries in `batch` (made by [`summary_batch`]).
pub fn summaries_of(batch: &RecordBatch) -> Result<Vec<WriteSummary>> {
    let bad = || SqlError::execution("a write task's summary is malformed");
    let rows = batch.column_by_name("rows").and_then(|c| c.as_any().downcast_ref::<UInt64Array>()).ok_or_else(bad)?;
    let files = batch.column_by_name("files").and_then(|c| c.as_any().downcast_ref::<UInt64Array>()).ok_or_else(bad)?;
    let parts = batch.column_by_name("partitions").and_then(|c| c.as_any().downcast_ref::<StringArray>()).ok_or_else(bad)?;
    (0..batch.num_rows())
        .map(|i| {
            let partitions: Vec<Vec<String>> = serde_json::from_str(parts.value(i)).map_err(|_| bad())?;
            Ok(WriteSummary { rows: rows.value(i), files: files.value(i), partitions })
        })
        .collect()
}

/// Writes `stream` (data columns, then the dynamic partition columns) under
/// `target.staging`.
pub async fn write_stream(store: Arc<DfsStore>, target: &WriteTarget, mut stream: SendableRecordBatchStream) -> Result<WriteSummary> {
    let n_data = target.file_schema.fields().len();
    let n_dynamic = target.partition_names.len() - target.static_values.len();
    let mut writers: HashMap<Vec<String>, FileWriter> = HashMap::new();
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut summary = WriteSummary::default();
    let result: Result<()> = async {
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(crate::exec::df_error)?;
            if batch.num_rows() == 0 {
                continue;
            }
            if batch.num_columns() != n_data + n_dynamic {
                return Err(SqlError::execution(format!(
                    "internal: write input has {} columns, expected {}",
                    batch.num_columns(),
                    n_data + n_dynamic
                )));
            }
            summary.rows += batch.num_rows() as u64;
            for (values, rows) in split_by_partition(&batch, n_data, &target.static_values)? {
                let data: Vec<ArrayRef> = match &rows {
                    None => batch.columns()[..n_data].to_vec(),
                    Some(idx) => batch.columns()[..n_data]
                        .iter()
                        .map(|c| take(c.as_ref(), idx, None))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(SqlError::execution)?,
                };
                let part = RecordBatch::try_new(target.file_schema.clone(), data).map_err(SqlError::execution)?;
                if !writers.contains_key(&values) {
                    if writers.len() >= MAX_DYNAMIC_PARTITIONS {
                        return Err(SqlError::invalid(format!(
                            "the INSERT creates more than {MAX_DYNAMIC_PARTITIONS} partitions (hive.exec.max.dynamic.partitions)"
                        )));
                    }
                    let dir = if target.partition_names.is_empty() {
                        target.staging.clone()
                    } else {
                        format!("{}/{}", target.staging, paths::partition_path(&target.partition_names, &values))
                    };
                    let path = object_path(&format!("{dir}/{}{}", target.file_stem, target.storage.format.extension()))?;
                    let store: Arc<dyn ObjectStore> = store.clone();
                    let w = FileWriter::create(store, path, target.file_schema.clone(), &target.storage)?;
                    writers.insert(values.clone(), w);
                    order.push(values.clone());
                }
                if let Some(w) = writers.get_mut(&values) {
                    w.write(&part).await?;
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        for (_, w) in writers.drain() {
            w.abort().await;
        }
        return Err(e);
    }
    for values in &order {
        if let Some(w) = writers.remove(values) {
            w.close().await?;
            summary.files += 1;
        }
    }
    summary.partitions = order;
    Ok(summary)
}

/// Rows of `batch` by partition: (values of every partition column, row
/// indices or `None` for all rows).
fn split_by_partition(batch: &RecordBatch, n_data: usize, static_values: &[String]) -> Result<Vec<(Vec<String>, Option<UInt32Array>)>> {
    let dynamic: Vec<StringArray> = batch.columns()[n_data..]
        .iter()
        .map(|c| {
            let s = cast(c.as_ref(), &DataType::Utf8).map_err(SqlError::execution)?;
            s.as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .ok_or_else(|| SqlError::execution("partition value cast"))
        })
        .collect::<Result<_>>()?;
    if dynamic.is_empty() {
        return Ok(vec![(static_values.to_vec(), None)]);
    }
    let mut groups: HashMap<Vec<String>, Vec<u32>> = HashMap::new();
    let mut order = Vec::new();
    for row in 0..batch.num_rows() {
        let mut key = static_values.to_vec();
        for d in &dynamic {
            key.push(if d.is_null(row) || d.value(row).is_empty() {
                paths::DEFAULT_PARTITION.to_string()
            } else {
                d.value(row).to_string()
            });
        }
        let e = groups.entry(key.clone()).or_default();
        if e.is_empty() {
            order.push(key);
        }
        e.push(row as u32);
    }
    if groups.len() == 1 {
        return Ok(order.into_iter().map(|k| (k, None)).collect());
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let idx = groups.remove(&k).unwrap_or_default();
            (k, Some(UInt32Array::from(idx)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_round_trip_and_merge() {
        let a = WriteSummary { rows: 3, files: 2, partitions: vec![vec!["1".into()], vec!["2".into()]] };
        let back = summaries_of(&summary_batch(&a).unwrap()).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].rows, back[0].files, &back[0].partitions), (3, 2, &a.partitions));
        let mut all = WriteSummary::default();
        all.merge(a);
        all.merge(WriteSummary { rows: 1, files: 1, partitions: vec![vec!["2".into()], vec!["3".into()]] });
        assert_eq!((all.rows, all.files), (4, 3));
        assert_eq!(all.partitions, vec![vec!["1".to_string()], vec!["2".into()], vec!["3".into()]]);
    }
}
