//! Replica storage over the data directories ("volumes").
//!
//! Layout per volume: `VERSION`, `current/rbw/` (replicas being written, or
//! left by a failed write) and `current/finalized/subdir<a>/subdir<b>/`
//! (complete replicas). The replica map knows two kinds of replicas:
//!
//! - **finalized**: complete, immutable (except by recovery, which renames
//!   the meta file to a new generation stamp or moves the replica back to
//!   `rbw`); served to readers, announced in block reports. A finalized
//!   replica found damaged is marked `bad` and reported to the namenode, but
//!   its files stay until the namenode's delete command.
//! - **rbw** ("replica being written"): files in `rbw/`, with the bytes they
//!   hold. While a writer thread owns one (a write pipeline), it is
//!   *active*: anything else that needs the replica (pipeline recovery, block
//!   recovery, a delete, a newer write) first stops that writer by shutting
//!   down its sockets and waits for it to let go ([`recovery`]). A failed
//!   write leaves the replica on disk, inactive, for recovery; rbw replicas
//!   are reported in full block reports (`BlockReportRequest.rbw`).
//!
//! A replica becomes finalized once complete: its files are flushed (and
//! fsynced if configured), then the data file and, last, the meta file are
//! renamed into `finalized`. The scan at start accepts a finalized replica
//! only if data length and meta size agree, and keeps `rbw/` replicas with
//! their valid length (a torn tail is cut off). A finalized replica of a
//! block supersedes an rbw one.
//!
//! Things the namenode must hear about but that storage finds on its own
//! (bad replicas, vanished ones) are queued as [`Notices`] that the namenode
//! actor sends.

mod meta;
mod rbw;
mod reader;
mod recovery;
pub(crate) mod scanner;
mod version;
mod volume;

use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tusk_proto::dfs::{BadReplica, ExtendedBlock, ReplicaReport, StorageReport};
use tusk_proto::transfer::DEFAULT_PACKET_SIZE;

use crate::error::DatanodeError;
pub(crate) use rbw::RbwReplica;
pub(crate) use reader::ReplicaReader;
pub(crate) use recovery::Reopen;
use scanner::ScanQueue;
use version::VersionFile;
use volume::{Volume, remove_quietly};

/// Where a finalized replica is and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplicaInfo {
    pub gen_stamp: u64,
    pub len: u64,
    pub volume: usize,
    /// Data plus meta bytes on disk.
    pub disk_bytes: u64,
    /// Found damaged and reported to the namenode: never a transfer source.
    pub bad: bool,
}

/// A replica in `rbw/`.
pub(crate) struct RbwEntry {
    pub gen_stamp: u64,
    pub volume: usize,
    /// Bytes held on disk (the writer updates it after every packet).
    pub len: Arc<AtomicU64>,
    /// The thread that owns the replica right now, if any.
    pub writer: Option<WriterSlot>,
}

/// The owner of an rbw replica and how to make it let go.
pub(crate) struct WriterSlot {
    pub token: u64,
    /// Sockets whose shutdown ends the owner's blocking I/O.
    pub sockets: Vec<TcpStream>,
    /// Someone asked the owner to stop (sockets registered later are shut at once).
    pub stopping: bool,
}

#[derive(Default)]
pub(crate) struct ReplicaMap {
    pub finalized: HashMap<u64, ReplicaInfo>,
    pub rbw: HashMap<u64, RbwEntry>,
    /// Block recovery: the latest recovery id seen per block.
    pub recoveries: HashMap<u64, u64>,
}

/// What storage found that the namenode must be told.
#[derive(Default)]
pub(crate) struct Notices {
    queue: Mutex<NoticeQueue>,
    /// Woken when something is queued.
    pub notify: tokio::sync::Notify,
}

/// Queued bad replicas (for ReportBadBlocks) and vanished ones (for an
/// incremental block report).
#[derive(Default, Debug)]
pub(crate) struct NoticeQueue {
    pub bad: Vec<BadReplica>,
    pub deleted: Vec<ReplicaReport>,
}

impl Notices {
    fn push_bad(&self, r: BadReplica) {
        self.queue.lock().bad.push(r);
        self.notify.notify_one();
    }

