//! LoadData (LOAD DATA INPATH) and TruncateTable.

use std::collections::HashSet;

use tusk_proto::metastore::{Partition, PartitionSpec, TableRef};

use super::{select, touch};
use crate::error::{MetastoreError, Result};
use crate::metastore::{
    Metastore, dfs_location, location, now_ms, partition_dir, partition_names, partition_values,
    table_ref,
};
use crate::paths;
use crate::store::Catalog;

impl Metastore {
    /// Moves a file, or the data files of a directory, into the table or
    /// one of its partitions (created if missing). With `overwrite` the
    /// data there is deleted first; otherwise a name taken already gets
    /// Hive's `_copy_N` suffix. Returns the number of files moved.
    pub(crate) async fn load_data(
        &self,
        user: &str,
        tr: Option<&TableRef>,
        source: &str,
        partition: &[String],
        overwrite: bool,
    ) -> Result<u64> {
        let fs = self.dfs.as_user(user).await?;
        let (db, name) = table_ref(tr)?;
        let src = location("LOAD DATA: source", source)?;
        let src = dfs_location(&src, "LOAD DATA")?.to_string();
        let (_w, r, t) = self.lock_table(&db, &name).await?;
        let table = paths::table_ref_display(&db, &name);
        let (new_partition, target) = if partition_names(&t).is_empty() {
            if !partition.is_empty() {
                return Err(MetastoreError::invalid(format!("table {table} is not partitioned")));
            }
            (None, dfs_location(&t.location, &format!("LOAD DATA into {table}"))?.to_string())
        } else {
            if partition.is_empty() {
                return Err(MetastoreError::invalid(format!(
                    "LOAD DATA into the partitioned table {table} needs a PARTITION ({})",
                    partition_names(&t).join(", ")
                )));
            }
            let values = partition_values(&t, partition)?;
            let existing = r.partition(&db, &name, &values)?;
            let p = existing.clone().unwrap_or(Partition { values, location: String::new(), created_ms: now_ms() });
            let dir = partition_dir(&t, &p).ok_or_else(|| {
                MetastoreError::invalid(format!("LOAD DATA: the partition's location {} is not in the DFS", p.location))
            })?;
            (existing.is_none().then_some(p), dir)
        };
        drop(r);

        let Some(st) = fs.stat(&src).await? else {
            return Err(MetastoreError::NotFound(format!("LOAD DATA: source {src} does not exist")));
        };
        if tusk_common::path::is_ancestor_or_self(&target, &src)
            || tusk_common::path::is_ancestor_or_self(&src, &target)
        {
            return Err(MetastoreError::invalid(format!(
                "LOAD DATA: source {src} overlaps the table's directory {target}"
            )));
        }
        let files = if st.is_dir {
            let entries = fs.data_entries(&src).await?;
            if let Some(d) = entries.iter().find(|e| e.is_dir) {
                return Err(MetastoreError::invalid(format!(
                    "LOAD DATA: source {src} holds a directory ({}); only files can be loaded",
                    d.name
                )));
            }
            entries
        } else {
            vec![st]
        };
        fs.mkdirs(&target).await?;
        if overwrite {
            fs.delete_data(&target).await?;
        }
        let mut taken: HashSet<String> = fs.list(&target).await?.into_iter().map(|e| e.name).collect();
        let mut moved = 0;
        for f in &files {
            let name = unique_name(&f.name, &taken);
            fs.rename(&f.path, &paths::join(&target, &name)).await?;
            taken.insert(name);
            moved += 1;
        }
        self.store
            .write_async(move |w| {
                if let Some(p) = &new_partition {
                    w.put_partition(&db, &name, p)?;
                }
                touch(w, &db, &name)?;
                Ok(())
            })
            .await?;
        Ok(moved)
    }

    /// Deletes the data files of a managed table, or of the partitions
    /// matching `specs` (all of them when none), keeping the table, its
    /// partitions and their directories.
    pub(crate) async fn truncate_table(
        &self,
        user: &str,
        tr: Option<&TableRef>,
        specs: &[PartitionSpec],
    ) -> Result<()> {
        let fs = self.dfs.as_user(user).await?;
        let (db, name) = table_ref(tr)?;
        let (_w, r, t) = self.lock_table(&db, &name).await?;
        let table = paths::table_ref_display(&db, &name);
        if t.external {
            return Err(MetastoreError::Precondition(format!("cannot truncate non-managed table {table}")));
        }
        let dirs: Vec<String> = if partition_names(&t).is_empty() {
            if !specs.is_empty() {
                return Err(MetastoreError::invalid(format!("table {table} is not partitioned")));
            }
            vec![dfs_location(&t.location, &format!("TRUNCATE TABLE {table}"))?.to_string()]
        } else {
            let parts = r.partitions(&db, &name)?;
            let chosen = if specs.is_empty() { parts } else { select(&t, specs, &parts, false)? };
            chosen.iter().filter_map(|p| partition_dir(&t, p)).collect()
        };
        drop(r);
        for dir in &dirs {
            fs.delete_data(dir).await?;
        }
        self.store.write_async(move |w| touch(w, &db, &name).map(|_| ())).await?;
        Ok(())
    }
}

/// `name`, or Hive's `<stem>_copy_<n><.ext>` with the first free `n`.
fn unique_name(name: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(name) {
        return name.to_string();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let mut n = 1;
    loop {
        let candidate = format!("{stem}_copy_{n}{ext}");
        if !taken.contains(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clashing_names_get_hive_copy_suffixes() {
        let taken: HashSet<String> = ["a.csv", "a_copy_1.csv", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(unique_name("c.csv", &taken), "c.csv");
        assert_eq!(unique_name("a.csv", &taken), "a_copy_2.csv");
        assert_eq!(unique_name("b", &taken), "b_copy_1");
    }
}
