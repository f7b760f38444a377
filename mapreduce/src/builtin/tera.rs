//! The TeraSort suite's own functions: `teragen` (map), `teravalidate`
//! (map) and `teravalidate_reduce` (reduce). `terasort` itself is the
//! identity map and reduce with a sampled total-order partitioner.
//!
//! Records use the gensort layout (100 bytes):
//!
//! | bytes | content |
//! |---|---|
//! | 0..10 | key: the high 80 bits of the row's 128-bit random number |
//! | 10..12 | `00 11` |
//! | 12..44 | row id: 32 uppercase hex digits |
//! | 44..48 | `88 99 AA BB` |
//! | 48..96 | 12 groups of 4 equal bytes: the hex digits of the random number's low 48 bits |
//! | 96..100 | `CC DD EE FF` |
//!
//! The random number of a row depends only on the row number (two outputs
//! of a SplitMix64 stream at positions `2*row+1` and `2*row+2`), so a map
//! that runs again produces identical bytes.
//!
//! Checksums are the sum (mod 2^128) of the CRC32C of every record, so they
//! do not depend on record order: teragen's output and its sorted output
//! have the same checksum.

use crate::api::{Emit, GroupedReader, MapRunner, RecordReader, ReduceRunner, TaskContext};
use crate::error::{Result, TaskError};
use crate::spec::{Split, TaskKind};
use std::fmt::Write as _;

/// Length of a gensort record.
pub const RECORD_LEN: usize = 100;
/// Length of its key.
pub(crate) const KEY_LEN: usize = 10;
/// Key of the records reporting problems (never a file path, which
/// starts with `/`).
const ERROR_KEY: &[u8] = b"error";
/// Misorders listed per file; more are only counted.
const MAX_LISTED_MISORDERS: u64 = 100;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The gensort record of row `row` (deterministic).
pub fn gensort_record(row: u64) -> [u8; RECORD_LEN] {
    let state = row.wrapping_mul(2);
    let hi = mix64(state.wrapping_add(1).wrapping_mul(GAMMA));
    let lo = mix64(state.wrapping_add(2).wrapping_mul(GAMMA));
    let mut r = [0u8; RECORD_LEN];
    r[..8].copy_from_slice(&hi.to_be_bytes());
    r[8..10].copy_from_slice(&lo.to_be_bytes()[..2]);
    r[10] = 0x00;
    r[11] = 0x11;
    let id = u128::from(row);
    for (i, b) in r[12..44].iter_mut().enumerate() {
        *b = HEX_UPPER[((id >> (4 * (31 - i))) & 0xF) as usize];
    }
    r[44..48].copy_from_slice(&[0x88, 0x99, 0xAA, 0xBB]);
    for (i, group) in r[48..96].chunks_exact_mut(4).enumerate() {
        group.fill(HEX_UPPER[((lo >> (4 * (11 - i))) & 0xF) as usize]);
    }
    r[96..100].copy_from_slice(&[0xCC, 0xDD, 0xEE, 0xFF]);
    r
}

/// Row numbers (8-byte big-endian keys of the range input) to records:
/// key = 10 bytes, value = the other 90.
pub(crate) struct TeraGen;

impl MapRunner for TeraGen {
    fn run(self: Box<Self>, input: &mut dyn RecordReader, out: &mut dyn Emit, _ctx: &TaskContext) -> Result<()> {
        let (mut key, mut value) = (Vec::new(), Vec::new());
        while input.next(&mut key, &mut value)? {
            let row = <[u8; 8]>::try_from(key.as_slice()).map_err(|_| {
                TaskError::Invalid(format!(
                    "teragen: input key of {} bytes is not a row number (teragen needs the range input format)",
                    key.len()
                ))
            })?;
            let rec = gensort_record(u64::from_be_bytes(row));
            out.emit(&rec[..KEY_LEN], &rec[KEY_LEN..])?;
        }
        Ok(())
    }
}

/// Checks one file's keys are non-decreasing; emits `(file, "FIRST LAST
/// ROWS CHECKSUM")` (keys in hex, checksum in hex) and an `error` record
/// per misorder.
pub(crate) struct ValidateMap;

