//! 100-byte TeraSort (gensort) records: key = the first 10 bytes, value =
//! the other 90. Records sit at multiples of 100 in the file; a split
//! `[start, start + length)` reads the records that start inside it.

use super::{Buffered, ByteSource};
use crate::api::RecordReader;
use crate::error::{Result, TaskError};

/// Bytes per record.
pub(crate) const RECORD_LEN: usize = 100;
/// Bytes of a record's key.
pub(crate) const KEY_LEN: usize = 10;

/// Offset of the first record starting at or after `start`.
pub(crate) fn first_record(start: u64) -> u64 {
    start.div_ceil(RECORD_LEN as u64) * RECORD_LEN as u64
}

/// The records of one split.
pub(crate) struct TeraRecords<S> {
    input: Buffered<S>,
    /// Records starting at or after this offset belong to the next split.
    end: u64,
    path: String,
    record: Vec<u8>,
}

impl<S: ByteSource> TeraRecords<S> {
    /// `src` delivers the file from [`first_record`]`(start)` on.
    pub(crate) fn new(src: S, path: &str, start: u64, length: u64) -> TeraRecords<S> {
        TeraRecords {
            input: Buffered::new(src, first_record(start)),
            end: start.saturating_add(length),
            path: path.to_string(),
            record: Vec::with_capacity(RECORD_LEN),
        }
    }
}

impl<S: ByteSource> RecordReader for TeraRecords<S> {
    fn next(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<bool> {
        key.clear();
        value.clear();
        let offset = self.input.position();
        if offset >= self.end {
            return Ok(false);
        }
        self.record.clear();
        while self.record.len() < RECORD_LEN {
            let buf = self.input.fill()?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(RECORD_LEN - self.record.len());
            self.record.extend_from_slice(&buf[..n]);
            self.input.consume(n);
        }
        match self.record.len() {
            0 => Ok(false),
            RECORD_LEN => {
                key.extend_from_slice(&self.record[..KEY_LEN]);
                value.extend_from_slice(&self.record[KEY_LEN..]);
                Ok(true)
            }
            n => Err(TaskError::User(format!(
                "{}: truncated record at offset {offset}: {n} of {RECORD_LEN} bytes (the file length is not a multiple of {RECORD_LEN})",
                self.path
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::MemSource;
    use bytes::Bytes;

    /// `n` records; record i's bytes are all `i as u8` except its first two
    /// (the record number, big-endian).
    fn records(n: usize) -> Bytes {
        let mut out = Vec::with_capacity(n * RECORD_LEN);
        for i in 0..n {
            let mut r = vec![i as u8; RECORD_LEN];
            r[..2].copy_from_slice(&(i as u16).to_be_bytes());
            out.extend_from_slice(&r);
        }
        Bytes::from(out)
    }

    fn read(data: &Bytes, start: u64, length: u64, piece: usize) -> Result<Vec<u16>> {
        let mut r = TeraRecords::new(MemSource::new(data, first_record(start), piece), "/t", start, length);
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let mut out = Vec::new();
        while r.next(&mut k, &mut v)? {
            assert_eq!((k.len(), v.len()), (KEY_LEN, RECORD_LEN - KEY_LEN));
            let i = u16::from_be_bytes([k[0], k[1]]);
            assert!(v.iter().all(|b| *b == i as u8), "value of record {i}");
            out.push(i);
        }
        Ok(out)
    }

    #[test]
    fn first_records_round_up_to_multiples_of_100() {
        assert_eq!(first_record(0), 0);
        assert_eq!(first_record(1), 100);
        assert_eq!(first_record(100), 100);
        assert_eq!(first_record(199), 200);
    }

    #[test]
    fn every_record_is_read_once_whatever_the_split_size() {
        let n = 37;
        let data = records(n);
        let len = data.len() as u64;
        for split in [1u64, 7, 50, 99, 100, 101, 250, 1000, 3699, 3700, 5000] {
            for piece in [1, 33, 100, 4096] {
                let mut got = Vec::new();
                let mut start = 0;
                while start < len {
                    let length = split.min(len - start);
                    let part = read(&data, start, length, piece).unwrap();
                    // Records of a split start inside it.
                    for i in &part {
                        let off = u64::from(*i) * 100;
                        assert!(off >= start && off < start + length);
                    }
                    got.extend(part);
                    start += length;
                }
                assert_eq!(got, (0..n as u16).collect::<Vec<_>>(), "split {split} piece {piece}");
            }
        }
    }

    #[test]
    fn a_truncated_last_record_is_an_error_naming_the_file() {
        let mut data = records(3).to_vec();
        data.truncate(250);
        let data = Bytes::from(data);
        let e = read(&data, 0, 250, 64).unwrap_err().to_string();
        assert!(e.contains("/t: truncated record at offset 200: 50 of 100 bytes"), "{e}");
        // The split before it is fine.
        assert_eq!(read(&data, 0, 200, 64).unwrap(), vec![0, 1]);
    }

    #[test]
    fn a_split_beyond_the_data_reads_nothing() {
        let data = records(2);
        assert_eq!(read(&data, 200, 100, 64).unwrap(), Vec::<u16>::new());
        assert_eq!(read(&data, 150, 40, 64).unwrap(), Vec::<u16>::new());
    }
}
