//! CommitWrite: moving a query's output from its staging directory into a
//! table as one step that survives a restart.
//!
//! 1. Checks and the plan (every move: staging entries → table or
//!    partition directory), under the write lock.
//! 2. The plan is recorded in `pending_commits` (fsync) before any file
//!    moves.
//! 3. The moves. The staging directory is first renamed to a hidden
//!    sibling `.commit-<name>` (custody: the client that wrote it can no
//!    longer change or delete what is left to move). OVERWRITE then moves
//!    the target's data aside into `.commit-<name>/.old/<i>/`, and every
//!    staged entry is renamed in. Every step is idempotent: an entry
//!    already gone from staging was moved; an entry of the target that is
//!    one of ours and gone from staging is new data, not old.
//! 4. One transaction: the CTAS table, the new partitions, the table's
//!    modified time, and the pending record removed.
//! 5. The custody directory (old data included) is deleted.
//!
//! A commit that fails before moving anything is forgotten (nothing
//! changed; the client may retry). One that fails halfway stays recorded
//! and [`CommitResumer`] finishes it, as it does after a restart; until
//! then the table refuses other changes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tusk_proto::metastore::{CommitWriteRequest, CommitWriteResponse, Partition, Table};

use crate::dfs::Fs;
use crate::error::{MetastoreError, Result};
use crate::metastore::{
    Metastore, dfs_location, location, no_pending_commit, now_ms, partition_dir, partition_names, partition_values,
    require_database, require_table, table_ref,
};
use crate::ops::{prepare_location, prepare_table};
use crate::paths;
use crate::store::{Catalog, PendingCommit, PendingMove, Reader};

/// First retry delay of an unfinished commit; doubled up to [`MAX_RETRY`].
const MIN_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(10);

impl Metastore {
    /// Commits a query's output into a table (see the module docs).
    pub(crate) async fn commit_write(&self, req: CommitWriteRequest) -> Result<CommitWriteResponse> {
        let fs = self.dfs.as_user(&req.user).await?;
        let (db, name) = table_ref(req.table.as_ref())?;
        let staging = location("staging directory", &req.staging_dir)?;
        let staging = dfs_location(&staging, "CommitWrite")?.to_string();
        if staging == "/" {
            return Err(MetastoreError::invalid("the staging directory cannot be /"));
        }
        let _w = self.writes.lock().await;
        let pending = self.plan(&fs, &db, &name, &staging, req).await?;
        let record = pending.clone();
        let id = staging.clone();
        self.store.write_async(move |w| w.put_pending(&id, &record)).await?;
        let mut progressed = false;
        match self.finish_commit(&fs, &staging, &pending, &mut progressed).await {
            Ok(resp) => Ok(resp),
            Err(e) if !progressed => {
                // Nothing moved: forget the commit, the client may retry it.
                let id = staging.clone();
                if let Err(forget) = self.store.write_async(move |w| w.delete_pending(&id)).await {
                    tracing::warn!("metastore: forgetting the failed commit of {staging}: {forget}");
                    self.resume.notify_one();
                }
                Err(e)
            }
            Err(e) => {
                tracing::warn!("metastore: the commit of {staging} into {db}.{name} stopped halfway: {e}");
                self.resume.notify_one();
                Err(e.reworded(|m| {
                    format!("{m} (the commit into {db}.{name} is recorded and will be finished in the background)")
                }))
            }
        }
    }