impl MapRunner for ValidateMap {
    fn run(self: Box<Self>, input: &mut dyn RecordReader, out: &mut dyn Emit, ctx: &TaskContext) -> Result<()> {
        let file = input_file(ctx);
        let (mut key, mut value) = (Vec::new(), Vec::new());
        let (mut first, mut last) = (Vec::new(), Vec::new());
        let (mut rows, mut misorders, mut sum) = (0u64, 0u64, 0u128);
        while input.next(&mut key, &mut value)? {
            sum = sum.wrapping_add(u128::from(crc32c::crc32c_append(crc32c::crc32c(&key), &value)));
            if rows == 0 {
                first.extend_from_slice(&key);
            } else if key < last {
                misorders += 1;
                if misorders <= MAX_LISTED_MISORDERS {
                    let msg = format!("misorder in {file} at record {rows}: {} after {}", hex(&key), hex(&last));
                    out.emit(ERROR_KEY, msg.as_bytes())?;
                }
            }
            last.clear();
            last.extend_from_slice(&key);
            rows += 1;
        }
        if misorders > MAX_LISTED_MISORDERS {
            let msg = format!("{file}: {} more misordered records", misorders - MAX_LISTED_MISORDERS);
            out.emit(ERROR_KEY, msg.as_bytes())?;
        }
        if rows > 0 {
            let summary = format!("{} {} {rows} {sum:x}", hex(&first), hex(&last));
            out.emit(file.as_bytes(), summary.as_bytes())?;
        }
        Ok(())
    }
}

fn input_file(ctx: &TaskContext) -> String {
    if !ctx.input_file.is_empty() {
        return ctx.input_file.clone();
    }
    match &ctx.spec.kind {
        TaskKind::Map { split: Split::File { path, .. }, .. } => path.clone(),
        TaskKind::Map { index, .. } => format!("split-{index}"),
        TaskKind::Reduce { partition, .. } => format!("partition-{partition}"),
    }
}

/// One reducer over every file summary, in file name order: checks the
/// last key of each file is not greater than the first key of the next,
/// passes `error` records through, then emits `checksum` and `rows`.
pub(crate) struct ValidateReduce;

impl ReduceRunner for ValidateReduce {
    fn run(self: Box<Self>, input: &mut dyn GroupedReader, out: &mut dyn Emit, _ctx: &TaskContext) -> Result<()> {
        let mut prev: Option<(String, Vec<u8>)> = None;
        let (mut rows, mut sum) = (0u64, 0u128);
        while input.next_key()? {
            let file = String::from_utf8_lossy(input.key()).into_owned();
            let is_error = input.key() == ERROR_KEY;
            while let Some(v) = input.next_value()? {
                if is_error {
                    out.emit(ERROR_KEY, v)?;
                    continue;
                }
                let Some(s) = Summary::parse(v) else {
                    let msg = format!("bad summary for {file}: {}", String::from_utf8_lossy(v));
                    out.emit(ERROR_KEY, msg.as_bytes())?;
                    continue;
                };
                if let Some((prev_file, prev_last)) = &prev
                    && s.first < *prev_last
                {
                    let msg = format!(
                        "misorder between {prev_file} (last key {}) and {file} (first key {})",
                        hex(prev_last),
                        hex(&s.first)
                    );
                    out.emit(ERROR_KEY, msg.as_bytes())?;
                }
                rows += s.rows;
                sum = sum.wrapping_add(s.checksum);
                prev = Some((file.clone(), s.last));
            }
        }
        out.emit(b"checksum", format!("{sum:x}").as_bytes())?;
        out.emit(b"rows", rows.to_string().as_bytes())
    }
}

/// A file's summary as emitted by [`ValidateMap`].
struct Summary {
    first: Vec<u8>,
    last: Vec<u8>,
    rows: u64,
    checksum: u128,
}

impl Summary {
    fn parse(v: &[u8]) -> Option<Summary> {
        let text = std::str::from_utf8(v).ok()?;
        let mut parts = text.split(' ');
        let first = unhex(parts.next()?)?;
        let last = unhex(parts.next()?)?;
        let rows = parts.next()?.parse().ok()?;
        let checksum = u128::from_str_radix(parts.next()?, 16).ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Summary { first, last, rows, checksum })
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::memio::{Record, VecEmit, VecGrouped, VecReader, context, lines};

