//! Copying a local replica to other datanodes with the write protocol:
//! stage TRANSFER (re-replication ordered by the namenode: a whole
//! finalized replica) or TRANSFER_RBW (pipeline recovery: the first bytes of
//! the replica, under the new generation stamp, kept as rbw by the targets).

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;
use tusk_proto::dfs::op_request::Op;
use tusk_proto::dfs::op_write_block::Stage;
use tusk_proto::dfs::{
    DatanodeId, ExtendedBlock, OpWriteBlock, PacketHeader, PipelineAck, TransferStatus,
};
use tusk_proto::transfer::{DEFAULT_PACKET_SIZE, read_message, write_packet};

use super::{connect, request, split};
use crate::error::DatanodeError;
use crate::storage::{ReplicaReader, Storage};

/// Packets sent before waiting for the oldest ack.
const WINDOW: usize = 64;

/// What to send where.
pub(crate) struct PushJob<'a> {
    pub block_id: u64,
    /// The generation stamp the targets' replicas take.
    pub gen_stamp: u64,
    /// Bytes to send (from offset 0).
    pub len: u64,
    pub stage: Stage,
    pub targets: &'a [DatanodeId],
    /// `client_name` of the write request.
    pub sender: &'a str,
    pub timeout: Duration,
}

/// Sends the whole finalized replica of `block` through a pipeline of
/// `targets` (stage TRANSFER). A replica known bad is not sent; one that a
/// target refuses with a checksum error becomes a scanner suspect.
pub(crate) fn push_replica(
    storage: &Storage,
    block: &ExtendedBlock,
    targets: &[DatanodeId],
    sender_name: &str,
    timeout: Duration,
) -> Result<(), DatanodeError> {
    if targets.is_empty() {
        return Ok(());
    }
    let replica = storage.open_transfer_source(block.block_id, block.generation_stamp)?;
    let job = PushJob {
        block_id: block.block_id,
        gen_stamp: replica.gen_stamp(),
        len: replica.len(),
        stage: Stage::Transfer,
        targets,
        sender: sender_name,
        timeout,
    };
    let pushed = push(&replica, &job);
    match &pushed {
        Ok(()) => tracing::info!(block_id = block.block_id, targets = targets.len(), "replica transferred"),
        Err(DatanodeError::PeerChecksum { .. }) => storage.mark_suspect(block.block_id),
        Err(DatanodeError::Io { .. }) => storage.mark_suspect(block.block_id),
        Err(_) => {}
    }
    pushed
}

/// Streams the first `job.len` bytes of `replica` to `job.targets[0]`
/// (which forwards to the rest) and waits for every ack.
pub(crate) fn push(replica: &ReplicaReader, job: &PushJob<'_>) -> Result<(), DatanodeError> {
    let block_id = job.block_id;
    let Some(first) = job.targets.first() else { return Ok(()) };
    let addr = first.transfer_addr.as_str();
    let (mut input, mut output) =
        split(connect(addr, job.timeout)?).map_err(|e| DatanodeError::transfer(addr, e.into()))?;
    let op = OpWriteBlock {
        block: Some(ExtendedBlock { block_id, generation_stamp: job.gen_stamp, num_bytes: job.len }),
        downstream: job.targets[1..].to_vec(),
        client_name: job.sender.to_string(),
        stage: job.stage as i32,
        ..Default::default()
    };
    let resp = request(&mut input, &mut output, addr, Op::WriteBlock(op))?;
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
            let peer = job.targets.get(i).map(|t| t.transfer_addr.clone()).unwrap_or_else(|| addr.to_string());
            let message = format!("block {block_id}: {}", ack.message);
            if ack.statuses[i] == TransferStatus::ErrorChecksum as i32 {
                return Err(DatanodeError::PeerChecksum { peer, message });
            }
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
        let n = packet_size.min((job.len - pos) as usize);
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
    tracing::debug!(block_id, len = job.len, stage = ?job.stage, to = addr, "replica pushed");
    Ok(())
}
