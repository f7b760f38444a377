//! Decommissioning: the DatanodeAdmin call, draining, the admin states in
//! reports, persistence across a restart, recommissioning.

use tusk_proto::dfs::datanode_info::AdminState;
use tusk_proto::dfs::{AdminAction, DatanodeInfo};
use tusk_proto::error::ErrorKind;

use super::replication::{deletes, file_on, hb, register, rep, transfers};
use super::*;
use crate::decommission::EXCLUDES_FILE;

fn info<'a>(report: &'a [DatanodeInfo], uuid: &str) -> &'a DatanodeInfo {
    report.iter().find(|d| d.id.as_ref().is_some_and(|i| i.datanode_uuid == uuid)).unwrap()
}

fn admin(ns: &Namesystem, uuid: &str) -> (AdminState, u64) {
    let r = ns.datanode_report();
    let d = info(&r, uuid);
    (d.admin_state(), d.blocks_pending_decommission)
}

#[tokio::test]
async fn decommission_drains_then_persists_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = conf(&dir.path().join("name"));
    crate::format(&c, "root", false).unwrap();
    let ns = Namesystem::open(c.clone()).unwrap();
    let dn: Vec<String> = (1..=3).map(|n| register(&ns, n)).collect();
    let b = file_on(&ns, "/f", 2, &[&dn[0], &dn[1]]).await;
    for d in &dn {
        let mine: Vec<_> = if d == &dn[2] { vec![] } else { vec![rep(&b)] };
        ns.block_report(d, &mine);
    }
    ns.replication_tick();

    let bob = caller("bob", "DFSClient_bob");
    let e = ns.datanode_admin(&bob, &dn[0], AdminAction::Decommission).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert_eq!(e.to_string(), "decommission dn-1: permission denied: user=bob is not a superuser");
    let e = ns.datanode_admin(&su(), "10.9.9.9:1", AdminAction::Decommission).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("10.9.9.9:1: no such datanode"), "{e}");

    // By transfer address.
    let infos = ns.datanode_admin(&su(), "10.0.0.1:9866", AdminAction::Decommission).unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].admin_state(), AdminState::DecommissionInProgress);
    assert!(dir.path().join("name").join(EXCLUDES_FILE).exists());
    // It takes no new blocks.
    for i in 0..10 {
        let p = format!("/new{i}");
        ns.create(&su(), &p, 0, false, false, 3, 0).await.unwrap();
        let lb = ns.add_block(&su(), &p, None, &[], "10.0.0.1").await.unwrap();
        assert!(lb.locations.iter().all(|l| l.datanode_uuid != dn[0]));
    }
    // Its replica does not count: the block is copied, preferably from it.
    assert_eq!(ns.replication_tick().scheduled, 1);
    assert_eq!(admin(&ns, &dn[0]), (AdminState::DecommissionInProgress, 1));
    let l = ns.get_block_locations(&su(), "/f", 0, 0, "10.0.0.1").unwrap();
    assert_eq!(l.blocks[0].locations.last().unwrap().datanode_uuid, dn[0], "decommissioning replicas are read last");
    assert_eq!(transfers(&hb(&ns, &dn[0])), vec![(b.block_id, vec![dn[2].clone()])]);
    ns.replication_tick();
    assert_eq!(admin(&ns, &dn[0]).0, AdminState::DecommissionInProgress, "until the copy arrives");
    ns.incremental_report(&dn[2], &[rep(&b)], &[]).unwrap();
    ns.replication_tick();
    assert_eq!(admin(&ns, &dn[0]), (AdminState::Decommissioned, 0));
    assert!(dn.iter().all(|d| deletes(&hb(&ns, d)).is_empty()), "a decommissioned node keeps its replicas");
    // Asking again changes nothing.
    let again = ns.datanode_admin(&su(), &dn[0], AdminAction::Decommission).unwrap();
    assert_eq!(again[0].admin_state(), AdminState::Decommissioned);
    drop(ns);

    let ns = Namesystem::open(c.clone()).unwrap();
    ns.safemode.leave();
    for n in 1..=3 {
        register(&ns, n);
    }
    assert_eq!(admin(&ns, &dn[0]).0, AdminState::Decommissioned, "kept across the restart");
    assert_eq!(admin(&ns, &dn[1]).0, AdminState::Normal);
    for d in &dn {
        ns.block_report(d, &[rep(&b)]);
    }
    ns.replication_tick();
    assert!(dn.iter().all(|d| deletes(&hb(&ns, d)).is_empty()));
    // Recommissioned by host: three live replicas for two wanted.
    let infos = ns.datanode_admin(&su(), "10.0.0.1", AdminAction::Recommission).unwrap();
    assert_eq!(infos[0].admin_state(), AdminState::Normal);
    assert_eq!(ns.replication_tick().invalidated, 1);
    let trimmed: usize = dn.iter().map(|d| deletes(&hb(&ns, d)).len()).sum();
    assert_eq!(trimmed, 1);
    drop(ns);
    let ns = Namesystem::open(c).unwrap();
    register(&ns, 1);
    assert_eq!(admin(&ns, &dn[0]).0, AdminState::Normal);
}

