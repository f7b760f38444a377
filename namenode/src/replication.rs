//! Block replication management (HDFS BlockManager's redundancy side):
//! which blocks lack replicas and how urgently (`queue`), transfers sent and
//! not yet confirmed (`pending`), corrupt replicas, replicas being deleted
//! as excess (`excess`), and the background [`ReplicationMonitor`]
//! (`monitor`) that turns all of it into datanode commands.
//!
//! The work is incremental: whatever changes a block's replica set (block
//! reports, a dead node, a bad-replica report, setrep, closing a file)
//! notes the block, and the monitor re-checks only noted blocks. The whole
//! block map is scanned once when safe mode ends (and at start).
//!
//! Everything here sits behind `Namesystem::repl`, a mutex taken after
//! `state` and `datanodes` (lock order: state → datanodes → repl).
//! [`classify`] is the one function that tells what a block's replicas are;
//! replication, decommissioning and fsck all use it.

pub(crate) mod excess;
mod hooks;
mod monitor;
pub(crate) mod pending;
pub(crate) mod queue;

use std::collections::{HashMap, HashSet};

use tusk_proto::dfs::datanode_info::AdminState;
use tusk_proto::dfs::{BlockHealth, DatanodeId};

use crate::blocks::DnIndex;
use crate::config::NamenodeConfig;
use crate::datanodes::DatanodeManager;
use crate::decommission::{AdminSet, EXCLUDES_FILE, ExcludesStore};
use crate::error::Result;
use crate::namespace::FsState;
use crate::topology::Topology;
pub(crate) use monitor::ReplicationMonitor;
#[cfg(test)]
pub(crate) use monitor::TickStats;
use pending::Pending;
use queue::NeededQueue;

/// What one replica of a block is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplicaKind {
    Live,
    Corrupt,
    Decommissioning,
    Decommissioned,
    /// Chosen for deletion as excess.
    Excess,
}

/// A block's replicas, classified.
#[derive(Debug, Clone, Default)]
pub(crate) struct Census {
    pub(crate) gen_stamp: u64,
    pub(crate) num_bytes: u64,
    /// The file's replication.
    pub(crate) expected: u32,
    /// On live NORMAL nodes, not corrupt, not excess.
    pub(crate) live: u32,
    pub(crate) corrupt: u32,
    pub(crate) decommissioning: u32,
    pub(crate) decommissioned: u32,
    pub(crate) excess: u32,
    /// Racks of the live replicas.
    pub(crate) live_racks: u32,
    /// Racks the placement policy wants: min(2, expected, racks in the cluster).
    pub(crate) required_racks: u32,
    /// The last block of a file being written (never re-replicated).
    pub(crate) under_construction: bool,
    pub(crate) replicas: Vec<(DnIndex, ReplicaKind)>,
}

impl Census {
    /// No readable replica at all (only corrupt ones, or none).
    pub(crate) fn missing(&self) -> bool {
        self.live + self.decommissioning + self.decommissioned == 0
    }

    /// Several live replicas, on fewer racks than the policy wants (a
    /// lone replica is under-replicated, not mis-replicated).
    pub(crate) fn mis_replicated(&self) -> bool {
        self.live >= 2 && self.live_racks < self.required_racks
    }

    pub(crate) fn nodes(&self, kind: ReplicaKind) -> impl Iterator<Item = DnIndex> + '_ {
        self.replicas.iter().filter(move |(_, k)| *k == kind).map(|(d, _)| *d)
    }

    /// The queue level the block belongs in with `pending` replicas on
    /// their way; None when it needs nothing.
    pub(crate) fn priority(&self, pending: u32) -> Option<u8> {
        if self.under_construction {
            return None;
        }
        if self.missing() {
            return Some(queue::CORRUPT);
        }
        if self.live + pending >= self.expected {
            return (self.mis_replicated() && pending == 0).then_some(queue::MIS_REPLICATED);
        }
        Some(if self.live <= 1 {
            queue::HIGHEST
        } else if self.live * 3 < self.expected {
            queue::VERY_UNDER
        } else {
            queue::UNDER
        })
    }

    /// The block's problems as fsck reports them (none for the last block
    /// of a file being written).
    pub(crate) fn problems(&self) -> Vec<BlockHealth> {
        let mut p = Vec::new();
        if self.under_construction {
            return p;
        }
        if self.missing() {
            p.push(BlockHealth::Missing);
        }
        if self.corrupt > 0 {
            p.push(BlockHealth::Corrupt);
        }
        if !self.missing() && self.live < self.expected {
            p.push(BlockHealth::UnderReplicated);
        }
        if self.live > self.expected {
            p.push(BlockHealth::OverReplicated);
        }
        if self.mis_replicated() {
            p.push(BlockHealth::MisReplicated);
        }
        p
    }
}

