//! CreateTable, GetTables, ListTables, DropTable, RenameTable.

use std::collections::HashSet;

use tusk_proto::metastore::{Database, Table, TableRef};

use super::database::delete_table_data;
use crate::dfs::Fs;
use crate::error::{MetastoreError, Result};
use crate::metastore::{
    Metastore, column_name, location, no_pending_commit, now_ms, object_name, require_database,
    table_ref,
};
use crate::paths::{self, DEFAULT_DATABASE};
use crate::store::{Catalog, Reader};

/// The storage formats a table may have.
const FORMATS: [&str; 4] = ["parquet", "textfile", "csv", "json"];
/// The compressions a table may name.
const COMPRESSIONS: [&str; 5] = ["none", "gzip", "bzip2", "xz", "zstd"];

/// Checks a table definition and puts it in stored form: names
/// lower-cased, format lower-cased (`textfile` when empty), location
/// normalized, owner defaulted to `user`. A CTAS table may come without
/// columns (the query's are taken as they are).
pub(crate) fn prepare_table(mut t: Table, user: &str, ctas: bool) -> Result<Table> {
    t.db = if t.db.trim().is_empty() { DEFAULT_DATABASE.to_string() } else { object_name("database", &t.db)? };
    t.name = object_name("table", &t.name)?;
    let table = paths::table_ref_display(&t.db, &t.name);
    if t.columns.is_empty() && !ctas {
        return Err(MetastoreError::invalid(format!("table {table} has no columns")));
    }
    let mut seen = HashSet::new();
    for c in t.columns.iter_mut().chain(t.partition_columns.iter_mut()) {
        c.name = column_name(&c.name)?;
        if c.data_type.trim().is_empty() {
            return Err(MetastoreError::invalid(format!("column {} of {table} has no type", c.name)));
        }
        if !seen.insert(c.name.clone()) {
            return Err(MetastoreError::invalid(format!("duplicate column name {} in table {table}", c.name)));
        }
    }
    t.format = t.format.trim().to_lowercase();
    if t.format.is_empty() {
        t.format = "textfile".to_string();
    }
    if !FORMATS.contains(&t.format.as_str()) {
        return Err(MetastoreError::invalid(format!(
            "table {table}: unknown format '{}' (expected parquet, textfile, csv or json)",
            t.format
        )));
    }
    check_format_options(&t, &table)?;
    if !t.location.trim().is_empty() {
        t.location = location("LOCATION", &t.location)?;
    }
    if t.owner.is_empty() {
        t.owner = user.to_string();
    }
    Ok(t)
}

fn check_format_options(t: &Table, table: &str) -> Result<()> {
    let bad = |k: &str, v: &str, why: &str| Err(MetastoreError::invalid(format!("table {table}: {k} = '{v}': {why}")));
    for (k, v) in &t.format_options {
        match k.as_str() {
            "field.delim" if v.chars().count() != 1 => return bad(k, v, "must be one character"),
            "header" if v != "true" && v != "false" => return bad(k, v, "must be true or false"),
            "compression" if !COMPRESSIONS.contains(&v.as_str()) => {
                return bad(k, v, "must be none, gzip, bzip2, xz or zstd");
            }
            _ => {}
        }
    }
    Ok(())
}

/// True when `db.name` is being created by an unfinished CTAS commit.
fn being_created(r: &Reader, db: &str, name: &str) -> Result<Option<Table>> {
    Ok(r.pending_for(db, name)?.and_then(|(_, p)| match p.request.and_then(|q| q.create) {
        Some(_) => p.table,
        None => None,
    }))
}

/// Fills in the default location (`<database>/<table>`) and prepares the
/// directory: an external table's own LOCATION must exist; any other
/// directory is created.
pub(crate) async fn prepare_location(fs: &Fs, d: &Database, t: &mut Table) -> Result<()> {
    let explicit = !t.location.is_empty();
    if !explicit {
        t.location = paths::default_table_location(&d.location, &t.name);
    }
    let Some(dir) = paths::dfs_path(&t.location) else {
        if t.external {
            return Ok(());
        }
        return Err(MetastoreError::invalid(format!(
            "managed table {}: LOCATION {} is not in the DFS",
            paths::table_ref_display(&t.db, &t.name),
            t.location
        )));
    };
    if t.external && explicit {
        return match fs.stat(dir).await? {
            None => Err(MetastoreError::invalid(format!("LOCATION {dir} does not exist"))),
            Some(st) if !st.is_dir => Err(MetastoreError::invalid(format!("LOCATION {dir} is not a directory"))),
            Some(_) => Ok(()),
        };
    }
    fs.mkdirs(dir).await
}

