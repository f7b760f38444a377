//! Receiving a block: pipeline setup, then per packet: verify checksums,
//! forward downstream, append to the replica, queue the seqno for the
//! responder thread, which sends acks upstream in order after merging the
//! downstream's ack.
//!
//! Stages (`OpWriteBlock.stage`):
//! - CREATE (a client's new block) and TRANSFER (re-replication): a new rbw
//!   replica, finalized and reported at the last packet.
//! - PIPELINE_RECOVERY: the existing replica is reopened (stopping an older
//!   writer; a finalized one moves back to rbw), cut to `recovery_length`
//!   and renamed to the new generation stamp before the request goes
//!   downstream; packets then continue from `recovery_length`; finalized
//!   and reported at the last packet. Too few valid bytes: ERROR naming
//!   this datanode (no replica at all is fine when 0 bytes are kept: a
//!   replacement added before the first ack starts an empty one).
//! - TRANSFER_RBW: a new replica (packets from offset 0) that stays in rbw
//!   at the last packet (not finalized, not reported), released before the
//!   last ack so the PIPELINE_RECOVERY that follows can take it at once.
//!
//! Heartbeat packets (`HEARTBEAT_SEQNO`, no data, sent by a writer with
//! nothing to write so no socket read times out) are forwarded downstream
//! and acked in order like any packet, in every stage, but never written
//! nor checked against the replica's length. A writer that sends nothing at
//! all, not even heartbeats, still loses the pipeline after the socket
//! timeout.
//!
//! When a write fails, what was received stays as an rbw replica for
//! recovery (CREATE, PIPELINE_RECOVERY), except for a failed pipeline setup
//! of a new replica, and for the datanode-to-datanode stages (TRANSFER,
//! TRANSFER_RBW), whose partial copies are useless and removed. A checksum
//! error or a failed append (full disk) always removes the replica.