/// A replica reported corrupt, with the stamp it was reported with.
#[derive(Debug, Clone, Copy)]
struct CorruptMark {
    dn: DnIndex,
    gen_stamp: u64,
    /// Its deletion was queued.
    invalidated: bool,
}

/// The replication state (see the module docs).
#[derive(Debug)]
pub(crate) struct Replication {
    pub(crate) queue: NeededQueue,
    pub(crate) pending: Pending,
    corrupt: HashMap<u64, Vec<CorruptMark>>,
    excess: HashMap<u64, Vec<DnIndex>>,
    dirty: HashSet<u64>,
    /// Over-replicated blocks with a replica on a node whose contents are
    /// stale: nothing is trimmed until its block report (HDFS postpones too).
    postponed: HashSet<u64>,
    /// The whole block map must be checked (at start, after safe mode,
    /// when racks moved).
    pub(crate) rescan: bool,
    /// Next block id of the full scan in progress, a few ticks long.
    scan_next: Option<u64>,
    /// Decommissioning nodes → their blocks still lacking replicas elsewhere.
    pub(crate) decommissioning: HashMap<DnIndex, Vec<u64>>,
    /// A rack number per datanode index and whether the cluster has several
    /// racks, refreshed each tick and at registration, so that hooks which
    /// do not take the datanode lock can spot a block on one rack.
    rack_ids: Vec<u32>,
    multi_rack: bool,
    /// The safe-mode epoch of the last tick that did work: a newer one means
    /// safe mode came and went (however briefly) and its dropped notes must
    /// be made up for by a rescan.
    pub(crate) safemode_epoch: u64,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            queue: NeededQueue::default(),
            pending: Pending::default(),
            corrupt: HashMap::new(),
            excess: HashMap::new(),
            dirty: HashSet::new(),
            postponed: HashSet::new(),
            rescan: true,
            scan_next: None,
            decommissioning: HashMap::new(),
            rack_ids: Vec::new(),
            multi_rack: false,
            safemode_epoch: 0,
        }
    }
}

impl Replication {
    /// Refreshes the rack numbers (see `rack_ids`); returns true when the
    /// cluster just became multi-rack (every block's placement must then be
    /// checked, as HDFS does when a second rack appears).
    pub(crate) fn refresh_racks(&mut self, dm: &DatanodeManager) -> bool {
        let was_multi = self.multi_rack;
        let mut names: HashMap<&str, u32> = HashMap::new();
        self.rack_ids = dm
            .iter()
            .map(|(_, d)| {
                let next = names.len() as u32;
                *names.entry(d.rack()).or_insert(next)
            })
            .collect();
        self.multi_rack = dm.cluster_racks() >= 2;
        !was_multi && self.multi_rack
    }

    /// True when the cluster has several racks but `replicas` may all be on
    /// one (a node not seen by [`refresh_racks`](Self::refresh_racks) counts as unknown).
    pub(crate) fn maybe_one_rack(&self, replicas: impl Iterator<Item = DnIndex>) -> bool {
        if !self.multi_rack {
            return false;
        }
        let mut first = None;
        for dn in replicas {
            let Some(rack) = self.rack_ids.get(dn as usize) else { return true };
            match first {
                None => first = Some(*rack),
                Some(f) if f != *rack => return false,
                Some(_) => {}
            }
        }
        true
    }

    /// Asks the monitor to re-check `id`.
    pub(crate) fn note(&mut self, id: u64) {
        self.dirty.insert(id);
    }

    /// Up to `n` noted blocks, which stop being noted.
    fn take_dirty(&mut self, n: usize) -> Vec<u64> {
        if self.dirty.len() <= n {
            return self.dirty.drain().collect();
        }
        let ids: Vec<u64> = self.dirty.iter().take(n).copied().collect();
        for id in &ids {
            self.dirty.remove(id);
        }
        ids
    }

    pub(crate) fn has_postponed(&self) -> bool {
        !self.postponed.is_empty()
    }

    /// A block report arrived: postponed blocks are checked again.
    pub(crate) fn recheck_postponed(&mut self) {
        let ids: Vec<u64> = self.postponed.drain().collect();
        self.dirty.extend(ids);
    }

