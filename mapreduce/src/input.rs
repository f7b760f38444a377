//! Reading a map's split as records ([`open`]): text lines, key/value
//! lines, 100-byte TeraSort records, or generated row numbers.
//!
//! The readers are blocking: they read the DFS through the async client
//! with `Handle::block_on`, so they must run on a blocking thread (never on
//! a runtime worker). Each DFS read asks for at least 1 MiB. They count
//! `FileSystemCounter/HDFS_BYTES_READ` and `TaskCounter/MAP_INPUT_RECORDS`,
//! and [`open_with_progress`] also hands out an [`InputProgress`] saying
//! how much of the split has been read.

mod tera;
mod text;

use bytes::{Buf, Bytes, BytesMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::runtime::Handle;
use tusk_client::{Client, FileReader};

use crate::api::{RecordReader, Reporter, counters};
use crate::error::{Result, TaskError};
use crate::spec::{InputFormat, Split};
use tera::TeraRecords;
use text::TextRecords;

/// Bytes asked of the DFS per read while inside the split.
const READ_SIZE: usize = 1 << 20;
/// Bytes asked per read past the split's end (finishing its last line).
const TAIL_READ_SIZE: usize = 64 << 10;
/// Records counted locally before `MAP_INPUT_RECORDS` is updated.
const RECORD_COUNT_BATCH: i64 = 1024;

/// Opens a blocking reader of `split` in `format` (see the module docs).
pub fn open(
    client: Client,
    rt: Handle,
    split: &Split,
    format: &InputFormat,
    reporter: Reporter,
) -> Result<Box<dyn RecordReader>> {
    Ok(open_with_progress(client, rt, split, format, reporter)?.0)
}

/// Like [`open`], with a handle that tells how far the reader got.
pub fn open_with_progress(
    client: Client,
    rt: Handle,
    split: &Split,
    format: &InputFormat,
    reporter: Reporter,
) -> Result<(Box<dyn RecordReader>, InputProgress)> {
    let progress = InputProgress::new(split);
    let reader: Box<dyn RecordReader> = match (format, split) {
        (InputFormat::Range { .. }, Split::Range { first_row, rows }) => {
            let records = RangeRecords { next: *first_row, end: first_row.saturating_add(*rows), progress: progress.clone() };
            Box::new(Counted::new(records, reporter))
        }
        (InputFormat::Text | InputFormat::KeyValueText, Split::File { path, start, length, .. }) => {
            let end = start.saturating_add(*length);
            let src = DfsSource::open(client, rt, path, *start, end, reporter.clone(), progress.clone())?;
            let key_value = matches!(format, InputFormat::KeyValueText);
            Box::new(Counted::new(TextRecords::new(src, *start, *length, key_value)?, reporter))
        }
        (InputFormat::Tera | InputFormat::WholeFileTera, Split::File { path, start, length, .. }) => {
            let first = tera::first_record(*start);
            let end = start.saturating_add(*length);
            let src = DfsSource::open(client, rt, path, first, end, reporter.clone(), progress.clone())?;
            Box::new(Counted::new(TeraRecords::new(src, path, *start, *length), reporter))
        }
        (f, s) => {
            return Err(TaskError::Invalid(format!("input format {f:?} cannot read split {s:?}")));
        }
    };
    Ok((reader, progress))
}

/// How much of a split its reader has consumed; cheap to clone and read
/// from another thread (the task's progress reporter).
#[derive(Debug, Clone)]
pub struct InputProgress {
    /// Bytes fetched (file splits) or rows produced (generated input).
    done: Arc<AtomicU64>,
    total: u64,
}

impl InputProgress {
    fn new(split: &Split) -> InputProgress {
        let total = match split {
            Split::File { length, .. } => *length,
            Split::Range { rows, .. } => *rows,
        };
        InputProgress { done: Arc::new(AtomicU64::new(0)), total }
    }

    fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Fraction of the split read, in `[0, 1]`.
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            return 0.0;
        }
        (self.done.load(Ordering::Relaxed) as f64 / self.total as f64).min(1.0) as f32
    }
}

