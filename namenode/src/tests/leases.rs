//! Pipeline recovery, lease recovery and safe mode on a namesystem.

use std::time::{Duration, Instant};

use tusk_proto::dfs::datanode_command::Command;
use tusk_proto::dfs::{CommitBlockSynchronizationRequest, ExtendedBlock, RecoverBlockCommand, SafeModeAction};

use super::*;

fn mem(conf: NamenodeConfig) -> Namesystem {
    Namesystem::in_memory(conf, "root")
}

fn rep(b: &ExtendedBlock, len: u64) -> ReplicaReport {
    ReplicaReport { block_id: b.block_id, generation_stamp: b.generation_stamp, num_bytes: len }
}

/// The commands queued for `dn`, after a heartbeat.
fn commands(ns: &Namesystem, dn: &str) -> Vec<Command> {
    ns.heartbeat(dn, StorageReport { capacity: 1 << 40, dfs_used: 0, remaining: 1 << 40 }, 0)
        .into_iter()
        .filter_map(|c| c.command)
        .collect()
}

fn recover_command(ns: &Namesystem, dns: &[String]) -> (String, RecoverBlockCommand) {
    for d in dns {
        for c in commands(ns, d) {
            if let Command::Recover(r) = c {
                return (d.clone(), r);
            }
        }
    }
    panic!("no RecoverBlock command on {dns:?}");
}

#[tokio::test]
async fn pipeline_recovery_bumps_the_stamp_and_stale_replicas_are_deleted() {
    let ns = mem(NamenodeConfig::default());
    let dns: Vec<String> = (1..=3).map(|n| add_datanode(&ns, n)).collect();
    let c = su();
    ns.create(&c, "/f", 0, false, false, 3, 0).await.unwrap();
    let b = ns.add_block(&c, "/f", None, &[], "").await.unwrap().block.unwrap();
    let nb = ns.update_block_for_pipeline(&c, "/f", &b).await.unwrap();
    assert!(nb.generation_stamp > b.generation_stamp);
    assert_eq!(nb.block_id, b.block_id);
    // The stamp is only reserved: the block keeps the writer's stamp (a
    // writer dying now leaves replicas a block recovery still accepts).
    assert_eq!(ns.get_block_locations(&c, "/f", 0, 0, "").unwrap().blocks[0].block.unwrap().generation_stamp, b.generation_stamp);
    let other = caller("bob", "DFSClient_bob");
    assert_eq!(kind(ns.update_block_for_pipeline(&other, "/f", &nb).await), ErrorKind::LeaseConflict);
    // A stamp never handed out is refused.
    let forged = ExtendedBlock { generation_stamp: nb.generation_stamp + 50, ..nb };
    assert!(ns.update_pipeline(&c, "/f", &forged, &dns[..2]).await.is_err());
    let extra = ns.get_additional_datanode(&c, "/f", &nb, &dns[..2], &[], 1, "").unwrap();
    assert_eq!(extra.len(), 1);
    assert_eq!(extra[0].datanode_uuid, dns[2]);
    ns.update_pipeline(&c, "/f", &nb, &dns[..2]).await.unwrap();
    // Now the old stamp is refused.
    let e = ns.update_block_for_pipeline(&c, "/f", &b).await.unwrap_err();
    assert!(e.to_string().contains("generation stamp"), "{e}");
    assert!(ns.update_pipeline(&c, "/f", &nb, &dns[..2]).await.is_err(), "the same stamp twice");
    // A replica finalized with the old stamp is stale: deleted, not a location.
    ns.incremental_report(&dns[2], &[rep(&b, 10)], &[]).unwrap();
    let deletes: Vec<_> = commands(&ns, &dns[2]).into_iter().filter(|c| matches!(c, Command::Delete(_))).collect();
    assert_eq!(deletes.len(), 1);
    for d in &dns[..2] {
        ns.incremental_report(d, &[rep(&nb, 10)], &[]).unwrap();
    }
    let old = ExtendedBlock { num_bytes: 10, ..b };
    assert!(ns.complete(&c, "/f", Some(&old)).await.is_err(), "complete with the old stamp");
    assert!(ns.complete(&c, "/f", Some(&ExtendedBlock { num_bytes: 10, ..nb })).await.unwrap());
    let locs = ns.get_block_locations(&c, "/f", 0, 0, "").unwrap();
    assert_eq!(locs.blocks[0].locations.len(), 2);
    assert_eq!(locs.file_length, 10);
}

