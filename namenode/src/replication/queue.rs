//! The under-replicated block queue (HDFS `LowRedundancyBlocks`): one FIFO
//! per priority level, a block in at most one level. Entries are replaced
//! lazily: the map says where a block really is, so moving or removing a
//! block leaves a stale entry that is skipped when popped.

use std::collections::{HashMap, VecDeque};

/// One live replica, or only replicas on out-of-service nodes.
pub(crate) const HIGHEST: u8 = 0;
/// Live replicas * 3 < expected.
pub(crate) const VERY_UNDER: u8 = 1;
/// Other under-replicated blocks.
pub(crate) const UNDER: u8 = 2;
/// Enough replicas, but on too few racks.
pub(crate) const MIS_REPLICATED: u8 = 3;
/// Nothing to copy from (every replica corrupt, or none): kept for counts.
pub(crate) const CORRUPT: u8 = 4;
pub(crate) const LEVELS: usize = 5;

#[derive(Debug, Default)]
pub(crate) struct NeededQueue {
    levels: [VecDeque<(u64, u64)>; LEVELS],
    /// Block → (level, sequence of its live entry).
    at: HashMap<u64, (u8, u64)>,
    seq: u64,
}

impl NeededQueue {
    /// Puts `id` at `level` (at the back when it moves or is new).
    pub(crate) fn update(&mut self, id: u64, level: u8) {
        let level = level.min(CORRUPT);
        if let Some((l, _)) = self.at.get(&id)
            && *l == level
        {
            return;
        }
        self.remove(id);
        self.seq += 1;
        self.at.insert(id, (level, self.seq));
        self.levels[level as usize].push_back((id, self.seq));
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.at.remove(&id);
        // Drop stale entries at the fronts cheaply; the rest go when popped.
        for q in &mut self.levels {
            while let Some((front, seq)) = q.front().copied() {
                if self.at.get(&front).is_some_and(|(_, s)| *s == seq) {
                    break;
                }
                q.pop_front();
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn level_of(&self, id: u64) -> Option<u8> {
        self.at.get(&id).map(|(l, _)| *l)
    }

    pub(crate) fn len(&self) -> usize {
        self.at.len()
    }

    #[cfg(test)]
    pub(crate) fn level_len(&self, level: u8) -> usize {
        self.at.values().filter(|(l, _)| *l == level).count()
    }

    /// Takes up to `n` blocks in priority order from the levels that can be
    /// worked on (not CORRUPT); they leave the queue (the caller puts back
    /// those still needing work, at the back of their level).
    pub(crate) fn take(&mut self, n: usize) -> Vec<(u64, u8)> {
        let mut out = Vec::with_capacity(n.min(self.len()));
        for level in 0..CORRUPT {
            let q = &mut self.levels[level as usize];
            while out.len() < n {
                let Some((id, seq)) = q.pop_front() else { break };
                if self.at.get(&id) == Some(&(level, seq)) {
                    self.at.remove(&id);
                    out.push((id, level));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_come_out_by_priority_then_age() {
        let mut q = NeededQueue::default();
        q.update(10, UNDER);
        q.update(11, HIGHEST);
        q.update(12, VERY_UNDER);
        q.update(13, CORRUPT);
        q.update(14, MIS_REPLICATED);
        q.update(15, HIGHEST);
        q.update(10, UNDER); // no move, keeps its place
        assert_eq!(q.len(), 6);
        assert_eq!(q.level_len(HIGHEST), 2);
        assert_eq!(q.take(3), vec![(11, HIGHEST), (15, HIGHEST), (12, VERY_UNDER)]);
        assert_eq!(q.level_of(11), None);
        // Moving a block puts it at the back of its new level.
        q.update(16, UNDER);
        q.update(10, VERY_UNDER);
        q.update(10, UNDER);
        q.remove(14);
        assert_eq!(q.take(10), vec![(16, UNDER), (10, UNDER)]);
        assert_eq!(q.len(), 1, "CORRUPT blocks stay for the counts");
        assert_eq!(q.level_of(13), Some(CORRUPT));
        assert_eq!(q.level_len(MIS_REPLICATED), 0);
    }
}