    /// Step 1: the checks, and the moves to make.
    async fn plan(
        &self,
        fs: &Fs,
        db: &str,
        name: &str,
        staging: &str,
        req: CommitWriteRequest,
    ) -> Result<PendingCommit> {
        let r = self.store.read()?;
        if r.pending(staging)?.is_some() {
            return Err(MetastoreError::Precondition(format!("a commit of {staging} is in progress already")));
        }
        no_pending_commit(&r, db, name)?;
        let table = match &req.create {
            Some(create) => self.plan_create(fs, &r, db, name, create, &req.user).await?,
            None => require_table(&r, db, name)?,
        };
        let label = paths::table_ref_display(db, name);
        match fs.stat(staging).await? {
            Some(st) if st.is_dir => {}
            Some(_) => return Err(MetastoreError::invalid(format!("staging directory {staging} is a file"))),
            None => return Err(MetastoreError::NotFound(format!("staging directory {staging} does not exist"))),
        }
        let table_dir = dfs_location(&table.location, &format!("writing into {label}"))?.to_string();
        let names = partition_names(&table);
        let mut moves = Vec::new();
        if names.is_empty() {
            if !req.written.is_empty() {
                return Err(MetastoreError::invalid(format!(
                    "table {label} is not partitioned; the commit names partitions"
                )));
            }
            moves.push(PendingMove {
                source_dir: staging.to_string(),
                target_dir: table_dir,
                names: data_names(fs, staging).await?,
                partition: Vec::new(),
                location: String::new(),
            });
        } else {
            let mut seen = HashSet::new();
            for p in &req.written {
                let values = partition_values(&table, &p.values)?;
                if !seen.insert(values.clone()) {
                    return Err(MetastoreError::invalid(format!(
                        "the commit names partition {} twice",
                        paths::partition_display(&names, &values)
                    )));
                }
                let registered = if req.create.is_some() { None } else { r.partition(db, name, &values)? };
                let new_location =
                    if p.location.trim().is_empty() { String::new() } else { location("LOCATION", &p.location)? };
                let target = partition_dir(
                    &table,
                    registered.as_ref().unwrap_or(&Partition {
                        values: values.clone(),
                        location: new_location.clone(),
                        created_ms: 0,
                    }),
                )
                .ok_or_else(|| MetastoreError::invalid(format!("a partition of {label} is not in the DFS")))?;
                let source = paths::join(staging, &paths::partition_path(&names, &values));
                moves.push(PendingMove {
                    names: data_names(fs, &source).await?,
                    source_dir: source,
                    target_dir: target,
                    partition: values,
                    location: new_location,
                });
            }
        }
        drop(r);
        if !req.overwrite {
            for m in &moves {
                let present: HashSet<String> = fs.list(&m.target_dir).await?.into_iter().map(|e| e.name).collect();
                if let Some(n) = m.names.iter().find(|n| present.contains(*n)) {
                    return Err(MetastoreError::AlreadyExists(format!(
                        "cannot add {}/{n} to {label}: {}/{n} exists",
                        m.source_dir, m.target_dir
                    )));
                }
            }
        }
        let custody = custody_path(staging);
        // A leftover of an earlier commit of the same directory (its old files).
        fs.delete(&custody).await?;
        Ok(PendingCommit { request: Some(req), table: Some(table), moves, recorded_ms: now_ms(), custody })
    }

    /// The checks of a CTAS: the table to create, location filled in.
    async fn plan_create(
        &self,
        fs: &Fs,
        r: &Reader,
        db: &str,
        name: &str,
        create: &Table,
        user: &str,
    ) -> Result<Table> {
        let mut c = create.clone();
        if c.name.is_empty() {
            c.name = name.to_string();
            c.db = db.to_string();
        }
        let mut t = prepare_table(c, user, true)?;
        if (t.db.as_str(), t.name.as_str()) != (db, name) {
            return Err(MetastoreError::invalid(format!(
                "CTAS: the table created ({}.{}) is not the table written ({db}.{name})",
                t.db, t.name
            )));
        }
        let d = require_database(r, db)?;
        if r.table(db, name)?.is_some() {
            return Err(MetastoreError::table_exists(db, name));
        }
        prepare_location(fs, &d, &mut t).await?;
        if let Some(dir) = paths::dfs_path(&t.location)
            && !fs.data_entries(dir).await?.is_empty()
        {
            return Err(MetastoreError::Precondition(format!(
                "CREATE TABLE {db}.{name} AS SELECT: its location {dir} is not empty"
            )));
        }
        t.created_ms = now_ms();
        t.modified_ms = t.created_ms;
        Ok(t)
    }

