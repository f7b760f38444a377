//! Cutting a byte stream into packets and blocks.
//!
//! [`PacketAssembler`] holds the bytes of the packet being filled and knows
//! where packet and block boundaries fall: a packet holds at most
//! `packet_size` bytes (a multiple of bytes-per-checksum) and never crosses
//! the end of a block, so every packet but the last data packet of a block
//! starts and ends on a checksum-chunk boundary.

use bytes::{Bytes, BytesMut};
use tusk_proto::dfs::PacketHeader;
use tusk_proto::transfer::compute_checksums;

/// A packet ready for the wire. Cloning is cheap (shared buffers), so the
/// pipeline can keep unacknowledged packets for a later resend.
#[derive(Debug, Clone)]
pub(crate) struct OutPacket {
    pub(crate) header: PacketHeader,
    /// One big-endian CRC32C per chunk of `data`.
    pub(crate) checksums: Bytes,
    pub(crate) data: Bytes,
}

impl OutPacket {
    fn data(seqno: u64, offset_in_block: u64, data: Bytes, bytes_per_checksum: u32) -> OutPacket {
        let mut sums = Vec::with_capacity(tusk_proto::transfer::chunk_count(data.len(), bytes_per_checksum) * 4);
        compute_checksums(&data, bytes_per_checksum, &mut sums);
        OutPacket {
            header: PacketHeader { seqno, offset_in_block, last_packet: false, data_len: data.len() as u32 },
            checksums: Bytes::from(sums),
            data,
        }
    }

    fn last(seqno: u64, offset_in_block: u64) -> OutPacket {
        OutPacket {
            header: PacketHeader { seqno, offset_in_block, last_packet: true, data_len: 0 },
            checksums: Bytes::new(),
            data: Bytes::new(),
        }
    }
}

/// Fills packets from written bytes and numbers them within the block.
#[derive(Debug)]
pub(crate) struct PacketAssembler {
    block_size: u64,
    packet_size: usize,
    bytes_per_checksum: u32,
    /// Bytes of the packet being filled.
    buf: BytesMut,
    /// Bytes of the current block already taken as packets.
    block_pos: u64,
    next_seqno: u64,
}

impl PacketAssembler {
    /// `packet_size` is rounded down to whole checksum chunks (at least one).
    pub(crate) fn new(block_size: u64, packet_size: u32, bytes_per_checksum: u32) -> PacketAssembler {
        let bpc = bytes_per_checksum.max(1);
        let packet_size = ((packet_size / bpc).max(1) * bpc) as usize;
        PacketAssembler {
            block_size: block_size.max(1),
            packet_size,
            bytes_per_checksum: bpc,
            buf: BytesMut::with_capacity(packet_size),
            block_pos: 0,
            next_seqno: 0,
        }
    }

    /// Bytes the current packet can still take.
    fn room(&self) -> usize {
        let left_in_block = self.block_size - self.block_pos - self.buf.len() as u64;
        (self.packet_size - self.buf.len()).min(usize::try_from(left_in_block).unwrap_or(usize::MAX))
    }

    /// Copies as much of `data` as fits into the current packet; returns how
    /// many bytes were taken (0 when the packet is [`ready`](Self::ready)).
    pub(crate) fn fill(&mut self, data: &[u8]) -> usize {
        let n = self.room().min(data.len());
        if self.buf.capacity() - self.buf.len() < n {
            self.buf.reserve(self.packet_size - self.buf.len());
        }
        self.buf.extend_from_slice(&data[..n]);
        n
    }

    /// The current packet is full, or reaches the end of the block.
    pub(crate) fn ready(&self) -> bool {
        !self.buf.is_empty() && self.room() == 0
    }

    /// Takes the buffered bytes (full or not) as the block's next packet.
    pub(crate) fn take_packet(&mut self) -> Option<OutPacket> {
        if self.buf.is_empty() {
            return None;
        }
        let data = self.buf.split().freeze();
        let p = OutPacket::data(self.next_seqno, self.block_pos, data, self.bytes_per_checksum);
        self.next_seqno += 1;
        self.block_pos += p.data.len() as u64;
        Some(p)
    }

    /// Every byte of the block has been taken as packets.
    pub(crate) fn block_full(&self) -> bool {
        self.block_pos == self.block_size
    }

    /// Bytes of the current block taken as packets so far.
    pub(crate) fn block_pos(&self) -> u64 {
        self.block_pos
    }