    #[cfg(test)]
    pub(crate) fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    /// Marks the replica of `id` on `dn` corrupt; false if it already was.
    pub(crate) fn mark_corrupt(&mut self, id: u64, dn: DnIndex, gen_stamp: u64) -> bool {
        let marks = self.corrupt.entry(id).or_default();
        if let Some(m) = marks.iter_mut().find(|m| m.dn == dn) {
            let fresh = m.gen_stamp != gen_stamp;
            if fresh {
                *m = CorruptMark { dn, gen_stamp, invalidated: false };
            }
            return fresh;
        }
        marks.push(CorruptMark { dn, gen_stamp, invalidated: false });
        true
    }

    /// Whether the replica of `id` (at stamp `gen_stamp`) on `dn` is corrupt.
    pub(crate) fn is_corrupt(&self, id: u64, dn: DnIndex, gen_stamp: u64) -> bool {
        self.corrupt.get(&id).is_some_and(|v| v.iter().any(|m| m.dn == dn && m.gen_stamp == gen_stamp))
    }

    pub(crate) fn has_corrupt(&self, id: u64) -> bool {
        self.corrupt.contains_key(&id)
    }

    pub(crate) fn is_excess(&self, id: u64, dn: DnIndex) -> bool {
        self.excess.get(&id).is_some_and(|v| v.contains(&dn))
    }

    fn add_excess(&mut self, id: u64, dn: DnIndex) {
        let v = self.excess.entry(id).or_default();
        if !v.contains(&dn) {
            v.push(dn);
        }
    }

    /// The replica of `id` on `dn` left the block map.
    pub(crate) fn replica_gone(&mut self, id: u64, dn: DnIndex) {
        if let Some(v) = self.corrupt.get_mut(&id) {
            v.retain(|m| m.dn != dn);
            if v.is_empty() {
                self.corrupt.remove(&id);
            }
        }
        if let Some(v) = self.excess.get_mut(&id) {
            v.retain(|d| *d != dn);
            if v.is_empty() {
                self.excess.remove(&id);
            }
        }
    }

    /// The block left the namespace.
    pub(crate) fn forget_block(&mut self, id: u64) {
        self.queue.remove(id);
        self.pending.remove(id);
        self.corrupt.remove(&id);
        self.excess.remove(&id);
        self.dirty.remove(&id);
        self.postponed.remove(&id);
    }
}

/// The block-management parts of a namesystem: the datanode manager (with
/// the topology and the persisted admin set), the replication state and
/// where the admin set is saved (`persistent`: `<name_dir>/excludes.json`).
pub(crate) fn open_parts(conf: &NamenodeConfig, persistent: bool) -> Result<(DatanodeManager, Replication, ExcludesStore)> {
    let topology = Topology::load(conf.topology_file.as_deref())?;
    let (admin, store) = if persistent {
        let path = conf.name_dir.join(EXCLUDES_FILE);
        (AdminSet::load(&path)?, ExcludesStore::new(Some(path)))
    } else {
        (AdminSet::default(), ExcludesStore::new(None))
    };
    Ok((DatanodeManager::new(topology, admin), Replication::default(), store))
}

/// [`open_parts`] for an in-memory namesystem: a topology file that cannot
/// be read is logged and ignored.
pub(crate) fn memory_parts(conf: &NamenodeConfig) -> (DatanodeManager, Replication, ExcludesStore) {
    open_parts(conf, false).unwrap_or_else(|e| {
        tracing::error!("{e}; every datanode is on the default rack");
        (DatanodeManager::default(), Replication::default(), ExcludesStore::new(None))
    })
}

/// Whether `id` is the last block of a file being written.
pub(crate) fn under_construction(st: &FsState, id: u64) -> bool {
    st.blocks
        .get(id)
        .and_then(|b| st.inodes.get(b.inode))
        .and_then(|i| i.file())
        .is_some_and(|f| f.is_writing(id))
}

