//! Datanode management: registration, heartbeats, liveness, per-datanode
//! command queues (block invalidations now, transfers later) and replica
//! placement.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use tusk_proto::dfs::{
    DatanodeCommand, DatanodeId, DatanodeInfo, DeleteBlocksCommand, ExtendedBlock, StorageReport, datanode_command::Command,
    datanode_info::State,
};

use crate::blocks::DnIndex;

/// Most blocks sent in one DeleteBlocks command.
const MAX_DELETES_PER_COMMAND: usize = 1000;

/// What the namenode knows of one datanode.
#[derive(Debug)]
pub(crate) struct Datanode {
    pub(crate) id: DatanodeId,
    pub(crate) storage: StorageReport,
    pub(crate) xceivers: u32,
    pub(crate) last_contact_ms: i64,
    last_seen: Instant,
    pub(crate) alive: bool,
    /// Replicas to delete, sent with the next heartbeat answer.
    invalidate: Vec<ExtendedBlock>,
    /// Other commands (e.g. TransferBlock) for the next heartbeat answer.
    commands: VecDeque<DatanodeCommand>,
}

/// All datanodes ever seen by this process; indices are stable.
#[derive(Debug, Default)]
pub(crate) struct DatanodeManager {
    nodes: Vec<Datanode>,
    by_uuid: HashMap<String, DnIndex>,
}

