//! The namenode's core: the namespace behind one read-write lock, the edit
//! log, the block map and the datanode manager. Knows nothing of tonic.
//!
//! A mutation takes the write lock, prepares its ops (validation appends
//! nothing), applies each op with the same `apply` used by replay and
//! appends it to the journal, releases the lock, then waits until its txid
//! is synced. Lock order: `state` → `datanodes` → `uc` → `repl`;
//! `unsynced_removals` after `state`.

mod admin;
mod bad_replicas;
mod datanode_ops;
pub(crate) mod fsck;
mod leases;
mod pipeline;

use std::path::PathBuf;
use std::time::Instant;

use parking_lot::{Mutex, RwLock, RwLockWriteGuard};
use tusk_proto::dfs::{
    Caller, ContentSummary, DatanodeId, ExtendedBlock, FileStatus, LocatedBlock, LocatedBlocks, SafeModeAction, SafeModeStatus,
    ServerDefaultsResponse,
};
use tusk_proto::error::ErrorKind;
use tusk_proto::nnstorage::{self as ns, EditOp, edit_op::Op};

use crate::config::NamenodeConfig;
use crate::datanodes::DatanodeManager;
use crate::editlog::Journal;
use crate::error::{NamenodeError, Result};
use crate::image;
use crate::namespace::apply::RemovedBlock;
use crate::namespace::ops::{CompletePlan, Ctx, edit};
use crate::namespace::permission::Ugi;
use crate::namespace::query::Listing;
use crate::namespace::FsState;
use crate::decommission::ExcludesStore;
use crate::replication::Replication;
use crate::safemode::SafeMode;
use crate::storage;

struct CheckpointMark {
    txid: u64,
    at: Instant,
}

pub(crate) struct Namesystem {
    pub(crate) conf: NamenodeConfig,
    pub(crate) cluster_id: String,
    pub(crate) superuser: String,
    /// `<name_dir>/current`, None for an in-memory namesystem.
    dir: Option<PathBuf>,
    pub(crate) state: RwLock<FsState>,
    pub(crate) datanodes: Mutex<DatanodeManager>,
    pub(crate) journal: Option<Journal>,
    mark: Mutex<CheckpointMark>,
    checkpointing: Mutex<()>,
    pub(crate) safemode: SafeMode,
    /// Blocks removed from the namespace whose removal is not yet synced to
    /// the edit log (after `state` in lock order).
    pub(crate) unsynced_removals: Mutex<std::collections::HashSet<u64>>,
    /// Expected locations and recoveries of blocks being written (after `datanodes` in lock order).
    pub(crate) uc: Mutex<leases::UcBlocks>,
    /// Replication queues, pending transfers, corrupt and excess replicas,
    /// decommission progress. Lock order: last (after `datanodes` and `uc`).
    pub(crate) repl: Mutex<Replication>,
    /// Where the decommission admin set is persisted (`<name_dir>/excludes.json`).
    pub(crate) excludes: ExcludesStore,
}

fn normalize(p: &str) -> Result<String> {
    Ok(tusk_common::path::normalize(p)?)
}

impl Namesystem {
    /// Loads the namespace from `conf.name_dir` and opens a new edit segment.
    pub(crate) fn open(conf: NamenodeConfig) -> Result<Namesystem> {
        let loaded = storage::load(&conf.name_dir)?;
        let dir = storage::current_dir(&conf.name_dir);
        let (dm, repl, excludes) = crate::replication::open_parts(&conf, true)?;
        let journal = Journal::open(&dir, loaded.last_txid + 1)?;
        tracing::info!(
            "loaded namespace {} (image txid {}, last txid {}, {} inodes, {} blocks)",
            loaded.version.cluster_id,
            loaded.image_txid,
            loaded.last_txid,
            loaded.state.inodes.len(),
            loaded.state.blocks.len()
        );
        let safemode = SafeMode::new(
            loaded.state.blocks.len() as u64,
            conf.safemode_threshold,
            conf.safemode_min_datanodes as usize,
            std::time::Duration::from_millis(conf.safemode_extension_ms),
        );
        let mut state = loaded.state;
        // Leases restart their clocks: their holders get a full period to renew.
        let now = tusk_common::now_ms();
        for l in state.leases.values_mut() {
            l.last_renewed_ms = now;
        }
        Ok(Namesystem {
            safemode,
            uc: Mutex::new(leases::UcBlocks::default()),
            unsynced_removals: Mutex::new(std::collections::HashSet::new()),
            cluster_id: loaded.version.cluster_id,
            superuser: loaded.version.superuser,
            dir: Some(dir),
            state: RwLock::new(state),
            datanodes: Mutex::new(dm),
            repl: Mutex::new(repl),
            excludes,
            journal: Some(journal),
            mark: Mutex::new(CheckpointMark { txid: loaded.image_txid, at: Instant::now() }),
            checkpointing: Mutex::new(()),
            conf,
        })
    }

