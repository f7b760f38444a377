//! Write pipeline recovery, driven by the client as in HDFS: when a datanode
//! of a block's pipeline fails (a bad ack status, a broken connection, a
//! timeout), the writer keeps the packets that were not acknowledged, drops
//! the datanode to blame, asks the namenode for a new generation stamp,
//! optionally adds a replacement datanode (seeded with the acknowledged bytes
//! by a survivor), reopens the pipeline over the remaining datanodes with
//! stage PIPELINE_RECOVERY (every datanode keeps exactly the acknowledged
//! bytes), tells the namenode the new pipeline, and resends the packets.
//! A datanode that refuses the recovery is dropped the same way, up to
//! [`RecoveryState::max_attempts`] per block.

use std::time::Duration;
use tusk_proto::dfs::{self, DatanodeId, ExtendedBlock, OpTransferRbw, TransferStatus, op_request};

use super::packet::OutPacket;
use super::pipeline::{Pipeline, PipelineFailure, Stage};
use super::{FileWriter, OpenBlock, block_name};
use crate::datanode_op::{request_op, status_name};
use crate::error::{ClientError, Result};

/// What one block's pipeline recoveries have used up: the datanodes that
/// failed (never chosen again for this block) and the attempts made.
#[derive(Debug, Clone)]
pub(super) struct RecoveryState {
    replication: u32,
    /// Datanodes dropped from the pipeline, and replacements that failed.
    excluded: Vec<DatanodeId>,
    /// Recovery pipelines tried so far for this block.
    attempts: u32,
}

impl RecoveryState {
    pub(super) fn new(replication: u32) -> RecoveryState {
        RecoveryState { replication: replication.max(1), excluded: Vec::new(), attempts: 0 }
    }

    /// Recovery attempts allowed per block: the replication plus two (room to
    /// drop every datanode once and to retry refusals of replacements).
    pub(super) fn max_attempts(&self) -> u32 {
        self.replication + 2
    }

    /// Removes the datanode to blame from `nodes`: the one at transfer
    /// address `bad_addr`, else (nothing better known) the first one.
    pub(super) fn drop_node(&mut self, nodes: &mut Vec<DatanodeId>, bad_addr: Option<&str>) -> Option<DatanodeId> {
        if nodes.is_empty() {
            return None;
        }
        let i = bad_addr.and_then(|a| nodes.iter().position(|d| d.transfer_addr == a)).unwrap_or(0);
        let bad = nodes.remove(i);
        self.excluded.push(bad.clone());
        Some(bad)
    }

    /// Counts one more attempt over `nodes`; the error says why there is none.
    pub(super) fn next_attempt(&mut self, nodes: &[DatanodeId]) -> std::result::Result<u32, String> {
        if nodes.is_empty() {
            return Err("no datanode is left in the pipeline".to_string());
        }
        if self.attempts >= self.max_attempts() {
            return Err(format!("pipeline recovery gave up after {} attempts", self.attempts));
        }
        self.attempts += 1;
        Ok(self.attempts)
    }

    /// The pipeline is shorter than the file's replication.
    pub(super) fn wants_replacement(&self, nodes: &[DatanodeId]) -> bool {
        nodes.len() < self.replication as usize
    }

    /// Never use `node` for this block again (a replacement that failed).
    pub(super) fn exclude(&mut self, node: DatanodeId) {
        self.excluded.push(node);
    }

    pub(super) fn is_excluded(&self, node: &DatanodeId) -> bool {
        self.excluded.iter().any(|d| d.datanode_uuid == node.datanode_uuid)
    }

    pub(super) fn excluded_uuids(&self) -> Vec<String> {
        self.excluded.iter().map(|d| d.datanode_uuid.clone()).collect()
    }

    /// Transfer addresses of the excluded datanodes, for messages.
    pub(super) fn failed_addrs(&self) -> String {
        let addrs: Vec<&str> = self.excluded.iter().map(|d| d.transfer_addr.as_str()).collect();
        if addrs.is_empty() { "none".to_string() } else { addrs.join(", ") }
    }
}

/// Transfer addresses of a pipeline, for messages.
fn addrs(nodes: &[DatanodeId]) -> String {
    nodes.iter().map(|d| d.transfer_addr.as_str()).collect::<Vec<_>>().join(", ")
}

