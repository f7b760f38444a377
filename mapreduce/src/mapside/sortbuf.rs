//! The in-memory sort buffer of the map side: record bytes in one arena,
//! and a compact metadata entry per record that is what gets sorted.

use super::CombinerFactory;
use crate::api::{Emit, GroupedReader, TaskContext};
use crate::error::Result;
use crate::mapoutput::MapOutputWriter;

/// Bytes of metadata per record (counted against the buffer's budget).
pub(crate) const META_BYTES: usize = std::mem::size_of::<Meta>();

/// Where a record lies in the arena, and its sort key: `hi` = partition
/// (high 32 bits) and the first 4 key bytes; `lo` = key bytes 4..8 and the
/// arena offset (emit order). Keys shorter than 8 bytes are zero padded.
/// Sorting by `(hi, lo)` orders by partition, then key prefix, then emit
/// order; only records whose 8-byte prefixes tie need a look at the keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    hi: u64,
    lo: u64,
    key_len: u32,
    value_len: u32,
}

impl Meta {
    fn partition(&self) -> u32 {
        (self.hi >> 32) as u32
    }
    fn offset(&self) -> usize {
        self.lo as u32 as usize
    }
    fn sort_key(&self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }
    /// Partition and prefix, without the offset.
    fn prefix_key(&self) -> (u64, u64) {
        (self.hi, self.lo >> 32)
    }
}

/// Records of one spill, before and after sorting. Offsets are u32: the
/// buffer is limited to less than 4 GiB.
#[derive(Default)]
pub(crate) struct SortBuffer {
    data: Vec<u8>,
    meta: Vec<Meta>,
}

impl SortBuffer {
    /// Bytes used, arena plus metadata.
    pub(crate) fn used(&self) -> usize {
        self.data.len() + self.meta.len() * META_BYTES
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Reserves the arena up front (pages are only touched when written).
    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.data.reserve(bytes.saturating_sub(self.data.capacity()));
    }

    /// Appends a record. The caller keeps [`used`](Self::used) under 4 GiB.
    pub(crate) fn push(&mut self, partition: u32, key: &[u8], value: &[u8]) {
        let off = self.data.len() as u64;
        let mut prefix = [0u8; 8];
        let n = key.len().min(8);
        prefix[..n].copy_from_slice(&key[..n]);
        let prefix = u64::from_be_bytes(prefix);
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        self.meta.push(Meta {
            hi: (u64::from(partition) << 32) | (prefix >> 32),
            lo: (prefix << 32) | off,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
        });
    }

    /// Empties the buffer, keeping its memory for the next spill.
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.meta.clear();
    }

    /// Gives the memory back.
    pub(crate) fn release(&mut self) {
        *self = SortBuffer::default();
    }

    fn key(&self, m: &Meta) -> &[u8] {
        &self.data[m.offset()..m.offset() + m.key_len as usize]
    }

    /// Sorts by (partition, key bytes), equal keys in emit order.
    pub(crate) fn sort(&mut self) {
        self.meta.sort_unstable_by_key(Meta::sort_key);
        // Runs with the same partition and 8-byte prefix: their keys are
        // equal (already in emit order) when they all have the same length
        // of at most 8; otherwise sort the run by the whole key.
        let data = &self.data;
        let mut i = 0;
        while i < self.meta.len() {
            let first = self.meta[i];
            let mut j = i + 1;
            let mut same = first.key_len <= 8;
            while j < self.meta.len() && self.meta[j].prefix_key() == first.prefix_key() {
                same &= self.meta[j].key_len == first.key_len;
                j += 1;
            }
            if j - i > 1 && !same {
                self.meta[i..j].sort_unstable_by(|a, b| {
                    let ka = &data[a.offset()..a.offset() + a.key_len as usize];
                    let kb = &data[b.offset()..b.offset() + b.key_len as usize];
                    ka.cmp(kb).then(a.offset().cmp(&b.offset()))
                });
            }
            i = j;
        }
    }

    /// Writes the sorted records, one writer partition per partition
    /// `0..partitions`, through a fresh combiner per non-empty partition
    /// when `combine` is given. Returns (combiner input records, combiner
    /// output records).
    pub(crate) fn write_sorted(
        &self,
        out: &mut MapOutputWriter,
        partitions: u32,
        combine: Option<(&CombinerFactory, &TaskContext)>,
    ) -> Result<(u64, u64)> {
        let (mut c_in, mut c_out) = (0, 0);
        let mut i = 0;
        for p in 0..partitions {
            let start = i;
            while i < self.meta.len() && self.meta[i].partition() == p {
                i += 1;
            }
            let run = &self.meta[start..i];
            if !run.is_empty() {
                match combine {
                    Some((make, ctx)) => {
                        let mut groups = MemGroups { buf: self, run, next: 0, current: None, group_done: false };
                        let mut emit = CountingEmit { out: &mut *out, records: 0 };
                        make()?.run(&mut groups, &mut emit, ctx)?;
                        c_in += groups.next as u64;
                        c_out += emit.records;
                    }
                    None => {
                        for m in run {
                            let off = m.offset();
                            let k = off + m.key_len as usize;
                            out.append(&self.data[off..k], &self.data[k..k + m.value_len as usize])?;
                        }
                    }
                }
            }
            out.end_partition();
        }
        Ok((c_in, c_out))
    }
}

