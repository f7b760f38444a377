//! `wordcount` (map) and `sum` (reduce/combine).
//!
//! The map counts words of the split in a bounded hash table and emits
//! `(word, count)` when the table is full and at the end ("in-mapper
//! combining"): hashing a word is far cheaper than sorting and spilling it,
//! so a map emits about one record per distinct word instead of one per
//! word. `tusk.wordcount.inmapper.memory` bounds the table (default 32m;
//! `0` emits `(word, 1)` for every word, as Hadoop's WordCount does). Words
//! are borrowed slices of the input line. The table (`table.rs`) keeps
//! words of up to 23 bytes inline in its slots, so nothing is allocated
//! per word, and only per distinct longer word; its estimate counts the
//! whole slot array.

use super::{format_i64, parse_i64};
use crate::api::{Emit, GroupedReader, MapRunner, RecordReader, ReduceRunner, TaskContext};
use crate::error::{Result, TaskError};
use std::hash::Hasher;

mod table;

use table::CountTable;

/// Configuration key bounding the in-mapper counting table.
pub(crate) const INMAPPER_MEMORY: &str = "tusk.wordcount.inmapper.memory";
const DEFAULT_INMAPPER_MEMORY: u64 = 32 << 20;

pub(crate) struct WordCount;

impl MapRunner for WordCount {
    fn run(self: Box<Self>, input: &mut dyn RecordReader, out: &mut dyn Emit, ctx: &TaskContext) -> Result<()> {
        let budget = match ctx.spec.job.conf.get(INMAPPER_MEMORY) {
            Some(v) => {
                tusk_common::size::parse_size(v).map_err(|e| TaskError::Invalid(format!("{INMAPPER_MEMORY}: {e}")))?
            }
            None => DEFAULT_INMAPPER_MEMORY,
        };
        let (mut key, mut line) = (Vec::new(), Vec::new());
        if budget == 0 {
            while input.next(&mut key, &mut line)? {
                for_each_word(&line, |w| out.emit(w, b"1"))?;
            }
            return Ok(());
        }
        let budget = usize::try_from(budget).unwrap_or(usize::MAX);
        let mut table = CountTable::default();
        while input.next(&mut key, &mut line)? {
            for_each_word(&line, |w| {
                if table.add(w) > budget {
                    table.flush(out)?;
                }
                Ok(())
            })?;
        }
        table.flush(out)
    }
}

/// Calls `f` for every run of non-whitespace bytes (ASCII whitespace, as
/// `split_ascii_whitespace`).
pub(crate) fn for_each_word(line: &[u8], mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let n = line.len();
    let mut i = 0;
    while i < n {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < n && !line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i > start {
            f(&line[start..i])?;
        }
    }
    Ok(())
}

/// A fast hash for short byte strings (words): multiply-rotate over 8-byte
/// chunks with a final avalanche, so every input byte reaches the low bits
/// the table indexes with. Not DoS-resistant; keys are the job's own data.
#[derive(Default)]
pub(crate) struct WordHasher(u64);

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

impl WordHasher {
    #[inline]
    fn mix(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(23) ^ v).wrapping_mul(MUL);
    }
}

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.mix(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^ (h >> 32)
    }
}

/// Sums the decimal values of each key (Hadoop's LongSumReducer).
pub(crate) struct Sum;

impl ReduceRunner for Sum {
    fn run(self: Box<Self>, input: &mut dyn GroupedReader, out: &mut dyn Emit, _ctx: &TaskContext) -> Result<()> {
        let mut key = Vec::new();
        let mut buf = [0u8; 20];
        while input.next_key()? {
            key.clear();
            key.extend_from_slice(input.key());
            let total = sum_values(&key, input)?;
            out.emit(&key, format_i64(total, &mut buf))?;
        }
        Ok(())
    }
}

