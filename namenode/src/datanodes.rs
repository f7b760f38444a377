//! Datanode management: registration, heartbeats, liveness, racks, admin
//! (decommission) states, per-datanode command queues (block invalidations,
//! transfers) and the blocks scheduled to each node. Placement lives in
//! `datanodes/placement.rs`.

mod placement;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use tusk_proto::dfs::datanode_info::AdminState;
use tusk_proto::dfs::{
    DatanodeCommand, DatanodeId, DatanodeInfo, DeleteBlocksCommand, ExtendedBlock, StorageReport, datanode_command::Command,
    datanode_info::State,
};

use crate::blocks::DnIndex;
use crate::decommission::AdminSet;
use crate::topology::Topology;

/// Most blocks sent in one DeleteBlocks command.
const MAX_DELETES_PER_COMMAND: usize = 1000;
/// How often the count of blocks scheduled to a node is rolled over (as
/// HDFS): a scheduled write whose replica is never reported stops counting
/// after one to two periods.
const SCHEDULED_ROLL: Duration = Duration::from_secs(600);

/// Writes (new blocks and re-replications) sent to a node and not reported yet.
#[derive(Debug)]
struct Scheduled {
    cur: u32,
    prev: u32,
    rolled: Instant,
}

impl Scheduled {
    fn new(now: Instant) -> Scheduled {
        Scheduled { cur: 0, prev: 0, rolled: now }
    }

    fn count(&self) -> u32 {
        self.cur + self.prev
    }

    fn done(&mut self) {
        if self.prev > 0 {
            self.prev -= 1;
        } else {
            self.cur = self.cur.saturating_sub(1);
        }
    }

    fn roll(&mut self, now: Instant) {
        if now.duration_since(self.rolled) >= SCHEDULED_ROLL {
            self.prev = self.cur;
            self.cur = 0;
            self.rolled = now;
        }
    }
}

/// What the namenode knows of one datanode.
#[derive(Debug)]
pub(crate) struct Datanode {
    /// Its identity, with `rack` filled in from the topology.
    pub(crate) id: DatanodeId,
    pub(crate) storage: StorageReport,
    pub(crate) xceivers: u32,
    pub(crate) last_contact_ms: i64,
    last_seen: Instant,
    pub(crate) alive: bool,
    pub(crate) admin: AdminState,
    /// Decommissioning: blocks still lacking live replicas elsewhere.
    pub(crate) pending_decommission: u64,
    /// A full block report arrived since the node (re-)registered.
    pub(crate) block_report_received: bool,
    /// It registered again without having been declared dead (e.g. a
    /// restart): the replicas known from before may be gone until its next
    /// full block report says otherwise.
    pub(crate) contents_stale: bool,
    scheduled: Scheduled,
    /// Replicas to delete, sent with the next heartbeat answer.
    invalidate: Vec<ExtendedBlock>,
    /// Other commands (e.g. TransferBlock) for the next heartbeat answer.
    commands: VecDeque<DatanodeCommand>,
}

impl Datanode {
    /// Alive, but no heartbeat for `stale` (HDFS "stale" datanodes: it may
    /// be dying, so its replicas are not trusted to stand in for others).
    pub(crate) fn heartbeat_stale(&self, stale: std::time::Duration, now: Instant) -> bool {
        self.alive && now.saturating_duration_since(self.last_seen) > stale
    }

    /// Live and NORMAL: may receive new replicas, and its replicas count.
    pub(crate) fn in_service(&self) -> bool {
        self.alive && self.admin == AdminState::Normal
    }

    pub(crate) fn rack(&self) -> &str {
        &self.id.rack
    }

    /// Bytes scheduled to arrive for writes of `block_size` each.
    fn scheduled_bytes(&self, block_size: u64) -> u64 {
        block_size.saturating_mul(self.scheduled.count() as u64)
    }
}

/// All datanodes ever seen by this process; indices are stable.
#[derive(Debug, Default)]
pub(crate) struct DatanodeManager {
    nodes: Vec<Datanode>,
    by_uuid: HashMap<String, DnIndex>,
    topology: Topology,
    /// The persisted decommission decisions.
    pub(crate) admin: AdminSet,
}

impl DatanodeManager {
    pub(crate) fn new(topology: Topology, admin: AdminSet) -> DatanodeManager {
        DatanodeManager { nodes: Vec::new(), by_uuid: HashMap::new(), topology, admin }
    }

