//! The catalog on disk: one redb database, four tables keyed by strings,
//! values prost-encoded.
//!
//! | table | key | value |
//! |---|---|---|
//! | `databases` | `db` | [`Database`] |
//! | `tables` | `db\0table` | [`Table`] |
//! | `partitions` | `db\0table\0v1\0v2...` | [`Partition`] |
//! | `pending_commits` | staging directory | [`PendingCommit`] |
//!
//! NUL never occurs in names or values (they are refused), so a table's
//! partitions are the key range `db\0table\0 .. db\0table\x01`, sorted by
//! their values, and a database's tables the range `db\0 .. db\x01`.
//!
//! Every write is one write transaction committed with
//! `Durability::Immediate` (fsync) before the caller goes on; readers use
//! read transactions, which see a snapshot and never wait for the writer.

use std::path::Path;
use std::sync::Arc;

use prost::Message;
use redb::{
    Database as Redb, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use tusk_proto::metastore::{CommitWriteRequest, Database, Partition, Table};

use crate::error::{MetastoreError, Result};

type Def = TableDefinition<'static, &'static str, &'static [u8]>;

const DATABASES: Def = TableDefinition::new("databases");
const TABLES: Def = TableDefinition::new("tables");
const PARTITIONS: Def = TableDefinition::new("partitions");
const COMMITS: Def = TableDefinition::new("pending_commits");

/// A commit recorded before any file moves (see `commit.rs`): the request,
/// the table it writes as resolved then, and every move it makes, so a
/// restarted metastore finishes it without looking at the request again.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PendingCommit {
    #[prost(message, optional, tag = "1")]
    pub request: Option<CommitWriteRequest>,
    /// The table written; for CTAS the table being created (location filled
    /// in, times set).
    #[prost(message, optional, tag = "2")]
    pub table: Option<Table>,
    #[prost(message, repeated, tag = "3")]
    pub moves: Vec<PendingMove>,
    #[prost(uint64, tag = "4")]
    pub recorded_ms: u64,
    /// Where the staging directory is renamed before the first file moves,
    /// so the client that wrote it can no longer change or delete it.
    #[prost(string, tag = "5")]
    pub custody: String,
}

/// Entries of one staging directory to move into one table or partition
/// directory.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PendingMove {
    #[prost(string, tag = "1")]
    pub source_dir: String,
    #[prost(string, tag = "2")]
    pub target_dir: String,
    /// Names of the entries of `source_dir` to move (hidden ones excluded).
    #[prost(string, repeated, tag = "3")]
    pub names: Vec<String>,
    /// The partition's values; empty for an unpartitioned table.
    #[prost(string, repeated, tag = "4")]
    pub partition: Vec<String>,
    /// The location to register if the partition is new ("": default).
    #[prost(string, tag = "5")]
    pub location: String,
}

/// Key of a table in `tables`.
pub(crate) fn table_key(db: &str, table: &str) -> String {
    format!("{db}\0{table}")
}

/// Prefix of a table's keys in `partitions`.
fn partition_prefix(db: &str, table: &str) -> String {
    format!("{db}\0{table}\0")
}

/// Key of a partition in `partitions`.
pub(crate) fn partition_key(db: &str, table: &str, values: &[String]) -> String {
    format!("{}{}", partition_prefix(db, table), values.join("\0"))
}

/// The embedded database. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Store {
    db: Arc<Redb>,
    path: Arc<str>,
}

