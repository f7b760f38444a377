//! The wordcount map's in-mapper counting table.
//!
//! Nearly all words are short, so they live in an open-addressing table
//! whose 32-byte slots hold the word itself: `[u8; 24]` (the word, zero
//! padded, with its length in the last byte; length 0 marks a free slot)
//! and an `i64` count. A lookup hashes the padded key as three `u64`s,
//! probes linearly and compares 24 bytes, so a hit touches one cache line
//! and never allocates or calls `memcmp`. The table grows at 50% load.
//! Words longer than [`INLINE_MAX`] bytes (and the empty word, which the
//! map never produces) are counted in a `HashMap` of boxed keys.

use super::WordHasher;
use crate::api::Emit;
use crate::builtin::format_i64;
use crate::error::Result;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The longest word stored inline.
pub(super) const INLINE_MAX: usize = KEY_BYTES - 1;
const KEY_BYTES: usize = 24;
/// Slots of a new or flushed inline table (512 bytes).
const MIN_SLOTS: usize = 16;
/// Estimated bytes of a long (boxed) word's entry besides the word itself
/// (boxed slice, count, control byte, allocator overhead).
const LONG_ENTRY_OVERHEAD: usize = 48;

/// Word, zero padding, and the word's length in the last byte.
type Key = [u8; KEY_BYTES];

#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Slot {
    key: Key,
    count: i64,
}

const FREE: Slot = Slot { key: [0; KEY_BYTES], count: 0 };
/// Bytes of one slot; a slot never straddles a cache line.
pub(super) const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

/// Word counts with a memory estimate: the inline slot array plus the
/// long words' entries.
pub(super) struct CountTable {
    /// A power of two long; at most half used after any `add` returns,
    /// except that the growth is deferred to the next new word (see `add`).
    slots: Vec<Slot>,
    /// Used slots.
    used: usize,
    long: HashMap<Box<[u8]>, i64, BuildHasherDefault<WordHasher>>,
    long_bytes: usize,
}

impl Default for CountTable {
    fn default() -> Self {
        CountTable { slots: vec![FREE; MIN_SLOTS], used: 0, long: HashMap::default(), long_bytes: 0 }
    }
}

/// Hashes a padded key (length included) with [`WordHasher`]'s mixing.
#[inline]
fn hash_key(key: &Key) -> u64 {
    let mut h = WordHasher::default();
    for c in key.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        h.mix(u64::from_le_bytes(b));
    }
    h.finish()
}

impl CountTable {
    /// Counts `word`; returns the estimated size of the table. When the
    /// inline table has just passed 50% load the estimate already counts
    /// the doubled slot array, and the doubling happens at the next new
    /// word: a caller that flushes when the estimate is over its budget
    /// never allocates an array over the budget.
    #[inline]
    pub(super) fn add(&mut self, word: &[u8]) -> usize {
        let len = word.len();
        if len == 0 || len > INLINE_MAX {
            self.add_long(word);
            return self.bytes();
        }
        let mut key: Key = [0; KEY_BYTES];
        key[..len].copy_from_slice(word);
        key[INLINE_MAX] = len as u8;
        let mask = self.slots.len() - 1;
        let mut i = hash_key(&key) as usize & mask;
        loop {
            let slot = &mut self.slots[i];
            if slot.key == key {
                slot.count += 1;
                return self.bytes();
            }
            if slot.key[INLINE_MAX] == 0 {
                break;
            }
            i = (i + 1) & mask;
        }
        self.insert_new(key, i);
        self.bytes()
    }

    /// Inserts `key` (not in the table) with count 1 at the free slot `i`,
    /// growing first if the table is over half full.
    #[cold]
    fn insert_new(&mut self, key: Key, mut i: usize) {
        if self.used * 2 > self.slots.len() {
            self.grow();
            i = self.free_slot(hash_key(&key));
        }
        self.slots[i] = Slot { key, count: 1 };
        self.used += 1;
    }

