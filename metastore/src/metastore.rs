//! [`Metastore`]: the catalog, the DFS clients that do its file work, and
//! the one lock that serializes its mutations.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tusk_proto::metastore::{Database, Partition, Table, TableRef};

use crate::commit::CommitResumer;
use crate::dfs::Dfs;
use crate::error::{MetastoreError, Result};
use crate::paths::{self, DEFAULT_DATABASE};
use crate::store::{Catalog, Store};

/// The Hive-style catalog: databases, tables and partitions in an embedded
/// database, with the DFS side of every change (managed directories, moving
/// committed output into tables) done here, as the requesting user.
///
/// Reads run on snapshots and never wait. Mutations run one at a time
/// (catalog writes are rare): each one checks, does its DFS work, and
/// commits one durable transaction under the same lock, so two clients
/// creating the same table cannot both succeed.
pub struct Metastore {
    pub(crate) store: Store,
    pub(crate) dfs: Dfs,
    pub(crate) warehouse: String,
    /// Held by every mutation from its checks to its commit.
    pub(crate) writes: tokio::sync::Mutex<()>,
    /// Wakes the background resumer of unfinished commits.
    pub(crate) resume: Notify,
}

impl Metastore {
    /// Opens (or creates) the catalog in the file `path`; `warehouse_dir`
    /// is where managed tables go (the `default` database's location,
    /// updated if it changed), `namenode_addr` the DFS to work in. Touches
    /// no DFS, so the namenode may still be down. Blocks on file I/O.
    pub fn open(path: &Path, warehouse_dir: &str, namenode_addr: &str) -> Result<Arc<Metastore>> {
        let warehouse = tusk_common::path::normalize(warehouse_dir.trim())
            .map_err(|e| MetastoreError::invalid(format!("warehouse_dir: {e}")))?;
        let store = Store::open(path)?;
        let wh = warehouse.clone();
        store.write(move |w| match w.database(DEFAULT_DATABASE)? {
            Some(d) if d.location == wh => Ok(()),
            Some(mut d) => {
                tracing::info!("metastore: the default database moves from {} to {wh}", d.location);
                d.location = wh;
                w.put_database(&d)
            }
            None => w.put_database(&Database {
                name: DEFAULT_DATABASE.to_string(),
                location: wh,
                comment: "Default Hive database".to_string(),
                owner: "public".to_string(),
                created_ms: now_ms(),
            }),
        })?;
        let pending = store.read()?.pending_commits()?.len();
        tracing::info!("metastore {} open (warehouse {warehouse}, {pending} unfinished commits)", path.display());
        Ok(Arc::new(Metastore {
            store,
            dfs: Dfs::new(namenode_addr),
            warehouse,
            writes: tokio::sync::Mutex::new(()),
            resume: Notify::new(),
        }))
    }

    /// Starts the background work: finishing commits left unfinished (by a
    /// restart, or by a DFS failure halfway), retried until the DFS
    /// answers. Stops when `stop` turns true.
    pub fn start(self: &Arc<Self>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        self.resume.notify_one();
        tokio::spawn(CommitResumer::new(self.clone()).run(stop))
    }

    /// The directory of the `default` database's tables.
    pub fn warehouse_dir(&self) -> &str {
        &self.warehouse
    }

    /// Unfinished commits (their staging directories).
    pub fn pending_commits(&self) -> Result<Vec<String>> {
        Ok(self.store.read()?.pending_commits()?.into_iter().map(|(id, _)| id).collect())
    }
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    tusk_common::now_ms().max(0) as u64
}

/// A database, table or partition column name as stored: lower-case, made
/// of letters, digits and `_` (Hive's rule), not empty.
pub(crate) fn object_name(what: &str, name: &str) -> Result<String> {
    let n = name.trim().to_lowercase();
    if n.is_empty() {
        return Err(MetastoreError::invalid(format!("{what} name is empty")));
    }
    if !n.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(MetastoreError::invalid(format!(
            "invalid {what} name '{name}': names are made of letters, digits and _"
        )));
    }
    Ok(n)
}

/// A column name as stored: lower-case, not empty, without NUL or the
/// characters that break type strings and partition specs (`,` `:` `=`).
pub(crate) fn column_name(name: &str) -> Result<String> {
    let n = name.trim().to_lowercase();
    if n.is_empty() {
        return Err(MetastoreError::invalid("column name is empty"));
    }
    if n.chars().any(|c| c.is_control() || matches!(c, ',' | ':' | '=' | '/' | '`')) {
        return Err(MetastoreError::invalid(format!("invalid column name '{name}'")));
    }
    Ok(n)
}