    /// Re-reads the topology file if it changed and re-resolves every
    /// node's rack; true when some rack changed. Errors are logged and the
    /// previous mapping stays.
    pub(crate) fn refresh_topology(&mut self) -> bool {
        match self.topology.refresh() {
            Ok(false) => false,
            Ok(true) => {
                let mut changed = false;
                for d in &mut self.nodes {
                    let rack = self.topology.resolve(&d.id.transfer_addr, &d.id.host);
                    if rack != d.id.rack {
                        tracing::info!("datanode {} ({}) moves to rack {rack}", d.id.datanode_uuid, d.id.transfer_addr);
                        d.id.rack = rack;
                        changed = true;
                    }
                }
                changed
            }
            Err(e) => {
                tracing::error!("topology not reloaded, keeping the previous one: {e}");
                false
            }
        }
    }

    /// Registers (or re-registers) a datanode; it becomes live, its rack is
    /// resolved and its admin state is the one recorded for it.
    pub(crate) fn register(&mut self, mut id: DatanodeId, storage: StorageReport) -> Option<DnIndex> {
        let now = Instant::now();
        id.rack = self.topology.resolve(&id.transfer_addr, &id.host);
        let admin = self.admin.state_of(&id);
        if let Some(&idx) = self.by_uuid.get(&id.datanode_uuid) {
            let d = &mut self.nodes[idx as usize];
            d.id = id;
            d.storage = storage;
            d.last_seen = now;
            d.last_contact_ms = tusk_common::now_ms();
            d.admin = admin;
            d.block_report_received = false;
            d.contents_stale = d.alive;
            d.alive = true;
            return Some(idx);
        }
        if self.nodes.len() >= DnIndex::MAX as usize {
            return None;
        }
        let idx = self.nodes.len() as DnIndex;
        self.by_uuid.insert(id.datanode_uuid.clone(), idx);
        self.nodes.push(Datanode {
            id,
            storage,
            xceivers: 0,
            last_contact_ms: tusk_common::now_ms(),
            last_seen: now,
            alive: true,
            admin,
            pending_decommission: 0,
            block_report_received: false,
            contents_stale: false,
            scheduled: Scheduled::new(now),
            invalidate: Vec::new(),
            commands: VecDeque::new(),
        });
        Some(idx)
    }

    /// Index of a live datanode.
    pub(crate) fn live_index(&self, uuid: &str) -> Option<DnIndex> {
        self.by_uuid.get(uuid).copied().filter(|i| self.nodes[*i as usize].alive)
    }

    /// Index of any datanode seen by this process, live or dead.
    pub(crate) fn index(&self, uuid: &str) -> Option<DnIndex> {
        self.by_uuid.get(uuid).copied()
    }

    pub(crate) fn get(&self, idx: DnIndex) -> Option<&Datanode> {
        self.nodes.get(idx as usize)
    }

