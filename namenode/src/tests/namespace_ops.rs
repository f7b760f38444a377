//! ClientProtocol semantics on an in-memory namesystem.

use tusk_proto::dfs::datanode_command::Command;
use tusk_proto::error::ErrorKind;

use super::*;

fn room() -> tusk_proto::dfs::StorageReport {
    tusk_proto::dfs::StorageReport { capacity: 1 << 40, dfs_used: 0, remaining: 1 << 40 }
}

fn mem() -> Namesystem {
    Namesystem::in_memory(NamenodeConfig::default(), "root")
}

#[tokio::test]
async fn mkdirs_create_and_their_errors() {
    let ns = mem();
    let c = su();
    assert_eq!(kind(ns.mkdirs(&c, "/a/b", 0, false).await), ErrorKind::NotFound);
    ns.mkdirs(&c, "/a/b", 0, true).await.unwrap();
    ns.mkdirs(&c, "/a/b", 0, true).await.unwrap();
    let st = ns.get_file_info(&c, "/a/b").unwrap().unwrap();
    assert_eq!(st.permission, 0o755);
    assert_eq!(st.owner, "root");
    assert_eq!(st.group, "supergroup");
    let f = ns.create(&c, "/a/b/f", 0, false, false, 0, 0).await.unwrap();
    assert_eq!(f.permission, 0o644);
    assert!(f.under_construction);
    assert_eq!(f.replication, 3);
    let e = ns.create(&c, "/a/b/f", 0, false, false, 0, 0).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert_eq!(e.to_string(), "/a/b/f: file exists");
    assert_eq!(kind(ns.create(&c, "/a/b", 0, true, false, 0, 0).await), ErrorKind::IsADirectory);
    assert_eq!(kind(ns.mkdirs(&c, "/a/b/f", 0, true).await), ErrorKind::AlreadyExists);
    assert_eq!(kind(ns.mkdirs(&c, "/a/b/f/g", 0, true).await), ErrorKind::NotADirectory);
    assert_eq!(kind(ns.create(&c, "/x/y", 0, false, false, 0, 0).await), ErrorKind::NotFound);
    assert_eq!(kind(ns.create(&c, "/a/g", 0, false, false, 7000, 0).await), ErrorKind::InvalidArgument);
    assert_eq!(kind(ns.create(&c, "/a/g", 0, false, false, 1, 1000).await), ErrorKind::InvalidArgument);
    ns.create(&c, "/x/y/z", 0, false, true, 1, 0).await.unwrap();
    assert!(ns.get_file_info(&c, "/x/y").unwrap().is_some());
    assert!(ns.get_file_info(&c, "/nope").unwrap().is_none());
}

#[tokio::test]
async fn second_writer_gets_a_lease_conflict() {
    let ns = mem();
    let a = caller("root", "DFSClient_a");
    let b = caller("root", "DFSClient_b");
    ns.create(&a, "/f", 0, false, false, 1, 0).await.unwrap();
    let e = ns.create(&b, "/f", 0, true, false, 1, 0).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseConflict);
    assert!(e.to_string().contains("DFSClient_a"), "{e}");
    assert_eq!(kind(ns.add_block(&b, "/f", None, &[], "").await), ErrorKind::LeaseConflict);
    assert_eq!(kind(ns.add_block(&a, "/f", None, &[], "").await), ErrorKind::NoDatanodes);
    assert!(ns.complete(&a, "/f", None).await.unwrap());
    assert!(ns.complete(&a, "/f", None).await.unwrap(), "complete is idempotent");
    assert_eq!(kind(ns.add_block(&a, "/f", None, &[], "").await), ErrorKind::NotUnderConstruction);
    ns.renew_lease(&a).unwrap();
}

