//! Concurrent writers and readers on different files; one writer per file.

use tusk_client::{CreateOptions, ErrorKind};
use tusk_tests::{TestCluster, test_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_readers_on_different_files() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().block_size(128 * 1024).start()?;
    let client = cluster.client().await?;
    client.mkdirs("/conc", None, true).await?;
    // A file being read while others are written.
    let base = test_bytes(400_000, 99);
    client.write_all("/conc/base", &base, false).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6u64 {
        let c = cluster.client().await?;
        tasks.spawn(async move {
            let data = test_bytes(150_000 + 33_333 * i as usize, i);
            let path = format!("/conc/w{i}");
            let mut w = c.create(&path, CreateOptions::default()).await?;
            for piece in data.chunks(20_000) {
                w.write(piece).await?;
            }
            w.close().await?;
            let back = c.read_all(&path).await?;
            anyhow::ensure!(back.as_ref() == data.as_slice(), "{path} differs");
            anyhow::Ok(())
        });
    }
    for _ in 0..3 {
        let c = cluster.client().await?;
        let base = base.clone();
        tasks.spawn(async move {
            for _ in 0..3 {
                let back = c.read_all("/conc/base").await?;
                anyhow::ensure!(back.as_ref() == base.as_slice(), "/conc/base differs");
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_is_refused() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().start()?;
    let first = cluster.client().await?;
    let second = cluster.client().await?;
    let mut w = first.create("/one-writer", CreateOptions::default()).await?;
    w.write(b"first writer's bytes").await?;
    let err = match second.create("/one-writer", CreateOptions { overwrite: true, ..Default::default() }).await {
        Ok(_) => panic!("a second writer was allowed"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), Some(ErrorKind::LeaseConflict), "{err}");
    assert!(err.to_string().contains("/one-writer"), "{err}");
    // The first writer is unaffected.
    w.write(b" and more").await?;
    w.close().await?;
    assert_eq!(first.read_all("/one-writer").await?.as_ref(), b"first writer's bytes and more");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_enforced_for_other_users() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().start()?;
    let admin = cluster.client().await?;
    admin.mkdirs("/private", Some(0o750), true).await?;
    admin.write_all("/private/secret", b"s3cr3t", false).await?;
    let bob = cluster.client_as("bob").await?;
    let err = bob.list("/private").await.expect_err("bob listed /private");
    assert_eq!(err.kind(), Some(ErrorKind::PermissionDenied), "{err}");
    let err = bob.create("/private/bob", CreateOptions::default()).await.err().expect("bob wrote into /private");
    assert_eq!(err.kind(), Some(ErrorKind::PermissionDenied), "{err}");
    assert!(err.to_string().contains("bob"), "{err}");
    // A world-writable directory lets bob in, and bob owns what he creates.
    admin.mkdirs("/shared", Some(0o777), true).await?;
    bob.write_all("/shared/bob.txt", b"hi", false).await?;
    let st = admin.stat("/shared/bob.txt").await?;
    assert_eq!(st.owner, "bob");
    Ok(())
}