    fn push_deleted(&self, r: ReplicaReport) {
        self.queue.lock().deleted.push(r);
        self.notify.notify_one();
    }

    /// Everything queued so far.
    pub(crate) fn take(&self) -> NoticeQueue {
        std::mem::take(&mut *self.queue.lock())
    }

    /// Puts back notices that could not be sent (they go first).
    pub(crate) fn requeue(&self, mut q: NoticeQueue) {
        let mut cur = self.queue.lock();
        q.bad.append(&mut cur.bad);
        q.deleted.append(&mut cur.deleted);
        *cur = q;
    }
}

/// All replicas of this datanode.
pub(crate) struct Storage {
    volumes: Vec<Volume>,
    map: Mutex<ReplicaMap>,
    /// Signalled whenever a writer lets go of an rbw replica.
    released: Condvar,
    identity: Mutex<VersionFile>,
    next_volume: AtomicUsize,
    next_token: AtomicU64,
    reserved_bytes: AtomicU64,
    sync_on_finalize: bool,
    pub(crate) notices: Notices,
    pub(crate) scan_queue: ScanQueue,
}

impl Storage {
    /// Opens (creating if needed) every data directory, checks their VERSION
    /// files agree and scans the finalized and rbw replicas.
    pub(crate) fn open(dirs: &[PathBuf], reserved_bytes: u64, sync_on_finalize: bool) -> Result<Storage, DatanodeError> {
        for d in dirs {
            std::fs::create_dir_all(d).map_err(|e| DatanodeError::io(d, e))?;
        }
        let identity = version::init_dirs(dirs)?;
        let mut volumes = Vec::new();
        let mut map = ReplicaMap::default();
        for (idx, d) in dirs.iter().enumerate() {
            let v = Volume::open(d)?;
            for r in v.scan()? {
                let info =
                    ReplicaInfo { gen_stamp: r.gen_stamp, len: r.len, volume: idx, disk_bytes: r.disk_bytes, bad: false };
                match map.finalized.get(&r.block_id) {
                    Some(old) if old.gen_stamp >= r.gen_stamp => {
                        tracing::warn!(block_id = r.block_id, dir = %d.display(), "ignoring a second replica of the block");
                    }
                    _ => {
                        map.finalized.insert(r.block_id, info);
                    }
                }
            }
            volumes.push(v);
        }
        for (idx, v) in volumes.iter().enumerate() {
            for r in v.scan_rbw()? {
                let superseded = if map.finalized.contains_key(&r.block_id) {
                    Some((idx, r.gen_stamp, "a finalized replica of the block exists"))
                } else {
                    match map.rbw.get(&r.block_id) {
                        Some(old) if old.gen_stamp >= r.gen_stamp => {
                            Some((idx, r.gen_stamp, "another volume holds a newer one"))
                        }
                        Some(old) => Some((old.volume, old.gen_stamp, "another volume holds a newer one")),
                        None => None,
                    }
                };
                if let Some((vol, gs, why)) = superseded {
                    tracing::warn!(block_id = r.block_id, gen_stamp = gs, "removing an rbw replica: {why}");
                    remove_quietly(&volumes[vol].rbw_meta_path(r.block_id, gs));
                    remove_quietly(&volumes[vol].rbw_data_path(r.block_id));
                    if vol == idx {
                        continue;
                    }
                }
                let entry =
                    RbwEntry { gen_stamp: r.gen_stamp, volume: idx, len: Arc::new(AtomicU64::new(r.len)), writer: None };
                map.rbw.insert(r.block_id, entry);
            }
        }
        tracing::info!(
            replicas = map.finalized.len(),
            rbw = map.rbw.len(),
            volumes = volumes.len(),
            "replica storage opened"
        );
        Ok(Storage {
            volumes,
            map: Mutex::new(map),
            released: Condvar::new(),
            identity: Mutex::new(identity),
            next_volume: AtomicUsize::new(0),
            next_token: AtomicU64::new(1),
            reserved_bytes: AtomicU64::new(reserved_bytes),
            sync_on_finalize,
            notices: Notices::default(),
            scan_queue: ScanQueue::default(),
        })
    }

