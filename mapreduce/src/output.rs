//! The job's output files: [`OutputWriter`] turns records into bytes
//! ([`OutputFormat`]) and writes them to the attempt's work directory,
//! `layout::work_path(output, attempt)/part-r-0000P` (`part-m-` for a
//! map-only job's maps), in large DFS writes. A failed attempt leaves its
//! work directory behind; the jobtracker discards it.

use tokio::runtime::Handle;
use tusk_client::{Client, CreateOptions, FileWriter};
use tusk_common::path;

use crate::api::{Emit, Reporter, counters};
use crate::error::{Result, TaskError};
use crate::spec::{OutputFormat, TaskKind, TaskSpec, layout};

/// Output is handed to the DFS in writes of at least this many bytes.
const WRITE_SIZE: usize = 1 << 20;

/// Where formatted output bytes go (the DFS file, or memory in tests).
trait ByteSink: Send {
    fn write(&mut self, data: &[u8]) -> Result<()>;
    fn close(self: Box<Self>) -> Result<()>;
}

/// Writes an attempt's output file. Blocking: use it on a blocking thread,
/// never inside the async runtime (it calls `Handle::block_on`).
pub struct OutputWriter {
    sink: Box<dyn ByteSink>,
    format: OutputFormat,
    buf: Vec<u8>,
    path: String,
    reporter: Reporter,
}

/// Job configuration key: replicas of each output file (the cluster's
/// default when unset), as Hadoop's `dfs.replication` in a job's conf.
pub const REPLICATION_KEY: &str = "dfs.replication";

/// Replicas of the output files `conf` asks for (`None`: cluster default).
pub fn output_replication(conf: &std::collections::BTreeMap<String, String>) -> Result<Option<u32>> {
    let Some(v) = conf.get(REPLICATION_KEY) else { return Ok(None) };
    match v.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(TaskError::Invalid(format!("{REPLICATION_KEY}={v}: not a positive number of replicas"))),
    }
}

/// Creates the output file of the attempt `spec` describes and returns a
/// writer for it (blocking; see [`OutputWriter`]).
pub fn open(client: Client, rt: Handle, spec: &TaskSpec, reporter: Reporter) -> Result<OutputWriter> {
    let file = output_path(spec);
    let replication = output_replication(&spec.job.conf)?;
    let opts = CreateOptions { overwrite: true, create_parent: true, replication, ..Default::default() };
    let writer = rt.block_on(client.create(&file, opts))?;
    let sink = DfsSink { rt, writer: Some(writer) };
    Ok(OutputWriter::new(Box::new(sink), spec.job.output_format.clone(), file, reporter))
}

/// DFS path of the output file of attempt `spec`.
pub fn output_path(spec: &TaskSpec) -> String {
    let (map_only, p) = match spec.kind {
        TaskKind::Map { index, .. } => (true, index),
        TaskKind::Reduce { partition, .. } => (false, partition),
    };
    path::join(&layout::work_path(&spec.job.output, &spec.attempt_id), &layout::part_name(map_only, p))
}

impl OutputWriter {
    fn new(sink: Box<dyn ByteSink>, format: OutputFormat, path: String, reporter: Reporter) -> OutputWriter {
        OutputWriter { sink, format, buf: Vec::with_capacity(WRITE_SIZE + 4096), path, reporter }
    }

    /// DFS path of the file being written.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Writes what is buffered, closes the file and returns its path.
    pub fn close(mut self) -> Result<String> {
        self.flush()?;
        self.sink.close()?;
        Ok(self.path)
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.sink.write(&self.buf)?;
        self.reporter.incr(counters::FS, counters::HDFS_BYTES_WRITTEN, self.buf.len() as i64);
        self.buf.clear();
        Ok(())
    }
}

impl Emit for OutputWriter {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        format_record(&self.format, key, value, &mut self.buf);
        if self.buf.len() >= WRITE_SIZE {
            self.flush()?;
        }
        Ok(())
    }
}

/// Appends one record in `format` to `out`: Text `key\tvalue\n` (`key\n`
/// when the value is empty), Raw the key's bytes then the value's.
pub fn format_record(format: &OutputFormat, key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    match format {
        OutputFormat::Text => {
            out.extend_from_slice(key);
            if !value.is_empty() {
                out.push(b'\t');
                out.extend_from_slice(value);
            }
            out.push(b'\n');
        }
        OutputFormat::Raw => {
            out.extend_from_slice(key);
            out.extend_from_slice(value);
        }
    }
}

/// A DFS file written through the async client from a blocking thread.
struct DfsSink {
    rt: Handle,
    /// `None` once closed.
    writer: Option<FileWriter>,
}

impl DfsSink {
    fn writer(&mut self) -> Result<&mut FileWriter> {
        self.writer.as_mut().ok_or_else(|| TaskError::Invalid("output file written after close".into()))
    }
}

