//! Text lines of a split, with Hadoop's `LineRecordReader` boundary rule:
//! a split `[start, start + length)` reads exactly the lines that start in
//! `(start, start + length]`, plus, for the first split, the line at
//! offset 0. So a split that does not begin the file skips the partial
//! line it starts in (through the first `\n` at or after `start`), and
//! every split finishes the line that crosses its end (even one starting
//! exactly at its end). Across splits, every line is read exactly once.
//!
//! Lines end at `\n`; one `\r` before it (or at the end of the file) is
//! dropped.

use super::{Buffered, ByteSource};
use crate::api::RecordReader;
use crate::error::Result;
use std::io::Write;

/// Lines as records: `Text` (key = the line's byte offset in decimal,
/// value = the line) or `KeyValueText` (split at the first tab).
pub(crate) struct TextRecords<S> {
    input: Buffered<S>,
    /// Lines starting after this offset belong to the next split.
    end: u64,
    key_value: bool,
    line: Vec<u8>,
}

impl<S: ByteSource> TextRecords<S> {
    /// `src` delivers the file from offset `start` on.
    pub(crate) fn new(src: S, start: u64, length: u64, key_value: bool) -> Result<TextRecords<S>> {
        let mut input = Buffered::new(src, start);
        if start > 0 {
            skip_line(&mut input)?;
        }
        Ok(TextRecords { input, end: start.saturating_add(length), key_value, line: Vec::new() })
    }
}

impl<S: ByteSource> RecordReader for TextRecords<S> {
    fn next(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<bool> {
        key.clear();
        value.clear();
        let offset = self.input.position();
        if offset > self.end {
            return Ok(false);
        }
        if !self.key_value {
            if !read_line(&mut self.input, value)? {
                return Ok(false);
            }
            // Writing to a Vec cannot fail.
            let _ = write!(key, "{offset}");
            return Ok(true);
        }
        self.line.clear();
        if !read_line(&mut self.input, &mut self.line)? {
            return Ok(false);
        }
        match self.line.iter().position(|b| *b == b'\t') {
            Some(tab) => {
                key.extend_from_slice(&self.line[..tab]);
                value.extend_from_slice(&self.line[tab + 1..]);
            }
            None => key.extend_from_slice(&self.line),
        }
        Ok(true)
    }
}

fn find_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|c| *c == b'\n')
}

