//! Issue 4, test 3: the namenode is killed with SIGKILL while several
//! clients create, rename and delete in a loop. After the restart every
//! operation that returned success is there, none that the namenode refused
//! is, and fsck finds the namespace healthy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tusk_client::{Client, ClientError, CreateOptions};
use tusk_tests::{TestCluster, eventually, test_bytes};

/// What the test knows of a path after the run.
#[derive(Debug, Clone, PartialEq)]
enum Fate {
    /// Acknowledged: must exist with these bytes (None: a directory).
    Present(Option<Vec<u8>>),
    /// Removed or refused: must not exist.
    Absent,
    /// The answer was lost with the namenode: either way is fine.
    Unknown,
}

/// A refusal by the namenode (the operation did not happen), as opposed
/// to a lost connection (it may have happened).
fn refused(e: &ClientError) -> bool {
    e.kind().is_some()
}

async fn write(client: &Client, path: &str, data: &[u8]) -> Result<(), ClientError> {
    let mut w = client.create(path, CreateOptions::default()).await?;
    w.write(data).await?;
    w.close().await.map(|_| ())
}

/// One client's loop; returns the fate of every path it touched.
async fn churn(client: Client, c: usize, iterations: usize, done: Arc<AtomicUsize>) -> BTreeMap<String, Fate> {
    let mut fates = BTreeMap::new();
    for i in 0..iterations {
        let f = format!("/churn/c{c}/f{i}");
        let g = format!("/churn/c{c}/g{i}");
        let data = test_bytes(100 + i * 7, (c * 1000 + i) as u64);
        let mut failed = false;
        match write(&client, &f, &data).await {
            Ok(()) => {
                fates.insert(f.clone(), Fate::Present(Some(data.clone())));
            }
            Err(e) => {
                // A create refused by the namenode may still have left nothing; a
                // failed close leaves the file open: either way its fate is unsure.
                fates.insert(f.clone(), Fate::Unknown);
                eprintln!("{f}: {e}");
                failed = true;
            }
        }
        if !failed {
            match client.rename(&f, &g, false).await {
                Ok(()) => {
                    fates.insert(f.clone(), Fate::Absent);
                    fates.insert(g.clone(), Fate::Present(Some(data)));
                }
                Err(e) if refused(&e) => {
                    fates.insert(g.clone(), Fate::Absent);
                    failed = true;
                }
                Err(_) => {
                    fates.insert(f.clone(), Fate::Unknown);
                    fates.insert(g.clone(), Fate::Unknown);
                    failed = true;
                }
            }
        }
        if !failed && i % 2 == 0 {
            match client.delete(&g, false).await {
                Ok(true) => {
                    fates.insert(g.clone(), Fate::Absent);
                }
                Ok(false) => panic!("{g}: delete of an acknowledged file found nothing"),
                Err(e) if refused(&e) => {}
                Err(_) => {
                    fates.insert(g.clone(), Fate::Unknown);
                }
            }
        }
        // Always refused: a directory under a file (or under nothing).
        let bad = format!("/churn/c{c}/f{i}/sub");
        match client.mkdirs(&bad, None, false).await {
            Ok(()) => panic!("{bad}: mkdirs under a file succeeded"),
            Err(e) if refused(&e) => {
                fates.insert(bad, Fate::Absent);
            }
            Err(_) => {
                fates.insert(bad, Fate::Unknown);
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
        if failed {
            // The namenode is down or in safe mode: wait until it takes writes again.
            let _ = eventually(Duration::from_secs(60), || async {
                client.mkdirs(&format!("/churn/c{c}"), None, true).await.is_ok()
            })
            .await;
        }
    }
    fates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namenode_killed_mid_churn_keeps_acknowledged_ops_and_fsck_is_healthy() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().block_size(64 * 1024).start()?;
    let setup = cluster.client().await?;
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..4 {
        setup.mkdirs(&format!("/churn/c{c}"), None, true).await?;
        let client = cluster.client().await?;
        let done = done.clone();
        tasks.spawn(churn(client, c, 60, done));
    }
    // Kill in the middle of the churn.
    eventually(Duration::from_secs(60), || {
        let done = done.clone();
        async move { done.load(Ordering::Relaxed) >= 60 }
    })
    .await?;
    cluster.kill9("namenode-0")?;
    cluster.restart("namenode-0")?;
    let mut fates = BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        fates.extend(r?);
    }
    let client = cluster.client().await?;
    let (mut present, mut absent) = (0, 0);
    for (path, fate) in &fates {
        match fate {
            Fate::Present(Some(data)) => {
                let back = client.read_all(path).await.map_err(|e| anyhow::anyhow!("{path} lost: {e}"))?;
                assert!(back.as_ref() == data.as_slice(), "{path}: bytes differ");
                present += 1;
            }
            Fate::Present(None) => assert!(client.stat(path).await?.is_dir, "{path}"),
            Fate::Absent => {
                assert!(client.try_stat(path).await?.is_none(), "{path} exists but its operation failed or was undone");
                absent += 1;
            }
            Fate::Unknown => {}
        }
    }
    assert!(present >= 60 && absent >= 60, "too little was checked: {present} present, {absent} absent");
    // Files left open by interrupted writers do not make fsck unhealthy.
    let report = client.fsck("/", tusk_client::FsckOptions::default()).await?;
    assert!(report.is_healthy(), "{report:?}");
    assert_eq!(report.summary.corrupt_blocks, 0);
    assert_eq!(report.summary.missing_blocks, 0);
    let out = cluster.dfs(&["fsck", "/"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is HEALTHY"));
    Ok(())
}
