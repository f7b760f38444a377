//! A test client of the data-transfer protocol, written with the async
//! framing (as the real client is).

use std::time::{Duration, Instant};
use tokio::net::TcpStream as AsyncStream;
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::dfs::op_request::Op;
use tusk_proto::dfs::op_write_block::Stage;
use tusk_proto::dfs::{
    DatanodeId, ExtendedBlock, OpReadBlock, OpRequest, OpResponse, OpWriteBlock, PacketHeader, PipelineAck,
    TransferStatus,
};
use tusk_proto::transfer::{
    compute_checksums, read_message_async, read_packet_async, verify_checksums, write_message_async,
    write_packet_async,
};

pub(crate) fn dn_id(addr: &str) -> DatanodeId {
    DatanodeId { datanode_uuid: addr.to_string(), transfer_addr: addr.to_string(), host: "127.0.0.1".into(), ..Default::default() }
}

pub(crate) fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

pub(crate) fn block(id: u64, gs: u64) -> Option<ExtendedBlock> {
    Some(ExtendedBlock { block_id: id, generation_stamp: gs, num_bytes: 0 })
}

pub(crate) async fn poll_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes `data` through the pipeline `nodes`; `corrupt` flips a byte of that
/// packet after its checksums were computed. Returns the setup response and
/// the acks received.
pub(crate) async fn write_block(pipeline: &[String], id: u64, data: &[u8], corrupt: Option<u64>) -> (OpResponse, Vec<PipelineAck>) {
    let stream = AsyncStream::connect(&pipeline[0]).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let op = OpWriteBlock {
        block: block(id, 1000),
        downstream: pipeline[1..].iter().map(|a| dn_id(a)).collect(),
        client_name: "DFSClient_test".into(),
        stage: Stage::Create as i32,
        recovery_length: 0,
    };
    let req = OpRequest { protocol_version: PROTOCOL_VERSION, op: Some(Op::WriteBlock(op)) };
    write_message_async(&mut wr, &req).await.unwrap();
    let resp: OpResponse = read_message_async(&mut rd).await.unwrap();
    if resp.status != TransferStatus::Success as i32 {
        return (resp, vec![]);
    }
    let chunks: Vec<Vec<u8>> = data.chunks(64 * 1024).map(|c| c.to_vec()).collect();
    let n_packets = chunks.len() as u64 + 1;
    let writer = tokio::spawn(async move {
        let mut offset = 0u64;
        for (seqno, chunk) in chunks.iter().enumerate() {
            let mut sums = Vec::new();
            compute_checksums(chunk, 512, &mut sums);
            let mut d = chunk.to_vec();
            if corrupt == Some(seqno as u64) {
                d[100] ^= 0x40;
            }
            let h = PacketHeader { seqno: seqno as u64, offset_in_block: offset, last_packet: false, data_len: d.len() as u32 };
            if write_packet_async(&mut wr, &h, &sums, &d).await.is_err() {
                return;
            }
            offset += d.len() as u64;
        }
        let h = PacketHeader { seqno: chunks.len() as u64, offset_in_block: offset, last_packet: true, data_len: 0 };
        let _ = write_packet_async(&mut wr, &h, &[], &[]).await;
        // Keep the write half open until the acks are read.
        std::future::pending::<()>().await;
    });
    let mut acks = Vec::new();
    while (acks.len() as u64) < n_packets {
        match read_message_async::<_, PipelineAck>(&mut rd).await {
            Ok(a) => {
                let bad = a.statuses.iter().any(|&s| s != TransferStatus::Success as i32);
                acks.push(a);
                if bad {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    writer.abort();
    (resp, acks)
}

pub(crate) async fn read_block(addr: &str, id: u64, offset: u64, length: u64) -> Result<Vec<u8>, String> {
    let mut s = AsyncStream::connect(addr).await.unwrap();
    let op = OpReadBlock { block: block(id, 1000), offset, length, client_name: "DFSClient_test".into() };
    let req = OpRequest { protocol_version: PROTOCOL_VERSION, op: Some(Op::ReadBlock(op)) };
    write_message_async(&mut s, &req).await.unwrap();
    let resp: OpResponse = read_message_async(&mut s).await.unwrap();
    if resp.status != TransferStatus::Success as i32 {
        return Err(format!("status {}: {}", resp.status, resp.message));
    }
    assert_eq!(resp.bytes_per_checksum, 512);
    assert_eq!(resp.chunk_offset, offset / 512 * 512);
    let mut got = Vec::new();
    let mut expect_offset = resp.chunk_offset;
    loop {
        let p = read_packet_async(&mut s, 512).await.map_err(|e| e.to_string())?;
        assert_eq!(p.header.offset_in_block, expect_offset);
        if p.header.last_packet {
            assert_eq!(p.header.data_len, 0);
            break;
        }
        verify_checksums(&p.data, &p.checksums, 512).map_err(|c| format!("checksum error in chunk {c}"))?;
        expect_offset += p.data.len() as u64;
        got.extend_from_slice(&p.data);
    }
    let skip = (offset - resp.chunk_offset) as usize;
    Ok(got[skip..skip + length as usize].to_vec())
}


/// A write request for [`open_pipeline`].
pub(crate) struct WriteOp<'a> {
    pub pipeline: &'a [String],
    pub block_id: u64,
    pub gen_stamp: u64,
    pub stage: Stage,
    pub recovery_length: u64,
}

impl WriteOp<'_> {
    pub(crate) fn create(pipeline: &[String], block_id: u64) -> WriteOp<'_> {
        WriteOp { pipeline, block_id, gen_stamp: 1000, stage: Stage::Create, recovery_length: 0 }
    }

    pub(crate) fn recovery(pipeline: &[String], block_id: u64, gen_stamp: u64, recovery_length: u64) -> WriteOp<'_> {
        WriteOp { pipeline, block_id, gen_stamp, stage: Stage::PipelineRecovery, recovery_length }
    }
}

