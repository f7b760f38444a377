//! Receiving a block (stage CREATE from a client, TRANSFER from a datanode):
//! pipeline setup, then per packet: verify checksums, forward downstream,
//! append to the replica, queue the seqno for the responder thread, which
//! sends acks upstream in order after merging the downstream's ack.

use std::io::{BufReader, BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::dfs::op_request::Op;
use tusk_proto::dfs::{OpRequest, OpResponse, OpWriteBlock, PipelineAck, TransferStatus};
use tusk_proto::transfer::{read_message, read_packet, verify_checksums, write_message, write_packet};

use super::{TransferContext, connect, error_response, respond, split};
use crate::error::DatanodeError;
use crate::storage::RbwReplica;

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
    let block_id = block.block_id;
    let replica = match ctx.storage.create_rbw(block_id, block.generation_stamp) {
        Ok(r) => r,
        Err(e) => {
            respond(&mut up_out, &error_response(e.transfer_status(), e.to_string(), me), peer)?;
            return Err(e);
        }
    };
    let mut downstream = None;
    if let Some(next) = op.downstream.first() {
        match setup_downstream(ctx, &op) {
            Ok((d, resp)) if resp.status == TransferStatus::Success as i32 => downstream = Some(d),
            Ok((_, resp)) => {
                let bad = if resp.first_bad_node.is_empty() { next.transfer_addr.clone() } else { resp.first_bad_node };
                let up = OpResponse { status: resp.status, message: resp.message.clone(), first_bad_node: bad.clone(), ..Default::default() };
                respond(&mut up_out, &up, peer)?;
                return Err(DatanodeError::PeerRefused { peer: bad, message: resp.message });
            }
            Err(e) => {
                let msg = format!("cannot set up the pipeline to {}: {e}", next.transfer_addr);
                respond(&mut up_out, &error_response(TransferStatus::Error, msg, &next.transfer_addr), peer)?;
                return Err(e);
            }
        }
    }
    respond(&mut up_out, &OpResponse { status: TransferStatus::Success as i32, ..Default::default() }, peer)?;
    tracing::debug!(block_id, peer, downstream = op.downstream.len(), stage = op.stage, "receiving a block");

    let (tx, rx) = mpsc::channel();
    let (mut down_out, down_in, down_addr, down_sock) = match downstream {
        Some(d) => {
            let sock = d.output.get_ref().try_clone().ok();
            (Some(d.output), Some(d.input), d.addr, sock)
        }
        None => (None, None, String::new(), None),
    };
    let up_peer = peer.to_string();
    let responder = std::thread::Builder::new()
        .name(format!("responder-blk_{block_id}"))
        .spawn(move || respond_loop(rx, up_out, down_in, &down_addr, &up_peer))
        .map_err(|e| DatanodeError::io(format!("responder thread for block {block_id}"), e))?;

    let result = receive_packets(ctx, peer, &mut up_in, down_out.as_mut(), replica, &tx);
    drop(tx);
    let _ = responder.join();
    if let Some(s) = down_sock {
        // Ends the downstream's wait for more packets after a failure.
        let _ = s.shutdown(Shutdown::Both);
    }
    result
}

/// Connects to the first downstream node and forwards the request with the
/// rest of the pipeline.
fn setup_downstream(ctx: &TransferContext, op: &OpWriteBlock) -> Result<(Downstream, OpResponse), DatanodeError> {
    let addr = op.downstream.first().map(|d| d.transfer_addr.clone()).unwrap_or_default();
    let stream = connect(&addr, ctx.socket_timeout)?;
    let (mut input, mut output) = split(stream).map_err(|e| DatanodeError::transfer(&addr, e.into()))?;
    let mut fwd = op.clone();
    fwd.downstream.remove(0);
    let req = OpRequest { protocol_version: PROTOCOL_VERSION, op: Some(Op::WriteBlock(fwd)) };
    write_message(&mut output, &req).map_err(|e| DatanodeError::transfer(&addr, e))?;
    output.flush().map_err(|e| DatanodeError::transfer(&addr, e.into()))?;
    let resp: OpResponse = read_message(&mut input).map_err(|e| DatanodeError::transfer(&addr, e))?;
    Ok((Downstream { addr, input, output }, resp))
}

fn receive_packets(
    ctx: &TransferContext,
    peer: &str,
    up_in: &mut BufReader<TcpStream>,
    mut down_out: Option<&mut BufWriter<TcpStream>>,
    replica: RbwReplica,
    tx: &mpsc::Sender<AckItem>,
) -> Result<(), DatanodeError> {
    let block_id = replica.block_id();
    let bpc = replica.bytes_per_checksum();
    let mut replica = Some(replica);
    let queue = |seqno, status, message: String, downstream, last| {
        let _ = tx.send(AckItem { seqno, status, message, downstream, last });
    };
    let own_error = |seqno, e: DatanodeError| {
        queue(seqno, e.transfer_status(), e.to_string(), DownstreamSlot::None, true);
        Err(e)
    };
    loop {
        let pkt = read_packet(up_in, bpc).map_err(|e| DatanodeError::transfer(peer, e))?;
        let h = pkt.header;
        let Some(r) = replica.as_mut() else { return Ok(()) };
        // The empty end-of-block packet may carry any offset.
        if h.data_len > 0 && h.offset_in_block != r.len() {
            let message = format!("packet {} starts at offset {}, expected {}", h.seqno, h.offset_in_block, r.len());
            return own_error(h.seqno, DatanodeError::BadPacket { block_id, status: TransferStatus::ErrorInvalid, message });
        }
        if let Err(chunk) = verify_checksums(&pkt.data, &pkt.checksums, bpc) {
            // Abort before acking, so no replica survives the error.
            drop(replica.take());
            let message = format!(
                "checksum error in packet {} (chunk {chunk}, block offset {}) from {peer}",
                h.seqno,
                h.offset_in_block + chunk as u64 * bpc as u64
            );
            return own_error(h.seqno, DatanodeError::BadPacket { block_id, status: TransferStatus::ErrorChecksum, message });
        }
        let mut slot = DownstreamSlot::None;
        if let Some(out) = down_out.as_mut() {
            let sent = write_packet(out, &h, &pkt.checksums, &pkt.data).and_then(|_| Ok(out.flush()?));
            slot = match sent {
                Ok(()) => DownstreamSlot::Ack,
                Err(e) => DownstreamSlot::Failed(e.to_string()),
            };
        }
        let forward_failed = matches!(slot, DownstreamSlot::Failed(_));
        if let Err(e) = r.append(&pkt.data, &pkt.checksums) {
            return own_error(h.seqno, e);
        }
        if forward_failed {
            queue(h.seqno, TransferStatus::Success, String::new(), slot, true);
            return Err(DatanodeError::PeerRefused { peer: "downstream".into(), message: "forwarding failed".into() });
        }
        if h.last_packet {
            let Some(r) = replica.take() else { return Ok(()) };
            let report = match r.finalize() {
                Ok(rep) => rep,
                Err(e) => return own_error(h.seqno, e),
            };
            if let Err(e) = ctx.sink.block_received(report) {
                let message = format!("replica finalized but the namenode was not told: {e}");
                queue(h.seqno, TransferStatus::Error, message, slot, true);
                return Err(e);
            }
            tracing::debug!(block_id, len = report.num_bytes, "block received");
            queue(h.seqno, TransferStatus::Success, String::new(), slot, true);
            return Ok(());
        }
        queue(h.seqno, TransferStatus::Success, String::new(), slot, false);
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
