use super::*;
use std::io::Write;
use tusk_proto::transfer::compute_checksums;

fn open(dirs: &[PathBuf]) -> Arc<Storage> {
    Arc::new(Storage::open(dirs, 0, false).unwrap())
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn write_replica(s: &Arc<Storage>, id: u64, gs: u64, data: &[u8]) -> ReplicaReport {
    let mut r = s.create_rbw(id, gs).unwrap();
    for chunk in data.chunks(64 * 1024) {
        let mut sums = Vec::new();
        compute_checksums(chunk, 512, &mut sums);
        r.append(chunk, &sums).unwrap();
    }
    r.finalize().unwrap()
}

fn read_all(s: &Storage, id: u64) -> (Vec<u8>, Vec<u8>) {
    let r = s.open_replica(id, 0).unwrap();
    let (mut d, mut c) = (Vec::new(), Vec::new());
    r.read_chunks(0, r.len() as usize, &mut d, &mut c).unwrap();
    (d, c)
}

#[test]
fn finalized_replica_survives_a_rescan() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![t.path().join("d1"), t.path().join("d2")];
    let s = open(&dirs);
    let data = payload(100_000);
    let id = (3 << 16) | (4 << 8) | 9;
    let rep = write_replica(&s, id, 1001, &data);
    assert_eq!(rep, ReplicaReport { block_id: id, generation_stamp: 1001, num_bytes: 100_000 });
    let info = s.replica(id).unwrap();
    let vdir = &dirs[info.volume];
    let data_path = vdir.join("current/finalized/subdir3/subdir4").join(format!("blk_{id}"));
    let meta_path = vdir.join("current/finalized/subdir3/subdir4").join(format!("blk_{id}_1001.meta"));
    assert_eq!(std::fs::read(&data_path).unwrap(), data);
    let meta = std::fs::read(&meta_path).unwrap();
    assert_eq!(&meta[..7], &[0, 1, 1, 0, 0, 2, 0]);
    let mut sums = Vec::new();
    compute_checksums(&data, 512, &mut sums);
    assert_eq!(&meta[7..], &sums[..]);
    assert!(std::fs::read_dir(vdir.join("current/rbw")).unwrap().next().is_none());
    // A second replica lands on the other volume (round robin).
    write_replica(&s, 77, 1, &payload(10));
    assert_ne!(s.replica(77).unwrap().volume, info.volume);
    let uuid = s.datanode_uuid();
    drop(s);

    let s = open(&dirs);
    assert_eq!(s.datanode_uuid(), uuid);
    assert_eq!(s.block_report().len(), 2);
    assert_eq!(s.replica(id).unwrap().len, 100_000);
    let (d, c) = read_all(&s, id);
    assert_eq!(d, data);
    assert_eq!(c, sums);
    let report = s.storage_report();
    assert_eq!(report.dfs_used, 100_000 + meta.len() as u64 + 10 + 7 + 4);
    assert!(report.capacity > 0 && report.remaining > 0);
}

#[test]
fn duplicate_replicas_are_refused_and_abandoned_ones_vanish() {
    let t = tempfile::tempdir().unwrap();
    let s = open(&[t.path().join("d")]);
    let r = s.create_rbw(5, 1).unwrap();
    assert!(matches!(s.create_rbw(5, 1), Err(DatanodeError::ReplicaExists { block_id: 5 })));
    r.abort();
    assert!(std::fs::read_dir(t.path().join("d/current/rbw")).unwrap().next().is_none());
    assert_eq!(s.rbw_replica(5), None);
    write_replica(&s, 5, 1, b"hello");
    assert!(matches!(s.create_rbw(5, 2), Err(DatanodeError::ReplicaExists { .. })));
    // Data after a partial chunk is refused.
    let mut r = s.create_rbw(6, 1).unwrap();
    let mut sums = Vec::new();
    compute_checksums(b"abc", 512, &mut sums);
    r.append(b"abc", &sums).unwrap();
    let e = r.append(b"abc", &sums).unwrap_err();
    assert!(e.to_string().contains("partial chunk"), "{e}");
}