    /// A namesystem without disk (benchmarks, tests).
    pub(crate) fn in_memory(conf: NamenodeConfig, superuser: &str) -> Namesystem {
        let state = FsState::new(superuser, &conf.supergroup, tusk_common::now_ms());
        let (dm, repl, excludes) = crate::replication::memory_parts(&conf);
        Namesystem {
            cluster_id: "CID-in-memory".into(),
            superuser: superuser.into(),
            dir: None,
            state: RwLock::new(state),
            datanodes: Mutex::new(dm),
            repl: Mutex::new(repl),
            excludes,
            journal: None,
            mark: Mutex::new(CheckpointMark { txid: 0, at: Instant::now() }),
            checkpointing: Mutex::new(()),
            safemode: SafeMode::off(),
            uc: Mutex::new(leases::UcBlocks::default()),
            unsynced_removals: Mutex::new(std::collections::HashSet::new()),
            conf,
        }
    }

    pub(crate) fn ugi(&self, caller: &Caller) -> Ugi {
        Ugi::new(&caller.user, &caller.groups, &caller.client_name, &self.superuser, &self.conf.supergroup)
    }

    fn ctx<'a>(&'a self, ugi: &'a Ugi) -> Ctx<'a> {
        Ctx { ugi, conf: &self.conf, now: tusk_common::now_ms() }
    }

    /// Applies and logs `ops` (write lock held); returns the last txid.
    fn commit(&self, st: &mut FsState, ops: &[EditOp], removed: &mut Vec<RemovedBlock>) -> Result<u64> {
        let mut txid = 0;
        for op in ops {
            let applied = st.apply(op).inspect_err(|e| tracing::error!("prepared op failed to apply: {e}"))?;
            removed.extend(applied.removed);
            self.after_apply(st, op);
            if let Some(j) = &self.journal {
                txid = j.append(op);
            }
        }
        Ok(txid)
    }

    /// Queues deletion of the replicas of removed blocks.
    fn invalidate(&self, removed: Vec<RemovedBlock>) {
        if removed.is_empty() {
            return;
        }
        let mut dm = self.datanodes.lock();
        let mut uc = self.uc.lock();
        let mut repl = self.repl.lock();
        for b in removed {
            repl.forget_block(b.block_id);
            // Finalized replicas, and those still being written in the
            // block's pipeline (a file deleted or a block abandoned mid-write).
            let mut holders: Vec<_> = b.replicas.iter().collect();
            for d in uc.take_expected(b.block_id) {
                if !holders.contains(&d) {
                    holders.push(d);
                }
            }
            for dn in holders {
                dm.invalidate(dn, ExtendedBlock { block_id: b.block_id, generation_stamp: b.gen_stamp, num_bytes: b.num_bytes });
            }
        }
    }

    async fn durable(&self, txid: u64) -> Result<()> {
        match &self.journal {
            Some(j) if txid > 0 => j.wait_synced(txid).await,
            _ => Ok(()),
        }
    }

    /// Prepares with `prep` and commits under the write lock, then waits for durability.
    async fn mutate<T>(&self, prep: impl FnOnce(&FsState) -> Result<(Vec<EditOp>, T)>) -> Result<T> {
        self.mutate_with(|st, removed| {
            let (ops, out) = prep(st)?;
            Ok((self.commit(st, &ops, removed)?, out))
        })
        .await
    }