    #[cold]
    fn add_long(&mut self, word: &[u8]) {
        if let Some(c) = self.long.get_mut(word) {
            *c += 1;
        } else {
            self.long.insert(word.into(), 1);
            self.long_bytes += word.len() + LONG_ENTRY_OVERHEAD;
        }
    }

    /// The first free slot on the probe sequence of `hash`.
    fn free_slot(&self, hash: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        while self.slots[i].key[INLINE_MAX] != 0 {
            i = (i + 1) & mask;
        }
        i
    }

    fn grow(&mut self) {
        let doubled = vec![FREE; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        for s in old {
            if s.key[INLINE_MAX] != 0 {
                let i = self.free_slot(hash_key(&s.key));
                self.slots[i] = s;
            }
        }
    }

    /// The estimated size in bytes (see `add`).
    pub(super) fn bytes(&self) -> usize {
        let slots = if self.used * 2 > self.slots.len() { self.slots.len() * 2 } else { self.slots.len() };
        slots * SLOT_BYTES + self.long_bytes
    }

    /// Emits every `(word, count)` and empties the table (the inline table
    /// shrinks back to its initial size, so a flush costs time in
    /// proportion to the words it emits).
    pub(super) fn flush(&mut self, out: &mut dyn Emit) -> Result<()> {
        let mut buf = [0u8; 20];
        let slots = std::mem::replace(&mut self.slots, vec![FREE; MIN_SLOTS]);
        self.used = 0;
        for s in &slots {
            let len = usize::from(s.key[INLINE_MAX]);
            if len != 0 {
                out.emit(&s.key[..len], format_i64(s.count, &mut buf))?;
            }
        }
        for (word, count) in self.long.drain() {
            out.emit(&word, format_i64(count, &mut buf))?;
        }
        self.long_bytes = 0;
        Ok(())
    }

    /// Distinct words counted.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.used + self.long.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::parse_i64;
    use crate::user::memio::VecEmit;

    /// Flushes `t` and returns its counts, checking each word is emitted once.
    fn drain(t: &mut CountTable) -> HashMap<Vec<u8>, i64> {
        let mut out = VecEmit::default();
        t.flush(&mut out).unwrap();
        let mut counts = HashMap::new();
        for (k, v) in out.records {
            let n = parse_i64(&v).unwrap();
            assert!(counts.insert(k.clone(), n).is_none(), "{} emitted twice", String::from_utf8_lossy(&k));
        }
        assert_eq!(t.len(), 0);
        assert_eq!(t.bytes(), MIN_SLOTS * SLOT_BYTES);
        counts
    }

    #[test]
    fn slots_are_32_bytes() {
        assert_eq!(SLOT_BYTES, 32);
        assert_eq!(INLINE_MAX, 23);
    }

    #[test]
    fn many_distinct_words_grow_the_table() {
        let mut t = CountTable::default();
        let n = 100_000;
        for round in 0..3 {
            for i in 0..n {
                let est = t.add(format!("w{i}").as_bytes());
                if round == 0 && i == n - 1 {
                    assert!(est >= 2 * n * SLOT_BYTES, "slot array counted: {est}");
                }
            }
        }
        assert_eq!(t.len(), n);
        assert!(t.slots.len().is_power_of_two() && t.used * 2 <= t.slots.len() + 2, "{}", t.slots.len());
        let counts = drain(&mut t);
        assert_eq!(counts.len(), n);
        assert!(counts.values().all(|&c| c == 3));
        assert_eq!(counts[&b"w99999"[..]], 3);
    }

    #[test]
    fn words_at_and_over_the_inline_capacity() {
        let at = "a".repeat(INLINE_MAX);
        let over = "a".repeat(INLINE_MAX + 1);
        let at2 = format!("{}b", "a".repeat(INLINE_MAX - 1));
        let mut t = CountTable::default();
        let base = t.bytes();
        for w in [&at, &over, &at, &over, &over, &at2, "a", "aa", ""] {
            t.add(w.as_bytes());
        }
        assert_eq!(t.used, 4, "at-capacity and short words are inline");
        assert_eq!(t.long.len(), 2, "the longer word and the empty word are not");
        assert_eq!(t.bytes(), base + (INLINE_MAX + 1) + LONG_ENTRY_OVERHEAD + LONG_ENTRY_OVERHEAD);
        let counts = drain(&mut t);
        let expect: HashMap<Vec<u8>, i64> =
            [(at, 2), (over, 3), (at2, 1), ("a".into(), 1), ("aa".into(), 1), (String::new(), 1)]
                .into_iter()
                .map(|(w, c)| (w.into_bytes(), c))
                .collect();
        assert_eq!(counts, expect);
    }

    #[test]
    fn words_differing_only_in_padding_are_distinct() {
        let mut t = CountTable::default();
        for w in [&b"a"[..], b"a\0", b"a\0\0", b"\0", b"\0\0", b"a"] {
            t.add(w);
        }
        let counts = drain(&mut t);
        assert_eq!(counts.len(), 5);
        assert_eq!(counts[&b"a"[..]], 2);
        assert_eq!(counts[&b"\0\0"[..]], 1);
    }

    #[test]
    fn an_empty_budget_flushes_every_word() {
        // As the map does with a budget of 1 byte.
        let budget = 1;
        let mut t = CountTable::default();
        let mut out = VecEmit::default();
        for w in ["x", "y", "x", &"z".repeat(40)] {
            if t.add(w.as_bytes()) > budget {
                t.flush(&mut out).unwrap();
            }
        }
        assert_eq!(t.len(), 0);
        let words: Vec<&[u8]> = out.records.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(words, [&b"x"[..], b"y", b"x", "z".repeat(40).as_bytes()]);
        assert!(out.records.iter().all(|(_, v)| v == b"1"));
    }

    #[test]
    fn growth_is_deferred_so_a_flush_avoids_it() {
        let mut t = CountTable::default();
        let mut i = 0;
        while t.used * 2 <= MIN_SLOTS {
            t.add(format!("{i}").as_bytes());
            i += 1;
        }
        assert_eq!(t.slots.len(), MIN_SLOTS, "not grown yet");
        assert_eq!(t.bytes(), 2 * MIN_SLOTS * SLOT_BYTES, "but counted as grown");
        t.add(b"0");
        assert_eq!(t.slots.len(), MIN_SLOTS, "a hit does not grow");
        t.add(b"new");
        assert_eq!(t.slots.len(), 2 * MIN_SLOTS);
        assert_eq!(drain(&mut t).len(), i + 1);
    }

    #[test]
    fn counts_equal_a_reference_count_over_random_text() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for budget in [usize::MAX, 64 << 10, 3000] {
            let mut t = CountTable::default();
            let mut reference: HashMap<Vec<u8>, i64> = HashMap::new();
            let mut flushed: HashMap<Vec<u8>, i64> = HashMap::new();
            let mut flushes = 0;
            for _ in 0..200_000 {
                // Lengths 1..=40 (a few over the inline capacity), skewed
                // towards short words over a small alphabet so words repeat.
                let r = next();
                let len = if r % 16 == 0 { 1 + (r >> 8) as usize % 40 } else { 1 + (r >> 8) as usize % 4 };
                let word: Vec<u8> = (0..len).map(|_| b"ab\0\xffc"[(next() % 5) as usize]).collect();
                *reference.entry(word.clone()).or_default() += 1;
                if t.add(&word) > budget {
                    flushes += 1;
                    for (w, c) in drain(&mut t) {
                        *flushed.entry(w).or_default() += c;
                    }
                }
            }
            for (w, c) in drain(&mut t) {
                *flushed.entry(w).or_default() += c;
            }
            assert_eq!(flushed, reference, "budget {budget}");
            assert_eq!(flushes > 0, budget != usize::MAX, "budget {budget}: {flushes} flushes");
        }
    }
}
