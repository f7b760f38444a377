//! A fetched map output partition, in memory or in a scratch file, and the
//! shuffle's memory budget.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes of fetched segments held in memory, shared by the fetches.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: u64,
    used: Mutex<u64>,
}

impl MemoryBudget {
    pub(crate) fn new(limit: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget { limit, used: Mutex::new(0) })
    }

    /// Reserves `bytes` if they fit; released when the reservation drops.
    pub(crate) fn try_reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if *used + bytes > self.limit {
            return None;
        }
        *used += bytes;
        Some(Reservation { budget: Arc::clone(self), bytes })
    }

    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Memory of one in-memory segment, given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(self.bytes);
    }
}

/// A file in the scratch dir, deleted when dropped (an abandoned or
/// superseded fetch leaves nothing behind; an open reader keeps reading).
#[derive(Debug)]
pub(crate) struct ScratchFile {
    path: PathBuf,
}

impl ScratchFile {
    pub(crate) fn new(path: PathBuf) -> ScratchFile {
        ScratchFile { path }
    }
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Debug)]
pub(crate) enum SegmentData {
    Memory { data: Vec<u8>, _reservation: Option<Reservation> },
    File(ScratchFile),
}

/// One map's partition for this reducer, checked against the map's CRC.
#[derive(Debug)]
pub struct Segment {
    pub(crate) map_index: u32,
    pub(crate) attempt_id: String,
    pub(crate) len: u64,
    pub(crate) data: SegmentData,
}

impl Segment {
    /// The map the segment came from.
    pub fn map_index(&self) -> u32 {
        self.map_index
    }
    /// The map attempt that produced it.
    pub fn attempt_id(&self) -> &str {
        &self.attempt_id
    }
    /// Bytes of encoded records.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Held in memory rather than in a scratch file.
    pub fn in_memory(&self) -> bool {
        matches!(self.data, SegmentData::Memory { .. })
    }
    /// The segment's bytes if it is held in memory (taken as they are, no
    /// copy), else the segment itself back.
    pub fn into_memory(self) -> Result<Vec<u8>, Segment> {
        match self.data {
            SegmentData::Memory { data, .. } => Ok(data),
            data => Err(Segment { data, ..self }),
        }
    }
    /// The segment's bytes as a reader (the scratch file, if any, is
    /// deleted when the reader is dropped).
    pub fn into_reader(self) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        match self.data {
            SegmentData::Memory { data, .. } => Ok(Box::new(std::io::Cursor::new(data))),
            SegmentData::File(file) => {
                let f = std::fs::File::open(file.path())?;
                Ok(Box::new(FileSegmentReader { inner: std::io::BufReader::with_capacity(1 << 20, f), _file: file }))
            }
        }
    }

    /// A segment held in memory (tests, local runs).
    pub fn from_bytes(map_index: u32, attempt_id: &str, data: Vec<u8>) -> Segment {
        Segment {
            map_index,
            attempt_id: attempt_id.to_string(),
            len: data.len() as u64,
            data: SegmentData::Memory { data, _reservation: None },
        }
    }
    /// A segment in a file that becomes the segment's (deleted with it).
    pub fn from_file(map_index: u32, attempt_id: &str, path: PathBuf, len: u64) -> Segment {
        Segment { map_index, attempt_id: attempt_id.to_string(), len, data: SegmentData::File(ScratchFile::new(path)) }
    }
}

/// Reads a segment's scratch file, deleting it when done.
struct FileSegmentReader {
    inner: std::io::BufReader<std::fs::File>,
    _file: ScratchFile,
}

impl std::io::Read for FileSegmentReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_given_back() {
        let b = MemoryBudget::new(100);
        let r1 = b.try_reserve(60).unwrap();
        assert!(b.try_reserve(41).is_none());
        let r2 = b.try_reserve(40).unwrap();
        assert_eq!(b.used(), 100);
        drop(r1);
        assert_eq!(b.used(), 40);
        drop(r2);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn scratch_files_go_away_with_their_segment() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seg");
        std::fs::write(&p, b"x").unwrap();
        let s = Segment::from_file(0, "a", p.clone(), 1);
        assert!(!s.in_memory());
        drop(s);
        assert!(!p.exists());
    }
}
