//! Recovery of replicas on real files: reopening (rbw and finalized),
//! truncation inside a chunk, block recovery's two steps, prefixes.

use super::*;
use std::path::PathBuf;
use tusk_proto::transfer::{compute_checksums, verify_checksums};

fn open(dir: &std::path::Path) -> Arc<Storage> {
    Arc::new(Storage::open(&[dir.join("d")], 0, false).unwrap())
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 % 241) as u8).collect()
}

fn crc(data: &[u8]) -> Vec<u8> {
    let mut sums = Vec::new();
    compute_checksums(data, 512, &mut sums);
    sums
}

/// An rbw replica of `data` (gs `gs`) whose writer let go.
fn rbw(s: &Arc<Storage>, id: u64, gs: u64, data: &[u8]) {
    let mut r = s.create_rbw(id, gs).unwrap();
    for c in data.chunks(4096) {
        r.append(c, &crc(c)).unwrap();
    }
}

fn finalized(s: &Arc<Storage>, id: u64, gs: u64, data: &[u8]) {
    let mut r = s.create_rbw(id, gs).unwrap();
    r.append(data, &crc(data)).unwrap();
    r.finalize().unwrap();
}

/// Data and checksums of the finalized replica, checked against each other.
fn read_finalized(s: &Storage, id: u64, gs: u64) -> Vec<u8> {
    let r = s.open_replica(id, gs).unwrap();
    assert_eq!(r.gen_stamp(), gs);
    let (mut d, mut c) = (Vec::new(), Vec::new());
    r.read_chunks(0, r.len() as usize, &mut d, &mut c).unwrap();
    assert_eq!(verify_checksums(&d, &c, 512), Ok(()));
    d
}

fn files(s: &Storage, id: u64) -> (PathBuf, PathBuf) {
    s.replica_paths(id).unwrap()
}

#[test]
fn pipeline_reopen_cuts_inside_a_chunk_and_takes_the_new_stamp() {
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path());
    let data = payload(5000);
    rbw(&s, 1, 10, &data);
    // 1300 is inside chunk 2: its checksum must be recomputed.
    let r = s.reopen_rbw(1, 11, 1300, Reopen::Pipeline).unwrap();
    assert_eq!(r.len(), 1300);
    assert_eq!(s.rbw_replica(1), Some((11, 1300, true)));
    let (d, m) = files(&s, 1);
    assert!(m.ends_with("rbw/blk_1_11.meta"), "{}", m.display());
    assert!(!m.with_file_name("blk_1_10.meta").exists());
    assert_eq!(std::fs::read(&d).unwrap(), &data[..1300]);
    assert_eq!(std::fs::read(&m).unwrap()[7..], crc(&data[..1300])[..]);
    // The last chunk is partial: the replica can only end now.
    let rep = r.finalize().unwrap();
    assert_eq!(rep, ReplicaReport { block_id: 1, generation_stamp: 11, num_bytes: 1300 });
    assert_eq!(read_finalized(&s, 1, 11), &data[..1300]);
}

#[test]
fn a_finalized_replica_moves_back_to_rbw_and_a_short_one_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path());
    let data = payload(4096);
    finalized(&s, 2, 5, &data);
    let used = s.storage_report().dfs_used;
    assert!(used > 4096);
    // Too few bytes: refused, the replica stays as it was.
    let e = s.reopen_rbw(2, 6, 5000, Reopen::Pipeline).err().unwrap();
    assert!(matches!(e, DatanodeError::RecoveryRefused { .. }), "{e}");
    assert!(e.to_string().contains("fewer than the 5000"), "{e}");
    assert_eq!(s.replica(2).map(|i| i.gen_stamp), Some(5));
    // An older stamp than the replica's is refused too.
    let e = s.reopen_rbw(2, 4, 0, Reopen::Pipeline).err().unwrap();
    assert!(e.to_string().contains("newer than 4"), "{e}");
    let mut r = s.reopen_rbw(2, 6, 2048, Reopen::Pipeline).unwrap();
    assert!(s.replica(2).is_none(), "no longer finalized");
    assert_eq!(s.storage_report().dfs_used, 0);
    assert!(s.block_report().is_empty());
    let more = payload(3000);
    r.append(&more[..1024], &crc(&more[..1024])).unwrap();
    r.finalize().unwrap();
    let mut want = data[..2048].to_vec();
    want.extend_from_slice(&more[..1024]);
    assert_eq!(read_finalized(&s, 2, 6), want);
}

#[test]
fn reopening_stops_the_older_writer() {
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (sock, _) = listener.accept().unwrap();
    let mut old = s.create_rbw(3, 1).unwrap();
    old.append(&[7; 1024], &crc(&[7; 1024])).unwrap();
    old.watch_sockets(vec![sock.try_clone().unwrap()]);
    let writer = std::thread::spawn(move || {
        use std::io::Read;
        let mut sock = sock;
        let _ = sock.read(&mut [0u8; 1]);
        drop(old);
    });
    let r = s.reopen_rbw(3, 2, 512, Reopen::Pipeline).unwrap();
    writer.join().unwrap();
    assert_eq!(r.len(), 512);
    assert_eq!(s.rbw_replica(3), Some((2, 512, true)));
}

