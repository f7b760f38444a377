//! Issue 6: bad SQL gets a clear error naming the problem and its position,
//! and leaves the catalog and the data as they were.

use tusk_tests::TestCluster;
#[path = "support/sql.rs"]
mod sql;
use sql::{exec, fails, query, table};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_statements_fail_cleanly() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(1).workers(0).replication(1).start()?;
    let client = cluster.client().await?;
    let mut s = sql::session(&cluster).await?;
    exec(&mut s, "CREATE TABLE sales (id INT, item STRING) PARTITIONED BY (dt STRING) STORED AS PARQUET").await?;
    exec(&mut s, "INSERT INTO sales PARTITION (dt='d1') VALUES (1, 'a')").await?;
    let before = client.list("/user/hive/warehouse/sales/dt=d1").await?;

    // Malformed SQL: the position of the problem.
    let e = fails(&mut s, "SELECT id FROM sales WHERE").await;
    assert!(e.starts_with("line 1, column 27:"), "{e}");
    let e = fails(&mut s, "SELECT id\nFROM sales WHER id = 1").await;
    assert!(e.starts_with("line 2, column "), "{e}");
    // Unknown table and column.
    let e = fails(&mut s, "SELECT * FROM nope").await;
    assert_eq!(e, "line 1, column 15: table not found: default.nope");
    let e = fails(&mut s, "SELECT * FROM other.nope").await;
    assert!(e.contains("table not found: other.nope"), "{e}");
    let e = fails(&mut s, "SELECT id, x FROM sales").await;
    assert!(e.contains("line 1, column 12") && e.contains("unknown column 'x'") && e.contains("sales"), "{e}");
    // Type errors.
    let e = fails(&mut s, "SELECT id FROM sales WHERE item").await;
    assert!(e.contains("non-boolean") && e.contains("item"), "{e}");
    let e = fails(&mut s, "SELECT id FROM sales WHERE id = ARRAY[1]").await;
    assert!(e.contains("Int32") && e.contains("List"), "{e}");
    // INSERT with the wrong number of columns.
    let e = fails(&mut s, "INSERT INTO sales PARTITION (dt='d2') SELECT 1").await;
    assert!(e.contains("the query gives 1 column, the table expects 2 (id, item)"), "{e}");
    let e = fails(&mut s, "INSERT INTO sales PARTITION (nope='x') SELECT 1, 'b'").await;
    assert!(e.contains("nope is not a partition column of default.sales"), "{e}");
    // External table over a missing LOCATION.
    let e = fails(&mut s, "CREATE EXTERNAL TABLE ext (a INT) LOCATION '/no/such/dir'").await;
    assert!(e.contains("/no/such/dir") && e.contains("does not exist"), "{e}");
    // Unknown type, unsupported format.
    let e = fails(&mut s, "CREATE TABLE bad (a FLOATY)").await;
    assert!(e.to_lowercase().contains("type"), "{e}");
    let e = fails(&mut s, "CREATE TABLE bad (a INT) STORED AS ORC").await;
    assert!(e.contains("ORC"), "{e}");
    // Nothing changed.
    assert_eq!(query(&mut s, "SHOW TABLES").await?, table(&[&["sales"]]));
    assert_eq!(query(&mut s, "SHOW PARTITIONS sales").await?, table(&[&["dt=d1"]]));
    assert_eq!(client.list("/user/hive/warehouse/sales/dt=d1").await?.len(), before.len());
    assert!(client.try_stat("/user/hive/warehouse/sales/dt=d2").await?.is_none());
    let all = client.list("/user/hive/warehouse/sales").await?;
    assert_eq!(all.len(), 1, "staging left behind: {all:?}");
    assert_eq!(query(&mut s, "SELECT id, item, dt FROM sales").await?, table(&[&["1", "a", "d1"]]));
    Ok(())
}
