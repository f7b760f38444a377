//! The catalog operations, one file per kind of object. Each mutation
//! takes the metastore's write lock, checks against a snapshot, does its
//! DFS work as the request's user, then commits one durable transaction.

mod data;
mod database;
mod partition;
mod table;

pub(crate) use table::{prepare_location, prepare_table};

use tusk_proto::metastore::{Partition, PartitionSpec, Table};

use crate::dfs::Fs;
use crate::error::{MetastoreError, Result};
use crate::metastore::{now_ms, partition_names};
use crate::paths;
use crate::store::{Catalog, Writer};

/// The partitions matching every `name = value` of `spec` (names checked
/// against the partition columns, case-insensitively).
pub(crate) fn matching<'a>(t: &Table, spec: &PartitionSpec, parts: &'a [Partition]) -> Result<Vec<&'a Partition>> {
    let names = partition_names(t);
    let table = paths::table_ref_display(&t.db, &t.name);
    if names.is_empty() {
        return Err(MetastoreError::invalid(format!("table {table} is not partitioned")));
    }
    if spec.names.len() != spec.values.len() {
        return Err(MetastoreError::invalid(format!(
            "partition spec of {table}: {} name(s) but {} value(s)",
            spec.names.len(),
            spec.values.len()
        )));
    }
    let mut wanted = Vec::new();
    for (n, v) in spec.names.iter().zip(&spec.values) {
        let n = n.trim().to_lowercase();
        let Some(i) = names.iter().position(|c| *c == n) else {
            return Err(MetastoreError::invalid(format!(
                "{n} is not a partition column of {table} (partition columns: {})",
                names.join(", ")
            )));
        };
        wanted.push((i, v.as_str()));
    }
    Ok(parts.iter().filter(|p| wanted.iter().all(|(i, v)| p.values.get(*i).map(String::as_str) == Some(*v))).collect())
}

/// The partitions matched by any of `specs`, in catalog order; a spec
/// matching none is `no partition matches (k=v) in db.t` unless `if_exists`.
pub(crate) fn select(
    t: &Table,
    specs: &[PartitionSpec],
    parts: &[Partition],
    if_exists: bool,
) -> Result<Vec<Partition>> {
    let mut hit = vec![false; parts.len()];
    for spec in specs {
        let m = matching(t, spec, parts)?;
        if m.is_empty() && !if_exists {
            return Err(MetastoreError::NotFound(format!(
                "no partition matches {} in {}",
                paths::partition_display(&spec.names, &spec.values),
                paths::table_ref_display(&t.db, &t.name)
            )));
        }
        for p in m {
            if let Some(i) = parts.iter().position(|q| std::ptr::eq(q, p)) {
                hit[i] = true;
            }
        }
    }
    Ok(parts.iter().zip(hit).filter(|(_, h)| *h).map(|(p, _)| p.clone()).collect())
}

/// Records a DML change of a table (its modified time).
pub(crate) fn touch(w: &Writer, db: &str, name: &str) -> Result<Option<Table>> {
    let Some(mut t) = w.table(db, name)? else { return Ok(None) };
    t.modified_ms = now_ms();
    w.put_table(&t)?;
    Ok(Some(t))
}

/// Deletes a partition's default directory and then its parents up to
/// the table directory while they are empty (`dt=1/` after `dt=1/hr=2`).
pub(crate) async fn delete_default_partition_dir(
    fs: &Fs,
    table_dir: &str,
    names: &[String],
    values: &[String],
) -> Result<()> {
    for k in (1..=names.len()).rev() {
        let dir = paths::default_partition_location(table_dir, &names[..k], &values[..k]);
        if k < names.len() && !fs.list(&dir).await?.is_empty() {
            break;
        }
        fs.delete(&dir).await?;
    }
    Ok(())
}
