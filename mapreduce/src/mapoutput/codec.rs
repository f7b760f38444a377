//! The record encoding of map output, spill and shuffle segments:
//! `varint(key_len) varint(value_len) key value`, varints in LEB128.

use crate::error::{Result, TaskError};
use std::io::Read;

/// Longest LEB128 encoding of a u64.
const MAX_VARINT: usize = 10;

/// Appends `v` as LEB128.
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Bytes of `v` as LEB128.
pub fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends one encoded record.
pub fn put_record(buf: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    put_varint(buf, key.len() as u64);
    put_varint(buf, value.len() as u64);
    buf.extend_from_slice(key);
    buf.extend_from_slice(value);
}

/// Bytes one record takes encoded.
pub fn record_len(key_len: usize, value_len: usize) -> usize {
    varint_len(key_len as u64) + varint_len(value_len as u64) + key_len + value_len
}

/// What the bytes at the front of a buffer hold.
#[derive(Debug, PartialEq, Eq)]
enum Header {
    /// Key and value lengths, and the header's own length.
    Complete { key_len: u64, value_len: u64, header_len: usize },
    /// The buffer ends inside the header.
    Partial,
    /// A varint longer than 10 bytes.
    Corrupt,
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<std::result::Result<u64, ()>> {
    let mut v: u64 = 0;
    for i in 0..MAX_VARINT {
        let b = *buf.get(*pos + i)?;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *pos += i + 1;
            return Some(Ok(v));
        }
    }
    Some(Err(()))
}

fn header(buf: &[u8]) -> Header {
    let mut pos = 0;
    let key_len = match get_varint(buf, &mut pos) {
        None => return Header::Partial,
        Some(Err(())) => return Header::Corrupt,
        Some(Ok(v)) => v,
    };
    let value_len = match get_varint(buf, &mut pos) {
        None => return Header::Partial,
        Some(Err(())) => return Header::Corrupt,
        Some(Ok(v)) => v,
    };
    Header::Complete { key_len, value_len, header_len: pos }
}

fn corrupt(name: &str, at: u64, why: &str) -> TaskError {
    TaskError::io(name, std::io::Error::new(std::io::ErrorKind::InvalidData, format!("corrupt record at byte {at}: {why}")))
}

/// Decodes records from a byte slice (a segment held in memory).
#[derive(Debug, Clone)]
pub struct SliceRecords<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> SliceRecords<'a> {
    pub fn new(data: &'a [u8]) -> SliceRecords<'a> {
        SliceRecords { data, pos: 0 }
    }

    /// The next (key, value); `None` at the end. A truncated or malformed
    /// record is an error naming `name` and the offset.
    pub fn next_record(&mut self, name: &str) -> Result<Option<(&'a [u8], &'a [u8])>> {
        match decode_at(self.data, self.pos) {
            Decoded::End => Ok(None),
            Decoded::Record { key, value, next } => {
                self.pos = next;
                Ok(Some((&self.data[key.0..key.1], &self.data[value.0..value.1])))
            }
            Decoded::Bad(why) => Err(corrupt(name, self.pos as u64, why)),
        }
    }
}

