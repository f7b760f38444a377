//! The shuffle client: asks the jobtracker where map outputs are, fetches
//! this reducer's partition of each from the worker holding it, a few at a
//! time, and keeps the results in memory or in scratch files.

use super::segment::{MemoryBudget, ScratchFile, Segment, SegmentData};
use super::{ShuffleConfig, ShuffleTask};
use crate::api::counters;
use crate::error::{Result, TaskError};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tusk_proto::compute::task_umbilical_client::TaskUmbilicalClient;
use tusk_proto::compute::worker_service_client::WorkerServiceClient;
use tusk_proto::compute::{FetchMapOutputRequest, GetMapOutputsRequest, ReportFetchFailureRequest};

/// Deadline of one umbilical call.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Consecutive failed polls of the jobtracker before the attempt gives up.
const MAX_POLL_FAILURES: u32 = 150;

/// A lazily connecting channel to `host:port`; the error names the address.
pub(crate) fn channel(addr: &str, what: &str) -> Result<Channel> {
    let uri = if addr.contains("://") { addr.to_string() } else { format!("http://{addr}") };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| TaskError::Invalid(format!("{what} address '{addr}': {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20);
    Ok(endpoint.connect_lazy())
}

/// Where a map's output is, as the jobtracker last said.
#[derive(Debug, Clone, PartialEq)]
struct Location {
    attempt_id: String,
    worker_addr: String,
}

/// What the shuffle knows about one map.
#[derive(Default)]
struct MapState {
    wanted: Option<Location>,
    have: Option<Segment>,
    /// Attempt being fetched, and how to cancel it.
    in_flight: Option<(String, AbortHandle)>,
    /// Failed tries on the wanted attempt.
    failures: u32,
    retry_at: Option<Instant>,
}

impl MapState {
    fn is_current(&self) -> bool {
        matches!((&self.wanted, &self.have), (Some(w), Some(h)) if w.attempt_id == h.attempt_id)
    }

    fn wants_fetch(&self, now: Instant) -> bool {
        self.wanted.is_some() && !self.is_current() && self.in_flight.is_none() && self.retry_at.is_none_or(|t| t <= now)
    }
}

/// Result of one fetch task.
struct Outcome {
    map_index: usize,
    attempt_id: String,
    result: std::result::Result<Segment, String>,
}

pub(crate) struct Shuffle<'a> {
    task: &'a ShuffleTask,
    cfg: &'a ShuffleConfig,
    umbilical: TaskUmbilicalClient<Channel>,
    workers: HashMap<String, WorkerServiceClient<Channel>>,
    budget: Arc<MemoryBudget>,
    maps: Vec<MapState>,
    fetches: JoinSet<Outcome>,
    /// Fetch task id → map index (to clear a cancelled fetch).
    fetch_ids: HashMap<tokio::task::Id, usize>,
    listed: bool,
    poll_failures: u32,
}

impl<'a> Shuffle<'a> {
    pub(crate) fn new(task: &'a ShuffleTask, cfg: &'a ShuffleConfig) -> Result<Shuffle<'a>> {
        let umbilical = TaskUmbilicalClient::new(channel(&task.jobtracker, "jobtracker")?);
        Ok(Shuffle {
            task,
            cfg,
            umbilical,
            workers: HashMap::new(),
            budget: MemoryBudget::new(cfg.memory_bytes),
            maps: (0..task.num_maps).map(|_| MapState::default()).collect(),
            fetches: JoinSet::new(),
            fetch_ids: HashMap::new(),
            listed: false,
            poll_failures: 0,
        })
    }

    /// Fetches every map's partition; returns them in map order.
    pub(crate) async fn run(mut self) -> Result<Vec<Segment>> {
        let mut poll = tokio::time::interval(self.cfg.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.listed && self.maps.iter().all(MapState::is_current) {
                break;
            }
            self.dispatch()?;
            let next_retry = self.next_retry();
            tokio::select! {
                _ = poll.tick() => self.poll().await?,
                Some(done) = self.fetches.join_next_with_id(), if !self.fetches.is_empty() => match done {
                    Ok((id, outcome)) => {
                        self.fetch_ids.remove(&id);
                        self.finished(outcome).await;
                    }
                    Err(e) => {
                        // Cancelled because the map's attempt changed (or a
                        // fetch panicked): it may be tried again.
                        if let Some(i) = self.fetch_ids.remove(&e.id()) {
                            self.maps[i].in_flight = None;
                        }
                    }
                },
                _ = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now)), if next_retry.is_some() => {}
            }
        }
        self.fetches.abort_all();
        let mut segments = Vec::with_capacity(self.maps.len());
        for m in self.maps {
            if let Some(s) = m.have {
                segments.push(s);
            }
        }
        Ok(segments)
    }

    /// Earliest retry time of a map waiting for one.
    fn next_retry(&self) -> Option<Instant> {
        self.maps
            .iter()
            .filter(|m| m.wanted.is_some() && !m.is_current() && m.in_flight.is_none())
            .filter_map(|m| m.retry_at)
            .min()
    }

    /// Asks the jobtracker where map outputs are and updates what to fetch.
    async fn poll(&mut self) -> Result<()> {
        let t = self.task;
        self.task.reporter.progress();
        let req = GetMapOutputsRequest {
            job_id: t.job_id.clone(),
            attempt_id: t.attempt_id.clone(),
            upstream_stage: t.upstream_stage,
        };
        let resp = match tokio::time::timeout(RPC_TIMEOUT, self.umbilical.get_map_outputs(req)).await {
            Ok(Ok(r)) => r.into_inner(),
            failed => {
                let why = match failed {
                    Ok(Err(status)) => status.message().to_string(),
                    _ => format!("no answer in {} s", RPC_TIMEOUT.as_secs()),
                };
                self.poll_failures += 1;
                tracing::warn!("jobtracker {}: GetMapOutputs: {why}", t.jobtracker);
                if self.poll_failures >= MAX_POLL_FAILURES {
                    return Err(TaskError::Shuffle(format!(
                        "jobtracker {} did not answer {} polls for map outputs: {why}",
                        t.jobtracker, self.poll_failures
                    )));
                }
                return Ok(());
            }
        };
        self.poll_failures = 0;
        if resp.abort {
            return Err(TaskError::Aborted("the jobtracker stopped this attempt".to_string()));
        }
        // The jobtracker's count wins over the one in the task spec (0: not said).
        if resp.total_maps > 0 && resp.total_maps as usize != self.maps.len() {
            self.maps.resize_with(resp.total_maps as usize, MapState::default);
        }
        let mut listed: Vec<Option<Location>> = vec![None; self.maps.len()];
        for o in resp.outputs {
            match listed.get_mut(o.map_index as usize) {
                Some(slot) => *slot = Some(Location { attempt_id: o.attempt_id, worker_addr: o.worker_addr }),
                None => tracing::warn!("jobtracker listed map {} of {}", o.map_index, self.maps.len()),
            }
        }
        for (m, loc) in self.maps.iter_mut().zip(listed) {
            if m.wanted == loc {
                continue;
            }
            m.failures = 0;
            m.retry_at = None;
            // A new attempt supersedes what we hold or are fetching.
            let new_attempt = loc.as_ref().map(|l| l.attempt_id.as_str());
            if let Some((a, h)) = &m.in_flight
                && Some(a.as_str()) != new_attempt
            {
                h.abort();
            }
            if let (Some(h), Some(a)) = (&m.have, new_attempt)
                && h.attempt_id != a
            {
                m.have = None;
            }
            m.wanted = loc;
        }
        self.listed = true;
        self.update_progress();
        Ok(())
    }

    fn update_progress(&self) {
        let n = self.maps.iter().filter(|m| m.is_current()).count();
        self.task.fetched.store(n as u64, Ordering::Relaxed);
    }

    /// Starts fetches up to the parallel limit, spreading them over workers.
    fn dispatch(&mut self) -> Result<()> {
        let now = Instant::now();
        let mut per_addr: HashMap<&str, usize> = HashMap::new();
        for m in &self.maps {
            if let (Some(_), Some(w)) = (&m.in_flight, &m.wanted) {
                *per_addr.entry(w.worker_addr.as_str()).or_default() += 1;
            }
        }
        let mut candidates: Vec<(usize, usize)> = self
            .maps
            .iter()
            .enumerate()
            .filter(|(_, m)| m.wants_fetch(now))
            .filter_map(|(i, m)| m.wanted.as_ref().map(|w| (per_addr.get(w.worker_addr.as_str()).copied().unwrap_or(0), i)))
            .collect();
        candidates.sort_unstable();
        let free = self.cfg.parallel_copies.saturating_sub(self.fetches.len());
        for (_, i) in candidates.into_iter().take(free) {
            self.start_fetch(i)?;
        }
        Ok(())
    }

    fn start_fetch(&mut self, i: usize) -> Result<()> {
        let Some(loc) = self.maps[i].wanted.clone() else { return Ok(()) };
        let client = match self.workers.get(&loc.worker_addr) {
            Some(c) => c.clone(),
            None => {
                let c = WorkerServiceClient::new(channel(&loc.worker_addr, "worker")?)
                    .max_decoding_message_size(16 << 20);
                self.workers.insert(loc.worker_addr.clone(), c.clone());
                c
            }
        };
        let req = FetchMapOutputRequest {
            job_id: self.task.job_id.clone(),
            attempt_id: loc.attempt_id.clone(),
            partition: self.task.partition,
            reader_host: self.task.host.clone(),
        };
        let job = FetchJob {
            client,
            req,
            map_index: i,
            worker_addr: loc.worker_addr.clone(),
            budget: Arc::clone(&self.budget),
            max_in_memory: self.cfg.max_in_memory_segment,
            path: self.task.scratch_dir.join(format!("map_{i:06}_{}.seg", loc.attempt_id)),
            chunk_timeout: self.cfg.chunk_timeout,
        };
        let attempt_id = loc.attempt_id.clone();
        let handle = self.fetches.spawn(async move {
            let result = job.run().await;
            Outcome { map_index: i, attempt_id, result }
        });
        self.fetch_ids.insert(handle.id(), i);
        self.maps[i].in_flight = Some((loc.attempt_id, handle));
        Ok(())
    }

    /// Takes a fetch's result, or counts its failure.
    async fn finished(&mut self, o: Outcome) {
        let Some(m) = self.maps.get_mut(o.map_index) else { return };
        m.in_flight = None;
        let wanted = m.wanted.as_ref().is_some_and(|w| w.attempt_id == o.attempt_id);
        match o.result {
            Ok(seg) if wanted => {
                self.task.reporter.incr(counters::TASK, counters::REDUCE_SHUFFLE_BYTES, seg.len as i64);
                m.have = Some(seg);
                m.failures = 0;
                m.retry_at = None;
                self.update_progress();
            }
            Ok(_) => {} // superseded while it was fetched: dropped
            Err(reason) if wanted => {
                m.failures += 1;
                let backoff = &self.cfg.retry_backoff;
                let wait = backoff.get(m.failures as usize - 1).or(backoff.last()).copied().unwrap_or_default();
                m.retry_at = Some(Instant::now() + wait);
                tracing::warn!("fetching map {} ({}): try {}: {reason}", o.map_index, o.attempt_id, m.failures);
                if m.failures >= self.cfg.tries_before_report {
                    self.report_failure(&o.attempt_id, &reason).await;
                }
            }
            Err(_) => {}
        }
    }

    async fn report_failure(&mut self, map_attempt: &str, reason: &str) {
        let req = ReportFetchFailureRequest {
            job_id: self.task.job_id.clone(),
            reduce_attempt_id: self.task.attempt_id.clone(),
            map_attempt_id: map_attempt.to_string(),
            reason: reason.to_string(),
        };
        match tokio::time::timeout(RPC_TIMEOUT, self.umbilical.report_fetch_failure(req)).await {
            Ok(Ok(_)) => {}
            Ok(Err(s)) => tracing::warn!("jobtracker {}: ReportFetchFailure: {}", self.task.jobtracker, s.message()),
            Err(_) => tracing::warn!("jobtracker {}: ReportFetchFailure: no answer", self.task.jobtracker),
        }
    }
}

