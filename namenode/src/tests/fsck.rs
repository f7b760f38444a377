//! Fsck: each block health, the summary counts, listing options, paging,
//! permissions.

use tusk_proto::dfs::fsck_replica::ReplicaState;
use tusk_proto::dfs::{BadReplica, BlockHealth, Caller, FsckRequest, FsckResponse};
use tusk_proto::error::ErrorKind;

use super::replication::{cluster, file_on};
use super::*;

fn fsck(ns: &Namesystem, c: &Caller, req: FsckRequest) -> Result<Vec<FsckResponse>, NamenodeError> {
    let mut run = ns.start_fsck(c, &req)?;
    let mut out = Vec::new();
    while let Some(m) = ns.fsck_next(&mut run) {
        out.push(m);
    }
    Ok(out)
}

fn req(path: &str) -> FsckRequest {
    FsckRequest { caller: Some(su()), path: path.into(), ..Default::default() }
}

/// dn-1..3 on /r1, dn-4 on /r2.
const RACKS: &str = "10.0.0.1 /r1\n10.0.0.2 /r1\n10.0.0.3 /r1\n10.0.0.4 /r2\n";

#[tokio::test]
async fn every_health_kind_is_classified_and_counted() {
    let (ns, dn, _d) = cluster(4, Some(RACKS));
    let bad = |b: tusk_proto::dfs::ExtendedBlock, d: &str| BadReplica { block: Some(b), datanode_uuid: d.into(), reason: "test".into() };
    file_on(&ns, "/x/healthy", 2, &[&dn[0], &dn[3]]).await;
    file_on(&ns, "/x/under", 3, &[&dn[0], &dn[3]]).await;
    file_on(&ns, "/x/over", 1, &[&dn[0], &dn[3]]).await;
    file_on(&ns, "/x/mis", 2, &[&dn[0], &dn[1]]).await;
    let c = file_on(&ns, "/x/corrupt", 2, &[&dn[0], &dn[3]]).await;
    ns.report_bad_blocks(&[bad(c, &dn[0])]).unwrap();
    let m = file_on(&ns, "/x/sub/missing", 1, &[&dn[2]]).await;
    ns.report_bad_blocks(&[bad(m, &dn[2])]).unwrap();
    ns.create(&su(), "/x/open", 0, false, false, 2, 0).await.unwrap();
    ns.add_block(&su(), "/x/open", None, &[], "").await.unwrap();

    let msgs = fsck(&ns, &su(), req("/x")).unwrap();
    assert_eq!(msgs.len(), 1);
    let s = msgs[0].summary.unwrap();
    assert_eq!((s.total_files, s.open_files, s.total_dirs, s.total_blocks, s.total_size), (6, 1, 2, 6, 600));
    assert_eq!(s.healthy_blocks, 1);
    assert_eq!(s.under_replicated_blocks, 2, "/x/under and /x/corrupt");
    assert_eq!((s.over_replicated_blocks, s.mis_replicated_blocks), (1, 1));
    assert_eq!((s.corrupt_blocks, s.missing_blocks, s.missing_size), (2, 1, 100));
    assert_eq!(s.live_replicas, 2 + 2 + 2 + 2 + 1);
    assert_eq!((s.datanodes, s.racks, s.default_replication), (4, 2, 3));
    assert!(!s.healthy);
    assert!(s.finished_ms >= s.started_ms);
    let files = &msgs[0].files;
    let problems = |path: &str| -> Vec<BlockHealth> {
        let f = files.iter().find(|f| f.path == path).unwrap();
        f.blocks[0].problems.iter().map(|p| BlockHealth::try_from(*p).unwrap()).collect()
    };
    assert_eq!(files.len(), 5, "only files with problems are listed");
    assert_eq!(problems("/x/under"), vec![BlockHealth::UnderReplicated]);
    assert_eq!(problems("/x/over"), vec![BlockHealth::OverReplicated]);
    assert_eq!(problems("/x/mis"), vec![BlockHealth::MisReplicated]);
    assert_eq!(problems("/x/corrupt"), vec![BlockHealth::Corrupt, BlockHealth::UnderReplicated]);
    assert_eq!(problems("/x/sub/missing"), vec![BlockHealth::Missing, BlockHealth::Corrupt]);
    let corrupt = files.iter().find(|f| f.path == "/x/corrupt").unwrap();
    assert!(!corrupt.healthy);
    assert_eq!((corrupt.blocks[0].live_replicas, corrupt.blocks[0].corrupt_replicas, corrupt.blocks[0].racks), (1, 1, 1));
    assert!(corrupt.blocks[0].replicas.is_empty(), "locations only on request");
    assert!(files.iter().find(|f| f.path == "/x/mis").unwrap().healthy, "mis-replication is no corruption");

    // Everything listed, with locations and open files.
    let all = FsckRequest { list_files: true, list_blocks: true, list_locations: true, include_open_files: true, ..req("/x") };
    let msgs = fsck(&ns, &su(), all).unwrap();
    let files = &msgs[0].files;
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, vec!["/x/corrupt", "/x/healthy", "/x/mis", "/x/open", "/x/over", "/x/sub/missing", "/x/under"]);
    let corrupt = &files[0].blocks[0];
    let states: Vec<(String, ReplicaState)> = corrupt
        .replicas
        .iter()
        .map(|r| (r.datanode.clone().unwrap().rack, ReplicaState::try_from(r.state).unwrap()))
        .collect();
    assert!(states.contains(&("/r1".into(), ReplicaState::Corrupt)) && states.contains(&("/r2".into(), ReplicaState::Live)), "{states:?}");
    let open = &files[3];
    assert!(open.under_construction && open.blocks[0].problems.is_empty());
    assert_eq!(msgs[0].summary.as_ref().unwrap().total_files, 7);

    // One file; and a healthy tree.
    let one = fsck(&ns, &su(), req("/x/over")).unwrap();
    assert_eq!(one[0].files.len(), 1);
    assert_eq!(one[0].summary.as_ref().unwrap().total_dirs, 0);
    let ok = fsck(&ns, &su(), req("/x/healthy")).unwrap();
    assert!(ok[0].summary.as_ref().unwrap().healthy && ok[0].files.is_empty());

    // Excess replicas show as such once the monitor chose them.
    ns.replication_tick();
    let over = FsckRequest { list_files: true, list_blocks: true, list_locations: true, ..req("/x/over") };
    let msgs = fsck(&ns, &su(), over).unwrap();
    let b = &msgs[0].files[0].blocks[0];
    assert!(b.replicas.iter().any(|r| r.state == ReplicaState::Excess as i32));
    assert!(b.problems.is_empty());
}

