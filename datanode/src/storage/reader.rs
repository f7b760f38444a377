//! Reading a replica: data and the checksums stored with it. A finalized
//! replica is read whole; a prefix of any replica (for pipeline recovery's
//! copy to a replacement datanode) ends with a recomputed checksum when it
//! ends inside a chunk the replica holds more of.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use tusk_proto::transfer::{CHECKSUM_SIZE, chunk_count};

use super::{ReplicaInfo, meta};
use crate::error::DatanodeError;

pub(crate) struct ReplicaReader {
    block_id: u64,
    gen_stamp: u64,
    len: u64,
    bytes_per_checksum: u32,
    data: File,
    meta: File,
    data_path: PathBuf,
    meta_path: PathBuf,
    /// The last chunk of `len` is partial but the file holds more of it:
    /// its stored checksum covers other bytes and is recomputed.
    recompute_last: bool,
}

impl ReplicaReader {
    /// Opens both files and checks they still describe `info` (a truncated
    /// data or meta file is refused here).
    pub(super) fn open(
        block_id: u64,
        info: ReplicaInfo,
        data_path: PathBuf,
        meta_path: PathBuf,
    ) -> Result<ReplicaReader, DatanodeError> {
        let corrupt = |path: &PathBuf, reason: String| DatanodeError::CorruptReplica { block_id, path: path.clone(), reason };
        let data = File::open(&data_path).map_err(|e| corrupt(&data_path, e.to_string()))?;
        let mut meta_f = File::open(&meta_path).map_err(|e| corrupt(&meta_path, e.to_string()))?;
        let data_len = data.metadata().map_err(|e| corrupt(&data_path, e.to_string()))?.len();
        if data_len != info.len {
            return Err(corrupt(&data_path, format!("data file has {data_len} bytes, expected {}", info.len)));
        }
        let mut h = [0u8; meta::HEADER_LEN as usize];
        meta_f.read_exact(&mut h).map_err(|e| corrupt(&meta_path, format!("header: {e}")))?;
        let bpc = meta::decode_header(&h).map_err(|e| corrupt(&meta_path, e))?;
        let meta_len = meta_f.metadata().map_err(|e| corrupt(&meta_path, e.to_string()))?.len();
        let want = meta::expected_meta_len(data_len, bpc);
        if meta_len != want {
            return Err(corrupt(&meta_path, format!("meta file has {meta_len} bytes, expected {want}")));
        }
        Ok(ReplicaReader {
            block_id,
            gen_stamp: info.gen_stamp,
            len: data_len,
            bytes_per_checksum: bpc,
            data,
            meta: meta_f,
            data_path,
            meta_path,
            recompute_last: false,
        })
    }

    /// Opens the first `len` bytes of a replica (of any state) whose files
    /// hold at least that much.
    pub(super) fn open_prefix(
        block_id: u64,
        gen_stamp: u64,
        data_path: PathBuf,
        meta_path: PathBuf,
        len: u64,
    ) -> Result<ReplicaReader, DatanodeError> {
        let short = |path: &PathBuf, reason: String| DatanodeError::ReplicaNotFound {
            block_id,
            reason: format!("{}: {reason}", path.display()),
        };
        let data = File::open(&data_path).map_err(|e| short(&data_path, e.to_string()))?;
        let mut meta_f = File::open(&meta_path).map_err(|e| short(&meta_path, e.to_string()))?;
        let data_len = data.metadata().map_err(|e| short(&data_path, e.to_string()))?.len();
        if data_len < len {
            return Err(short(&data_path, format!("holds {data_len} bytes, fewer than the {len} asked for")));
        }
        let mut h = [0u8; meta::HEADER_LEN as usize];
        meta_f.read_exact(&mut h).map_err(|e| short(&meta_path, format!("header: {e}")))?;
        let bpc = meta::decode_header(&h).map_err(|e| short(&meta_path, e))?;
        let meta_len = meta_f.metadata().map_err(|e| short(&meta_path, e.to_string()))?.len();
        let want = meta::expected_meta_len(len, bpc);
        if meta_len < want {
            return Err(short(&meta_path, format!("has {meta_len} bytes, {want} needed for {len} bytes of data")));
        }
        Ok(ReplicaReader {
            block_id,
            gen_stamp,
            len,
            bytes_per_checksum: bpc,
            data,
            meta: meta_f,
            data_path,
            meta_path,
            recompute_last: !len.is_multiple_of(bpc as u64) && data_len > len,
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn gen_stamp(&self) -> u64 {
        self.gen_stamp
    }

    pub(crate) fn bytes_per_checksum(&self) -> u32 {
        self.bytes_per_checksum
    }

    /// The open data and meta files (for a short-circuit read, whose client
    /// reads and verifies them itself).
    pub(crate) fn into_files(self) -> (File, File) {
        (self.data, self.meta)
    }

    /// Reads `n` bytes from chunk-aligned `offset` into `data` and their
    /// stored checksums into `sums` (both cleared first).
    pub(crate) fn read_chunks(
        &self,
        offset: u64,
        n: usize,
        data: &mut Vec<u8>,
        sums: &mut Vec<u8>,
    ) -> Result<(), DatanodeError> {
        let bpc = self.bytes_per_checksum as u64;
        if !offset.is_multiple_of(bpc) || offset + n as u64 > self.len {
            return Err(DatanodeError::ReplicaNotFound {
                block_id: self.block_id,
                reason: format!("range {offset}+{n} is not chunk aligned or beyond the replica's {} bytes", self.len),
            });
        }
        data.resize(n, 0);
        self.data.read_exact_at(data, offset).map_err(|e| DatanodeError::io(&self.data_path, e))?;
        sums.resize(chunk_count(n, self.bytes_per_checksum) * CHECKSUM_SIZE, 0);
        let sums_at = meta::HEADER_LEN + (offset / bpc) * CHECKSUM_SIZE as u64;
        self.meta.read_exact_at(sums, sums_at).map_err(|e| DatanodeError::io(&self.meta_path, e))?;
        if self.recompute_last && n > 0 && offset + n as u64 == self.len {
            let last = (n - 1) / self.bytes_per_checksum as usize;
            let at = last * CHECKSUM_SIZE;
            let chunk = &data[last * self.bytes_per_checksum as usize..];
            sums[at..at + CHECKSUM_SIZE].copy_from_slice(&crc32c::crc32c(chunk).to_be_bytes());
        }
        Ok(())
    }
}
