//! Issue 6: the metastore (a role of the jobtracker) keeps the Hive-style
//! catalog across restarts and does the DFS side of every change: managed
//! directories, commits of query output (INTO, OVERWRITE, CTAS), LOAD DATA,
//! TRUNCATE, RENAME, MSCK REPAIR, and a commit interrupted halfway finished
//! in the background.

use std::time::Duration;

use tusk_client::{Client, ErrorKind, MetastoreClient};
use tusk_proto::metastore::{Column, CommitWriteRequest, Database, Partition, PartitionSpec, Table, TableRef};
use tusk_tests::TestCluster;

const WH: &str = "/user/hive/warehouse";

fn cluster() -> anyhow::Result<TestCluster> {
    TestCluster::builder().datanodes(1).workers(0).replication(1).start()
}

async fn metastore(cluster: &TestCluster) -> anyhow::Result<MetastoreClient> {
    Ok(MetastoreClient::connect(cluster.jobtracker.clone()).await?)
}

fn col(name: &str, ty: &str) -> Column {
    Column { name: name.into(), data_type: ty.into(), comment: String::new() }
}

/// A managed Parquet table `db.name (a INT, b STRING)` partitioned by `parts`.
fn table(db: &str, name: &str, parts: &[&str]) -> Table {
    Table {
        db: db.into(),
        name: name.into(),
        columns: vec![col("a", "INT"), col("b", "STRING")],
        partition_columns: parts.iter().map(|p| col(p, "STRING")).collect(),
        format: "parquet".into(),
        ..Default::default()
    }
}

fn part(values: &[&str]) -> Partition {
    Partition { values: values.iter().map(|v| v.to_string()).collect(), ..Default::default() }
}

fn spec(pairs: &[(&str, &str)]) -> PartitionSpec {
    PartitionSpec {
        names: pairs.iter().map(|(k, _)| k.to_string()).collect(),
        values: pairs.iter().map(|(_, v)| v.to_string()).collect(),
    }
}

fn tref(db: &str, name: &str) -> TableRef {
    TableRef { db: db.into(), name: name.into() }
}

fn values(parts: &[Partition]) -> Vec<Vec<String>> {
    parts.iter().map(|p| p.values.clone()).collect()
}

/// Names in a DFS directory, sorted; none when it does not exist.
async fn ls(dfs: &Client, dir: &str) -> Vec<String> {
    let mut names: Vec<String> =
        dfs.list(dir).await.map(|l| l.into_iter().map(|s| s.name).collect()).unwrap_or_default();
    names.sort();
    names
}

async fn exists(dfs: &Client, path: &str) -> anyhow::Result<bool> {
    Ok(dfs.try_stat(path).await?.is_some())
}

async fn text(dfs: &Client, path: &str) -> anyhow::Result<String> {
    Ok(String::from_utf8(dfs.read_all(path).await?.to_vec())?)
}