    /// The one path of every mutation: `f` prepares and commits under the
    /// write lock (returning the last txid); then the caller waits for
    /// durability, and only then are removed blocks' replicas deleted.
    async fn mutate_with<T>(&self, f: impl FnOnce(&mut FsState, &mut Vec<RemovedBlock>) -> Result<(u64, T)>) -> Result<T> {
        if let Some(why) = self.journal.as_ref().and_then(|j| j.failure()) {
            return Err(NamenodeError::Internal(format!("namespace is read-only after {why}")));
        }
        if self.safemode.is_on() {
            return Err(NamenodeError::req(ErrorKind::SafeMode, self.safemode.refusal("change the namespace")));
        }
        let mut removed = Vec::new();
        let (txid, out) = {
            let mut st = self.state.write();
            let done = f(&mut st, &mut removed)?;
            // Until the removal is durable, reports of these blocks' replicas
            // must not delete them as unknown.
            if !removed.is_empty() {
                self.unsynced_removals.lock().extend(removed.iter().map(|b| b.block_id));
            }
            done
        };
        // (On a failed sync the ids stay: the namespace is read-only now.)
        self.durable(txid).await?;
        if !removed.is_empty() {
            let mut unsynced = self.unsynced_removals.lock();
            for b in &removed {
                unsynced.remove(&b.block_id);
            }
        }
        // Only a durable removal may delete replicas: were the log lost, the
        // replayed namespace would still need them.
        self.invalidate(removed);
        Ok(out)
    }

