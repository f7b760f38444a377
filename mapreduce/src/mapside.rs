//! The map output collector: the [`Emit`] a map function writes into when
//! the job has reducers.
//!
//! Each record is partitioned and appended to a bounded in-memory buffer
//! (one arena for the bytes, a 24-byte entry per record;
//! `mapreduce.task.io.sort.mb`, default 100). When the buffer is
//! `mapreduce.map.sort.spill.percent` (0.8) full, its entries are sorted
//! by (partition, key bytes), equal keys in emit order, the combiner (if
//! any) runs on each partition, and the result is written as a spill file
//! in the scratch dir. At the end the spills are merged (a k-way merge,
//! combining again when there were at least
//! `mapreduce.map.combine.minspills` (3) spills) into the attempt's
//! `file.out` and its index. A map whose output fits the buffer never
//! spills: it is sorted and written straight to `file.out`.

mod sortbuf;
pub(crate) mod spills;

use crate::api::{Emit, ReduceRunner, Reporter, TaskContext, counters};
use crate::error::{Result, TaskError};
use crate::partition::PartitionFn;
use crate::mapoutput::{INDEX_FILE, IndexEntry, MapOutputWriter, OUTPUT_FILE, write_index};
use sortbuf::{META_BYTES, SortBuffer};
use spills::Spill;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Makes a fresh combiner (a [`ReduceRunner`] is consumed by one run; the
/// combiner runs once per partition of every spill and merge).
pub type CombinerFactory = Box<dyn Fn() -> Result<Box<dyn ReduceRunner>> + Send + Sync>;

/// Sizes of the collector, from the job configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// Number of partitions (the job's reduces).
    pub partitions: u32,
    /// Bytes of the sort buffer (`mapreduce.task.io.sort.mb`, default 100).
    pub sort_bytes: usize,
    /// Fraction of the buffer that triggers a spill
    /// (`mapreduce.map.sort.spill.percent`, default 0.8).
    pub spill_percent: f64,
    /// Spills from which the combiner runs again during the merge
    /// (`mapreduce.map.combine.minspills`, default 3).
    pub min_spills_for_combine: usize,
}

impl CollectorConfig {
    /// Reads the sizes from the job's conf; a bad value is an error naming
    /// the key.
    pub fn from_conf(conf: &BTreeMap<String, String>, partitions: u32) -> Result<CollectorConfig> {
        let sort_mb: u64 = parse_conf(conf, "mapreduce.task.io.sort.mb", 100)?;
        if !(1..=2047).contains(&sort_mb) {
            return Err(TaskError::Invalid(format!("mapreduce.task.io.sort.mb={sort_mb}: must be between 1 and 2047")));
        }
        let spill_percent: f64 = parse_conf(conf, "mapreduce.map.sort.spill.percent", 0.8)?;
        if !(spill_percent > 0.0 && spill_percent <= 1.0) {
            return Err(TaskError::Invalid(format!(
                "mapreduce.map.sort.spill.percent={spill_percent}: must be in (0, 1]"
            )));
        }
        let min_spills_for_combine = parse_conf(conf, "mapreduce.map.combine.minspills", 3usize)?;
        Ok(CollectorConfig { partitions, sort_bytes: (sort_mb << 20) as usize, spill_percent, min_spills_for_combine })
    }
}

/// A conf value parsed as `T`, or `default` when absent.
pub(crate) fn parse_conf<T: std::str::FromStr>(conf: &BTreeMap<String, String>, key: &str, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match conf.get(key) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e| TaskError::Invalid(format!("{key}={v}: {e}"))),
    }
}

/// Counts not yet added to the reporter (it takes a lock; per-record
/// updates would show in profiles).
#[derive(Default)]
struct Pending {
    records: u64,
    bytes: u64,
}

/// Records emitted between two counter updates.
const FLUSH_EVERY: u64 = 4096;

/// The map side's [`Emit`]: see the module docs.
pub struct MapOutputCollector {
    cfg: CollectorConfig,
    /// Spill when the buffer uses this many bytes.
    threshold: usize,
    partition: Box<dyn PartitionFn>,
    combiner: Option<CombinerFactory>,
    ctx: TaskContext,
    scratch_dir: PathBuf,
    output_dir: PathBuf,
    buf: SortBuffer,
    spills: Vec<Spill>,
    pending: Pending,
}

impl MapOutputCollector {
    /// A collector writing spills to `scratch_dir` and the final output to
    /// `output_dir`; counters go to `ctx.reporter`.
    pub fn new(
        cfg: CollectorConfig,
        partition: Box<dyn PartitionFn>,
        combiner: Option<CombinerFactory>,
        ctx: TaskContext,
        scratch_dir: PathBuf,
        output_dir: PathBuf,
    ) -> MapOutputCollector {
        // Offsets in the arena are u32 (sort_bytes is at most 2047 MiB).
        let threshold = ((cfg.sort_bytes as f64 * cfg.spill_percent) as usize).clamp(META_BYTES + 1, u32::MAX as usize);
        MapOutputCollector {
            cfg,
            threshold,
            partition,
            combiner,
            ctx,
            scratch_dir,
            output_dir,
            buf: SortBuffer::default(),
            spills: Vec::new(),
            pending: Pending::default(),
        }
    }

    fn reporter(&self) -> &Reporter {
        &self.ctx.reporter
    }

    fn flush_counters(&mut self) {
        let p = std::mem::take(&mut self.pending);
        if p.records > 0 {
            let r = &self.ctx.reporter;
            r.incr(counters::TASK, counters::MAP_OUTPUT_RECORDS, p.records as i64);
            r.incr(counters::TASK, counters::MAP_OUTPUT_BYTES, p.bytes as i64);
        }
    }

