//! Short-circuit local reads against a real cluster: every datanode runs on
//! this host with a domain socket, so reads take the local path unless it is
//! turned off, and the bytes are the same either way. Corrupt replica files
//! are caught by the client's own checksum verification.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use tusk_client::{Client, ClientConfig, ClientError, CreateOptions};
use tusk_tests::{TestCluster, test_bytes};

const BLOCK: u64 = 256 * 1024;

async fn client(cluster: &TestCluster, short_circuit: bool) -> anyhow::Result<Client> {
    let mut config = ClientConfig::new(cluster.namenode.clone());
    config.short_circuit = short_circuit;
    Ok(Client::connect(config).await?)
}

/// Data files of every finalized replica in the cluster (not the `.meta` files).
fn replica_data_files(cluster: &TestCluster) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if let Some(name) = p.file_name().and_then(|n| n.to_str())
                && name.starts_with("blk_")
                && !name.ends_with(".meta")
                && p.components().any(|c| c.as_os_str() == "finalized")
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&cluster.dir().join("data"), &mut out);
    out.sort();
    out
}

fn flip_byte(file: &Path, offset: u64) {
    let f = std::fs::OpenOptions::new().read(true).write(true).open(file).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], offset).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_reads_use_the_domain_socket_and_match_tcp_reads() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().block_size(BLOCK).start()?;
    for i in 0..3 {
        assert!(cluster.dir().join(format!("run/datanode-{i}.sock")).exists(), "datanode-{i} has no socket");
    }
    let local = client(&cluster, true).await?;
    let tcp = client(&cluster, false).await?;
    let b = BLOCK as usize;
    let data = test_bytes(b * 3 + 12_345, 11);
    local.write_all("/sc", &data, false).await?;

    // Sequential reads, through the local files.
    let mut r = local.open("/sc").await?;
    let back = r.read_to_end().await?;
    assert!(back.as_ref() == data.as_slice(), "short-circuit read differs");
    assert!(r.short_circuit_reads() >= 4, "{} short-circuit reads", r.short_circuit_reads());
    // Ranges: inside a block, across boundaries, unaligned, at the end.
    let r = local.open("/sc").await?;
    for (off, len) in [(0, 10), (1000, 3000), (b - 5, 10), (b * 2 - 100, b + 200), (data.len() - 1, 1), (513, 511)] {
        let got = r.read_range(off as u64, len as u64).await?;
        assert!(got.as_ref() == &data[off..off + len], "short-circuit range {off}+{len}");
    }
    assert!(r.short_circuit_reads() >= 6);

    // The same bytes over TCP, with the local path turned off.
    let mut r = tcp.open("/sc").await?;
    assert!(r.read_to_end().await?.as_ref() == data.as_slice(), "TCP read differs");
    let got = r.read_range(b as u64 - 7, 20).await?;
    assert!(got.as_ref() == &data[b - 7..b + 13]);
    assert_eq!(r.short_circuit_reads(), 0, "short_circuit = false must read over TCP");

    // Sizes around block boundaries round-trip on both paths.
    for (i, size) in [1, b - 1, b, b + 1].into_iter().enumerate() {
        let data = test_bytes(size, 100 + i as u64);
        let path = format!("/sizes/f{size}");
        let mut w = local.create(&path, CreateOptions { create_parent: true, ..Default::default() }).await?;
        w.write(&data).await?;
        w.close().await?;
        for c in [&local, &tcp] {
            let mut r = c.open(&path).await?;
            assert!(r.read_to_end().await?.as_ref() == data.as_slice(), "{path}: bytes differ");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_local_replicas_are_caught_and_skipped() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().block_size(BLOCK).start()?;
    let local = client(&cluster, true).await?;
    let data = test_bytes(BLOCK as usize / 2 + 100, 5);
    local.write_all("/one-block", &data, false).await?;
    let files = replica_data_files(&cluster);
    assert_eq!(files.len(), 3, "{files:?}");

    // Two of three replicas corrupt: whichever replica a reader tries first,
    // it ends with the right bytes, read locally from the good one.
    flip_byte(&files[0], 1000);
    flip_byte(&files[1], 70_000);
    for _ in 0..6 {
        let mut r = local.open("/one-block").await?;
        let back = r.read_to_end().await?;
        assert!(back.as_ref() == data.as_slice(), "corrupt bytes reached the reader");
        assert!(r.short_circuit_reads() >= 1, "the good replica is local too");
        let r = local.open("/one-block").await?;
        assert!(r.read_range(990, 20).await?.as_ref() == &data[990..1010]);
    }

    // Every replica corrupt: the local path verifies, marks each replica bad
    // and moves on, and the read fails with a checksum error naming all three.
    flip_byte(&files[2], 5);
    let mut r = local.open("/one-block").await?;
    match r.read_to_end().await {
        Err(ClientError::Checksum { datanode, .. }) => {
            assert_eq!(datanode.split(", ").count(), 3, "{datanode}");
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert_eq!(r.short_circuit_reads(), 0);
    Ok(())
}
