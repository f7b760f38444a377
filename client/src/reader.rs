//! [`FileReader`]: reads a file block by block from its replicas, verifying
//! every checksum and failing over to the next replica on errors.

mod block_reader;
mod short_circuit;

use bytes::{Bytes, BytesMut};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tusk_proto::dfs::{self, DatanodeId, ExtendedBlock, LocatedBlock};

use crate::error::{ClientError, Result};
use crate::fs::Client;
use crate::writer::block_name;
use block_reader::{BlockReader, ReplicaError};
pub(crate) use short_circuit::local_addresses;
use short_circuit::{LocalReplica, LocalStream, ShortCircuitError, is_local_host};

/// Local replicas kept open per reader (two descriptors each); sequential
/// reads need one at a time, range reads may come back to a few.
const LOCAL_REPLICA_CACHE: usize = 8;

/// Longest wait between two location look-ups for a block without replicas.
const LOCATION_MAX_DELAY: Duration = Duration::from_secs(1);

/// Reads a file opened by [`Client::open`]. Sequential reads keep one stream
/// per block open; [`seek`](Self::seek) drops it; [`read_range`](Self::read_range)
/// reads a range on its own streams without moving the position.
pub struct FileReader {
    source: BlockSource,
    cursor: Cursor,
    /// Bytes fetched but not yet handed out; they start at `position()`.
    pending: Bytes,
}

/// The file's blocks and where to read them.
struct BlockSource {
    client: Client,
    path: String,
    length: u64,
    /// Blocks with data, sorted by offset; refreshed when locations are missing.
    blocks: Mutex<Vec<LocatedBlock>>,
    /// Transfer addresses that failed this reader; tried last.
    dead: Mutex<HashSet<String>>,
    /// Transfer addresses whose short-circuit path failed: read over TCP.
    no_short_circuit: Mutex<HashSet<String>>,
    /// Opened local replicas, newest last.
    local_replicas: Mutex<Vec<CachedReplica>>,
    /// Pieces served by short-circuit reads.
    short_circuit_reads: AtomicU64,
    /// (block id, datanode uuid) of the corrupt replicas already reported.
    reported: Mutex<HashSet<(u64, String)>>,
}

/// A read position in `[pos, end)` and the stream serving it.
struct Cursor {
    pos: u64,
    end: u64,
    stream: Option<OpenStream>,
}

struct OpenStream {
    reader: Stream,
    addr: String,
    /// The serving datanode's uuid, and the block as the namenode located it
    /// (for a bad replica report).
    uuid: String,
    block: ExtendedBlock,
}

/// (block id, generation stamp), the datanode's transfer address, the files.
type CachedReplica = ((u64, u64), String, Arc<LocalReplica>);

/// Where a stream's bytes come from.
enum Stream {
    /// Packets over the data-transfer protocol.
    Tcp(BlockReader),
    /// The replica's files on this host; `key` is (block id, generation stamp).
    Local { stream: LocalStream, key: (u64, u64) },
}

impl FileReader {
    pub(crate) async fn open(client: Client, path: String) -> Result<FileReader> {
        let located = fetch_locations(&client, &path).await?;
        let length = located.file_length;
        let source = BlockSource {
            client,
            path,
            length,
            blocks: Mutex::new(usable_blocks(located.blocks)),
            dead: Mutex::new(HashSet::new()),
            no_short_circuit: Mutex::new(HashSet::new()),
            local_replicas: Mutex::new(Vec::new()),
            short_circuit_reads: AtomicU64::new(0),
            reported: Mutex::new(HashSet::new()),
        };
        Ok(FileReader { source, cursor: Cursor { pos: 0, end: length, stream: None }, pending: Bytes::new() })
    }

    /// File length when opened.
    pub fn len(&self) -> u64 {
        self.source.length
    }

    pub fn is_empty(&self) -> bool {
        self.source.length == 0
    }

    /// How many pieces of data this reader got through short-circuit local
    /// reads (0 when every byte came over TCP).
    pub fn short_circuit_reads(&self) -> u64 {
        self.source.short_circuit_reads.load(Ordering::Relaxed)
    }

    /// Offset of the next byte [`read`](Self::read) returns.
    pub fn position(&self) -> u64 {
        self.cursor.pos - self.pending.len() as u64
    }

    /// Reads up to `buf.len()` bytes; 0 at end of file.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending.is_empty() {
            match self.source.next_chunk(&mut self.cursor).await? {
                Some(b) => self.pending = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }

