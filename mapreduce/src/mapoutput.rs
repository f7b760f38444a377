//! A map attempt's output on the worker's local disk, in its output dir:
//!
//! - [`OUTPUT_FILE`] (`file.out`): the partitions in order, each a run of
//!   records `varint(key_len) varint(value_len) key value` (LEB128), sorted
//!   by key bytes within the partition;
//! - [`INDEX_FILE`] (`file.out.index`): per partition 24 bytes little-endian
//!   `offset u64, length u64, crc32c u32 (of the segment's bytes), 0u32`,
//!   then a 4-byte LE CRC32C of all the entries.
//!
//! The worker serves partition `p` to reducers as bytes
//! `[offset, offset + length)` of `file.out` with the index's CRC. Spill
//! files use the same record format (their index stays in memory).

mod codec;
mod merge;
mod writer;

pub use codec::{OwnedRecords, SliceRecords, StreamRecords, put_record, put_varint, record_len, varint_len};
pub use merge::{MergeSource, MergedGroups, Merger};
pub use writer::MapOutputWriter;

use crate::error::{Result, TaskError};
use std::path::Path;

/// Name of the merged map output in the attempt's output dir.
pub const OUTPUT_FILE: &str = "file.out";
/// Name of its index.
pub const INDEX_FILE: &str = "file.out.index";

/// Bytes of one index entry.
const ENTRY_LEN: usize = 24;

/// Where partition `p`'s segment lies in `file.out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexEntry {
    pub offset: u64,
    pub length: u64,
    /// CRC32C of the segment's bytes.
    pub crc32c: u32,
}

/// The index file's bytes for `entries`.
pub fn encode_index(entries: &[IndexEntry]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(entries.len() * ENTRY_LEN + 4);
    for e in entries {
        buf.extend_from_slice(&e.offset.to_le_bytes());
        buf.extend_from_slice(&e.length.to_le_bytes());
        buf.extend_from_slice(&e.crc32c.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
    }
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// Parses index bytes; `name` (the file) is used in errors.
pub fn decode_index(bytes: &[u8], name: &str) -> Result<Vec<IndexEntry>> {
    let bad = |why: String| {
        TaskError::io(name, std::io::Error::new(std::io::ErrorKind::InvalidData, format!("corrupt map output index: {why}")))
    };
    if bytes.len() < 4 || !(bytes.len() - 4).is_multiple_of(ENTRY_LEN) {
        return Err(bad(format!("{} bytes is not a whole number of entries plus a checksum", bytes.len())));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    let want = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let got = crc32c::crc32c(body);
    if want != got {
        return Err(bad(format!("checksum mismatch (stored {want:#010x}, computed {got:#010x})")));
    }
    let mut entries = Vec::with_capacity(body.len() / ENTRY_LEN);
    for e in body.chunks_exact(ENTRY_LEN) {
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&e[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let entry = IndexEntry {
            offset: u64_at(0),
            length: u64_at(8),
            crc32c: u32::from_le_bytes([e[16], e[17], e[18], e[19]]),
        };
        if entry.offset.checked_add(entry.length).is_none() {
            return Err(bad(format!("partition {} has an impossible extent", entries.len())));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Reads and checks an index file. A corrupt index (bad trailer, wrong
/// size) is an error naming the file.
pub fn read_index(path: &Path) -> Result<Vec<IndexEntry>> {
    let bytes = std::fs::read(path).map_err(|e| TaskError::io(format!("{}: read", path.display()), e))?;
    decode_index(&bytes, &path.display().to_string())
}

/// Writes an index file (to a temporary name, then renamed into place, so
/// a reader never sees half of it).
pub fn write_index(path: &Path, entries: &[IndexEntry]) -> Result<()> {
    let tmp = path.with_extension("index.tmp");
    std::fs::write(&tmp, encode_index(entries)).map_err(|e| TaskError::io(format!("{}: write", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| TaskError::io(format!("{}: rename to {}", tmp.display(), path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<IndexEntry> {
        vec![
            IndexEntry { offset: 0, length: 100, crc32c: 0xdead_beef },
            IndexEntry { offset: 100, length: 0, crc32c: 0 },
            IndexEntry { offset: 100, length: 1 << 40, crc32c: 7 },
        ]
    }

    #[test]
    fn index_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INDEX_FILE);
        write_index(&path, &entries()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * 24 + 4);
        assert_eq!(read_index(&path).unwrap(), entries());
        write_index(&path, &[]).unwrap();
        assert_eq!(read_index(&path).unwrap(), vec![]);
    }

    #[test]
    fn layout_is_little_endian_24_byte_entries_and_a_crc_trailer() {
        let bytes = encode_index(&entries()[..1]);
        assert_eq!(&bytes[0..8], &0u64.to_le_bytes());
        assert_eq!(&bytes[8..16], &100u64.to_le_bytes());
        assert_eq!(&bytes[16..20], &0xdead_beefu32.to_le_bytes());
        assert_eq!(&bytes[20..24], &[0, 0, 0, 0]);
        assert_eq!(&bytes[24..28], &crc32c::crc32c(&bytes[..24]).to_le_bytes());
    }

    #[test]
    fn corrupt_indexes_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INDEX_FILE);
        let good = encode_index(&entries());
        // A flipped bit anywhere.
        for i in [0, 17, 30, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            let e = read_index(&path).unwrap_err().to_string();
            assert!(e.contains("file.out.index") && e.contains("corrupt"), "{e}");
        }
        // Truncated.
        std::fs::write(&path, &good[..good.len() - 5]).unwrap();
        assert!(read_index(&path).unwrap_err().to_string().contains("file.out.index"));
        std::fs::write(&path, b"").unwrap();
        assert!(read_index(&path).is_err());
        // Missing.
        let e = read_index(&dir.path().join("nope.index")).unwrap_err().to_string();
        assert!(e.contains("nope.index"), "{e}");
    }
}