    pub(crate) fn datanode_uuid(&self) -> String {
        self.identity.lock().datanode_uuid.clone()
    }

    /// Cluster id from the VERSION files ("" before the first registration).
    pub(crate) fn cluster_id(&self) -> String {
        self.identity.lock().cluster_id.clone()
    }

    /// Records the cluster id learned at the first registration in every
    /// VERSION file; a different id than the stored one is refused.
    pub(crate) fn adopt_cluster_id(&self, cluster_id: &str, namenode: &str) -> Result<(), DatanodeError> {
        let mut id = self.identity.lock();
        if id.cluster_id == cluster_id {
            return Ok(());
        }
        if !id.cluster_id.is_empty() {
            return Err(DatanodeError::ClusterMismatch {
                local: id.cluster_id.clone(),
                remote: cluster_id.to_string(),
                namenode: namenode.to_string(),
            });
        }
        let mut new = id.clone();
        new.cluster_id = cluster_id.to_string();
        for v in &self.volumes {
            version::write(&v.dir, &new)?;
        }
        *id = new;
        Ok(())
    }

    /// Starts a new replica in `rbw` on the next volume with room (round
    /// robin). A finalized replica, or an rbw one with a newer generation
    /// stamp or being written with the same one, is refused; an older rbw
    /// replica (a stale leftover) is replaced, its writer stopped first.
    pub(crate) fn create_rbw(self: &Arc<Self>, block_id: u64, gen_stamp: u64) -> Result<RbwReplica, DatanodeError> {
        let volume = self.choose_volume().ok_or_else(|| DatanodeError::NoSpace {
            block_id,
            detail: format!(
                "no volume has {} bytes free beyond reserved_bytes = {}",
                DEFAULT_PACKET_SIZE,
                self.reserved_bytes()
            ),
        })?;
        let token = self.next_token();
        let stale = {
            let mut map = self.map.lock();
            if let Some(e) = map.rbw.get(&block_id)
                && e.writer.is_some()
                && e.gen_stamp >= gen_stamp
            {
                return Err(DatanodeError::ReplicaExists { block_id });
            }
            self.wait_writer_gone(&mut map, block_id)?;
            if map.finalized.contains_key(&block_id) {
                return Err(DatanodeError::ReplicaExists { block_id });
            }
            let stale = match map.rbw.get(&block_id) {
                Some(e) if e.gen_stamp > gen_stamp => return Err(DatanodeError::ReplicaExists { block_id }),
                Some(_) => map.rbw.remove(&block_id).map(|e| (e.volume, e.gen_stamp)),
                None => None,
            };
            let entry = RbwEntry::owned(gen_stamp, volume, 0, token);
            let shared_len = Arc::clone(&entry.len);
            map.rbw.insert(block_id, entry);
            (stale, shared_len)
        };
        let (stale, shared_len) = stale;
        if let Some((vol, gs)) = stale {
            tracing::info!(block_id, gen_stamp = gs, "replacing a stale rbw replica");
            remove_quietly(&self.volumes[vol].rbw_meta_path(block_id, gs));
            remove_quietly(&self.volumes[vol].rbw_data_path(block_id));
        }
        RbwReplica::create(Arc::clone(self), block_id, gen_stamp, volume, token, shared_len)
    }

