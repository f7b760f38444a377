//! Whole datanodes and the stub namenode: block recovery as primary, rbw
//! replicas in block reports across a restart, the block scanner's reports.

use super::*;
use crate::test_client::{WriteOp, assert_acks_ok, call, dn_id, open_pipeline};
use std::path::PathBuf;
use tusk_proto::dfs::op_request::Op;

const P: usize = 64 * 1024;

struct Cluster {
    stub: StubNamenode,
    nodes: Vec<(DatanodeHandle, tempfile::TempDir)>,
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        let stub = StubNamenode::default();
        let nn = serve_stub(stub.clone()).await;
        let mut nodes = Vec::new();
        for _ in 0..n {
            let t = tempfile::tempdir().unwrap();
            let mut cfg = config(t.path(), &nn);
            cfg.domain_socket_path = None;
            nodes.push((start(cfg).await.unwrap(), t));
        }
        poll_until("every registration", || stub.0.lock().reports.len() >= n).await;
        Cluster { stub, nodes }
    }

    fn addr(&self, i: usize) -> String {
        self.nodes[i].0.transfer_addr().to_string()
    }

    fn uuid(&self, i: usize) -> String {
        self.nodes[i].0.datanode_uuid().to_string()
    }

    fn id(&self, i: usize) -> DatanodeId {
        DatanodeId { datanode_uuid: self.uuid(i), ..dn_id(&self.addr(i)) }
    }

    fn command_for(&self, i: usize, cmd: Command) {
        let mut s = self.stub.0.lock();
        s.pending_for.entry(self.uuid(i)).or_default().push(DatanodeCommand { command: Some(cmd) });
    }

    /// Replicas `num_bytes` the namenode was told node `i` received.
    fn received(&self, i: usize) -> Vec<ReplicaReport> {
        let uuid = self.uuid(i);
        let s = self.stub.0.lock();
        s.incremental.iter().filter(|r| r.datanode_uuid == uuid).flat_map(|r| r.received.clone()).collect()
    }

    async fn shutdown(self) {
        for (h, _) in self.nodes {
            h.shutdown().await.unwrap();
        }
    }
}

/// Leaves an rbw replica of `data` on the datanode at `addr` (gs 1000).
async fn leave_rbw(addr: &str, id: u64, data: &[u8]) {
    let (resp, p) = open_pipeline(&WriteOp::create(&[addr.to_string()], id)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    let mut p = p.unwrap();
    p.send(data).await;
    assert_acks_ok(&p.acks(data.len().div_ceil(P)).await, 0, 1);
}

/// Every file named `name` under `root`.
fn find(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if e.file_name() == name {
                out.push(p);
            }
        }
    }
    out
}