impl ByteSink for DfsSink {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        let rt = self.rt.clone();
        let w = self.writer()?;
        rt.block_on(w.write(data))?;
        Ok(())
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        if let Some(w) = self.writer.take() {
            self.rt.block_on(w.close())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{JobSpec, Split};
    use std::sync::{Arc, Mutex};

    /// Records every write and the close.
    #[derive(Clone, Default)]
    struct MemSink {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        closed: Arc<Mutex<bool>>,
    }

    impl ByteSink for MemSink {
        fn write(&mut self, data: &[u8]) -> Result<()> {
            self.writes.lock().unwrap().push(data.to_vec());
            Ok(())
        }
        fn close(self: Box<Self>) -> Result<()> {
            *self.closed.lock().unwrap() = true;
            Ok(())
        }
    }

    fn writer(format: OutputFormat) -> (OutputWriter, MemSink, Reporter) {
        let sink = MemSink::default();
        let reporter = Reporter::default();
        let w = OutputWriter::new(Box::new(sink.clone()), format, "/out/part-r-00000".into(), reporter.clone());
        (w, sink, reporter)
    }

    #[test]
    fn text_records_are_tab_separated_lines() {
        let mut out = Vec::new();
        format_record(&OutputFormat::Text, b"k", b"v w", &mut out);
        format_record(&OutputFormat::Text, b"line without tab", b"", &mut out);
        format_record(&OutputFormat::Text, b"", b"", &mut out);
        format_record(&OutputFormat::Text, b"", b"v", &mut out);
        format_record(&OutputFormat::Text, b"a\tb", b"c", &mut out);
        assert_eq!(out, b"k\tv w\nline without tab\n\n\tv\na\tb\tc\n");
    }

    #[test]
    fn raw_records_are_bytes_back_to_back() {
        let mut out = Vec::new();
        format_record(&OutputFormat::Raw, b"0123456789", &[0xAA; 90], &mut out);
        format_record(&OutputFormat::Raw, b"k", b"", &mut out);
        assert_eq!(out.len(), 101);
        assert_eq!(&out[..10], b"0123456789");
        assert_eq!(out[100], b'k');
    }

    #[test]
    fn writes_are_large_and_everything_arrives_on_close() {
        let (mut w, sink, reporter) = writer(OutputFormat::Text);
        let mut want = Vec::new();
        for i in 0..200_000u32 {
            let k = format!("key{i}");
            let v = "v".repeat((i % 17) as usize);
            w.emit(k.as_bytes(), v.as_bytes()).unwrap();
            format_record(&OutputFormat::Text, k.as_bytes(), v.as_bytes(), &mut want);
        }
        assert!(!*sink.closed.lock().unwrap());
        assert_eq!(w.close().unwrap(), "/out/part-r-00000");
        let writes = sink.writes.lock().unwrap();
        assert!(writes.len() >= 2, "{} writes", writes.len());
        for part in &writes[..writes.len() - 1] {
            assert!(part.len() >= WRITE_SIZE, "a write of {} bytes", part.len());
        }
        assert_eq!(writes.concat(), want);
        assert!(*sink.closed.lock().unwrap());
        assert_eq!(reporter.counter(counters::FS, counters::HDFS_BYTES_WRITTEN), want.len() as i64);
    }

    #[test]
    fn an_empty_output_is_an_empty_file() {
        let (w, sink, reporter) = writer(OutputFormat::Raw);
        w.close().unwrap();
        assert!(sink.writes.lock().unwrap().is_empty());
        assert!(*sink.closed.lock().unwrap());
        assert_eq!(reporter.counter(counters::FS, counters::HDFS_BYTES_WRITTEN), 0);
    }

    #[test]
    fn files_are_named_for_the_partition_under_the_attempt() {
        let mut spec = TaskSpec {
            job_id: "job_1_0001".into(),
            task_id: "task_1_0001_r_000003".into(),
            attempt_id: "attempt_1_0001_r_000003_1".into(),
            attempt_number: 1,
            kind: TaskKind::Reduce { partition: 3, num_maps: 2 },
            job: JobSpec { output: "/out".into(), ..Default::default() },
            namenode: String::new(),
            jobtracker: String::new(),
            user: "u".into(),
        };
        assert_eq!(output_path(&spec), "/out/_temporary/0/_temporary/attempt_1_0001_r_000003_1/part-r-00003");
        spec.attempt_id = "attempt_1_0001_m_000012_0".into();
        spec.kind = TaskKind::Map { index: 12, split: Split::Range { first_row: 0, rows: 1 } };
        assert_eq!(output_path(&spec), "/out/_temporary/0/_temporary/attempt_1_0001_m_000012_0/part-m-00012");
    }
}