/// A file's bytes from some offset on, in pieces.
pub(crate) trait ByteSource: Send {
    /// The next bytes; empty at the end of the file.
    fn next_bytes(&mut self) -> Result<Bytes>;
}

/// A byte source with a read position: the readers' common buffer.
pub(crate) struct Buffered<S> {
    src: S,
    /// Unread bytes; they start at file offset `pos`.
    buf: Bytes,
    pos: u64,
    eof: bool,
}

impl<S: ByteSource> Buffered<S> {
    /// `src` delivers the file's bytes from offset `pos` on.
    pub(crate) fn new(src: S, pos: u64) -> Buffered<S> {
        Buffered { src, buf: Bytes::new(), pos, eof: false }
    }

    /// File offset of the next unread byte.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Unread bytes (empty only at the end of the file).
    pub(crate) fn fill(&mut self) -> Result<&[u8]> {
        while self.buf.is_empty() && !self.eof {
            self.buf = self.src.next_bytes()?;
            self.eof = self.buf.is_empty();
        }
        Ok(&self.buf)
    }

    /// Marks `n` bytes of what [`fill`](Self::fill) returned as read.
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.advance(n);
        self.pos += n as u64;
    }
}

/// Reads a DFS file from an offset, in reads of [`READ_SIZE`] bytes up to
/// `soft_end` (the split's end; less when less is left) and of
/// [`TAIL_READ_SIZE`] after it.
struct DfsSource {
    rt: Handle,
    reader: FileReader,
    pos: u64,
    soft_end: u64,
    reporter: Reporter,
    progress: InputProgress,
}

impl DfsSource {
    fn open(
        client: Client,
        rt: Handle,
        path: &str,
        offset: u64,
        soft_end: u64,
        reporter: Reporter,
        progress: InputProgress,
    ) -> Result<DfsSource> {
        let reader = rt.block_on(async {
            let mut r = client.open(path).await?;
            let at = offset.min(r.len());
            r.seek(at).await?;
            Ok::<_, TaskError>(r)
        })?;
        let pos = reader.position();
        Ok(DfsSource { rt, reader, pos, soft_end, reporter, progress })
    }
}

impl ByteSource for DfsSource {
    fn next_bytes(&mut self) -> Result<Bytes> {
        // Large reads inside the split (smaller for what is left of a
        // small one), small ones to finish its last record.
        let left = usize::try_from(self.soft_end.saturating_sub(self.pos)).unwrap_or(READ_SIZE);
        let target = left.clamp(TAIL_READ_SIZE, READ_SIZE);
        let reader = &mut self.reader;
        let got = self.rt.block_on(async move {
            let mut out = BytesMut::new();
            while out.len() < target {
                let Some(chunk) = reader.next_chunk().await? else { break };
                if out.is_empty() && chunk.len() >= target {
                    return Ok::<_, TaskError>(chunk);
                }
                if out.is_empty() {
                    out.reserve(target + chunk.len());
                }
                out.extend_from_slice(&chunk);
            }
            Ok(out.freeze())
        })?;
        self.pos += got.len() as u64;
        self.reporter.incr(counters::FS, counters::HDFS_BYTES_READ, got.len() as i64);
        self.progress.add(got.len() as u64);
        Ok(got)
    }
}

/// Counts a reader's records into `MAP_INPUT_RECORDS`, in batches (the
/// reporter takes a lock).
struct Counted<R> {
    inner: R,
    reporter: Reporter,
    pending: i64,
}

impl<R> Counted<R> {
    fn new(inner: R, reporter: Reporter) -> Counted<R> {
        Counted { inner, reporter, pending: 0 }
    }

    fn flush(&mut self) {
        if self.pending > 0 {
            self.reporter.incr(counters::TASK, counters::MAP_INPUT_RECORDS, self.pending);
            self.pending = 0;
        }
    }
}