/// Resends `packets` in order on `pipeline`. On a failure, the failure's
/// unacknowledged packets are followed by those not sent yet.
async fn resend(pipeline: &mut Pipeline, packets: Vec<OutPacket>) -> std::result::Result<(), PipelineFailure> {
    let mut rest = packets.into_iter();
    while let Some(p) = rest.next() {
        if let Err(mut f) = pipeline.send(p).await {
            f.unacked.extend(rest);
            return Err(f);
        }
    }
    Ok(())
}

impl FileWriter {
    /// Recovers the open block's pipeline after `failure`; on success the
    /// open block has a new generation stamp and a working pipeline that
    /// already carries every packet not acknowledged before.
    pub(super) async fn recover(&mut self, failure: PipelineFailure) -> Result<()> {
        let Some(open) = self.current.take() else {
            return Err(ClientError::Block {
                path: self.path.clone(),
                op: "write",
                block: "?".into(),
                message: format!("the pipeline failed with no block open: {failure}"),
            });
        };
        let OpenBlock { mut block, pipeline, mut nodes, mut recovery } = open;
        // Hang up on the old pipeline (its ack reader stops).
        drop(pipeline);
        let (io_timeout, window) = self.pipeline_settings();
        let mut failure = failure;
        let mut packets = std::mem::take(&mut failure.unacked);
        let mut acked = failure.acked_bytes;
        loop {
            let bad = recovery.drop_node(&mut nodes, failure.bad_node.as_deref());
            let attempt = match recovery.next_attempt(&nodes) {
                Ok(n) => n,
                Err(why) => return Err(self.recovery_error(&block, &why, &recovery, &failure)),
            };
            let old = block;
            block = match self.update_block_for_pipeline(&old, acked).await {
                Ok(b) => b,
                Err(e) => {
                    let why = format!("asking the namenode for a new generation stamp: {e}");
                    return Err(self.recovery_error(&old, &why, &recovery, &failure));
                }
            };
            if recovery.wants_replacement(&nodes)
                && let Some(n) = self.replacement(&old, &block, &nodes, &mut recovery, acked, io_timeout).await
            {
                nodes.push(n);
            }
            tracing::warn!(
                "{}: pipeline recovery of {} (attempt {attempt} of {}): datanode {} failed ({}); \
                 new generation stamp {}; pipeline now [{}], {acked} bytes acknowledged, {} packets to resend",
                self.path,
                block_name(&old),
                recovery.max_attempts(),
                bad.as_ref().map(|d| d.transfer_addr.as_str()).unwrap_or("?"),
                failure.message,
                block.generation_stamp,
                addrs(&nodes),
                packets.len(),
            );
            let name = self.client.client_name();
            let stage = Stage::Recovery { acked_bytes: acked };
            let mut pipeline = match Pipeline::open(&block, &nodes, name, io_timeout, window, stage).await {
                Ok(p) => p,
                Err(f) => {
                    failure = f;
                    continue;
                }
            };
            if let Err(e) = self.update_pipeline(&block, acked, &nodes).await {
                let why = format!("telling the namenode the new pipeline: {e}");
                return Err(self.recovery_error(&block, &why, &recovery, &failure));
            }
            match resend(&mut pipeline, packets).await {
                Ok(()) => {
                    self.current = Some(OpenBlock { block, pipeline, nodes, recovery });
                    return Ok(());
                }
                Err(mut f) => {
                    packets = std::mem::take(&mut f.unacked);
                    acked = f.acked_bytes;
                    failure = f;
                }
            }
        }
    }

    fn recovery_error(
        &self,
        block: &ExtendedBlock,
        why: &str,
        recovery: &RecoveryState,
        last: &PipelineFailure,
    ) -> ClientError {
        ClientError::Block {
            path: self.path.clone(),
            op: "write",
            block: block_name(block),
            message: format!("{why} (failed datanodes: {}); last failure: {last}", recovery.failed_addrs()),
        }
    }

