use super::*;
use tusk_proto::metastore::{Column, TableRef};

fn table(db: &str, name: &str) -> Table {
    Table {
        db: db.into(),
        name: name.into(),
        columns: vec![Column { name: "a".into(), data_type: "INT".into(), comment: String::new() }],
        partition_columns: vec![Column { name: "dt".into(), data_type: "STRING".into(), comment: String::new() }],
        location: format!("/w/{name}"),
        format: "parquet".into(),
        ..Default::default()
    }
}

fn part(values: &[&str]) -> Partition {
    Partition { values: values.iter().map(|v| v.to_string()).collect(), location: String::new(), created_ms: 7 }
}

fn values(parts: &[Partition]) -> Vec<Vec<String>> {
    parts.iter().map(|p| p.values.clone()).collect()
}

#[test]
fn databases_tables_and_partitions_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("metastore.redb")).unwrap();
    store
        .write(|w| {
            for name in ["sales", "default", "b"] {
                w.put_database(&Database { name: name.into(), location: format!("/w/{name}"), ..Default::default() })?;
            }
            // "t2" sorts after "t" but must not show up among t's partitions.
            for (db, t) in [("sales", "t"), ("sales", "t2"), ("sales", "a"), ("b", "t")] {
                w.put_table(&table(db, t))?;
            }
            for v in ["2024-01-02", "2024-01-01", "2024-01-01a"] {
                w.put_partition("sales", "t", &part(&[v]))?;
            }
            w.put_partition("sales", "t2", &part(&["x"]))?;
            Ok(())
        })
        .unwrap();

    let r = store.read().unwrap();
    let names: Vec<String> = r.databases().unwrap().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["b", "default", "sales"]);
    assert_eq!(r.database("sales").unwrap().unwrap().location, "/w/sales");
    assert!(r.database("nope").unwrap().is_none());
    let tables: Vec<String> = r.tables("sales").unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(tables, ["a", "t", "t2"]);
    assert_eq!(r.tables("b").unwrap().len(), 1);
    assert!(r.tables("nope").unwrap().is_empty());
    assert_eq!(r.table("sales", "t").unwrap().unwrap(), table("sales", "t"));
    assert!(r.table("sales", "zz").unwrap().is_none());
    assert_eq!(
        values(&r.partitions("sales", "t").unwrap()),
        [vec!["2024-01-01".to_string()], vec!["2024-01-01a".to_string()], vec!["2024-01-02".to_string()]]
    );
    assert_eq!(r.partition("sales", "t", &["2024-01-02".to_string()]).unwrap().unwrap().created_ms, 7);
    drop(r);

    // Dropping a table drops its partitions, and only its own.
    store
        .write(|w| {
            assert!(w.delete_table("sales", "t")?);
            assert!(!w.delete_table("sales", "t")?);
            assert!(w.delete_partition("sales", "t2", &["x".to_string()])?);
            assert!(w.delete_database("b")?);
            Ok(())
        })
        .unwrap();
    let r = store.read().unwrap();
    assert!(r.table("sales", "t").unwrap().is_none());
    assert!(r.partitions("sales", "t").unwrap().is_empty());
    assert!(r.partitions("sales", "t2").unwrap().is_empty());
    assert!(r.table("sales", "t2").unwrap().is_some());
    assert!(r.database("b").unwrap().is_none());
}

#[test]
fn a_failed_write_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("m.redb")).unwrap();
    let err = store
        .write(|w| {
            w.put_database(&Database { name: "x".into(), ..Default::default() })?;
            Err::<(), _>(MetastoreError::invalid("no"))
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "no");
    assert!(store.read().unwrap().database("x").unwrap().is_none());
}

#[test]
fn readers_see_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("m.redb")).unwrap();
    let before = store.read().unwrap();
    store.write(|w| w.put_database(&Database { name: "x".into(), ..Default::default() })).unwrap();
    assert!(before.database("x").unwrap().is_none(), "an open snapshot changed");
    assert!(store.read().unwrap().database("x").unwrap().is_some());
}

#[test]
fn the_catalog_and_pending_commits_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("metastore.redb");
    let pending = PendingCommit {
        request: Some(CommitWriteRequest {
            user: "alice".into(),
            table: Some(TableRef { db: "sales".into(), name: "t".into() }),
            staging_dir: "/w/t/.staging-1".into(),
            overwrite: true,
            ..Default::default()
        }),
        table: Some(table("sales", "t")),
        moves: vec![PendingMove {
            source_dir: "/w/t/.staging-1/dt=1".into(),
            target_dir: "/w/t/dt=1".into(),
            names: vec!["part-0".into(), "part-1".into()],
            partition: vec!["1".into()],
            location: String::new(),
        }],
        recorded_ms: 42,
        custody: "/w/t/.commit-.staging-1".into(),
    };
    {
        let store = Store::open(&path).unwrap();
        let p = pending.clone();
        store
            .write(move |w| {
                w.put_database(&Database { name: "sales".into(), ..Default::default() })?;
                w.put_table(&table("sales", "t"))?;
                w.put_partition("sales", "t", &part(&["1"]))?;
                w.put_pending("/w/t/.staging-1", &p)
            })
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let r = store.read().unwrap();
    assert!(r.database("sales").unwrap().is_some());
    assert_eq!(r.table("sales", "t").unwrap().unwrap(), table("sales", "t"));
    assert_eq!(r.partitions("sales", "t").unwrap().len(), 1);
    let all = r.pending_commits().unwrap();
    assert_eq!(all, vec![("/w/t/.staging-1".to_string(), pending.clone())]);
    assert_eq!(r.pending_for("sales", "t").unwrap().map(|(id, _)| id).as_deref(), Some("/w/t/.staging-1"));
    assert!(r.pending_for("sales", "u").unwrap().is_none());
    drop(r);
    store.write(|w| w.delete_pending("/w/t/.staging-1")).unwrap();
    assert!(store.read().unwrap().pending_commits().unwrap().is_empty());
}

#[tokio::test]
async fn async_writes_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("m.redb")).unwrap();
    let n = store
        .write_async(|w| {
            w.put_database(&Database { name: "x".into(), ..Default::default() })?;
            Ok(1)
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(store.read().unwrap().database("x").unwrap().is_some());
}

#[test]
fn a_second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let _first = Store::open(&path).unwrap();
    let err = Store::open(&path).err().expect("opened twice");
    assert!(err.to_string().contains("m.redb"), "{err}");
}
