//! Taking replicas over for recovery.
//!
//! - Pipeline recovery ([`Storage::reopen_rbw`]): the replica (rbw, or
//!   finalized, which moves back to `rbw/`) is taken from any older writer,
//!   truncated to the length every node keeps, renamed to the new generation
//!   stamp and handed to the new writer.
//! - Block recovery ([`Storage::init_replica_recovery`],
//!   [`Storage::update_replica_under_recovery`]): the first call stops any
//!   writer, remembers the recovery id (older ids are refused from then on)
//!   and tells the replica's state, stamp and valid length; the second
//!   truncates the replica and finalizes it with the recovery id as its
//!   generation stamp.
//! - Pipeline recovery's copy to a replacement node
//!   ([`Storage::open_prefix`]): the first bytes of the replica, its writer
//!   stopped.
//!
//! Stopping a writer: its sockets (registered with the replica map) are shut
//! down, which makes its blocking I/O fail; it then lets go of the replica
//! (which stays in `rbw/`), and the waiting thread goes on. A writer that
//! does not let go within [`WRITER_STOP_TIMEOUT`] fails the request.

use parking_lot::MutexGuard;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tusk_proto::dfs::{ReplicaReport, ReplicaState};

use super::volume::{truncate_files, valid_length};
use super::{RbwEntry, RbwReplica, ReplicaInfo, ReplicaMap, ReplicaReader, Storage, WriterSlot};
use crate::error::DatanodeError;

/// How long a writer is given to let go of a replica once asked to stop
/// (HDFS `dfs.datanode.xceiver.stop.timeout.millis` is 60 s).
pub(crate) const WRITER_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a replica is reopened for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reopen {
    /// Pipeline recovery by the client (refused once a block recovery with
    /// a recovery id at least the new generation stamp took the replica).
    Pipeline,
    /// Block recovery with this recovery id (must be the current one).
    BlockRecovery(u64),
}

/// What InitReplicaRecovery answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecoveryInfo {
    pub state: ReplicaState,
    pub gen_stamp: u64,
    /// Valid bytes (the last chunk verified against its checksum).
    pub len: u64,
}

/// Ownership of an rbw entry taken for a recovery; let go (the replica
/// stays in `rbw/`) when dropped unless handed to an [`RbwReplica`].
struct Claim<'a> {
    storage: &'a Storage,
    block_id: u64,
    token: u64,
    armed: bool,
}

impl Claim<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.storage.release(self.block_id, self.token, false);
        }
    }
}