    /// Steps 3 to 5, for a fresh commit and for a resumed one alike.
    /// `progressed` turns true once a file has moved.
    pub(crate) async fn finish_commit(
        &self,
        fs: &Fs,
        id: &str,
        pending: &PendingCommit,
        progressed: &mut bool,
    ) -> Result<CommitWriteResponse> {
        let req = pending.request.clone().unwrap_or_default();
        let table = pending.table.clone().ok_or_else(|| MetastoreError::Internal(format!("commit {id}: no table")))?;
        let (db, name) = (table.db.clone(), table.name.clone());
        let ctas = req.create.is_some();
        for m in &pending.moves {
            fs.mkdirs(&m.target_dir).await?;
        }
        // Custody: from here on the staging directory is the metastore's.
        let root = if pending.custody.is_empty() { id } else { pending.custody.as_str() };
        if root != id && !fs.exists(root).await? && fs.exists(id).await? {
            fs.rename(id, root).await?;
            *progressed = true;
        }
        let mut files = 0;
        for (i, m) in pending.moves.iter().enumerate() {
            let source = match m.source_dir.strip_prefix(id) {
                Some(rest) => format!("{root}{rest}"),
                None => m.source_dir.clone(),
            };
            let in_staging: HashSet<String> = fs.list(&source).await?.into_iter().map(|e| e.name).collect();
            let ours: HashSet<&str> = m.names.iter().map(String::as_str).collect();
            let in_target: HashSet<String> = if req.overwrite {
                let aside = paths::join(root, &format!(".old/{i}"));
                let mut kept = HashSet::new();
                for e in fs.data_entries(&m.target_dir).await? {
                    let moved_in = ours.contains(e.name.as_str()) && !in_staging.contains(&e.name);
                    let ancestor = |dir: &str| tusk_common::path::is_ancestor_or_self(&e.path, dir);
                    if moved_in || ancestor(id) || ancestor(root) {
                        kept.insert(e.name);
                        continue;
                    }
                    fs.mkdirs(&aside).await?;
                    fs.rename(&e.path, &paths::join(&aside, &e.name)).await?;
                    *progressed = true;
                }
                kept
            } else {
                fs.list(&m.target_dir).await?.into_iter().map(|e| e.name).collect()
            };
            for n in &m.names {
                if in_staging.contains(n) {
                    fs.rename(&paths::join(&source, n), &paths::join(&m.target_dir, n)).await?;
                    *progressed = true;
                } else if !in_target.contains(n) {
                    tracing::error!(
                        "metastore: commit {id}: {source}/{n} is gone, neither staged nor in {}",
                        m.target_dir
                    );
                    continue;
                }
                files += 1;
            }
        }
        let id_owned = id.to_string();
        let moves = pending.moves.clone();
        let (added, table) = self
            .store
            .write_async(move |w| {
                let now = now_ms();
                let mut t = if ctas {
                    if w.table(&db, &name)?.is_some() {
                        return Err(MetastoreError::table_exists(&db, &name));
                    }
                    table
                } else {
                    require_table(w, &db, &name)?
                };
                t.modified_ms = now;
                w.put_table(&t)?;
                let mut added = Vec::new();
                for m in moves.iter().filter(|m| !m.partition.is_empty()) {
                    if w.partition(&db, &name, &m.partition)?.is_none() {
                        let p =
                            Partition { values: m.partition.clone(), location: m.location.clone(), created_ms: now };
                        w.put_partition(&db, &name, &p)?;
                        added.push(p);
                    }
                }
                w.delete_pending(&id_owned)?;
                Ok((added, t))
            })
            .await?;
        if let Err(e) = fs.delete(root).await {
            tracing::warn!(
                "metastore: the commit into {}.{} is done but its staging directory {id} stays: {e}",
                table.db,
                table.name
            );
        }
        Ok(CommitWriteResponse { files, added, table: Some(table) })
    }
}

/// Where a staging directory goes once its commit starts moving files: a
/// hidden sibling, `.commit-<name>`.
fn custody_path(staging: &str) -> String {
    let parent = tusk_common::path::parent(staging).unwrap_or("/");
    paths::join(parent, &format!(".commit-{}", tusk_common::path::file_name(staging)))
}

/// Names of the data entries of a staging directory (none when missing).
async fn data_names(fs: &Fs, dir: &str) -> Result<Vec<String>> {
    Ok(fs.data_entries(dir).await?.into_iter().map(|e| e.name).collect())
}

/// Background: finishes the commits left unfinished by a restart or by a
/// DFS failure halfway, retrying (1 s, doubling to 10 s) until the DFS
/// answers. Woken at start and whenever a commit stops halfway.
pub(crate) struct CommitResumer {
    ms: Arc<Metastore>,
}

impl CommitResumer {
    pub(crate) fn new(ms: Arc<Metastore>) -> CommitResumer {
        CommitResumer { ms }
    }

    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut delay = MIN_RETRY;
        loop {
            // Stopping halfway is safe: every step of a commit is idempotent.
            let unfinished = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = self.pass() => match r {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!("metastore: reading the unfinished commits: {e}");
                        1
                    }
                },
            };
            if unfinished == 0 {
                delay = MIN_RETRY;
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = self.ms.resume.notified() => {}
                }
            } else {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }

    /// Tries every unfinished commit once; returns how many remain.
    async fn pass(&self) -> Result<usize> {
        let mut unfinished = 0;
        for (id, _) in self.ms.store.read()?.pending_commits()? {
            let _w = self.ms.writes.lock().await;
            // Finished or forgotten while we waited for the lock?
            let Some(p) = self.ms.store.read()?.pending(&id)? else { continue };
            let user = p.request.as_ref().map(|r| r.user.clone()).unwrap_or_default();
            let target = p.table.as_ref().map(|t| format!("{}.{}", t.db, t.name)).unwrap_or_default();
            let mut progressed = false;
            let done = match self.ms.dfs.as_user(&user).await {
                Ok(fs) => self.ms.finish_commit(&fs, &id, &p, &mut progressed).await,
                Err(e) => Err(e),
            };
            match done {
                Ok(r) => tracing::info!("metastore: finished the commit of {id} into {target} ({} files)", r.files),
                Err(e) => {
                    tracing::warn!("metastore: the commit of {id} into {target} is still unfinished: {e}");
                    unfinished += 1;
                }
            }
        }
        Ok(unfinished)
    }
}
