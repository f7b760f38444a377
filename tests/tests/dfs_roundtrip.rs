//! Files of awkward sizes go in and come out byte-identical, through the
//! library and through `tusk dfs put/get/cat`.

use tusk_client::CreateOptions;
use tusk_tests::{TestCluster, test_bytes};

const BLOCK: u64 = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_around_block_boundaries_round_trip() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().block_size(BLOCK).start()?;
    let client = cluster.client().await?;
    client.mkdirs("/rt", None, true).await?;
    let b = BLOCK as usize;
    for (i, size) in [0, 1, b - 1, b, b + 1, b * 7 / 2].into_iter().enumerate() {
        let data = test_bytes(size, i as u64);
        let path = format!("/rt/f{size}");
        let mut w = client.create(&path, CreateOptions::default()).await?;
        // Uneven write sizes exercise buffering across packets and blocks.
        for piece in data.chunks(10_007) {
            w.write(piece).await?;
        }
        assert_eq!(w.close().await?, size as u64);
        let st = client.stat(&path).await?;
        assert_eq!(st.length, size as u64, "{path}");
        assert!(!st.is_dir && !st.under_construction);
        let back = client.read_all(&path).await?;
        assert_eq!(back.len(), size, "{path}: length");
        assert!(back.as_ref() == data.as_slice(), "{path}: bytes differ");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeks_and_range_reads_return_the_right_bytes() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().block_size(BLOCK).start()?;
    let client = cluster.client().await?;
    let data = test_bytes(BLOCK as usize * 3 + 777, 42);
    client.write_all("/ranges", &data, false).await?;
    let mut r = client.open("/ranges").await?;
    assert_eq!(r.len(), data.len() as u64);
    // Ranges inside a block, across a block boundary, unaligned, and at the end.
    let b = BLOCK as usize;
    for (off, len) in [(0, 10), (1000, 3000), (b - 5, 10), (b * 2 - 100, b + 200), (data.len() - 1, 1), (513, 511)] {
        let got = r.read_range(off as u64, len as u64).await?;
        assert!(got.as_ref() == &data[off..off + len], "range {off}+{len}");
    }
    r.seek(b as u64 + 3).await?;
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while got.len() < 100_000 {
        let n = r.read(&mut buf).await?;
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got[..100_000] == data[b + 3..b + 3 + 100_000], "after seek");
    assert_eq!(r.position(), (b + 3 + got.len()) as u64);
    assert!(r.seek(data.len() as u64 + 1).await.is_err(), "seek past the end");
    assert!(r.read_range(data.len() as u64 - 1, 2).await.is_err(), "range past the end");
    Ok(())
}

#[test]
fn cli_put_get_cat_are_byte_identical() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().block_size(BLOCK).start()?;
    let local = tempfile::tempdir()?;
    let data = test_bytes(BLOCK as usize * 7 / 2, 7);
    let src = local.path().join("input.bin");
    std::fs::write(&src, &data)?;
    cluster.dfs_ok(&["mkdir", "-p", "/cli"]);
    cluster.dfs_ok(&["put", src.to_str().unwrap(), "/cli/"]);
    let dst = local.path().join("back.bin");
    cluster.dfs_ok(&["get", "/cli/input.bin", dst.to_str().unwrap()]);
    assert!(std::fs::read(&dst)? == data, "get returned different bytes");
    let out = cluster.dfs(&["cat", "/cli/input.bin"]);
    assert!(out.status.success());
    assert!(out.stdout == data, "cat returned different bytes");
    // No temporary upload name is left behind.
    let ls = cluster.dfs_ok(&["ls", "/cli"]);
    assert!(ls.contains("/cli/input.bin") && !ls.contains("_COPYING_"), "{ls}");
    Ok(())
}