/// Classifies the replicas of block `id`; None when it is not in the
/// namespace. `cluster_racks` is [`DatanodeManager::cluster_racks`].
pub(crate) fn classify(st: &FsState, dm: &DatanodeManager, r: &Replication, id: u64, cluster_racks: usize) -> Option<Census> {
    let b = st.blocks.get(id)?;
    let f = st.inodes.get(b.inode)?.file()?;
    let mut c = Census {
        gen_stamp: b.gen_stamp,
        num_bytes: b.num_bytes,
        expected: f.replication as u32,
        under_construction: f.is_writing(id),
        ..Default::default()
    };
    let mut racks: Vec<&str> = Vec::new();
    for dn in b.replicas.iter() {
        let Some(d) = dm.get(dn) else { continue };
        if !d.alive {
            continue;
        }
        let kind = if r.is_corrupt(id, dn, b.gen_stamp) {
            c.corrupt += 1;
            ReplicaKind::Corrupt
        } else if d.admin == AdminState::Decommissioned {
            c.decommissioned += 1;
            ReplicaKind::Decommissioned
        } else if d.admin == AdminState::DecommissionInProgress {
            c.decommissioning += 1;
            ReplicaKind::Decommissioning
        } else if r.is_excess(id, dn) {
            c.excess += 1;
            ReplicaKind::Excess
        } else {
            c.live += 1;
            if !racks.contains(&d.rack()) {
                racks.push(d.rack());
            }
            ReplicaKind::Live
        };
        c.replicas.push((dn, kind));
    }
    c.live_racks = racks.len() as u32;
    c.required_racks = c.expected.min(2).min(cluster_racks as u32);
    Some(c)
}

/// Replica locations for a reader: corrupt replicas left out unless every
/// replica is corrupt, the rest in read order.
pub(crate) fn read_locations(
    dm: &DatanodeManager,
    r: &Replication,
    id: u64,
    gen_stamp: u64,
    replicas: &[DnIndex],
    client_host: &str,
) -> Vec<DatanodeId> {
    if !r.has_corrupt(id) {
        return dm.sorted_locations(replicas, client_host);
    }
    let good: Vec<DnIndex> = replicas.iter().copied().filter(|d| !r.is_corrupt(id, *d, gen_stamp)).collect();
    let alive_good = good.iter().any(|d| dm.get(*d).is_some_and(|n| n.alive));
    dm.sorted_locations(if alive_good { &good } else { replicas }, client_host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(live: u32, expected: u32) -> Census {
        Census { expected, live, live_racks: 1, required_racks: 1, ..Default::default() }
    }

    #[test]
    fn priorities_follow_hdfs() {
        assert_eq!(census(1, 3).priority(0), Some(queue::HIGHEST));
        assert_eq!(census(1, 10).priority(0), Some(queue::HIGHEST));
        assert_eq!(census(2, 10).priority(0), Some(queue::VERY_UNDER));
        assert_eq!(census(2, 3).priority(0), Some(queue::UNDER));
        assert_eq!(census(2, 3).priority(1), None, "a pending replica covers it");
        assert_eq!(census(3, 3).priority(0), None);
        let only_decommissioning = Census { decommissioning: 2, ..census(0, 3) };
        assert_eq!(only_decommissioning.priority(0), Some(queue::HIGHEST));
        let all_corrupt = Census { corrupt: 3, ..census(0, 3) };
        assert_eq!(all_corrupt.priority(0), Some(queue::CORRUPT));
        assert_eq!(all_corrupt.problems(), vec![BlockHealth::Missing, BlockHealth::Corrupt]);
        let one_rack = Census { required_racks: 2, ..census(3, 3) };
        assert_eq!(one_rack.priority(0), Some(queue::MIS_REPLICATED));
        assert_eq!(one_rack.priority(1), None);
        assert_eq!(one_rack.problems(), vec![BlockHealth::MisReplicated]);
        let open = Census { under_construction: true, ..census(0, 3) };
        assert_eq!(open.priority(0), None);
        assert!(open.problems().is_empty());
        let over = Census { corrupt: 1, ..census(4, 3) };
        assert_eq!(over.problems(), vec![BlockHealth::Corrupt, BlockHealth::OverReplicated]);
    }

    #[test]
    fn corrupt_marks_follow_the_generation_stamp() {
        let mut r = Replication::default();
        assert!(r.mark_corrupt(5, 1, 100));
        assert!(!r.mark_corrupt(5, 1, 100));
        assert!(r.is_corrupt(5, 1, 100));
        assert!(!r.is_corrupt(5, 1, 101), "a newer stamp is another replica");
        assert!(r.mark_corrupt(5, 2, 100));
        r.replica_gone(5, 1);
        assert!(!r.is_corrupt(5, 1, 100) && r.is_corrupt(5, 2, 100));
        r.note(5);
        r.forget_block(5);
        assert!(!r.has_corrupt(5));
        assert_eq!(r.dirty_len(), 0);
    }
}
