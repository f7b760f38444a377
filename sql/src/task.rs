//! One task of a distributed query, run by `tusk task --engine sql` in the
//! attempt's working directory: decode the stage fragment, run partition
//! `task_index` of it, and write the output:
//! - a shuffle stage writes `output/file.out` + `file.out.index` (the
//!   MapReduce map-output layout, served by the worker), one Arrow IPC
//!   stream per output partition;
//! - the final stage writes one Arrow IPC file into the DFS under the job's
//!   result directory, committed by the jobtracker; or, for a query whose
//!   rows are small, hands them back in its report (`SqlTaskResult`).
//!
//! Progress goes to stdout as the worker's control lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::compute::BatchCoalescer;
use datafusion::arrow::ipc::CompressionType;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::TaskContext;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::Time;
use datafusion::physical_plan::repartition::{BatchPartitioner, RepartitionExec};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use object_store::ObjectStore;
use tokio::io::AsyncWriteExt;
use tusk_client::sqljob::{SqlOutput, SqlTaskResult, SqlTaskSpec, SqlWriteSpec, attempt_data_dir, result_part_name};
use tusk_client::{Client, ClientConfig};
use tusk_mapreduce::api::Reporter;
use tusk_mapreduce::control::{ControlLine, TASK_MEMORY_ENV};
use tusk_mapreduce::mapoutput::{INDEX_FILE, IndexEntry, OUTPUT_FILE, write_index};

use crate::dist::ShuffleEnv;
use crate::dist::codec::decode_plan;
use crate::error::{Result, SqlError};
use crate::exec::df_error;
use crate::store::{self, DfsStore};
use crate::table::object_path;

/// Runs one SQL task attempt. `spec` is the attempt's `SqlTaskSpec` (JSON).
pub async fn run(spec: &str, _work_dir: &Path, output_dir: &Path, scratch_dir: &Path) -> Result<()> {
    let spec: SqlTaskSpec =
        serde_json::from_str(spec).map_err(|e| SqlError::Config(format!("not a SQL task definition: {e}")))?;
    let mut cc = ClientConfig::new(spec.namenode.clone());
    cc.user = Some(spec.user.clone());
    let dfs = Client::connect(cc).await?;
    let store = Arc::new(DfsStore::new(dfs).with_namenode(spec.namenode.clone()));
    let mut runtime = RuntimeEnvBuilder::new().with_temp_file_path(scratch_dir);
    if let Some(limit) = memory_pool_bytes() {
        // Sorts and aggregations spill to the scratch directory at this
        // budget instead of the worker killing the task at its limit.
        runtime = runtime.with_memory_limit(limit, 1.0);
    }
    let footers = footer_cache(&spec.user);
    let runtime = runtime
        .with_cache_manager(CacheManagerConfig::default().with_file_metadata_cache(footers.clone()))
        .build_arc()
        .map_err(df_error)?;
    keep_footer_cache(&spec.user, footers.unwrap_or_else(|| runtime.cache_manager.get_file_metadata_cache()));
    store::register(&runtime, store.clone());
    let reporter = Reporter::default();
    let env = ShuffleEnv {
        job_id: spec.job_id.clone(),
        attempt_id: spec.attempt_id.clone(),
        jobtracker: spec.jobtracker.clone(),
        scratch_dir: scratch_dir.to_path_buf(),
        reporter: reporter.clone(),
    };
    let mut config = SessionConfig::new().with_extension(Arc::new(env));
    // This process runs one partition of the fragment: the scan must read
    // that partition's file group only, not steal its siblings' files (which
    // no one else here would read).
    config.options_mut().execution.enable_file_stream_work_stealing = false;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    crate::udf::register(&ctx);
    let task_ctx = ctx.task_ctx();
    let plan = decode_plan(&spec.plan, &task_ctx).map_err(df_error)?;
    let (plan, part) =
        crate::dist::narrow::for_task(plan, spec.task_index as usize, task_ctx.session_config().options()).map_err(df_error)?;

    // Liveness for the worker's progress timeout while the task runs.
    let ticker = {
        let reporter = reporter.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let line = ControlLine::Progress { progress: 0.5, status: "running".into(), counters: reporter.counters() };
                println!("{}", line.to_line());
            }
        })
    };
    let no_result = |rows: Result<u64>| rows.map(|r| (r, "{}".to_string()));
    let rows = match spec.output {
        SqlOutput::Shuffle { partitions } => {
            no_result(write_shuffle(plan, part, partitions as usize, task_ctx, output_dir, scratch_dir).await)
        }
        SqlOutput::Result => {
            let path = format!(
                "{}/_temporary/{}/{}",
                spec.result_dir.trim_end_matches('/'),
                spec.attempt_id,
                result_part_name(spec.task_index)
            );
            match &spec.write {
                Some(w) => no_result(write_table(plan, part, task_ctx, store, &spec, w, &path).await),
                None if spec.direct_result_max_bytes > 0 => {
                    hand_back(plan, part, task_ctx, store, &path, spec.direct_result_max_bytes as usize).await
                }
                None => no_result(write_result(plan, part, task_ctx, store, &path).await),
            }
        }
    };
    ticker.abort();
    let (rows, result_json) = rows?;
    reporter.incr("SQL", "OUTPUT_ROWS", rows as i64);
    let done = ControlLine::Done { result_json, counters: reporter.counters() };
    println!("{}", done.to_line());
    Ok(())
}

