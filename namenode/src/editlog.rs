//! The edit log: framed `EditOp` records in segment files, and the journal
//! that appends them with group commit.
//!
//! Record: `u32 length | u32 CRC32C(payload) | u64 txid | payload`, big
//! endian. Appends go to a memory buffer while the namespace write lock is
//! held (so log order = apply order); one syncer thread writes the buffer
//! and calls `sync_data` once for every waiting caller, then publishes the
//! synced txid.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};
use prost::Message;
use tokio::sync::watch;
use tusk_proto::nnstorage::EditOp;

use crate::error::{NamenodeError, Result};

pub(crate) const HEADER_LEN: usize = 16;
/// A record larger than this is corrupt.
const MAX_RECORD: usize = 64 << 20;

pub(crate) fn encode_record(txid: u64, op: &EditOp, out: &mut Vec<u8>) {
    let payload = op.encode_to_vec();
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&txid.to_be_bytes());
    out.extend_from_slice(&payload);
}

pub(crate) fn inprogress_name(first: u64) -> String {
    format!("edits_inprogress_{first:019}")
}

pub(crate) fn finalized_name(first: u64, last: u64) -> String {
    format!("edits_{first:019}-{last:019}")
}

/// Reads as many bytes as available into `buf`; returns how many.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Result of reading one segment.
#[derive(Debug)]
pub(crate) struct SegmentEnd {
    /// Bytes of complete, valid records.
    pub(crate) valid_len: u64,
    /// True when a torn or corrupt last record was found after `valid_len`.
    pub(crate) torn: bool,
}

/// Reads every record of a segment and hands it to `f`. With `tail_may_tear`
/// (the newest segment), a short or CRC-mismatched *last* record is reported
/// as torn instead of failing; corruption elsewhere is a hard error.
pub(crate) fn read_segment(path: &Path, tail_may_tear: bool, mut f: impl FnMut(u64, EditOp) -> Result<()>) -> Result<SegmentEnd> {
    let file = File::open(path).map_err(|e| NamenodeError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| NamenodeError::io(path, e))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut pos = 0u64;
    let corrupt = |pos: u64, why: &str| NamenodeError::Storage(format!("{}: corrupt edit record at offset {pos}: {why}", path.display()));
    loop {
        let mut hdr = [0u8; HEADER_LEN];
        let n = read_full(&mut r, &mut hdr).map_err(|e| NamenodeError::io(path, e))?;
        if n == 0 {
            return Ok(SegmentEnd { valid_len: pos, torn: false });
        }
        let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        let crc = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let mut tx = [0u8; 8];
        tx.copy_from_slice(&hdr[8..16]);
        let txid = u64::from_be_bytes(tx);
        let record_end = pos + (HEADER_LEN + len) as u64;
        if n < HEADER_LEN || len > MAX_RECORD || record_end > file_len {
            if tail_may_tear {
                return Ok(SegmentEnd { valid_len: pos, torn: true });
            }
            return Err(corrupt(pos, "truncated record"));
        }
        let mut payload = vec![0u8; len];
        let got = read_full(&mut r, &mut payload).map_err(|e| NamenodeError::io(path, e))?;
        if got < len {
            if tail_may_tear {
                return Ok(SegmentEnd { valid_len: pos, torn: true });
            }
            return Err(corrupt(pos, "truncated record"));
        }
        if crc32c::crc32c(&payload) != crc {
            if tail_may_tear && record_end == file_len {
                return Ok(SegmentEnd { valid_len: pos, torn: true });
            }
            return Err(corrupt(pos, "checksum mismatch"));
        }
        let op = EditOp::decode(payload.as_slice()).map_err(|e| corrupt(pos, &e.to_string()))?;
        f(txid, op)?;
        pos = record_end;
    }
}

/// Synced txid, or the error that stopped the syncer.
#[derive(Debug, Clone)]
pub(crate) struct SyncState {
    pub(crate) txid: u64,
    pub(crate) error: Option<Arc<str>>,
}

struct Pending {
    buf: Vec<u8>,
    last_txid: u64,
    stop: bool,
}

struct Segment {
    file: File,
    path: PathBuf,
    first_txid: u64,
    /// Last txid written to `file`.
    last_txid: u64,
}

struct Shared {
    dir: PathBuf,
    pending: Mutex<Pending>,
    wake: Condvar,
    segment: Mutex<Segment>,
    synced: watch::Sender<SyncState>,
    syncs: AtomicU64,
}

/// The edit log being written. `append` is called under the namespace
/// write lock; `wait_synced` is awaited after releasing it.
pub(crate) struct Journal {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| NamenodeError::io(dir, e))
}

fn open_segment(dir: &Path, first: u64) -> Result<Segment> {
    let path = dir.join(inprogress_name(first));
    let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| NamenodeError::io(&path, e))?;
    fsync_dir(dir)?;
    Ok(Segment { file, path, first_txid: first, last_txid: first - 1 })
}

