//! DatanodeProtocol operations of the namesystem: registration, heartbeats,
//! block reports and liveness.

use std::collections::HashSet;
use std::time::Duration;

use tusk_proto::dfs::{
    DatanodeCommand, DatanodeId, DatanodeInfo, DeleteBlocksCommand, ExtendedBlock, RegisterDatanodeResponse, ReplicaReport,
    StorageReport, datanode_command::Command,
};
use tusk_proto::error::ErrorKind;

use super::Namesystem;
use crate::blocks::DnIndex;
use crate::error::{NamenodeError, Result};
use crate::replication::under_construction;

fn reregister() -> DatanodeCommand {
    DatanodeCommand { command: Some(Command::Reregister(true)) }
}

fn ext(r: &ReplicaReport) -> ExtendedBlock {
    ExtendedBlock { block_id: r.block_id, generation_stamp: r.generation_stamp, num_bytes: r.num_bytes }
}

impl Namesystem {
    pub(crate) fn register_datanode(
        &self,
        protocol_version: u32,
        id: DatanodeId,
        cluster_id: &str,
        storage: StorageReport,
    ) -> Result<RegisterDatanodeResponse> {
        if id.datanode_uuid.is_empty() {
            return Err(NamenodeError::invalid("register: datanode_uuid is empty"));
        }
        if protocol_version != tusk_proto::PROTOCOL_VERSION {
            return Err(NamenodeError::req(
                ErrorKind::Incompatible,
                format!(
                    "datanode {} ({}): protocol version {protocol_version}, the namenode speaks {}",
                    id.datanode_uuid,
                    id.transfer_addr,
                    tusk_proto::PROTOCOL_VERSION
                ),
            ));
        }
        if !cluster_id.is_empty() && cluster_id != self.cluster_id {
            return Err(NamenodeError::req(
                ErrorKind::Incompatible,
                format!(
                    "datanode {} ({}): belongs to cluster {cluster_id}, this namenode serves {}",
                    id.datanode_uuid, id.transfer_addr, self.cluster_id
                ),
            ));
        }
        let uuid = id.datanode_uuid.clone();
        let addr = id.transfer_addr.clone();
        let mut dm = self.datanodes.lock();
        let moved = dm.refresh_topology();
        let idx = dm.register(id, storage).ok_or_else(|| NamenodeError::req(ErrorKind::Internal, "too many datanodes"))?;
        let (rack, admin) = dm.get(idx).map(|d| (d.id.rack.clone(), d.admin)).unwrap_or_default();
        let mut repl = self.repl.lock();
        let now_multi_rack = repl.refresh_racks(&dm);
        if moved || now_multi_rack {
            // Racks moved, or a second rack appeared: the placement of every
            // block is checked again.
            repl.rescan = true;
        }
        drop(repl);
        drop(dm);
        tracing::info!("datanode {uuid} registered at {addr} on rack {rack} ({})", admin.as_str_name());
        Ok(RegisterDatanodeResponse {
            cluster_id: self.cluster_id.clone(),
            heartbeat_interval_ms: self.conf.heartbeat_interval_ms,
            block_report_interval_ms: self.conf.block_report_interval_ms,
        })
    }

    /// Records a heartbeat and returns the node's pending commands (no
    /// deletions in safe mode: they stay queued until it ends).
    pub(crate) fn heartbeat(&self, uuid: &str, storage: StorageReport, xceivers: u32) -> Vec<DatanodeCommand> {
        let deletes = !self.safemode.is_on();
        self.datanodes.lock().heartbeat(uuid, storage, xceivers, deletes).unwrap_or_else(|| vec![reregister()])
    }

    /// The DeleteBlocks commands answering a block report, or, in safe
    /// mode, nothing: the deletions are queued and sent with heartbeats once
    /// safe mode ends (an operator may still be bringing replicas back).
    pub(super) fn report_deletes(&self, idx: DnIndex, delete: Vec<ExtendedBlock>) -> Vec<DatanodeCommand> {
        if self.safemode.is_on() {
            let mut dm = self.datanodes.lock();
            for b in delete {
                dm.invalidate(idx, b);
            }
            return Vec::new();
        }
        delete
            .chunks(1000)
            .map(|c| DatanodeCommand { command: Some(Command::Delete(DeleteBlocksCommand { blocks: c.to_vec() })) })
            .collect()
    }