enum Decoded {
    End,
    Record { key: (usize, usize), value: (usize, usize), next: usize },
    Bad(&'static str),
}

/// Decodes the record at `pos` of a complete segment.
fn decode_at(data: &[u8], pos: usize) -> Decoded {
    let rest = &data[pos.min(data.len())..];
    if rest.is_empty() {
        return Decoded::End;
    }
    match header(rest) {
        Header::Partial => Decoded::Bad("truncated header"),
        Header::Corrupt => Decoded::Bad("bad length"),
        Header::Complete { key_len, value_len, header_len } => {
            let body = key_len.checked_add(value_len).and_then(|b| b.checked_add(header_len as u64));
            match body {
                Some(total) if total <= rest.len() as u64 => {
                    let k = pos + header_len;
                    let v = k + key_len as usize;
                    Decoded::Record { key: (k, v), value: (v, v + value_len as usize), next: pos + total as usize }
                }
                _ => Decoded::Bad("record runs past the end of the segment"),
            }
        }
    }
}

/// Decodes records from a byte stream (a spill file, a shuffled segment on
/// disk) through its own large buffer; keys and values are borrowed from
/// that buffer, so reading a record copies nothing.
///
/// The stream is a run of segments (a spill file holds one per partition):
/// [`start_segment`](Self::start_segment) sets how many bytes the next
/// segment has, and [`advance`](Self::advance) stops at its end.
pub struct StreamRecords<R> {
    reader: R,
    name: String,
    buf: Vec<u8>,
    /// Undecoded bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Bytes not yet read from `reader`.
    unread: u64,
    /// Bytes of the current segment not yet decoded.
    seg_left: u64,
    /// Offset in the stream of `buf[start]`.
    offset: u64,
    key: (usize, usize),
    value: (usize, usize),
}

impl<R: Read> StreamRecords<R> {
    /// A decoder over `len` bytes of `reader`, with a read buffer of
    /// `buf_size` bytes (grown for bigger records); `name` (the file) is
    /// used in errors. The whole stream is one segment until
    /// [`start_segment`](Self::start_segment) says otherwise.
    pub fn new(reader: R, len: u64, buf_size: usize, name: impl Into<String>) -> StreamRecords<R> {
        StreamRecords {
            reader,
            name: name.into(),
            buf: vec![0; buf_size.max(64)],
            start: 0,
            end: 0,
            unread: len,
            seg_left: len,
            offset: 0,
            key: (0, 0),
            value: (0, 0),
        }
    }

    /// The next segment is `len` bytes long (segments follow each other).
    pub fn start_segment(&mut self, len: u64) {
        self.seg_left = len;
    }

    /// Moves to the next record of the current segment; false at its end.
    pub fn advance(&mut self) -> Result<bool> {
        if self.seg_left == 0 {
            return Ok(false);
        }
        loop {
            let avail = &self.buf[self.start..self.end];
            let need = match header(avail) {
                Header::Corrupt => return Err(corrupt(&self.name, self.offset, "bad length")),
                Header::Partial => MAX_VARINT * 2,
                Header::Complete { key_len, value_len, header_len } => {
                    let total = key_len
                        .checked_add(value_len)
                        .and_then(|b| b.checked_add(header_len as u64))
                        .filter(|t| *t <= self.seg_left)
                        .ok_or_else(|| corrupt(&self.name, self.offset, "record runs past the end of the segment"))?;
                    let total = total as usize;
                    if total <= avail.len() {
                        let k = self.start + header_len;
                        let v = k + key_len as usize;
                        self.key = (k, v);
                        self.value = (v, v + value_len as usize);
                        self.start += total;
                        self.offset += total as u64;
                        self.seg_left -= total as u64;
                        return Ok(true);
                    }
                    total
                }
            };
            if !self.fill(need)? {
                return Err(corrupt(&self.name, self.offset, "truncated record"));
            }
        }
    }

    /// Reads more so that at least `need` undecoded bytes are buffered (or
    /// everything left is); false when nothing more could be read.
    fn fill(&mut self, need: usize) -> Result<bool> {
        if self.unread == 0 {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if need > self.buf.len() {
            self.buf.resize(need, 0);
        }
        let mut got_any = false;
        while self.end < need && self.unread > 0 {
            let room = (self.buf.len() - self.end).min(usize::try_from(self.unread).unwrap_or(usize::MAX));
            let n = read_retrying(&mut self.reader, &mut self.buf[self.end..self.end + room])
                .map_err(|e| TaskError::io(format!("{}: read", self.name), e))?;
            if n == 0 {
                return Err(TaskError::io(
                    &self.name,
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{} bytes missing at the end", self.unread)),
                ));
            }
            self.end += n;
            self.unread -= n as u64;
            got_any = true;
        }
        Ok(got_any)
    }

    pub fn key(&self) -> &[u8] {
        &self.buf[self.key.0..self.key.1]
    }

    pub fn value(&self) -> &[u8] {
        &self.buf[self.value.0..self.value.1]
    }
}

fn read_retrying<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Decodes records from an owned buffer (a shuffled segment in memory).
#[derive(Debug)]
pub struct OwnedRecords {
    data: Vec<u8>,
    pos: usize,
    name: String,
    key: (usize, usize),
    value: (usize, usize),
}

impl OwnedRecords {
    pub fn new(data: Vec<u8>, name: impl Into<String>) -> OwnedRecords {
        OwnedRecords { data, pos: 0, name: name.into(), key: (0, 0), value: (0, 0) }
    }