/// Warms a waiting task process up (see `tusk task --warm`): builds and
/// drops a session like the one a task builds, so the code and the
/// allocator's memory it touches are ready when an attempt comes.
pub fn prewarm() {
    let ctx = SessionContext::new();
    crate::udf::register(&ctx);
}

/// The Parquet footers (and page indexes) earlier attempts in this process
/// read, for the user they ran for. A warm process serves attempt after
/// attempt (see `tusk_mapreduce::control::READY_LINE`); as the DataFusion
/// of a single process, it then reads and decodes each file's metadata
/// once. An entry holds only for the file's size and modification time.
/// Attempts of another user start with an empty cache.
static FOOTERS: std::sync::Mutex<Option<(String, Arc<FileMetadataCache>)>> = std::sync::Mutex::new(None);

fn footer_cache(user: &str) -> Option<Arc<FileMetadataCache>> {
    let kept = FOOTERS.lock().ok()?;
    kept.as_ref().filter(|(u, _)| u == user).map(|(_, c)| c.clone())
}

fn keep_footer_cache(user: &str, cache: Arc<FileMetadataCache>) {
    if let Ok(mut kept) = FOOTERS.lock() {
        *kept = Some((user.to_string(), cache));
    }
}

/// The share of the task's memory limit (`TUSK_TASK_MEMORY_BYTES`) given
/// to DataFusion's memory pool; the rest is for what the pool does not
/// track (the process itself, I/O buffers, batches in flight).
const MEMORY_POOL_SHARE: f64 = 0.6;

/// DataFusion's memory budget in this task, from the worker's limit.
fn memory_pool_bytes() -> Option<usize> {
    let limit: u64 = std::env::var(TASK_MEMORY_ENV).ok()?.trim().parse().ok()?;
    (limit > 0).then_some((limit as f64 * MEMORY_POOL_SHARE) as usize)
}

/// `batch` with its string and binary view columns compacted. A view array
/// sliced or taken from a bigger one still points into all of the original
/// data buffers, and Arrow IPC writes every buffer a batch references: a
/// result would carry its whole input's strings again.
fn compact(batch: RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::array::{Array, ArrayRef, AsArray};
    use datafusion::arrow::datatypes::DataType;
    if !batch.columns().iter().any(|c| matches!(c.data_type(), DataType::Utf8View | DataType::BinaryView)) {
        return Ok(batch);
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View => Arc::new(c.as_string_view().gc()) as ArrayRef,
            DataType::BinaryView => Arc::new(c.as_binary_view().gc()) as ArrayRef,
            _ => c.clone(),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).map_err(SqlError::execution)
}

/// A query's results, which travel to the client through the jobtracker or
/// the DFS, are LZ4-compressed.
fn result_ipc_options() -> Result<IpcWriteOptions> {
    IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME)).map_err(SqlError::execution)
}

/// Shuffle files are not compressed, as MapReduce's map output by default
/// (`mapreduce.map.output.compress = false`): they are written and read on
/// local disks, mostly from the page cache, where compressing costs more
/// CPU than the bytes it saves (LZ4 took a tenth of the tasks' CPU in TPC-H).
fn shuffle_ipc_options() -> IpcWriteOptions {
    IpcWriteOptions::default()
}

