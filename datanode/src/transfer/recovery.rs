//! The single-response ops of failure handling:
//!
//! - `TransferRbw` (from a client recovering its pipeline): copy the first
//!   `length` bytes of the local replica to `targets` with stage
//!   TRANSFER_RBW under the new generation stamp, then answer one
//!   `OpResponse`: SUCCESS, or an error naming the node that failed
//!   (`first_bad_node`: a target, or this datanode when its own replica is
//!   missing or too short).
//! - `InitReplicaRecovery` / `UpdateReplicaUnderRecovery` (from the primary
//!   datanode of a block recovery, see `nn_actor/recovery.rs`): answered
//!   with the replica's state, generation stamp and valid length, resp.
//!   SUCCESS once the replica is finalized with the recovery id and the
//!   namenode was sent an incremental block report.

use std::io::BufWriter;
use std::net::TcpStream;
use std::time::Duration;
use tusk_proto::dfs::op_request::Op;
use tusk_proto::dfs::op_write_block::Stage;
use tusk_proto::dfs::{
    OpInitReplicaRecovery, OpResponse, OpTransferRbw, OpUpdateReplicaUnderRecovery, TransferStatus,
};

use super::push::{PushJob, push};
use super::{TransferContext, connect, error_response, own_message, request, respond, split};
use crate::error::DatanodeError;

fn success() -> OpResponse {
    OpResponse { status: TransferStatus::Success as i32, ..Default::default() }
}

/// The node to blame for a failed push: the peer an error names, else this one.
fn failed_node(e: &DatanodeError, me: &str) -> String {
    match e {
        DatanodeError::PeerRefused { peer, .. }
        | DatanodeError::PeerChecksum { peer, .. }
        | DatanodeError::Transfer { peer, .. } => peer.clone(),
        _ => me.to_string(),
    }
}

pub(super) fn serve_transfer_rbw(
    ctx: &TransferContext,
    peer: &str,
    out: &mut BufWriter<TcpStream>,
    op: OpTransferRbw,
) -> Result<(), DatanodeError> {
    let me = ctx.self_addr.as_str();
    let Some(block) = op.block else {
        let msg = "transfer-rbw request without a block".to_string();
        return respond(out, &error_response(TransferStatus::ErrorInvalid, msg, me), peer);
    };
    let block_id = block.block_id;
    if op.targets.is_empty() || op.new_generation_stamp <= block.generation_stamp {
        let msg = format!(
            "block {block_id}: transfer-rbw needs targets and a new generation stamp above {} (got {} targets, {})",
            block.generation_stamp,
            op.targets.len(),
            op.new_generation_stamp
        );
        return respond(out, &error_response(TransferStatus::ErrorInvalid, msg, me), peer);
    }
    let replica = match ctx.storage.open_prefix(block_id, block.generation_stamp, op.length) {
        Ok(r) => r,
        Err(e) => {
            let msg = own_message(me, &e);
            respond(out, &error_response(TransferStatus::Error, msg, me), peer)?;
            return Err(e);
        }
    };
    let job = PushJob {
        block_id,
        gen_stamp: op.new_generation_stamp,
        len: op.length,
        stage: Stage::TransferRbw,
        targets: &op.targets,
        sender: &op.client_name,
        timeout: ctx.socket_timeout,
    };
    match push(&replica, &job) {
        Ok(()) => {
            let to: Vec<&str> = op.targets.iter().map(|t| t.transfer_addr.as_str()).collect();
            tracing::info!(block_id, len = op.length, ?to, "rbw replica copied for pipeline recovery");
            respond(out, &success(), peer)
        }
        Err(e) => {
            let bad = failed_node(&e, me);
            let msg = format!("datanode {me}: copying {} bytes of block {block_id} failed: {e}", op.length);
            respond(out, &error_response(TransferStatus::Error, msg, &bad), peer)?;
            Err(e)
        }
    }
}

pub(super) fn serve_init(
    ctx: &TransferContext,
    peer: &str,
    out: &mut BufWriter<TcpStream>,
    op: OpInitReplicaRecovery,
) -> Result<(), DatanodeError> {
    let me = ctx.self_addr.as_str();
    let Some(block) = op.block else {
        let msg = "init-replica-recovery request without a block".to_string();
        return respond(out, &error_response(TransferStatus::ErrorInvalid, msg, me), peer);
    };
    match ctx.storage.init_replica_recovery(block.block_id, block.generation_stamp, op.recovery_id) {
        Ok(info) => {
            let resp = OpResponse {
                replica_state: info.state as i32,
                generation_stamp: info.gen_stamp,
                replica_length: info.len,
                ..success()
            };
            respond(out, &resp, peer)
        }
        Err(e) => {
            tracing::info!(block_id = block.block_id, recovery_id = op.recovery_id, "replica recovery refused: {e}");
            respond(out, &error_response(e.transfer_status(), own_message(me, &e), me), peer)
        }
    }
}

pub(super) fn serve_update(
    ctx: &TransferContext,
    peer: &str,
    out: &mut BufWriter<TcpStream>,
    op: OpUpdateReplicaUnderRecovery,
) -> Result<(), DatanodeError> {
    let me = ctx.self_addr.as_str();
    let Some(block) = op.block else {
        let msg = "update-replica-under-recovery request without a block".to_string();
        return respond(out, &error_response(TransferStatus::ErrorInvalid, msg, me), peer);
    };
    let block_id = block.block_id;
    match ctx.storage.update_replica_under_recovery(block_id, op.recovery_id, op.new_length) {
        Ok(report) => {
            tracing::info!(block_id, recovery_id = op.recovery_id, len = op.new_length, "replica recovered");
            if let Err(e) = ctx.sink.block_received(report) {
                // The replica is right; the next full block report tells the namenode.
                tracing::warn!(block_id, "recovered replica not reported to the namenode: {e}");
            }
            respond(out, &success(), peer)
        }
        Err(e) => {
            tracing::warn!(block_id, recovery_id = op.recovery_id, "replica recovery update failed: {e}");
            respond(out, &error_response(e.transfer_status(), own_message(me, &e), me), peer)
        }
    }
}

/// Sends one op to a datanode's transfer address and reads its single
/// `OpResponse` (used by the primary of a block recovery).
pub(crate) fn call_op(addr: &str, op: Op, timeout: Duration) -> Result<OpResponse, DatanodeError> {
    let (mut input, mut output) = split(connect(addr, timeout)?).map_err(|e| DatanodeError::transfer(addr, e.into()))?;
    request(&mut input, &mut output, addr, op)
}