/// An open write pipeline: packets go out in order, acks are read later.
pub(crate) struct Pipeline {
    rd: tokio::net::tcp::OwnedReadHalf,
    wr: tokio::net::tcp::OwnedWriteHalf,
    pub seqno: u64,
    pub offset: u64,
}

/// Sends the write request; the pipeline when it was accepted.
pub(crate) async fn open_pipeline(op: &WriteOp<'_>) -> (OpResponse, Option<Pipeline>) {
    let stream = AsyncStream::connect(&op.pipeline[0]).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let req = OpWriteBlock {
        block: block(op.block_id, op.gen_stamp),
        downstream: op.pipeline[1..].iter().map(|a| dn_id(a)).collect(),
        client_name: "DFSClient_test".into(),
        stage: op.stage as i32,
        recovery_length: op.recovery_length,
    };
    let req = OpRequest { protocol_version: PROTOCOL_VERSION, op: Some(Op::WriteBlock(req)) };
    write_message_async(&mut wr, &req).await.unwrap();
    let resp: OpResponse = read_message_async(&mut rd).await.unwrap();
    if resp.status != TransferStatus::Success as i32 {
        return (resp, None);
    }
    let offset = op.recovery_length;
    (resp, Some(Pipeline { rd, wr, seqno: 0, offset }))
}

impl Pipeline {
    /// Sends `data` in packets of up to 64 KiB from the current offset.
    pub(crate) async fn send(&mut self, data: &[u8]) {
        for chunk in data.chunks(64 * 1024) {
            let mut sums = Vec::new();
            compute_checksums(chunk, 512, &mut sums);
            let h = PacketHeader { seqno: self.seqno, offset_in_block: self.offset, last_packet: false, data_len: chunk.len() as u32 };
            write_packet_async(&mut self.wr, &h, &sums, chunk).await.unwrap();
            self.seqno += 1;
            self.offset += chunk.len() as u64;
        }
    }

    /// Sends a heartbeat packet (no data, no checksums, seqno unchanged).
    pub(crate) async fn heartbeat(&mut self) {
        let h = tusk_proto::transfer::heartbeat_header(self.offset);
        write_packet_async(&mut self.wr, &h, &[], &[]).await.unwrap();
    }

    /// Sends a raw packet header with `data` (checksums computed), for
    /// malformed packets; the seqno and offset are not advanced.
    pub(crate) async fn send_raw(&mut self, h: PacketHeader, data: &[u8]) {
        let mut sums = Vec::new();
        compute_checksums(data, 512, &mut sums);
        write_packet_async(&mut self.wr, &h, &sums, data).await.unwrap();
    }

    /// Sends the empty last packet.
    pub(crate) async fn finish(&mut self) {
        let h = PacketHeader { seqno: self.seqno, offset_in_block: self.offset, last_packet: true, data_len: 0 };
        write_packet_async(&mut self.wr, &h, &[], &[]).await.unwrap();
        self.seqno += 1;
    }

    /// Reads up to `n` acks (fewer after an error ack or a closed socket).
    pub(crate) async fn acks(&mut self, n: usize) -> Vec<PipelineAck> {
        let mut acks = Vec::new();
        while acks.len() < n {
            let read = tokio::time::timeout(Duration::from_secs(20), read_message_async::<_, PipelineAck>(&mut self.rd));
            match read.await {
                Ok(Ok(a)) => {
                    let bad = a.statuses.iter().any(|&s| s != TransferStatus::Success as i32);
                    acks.push(a);
                    if bad {
                        break;
                    }
                }
                _ => break,
            }
        }
        acks
    }
}

/// Sends one op and reads its single response.
pub(crate) async fn call(addr: &str, op: Op) -> OpResponse {
    let mut s = AsyncStream::connect(addr).await.unwrap();
    write_message_async(&mut s, &OpRequest { protocol_version: PROTOCOL_VERSION, op: Some(op) }).await.unwrap();
    read_message_async(&mut s).await.unwrap()
}

/// Asserts every ack is SUCCESS for `n_nodes`, seqnos from `first`.
pub(crate) fn assert_acks_ok(acks: &[PipelineAck], first: u64, n_nodes: usize) {
    for (i, a) in acks.iter().enumerate() {
        assert_eq!(a.seqno, first + i as u64, "{a:?}");
        assert_eq!(a.statuses, vec![TransferStatus::Success as i32; n_nodes], "{a:?}");
    }
}