/// Counts and checksums the bytes written through it.
struct CrcWriter<W: Write> {
    inner: W,
    crc: u32,
    len: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An Arrow IPC stream into a local file, checksummed as it is written.
/// Rows are gathered into batches of the session's batch size first: a hash
/// repartition cuts each input batch into one small slice per partition,
/// and every IPC message has a fixed cost to write and to read. Gathering
/// also copies the strings of string and binary views whose buffers hold
/// over twice the bytes they use (a slice of a bigger batch): IPC writes
/// every buffer an array references.
struct PartFile {
    writer: StreamWriter<CrcWriter<BufWriter<File>>>,
    gather: BatchCoalescer,
}

impl PartFile {
    fn create(path: &Path, schema: &SchemaRef, batch_size: usize) -> Result<PartFile> {
        let f = File::create(path).map_err(|e| SqlError::Io { path: path.display().to_string(), source: e })?;
        let out = CrcWriter { inner: BufWriter::with_capacity(1 << 20, f), crc: 0, len: 0 };
        let writer = StreamWriter::try_new_with_options(out, schema, shuffle_ipc_options()).map_err(SqlError::execution)?;
        Ok(PartFile { writer, gather: BatchCoalescer::new(schema.clone(), batch_size.max(1)) })
    }

    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.gather.push_batch(batch).map_err(SqlError::execution)?;
        self.drain()
    }

    fn drain(&mut self) -> Result<()> {
        while let Some(b) = self.gather.next_completed_batch() {
            self.writer.write(&b).map_err(SqlError::execution)?;
        }
        Ok(())
    }

    /// Ends the stream; returns its length and CRC32C.
    fn finish(mut self, path: &Path) -> Result<(u64, u32)> {
        let io = |e: std::io::Error| SqlError::Io { path: path.display().to_string(), source: e };
        self.gather.finish_buffered_batch().map_err(SqlError::execution)?;
        self.drain()?;
        self.writer.finish().map_err(SqlError::execution)?;
        let out = self.writer.into_inner().map_err(SqlError::execution)?;
        let (len, crc) = (out.len, out.crc);
        // Not fsynced, as MapReduce's map output: a lost file is recomputed.
        out.inner.into_inner().map_err(|e| io(e.into_error()))?;
        Ok((len, crc))
    }
}

/// Runs partition `part` and writes its rows into the shuffle output:
/// hash-partitioned when the fragment ends in a hash repartition, else one
/// partition. One partition goes straight into `file.out`; several are
/// written to one scratch file each (rows arrive interleaved), then
/// appended to `file.out` in order.
async fn write_shuffle(
    plan: Arc<dyn ExecutionPlan>,
    part: usize,
    partitions: usize,
    ctx: Arc<TaskContext>,
    output_dir: &Path,
    scratch_dir: &Path,
) -> Result<u64> {
    std::fs::create_dir_all(output_dir).map_err(|e| SqlError::Io { path: output_dir.display().to_string(), source: e })?;
    std::fs::create_dir_all(scratch_dir).map_err(|e| SqlError::Io { path: scratch_dir.display().to_string(), source: e })?;
    let (input, mut partitioner) = match (plan.as_ref() as &dyn std::any::Any).downcast_ref::<RepartitionExec>() {
        Some(r) => {
            let input = r.input().clone();
            let n_in = input.properties().partitioning.partition_count();
            let p = BatchPartitioner::try_new(r.partitioning().clone(), Time::new(), part, n_in).map_err(df_error)?;
            (input, Some(p))
        }
        None => (plan, None),
    };
    let schema = input.schema();
    let batch_size = ctx.session_config().batch_size();
    let mut stream = input.execute(part, ctx).map_err(df_error)?;
    let out_path = output_dir.join(OUTPUT_FILE);
    let paths: Vec<std::path::PathBuf> = if partitions == 1 {
        vec![out_path.clone()]
    } else {
        (0..partitions).map(|p| scratch_dir.join(format!("shuffle-{p}.arrow"))).collect()
    };
    let mut files: Vec<Option<PartFile>> = (0..partitions).map(|_| None).collect();
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(df_error)?;
        rows += batch.num_rows() as u64;
        let mut put = |p: usize, b: RecordBatch| -> Result<()> {
            let f = match &mut files[p] {
                Some(f) => f,
                slot => slot.insert(PartFile::create(&paths[p], &schema, batch_size)?),
            };
            f.write(b)
        };
        match partitioner.as_mut() {
            Some(pt) => {
                let mut parts = Vec::new();
                pt.partition(batch, |p, b| {
                    parts.push((p, b));
                    Ok(())
                })
                .map_err(df_error)?;
                for (p, b) in parts {
                    put(p, b)?;
                }
            }
            None => put(0, batch)?,
        }
    }
    let io = |e: std::io::Error| SqlError::Io { path: out_path.display().to_string(), source: e };
    let mut entries = Vec::with_capacity(partitions);
    if partitions == 1 {
        let (length, crc32c) = match files.pop().flatten() {
            Some(f) => f.finish(&out_path)?,
            None => {
                File::create(&out_path).map_err(io)?;
                (0, 0)
            }
        };
        entries.push(IndexEntry { offset: 0, length, crc32c });
    } else {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&out_path).map_err(io)?);
        let mut offset = 0u64;
        for (p, f) in files.into_iter().enumerate() {
            let Some(f) = f else {
                entries.push(IndexEntry { offset, length: 0, crc32c: 0 });
                continue;
            };
            let (length, crc32c) = f.finish(&paths[p])?;
            let mut src = File::open(&paths[p]).map_err(io)?;
            std::io::copy(&mut src, &mut out).map_err(io)?;
            entries.push(IndexEntry { offset, length, crc32c });
            offset += length;
            let _ = std::fs::remove_file(&paths[p]);
        }
        out.flush().map_err(io)?;
        out.into_inner().map_err(|e| io(e.into_error()))?;
    }
    write_index(&output_dir.join(INDEX_FILE), &entries).map_err(|e| SqlError::Execution(e.to_string()))?;
    Ok(rows)
}