fn recover(id: u64, recovery_id: u64, targets: Vec<DatanodeId>) -> Command {
    Command::Recover(RecoverBlockCommand {
        block: Some(ExtendedBlock { block_id: id, generation_stamp: 1000, num_bytes: 0 }),
        new_generation_stamp: recovery_id,
        targets,
    })
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn block_recovery_commits_the_shortest_rbw_length() {
    let c = Cluster::start(3).await;
    let data = payload(3 * P);
    for (i, len) in [(0, 3 * P), (1, 2 * P), (2, P)] {
        leave_rbw(&c.addr(i), 900, &data[..len]).await;
    }
    c.command_for(0, recover(900, 1005, vec![c.id(0), c.id(1), c.id(2)]));
    poll_until("the commit", || !c.stub.0.lock().commits.is_empty()).await;
    let commit = c.stub.0.lock().commits[0].clone();
    assert_eq!(commit.block, Some(ExtendedBlock { block_id: 900, generation_stamp: 1000, num_bytes: 0 }));
    assert_eq!(commit.new_generation_stamp, 1005);
    assert_eq!(commit.new_length, P as u64);
    assert!(commit.close_file && !commit.delete_block);
    assert_eq!(sorted(commit.datanode_uuids), sorted(vec![c.uuid(0), c.uuid(1), c.uuid(2)]));
    let want = ReplicaReport { block_id: 900, generation_stamp: 1005, num_bytes: P as u64 };
    for i in 0..3 {
        assert_eq!(c.received(i), vec![want], "node {i} reported before the commit");
        assert_eq!(read_block(&c.addr(i), 900, 0, P as u64).await.unwrap(), &data[..P]);
        let t = c.nodes[i].1.path();
        let metas = find(t, "blk_900_1005.meta");
        assert_eq!(metas.len(), 1);
        assert!(metas[0].to_string_lossy().contains("finalized"), "{}", metas[0].display());
        assert!(find(t, "blk_900_1000.meta").is_empty());
        assert_eq!(std::fs::metadata(metas[0].with_file_name("blk_900")).unwrap().len(), P as u64);
    }
    // An older recovery of the block is refused from now on.
    let op = Op::InitReplicaRecovery(OpInitReplicaRecovery {
        block: Some(ExtendedBlock { block_id: 900, generation_stamp: 1000, num_bytes: 0 }),
        recovery_id: 1003,
    });
    let resp = call(&c.addr(1), op).await;
    assert_eq!(resp.status, TransferStatus::ErrorExists as i32, "{resp:?}");
    assert!(resp.message.contains("superseded by recovery 1005"), "{resp:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_finalized_replica_sets_the_recovered_length() {
    let c = Cluster::start(3).await;
    let data = payload(2 * P);
    let (_, acks) = write_block(&[c.addr(0)], 901, &data[..100_000], None).await;
    assert_eq!(acks.len(), 3);
    leave_rbw(&c.addr(1), 901, &data).await;
    leave_rbw(&c.addr(2), 901, &data[..P]).await;
    // The InitReplicaRecovery answers, as the primary sees them.
    let op = |id| {
        Op::InitReplicaRecovery(OpInitReplicaRecovery {
            block: Some(ExtendedBlock { block_id: id, generation_stamp: 1000, num_bytes: 0 }),
            recovery_id: 1001,
        })
    };
    let resp = call(&c.addr(0), op(901)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    assert_eq!((resp.replica_state, resp.generation_stamp, resp.replica_length), (ReplicaState::ReplicaFinalized as i32, 1000, 100_000));
    let resp = call(&c.addr(1), op(901)).await;
    assert_eq!((resp.replica_state, resp.generation_stamp, resp.replica_length), (ReplicaState::ReplicaRbw as i32, 1000, 2 * P as u64));

    c.command_for(1, recover(901, 1006, vec![c.id(0), c.id(1), c.id(2)]));
    // A block nobody holds is to be deleted.
    c.command_for(2, recover(902, 1007, vec![c.id(0), c.id(1)]));
    poll_until("both commits", || c.stub.0.lock().commits.len() >= 2).await;
    let commits = c.stub.0.lock().commits.clone();
    let kept = commits.iter().find(|r| r.block.unwrap().block_id == 901).unwrap();
    assert_eq!((kept.new_generation_stamp, kept.new_length), (1006, 100_000));
    assert!(!kept.delete_block);
    assert_eq!(sorted(kept.datanode_uuids.clone()), sorted(vec![c.uuid(0), c.uuid(1)]));
    let gone = commits.iter().find(|r| r.block.unwrap().block_id == 902).unwrap();
    assert!(gone.delete_block && gone.close_file && gone.datanode_uuids.is_empty(), "{gone:?}");
    assert_eq!(gone.new_generation_stamp, 1007);
    for i in [0, 1] {
        assert_eq!(read_block(&c.addr(i), 901, 0, 100_000).await.unwrap(), &data[..100_000]);
        assert_eq!(find(c.nodes[i].1.path(), "blk_901_1006.meta").len(), 1);
    }
    // The short replica took no part: still rbw with the old stamp.
    assert!(read_block(&c.addr(2), 901, 0, 1).await.is_err());
    assert_eq!(find(c.nodes[2].1.path(), "blk_901_1000.meta").len(), 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbw_replicas_survive_a_restart_and_are_reported_with_their_valid_length() {
    let t = tempfile::tempdir().unwrap();
    let stub = StubNamenode::default();
    let nn = serve_stub(stub.clone()).await;
    let handle = start(config(t.path(), &nn)).await.unwrap();
    poll_until("registration", || !stub.0.lock().reports.is_empty()).await;
    let addr = handle.transfer_addr().to_string();
    leave_rbw(&addr, 905, &payload(2 * P)).await;
    // Reported as rbw in the next full report (asked for by a re-registration).
    stub.0.lock().pending.push(DatanodeCommand { command: Some(Command::Reregister(true)) });
    poll_until("the second report", || stub.0.lock().reports.len() >= 2).await;
    let rbw = vec![ReplicaReport { block_id: 905, generation_stamp: 1000, num_bytes: 2 * P as u64 }];
    assert_eq!(stub.0.lock().reports[1].rbw, rbw);
    assert!(stub.0.lock().reports[1].replicas.is_empty());
    handle.shutdown().await.unwrap();

    // A torn tail: more data than checksums, a partial checksum.
    let data_file = find(t.path(), "blk_905").pop().unwrap();
    let meta_file = find(t.path(), "blk_905_1000.meta").pop().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&data_file).unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 700]).unwrap();
    let mut m = std::fs::OpenOptions::new().append(true).open(&meta_file).unwrap();
    std::io::Write::write_all(&mut m, &[1, 2, 3]).unwrap();
    drop((f, m));
    let before = stub.0.lock().reports.len();
    let handle = start(config(t.path(), &nn)).await.unwrap();
    poll_until("the report after the restart", || stub.0.lock().reports.len() > before).await;
    assert_eq!(stub.0.lock().reports[before].rbw, rbw);
    assert_eq!(std::fs::metadata(&data_file).unwrap().len(), 2 * P as u64);
    assert_eq!(std::fs::metadata(&meta_file).unwrap().len(), 7 + 4 * (2 * P as u64 / 512));
    // A stale rbw replica goes on the namenode's delete command.
    let delete = DeleteBlocksCommand { blocks: vec![ExtendedBlock { block_id: 905, generation_stamp: 1000, num_bytes: 0 }] };
    stub.0.lock().pending.push(DatanodeCommand { command: Some(Command::Delete(delete)) });
    poll_until("the deletion report", || stub.0.lock().incremental.iter().any(|r| !r.deleted.is_empty())).await;
    assert!(!data_file.exists() && !meta_file.exists());
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_block_scanner_reports_a_flipped_byte_and_a_vanished_file() {
    let t = tempfile::tempdir().unwrap();
    let stub = StubNamenode::default();
    let nn = serve_stub(stub.clone()).await;
    let mut cfg = config(t.path(), &nn);
    cfg.scan_bytes_per_sec = 100 << 20;
    cfg.scan_period_ms = 100;
    let handle = start(cfg).await.unwrap();
    let addr = handle.transfer_addr().to_string();
    poll_until("registration", || !stub.0.lock().reports.is_empty()).await;
    let (_, acks) = write_block(std::slice::from_ref(&addr), 903, &payload(70_000), None).await;
    assert_eq!(acks.len(), 3);
    let (_, acks) = write_block(std::slice::from_ref(&addr), 904, &payload(10_000), None).await;
    assert_eq!(acks.len(), 2);
    let path = find(t.path(), "blk_903").pop().unwrap();
    // Flip the byte in place: rewriting the whole file would let the
    // scanner (every 100 ms) catch it truncated.
    let bytes = std::fs::read(&path).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[bytes[66_000] ^ 0x08], 66_000).unwrap();
    }
    std::fs::remove_file(find(t.path(), "blk_904").pop().unwrap()).unwrap();

    poll_until("the bad block report", || !stub.0.lock().bad_blocks.is_empty()).await;
    let bad = stub.0.lock().bad_blocks[0].replicas.clone();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].block, Some(ExtendedBlock { block_id: 903, generation_stamp: 1000, num_bytes: 70_000 }));
    assert_eq!(bad[0].datanode_uuid, handle.datanode_uuid());
    assert!(bad[0].reason.contains("checksum mismatch at block offset 65536"), "{}", bad[0].reason);
    let gone = ReplicaReport { block_id: 904, generation_stamp: 1000, num_bytes: 10_000 };
    poll_until("the vanished replica's report", || stub.0.lock().incremental.iter().any(|r| r.deleted.contains(&gone))).await;

    // Reported once; the namenode's delete then removes the files.
    let delete = DeleteBlocksCommand { blocks: vec![ExtendedBlock { block_id: 903, generation_stamp: 1000, num_bytes: 0 }] };
    stub.0.lock().pending.push(DatanodeCommand { command: Some(Command::Delete(delete)) });
    let deleted = ReplicaReport { block_id: 903, generation_stamp: 1000, num_bytes: 70_000 };
    poll_until("the deletion report", || stub.0.lock().incremental.iter().any(|r| r.deleted.contains(&deleted))).await;
    assert!(!path.exists() && find(t.path(), "blk_903_1000.meta").is_empty());
    assert_eq!(stub.0.lock().bad_blocks.len(), 1);
    handle.shutdown().await.unwrap();
}
