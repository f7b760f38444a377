//! Issue 6: HiveQL DDL and DML round trips through a real cluster (namenode,
//! datanode, jobtracker hosting the metastore).

use tusk_tests::TestCluster;
#[path = "support/sql.rs"]
mod sql;
use sql::{exec, fails, query, table};

fn cluster() -> anyhow::Result<TestCluster> {
    TestCluster::builder().datanodes(1).workers(0).replication(1).start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_tables_insert_select() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let mut s = sql::session(&cluster).await?;
    exec(&mut s, "CREATE DATABASE shop").await?;
    exec(&mut s, "CREATE DATABASE IF NOT EXISTS shop").await?;
    assert!(fails(&mut s, "CREATE DATABASE shop").await.contains("database already exists: shop"));
    assert_eq!(query(&mut s, "SHOW DATABASES").await?, table(&[&["default"], &["shop"]]));
    exec(&mut s, "USE shop").await?;
    exec(&mut s, "CREATE TABLE sales (id INT, item STRING, price DECIMAL(10,2)) STORED AS PARQUET").await?;
    let client = cluster.client().await?;
    assert!(client.try_stat("/user/hive/warehouse/shop.db/sales").await?.is_some(), "managed table directory");
    exec(&mut s, "INSERT INTO sales VALUES (1, 'apple', 1.50), (2, 'pear', 2.25)").await?;
    exec(&mut s, "INSERT INTO TABLE sales SELECT 3, 'fig', 4.00").await?;
    // Table functions are not catalog tables.
    assert_eq!(query(&mut s, "SELECT count(*) FROM generate_series(1, 10)").await?, table(&[&["10"]]));
    assert_eq!(
        query(&mut s, "SELECT id, item, price FROM sales ORDER BY id").await?,
        table(&[&["1", "apple", "1.50"], &["2", "pear", "2.25"], &["3", "fig", "4.00"]])
    );
    assert_eq!(query(&mut s, "SHOW TABLES").await?, table(&[&["sales"]]));
    assert_eq!(query(&mut s, "SHOW TABLES IN default").await?, Vec::<Vec<String>>::new());
    let d = query(&mut s, "DESCRIBE sales").await?;
    assert_eq!(d, table(&[&["id", "int", ""], &["item", "string", ""], &["price", "decimal(10,2)", ""]]));
    let f = query(&mut s, "DESCRIBE FORMATTED shop.sales").await?;
    assert!(f.iter().any(|r| r[0] == "Table Type:" && r[1] == "MANAGED_TABLE"), "{f:?}");
    assert!(f.iter().any(|r| r[0] == "Location:" && r[1] == "/user/hive/warehouse/shop.db/sales"), "{f:?}");
    let c = query(&mut s, "SHOW CREATE TABLE sales").await?;
    assert!(c[0][0].contains("STORED AS PARQUET") && c[0][0].contains("`price` DECIMAL(10,2)"), "{c:?}");
    // INSERT OVERWRITE replaces the data.
    exec(&mut s, "INSERT OVERWRITE TABLE sales SELECT id + 10, item, price FROM sales WHERE id < 3").await?;
    assert_eq!(query(&mut s, "SELECT id FROM sales ORDER BY id").await?, table(&[&["11"], &["12"]]));
    // CTAS into Parquet and TEXTFILE.
    exec(&mut s, "CREATE TABLE cheap STORED AS PARQUET AS SELECT item, price * 2 AS double_price FROM sales WHERE price < 2").await?;
    assert_eq!(query(&mut s, "SELECT * FROM cheap").await?, table(&[&["apple", "3.00"]]));
    let d = query(&mut s, "DESCRIBE cheap").await?;
    assert_eq!(d[0], ["item", "string", ""]);
    // TRUNCATE, RENAME, DROP.
    exec(&mut s, "TRUNCATE TABLE cheap").await?;
    assert!(query(&mut s, "SELECT * FROM cheap").await?.is_empty());
    exec(&mut s, "ALTER TABLE cheap RENAME TO bargains").await?;
    assert!(client.try_stat("/user/hive/warehouse/shop.db/bargains").await?.is_some());
    assert!(client.try_stat("/user/hive/warehouse/shop.db/cheap").await?.is_none());
    exec(&mut s, "DROP TABLE bargains").await?;
    exec(&mut s, "DROP TABLE IF EXISTS bargains").await?;
    assert!(client.try_stat("/user/hive/warehouse/shop.db/bargains").await?.is_none(), "managed data deleted");
    assert!(fails(&mut s, "DROP DATABASE shop").await.contains("not empty"));
    exec(&mut s, "USE default").await?;
    exec(&mut s, "DROP DATABASE shop CASCADE").await?;
    assert_eq!(query(&mut s, "SHOW DATABASES").await?, table(&[&["default"]]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn textfile_over_existing_files_and_drop_semantics() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let client = cluster.client().await?;
    client.write_all("/data/people/part-1", b"1|ann|34\n2|bob|\\N\n", false).await?;
    client.write_all("/data/people/part-2", b"3|cy|51\n", false).await?;
    client.write_all("/data/people/_SUCCESS", b"", false).await?;
    client.write_all("/data/people/.hidden", b"not|a|row\n", false).await?;
    let mut s = sql::session(&cluster).await?;
    exec(
        &mut s,
        "CREATE EXTERNAL TABLE people (id INT, name STRING, age INT)
         ROW FORMAT DELIMITED FIELDS TERMINATED BY '|' STORED AS TEXTFILE LOCATION '/data/people'",
    )
    .await?;
    assert_eq!(
        query(&mut s, "SELECT id, name, age FROM people ORDER BY id").await?,
        table(&[&["1", "ann", "34"], &["2", "bob", "NULL"], &["3", "cy", "51"]])
    );
    assert_eq!(query(&mut s, "SELECT count(*), sum(age) FROM people").await?, table(&[&["3", "85"]]));
    // Writing into a TEXTFILE table uses its delimiter and \N for NULL.
    exec(&mut s, "INSERT INTO people VALUES (4, 'dee', NULL)").await?;
    let files = client.list("/data/people").await?;
    let new = files.iter().find(|f| f.path.contains("part-") && !f.path.ends_with("part-1") && !f.path.ends_with("part-2"));
    let new = new.ok_or_else(|| anyhow::anyhow!("no new file in {files:?}"))?;
    assert_eq!(&client.read_all(&new.path).await?[..], b"4|dee|\\N\n");
    // DROP of an external table keeps its files; of a managed one deletes them.
    exec(&mut s, "DROP TABLE people").await?;
    assert!(fails(&mut s, "SELECT * FROM people").await.contains("table not found: default.people"));
    assert_eq!(&client.read_all("/data/people/part-1").await?[..], b"1|ann|34\n2|bob|\\N\n");
    exec(&mut s, "CREATE TABLE managed (a INT) STORED AS JSON").await?;
    exec(&mut s, "INSERT INTO managed VALUES (7)").await?;
    assert_eq!(query(&mut s, "SELECT a FROM managed").await?, table(&[&["7"]]));
    assert!(client.try_stat("/user/hive/warehouse/managed").await?.is_some());
    exec(&mut s, "DROP TABLE managed").await?;
    assert!(client.try_stat("/user/hive/warehouse/managed").await?.is_none(), "managed data kept after DROP");
    // CSV with a header line.
    client.write_all("/data/csv/a.csv", b"k,v\nx,1\ny,2\n", false).await?;
    exec(
        &mut s,
        "CREATE EXTERNAL TABLE kv (k STRING, v BIGINT) STORED AS CSV LOCATION '/data/csv'
         TBLPROPERTIES ('skip.header.line.count'='1')",
    )
    .await?;
    assert_eq!(query(&mut s, "SELECT k, v FROM kv ORDER BY k").await?, table(&[&["x", "1"], &["y", "2"]]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_survives_jobtracker_restart() -> anyhow::Result<()> {
    let cluster = cluster()?;
    {
        let mut s = sql::session(&cluster).await?;
        exec(&mut s, "CREATE DATABASE kept").await?;
        exec(&mut s, "CREATE TABLE kept.t (a INT, b STRING) PARTITIONED BY (dt STRING) STORED AS PARQUET").await?;
        exec(&mut s, "INSERT INTO kept.t PARTITION (dt='2024-01-01') VALUES (1, 'x')").await?;
    }
    cluster.restart("jobtracker-0")?;
    let mut s = sql::session(&cluster).await?;
    assert_eq!(query(&mut s, "SHOW DATABASES").await?, table(&[&["default"], &["kept"]]));
    assert_eq!(query(&mut s, "SHOW PARTITIONS kept.t").await?, table(&[&["dt=2024-01-01"]]));
    assert_eq!(query(&mut s, "SELECT a, b, dt FROM kept.t").await?, table(&[&["1", "x", "2024-01-01"]]));
    Ok(())
}