#[test]
fn a_dropped_writer_leaves_an_rbw_replica_that_newer_writes_replace() {
    let t = tempfile::tempdir().unwrap();
    let s = open(&[t.path().join("d")]);
    let mut r = s.create_rbw(7, 3).unwrap();
    r.append(&[9; 1024], &crc(&[9; 1024])).unwrap();
    assert_eq!(s.rbw_replica(7), Some((3, 1024, true)));
    drop(r);
    assert_eq!(s.rbw_replica(7), Some((3, 1024, false)));
    assert_eq!(s.rbw_report(), vec![ReplicaReport { block_id: 7, generation_stamp: 3, num_bytes: 1024 }]);
    assert!(s.block_report().is_empty());
    assert!(s.open_replica(7, 0).is_err(), "an rbw replica is not readable");
    // A newer generation stamp refuses older writes and replaces the stale replica.
    assert!(matches!(s.create_rbw(7, 2), Err(DatanodeError::ReplicaExists { .. })));
    let r = s.create_rbw(7, 4).unwrap();
    assert_eq!(s.rbw_replica(7), Some((4, 0, true)));
    assert!(!t.path().join("d/current/rbw/blk_7_3.meta").exists());
    drop(r);
    // Delete obeys the generation stamp rule, for rbw replicas too.
    assert_eq!(s.delete(7, 3).unwrap(), None);
    let del = s.delete(7, 4).unwrap().unwrap();
    assert_eq!(del, ReplicaReport { block_id: 7, generation_stamp: 4, num_bytes: 0 });
    assert!(std::fs::read_dir(t.path().join("d/current/rbw")).unwrap().next().is_none());
    assert!(s.rbw_report().is_empty());
}

#[test]
fn deleting_an_rbw_replica_stops_its_writer() {
    let t = tempfile::tempdir().unwrap();
    let s = open(&[t.path().join("d")]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server_side, _) = listener.accept().unwrap();
    let mut r = s.create_rbw(8, 1).unwrap();
    r.append(&[1; 512], &crc(&[1; 512])).unwrap();
    r.watch_sockets(vec![server_side.try_clone().unwrap()]);
    // A "writer" blocked reading its upstream, like a pipeline thread.
    let writer = std::thread::spawn(move || {
        use std::io::Read;
        let mut sock = server_side;
        let mut buf = [0u8; 1];
        let n = sock.read(&mut buf);
        drop(r);
        n.map(|n| n == 0).unwrap_or(true)
    });
    let del = s.delete(8, 1).unwrap().unwrap();
    assert_eq!(del.num_bytes, 512);
    assert!(writer.join().unwrap(), "the writer's socket was shut down");
    assert_eq!(s.rbw_replica(8), None);
    assert!(std::fs::read_dir(t.path().join("d/current/rbw")).unwrap().next().is_none());
    drop(client);
}

#[test]
fn truncated_replica_is_reported_bad_and_kept_until_deleted() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![t.path().join("d")];
    let s = open(&dirs);
    write_replica(&s, 300, 4, &payload(5000));
    write_replica(&s, 301, 4, &payload(700));
    let data_path = dirs[0].join("current/finalized/subdir0/subdir1/blk_300");
    let f = std::fs::OpenOptions::new().write(true).open(&data_path).unwrap();
    f.set_len(4000).unwrap();
    drop(f);
    let e = s.open_replica(300, 0).err().unwrap();
    assert!(matches!(e, DatanodeError::CorruptReplica { block_id: 300, .. }), "{e}");
    assert!(e.to_string().contains("blk_300"), "{e}");
    // Reported once, with the block's stamp and this datanode's uuid.
    assert!(s.open_replica(300, 0).is_err());
    let q = s.notices.take();
    assert_eq!(q.bad.len(), 1, "{q:?}");
    let bad = &q.bad[0];
    assert_eq!(bad.block, Some(ExtendedBlock { block_id: 300, generation_stamp: 4, num_bytes: 5000 }));
    assert_eq!(bad.datanode_uuid, s.datanode_uuid());
    assert!(bad.reason.contains("4000"), "{}", bad.reason);
    // Still announced (the namenode tracks it as corrupt), never a transfer source.
    assert!(s.block_report().iter().any(|r| r.block_id == 300));
    let e = s.open_transfer_source(300, 0).err().unwrap();
    assert!(e.to_string().contains("corrupt"), "{e}");
    // The namenode's delete removes the files.
    assert!(s.delete(300, 4).unwrap().is_some());
    assert!(!data_path.exists());
    assert!(!dirs[0].join("current/finalized/subdir0/subdir1/blk_300_4.meta").exists());
    // At start, finalized files that disagree are removed (an interrupted finalize).
    let data_path = dirs[0].join("current/finalized/subdir0/subdir1/blk_301");
    std::fs::OpenOptions::new().write(true).open(&data_path).unwrap().set_len(100).unwrap();
    drop(s);
    let s = open(&dirs);
    assert!(s.block_report().is_empty());
    assert!(!data_path.exists());
}