#[tokio::test]
async fn hard_limit_recovers_the_last_block_through_a_primary() {
    let conf = NamenodeConfig { lease_soft_limit_ms: 1, lease_hard_limit_ms: 1, ..Default::default() };
    let ns = mem(conf);
    let dns: Vec<String> = (1..=3).map(|n| add_datanode(&ns, n)).collect();
    let c = su();
    ns.create(&c, "/empty", 0, false, false, 3, 0).await.unwrap();
    ns.create(&c, "/f", 0, false, false, 3, 0).await.unwrap();
    let b = ns.add_block(&c, "/f", None, &[], "").await.unwrap().block.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ns.check_leases().await == 0 {
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::task::yield_now().await;
    }
    // The empty file is simply closed.
    assert!(!ns.get_file_info(&c, "/empty").unwrap().unwrap().under_construction);
    let (primary, cmd) = recover_command(&ns, &dns);
    assert_eq!(cmd.block.unwrap().block_id, b.block_id);
    assert!(cmd.new_generation_stamp > b.generation_stamp);
    assert_eq!(cmd.targets.len(), 3);
    assert!(cmd.targets.iter().any(|t| t.datanode_uuid == primary));
    // A second check does not start another recovery while this one runs.
    assert_eq!(ns.check_leases().await, 0);
    // A stale recovery id is refused.
    let mut req = CommitBlockSynchronizationRequest {
        block: Some(b),
        new_generation_stamp: b.generation_stamp,
        new_length: 700,
        close_file: true,
        delete_block: false,
        datanode_uuids: dns[..2].to_vec(),
    };
    assert!(ns.commit_block_synchronization(&req).await.is_err());
    req.new_generation_stamp = cmd.new_generation_stamp;
    let nb = ExtendedBlock { generation_stamp: cmd.new_generation_stamp, ..b };
    for d in &dns[..2] {
        ns.incremental_report(d, &[rep(&nb, 700)], &[]).unwrap();
    }
    ns.commit_block_synchronization(&req).await.unwrap();
    let st = ns.get_file_info(&c, "/f").unwrap().unwrap();
    assert!(!st.under_construction);
    assert_eq!(st.length, 700);
    assert!(ns.state.read().leases.is_empty(), "the lease is released");
    // Committing twice is refused: the file is closed.
    assert!(ns.commit_block_synchronization(&req).await.is_err());
    assert!(ns.recover_lease(&c, "/f").await.unwrap());
}

#[tokio::test]
async fn recover_lease_starts_at_once_and_soft_limit_allows_a_takeover() {
    let ns = mem(NamenodeConfig::default());
    let dns: Vec<String> = (1..=2).map(|n| add_datanode(&ns, n)).collect();
    let alice = caller("root", "DFSClient_a");
    let bob = caller("root", "DFSClient_b");
    ns.create(&alice, "/f", 0, false, false, 2, 0).await.unwrap();
    ns.add_block(&alice, "/f", None, &[], "").await.unwrap();
    // Within the soft limit the file stays alice's.
    assert_eq!(kind(ns.create(&bob, "/f", 0, true, false, 2, 0).await), ErrorKind::LeaseConflict);
    assert!(!ns.recover_lease(&bob, "/f").await.unwrap());
    let (_, cmd) = recover_command(&ns, &dns);
    assert_eq!(cmd.targets.len(), 2);
    assert_eq!(kind(ns.recover_lease(&bob, "/nope").await), ErrorKind::NotFound);

    let conf = NamenodeConfig { lease_soft_limit_ms: 1, ..Default::default() };
    let ns = mem(conf);
    add_datanode(&ns, 1);
    ns.create(&alice, "/g", 0, false, false, 1, 0).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ns.create(&bob, "/g", 0, true, false, 1, 0).await {
            Ok(st) => {
                assert!(st.under_construction);
                break;
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::LeaseConflict),
        }
        assert!(Instant::now() < deadline, "the soft limit never passed");
        tokio::task::yield_now().await;
    }
    // Without overwrite the file exists.
    assert_eq!(kind(ns.create(&alice, "/g", 0, false, false, 1, 0).await), ErrorKind::LeaseConflict);
}

