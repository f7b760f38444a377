//! Writes a map output (or spill) file: partitions in order, each a run of
//! encoded records, with one [`IndexEntry`] per partition.

use super::IndexEntry;
use super::codec::put_record;
use crate::api::Emit;
use crate::error::{Result, TaskError};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bytes buffered before a write to the file.
const FLUSH_AT: usize = 1 << 20;

/// A map output file being written. Records go to the current partition;
/// [`end_partition`](Self::end_partition) closes it and starts the next.
/// The CRC32C of each partition is computed over large buffers, not per
/// record.
pub struct MapOutputWriter {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    /// `buf[..crc_done]` is already in `seg_crc`.
    crc_done: usize,
    /// Bytes already written to the file.
    flushed: u64,
    seg_start: u64,
    seg_crc: u32,
    records: u64,
    entries: Vec<IndexEntry>,
}

impl MapOutputWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<MapOutputWriter> {
        let file = File::create(path).map_err(|e| TaskError::io(format!("{}: create", path.display()), e))?;
        Ok(MapOutputWriter {
            file,
            path: path.to_path_buf(),
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            crc_done: 0,
            flushed: 0,
            seg_start: 0,
            seg_crc: 0,
            records: 0,
            entries: Vec::new(),
        })
    }

    /// Appends a record to the current partition.
    pub fn append(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        put_record(&mut self.buf, key, value);
        self.records += 1;
        if self.buf.len() >= FLUSH_AT { self.flush_buf() } else { Ok(()) }
    }

    /// Records appended so far (all partitions).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes written so far (all partitions).
    pub fn position(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    /// Ends the current partition (possibly empty) and returns its entry.
    pub fn end_partition(&mut self) -> IndexEntry {
        self.seg_crc = crc32c::crc32c_append(self.seg_crc, &self.buf[self.crc_done..]);
        self.crc_done = self.buf.len();
        let end = self.position();
        let entry = IndexEntry { offset: self.seg_start, length: end - self.seg_start, crc32c: self.seg_crc };
        self.entries.push(entry);
        self.seg_start = end;
        self.seg_crc = 0;
        entry
    }

    /// Partitions ended so far.
    pub fn partitions(&self) -> usize {
        self.entries.len()
    }

    fn flush_buf(&mut self) -> Result<()> {
        self.seg_crc = crc32c::crc32c_append(self.seg_crc, &self.buf[self.crc_done..]);
        self.file.write_all(&self.buf).map_err(|e| TaskError::io(format!("{}: write", self.path.display()), e))?;
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        self.crc_done = 0;
        Ok(())
    }

    /// Writes what is buffered and returns the entries of the ended
    /// partitions. Records appended after the last `end_partition` are an
    /// error (they would not be in the index).
    pub fn finish(mut self) -> Result<Vec<IndexEntry>> {
        if self.position() != self.seg_start {
            return Err(TaskError::io(
                self.path.display().to_string(),
                std::io::Error::other("records after the last partition"),
            ));
        }
        self.flush_buf()?;
        self.file.flush().map_err(|e| TaskError::io(format!("{}: write", self.path.display()), e))?;
        Ok(self.entries)
    }
}

impl Emit for MapOutputWriter {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.append(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapoutput::codec::SliceRecords;

    #[test]
    fn partitions_and_crcs_match_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.out");
        let mut w = MapOutputWriter::create(&path).unwrap();
        // Partition 0: many records (crosses the flush size); 1: empty; 2: one.
        for i in 0..100_000u32 {
            w.append(format!("k{i:08}").as_bytes(), b"some value").unwrap();
        }
        w.end_partition();
        w.end_partition();
        w.append(b"last", b"").unwrap();
        w.end_partition();
        assert_eq!(w.records(), 100_001);
        let entries = w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].offset, 0);
        assert_eq!(entries[1].length, 0);
        assert_eq!(entries[2].offset + entries[2].length, bytes.len() as u64);
        for e in &entries {
            let seg = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(crc32c::crc32c(seg), e.crc32c);
        }
        let seg2 = &bytes[entries[2].offset as usize..];
        assert_eq!(SliceRecords::new(seg2).next_record("x").unwrap(), Some((&b"last"[..], &b""[..])));
    }

    #[test]
    fn unterminated_partition_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = MapOutputWriter::create(&dir.path().join("f")).unwrap();
        w.append(b"a", b"b").unwrap();
        assert!(w.finish().is_err());
    }
}