    /// Moves to the next record; false at the end.
    pub fn advance(&mut self) -> Result<bool> {
        match decode_at(&self.data, self.pos) {
            Decoded::End => Ok(false),
            Decoded::Record { key, value, next } => {
                self.key = key;
                self.value = value;
                self.pos = next;
                Ok(true)
            }
            Decoded::Bad(why) => Err(corrupt(&self.name, self.pos as u64, why)),
        }
    }

    pub fn key(&self) -> &[u8] {
        &self.data[self.key.0..self.key.1]
    }

    pub fn value(&self) -> &[u8] {
        &self.data[self.value.0..self.value.1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n).map(|i| (format!("key{i}").into_bytes(), vec![b'v'; i * 37 % 300])).collect()
    }

    fn encode(recs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (k, v) in recs {
            put_record(&mut buf, k, v);
        }
        buf
    }

    #[test]
    fn varints_round_trip_and_lengths_match() {
        for v in [0u64, 1, 127, 128, 300, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "{v}");
            let mut pos = 0;
            assert_eq!(get_varint(&buf, &mut pos), Some(Ok(v)));
            assert_eq!(pos, buf.len());
            assert_eq!(get_varint(&buf[..buf.len() - 1], &mut 0), None);
        }
        assert_eq!(get_varint(&[0xff; 11], &mut 0), Some(Err(())));
        assert_eq!(record_len(3, 200), 1 + 2 + 3 + 200);
    }

    #[test]
    fn slice_and_owned_decoders_read_what_was_written() {
        let recs = records(200);
        let buf = encode(&recs);
        let mut s = SliceRecords::new(&buf);
        let mut o = OwnedRecords::new(buf.clone(), "mem");
        for (k, v) in &recs {
            assert_eq!(s.next_record("x").unwrap(), Some((k.as_slice(), v.as_slice())));
            assert!(o.advance().unwrap());
            assert_eq!((o.key(), o.value()), (k.as_slice(), v.as_slice()));
        }
        assert_eq!(s.next_record("x").unwrap(), None);
        assert!(!o.advance().unwrap());
    }

    #[test]
    fn stream_decoder_handles_tiny_buffers_big_records_and_segments() {
        let recs = records(300);
        let mut big = recs.clone();
        big.push((b"huge".to_vec(), vec![7u8; 100_000]));
        let buf = encode(&big);
        // Whole stream as one segment, with a buffer smaller than most records.
        let mut r = StreamRecords::new(&buf[..], buf.len() as u64, 16, "s");
        for (k, v) in &big {
            assert!(r.advance().unwrap());
            assert_eq!((r.key(), r.value()), (k.as_slice(), v.as_slice()));
        }
        assert!(!r.advance().unwrap());

        // Two segments back to back.
        let first = encode(&recs[..100]);
        let mut r = StreamRecords::new(&buf[..], buf.len() as u64, 1000, "s");
        r.start_segment(first.len() as u64);
        let mut n = 0;
        while r.advance().unwrap() {
            n += 1;
        }
        assert_eq!(n, 100);
        r.start_segment((buf.len() - first.len()) as u64);
        assert!(r.advance().unwrap());
        assert_eq!(r.key(), b"key100");
    }

    #[test]
    fn truncated_and_corrupt_input_is_an_error_naming_the_source() {
        let buf = encode(&records(10));
        let cut = &buf[..buf.len() - 3];
        let mut s = SliceRecords::new(cut);
        let err = loop {
            match s.next_record("seg.out") {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("truncation not noticed"),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("seg.out"), "{err}");

        let mut r = StreamRecords::new(cut, cut.len() as u64, 64, "spill3.out");
        let err = loop {
            match r.advance() {
                Ok(true) => continue,
                Ok(false) => panic!("truncation not noticed"),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("spill3.out"), "{err}");

        // A length far beyond the segment is refused rather than allocated.
        let mut bad = Vec::new();
        put_varint(&mut bad, 1 << 40);
        put_varint(&mut bad, 0);
        let mut r = StreamRecords::new(&bad[..], bad.len() as u64, 64, "x");
        assert!(r.advance().is_err());
        // A stream shorter than announced.
        let mut r = StreamRecords::new(&buf[..10], buf.len() as u64, 64, "short");
        let mut res = Ok(true);
        while let Ok(true) = res {
            res = r.advance();
        }
        assert!(res.is_err());
    }
}
