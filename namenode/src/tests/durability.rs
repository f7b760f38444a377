//! Edit log, checkpoints, format and start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tusk_proto::error::ErrorKind;

use super::*;
use crate::editlog;
use crate::storage;

fn formatted() -> (tempfile::TempDir, NamenodeConfig) {
    let dir = tempfile::tempdir().unwrap();
    let c = conf(&dir.path().join("name"));
    crate::format(&c, "root", false).unwrap();
    (dir, c)
}

async fn some_edits(ns: &Namesystem, tag: &str) {
    let c = su();
    ns.mkdirs(&c, &format!("/{tag}/a/b"), 0, true).await.unwrap();
    ns.create(&c, &format!("/{tag}/a/f"), 0o600, false, false, 2, 1024).await.unwrap();
    ns.rename(&c, &format!("/{tag}/a/b"), &format!("/{tag}/b2"), false).await.unwrap();
    ns.set_owner(&c, &format!("/{tag}/b2"), "bob", "staff").await.unwrap();
    ns.set_permission(&c, &format!("/{tag}/a"), 0o1777).await.unwrap();
    ns.create(&c, &format!("/{tag}/g"), 0, false, false, 1, 0).await.unwrap();
    ns.complete(&c, &format!("/{tag}/g"), None).await.unwrap();
    ns.delete(&c, &format!("/{tag}/g"), false).await.unwrap();
}

async fn blocks_edits(ns: &Namesystem, tag: &str) {
    let dn = add_datanode(ns, 1);
    write_file(ns, &su(), &format!("/{tag}/blk"), 77, &dn).await;
    // Leave one file under construction with a block.
    ns.create(&su(), &format!("/{tag}/open"), 0, false, true, 1, 0).await.unwrap();
    ns.add_block(&su(), &format!("/{tag}/open"), None, &[], "").await.unwrap();
}

fn inprogress(c: &NamenodeConfig) -> std::path::PathBuf {
    let segs = editlog::list_segments(&storage::current_dir(&c.name_dir)).unwrap();
    segs.into_iter().rev().find(|s| s.last.is_none()).unwrap().path
}

#[tokio::test]
async fn replay_equals_live_namespace() {
    let (_d, c) = formatted();
    let ns = Namesystem::open(c.clone()).unwrap();
    some_edits(&ns, "x").await;
    blocks_edits(&ns, "x").await;
    let live = ns.state.read().dump();
    drop(ns);
    let ns = Namesystem::open(c.clone()).unwrap();
    assert_eq!(ns.state.read().dump(), live);
    // Under-construction files keep their lease holder.
    assert!(live.iter().any(|l| l.contains("/x/open") && l.contains("DFSClient_root")));
    // Blocks were never reported here: leave safe mode by hand.
    assert!(ns.safemode.is_on());
    ns.safemode.leave();
    // And once more, after the previous in-progress segment was finalized.
    some_edits(&ns, "y").await;
    let live = ns.state.read().dump();
    drop(ns);
    assert_eq!(Namesystem::open(c).unwrap().state.read().dump(), live);
}

async fn torn_tail(damage: impl Fn(&std::path::Path)) {
    let (_d, c) = formatted();
    let ns = Namesystem::open(c.clone()).unwrap();
    ns.mkdirs(&su(), "/keep", 0, false).await.unwrap();
    let kept = ns.state.read().dump();
    ns.mkdirs(&su(), "/torn", 0, false).await.unwrap();
    drop(ns);
    damage(&inprogress(&c));
    let ns = Namesystem::open(c.clone()).unwrap();
    assert_eq!(ns.state.read().dump(), kept);
    // The namespace keeps working and the new edit survives another restart.
    ns.mkdirs(&su(), "/after", 0, false).await.unwrap();
    let live = ns.state.read().dump();
    drop(ns);
    assert_eq!(Namesystem::open(c).unwrap().state.read().dump(), live);
}