impl Metastore {
    /// Creates a table (its directory too, unless it is external with a
    /// LOCATION, which must exist). Returns whether it was created and the
    /// table as stored.
    pub(crate) async fn create_table(
        &self,
        user: &str,
        table: Option<Table>,
        if_not_exists: bool,
    ) -> Result<(bool, Table)> {
        let fs = self.dfs.as_user(user).await?;
        let t = table.ok_or_else(|| MetastoreError::invalid("the request names no table"))?;
        let mut t = prepare_table(t, user, false)?;
        let _w = self.writes.lock().await;
        let r = self.store.read()?;
        let d = require_database(&r, &t.db)?;
        let existing = match r.table(&t.db, &t.name)? {
            Some(e) => Some(e),
            None => being_created(&r, &t.db, &t.name)?,
        };
        if let Some(e) = existing {
            if if_not_exists {
                return Ok((false, e));
            }
            return Err(MetastoreError::table_exists(&t.db, &t.name));
        }
        drop(r);
        prepare_location(&fs, &d, &mut t).await?;
        t.created_ms = now_ms();
        t.modified_ms = t.created_ms;
        let stored = t.clone();
        self.store.write_async(move |w| w.put_table(&stored)).await?;
        Ok((true, t))
    }

    /// The tables that exist among `refs`, in request order.
    pub(crate) fn get_tables(&self, refs: &[TableRef]) -> Result<Vec<Table>> {
        let r = self.store.read()?;
        let mut out = Vec::new();
        for tr in refs {
            // A name that cannot be valid names no table.
            if let Ok((db, name)) = table_ref(Some(tr))
                && let Some(t) = r.table(&db, &name)?
            {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// The tables of a database, sorted by name.
    pub(crate) fn list_tables(&self, db: &str) -> Result<Vec<Table>> {
        let db = if db.trim().is_empty() { DEFAULT_DATABASE.to_string() } else { object_name("database", db)? };
        let r = self.store.read()?;
        require_database(&r, &db)?;
        r.tables(&db)
    }

    /// Drops a table; a managed table's directory goes with it.
    pub(crate) async fn drop_table(&self, user: &str, tr: Option<&TableRef>, if_exists: bool) -> Result<bool> {
        let fs = self.dfs.as_user(user).await?;
        let (db, name) = table_ref(tr)?;
        let _w = self.writes.lock().await;
        let r = self.store.read()?;
        let Some(t) = r.table(&db, &name)? else {
            if if_exists {
                return Ok(false);
            }
            require_database(&r, &db)?;
            return Err(MetastoreError::table_not_found(&db, &name));
        };
        no_pending_commit(&r, &db, &name)?;
        drop(r);
        delete_table_data(&fs, &t).await?;
        self.store.write_async(move |w| w.delete_table(&db, &name)).await?;
        Ok(true)
    }

    /// Renames a table. A managed table at its default location moves to
    /// the new default location (one DFS rename); anything else keeps its
    /// location.
    pub(crate) async fn rename_table(
        &self,
        user: &str,
        from: Option<&TableRef>,
        to: Option<&TableRef>,
    ) -> Result<Table> {
        let fs = self.dfs.as_user(user).await?;
        let (fdb, fname) = table_ref(from)?;
        let (tdb, tname) = table_ref(to)?;
        let old = paths::table_ref_display(&fdb, &fname);
        let new = paths::table_ref_display(&tdb, &tname);
        if old == new {
            return Err(MetastoreError::invalid(format!("cannot rename {old} to itself")));
        }
        let (_w, r, t) = self.lock_table(&fdb, &fname).await?;
        let to_db = require_database(&r, &tdb)?;
        if r.table(&tdb, &tname)?.is_some() || being_created(&r, &tdb, &tname)?.is_some() {
            return Err(MetastoreError::table_exists(&tdb, &tname));
        }
        let from_db = require_database(&r, &fdb)?;
        let mut parts = r.partitions(&fdb, &fname)?;
        drop(r);

        let mut nt = t.clone();
        nt.db = tdb.clone();
        nt.name = tname.clone();
        let old_default = paths::default_table_location(&from_db.location, &fname);
        if !t.external && t.location == old_default {
            let new_loc = paths::default_table_location(&to_db.location, &tname);
            if let (Some(src), Some(dst)) = (paths::dfs_path(&t.location), paths::dfs_path(&new_loc)) {
                if fs.exists(dst).await? {
                    return Err(MetastoreError::AlreadyExists(format!(
                        "cannot rename {old} to {new}: {dst} already exists"
                    )));
                }
                if fs.exists(src).await? {
                    if let Some(parent) = tusk_common::path::parent(dst) {
                        fs.mkdirs(parent).await?;
                    }
                    fs.rename(src, dst).await?;
                }
                // Partitions with a location of their own inside the table
                // moved with it.
                for p in parts.iter_mut() {
                    if let Some(rest) = p.location.strip_prefix(src).filter(|r| r.starts_with('/')) {
                        p.location = format!("{dst}{rest}");
                    }
                }
            }
            nt.location = new_loc;
        }
        let stored = nt.clone();
        self.store
            .write_async(move |w| {
                w.delete_table(&fdb, &fname)?;
                w.put_table(&stored)?;
                for p in &parts {
                    w.put_partition(&tdb, &tname, p)?;
                }
                Ok(())
            })
            .await?;
        Ok(nt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tusk_proto::metastore::Column;

    fn col(name: &str) -> Column {
        Column { name: name.into(), data_type: "INT".into(), comment: String::new() }
    }

    fn t(cols: &[&str], parts: &[&str]) -> Table {
        Table {
            db: "Sales".into(),
            name: "Orders".into(),
            columns: cols.iter().map(|c| col(c)).collect(),
            partition_columns: parts.iter().map(|c| col(c)).collect(),
            ..Default::default()
        }
    }

    fn refused(t: Table, ctas: bool) -> String {
        match prepare_table(t, "alice", ctas) {
            Ok(t) => format!("accepted: {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn tables_are_stored_normalized() {
        let mut def = t(&["A", "b"], &["DT"]);
        def.location = "dfs:///data/x/".into();
        def.format = " CSV ".into();
        let p = prepare_table(def, "alice", false).unwrap();
        assert_eq!((p.db.as_str(), p.name.as_str()), ("sales", "orders"));
        assert_eq!(p.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p.partition_columns[0].name, "dt");
        assert_eq!((p.format.as_str(), p.location.as_str(), p.owner.as_str()), ("csv", "/data/x", "alice"));
        let p = prepare_table(Table { db: String::new(), ..t(&["a"], &[]) }, "bob", false).unwrap();
        assert_eq!((p.db.as_str(), p.format.as_str()), ("default", "textfile"));
        // CTAS may leave the columns to the query.
        assert!(prepare_table(t(&[], &[]), "alice", true).is_ok());
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        assert_eq!(refused(t(&[], &[]), false), "table sales.orders has no columns");
        assert_eq!(refused(t(&["a", "A"], &[]), false), "duplicate column name a in table sales.orders");
        assert_eq!(refused(t(&["a"], &["a"]), false), "duplicate column name a in table sales.orders");
        assert!(refused(Table { name: "a/b".into(), ..t(&["a"], &[]) }, false).contains("invalid table name 'a/b'"));
        assert_eq!(refused(Table { name: " ".into(), ..t(&["a"], &[]) }, false), "table name is empty");
        let e = refused(Table { format: "orc".into(), ..t(&["a"], &[]) }, false);
        assert!(e.contains("unknown format 'orc'"), "{e}");
        let mut bad = t(&["a"], &[]);
        bad.format_options.insert("field.delim".into(), "ab".into());
        assert!(refused(bad, false).contains("field.delim"));
        let mut bad = t(&["a"], &[]);
        bad.format_options.insert("compression".into(), "lz4".into());
        assert!(refused(bad, false).contains("compression"));
        let mut bad = t(&["a"], &[]);
        bad.columns[0].data_type = String::new();
        assert!(refused(bad, false).contains("has no type"));
        let e = refused(Table { location: "relative/x".into(), ..t(&["a"], &[]) }, false);
        assert!(e.contains("LOCATION relative/x"), "{e}");
        // Other stores are kept as written.
        let p = prepare_table(Table { location: "s3://b/x".into(), ..t(&["a"], &[]) }, "a", false).unwrap();
        assert_eq!(p.location, "s3://b/x");
    }
}