use std::io::{BufReader, BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::Duration;
use tusk_proto::dfs::op_request::Op;
use tusk_proto::dfs::op_write_block::Stage;
use tusk_proto::dfs::{OpResponse, OpWriteBlock, PipelineAck, TransferStatus};
use tusk_proto::transfer::{
    Packet, is_heartbeat, read_message, read_packet, verify_checksums, write_message, write_packet,
};

use super::{TransferContext, connect, error_response, own_message, request, respond, split};
use crate::error::DatanodeError;
use crate::storage::{RbwReplica, Reopen};

/// Extra wait on a downstream datanode per node in the pipeline after this
/// one (HDFS `READ_TIMEOUT_EXTENSION`): the node next to a hung one gives
/// up first and names it, before the nodes upstream give up on it.
const TIMEOUT_EXTENSION: Duration = Duration::from_secs(5);

/// Socket timeout towards a downstream with `nodes` datanodes in it.
fn downstream_timeout(base: Duration, nodes: usize) -> Duration {
    base + TIMEOUT_EXTENSION * nodes.min(64) as u32
}

/// What the responder must do for one packet.
struct AckItem {
    seqno: u64,
    status: TransferStatus,
    message: String,
    downstream: DownstreamSlot,
    last: bool,
}

enum DownstreamSlot {
    /// No downstream node, or the packet was not forwarded (own error).
    None,
    /// The packet was forwarded: read the downstream's ack.
    Ack,
    /// Forwarding failed.
    Failed(String),
}

struct Downstream {
    addr: String,
    input: BufReader<TcpStream>,
    output: BufWriter<TcpStream>,
}

pub(super) fn serve(
    ctx: &TransferContext,
    peer: &str,
    mut up_in: BufReader<TcpStream>,
    mut up_out: BufWriter<TcpStream>,
    op: OpWriteBlock,
) -> Result<(), DatanodeError> {
    let me = ctx.self_addr.as_str();
    let Some(block) = op.block else {
        let msg = "write request without a block".to_string();
        return respond(&mut up_out, &error_response(TransferStatus::ErrorInvalid, msg, me), peer);
    };
    let Ok(stage) = Stage::try_from(op.stage) else {
        let msg = format!("write request with unknown stage {}", op.stage);
        return respond(&mut up_out, &error_response(TransferStatus::ErrorInvalid, msg, me), peer);
    };
    let block_id = block.block_id;
    let opened = match stage {
        Stage::PipelineRecovery => {
            match ctx.storage.reopen_rbw(block_id, block.generation_stamp, op.recovery_length, Reopen::Pipeline) {
                // A replacement added before any byte was acknowledged has
                // no replica yet: it has all 0 bytes to keep.
                Err(DatanodeError::ReplicaNotFound { .. }) if op.recovery_length == 0 => {
                    ctx.storage.create_rbw(block_id, block.generation_stamp)
                }
                opened => opened,
            }
        }
        Stage::Create | Stage::Transfer | Stage::TransferRbw => {
            ctx.storage.create_rbw(block_id, block.generation_stamp)
        }
    };
    let replica = match opened {
        Ok(r) => r,
        Err(e) => {
            respond(&mut up_out, &error_response(e.transfer_status(), own_message(me, &e), me), peer)?;
            return Err(e);
        }
    };
    if let Ok(s) = up_in.get_ref().try_clone() {
        replica.watch_sockets(vec![s]);
    }
    // A failure keeps what was received only for a client's pipeline.
    let keep_on_failure = matches!(stage, Stage::Create | Stage::PipelineRecovery);
    let mut downstream = None;
    if let Some(next) = op.downstream.first() {
        let failed = match setup_downstream(ctx, &op, &replica) {
            Ok((d, resp)) if resp.status == TransferStatus::Success as i32 => {
                downstream = Some(d);
                None
            }
            Ok((_, resp)) => {
                let bad = if resp.first_bad_node.is_empty() { next.transfer_addr.clone() } else { resp.first_bad_node };
                let up = OpResponse { status: resp.status, message: resp.message.clone(), first_bad_node: bad.clone(), ..Default::default() };
                Some((up, DatanodeError::PeerRefused { peer: bad, message: resp.message }))
            }
            Err(e) => {
                let msg = format!("datanode {me}: cannot set up the pipeline to {}: {e}", next.transfer_addr);
                Some((error_response(TransferStatus::Error, msg, &next.transfer_addr), e))
            }
        };
        if let Some((up, e)) = failed {
            if stage == Stage::PipelineRecovery {
                drop(replica);
            } else {
                replica.abort();
            }
            respond(&mut up_out, &up, peer)?;
            return Err(e);
        }
    }
    respond(&mut up_out, &OpResponse { status: TransferStatus::Success as i32, ..Default::default() }, peer)?;
    tracing::debug!(block_id, peer, downstream = op.downstream.len(), ?stage, from = replica.len(), "receiving a block");

    let (tx, rx) = mpsc::channel();
    let (mut down_out, down_in, down_addr, down_sock) = match downstream {
        Some(d) => {
            let sock = d.output.get_ref().try_clone().ok();
            (Some(d.output), Some(d.input), d.addr, sock)
        }
        None => (None, None, String::new(), None),
    };
    let up_peer = peer.to_string();
    let forward_to = down_addr.clone();
    let responder = std::thread::Builder::new()
        .name(format!("responder-blk_{block_id}"))
        .spawn(move || respond_loop(rx, up_out, down_in, &down_addr, &up_peer))
        .map_err(|e| DatanodeError::io(format!("responder thread for block {block_id}"), e))?;

    let finalize = stage != Stage::TransferRbw;
    let mut slot = Some(replica);
    let down = down_out.as_mut().map(|out| (out, forward_to.as_str()));
    let result = receive_packets(ctx, peer, &mut up_in, down, &mut slot, finalize, &tx);
    if let Some(r) = slot.take() {
        if result.is_err() && !keep_on_failure {
            r.abort();
        } else {
            // Stays in rbw with what it holds, for recovery.
            drop(r);
        }
    }
    drop(tx);
    let _ = responder.join();
    if let Some(s) = down_sock {
        // Ends the downstream's wait for more packets after a failure.
        let _ = s.shutdown(Shutdown::Both);
    }
    result
}

/// Connects to the first downstream node and forwards the request with the
/// rest of the pipeline (the socket is registered with the replica, so a
/// recovery can stop this writer while it waits).
fn setup_downstream(
    ctx: &TransferContext,
    op: &OpWriteBlock,
    replica: &RbwReplica,
) -> Result<(Downstream, OpResponse), DatanodeError> {
    let addr = op.downstream.first().map(|d| d.transfer_addr.clone()).unwrap_or_default();
    let stream = connect(&addr, ctx.socket_timeout)?;
    let wait = downstream_timeout(ctx.socket_timeout, op.downstream.len());
    stream
        .set_read_timeout(Some(wait))
        .and_then(|_| stream.set_write_timeout(Some(wait)))
        .map_err(|e| DatanodeError::transfer(&addr, e.into()))?;
    if let Ok(s) = stream.try_clone() {
        replica.watch_sockets(vec![s]);
    }
    let (mut input, mut output) = split(stream).map_err(|e| DatanodeError::transfer(&addr, e.into()))?;
    let mut fwd = op.clone();
    fwd.downstream.remove(0);
    let resp = request(&mut input, &mut output, &addr, Op::WriteBlock(fwd))?;
    Ok((Downstream { addr, input, output }, resp))
}

/// Receives packets into the replica in `slot` until the last packet
/// (finalized and reported when `finalize`, else left in rbw) or an error.
/// A replica that must not survive is removed here, before its ack.
fn receive_packets(
    ctx: &TransferContext,
    peer: &str,
    up_in: &mut BufReader<TcpStream>,
    mut down_out: Option<(&mut BufWriter<TcpStream>, &str)>,
    slot: &mut Option<RbwReplica>,
    finalize: bool,
    tx: &mpsc::Sender<AckItem>,
) -> Result<(), DatanodeError> {
    let me = ctx.self_addr.as_str();
    let Some((block_id, bpc)) = slot.as_ref().map(|r| (r.block_id(), r.bytes_per_checksum())) else { return Ok(()) };
    let queue = |seqno, status, message: String, downstream, last| {
        let _ = tx.send(AckItem { seqno, status, message, downstream, last });
    };
    let own_error = |seqno, e: DatanodeError| {
        queue(seqno, e.transfer_status(), own_message(me, &e), DownstreamSlot::None, true);
        Err(e)
    };
    loop {
        let pkt = read_packet(up_in, bpc).map_err(|e| DatanodeError::transfer(peer, e))?;
        let h = pkt.header;
        let Some(r) = slot.as_mut() else { return Ok(()) };
        if is_heartbeat(&h) {
            if h.data_len > 0 || h.last_packet {
                let message = format!(
                    "heartbeat packet with {} data bytes{}: a heartbeat carries no data and never ends a block",
                    h.data_len,
                    if h.last_packet { " marked as the last packet" } else { "" }
                );
                return own_error(h.seqno, DatanodeError::BadPacket { block_id, status: TransferStatus::ErrorInvalid, message });
            }
            let (down, forward_failed) = forward(down_out.as_mut(), &pkt, block_id);
            if let Some(e) = forward_failed {
                queue(h.seqno, TransferStatus::Success, String::new(), down, true);
                return Err(e);
            }
            queue(h.seqno, TransferStatus::Success, String::new(), down, false);
            continue;
        }
        // Data continues the replica; the last packet ends it where the
        // sender's block ends (never finalize a replica of another length).
        if (h.data_len > 0 || h.last_packet) && h.offset_in_block != r.len() {
            let message = format!("packet {} starts at offset {}, expected {}", h.seqno, h.offset_in_block, r.len());
            return own_error(h.seqno, DatanodeError::BadPacket { block_id, status: TransferStatus::ErrorInvalid, message });
        }
        if let Err(chunk) = verify_checksums(&pkt.data, &pkt.checksums, bpc) {
            // Abort before acking, so no replica survives the error.
            if let Some(r) = slot.take() {
                r.abort();
            }
            let message = format!(
                "checksum error in packet {} (chunk {chunk}, block offset {}) from {peer}",
                h.seqno,
                h.offset_in_block + chunk as u64 * bpc as u64
            );
            return own_error(h.seqno, DatanodeError::BadPacket { block_id, status: TransferStatus::ErrorChecksum, message });
        }
        let (down, forward_failed) = forward(down_out.as_mut(), &pkt, block_id);
        if let Err(e) = r.append(&pkt.data, &pkt.checksums) {
            // A full disk or a failing one: what was written is not trusted.
            if let Some(r) = slot.take() {
                r.abort();
            }
            return own_error(h.seqno, e);
        }
        if let Some(e) = forward_failed {
            queue(h.seqno, TransferStatus::Success, String::new(), down, true);
            return Err(e);
        }
        if h.last_packet {
            let Some(r) = slot.take() else { return Ok(()) };
            if !finalize {
                tracing::debug!(block_id, len = r.len(), "replica kept in rbw for the recovery that follows");
                drop(r);
                queue(h.seqno, TransferStatus::Success, String::new(), down, true);
                return Ok(());
            }
            let report = match r.finalize() {
                Ok(rep) => rep,
                Err(e) => return own_error(h.seqno, e),
            };
            if let Err(e) = ctx.sink.block_received(report) {
                let message = format!("datanode {me}: replica finalized but the namenode was not told: {e}");
                queue(h.seqno, TransferStatus::Error, message, down, true);
                return Err(e);
            }
            tracing::debug!(block_id, len = report.num_bytes, "block received");
            queue(h.seqno, TransferStatus::Success, String::new(), down, true);
            return Ok(());
        }
        queue(h.seqno, TransferStatus::Success, String::new(), down, false);
    }
}

/// Forwards `pkt` to the downstream node, if any: what the responder must
/// do for it downstream, and the error when forwarding failed.
fn forward(
    down_out: Option<&mut (&mut BufWriter<TcpStream>, &str)>,
    pkt: &Packet,
    block_id: u64,
) -> (DownstreamSlot, Option<DatanodeError>) {
    let Some((out, addr)) = down_out else { return (DownstreamSlot::None, None) };
    let h = &pkt.header;
    match write_packet(out, h, &pkt.checksums, &pkt.data).and_then(|_| Ok(out.flush()?)) {
        Ok(()) => (DownstreamSlot::Ack, None),
        Err(e) => {
            let what = if is_heartbeat(h) { "a heartbeat".to_string() } else { format!("packet {}", h.seqno) };
            let failed = DatanodeError::PeerRefused {
                peer: addr.to_string(),
                message: format!("block {block_id}: forwarding {what}: {e}"),
            };
            (DownstreamSlot::Failed(e.to_string()), Some(failed))
        }
    }
}

/// Sends one ack upstream per queued packet, in order, each after the
/// downstream's ack for the same packet.
fn respond_loop(
    rx: mpsc::Receiver<AckItem>,
    mut up_out: BufWriter<TcpStream>,
    mut down_in: Option<BufReader<TcpStream>>,
    down_addr: &str,
    up_peer: &str,
) {
    let mut down_broken: Option<String> = None;
    for item in rx {
        let mut statuses = vec![item.status as i32];
        let mut message = item.message;
        let downstream_failure = |why: String, message: &mut String, statuses: &mut Vec<i32>| {
            statuses.push(TransferStatus::Error as i32);
            if message.is_empty() {
                *message = format!("downstream {down_addr}: {why}");
            }
        };
        match (&item.downstream, down_in.as_mut()) {
            (DownstreamSlot::Failed(why), _) => downstream_failure(why.clone(), &mut message, &mut statuses),
            (DownstreamSlot::Ack, Some(d)) => match &down_broken {
                Some(why) => downstream_failure(why.clone(), &mut message, &mut statuses),
                None => match read_message::<_, PipelineAck>(d) {
                    Ok(ack) if ack.seqno == item.seqno => {
                        statuses.extend(ack.statuses);
                        if message.is_empty() {
                            message = ack.message;
                        }
                    }
                    Ok(ack) => {
                        let why = format!("acked packet {} while {} was expected", ack.seqno, item.seqno);
                        down_broken = Some(why.clone());
                        downstream_failure(why, &mut message, &mut statuses);
                    }
                    Err(e) => {
                        down_broken = Some(e.to_string());
                        downstream_failure(e.to_string(), &mut message, &mut statuses);
                    }
                },
            },
            _ => {}
        }
        let ack = PipelineAck { seqno: item.seqno, statuses, message };
        if let Err(e) = write_message(&mut up_out, &ack).and_then(|_| Ok(up_out.flush()?)) {
            tracing::debug!(peer = up_peer, "cannot send ack {}: {e}", item.seqno);
            return;
        }
        if item.last {
            return;
        }
    }
}