impl DatanodeManager {
    /// Registers (or re-registers) a datanode; it becomes live.
    pub(crate) fn register(&mut self, id: DatanodeId, storage: StorageReport) -> Option<DnIndex> {
        let now = Instant::now();
        if let Some(&idx) = self.by_uuid.get(&id.datanode_uuid) {
            let d = &mut self.nodes[idx as usize];
            d.id = id;
            d.storage = storage;
            d.alive = true;
            d.last_seen = now;
            d.last_contact_ms = tusk_common::now_ms();
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
            invalidate: Vec::new(),
            commands: VecDeque::new(),
        });
        Some(idx)
    }

    /// Index of a live datanode.
    pub(crate) fn live_index(&self, uuid: &str) -> Option<DnIndex> {
        self.by_uuid.get(uuid).copied().filter(|i| self.nodes[*i as usize].alive)
    }

    pub(crate) fn get(&self, idx: DnIndex) -> Option<&Datanode> {
        self.nodes.get(idx as usize)
    }

    /// Records a heartbeat and drains the node's commands. None: the node is
    /// unknown or was declared dead and must register again.
    pub(crate) fn heartbeat(&mut self, uuid: &str, storage: StorageReport, xceivers: u32) -> Option<Vec<DatanodeCommand>> {
        let idx = self.live_index(uuid)?;
        let d = &mut self.nodes[idx as usize];
        d.storage = storage;
        d.xceivers = xceivers;
        d.last_seen = Instant::now();
        d.last_contact_ms = tusk_common::now_ms();
        let mut out: Vec<DatanodeCommand> = d.commands.drain(..).collect();
        if !d.invalidate.is_empty() {
            let n = d.invalidate.len().min(MAX_DELETES_PER_COMMAND);
            let blocks: Vec<ExtendedBlock> = d.invalidate.drain(..n).collect();
            out.push(DatanodeCommand { command: Some(Command::Delete(DeleteBlocksCommand { blocks })) });
        }
        Some(out)
    }

    /// Queues the deletion of a replica on `idx`.
    pub(crate) fn invalidate(&mut self, idx: DnIndex, block: ExtendedBlock) {
        if let Some(d) = self.nodes.get_mut(idx as usize) {
            d.invalidate.push(block);
        }
    }

    /// Queues a command for the next heartbeat of `idx`.
    #[allow(dead_code)]
    pub(crate) fn queue_command(&mut self, idx: DnIndex, cmd: DatanodeCommand) {
        if let Some(d) = self.nodes.get_mut(idx as usize) {
            d.commands.push_back(cmd);
        }
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

    /// Marks a node dead: its queued work is dropped (it must re-register).
    pub(crate) fn mark_dead(&mut self, idx: DnIndex) {
        if let Some(d) = self.nodes.get_mut(idx as usize) {
            d.alive = false;
            d.invalidate.clear();
            d.commands.clear();
        }
    }

    pub(crate) fn report(&self, counts: &HashMap<DnIndex, u64>) -> Vec<DatanodeInfo> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, d)| DatanodeInfo {
                id: Some(d.id.clone()),
                capacity: d.storage.capacity,
                dfs_used: d.storage.dfs_used,
                remaining: d.storage.remaining,
                last_contact_ms: d.last_contact_ms,
                xceivers: d.xceivers,
                state: if d.alive { State::Live as i32 } else { State::Dead as i32 },
                num_blocks: counts.get(&(i as DnIndex)).copied().unwrap_or(0),
                ..Default::default()
            })
            .collect()
    }

    pub(crate) fn live_count(&self) -> usize {
        self.nodes.iter().filter(|d| d.alive).count()
    }

    /// Picks up to `replication` distinct live datanodes with room for a
    /// block: the writer's own host first, then random ones preferring
    /// fewer active transfers.
    pub(crate) fn choose_targets(&self, replication: usize, block_size: u64, client_host: &str, excluded: &[String]) -> Vec<DnIndex> {
        let mut candidates: Vec<DnIndex> = (0..self.nodes.len())
            .filter(|i| {
                let d = &self.nodes[*i];
                d.alive && d.storage.remaining >= block_size && !excluded.contains(&d.id.datanode_uuid)
            })
            .map(|i| i as DnIndex)
            .collect();
        candidates.shuffle(&mut rand::rng());
        candidates.sort_by_key(|i| self.nodes[*i as usize].xceivers / 4);
        let mut out = Vec::with_capacity(replication);
        if !client_host.is_empty()
            && let Some(pos) = candidates.iter().position(|i| self.nodes[*i as usize].id.host == client_host)
        {
            out.push(candidates.remove(pos));
        }
        for c in candidates {
            if out.len() >= replication {
                break;
            }
            out.push(c);
        }
        out.truncate(replication);
        out
    }

    /// Orders replica holders for a reader: same host first, dead ones dropped.
    pub(crate) fn sorted_locations(&self, replicas: &[DnIndex], client_host: &str) -> Vec<DatanodeId> {
        let mut live: Vec<&Datanode> = replicas.iter().filter_map(|i| self.get(*i)).filter(|d| d.alive).collect();
        live.shuffle(&mut rand::rng());
        live.sort_by_key(|d| d.id.host != client_host);
        live.into_iter().map(|d| d.id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(m: &mut DatanodeManager, n: u8, remaining: u64) -> DnIndex {
        let id = DatanodeId {
            datanode_uuid: format!("uuid-{n}"),
            transfer_addr: format!("10.0.0.{n}:9866"),
            host: format!("10.0.0.{n}"),
            ..Default::default()
        };
        m.register(id, StorageReport { capacity: remaining, dfs_used: 0, remaining }).unwrap()
    }

    #[test]
    fn placement_prefers_local_and_skips_full_and_excluded() {
        let mut m = DatanodeManager::default();
        for n in 1..=4 {
            dn(&mut m, n, 1 << 30);
        }
        dn(&mut m, 5, 10);
        for _ in 0..20 {
            let t = m.choose_targets(3, 1 << 20, "10.0.0.3", &["uuid-1".into()]);
            assert_eq!(t.len(), 3);
            assert_eq!(m.get(t[0]).unwrap().id.host, "10.0.0.3");
            let uuids: Vec<_> = t.iter().map(|i| m.get(*i).unwrap().id.datanode_uuid.clone()).collect();
            assert!(!uuids.contains(&"uuid-1".to_string()) && !uuids.contains(&"uuid-5".to_string()), "{uuids:?}");
            let mut d = t.clone();
            d.dedup();
            assert_eq!(d.len(), 3);
        }
        assert_eq!(m.choose_targets(10, 1 << 20, "", &[]).len(), 4);
        assert!(m.choose_targets(3, 1 << 40, "", &[]).is_empty());
    }

    #[test]
    fn heartbeats_carry_deletes_and_unknown_nodes_reregister() {
        let mut m = DatanodeManager::default();
        let a = dn(&mut m, 1, 100);
        assert!(m.heartbeat("nope", StorageReport::default(), 0).is_none());
        m.invalidate(a, ExtendedBlock { block_id: 7, generation_stamp: 1, num_bytes: 0 });
        let cmds = m.heartbeat("uuid-1", StorageReport::default(), 2).unwrap();
        assert!(matches!(&cmds[0].command, Some(Command::Delete(d)) if d.blocks[0].block_id == 7));
        assert!(m.heartbeat("uuid-1", StorageReport::default(), 2).unwrap().is_empty());
        m.mark_dead(a);
        assert!(m.heartbeat("uuid-1", StorageReport::default(), 2).is_none());
        assert!(m.expired(Duration::from_secs(3600)).is_empty());
    }
}