/// The sum of the current group's values; an error names the key and
/// the value that is not a number.
pub(crate) fn sum_values(key: &[u8], input: &mut dyn GroupedReader) -> Result<i64> {
    let mut total: i64 = 0;
    while let Some(v) = input.next_value()? {
        let n = parse_i64(v).ok_or_else(|| {
            TaskError::User(format!(
                "sum: value '{}' of key '{}' is not an integer",
                String::from_utf8_lossy(v),
                String::from_utf8_lossy(key)
            ))
        })?;
        total = total.checked_add(n).ok_or_else(|| {
            TaskError::User(format!("sum: the total of key '{}' overflows", String::from_utf8_lossy(key)))
        })?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::memio::{Record, VecEmit, VecGrouped, VecReader, context, grouped, lines, records};
    use std::collections::BTreeMap;

    fn text_records(text: &str) -> Vec<Record> {
        text.lines().enumerate().map(|(i, l)| (i.to_string().into_bytes(), l.as_bytes().to_vec())).collect()
    }

    /// Runs wordcount then sum, as a job with one reducer would.
    fn wordcount(text: &str, memory: Option<&str>) -> (Vec<Record>, usize) {
        let mut ctx = context(true);
        if let Some(m) = memory {
            ctx.spec.job.conf.insert(INMAPPER_MEMORY.into(), m.into());
        }
        let mut mapped = VecEmit::default();
        Box::new(WordCount).run(&mut VecReader::new(text_records(text)), &mut mapped, &ctx).unwrap();
        let map_records = mapped.records.len();
        let mut out = VecEmit::default();
        Box::new(Sum).run(&mut VecGrouped::from_records(mapped.records), &mut out, &ctx).unwrap();
        (out.records, map_records)
    }

    fn expected(text: &str) -> Vec<String> {
        let mut counts = BTreeMap::<&str, u64>::new();
        for w in text.split_ascii_whitespace() {
            *counts.entry(w).or_default() += 1;
        }
        counts.iter().map(|(w, n)| format!("{w}\t{n}")).collect()
    }

    const TEXT: &str = "the quick  brown fox\n\tjumps over the lazy dog\r\n\n   \nthe end, the END\x0cfox";

    #[test]
    fn wordcount_with_inmapper_combining() {
        let (out, map_records) = wordcount(TEXT, None);
        assert_eq!(lines(&out), expected(TEXT));
        assert_eq!(map_records, expected(TEXT).len(), "one record per distinct word");
    }

    #[test]
    fn wordcount_one_record_per_word() {
        let (out, map_records) = wordcount(TEXT, Some("0"));
        assert_eq!(lines(&out), expected(TEXT));
        assert_eq!(map_records, TEXT.split_ascii_whitespace().count());
    }

    #[test]
    fn wordcount_with_a_tiny_table_flushes_often() {
        let text: String = (0..5000).map(|i| format!("w{} common w{}\n", i % 97, i % 13)).collect();
        let (out, map_records) = wordcount(&text, Some("1k"));
        assert_eq!(lines(&out), expected(&text));
        assert!(map_records > 111, "several flushes: {map_records}");
    }

    #[test]
    fn bad_memory_setting_is_refused() {
        let mut ctx = context(true);
        ctx.spec.job.conf.insert(INMAPPER_MEMORY.into(), "lots".into());
        let err = Box::new(WordCount).run(&mut VecReader::new(vec![]), &mut VecEmit::default(), &ctx).unwrap_err();
        assert!(err.to_string().starts_with(INMAPPER_MEMORY), "{err}");
    }

    #[test]
    fn sum_adds_values_and_names_bad_ones() {
        let ctx = context(false);
        let mut out = VecEmit::default();
        let mut input = grouped(&[("a", &["1", "2", "-5"]), ("b", &["40"])]);
        Box::new(Sum).run(&mut input, &mut out, &ctx).unwrap();
        assert_eq!(out.records, records(&[("a", "-2"), ("b", "40")]));
        let mut input = grouped(&[("k", &["1", "x"])]);
        let err = Box::new(Sum).run(&mut input, &mut VecEmit::default(), &ctx).unwrap_err();
        assert_eq!(err.to_string(), "sum: value 'x' of key 'k' is not an integer");
    }

    #[test]
    fn hasher_spreads_short_words() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let build = BuildHasherDefault::<WordHasher>::default();
        let mut low_bits = std::collections::HashSet::new();
        for w in ["abcdefg1", "abcdefg2", "abcdefg3", "abcdefg4", "bbcdefg1", "a", "b", "c"] {
            low_bits.insert(build.hash_one(w.as_bytes()) & 0xff);
        }
        assert!(low_bits.len() >= 7, "low bits depend on every byte: {low_bits:?}");
    }
}