impl Store {
    /// Opens (or creates) the database file and its tables.
    pub(crate) fn open(path: &Path) -> Result<Store> {
        let shown: Arc<str> = path.display().to_string().into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| MetastoreError::Io { path: dir.display().to_string(), source })?;
        }
        let db = Redb::create(path).map_err(|e| db_error(&shown, e))?;
        let store = Store { db: Arc::new(db), path: shown };
        // Read transactions fail on tables never created: create them all.
        store.write(|w| {
            for def in [DATABASES, TABLES, PARTITIONS, COMMITS] {
                w.txn.open_table(def).map_err(|e| w.err(e))?;
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// A snapshot of the catalog.
    pub(crate) fn read(&self) -> Result<Reader> {
        let txn = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        Ok(Reader { txn, path: self.path.clone() })
    }

    /// Runs `f` in one write transaction and commits it durably (fsync)
    /// when `f` succeeds; aborts it otherwise. Blocks the thread.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Writer) -> Result<T>) -> Result<T> {
        let mut txn = self.db.begin_write().map_err(|e| db_error(&self.path, e))?;
        txn.set_durability(Durability::Immediate).map_err(|e| db_error(&self.path, e))?;
        let w = Writer { txn, path: self.path.clone() };
        match f(&w) {
            Ok(out) => {
                w.txn.commit().map_err(|e| db_error(&self.path, e))?;
                Ok(out)
            }
            Err(e) => {
                if let Err(abort) = w.txn.abort() {
                    tracing::warn!("metastore database {}: aborting a transaction: {abort}", self.path);
                }
                Err(e)
            }
        }
    }

    /// [`write`](Self::write) on a blocking thread, so the fsync does not
    /// hold an async worker.
    pub(crate) async fn write_async<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Writer) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .map_err(|e| MetastoreError::Internal(format!("metastore write task: {e}")))?
    }
}

fn db_error(path: &str, e: impl Into<redb::Error>) -> MetastoreError {
    MetastoreError::Db { path: path.to_string(), source: e.into() }
}

fn decode<T: Message + Default>(what: &str, key: &str, bytes: Option<Vec<u8>>) -> Result<Option<T>> {
    match bytes {
        None => Ok(None),
        Some(b) => T::decode(b.as_slice())
            .map(Some)
            .map_err(|e| MetastoreError::Internal(format!("{what} {}: cannot decode: {e}", key.replace('\0', ".")))),
    }
}

fn decode_all<T: Message + Default>(what: &str, rows: Vec<(String, Vec<u8>)>) -> Result<Vec<T>> {
    rows.into_iter().filter_map(|(k, v)| decode(what, &k, Some(v)).transpose()).collect()
}

/// The key just after every key starting with `prefix` (which ends in NUL).
fn prefix_end(prefix: &str) -> String {
    match prefix.strip_suffix('\0') {
        Some(p) => format!("{p}\u{1}"),
        None => format!("{prefix}\u{10FFFF}"),
    }
}

fn get_raw(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> redb::Result<Option<Vec<u8>>> {
    Ok(t.get(key)?.map(|g| g.value().to_vec()))
}

fn range_raw(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> redb::Result<Vec<(String, Vec<u8>)>> {
    let end = prefix_end(prefix);
    let iter = if prefix.is_empty() { t.iter()? } else { t.range::<&str>(prefix..end.as_str())? };
    let mut out = Vec::new();
    for row in iter {
        let (k, v) = row?;
        out.push((k.value().to_string(), v.value().to_vec()));
    }
    Ok(out)
}

/// Typed reads, the same in a read and in a write transaction.
pub(crate) trait Catalog {
    fn raw(&self, def: Def, key: &str) -> Result<Option<Vec<u8>>>;
    fn raw_range(&self, def: Def, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    fn database(&self, name: &str) -> Result<Option<Database>> {
        decode("database", name, self.raw(DATABASES, name)?)
    }

    /// Every database, sorted by name.
    fn databases(&self) -> Result<Vec<Database>> {
        decode_all("database", self.raw_range(DATABASES, "")?)
    }

    fn table(&self, db: &str, name: &str) -> Result<Option<Table>> {
        let key = table_key(db, name);
        decode("table", &key, self.raw(TABLES, &key)?)
    }

    /// The tables of `db`, sorted by name.
    fn tables(&self, db: &str) -> Result<Vec<Table>> {
        decode_all("table", self.raw_range(TABLES, &format!("{db}\0"))?)
    }

    fn partition(&self, db: &str, table: &str, values: &[String]) -> Result<Option<Partition>> {
        let key = partition_key(db, table, values);
        decode("partition", &key, self.raw(PARTITIONS, &key)?)
    }

    /// The partitions of a table, sorted by values.
    fn partitions(&self, db: &str, table: &str) -> Result<Vec<Partition>> {
        decode_all("partition", self.raw_range(PARTITIONS, &partition_prefix(db, table))?)
    }

    fn pending(&self, id: &str) -> Result<Option<PendingCommit>> {
        decode("pending commit", id, self.raw(COMMITS, id)?)
    }

    /// Every unfinished commit, by id (its staging directory).
    fn pending_commits(&self) -> Result<Vec<(String, PendingCommit)>> {
        self.raw_range(COMMITS, "")?
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), decode("pending commit", &k, Some(v))?.unwrap_or_default())))
            .collect()
    }

    /// The unfinished commit writing `db.table`, if any.
    fn pending_for(&self, db: &str, table: &str) -> Result<Option<(String, PendingCommit)>> {
        Ok(self.pending_commits()?.into_iter().find(|(_, p)| {
            p.request.as_ref().and_then(|r| r.table.as_ref()).is_some_and(|t| t.db == db && t.name == table)
        }))
    }
}

