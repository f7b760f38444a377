//! A map from densely allocated u64 ids (inode ids, block ids) to values,
//! stored in chunks of 1024 slots. Ids are handed out by counters, so the
//! chunks fill up; a chunk is freed when its last value is removed. This
//! costs about the value size per entry, far less than a hash map.

use std::collections::HashMap;

const CHUNK_BITS: u32 = 10;
const CHUNK_LEN: usize = 1 << CHUNK_BITS;
const MASK: u64 = (CHUNK_LEN as u64) - 1;

struct Chunk<T> {
    live: u32,
    slots: Box<[Option<T>]>,
}

pub(crate) struct IdMap<T> {
    chunks: HashMap<u64, Chunk<T>>,
    len: usize,
}

impl<T> Default for IdMap<T> {
    fn default() -> Self {
        IdMap { chunks: HashMap::new(), len: 0 }
    }
}

impl<T> IdMap<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, id: u64) -> Option<&T> {
        self.chunks.get(&(id >> CHUNK_BITS))?.slots[(id & MASK) as usize].as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        self.chunks.get_mut(&(id >> CHUNK_BITS))?.slots[(id & MASK) as usize].as_mut()
    }

    /// Inserts `value` at `id`, returning the value it replaced.
    pub(crate) fn insert(&mut self, id: u64, value: T) -> Option<T> {
        let chunk = self.chunks.entry(id >> CHUNK_BITS).or_insert_with(|| Chunk {
            live: 0,
            slots: (0..CHUNK_LEN).map(|_| None).collect(),
        });
        let old = chunk.slots[(id & MASK) as usize].replace(value);
        if old.is_none() {
            chunk.live += 1;
            self.len += 1;
        }
        old
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<T> {
        let key = id >> CHUNK_BITS;
        let chunk = self.chunks.get_mut(&key)?;
        let old = chunk.slots[(id & MASK) as usize].take();
        if old.is_some() {
            chunk.live -= 1;
            self.len -= 1;
            if chunk.live == 0 {
                self.chunks.remove(&key);
            }
        }
        old
    }

    /// All entries, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.chunks.iter().flat_map(|(k, c)| {
            c.slots.iter().enumerate().filter_map(move |(i, v)| v.as_ref().map(|v| ((k << CHUNK_BITS) | i as u64, v)))
        })
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut T)> {
        self.chunks.iter_mut().flat_map(|(k, c)| {
            let k = *k;
            c.slots.iter_mut().enumerate().filter_map(move |(i, v)| v.as_mut().map(|v| ((k << CHUNK_BITS) | i as u64, v)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::IdMap;

    #[test]
    fn insert_get_remove_and_free_chunks() {
        let mut m = IdMap::default();
        for id in [1u64, 5, 1023, 1024, 5000] {
            assert!(m.insert(id, id * 2).is_none());
        }
        assert_eq!(m.insert(5, 11), Some(10));
        assert_eq!(m.len(), 5);
        assert_eq!(m.get(5000), Some(&10000));
        assert_eq!(m.get(4999), None);
        let mut all: Vec<_> = m.iter().map(|(k, v)| (k, *v)).collect();
        all.sort();
        assert_eq!(all, vec![(1, 2), (5, 11), (1023, 2046), (1024, 2048), (5000, 10000)]);
        assert_eq!(m.remove(5000), Some(10000));
        assert_eq!(m.remove(5000), None);
        assert_eq!(m.chunks.len(), 2);
        assert_eq!(m.len(), 4);
    }
}