fn commit(db: &str, name: &str, staging: &str, written: &[&[&str]], overwrite: bool) -> CommitWriteRequest {
    CommitWriteRequest {
        table: Some(tref(db, name)),
        staging_dir: staging.into(),
        written: written.iter().map(|v| part(v)).collect(),
        overwrite,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_survives_a_jobtracker_restart() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let dfs = cluster.client().await?;
    let ms = metastore(&cluster).await?;
    let default = ms.get_database("default").await?.expect("the default database");
    assert_eq!(default.location, WH);
    assert!(
        ms.create_database(Database { name: "Sales".into(), comment: "c".into(), ..Default::default() }, false).await?
    );
    assert!(!ms.create_database(Database { name: "sales".into(), ..Default::default() }, true).await?);
    let err = ms.create_database(Database { name: "sales".into(), ..Default::default() }, false).await.unwrap_err();
    assert_eq!(err.to_string(), "database already exists: sales");
    assert!(exists(&dfs, &format!("{WH}/sales.db")).await?, "the database directory was not created");

    let created = ms.create_table(table("sales", "orders", &["dt"]), false).await?;
    assert!(created.created);
    let t = created.table.expect("the stored table");
    assert_eq!(t.location, format!("{WH}/sales.db/orders"));
    assert!(t.created_ms > 0 && t.modified_ms == t.created_ms);
    assert!(exists(&dfs, &t.location).await?, "the managed directory was not created");
    let plain = ms.create_table(table("default", "plain", &[]), false).await?.table.expect("table");
    assert_eq!(plain.location, format!("{WH}/plain"), "default-database tables live in the warehouse root");

    let added = ms.add_partitions("sales", "orders", vec![part(&["2024-01-02"]), part(&["2024-01-01"])], false).await?;
    assert_eq!(added.len(), 2);
    assert!(exists(&dfs, &format!("{WH}/sales.db/orders/dt=2024-01-01")).await?);
    let err = ms.add_partitions("sales", "orders", vec![part(&["2024-01-01"])], false).await.unwrap_err();
    assert_eq!(err.to_string(), "partition already exists: sales.orders (dt=2024-01-01)");
    assert!(ms.add_partitions("sales", "orders", vec![part(&["2024-01-01"])], true).await?.is_empty());
    let err = ms.add_partitions("sales", "orders", vec![part(&["a", "b"])], false).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidArgument), "{err}");

    // Exact wording, as a SQL client prints it.
    let err = ms.create_table(table("sales", "orders", &[]), false).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string()),
        (Some(ErrorKind::AlreadyExists), "table already exists: sales.orders".into())
    );
    let err = ms.drop_table("sales", "nope", false).await.unwrap_err();
    assert_eq!((err.kind(), err.to_string()), (Some(ErrorKind::NotFound), "table not found: sales.nope".into()));
    assert!(!ms.drop_table("sales", "nope", true).await?);
    let err = ms.list_tables("nope").await.unwrap_err();
    assert_eq!((err.kind(), err.to_string()), (Some(ErrorKind::NotFound), "database not found: nope".into()));
    let err = ms.create_table(table("nope", "t", &[]), false).await.unwrap_err();
    assert_eq!(err.to_string(), "database not found: nope");
    let err = ms.drop_database("sales", false, false).await.unwrap_err();
    assert_eq!(err.to_string(), "database sales is not empty: it holds tables orders (use CASCADE)");
    let err = ms.drop_database("default", false, true).await.unwrap_err();
    assert!(err.to_string().contains("default"), "{err}");
    let mut dup = table("sales", "dup", &["a"]);
    dup.format = "orc".into();
    let err = ms.create_table(dup, false).await.unwrap_err();
    assert!(err.to_string().contains("duplicate column name a"), "{err}");
    assert!(ms.get_table("sales", "dup").await?.is_none());

    cluster.restart("jobtracker-0")?;

    let ms = metastore(&cluster).await?;
    tusk_tests::eventually(Duration::from_secs(30), || async { ms.list_databases().await.is_ok() }).await?;
    let dbs: Vec<String> = ms.list_databases().await?.into_iter().map(|d| d.name).collect();
    assert_eq!(dbs, ["default", "sales"]);
    assert_eq!(ms.get_database("sales").await?.map(|d| d.comment).as_deref(), Some("c"));
    assert!(ms.get_database("nope").await?.is_none());
    assert_eq!(ms.get_table("sales", "orders").await?, Some(t));
    let names: Vec<String> = ms.list_tables("default").await?.into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["plain"]);
    let got = ms.get_tables(&[tref("default", "plain"), tref("x", "y"), tref("sales", "orders")]).await?;
    assert_eq!(got.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["plain", "orders"]);
    assert_eq!(
        values(&ms.list_partitions("sales", "orders").await?),
        [vec!["2024-01-01".to_string()], vec!["2024-01-02".to_string()]]
    );

    // CASCADE drops the tables and the database directory.
    assert!(ms.drop_database("sales", false, true).await?);
    assert!(!exists(&dfs, &format!("{WH}/sales.db")).await?);
    assert!(ms.get_table("sales", "orders").await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_and_external_tables_differ_on_drop() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let dfs = cluster.client().await?;
    let ms = metastore(&cluster).await?;

    let managed = ms.create_table(table("default", "m", &["dt"]), false).await?.table.expect("table");
    ms.add_partitions("default", "m", vec![part(&["1"])], false).await?;
    dfs.write_all(&format!("{}/dt=1/part-0", managed.location), b"m", false).await?;
    // A partition with a location of its own, outside the table: kept.
    dfs.write_all("/elsewhere/p2/part-0", b"p2", false).await?;
    let own = Partition { values: vec!["2".into()], location: "/elsewhere/p2".into(), created_ms: 0 };
    ms.add_partitions("default", "m", vec![own], false).await?;
    assert!(ms.drop_table("default", "m", false).await?);
    assert!(!exists(&dfs, &managed.location).await?, "DROP of a managed table left its directory");
    assert!(exists(&dfs, "/elsewhere/p2/part-0").await?, "DROP deleted a partition outside the table");
    assert!(ms.get_table("default", "m").await?.is_none());
    // Its partitions went with it: a new table of that name starts empty.
    ms.create_table(table("default", "m", &["dt"]), false).await?;
    assert!(ms.list_partitions("default", "m").await?.is_empty());

    dfs.write_all("/ext/data/file.csv", b"1,x\n", false).await?;
    let mut ext = table("default", "e", &[]);
    ext.external = true;
    ext.location = "/ext/data".into();
    ext.format = "csv".into();
    let stored = ms.create_table(ext.clone(), false).await?.table.expect("table");
    assert_eq!(stored.location, "/ext/data");
    assert!(stored.external);
    assert!(ms.drop_table("default", "e", false).await?);
    assert_eq!(text(&dfs, "/ext/data/file.csv").await?, "1,x\n", "DROP of an external table deleted its data");

    // An external table whose LOCATION does not exist is refused, and nothing is recorded.
    let mut missing = ext.clone();
    missing.name = "missing".into();
    missing.location = "/no/such/dir".into();
    let err = ms.create_table(missing, false).await.unwrap_err();
    assert_eq!(err.to_string(), "LOCATION /no/such/dir does not exist");
    assert!(ms.get_table("default", "missing").await?.is_none());
    assert!(!exists(&dfs, "/no/such/dir").await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_add_and_overwrite_only_the_written_partitions() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let dfs = cluster.client().await?;
    let ms = metastore(&cluster).await?;
    let t = ms.create_table(table("default", "events", &["dt"]), false).await?.table.expect("table");
    let loc = t.location.clone();

    // INSERT INTO two partitions; hidden files stay behind.
    let s1 = format!("{loc}/.tusk-staging-1");
    dfs.write_all(&format!("{s1}/dt=1/part-0"), b"one", false).await?;
    dfs.write_all(&format!("{s1}/dt=1/_SUCCESS"), b"", false).await?;
    dfs.write_all(&format!("{s1}/dt=2/part-0"), b"two", false).await?;
    let r = ms.commit_write(commit("default", "events", &s1, &[&["1"], &["2"]], false)).await?;
    assert_eq!(r.files, 2);
    assert_eq!(values(&r.added), [vec!["1".to_string()], vec!["2".to_string()]]);
    assert!(r.table.expect("table").modified_ms >= t.modified_ms);
    assert_eq!(ls(&dfs, &format!("{loc}/dt=1")).await, ["part-0"]);
    assert!(!exists(&dfs, &s1).await?, "the staging directory was left");

    // INTO again: files are added, a clashing name is refused with nothing moved.
    let s2 = format!("{loc}/.tusk-staging-2");
    dfs.write_all(&format!("{s2}/dt=1/part-1"), b"one-b", false).await?;
    let r = ms.commit_write(commit("default", "events", &s2, &[&["1"]], false)).await?;
    assert_eq!((r.files, r.added.len()), (1, 0));
    assert_eq!(ls(&dfs, &format!("{loc}/dt=1")).await, ["part-0", "part-1"]);
    let s3 = format!("{loc}/.tusk-staging-3");
    dfs.write_all(&format!("{s3}/dt=1/part-0"), b"clash", false).await?;
    let err = ms.commit_write(commit("default", "events", &s3, &[&["1"]], false)).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::AlreadyExists), "{err}");
    assert!(err.to_string().contains("part-0"), "{err}");
    assert_eq!(text(&dfs, &format!("{loc}/dt=1/part-0")).await?, "one");
    assert!(exists(&dfs, &format!("{s3}/dt=1/part-0")).await?, "a refused commit moved files");

    // OVERWRITE dt=1 and a new dt=3: dt=2 is untouched.
    let s4 = format!("{loc}/.tusk-staging-4");
    dfs.write_all(&format!("{s4}/dt=1/part-0"), b"new-one", false).await?;
    dfs.write_all(&format!("{s4}/dt=3/part-0"), b"three", false).await?;
    let r = ms.commit_write(commit("default", "events", &s4, &[&["1"], &["3"]], true)).await?;
    assert_eq!(r.files, 2);
    assert_eq!(values(&r.added), [vec!["3".to_string()]]);
    assert_eq!(ls(&dfs, &format!("{loc}/dt=1")).await, ["part-0"]);
    assert_eq!(text(&dfs, &format!("{loc}/dt=1/part-0")).await?, "new-one");
    assert_eq!(text(&dfs, &format!("{loc}/dt=2/part-0")).await?, "two");
    assert_eq!(text(&dfs, &format!("{loc}/dt=3/part-0")).await?, "three");
    assert!(!exists(&dfs, &s4).await?, "the staging directory was left");
    assert!(!exists(&dfs, &format!("{loc}/.commit-.tusk-staging-4")).await?, "the old files were left");
    assert_eq!(values(&ms.list_partitions("default", "events").await?).len(), 3);

    // Unpartitioned: INTO adds, OVERWRITE replaces the file set (the
    // staging area inside the table is hidden, never data).
    let p = ms.create_table(table("default", "flat", &[]), false).await?.table.expect("table").location;
    let s5 = format!("{p}/.tusk-staging-5");
    dfs.write_all(&format!("{s5}/part-0"), b"a", false).await?;
    ms.commit_write(commit("default", "flat", &s5, &[], false)).await?;
    let s6 = format!("{p}/.tusk-staging-6");
    dfs.write_all(&format!("{s6}/part-1"), b"b", false).await?;
    ms.commit_write(commit("default", "flat", &s6, &[], false)).await?;
    assert_eq!(ls(&dfs, &p).await, ["part-0", "part-1"]);
    let s7 = format!("{p}/.tusk-staging-7");
    dfs.write_all(&format!("{s7}/part-9"), b"c", false).await?;
    let r = ms.commit_write(commit("default", "flat", &s7, &[], true)).await?;
    assert_eq!(r.files, 1);
    assert_eq!(ls(&dfs, &p).await, ["part-9"]);

    // Partitions named in the commit must fit the table.
    let s8 = format!("{p}/.tusk-staging-8");
    dfs.mkdirs(&s8, None, true).await?;
    let err = ms.commit_write(commit("default", "flat", &s8, &[&["1"]], false)).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidArgument), "{err}");
    let err = ms.commit_write(commit("default", "nope", &s8, &[], false)).await.unwrap_err();
    assert_eq!(err.to_string(), "table not found: default.nope");

    // DropPartitions: names are checked, data in the table's directory goes.
    let err = ms.drop_partitions("default", "events", vec![spec(&[("hr", "1")])], false).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidArgument), "{err}");
    assert!(err.to_string().contains("hr"), "{err}");
    let err = ms.drop_partitions("default", "events", vec![spec(&[("dt", "9")])], false).await.unwrap_err();
    assert_eq!(err.to_string(), "no partition matches (dt=9) in default.events");
    assert!(ms.drop_partitions("default", "events", vec![spec(&[("dt", "9")])], true).await?.is_empty());
    let dropped = ms.drop_partitions("default", "events", vec![spec(&[("dt", "2")])], false).await?;
    assert_eq!(values(&dropped), [vec!["2".to_string()]]);
    assert!(!exists(&dfs, &format!("{loc}/dt=2")).await?);
    assert_eq!(values(&ms.list_partitions("default", "events").await?), [vec!["1".to_string()], vec!["3".to_string()]]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctas_makes_the_table_visible_with_its_data() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let dfs = cluster.client().await?;
    let ms = metastore(&cluster).await?;
    let staging = "/tmp/hive/.staging-ctas";
    dfs.write_all(&format!("{staging}/part-0"), b"x", false).await?;
    dfs.write_all(&format!("{staging}/_SUCCESS"), b"", false).await?;
    assert!(ms.get_table("default", "copy").await?.is_none());
    let req = CommitWriteRequest {
        create: Some(table("default", "copy", &[])),
        ..commit("default", "copy", staging, &[], false)
    };
    let r = ms.commit_write(req.clone()).await?;
    let t = r.table.expect("the created table");
    assert_eq!(t.location, format!("{WH}/copy"));
    assert_eq!(r.files, 1);
    assert_eq!(ms.get_table("default", "copy").await?, Some(t.clone()));
    assert_eq!(ls(&dfs, &t.location).await, ["part-0"]);
    assert!(!exists(&dfs, staging).await?);

    dfs.write_all(&format!("{staging}/part-0"), b"y", false).await?;
    let err = ms.commit_write(req).await.unwrap_err();
    assert_eq!(err.to_string(), "table already exists: default.copy");
    assert_eq!(text(&dfs, &format!("{}/part-0", t.location)).await?, "x");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_data_and_truncate() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let dfs = cluster.client().await?;
    let ms = metastore(&cluster).await?;
    let flat = ms.create_table(table("default", "flat", &[]), false).await?.table.expect("table").location;
    dfs.write_all("/in/a.csv", b"1\n", false).await?;
    assert_eq!(ms.load_data("default", "flat", "/in/a.csv", &[], false).await?, 1);
    dfs.write_all("/in/a.csv", b"2\n", false).await?;
    assert_eq!(ms.load_data("default", "flat", "/in/a.csv", &[], false).await?, 1);
    assert_eq!(ls(&dfs, &flat).await, ["a.csv", "a_copy_1.csv"]);
    assert!(!exists(&dfs, "/in/a.csv").await?, "LOAD DATA copies instead of moving");
    let err = ms.load_data("default", "flat", "/in/nope", &[], false).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.to_string()),
        (Some(ErrorKind::NotFound), "LOAD DATA: source /in/nope does not exist".into())
    );

    // A directory's files into a partition that does not exist yet; OVERWRITE replaces.
    ms.create_table(table("default", "parted", &["dt"]), false).await?;
    dfs.write_all("/in/dir/f1", b"1", false).await?;
    dfs.write_all("/in/dir/f2", b"2", false).await?;
    dfs.write_all("/in/dir/_hidden", b"", false).await?;
    assert_eq!(ms.load_data("default", "parted", "/in/dir", &["x y".into()], false).await?, 2);
    assert_eq!(values(&ms.list_partitions("default", "parted").await?), [vec!["x y".to_string()]]);
    let pdir = format!("{WH}/parted/dt=x y");
    assert_eq!(ls(&dfs, &pdir).await, ["f1", "f2"]);
    dfs.write_all("/in/dir2/f3", b"3", false).await?;
    assert_eq!(ms.load_data("default", "parted", "/in/dir2", &["x y".into()], true).await?, 1);
    assert_eq!(ls(&dfs, &pdir).await, ["f3"]);
    let err = ms.load_data("default", "parted", "/in/dir2", &[], false).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidArgument), "{err}");

    // TRUNCATE: a managed table's data goes, its partitions and directories stay.
    ms.truncate_table("default", "flat", Vec::new()).await?;
    assert!(ls(&dfs, &flat).await.is_empty());
    assert!(exists(&dfs, &flat).await?);
    ms.truncate_table("default", "parted", vec![spec(&[("dt", "x y")])]).await?;
    assert!(ls(&dfs, &pdir).await.is_empty());
    assert_eq!(ms.list_partitions("default", "parted").await?.len(), 1);

    dfs.write_all("/ext2/keep.csv", b"k", false).await?;
    let mut ext = table("default", "ext", &[]);
    ext.external = true;
    ext.location = "/ext2".into();
    ms.create_table(ext, false).await?;
    let err = ms.truncate_table("default", "ext", Vec::new()).await.unwrap_err();
    assert_eq!(err.to_string(), "cannot truncate non-managed table default.ext");
    assert!(exists(&dfs, "/ext2/keep.csv").await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_moves_a_managed_directory_only() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let dfs = cluster.client().await?;
    let ms = metastore(&cluster).await?;
    ms.create_database(Database { name: "db2".into(), ..Default::default() }, false).await?;
    let old = ms.create_table(table("default", "t", &["dt"]), false).await?.table.expect("table").location;
    ms.add_partitions("default", "t", vec![part(&["1"])], false).await?;
    dfs.write_all(&format!("{old}/dt=1/part-0"), b"data", false).await?;
    let moved = ms.rename_table(tref("default", "t"), tref("db2", "t2")).await?;
    assert_eq!(moved.location, format!("{WH}/db2.db/t2"));
    assert_eq!((moved.db.as_str(), moved.name.as_str()), ("db2", "t2"));
    assert_eq!(text(&dfs, &format!("{WH}/db2.db/t2/dt=1/part-0")).await?, "data");
    assert!(!exists(&dfs, &old).await?);
    assert!(ms.get_table("default", "t").await?.is_none());
    assert_eq!(values(&ms.list_partitions("db2", "t2").await?), [vec!["1".to_string()]]);
    assert!(ms.list_partitions("default", "t").await.is_err());

    ms.create_table(table("default", "other", &[]), false).await?;
    let err = ms.rename_table(tref("db2", "t2"), tref("default", "other")).await.unwrap_err();
    assert_eq!(err.to_string(), "table already exists: default.other");
    let err = ms.rename_table(tref("default", "gone"), tref("default", "x")).await.unwrap_err();
    assert_eq!(err.to_string(), "table not found: default.gone");

    dfs.mkdirs("/ext3", None, true).await?;
    let mut ext = table("default", "e", &[]);
    ext.external = true;
    ext.location = "/ext3".into();
    ms.create_table(ext, false).await?;
    let renamed = ms.rename_table(tref("default", "e"), tref("default", "e2")).await?;
    assert_eq!(renamed.location, "/ext3");
    assert!(exists(&dfs, "/ext3").await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_table_registers_partition_directories() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let dfs = cluster.client().await?;
    let ms = metastore(&cluster).await?;
    let loc = ms.create_table(table("default", "logs", &["dt", "hr"]), false).await?.table.expect("table").location;
    ms.add_partitions("default", "logs", vec![part(&["a", "1"]), part(&["z", "0"])], false).await?;
    dfs.delete(&format!("{loc}/dt=z"), true).await?;
    for dir in ["dt=b/hr=2", "dt=c%3A1/hr=3", "dt=d", "junk/hr=1", "_hidden/hr=1", "dt=e/other=1"] {
        dfs.mkdirs(&format!("{loc}/{dir}"), None, true).await?;
    }
    let r = ms.repair_table("default", "logs", true, true).await?;
    assert_eq!(values(&r.added), [vec!["b".to_string(), "2".to_string()], vec!["c:1".to_string(), "3".to_string()]]);
    assert_eq!(values(&r.dropped), [vec!["z".to_string(), "0".to_string()]]);
    assert_eq!(
        values(&ms.list_partitions("default", "logs").await?),
        [
            vec!["a".to_string(), "1".to_string()],
            vec!["b".to_string(), "2".to_string()],
            vec!["c:1".to_string(), "3".to_string()]
        ]
    );
    let again = ms.repair_table("default", "logs", true, true).await?;
    assert!(again.added.is_empty() && again.dropped.is_empty(), "a second repair changed things");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_create_table_has_one_winner() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let ms = metastore(&cluster).await?;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let ms = ms.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = table("default", "race", &[]);
            t.comment = format!("creator {i}");
            ms.create_table(t, false).await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(r) => winners.push(r.table.expect("table").comment),
            Err(e) => assert_eq!(e.to_string(), "table already exists: default.race"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(ms.get_table("default", "race").await?.map(|t| t.comment), winners.pop());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_stopped_halfway_is_finished_in_the_background() -> anyhow::Result<()> {
    let cluster = cluster()?;
    let admin = cluster.client().await?;
    admin.mkdirs(WH, Some(0o777), true).await?;
    let alice = cluster.client_as("alice").await?;
    let ms = metastore(&cluster).await?.with_user("alice");
    let loc = ms.create_table(table("default", "t", &["dt"]), false).await?.table.expect("table").location;
    // A partition whose directory alice cannot write into.
    admin.mkdirs("/locked", Some(0o755), true).await?;
    let locked = Partition { values: vec!["locked".into()], location: "/locked".into(), created_ms: 0 };
    ms.add_partitions("default", "t", vec![locked], false).await?;

    let staging = format!("{loc}/.tusk-staging-q1");
    alice.write_all(&format!("{staging}/dt=open/part-0"), b"open", false).await?;
    alice.write_all(&format!("{staging}/dt=locked/part-0"), b"locked", false).await?;
    let err = ms.commit_write(commit("default", "t", &staging, &[&["open"], &["locked"]], false)).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::PermissionDenied), "{err}");
    assert!(err.to_string().contains("background"), "{err}");
    assert_eq!(text(&admin, &format!("{loc}/dt=open/part-0")).await?, "open", "the first move did not happen");
    // The client gives up and deletes its staging directory (tusk sql does
    // on an error): what is left to move is in the metastore's custody.
    assert!(!alice.delete(&staging, true).await?, "the staging directory was not taken into custody");
    let custody = format!("{loc}/.commit-.tusk-staging-q1");
    assert_eq!(text(&admin, &format!("{custody}/dt=locked/part-0")).await?, "locked");
    // The table is held until the commit is done.
    let err = ms.drop_table("default", "t", false).await.unwrap_err();
    assert!(err.to_string().contains("unfinished"), "{err}");

    // The record survives a restart; the commit finishes once alice may write.
    cluster.restart("jobtracker-0")?;
    let ms = metastore(&cluster).await?.with_user("alice");
    tusk_tests::eventually(Duration::from_secs(30), || async { ms.list_databases().await.is_ok() }).await?;
    assert_eq!(ms.list_partitions("default", "t").await?.len(), 1, "partitions were added before the commit finished");
    admin.set_permission("/locked", 0o777).await?;
    tusk_tests::eventually(Duration::from_secs(60), || async { !exists(&admin, &custody).await.unwrap_or(true) })
        .await?;
    assert_eq!(text(&admin, "/locked/part-0").await?, "locked");
    assert_eq!(
        values(&ms.list_partitions("default", "t").await?),
        [vec!["locked".to_string()], vec!["open".to_string()]]
    );
    assert!(ms.drop_table("default", "t", false).await?);
    assert!(!exists(&admin, &loc).await?);
    Ok(())
}