    /// Ends the current block: returns its empty last packet and its length,
    /// and starts numbering the next block from zero. Call with nothing buffered.
    pub(crate) fn end_block(&mut self) -> (OutPacket, u64) {
        debug_assert!(self.buf.is_empty());
        let len = self.block_pos;
        let p = OutPacket::last(self.next_seqno, len);
        self.block_pos = 0;
        self.next_seqno = 0;
        (p, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tusk_proto::transfer::verify_checksums;

    const BPC: u32 = 512;
    const PACKET: u32 = 1024;
    const BLOCK: u64 = 1536;

    /// Drives an assembler the way the writer does, writing `total` bytes in
    /// `piece`-sized writes; returns the packets of each block.
    fn run(total: usize, piece: usize) -> Vec<Vec<OutPacket>> {
        let data: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
        let mut a = PacketAssembler::new(BLOCK, PACKET, BPC);
        let mut blocks = Vec::new();
        let mut cur: Vec<OutPacket> = Vec::new();
        for mut rest in data.chunks(piece.max(1)) {
            while !rest.is_empty() {
                let n = a.fill(rest);
                rest = &rest[n..];
                if a.ready() {
                    cur.push(a.take_packet().unwrap());
                }
                if a.block_full() {
                    cur.push(a.end_block().0);
                    blocks.push(std::mem::take(&mut cur));
                }
            }
        }
        // close(): flush and end the open block, if any.
        if let Some(p) = a.take_packet() {
            cur.push(p);
        }
        if !cur.is_empty() {
            cur.push(a.end_block().0);
            blocks.push(cur);
        }
        // Reassembled data must equal the input.
        let joined: Vec<u8> = blocks.iter().flatten().flat_map(|p| p.data.to_vec()).collect();
        assert_eq!(joined, data);
        blocks
    }

    fn shape(blocks: &[Vec<OutPacket>]) -> Vec<Vec<u32>> {
        blocks.iter().map(|b| b.iter().map(|p| p.header.data_len).collect()).collect()
    }

    #[test]
    fn blocks_split_at_the_boundary() {
        let b = BLOCK as usize;
        for piece in [1, 100, 512, 4096] {
            assert!(run(0, piece).is_empty(), "an empty file has no block");
            assert_eq!(shape(&run(1, piece)), vec![vec![1, 0]]);
            assert_eq!(shape(&run(b - 1, piece)), vec![vec![1024, 511, 0]]);
            assert_eq!(shape(&run(b, piece)), vec![vec![1024, 512, 0]]);
            assert_eq!(shape(&run(b + 1, piece)), vec![vec![1024, 512, 0], vec![1, 0]]);
            assert_eq!(shape(&run(2 * b + 1000, piece)), vec![vec![1024, 512, 0], vec![1024, 512, 0], vec![1000, 0]]);
        }
    }

    #[test]
    fn headers_number_and_place_every_packet() {
        for blk in run(BLOCK as usize * 2 + 700, 333) {
            let mut offset = 0;
            for (i, p) in blk.iter().enumerate() {
                assert_eq!(p.header.seqno, i as u64);
                assert_eq!(p.header.offset_in_block, offset);
                assert_eq!(p.header.last_packet, i == blk.len() - 1);
                assert_eq!(p.header.data_len as usize, p.data.len());
                if !p.header.last_packet && i + 2 < blk.len() {
                    assert_eq!(p.data.len() % BPC as usize, 0, "only the last data packet may be short");
                }
                offset += p.data.len() as u64;
            }
        }
    }

    #[test]
    fn each_chunk_carries_its_crc() {
        for blk in run(3000, 3000) {
            for p in blk {
                assert_eq!(p.checksums.len(), p.data.len().div_ceil(BPC as usize) * 4);
                assert_eq!(verify_checksums(&p.data, &p.checksums, BPC), Ok(()));
            }
        }
        let mut a = PacketAssembler::new(BLOCK, PACKET, BPC);
        a.fill(&[1, 2, 3]);
        let p = a.take_packet().unwrap();
        assert_eq!(&p.checksums[..], &crc32c::crc32c(&[1, 2, 3]).to_be_bytes());
    }

    #[test]
    fn odd_packet_sizes_round_down_to_chunks() {
        let mut a = PacketAssembler::new(1 << 20, 1000, 512);
        assert_eq!(a.fill(&[0u8; 4000]), 512);
        assert!(a.ready());
        let mut a = PacketAssembler::new(1 << 20, 100, 512);
        assert_eq!(a.fill(&[0u8; 4000]), 512);
    }
}