impl Storage {
    /// Waits (the lock released meanwhile) until no writer owns the rbw
    /// replica of `block_id`, shutting the writer's sockets first.
    pub(super) fn wait_writer_gone(
        &self,
        map: &mut MutexGuard<'_, ReplicaMap>,
        block_id: u64,
    ) -> Result<(), DatanodeError> {
        let deadline = Instant::now() + WRITER_STOP_TIMEOUT;
        loop {
            let Some(w) = map.rbw.get_mut(&block_id).and_then(|e| e.writer.as_mut()) else { return Ok(()) };
            if !w.stopping {
                w.stopping = true;
                tracing::info!(block_id, "stopping the writer of the replica");
                for s in &w.sockets {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
            if self.released.wait_until(map, deadline).timed_out()
                && map.rbw.get(&block_id).is_some_and(|e| e.writer.is_some())
            {
                return Err(DatanodeError::WriterBusy { block_id, secs: WRITER_STOP_TIMEOUT.as_secs() });
            }
        }
    }

    /// Reopens the replica of `block_id` for writing from byte `len` on, with
    /// generation stamp `new_gs`: stops an older writer, moves a finalized
    /// replica back to `rbw/`, truncates data and meta to `len` (the last
    /// partial chunk's checksum recomputed) and renames the meta file.
    /// Refused when the replica holds fewer than `len` valid bytes or has a
    /// newer generation stamp.
    pub(crate) fn reopen_rbw(
        self: &Arc<Self>,
        block_id: u64,
        new_gs: u64,
        len: u64,
        why: Reopen,
    ) -> Result<RbwReplica, DatanodeError> {
        let token = self.next_token();
        let refused = |message: String| DatanodeError::RecoveryRefused { block_id, message };
        let not_found = || DatanodeError::ReplicaNotFound { block_id, reason: "no replica on this datanode".into() };
        let (volume, old_gs, shared_len, moved) = {
            let mut map = self.map.lock();
            // A stale request must not stop the writer of a newer replica.
            if let Some(gs) = map.rbw.get(&block_id).map(|e| e.gen_stamp).filter(|&gs| gs > new_gs) {
                return Err(refused(format!("replica has generation stamp {gs}, newer than {new_gs}")));
            }
            self.wait_writer_gone(&mut map, block_id)?;
            match why {
                Reopen::Pipeline => {
                    if let Some(&rid) = map.recoveries.get(&block_id)
                        && rid >= new_gs
                    {
                        return Err(refused(format!(
                            "block recovery {rid} took the replica over; generation stamp {new_gs} is too old"
                        )));
                    }
                }
                Reopen::BlockRecovery(rid) => check_current_recovery(&map, block_id, rid)?,
            }
            let (gs, held) = if let Some(e) = map.rbw.get(&block_id) {
                (e.gen_stamp, e.len.load(Ordering::Relaxed))
            } else if let Some(i) = map.finalized.get(&block_id) {
                (i.gen_stamp, i.len)
            } else {
                return Err(not_found());
            };
            if gs > new_gs {
                return Err(refused(format!("replica has generation stamp {gs}, newer than {new_gs}")));
            }
            if held < len {
                return Err(refused(format!("replica holds {held} bytes, fewer than the {len} to keep")));
            }
            if let Some(e) = map.rbw.get_mut(&block_id) {
                e.writer = Some(WriterSlot { token, sockets: Vec::new(), stopping: false });
                (e.volume, e.gen_stamp, Arc::clone(&e.len), None)
            } else if let Some(i) = map.finalized.remove(&block_id) {
                self.volumes[i.volume].sub_used(i.disk_bytes);
                let entry = RbwEntry::owned(i.gen_stamp, i.volume, i.len, token);
                let shared = Arc::clone(&entry.len);
                map.rbw.insert(block_id, entry);
                (i.volume, i.gen_stamp, shared, Some(i))
            } else {
                // Checked above, under the same lock.
                return Err(not_found());
            }
        };
        let claim = Claim { storage: self, block_id, token, armed: true };
        if let Some(info) = moved
            && let Err(e) = self.move_back_to_rbw(block_id, token, info)
        {
            claim.disarm();
            return Err(e);
        }
        let v = &self.volumes[volume];
        let (data_path, meta_path) = (v.rbw_data_path(block_id), v.rbw_meta_path(block_id, old_gs));
        let (valid, bpc) = valid_length(&data_path, &meta_path)
            .map_err(|reason| DatanodeError::CorruptReplica { block_id, path: data_path.clone(), reason })?;
        shared_len.store(valid, Ordering::Relaxed);
        if valid < len {
            return Err(refused(format!("replica holds {valid} valid bytes, fewer than the {len} to keep")));
        }
        truncate_files(&data_path, &meta_path, len, bpc).map_err(|e| DatanodeError::io(&data_path, e))?;
        shared_len.store(len, Ordering::Relaxed);
        if new_gs != old_gs {
            let new_meta = v.rbw_meta_path(block_id, new_gs);
            std::fs::rename(&meta_path, &new_meta).map_err(|e| DatanodeError::io(&new_meta, e))?;
            if let Some(e) = self.map.lock().rbw.get_mut(&block_id) {
                e.gen_stamp = new_gs;
            }
        }
        tracing::info!(block_id, len, old_gs, new_gs, ?why, "replica reopened for recovery");
        claim.disarm();
        RbwReplica::reopen(Arc::clone(self), block_id, new_gs, volume, token, shared_len, len, bpc)
    }

    /// Moves a finalized replica (already an owned rbw entry in the map)
    /// back to `rbw/`; on failure it stays finalized.
    fn move_back_to_rbw(&self, block_id: u64, token: u64, info: ReplicaInfo) -> Result<(), DatanodeError> {
        let v = &self.volumes[info.volume];
        let (fin_data, fin_meta) = (v.data_path(block_id), v.meta_path(block_id, info.gen_stamp));
        let (rbw_data, rbw_meta) = (v.rbw_data_path(block_id), v.rbw_meta_path(block_id, info.gen_stamp));
        let moved = std::fs::rename(&fin_data, &rbw_data).map_err(|e| DatanodeError::io(&fin_data, e)).and_then(|_| {
            std::fs::rename(&fin_meta, &rbw_meta).map_err(|e| {
                if let Err(back) = std::fs::rename(&rbw_data, &fin_data) {
                    tracing::error!(path = %rbw_data.display(), "cannot move the data file back: {back}");
                }
                DatanodeError::io(&fin_meta, e)
            })
        });
        if moved.is_err() {
            let mut map = self.map.lock();
            if map.rbw.get(&block_id).and_then(|e| e.writer.as_ref()).is_some_and(|w| w.token == token) {
                map.rbw.remove(&block_id);
                map.finalized.insert(block_id, info);
                v.add_used(info.disk_bytes);
            }
            drop(map);
            self.released.notify_all();
        }
        moved
    }

    /// Block recovery, step 1: stops any writer of the replica and tells the
    /// replica's state, stamp and valid length, remembering `recovery_id`
    /// (from then on older recovery ids are refused, and so is a pipeline
    /// recovery with a stamp not above it). A replica older than the block's
    /// `block_gs`, or not older than the recovery id, is refused (and the id
    /// not remembered).
    pub(crate) fn init_replica_recovery(
        &self,
        block_id: u64,
        block_gs: u64,
        recovery_id: u64,
    ) -> Result<RecoveryInfo, DatanodeError> {
        let mut map = self.map.lock();
        if let Some(&current) = map.recoveries.get(&block_id)
            && current > recovery_id
        {
            return Err(DatanodeError::RecoverySuperseded { block_id, recovery_id, current });
        }
        self.wait_writer_gone(&mut map, block_id)?;
        let info = if let Some(e) = map.rbw.get(&block_id) {
            let v = &self.volumes[e.volume];
            let (data_path, meta_path) = (v.rbw_data_path(block_id), v.rbw_meta_path(block_id, e.gen_stamp));
            let (valid, _) = valid_length(&data_path, &meta_path)
                .map_err(|reason| DatanodeError::CorruptReplica { block_id, path: data_path, reason })?;
            e.len.store(valid, Ordering::Relaxed);
            RecoveryInfo { state: ReplicaState::ReplicaRbw, gen_stamp: e.gen_stamp, len: valid }
        } else if let Some(i) = map.finalized.get(&block_id) {
            RecoveryInfo { state: ReplicaState::ReplicaFinalized, gen_stamp: i.gen_stamp, len: i.len }
        } else {
            return Err(DatanodeError::ReplicaNotFound { block_id, reason: "no replica on this datanode".into() });
        };
        let refused = |message: String| Err(DatanodeError::RecoveryRefused { block_id, message });
        if info.gen_stamp < block_gs {
            return refused(format!(
                "replica has generation stamp {}, older than the block's {block_gs}",
                info.gen_stamp
            ));
        }
        if info.gen_stamp >= recovery_id {
            return refused(format!(
                "replica has generation stamp {}, not older than recovery id {recovery_id}",
                info.gen_stamp
            ));
        }
        // Checked again: the lock was let go while a writer stopped.
        if let Some(&current) = map.recoveries.get(&block_id)
            && current > recovery_id
        {
            return Err(DatanodeError::RecoverySuperseded { block_id, recovery_id, current });
        }
        map.recoveries.insert(block_id, recovery_id);
        tracing::info!(block_id, recovery_id, ?info, "replica under recovery");
        Ok(info)
    }

    /// Block recovery, step 2: truncates the replica to `new_length` and
    /// finalizes it with generation stamp `recovery_id` (a finalized replica
    /// of that length only has its meta file renamed).
    pub(crate) fn update_replica_under_recovery(
        self: &Arc<Self>,
        block_id: u64,
        recovery_id: u64,
        new_length: u64,
    ) -> Result<ReplicaReport, DatanodeError> {
        {
            let map = &mut *self.map.lock();
            check_current_recovery(map, block_id, recovery_id)?;
            if let Some(i) = map.finalized.get_mut(&block_id)
                && i.len == new_length
                && i.gen_stamp <= recovery_id
            {
                if i.gen_stamp < recovery_id {
                    let v = &self.volumes[i.volume];
                    let (old, new) = (v.meta_path(block_id, i.gen_stamp), v.meta_path(block_id, recovery_id));
                    std::fs::rename(&old, &new).map_err(|e| DatanodeError::io(&new, e))?;
                    i.gen_stamp = recovery_id;
                }
                tracing::info!(block_id, recovery_id, len = new_length, "finalized replica takes the recovery id");
                return Ok(ReplicaReport { block_id, generation_stamp: recovery_id, num_bytes: new_length });
            }
        }
        let replica = self.reopen_rbw(block_id, recovery_id, new_length, Reopen::BlockRecovery(recovery_id))?;
        replica.finalize()
    }

    /// The first `len` bytes of the replica of `block_id` (rbw, its writer
    /// stopped, or finalized) with a generation stamp not newer than
    /// `max_gs`, for pipeline recovery's copy to a replacement datanode.
    pub(crate) fn open_prefix(&self, block_id: u64, max_gs: u64, len: u64) -> Result<ReplicaReader, DatanodeError> {
        let newer = |gs: u64| DatanodeError::ReplicaNotFound {
            block_id,
            reason: format!("replica has generation stamp {gs}, newer than {max_gs}"),
        };
        let (gs, data_path, meta_path) = {
            let mut map = self.map.lock();
            // A stale request must not stop the writer of a newer replica.
            if let Some(gs) = map.rbw.get(&block_id).map(|e| e.gen_stamp).filter(|&gs| gs > max_gs) {
                return Err(newer(gs));
            }
            self.wait_writer_gone(&mut map, block_id)?;
            if let Some(e) = map.rbw.get(&block_id) {
                let v = &self.volumes[e.volume];
                (e.gen_stamp, v.rbw_data_path(block_id), v.rbw_meta_path(block_id, e.gen_stamp))
            } else if let Some(i) = map.finalized.get(&block_id) {
                let v = &self.volumes[i.volume];
                (i.gen_stamp, v.data_path(block_id), v.meta_path(block_id, i.gen_stamp))
            } else {
                return Err(DatanodeError::ReplicaNotFound { block_id, reason: "no replica on this datanode".into() });
            }
        };
        if gs > max_gs {
            return Err(newer(gs));
        }
        ReplicaReader::open_prefix(block_id, gs, data_path, meta_path, len)
    }
}

/// The block's current recovery must be `recovery_id`.
fn check_current_recovery(map: &ReplicaMap, block_id: u64, recovery_id: u64) -> Result<(), DatanodeError> {
    match map.recoveries.get(&block_id) {
        Some(&current) if current == recovery_id => Ok(()),
        Some(&current) if current > recovery_id => {
            Err(DatanodeError::RecoverySuperseded { block_id, recovery_id, current })
        }
        _ => Err(DatanodeError::RecoveryRefused {
            block_id,
            message: format!("recovery {recovery_id} was not initialized on this datanode"),
        }),
    }
}

#[cfg(test)]
mod tests;
