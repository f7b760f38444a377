//! A replica being written: files in `rbw/`, moved to `finalized/` when
//! complete, removed when abandoned (dropped without `finalize`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tusk_proto::dfs::{ReplicaReport, TransferStatus};
use tusk_proto::transfer::{CHECKSUM_SIZE, DEFAULT_BYTES_PER_CHECKSUM, chunk_count};

use super::volume::remove_quietly;
use super::{ReplicaInfo, Storage, meta};
use crate::error::DatanodeError;

const FILE_BUFFER: usize = 128 * 1024;

pub(crate) struct RbwReplica {
    storage: Arc<Storage>,
    block_id: u64,
    gen_stamp: u64,
    volume: usize,
    data: BufWriter<File>,
    meta: BufWriter<File>,
    data_path: PathBuf,
    meta_path: PathBuf,
    len: u64,
    bytes_per_checksum: u32,
    done: bool,
}

fn create_file(path: &Path) -> Result<BufWriter<File>, DatanodeError> {
    let f = File::options().write(true).create_new(true).open(path).map_err(|e| DatanodeError::io(path, e))?;
    Ok(BufWriter::with_capacity(FILE_BUFFER, f))
}

impl RbwReplica {
    pub(super) fn create(
        storage: Arc<Storage>,
        block_id: u64,
        gen_stamp: u64,
        volume: usize,
    ) -> Result<RbwReplica, DatanodeError> {
        let v = storage.volume(volume);
        let data_path = v.rbw_data_path(block_id);
        let meta_path = v.rbw_meta_path(block_id, gen_stamp);
        // Leftovers of an earlier attempt at this block (already abandoned).
        remove_quietly(&data_path);
        remove_quietly(&meta_path);
        let opened = create_file(&data_path).and_then(|d| Ok((d, create_file(&meta_path)?)));
        let (data, mut meta_w) = match opened {
            Ok(x) => x,
            Err(e) => {
                remove_quietly(&data_path);
                storage.release(block_id);
                return Err(e);
            }
        };
        let bpc = DEFAULT_BYTES_PER_CHECKSUM;
        let header = meta_w.write_all(&meta::encode_header(bpc));
        let replica = RbwReplica {
            storage,
            block_id,
            gen_stamp,
            volume,
            data,
            meta: meta_w,
            data_path,
            meta_path,
            len: 0,
            bytes_per_checksum: bpc,
            done: false,
        };
        // On error the drop removes both files.
        header.map_err(|e| DatanodeError::io(&replica.meta_path, e))?;
        Ok(replica)
    }

    pub(crate) fn block_id(&self) -> u64 {
        self.block_id
    }

    /// Bytes received so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn bytes_per_checksum(&self) -> u32 {
        self.bytes_per_checksum
    }

    /// Appends `data` and its (already verified, received) checksums. Data
    /// may only follow whole chunks: a partial chunk ends the block.
    pub(crate) fn append(&mut self, data: &[u8], checksums: &[u8]) -> Result<(), DatanodeError> {
        if data.is_empty() {
            return Ok(());
        }
        let bpc = self.bytes_per_checksum;
        if !self.len.is_multiple_of(bpc as u64) {
            return Err(DatanodeError::BadPacket {
                block_id: self.block_id,
                status: TransferStatus::ErrorInvalid,
                message: format!("data after a partial chunk at offset {}", self.len),
            });
        }
        if checksums.len() != chunk_count(data.len(), bpc) * CHECKSUM_SIZE {
            return Err(DatanodeError::BadPacket {
                block_id: self.block_id,
                status: TransferStatus::ErrorChecksum,
                message: format!("{} checksum bytes for {} data bytes", checksums.len(), data.len()),
            });
        }
        self.data.write_all(data).map_err(|e| DatanodeError::io(&self.data_path, e))?;
        self.meta.write_all(checksums).map_err(|e| DatanodeError::io(&self.meta_path, e))?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Flushes (and fsyncs if configured) the files and moves them to
    /// `finalized`, the meta file last, then makes the replica visible.
    pub(crate) fn finalize(mut self) -> Result<ReplicaReport, DatanodeError> {
        let sync = self.storage.sync_on_finalize;
        for (w, path) in [(&mut self.data, &self.data_path), (&mut self.meta, &self.meta_path)] {
            w.flush().map_err(|e| DatanodeError::io(path, e))?;
            if sync {
                w.get_ref().sync_all().map_err(|e| DatanodeError::io(path, e))?;
            }
        }
        let storage = Arc::clone(&self.storage);
        let v = storage.volume(self.volume);
        let dir = v.finalized_dir(self.block_id);
        std::fs::create_dir_all(&dir).map_err(|e| DatanodeError::io(&dir, e))?;
        let final_data = v.data_path(self.block_id);
        let final_meta = v.meta_path(self.block_id, self.gen_stamp);
        std::fs::rename(&self.data_path, &final_data).map_err(|e| DatanodeError::io(&final_data, e))?;
        if let Err(e) = std::fs::rename(&self.meta_path, &final_meta) {
            remove_quietly(&final_data);
            return Err(DatanodeError::io(&final_meta, e));
        }
        if sync && let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
            tracing::warn!(dir = %dir.display(), "fsync of the directory failed: {e}");
        }
        self.done = true;
        let meta_len = meta::expected_meta_len(self.len, self.bytes_per_checksum);
        let info =
            ReplicaInfo { gen_stamp: self.gen_stamp, len: self.len, volume: self.volume, disk_bytes: self.len + meta_len };
        storage.publish(self.block_id, info);
        tracing::debug!(block_id = self.block_id, len = self.len, "replica finalized");
        Ok(ReplicaReport { block_id: self.block_id, generation_stamp: self.gen_stamp, num_bytes: self.len })
    }
}

impl Drop for RbwReplica {
    fn drop(&mut self) {
        if !self.done {
            tracing::debug!(block_id = self.block_id, "abandoning an unfinished replica");
            remove_quietly(&self.data_path);
            remove_quietly(&self.meta_path);
            self.storage.release(self.block_id);
        }
    }
}
