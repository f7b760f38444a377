//! Issue 4: the filesystem survives failure. Real processes are killed with
//! SIGKILL and real replica files are damaged on disk.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;
use tusk_client::{Client, CreateOptions, FsckOptions};
use tusk_tests::{TestCluster, eventually, fsck_blocks, test_bytes, wait_until};

const MIB: usize = 1 << 20;

/// Runs `tusk dfs put - PATH` fed `data` and kills it with SIGKILL once
/// its temporary file `PATH._COPYING_` has `committed` bytes in complete blocks.
async fn kill_writer_mid_file(cluster: &TestCluster, client: &Client, path: &str, data: &[u8], committed: u64) -> anyhow::Result<()> {
    let mut put = cluster
        .tusk()
        .args(["dfs", "put", "-", path])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = put.stdin.take().ok_or_else(|| anyhow::anyhow!("no stdin"))?;
    stdin.write_all(data)?;
    stdin.flush()?;
    let tmp = format!("{path}._COPYING_");
    eventually(Duration::from_secs(30), || async {
        client.try_stat(&tmp).await.ok().flatten().is_some_and(|s| s.length >= committed)
    })
    .await?;
    put.kill()?;
    let _ = put.wait();
    Ok(())
}

async fn healthy(client: &Client) -> bool {
    client.fsck("/", FsckOptions::default()).await.is_ok_and(|r| r.is_healthy())
}