    /// Moves to `pos` (at most the length); drops the current block stream.
    pub async fn seek(&mut self, pos: u64) -> Result<()> {
        if pos > self.source.length {
            return Err(ClientError::InvalidArgument {
                path: self.source.path.clone(),
                message: format!("cannot seek to {pos}: beyond the end of the file ({} bytes)", self.source.length),
            });
        }
        if pos == self.position() {
            return Ok(());
        }
        self.cursor = Cursor { pos, end: self.source.length, stream: None };
        self.pending = Bytes::new();
        Ok(())
    }

    /// Reads exactly `[offset, offset+len)` on separate streams; the position
    /// does not move. A range past the end of the file is an error.
    pub async fn read_range(&self, offset: u64, len: u64) -> Result<Bytes> {
        let end = offset.checked_add(len).filter(|e| *e <= self.source.length).ok_or_else(|| {
            ClientError::InvalidArgument {
                path: self.source.path.clone(),
                message: format!("range {offset}+{len} is beyond the end of the file ({} bytes)", self.source.length),
            }
        })?;
        let mut cursor = Cursor { pos: offset, end, stream: None };
        let mut out = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0));
        while let Some(b) = self.source.next_chunk(&mut cursor).await? {
            if out.is_empty() && b.len() as u64 == len {
                return Ok(b);
            }
            out.extend_from_slice(&b);
        }
        Ok(out.freeze())
    }

    /// Reads from the position to the end of the file.
    pub async fn read_to_end(&mut self) -> Result<Bytes> {
        let remaining = self.source.length - self.position();
        let mut out = BytesMut::with_capacity(usize::try_from(remaining).unwrap_or(0));
        while let Some(b) = self.next_chunk().await? {
            out.extend_from_slice(&b);
        }
        Ok(out.freeze())
    }

    /// The next bytes of the file (about one packet), `None` at end of file.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        self.source.next_chunk(&mut self.cursor).await
    }
}

async fn fetch_locations(client: &Client, path: &str) -> Result<dfs::LocatedBlocks> {
    let rpc = client.rpc();
    let req = dfs::GetBlockLocationsRequest {
        caller: rpc.caller(),
        path: path.to_string(),
        offset: 0,
        length: 0,
        client_host: String::new(),
    };
    let resp = rpc.stub().get_block_locations(req).await.map_err(|s| rpc.error(s))?.into_inner();
    resp.blocks.ok_or_else(|| ClientError::not_found(path))
}

/// Blocks that hold data, sorted by offset.
fn usable_blocks(mut blocks: Vec<LocatedBlock>) -> Vec<LocatedBlock> {
    blocks.retain(|b| b.block.is_some_and(|e| e.num_bytes > 0));
    blocks.sort_by_key(|b| b.offset);
    blocks
}

fn block_len(b: &LocatedBlock) -> u64 {
    b.block.map(|e| e.num_bytes).unwrap_or(0)
}

/// Index of the block holding file offset `pos` (blocks sorted by offset).
pub(crate) fn find_block(blocks: &[(u64, u64)], pos: u64) -> Option<usize> {
    let i = blocks.partition_point(|(off, _)| *off <= pos).checked_sub(1)?;
    let (off, len) = blocks[i];
    (pos < off + len).then_some(i)
}

/// The part `[start, end)` (block offsets) of a block at file offset
/// `block_off` with `block_len` bytes that a read of `[pos, limit)` needs.
pub(crate) fn span_in_block(block_off: u64, block_len: u64, pos: u64, limit: u64) -> (u64, u64) {
    (pos - block_off, limit.min(block_off + block_len) - block_off)
}

