//! Durability across restarts: every daemon restarted, and the namenode
//! killed with SIGKILL right after a burst of acknowledged mutations.

use std::collections::BTreeMap;
use std::time::Duration;
use tusk_client::CreateOptions;
use tusk_tests::{TestCluster, eventually, test_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_daemon_restarted_everything_reads_back() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().block_size(128 * 1024).start()?;
    let client = cluster.client().await?;
    let mut files = BTreeMap::new();
    client.mkdirs("/keep", None, true).await?;
    for i in 0..5u64 {
        let data = test_bytes(50_000 * i as usize + 1, i);
        client.write_all(&format!("/keep/f{i}"), &data, false).await?;
        files.insert(format!("/keep/f{i}"), data);
    }
    for role in cluster.roles() {
        cluster.restart(&role)?;
    }
    let client = cluster.client().await?;
    for (path, data) in &files {
        let back = client.read_all(path).await?;
        assert!(back.as_ref() == data.as_slice(), "{path} differs after restarts");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_namenode_keeps_every_acknowledged_mutation() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().start()?;
    let setup = cluster.client().await?;
    setup.mkdirs("/burst", None, true).await?;
    // Several clients create, rename and mkdir concurrently; each records
    // what the namenode acknowledged.
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..4u32 {
        let client = cluster.client().await?;
        tasks.spawn(async move {
            let mut acked = Vec::new();
            for i in 0..60u32 {
                let path = format!("/burst/c{c}-f{i}");
                let w = client.create(&path, CreateOptions::default()).await?;
                w.close().await?;
                if i % 3 == 0 {
                    let to = format!("/burst/c{c}-r{i}");
                    client.rename(&path, &to, false).await?;
                    acked.push((to, false));
                } else if i % 3 == 1 {
                    let d = format!("/burst/c{c}-d{i}/x");
                    client.mkdirs(&d, None, true).await?;
                    acked.push((path, false));
                    acked.push((d, true));
                } else {
                    acked.push((path, false));
                }
            }
            anyhow::Ok(acked)
        });
    }
    let mut acked = Vec::new();
    while let Some(r) = tasks.join_next().await {
        acked.extend(r??);
    }
    // Straight after the last acknowledgement: SIGKILL, no clean shutdown.
    cluster.kill9("namenode-0")?;
    cluster.restart("namenode-0")?;
    let client = cluster.client().await?;
    for (path, is_dir) in &acked {
        let st = client.stat(path).await.map_err(|e| anyhow::anyhow!("{path} lost after kill -9: {e}"))?;
        assert_eq!(st.is_dir, *is_dir, "{path}");
    }
    // Renamed-away sources are gone.
    for c in 0..4 {
        assert!(client.try_stat(&format!("/burst/c{c}-f0")).await?.is_none());
    }
    assert_eq!(client.list("/burst").await?.len(), 4 * (60 + 20));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_namenode_kill_and_block_reports_restore_locations() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().block_size(64 * 1024).start()?;
    let client = cluster.client().await?;
    let data = test_bytes(300_000, 9);
    client.write_all("/blocks.bin", &data, false).await?;
    cluster.kill9("namenode-0")?;
    cluster.restart("namenode-0")?;
    let client = cluster.client().await?;
    // Locations come back with the datanodes' block reports.
    eventually(Duration::from_secs(30), || async { client.read_all("/blocks.bin").await.is_ok() }).await?;
    assert!(client.read_all("/blocks.bin").await?.as_ref() == data.as_slice());
    Ok(())
}
