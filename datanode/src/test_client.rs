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

