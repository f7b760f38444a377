//! Copying a local replica to other datanodes with the write protocol,
//! stage TRANSFER (re-replication ordered by the namenode).

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::dfs::op_request::Op;
use tusk_proto::dfs::op_write_block::Stage;
use tusk_proto::dfs::{
    DatanodeId, ExtendedBlock, OpRequest, OpResponse, OpWriteBlock, PacketHeader, PipelineAck, TransferStatus,
};
use tusk_proto::transfer::{DEFAULT_PACKET_SIZE, read_message, write_message, write_packet};

use super::{connect, split};
use crate::error::DatanodeError;
use crate::storage::Storage;

/// Packets sent before waiting for the oldest ack.
const WINDOW: usize = 64;

/// Sends the local replica of `block` through a pipeline of `targets`.
pub(crate) fn push_replica(
    storage: &Storage,
    block: &ExtendedBlock,
    targets: &[DatanodeId],
    sender_name: &str,
    timeout: Duration,
) -> Result<(), DatanodeError> {
    let block_id = block.block_id;
    let Some(first) = targets.first() else { return Ok(()) };
    let replica = storage.open_replica(block_id, block.generation_stamp)?;
    let addr = first.transfer_addr.as_str();
    let (mut input, mut output) =
        split(connect(addr, timeout)?).map_err(|e| DatanodeError::transfer(addr, e.into()))?;
    let frame = |e| DatanodeError::transfer(addr, e);
    let op = OpWriteBlock {
        block: Some(ExtendedBlock { block_id, generation_stamp: replica.gen_stamp(), num_bytes: replica.len() }),
        downstream: targets[1..].to_vec(),
        client_name: sender_name.to_string(),
        stage: Stage::Transfer as i32,
        ..Default::default()
    };
    write_message(&mut output, &OpRequest { protocol_version: PROTOCOL_VERSION, op: Some(Op::WriteBlock(op)) })
        .map_err(frame)?;
    output.flush().map_err(|e| frame(e.into()))?;
    let resp: OpResponse = read_message(&mut input).map_err(frame)?;
    if resp.status != TransferStatus::Success as i32 {
        let bad = if resp.first_bad_node.is_empty() { addr.to_string() } else { resp.first_bad_node };
        return Err(DatanodeError::PeerRefused { peer: bad, message: resp.message });
    }

    let mut check_ack = |expected: u64| -> Result<(), DatanodeError> {
        let ack: PipelineAck = read_message(&mut input).map_err(|e| DatanodeError::transfer(addr, e))?;
        if ack.seqno != expected {
            let message = format!("block {block_id}: ack for packet {} while {expected} was expected", ack.seqno);
            return Err(DatanodeError::PeerRefused { peer: addr.to_string(), message });
        }
        if let Some(i) = ack.statuses.iter().position(|&s| s != TransferStatus::Success as i32) {
            let peer = targets.get(i).map(|t| t.transfer_addr.clone()).unwrap_or_else(|| addr.to_string());
            let message = format!("block {block_id}: {}", ack.message);
            return Err(DatanodeError::PeerRefused { peer, message });
        }
        Ok(())
    };
    let bpc = replica.bytes_per_checksum() as usize;
    let packet_size = (DEFAULT_PACKET_SIZE as usize / bpc).max(1) * bpc;
    let (mut data, mut sums) = (Vec::new(), Vec::new());
    let mut in_flight = VecDeque::new();
    let mut seqno = 0u64;
    let mut pos = 0u64;
    loop {
        let n = packet_size.min((replica.len() - pos) as usize);
        let last = n == 0;
        if !last {
            replica.read_chunks(pos, n, &mut data, &mut sums)?;
        }
        let header = PacketHeader { seqno, offset_in_block: pos, last_packet: last, data_len: n as u32 };
        let (d, s) = if last { (&[][..], &[][..]) } else { (&data[..], &sums[..]) };
        write_packet(&mut output, &header, s, d).map_err(|e| DatanodeError::transfer(addr, e))?;
        output.flush().map_err(|e| DatanodeError::transfer(addr, e.into()))?;
        in_flight.push_back(seqno);
        if in_flight.len() >= WINDOW
            && let Some(s) = in_flight.pop_front()
        {
            check_ack(s)?;
        }
        if last {
            break;
        }
        seqno += 1;
        pos += n as u64;
    }
    while let Some(s) = in_flight.pop_front() {
        check_ack(s)?;
    }
    tracing::info!(block_id, targets = targets.len(), to = addr, "replica transferred");
    Ok(())
}