impl BlockSource {
    /// The next verified bytes for `cur`, failing over between replicas.
    async fn next_chunk(&self, cur: &mut Cursor) -> Result<Option<Bytes>> {
        let mut failures: Vec<(String, ReplicaError)> = Vec::new();
        loop {
            if cur.pos >= cur.end {
                return Ok(None);
            }
            let stream = match cur.stream.as_mut() {
                Some(s) => s,
                None => cur.stream.insert(self.open_at(cur.pos, cur.end, &mut failures).await?),
            };
            let got = match &mut stream.reader {
                Stream::Tcp(r) => r.next_chunk().await,
                Stream::Local { stream: local, key } => match local.next_chunk().await {
                    Ok(b) => {
                        self.short_circuit_reads.fetch_add(1, Ordering::Relaxed);
                        Ok(b)
                    }
                    Err(e) => {
                        self.forget_local(*key);
                        if let ShortCircuitError::Checksum { offset, .. } = e {
                            tracing::warn!("{}: {e} (datanode {})", self.path, stream.addr);
                            Err(ReplicaError::Checksum { offset })
                        } else {
                            // Not the replica's fault: read it over TCP instead.
                            tracing::warn!("{}: {e}; reading from datanode {} over TCP", self.path, stream.addr);
                            self.lock(&self.no_short_circuit).insert(stream.addr.clone());
                            cur.stream = None;
                            continue;
                        }
                    }
                },
            };
            match got {
                Ok(Some(b)) => {
                    cur.pos += b.len() as u64;
                    return Ok(Some(b));
                }
                // This block's part is done; the next turn opens the next block.
                Ok(None) => cur.stream = None,
                Err(e) => {
                    tracing::warn!("{}: reading from datanode {} failed at offset {}: {e}", self.path, stream.addr, cur.pos);
                    if let ReplicaError::Checksum { offset } = e {
                        let local = matches!(stream.reader, Stream::Local { .. });
                        self.report_corrupt(&stream.block, &stream.uuid, &stream.addr, offset, local).await;
                    }
                    self.mark_dead(&stream.addr);
                    failures.push((stream.addr.clone(), e));
                    cur.stream = None;
                }
            }
        }
    }

