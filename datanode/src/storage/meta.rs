//! Names and the header of replica files.
//!
//! A replica is `blk_<id>` (the data) and `blk_<id>_<genstamp>.meta`: a
//! 7-byte header (u16 version = 1, u8 checksum type = 1 for CRC32C, u32
//! bytes per checksum, big endian) followed by one 4-byte big-endian CRC32C
//! per chunk of data.

use std::path::PathBuf;
use tusk_proto::transfer::{CHECKSUM_SIZE, chunk_count};

/// Version of the meta file header.
pub(crate) const META_VERSION: u16 = 1;
/// Checksum type code of CRC32C.
pub(crate) const CHECKSUM_CRC32C: u8 = 1;
/// Bytes before the first checksum.
pub(crate) const HEADER_LEN: u64 = 7;

/// The meta header for `bytes_per_checksum`.
pub(crate) fn encode_header(bytes_per_checksum: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..2].copy_from_slice(&META_VERSION.to_be_bytes());
    h[2] = CHECKSUM_CRC32C;
    h[3..7].copy_from_slice(&bytes_per_checksum.to_be_bytes());
    h
}

/// Reads a meta header; returns bytes per checksum or why the header is unusable.
pub(crate) fn decode_header(h: &[u8]) -> Result<u32, String> {
    if h.len() < HEADER_LEN as usize {
        return Err(format!("meta header is {} bytes, expected {HEADER_LEN}", h.len()));
    }
    let version = u16::from_be_bytes([h[0], h[1]]);
    if version != META_VERSION {
        return Err(format!("meta version {version} is not supported (expected {META_VERSION})"));
    }
    if h[2] != CHECKSUM_CRC32C {
        return Err(format!("checksum type {} is not supported (expected CRC32C = 1)", h[2]));
    }
    let bpc = u32::from_be_bytes([h[3], h[4], h[5], h[6]]);
    if bpc == 0 {
        return Err("bytes per checksum is 0".to_string());
    }
    Ok(bpc)
}

/// Size a meta file must have for `data_len` bytes of data.
pub(crate) fn expected_meta_len(data_len: u64, bytes_per_checksum: u32) -> u64 {
    HEADER_LEN + (chunk_count(data_len as usize, bytes_per_checksum) * CHECKSUM_SIZE) as u64
}

pub(crate) fn data_file_name(block_id: u64) -> String {
    format!("blk_{block_id}")
}

pub(crate) fn meta_file_name(block_id: u64, gen_stamp: u64) -> String {
    format!("blk_{block_id}_{gen_stamp}.meta")
}

/// `(block id, generation stamp)` of a meta file name.
pub(crate) fn parse_meta_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("blk_")?.strip_suffix(".meta")?;
    let (id, gs) = rest.split_once('_')?;
    Some((id.parse().ok()?, gs.parse().ok()?))
}

/// Block id of a data file name.
pub(crate) fn parse_data_name(name: &str) -> Option<u64> {
    name.strip_prefix("blk_")?.parse().ok()
}

/// `subdir<a>/subdir<b>` under `finalized/` for a block (a = bits 16..21,
/// b = bits 8..13 of the id), so no directory grows too large.
pub(crate) fn finalized_subdir(block_id: u64) -> PathBuf {
    let a = (block_id >> 16) & 31;
    let b = (block_id >> 8) & 31;
    PathBuf::from(format!("subdir{a}")).join(format!("subdir{b}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_garbage() {
        let h = encode_header(512);
        assert_eq!(h, [0, 1, 1, 0, 0, 2, 0]);
        assert_eq!(decode_header(&h), Ok(512));
        assert!(decode_header(&h[..5]).is_err());
        assert!(decode_header(&[0, 2, 1, 0, 0, 2, 0]).unwrap_err().contains("version 2"));
        assert!(decode_header(&[0, 1, 9, 0, 0, 2, 0]).unwrap_err().contains("checksum type 9"));
    }

    #[test]
    fn names_and_layout() {
        assert_eq!(parse_meta_name(&meta_file_name(42, 7)), Some((42, 7)));
        assert_eq!(parse_meta_name("blk_42.meta"), None);
        assert_eq!(parse_data_name(&data_file_name(42)), Some(42));
        assert_eq!(parse_data_name("blk_42_7.meta"), None);
        let id = (5 << 16) | (31 << 8) | 3 | (1 << 40);
        assert_eq!(finalized_subdir(id), PathBuf::from("subdir5/subdir31"));
        assert_eq!(expected_meta_len(0, 512), 7);
        assert_eq!(expected_meta_len(513, 512), 15);
    }
}
