//! The reduce side of a task: the shuffle and the merge.
//!
//! [`shuffle`] polls the jobtracker (`TaskUmbilical.GetMapOutputs`, every
//! ~200 ms) for the latest successful attempt of each map and fetches this
//! reducer's partition of each from the worker holding it
//! (`WorkerService.FetchMapOutput`), `mapreduce.reduce.shuffle.parallelcopies`
//! (5) at a time, spread over workers. Every segment is checked against its
//! length and CRC32C. Small segments stay in memory within a budget
//! (`tusk.reduce.shuffle.memory.mb`, default 256; one segment at most a
//! quarter of it), bigger ones go to scratch files. A failed fetch is
//! retried after 100 ms, 400 ms, then every second; from the third failure
//! on each failure is reported (`ReportFetchFailure`) so the jobtracker can
//! re-run the map. When the jobtracker lists a new attempt for a map, what
//! we hold or fetch of the old one is dropped and the new one is fetched.
//!
//! [`merge_segments`] then merges all segments (a k-way merge, keys as
//! bytes, equal keys in map order) into a [`GroupedReader`](crate::api::GroupedReader).

mod fetch;
mod segment;

pub use segment::Segment;

use crate::api::Reporter;
use crate::error::{Result, TaskError};
use crate::mapoutput::{IndexEntry, MergeSource, MergedGroups, Merger, OwnedRecords, StreamRecords};
use crate::mapside::parse_conf;
use crate::mapside::spills::{self, MERGE_FACTOR, Spill};
use segment::SegmentData;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// How the shuffle behaves, from the job configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ShuffleConfig {
    /// Fetches at once (`mapreduce.reduce.shuffle.parallelcopies`, 5).
    pub parallel_copies: usize,
    /// Bytes of segments kept in memory (`tusk.reduce.shuffle.memory.mb`, 256).
    pub memory_bytes: u64,
    /// Bigger segments go to disk (a quarter of `memory_bytes`).
    pub max_in_memory_segment: u64,
    /// Between two GetMapOutputs polls.
    pub poll_interval: Duration,
    /// Wait after the 1st, 2nd, ... failure of a fetch (the last repeats).
    pub retry_backoff: Vec<Duration>,
    /// Failed tries of one output before each further failure is reported.
    pub tries_before_report: u32,
    /// Longest wait for the next chunk of a fetch.
    pub chunk_timeout: Duration,
}

impl ShuffleConfig {
    /// Reads the settings from the job's conf; a bad value is an error
    /// naming the key.
    pub fn from_conf(conf: &BTreeMap<String, String>) -> Result<ShuffleConfig> {
        let parallel_copies: usize = parse_conf(conf, "mapreduce.reduce.shuffle.parallelcopies", 5)?;
        if parallel_copies == 0 {
            return Err(TaskError::Invalid("mapreduce.reduce.shuffle.parallelcopies=0: must be at least 1".into()));
        }
        let memory_mb: u64 = parse_conf(conf, "tusk.reduce.shuffle.memory.mb", 256)?;
        let memory_bytes = memory_mb.saturating_mul(1 << 20);
        Ok(ShuffleConfig {
            parallel_copies,
            memory_bytes,
            max_in_memory_segment: memory_bytes / 4,
            poll_interval: Duration::from_millis(200),
            retry_backoff: vec![Duration::from_millis(100), Duration::from_millis(400), Duration::from_secs(1)],
            tries_before_report: 3,
            chunk_timeout: Duration::from_secs(60),
        })
    }
}