/// Counts what a combiner emits.
pub(crate) struct CountingEmit<'a> {
    pub(crate) out: &'a mut MapOutputWriter,
    pub(crate) records: u64,
}

impl Emit for CountingEmit<'_> {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.records += 1;
        self.out.append(key, value)
    }
}

/// One partition's sorted records grouped by key, read in place.
struct MemGroups<'a> {
    buf: &'a SortBuffer,
    run: &'a [Meta],
    /// Next record to hand out (also: records consumed so far).
    next: usize,
    /// The current group's first record; `None` before the first group.
    current: Option<Meta>,
    /// The current group's values are all read.
    group_done: bool,
}

impl MemGroups<'_> {
    fn same_key(&self, a: &Meta, b: &Meta) -> bool {
        a.key_len == b.key_len && a.prefix_key() == b.prefix_key() && self.buf.key(a) == self.buf.key(b)
    }
}

impl GroupedReader for MemGroups<'_> {
    fn next_key(&mut self) -> Result<bool> {
        if let Some(cur) = self.current {
            while self.next < self.run.len() && self.same_key(&self.run[self.next], &cur) {
                self.next += 1;
            }
        }
        self.current = self.run.get(self.next).copied();
        self.group_done = false;
        Ok(self.current.is_some())
    }

    fn key(&self) -> &[u8] {
        match &self.current {
            Some(m) => self.buf.key(m),
            None => &[],
        }
    }

    fn next_value(&mut self) -> Result<Option<&[u8]>> {
        let Some(cur) = self.current.filter(|_| !self.group_done) else { return Ok(None) };
        match self.run.get(self.next) {
            Some(m) if self.same_key(m, &cur) => {
                self.next += 1;
                let v = m.offset() + m.key_len as usize;
                Ok(Some(&self.buf.data[v..v + m.value_len as usize]))
            }
            _ => {
                self.group_done = true;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(buf: &SortBuffer) -> Vec<(u32, Vec<u8>, Vec<u8>)> {
        buf.meta
            .iter()
            .map(|m| {
                let k = buf.key(m).to_vec();
                let v = m.offset() + m.key_len as usize;
                (m.partition(), k, buf.data[v..v + m.value_len as usize].to_vec())
            })
            .collect()
    }

    #[test]
    fn sort_orders_by_partition_then_key_bytes_and_is_stable() {
        let mut b = SortBuffer::default();
        let recs: Vec<(u32, &[u8], &[u8])> = vec![
            (1, b"b", b"1"),
            (0, b"zz", b"2"),
            (1, b"a", b"3"),
            (0, b"a\0", b"4"),
            (0, b"a", b"5"),
            (0, b"longer-than-8-x", b"6"),
            (0, b"longer-than-8-a", b"7"),
            (0, b"longer-than-8", b"8"),
            (0, b"a", b"9"),
            (0, b"", b"10"),
            (0, b"longer-than-8-a", b"11"),
            (0, &[0xff, 0xfe], b"12"),
        ];
        for (p, k, v) in &recs {
            b.push(*p, k, v);
        }
        b.sort();
        // Reference: a stable sort by (partition, key).
        let mut want: Vec<(u32, Vec<u8>, Vec<u8>)> = recs.iter().map(|(p, k, v)| (*p, k.to_vec(), v.to_vec())).collect();
        want.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        assert_eq!(sorted(&b), want);
    }

    #[test]
    fn sort_matches_a_reference_on_pseudo_random_keys() {
        let mut b = SortBuffer::default();
        let mut reference = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let key: Vec<u8> = (0..len).map(|j| b"abc\0"[((x >> (j * 2)) & 3) as usize]).collect();
            let p = (x >> 40) as u32 % 3;
            let v = i.to_be_bytes();
            b.push(p, &key, &v);
            reference.push((p, key, v.to_vec()));
        }
        b.sort();
        reference.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1))); // stable
        assert_eq!(sorted(&b), reference);
    }

    #[test]
    fn groups_read_in_place_and_skip_unread_values() {
        let mut b = SortBuffer::default();
        for (k, v) in [("b", "1"), ("a", "2"), ("b", "3"), ("c", "4"), ("a", "5")] {
            b.push(0, k.as_bytes(), v.as_bytes());
        }
        b.sort();
        let mut g = MemGroups { buf: &b, run: &b.meta, next: 0, current: None, group_done: false };
        assert!(g.next_key().unwrap());
        assert_eq!(g.key(), b"a");
        assert_eq!(g.next_value().unwrap(), Some(&b"2"[..]));
        assert!(g.next_key().unwrap()); // "5" skipped
        assert_eq!(g.key(), b"b");
        assert_eq!(g.next_value().unwrap(), Some(&b"1"[..]));
        assert_eq!(g.next_value().unwrap(), Some(&b"3"[..]));
        assert_eq!(g.next_value().unwrap(), None);
        assert_eq!(g.key(), b"b", "the key stays after the values");
        assert!(g.next_key().unwrap());
        assert_eq!(g.key(), b"c");
        assert!(!g.next_key().unwrap());
        assert_eq!(g.next_value().unwrap(), None);
    }
}
