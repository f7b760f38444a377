//! Framing of the data-transfer protocol: how block bytes move between
//! clients and datanodes over plain TCP.
//!
//! A connection starts with one [`OpRequest`](crate::dfs::OpRequest) frame and
//! one [`OpResponse`](crate::dfs::OpResponse) frame back. Then:
//!
//! - **write**: the writer sends packets; each receiver stores a packet,
//!   forwards it downstream and answers with a
//!   [`PipelineAck`](crate::dfs::PipelineAck) carrying one status per node
//!   of the rest of the pipeline. The last packet is empty with
//!   `last_packet` set; its ack means every node finalized the replica.
//!   A writer with nothing to send keeps the pipeline alive with heartbeat
//!   packets ([`HEARTBEAT_SEQNO`]), acked like any other packet.
//! - **read**: the datanode sends packets for the chunk-aligned range and an
//!   empty last packet.
//!
//! Message frame: `u32 length (big endian) | protobuf message`.
//! Packet: `u32 header length | PacketHeader | CRC32C per chunk (4 bytes
//! each, big endian) | data`. The number of checksums follows from
//! `data_len` and the block's bytes-per-checksum.
//!
//! Both a blocking (std::io) and an async (tokio) flavour are provided: the
//! datanode serves each connection on its own thread, clients are async.

use bytes::{Bytes, BytesMut};
use prost::Message;
use std::io::{Read, Write};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::dfs::PacketHeader;

/// Bytes covered by one CRC32C checksum.
pub const DEFAULT_BYTES_PER_CHECKSUM: u32 = 512;
/// Data bytes per packet.
pub const DEFAULT_PACKET_SIZE: u32 = 64 * 1024;
/// Largest message frame accepted (headers are small; this bounds a bad peer).
pub const MAX_MESSAGE_LEN: usize = 1 << 20;
/// Largest packet payload accepted.
pub const MAX_PACKET_DATA: usize = 16 << 20;
/// Size of one checksum on the wire and in meta files.
pub const CHECKSUM_SIZE: usize = 4;
/// Sequence number of a heartbeat packet (HDFS `HEART_BEAT_SEQNO`, -1 there).
///
/// A writer whose pipeline has been idle for half the socket timeout sends
/// `PacketHeader { seqno: HEARTBEAT_SEQNO, offset_in_block: <bytes sent so
/// far>, last_packet: false, data_len: 0 }` with no checksums, so the
/// datanodes' reads do not time out while the application has nothing to
/// write. Every datanode forwards it downstream, writes nothing, and acks it
/// in order with the other packets (`PipelineAck.seqno == HEARTBEAT_SEQNO`).
/// It is never resent by pipeline recovery and never counts as acknowledged
/// data.
pub const HEARTBEAT_SEQNO: u64 = u64::MAX;

/// The header of a heartbeat packet sent when `offset_in_block` bytes of the
/// block have been sent (see [`HEARTBEAT_SEQNO`]).
pub fn heartbeat_header(offset_in_block: u64) -> PacketHeader {
    PacketHeader { seqno: HEARTBEAT_SEQNO, offset_in_block, last_packet: false, data_len: 0 }
}

/// True for a heartbeat packet's header (see [`HEARTBEAT_SEQNO`]).
pub fn is_heartbeat(header: &PacketHeader) -> bool {
    header.seqno == HEARTBEAT_SEQNO
}

/// What can go wrong while reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("data transfer I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("data transfer: undecodable frame: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("data transfer: frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
}

/// A packet as received.
#[derive(Debug, Clone)]
pub struct Packet {
    pub header: PacketHeader,
    /// Concatenated 4-byte checksums, one per chunk of `data`.
    pub checksums: Bytes,
    pub data: Bytes,
}

/// Number of checksum chunks covering `len` bytes.
pub fn chunk_count(len: usize, bytes_per_checksum: u32) -> usize {
    len.div_ceil(bytes_per_checksum as usize)
}