/// Who is shuffling what.
#[derive(Debug, Clone)]
pub struct ShuffleTask {
    pub job_id: String,
    /// The reduce attempt.
    pub attempt_id: String,
    pub partition: u32,
    pub num_maps: u32,
    /// Jobtracker RPC address (TaskUmbilical).
    pub jobtracker: String,
    /// Where segments too big for memory go.
    pub scratch_dir: PathBuf,
    /// Gets REDUCE_SHUFFLE_BYTES; ticked at every poll (liveness).
    pub reporter: Reporter,
    /// Maps whose current output is held (progress).
    pub fetched: Arc<AtomicU64>,
    /// The upstream stage whose outputs are fetched (SQL jobs read several);
    /// `None`: the asking stage's first upstream (the maps).
    pub upstream_stage: Option<u32>,
    /// Host of the worker running this task ([`crate::control::WORKER_HOST_ENV`]):
    /// map outputs on that host are read from their files, not streamed.
    /// Empty: always streamed.
    pub host: String,
}

/// Fetches this reducer's partition of every map; the segments come back
/// in map order. Fails when the jobtracker aborts the attempt or stays
/// unreachable; fetch failures are retried (see the module docs).
pub async fn shuffle(task: &ShuffleTask, cfg: &ShuffleConfig) -> Result<Vec<Segment>> {
    if task.num_maps == 0 {
        return Ok(Vec::new());
    }
    fetch::Shuffle::new(task, cfg)?.run().await
}

/// Merges segments into one grouped stream. Segments merge in map order
/// (equal keys: map 0's values first). More than [`MERGE_FACTOR`] segments
/// on disk are first merged into bigger scratch files, a factor at a time.
pub fn merge_segments(mut segments: Vec<Segment>, scratch_dir: &Path) -> Result<MergedGroups> {
    segments.sort_by_key(|s| s.map_index);
    let files = segments.iter().filter(|s| !s.in_memory()).count();
    if files > MERGE_FACTOR {
        segments = premerge(segments, scratch_dir)?;
    }
    let files = segments.iter().filter(|s| !s.in_memory()).count().max(1);
    let read_buf = ((64usize << 20) / files).clamp(64 << 10, 1 << 20);
    let mut sources = Vec::with_capacity(segments.len());
    for s in segments {
        if s.len == 0 {
            continue;
        }
        let name = format!("map {} ({})", s.map_index, s.attempt_id);
        match s.data {
            SegmentData::Memory { data, .. } => sources.push(MergeSource::Memory(OwnedRecords::new(data, name))),
            SegmentData::File(f) => {
                // Opened, the file can go: the reader keeps it alive.
                let file = std::fs::File::open(f.path()).map_err(|e| TaskError::io(format!("{}: open", f.path().display()), e))?;
                sources.push(MergeSource::File(StreamRecords::new(file, s.len, read_buf, f.path().display().to_string())));
            }
        }
    }
    Ok(MergedGroups::new(Merger::new(sources)?))
}

/// Merges the on-disk segments a factor at a time until few are left; the
/// in-memory ones stay. Order is kept: a merged file takes the place of its
/// first segment.
fn premerge(segments: Vec<Segment>, scratch_dir: &Path) -> Result<Vec<Segment>> {
    let (mut files, memory): (Vec<Segment>, Vec<Segment>) = segments.into_iter().partition(|s| !s.in_memory());
    let mut pass = 0;
    while files.len() > MERGE_FACTOR {
        let batch: Vec<Segment> = files.drain(..MERGE_FACTOR).collect();
        let first = batch[0].map_index;
        let spills: Vec<Spill> = batch
            .iter()
            .filter_map(|s| match &s.data {
                SegmentData::File(f) => Some(Spill {
                    path: f.path().to_path_buf(),
                    index: vec![IndexEntry { offset: 0, length: s.len, crc32c: 0 }],
                }),
                SegmentData::Memory { .. } => None,
            })
            .collect();
        let path = scratch_dir.join(format!("premerge{pass}.seg"));
        let (index, _) = spills::merge(&spills, &path, 1, None, 1 << 20, &|| ())?;
        let len = index.first().map_or(0, |e| e.length);
        drop(batch); // deletes the merged files
        files.push(Segment::from_file(first, "merged", path, len));
        files.sort_by_key(|s| s.map_index);
        pass += 1;
    }
    let mut all = memory;
    all.extend(files);
    all.sort_by_key(|s| s.map_index);
    Ok(all)
}

#[cfg(test)]
mod tests;
