//! Short-circuit local reads (HDFS `dfs.client.read.shortcircuit`): when a
//! replica lives on this host, the datanode hands us open descriptors of its
//! data and meta files over its Unix domain socket (SCM_RIGHTS) and we read
//! them with positional reads, verifying every 512-byte chunk against the
//! CRC32C stored in the meta file, exactly as bytes from the network are
//! verified. Everything here that touches a file or socket blocks: callers
//! run it in `spawn_blocking`.

use bytes::{Bytes, BytesMut};
use nix::errno::Errno;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use std::fs::File;
use std::io::{IoSliceMut, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::dfs::{ExtendedBlock, OpRequest, OpRequestShortCircuitFds, OpResponse, TransferStatus, op_request};
use tusk_proto::transfer::{CHECKSUM_SIZE, chunk_count, read_message, verify_checksums, write_message};

/// Bytes a meta file holds before its first checksum (u16 version, u8
/// checksum type, u32 bytes per checksum; see the datanode's `meta.rs`).
const META_HEADER_LEN: u64 = 7;
/// Data read (and verified) per positional read; a multiple of 512.
pub(crate) const LOCAL_READ_SIZE: u64 = 1 << 20;

/// Why a short-circuit read could not deliver; all but [`Checksum`]
/// (`ShortCircuitError::Checksum`) make the reader fall back to TCP for the
/// same replica.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShortCircuitError {
    #[error("short-circuit socket {socket}: {source}")]
    Connect { socket: String, source: std::io::Error },
    #[error("short-circuit socket {socket}: block {block}: refused: {message}")]
    Refused { socket: String, block: u64, message: String },
    #[error("short-circuit socket {socket}: block {block}: {message}")]
    Protocol { socket: String, block: u64, message: String },
    #[error("block {block}: local replica: {source}")]
    Io { block: u64, source: std::io::Error },
    #[error("block {block}: local replica holds {len} bytes, {want} needed")]
    Short { block: u64, len: u64, want: u64 },
    #[error("block {block}: checksum error in the local replica at block offset {offset}")]
    Checksum { block: u64, offset: u64 },
}

/// A replica on this host, opened through its datanode: read-only data and
/// meta files.
#[derive(Debug)]
pub(crate) struct LocalReplica {
    block_id: u64,
    data: File,
    meta: File,
    len: u64,
    bytes_per_checksum: u32,
}

impl LocalReplica {
    /// Asks the datanode listening on `socket` for descriptors of `block`.
    pub(crate) fn request(
        socket: &str,
        block: &ExtendedBlock,
        client_name: &str,
        timeout: Duration,
    ) -> Result<LocalReplica, ShortCircuitError> {
        let block_id = block.block_id;
        let conn = |source| ShortCircuitError::Connect { socket: socket.to_string(), source };
        let proto = |message: String| ShortCircuitError::Protocol { socket: socket.to_string(), block: block_id, message };
        let mut stream = UnixStream::connect(socket).map_err(conn)?;
        stream.set_read_timeout(Some(timeout)).map_err(conn)?;
        stream.set_write_timeout(Some(timeout)).map_err(conn)?;
        let req = OpRequest {
            protocol_version: PROTOCOL_VERSION,
            op: Some(op_request::Op::RequestShortCircuitFds(OpRequestShortCircuitFds {
                block: Some(ExtendedBlock { num_bytes: 0, ..*block }),
                client_name: client_name.to_string(),
            })),
        };
        write_message(&mut stream, &req).map_err(|e| proto(format!("sending the request: {e}")))?;
        let (head, mut fds) = recv_with_fds(&stream).map_err(|e| proto(format!("receiving the answer: {e}")))?;
        let resp: OpResponse = read_message(&mut (&head[..]).chain(&mut stream))
            .map_err(|e| proto(format!("reading the answer: {e}")))?;
        if resp.status != TransferStatus::Success as i32 {
            return Err(ShortCircuitError::Refused { socket: socket.to_string(), block: block_id, message: resp.message });
        }
        if fds.len() != 2 {
            return Err(proto(format!("answer carries {} file descriptors, expected 2", fds.len())));
        }
        let (meta, data) = (fds.remove(1), fds.remove(0));
        let replica = LocalReplica {
            block_id,
            data: File::from(data),
            meta: File::from(meta),
            len: resp.replica_length,
            bytes_per_checksum: resp.bytes_per_checksum,
        };
        replica.check_header().map_err(proto)?;
        Ok(replica)
    }