/// Test 1: a datanode of the write pipeline is killed in the middle of a
/// multi-block write. The write succeeds, reads back identical, and once the
/// datanode is declared dead every block is back at 3 live replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datanode_killed_mid_write_the_write_survives_and_blocks_are_rereplicated() -> anyhow::Result<()> {
    // Distinct loopback hosts: the writer's host 127.0.0.1 is datanode-0's,
    // so datanode-0 is the first node of every pipeline.
    let cluster = TestCluster::builder().datanodes(4).replication(3).racks(1).fast_failure_detection(3000).start()?;
    let client = cluster.client().await?;
    let data = test_bytes(6 * MIB + 12345, 1);
    let mut w = client.create("/survivor.bin", CreateOptions::default()).await?;
    let half_way = 2 * MIB + MIB / 2;
    for chunk in data[..half_way].chunks(64 * 1024) {
        w.write(chunk).await?;
    }
    cluster.kill9("datanode-0")?;
    for chunk in data[half_way..].chunks(64 * 1024) {
        w.write(chunk).await?;
    }
    assert_eq!(w.close().await?, data.len() as u64);
    let back = client.read_all("/survivor.bin").await?;
    assert!(back.as_ref() == data.as_slice(), "the file differs after a datanode died mid-write");

    let dead_addr = std::fs::read_to_string(cluster.dir().join("run").join("datanode-0.addr"))
        .unwrap_or_default()
        .trim()
        .to_string();
    eventually(Duration::from_secs(90), || async {
        let blocks = fsck_blocks(&client, "/survivor.bin").await;
        blocks.len() == 7
            && blocks.iter().all(|b| b.live_replicas == 3 && !b.replicas.iter().any(|r| r.transfer_addr == dead_addr))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(healthy(&client).await);
    // And the re-replicated copies are good.
    let back = cluster.client().await?.read_all("/survivor.bin").await?;
    assert!(back.as_ref() == data.as_slice());

    // The dead datanode comes back with its old replicas (the first blocks,
    // finalized before the kill, and the partial one with a stale stamp):
    // they are excess or stale now and get deleted.
    cluster.restart("datanode-0")?;
    let ids: Vec<u64> = fsck_blocks(&client, "/survivor.bin").await.iter().map(|b| b.block_id).collect();
    let rbw = cluster.data_dir("datanode-0").join("current").join("rbw");
    eventually(Duration::from_secs(90), || async {
        let on_disk_ok = ids.iter().all(|id| cluster.replica_files(*id).len() == 3);
        let rbw_empty = std::fs::read_dir(&rbw).map(|d| d.count() == 0).unwrap_or(true);
        let report = client.fsck("/", FsckOptions::default()).await;
        on_disk_ok && rbw_empty && report.is_ok_and(|r| r.is_healthy() && r.summary.over_replicated_blocks == 0)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: replicas on disk {:?}", ids.iter().map(|id| cluster.replica_files(*id).len()).collect::<Vec<_>>()))?;
    assert!(client.read_all("/survivor.bin").await?.as_ref() == data.as_slice());
    Ok(())
}

/// Test 2: bytes flipped in one replica's data file. Reads still return the
/// right bytes, fsck reports the corruption, then the block is repaired from
/// a good replica, the corrupt one is deleted and fsck is HEALTHY again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_replica_is_reported_repaired_and_deleted() -> anyhow::Result<()> {
    let cluster = TestCluster::builder()
        .datanodes(4)
        .replication(3)
        .fast_failure_detection(3000)
        .dn_conf("scan_bytes_per_sec", 64 * MIB)
        .dn_conf("scan_period_ms", 500)
        .start()?;
    let client = cluster.client().await?;
    let data = test_bytes(700_000, 2);
    client.write_all("/victim.bin", &data, false).await?;
    let blocks = fsck_blocks(&client, "/victim.bin").await;
    assert_eq!(blocks.len(), 1);
    let block_id = blocks[0].block_id;
    let holders = cluster.replica_files(block_id);
    assert_eq!(holders.len(), 3, "{holders:?}");
    // The fourth datanode goes away, so nothing can repair the block yet.
    let spare = (0..4).map(|i| format!("datanode-{i}")).find(|r| !holders.iter().any(|(h, _)| h == r)).unwrap();
    cluster.kill9(&spare)?;
    let (victim, file) = holders[1].clone();
    let mut bytes = std::fs::read(&file)?;
    for b in &mut bytes[300_000..300_016] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, &bytes)?;
    for _ in 0..5 {
        let out = cluster.dfs(&["cat", "/victim.bin"]);
        assert!(out.status.success(), "cat failed: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == data, "cat returned other bytes");
        let back = cluster.client().await?.read_all("/victim.bin").await?;
        assert!(back.as_ref() == data.as_slice(), "a read returned corrupt bytes");
    }
    // The block scanner (or a reader) reports the bad replica.
    eventually(Duration::from_secs(60), || async { !healthy(&client).await }).await?;
    let report = client.fsck("/victim.bin", FsckOptions { list_blocks: true, list_files: true, ..Default::default() }).await?;
    assert_eq!(report.files[0].blocks[0].corrupt_replicas, 1, "{report:?}");
    let out = cluster.dfs(&["fsck", "/"]);
    assert!(!out.status.success(), "fsck must fail while a replica is corrupt");
    assert!(String::from_utf8_lossy(&out.stdout).contains("is CORRUPT"));
    // With the fourth datanode back the block is re-replicated from a good
    // replica and the corrupt one deleted.
    cluster.restart(&spare)?;
    eventually(Duration::from_secs(90), || async { healthy(&client).await }).await?;
    wait_until(Duration::from_secs(60), || !cluster.replica_files(block_id).iter().any(|(r, _)| *r == victim))?;
    let holders = cluster.replica_files(block_id);
    assert_eq!(holders.len(), 3, "{holders:?}");
    for (_, f) in &holders {
        assert!(std::fs::read(f)? == data, "{} holds other bytes", f.display());
    }
    let out = cluster.dfs(&["fsck", "/"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("is HEALTHY"));
    Ok(())
}

/// `tusk dfs recover-lease` closes a dead writer's file at once, long
/// before the hard limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_lease_command_closes_a_dead_writers_file() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(3).replication(2).start()?;
    let data = test_bytes(MIB + 200_000, 5);
    let client = cluster.client().await?;
    let tmp = "/dead.bin._COPYING_";
    kill_writer_mid_file(&cluster, &client, "/dead.bin", &data, MIB as u64).await?;
    assert!(client.stat(tmp).await?.under_construction);
    let out = cluster.dfs_ok(&["recover-lease", tmp, "--retries", "20"]);
    assert!(out.contains("recoverLease SUCCEEDED"), "{out}");
    let st = client.stat(tmp).await?;
    assert!(!st.under_construction);
    let len = st.length as usize;
    assert!(len >= MIB && len <= data.len(), "recovered length {len}");
    assert!(client.read_all(tmp).await?.as_ref() == &data[..len]);
    // A closed file: nothing to recover.
    assert!(cluster.dfs_ok(&["recover-lease", tmp]).contains("recoverLease SUCCEEDED"));
    Ok(())
}

/// Test 4: a writing client is killed mid-file. After the hard limit the
/// namenode recovers the lease: the file closes at a length every replica
/// agrees on, holding the bytes written up to that length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_lease_is_recovered_at_an_agreed_length() -> anyhow::Result<()> {
    let cluster = TestCluster::builder()
        .datanodes(3)
        .replication(3)
        .nn_conf("lease_soft_limit_ms", 1000)
        .nn_conf("lease_hard_limit_ms", 3000)
        .start()?;
    let data = test_bytes(2 * MIB + 300_000, 4);
    // Killed once two blocks are committed.
    let client = cluster.client().await?;
    let tmp = "/orphan.bin._COPYING_";
    kill_writer_mid_file(&cluster, &client, "/orphan.bin", &data, 2 * MIB as u64).await?;
    eventually(Duration::from_secs(60), || async {
        client.try_stat(tmp).await.ok().flatten().is_some_and(|s| !s.under_construction)
    })
    .await?;
    let st = client.stat(tmp).await?;
    let len = st.length as usize;
    assert!(len >= 2 * MIB && len <= data.len(), "recovered length {len}");
    let back = client.read_all(tmp).await?;
    assert!(back.as_ref() == &data[..len], "recovered bytes differ from the bytes written");
    // Every replica of every block agrees on its length.
    let blocks = fsck_blocks(&client, tmp).await;
    let mut total = 0;
    for b in &blocks {
        let id = &b.block_id;
        let files = cluster.replica_files(*id);
        assert!(!files.is_empty(), "block {id} has no replica");
        let lens: Vec<u64> = files.iter().map(|(_, f)| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).collect();
        assert!(lens.iter().all(|l| *l == lens[0]), "block {id}: replicas disagree: {lens:?}");
        total += lens[0];
    }
    assert_eq!(total as usize, len);
    // The recovered file is an ordinary closed file: it can be renamed and overwritten.
    client.rename(tmp, "/orphan.bin", false).await?;
    client.write_all("/orphan.bin", b"new", true).await?;
    Ok(())
}

/// Test 5: a writer that pauses for several socket timeouts in the middle
/// of a block (a slow pipe, a record a minute) keeps its pipeline with
/// heartbeat packets: the file completes without any pipeline recovery (the
/// block keeps its generation stamp) and reads back identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_writer_keeps_its_pipeline_without_a_recovery() -> anyhow::Result<()> {
    const SOCKET_TIMEOUT_MS: u64 = 1500;
    let cluster = TestCluster::builder().datanodes(3).replication(3).dn_conf("socket_timeout_ms", SOCKET_TIMEOUT_MS).start()?;
    let mut config = tusk_client::ClientConfig::new(cluster.namenode.clone());
    config.socket_timeout_ms = SOCKET_TIMEOUT_MS;
    let client = Client::connect(config).await?;
    let data = test_bytes(300_000, 5);
    let path = "/idle.bin";
    let mut w = client.create(path, CreateOptions::default()).await?;
    // More than a packet: the block and its pipeline exist.
    w.write(&data[..100_000]).await?;
    let opts = FsckOptions { list_files: true, list_blocks: true, include_open_files: true, ..Default::default() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let stamp = loop {
        let report = client.fsck(path, opts).await?;
        if let Some(b) = report.files.first().and_then(|f| f.blocks.first()) {
            break b.generation_stamp;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{path}: fsck lists no block of the open file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The writer pauses for ~3 socket timeouts, twice.
    let pause = Duration::from_millis(3 * SOCKET_TIMEOUT_MS);
    tokio::time::sleep(pause).await;
    w.write(&data[100_000..200_000]).await?;
    tokio::time::sleep(pause).await;
    w.write(&data[200_000..]).await?;
    assert_eq!(w.close().await?, data.len() as u64);

    let report = client.fsck(path, opts).await?;
    let blocks: Vec<_> = report.files.iter().flat_map(|f| f.blocks.iter()).collect();
    assert_eq!(blocks.len(), 1, "{report:?}");
    assert_eq!(blocks[0].generation_stamp, stamp, "the block was recovered: its generation stamp changed");
    assert_eq!((blocks[0].length, blocks[0].live_replicas), (data.len() as u64, 3), "{report:?}");
    let back = client.read_all(path).await?;
    assert!(back.as_ref() == data.as_slice(), "the file differs after the pauses");
    Ok(())
}