    /// `UpdateBlockForPipeline`: the block with a new generation stamp.
    async fn update_block_for_pipeline(&self, block: &ExtendedBlock, acked: u64) -> Result<ExtendedBlock> {
        let rpc = self.client.rpc();
        let req = dfs::UpdateBlockForPipelineRequest {
            caller: rpc.caller(),
            path: self.path.clone(),
            block: Some(ExtendedBlock { num_bytes: acked, ..*block }),
        };
        let resp = rpc.stub().update_block_for_pipeline(req).await.map_err(|s| rpc.error(s))?.into_inner();
        match resp.block {
            Some(b) if b.block_id == block.block_id && b.generation_stamp > block.generation_stamp => {
                Ok(ExtendedBlock { num_bytes: 0, ..b })
            }
            other => Err(ClientError::Block {
                path: self.path.clone(),
                op: "recover",
                block: block_name(block),
                message: format!("the namenode answered UpdateBlockForPipeline with {other:?}"),
            }),
        }
    }

    /// `UpdatePipeline`: the namenode learns where the block now lives.
    async fn update_pipeline(&self, block: &ExtendedBlock, acked: u64, nodes: &[DatanodeId]) -> Result<()> {
        let rpc = self.client.rpc();
        let req = dfs::UpdatePipelineRequest {
            caller: rpc.caller(),
            path: self.path.clone(),
            block: Some(ExtendedBlock { num_bytes: acked, ..*block }),
            datanode_uuids: nodes.iter().map(|d| d.datanode_uuid.clone()).collect(),
        };
        rpc.stub().update_pipeline(req).await.map_err(|s| rpc.error(s))?;
        Ok(())
    }

    /// Best effort: a datanode to replace a failed one, seeded with the
    /// acknowledged bytes by the first survivor (`OpTransferRbw`). `None`
    /// (logged) when the namenode has none or the copy failed.
    async fn replacement(
        &self,
        old: &ExtendedBlock,
        block: &ExtendedBlock,
        nodes: &[DatanodeId],
        recovery: &mut RecoveryState,
        acked: u64,
        io_timeout: Duration,
    ) -> Option<DatanodeId> {
        let rpc = self.client.rpc();
        let req = dfs::GetAdditionalDatanodeRequest {
            caller: rpc.caller(),
            path: self.path.clone(),
            block: Some(*block),
            existing_uuids: nodes.iter().map(|d| d.datanode_uuid.clone()).collect(),
            excluded_uuids: recovery.excluded_uuids(),
            num_additional: 1,
            client_host: String::new(),
        };
        let offered = match rpc.stub().get_additional_datanode(req).await {
            Ok(r) => r.into_inner().datanodes,
            Err(s) => {
                let e = rpc.error(s);
                tracing::warn!("{}: no replacement datanode for {}: {e}", self.path, block_name(block));
                return None;
            }
        };
        let Some(new) = offered
            .into_iter()
            .find(|d| !recovery.is_excluded(d) && !nodes.iter().any(|n| n.datanode_uuid == d.datanode_uuid))
        else {
            tracing::warn!("{}: the namenode has no replacement datanode for {}", self.path, block_name(block));
            return None;
        };
        if acked == 0 {
            return Some(new);
        }
        let source = nodes.first()?;
        let op = OpTransferRbw {
            block: Some(ExtendedBlock { num_bytes: acked, ..*old }),
            length: acked,
            new_generation_stamp: block.generation_stamp,
            targets: vec![new.clone()],
            client_name: self.client.client_name().to_string(),
        };
        match transfer_rbw(&source.transfer_addr, op, io_timeout).await {
            Ok(()) => Some(new),
            Err(e) => {
                tracing::warn!(
                    "{}: replacement datanode {} for {} left out: copying {acked} bytes from {} failed: {e}",
                    self.path,
                    new.transfer_addr,
                    block_name(block),
                    source.transfer_addr
                );
                recovery.exclude(new);
                None
            }
        }
    }
}

/// Asks the datanode at `addr` to copy its partial replica (`OpTransferRbw`);
/// waits for its one answer.
async fn transfer_rbw(addr: &str, op: OpTransferRbw, io_timeout: Duration) -> std::result::Result<(), String> {
    let (_, resp) = request_op(addr, op_request::Op::TransferRbw(op), io_timeout, io_timeout).await?;
    if resp.status != TransferStatus::Success as i32 {
        return Err(format!("refused ({}): {}", status_name(resp.status), resp.message));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