    fn next_token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn reserved_bytes(&self) -> u64 {
        self.reserved_bytes.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn set_reserved_bytes(&self, bytes: u64) {
        self.reserved_bytes.store(bytes, Ordering::Relaxed);
    }

    /// A volume with room for a packet beyond the reserved space.
    fn choose_volume(&self) -> Option<usize> {
        let n = self.volumes.len();
        let start = self.next_volume.fetch_add(1, Ordering::Relaxed);
        let needed = self.reserved_bytes() + DEFAULT_PACKET_SIZE as u64;
        (0..n).map(|i| (start + i) % n).find(|&i| match self.volumes[i].fs_space() {
            Ok(s) => s.available >= needed,
            Err(e) => {
                tracing::warn!("volume skipped: {e}");
                false
            }
        })
    }

    /// Opens a finalized replica of `block_id` whose generation stamp is at
    /// least `min_gen_stamp`, for a reader. A replica whose files turn out
    /// inconsistent is reported to the namenode as bad (its files stay until
    /// the namenode deletes it); one whose data file vanished is dropped and
    /// reported deleted.
    pub(crate) fn open_replica(&self, block_id: u64, min_gen_stamp: u64) -> Result<ReplicaReader, DatanodeError> {
        let info = self.finalized_info(block_id, min_gen_stamp)?;
        let v = &self.volumes[info.volume];
        let (data_path, meta_path) = (v.data_path(block_id), v.meta_path(block_id, info.gen_stamp));
        let r = ReplicaReader::open(block_id, info, data_path.clone(), meta_path);
        if let Err(DatanodeError::CorruptReplica { reason, .. }) = &r {
            if !data_path.exists() {
                self.drop_missing(block_id, info.gen_stamp);
            } else {
                self.report_bad(block_id, info.gen_stamp, reason.clone());
            }
        }
        r
    }

    /// Like [`open_replica`](Self::open_replica), for copying to another
    /// datanode: a replica known to be bad is refused.
    pub(crate) fn open_transfer_source(&self, block_id: u64, min_gen_stamp: u64) -> Result<ReplicaReader, DatanodeError> {
        if self.finalized_info(block_id, min_gen_stamp)?.bad {
            return Err(DatanodeError::ReplicaNotFound {
                block_id,
                reason: "the replica is corrupt (reported to the namenode); not a transfer source".into(),
            });
        }
        self.open_replica(block_id, min_gen_stamp)
    }

    fn finalized_info(&self, block_id: u64, min_gen_stamp: u64) -> Result<ReplicaInfo, DatanodeError> {
        let info = self.map.lock().finalized.get(&block_id).copied();
        let info = info.ok_or_else(|| DatanodeError::ReplicaNotFound {
            block_id,
            reason: "no finalized replica on this datanode".into(),
        })?;
        if info.gen_stamp < min_gen_stamp {
            return Err(DatanodeError::ReplicaNotFound {
                block_id,
                reason: format!(
                    "replica has generation stamp {}, older than the requested {min_gen_stamp}",
                    info.gen_stamp
                ),
            });
        }
        Ok(info)
    }

    /// Marks the finalized replica (if it still has `gen_stamp`) bad and
    /// queues a report to the namenode, once.
    pub(crate) fn report_bad(&self, block_id: u64, gen_stamp: u64, reason: String) {
        let (len, first) = {
            let mut map = self.map.lock();
            match map.finalized.get_mut(&block_id) {
                Some(i) if i.gen_stamp == gen_stamp => (i.len, !std::mem::replace(&mut i.bad, true)),
                _ => return,
            }
        };
        if first {
            tracing::error!(block_id, gen_stamp, "bad replica, reporting it to the namenode: {reason}");
            self.notices.push_bad(BadReplica {
                block: Some(ExtendedBlock { block_id, generation_stamp: gen_stamp, num_bytes: len }),
                datanode_uuid: self.datanode_uuid(),
                reason,
            });
        }
    }

    /// Drops a finalized replica whose data file vanished (its meta file is
    /// removed too) and queues an incremental report of the deletion.
    pub(crate) fn drop_missing(&self, block_id: u64, gen_stamp: u64) {
        let info = {
            let mut map = self.map.lock();
            match map.finalized.get(&block_id) {
                Some(i) if i.gen_stamp == gen_stamp => map.finalized.remove(&block_id),
                _ => None,
            }
        };
        let Some(info) = info else { return };
        let v = &self.volumes[info.volume];
        v.sub_used(info.disk_bytes);
        remove_quietly(&v.meta_path(block_id, gen_stamp));
        tracing::error!(block_id, gen_stamp, "the replica's data file vanished; reporting it deleted");
        self.notices.push_deleted(ReplicaReport { block_id, generation_stamp: gen_stamp, num_bytes: info.len });
    }

    /// Asks the block scanner to verify this replica soon (a read of it failed).
    pub(crate) fn mark_suspect(&self, block_id: u64) {
        self.scan_queue.add_suspect(block_id);
    }

    /// Removes the replica of `block_id` (both files), finalized or rbw (its
    /// writer stopped first), if its generation stamp is not newer than
    /// `gen_stamp` (0 = any). Returns what was deleted, for the incremental
    /// block report.
    pub(crate) fn delete(&self, block_id: u64, gen_stamp: u64) -> Result<Option<ReplicaReport>, DatanodeError> {
        let allowed = |stored: u64| {
            let ok = gen_stamp == 0 || stored <= gen_stamp;
            if !ok {
                tracing::warn!(block_id, stored, asked = gen_stamp, "not deleting a newer replica");
            }
            ok
        };
        let (paths, report) = {
            let mut map = self.map.lock();
            if let Some(i) = map.finalized.get(&block_id).copied() {
                if !allowed(i.gen_stamp) {
                    return Ok(None);
                }
                map.finalized.remove(&block_id);
                let v = &self.volumes[i.volume];
                v.sub_used(i.disk_bytes);
                let paths = [v.meta_path(block_id, i.gen_stamp), v.data_path(block_id)];
                (paths, ReplicaReport { block_id, generation_stamp: i.gen_stamp, num_bytes: i.len })
            } else {
                match map.rbw.get(&block_id) {
                    Some(e) if allowed(e.gen_stamp) => {}
                    _ => return Ok(None),
                }
                self.wait_writer_gone(&mut map, block_id)?;
                let Some(e) = map.rbw.get(&block_id) else { return Ok(None) };
                if !allowed(e.gen_stamp) {
                    return Ok(None);
                }
                let Some(e) = map.rbw.remove(&block_id) else { return Ok(None) };
                let v = &self.volumes[e.volume];
                let paths = [v.rbw_meta_path(block_id, e.gen_stamp), v.rbw_data_path(block_id)];
                let len = e.len.load(Ordering::Relaxed);
                (paths, ReplicaReport { block_id, generation_stamp: e.gen_stamp, num_bytes: len })
            }
        };
        for path in paths {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DatanodeError::io(path, e)),
            }
        }
        Ok(Some(report))
    }

    /// Every finalized replica, for a full block report.
    pub(crate) fn block_report(&self) -> Vec<ReplicaReport> {
        let map = self.map.lock();
        let mut out: Vec<ReplicaReport> = map
            .finalized
            .iter()
            .map(|(&id, i)| ReplicaReport { block_id: id, generation_stamp: i.gen_stamp, num_bytes: i.len })
            .collect();
        out.sort_by_key(|r| r.block_id);
        out
    }

    /// Every rbw replica with the bytes it holds, for a full block report.
    pub(crate) fn rbw_report(&self) -> Vec<ReplicaReport> {
        let map = self.map.lock();
        let mut out: Vec<ReplicaReport> = map
            .rbw
            .iter()
            .map(|(&id, e)| ReplicaReport {
                block_id: id,
                generation_stamp: e.gen_stamp,
                num_bytes: e.len.load(Ordering::Relaxed),
            })
            .collect();
        out.sort_by_key(|r| r.block_id);
        out
    }

    #[cfg(test)]
    pub(crate) fn replica(&self, block_id: u64) -> Option<ReplicaInfo> {
        self.map.lock().finalized.get(&block_id).copied()
    }

    /// `(generation stamp, bytes held, active)` of the rbw replica of `block_id`.
    #[cfg(test)]
    pub(crate) fn rbw_replica(&self, block_id: u64) -> Option<(u64, u64, bool)> {
        let map = self.map.lock();
        map.rbw.get(&block_id).map(|e| (e.gen_stamp, e.len.load(Ordering::Relaxed), e.writer.is_some()))
    }

    /// Data and meta file paths of the replica of `block_id` (finalized or rbw).
    #[cfg(test)]
    pub(crate) fn replica_paths(&self, block_id: u64) -> Option<(PathBuf, PathBuf)> {
        let map = self.map.lock();
        if let Some(i) = map.finalized.get(&block_id) {
            let v = &self.volumes[i.volume];
            return Some((v.data_path(block_id), v.meta_path(block_id, i.gen_stamp)));
        }
        let e = map.rbw.get(&block_id)?;
        let v = &self.volumes[e.volume];
        Some((v.rbw_data_path(block_id), v.rbw_meta_path(block_id, e.gen_stamp)))
    }

    /// Capacity, bytes used by replicas, and remaining space over all volumes
    /// (reserved space excluded).
    pub(crate) fn storage_report(&self) -> StorageReport {
        let reserved = self.reserved_bytes();
        let mut r = StorageReport::default();
        for v in &self.volumes {
            let space = v.fs_space().unwrap_or_default();
            r.capacity += space.total.saturating_sub(reserved);
            r.remaining += space.available.saturating_sub(reserved);
            r.dfs_used += v.used();
        }
        r
    }

    /// Called by a finalized [`RbwReplica`]: the rbw entry owned by `token`
    /// becomes a finalized replica.
    fn publish(&self, block_id: u64, token: u64, info: ReplicaInfo) {
        let mut map = self.map.lock();
        if map.rbw.get(&block_id).and_then(|e| e.writer.as_ref()).is_some_and(|w| w.token == token) {
            map.rbw.remove(&block_id);
        }
        map.finalized.insert(block_id, info);
        self.volumes[info.volume].add_used(info.disk_bytes);
        drop(map);
        self.released.notify_all();
    }

    /// Called by an [`RbwReplica`] that lets go: the replica stays in `rbw`
    /// (`remove` false) or is gone (`remove` true, files already removed).
    fn release(&self, block_id: u64, token: u64, remove: bool) {
        let mut map = self.map.lock();
        if let Some(e) = map.rbw.get_mut(&block_id)
            && e.writer.as_ref().is_some_and(|w| w.token == token)
        {
            if remove {
                map.rbw.remove(&block_id);
            } else {
                e.writer = None;
            }
        }
        drop(map);
        self.released.notify_all();
    }

    /// Called by an aborted [`RbwReplica`]: its files are removed and the
    /// entry goes, unless a recovery asked the writer to stop, in which case
    /// the replica stays for that recovery (what it holds was verified; a
    /// torn tail is cut when it is reopened).
    fn abandon(&self, block_id: u64, token: u64, data_path: &std::path::Path, meta_path: &std::path::Path) {
        let mut map = self.map.lock();
        if let Some(e) = map.rbw.get_mut(&block_id)
            && let Some(w) = e.writer.as_ref().filter(|w| w.token == token)
        {
            if w.stopping {
                tracing::info!(block_id, "keeping an aborted replica for the recovery that stopped its writer");
                e.writer = None;
            } else {
                // Under the lock, so no new writer of the block creates its files meanwhile.
                remove_quietly(data_path);
                remove_quietly(meta_path);
                map.rbw.remove(&block_id);
            }
        }
        drop(map);
        self.released.notify_all();
    }

    /// Registers sockets whose shutdown stops the owner `token` of the rbw
    /// replica of `block_id`; shut at once if a stop was already asked.
    fn watch_sockets(&self, block_id: u64, token: u64, sockets: Vec<TcpStream>) {
        let mut map = self.map.lock();
        let slot = map.rbw.get_mut(&block_id).and_then(|e| e.writer.as_mut()).filter(|w| w.token == token);
        if let Some(w) = slot {
            if w.stopping {
                for s in &sockets {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
            w.sockets.extend(sockets);
        }
    }

    fn volume(&self, idx: usize) -> &Volume {
        &self.volumes[idx]
    }
}

impl RbwEntry {
    /// An entry owned by the writer `token`.
    fn owned(gen_stamp: u64, volume: usize, len: u64, token: u64) -> RbwEntry {
        RbwEntry {
            gen_stamp,
            volume,
            len: Arc::new(AtomicU64::new(len)),
            writer: Some(WriterSlot { token, sockets: Vec::new(), stopping: false }),
        }
    }
}

/// `subdir<a>/subdir<b>` of a block, for tests of other modules.
#[cfg(test)]
pub(crate) fn finalized_subdir_for_tests(block_id: u64) -> PathBuf {
    meta::finalized_subdir(block_id)
}

#[cfg(test)]
mod tests;