#[tokio::test]
async fn rbw_reports_become_expected_locations_and_unknown_ones_are_deleted() {
    let ns = mem(NamenodeConfig::default());
    let dns: Vec<String> = (1..=3).map(|n| add_datanode(&ns, n)).collect();
    let c = su();
    ns.create(&c, "/f", 0, false, false, 1, 0).await.unwrap();
    let located = ns.add_block(&c, "/f", None, &[], "").await.unwrap();
    let b = located.block.unwrap();
    // The pipeline had one node; another reports a replica being written too.
    let target = located.locations[0].datanode_uuid.clone();
    let other = dns.iter().find(|d| **d != target).unwrap().clone();
    let unknown = ReplicaReport { block_id: 999, generation_stamp: 1, num_bytes: 5 };
    let cmds = ns.rbw_report(&other, &[rep(&b, 3), unknown]);
    assert!(matches!(&cmds[0].command, Some(Command::Delete(d)) if d.blocks.len() == 1 && d.blocks[0].block_id == 999));
    assert!(!ns.recover_lease(&c, "/f").await.unwrap());
    let (_, cmd) = recover_command(&ns, &dns);
    let mut got: Vec<String> = cmd.targets.iter().map(|t| t.datanode_uuid.clone()).collect();
    got.sort();
    let mut want = vec![target, other];
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn safe_mode_refuses_mutations_until_blocks_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = conf(&dir.path().join("name"));
    c.safemode_extension_ms = 0;
    crate::format(&c, "root", false).unwrap();
    let ns = Namesystem::open(c.clone()).unwrap();
    assert!(!ns.safemode.is_on(), "an empty namespace starts out of safe mode");
    let dn = add_datanode(&ns, 1);
    write_file(&ns, &su(), "/f", 10, &dn).await;
    drop(ns);

    let ns = Namesystem::open(c).unwrap();
    assert!(ns.safemode.is_on());
    let e = ns.mkdirs(&su(), "/d", 0, false).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SafeMode);
    assert!(e.to_string().starts_with("namenode is in safe mode:"), "{e}");
    assert!(e.to_string().contains("needs additional 1 blocks"), "{e}");
    // Reads work.
    assert_eq!(ns.get_file_info(&su(), "/f").unwrap().unwrap().length, 10);
    let dn = add_datanode(&ns, 1);
    let id = ns.state.read().blocks.iter().next().map(|(id, b)| (id, b.gen_stamp)).unwrap();
    ns.block_report(&dn, &[ReplicaReport { block_id: id.0, generation_stamp: id.1, num_bytes: 10 }]);
    assert!(ns.safemode.update(ns.safe_block_counts()));
    ns.mkdirs(&su(), "/d", 0, false).await.unwrap();

    // Manual safe mode: superuser only, and it sticks.
    let bob = caller("bob", "DFSClient_bob");
    assert_eq!(kind(ns.set_safe_mode(&bob, SafeModeAction::SafemodeEnter)), ErrorKind::PermissionDenied);
    assert!(!ns.set_safe_mode(&bob, SafeModeAction::SafemodeGet).unwrap().on);
    assert!(ns.set_safe_mode(&su(), SafeModeAction::SafemodeEnter).unwrap().on);
    assert!(!ns.safemode.update(ns.safe_block_counts()));
    assert_eq!(kind(ns.mkdirs(&su(), "/e", 0, false).await), ErrorKind::SafeMode);
    assert!(!ns.set_safe_mode(&su(), SafeModeAction::SafemodeLeave).unwrap().on);
    ns.mkdirs(&su(), "/e", 0, false).await.unwrap();
}

#[tokio::test]
async fn a_late_report_of_an_earlier_recovery_attempt_is_kept() {
    let ns = mem(NamenodeConfig { block_recovery_timeout_ms: 0, ..Default::default() });
    let dns: Vec<String> = (1..=2).map(|n| add_datanode(&ns, n)).collect();
    let c = su();
    ns.create(&c, "/f", 0, false, false, 2, 0).await.unwrap();
    let b = ns.add_block(&c, "/f", None, &[], "").await.unwrap().block.unwrap();
    assert!(!ns.recover_lease(&c, "/f").await.unwrap());
    let (_, first) = recover_command(&ns, &dns);
    // The first attempt timed out; a retry has a newer recovery id.
    assert!(!ns.recover_lease(&c, "/f").await.unwrap());
    let (_, second) = recover_command(&ns, &dns);
    assert!(second.new_generation_stamp > first.new_generation_stamp);
    // A replica the first attempt finalized is reported only now: it is newer
    // than the block and may be the one the retry needs.
    let finalized = ExtendedBlock { generation_stamp: first.new_generation_stamp, ..b };
    ns.incremental_report(&dns[0], &[rep(&finalized, 10)], &[]).unwrap();
    let cmds = commands(&ns, &dns[0]);
    assert!(!cmds.iter().any(|c| matches!(c, Command::Delete(_))), "{cmds:?}");
    let locs = ns.get_block_locations(&c, "/f", 0, 0, "").unwrap();
    assert_eq!(locs.blocks[0].locations.len(), 1);
}