#[tokio::test]
async fn large_trees_are_streamed_and_permissions_apply() {
    let ns = Namesystem::in_memory(NamenodeConfig::default(), "root");
    let c = su();
    for i in 0..1500 {
        let p = format!("/big/d{}/f{i:04}", i % 3);
        ns.create(&c, &p, 0, false, true, 1, 0).await.unwrap();
        ns.complete(&c, &p, None).await.unwrap();
    }
    let msgs = fsck(&ns, &c, FsckRequest { list_files: true, ..req("/") }).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].files.len(), 1000);
    assert!(msgs[0].summary.is_none());
    assert_eq!(msgs[1].files.len(), 500);
    let s = msgs[1].summary.as_ref().unwrap();
    assert_eq!((s.total_files, s.total_dirs, s.total_blocks), (1500, 5, 0));
    assert!(s.healthy);
    let paths: Vec<&str> = msgs.iter().flat_map(|m| m.files.iter().map(|f| f.path.as_str())).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "files come in path order");

    let bob = caller("bob", "DFSClient_bob");
    ns.mkdirs(&c, "/private", 0o700, false).await.unwrap();
    let e = fsck(&ns, &bob, req("/private")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert_eq!(fsck(&ns, &bob, req("/nope")).unwrap_err().kind(), ErrorKind::NotFound);
    // Directories bob may not list are left out of his walk.
    let s = fsck(&ns, &bob, req("/")).unwrap().pop().unwrap().summary.unwrap();
    assert_eq!(s.total_dirs, 5, "/, /big and its three directories");
}
