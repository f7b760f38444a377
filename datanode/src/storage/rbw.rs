//! The owner's handle of a replica in `rbw/`: appends packets, then either
//! moves the files to `finalized/` ([`RbwReplica::finalize`]), removes them
//! ([`RbwReplica::abort`], for data that must not survive: a checksum error,
//! a full disk; unless a recovery is stopping this writer and wants the
//! replica), or, when simply dropped, leaves the replica in `rbw/` with
//! the bytes written so far, for a pipeline or block recovery.
//!
//! Every packet goes straight to the files (no user-space buffer), so the
//! bytes counted in the replica map are on disk (in the page cache at least)
//! and another thread may read them once the writer let go.

use std::fs::File;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tusk_proto::dfs::{ReplicaReport, TransferStatus};
use tusk_proto::transfer::{CHECKSUM_SIZE, DEFAULT_BYTES_PER_CHECKSUM, chunk_count};

use super::volume::remove_quietly;
use super::{ReplicaInfo, Storage, meta};
use crate::error::DatanodeError;

/// How the replica's files end when the handle goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Stays in `rbw/` (dropped without finalize or abort).
    Keep,
    Finalized,
    Abort,
}

pub(crate) struct RbwReplica {
    storage: Arc<Storage>,
    block_id: u64,
    gen_stamp: u64,
    volume: usize,
    /// Identifies this owner in the replica map.
    token: u64,
    data: File,
    meta: File,
    data_path: PathBuf,
    meta_path: PathBuf,
    len: u64,
    /// `len`, as the replica map sees it.
    shared_len: Arc<AtomicU64>,
    bytes_per_checksum: u32,
    end: End,
}

fn create_file(path: &Path) -> Result<File, DatanodeError> {
    File::options().write(true).create_new(true).open(path).map_err(|e| DatanodeError::io(path, e))
}

/// An I/O error while writing `path`; ENOSPC becomes [`DatanodeError::NoSpace`].
fn write_error(block_id: u64, path: &Path, e: std::io::Error) -> DatanodeError {
    if e.raw_os_error() == Some(nix::errno::Errno::ENOSPC as i32) {
        return DatanodeError::NoSpace { block_id, detail: format!("{}: {e}", path.display()) };
    }
    DatanodeError::io(path, e)
}

impl RbwReplica {
    /// Creates the files of a new replica whose (owned) map entry exists.
    pub(super) fn create(
        storage: Arc<Storage>,
        block_id: u64,
        gen_stamp: u64,
        volume: usize,
        token: u64,
        shared_len: Arc<AtomicU64>,
    ) -> Result<RbwReplica, DatanodeError> {
        let v = storage.volume(volume);
        let data_path = v.rbw_data_path(block_id);
        let meta_path = v.rbw_meta_path(block_id, gen_stamp);
        // Leftovers of an earlier attempt at this block (already abandoned).
        remove_quietly(&data_path);
        remove_quietly(&meta_path);
        let opened = create_file(&data_path).and_then(|d| Ok((d, create_file(&meta_path)?)));
        let (data, meta_f) = match opened {
            Ok(x) => x,
            Err(e) => {
                remove_quietly(&data_path);
                storage.release(block_id, token, true);
                return Err(e);
            }
        };
        let bpc = DEFAULT_BYTES_PER_CHECKSUM;
        let mut replica = RbwReplica {
            storage,
            block_id,
            gen_stamp,
            volume,
            token,
            data,
            meta: meta_f,
            data_path,
            meta_path,
            len: 0,
            shared_len,
            bytes_per_checksum: bpc,
            end: End::Abort,
        };
        // On error the drop removes both files.
        let header = replica.meta.write_all(&meta::encode_header(bpc));
        header.map_err(|e| write_error(block_id, &replica.meta_path, e))?;
        replica.end = End::Keep;
        Ok(replica)
    }

