//! The scanner thread on real files: a flipped byte and a truncated file are
//! reported bad, a vanished data file deleted; good replicas stay quiet.

use super::*;
use tusk_proto::dfs::{ExtendedBlock, ReplicaReport};
use tusk_proto::transfer::compute_checksums;

fn write(s: &Arc<Storage>, id: u64, data: &[u8]) {
    let mut r = s.create_rbw(id, 1).unwrap();
    for c in data.chunks(64 * 1024) {
        let mut sums = Vec::new();
        compute_checksums(c, 512, &mut sums);
        r.append(c, &sums).unwrap();
    }
    r.finalize().unwrap();
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_scanner_reports_corrupt_and_vanished_replicas() {
    let t = tempfile::tempdir().unwrap();
    let s = Arc::new(Storage::open(&[t.path().join("d")], 0, false).unwrap());
    let data: Vec<u8> = (0..200_000).map(|i| (i % 253) as u8).collect();
    for id in [1, 2, 3, 4] {
        write(&s, id, &data);
    }
    let (d1, _) = s.replica_paths(1).unwrap();
    let mut bytes = std::fs::read(&d1).unwrap();
    bytes[150_000] ^= 0x20;
    std::fs::write(&d1, &bytes).unwrap();
    let (_, m2) = s.replica_paths(2).unwrap();
    std::fs::OpenOptions::new().write(true).open(&m2).unwrap().set_len(100).unwrap();
    let (d3, m3) = s.replica_paths(3).unwrap();
    std::fs::remove_file(&d3).unwrap();

    let scanner = BlockScanner::start(Arc::clone(&s), 100 << 20, Duration::from_secs(3600)).unwrap().unwrap();
    wait_for("a full pass", || s.scan_queue.passes() >= 1);
    let q = s.notices.take();
    let mut bad: Vec<_> = q.bad.iter().map(|b| (b.block.unwrap().block_id, b.reason.clone())).collect();
    bad.sort();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert_eq!(bad[0].0, 1);
    assert!(bad[0].1.contains("checksum mismatch at block offset 149504"), "{}", bad[0].1);
    assert_eq!(bad[1].0, 2);
    assert!(bad[1].1.contains("meta file has 100 bytes"), "{}", bad[1].1);
    assert_eq!(q.bad[0].block.unwrap().generation_stamp, 1);
    assert_eq!(q.bad[0].datanode_uuid, s.datanode_uuid());
    assert_eq!(q.deleted, vec![ReplicaReport { block_id: 3, generation_stamp: 1, num_bytes: 200_000 }]);
    assert!(!m3.exists());
    // Bad replicas stay announced until the namenode deletes them; the
    // vanished one is gone.
    let ids: Vec<u64> = s.block_report().iter().map(|r| r.block_id).collect();
    assert_eq!(ids, vec![1, 2, 4]);

    // A suspect is scanned between passes; a good one raises nothing, a
    // newly damaged one is reported.
    let (d4, _) = s.replica_paths(4).unwrap();
    let mut bytes = std::fs::read(&d4).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&d4, &bytes).unwrap();
    s.mark_suspect(4);
    wait_for("the suspect's report", || !s.notices.queue.lock().bad.is_empty());
    let q = s.notices.take();
    assert_eq!(q.bad[0].block, Some(ExtendedBlock { block_id: 4, generation_stamp: 1, num_bytes: 200_000 }));
    assert!(q.bad[0].reason.contains("block offset 0"), "{}", q.bad[0].reason);
    scanner.stop();
}

#[test]
fn the_throttle_holds_the_rate() {
    let q = ScanQueue::default();
    let mut t = Throttle::new(1 << 20);
    let start = Instant::now();
    for _ in 0..4 {
        assert!(t.consume(64 * 1024, &q));
    }
    // 256 KiB at 1 MiB/s: about a quarter second.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(240), "{took:?}");
    q.state.lock().stop = true;
    assert!(!t.consume(1 << 20, &q), "a stop ends the wait");
}

#[test]
fn a_zero_rate_disables_the_scanner() {
    let t = tempfile::tempdir().unwrap();
    let s = Arc::new(Storage::open(&[t.path().join("d")], 0, false).unwrap());
    assert!(BlockScanner::start(s, 0, Duration::from_secs(1)).unwrap().is_none());
}