#[tokio::test]
async fn a_stale_replicas_deletion_keeps_the_current_replicas_location() {
    let ns = mem(NamenodeConfig::default());
    let dn = add_datanode(&ns, 1);
    let c = su();
    ns.create(&c, "/f", 0, false, false, 1, 0).await.unwrap();
    let b = ns.add_block(&c, "/f", None, &[], "").await.unwrap().block.unwrap();
    let nb = ns.update_block_for_pipeline(&c, "/f", &b).await.unwrap();
    ns.update_pipeline(&c, "/f", &nb, std::slice::from_ref(&dn)).await.unwrap();
    ns.incremental_report(&dn, &[rep(&nb, 10)], &[]).unwrap();
    // The deletion of the replica with the old stamp is reported late.
    ns.incremental_report(&dn, &[], &[rep(&b, 10)]).unwrap();
    assert!(ns.complete(&c, "/f", Some(&ExtendedBlock { num_bytes: 10, ..nb })).await.unwrap(), "the new replica still counts");
    assert_eq!(ns.get_block_locations(&c, "/f", 0, 0, "").unwrap().blocks[0].locations.len(), 1);
}

#[tokio::test]
async fn recover_lease_fences_the_writer_and_its_late_complete_fails() {
    let ns = mem(NamenodeConfig::default());
    let dns: Vec<String> = (1..=2).map(|n| add_datanode(&ns, n)).collect();
    let alice = caller("root", "DFSClient_a");
    let bob = caller("root", "DFSClient_b");
    ns.create(&alice, "/f", 0, false, false, 2, 0).await.unwrap();
    let b = ns.add_block(&alice, "/f", None, &[], "").await.unwrap().block.unwrap();
    let written = ExtendedBlock { num_bytes: 100, ..b };
    ns.incremental_report(&dns[0], &[rep(&b, 100)], &[]).unwrap();
    assert!(!ns.recover_lease(&bob, "/f").await.unwrap());
    let (_, cmd) = recover_command(&ns, &dns);
    // The writer may no longer close the file at its length, add a block or
    // bump the stamp behind the recovery's back.
    assert_eq!(kind(ns.complete(&alice, "/f", Some(&written)).await), ErrorKind::LeaseConflict);
    assert_eq!(kind(ns.add_block(&alice, "/f", Some(&written), &[], "").await), ErrorKind::LeaseConflict);
    assert_eq!(kind(ns.update_block_for_pipeline(&alice, "/f", &b).await), ErrorKind::LeaseConflict);
    assert_eq!(kind(ns.abandon_block(&alice, "/f", &b).await), ErrorKind::LeaseConflict);
    let req = CommitBlockSynchronizationRequest {
        block: Some(b),
        new_generation_stamp: cmd.new_generation_stamp,
        new_length: 60,
        close_file: true,
        delete_block: false,
        datanode_uuids: dns.clone(),
    };
    ns.commit_block_synchronization(&req).await.unwrap();
    // A late complete is no retry of a close it made: the recovery closed
    // the file with another stamp and length.
    assert!(ns.complete(&alice, "/f", Some(&written)).await.is_err());
    let recovered = ExtendedBlock { generation_stamp: cmd.new_generation_stamp, num_bytes: 60, ..b };
    assert!(ns.complete(&alice, "/f", Some(&recovered)).await.unwrap(), "a retry naming the closed block");
    assert_eq!(ns.get_file_info(&alice, "/f").unwrap().unwrap().length, 60);
}

#[tokio::test]
async fn replicas_of_a_removal_not_yet_synced_are_not_deleted_as_unknown() {
    let ns = mem(NamenodeConfig::default());
    let dn = add_datanode(&ns, 1);
    let gone = ReplicaReport { block_id: 4242, generation_stamp: 1001, num_bytes: 9 };
    ns.unsynced_removals.lock().insert(4242);
    assert!(ns.block_report(&dn, &[gone]).is_empty());
    ns.incremental_report(&dn, &[gone], &[]).unwrap();
    assert!(commands(&ns, &dn).is_empty(), "nothing deleted before the removal is durable");
    ns.unsynced_removals.lock().clear();
    let cmds = ns.block_report(&dn, &[gone]);
    assert!(matches!(&cmds[0].command, Some(Command::Delete(d)) if d.blocks[0].block_id == 4242));
}

#[tokio::test]
async fn deleting_a_file_being_written_deletes_the_replicas_in_its_pipeline() {
    let ns = mem(NamenodeConfig::default());
    let dns: Vec<String> = (1..=3).map(|n| add_datanode(&ns, n)).collect();
    let c = su();
    ns.create(&c, "/open", 0, false, false, 3, 0).await.unwrap();
    let b = ns.add_block(&c, "/open", None, &[], "").await.unwrap().block.unwrap();
    assert!(ns.delete(&c, "/open", false).await.unwrap());
    for d in &dns {
        let deletes: Vec<u64> = commands(&ns, d)
            .into_iter()
            .filter_map(|c| match c {
                Command::Delete(d) => Some(d.blocks.iter().map(|b| b.block_id).collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(deletes, vec![b.block_id], "{d}");
    }
}