    /// Opens the files of an existing rbw replica (already truncated to
    /// `len`, meta file named for `gen_stamp`) to append to it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reopen(
        storage: Arc<Storage>,
        block_id: u64,
        gen_stamp: u64,
        volume: usize,
        token: u64,
        shared_len: Arc<AtomicU64>,
        len: u64,
        bytes_per_checksum: u32,
    ) -> Result<RbwReplica, DatanodeError> {
        let v = storage.volume(volume);
        let data_path = v.rbw_data_path(block_id);
        let meta_path = v.rbw_meta_path(block_id, gen_stamp);
        let open = |p: &Path| File::options().append(true).open(p).map_err(|e| DatanodeError::io(p, e));
        let files = open(&data_path).and_then(|d| Ok((d, open(&meta_path)?)));
        let (data, meta_f) = match files {
            Ok(f) => f,
            Err(e) => {
                storage.release(block_id, token, false);
                return Err(e);
            }
        };
        shared_len.store(len, Ordering::Relaxed);
        Ok(RbwReplica {
            storage,
            block_id,
            gen_stamp,
            volume,
            token,
            data,
            meta: meta_f,
            data_path,
            meta_path,
            len,
            shared_len,
            bytes_per_checksum,
            end: End::Keep,
        })
    }

    pub(crate) fn block_id(&self) -> u64 {
        self.block_id
    }

    /// Bytes held so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn bytes_per_checksum(&self) -> u32 {
        self.bytes_per_checksum
    }

    /// Registers sockets whose shutdown makes this owner's blocking I/O fail,
    /// so that a recovery can stop it.
    pub(crate) fn watch_sockets(&self, sockets: Vec<TcpStream>) {
        self.storage.watch_sockets(self.block_id, self.token, sockets);
    }

    /// Appends `data` and its (already verified, received) checksums. Data
    /// may only follow whole chunks: a partial chunk ends the block. Refused
    /// with [`DatanodeError::NoSpace`] when the volume's free space would
    /// fall below `reserved_bytes`.
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
        self.check_space(data.len() + checksums.len())?;
        self.data.write_all(data).map_err(|e| write_error(self.block_id, &self.data_path, e))?;
        self.meta.write_all(checksums).map_err(|e| write_error(self.block_id, &self.meta_path, e))?;
        self.len += data.len() as u64;
        self.shared_len.store(self.len, Ordering::Relaxed);
        Ok(())
    }

    fn check_space(&self, n: usize) -> Result<(), DatanodeError> {
        let reserved = self.storage.reserved_bytes();
        let v = self.storage.volume(self.volume);
        match v.fs_space() {
            Ok(s) if s.available < reserved.saturating_add(n as u64) => Err(DatanodeError::NoSpace {
                block_id: self.block_id,
                detail: format!(
                    "{} has {} bytes free, reserved_bytes is {reserved}, a packet needs {n}",
                    v.dir.display(),
                    s.available
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Flushes (and fsyncs if configured) the files and moves them to
    /// `finalized`, the meta file last, then makes the replica visible. On
    /// failure the replica stays in `rbw`.
    pub(crate) fn finalize(mut self) -> Result<ReplicaReport, DatanodeError> {
        if self.storage.sync_on_finalize {
            for (f, path) in [(&self.data, &self.data_path), (&self.meta, &self.meta_path)] {
                f.sync_all().map_err(|e| DatanodeError::io(path, e))?;
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
            if let Err(back) = std::fs::rename(&final_data, &self.data_path) {
                tracing::error!(path = %final_data.display(), "cannot move the data file back to rbw: {back}");
            }
            return Err(DatanodeError::io(&final_meta, e));
        }
        if storage.sync_on_finalize
            && let Err(e) = File::open(&dir).and_then(|d| d.sync_all())
        {
            tracing::warn!(dir = %dir.display(), "fsync of the directory failed: {e}");
        }
        self.end = End::Finalized;
        let meta_len = meta::expected_meta_len(self.len, self.bytes_per_checksum);
        let info = ReplicaInfo {
            gen_stamp: self.gen_stamp,
            len: self.len,
            volume: self.volume,
            disk_bytes: self.len + meta_len,
            bad: false,
        };
        storage.publish(self.block_id, self.token, info);
        tracing::debug!(block_id = self.block_id, len = self.len, gen_stamp = self.gen_stamp, "replica finalized");
        Ok(ReplicaReport { block_id: self.block_id, generation_stamp: self.gen_stamp, num_bytes: self.len })
    }

    /// Removes the replica: its data must not survive.
    pub(crate) fn abort(mut self) {
        self.end = End::Abort;
    }
}

impl Drop for RbwReplica {
    fn drop(&mut self) {
        match self.end {
            End::Finalized => {}
            End::Keep => {
                tracing::debug!(block_id = self.block_id, len = self.len, "keeping an unfinished replica in rbw");
                self.storage.release(self.block_id, self.token, false);
            }
            End::Abort => {
                tracing::debug!(block_id = self.block_id, "abandoning an unfinished replica");
                self.storage.abandon(self.block_id, self.token, &self.data_path, &self.meta_path);
            }
        }
    }
}