impl Shared {
    fn write_locked(&self, seg: &mut Segment, buf: &[u8], last: u64) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        seg.file.write_all(buf).map_err(|e| NamenodeError::io(&seg.path, e))?;
        seg.file.sync_data().map_err(|e| NamenodeError::io(&seg.path, e))?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        seg.last_txid = last;
        Ok(())
    }

    fn publish(&self, txid: u64) {
        self.synced.send_if_modified(|s| {
            if txid > s.txid {
                s.txid = txid;
                true
            } else {
                false
            }
        });
    }

    fn fail(&self, e: &NamenodeError) {
        tracing::error!("edit log: {e}; further mutations cannot be made durable");
        let msg: Arc<str> = format!("edit log failure: {e}").into();
        self.synced.send_modify(|s| s.error = Some(msg));
    }

    fn take(&self) -> (Vec<u8>, u64, bool) {
        let mut p = self.pending.lock();
        (std::mem::take(&mut p.buf), p.last_txid, p.stop)
    }

    /// One group commit: everything appended so far.
    fn sync_once(&self) -> bool {
        let mut seg = self.segment.lock();
        let (buf, last, stop) = self.take();
        match self.write_locked(&mut seg, &buf, last) {
            Ok(()) => self.publish(last),
            Err(e) => self.fail(&e),
        }
        stop
    }

    fn run(self: Arc<Self>) {
        loop {
            {
                let mut p = self.pending.lock();
                while p.buf.is_empty() && !p.stop {
                    self.wake.wait(&mut p);
                }
            }
            if self.sync_once() {
                return;
            }
        }
    }
}

impl Journal {
    /// Starts a new in-progress segment whose first txid is `next_txid`.
    pub(crate) fn open(dir: &Path, next_txid: u64) -> Result<Journal> {
        let segment = open_segment(dir, next_txid)?;
        let (synced, _) = watch::channel(SyncState { txid: next_txid - 1, error: None });
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            pending: Mutex::new(Pending { buf: Vec::new(), last_txid: next_txid - 1, stop: false }),
            wake: Condvar::new(),
            segment: Mutex::new(segment),
            synced,
            syncs: AtomicU64::new(0),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("edit-log-syncer".into())
            .spawn(move || s.run())
            .map_err(|e| NamenodeError::Internal(format!("cannot start the edit log syncer: {e}")))?;
        Ok(Journal { shared, thread: Mutex::new(Some(thread)) })
    }

    /// Appends one record; returns its txid. Call with the namespace write lock held.
    pub(crate) fn append(&self, op: &EditOp) -> u64 {
        let mut p = self.shared.pending.lock();
        p.last_txid += 1;
        let txid = p.last_txid;
        encode_record(txid, op, &mut p.buf);
        drop(p);
        self.shared.wake.notify_one();
        txid
    }

    /// Last txid appended (durable or not).
    pub(crate) fn last_appended(&self) -> u64 {
        self.shared.pending.lock().last_txid
    }

    /// Number of `sync_data` calls so far.
    #[cfg(test)]
    pub(crate) fn sync_count(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    /// The error that stopped the syncer, if one did: no later mutation can
    /// be made durable.
    pub(crate) fn failure(&self) -> Option<Arc<str>> {
        self.shared.synced.borrow().error.clone()
    }

    /// Waits until `txid` is on disk.
    pub(crate) async fn wait_synced(&self, txid: u64) -> Result<()> {
        let mut rx = self.shared.synced.subscribe();
        let state = rx
            .wait_for(|s| s.txid >= txid || s.error.is_some())
            .await
            .map_err(|_| NamenodeError::Internal("edit log syncer is gone".into()))?
            .clone();
        match state.error {
            Some(e) if state.txid < txid => Err(NamenodeError::Internal(e.to_string())),
            _ => Ok(()),
        }
    }

    /// Flushes pending records, finalizes the current segment and starts a
    /// new one. Call with the namespace write lock held. Returns the last
    /// txid of the finalized segment.
    pub(crate) fn roll(&self) -> Result<u64> {
        let sh = &self.shared;
        let mut seg = sh.segment.lock();
        let (buf, last, _) = sh.take();
        if let Err(e) = sh.write_locked(&mut seg, &buf, last) {
            sh.fail(&e);
            return Err(e);
        }
        sh.publish(last);
        let last = seg.last_txid;
        if last >= seg.first_txid {
            let done = sh.dir.join(finalized_name(seg.first_txid, last));
            std::fs::rename(&seg.path, &done).map_err(|e| NamenodeError::io(&seg.path, e))?;
        } else {
            std::fs::remove_file(&seg.path).map_err(|e| NamenodeError::io(&seg.path, e))?;
        }
        *seg = open_segment(&sh.dir, last + 1)?;
        Ok(last)
    }

    /// Writes what is pending and stops the syncer thread.
    pub(crate) fn stop(&self) {
        self.shared.pending.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.lock().take()
            && t.join().is_err()
        {
            tracing::error!("edit log syncer panicked");
        }
    }

    #[cfg(test)]
    pub(crate) fn pause_syncer(&self) -> parking_lot::MutexGuard<'_, impl Sized> {
        self.shared.segment.lock()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Edit-log segment files in a directory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SegmentFile {
    pub(crate) path: PathBuf,
    pub(crate) first: u64,
    /// None for an in-progress segment.
    pub(crate) last: Option<u64>,
}

/// All segments, sorted by first txid.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| NamenodeError::io(dir, e))? {
        let e = e.map_err(|e| NamenodeError::io(dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(first) = name.strip_prefix("edits_inprogress_") {
            if let Ok(first) = first.parse() {
                out.push(SegmentFile { path: e.path(), first, last: None });
            }
        } else if let Some(range) = name.strip_prefix("edits_")
            && let Some((a, b)) = range.split_once('-')
            && let (Ok(first), Ok(last)) = (a.parse(), b.parse())
        {
            out.push(SegmentFile { path: e.path(), first, last: Some(last) });
        }
    }
    out.sort_by_key(|s| (s.first, s.last.is_none()));
    Ok(out)
}