#[tokio::test]
async fn blocks_complete_and_invalidation_on_overwrite_and_delete() {
    let ns = mem();
    let c = su();
    let dn = add_datanode(&ns, 1);
    ns.create(&c, "/f", 0, false, false, 1, 0).await.unwrap();
    let b = ns.add_block(&c, "/f", None, &[], "127.0.0.1").await.unwrap();
    assert_eq!(b.locations.len(), 1);
    let blk = b.block.unwrap();
    let last = tusk_proto::dfs::ExtendedBlock { num_bytes: 10, ..blk };
    assert!(!ns.complete(&c, "/f", Some(&last)).await.unwrap(), "no replica yet");
    let rep = ReplicaReport { block_id: blk.block_id, generation_stamp: blk.generation_stamp, num_bytes: 10 };
    ns.incremental_report(&dn, &[rep], &[]).unwrap();
    assert!(ns.complete(&c, "/f", Some(&last)).await.unwrap());
    let locs = ns.get_block_locations(&c, "/f", 0, 0, "").unwrap();
    assert_eq!(locs.file_length, 10);
    assert_eq!(locs.blocks[0].locations[0].datanode_uuid, dn);
    assert!(ns.get_block_locations(&c, "/f", 20, 5, "").unwrap().blocks.is_empty());
    ns.create(&c, "/f", 0, true, false, 1, 0).await.unwrap();
    let cmds = ns.heartbeat(&dn, room(), 0);
    assert!(matches!(&cmds[..], [tusk_proto::dfs::DatanodeCommand { command: Some(Command::Delete(d)) }] if d.blocks[0].block_id == blk.block_id));
    write_file(&ns, &c, "/d/g", 5, &dn).await;
    assert!(ns.delete(&c, "/d", true).await.unwrap());
    assert_eq!(ns.heartbeat(&dn, room(), 0).len(), 1);
    // Unknown uuid: reregister.
    assert!(matches!(ns.heartbeat("ghost", Default::default(), 0)[0].command, Some(Command::Reregister(true))));
    // A full report with an unknown replica asks to delete it.
    let cmds = ns.block_report(&dn, &[ReplicaReport { block_id: 999, generation_stamp: 1, num_bytes: 1 }]);
    assert_eq!(cmds.len(), 1);
}

#[tokio::test]
async fn delete_rules() {
    let ns = mem();
    let c = su();
    ns.mkdirs(&c, "/d/e", 0, true).await.unwrap();
    let e = ns.delete(&c, "/d", false).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DirectoryNotEmpty);
    assert_eq!(e.to_string(), "/d: directory is not empty");
    assert!(!ns.delete(&c, "/missing", false).await.unwrap());
    assert_eq!(kind(ns.delete(&c, "/", true).await), ErrorKind::InvalidArgument);
    assert!(ns.delete(&c, "/d", true).await.unwrap());
    assert!(ns.get_file_info(&c, "/d").unwrap().is_none());
}

#[tokio::test]
async fn rename_semantics() {
    let ns = mem();
    let c = su();
    ns.mkdirs(&c, "/a/b", 0, true).await.unwrap();
    ns.mkdirs(&c, "/dir", 0, true).await.unwrap();
    ns.create(&c, "/f", 0, false, false, 1, 0).await.unwrap();
    ns.create(&c, "/g", 0, false, false, 1, 0).await.unwrap();
    assert_eq!(kind(ns.rename(&c, "/f", "/g", false).await), ErrorKind::AlreadyExists);
    assert_eq!(kind(ns.rename(&c, "/a", "/a/b/c", false).await), ErrorKind::InvalidArgument);
    assert_eq!(kind(ns.rename(&c, "/a", "/a/b", false).await), ErrorKind::InvalidArgument);
    assert_eq!(kind(ns.rename(&c, "/nope", "/x", false).await), ErrorKind::NotFound);
    assert_eq!(kind(ns.rename(&c, "/f", "/no/x", false).await), ErrorKind::NotFound);
    ns.rename(&c, "/f", "/g", true).await.unwrap();
    assert!(ns.get_file_info(&c, "/f").unwrap().is_none());
    ns.rename(&c, "/g", "/dir", false).await.unwrap();
    assert!(ns.get_file_info(&c, "/dir/g").unwrap().is_some());
    ns.create(&c, "/g", 0, false, false, 1, 0).await.unwrap();
    assert_eq!(kind(ns.rename(&c, "/g", "/dir", false).await), ErrorKind::AlreadyExists);
    ns.rename(&c, "/a", "/dir/a2", false).await.unwrap();
    assert!(ns.get_file_info(&c, "/dir/a2/b").unwrap().is_some());
    let l = ns.get_listing(&c, "/dir", "", 0).unwrap();
    let names: Vec<_> = l.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["a2", "g"]);
}

