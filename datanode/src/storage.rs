//! Replica storage over the data directories ("volumes").
//!
//! Layout per volume: `VERSION`, `current/rbw/` (replicas being written) and
//! `current/finalized/subdir<a>/subdir<b>/` (complete replicas). A replica
//! becomes visible (in the replica map, in block reports, to readers) only
//! once finalized: its files are flushed (and fsynced if configured), then the
//! data file and, last, the meta file are renamed into `finalized`. The scan
//! at start accepts a replica only if data length and meta size agree.

mod meta;
mod rbw;
mod reader;
mod version;
mod volume;

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tusk_proto::dfs::{ReplicaReport, StorageReport};

use crate::error::DatanodeError;
pub(crate) use rbw::RbwReplica;
pub(crate) use reader::ReplicaReader;
use version::VersionFile;
use volume::Volume;

/// Where a finalized replica is and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplicaInfo {
    pub gen_stamp: u64,
    pub len: u64,
    pub volume: usize,
    /// Data plus meta bytes on disk.
    pub disk_bytes: u64,
}

#[derive(Default)]
struct ReplicaMap {
    finalized: HashMap<u64, ReplicaInfo>,
    /// Blocks with a replica in `rbw` right now.
    writing: HashSet<u64>,
}

/// All replicas of this datanode.
pub(crate) struct Storage {
    volumes: Vec<Volume>,
    map: Mutex<ReplicaMap>,
    identity: Mutex<VersionFile>,
    next_volume: AtomicUsize,
    reserved_bytes: u64,
    sync_on_finalize: bool,
}

impl Storage {
    /// Opens (creating if needed) every data directory, checks their VERSION
    /// files agree and scans the finalized replicas.
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
                let info = ReplicaInfo { gen_stamp: r.gen_stamp, len: r.len, volume: idx, disk_bytes: r.disk_bytes };
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
        tracing::info!(replicas = map.finalized.len(), volumes = volumes.len(), "replica storage opened");
        Ok(Storage {
            volumes,
            map: Mutex::new(map),
            identity: Mutex::new(identity),
            next_volume: AtomicUsize::new(0),
            reserved_bytes,
            sync_on_finalize,
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

    /// Starts a replica in `rbw` on the next volume with room (round robin).
    pub(crate) fn create_rbw(self: &Arc<Self>, block_id: u64, gen_stamp: u64) -> Result<RbwReplica, DatanodeError> {
        {
            let mut map = self.map.lock();
            if map.finalized.contains_key(&block_id) || map.writing.contains(&block_id) {
                return Err(DatanodeError::ReplicaExists { block_id });
            }
            map.writing.insert(block_id);
        }
        let volume = match self.choose_volume() {
            Some(v) => v,
            None => {
                self.map.lock().writing.remove(&block_id);
                return Err(DatanodeError::NoSpace { block_id });
            }
        };
        RbwReplica::create(Arc::clone(self), block_id, gen_stamp, volume)
    }

    fn choose_volume(&self) -> Option<usize> {
        let n = self.volumes.len();
        let start = self.next_volume.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| (start + i) % n).find(|&i| match self.volumes[i].fs_space() {
            Ok(s) => s.available > self.reserved_bytes,
            Err(e) => {
                tracing::warn!("volume skipped: {e}");
                false
            }
        })
    }

    /// Opens a finalized replica of `block_id` whose generation stamp is at
    /// least `min_gen_stamp`. A replica whose files turn out inconsistent is
    /// dropped from the map (so block reports stop announcing it).
    pub(crate) fn open_replica(&self, block_id: u64, min_gen_stamp: u64) -> Result<ReplicaReader, DatanodeError> {
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
        let v = &self.volumes[info.volume];
        let r = ReplicaReader::open(block_id, info, v.data_path(block_id), v.meta_path(block_id, info.gen_stamp));
        if let Err(e @ DatanodeError::CorruptReplica { .. }) = &r {
            tracing::error!("{e}; no longer serving or reporting it");
            self.forget(block_id, info.gen_stamp);
        }
        r
    }

    fn forget(&self, block_id: u64, gen_stamp: u64) -> Option<ReplicaInfo> {
        let mut map = self.map.lock();
        match map.finalized.get(&block_id) {
            Some(i) if i.gen_stamp == gen_stamp => {
                let info = map.finalized.remove(&block_id)?;
                self.volumes[info.volume].sub_used(info.disk_bytes);
                Some(info)
            }
            _ => None,
        }
    }

    /// Removes the finalized replica of `block_id` (both files) if its
    /// generation stamp is not newer than `gen_stamp` (0 = any). Returns what
    /// was deleted, for the incremental block report.
    pub(crate) fn delete(&self, block_id: u64, gen_stamp: u64) -> Result<Option<ReplicaReport>, DatanodeError> {
        let info = {
            let mut map = self.map.lock();
            match map.finalized.get(&block_id) {
                Some(i) if gen_stamp == 0 || i.gen_stamp <= gen_stamp => map.finalized.remove(&block_id),
                Some(i) => {
                    tracing::warn!(block_id, stored = i.gen_stamp, asked = gen_stamp, "not deleting a newer replica");
                    None
                }
                None => None,
            }
        };
        let Some(info) = info else { return Ok(None) };
        let v = &self.volumes[info.volume];
        v.sub_used(info.disk_bytes);
        for path in [v.meta_path(block_id, info.gen_stamp), v.data_path(block_id)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DatanodeError::io(path, e)),
            }
        }
        Ok(Some(ReplicaReport { block_id, generation_stamp: info.gen_stamp, num_bytes: info.len }))
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

    #[cfg(test)]
    pub(crate) fn replica(&self, block_id: u64) -> Option<ReplicaInfo> {
        self.map.lock().finalized.get(&block_id).copied()
    }

    /// Capacity, bytes used by replicas, and remaining space over all volumes
    /// (reserved space excluded).
    pub(crate) fn storage_report(&self) -> StorageReport {
        let mut r = StorageReport::default();
        for v in &self.volumes {
            let space = v.fs_space().unwrap_or_default();
            r.capacity += space.total.saturating_sub(self.reserved_bytes);
            r.remaining += space.available.saturating_sub(self.reserved_bytes);
            r.dfs_used += v.used();
        }
        r
    }

    /// Called by a finalized [`RbwReplica`].
    fn publish(&self, block_id: u64, info: ReplicaInfo) {
        let mut map = self.map.lock();
        map.writing.remove(&block_id);
        map.finalized.insert(block_id, info);
        self.volumes[info.volume].add_used(info.disk_bytes);
    }

    /// Called by an abandoned [`RbwReplica`].
    fn release(&self, block_id: u64) {
        self.map.lock().writing.remove(&block_id);
    }

    fn volume(&self, idx: usize) -> &Volume {
        &self.volumes[idx]
    }
}

/// `subdir<a>/subdir<b>` of a block, for tests of other modules.
#[cfg(test)]
pub(crate) fn finalized_subdir_for_tests(block_id: u64) -> PathBuf {
    meta::finalized_subdir(block_id)
}

#[cfg(test)]
mod tests;
