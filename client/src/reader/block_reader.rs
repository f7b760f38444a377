//! One verified read stream of a byte range of one block replica.

use bytes::Bytes;
use std::time::Duration;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tusk_proto::dfs::{ExtendedBlock, OpReadBlock, TransferStatus, op_request};
use tusk_proto::transfer::{read_packet_async, verify_checksums};

use crate::datanode_op::{request_op, status_name};

/// Why a replica could not deliver its bytes.
#[derive(Debug)]
pub(crate) enum ReplicaError {
    /// The data did not match its checksums; `offset` is the block offset
    /// of the first bad chunk.
    Checksum { offset: u64 },
    /// Connection, protocol or refusal; the text says which.
    Other(String),
}

impl std::fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplicaError::Checksum { offset } => write!(f, "checksum error at block offset {offset}"),
            ReplicaError::Other(m) => f.write_str(m),
        }
    }
}

/// Streams `[start, end)` of a block from one datanode, verifying every packet.
pub(crate) struct BlockReader {
    stream: BufReader<TcpStream>,
    bytes_per_checksum: u32,
    /// Block offset of the next byte the datanode will send.
    wire_pos: u64,
    /// Block offset of the next byte to hand out.
    next: u64,
    end: u64,
    io_timeout: Duration,
    finished: bool,
}

impl BlockReader {
    /// Connects to `addr` and asks for `[start, end)` of `block`.
    pub(crate) async fn open(
        addr: &str,
        block: &ExtendedBlock,
        start: u64,
        end: u64,
        client_name: &str,
        io_timeout: Duration,
    ) -> Result<BlockReader, ReplicaError> {
        let op = op_request::Op::ReadBlock(OpReadBlock {
            block: Some(ExtendedBlock { num_bytes: 0, ..*block }),
            offset: start,
            length: end.saturating_sub(start),
            client_name: client_name.to_string(),
        });
        let (stream, resp) = request_op(addr, op, io_timeout, io_timeout).await.map_err(ReplicaError::Other)?;
        if resp.status != TransferStatus::Success as i32 {
            let name = status_name(resp.status);
            return Err(ReplicaError::Other(format!("refused ({name}): {}", resp.message)));
        }
        if resp.chunk_offset > start || resp.bytes_per_checksum == 0 {
            return Err(ReplicaError::Other(format!(
                "bad read answer: chunk offset {} for offset {start}, {} bytes per checksum",
                resp.chunk_offset, resp.bytes_per_checksum
            )));
        }
        Ok(BlockReader {
            stream: BufReader::new(stream),
            bytes_per_checksum: resp.bytes_per_checksum,
            wire_pos: resp.chunk_offset,
            next: start,
            end,
            io_timeout,
            finished: start >= end,
        })
    }

    /// The next verified bytes of the range (never empty), or `None` once the
    /// whole range was handed out.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, ReplicaError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let packet = match timeout(self.io_timeout, read_packet_async(&mut self.stream, self.bytes_per_checksum)).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return Err(ReplicaError::Other(e.to_string())),
                Err(_) => return Err(ReplicaError::Other(format!("no data within {:?}", self.io_timeout))),
            };
            let h = &packet.header;
            if h.last_packet || h.data_len == 0 {
                if self.next < self.end {
                    return Err(ReplicaError::Other(format!(
                        "stream ended at block offset {} before {}",
                        self.next, self.end
                    )));
                }
                self.finished = true;
                return Ok(None);
            }
            if h.offset_in_block != self.wire_pos {
                return Err(ReplicaError::Other(format!(
                    "packet at block offset {} while expecting {}",
                    h.offset_in_block, self.wire_pos
                )));
            }
            if let Err(chunk) = verify_checksums(&packet.data, &packet.checksums, self.bytes_per_checksum) {
                let offset = self.wire_pos + chunk as u64 * u64::from(self.bytes_per_checksum);
                return Err(ReplicaError::Checksum { offset });
            }
            let pkt_start = self.wire_pos;
            self.wire_pos += packet.data.len() as u64;
            let Some((from, to)) = useful_part(pkt_start, packet.data.len() as u64, self.next, self.end) else {
                continue;
            };
            self.next = pkt_start + to as u64;
            let chunk = packet.data.slice(from..to);
            if self.next >= self.end {
                // Done: the trailing empty packet is not awaited; hanging up
                // is fine for the datanode.
                self.finished = true;
            }
            return Ok(Some(chunk));
        }
    }
}