fn kill(ns: &Namesystem, uuid: &str) {
    {
        let mut dm = ns.datanodes.lock();
        let idx = dm.live_index(uuid).unwrap();
        dm.age(idx, std::time::Duration::from_secs(3600));
    }
    assert_eq!(ns.check_dead_nodes(), 1);
}

#[tokio::test]
async fn a_node_dying_while_draining_waits_for_its_blocks_and_a_live_one_for_a_block_report() {
    let ns = Namesystem::in_memory(NamenodeConfig::default(), "root");
    let dn: Vec<String> = (1..=3).map(|n| register(&ns, n)).collect();
    let b = file_on(&ns, "/f", 1, &[&dn[0]]).await;
    ns.datanode_admin(&su(), &dn[0], AdminAction::Decommission).unwrap();
    ns.replication_tick();
    assert_eq!(admin(&ns, &dn[0]).0, AdminState::DecommissionInProgress, "no block report yet");
    ns.block_report(&dn[0], &[rep(&b)]);
    ns.replication_tick();
    // Only a decommissioning replica: highest priority, copied from it.
    assert_eq!(admin(&ns, &dn[0]), (AdminState::DecommissionInProgress, 1));
    let t = transfers(&hb(&ns, &dn[0]));
    assert_eq!(t.len(), 1);
    let target = t[0].1[0].clone();
    kill(&ns, &dn[0]);
    ns.replication_tick();
    ns.replication_tick();
    assert_eq!(
        admin(&ns, &dn[0]),
        (AdminState::DecommissionInProgress, 1),
        "its replica was the block's last one: not safe to take away"
    );
    // The copy made before it died is reported: nothing needs it any more.
    ns.incremental_report(&target, &[rep(&b)], &[]).unwrap();
    ns.replication_tick();
    assert_eq!(admin(&ns, &dn[0]).0, AdminState::Decommissioned);
    // A node already dead when decommissioned is decommissioned at once.
    let other = dn.iter().find(|d| **d != target && **d != dn[0]).unwrap().clone();
    kill(&ns, &other);
    let infos = ns.datanode_admin(&su(), &other, AdminAction::Decommission).unwrap();
    assert_eq!(infos[0].admin_state(), AdminState::Decommissioned);
    let infos = ns.datanode_admin(&su(), &target, AdminAction::Recommission).unwrap();
    assert_eq!(infos[0].admin_state(), AdminState::Normal, "recommissioning a normal node is a no-op");
}

#[tokio::test]
async fn replicas_reaching_a_draining_node_late_are_copied_before_it_is_done() {
    let ns = Namesystem::in_memory(NamenodeConfig::default(), "root");
    let dn: Vec<String> = (1..=3).map(|n| register(&ns, n)).collect();
    let a = file_on(&ns, "/a", 1, &[&dn[0]]).await;
    // /b's pipeline was set up before the decommission began.
    ns.create(&su(), "/b", 0, false, false, 1, 0).await.unwrap();
    let bb = ns.add_block(&su(), "/b", None, &[], "").await.unwrap().block.unwrap();
    let bb = tusk_proto::dfs::ExtendedBlock { num_bytes: 100, ..bb };
    ns.datanode_admin(&su(), &dn[0], AdminAction::Decommission).unwrap();
    ns.block_report(&dn[0], &[rep(&a)]);
    ns.replication_tick();
    assert_eq!(admin(&ns, &dn[0]), (AdminState::DecommissionInProgress, 1));
    let t = transfers(&hb(&ns, &dn[0]));
    assert_eq!(t.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![a.block_id]);
    // /b's only replica lands on the draining node, and /b is closed.
    ns.incremental_report(&dn[0], &[rep(&bb)], &[]).unwrap();
    assert!(ns.complete(&su(), "/b", Some(&bb)).await.unwrap());
    // /a's copy arrives: /b still needs the node.
    ns.incremental_report(&t[0].1[0], &[rep(&a)], &[]).unwrap();
    ns.replication_tick();
    assert_eq!(admin(&ns, &dn[0]), (AdminState::DecommissionInProgress, 1));
    let t = transfers(&hb(&ns, &dn[0]));
    assert_eq!(t.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![bb.block_id], "the late block is copied too");
    ns.incremental_report(&t[0].1[0], &[rep(&bb)], &[]).unwrap();
    ns.replication_tick();
    assert_eq!(admin(&ns, &dn[0]), (AdminState::Decommissioned, 0));
}
