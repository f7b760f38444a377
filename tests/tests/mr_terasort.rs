//! Issue 5: teragen → terasort → teravalidate. The sampled range
//! partitioner makes the concatenated reducer outputs globally sorted.

use tusk_tests::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teragen_terasort_teravalidate() -> anyhow::Result<()> {
    // 1.5M rows = 150 MB, in 32 MiB blocks.
    let rows: u64 = 1_500_000;
    let cluster = TestCluster::builder().datanodes(3).workers(3).replication(1).block_size(32 << 20).start()?;
    cluster.job_ok(&["run", "teragen", &rows.to_string(), "/tera/in", "--maps", "4"]);
    cluster.job_ok(&["run", "terasort", "/tera/in", "/tera/out", "--reduces", "3"]);
    let sorted = cluster.job_output("/tera/out").await?;
    assert_eq!(sorted.len() as u64, rows * 100);
    // Every key (first 10 bytes of each record) in order across all parts.
    let keys: Vec<&[u8]> = sorted.chunks(100).map(|r| &r[..10]).collect();
    let misordered = keys.windows(2).filter(|w| w[0] > w[1]).count();
    assert_eq!(misordered, 0, "terasort output is not globally sorted");

    cluster.job_ok(&["run", "teravalidate", "/tera/out", "/tera/report"]);
    let report = String::from_utf8(cluster.job_output("/tera/report").await?)?;
    assert!(!report.contains("error"), "teravalidate found problems:\n{report}");
    assert!(report.contains("checksum"), "{report}");
    assert!(report.contains(&rows.to_string()), "row count missing from {report}");

    // teravalidate catches a file that is out of order.
    let client = cluster.client().await?;
    // The first 1000 records, the first replaced by the last (a larger key).
    let mut bad = sorted[..100 * 1000].to_vec();
    bad[..100].copy_from_slice(&sorted[100 * 999..100 * 1000]);
    client.write_all("/tera/bad/part-r-00000", &bad, false).await?;
    cluster.job_ok(&["run", "teravalidate", "/tera/bad", "/tera/badreport"]);
    let report = String::from_utf8(cluster.job_output("/tera/badreport").await?)?;
    assert!(report.contains("error"), "a misordered file passed teravalidate:\n{report}");
    Ok(())
}