/// `(db, name)` of a request's table reference; the database defaults to
/// `default`.
pub(crate) fn table_ref(r: Option<&TableRef>) -> Result<(String, String)> {
    let r = r.ok_or_else(|| MetastoreError::invalid("the request names no table"))?;
    let db = if r.db.trim().is_empty() { DEFAULT_DATABASE.to_string() } else { object_name("database", &r.db)? };
    Ok((db, object_name("table", &r.name)?))
}

/// A location as stored: a normalized DFS path, or a URL of another store
/// kept as written. `what` names it in errors (`LOCATION`).
pub(crate) fn location(what: &str, loc: &str) -> Result<String> {
    let loc = loc.trim();
    match paths::dfs_path(loc) {
        Some(p) => tusk_common::path::normalize(p).map_err(|e| MetastoreError::invalid(format!("{what} {loc}: {e}"))),
        None if loc.contains("://") => Ok(loc.to_string()),
        None => Err(MetastoreError::invalid(format!("{what} {loc}: not an absolute path"))),
    }
}

impl Metastore {
    /// Takes the catalog write lock for a change to `db.name` and returns
    /// it with a snapshot and the table, which must exist and have no
    /// unfinished commit.
    pub(crate) async fn lock_table(
        &self,
        db: &str,
        name: &str,
    ) -> Result<(tokio::sync::MutexGuard<'_, ()>, crate::store::Reader, Table)> {
        let w = self.writes.lock().await;
        let r = self.store.read()?;
        let t = require_table(&r, db, name)?;
        no_pending_commit(&r, db, name)?;
        Ok((w, r, t))
    }
}

/// The DFS path of a stored location, or an error saying the metastore
/// cannot write there (`doing` says what it tried).
pub(crate) fn dfs_location<'a>(loc: &'a str, doing: &str) -> Result<&'a str> {
    paths::dfs_path(loc).ok_or_else(|| {
        MetastoreError::invalid(format!("{doing}: {loc} is not in the DFS; the metastore cannot change it"))
    })
}

/// The table, or `table not found: db.t`.
pub(crate) fn require_table(c: &impl Catalog, db: &str, name: &str) -> Result<Table> {
    c.table(db, name)?.ok_or_else(|| MetastoreError::table_not_found(db, name))
}

/// The database, or `database not found: d`.
pub(crate) fn require_database(c: &impl Catalog, db: &str) -> Result<Database> {
    c.database(db)?.ok_or_else(|| MetastoreError::database_not_found(db))
}

/// Refuses to change a table while a commit into it is unfinished (it is
/// being retried in the background and would undo the change).
pub(crate) fn no_pending_commit(c: &impl Catalog, db: &str, name: &str) -> Result<()> {
    match c.pending_for(db, name)? {
        None => Ok(()),
        Some((staging, _)) => Err(MetastoreError::Precondition(format!(
            "{}: a commit into this table (staging {staging}) is unfinished and being retried; try again later",
            paths::table_ref_display(db, name)
        ))),
    }
}

/// Names of the table's partition columns, in order.
pub(crate) fn partition_names(t: &Table) -> Vec<String> {
    t.partition_columns.iter().map(|c| c.name.clone()).collect()
}

/// The DFS directory holding a partition's data: its own location, or the
/// default `<table>/<k=v>/...`. `None` when it lies outside the DFS.
pub(crate) fn partition_dir(t: &Table, p: &Partition) -> Option<String> {
    if p.location.is_empty() {
        let table_dir = paths::dfs_path(&t.location)?;
        Some(paths::default_partition_location(table_dir, &partition_names(t), &p.values))
    } else {
        paths::dfs_path(&p.location).map(str::to_string)
    }
}

/// True when a partition's data lies in the table's own directory (its
/// default location, or an explicit one below the table's): the data a
/// managed table's DROP deletes.
pub(crate) fn partition_in_table_dir(t: &Table, p: &Partition) -> bool {
    if p.location.is_empty() {
        return true;
    }
    match (paths::dfs_path(&t.location), paths::dfs_path(&p.location)) {
        (Some(td), Some(pd)) => tusk_common::path::is_ancestor_or_self(td, pd),
        _ => false,
    }
}

