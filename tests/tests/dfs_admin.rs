//! Issue 4: decommissioning, safe mode and racks, driven through the real
//! `tusk dfsadmin` and `tusk dfs fsck` commands.

use std::collections::BTreeSet;
use std::time::Duration;
use tusk_client::{Client, FsckOptions, FsckReplicaState, FsckReport};
use tusk_tests::{TestCluster, eventually, fsck_blocks, test_bytes};

const MIB: usize = 1 << 20;

/// Block ids of every file under `path`, with the racks of their live replicas.
async fn block_racks(client: &Client, path: &str) -> Vec<(u64, BTreeSet<String>)> {
    fsck_blocks(client, path)
        .await
        .iter()
        .map(|b| {
            let racks = b.replicas.iter().filter(|r| r.state == FsckReplicaState::Live).map(|r| r.rack.clone()).collect();
            (b.block_id, racks)
        })
        .collect()
}

async fn fsck(client: &Client, path: &str) -> FsckReport {
    match client.fsck(path, FsckOptions::default()).await {
        Ok(r) => r,
        Err(e) => panic!("fsck {path}: {e}"),
    }
}

fn addr_of(cluster: &TestCluster, role: &str) -> String {
    std::fs::read_to_string(cluster.dir().join("run").join(format!("{role}.addr"))).unwrap_or_default().trim().to_string()
}