#[tokio::test]
async fn permissions_are_checked_for_non_owners() {
    let ns = mem();
    let root = su();
    let bob = caller("bob", "DFSClient_bob");
    ns.mkdirs(&root, "/a", 0, false).await.unwrap();
    let e = ns.create(&bob, "/a/x", 0, false, false, 1, 0).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert_eq!(
        e.to_string(),
        "/a/x: permission denied: user=bob, access=WRITE_EXECUTE, inode=\"/a\":root:supergroup:drwxr-xr-x"
    );
    assert_eq!(kind(ns.set_permission(&bob, "/a", 0o777).await), ErrorKind::PermissionDenied);
    assert_eq!(kind(ns.set_owner(&bob, "/a", "bob", "").await), ErrorKind::PermissionDenied);
    ns.mkdirs(&root, "/a/private", 0o700, false).await.unwrap();
    assert_eq!(kind(ns.get_listing(&bob, "/a/private", "", 0)), ErrorKind::PermissionDenied);
    ns.set_owner(&root, "/a", "bob", "").await.unwrap();
    ns.create(&bob, "/a/x", 0, false, false, 1, 0).await.unwrap();
    assert_eq!(ns.get_file_info(&bob, "/a/x").unwrap().unwrap().group, "supergroup");
    ns.set_permission(&bob, "/a", 0o700).await.unwrap();
    let supergroup_member = tusk_proto::dfs::Caller { groups: vec!["supergroup".into()], ..caller("carol", "c") };
    ns.mkdirs(&supergroup_member, "/a/y", 0, false).await.unwrap();
}

#[tokio::test]
async fn bad_paths_change_nothing() {
    let ns = mem();
    let c = su();
    ns.mkdirs(&c, "/a", 0, false).await.unwrap();
    let before = ns.state.read().dump();
    let e = ns.mkdirs(&c, "/a/../b", 0, true).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidPath);
    assert_eq!(e.to_string(), "/a/../b: invalid path: '.' and '..' are not allowed");
    assert_eq!(kind(ns.create(&c, "/a//b", 0, false, true, 1, 0).await), ErrorKind::InvalidPath);
    assert_eq!(kind(ns.rename(&c, "/a", "b", false).await), ErrorKind::InvalidPath);
    assert_eq!(kind(ns.delete(&c, "/a/./x", true).await), ErrorKind::InvalidPath);
    assert_eq!(ns.state.read().dump(), before);
}

#[tokio::test]
async fn listing_is_sorted_and_paged_and_summaries_add_up() {
    let ns = mem();
    let c = su();
    let dn = add_datanode(&ns, 1);
    for n in ["c", "a", "b", "e", "d"] {
        write_file(&ns, &c, &format!("/l/{n}"), 100, &dn).await;
    }
    let p1 = ns.get_listing(&c, "/l", "", 2).unwrap();
    assert_eq!(p1.entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(p1.remaining, 3);
    let p2 = ns.get_listing(&c, "/l", "b", 10).unwrap();
    assert_eq!(p2.entries.len(), 3);
    assert_eq!(p2.remaining, 0);
    let f = ns.get_listing(&c, "/l/a", "", 0).unwrap();
    assert!(f.is_file);
    assert_eq!(f.entries[0].length, 100);
    let s = ns.content_summary(&c, "/l").unwrap();
    assert_eq!((s.file_count, s.directory_count, s.length, s.space_consumed), (5, 1, 500, 500));
    ns.set_replication(&c, "/l/a", 2).await.unwrap();
    assert_eq!(kind(ns.set_replication(&c, "/l", 2).await), ErrorKind::IsADirectory);
    ns.set_times(&c, "/l/a", 5, -1).await.unwrap();
    assert_eq!(ns.get_file_info(&c, "/l/a").unwrap().unwrap().modification_time_ms, 5);
    let report = ns.datanode_report();
    assert_eq!(report[0].num_blocks, 5);
}
