//! The block scanner (HDFS `VolumeScanner`): a named background thread that
//! reads every finalized replica and checks each chunk against the checksum
//! stored in its meta file, throttled to `scan_bytes_per_sec`, one full pass
//! every `scan_period_ms`. Replicas marked suspect (a read of them failed
//! here, or a datanode refused a copy of them with a checksum error) are
//! scanned first, also between passes.
//!
//! A checksum mismatch or a truncated data or meta file marks the replica
//! bad and queues a `ReportBadBlocks` for the namenode (the files stay until
//! the namenode's delete command); a data file that vanished drops the
//! replica from the map and queues an incremental report of its deletion.
//! Replicas already known bad are skipped.

use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tusk_proto::transfer::{DEFAULT_PACKET_SIZE, verify_checksums};

use super::{ReplicaInfo, ReplicaReader, Storage};
use crate::error::DatanodeError;

/// Suspects remembered at most (more are dropped: the pass finds them).
const MAX_SUSPECTS: usize = 10_000;

/// Suspect replicas and the stop signal, shared by storage and the scanner.
#[derive(Default)]
pub(crate) struct ScanQueue {
    state: Mutex<ScanState>,
    cv: Condvar,
}

#[derive(Default)]
struct ScanState {
    suspects: VecDeque<u64>,
    stop: bool,
    passes: u64,
}

impl ScanQueue {
    /// Asks for `block_id` to be scanned soon.
    pub(crate) fn add_suspect(&self, block_id: u64) {
        let mut s = self.state.lock();
        if !s.suspects.contains(&block_id) && s.suspects.len() < MAX_SUSPECTS {
            s.suspects.push_back(block_id);
        }
        self.cv.notify_all();
    }

    #[cfg(test)]
    pub(crate) fn is_suspect(&self, block_id: u64) -> bool {
        self.state.lock().suspects.contains(&block_id)
    }

    /// Full passes finished so far.
    #[cfg(test)]
    pub(crate) fn passes(&self) -> u64 {
        self.state.lock().passes
    }

    fn next_suspect(&self) -> Option<u64> {
        self.state.lock().suspects.pop_front()
    }

    fn stopped(&self) -> bool {
        self.state.lock().stop
    }

    /// Waits until `deadline` or a stop (or, with `wake_on_suspect`, a
    /// suspect). False when stopped.
    fn wait(&self, deadline: Instant, wake_on_suspect: bool) -> bool {
        let mut s = self.state.lock();
        loop {
            if s.stop {
                return false;
            }
            if (wake_on_suspect && !s.suspects.is_empty()) || Instant::now() >= deadline {
                return true;
            }
            self.cv.wait_until(&mut s, deadline);
        }
    }
}

/// The running scanner thread.
pub(crate) struct BlockScanner {
    storage: Arc<Storage>,
    thread: std::thread::JoinHandle<()>,
}

impl BlockScanner {
    /// Starts the scanner; `None` when `bytes_per_sec` is 0 (disabled).
    pub(crate) fn start(
        storage: Arc<Storage>,
        bytes_per_sec: u64,
        period: Duration,
    ) -> Result<Option<BlockScanner>, DatanodeError> {
        if bytes_per_sec == 0 {
            tracing::info!("block scanner disabled (scan_bytes_per_sec = 0)");
            return Ok(None);
        }
        let s = Arc::clone(&storage);
        let thread = std::thread::Builder::new()
            .name("block-scanner".into())
            .spawn(move || run(&s, bytes_per_sec, period))
            .map_err(|e| DatanodeError::io("block scanner thread", e))?;
        Ok(Some(BlockScanner { storage, thread }))
    }

    /// Stops the thread and waits for it (it stops within one batch read).
    pub(crate) fn stop(self) {
        {
            let mut s = self.storage.scan_queue.state.lock();
            s.stop = true;
            self.storage.scan_queue.cv.notify_all();
        }
        if self.thread.join().is_err() {
            tracing::error!("the block scanner thread panicked");
        }
    }
}

#[derive(Debug, Default)]
struct PassStats {
    scanned: u64,
    bad: u64,
    missing: u64,
    bytes: u64,
}

/// What one replica's scan found.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Verified(u64),
    Bad(String),
    Missing,
    Skipped,
    Stopped,
}

fn run(storage: &Storage, bytes_per_sec: u64, period: Duration) {
    tracing::info!(bytes_per_sec, period_ms = period.as_millis() as u64, "block scanner started");
    let queue = &storage.scan_queue;
    let mut throttle = Throttle::new(bytes_per_sec);
    loop {
        let pass_start = Instant::now();
        throttle.reset();
        let mut stats = PassStats::default();
        let ids = storage.finalized_ids();
        for id in ids.into_iter().map(Some).chain(std::iter::once(None)) {
            while let Some(s) = queue.next_suspect() {
                tracing::info!(block_id = s, "scanning a suspect replica");
                if !scan_counted(storage, s, &mut throttle, &mut stats) {
                    return;
                }
            }
            let Some(id) = id else { break };
            if !scan_counted(storage, id, &mut throttle, &mut stats) {
                return;
            }
        }
        tracing::info!(
            scanned = stats.scanned,
            bad = stats.bad,
            missing = stats.missing,
            bytes = stats.bytes,
            secs = pass_start.elapsed().as_secs(),
            "block scanner pass done"
        );
        queue.state.lock().passes += 1;
        let next = pass_start + period;
        loop {
            while let Some(s) = queue.next_suspect() {
                tracing::info!(block_id = s, "scanning a suspect replica");
                if !scan_counted(storage, s, &mut throttle, &mut stats) {
                    return;
                }
            }
            if Instant::now() >= next {
                break;
            }
            if !queue.wait(next, true) {
                return;
            }
        }
    }
}