#[test]
fn a_vanished_data_file_is_dropped_and_reported_deleted() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![t.path().join("d")];
    let s = open(&dirs);
    write_replica(&s, 40, 2, &payload(3000));
    std::fs::remove_file(dirs[0].join("current/finalized/subdir0/subdir0/blk_40")).unwrap();
    assert!(s.open_replica(40, 0).is_err());
    let q = s.notices.take();
    assert!(q.bad.is_empty());
    assert_eq!(q.deleted, vec![ReplicaReport { block_id: 40, generation_stamp: 2, num_bytes: 3000 }]);
    assert!(s.block_report().is_empty());
    assert!(!dirs[0].join("current/finalized/subdir0/subdir0/blk_40_2.meta").exists());
    assert_eq!(s.storage_report().dfs_used, 0);
}

#[test]
fn rbw_replicas_survive_a_restart_with_their_valid_length() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![t.path().join("d")];
    let s = open(&dirs);
    let data = payload(3000);
    // A crash in the middle of a write: 2048 good bytes...
    let mut r = s.create_rbw(9, 1).unwrap();
    r.append(&data[..2048], &crc(&data[..2048])).unwrap();
    std::mem::forget(r);
    // ...then a torn packet: data of two more chunks, one checksum wrong,
    // and meta cut inside the next checksum.
    let rbw = dirs[0].join("current/rbw");
    let mut f = std::fs::OpenOptions::new().append(true).open(rbw.join("blk_9")).unwrap();
    f.write_all(&data[2048..3000]).unwrap();
    let mut m = std::fs::OpenOptions::new().append(true).open(rbw.join("blk_9_1.meta")).unwrap();
    let mut tail = crc(&data[2048..2560]);
    tail[0] ^= 0xff;
    m.write_all(&tail).unwrap();
    m.write_all(&[1, 2]).unwrap();
    drop((f, m));
    // A replica whose only chunk is torn keeps 0 bytes; a finalized
    // replica supersedes an rbw one of the same block.
    let mut r = s.create_rbw(10, 1).unwrap();
    r.append(&data[..100], &[0, 0, 0, 0]).unwrap();
    std::mem::forget(r);
    write_replica(&s, 11, 5, &data[..600]);
    std::fs::write(rbw.join("blk_11"), &data[..512]).unwrap();
    std::fs::write(rbw.join("blk_11_4.meta"), [&meta::encode_header(512)[..], &crc(&data[..512])].concat()).unwrap();
    // Data without meta cannot be used.
    std::fs::write(rbw.join("blk_12"), b"x").unwrap();
    drop(s);

    let s = open(&dirs);
    assert_eq!(
        s.rbw_report(),
        vec![
            ReplicaReport { block_id: 9, generation_stamp: 1, num_bytes: 2048 },
            ReplicaReport { block_id: 10, generation_stamp: 1, num_bytes: 0 },
        ]
    );
    assert_eq!(std::fs::metadata(rbw.join("blk_9")).unwrap().len(), 2048);
    assert_eq!(std::fs::metadata(rbw.join("blk_9_1.meta")).unwrap().len(), 7 + 4 * 4);
    assert_eq!(std::fs::metadata(rbw.join("blk_10_1.meta")).unwrap().len(), 7);
    assert!(!rbw.join("blk_11").exists() && !rbw.join("blk_11_4.meta").exists() && !rbw.join("blk_12").exists());
    assert_eq!(s.block_report().iter().map(|r| r.block_id).collect::<Vec<_>>(), vec![11]);
    // The kept replica can be reopened by a recovery and finished.
    let mut r = s.reopen_rbw(9, 2, 2048, Reopen::Pipeline).unwrap();
    r.append(&data[2048..], &crc(&data[2048..])).unwrap();
    assert_eq!(r.finalize().unwrap(), ReplicaReport { block_id: 9, generation_stamp: 2, num_bytes: 3000 });
    assert_eq!(read_all(&s, 9), (data.clone(), crc(&data)));
}

