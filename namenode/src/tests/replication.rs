//! Block management on an in-memory namesystem with fake datanodes:
//! re-replication after a dead node, throttling, pending timeouts, excess
//! replicas, corrupt replicas, racks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tusk_proto::dfs::datanode_command::Command;
use tusk_proto::dfs::{BadReplica, DatanodeCommand, DatanodeId, ExtendedBlock, ReplicaReport, StorageReport};
use tusk_proto::error::ErrorKind;

use super::*;
use crate::replication::queue;

pub(super) fn room() -> StorageReport {
    StorageReport { capacity: 1 << 40, dfs_used: 0, remaining: 1 << 40 }
}

/// Registers datanode `dn-<n>` at 10.0.0.<n>:9866.
pub(super) fn register(ns: &Namesystem, n: u8) -> String {
    let uuid = format!("dn-{n}");
    let id = DatanodeId {
        datanode_uuid: uuid.clone(),
        transfer_addr: format!("10.0.0.{n}:9866"),
        host: format!("10.0.0.{n}"),
        ..Default::default()
    };
    ns.register_datanode(tusk_proto::PROTOCOL_VERSION, id, "", room()).unwrap();
    uuid
}

/// An in-memory namesystem with datanodes 1..=n; `topology` (if any) is
/// written to a file the config names.
pub(super) fn cluster(n: u8, topology: Option<&str>) -> (Namesystem, Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = NamenodeConfig::default();
    if let Some(t) = topology {
        let path = dir.path().join("topology");
        std::fs::write(&path, t).unwrap();
        c.topology_file = Some(path);
    }
    let ns = Namesystem::in_memory(c, "root");
    let uuids = (1..=n).map(|i| register(&ns, i)).collect();
    (ns, uuids, dir)
}

pub(super) fn rep(b: &ExtendedBlock) -> ReplicaReport {
    ReplicaReport { block_id: b.block_id, generation_stamp: b.generation_stamp, num_bytes: b.num_bytes }
}

/// A closed one-block file of 100 bytes whose replicas are on `on`.
pub(super) async fn file_on(ns: &Namesystem, path: &str, replication: u32, on: &[&str]) -> ExtendedBlock {
    let c = su();
    ns.create(&c, path, 0, false, true, replication, 0).await.unwrap();
    let b = ns.add_block(&c, path, None, &[], "").await.unwrap().block.unwrap();
    let b = ExtendedBlock { num_bytes: 100, ..b };
    for dn in on {
        ns.incremental_report(dn, &[rep(&b)], &[]).unwrap();
    }
    assert!(ns.complete(&c, path, Some(&b)).await.unwrap());
    b
}

pub(super) fn hb(ns: &Namesystem, uuid: &str) -> Vec<DatanodeCommand> {
    ns.heartbeat(uuid, room(), 0)
}

/// (block id, target uuids) of the TransferBlock commands.
pub(super) fn transfers(cmds: &[DatanodeCommand]) -> Vec<(u64, Vec<String>)> {
    cmds.iter()
        .filter_map(|c| match &c.command {
            Some(Command::Transfer(t)) => Some((
                t.block.as_ref().map(|b| b.block_id).unwrap_or(0),
                t.targets.iter().map(|d| d.datanode_uuid.clone()).collect(),
            )),
            _ => None,
        })
        .collect()
}

