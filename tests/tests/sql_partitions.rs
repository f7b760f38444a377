//! Issue 6: partitioned tables: dynamic and static partition INSERTs,
//! OVERWRITE of only the written partitions, pruning (checked on the files a
//! scan reads), SHOW PARTITIONS, ALTER TABLE ADD/DROP PARTITION, MSCK REPAIR
//! and LOAD DATA.

use tusk_tests::TestCluster;
#[path = "support/sql.rs"]
mod sql;
use sql::{exec, fails, query, table};

/// The files the physical plan of `sql` reads (from EXPLAIN).
async fn files_read(s: &mut tusk_sql::Session, sql: &str) -> anyhow::Result<String> {
    let plan = query(s, &format!("EXPLAIN {sql}")).await?;
    let physical = plan.iter().find(|r| r[0] == "physical_plan").map(|r| r[1].clone()).unwrap_or_default();
    Ok(physical)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_partitions_pruning_and_partition_ddl() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(1).workers(0).replication(1).start()?;
    let client = cluster.client().await?;
    let mut s = sql::session(&cluster).await?;
    exec(&mut s, "CREATE TABLE src (id INT, amount BIGINT, day STRING) STORED AS PARQUET").await?;
    exec(
        &mut s,
        "INSERT INTO src VALUES (1, 10, '2024-01-01'), (2, 20, '2024-01-01'), (3, 30, '2024-01-02'), (4, 40, '2024-01-03'), (5, 50, NULL)",
    )
    .await?;
    exec(&mut s, "CREATE TABLE sales (id INT, amount BIGINT) PARTITIONED BY (dt STRING) STORED AS PARQUET").await?;
    exec(&mut s, "SET hive.exec.dynamic.partition.mode=nonstrict").await?;
    exec(&mut s, "INSERT INTO TABLE sales PARTITION (dt) SELECT id, amount, day FROM src").await?;
    assert_eq!(
        query(&mut s, "SHOW PARTITIONS sales").await?,
        table(&[&["dt=2024-01-01"], &["dt=2024-01-02"], &["dt=2024-01-03"], &["dt=__HIVE_DEFAULT_PARTITION__"]])
    );
    for d in ["2024-01-01", "2024-01-02", "2024-01-03"] {
        let listing = client.list(&format!("/user/hive/warehouse/sales/dt={d}")).await?;
        assert_eq!(listing.len(), 1, "one file per partition: {listing:?}");
    }
    assert_eq!(
        query(&mut s, "SELECT id, amount, dt FROM sales WHERE dt = '2024-01-01' ORDER BY id").await?,
        table(&[&["1", "10", "2024-01-01"], &["2", "20", "2024-01-01"]])
    );
    assert_eq!(query(&mut s, "SELECT id FROM sales WHERE dt IS NULL").await?, table(&[&["5"]]));
    // Pruning: the scan reads only the matching partition's files.
    let plan = files_read(&mut s, "SELECT sum(amount) FROM sales WHERE dt = '2024-01-02'").await?;
    assert!(plan.contains("dt=2024-01-02"), "{plan}");
    assert!(!plan.contains("dt=2024-01-01") && !plan.contains("dt=2024-01-03"), "pruned partitions are read: {plan}");
    let plan = files_read(&mut s, "SELECT sum(amount) FROM sales WHERE dt >= '2024-01-02' AND amount > 0").await?;
    assert!(plan.contains("dt=2024-01-02") && plan.contains("dt=2024-01-03") && !plan.contains("dt=2024-01-01"), "{plan}");
    // OVERWRITE replaces only the partitions it writes.
    exec(&mut s, "INSERT OVERWRITE TABLE sales PARTITION (dt) SELECT 9, 90, '2024-01-02'").await?;
    assert_eq!(
        query(&mut s, "SELECT dt, sum(amount) FROM sales GROUP BY dt ORDER BY dt").await?,
        table(&[&["2024-01-01", "30"], &["2024-01-02", "90"], &["2024-01-03", "40"], &["NULL", "50"]])
    );
    // Static partition.
    exec(&mut s, "INSERT INTO sales PARTITION (dt='2024-02-01') SELECT id, amount FROM src WHERE id = 1").await?;
    assert_eq!(query(&mut s, "SELECT id, dt FROM sales WHERE dt = '2024-02-01'").await?, table(&[&["1", "2024-02-01"]]));
    // ALTER TABLE ADD/DROP PARTITION.
    exec(&mut s, "ALTER TABLE sales ADD PARTITION (dt='2024-03-01')").await?;
    assert!(client.try_stat("/user/hive/warehouse/sales/dt=2024-03-01").await?.is_some());
    assert!(fails(&mut s, "ALTER TABLE sales ADD PARTITION (dt='2024-03-01')").await.contains("already exists"));
    exec(&mut s, "ALTER TABLE sales ADD IF NOT EXISTS PARTITION (dt='2024-03-01')").await?;
    exec(&mut s, "ALTER TABLE sales DROP PARTITION (dt='2024-01-01')").await?;
    assert!(client.try_stat("/user/hive/warehouse/sales/dt=2024-01-01").await?.is_none(), "managed partition data deleted");
    assert!(fails(&mut s, "ALTER TABLE sales ADD PARTITION (region='eu')").await.contains("region is not a partition column"));
    // MSCK REPAIR finds a directory written behind the catalog's back.
    exec(&mut s, "CREATE TABLE extra (id INT, amount BIGINT) PARTITIONED BY (dt STRING) STORED AS PARQUET").await?;
    exec(&mut s, "INSERT INTO extra PARTITION (dt='x') VALUES (7, 70)").await?;
    client.rename("/user/hive/warehouse/extra/dt=x", "/user/hive/warehouse/sales/dt=2024-04-01", false).await?;
    assert!(query(&mut s, "SELECT id FROM sales WHERE dt = '2024-04-01'").await?.is_empty(), "unregistered partition read");
    exec(&mut s, "MSCK REPAIR TABLE sales").await?;
    assert_eq!(query(&mut s, "SELECT id FROM sales WHERE dt = '2024-04-01'").await?, table(&[&["7"]]));
    assert!(query(&mut s, "SHOW PARTITIONS sales PARTITION (dt='2024-04-01')").await?.len() == 1);
    // LOAD DATA moves files into a partition.
    exec(&mut s, "CREATE TABLE logs (line STRING) PARTITIONED BY (day STRING)").await?;
    client.write_all("/incoming/a.log", b"hello\nworld\n", false).await?;
    exec(&mut s, "LOAD DATA INPATH '/incoming/a.log' INTO TABLE logs PARTITION (day='mon')").await?;
    assert!(client.try_stat("/incoming/a.log").await?.is_none(), "LOAD DATA moves the file");
    assert_eq!(query(&mut s, "SELECT line, day FROM logs ORDER BY line").await?, table(&[&["hello", "mon"], &["world", "mon"]]));
    let local = tempfile::tempdir()?;
    std::fs::write(local.path().join("b.log"), "again\n")?;
    let path = local.path().join("b.log");
    exec(&mut s, &format!("LOAD DATA LOCAL INPATH '{}' OVERWRITE INTO TABLE logs PARTITION (day='mon')", path.display())).await?;
    assert_eq!(query(&mut s, "SELECT line FROM logs").await?, table(&[&["again"]]));
    assert!(path.exists(), "LOAD DATA LOCAL copies");
    Ok(())
}
