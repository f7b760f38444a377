//! The block map: every block of every file, with its length, generation
//! stamp, owning inode and the datanodes known to hold a replica. Replica
//! locations are volatile (rebuilt from block reports); the rest follows
//! the namespace and is changed only by `FsState::apply`.

use crate::idmap::IdMap;

/// Index of a datanode in the `DatanodeManager` (stable for the process).
pub(crate) type DnIndex = u16;

const INLINE: usize = 5;
const EMPTY: DnIndex = DnIndex::MAX;

/// The datanodes holding a replica; up to 5 inline, more on the heap.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Replicas {
    Inline([DnIndex; INLINE]),
    // Boxed to keep the enum (and every BlockInfo) small.
    #[allow(clippy::box_collection)]
    Heap(Box<Vec<DnIndex>>),
}

impl Default for Replicas {
    fn default() -> Self {
        Replicas::Inline([EMPTY; INLINE])
    }
}

impl Replicas {
    pub(crate) fn iter(&self) -> impl Iterator<Item = DnIndex> + '_ {
        let s: &[DnIndex] = match self {
            Replicas::Inline(a) => a,
            Replicas::Heap(v) => v,
        };
        s.iter().copied().filter(|d| *d != EMPTY)
    }

    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    pub(crate) fn contains(&self, dn: DnIndex) -> bool {
        self.iter().any(|d| d == dn)
    }

    /// Adds `dn`; false if it was already there.
    pub(crate) fn add(&mut self, dn: DnIndex) -> bool {
        if self.contains(dn) {
            return false;
        }
        match self {
            Replicas::Inline(a) => {
                if let Some(slot) = a.iter_mut().find(|d| **d == EMPTY) {
                    *slot = dn;
                } else {
                    let mut v: Vec<DnIndex> = a.to_vec();
                    v.push(dn);
                    *self = Replicas::Heap(Box::new(v));
                }
            }
            Replicas::Heap(v) => v.push(dn),
        }
        true
    }

    /// Removes `dn`; false if it was not there.
    pub(crate) fn remove(&mut self, dn: DnIndex) -> bool {
        match self {
            Replicas::Inline(a) => match a.iter_mut().find(|d| **d == dn) {
                Some(slot) => {
                    *slot = EMPTY;
                    true
                }
                None => false,
            },
            Replicas::Heap(v) => {
                let before = v.len();
                v.retain(|d| *d != dn);
                v.len() != before
            }
        }
    }
}

/// One block of a file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockInfo {
    pub(crate) inode: u64,
    pub(crate) num_bytes: u64,
    pub(crate) gen_stamp: u64,
    pub(crate) replicas: Replicas,
}

/// All blocks by id.
#[derive(Default)]
pub(crate) struct BlockMap {
    map: IdMap<BlockInfo>,
}

impl BlockMap {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get(&self, id: u64) -> Option<&BlockInfo> {
        self.map.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut BlockInfo> {
        self.map.get_mut(id)
    }

    pub(crate) fn insert(&mut self, id: u64, info: BlockInfo) {
        self.map.insert(id, info);
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<BlockInfo> {
        self.map.remove(id)
    }

    /// Forgets every replica on `dn`; returns the blocks that lost one.
    pub(crate) fn remove_datanode(&mut self, dn: DnIndex) -> Vec<u64> {
        let mut lost = Vec::new();
        for (id, b) in self.map.iter_mut() {
            if b.replicas.remove(dn) {
                lost.push(id);
            }
        }
        lost
    }

    /// Drops locations on `dn` of blocks not in `keep`; returns those blocks.
    pub(crate) fn retain_on_datanode(&mut self, dn: DnIndex, keep: &std::collections::HashSet<u64>) -> Vec<u64> {
        let mut dropped = Vec::new();
        for (id, b) in self.map.iter_mut() {
            if !keep.contains(&id) && b.replicas.remove(dn) {
                dropped.push(id);
            }
        }
        dropped
    }

    /// Every block with its id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &BlockInfo)> + '_ {
        self.map.iter()
    }

    /// Number of replicas held by each datanode index.
    pub(crate) fn replica_counts(&self) -> std::collections::HashMap<DnIndex, u64> {
        let mut m = std::collections::HashMap::new();
        for (_, b) in self.map.iter() {
            for d in b.replicas.iter() {
                *m.entry(d).or_insert(0) += 1;
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_grow_past_inline_and_shrink() {
        let mut r = Replicas::default();
        for d in 0..7 {
            assert!(r.add(d));
        }
        assert!(!r.add(3));
        assert_eq!(r.len(), 7);
        assert!(r.remove(3));
        assert!(!r.remove(3));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![0, 1, 2, 4, 5, 6]);
        let mut r = Replicas::default();
        r.add(9);
        r.add(8);
        r.remove(9);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![8]);
        assert!(std::mem::size_of::<BlockInfo>() <= 40, "{}", std::mem::size_of::<BlockInfo>());
    }
}
