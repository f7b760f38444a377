//! K-way merge of sorted record segments (spills on the map side, fetched
//! map outputs on the reduce side), and the grouping of the merged stream
//! by key for a combiner or reducer.

use super::codec::{OwnedRecords, StreamRecords, record_len};
use crate::api::GroupedReader;
use crate::error::Result;
use std::cmp::Ordering;
use std::fs::File;

/// One sorted input of a merge.
pub enum MergeSource {
    /// A segment held in memory.
    Memory(OwnedRecords),
    /// A file read through a buffer (one segment, or a run of segments).
    File(StreamRecords<File>),
}

impl MergeSource {
    fn advance(&mut self) -> Result<bool> {
        match self {
            MergeSource::Memory(r) => r.advance(),
            MergeSource::File(r) => r.advance(),
        }
    }

    fn key(&self) -> &[u8] {
        match self {
            MergeSource::Memory(r) => r.key(),
            MergeSource::File(r) => r.key(),
        }
    }

    fn value(&self) -> &[u8] {
        match self {
            MergeSource::Memory(r) => r.value(),
            MergeSource::File(r) => r.value(),
        }
    }

    /// Only file sources hold several segments.
    fn start_segment(&mut self, len: u64) {
        if let MergeSource::File(r) = self {
            r.start_segment(len);
        }
    }
}

/// Merges sorted sources into one sorted stream. Equal keys come out in
/// source order (source 0 first), so a merge of spills keeps emit order.
///
/// The heap holds source indexes (a binary min-heap ordered by the
/// sources' current keys); the smallest record is read in place, nothing
/// is copied.
pub struct Merger {
    sources: Vec<MergeSource>,
    /// Indexes of sources that have a current record, as a binary heap.
    heap: Vec<usize>,
    /// The current top was handed out and must be advanced before the
    /// next look.
    consumed: bool,
    /// Encoded bytes of the records handed out so far.
    bytes_read: u64,
}

impl Merger {
    /// A merger over `sources`, positioned before the first record.
    pub fn new(sources: Vec<MergeSource>) -> Result<Merger> {
        let mut m = Merger { sources, heap: Vec::new(), consumed: false, bytes_read: 0 };
        m.restart()?;
        Ok(m)
    }

    /// Moves every file source to its next segment (`lens[i]` bytes for
    /// source `i`) and starts merging those.
    pub fn start_segments(&mut self, lens: &[u64]) -> Result<()> {
        for (s, len) in self.sources.iter_mut().zip(lens) {
            s.start_segment(*len);
        }
        self.restart()
    }

    fn restart(&mut self) -> Result<()> {
        self.heap.clear();
        self.consumed = false;
        for i in 0..self.sources.len() {
            if self.sources[i].advance()? {
                self.heap.push(i);
            }
        }
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
        Ok(())
    }

    fn less(&self, a: usize, b: usize) -> bool {
        match self.sources[a].key().cmp(self.sources[b].key()) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => a < b,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                return;
            }
            let r = l + 1;
            let child = if r < n && self.less(self.heap[r], self.heap[l]) { r } else { l };
            if self.less(self.heap[child], self.heap[i]) {
                self.heap.swap(child, i);
                i = child;
            } else {
                return;
            }
        }
    }

    /// The smallest record not handed out yet, as (key, value); `None`
    /// when every source is exhausted. The record counts as handed out.
    pub fn next_record(&mut self) -> Result<Option<(&[u8], &[u8])>> {
        self.settle()?;
        match self.heap.first() {
            None => Ok(None),
            Some(&i) => {
                self.consumed = true;
                let s = &self.sources[i];
                self.bytes_read += record_len(s.key().len(), s.value().len()) as u64;
                Ok(Some((s.key(), s.value())))
            }
        }
    }

    /// Key of the record [`next_record`](Self::next_record) would return.
    pub fn peek_key(&mut self) -> Result<Option<&[u8]>> {
        self.settle()?;
        Ok(self.heap.first().map(|&i| self.sources[i].key()))
    }

    /// Advances the source whose record was handed out.
    fn settle(&mut self) -> Result<()> {
        if !self.consumed {
            return Ok(());
        }
        self.consumed = false;
        let Some(&top) = self.heap.first() else { return Ok(()) };
        if !self.sources[top].advance()? {
            let last = self.heap.len() - 1;
            self.heap.swap(0, last);
            self.heap.pop();
        }
        self.sift_down(0);
        Ok(())
    }

    /// Encoded bytes of the records handed out so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

/// The merged stream grouped by key: a [`GroupedReader`] for a combiner
/// or a reducer. Counts the groups and records it hands out.
pub struct MergedGroups {
    merger: Merger,
    key: Vec<u8>,
    in_group: bool,
    groups: u64,
    records: u64,
}