/// CRC32C of each `bytes_per_checksum` chunk of `data`, appended to `out`.
pub fn compute_checksums(data: &[u8], bytes_per_checksum: u32, out: &mut Vec<u8>) {
    for chunk in data.chunks(bytes_per_checksum as usize) {
        out.extend_from_slice(&crc32c::crc32c(chunk).to_be_bytes());
    }
}

/// Verifies `data` against `checksums`; on a mismatch returns the index of the
/// first bad chunk.
pub fn verify_checksums(data: &[u8], checksums: &[u8], bytes_per_checksum: u32) -> Result<(), usize> {
    let n = chunk_count(data.len(), bytes_per_checksum);
    if checksums.len() != n * CHECKSUM_SIZE {
        return Err(0);
    }
    for (i, chunk) in data.chunks(bytes_per_checksum as usize).enumerate() {
        let want = &checksums[i * CHECKSUM_SIZE..(i + 1) * CHECKSUM_SIZE];
        if crc32c::crc32c(chunk).to_be_bytes() != want {
            return Err(i);
        }
    }
    Ok(())
}

fn check_len(len: usize, max: usize) -> Result<(), FrameError> {
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(())
}

fn encode_message<M: Message>(msg: &M) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    // Encoding into a Vec cannot run out of room.
    let _ = msg.encode(&mut buf);
    buf
}

fn encode_packet_prefix(header: &PacketHeader, checksums: &[u8]) -> Vec<u8> {
    let hlen = header.encoded_len();
    let mut buf = Vec::with_capacity(4 + hlen + checksums.len());
    buf.extend_from_slice(&(hlen as u32).to_be_bytes());
    let _ = header.encode(&mut buf);
    buf.extend_from_slice(checksums);
    buf
}

// ---------------------------------------------------------------------------
// Blocking flavour
// ---------------------------------------------------------------------------

/// Writes one message frame.
pub fn write_message<W: Write, M: Message>(w: &mut W, msg: &M) -> Result<(), FrameError> {
    w.write_all(&encode_message(msg))?;
    Ok(())
}

/// Reads one message frame.
pub fn read_message<R: Read, M: Message + Default>(r: &mut R) -> Result<M, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    check_len(len, MAX_MESSAGE_LEN)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(M::decode(&buf[..])?)
}

/// Writes one packet.
pub fn write_packet<W: Write>(
    w: &mut W,
    header: &PacketHeader,
    checksums: &[u8],
    data: &[u8],
) -> Result<(), FrameError> {
    w.write_all(&encode_packet_prefix(header, checksums))?;
    w.write_all(data)?;
    Ok(())
}

/// Reads one packet whose chunks are `bytes_per_checksum` long.
pub fn read_packet<R: Read>(r: &mut R, bytes_per_checksum: u32) -> Result<Packet, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let hlen = u32::from_be_bytes(len) as usize;
    check_len(hlen, MAX_MESSAGE_LEN)?;
    let mut hbuf = vec![0u8; hlen];
    r.read_exact(&mut hbuf)?;
    let header = PacketHeader::decode(&hbuf[..])?;
    let data_len = header.data_len as usize;
    check_len(data_len, MAX_PACKET_DATA)?;
    let sums_len = chunk_count(data_len, bytes_per_checksum) * CHECKSUM_SIZE;
    let mut body = BytesMut::zeroed(sums_len + data_len);
    r.read_exact(&mut body)?;
    let mut body = body.freeze();
    let data = body.split_off(sums_len);
    Ok(Packet { header, checksums: body, data })
}

// ---------------------------------------------------------------------------
// Async flavour
// ---------------------------------------------------------------------------

/// Writes one message frame.
pub async fn write_message_async<W: AsyncWrite + Unpin, M: Message>(
    w: &mut W,
    msg: &M,
) -> Result<(), FrameError> {
    w.write_all(&encode_message(msg)).await?;
    Ok(())
}