/// Test 5: a datanode holding blocks is decommissioned: it is marked
/// decommissioned only once every block it holds has its replicas
/// elsewhere; stopped afterwards, fsck is HEALTHY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_drains_a_datanode_before_marking_it() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(4).replication(2).block_size(256 * 1024).fast_failure_detection(4000).start()?;
    let client = cluster.client().await?;
    for i in 0..6u64 {
        client.write_all(&format!("/d/f{i}"), &test_bytes(300_000 + i as usize * 50_000, i), false).await?;
    }
    // The datanode holding the most replicas.
    let node = (0..4)
        .map(|i| format!("datanode-{i}"))
        .max_by_key(|role| cluster.finalized_replicas(role).len())
        .unwrap();
    let node = node.as_str();
    assert!(!cluster.finalized_replicas(node).is_empty());
    let addr = addr_of(&cluster, node);
    let out = cluster.run_ok(&["dfsadmin", "decommission", &addr, "--wait", "--timeout", "90"]);
    assert!(out.contains("Decommissioned") || out.contains("decommissioned"), "{out}");
    let report = cluster.run_ok(&["dfsadmin", "report", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report)?;
    let me = report["datanodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["transfer_addr"] == addr.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(me["admin_state"], "DECOMMISSIONED", "{report:#}");
    // Every block still on the node has 2 replicas on other nodes.
    for (id, _) in cluster.finalized_replicas(node) {
        let elsewhere = cluster.replica_files(id).into_iter().filter(|(r, _)| r != node).count();
        assert!(elsewhere >= 2, "block {id} has {elsewhere} replicas besides {node}");
    }
    cluster.kill9(node)?;
    eventually(Duration::from_secs(30), || async {
        client.datanode_report().await.is_ok_and(|r| r.iter().filter(|d| d.live).count() == 3)
    })
    .await?;
    let out = cluster.dfs(&["fsck", "/"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is HEALTHY"));
    // New blocks never go to a decommissioned node, and recommission works.
    let _ = cluster.run_ok(&["dfsadmin", "recommission", &addr]);
    Ok(())
}

/// Test 6: the whole cluster is stopped and started. The namenode passes
/// through safe mode: mutations are refused with a clear message, and once
/// it has left, reads and writes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_cluster_passes_through_safe_mode() -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder().nn_conf("safemode_extension_ms", 8000).start()?;
    let data = test_bytes(3 * MIB / 2, 6);
    let client = cluster.client().await?;
    client.write_all("/kept.bin", &data, false).await?;
    assert!(cluster.run_ok(&["dfsadmin", "safemode", "get"]).contains("Safe mode is OFF"));
    cluster.stop_all()?;
    cluster.start_all()?;
    let out = cluster.run_ok(&["dfsadmin", "safemode", "get"]);
    assert!(out.contains("Safe mode is ON"), "{out}");
    let err = cluster.dfs_err(&["mkdir", "/during"]);
    assert!(err.contains("safe mode"), "{err}");
    let out = cluster.run_ok(&["dfsadmin", "safemode", "wait"]);
    assert!(out.contains("Safe mode is OFF"), "{out}");
    let client = cluster.client().await?;
    assert!(client.read_all("/kept.bin").await?.as_ref() == data.as_slice());
    cluster.dfs_ok(&["mkdir", "/after"]);
    // By hand: enter, refuse, leave.
    assert!(cluster.run_ok(&["dfsadmin", "safemode", "enter"]).contains("Safe mode is ON"));
    assert!(cluster.dfs_err(&["mkdir", "/manual"]).contains("safe mode"));
    assert!(cluster.run_ok(&["dfsadmin", "safemode", "leave"]).contains("Safe mode is OFF"));
    cluster.dfs_ok(&["mkdir", "/manual"]);
    Ok(())
}

/// Test 7: with a topology of two racks, new blocks span both racks; and a
/// block written while one rack was down is reported mis-replicated once the
/// rack is back, then repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_span_two_racks_and_mis_replication_is_repaired() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(4).replication(3).racks(2).fast_failure_detection(4000).start()?;
    let client = cluster.client().await?;
    client.write_all("/racked.bin", &test_bytes(5 * MIB / 2, 7), false).await?;
    let blocks = block_racks(&client, "/racked.bin").await;
    assert_eq!(blocks.len(), 3);
    for (id, racks) in &blocks {
        assert_eq!(racks.len(), 2, "block {id} sits on racks {racks:?}");
    }
    // Rack 1 (datanode-2 and datanode-3) goes down; a new file then sits on rack 0 only.
    cluster.kill9("datanode-2")?;
    cluster.kill9("datanode-3")?;
    eventually(Duration::from_secs(30), || async {
        client.datanode_report().await.is_ok_and(|r| r.iter().filter(|d| d.live).count() == 2)
    })
    .await?;
    let opts = tusk_client::CreateOptions { replication: Some(2), ..Default::default() };
    let mut w = client.create("/one-rack.bin", opts).await?;
    w.write(&test_bytes(MIB / 2, 8)).await?;
    w.close().await?;
    // Safe mode holds the repair back while fsck looks: with both racks
    // known again, the block's two replicas on rack 0 break the policy.
    cluster.run_ok(&["dfsadmin", "safemode", "enter"]);
    cluster.restart("datanode-2")?;
    cluster.restart("datanode-3")?;
    let report = fsck(&client, "/one-rack.bin").await;
    assert_eq!(report.summary.mis_replicated_blocks, 1, "{report:?}");
    let out = String::from_utf8_lossy(&cluster.dfs(&["fsck", "/one-rack.bin", "--files"]).stdout).to_string();
    assert!(out.contains("Replica placement policy is violated"), "{out}");
    cluster.run_ok(&["dfsadmin", "safemode", "leave"]);
    let repaired = eventually(Duration::from_secs(60), || async {
        let blocks = block_racks(&client, "/one-rack.bin").await;
        let report = fsck(&client, "/").await;
        blocks.iter().all(|(_, r)| r.len() == 2) && report.summary.mis_replicated_blocks == 0 && report.summary.over_replicated_blocks == 0
    })
    .await;
    if let Err(e) = repaired {
        let opts = FsckOptions { list_files: true, list_blocks: true, list_locations: true, include_open_files: true };
        panic!("{e}: {:?}", client.fsck("/", opts).await);
    }
    eventually(Duration::from_secs(30), || async { fsck(&client, "/").await.is_healthy() }).await?;
    Ok(())
}

/// `setrep -w` up and down goes through re-replication and excess deletion,
/// and returns once every block has exactly the new number of replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setrep_wait_adds_and_removes_replicas() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(4).replication(2).block_size(256 * 1024).fast_failure_detection(5000).start()?;
    let client = cluster.client().await?;
    let data = test_bytes(600_000, 9);
    client.write_all("/rep.bin", &data, false).await?;
    let ids: Vec<u64> = block_racks(&client, "/rep.bin").await.iter().map(|b| b.0).collect();
    assert_eq!(ids.len(), 3);
    let out = cluster.dfs_ok(&["setrep", "-w", "4", "/rep.bin"]);
    assert!(out.contains("Replication 4 set: /rep.bin") && out.contains("done"), "{out}");
    for id in &ids {
        assert_eq!(cluster.replica_files(*id).len(), 4, "block {id}");
    }
    let out = cluster.dfs_ok(&["setrep", "-w", "1", "/rep.bin"]);
    assert!(out.contains("done"), "{out}");
    // The namenode has dropped the excess locations; the deletions reach the disks next.
    eventually(Duration::from_secs(30), || async { ids.iter().all(|id| cluster.replica_files(*id).len() == 1) }).await?;
    assert!(client.read_all("/rep.bin").await?.as_ref() == data.as_slice());
    Ok(())
}