/// The part of a packet covering block bytes `[pkt_start, pkt_start+len)`
/// that lies in `[next, end)`, as indices into the packet data.
pub(crate) fn useful_part(pkt_start: u64, len: u64, next: u64, end: u64) -> Option<(usize, usize)> {
    let lo = next.max(pkt_start);
    let hi = end.min(pkt_start + len);
    if lo >= hi {
        return None;
    }
    Some(((lo - pkt_start) as usize, (hi - pkt_start) as usize))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tusk_proto::dfs::{OpRequest, OpResponse, PacketHeader};
    use tusk_proto::transfer::{compute_checksums, read_message_async, write_message_async, write_packet_async};

    #[test]
    fn the_useful_part_trims_both_ends() {
        assert_eq!(useful_part(0, 1024, 100, 2000), Some((100, 1024)));
        assert_eq!(useful_part(1024, 1024, 100, 1500), Some((0, 476)));
        assert_eq!(useful_part(0, 512, 512, 1000), None);
        assert_eq!(useful_part(512, 512, 600, 700), Some((88, 188)));
    }

    /// Serves `data` (a whole replica) like a datanode, flipping a bit when `corrupt`.
    pub(crate) async fn fake_datanode(data: Vec<u8>, corrupt: bool) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let req: OpRequest = read_message_async(&mut s).await.unwrap();
            let Some(op_request::Op::ReadBlock(op)) = req.op else { panic!("not a read") };
            let start = op.offset / 512 * 512;
            let end = ((op.offset + op.length).div_ceil(512) * 512).min(data.len() as u64);
            let resp = OpResponse { chunk_offset: start, bytes_per_checksum: 512, ..Default::default() };
            write_message_async(&mut s, &resp).await.unwrap();
            let mut pos = start;
            let mut seqno = 0;
            while pos < end {
                let n = (end - pos).min(1024);
                let mut d = data[pos as usize..(pos + n) as usize].to_vec();
                let mut sums = Vec::new();
                compute_checksums(&d, 512, &mut sums);
                if corrupt {
                    d[0] ^= 1;
                }
                let h = PacketHeader { seqno, offset_in_block: pos, last_packet: false, data_len: n as u32 };
                write_packet_async(&mut s, &h, &sums, &d).await.unwrap();
                pos += n;
                seqno += 1;
            }
            let h = PacketHeader { seqno, offset_in_block: pos, last_packet: true, data_len: 0 };
            let _ = write_packet_async(&mut s, &h, &[], &[]).await;
        });
        addr
    }

    #[tokio::test]
    async fn reads_exactly_the_asked_range() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        for (start, end) in [(0, 5000), (700, 2100), (1024, 1025), (4999, 5000)] {
            let addr = fake_datanode(data.clone(), false).await;
            let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 5000 };
            let mut r = BlockReader::open(&addr, &block, start, end, "c", Duration::from_secs(10)).await.unwrap();
            let mut got = Vec::new();
            while let Some(c) = r.next_chunk().await.unwrap() {
                assert!(!c.is_empty());
                got.extend_from_slice(&c);
            }
            assert_eq!(got, &data[start as usize..end as usize], "range {start}..{end}");
        }
    }

    #[tokio::test]
    async fn corrupt_data_is_a_checksum_error() {
        let addr = fake_datanode(vec![5u8; 3000], true).await;
        let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 3000 };
        let mut r = BlockReader::open(&addr, &block, 0, 3000, "c", Duration::from_secs(10)).await.unwrap();
        assert!(matches!(r.next_chunk().await, Err(ReplicaError::Checksum { offset: 0 })));
    }
}