/// Block ids of the DeleteBlocks commands.
pub(super) fn deletes(cmds: &[DatanodeCommand]) -> Vec<u64> {
    cmds.iter()
        .filter_map(|c| match &c.command {
            Some(Command::Delete(d)) => Some(d.blocks.iter().map(|b| b.block_id).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

pub(super) fn holders(ns: &Namesystem, path: &str) -> Vec<String> {
    let l = ns.get_block_locations(&su(), path, 0, 0, "").unwrap();
    let mut v: Vec<String> = l.blocks[0].locations.iter().map(|d| d.datanode_uuid.clone()).collect();
    v.sort();
    v
}

fn kill(ns: &Namesystem, uuid: &str) {
    {
        let mut dm = ns.datanodes.lock();
        let idx = dm.live_index(uuid).unwrap();
        dm.age(idx, Duration::from_secs(3600));
    }
    assert_eq!(ns.check_dead_nodes(), 1);
}

/// (transfers scheduled, replicas invalidated) by a tick.
fn work(s: crate::replication::TickStats) -> (usize, usize) {
    (s.scheduled, s.invalidated)
}

fn level(ns: &Namesystem, b: &ExtendedBlock) -> Option<u8> {
    ns.repl.lock().queue.level_of(b.block_id)
}

#[tokio::test]
async fn a_dead_nodes_blocks_are_copied_with_throttled_sources() {
    let (ns, dn, _d) = cluster(4, None);
    let mut blocks = Vec::new();
    for i in 0..5 {
        blocks.push(file_on(&ns, &format!("/f{i}"), 3, &[&dn[0], &dn[1], &dn[2]]).await);
    }
    assert_eq!(ns.replication_tick().scheduled, 0, "healthy blocks need nothing");
    kill(&ns, &dn[0]);
    assert!(blocks.iter().all(|b| level(&ns, b).is_none()), "queued only by the monitor");
    let s = ns.replication_tick();
    // 3 live nodes * 2 blocks are looked at; two sources with 2 streams each.
    assert_eq!(s.scheduled, 4);
    let mut sent = Vec::new();
    for src in [&dn[1], &dn[2]] {
        let t = transfers(&hb(&ns, src));
        assert_eq!(t.len(), 2, "at most replication_max_streams per source");
        sent.extend(t);
    }
    assert!(sent.iter().all(|(_, targets)| targets == &vec![dn[3].clone()]), "{sent:?}");
    let waiting = blocks.iter().find(|b| !sent.iter().any(|(id, _)| *id == b.block_id)).unwrap();
    assert_eq!(level(&ns, waiting), Some(queue::UNDER));
    assert_eq!(ns.replication_tick().scheduled, 0, "sources are busy");
    // Two copies arrive: their sources are free again.
    for (id, _) in &sent[..2] {
        let b = blocks.iter().find(|b| b.block_id == *id).unwrap();
        ns.incremental_report(&dn[3], &[rep(b)], &[]).unwrap();
    }
    assert_eq!(ns.replication_tick().scheduled, 1);
    let again: Vec<_> = [&dn[1], &dn[2]].iter().flat_map(|s| transfers(&hb(&ns, s))).collect();
    assert_eq!(again, vec![(waiting.block_id, vec![dn[3].clone()])]);
    assert!(ns.repl.lock().queue.len() == 0);
}

#[tokio::test]
async fn priorities_reflect_the_live_replicas() {
    let (ns, dn, _d) = cluster(3, None);
    let b3 = file_on(&ns, "/three", 3, &[&dn[0], &dn[1], &dn[2]]).await;
    let b2 = file_on(&ns, "/two", 2, &[&dn[0], &dn[1]]).await;
    ns.replication_tick();
    // No source may copy (streams used up), so blocks stay queued.
    {
        let (a, b) = {
            let dm = ns.datanodes.lock();
            (dm.live_index(&dn[0]).unwrap(), dm.live_index(&dn[1]).unwrap())
        };
        let mut r = ns.repl.lock();
        r.pending.add(1, a, &[], Instant::now());
        r.pending.add(2, a, &[], Instant::now());
        r.pending.add(3, b, &[], Instant::now());
        r.pending.add(4, b, &[], Instant::now());
    }
    kill(&ns, &dn[2]);
    ns.replication_tick();
    assert_eq!(level(&ns, &b3), Some(queue::UNDER));
    assert_eq!(level(&ns, &b2), None, "two live replicas are enough");
    kill(&ns, &dn[1]);
    ns.replication_tick();
    assert_eq!(level(&ns, &b3), Some(queue::HIGHEST));
    assert_eq!(level(&ns, &b2), Some(queue::HIGHEST));
    kill(&ns, &dn[0]);
    ns.replication_tick();
    assert_eq!(level(&ns, &b3), Some(queue::CORRUPT), "nothing left to copy from");
}

#[tokio::test]
async fn a_transfer_that_never_completes_is_scheduled_again() {
    let (ns, dn, _d) = cluster(3, None);
    let b = file_on(&ns, "/f", 2, &[&dn[0], &dn[1]]).await;
    kill(&ns, &dn[1]);
    let t0 = Instant::now();
    assert_eq!(ns.replication_tick_at(t0).scheduled, 1);
    assert_eq!(transfers(&hb(&ns, &dn[0])), vec![(b.block_id, vec![dn[2].clone()])]);
    assert_eq!(ns.replication_tick_at(t0 + Duration::from_secs(60)).scheduled, 0, "still pending");
    let timeout = Duration::from_millis(ns.conf.replication_pending_timeout_ms);
    let s = ns.replication_tick_at(t0 + timeout + Duration::from_secs(1));
    assert_eq!((s.timed_out, s.scheduled), (1, 1));
    assert_eq!(transfers(&hb(&ns, &dn[0])), vec![(b.block_id, vec![dn[2].clone()])]);
    ns.incremental_report(&dn[2], &[rep(&b)], &[]).unwrap();
    assert_eq!(ns.replication_tick().scheduled, 0);
    assert_eq!(holders(&ns, "/f"), vec![dn[0].clone(), dn[2].clone()]);
}

#[tokio::test]
async fn setrep_up_and_down() {
    let (ns, dn, _d) = cluster(4, None);
    let b = file_on(&ns, "/f", 3, &[&dn[0], &dn[1], &dn[2]]).await;
    ns.replication_tick();
    ns.set_replication(&su(), "/f", 4).await.unwrap();
    assert_eq!(ns.replication_tick().scheduled, 1);
    let sent: Vec<_> = dn[..3].iter().flat_map(|s| transfers(&hb(&ns, s))).collect();
    assert_eq!(sent, vec![(b.block_id, vec![dn[3].clone()])]);
    ns.incremental_report(&dn[3], &[rep(&b)], &[]).unwrap();
    ns.set_replication(&su(), "/f", 1).await.unwrap();
    assert_eq!(ns.replication_tick().invalidated, 3);
    let mut deleted = Vec::new();
    for d in &dn {
        if deletes(&hb(&ns, d)) == vec![b.block_id] {
            deleted.push(d.clone());
        }
    }
    assert_eq!(deleted.len(), 3);
    assert_eq!(ns.replication_tick().invalidated, 0, "deletions are not repeated");
    for d in &deleted {
        ns.incremental_report(d, &[], &[rep(&b)]).unwrap();
    }
    assert_eq!(holders(&ns, "/f").len(), 1);
    assert_eq!(work(ns.replication_tick()), (0, 0));
}

#[tokio::test]
async fn a_node_that_comes_back_loses_its_excess_replicas() {
    let (ns, dn, _d) = cluster(3, None);
    let b = file_on(&ns, "/f", 2, &[&dn[0], &dn[1]]).await;
    kill(&ns, &dn[0]);
    ns.replication_tick();
    assert_eq!(transfers(&hb(&ns, &dn[1])), vec![(b.block_id, vec![dn[2].clone()])]);
    ns.incremental_report(&dn[2], &[rep(&b)], &[]).unwrap();
    ns.replication_tick();
    // dn-1 returns with its old replica: three live replicas for two wanted.
    register(&ns, 1);
    assert!(ns.block_report(&dn[0], &[rep(&b)]).is_empty());
    assert_eq!(holders(&ns, "/f").len(), 3);
    assert_eq!(ns.replication_tick().invalidated, 1);
    let victims: Vec<&String> = dn.iter().filter(|d| deletes(&hb(&ns, d)) == vec![b.block_id]).collect();
    assert_eq!(victims.len(), 1);
    ns.incremental_report(victims[0], &[], &[rep(&b)]).unwrap();
    assert_eq!(holders(&ns, "/f").len(), 2);
    assert_eq!(work(ns.replication_tick()), (0, 0));
}

#[tokio::test]
async fn a_corrupt_replica_is_replaced_then_deleted() {
    let (ns, dn, _d) = cluster(3, None);
    let b = file_on(&ns, "/f", 2, &[&dn[0], &dn[1]]).await;
    ns.replication_tick();
    let bad = |uuid: &str, gs: u64| BadReplica {
        block: Some(ExtendedBlock { generation_stamp: gs, ..b }),
        datanode_uuid: uuid.into(),
        reason: "checksum mismatch at offset 0".into(),
    };
    // Wrong generation stamp, unknown node, no such replica: ignored.
    ns.report_bad_blocks(&[bad(&dn[0], b.generation_stamp + 1), bad("ghost", b.generation_stamp), bad(&dn[2], b.generation_stamp)])
        .unwrap();
    assert_eq!(holders(&ns, "/f"), vec![dn[0].clone(), dn[1].clone()]);
    assert_eq!(kind(ns.report_bad_blocks(&[BadReplica::default()])), ErrorKind::InvalidArgument);
    ns.report_bad_blocks(&[bad(&dn[0], b.generation_stamp)]).unwrap();
    assert_eq!(holders(&ns, "/f"), vec![dn[1].clone()], "a corrupt replica is not served");
    // A full block report keeps it corrupt.
    ns.block_report(&dn[0], &[rep(&b)]);
    assert_eq!(holders(&ns, "/f"), vec![dn[1].clone()]);
    assert_eq!(ns.replication_tick().scheduled, 1);
    assert!(hb(&ns, &dn[0]).is_empty(), "the corrupt replica is no source and not deleted yet");
    assert_eq!(transfers(&hb(&ns, &dn[1])), vec![(b.block_id, vec![dn[2].clone()])]);
    ns.incremental_report(&dn[2], &[rep(&b)], &[]).unwrap();
    assert_eq!(ns.replication_tick().invalidated, 1);
    assert_eq!(deletes(&hb(&ns, &dn[0])), vec![b.block_id]);
    ns.incremental_report(&dn[0], &[], &[rep(&b)]).unwrap();
    assert_eq!(holders(&ns, "/f"), vec![dn[1].clone(), dn[2].clone()]);
    assert!(!ns.repl.lock().has_corrupt(b.block_id));
    assert_eq!(work(ns.replication_tick()), (0, 0));
}

#[tokio::test]
async fn a_block_whose_replicas_are_all_corrupt_stays_corrupt() {
    let (ns, dn, _d) = cluster(3, None);
    let b = file_on(&ns, "/f", 1, &[&dn[0]]).await;
    let bad = BadReplica { block: Some(b), datanode_uuid: dn[0].clone(), reason: "scanner".into() };
    ns.report_bad_blocks(&[bad]).unwrap();
    assert_eq!(holders(&ns, "/f"), vec![dn[0].clone()], "every replica corrupt: served anyway");
    let s = ns.replication_tick();
    assert_eq!((s.scheduled, s.invalidated), (0, 0));
    assert_eq!(level(&ns, &b), Some(queue::CORRUPT));
    assert!(dn.iter().all(|d| hb(&ns, d).is_empty()));
    assert!(ns.repl.lock().is_corrupt(b.block_id, 0, b.generation_stamp));
}

#[tokio::test]
async fn deleted_files_leave_no_replication_state() {
    let (ns, dn, _d) = cluster(2, None);
    let b = file_on(&ns, "/f", 2, &[&dn[0]]).await;
    ns.report_bad_blocks(&[BadReplica { block: Some(b), datanode_uuid: dn[0].clone(), reason: String::new() }]).unwrap();
    ns.replication_tick();
    assert!(level(&ns, &b).is_some());
    ns.delete(&su(), "/f", false).await.unwrap();
    assert_eq!(level(&ns, &b), None);
    assert!(!ns.repl.lock().has_corrupt(b.block_id));
    assert_eq!(deletes(&hb(&ns, &dn[0])), vec![b.block_id]);
}

const TWO_RACKS: &str = "10.0.0.1 /r1\n10.0.0.2 /r1\n10.0.0.3 /r1\n10.0.0.4 /r2\n10.0.0.5 /r2\n";

#[tokio::test]
async fn new_blocks_are_placed_across_racks() {
    let (ns, _dn, _d) = cluster(5, Some(TWO_RACKS));
    let c = su();
    for i in 0..20 {
        let p = format!("/p{i}");
        ns.create(&c, &p, 0, false, false, 3, 0).await.unwrap();
        let lb = ns.add_block(&c, &p, None, &[], "10.0.0.2").await.unwrap();
        let racks: Vec<&str> = lb.locations.iter().map(|d| d.rack.as_str()).collect();
        assert_eq!(lb.locations[0].host, "10.0.0.2", "local first");
        assert_eq!(racks, vec!["/r1", "/r2", "/r2"]);
    }
    let report = ns.datanode_report();
    assert_eq!(report.iter().filter(|d| d.id.as_ref().unwrap().rack == "/r2").count(), 2);
}

#[tokio::test]
async fn blocks_on_one_rack_get_a_replica_on_another_and_lose_one_on_the_first() {
    let (ns, dn, _d) = cluster(5, Some(TWO_RACKS));
    ns.replication_tick();
    let b = file_on(&ns, "/f", 3, &[&dn[0], &dn[1], &dn[2]]).await;
    assert_eq!(ns.repl.lock().dirty_len(), 1, "closing the file noted the one-rack block");
    assert_eq!(ns.replication_tick().scheduled, 1);
    let sent: Vec<_> = dn[..3].iter().flat_map(|s| transfers(&hb(&ns, s))).collect();
    assert_eq!(sent.len(), 1);
    let target = &sent[0].1[0];
    assert!(target == &dn[3] || target == &dn[4], "{target}");
    ns.incremental_report(target, &[rep(&b)], &[]).unwrap();
    assert_eq!(ns.replication_tick().invalidated, 1);
    let victim: Vec<&String> = dn.iter().filter(|d| deletes(&hb(&ns, d)) == vec![b.block_id]).collect();
    assert!(dn[..3].contains(victim[0]), "the crowded rack gives one up");
    ns.incremental_report(victim[0], &[], &[rep(&b)]).unwrap();
    assert_eq!(work(ns.replication_tick()), (0, 0));
}

#[tokio::test]
async fn full_datanodes_give_a_clear_error() {
    let (ns, dn, _d) = cluster(3, None);
    for d in &dn {
        ns.heartbeat(d, StorageReport { capacity: 1 << 30, dfs_used: 1 << 30, remaining: 1 << 20 }, 0);
    }
    let c = su();
    ns.create(&c, "/a/f", 0, false, true, 3, 0).await.unwrap();
    let e = ns.add_block(&c, "/a/f", None, &[], "").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoDatanodes);
    assert_eq!(e.to_string(), "/a/f: no datanode has room for a block of 134217728 bytes (3 live, 3 full, 0 excluded)");
    ns.heartbeat(&dn[0], room(), 0);
    let lb = ns.add_block(&c, "/a/f", None, &[], "").await.unwrap();
    assert_eq!(lb.locations.len(), 1);
}

#[tokio::test]
async fn racks_follow_the_topology_file() {
    let (ns, _dn, dir) = cluster(2, Some("10.0.0.1 /r1\n10.0.0.2:9866 /r2\n"));
    let racks = |ns: &Namesystem| -> HashMap<String, String> {
        ns.datanode_report().into_iter().map(|d| d.id.unwrap()).map(|i| (i.datanode_uuid, i.rack)).collect()
    };
    assert_eq!(racks(&ns)["dn-1"], "/r1");
    assert_eq!(racks(&ns)["dn-2"], "/r2");
    ns.replication_tick();
    assert!(!ns.repl.lock().rescan);
    let path = dir.path().join("topology");
    std::fs::write(&path, "10.0.0.1 /r9\n# dn-2 unmapped\n").unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(10)).unwrap();
    register(&ns, 3);
    let r = racks(&ns);
    assert_eq!((r["dn-1"].as_str(), r["dn-2"].as_str(), r["dn-3"].as_str()), ("/r9", "/default-rack", "/default-rack"));
    assert!(ns.repl.lock().rescan, "moved racks trigger a full check");
    let b = file_on(&ns, "/f", 1, &["dn-1"]).await;
    let l = ns.get_block_locations(&su(), "/f", 0, 0, "").unwrap();
    assert_eq!(l.blocks[0].locations[0].rack, "/r9");
    assert_eq!(l.blocks[0].block.unwrap().block_id, b.block_id);
}

#[tokio::test]
async fn nothing_is_deleted_in_safe_mode() {
    let (ns, dn, _d) = cluster(2, None);
    let b = file_on(&ns, "/f", 1, &[&dn[0]]).await;
    ns.safemode.enter();
    let unknown = |id: u64| ReplicaReport { block_id: id, generation_stamp: 1, num_bytes: 5 };
    let stale = ReplicaReport { generation_stamp: b.generation_stamp - 1, ..rep(&b) };
    // Unknown and stale replicas of full, rbw and incremental reports wait.
    assert!(ns.block_report(&dn[1], &[unknown(900_001), stale]).is_empty());
    assert!(ns.rbw_report(&dn[1], &[unknown(900_002)]).is_empty());
    ns.incremental_report(&dn[1], &[unknown(900_003)], &[]).unwrap();
    assert!(deletes(&hb(&ns, &dn[1])).is_empty(), "no deletion in safe mode");
    ns.safemode.leave();
    let mut sent = deletes(&hb(&ns, &dn[1]));
    sent.sort();
    let mut want = vec![b.block_id, 900_001, 900_002, 900_003];
    want.sort();
    assert_eq!(sent, want);
    assert_eq!(deletes(&ns.block_report(&dn[1], &[unknown(900_004)])), vec![900_004], "answered at once out of safe mode");
}

#[tokio::test]
async fn excess_replicas_wait_for_the_block_report_of_a_restarted_holder() {
    let (ns, dn, _d) = cluster(2, None);
    let f = file_on(&ns, "/f", 2, &[&dn[0], &dn[1]]).await;
    let g = file_on(&ns, "/g", 2, &[&dn[0], &dn[1]]).await;
    ns.replication_tick();
    // dn-2 restarts (registers again before it was declared dead); it lost /f's replica.
    register(&ns, 2);
    ns.set_replication(&su(), "/f", 1).await.unwrap();
    ns.set_replication(&su(), "/g", 1).await.unwrap();
    assert_eq!(ns.replication_tick().invalidated, 0, "dn-2's replicas may be gone");
    ns.block_report(&dn[1], &[rep(&g)]);
    assert_eq!(ns.replication_tick().invalidated, 1, "/g is trimmed once dn-2 reported it");
    assert_eq!(holders(&ns, "/f"), vec![dn[0].clone()], "/f kept its one replica");
    let trimmed: Vec<u64> = dn.iter().flat_map(|d| deletes(&hb(&ns, d))).collect();
    assert_eq!(trimmed, vec![g.block_id]);
    assert_ne!(f.block_id, g.block_id);
}

#[tokio::test]
async fn excess_replicas_are_not_trimmed_while_a_holder_is_quiet() {
    let (ns, dn, _d) = cluster(3, None);
    let f = file_on(&ns, "/f", 3, &[&dn[0], &dn[1], &dn[2]]).await;
    ns.replication_tick();
    // dn-3 stops heartbeating (not dead yet); the file goes down to 2 replicas.
    {
        let mut dm = ns.datanodes.lock();
        let idx = dm.live_index(&dn[2]).unwrap();
        dm.age(idx, Duration::from_secs(60));
    }
    ns.set_replication(&su(), "/f", 2).await.unwrap();
    assert_eq!(ns.replication_tick().invalidated, 0, "a quiet holder may be dying: keep every replica");
    // It heartbeats again: now one replica goes.
    hb(&ns, &dn[2]);
    assert_eq!(ns.replication_tick().invalidated, 1);
    let trimmed: Vec<u64> = dn.iter().flat_map(|d| deletes(&hb(&ns, d))).collect();
    assert_eq!(trimmed, vec![f.block_id]);
}

#[tokio::test]
async fn work_dropped_during_a_brief_safe_mode_is_made_up_for() {
    let (ns, dn, _d) = cluster(3, None);
    file_on(&ns, "/f", 2, &[&dn[0], &dn[1]]).await;
    ns.replication_tick();
    // Safe mode comes and goes between two ticks; meanwhile dn-2 reports
    // that it lost its replica (not acted on in safe mode).
    ns.safemode.enter();
    ns.block_report(&dn[1], &[]);
    ns.safemode.leave();
    assert_eq!(work(ns.replication_tick()).0, 1, "the block is re-replicated after safe mode");
}
