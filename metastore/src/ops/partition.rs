//! AddPartitions, DropPartitions, ListPartitions, RepairTable (MSCK).

use std::collections::{BTreeMap, HashSet};

use tusk_proto::metastore::{Partition, PartitionSpec, Table, TableRef};

use super::{delete_default_partition_dir, select};
use crate::dfs::Fs;
use crate::error::{MetastoreError, Result};
use crate::metastore::{
    Metastore, dfs_location, location, now_ms, partition_dir, partition_in_table_dir,
    partition_label, partition_names, partition_values, require_table, table_ref,
};
use crate::paths;
use crate::store::Catalog;

impl Metastore {
    /// Registers partitions; a partition without a location gets the
    /// default one, whose directory is created (for external tables too).
    /// All or nothing: an existing partition refuses the whole request
    /// unless `if_not_exists`, which skips it.
    pub(crate) async fn add_partitions(
        &self,
        user: &str,
        tr: Option<&TableRef>,
        parts: Vec<Partition>,
        if_not_exists: bool,
    ) -> Result<Vec<Partition>> {
        let fs = self.dfs.as_user(user).await?;
        let (db, name) = table_ref(tr)?;
        let (_w, r, t) = self.lock_table(&db, &name).await?;
        let now = now_ms();
        let mut seen = HashSet::new();
        let mut add = Vec::new();
        for p in parts {
            let values = partition_values(&t, &p.values)?;
            if r.partition(&db, &name, &values)?.is_some() || !seen.insert(values.clone()) {
                if if_not_exists {
                    continue;
                }
                return Err(MetastoreError::AlreadyExists(format!(
                    "partition already exists: {}",
                    partition_label(&t, &values)
                )));
            }
            let loc = if p.location.trim().is_empty() { String::new() } else { location("LOCATION", &p.location)? };
            add.push(Partition { values, location: loc, created_ms: now });
        }
        drop(r);
        for p in &add {
            if let Some(dir) = partition_dir(&t, p) {
                fs.mkdirs(&dir).await?;
            }
        }
        let stored = add.clone();
        self.store
            .write_async(move |w| {
                for p in &stored {
                    w.put_partition(&db, &name, p)?;
                }
                Ok(())
            })
            .await?;
        Ok(add)
    }

    /// Drops the partitions matching any spec; the data in the table's own
    /// directory goes too unless the table is external.
    pub(crate) async fn drop_partitions(
        &self,
        user: &str,
        tr: Option<&TableRef>,
        specs: &[PartitionSpec],
        if_exists: bool,
    ) -> Result<Vec<Partition>> {
        let fs = self.dfs.as_user(user).await?;
        let (db, name) = table_ref(tr)?;
        let (_w, r, t) = self.lock_table(&db, &name).await?;
        let parts = r.partitions(&db, &name)?;
        drop(r);
        let dropped = select(&t, specs, &parts, if_exists)?;
        if !t.external {
            delete_partition_data(&fs, &t, &dropped).await?;
        }
        let gone = dropped.clone();
        self.store
            .write_async(move |w| {
                for p in &gone {
                    w.delete_partition(&db, &name, &p.values)?;
                }
                Ok(())
            })
            .await?;
        Ok(dropped)
    }

    /// A table's partitions, sorted by values.
    pub(crate) fn list_partitions(&self, tr: Option<&TableRef>) -> Result<Vec<Partition>> {
        let (db, name) = table_ref(tr)?;
        let r = self.store.read()?;
        require_table(&r, &db, &name)?;
        r.partitions(&db, &name)
    }

    /// MSCK REPAIR TABLE: walks the table's directory down one level per
    /// partition column, reading `k=v` names in column order (hidden and
    /// other names skipped); registers what the catalog lacks (`add`) and
    /// forgets default-location partitions whose directory is gone (`drop`).
    pub(crate) async fn repair_table(
        &self,
        user: &str,
        tr: Option<&TableRef>,
        add: bool,
        drop_missing: bool,
    ) -> Result<(Vec<Partition>, Vec<Partition>)> {
        let fs = self.dfs.as_user(user).await?;
        let (db, name) = table_ref(tr)?;
        let (_w, r, t) = self.lock_table(&db, &name).await?;
        let names = partition_names(&t);
        if names.is_empty() || !(add || drop_missing) {
            return Ok((Vec::new(), Vec::new()));
        }
        let registered = r.partitions(&db, &name)?;
        drop(r);
        let table_dir = dfs_location(&t.location, &format!("MSCK REPAIR TABLE {db}.{name}"))?.to_string();
        let found = walk(&fs, &table_dir, &names).await?;
        let known: HashSet<&Vec<String>> = registered.iter().map(|p| &p.values).collect();
        let now = now_ms();
        let mut added = Vec::new();
        if add {
            for (values, rel) in &found {
                if known.contains(values) || partition_values(&t, values).is_err() {
                    continue;
                }
                // A directory named with other escapes than ours keeps its name.
                let location = if *rel == paths::partition_path(&names, values) {
                    String::new()
                } else {
                    paths::join(&table_dir, rel)
                };
                added.push(Partition { values: values.clone(), location, created_ms: now });
            }
        }
        let mut dropped = Vec::new();
        if drop_missing {
            let present: HashSet<&String> = found.values().collect();
            dropped = registered
                .into_iter()
                .filter(|p| p.location.is_empty() && !present.contains(&paths::partition_path(&names, &p.values)))
                .collect();
        }
        let (a, d) = (added.clone(), dropped.clone());
        self.store
            .write_async(move |w| {
                for p in &a {
                    w.put_partition(&db, &name, p)?;
                }
                for p in &d {
                    w.delete_partition(&db, &name, &p.values)?;
                }
                Ok(())
            })
            .await?;
        Ok((added, dropped))
    }
}

/// Deletes the dropped partitions' data that lies in the table's own
/// directory (default locations, and own locations below the table).
async fn delete_partition_data(fs: &Fs, t: &Table, dropped: &[Partition]) -> Result<()> {
    let names = partition_names(t);
    for p in dropped.iter().filter(|p| partition_in_table_dir(t, p)) {
        match (p.location.is_empty(), paths::dfs_path(&t.location)) {
            (true, Some(table_dir)) => delete_default_partition_dir(fs, table_dir, &names, &p.values).await?,
            _ => {
                if let Some(dir) = partition_dir(t, p) {
                    fs.delete(&dir).await?;
                }
            }
        }
    }
    Ok(())
}

/// The partition directories under `table_dir`: values → path relative to
/// the table, one `k=v` level per name.
async fn walk(fs: &Fs, table_dir: &str, names: &[String]) -> Result<BTreeMap<Vec<String>, String>> {
    let mut level: Vec<(String, Vec<String>, String)> = vec![(table_dir.to_string(), Vec::new(), String::new())];
    for name in names {
        let mut next = Vec::new();
        for (dir, values, rel) in level {
            for e in fs.list(&dir).await? {
                if !e.is_dir || paths::is_hidden(&e.name) {
                    continue;
                }
                if let Some(v) = paths::parse_partition_component(&e.name, name) {
                    let mut vs = values.clone();
                    vs.push(v);
                    let r = if rel.is_empty() { e.name.clone() } else { format!("{rel}/{}", e.name) };
                    next.push((e.path.clone(), vs, r));
                }
            }
        }
        level = next;
    }
    Ok(level.into_iter().map(|(_, values, rel)| (values, rel)).collect())
}