/// Skips through the next `\n` (or to the end of the file).
fn skip_line<S: ByteSource>(input: &mut Buffered<S>) -> Result<()> {
    loop {
        let buf = input.fill()?;
        if buf.is_empty() {
            return Ok(());
        }
        match find_newline(buf) {
            Some(i) => {
                input.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    }
}

/// Appends the next line (without `\n` and a `\r` before it) to `line`;
/// false at the end of the file.
fn read_line<S: ByteSource>(input: &mut Buffered<S>, line: &mut Vec<u8>) -> Result<bool> {
    let mut any = false;
    loop {
        let buf = input.fill()?;
        if buf.is_empty() {
            if any && line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(any);
        }
        any = true;
        match find_newline(buf) {
            Some(i) => {
                line.extend_from_slice(&buf[..i]);
                input.consume(i + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(true);
            }
            None => {
                line.extend_from_slice(buf);
                let n = buf.len();
                input.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::MemSource;
    use bytes::Bytes;

    /// (offset, line) of every line, computed the obvious way.
    fn reference(data: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let strip = |l: &[u8]| l.strip_suffix(b"\r").unwrap_or(l).to_vec();
        let mut out = Vec::new();
        let mut start = 0;
        for (i, b) in data.iter().enumerate() {
            if *b == b'\n' {
                out.push((start as u64, strip(&data[start..i])));
                start = i + 1;
            }
        }
        if start < data.len() {
            out.push((start as u64, strip(&data[start..])));
        }
        out
    }

    fn read_split(data: &[u8], start: u64, length: u64, piece: usize) -> Vec<(u64, Vec<u8>)> {
        read_split_of(&Bytes::copy_from_slice(data), start, length, piece)
    }

    fn read_split_of(data: &Bytes, start: u64, length: u64, piece: usize) -> Vec<(u64, Vec<u8>)> {
        let mut r = TextRecords::new(MemSource::new(data, start, piece), start, length, false).unwrap();
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let mut out = Vec::new();
        while r.next(&mut k, &mut v).unwrap() {
            let offset: u64 = std::str::from_utf8(&k).unwrap().parse().unwrap();
            out.push((offset, v.clone()));
        }
        out
    }

    /// Reads `data` split at `cuts` (split starts after 0) and checks that
    /// the lines read, in split order, are exactly the file's lines.
    fn check(data: &Bytes, cuts: &[u64], piece: usize) {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(data.len() as u64);
        let mut got = Vec::new();
        for w in bounds.windows(2) {
            let part = read_split_of(data, w[0], w[1] - w[0], piece);
            // Lines of a split start in (start, end], or at 0 for the first.
            for (off, _) in &part {
                assert!((*off > w[0] || *off == 0) && *off <= w[1], "line at {off} read by split {w:?}");
            }
            got.extend(part);
        }
        let want = reference(data);
        assert_eq!(got, want, "data {:?} cuts {cuts:?} piece {piece}", String::from_utf8_lossy(data));
    }

    fn samples() -> Vec<Bytes> {
        let long = "x".repeat(300);
        let mut v: Vec<Vec<u8>> = [
            "",
            "\n",
            "a",
            "a\n",
            "\n\n\n",
            "one\ntwo\nthree",
            "one\ntwo\nthree\n",
            "a\r\nb\r\n\r\nc\r\n",
            "a\r\nb\r\nno newline at the end\r",
            "lone\rcarriage\rreturns\n\r\n\r",
            "\nleading empty line\n",
            "tab\tseparated\tvalues\nk\tv\n",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        v.push(format!("short\n{long}\nmid\n{long}{long}\r\nend").into_bytes());
        v.push(format!("{long}\n").into_bytes());
        // Pseudo-random text with many short and empty lines.
        let mut x: u32 = 12345;
        let noisy: Vec<u8> = (0..700)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                match (x >> 16) % 9 {
                    0 | 1 => b'\n',
                    2 => b'\r',
                    _ => b'a' + ((x >> 8) % 26) as u8,
                }
            })
            .collect();
        v.push(noisy);
        v.into_iter().map(Bytes::from).collect()
    }

    #[test]
    fn every_line_is_read_exactly_once_for_every_split_size() {
        for data in samples() {
            let len = data.len() as u64;
            for split in 1..=len.max(1) + 1 {
                let cuts: Vec<u64> = (1..).map(|i| i * split).take_while(|c| *c < len).collect();
                for piece in [1, 2, 5, 64, 1 << 20] {
                    check(&data, &cuts, piece);
                }
            }
        }
    }

    #[test]
    fn every_line_is_read_exactly_once_at_every_single_cut() {
        // Two splits cut at each position: the cut lands at every
        // possible place (before/after \r, on \n, inside long lines).
        for data in samples() {
            for cut in 1..data.len() as u64 {
                for piece in [1, 3, 4096] {
                    check(&data, &[cut], piece);
                }
            }
        }
    }

    #[test]
    fn a_line_starting_exactly_at_the_split_end_belongs_to_that_split() {
        let data = b"aaaa\nbbbb\ncccc\n";
        // Split [0, 5): "bbbb" starts at 5 = its end: it reads it.
        assert_eq!(read_split(data, 0, 5, 64), vec![(0, b"aaaa".to_vec()), (5, b"bbbb".to_vec())]);
        // Split [5, 10) skips "bbbb" and reads "cccc" (starts at 10).
        assert_eq!(read_split(data, 5, 5, 64), vec![(10, b"cccc".to_vec())]);
        assert_eq!(read_split(data, 10, 5, 64), vec![]);
    }

    #[test]
    fn lines_longer_than_every_read_come_back_whole() {
        let line = vec![b'z'; 5000];
        let mut data = line.clone();
        data.push(b'\n');
        data.extend_from_slice(&line);
        let got = read_split(&data, 0, data.len() as u64, 100);
        assert_eq!(got, vec![(0, line.clone()), (5001, line)]);
    }

    #[test]
    fn key_value_lines_split_at_the_first_tab() {
        let data = b"k1\tv1\tmore\nno tab here\n\tempty key\nempty value\t\r\n";
        let data = Bytes::from_static(data);
        let mut r = TextRecords::new(MemSource::new(&data, 0, 7), 0, data.len() as u64, true).unwrap();
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let mut got = Vec::new();
        while r.next(&mut k, &mut v).unwrap() {
            got.push((String::from_utf8(k.clone()).unwrap(), String::from_utf8(v.clone()).unwrap()));
        }
        let want = [("k1", "v1\tmore"), ("no tab here", ""), ("", "empty key"), ("empty value", "")];
        assert_eq!(got, want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
    }
}