/// Runs partition `part` and writes its rows as table files under the
/// attempt's data directory (see `tusk_client::sqljob`), then a one-row
/// summary of the write (see [`crate::write::summary_batch`]) at
/// `summary_path`. Returns the rows written.
async fn write_table(
    plan: Arc<dyn ExecutionPlan>,
    part: usize,
    ctx: Arc<TaskContext>,
    store: Arc<DfsStore>,
    spec: &SqlTaskSpec,
    w: &SqlWriteSpec,
    summary_path: &str,
) -> Result<u64> {
    let target = crate::write::WriteTarget::for_task(w, &attempt_data_dir(&spec.result_dir, &spec.attempt_id), spec.task_index)?;
    let stream = plan.execute(part, ctx).map_err(df_error)?;
    let summary = crate::write::write_stream(store.clone(), &target, stream).await?;
    let batch = crate::write::summary_batch(&summary)?;
    write_ipc(store, summary_path, &batch.schema(), futures::stream::iter([Ok(batch)])).await?;
    Ok(summary.rows)
}

/// Runs partition `part` and writes its rows as one Arrow IPC stream at
/// `path` in the DFS.
async fn write_result(plan: Arc<dyn ExecutionPlan>, part: usize, ctx: Arc<TaskContext>, store: Arc<DfsStore>, path: &str) -> Result<u64> {
    let schema = plan.schema();
    let stream = plan.execute(part, ctx).map_err(df_error)?;
    write_ipc(store, path, &schema, stream.map(|b| b.map_err(df_error))).await
}

/// Runs partition `part` and hands its rows back as the attempt's result
/// (`SqlTaskResult`): the Arrow IPC stream itself when it takes at most
/// `max_bytes`, else the DFS file at `path` it was written to. Returns the
/// rows and the result's JSON.
async fn hand_back(
    plan: Arc<dyn ExecutionPlan>,
    part: usize,
    ctx: Arc<TaskContext>,
    store: Arc<DfsStore>,
    path: &str,
    max_bytes: usize,
) -> Result<(u64, String)> {
    use base64::Engine as _;
    let schema = plan.schema();
    let mut stream = plan.execute(part, ctx).map_err(df_error)?.map(|b| b.map_err(df_error));
    let mut writer = StreamWriter::try_new_with_options(Vec::new(), &schema, result_ipc_options()?).map_err(SqlError::execution)?;
    let mut rows = 0u64;
    let result = loop {
        let Some(batch) = stream.next().await else {
            writer.finish().map_err(SqlError::execution)?;
            let ipc = base64::engine::general_purpose::STANDARD.encode(writer.get_ref());
            break SqlTaskResult::Rows(ipc);
        };
        let batch = batch?;
        rows += batch.num_rows() as u64;
        writer.write(&compact(batch)?).map_err(SqlError::execution)?;
        if writer.get_ref().len() > max_bytes {
            rows += continue_ipc(store, path, writer, &mut stream).await?;
            break SqlTaskResult::File(path.to_string());
        }
    };
    let json = serde_json::to_string(&result).map_err(|e| SqlError::Execution(format!("encoding the result: {e}")))?;
    Ok((rows, json))
}