    /// Reconciles a full block report: unknown or stale replicas are to be
    /// deleted, known ones become locations, locations not reported are dropped.
    /// Replicas kept (and corrupt marks with them: a corrupt replica stays
    /// corrupt); new and dropped locations are noted for the replication
    /// monitor (e.g. a node that came back makes blocks over-replicated).
    pub(crate) fn block_report(&self, uuid: &str, replicas: &[ReplicaReport]) -> Vec<DatanodeCommand> {
        let mut st = self.state.write();
        let mut dm = self.datanodes.lock();
        let Some(idx) = dm.live_index(uuid) else { return vec![reregister()] };
        dm.block_report_received(idx);
        drop(dm);
        let mut keep = HashSet::with_capacity(replicas.len());
        let mut delete = Vec::new();
        let mut added = Vec::new();
        // Held for the loop (lock order: after `state`; nothing else is
        // taken meanwhile) rather than cloned on every report.
        let unsynced = self.unsynced_removals.lock();
        for r in replicas {
            match st.blocks.get_mut(r.block_id) {
                Some(b) if r.generation_stamp >= b.gen_stamp => {
                    if b.replicas.add(idx) {
                        added.push(r.block_id);
                    }
                    keep.insert(r.block_id);
                }
                // Its removal is being synced; its deletion follows then.
                None if unsynced.contains(&r.block_id) => {}
                _ => delete.push(ext(r)),
            }
        }
        drop(unsynced);
        let dropped = st.blocks.retain_on_datanode(idx, &keep);
        {
            let mut repl = self.repl.lock();
            for id in &dropped {
                repl.replica_gone(*id, idx);
            }
            if self.noting() {
                for id in added.iter().chain(&dropped) {
                    if !under_construction(&st, *id) {
                        repl.note(*id);
                    }
                }
                repl.recheck_postponed();
            }
        }
        drop(st);
        tracing::debug!("block report from {uuid}: {} replicas, {} to delete", replicas.len(), delete.len());
        self.report_deletes(idx, delete)
    }

    /// Applies an incremental report. Unknown or stale received replicas are
    /// queued for deletion (sent with the next heartbeat).
    pub(crate) fn incremental_report(&self, uuid: &str, received: &[ReplicaReport], deleted: &[ReplicaReport]) -> Result<()> {
        let mut st = self.state.write();
        let mut dm = self.datanodes.lock();
        let Some(idx) = dm.live_index(uuid) else {
            return Err(NamenodeError::req(
                ErrorKind::Incompatible,
                format!("datanode {uuid} is not registered; register again"),
            ));
        };
        let unsynced: Vec<u64> = {
            let u = self.unsynced_removals.lock();
            received.iter().map(|r| r.block_id).filter(|id| u.contains(id)).collect()
        };
        let mut repl = self.repl.lock();
        let noting = self.noting();
        for r in received {
            let open = under_construction(&st, r.block_id);
            match st.blocks.get_mut(r.block_id) {
                // A block being written keeps the writer's stamp while block
                // recoveries finalize replicas with their (newer) recovery
                // ids, of this attempt or of one that timed out: newer than
                // the block, such a replica is no stale one (as in a full report).
                Some(b) if r.generation_stamp == b.gen_stamp || (open && r.generation_stamp > b.gen_stamp) => {
                    b.replicas.add(idx);
                    dm.replica_received(idx);
                    let was_pending = repl.pending.received(r.block_id, idx);
                    if noting && (was_pending || !open) {
                        repl.note(r.block_id);
                    }
                }
                None if unsynced.contains(&r.block_id) => {}
                _ => dm.invalidate(idx, ext(r)),
            }
        }
        for r in deleted {
            // A deleted replica older than the block was a stale one: the
            // location (if any) is of a current replica reported since.
            if let Some(b) = st.blocks.get_mut(r.block_id)
                && r.generation_stamp >= b.gen_stamp
                && b.replicas.remove(idx)
            {
                repl.replica_gone(r.block_id, idx);
                if noting {
                    repl.note(r.block_id);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn datanode_report(&self) -> Vec<DatanodeInfo> {
        let st = self.state.read();
        let counts = st.blocks.replica_counts();
        let dm = self.datanodes.lock();
        dm.report(&counts)
    }

    /// Declares silent datanodes dead and forgets their replicas; returns how many.
    pub(crate) fn check_dead_nodes(&self) -> usize {
        let timeout = Duration::from_millis(self.conf.dead_node_interval_ms);
        if self.datanodes.lock().expired(timeout).is_empty() {
            return 0;
        }
        let mut st = self.state.write();
        let mut dm = self.datanodes.lock();
        let mut repl = self.repl.lock();
        let noting = self.noting();
        let dead = dm.expired(timeout);
        for d in &dead {
            dm.mark_dead(*d);
            let lost = st.blocks.remove_datanode(*d);
            let changed = repl.pending.drop_node(*d);
            for id in &lost {
                repl.replica_gone(*id, *d);
            }
            if noting {
                for id in lost.iter().chain(&changed) {
                    repl.note(*id);
                }
            }
            if let Some(node) = dm.get(*d) {
                tracing::warn!(
                    "datanode {} ({}) is dead; forgot {} replicas",
                    node.id.datanode_uuid,
                    node.id.transfer_addr,
                    lost.len()
                );
            }
        }
        dead.len()
    }
}