/// Reads one message frame.
pub async fn read_message_async<R: AsyncRead + Unpin, M: Message + Default>(
    r: &mut R,
) -> Result<M, FrameError> {
    let len = r.read_u32().await? as usize;
    check_len(len, MAX_MESSAGE_LEN)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(M::decode(&buf[..])?)
}

/// Writes one packet.
pub async fn write_packet_async<W: AsyncWrite + Unpin>(
    w: &mut W,
    header: &PacketHeader,
    checksums: &[u8],
    data: &[u8],
) -> Result<(), FrameError> {
    w.write_all(&encode_packet_prefix(header, checksums)).await?;
    w.write_all(data).await?;
    Ok(())
}

/// Reads one packet whose chunks are `bytes_per_checksum` long.
pub async fn read_packet_async<R: AsyncRead + Unpin>(
    r: &mut R,
    bytes_per_checksum: u32,
) -> Result<Packet, FrameError> {
    let hlen = r.read_u32().await? as usize;
    check_len(hlen, MAX_MESSAGE_LEN)?;
    let mut hbuf = vec![0u8; hlen];
    r.read_exact(&mut hbuf).await?;
    let header = PacketHeader::decode(&hbuf[..])?;
    let data_len = header.data_len as usize;
    check_len(data_len, MAX_PACKET_DATA)?;
    let sums_len = chunk_count(data_len, bytes_per_checksum) * CHECKSUM_SIZE;
    let mut body = BytesMut::zeroed(sums_len + data_len);
    r.read_exact(&mut body).await?;
    let mut body = body.freeze();
    let data = body.split_off(sums_len);
    Ok(Packet { header, checksums: body, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dfs::PipelineAck;

    #[test]
    fn checksums_detect_a_flipped_bit() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        let mut sums = Vec::new();
        compute_checksums(&data, 512, &mut sums);
        assert_eq!(sums.len(), 4 * 4);
        assert_eq!(verify_checksums(&data, &sums, 512), Ok(()));
        let mut bad = data.clone();
        bad[1500] ^= 0x10;
        assert_eq!(verify_checksums(&bad, &sums, 512), Err(2));
        assert_eq!(verify_checksums(&data, &sums[..8], 512), Err(0));
    }

    #[test]
    fn packets_and_messages_round_trip_blocking() {
        let data = vec![7u8; 1300];
        let mut sums = Vec::new();
        compute_checksums(&data, 512, &mut sums);
        let header = PacketHeader { seqno: 9, offset_in_block: 1024, last_packet: false, data_len: 1300 };
        let mut wire = Vec::new();
        write_packet(&mut wire, &header, &sums, &data).unwrap();
        let ack = PipelineAck { seqno: 9, statuses: vec![0, 0], message: String::new() };
        write_message(&mut wire, &ack).unwrap();
        let mut r = &wire[..];
        let p = read_packet(&mut r, 512).unwrap();
        assert_eq!(p.header, header);
        assert_eq!(&p.data[..], &data[..]);
        assert_eq!(&p.checksums[..], &sums[..]);
        let back: PipelineAck = read_message(&mut r).unwrap();
        assert_eq!(back, ack);
    }

    #[tokio::test]
    async fn a_heartbeat_is_an_empty_packet_with_the_reserved_seqno() {
        let header = heartbeat_header(70_000);
        assert!(is_heartbeat(&header));
        assert!(!header.last_packet && header.data_len == 0);
        assert!(!is_heartbeat(&PacketHeader { seqno: 3, ..header }));
        let mut wire = Vec::new();
        write_packet_async(&mut wire, &header, &[], &[]).await.unwrap();
        let mut r = &wire[..];
        let p = read_packet_async(&mut r, 512).await.unwrap();
        assert_eq!(p.header, header);
        assert!(p.checksums.is_empty() && p.data.is_empty());
        assert!(r.is_empty(), "nothing follows the header");
    }

    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&(u32::MAX).to_be_bytes());
        let mut r = &wire[..];
        let err = read_message_async::<_, PipelineAck>(&mut r).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
    }
}
