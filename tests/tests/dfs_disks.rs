//! Issue 4: damaged and full disks. A replica file deleted or truncated on
//! disk is found by the datanode's block scanner and replaced; a full
//! datanode gets no new replicas; with no room anywhere a write fails with a
//! clear error and leaves nothing behind.

use std::time::Duration;
use tusk_client::{Client, FsckOptions};
use tusk_tests::{TestCluster, eventually, fsck_blocks, test_bytes};

const PIB: &str = "1125899906842624";

async fn block_of(client: &Client, path: &str) -> u64 {
    fsck_blocks(client, path).await.first().map(|b| b.block_id).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_truncated_replica_files_are_replaced() -> anyhow::Result<()> {
    let cluster = TestCluster::builder()
        .datanodes(4)
        .replication(3)
        .nn_conf("replication_interval_ms", 200)
        .dn_conf("scan_bytes_per_sec", 64 << 20)
        .dn_conf("scan_period_ms", 500)
        .start()?;
    let client = cluster.client().await?;
    let (a, b) = (test_bytes(400_000, 1), test_bytes(500_000, 2));
    client.write_all("/a", &a, false).await?;
    client.write_all("/b", &b, false).await?;
    let (ida, idb) = (block_of(&client, "/a").await, block_of(&client, "/b").await);
    let holders_a = cluster.replica_files(ida);
    let holders_b = cluster.replica_files(idb);
    assert_eq!((holders_a.len(), holders_b.len()), (3, 3));
    // One replica of /a vanishes, one of /b is cut in half.
    std::fs::remove_file(&holders_a[0].1)?;
    let f = std::fs::OpenOptions::new().write(true).open(&holders_b[2].1)?;
    f.set_len(250_000)?;
    drop(f);
    assert!(client.read_all("/a").await?.as_ref() == a.as_slice());
    assert!(client.read_all("/b").await?.as_ref() == b.as_slice());
    let full = |id: u64, want: &[u8]| {
        let files = cluster.replica_files(id);
        files.len() == 3 && files.iter().all(|(_, p)| std::fs::read(p).is_ok_and(|d| d == want))
    };
    eventually(Duration::from_secs(60), || async {
        full(ida, &a) && full(idb, &b) && client.fsck("/", FsckOptions::default()).await.is_ok_and(|r| r.is_healthy())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: /a on {:?}, /b on {:?}", cluster.replica_files(ida), cluster.replica_files(idb)))?;
    // The truncated replica was deleted, not kept next to the new copy.
    assert!(!cluster.replica_files(idb).iter().any(|(r, _)| *r == holders_b[2].0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_datanodes_get_no_replicas_and_no_room_is_a_clear_error() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(3).replication(2).start()?;
    let client = cluster.client().await?;
    let is_full = |role: &'static str| {
        let client = &client;
        let addr = std::fs::read_to_string(cluster.dir().join("run").join(format!("{role}.addr"))).unwrap_or_default();
        async move {
            client
                .datanode_report()
                .await
                .is_ok_and(|r| r.iter().any(|d| d.live && d.transfer_addr == addr.trim() && d.remaining == 0))
        }
    };
    // datanode-1's disk is full: everything on it is reserved.
    cluster.set_conf("datanode-1", "reserved_bytes", PIB)?;
    cluster.restart("datanode-1")?;
    eventually(Duration::from_secs(30), || is_full("datanode-1")).await?;
    for i in 0..6u64 {
        client.write_all(&format!("/f{i}"), &test_bytes(100_000, i), false).await?;
    }
    assert!(cluster.finalized_replicas("datanode-1").is_empty(), "a full datanode received replicas");
    // Every disk is full: a write fails with a clear error and leaves nothing.
    for role in ["datanode-0", "datanode-2"] {
        cluster.set_conf(role, "reserved_bytes", PIB)?;
        cluster.restart(role)?;
    }
    eventually(Duration::from_secs(30), || async { is_full("datanode-0").await && is_full("datanode-2").await }).await?;
    let src = cluster.dir().join("upload.bin");
    std::fs::write(&src, test_bytes(10_000, 9))?;
    let err = cluster.dfs_err(&["put", src.to_str().unwrap_or_default(), "/nowhere.bin"]);
    assert!(err.contains("no datanode has room for a block"), "{err}");
    assert!(err.contains("3 full"), "{err}");
    let listing = cluster.dfs_ok(&["ls", "/"]);
    assert!(!listing.contains("nowhere"), "{listing}");
    Ok(())
}
