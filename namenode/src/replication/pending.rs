//! Replications sent to datanodes and not yet confirmed (HDFS
//! `PendingReconstructionBlocks`): block → source, targets and when. A
//! target's incremental report completes its part; entries older than the
//! timeout are dropped so the block is checked (and queued) again. Each
//! entry is one outgoing stream of its source, which throttles sources.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::blocks::DnIndex;

#[derive(Debug)]
struct Entry {
    source: DnIndex,
    targets: Vec<DnIndex>,
    at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Pending {
    map: HashMap<u64, Entry>,
    outgoing: HashMap<DnIndex, u32>,
}

impl Pending {
    pub(crate) fn add(&mut self, id: u64, source: DnIndex, targets: &[DnIndex], now: Instant) {
        if let Some(e) = self.map.get_mut(&id) {
            // A second transfer for the block (e.g. more replicas wanted).
            for t in targets {
                if !e.targets.contains(t) {
                    e.targets.push(*t);
                }
            }
            e.at = now;
            return;
        }
        self.map.insert(id, Entry { source, targets: targets.to_vec(), at: now });
        *self.outgoing.entry(source).or_insert(0) += 1;
    }

    /// Replicas of `id` on their way.
    pub(crate) fn count(&self, id: u64) -> u32 {
        self.map.get(&id).map(|e| e.targets.len() as u32).unwrap_or(0)
    }

    pub(crate) fn targets(&self, id: u64) -> &[DnIndex] {
        self.map.get(&id).map(|e| e.targets.as_slice()).unwrap_or(&[])
    }

    pub(crate) fn source(&self, id: u64) -> Option<DnIndex> {
        self.map.get(&id).map(|e| e.source)
    }

    /// Transfers in flight from `dn`.
    pub(crate) fn outgoing(&self, dn: DnIndex) -> u32 {
        self.outgoing.get(&dn).copied().unwrap_or(0)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn drop_entry(&mut self, id: u64) {
        if let Some(e) = self.map.remove(&id)
            && let Some(n) = self.outgoing.get_mut(&e.source)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.outgoing.remove(&e.source);
            }
        }
    }

    /// `dn` reported the replica: true if it was an expected target.
    pub(crate) fn received(&mut self, id: u64, dn: DnIndex) -> bool {
        let Some(e) = self.map.get_mut(&id) else { return false };
        let before = e.targets.len();
        e.targets.retain(|t| *t != dn);
        let was_target = e.targets.len() != before;
        if e.targets.is_empty() {
            self.drop_entry(id);
        }
        was_target
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.drop_entry(id);
    }

    /// Drops entries older than `timeout`; returns their blocks.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<u64> {
        let old: Vec<u64> =
            self.map.iter().filter(|(_, e)| now.saturating_duration_since(e.at) > timeout).map(|(id, _)| *id).collect();
        for id in &old {
            self.drop_entry(*id);
        }
        old
    }

    /// A dead node: transfers from it are lost, and it is no target any
    /// more. Returns the blocks whose pending work changed.
    pub(crate) fn drop_node(&mut self, dn: DnIndex) -> Vec<u64> {
        let mut changed = Vec::new();
        let ids: Vec<u64> = self.map.keys().copied().collect();
        for id in ids {
            let Some(e) = self.map.get_mut(&id) else { continue };
            if e.source == dn {
                self.drop_entry(id);
                changed.push(id);
            } else if e.targets.contains(&dn) {
                e.targets.retain(|t| *t != dn);
                if e.targets.is_empty() {
                    self.drop_entry(id);
                }
                changed.push(id);
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_complete_time_out_and_die() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        p.add(1, 7, &[2, 3], t0);
        p.add(2, 7, &[4], t0);
        p.add(3, 8, &[5], t0 + Duration::from_secs(10));
        assert_eq!((p.count(1), p.outgoing(7), p.outgoing(8)), (2, 2, 1));
        assert!(p.received(1, 2));
        assert!(!p.received(1, 9));
        assert_eq!(p.targets(1), &[3]);
        assert!(p.received(1, 3));
        assert_eq!((p.count(1), p.outgoing(7)), (0, 1));
        assert_eq!(p.expire(t0 + Duration::from_secs(5), Duration::from_secs(5)), Vec::<u64>::new());
        assert_eq!(p.expire(t0 + Duration::from_secs(6), Duration::from_secs(5)), vec![2]);
        assert_eq!(p.outgoing(7), 0);
        assert_eq!(p.drop_node(5), vec![3]);
        assert_eq!(p.len(), 0);
        assert_eq!(p.outgoing(8), 0);
    }
}
