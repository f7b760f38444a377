//! Spill files of a map attempt and their merge into the final output.

use super::sortbuf::CountingEmit;
use super::CombinerFactory;
use crate::api::{GroupedReader, TaskContext};
use crate::error::{Result, TaskError};
use crate::mapoutput::{IndexEntry, MapOutputWriter, MergeSource, MergedGroups, Merger, StreamRecords};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Most spills merged in one pass (open files, read buffers).
pub(crate) const MERGE_FACTOR: usize = 64;

/// A spill file in the scratch dir and its index (kept in memory).
pub(crate) struct Spill {
    pub(crate) path: PathBuf,
    pub(crate) index: Vec<IndexEntry>,
}

/// What a merge did.
#[derive(Debug, Default)]
pub(crate) struct MergeCounts {
    pub(crate) written: u64,
    pub(crate) combine_in: u64,
    pub(crate) combine_out: u64,
}

/// Merges `spills` (in spill order, so equal keys keep emit order) into a
/// new file at `out`, partition by partition, through a fresh combiner per
/// partition when `combine` is given. Each spill is read through a buffer
/// of `read_buf` bytes. Calls `tick` now and then (liveness).
pub(crate) fn merge(
    spills: &[Spill],
    out: &Path,
    partitions: u32,
    combine: Option<(&CombinerFactory, &TaskContext)>,
    read_buf: usize,
    tick: &dyn Fn(),
) -> Result<(Vec<IndexEntry>, MergeCounts)> {
    let mut sources = Vec::with_capacity(spills.len());
    for s in spills {
        if s.index.len() != partitions as usize {
            return Err(TaskError::io(
                s.path.display().to_string(),
                std::io::Error::other(format!("spill has {} partitions, expected {partitions}", s.index.len())),
            ));
        }
        let file = File::open(&s.path).map_err(|e| TaskError::io(format!("{}: open", s.path.display()), e))?;
        let len: u64 = s.index.iter().map(|e| e.length).sum();
        let mut r = StreamRecords::new(file, len, read_buf, s.path.display().to_string());
        r.start_segment(s.index.first().map_or(0, |e| e.length));
        sources.push(MergeSource::File(r));
    }
    let mut merger = Merger::new(sources)?;
    let mut w = MapOutputWriter::create(out)?;
    let mut counts = MergeCounts::default();
    let mut lens = vec![0u64; spills.len()];
    for p in 0..partitions as usize {
        if p > 0 {
            for (len, s) in lens.iter_mut().zip(spills) {
                *len = s.index[p].length;
            }
            merger.start_segments(&lens)?;
        }
        match combine {
            Some((make, ctx)) => {
                let mut groups = MergedGroups::new(merger);
                let mut emit = CountingEmit { out: &mut w, records: 0 };
                make()?.run(&mut groups, &mut emit, ctx)?;
                // A combiner that stopped early: skip the rest of the
                // partition so the next one starts in the right place.
                while groups.next_key()? {}
                counts.combine_in += groups.records();
                counts.combine_out += emit.records;
                merger = groups.into_merger();
            }
            None => {
                let mut n = 0u32;
                while let Some((k, v)) = merger.next_record()? {
                    w.append(k, v)?;
                    n = n.wrapping_add(1);
                    if n.is_multiple_of(65536) {
                        tick();
                    }
                }
            }
        }
        w.end_partition();
        tick();
    }
    counts.written = w.records();
    let index = w.finish()?;
    Ok((index, counts))
}

/// Deletes spill files, ignoring ones already gone.
pub(crate) fn remove(spills: &[Spill]) {
    for s in spills {
        if let Err(e) = std::fs::remove_file(&s.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("{}: remove: {e}", s.path.display());
        }
    }
}

/// Moves a file, copying when a rename is not possible (another
/// filesystem).
pub(crate) fn move_file(from: &Path, to: &Path) -> Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| TaskError::io(format!("{}: copy to {}", from.display(), to.display()), e))?;
    std::fs::remove_file(from).map_err(|e| TaskError::io(format!("{}: remove", from.display()), e))
}