impl<R: RecordReader> RecordReader for Counted<R> {
    fn next(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<bool> {
        let more = self.inner.next(key, value)?;
        if more {
            self.pending += 1;
        }
        if !more || self.pending >= RECORD_COUNT_BATCH {
            self.flush();
        }
        Ok(more)
    }
}

impl<R> Drop for Counted<R> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Generated input: key = row number (8 bytes, big-endian), value empty.
struct RangeRecords {
    next: u64,
    end: u64,
    progress: InputProgress,
}

impl RecordReader for RangeRecords {
    fn next(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<bool> {
        key.clear();
        value.clear();
        if self.next >= self.end {
            return Ok(false);
        }
        key.extend_from_slice(&self.next.to_be_bytes());
        self.next += 1;
        self.progress.add(1);
        Ok(true)
    }
}

/// An in-memory file for tests, delivered from an offset in pieces of a
/// chosen size.
#[cfg(test)]
pub(crate) struct MemSource {
    data: Bytes,
    pos: usize,
    piece: usize,
}

#[cfg(test)]
impl MemSource {
    pub(crate) fn new(data: &Bytes, offset: u64, piece: usize) -> MemSource {
        MemSource { data: data.clone(), pos: (offset as usize).min(data.len()), piece: piece.max(1) }
    }
}

#[cfg(test)]
impl ByteSource for MemSource {
    fn next_bytes(&mut self) -> Result<Bytes> {
        let end = (self.pos + self.piece).min(self.data.len());
        let b = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rows_are_big_endian_row_numbers() {
        let split = Split::Range { first_row: 5, rows: 3 };
        let progress = InputProgress::new(&split);
        let reporter = Reporter::default();
        let mut r = Counted::new(RangeRecords { next: 5, end: 8, progress: progress.clone() }, reporter.clone());
        let (mut k, mut v) = (vec![1], vec![2]);
        let mut rows = Vec::new();
        while r.next(&mut k, &mut v).unwrap() {
            assert!(v.is_empty());
            rows.push(u64::from_be_bytes(k.as_slice().try_into().unwrap()));
        }
        assert_eq!(rows, vec![5, 6, 7]);
        assert_eq!(progress.fraction(), 1.0);
        assert_eq!(reporter.counter(counters::TASK, counters::MAP_INPUT_RECORDS), 3);
    }

    #[test]
    fn records_are_counted_in_batches_and_on_drop() {
        let reporter = Reporter::default();
        let progress = InputProgress::new(&Split::Range { first_row: 0, rows: 5000 });
        let mut r = Counted::new(RangeRecords { next: 0, end: 5000, progress }, reporter.clone());
        let (mut k, mut v) = (Vec::new(), Vec::new());
        for _ in 0..2500 {
            assert!(r.next(&mut k, &mut v).unwrap());
        }
        assert_eq!(reporter.counter(counters::TASK, counters::MAP_INPUT_RECORDS), 2048);
        drop(r);
        assert_eq!(reporter.counter(counters::TASK, counters::MAP_INPUT_RECORDS), 2500);
    }

    #[test]
    fn progress_is_a_capped_fraction() {
        let p = InputProgress::new(&Split::File {
            path: "/f".into(),
            start: 0,
            length: 200,
            file_length: 1000,
            hosts: vec![],
            racks: vec![],
        });
        assert_eq!(p.fraction(), 0.0);
        p.add(50);
        assert_eq!(p.fraction(), 0.25);
        p.add(500);
        assert_eq!(p.fraction(), 1.0);
        assert_eq!(InputProgress::new(&Split::Range { first_row: 0, rows: 0 }).fraction(), 0.0);
    }

    #[test]
    fn buffered_sources_track_the_file_position() {
        let data: Bytes = (0..100u8).collect();
        let mut b = Buffered::new(MemSource::new(&data, 10, 7), 10);
        let mut seen = Vec::new();
        loop {
            let got = b.fill().unwrap().to_vec();
            if got.is_empty() {
                break;
            }
            let n = got.len().min(3);
            seen.extend_from_slice(&got[..n]);
            b.consume(n);
            assert_eq!(b.position(), 10 + seen.len() as u64);
        }
        assert_eq!(seen, &data[10..]);
        assert!(b.fill().unwrap().is_empty());
    }
}