impl MergedGroups {
    pub fn new(merger: Merger) -> MergedGroups {
        MergedGroups { merger, key: Vec::new(), in_group: false, groups: 0, records: 0 }
    }

    /// Key groups started so far.
    pub fn groups(&self) -> u64 {
        self.groups
    }

    /// Values handed out so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Encoded bytes read from the sources so far (progress).
    pub fn bytes_read(&self) -> u64 {
        self.merger.bytes_read()
    }

    /// Gives the merger back (to merge its sources' next segments).
    pub fn into_merger(self) -> Merger {
        self.merger
    }
}

impl GroupedReader for MergedGroups {
    fn next_key(&mut self) -> Result<bool> {
        while self.in_group && self.next_value()?.is_some() {}
        match self.merger.peek_key()? {
            None => Ok(false),
            Some(k) => {
                self.key.clear();
                self.key.extend_from_slice(k);
                self.in_group = true;
                self.groups += 1;
                Ok(true)
            }
        }
    }

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn next_value(&mut self) -> Result<Option<&[u8]>> {
        if !self.in_group {
            return Ok(None);
        }
        if self.merger.peek_key()? != Some(self.key.as_slice()) {
            self.in_group = false;
            return Ok(None);
        }
        self.records += 1;
        Ok(self.merger.next_record()?.map(|(_, v)| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapoutput::codec::put_record;

    fn mem(recs: &[(&str, &str)]) -> MergeSource {
        let mut buf = Vec::new();
        for (k, v) in recs {
            put_record(&mut buf, k.as_bytes(), v.as_bytes());
        }
        MergeSource::Memory(OwnedRecords::new(buf, "mem"))
    }

    fn drain(g: &mut dyn GroupedReader) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        while g.next_key().unwrap() {
            let k = String::from_utf8(g.key().to_vec()).unwrap();
            let mut vs = Vec::new();
            while let Some(v) = g.next_value().unwrap() {
                vs.push(String::from_utf8(v.to_vec()).unwrap());
            }
            out.push((k, vs));
        }
        out
    }

    #[test]
    fn groups_span_sources_and_equal_keys_keep_source_order() {
        let sources = vec![
            mem(&[("a", "0a"), ("c", "0c1"), ("c", "0c2"), ("e", "0e")]),
            mem(&[]),
            mem(&[("b", "2b"), ("c", "2c"), ("e", "2e")]),
            mem(&[("c", "3c"), ("d", "3d"), ("z", "3z")]),
        ];
        let mut g = MergedGroups::new(Merger::new(sources).unwrap());
        let got = drain(&mut g);
        let want: Vec<(String, Vec<String>)> = vec![
            ("a", vec!["0a"]),
            ("b", vec!["2b"]),
            ("c", vec!["0c1", "0c2", "2c", "3c"]),
            ("d", vec!["3d"]),
            ("e", vec!["0e", "2e"]),
            ("z", vec!["3z"]),
        ]
        .into_iter()
        .map(|(k, vs)| (k.to_string(), vs.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(g.groups(), 6);
        assert_eq!(g.records(), 10);
    }

    #[test]
    fn unread_values_are_skipped_by_next_key() {
        let sources = vec![mem(&[("a", "1"), ("a", "2"), ("b", "3")]), mem(&[("a", "4"), ("b", "5")])];
        let mut g = MergedGroups::new(Merger::new(sources).unwrap());
        assert!(g.next_key().unwrap());
        assert_eq!(g.key(), b"a");
        assert_eq!(g.next_value().unwrap(), Some(&b"1"[..]));
        assert!(g.next_key().unwrap());
        assert_eq!(g.key(), b"b");
        assert_eq!(g.next_value().unwrap(), Some(&b"3"[..]));
        assert_eq!(g.next_value().unwrap(), Some(&b"5"[..]));
        assert_eq!(g.next_value().unwrap(), None);
        assert_eq!(g.next_value().unwrap(), None);
        assert!(!g.next_key().unwrap());
        assert!(!g.next_key().unwrap());
    }

    #[test]
    fn many_sources_merge_in_order() {
        // 37 sources of interleaved numbers: the result is sorted and complete.
        let n = 37;
        let sources = (0..n)
            .map(|s| {
                let mut buf = Vec::new();
                for i in (s..2000).step_by(n) {
                    put_record(&mut buf, format!("{i:06}").as_bytes(), b"");
                }
                MergeSource::Memory(OwnedRecords::new(buf, "m"))
            })
            .collect();
        let mut m = Merger::new(sources).unwrap();
        let mut i = 0;
        while let Some((k, _)) = m.next_record().unwrap() {
            assert_eq!(k, format!("{i:06}").as_bytes());
            i += 1;
        }
        assert_eq!(i, 2000);
        assert_eq!(m.bytes_read(), 2000 * 8);
    }
}