/// Partition values as stored: one per partition column, not empty, no NUL.
pub(crate) fn partition_values(t: &Table, values: &[String]) -> Result<Vec<String>> {
    let names = partition_names(t);
    let table = paths::table_ref_display(&t.db, &t.name);
    if names.is_empty() {
        return Err(MetastoreError::invalid(format!("table {table} is not partitioned")));
    }
    if values.len() != names.len() {
        return Err(MetastoreError::invalid(format!(
            "partition of {table}: {} value(s) given for {} partition column(s) ({})",
            values.len(),
            names.len(),
            names.join(", ")
        )));
    }
    for (n, v) in names.iter().zip(values) {
        if v.is_empty() {
            return Err(MetastoreError::invalid(format!(
                "partition of {table}: the value of {n} is empty (NULL is {})",
                paths::DEFAULT_PARTITION
            )));
        }
        if v.contains('\0') {
            return Err(MetastoreError::invalid(format!("partition of {table}: the value of {n} contains NUL")));
        }
    }
    Ok(values.to_vec())
}

/// `db.t (k=v, ...)` for messages.
pub(crate) fn partition_label(t: &Table, values: &[String]) -> String {
    format!("{} {}", paths::table_ref_display(&t.db, &t.name), paths::partition_display(&partition_names(t), values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_database_follows_the_warehouse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metastore.redb");
        {
            let ms = Metastore::open(&path, "/user/hive/warehouse/", "127.0.0.1:1").unwrap();
            assert_eq!(ms.warehouse_dir(), "/user/hive/warehouse");
            assert_eq!(ms.get_database("default").unwrap().location, "/user/hive/warehouse");
            assert!(ms.pending_commits().unwrap().is_empty());
            assert_eq!(ms.list_tables("").unwrap(), Vec::new());
        }
        let ms = Metastore::open(&path, "/wh", "127.0.0.1:1").unwrap();
        let d = ms.get_database("DEFAULT").unwrap();
        assert_eq!((d.location.as_str(), d.owner.as_str()), ("/wh", "public"));
        assert_eq!(ms.list_databases().unwrap().len(), 1);
        let e = ms.get_database("nope").unwrap_err().to_string();
        assert_eq!(e, "database not found: nope");
        let e = ms.list_partitions(Some(&TableRef { db: String::new(), name: "t".into() })).unwrap_err();
        assert_eq!(e.to_string(), "table not found: default.t");
        let e = Metastore::open(&dir.path().join("other.redb"), "wh", "127.0.0.1:1").err().map(|e| e.to_string());
        assert!(e.unwrap_or_default().starts_with("warehouse_dir: "));
    }

    #[test]
    fn names_and_locations_are_checked() {
        assert_eq!(object_name("table", " Orders_2 ").unwrap(), "orders_2");
        assert!(object_name("table", "a.b").is_err());
        assert!(column_name("a,b").is_err());
        assert_eq!(column_name("Col 1").unwrap(), "col 1");
        assert_eq!(location("LOCATION", "/a/b/").unwrap(), "/a/b");
        assert_eq!(location("LOCATION", "s3://b/k").unwrap(), "s3://b/k");
        assert!(location("LOCATION", "/a/../b").is_err());
        assert!(dfs_location("s3://b/k", "LOAD DATA").unwrap_err().to_string().contains("not in the DFS"));
        let t = Table {
            db: "d".into(),
            name: "t".into(),
            location: "/w/t".into(),
            partition_columns: vec![tusk_proto::metastore::Column { name: "dt".into(), ..Default::default() }],
            ..Default::default()
        };
        let p = |loc: &str| Partition { values: vec!["a/b".into()], location: loc.into(), created_ms: 0 };
        assert_eq!(partition_dir(&t, &p("")).as_deref(), Some("/w/t/dt=a%2Fb"));
        assert_eq!(partition_dir(&t, &p("/x")).as_deref(), Some("/x"));
        assert!(partition_in_table_dir(&t, &p("")) && partition_in_table_dir(&t, &p("/w/t/own")));
        assert!(!partition_in_table_dir(&t, &p("/w/t2")));
        assert!(partition_values(&t, &["".into()]).unwrap_err().to_string().contains("empty"));
        assert!(partition_values(&t, &[]).unwrap_err().to_string().contains("0 value(s) given for 1"));
        assert_eq!(partition_label(&t, &["x".into()]), "d.t (dt=x)");
    }
}