/// Writes `stream` as one Arrow IPC stream at `path` in the DFS.
async fn write_ipc(
    store: Arc<DfsStore>,
    path: &str,
    schema: &SchemaRef,
    mut stream: impl futures::Stream<Item = Result<RecordBatch>> + Unpin,
) -> Result<u64> {
    let writer = StreamWriter::try_new_with_options(Vec::new(), schema, result_ipc_options()?).map_err(SqlError::execution)?;
    continue_ipc(store, path, writer, &mut stream).await
}

/// Writes what `writer` holds, then the rest of `stream`, as one Arrow IPC
/// stream at `path` in the DFS; nothing is left there on error. Returns
/// the rows taken from `stream`.
async fn continue_ipc(
    store: Arc<DfsStore>,
    path: &str,
    mut writer: StreamWriter<Vec<u8>>,
    stream: &mut (impl futures::Stream<Item = Result<RecordBatch>> + Unpin),
) -> Result<u64> {
    let store: Arc<dyn ObjectStore> = store;
    let mut out = object_store::buffered::BufWriter::new(store, object_path(path)?);
    let mut rows = 0u64;
    let result: Result<()> = async {
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            writer.write(&compact(batch)?).map_err(SqlError::execution)?;
            if writer.get_ref().len() > 8 << 20 {
                let buf = std::mem::take(writer.get_mut());
                out.write_all(&buf).await.map_err(SqlError::execution)?;
            }
        }
        writer.finish().map_err(SqlError::execution)?;
        let buf = std::mem::take(writer.get_mut());
        out.write_all(&buf).await.map_err(SqlError::execution)?;
        out.shutdown().await.map_err(SqlError::execution)
    }
    .await;
    if let Err(e) = result {
        let _ = out.abort().await;
        return Err(e);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray, Int64Array, StringViewArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use tusk_mapreduce::reduceside::Segment;

    /// Writes `batches` through a [`PartFile`] gathering `batch_size` rows;
    /// returns the file's bytes.
    fn part_file(dir: &Path, batches: Vec<RecordBatch>, batch_size: usize) -> Vec<u8> {
        let path = dir.join("part.arrow");
        let mut f = PartFile::create(&path, &batches[0].schema(), batch_size).unwrap();
        for b in batches {
            f.write(b).unwrap();
        }
        let (len, crc) = f.finish(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((len, crc), (bytes.len() as u64, crc32c::crc32c(&bytes)));
        bytes
    }

    #[test]
    fn shuffle_files_gather_small_slices_and_decode_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false), Field::new("s", DataType::Utf8View, false)]));
        // 1000 long strings; each batch written is a 25-row slice of them,
        // as a hash repartition hands over.
        let strings: StringViewArray = (0..1000).map(|i| Some(format!("a string long enough not to be inlined {i}"))).collect();
        let all = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(0..1000)), Arc::new(strings)]).unwrap();
        let slices: Vec<RecordBatch> = (0..10).map(|i| all.slice(i * 25, 25)).collect();
        let bytes = part_file(dir.path(), slices, 100);
        // 250 rows of about 45 bytes: the strings of the slices, not 10
        // copies of all 1000.
        assert!(bytes.len() < 40_000, "{} bytes", bytes.len());

        let (base, len) = (bytes.as_ptr() as usize, bytes.len());
        let segment = Segment::from_bytes(0, "attempt_x", bytes);
        let batches: Vec<RecordBatch> = crate::dist::reader::decode_all(vec![segment]).collect::<Result<_, _>>().unwrap();
        assert_eq!(batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), vec![100, 100, 50]);
        let n: Vec<i64> = batches.iter().flat_map(|b| b.column(0).as_primitive::<datafusion::arrow::datatypes::Int64Type>().values().to_vec()).collect();
        assert_eq!(n, (0..250).collect::<Vec<i64>>());
        assert_eq!(batches[2].column(1).as_string_view().value(49), "a string long enough not to be inlined 249");
        // The arrays are slices of the fetched bytes, not copies.
        let values = batches[1].column(0).to_data().buffers()[0].as_ptr() as usize;
        assert!((base..base + len).contains(&values), "decoded by copying");
    }

    #[test]
    fn a_truncated_shuffle_segment_is_an_error_naming_its_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..10))]).unwrap();
        let mut bytes = part_file(dir.path(), vec![batch], 8192);
        bytes.truncate(bytes.len() - 20);
        let segment = Segment::from_bytes(3, "attempt_y", bytes);
        let results: Vec<_> = crate::dist::reader::decode_all(vec![segment]).collect();
        let err = results.into_iter().find_map(Result::err).expect("an error").to_string();
        assert!(err.contains("output of attempt_y"), "{err}");
    }
}