#[test]
fn half_finalized_leftovers_are_cleaned_at_start() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![t.path().join("d")];
    drop(open(&dirs));
    // A data file whose meta file was never renamed into place.
    let leaf = dirs[0].join("current/finalized/subdir0/subdir0");
    std::fs::create_dir_all(&leaf).unwrap();
    std::fs::write(leaf.join("blk_10"), b"x").unwrap();
    let s = open(&dirs);
    assert!(s.block_report().is_empty());
    assert!(!leaf.join("blk_10").exists());
}

#[test]
fn no_space_refuses_new_replicas_and_appends() {
    let t = tempfile::tempdir().unwrap();
    let s = open(&[t.path().join("d")]);
    let mut r = s.create_rbw(20, 1).unwrap();
    r.append(&[1; 512], &crc(&[1; 512])).unwrap();
    s.set_reserved_bytes(u64::MAX / 2);
    let e = r.append(&[1; 512], &crc(&[1; 512])).unwrap_err();
    assert!(matches!(e, DatanodeError::NoSpace { block_id: 20, .. }), "{e}");
    assert!(e.to_string().contains("no space left"), "{e}");
    r.abort();
    let e = s.create_rbw(21, 1).err().unwrap();
    assert!(e.to_string().contains("no space left"), "{e}");
    assert_eq!(s.rbw_replica(21), None);
    assert_eq!(s.storage_report().remaining, 0);
    s.set_reserved_bytes(0);
    s.create_rbw(21, 1).unwrap().abort();
}

fn crc(data: &[u8]) -> Vec<u8> {
    let mut sums = Vec::new();
    compute_checksums(data, 512, &mut sums);
    sums
}

#[test]
fn delete_removes_both_files() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![t.path().join("d")];
    let s = open(&dirs);
    write_replica(&s, 12, 3, &payload(2000));
    let used = s.storage_report().dfs_used;
    assert!(used > 2000);
    // A delete for an older generation stamp keeps the newer replica.
    assert_eq!(s.delete(12, 2).unwrap(), None);
    let del = s.delete(12, 3).unwrap().unwrap();
    assert_eq!(del.block_id, 12);
    assert_eq!(del.num_bytes, 2000);
    let leaf = dirs[0].join("current/finalized/subdir0/subdir0");
    assert!(!leaf.join("blk_12").exists() && !leaf.join("blk_12_3.meta").exists());
    assert_eq!(s.storage_report().dfs_used, 0);
    assert!(s.open_replica(12, 0).is_err());
    assert_eq!(s.delete(12, 0).unwrap(), None);
}

#[test]
fn cluster_id_is_learned_once() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![t.path().join("a"), t.path().join("b")];
    let s = open(&dirs);
    assert_eq!(s.cluster_id(), "");
    s.adopt_cluster_id("CID-1", "nn:8020").unwrap();
    let e = s.adopt_cluster_id("CID-2", "nn:8020").unwrap_err().to_string();
    assert!(e.contains("CID-1") && e.contains("CID-2"), "{e}");
    drop(s);
    let s = open(&dirs);
    assert_eq!(s.cluster_id(), "CID-1");
    let v = std::fs::read_to_string(dirs[1].join("VERSION")).unwrap();
    assert!(v.contains("CID-1"), "{v}");
}