#[test]
fn block_recovery_truncates_and_finalizes_with_the_recovery_id() {
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path());
    let data = payload(6000);
    rbw(&s, 4, 20, &data);
    // Stale replicas and ids not newer than the replica are refused.
    let e = s.init_replica_recovery(4, 21, 30).unwrap_err();
    assert!(e.to_string().contains("older than the block's 21"), "{e}");
    let e = s.init_replica_recovery(4, 20, 20).unwrap_err();
    assert!(e.to_string().contains("not older than recovery id 20"), "{e}");
    let info = s.init_replica_recovery(4, 20, 31).unwrap();
    assert_eq!(info, RecoveryInfo { state: ReplicaState::ReplicaRbw, gen_stamp: 20, len: 6000 });
    // An older recovery is refused once a newer one was seen.
    let e = s.init_replica_recovery(4, 20, 30).unwrap_err();
    assert!(matches!(e, DatanodeError::RecoverySuperseded { recovery_id: 30, current: 31, .. }), "{e}");
    assert_eq!(e.transfer_status(), tusk_proto::dfs::TransferStatus::ErrorExists);
    let e = s.update_replica_under_recovery(4, 30, 4000).unwrap_err();
    assert!(matches!(e, DatanodeError::RecoverySuperseded { .. }), "{e}");
    // A pipeline recovery can no longer take the replica with an older stamp.
    let e = s.reopen_rbw(4, 25, 0, Reopen::Pipeline).err().unwrap();
    assert!(e.to_string().contains("block recovery 31"), "{e}");
    let rep = s.update_replica_under_recovery(4, 31, 4000).unwrap();
    assert_eq!(rep, ReplicaReport { block_id: 4, generation_stamp: 31, num_bytes: 4000 });
    assert_eq!(read_finalized(&s, 4, 31), &data[..4000]);
    assert!(s.rbw_report().is_empty());
    // Idempotent for the same id and length.
    assert_eq!(s.update_replica_under_recovery(4, 31, 4000).unwrap(), rep);
    // An update without an init is refused.
    rbw(&s, 5, 1, &data);
    let e = s.update_replica_under_recovery(5, 2, 10).unwrap_err();
    assert!(e.to_string().contains("not initialized"), "{e}");
}

#[test]
fn a_finalized_replica_of_the_right_length_only_takes_the_new_stamp() {
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path());
    let data = payload(3333);
    finalized(&s, 6, 7, &data);
    let info = s.init_replica_recovery(6, 7, 9).unwrap();
    assert_eq!(info, RecoveryInfo { state: ReplicaState::ReplicaFinalized, gen_stamp: 7, len: 3333 });
    let (d, m) = files(&s, 6);
    let rep = s.update_replica_under_recovery(6, 9, 3333).unwrap();
    assert_eq!(rep.generation_stamp, 9);
    let (d2, m2) = files(&s, 6);
    assert_eq!(d, d2, "the data file did not move");
    assert!(!m.exists() && m2.ends_with("blk_6_9.meta"));
    assert_eq!(read_finalized(&s, 6, 9), data);
    assert_eq!(s.block_report(), vec![ReplicaReport { block_id: 6, generation_stamp: 9, num_bytes: 3333 }]);
}

#[test]
fn a_prefix_of_an_rbw_replica_ends_with_a_recomputed_checksum() {
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path());
    let data = payload(3000);
    rbw(&s, 8, 3, &data);
    let r = s.open_prefix(8, 3, 1500).unwrap();
    assert_eq!(r.len(), 1500);
    let (mut d, mut c) = (Vec::new(), Vec::new());
    r.read_chunks(0, 1500, &mut d, &mut c).unwrap();
    assert_eq!(d, &data[..1500]);
    assert_eq!(c, crc(&data[..1500]));
    assert!(s.open_prefix(8, 2, 10).is_err(), "a newer replica than asked for is refused");
    let e = s.open_prefix(8, 3, 3001).err().unwrap();
    assert!(e.to_string().contains("fewer than the 3001"), "{e}");
}

/// A writer of `id` (gs `gs`) blocked on its socket like a pipeline thread;
/// it lets go when the socket is shut down. Returns the client end (keeps
/// the connection open) and the thread, which tells whether it was stopped.
fn blocked_writer(s: &Arc<Storage>, id: u64, gs: u64) -> (std::net::TcpStream, std::thread::JoinHandle<bool>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (sock, _) = listener.accept().unwrap();
    let mut w = s.create_rbw(id, gs).unwrap();
    w.append(&[7; 1024], &crc(&[7; 1024])).unwrap();
    w.watch_sockets(vec![sock.try_clone().unwrap()]);
    let t = std::thread::spawn(move || {
        use std::io::Read;
        let mut sock = sock;
        let stopped = matches!(sock.read(&mut [0u8; 1]), Ok(0) | Err(_));
        drop(w);
        stopped
    });
    (client, t)
}

#[test]
fn a_stale_request_is_refused_without_stopping_a_newer_writer() {
    use std::io::Write;
    let t = tempfile::tempdir().unwrap();
    let s = open(t.path());
    let (mut client, writer) = blocked_writer(&s, 12, 5);
    // A copy for a recovery of stamp 4, and a recovery to stamp 4.
    let e = s.open_prefix(12, 4, 512).err().unwrap();
    assert!(e.to_string().contains("newer than 4"), "{e}");
    let e = s.reopen_rbw(12, 4, 512, Reopen::Pipeline).err().unwrap();
    assert!(e.to_string().contains("newer than 4"), "{e}");
    assert_eq!(s.rbw_replica(12), Some((5, 1024, true)), "the writer of stamp 5 still owns its replica");
    client.write_all(&[1]).unwrap();
    assert!(!writer.join().unwrap(), "the writer was not stopped");
}