    /// Every datanode with its index.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (DnIndex, &Datanode)> {
        self.nodes.iter().enumerate().map(|(i, d)| (i as DnIndex, d))
    }

    /// Records a heartbeat and drains the node's commands; queued deletions
    /// only when `deletes` (never in safe mode: they wait). None: the node is
    /// unknown or was declared dead and must register again.
    pub(crate) fn heartbeat(
        &mut self,
        uuid: &str,
        storage: StorageReport,
        xceivers: u32,
        deletes: bool,
    ) -> Option<Vec<DatanodeCommand>> {
        let idx = self.live_index(uuid)?;
        let d = &mut self.nodes[idx as usize];
        let now = Instant::now();
        d.storage = storage;
        d.xceivers = xceivers;
        d.last_seen = now;
        d.last_contact_ms = tusk_common::now_ms();
        d.scheduled.roll(now);
        let mut out: Vec<DatanodeCommand> = d.commands.drain(..).collect();
        if deletes && !d.invalidate.is_empty() {
            let n = d.invalidate.len().min(MAX_DELETES_PER_COMMAND);
            let blocks: Vec<ExtendedBlock> = d.invalidate.drain(..n).collect();
            out.push(DatanodeCommand { command: Some(Command::Delete(DeleteBlocksCommand { blocks })) });
        }
        Some(out)
    }

    /// Notes that a full block report from `idx` was processed.
    pub(crate) fn block_report_received(&mut self, idx: DnIndex) {
        if let Some(d) = self.nodes.get_mut(idx as usize) {
            d.block_report_received = true;
            d.contents_stale = false;
        }
    }

    /// Queues the deletion of a replica on `idx`.
    pub(crate) fn invalidate(&mut self, idx: DnIndex, block: ExtendedBlock) {
        if let Some(d) = self.nodes.get_mut(idx as usize) {
            d.invalidate.push(block);
        }
    }

    /// Queues a command for the next heartbeat of `idx`.
    pub(crate) fn queue_command(&mut self, idx: DnIndex, cmd: DatanodeCommand) {
        if let Some(d) = self.nodes.get_mut(idx as usize) {
            d.commands.push_back(cmd);
        }
    }

    /// Counts a write scheduled to each of `targets`.
    pub(crate) fn add_scheduled(&mut self, targets: &[DnIndex]) {
        for t in targets {
            if let Some(d) = self.nodes.get_mut(*t as usize) {
                d.scheduled.cur += 1;
            }
        }
    }

    /// A replica arrived at `idx`: one scheduled write less.
    pub(crate) fn replica_received(&mut self, idx: DnIndex) {
        if let Some(d) = self.nodes.get_mut(idx as usize) {
            d.scheduled.done();
        }
    }

    pub(crate) fn set_admin_state(&mut self, idx: DnIndex, state: AdminState) {
        if let Some(d) = self.nodes.get_mut(idx as usize) {
            d.admin = state;
            if state != AdminState::DecommissionInProgress {
                d.pending_decommission = 0;
            }
            self.admin.set(&d.id, state);
        }
    }

    pub(crate) fn set_pending_decommission(&mut self, idx: DnIndex, n: u64) {
        if let Some(d) = self.nodes.get_mut(idx as usize) {
            d.pending_decommission = n;
        }
    }

    pub(crate) fn with_admin_state(&self, state: AdminState) -> Vec<DnIndex> {
        self.iter().filter(|(_, d)| d.admin == state).map(|(i, _)| i).collect()
    }

    /// Datanodes named by uuid, else by transfer address, else by host
    /// (every node on that host).
    pub(crate) fn find(&self, name: &str) -> Vec<DnIndex> {
        if let Some(i) = self.index(name) {
            return vec![i];
        }
        let by_addr: Vec<DnIndex> = self.iter().filter(|(_, d)| d.id.transfer_addr == name).map(|(i, _)| i).collect();
        if !by_addr.is_empty() {
            return by_addr;
        }
        self.iter().filter(|(_, d)| d.id.host == name).map(|(i, _)| i).collect()
    }

    /// Live nodes whose last heartbeat is older than `timeout`.
    pub(crate) fn expired(&self, timeout: Duration) -> Vec<DnIndex> {
        let now = Instant::now();
        (0..self.nodes.len())
            .filter(|i| {
                let d = &self.nodes[*i];
                d.alive && now.duration_since(d.last_seen) > timeout
            })
            .map(|i| i as DnIndex)
            .collect()
    }

    /// Makes a node look silent for `by` (tests of dead-node handling).
    #[cfg(test)]
    pub(crate) fn age(&mut self, idx: DnIndex, by: Duration) {
        if let Some(d) = self.nodes.get_mut(idx as usize) {
            d.last_seen = Instant::now().checked_sub(by).unwrap_or(d.last_seen);
        }
    }

    /// Marks a node dead: its queued work is dropped (it must re-register).
    pub(crate) fn mark_dead(&mut self, idx: DnIndex) {
        if let Some(d) = self.nodes.get_mut(idx as usize) {
            d.alive = false;
            d.invalidate.clear();
            d.commands.clear();
            d.scheduled = Scheduled::new(Instant::now());
        }
    }

    pub(crate) fn info(&self, idx: DnIndex, num_blocks: u64) -> Option<DatanodeInfo> {
        let d = self.get(idx)?;
        Some(DatanodeInfo {
            id: Some(d.id.clone()),
            capacity: d.storage.capacity,
            dfs_used: d.storage.dfs_used,
            remaining: d.storage.remaining,
            last_contact_ms: d.last_contact_ms,
            xceivers: d.xceivers,
            state: if d.alive { State::Live as i32 } else { State::Dead as i32 },
            num_blocks,
            admin_state: d.admin as i32,
            blocks_pending_decommission: d.pending_decommission,
        })
    }

    pub(crate) fn report(&self, counts: &HashMap<DnIndex, u64>) -> Vec<DatanodeInfo> {
        self.iter().filter_map(|(i, _)| self.info(i, counts.get(&i).copied().unwrap_or(0))).collect()
    }

    pub(crate) fn live_count(&self) -> usize {
        self.nodes.iter().filter(|d| d.alive).count()
    }

    pub(crate) fn live_nodes(&self) -> impl Iterator<Item = &Datanode> + '_ {
        self.nodes.iter().filter(|d| d.alive)
    }

    /// Distinct racks among live NORMAL nodes (where replicas can go).
    pub(crate) fn cluster_racks(&self) -> usize {
        self.nodes.iter().filter(|d| d.in_service()).map(|d| d.rack()).collect::<HashSet<_>>().len()
    }

    /// The rack of a reader: that of a datanode on its host, else the
    /// topology's mapping of the host.
    fn client_rack(&self, client_host: &str) -> Option<&str> {
        if client_host.is_empty() {
            return None;
        }
        self.nodes
            .iter()
            .find(|d| d.id.host == client_host)
            .map(|d| d.rack())
            .or_else(|| self.topology.resolve_host(client_host))
    }

    /// Orders replica holders for a reader: same host, then same rack, then
    /// the rest (random within each class); decommissioning and
    /// decommissioned nodes last; dead ones dropped.
    pub(crate) fn sorted_locations(&self, replicas: &[DnIndex], client_host: &str) -> Vec<DatanodeId> {
        let rack = self.client_rack(client_host);
        let mut live: Vec<&Datanode> = replicas.iter().filter_map(|i| self.get(*i)).filter(|d| d.alive).collect();
        live.shuffle(&mut rand::rng());
        live.sort_by_key(|d| {
            if d.admin != AdminState::Normal {
                3
            } else if !client_host.is_empty() && d.id.host == client_host {
                0
            } else if rack == Some(d.rack()) {
                1
            } else {
                2
            }
        });
        live.into_iter().map(|d| d.id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn dn(m: &mut DatanodeManager, n: u8, remaining: u64) -> DnIndex {
        let id = DatanodeId {
            datanode_uuid: format!("uuid-{n}"),
            transfer_addr: format!("10.0.0.{n}:9866"),
            host: format!("10.0.0.{n}"),
            ..Default::default()
        };
        m.register(id, StorageReport { capacity: remaining, dfs_used: 0, remaining }).unwrap()
    }

    #[test]
    fn heartbeats_carry_deletes_and_unknown_nodes_reregister() {
        let mut m = DatanodeManager::default();
        let a = dn(&mut m, 1, 100);
        assert!(m.heartbeat("nope", StorageReport::default(), 0, true).is_none());
        m.invalidate(a, ExtendedBlock { block_id: 7, generation_stamp: 1, num_bytes: 0 });
        assert!(m.heartbeat("uuid-1", StorageReport::default(), 2, false).unwrap().is_empty(), "deletions wait");
        let cmds = m.heartbeat("uuid-1", StorageReport::default(), 2, true).unwrap();
        assert!(matches!(&cmds[0].command, Some(Command::Delete(d)) if d.blocks[0].block_id == 7));
        assert!(m.heartbeat("uuid-1", StorageReport::default(), 2, true).unwrap().is_empty());
        m.mark_dead(a);
        assert!(m.heartbeat("uuid-1", StorageReport::default(), 2, true).is_none());
        assert!(m.expired(Duration::from_secs(3600)).is_empty());
    }

    #[test]
    fn scheduled_writes_count_until_reported_or_rolled_over() {
        let t0 = Instant::now();
        let mut s = Scheduled::new(t0);
        s.cur = 3;
        s.done();
        assert_eq!(s.count(), 2);
        s.roll(t0 + SCHEDULED_ROLL);
        assert_eq!((s.prev, s.cur), (2, 0));
        s.cur = 1;
        s.done();
        assert_eq!((s.prev, s.cur), (1, 1), "older writes are retired first");
        s.roll(t0 + SCHEDULED_ROLL * 2);
        s.roll(t0 + SCHEDULED_ROLL * 3);
        assert_eq!(s.count(), 0, "never-reported writes stop counting");
    }

    #[test]
    fn reads_prefer_host_then_rack_and_put_decommissioning_last() {
        let topo = "10.0.0.1 /r1\n10.0.0.2 /r1\n10.0.0.3 /r2\n10.0.0.4 /r2\n10.0.0.9 /r2\n";
        let mut m = DatanodeManager::new(Topology::from_text(topo).unwrap(), AdminSet::default());
        let idx: Vec<DnIndex> = (1..=4).map(|n| dn(&mut m, n, 100)).collect();
        assert_eq!(m.get(idx[2]).unwrap().id.rack, "/r2");
        let hosts = |v: Vec<DatanodeId>| v.into_iter().map(|d| d.host).collect::<Vec<_>>();
        for _ in 0..20 {
            let l = hosts(m.sorted_locations(&idx, "10.0.0.3"));
            assert_eq!(l[0], "10.0.0.3");
            assert_eq!(l[1], "10.0.0.4");
            // A client that is no datanode, placed by the topology on /r2.
            let l = hosts(m.sorted_locations(&idx, "10.0.0.9"));
            let mut first: Vec<_> = l[..2].to_vec();
            first.sort();
            assert_eq!(first, vec!["10.0.0.3", "10.0.0.4"]);
        }
        m.set_admin_state(idx[2], AdminState::DecommissionInProgress);
        let l = hosts(m.sorted_locations(&idx, "10.0.0.3"));
        assert_eq!(l[0], "10.0.0.4");
        assert_eq!(l[3], "10.0.0.3");
        assert_eq!(m.find("uuid-2"), vec![idx[1]]);
        assert_eq!(m.find("10.0.0.2:9866"), vec![idx[1]]);
        assert_eq!(m.find("10.0.0.2"), vec![idx[1]]);
        assert!(m.find("10.0.0.7").is_empty());
    }
}