#[tokio::test]
async fn truncated_last_record_is_dropped() {
    torn_tail(|p| {
        let len = std::fs::metadata(p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(len - 3).unwrap();
    })
    .await;
}

#[tokio::test]
async fn corrupt_last_record_is_dropped() {
    torn_tail(|p| {
        let mut bytes = std::fs::read(p).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0x55;
        std::fs::write(p, bytes).unwrap();
    })
    .await;
}

#[tokio::test]
async fn corruption_in_the_middle_is_fatal() {
    let (_d, c) = formatted();
    let ns = Namesystem::open(c.clone()).unwrap();
    ns.mkdirs(&su(), "/one", 0, false).await.unwrap();
    ns.mkdirs(&su(), "/two", 0, false).await.unwrap();
    drop(ns);
    let p = inprogress(&c);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[editlog::HEADER_LEN + 2] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let e = Namesystem::open(c).err().unwrap();
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
}

#[tokio::test]
async fn checkpoint_plus_later_edits_equals_live() {
    let (_d, c) = formatted();
    let ns = Namesystem::open(c.clone()).unwrap();
    some_edits(&ns, "x").await;
    blocks_edits(&ns, "x").await;
    let t1 = ns.checkpoint().unwrap().unwrap();
    some_edits(&ns, "y").await;
    let t2 = ns.checkpoint().unwrap().unwrap();
    assert!(t2 > t1);
    ns.mkdirs(&su(), "/z", 0, false).await.unwrap();
    let live = ns.state.read().dump();
    drop(ns);
    let dir = storage::current_dir(&c.name_dir);
    let images: Vec<u64> = crate::image::list_images(&dir).unwrap().into_iter().map(|(t, _)| t).collect();
    assert_eq!(images, vec![t2, t1], "the previous image is kept, older ones purged");
    let segs = editlog::list_segments(&dir).unwrap();
    assert!(segs.iter().all(|s| s.last.is_none_or(|l| l > t1)), "{segs:?}");
    let loaded = storage::load(&c.name_dir).unwrap();
    assert_eq!(loaded.image_txid, t2);
    assert_eq!(loaded.state.dump(), live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
// Holding the syncer lock across awaits is the point: it pauses group commit.
#[allow(clippy::await_holding_lock)]
async fn group_commit_uses_fewer_syncs_than_mutations() {
    let (_d, c) = formatted();
    let ns = Arc::new(Namesystem::open(c).unwrap());
    let journal = ns.journal.as_ref().unwrap();
    let syncs_before = journal.sync_count();
    let start_txid = journal.last_appended();
    const N: u64 = 50;
    let paused = journal.pause_syncer();
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let ns = ns.clone();
            tokio::spawn(async move { ns.mkdirs(&su(), &format!("/d{i}"), 0, false).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while journal.last_appended() < start_txid + N {
        assert!(Instant::now() < deadline, "mutations did not append");
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    assert!(tasks.iter().all(|t| !t.is_finished()), "nothing is acknowledged before its sync");
    drop(paused);
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let syncs = journal.sync_count() - syncs_before;
    assert!((1..=2).contains(&syncs), "{syncs} syncs for {N} mutations");
}

#[test]
fn format_refuses_an_existing_namespace_and_start_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = conf(&dir.path().join("name"));
    let e = Namesystem::open(c.clone()).err().unwrap();
    assert!(matches!(e, NamenodeError::NotFormatted(_)));
    assert_eq!(e.to_string(), format!("{}: not formatted; run `tusk namenode --format`", c.name_dir.display()));
    let id = crate::format(&c, "root", false).unwrap();
    assert!(id.starts_with("CID-"));
    let e = crate::format(&c, "root", false).unwrap_err();
    assert!(e.to_string().contains("already holds a namespace"), "{e}");
    let excludes = c.name_dir.join(crate::decommission::EXCLUDES_FILE);
    std::fs::write(&excludes, "{}").unwrap();
    let id2 = crate::format(&c, "root", true).unwrap();
    assert_ne!(id, id2);
    assert!(!excludes.exists(), "a new namespace keeps no decommissioning state");
    std::fs::write(storage::current_dir(&c.name_dir).join("VERSION"), "garbage = [").unwrap();
    let e = Namesystem::open(c).err().unwrap();
    assert!(e.to_string().contains("VERSION"), "{e}");
}

#[tokio::test]
async fn server_serves_restarts_and_refuses_foreign_datanodes() {
    use tusk_proto::dfs::client_protocol_client::ClientProtocolClient;
    use tusk_proto::dfs::datanode_protocol_client::DatanodeProtocolClient;
    use tusk_proto::dfs::*;
    let (d, mut c) = formatted();
    c.addr_file = Some(d.path().join("nn.addr"));
    let nn = crate::start(c.clone()).await.unwrap();
    let addr = nn.local_addr();
    assert_eq!(std::fs::read_to_string(d.path().join("nn.addr")).unwrap(), format!("{addr}\n"));
    let mut client = ClientProtocolClient::connect(format!("http://{addr}")).await.unwrap();
    client
        .mkdirs(MkdirsRequest { caller: Some(su()), path: "/srv/x".into(), permission: 0, create_parent: true })
        .await
        .unwrap();
    let st = client.mkdirs(MkdirsRequest { caller: None, path: "/y".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(ErrorKind::of_status(&st), Some(ErrorKind::InvalidArgument));
    let st = client
        .delete(DeleteRequest { caller: Some(su()), path: "/srv".into(), recursive: false })
        .await
        .unwrap_err();
    assert_eq!(ErrorKind::of_status(&st), Some(ErrorKind::DirectoryNotEmpty));
    assert_eq!(st.message(), "/srv: directory is not empty");
    let mut dn = DatanodeProtocolClient::connect(format!("http://{addr}")).await.unwrap();
    let reg = RegisterDatanodeRequest {
        protocol_version: tusk_proto::PROTOCOL_VERSION,
        id: Some(DatanodeId { datanode_uuid: "u1".into(), transfer_addr: "127.0.0.1:1".into(), host: "127.0.0.1".into(), ..Default::default() }),
        cluster_id: "CID-other".into(),
        storage: None,
    };
    let st = dn.register_datanode(reg.clone()).await.unwrap_err();
    assert_eq!(ErrorKind::of_status(&st), Some(ErrorKind::Incompatible));
    let ok = dn.register_datanode(RegisterDatanodeRequest { cluster_id: String::new(), ..reg }).await.unwrap();
    assert_eq!(ok.into_inner().cluster_id, nn.cluster_id());
    let defaults = client.get_server_defaults(ServerDefaultsRequest {}).await.unwrap().into_inner();
    assert_eq!(defaults.bytes_per_checksum, 512);
    let cluster = nn.cluster_id().to_string();
    nn.shutdown().await.unwrap();

    let nn = crate::start(c).await.unwrap();
    assert_eq!(nn.cluster_id(), cluster);
    let mut client = ClientProtocolClient::connect(format!("http://{}", nn.local_addr())).await.unwrap();
    let info = client
        .get_file_info(GetFileInfoRequest { caller: Some(su()), path: "/srv/x".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(info.status.is_some());
    nn.shutdown().await.unwrap();
}