    /// Opens a stream at `pos` (up to the end of its block or `limit`) from
    /// the first replica that has not failed yet.
    async fn open_at(&self, pos: u64, limit: u64, failures: &mut Vec<(String, ReplicaError)>) -> Result<OpenStream> {
        let config = self.client.config();
        let io_timeout = Duration::from_millis(config.socket_timeout_ms.max(1));
        let deadline = Instant::now() + Duration::from_millis(config.location_retry_ms);
        let mut delay = Duration::from_millis(50);
        let mut refreshed = false;
        loop {
            let located = self.block_at(pos)?;
            let block = located.block.unwrap_or_default();
            let (start, end) = span_in_block(located.offset, block.num_bytes, pos, limit);
            if located.locations.is_empty() {
                if Instant::now() + delay > deadline {
                    return Err(self.block_error(&block, format!(
                        "no datanode has reported a replica (waited {} ms)",
                        config.location_retry_ms
                    )));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(LOCATION_MAX_DELAY);
                self.refresh().await?;
                continue;
            }
            let candidates = self.candidates(&located, failures);
            for dn in candidates {
                let addr = dn.transfer_addr.clone();
                let uuid = dn.datanode_uuid.clone();
                if let Some(stream) = self.open_local(&dn, &block, start, end, io_timeout).await {
                    return Ok(OpenStream { reader: stream, addr, uuid, block });
                }
                let name = self.client.client_name();
                match BlockReader::open(&addr, &block, start, end, name, io_timeout).await {
                    Ok(reader) => return Ok(OpenStream { reader: Stream::Tcp(reader), addr, uuid, block }),
                    Err(e) => {
                        tracing::warn!("{}: datanode {addr} cannot serve {}: {e}", self.path, block_name(&block));
                        self.mark_dead(&addr);
                        failures.push((addr, e));
                    }
                }
            }
            // Every known replica failed: the namenode may know new ones.
            if refreshed {
                return Err(self.all_failed(&block, failures));
            }
            refreshed = true;
            self.refresh().await?;
        }
    }

    /// Replica holders of `block` not yet failed in this attempt; those
    /// that failed this reader before go last.
    fn candidates(&self, block: &LocatedBlock, failures: &[(String, ReplicaError)]) -> Vec<DatanodeId> {
        let dead = self.lock(&self.dead);
        let mut fresh: Vec<DatanodeId> = Vec::new();
        let mut suspect: Vec<DatanodeId> = Vec::new();
        for d in &block.locations {
            let addr = &d.transfer_addr;
            let seen = |v: &[DatanodeId]| v.iter().any(|x| x.transfer_addr == *addr);
            if failures.iter().any(|(a, _)| a == addr) || seen(&fresh) || seen(&suspect) {
                continue;
            }
            if dead.contains(addr) { suspect.push(d.clone()) } else { fresh.push(d.clone()) }
        }
        fresh.extend(suspect);
        fresh
    }

    /// A short-circuit stream of `[start, end)` when `dn` is on this host,
    /// offers a domain socket and hands out the replica; `None` means read
    /// over TCP.
    async fn open_local(
        &self,
        dn: &DatanodeId,
        block: &ExtendedBlock,
        start: u64,
        end: u64,
        io_timeout: Duration,
    ) -> Option<Stream> {
        let addr = &dn.transfer_addr;
        if !self.client.config().short_circuit
            || dn.domain_socket_path.is_empty()
            || self.lock(&self.no_short_circuit).contains(addr)
            || !is_local_host(&dn.host, self.client.local_ips().await)
        {
            return None;
        }
        let key = (block.block_id, block.generation_stamp);
        let cached = self.lock(&self.local_replicas).iter().find(|(k, a, _)| *k == key && a == addr).map(|e| e.2.clone());
        let replica = match cached {
            Some(r) => r,
            None => {
                let (socket, blk, name) = (dn.domain_socket_path.clone(), *block, self.client.client_name().to_string());
                let opened =
                    tokio::task::spawn_blocking(move || LocalReplica::request(&socket, &blk, &name, io_timeout)).await;
                match opened {
                    Ok(Ok(r)) => {
                        let r = Arc::new(r);
                        let mut cache = self.lock(&self.local_replicas);
                        if cache.len() >= LOCAL_REPLICA_CACHE {
                            cache.remove(0);
                        }
                        cache.push((key, addr.clone(), Arc::clone(&r)));
                        r
                    }
                    Ok(Err(e)) => {
                        tracing::debug!("{}: {} from datanode {addr} over TCP: {e}", self.path, block_name(block));
                        if matches!(e, ShortCircuitError::Connect { .. }) {
                            self.lock(&self.no_short_circuit).insert(addr.clone());
                        }
                        return None;
                    }
                    Err(e) => {
                        tracing::debug!("{}: short-circuit open task failed: {e}", self.path);
                        return None;
                    }
                }
            }
        };
        if replica.len() < end {
            tracing::debug!("{}: local replica of {} holds {} bytes, {end} needed", self.path, block_name(block), replica.len());
            self.forget_local(key);
            return None;
        }
        Some(Stream::Local { stream: LocalStream::new(replica, start, end), key })
    }

    /// Tells the namenode that the replica of `block` on datanode `uuid`
    /// failed its checksum at block offset `offset`, once per replica.
    /// Best effort: a failed report is only logged.
    async fn report_corrupt(&self, block: &ExtendedBlock, uuid: &str, addr: &str, offset: u64, local: bool) {
        if uuid.is_empty() || !self.lock(&self.reported).insert((block.block_id, uuid.to_string())) {
            return;
        }
        let how = if local { "a short-circuit read" } else { "a read" };
        let reason = format!(
            "checksum mismatch at block offset {offset} in {how} of {} by {}",
            self.path,
            self.client.client_name()
        );
        let replica = dfs::BadReplica { block: Some(*block), datanode_uuid: uuid.to_string(), reason };
        if let Err(e) = self.client.report_bad_replicas(vec![replica]).await {
            tracing::warn!("{}: could not report the corrupt replica of {} on datanode {addr}: {e}", self.path, block_name(block));
        } else {
            tracing::info!("{}: reported the corrupt replica of {} on datanode {addr}", self.path, block_name(block));
        }
    }

    /// Drops the cached descriptors of a local replica.
    fn forget_local(&self, key: (u64, u64)) {
        self.lock(&self.local_replicas).retain(|(k, _, _)| *k != key);
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn block_at(&self, pos: u64) -> Result<LocatedBlock> {
        let blocks = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        let spans: Vec<(u64, u64)> = blocks.iter().map(|b| (b.offset, block_len(b))).collect();
        match find_block(&spans, pos) {
            Some(i) => Ok(blocks[i].clone()),
            None => Err(ClientError::Block {
                path: self.path.clone(),
                op: "read",
                block: "?".into(),
                message: format!("no block covers offset {pos} (file length {})", self.length),
            }),
        }
    }

    async fn refresh(&self) -> Result<()> {
        let located = fetch_locations(&self.client, &self.path).await?;
        *self.blocks.lock().unwrap_or_else(|p| p.into_inner()) = usable_blocks(located.blocks);
        Ok(())
    }

    fn mark_dead(&self, addr: &str) {
        self.dead.lock().unwrap_or_else(|p| p.into_inner()).insert(addr.to_string());
    }

    fn block_error(&self, block: &ExtendedBlock, message: String) -> ClientError {
        ClientError::Block { path: self.path.clone(), op: "read", block: block_name(block), message }
    }

    /// The error once every replica failed: a checksum error if any replica
    /// sent corrupt data, else each replica's failure.
    fn all_failed(&self, block: &ExtendedBlock, failures: &[(String, ReplicaError)]) -> ClientError {
        let corrupt: Vec<&str> =
            failures.iter().filter(|(_, e)| matches!(e, ReplicaError::Checksum { .. })).map(|(a, _)| a.as_str()).collect();
        if !corrupt.is_empty() {
            return ClientError::Checksum {
                path: self.path.clone(),
                block: block_name(block),
                datanode: corrupt.join(", "),
            };
        }
        let detail: Vec<String> = failures.iter().map(|(a, e)| format!("{a}: {e}")).collect();
        let message = if detail.is_empty() {
            "no replica to read from".to_string()
        } else {
            format!("every replica failed: {}", detail.join("; "))
        };
        self.block_error(block, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which blocks a read of `[off, off+len)` touches, and the part of each.
    fn covering(blocks: &[(u64, u64)], off: u64, len: u64) -> Vec<(usize, u64, u64)> {
        let mut out = Vec::new();
        let mut pos = off;
        while pos < off + len {
            let Some(i) = find_block(blocks, pos) else { break };
            let (start, end) = span_in_block(blocks[i].0, blocks[i].1, pos, off + len);
            out.push((i, start, end));
            pos = blocks[i].0 + end;
        }
        out
    }

    const B: u64 = 100;
    fn three() -> Vec<(u64, u64)> {
        vec![(0, B), (B, B), (2 * B, 50)]
    }

    #[test]
    fn ranges_map_to_block_spans() {
        let b = three();
        assert_eq!(covering(&b, 0, 250), vec![(0, 0, 100), (1, 0, 100), (2, 0, 50)]);
        assert_eq!(covering(&b, 99, 2), vec![(0, 99, 100), (1, 0, 1)]);
        assert_eq!(covering(&b, 100, 100), vec![(1, 0, 100)]);
        assert_eq!(covering(&b, 150, 1), vec![(1, 50, 51)]);
        assert_eq!(covering(&b, 120, 0), vec![]);
        assert_eq!(covering(&b, 199, 51), vec![(1, 99, 100), (2, 0, 50)]);
    }

    #[test]
    fn offsets_outside_every_block_find_none() {
        let b = three();
        assert_eq!(find_block(&b, 0), Some(0));
        assert_eq!(find_block(&b, 99), Some(0));
        assert_eq!(find_block(&b, 100), Some(1));
        assert_eq!(find_block(&b, 249), Some(2));
        assert_eq!(find_block(&b, 250), None);
        assert_eq!(find_block(&[], 0), None);
        // A hole (a missing block) is not papered over.
        assert_eq!(find_block(&[(0, 10), (20, 10)], 15), None);
    }

    #[tokio::test]
    async fn a_corrupt_replica_is_reported_and_the_next_one_read() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let bad = block_reader::tests::fake_datanode(data.clone(), true).await;
        let good = block_reader::tests::fake_datanode(data.clone(), false).await;
        let nn = crate::fake_namenode::FakeNamenode::default();
        let blk = ExtendedBlock { block_id: 5, generation_stamp: 9, num_bytes: 3000 };
        let loc = |addr: &str, uuid: &str| DatanodeId {
            transfer_addr: addr.into(),
            datanode_uuid: uuid.into(),
            ..Default::default()
        };
        let locations = vec![loc(&bad, "u-bad"), loc(&good, "u-good")];
        nn.state().located = Some(dfs::LocatedBlocks {
            file_length: 3000,
            blocks: vec![LocatedBlock { block: Some(blk), offset: 0, locations }],
            under_construction: false,
        });
        let client = nn.start().await;
        assert_eq!(client.read_all("/f").await.unwrap(), data);
        let st = nn.state();
        assert_eq!(st.bad_replicas.len(), 1, "{:?}", st.bad_replicas);
        let r = &st.bad_replicas[0];
        assert_eq!((r.datanode_uuid.as_str(), r.block), ("u-bad", Some(blk)));
        assert!(r.reason.contains("checksum mismatch at block offset 0") && r.reason.contains("/f"), "{}", r.reason);
    }

    #[test]
    fn empty_blocks_are_dropped_and_the_rest_sorted() {
        let lb = |offset, n| LocatedBlock {
            block: Some(ExtendedBlock { block_id: offset, generation_stamp: 1, num_bytes: n }),
            offset,
            locations: vec![],
        };
        let got = usable_blocks(vec![lb(100, 5), lb(0, 100), lb(105, 0)]);
        assert_eq!(got.iter().map(|b| b.offset).collect::<Vec<_>>(), vec![0, 100]);
    }
}