/// A read transaction: a consistent snapshot.
pub(crate) struct Reader {
    txn: ReadTransaction,
    path: Arc<str>,
}

impl Catalog for Reader {
    fn raw(&self, def: Def, key: &str) -> Result<Option<Vec<u8>>> {
        let t = self.txn.open_table(def).map_err(|e| db_error(&self.path, e))?;
        get_raw(&t, key).map_err(|e| db_error(&self.path, e))
    }

    fn raw_range(&self, def: Def, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let t = self.txn.open_table(def).map_err(|e| db_error(&self.path, e))?;
        range_raw(&t, prefix).map_err(|e| db_error(&self.path, e))
    }
}

/// A write transaction, handed to the closure of [`Store::write`].
pub(crate) struct Writer {
    txn: WriteTransaction,
    path: Arc<str>,
}

impl Catalog for Writer {
    fn raw(&self, def: Def, key: &str) -> Result<Option<Vec<u8>>> {
        let t = self.txn.open_table(def).map_err(|e| self.err(e))?;
        get_raw(&t, key).map_err(|e| self.err(e))
    }

    fn raw_range(&self, def: Def, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let t = self.txn.open_table(def).map_err(|e| self.err(e))?;
        range_raw(&t, prefix).map_err(|e| self.err(e))
    }
}

impl Writer {
    fn err(&self, e: impl Into<redb::Error>) -> MetastoreError {
        db_error(&self.path, e)
    }

    fn put(&self, def: Def, key: &str, value: &[u8]) -> Result<()> {
        let mut t = self.txn.open_table(def).map_err(|e| self.err(e))?;
        t.insert(key, value).map_err(|e| self.err(e))?;
        Ok(())
    }

    fn delete(&self, def: Def, key: &str) -> Result<bool> {
        let mut t = self.txn.open_table(def).map_err(|e| self.err(e))?;
        let removed = t.remove(key).map_err(|e| self.err(e))?.is_some();
        Ok(removed)
    }

    pub(crate) fn put_database(&self, d: &Database) -> Result<()> {
        self.put(DATABASES, &d.name, &d.encode_to_vec())
    }

    pub(crate) fn delete_database(&self, name: &str) -> Result<bool> {
        self.delete(DATABASES, name)
    }

    pub(crate) fn put_table(&self, t: &Table) -> Result<()> {
        self.put(TABLES, &table_key(&t.db, &t.name), &t.encode_to_vec())
    }

    /// Removes a table and its partitions.
    pub(crate) fn delete_table(&self, db: &str, name: &str) -> Result<bool> {
        let prefix = partition_prefix(db, name);
        let end = prefix_end(&prefix);
        let mut parts = self.txn.open_table(PARTITIONS).map_err(|e| self.err(e))?;
        parts.retain_in::<&str, _>(prefix.as_str()..end.as_str(), |_, _| false).map_err(|e| self.err(e))?;
        drop(parts);
        self.delete(TABLES, &table_key(db, name))
    }

    pub(crate) fn put_partition(&self, db: &str, table: &str, p: &Partition) -> Result<()> {
        self.put(PARTITIONS, &partition_key(db, table, &p.values), &p.encode_to_vec())
    }

    pub(crate) fn delete_partition(&self, db: &str, table: &str, values: &[String]) -> Result<bool> {
        self.delete(PARTITIONS, &partition_key(db, table, values))
    }

    pub(crate) fn put_pending(&self, id: &str, p: &PendingCommit) -> Result<()> {
        self.put(COMMITS, id, &p.encode_to_vec())
    }

    pub(crate) fn delete_pending(&self, id: &str) -> Result<bool> {
        self.delete(COMMITS, id)
    }
}

#[cfg(test)]
mod tests;