/// Scans one replica and counts the outcome; false when stopped.
fn scan_counted(storage: &Storage, block_id: u64, throttle: &mut Throttle, stats: &mut PassStats) -> bool {
    match storage.scan_replica(block_id, throttle) {
        Outcome::Verified(n) => {
            stats.scanned += 1;
            stats.bytes += n;
        }
        Outcome::Bad(_) => {
            stats.scanned += 1;
            stats.bad += 1;
        }
        Outcome::Missing => stats.missing += 1,
        Outcome::Skipped => {}
        Outcome::Stopped => return false,
    }
    !storage.scan_queue.stopped()
}

impl Storage {
    /// Finalized replicas not known bad, by block id.
    fn finalized_ids(&self) -> Vec<u64> {
        let map = self.map.lock();
        let mut ids: Vec<u64> = map.finalized.iter().filter(|(_, i)| !i.bad).map(|(&id, _)| id).collect();
        ids.sort_unstable();
        ids
    }

    /// Verifies one finalized replica and acts on what is found (a replica
    /// that changed meanwhile, e.g. by a recovery, is left alone).
    fn scan_replica(&self, block_id: u64, throttle: &mut Throttle) -> Outcome {
        let Some(info) = self.map.lock().finalized.get(&block_id).copied() else { return Outcome::Skipped };
        if info.bad {
            return Outcome::Skipped;
        }
        let v = &self.volumes[info.volume];
        let (data_path, meta_path) = (v.data_path(block_id), v.meta_path(block_id, info.gen_stamp));
        let outcome = verify_files(block_id, info, data_path, meta_path, throttle, &self.scan_queue);
        let unchanged = || self.map.lock().finalized.get(&block_id).is_some_and(|i| i.gen_stamp == info.gen_stamp);
        match outcome {
            Outcome::Bad(reason) if unchanged() => {
                self.report_bad(block_id, info.gen_stamp, format!("block scanner: {reason}"));
                Outcome::Bad(reason)
            }
            Outcome::Missing if unchanged() => {
                self.drop_missing(block_id, info.gen_stamp);
                Outcome::Missing
            }
            Outcome::Bad(_) | Outcome::Missing => Outcome::Skipped,
            other => other,
        }
    }
}

/// Reads the replica's files and checks every chunk.
fn verify_files(
    block_id: u64,
    info: ReplicaInfo,
    data_path: PathBuf,
    meta_path: PathBuf,
    throttle: &mut Throttle,
    queue: &ScanQueue,
) -> Outcome {
    let len = info.len;
    let replica = match ReplicaReader::open(block_id, info, data_path.clone(), meta_path) {
        Ok(r) => r,
        Err(_) if !data_path.exists() => return Outcome::Missing,
        Err(e) => return Outcome::Bad(e.to_string()),
    };
    let bpc = replica.bytes_per_checksum();
    let batch = ((DEFAULT_PACKET_SIZE / bpc).max(1) * bpc) as u64;
    let (mut buf, mut sums) = (Vec::new(), Vec::new());
    let mut pos = 0u64;
    while pos < len {
        let n = batch.min(len - pos) as usize;
        if let Err(e) = replica.read_chunks(pos, n, &mut buf, &mut sums) {
            return Outcome::Bad(format!("reading at {pos}: {e}"));
        }
        if let Err(c) = verify_checksums(&buf, &sums, bpc) {
            let offset = pos + c as u64 * bpc as u64;
            return Outcome::Bad(format!("checksum mismatch at block offset {offset} ({})", data_path.display()));
        }
        pos += n as u64;
        if !throttle.consume(n as u64, queue) {
            return Outcome::Stopped;
        }
    }
    Outcome::Verified(len)
}

/// Keeps the read rate at `bytes_per_sec` (credit for idle time does not
/// pile up beyond about a second).
struct Throttle {
    bytes_per_sec: u64,
    start: Instant,
    bytes: u64,
}

impl Throttle {
    fn new(bytes_per_sec: u64) -> Throttle {
        Throttle { bytes_per_sec, start: Instant::now(), bytes: 0 }
    }

    fn reset(&mut self) {
        self.start = Instant::now();
        self.bytes = 0;
    }

    /// Accounts `n` bytes read, waiting as needed; false when stopped.
    fn consume(&mut self, n: u64, queue: &ScanQueue) -> bool {
        self.bytes += n;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_sec as f64);
        if due > self.start.elapsed() && !queue.wait(self.start + due, false) {
            return false;
        }
        if self.start.elapsed() >= Duration::from_secs(1) {
            self.reset();
        }
        true
    }
}

#[cfg(test)]
mod tests;