/// Checks that `got` bytes with CRC32C `crc` from `from` are the whole
/// partition announced (`total` bytes, CRC32C `want`).
fn whole(from: &str, got: u64, total: u64, crc: u32, want: u32) -> std::result::Result<(), String> {
    if got != total {
        return Err(format!("{from}: sent {got} of {total} bytes"));
    }
    if crc != want {
        return Err(format!("{from}: checksum mismatch (got {crc:#010x}, expected {want:#010x})"));
    }
    Ok(())
}

/// One try at fetching one map's partition.
struct FetchJob {
    client: WorkerServiceClient<Channel>,
    req: FetchMapOutputRequest,
    map_index: usize,
    worker_addr: String,
    budget: Arc<MemoryBudget>,
    max_in_memory: u64,
    path: std::path::PathBuf,
    chunk_timeout: Duration,
}

impl FetchJob {
    async fn run(mut self) -> std::result::Result<Segment, String> {
        let addr = self.worker_addr.clone();
        let mut stream = match self.client.fetch_map_output(self.req.clone()).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(format!("worker {addr}: {}", s.message())),
        };
        let chunk_timeout = self.chunk_timeout;
        let mut next = async || match tokio::time::timeout(chunk_timeout, stream.message()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(s)) => Err(format!("worker {addr}: {}", s.message())),
            Err(_) => Err(format!("worker {addr}: no data for {} s", chunk_timeout.as_secs())),
        };
        // A worker may send nothing at all for an empty partition.
        let Some(first) = next().await? else {
            return Ok(self.segment(0, SegmentData::Memory { data: Vec::new(), _reservation: None }));
        };
        if !first.local_path.is_empty() {
            drop(stream);
            return match self.read_local(&first).await {
                Ok(segment) => Ok(segment),
                Err(why) => {
                    tracing::debug!("map output {} on this host: {why}; fetching it over the network", self.req.attempt_id);
                    self.req.reader_host.clear();
                    Box::pin(self.run()).await
                }
            };
        }
        let total = first.total_len;
        let want_crc = first.crc32c;
        let mut crc = 0u32;
        let mut got = 0u64;
        let mut take = |data: &[u8]| -> std::result::Result<(), String> {
            got += data.len() as u64;
            if got > total {
                return Err(format!("worker {addr}: sent more than the {total} bytes announced"));
            }
            crc = crc32c::crc32c_append(crc, data);
            Ok(())
        };
        let reservation = if total <= self.max_in_memory { self.budget.try_reserve(total) } else { None };
        let data = if let Some(reservation) = reservation {
            let mut buf = Vec::with_capacity(total as usize);
            take(&first.data)?;
            buf.extend_from_slice(&first.data);
            while let Some(c) = next().await? {
                take(&c.data)?;
                buf.extend_from_slice(&c.data);
            }
            SegmentData::Memory { data: buf, _reservation: Some(reservation) }
        } else {
            let file = ScratchFile::new(self.path.clone());
            let io = |e: std::io::Error| format!("{}: write: {e}", self.path.display());
            let f = tokio::fs::File::create(file.path()).await.map_err(io)?;
            let mut w = tokio::io::BufWriter::with_capacity(1 << 20, f);
            take(&first.data)?;
            w.write_all(&first.data).await.map_err(io)?;
            while let Some(c) = next().await? {
                take(&c.data)?;
                w.write_all(&c.data).await.map_err(io)?;
            }
            w.flush().await.map_err(io)?;
            SegmentData::File(file)
        };
        whole(&format!("worker {addr}"), got, total, crc, want_crc)?;
        Ok(self.segment(total, data))
    }

    /// Reads a partition the worker named on this host straight from its
    /// file, into memory, checking its CRC. Fails (and the caller streams
    /// it instead) when the file cannot be read here or the partition is
    /// too big for the memory budget.
    async fn read_local(&self, chunk: &tusk_proto::compute::MapOutputChunk) -> std::result::Result<Segment, String> {
        use std::io::{Read, Seek, SeekFrom};
        let (total, offset, want_crc) = (chunk.total_len, chunk.local_offset, chunk.crc32c);
        let path = std::path::PathBuf::from(&chunk.local_path);
        let reservation = if total <= self.max_in_memory { self.budget.try_reserve(total) } else { None };
        let Some(reservation) = reservation else {
            return Err(format!("{total} bytes do not fit in the shuffle's memory"));
        };
        let p = path.clone();
        let data = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut f = std::fs::File::open(&p)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(total as usize);
            f.take(total).read_to_end(&mut buf)?;
            Ok(buf)
        })
        .await
        .map_err(|e| format!("reading {}: {e}", path.display()))?
        .map_err(|e| format!("{}: {e}", path.display()))?;
        whole(&path.display().to_string(), data.len() as u64, total, crc32c::crc32c(&data), want_crc)?;
        Ok(self.segment(total, SegmentData::Memory { data, _reservation: Some(reservation) }))
    }

    fn segment(&self, len: u64, data: SegmentData) -> Segment {
        Segment { map_index: self.map_index as u32, attempt_id: self.req.attempt_id.clone(), len, data }
    }
}
