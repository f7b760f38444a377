use super::*;
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
    drop(r);
    assert!(std::fs::read_dir(t.path().join("d/current/rbw")).unwrap().next().is_none());
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
fn truncated_replica_is_rejected_at_read_and_at_scan() {
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
    assert!(s.block_report().iter().all(|r| r.block_id != 300));
    drop(s);
    let s = open(&dirs);
    assert_eq!(s.block_report().iter().map(|r| r.block_id).collect::<Vec<_>>(), vec![301]);
    assert!(!data_path.exists());
}

#[test]
fn half_finalized_and_rbw_leftovers_are_cleaned_at_start() {
    let t = tempfile::tempdir().unwrap();
    let dirs = vec![t.path().join("d")];
    let s = open(&dirs);
    let mut r = s.create_rbw(9, 1).unwrap();
    r.append(&[1; 512], &crc(&[1; 512])).unwrap();
    std::mem::forget(r); // a crash in the middle of a write
    drop(s);
    // A data file whose meta file was never renamed into place.
    let leaf = dirs[0].join("current/finalized/subdir0/subdir0");
    std::fs::create_dir_all(&leaf).unwrap();
    std::fs::write(leaf.join("blk_10"), b"x").unwrap();
    let s = open(&dirs);
    assert!(s.block_report().is_empty());
    assert!(!leaf.join("blk_10").exists());
    assert!(std::fs::read_dir(dirs[0].join("current/rbw")).unwrap().next().is_none());
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