    /// The meta header must say CRC32C with the chunk size the datanode announced.
    fn check_header(&self) -> Result<(), String> {
        let mut h = [0u8; META_HEADER_LEN as usize];
        self.meta.read_exact_at(&mut h, 0).map_err(|e| format!("meta header: {e}"))?;
        let bpc = u32::from_be_bytes([h[3], h[4], h[5], h[6]]);
        if h[..3] != [0, 1, 1] || bpc == 0 || bpc != self.bytes_per_checksum {
            return Err(format!(
                "meta header {h:?} is not version 1 CRC32C with {} bytes per checksum",
                self.bytes_per_checksum
            ));
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The verified bytes `[start, end)` of the replica: the chunks covering
    /// the range are read with their stored checksums and checked, then
    /// trimmed to the range.
    pub(crate) fn read(&self, start: u64, end: u64) -> Result<Bytes, ShortCircuitError> {
        let block = self.block_id;
        if end > self.len || start > end {
            return Err(ShortCircuitError::Short { block, len: self.len, want: end });
        }
        let (lo, hi) = chunk_span(start, end, self.len, self.bytes_per_checksum);
        let io = |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                ShortCircuitError::Short { block, len: self.len, want: hi }
            } else {
                ShortCircuitError::Io { block, source }
            }
        };
        let mut data = BytesMut::zeroed((hi - lo) as usize);
        self.data.read_exact_at(&mut data, lo).map_err(io)?;
        let bpc = self.bytes_per_checksum as u64;
        let mut sums = vec![0u8; chunk_count(data.len(), self.bytes_per_checksum) * CHECKSUM_SIZE];
        self.meta.read_exact_at(&mut sums, META_HEADER_LEN + lo / bpc * CHECKSUM_SIZE as u64).map_err(io)?;
        if let Err(i) = verify_checksums(&data, &sums, self.bytes_per_checksum) {
            return Err(ShortCircuitError::Checksum { block, offset: lo + i as u64 * bpc });
        }
        Ok(data.freeze().slice((start - lo) as usize..(end - lo) as usize))
    }
}

/// The chunk-aligned span `[lo, hi)` covering `[start, end)` in a replica of
/// `len` bytes (the last chunk may be short).
pub(crate) fn chunk_span(start: u64, end: u64, len: u64, bytes_per_checksum: u32) -> (u64, u64) {
    let bpc = bytes_per_checksum as u64;
    (start / bpc * bpc, end.div_ceil(bpc).saturating_mul(bpc).min(len))
}

/// Receives the first bytes of the answer and the descriptors attached to them.
fn recv_with_fds(stream: &UnixStream) -> std::io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(m) => m,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(got) = c {
                // SAFETY: the kernel installed these descriptors in this
                // process for this message; nothing else owns them.
                fds.extend(got.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
        let n = msg.bytes;
        if truncated {
            return Err(std::io::Error::other("file descriptors were truncated"));
        }
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.truncate(n);
        return Ok((buf, fds));
    }
}

/// Streams `[next, end)` of a local replica in verified pieces.
pub(crate) struct LocalStream {
    replica: Arc<LocalReplica>,
    next: u64,
    end: u64,
}

impl LocalStream {
    pub(crate) fn new(replica: Arc<LocalReplica>, start: u64, end: u64) -> LocalStream {
        LocalStream { replica, next: start, end }
    }

    /// The next verified bytes (at most [`LOCAL_READ_SIZE`]), `None` once the
    /// range is done. Reads run on the blocking pool.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, ShortCircuitError> {
        if self.next >= self.end {
            return Ok(None);
        }
        let (start, end) = (self.next, piece_end(self.next, self.end, self.replica.bytes_per_checksum));
        let replica = Arc::clone(&self.replica);
        let block = replica.block_id;
        let bytes = tokio::task::spawn_blocking(move || replica.read(start, end))
            .await
            .map_err(|e| ShortCircuitError::Io { block, source: std::io::Error::other(e.to_string()) })??;
        self.next = end;
        Ok(Some(bytes))
    }
}

/// End of the piece read from `next`: up to [`LOCAL_READ_SIZE`] past the
/// chunk `next` is in, so later pieces start chunk-aligned.
pub(crate) fn piece_end(next: u64, end: u64, bytes_per_checksum: u32) -> u64 {
    let bpc = bytes_per_checksum.max(1) as u64;
    let size = (LOCAL_READ_SIZE / bpc).max(1) * bpc;
    end.min(next / bpc * bpc + size)
}