    pub(crate) async fn mkdirs(&self, caller: &Caller, path: &str, permission: u32, create_parent: bool) -> Result<()> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate(|st| Ok((st.prep_mkdirs(&ctx, &p, permission, create_parent)?, ()))).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create(
        &self,
        caller: &Caller,
        path: &str,
        permission: u32,
        overwrite: bool,
        create_parent: bool,
        replication: u32,
        block_size: u64,
    ) -> Result<FileStatus> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate_with(|st, removed| {
            let ops = st.prep_create(&ctx, &p, permission, overwrite, create_parent, replication, block_size)?;
            let txid = self.commit(st, &ops, removed)?;
            let id = st.lookup(&p).ok_or_else(|| NamenodeError::Internal(format!("{p}: missing after create")))?;
            Ok((txid, st.status(id)?))
        })
        .await
    }

    pub(crate) async fn add_block(
        &self,
        caller: &Caller,
        path: &str,
        previous: Option<&ExtendedBlock>,
        excluded: &[String],
        client_host: &str,
    ) -> Result<LocatedBlock> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate_with(|st, removed| {
            let plan = st.prep_add_block(&ctx, &p, previous)?;
            self.check_not_recovering(st, &p, plan.file)?;
            let targets: Vec<DatanodeId> = {
                let mut dm = self.datanodes.lock();
                let t = dm.place_new_block(&p, plan.replication as usize, plan.block_size, client_host, excluded)?;
                {
                    let mut uc = self.uc.lock();
                    uc.set_expected(plan.block_id, t.clone());
                    if let Some(prev) = previous {
                        uc.forget(prev.block_id);
                    }
                }
                t.iter().filter_map(|i| dm.get(*i)).map(|d| d.id.clone()).collect()
            };
            let op = edit(Op::AddBlock(ns::OpAddBlock {
                path: p.clone(),
                block: Some(ns::BlockRecord { block_id: plan.block_id, generation_stamp: plan.gen_stamp, num_bytes: 0 }),
                previous: plan.previous,
            }));
            let txid = self.commit(st, &[op], removed)?;
            let f = st.inode(plan.file)?.file().ok_or_else(|| NamenodeError::Internal("not a file".into()))?;
            let offset = st.file_length(f);
            let block = ExtendedBlock { block_id: plan.block_id, generation_stamp: plan.gen_stamp, num_bytes: 0 };
            Ok((txid, LocatedBlock { block: Some(block), offset, locations: targets }))
        })
        .await
    }

    pub(crate) async fn abandon_block(&self, caller: &Caller, path: &str, block: &ExtendedBlock) -> Result<()> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate(|st| {
            let op = st.prep_abandon_block(&ctx, &p, block)?;
            if op.is_some()
                && let Some(file) = st.lookup(&p)
            {
                self.check_not_recovering(st, &p, file)?;
            }
            Ok((op.into_iter().collect(), ()))
        })
        .await?;
        self.uc.lock().forget(block.block_id);
        Ok(())
    }

    pub(crate) async fn complete(&self, caller: &Caller, path: &str, last: Option<&ExtendedBlock>) -> Result<bool> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate(|st| {
            let plan = st.prep_complete(&ctx, &p, last)?;
            if !matches!(plan, CompletePlan::AlreadyClosed)
                && let Some(file) = st.lookup(&p)
            {
                self.check_not_recovering(st, &p, file)?;
            }
            Ok(match plan {
                CompletePlan::AlreadyClosed => (Vec::new(), true),
                CompletePlan::NotReplicated => (Vec::new(), false),
                CompletePlan::Close(op) => (vec![op], true),
            })
        })
        .await
        .inspect(|done| {
            if let (true, Some(b)) = (done, last) {
                self.uc.lock().forget(b.block_id);
            }
        })
    }

    pub(crate) async fn delete(&self, caller: &Caller, path: &str, recursive: bool) -> Result<bool> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate(|st| {
            let op = st.prep_delete(&ctx, &p, recursive)?;
            let deleted = op.is_some();
            Ok((op.into_iter().collect(), deleted))
        })
        .await
    }

    pub(crate) async fn rename(&self, caller: &Caller, src: &str, dst: &str, overwrite: bool) -> Result<()> {
        let (s, d) = (normalize(src)?, normalize(dst)?);
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate(|st| Ok((st.prep_rename(&ctx, &s, &d, overwrite)?.into_iter().collect(), ()))).await
    }

    pub(crate) async fn set_replication(&self, caller: &Caller, path: &str, replication: u32) -> Result<()> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate(|st| Ok((vec![st.prep_set_replication(&ctx, &p, replication)?], ()))).await
    }

    pub(crate) async fn set_permission(&self, caller: &Caller, path: &str, mode: u32) -> Result<()> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate(|st| Ok((vec![st.prep_set_permission(&ctx, &p, mode)?], ()))).await
    }

    pub(crate) async fn set_owner(&self, caller: &Caller, path: &str, owner: &str, group: &str) -> Result<()> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate(|st| Ok((vec![st.prep_set_owner(&ctx, &p, owner, group)?], ()))).await
    }

    pub(crate) async fn set_times(&self, caller: &Caller, path: &str, mtime: i64, atime: i64) -> Result<()> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        let ctx = self.ctx(&ugi);
        self.mutate(|st| Ok((vec![st.prep_set_times(&ctx, &p, mtime, atime)?], ()))).await
    }

    pub(crate) fn get_file_info(&self, caller: &Caller, path: &str) -> Result<Option<FileStatus>> {
        let p = normalize(path)?;
        self.state.read().file_info(&self.ugi(caller), &p)
    }

    pub(crate) fn get_listing(&self, caller: &Caller, path: &str, start_after: &str, limit: u32) -> Result<Listing> {
        let p = normalize(path)?;
        let limit = if limit == 0 { self.conf.listing_page_size } else { limit.min(self.conf.listing_page_size) };
        self.state.read().listing(&self.ugi(caller), &p, start_after, limit)
    }

    pub(crate) fn content_summary(&self, caller: &Caller, path: &str) -> Result<ContentSummary> {
        let p = normalize(path)?;
        self.state.read().content_summary(&self.ugi(caller), &p)
    }

    pub(crate) fn get_block_locations(
        &self,
        caller: &Caller,
        path: &str,
        offset: u64,
        length: u64,
        client_host: &str,
    ) -> Result<LocatedBlocks> {
        let p = normalize(path)?;
        let st = self.state.read();
        let fb = st.block_locations(&self.ugi(caller), &p, offset, length)?;
        let dm = self.datanodes.lock();
        let repl = self.repl.lock();
        let blocks = fb
            .blocks
            .into_iter()
            .map(|b| LocatedBlock {
                block: Some(ExtendedBlock { block_id: b.block_id, generation_stamp: b.gen_stamp, num_bytes: b.num_bytes }),
                offset: b.offset,
                locations: crate::replication::read_locations(&dm, &repl, b.block_id, b.gen_stamp, &b.replicas, client_host),
            })
            .collect();
        Ok(LocatedBlocks { file_length: fb.file_length, blocks, under_construction: fb.under_construction })
    }

    /// Records that the caller's client is alive (lease expiry comes later).
    pub(crate) fn renew_lease(&self, caller: &Caller) -> Result<()> {
        if caller.client_name.is_empty() {
            return Err(NamenodeError::invalid("renew_lease: client_name is empty"));
        }
        let mut st = self.state.write();
        if let Some(id) = st.strings.lookup(&caller.client_name)
            && let Some(l) = st.leases.get_mut(&id)
        {
            l.last_renewed_ms = tusk_common::now_ms();
        }
        Ok(())
    }

    /// `SetSafeMode`: anyone may ask; only a superuser may enter or leave.
    pub(crate) fn set_safe_mode(&self, caller: &Caller, action: SafeModeAction) -> Result<SafeModeStatus> {
        if action != SafeModeAction::SafemodeGet && !self.ugi(caller).superuser {
            return Err(NamenodeError::req(
                ErrorKind::PermissionDenied,
                format!("safe mode: permission denied: user {} is not a superuser", caller.user),
            ));
        }
        match action {
            SafeModeAction::SafemodeGet => {}
            SafeModeAction::SafemodeEnter => self.safemode.enter(),
            SafeModeAction::SafemodeLeave => self.safemode.leave(),
        }
        Ok(self.safemode.status())
    }

    pub(crate) fn server_defaults(&self) -> ServerDefaultsResponse {
        ServerDefaultsResponse {
            block_size: self.conf.default_block_size,
            replication: self.conf.default_replication,
            bytes_per_checksum: tusk_proto::transfer::DEFAULT_BYTES_PER_CHECKSUM,
            packet_size: tusk_proto::transfer::DEFAULT_PACKET_SIZE,
            cluster_id: self.cluster_id.clone(),
            protocol_version: tusk_proto::PROTOCOL_VERSION,
        }
    }

    /// Edits appended since the last checkpoint.
    pub(crate) fn txns_since_checkpoint(&self) -> u64 {
        let last = self.journal.as_ref().map(|j| j.last_appended()).unwrap_or(0);
        last.saturating_sub(self.mark.lock().txid)
    }

    pub(crate) fn checkpoint_due(&self) -> bool {
        let since = self.txns_since_checkpoint();
        since >= self.conf.checkpoint_txns
            || (since > 0 && self.mark.lock().at.elapsed().as_secs() >= self.conf.checkpoint_period_secs)
    }

    /// Rolls the edit log, writes an image of the rolled txid and purges
    /// files the previous image no longer needs. Blocking (disk I/O).
    pub(crate) fn checkpoint(&self) -> Result<Option<u64>> {
        let (Some(j), Some(dir)) = (&self.journal, &self.dir) else { return Ok(None) };
        let _one = self.checkpointing.lock();
        let st = self.state.write();
        let txid = j.roll()?;
        let st = RwLockWriteGuard::downgrade(st);
        if txid == self.mark.lock().txid {
            return Ok(None);
        }
        let bytes = image::serialize(&st, txid, &self.cluster_id)?;
        drop(st);
        image::write_image(dir, txid, &bytes)?;
        if let Some((prev, _)) = image::list_images(dir)?.get(1) {
            storage::purge(dir, *prev)?;
        }
        *self.mark.lock() = CheckpointMark { txid, at: Instant::now() };
        tracing::info!("checkpoint at txid {txid} ({} bytes)", bytes.len());
        Ok(Some(txid))
    }
}
