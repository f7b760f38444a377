//! Serving map output to reducers: partition `p` of a map attempt is bytes
//! `[offset, offset + length)` of `output/file.out`, found through
//! `output/file.out.index`; it goes out in chunks of at most 1 MiB, the
//! first one carrying the partition's length and CRC32C.

use bytes::Bytes;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;
use tusk_mapreduce::mapoutput::{INDEX_FILE, IndexEntry, OUTPUT_FILE, read_index};
use tusk_proto::compute::MapOutputChunk;

use crate::error::{Result, WorkerError};

/// Largest chunk of a streamed partition.
pub(crate) const CHUNK: usize = 1 << 20;

/// One partition of one map output, checked against the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub file: PathBuf,
    pub entry: IndexEntry,
}

/// Finds partition `partition` in the map output under `output_dir`.
/// Blocking.
pub(crate) fn locate(output_dir: &Path, attempt_id: &str, partition: u32) -> Result<Segment> {
    let index = output_dir.join(INDEX_FILE);
    if !index.is_file() {
        return Err(WorkerError::NoMapOutput {
            attempt_id: attempt_id.to_string(),
            reason: format!("{} does not exist", index.display()),
        });
    }
    let entries =
        read_index(&index).map_err(|e| WorkerError::CorruptMapOutput { path: index.clone(), reason: e.to_string() })?;
    let entry = *entries.get(partition as usize).ok_or_else(|| WorkerError::BadPartition {
        attempt_id: attempt_id.to_string(),
        partition,
        partitions: entries.len(),
    })?;
    let file = output_dir.join(OUTPUT_FILE);
    let len = std::fs::metadata(&file).map_err(|e| WorkerError::io(&file, e))?.len();
    if entry.offset.saturating_add(entry.length) > len {
        return Err(WorkerError::CorruptMapOutput {
            path: file,
            reason: format!(
                "partition {partition} spans bytes {}..{} but the file has {len}",
                entry.offset,
                entry.offset + entry.length
            ),
        });
    }
    Ok(Segment { file, entry })
}

/// The answer to a reader on this host: where the segment is, no bytes.
pub(crate) fn local_chunk(segment: &Segment) -> MapOutputChunk {
    MapOutputChunk {
        total_len: segment.entry.length,
        data: Bytes::new(),
        crc32c: segment.entry.crc32c,
        local_path: segment.file.to_string_lossy().into_owned(),
        local_offset: segment.entry.offset,
    }
}

/// Streams a segment's bytes from a blocking thread; stops early when the
/// receiver goes away (the reducer hung up).
pub(crate) fn stream(segment: Segment) -> mpsc::Receiver<Result<MapOutputChunk>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = send_segment(&segment, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

fn send_segment(segment: &Segment, tx: &mpsc::Sender<Result<MapOutputChunk>>) -> Result<()> {
    let Segment { file, entry } = segment;
    let mut f = std::fs::File::open(file).map_err(|e| WorkerError::io(file, e))?;
    f.seek(SeekFrom::Start(entry.offset)).map_err(|e| WorkerError::io(file, e))?;
    let mut left = entry.length;
    let mut first = true;
    loop {
        let n = left.min(CHUNK as u64) as usize;
        let mut data = vec![0u8; n];
        f.read_exact(&mut data).map_err(|e| WorkerError::io(file, e))?;
        left -= n as u64;
        let chunk = MapOutputChunk {
            total_len: if first { entry.length } else { 0 },
            data: Bytes::from(data),
            crc32c: if first { entry.crc32c } else { 0 },
            ..Default::default()
        };
        first = false;
        if tx.blocking_send(Ok(chunk)).is_err() || left == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tusk_mapreduce::mapoutput::write_index;

    #[tokio::test]
    async fn partitions_stream_in_chunks_with_length_and_crc_first() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(3 * CHUNK + 10)).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join(OUTPUT_FILE), &data).unwrap();
        let big = IndexEntry { offset: 5, length: (2 * CHUNK + 7) as u64, crc32c: 0xabcd };
        let empty = IndexEntry { offset: big.offset + big.length, length: 0, crc32c: 0 };
        write_index(&dir.path().join(INDEX_FILE), &[big, empty]).unwrap();

        let seg = locate(dir.path(), "attempt_a", 0).unwrap();
        let mut rx = stream(seg);
        let mut chunks = Vec::new();
        while let Some(c) = rx.recv().await {
            chunks.push(c.unwrap());
        }
        assert_eq!(chunks.len(), 3);
        assert_eq!((chunks[0].total_len, chunks[0].crc32c), (big.length, 0xabcd));
        assert_eq!((chunks[1].total_len, chunks[2].data.len()), (0, 7));
        let got: Vec<u8> = chunks.iter().flat_map(|c| c.data.to_vec()).collect();
        assert_eq!(got, &data[5..5 + big.length as usize]);

        let mut rx = stream(locate(dir.path(), "attempt_a", 1).unwrap());
        let c = rx.recv().await.unwrap().unwrap();
        assert_eq!((c.total_len, c.data.len()), (0, 0));
        assert!(rx.recv().await.is_none());
    }

    #[test]
    fn bad_requests_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = locate(dir.path(), "attempt_a", 0).unwrap_err().to_string();
        assert!(e.contains("attempt_a") && e.contains("file.out.index"), "{e}");
        std::fs::write(dir.path().join(OUTPUT_FILE), b"short").unwrap();
        write_index(&dir.path().join(INDEX_FILE), &[IndexEntry { offset: 0, length: 10, crc32c: 1 }]).unwrap();
        let e = locate(dir.path(), "attempt_a", 3).unwrap_err().to_string();
        assert_eq!(e, "attempt attempt_a: partition 3 out of range (map output has 1 partitions)");
        let e = locate(dir.path(), "attempt_a", 0).unwrap_err().to_string();
        assert!(e.contains("file.out") && e.contains("the file has 5"), "{e}");
        std::fs::write(dir.path().join(INDEX_FILE), b"garbage!").unwrap();
        let e = locate(dir.path(), "attempt_a", 0).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
    }
}
