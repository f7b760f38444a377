//! Serving a read: the chunk-aligned range covering the request, in packets
//! of up to 64 KiB carrying the checksums stored in the meta file (never
//! recomputed, so on-disk corruption reaches the client), then an empty
//! last packet.

use std::io::{BufWriter, Write};
use std::net::TcpStream;
use tusk_proto::dfs::{OpReadBlock, OpResponse, PacketHeader, TransferStatus};
use tusk_proto::transfer::{DEFAULT_PACKET_SIZE, write_packet};

use super::{TransferContext, error_response, respond};
use crate::error::DatanodeError;

pub(super) fn serve(
    ctx: &TransferContext,
    peer: &str,
    out: &mut BufWriter<TcpStream>,
    op: OpReadBlock,
) -> Result<(), DatanodeError> {
    let me = ctx.self_addr.as_str();
    let Some(block) = op.block else {
        let msg = "read request without a block".to_string();
        return respond(out, &error_response(TransferStatus::ErrorInvalid, msg, me), peer);
    };
    let block_id = block.block_id;
    let replica = match ctx.storage.open_replica(block_id, block.generation_stamp) {
        Ok(r) => r,
        Err(e) => {
            respond(out, &error_response(TransferStatus::ErrorInvalid, e.to_string(), me), peer)?;
            return Err(e);
        }
    };
    let len = replica.len();
    let end_wanted = op.offset.checked_add(op.length).filter(|&e| e <= len);
    let Some(end_wanted) = end_wanted else {
        let msg = format!(
            "block {block_id}: range offset {} length {} is beyond the replica's {len} bytes",
            op.offset, op.length
        );
        return respond(out, &error_response(TransferStatus::ErrorInvalid, msg, me), peer);
    };
    let bpc = replica.bytes_per_checksum() as u64;
    let chunk_offset = op.offset / bpc * bpc;
    let end = end_wanted.div_ceil(bpc).saturating_mul(bpc).min(len);
    let ok = OpResponse {
        status: TransferStatus::Success as i32,
        chunk_offset,
        bytes_per_checksum: bpc as u32,
        ..Default::default()
    };
    respond(out, &ok, peer)?;

    let packet_size = ((DEFAULT_PACKET_SIZE as u64 / bpc).max(1) * bpc) as usize;
    let (mut data, mut sums) = (Vec::with_capacity(packet_size), Vec::new());
    let mut seqno = 0u64;
    let mut pos = chunk_offset;
    let send_err = |e| DatanodeError::transfer(peer, e);
    while pos < end {
        let n = packet_size.min((end - pos) as usize);
        if let Err(e) = replica.read_chunks(pos, n, &mut data, &mut sums) {
            ctx.storage.mark_suspect(block_id);
            return Err(e);
        }
        let header = PacketHeader { seqno, offset_in_block: pos, last_packet: false, data_len: n as u32 };
        write_packet(out, &header, &sums, &data).map_err(send_err)?;
        seqno += 1;
        pos += n as u64;
    }
    let last = PacketHeader { seqno, offset_in_block: end, last_packet: true, data_len: 0 };
    write_packet(out, &last, &[], &[]).map_err(send_err)?;
    out.flush().map_err(|e| DatanodeError::transfer(peer, e.into()))?;
    tracing::debug!(block_id, peer, offset = op.offset, length = op.length, "block served");
    Ok(())
}