    fn generate(rows: std::ops::Range<u64>) -> Vec<Record> {
        let input = rows.map(|r| (r.to_be_bytes().to_vec(), Vec::new())).collect();
        let mut out = VecEmit::default();
        Box::new(TeraGen).run(&mut VecReader::new(input), &mut out, &context(true)).unwrap();
        out.records
    }

    #[test]
    fn teragen_layout() {
        let rec = gensort_record(0x1234);
        assert_eq!(rec.len(), 100);
        assert_eq!(&rec[10..12], &[0x00, 0x11]);
        assert_eq!(&rec[12..44], b"00000000000000000000000000001234");
        assert_eq!(&rec[44..48], &[0x88, 0x99, 0xAA, 0xBB]);
        for group in rec[48..96].chunks(4) {
            assert!(group.iter().all(|b| *b == group[0] && HEX_UPPER.contains(b)), "{group:?}");
        }
        assert_eq!(&rec[96..100], &[0xCC, 0xDD, 0xEE, 0xFF]);
        let big = gensort_record(u64::MAX);
        assert_eq!(&big[12..44], b"0000000000000000FFFFFFFFFFFFFFFF");
    }

    #[test]
    fn teragen_is_deterministic_and_keys_are_random() {
        let a = generate(0..2000);
        let b = generate(1000..2000);
        assert_eq!(a.len(), 2000);
        assert_eq!(&a[1000..], &b[..], "a row's record does not depend on its split");
        assert!(a.iter().all(|(k, v)| k.len() == 10 && v.len() == 90));
        let keys: std::collections::HashSet<&Vec<u8>> = a.iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), 2000);
        let high = a.iter().filter(|(k, _)| k[0] >= 0x80).count();
        assert!((800..1200).contains(&high), "first key byte is roughly uniform: {high}");
    }

    fn validate(files: &[(&str, Vec<Record>)]) -> Vec<String> {
        let mut mapped = Vec::new();
        for (name, records) in files {
            let mut ctx = context(true);
            ctx.input_file = name.to_string();
            let mut out = VecEmit::default();
            Box::new(ValidateMap).run(&mut VecReader::new(records.clone()), &mut out, &ctx).unwrap();
            mapped.extend(out.records);
        }
        let mut out = VecEmit::default();
        Box::new(ValidateReduce).run(&mut VecGrouped::from_records(mapped), &mut out, &context(false)).unwrap();
        lines(&out.records)
    }

    #[test]
    fn teravalidate_accepts_sorted_output_with_the_same_checksum() {
        let mut records = generate(0..3000);
        let unsorted = validate(&[("/gen/part-m-00000", records.clone())]);
        records.sort();
        let sorted = validate(&[
            ("/sorted/part-r-00000", records[..1000].to_vec()),
            ("/sorted/part-r-00001", records[1000..].to_vec()),
        ]);
        assert_eq!(sorted.len(), 2, "no errors: {sorted:?}");
        assert!(sorted[0].starts_with("checksum\t"));
        assert_eq!(sorted[1], "rows\t3000");
        assert!(unsorted.iter().any(|l| l.starts_with("error\tmisorder in /gen/part-m-00000 at record")));
        assert_eq!(unsorted.iter().filter(|l| l.starts_with("error\t")).count(), 101, "100 listed + the rest counted");
        assert_eq!(unsorted[unsorted.len() - 2], sorted[0], "checksum does not depend on order");
    }

    #[test]
    fn teravalidate_detects_misorder_across_files() {
        let mut records = generate(0..100);
        records.sort();
        let lines =
            validate(&[("/s/part-r-00000", records[50..].to_vec()), ("/s/part-r-00001", records[..50].to_vec())]);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("error\tmisorder between /s/part-r-00000 (last key "), "{}", lines[0]);
        assert_eq!(lines[2], "rows\t100");
    }

    #[test]
    fn teravalidate_detects_a_single_swap() {
        let mut records = generate(0..10);
        records.sort();
        records.swap(3, 4);
        let lines = validate(&[("/s/part-r-00000", records)]);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("error\tmisorder in /s/part-r-00000 at record 4: "), "{}", lines[0]);
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abff"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