    fn combine(&self) -> Option<(&CombinerFactory, &TaskContext)> {
        self.combiner.as_ref().map(|f| (f, &self.ctx))
    }

    /// Sorts the buffer and writes it to `path` (combining); returns the index.
    fn write_buffer(&mut self, path: &std::path::Path) -> Result<Vec<IndexEntry>> {
        self.buf.sort();
        let mut w = MapOutputWriter::create(path)?;
        let (c_in, c_out) = self.buf.write_sorted(&mut w, self.cfg.partitions, self.combine())?;
        let written = w.records();
        let index = w.finish()?;
        let r = self.reporter();
        r.incr(counters::TASK, counters::SPILLED_RECORDS, written as i64);
        if self.combiner.is_some() {
            r.incr(counters::TASK, counters::COMBINE_INPUT_RECORDS, c_in as i64);
            r.incr(counters::TASK, counters::COMBINE_OUTPUT_RECORDS, c_out as i64);
        }
        self.buf.clear();
        Ok(index)
    }

    fn spill_path(&self) -> PathBuf {
        self.scratch_dir.join(format!("spill{}.out", self.spills.len()))
    }

    /// Sorts and spills the buffer to a new spill file.
    fn spill(&mut self) -> Result<()> {
        self.flush_counters();
        let path = self.spill_path();
        let index = self.write_buffer(&path)?;
        self.spills.push(Spill { path, index });
        Ok(())
    }

    /// A record too big for the buffer goes alone to its own spill.
    fn spill_single(&mut self, partition: u32, key: &[u8], value: &[u8]) -> Result<()> {
        if !self.buf.is_empty() {
            self.spill()?;
        }
        let path = self.spill_path();
        let mut w = MapOutputWriter::create(&path)?;
        for p in 0..self.cfg.partitions {
            if p == partition {
                w.append(key, value)?;
            }
            w.end_partition();
        }
        let index = w.finish()?;
        self.reporter().incr(counters::TASK, counters::SPILLED_RECORDS, 1);
        self.spills.push(Spill { path, index });
        Ok(())
    }

    /// Spills and merges what is left into `file.out` and its index in the
    /// output dir; returns the index (one entry per partition).
    pub fn finish(mut self) -> Result<Vec<IndexEntry>> {
        self.flush_counters();
        let out = self.output_dir.join(OUTPUT_FILE);
        let index = if self.spills.is_empty() {
            // Everything fit in memory: no spill file at all.
            self.write_buffer(&out)?
        } else {
            if !self.buf.is_empty() {
                self.spill()?;
            }
            self.buf.release();
            self.merge_spills(&out)?
        };
        write_index(&self.output_dir.join(INDEX_FILE), &index)?;
        Ok(index)
    }

    /// Merges the spills into `out` (several passes when there are more
    /// than [`spills::MERGE_FACTOR`]).
    fn merge_spills(&mut self, out: &std::path::Path) -> Result<Vec<IndexEntry>> {
        let reporter = self.ctx.reporter.clone();
        let tick = move || reporter.progress();
        let mut passes = 0;
        while self.spills.len() > spills::MERGE_FACTOR {
            let first: Vec<Spill> = self.spills.drain(..spills::MERGE_FACTOR).collect();
            let path = self.scratch_dir.join(format!("merge{passes}.out"));
            let (index, counts) = spills::merge(&first, &path, self.cfg.partitions, None, self.read_buf(first.len()), &tick)?;
            self.reporter().incr(counters::TASK, counters::SPILLED_RECORDS, counts.written as i64);
            spills::remove(&first);
            self.spills.insert(0, Spill { path, index });
            passes += 1;
        }
        if self.spills.len() == 1 {
            spills::move_file(&self.spills[0].path, out)?;
            return Ok(std::mem::take(&mut self.spills[0].index));
        }
        let combine = if self.spills.len() >= self.cfg.min_spills_for_combine { self.combine() } else { None };
        let (index, counts) =
            spills::merge(&self.spills, out, self.cfg.partitions, combine, self.read_buf(self.spills.len()), &tick)?;
        let r = self.reporter();
        r.incr(counters::TASK, counters::SPILLED_RECORDS, counts.written as i64);
        if combine.is_some() {
            r.incr(counters::TASK, counters::COMBINE_INPUT_RECORDS, counts.combine_in as i64);
            r.incr(counters::TASK, counters::COMBINE_OUTPUT_RECORDS, counts.combine_out as i64);
        }
        spills::remove(&self.spills);
        Ok(index)
    }

    /// Read buffer per spill in a merge: the sort buffer's budget shared.
    fn read_buf(&self, spills: usize) -> usize {
        (self.cfg.sort_bytes / spills.max(1)).clamp(64 << 10, 4 << 20)
    }

    /// Spills written so far.
    pub fn spill_count(&self) -> usize {
        self.spills.len()
    }
}

impl Emit for MapOutputCollector {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let p = self.partition.partition(key);
        if p >= self.cfg.partitions {
            return Err(TaskError::Invalid(format!(
                "partitioner put a key in partition {p} of {}",
                self.cfg.partitions
            )));
        }
        let size = key.len() + value.len();
        self.pending.records += 1;
        self.pending.bytes += size as u64;
        if self.pending.records >= FLUSH_EVERY {
            self.flush_counters();
        }
        if self.buf.used() + size + META_BYTES > self.threshold {
            if size + META_BYTES > self.threshold {
                return self.spill_single(p, key, value);
            }
            self.spill()?;
        }
        if self.buf.is_empty() {
            self.buf.reserve(self.threshold.min(64 << 20));
        }
        self.buf.push(p, key, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