/// True when a datanode advertising `host` runs on this machine: a loopback
/// address or one of `local` (the addresses this client reaches the cluster from).
pub(crate) fn is_local_host(host: &str, local: &[IpAddr]) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || local.contains(&ip),
        Err(_) => false,
    }
}

/// The addresses of this host that count as local for short-circuit reads:
/// the IP the kernel uses to reach the namenode (a UDP connect sends nothing).
pub(crate) async fn local_addresses(namenode: &str) -> Vec<IpAddr> {
    let Ok(mut targets) = tokio::net::lookup_host(namenode).await else {
        return Vec::new();
    };
    let Some(target) = targets.next() else {
        return Vec::new();
    };
    let any: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let route = std::net::UdpSocket::bind(any).and_then(|s| {
        s.connect(target)?;
        s.local_addr()
    });
    match route {
        Ok(a) if !a.ip().is_unspecified() => vec![a.ip()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tusk_proto::transfer::compute_checksums;

    /// A replica written as the datanode writes it (data file + meta file).
    fn replica(data: &[u8]) -> (tempfile::TempDir, LocalReplica) {
        let dir = tempfile::tempdir().unwrap();
        let mut meta = vec![0, 1, 1, 0, 0, 2, 0];
        compute_checksums(data, 512, &mut meta);
        std::fs::File::create(dir.path().join("blk")).unwrap().write_all(data).unwrap();
        std::fs::File::create(dir.path().join("meta")).unwrap().write_all(&meta).unwrap();
        let r = LocalReplica {
            block_id: 7,
            data: File::open(dir.path().join("blk")).unwrap(),
            meta: File::open(dir.path().join("meta")).unwrap(),
            len: data.len() as u64,
            bytes_per_checksum: 512,
        };
        r.check_header().unwrap();
        (dir, r)
    }

    #[test]
    fn spans_and_pieces_are_chunk_aligned() {
        assert_eq!(chunk_span(0, 10, 5000, 512), (0, 512));
        assert_eq!(chunk_span(700, 2100, 5000, 512), (512, 2560));
        assert_eq!(chunk_span(4999, 5000, 5000, 512), (4608, 5000));
        assert_eq!(chunk_span(1024, 1024, 5000, 512), (1024, 1024));
        assert_eq!(piece_end(0, 10 << 20, 512), LOCAL_READ_SIZE);
        assert_eq!(piece_end(700, 10 << 20, 512), 512 + LOCAL_READ_SIZE);
        assert_eq!(piece_end(700, 900, 512), 900);
    }

    #[test]
    fn reads_exactly_the_asked_range() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        let (_dir, r) = replica(&data);
        for (start, end) in [(0, 5000), (700, 2100), (1024, 1025), (4999, 5000), (512, 512)] {
            let got = r.read(start, end).unwrap();
            assert_eq!(&got[..], &data[start as usize..end as usize], "range {start}..{end}");
        }
        assert!(matches!(r.read(10, 5001), Err(ShortCircuitError::Short { want: 5001, .. })));
    }

    #[test]
    fn corruption_and_truncation_are_caught() {
        let data = vec![9u8; 3000];
        let (dir, r) = replica(&data);
        let f = std::fs::OpenOptions::new().write(true).open(dir.path().join("blk")).unwrap();
        f.write_all_at(&[8], 1600).unwrap();
        // Chunk 3 (1536..2048) is bad; ranges that avoid it still verify.
        assert!(matches!(r.read(1700, 1701), Err(ShortCircuitError::Checksum { offset: 1536, .. })));
        assert!(matches!(r.read(0, 3000), Err(ShortCircuitError::Checksum { offset: 1536, .. })));
        assert_eq!(&r.read(0, 1536).unwrap()[..], &data[..1536]);
        f.set_len(2000).unwrap();
        assert!(matches!(r.read(2100, 2200), Err(ShortCircuitError::Short { .. })), "a truncated data file");
    }

    #[test]
    fn locality_is_loopback_or_a_local_address() {
        let me: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(is_local_host("127.0.0.1", &[]));
        assert!(is_local_host("127.3.0.9", &[]));
        assert!(is_local_host("::1", &[]));
        assert!(is_local_host("10.1.2.3", &[me]));
        assert!(!is_local_host("10.1.2.4", &[me]));
        assert!(!is_local_host("dn.example.com", &[me]));
    }

    #[tokio::test]
    async fn the_route_to_a_loopback_namenode_is_local() {
        let ips = local_addresses("127.0.0.1:9").await;
        assert!(ips.iter().all(|ip| ip.is_loopback()), "{ips:?}");
    }
}
