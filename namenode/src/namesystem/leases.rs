//! Leases and block recovery.
//!
//! A file under construction belongs to one client's lease. When the lease
//! passes the hard limit (or someone calls `RecoverLease`), the namenode
//! recovers the file: with no last block it simply closes it; otherwise it
//! reserves a new generation stamp (the recovery id, logged) and asks one
//! datanode expected to hold a replica (the primary) to agree a length with
//! the others and finalize their replicas with the recovery id. The block
//! keeps the writer's stamp until the primary reports back with
//! `CommitBlockSynchronization`, which closes the file at that length with
//! the recovery id as the block's stamp. A retry sends the same writer's
//! stamp with a newer recovery id, so replicas no attempt reached still
//! take part.
//!
//! Expected locations of the blocks being written (pipeline targets and
//! replicas being written reported in block reports) are volatile and live
//! in [`UcBlocks`]. Lock order: `state`, `datanodes`, then `uc`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tusk_proto::dfs::{
    Caller, CommitBlockSynchronizationRequest, DatanodeCommand, ExtendedBlock, RecoverBlockCommand,
    ReplicaReport, datanode_command::Command,
};
use tusk_proto::error::ErrorKind;
use tusk_proto::nnstorage::{self as ns, edit_op::Op};

use super::{Namesystem, normalize};
use crate::blocks::DnIndex;
use crate::error::{NamenodeError, Result};
use crate::namespace::FsState;
use crate::namespace::ops::edit;
use crate::namespace::permission::WRITE;

/// A block recovery sent to a primary datanode and not yet committed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recovery {
    recovery_id: u64,
    started: Instant,
    attempts: usize,
}

/// What the namenode knows of the last blocks of files being written.
#[derive(Debug, Default)]
pub(crate) struct UcBlocks {
    /// Datanodes expected to hold a replica, by block id.
    expected: HashMap<u64, Vec<DnIndex>>,
    recovering: HashMap<u64, Recovery>,
}

impl UcBlocks {
    /// The pipeline of a block being written is now `targets`.
    pub(crate) fn set_expected(&mut self, block_id: u64, targets: Vec<DnIndex>) {
        self.expected.insert(block_id, targets);
    }

    /// A datanode reported a replica being written.
    fn add_expected(&mut self, block_id: u64, dn: DnIndex) {
        let e = self.expected.entry(block_id).or_default();
        if !e.contains(&dn) {
            e.push(dn);
        }
    }

    /// The recovery id of the block's recovery in flight.
    pub(crate) fn recovery_id(&self, block_id: u64) -> Option<u64> {
        self.recovering.get(&block_id).map(|r| r.recovery_id)
    }

    /// Forgets a block that left the namespace; returns its expected locations.
    pub(crate) fn take_expected(&mut self, block_id: u64) -> Vec<DnIndex> {
        self.recovering.remove(&block_id);
        self.expected.remove(&block_id).unwrap_or_default()
    }

    /// The block is complete, abandoned or gone.
    pub(crate) fn forget(&mut self, block_id: u64) {
        self.expected.remove(&block_id);
        self.recovering.remove(&block_id);
    }
}

/// How a recovery attempt went.
enum Start {
    /// The file is closed (or was already).
    Closed,
    /// A recovery is running, or cannot run yet (replica holders are down).
    Pending,
    /// A new recovery: send the command to the primary.
    Send(DnIndex, DatanodeCommand),
}

fn ext(id: u64, gen_stamp: u64, num_bytes: u64) -> ExtendedBlock {
    ExtendedBlock { block_id: id, generation_stamp: gen_stamp, num_bytes }
}

impl Namesystem {
    /// Refuses the writer's changes to file `file` while a block recovery
    /// runs on its last block: the recovery took the file from its writer
    /// (HDFS reassigns the lease), who must not commit a length, a stamp or
    /// a new block behind its back (the recovery would then close the file
    /// at a length the writer never agreed to, or not at all).
    pub(crate) fn check_not_recovering(&self, st: &FsState, p: &str, file: u64) -> Result<()> {
        let Some(last) = st.inode(file)?.file().and_then(|f| f.blocks.last()) else { return Ok(()) };
        match self.uc.lock().recovery_id(last) {
            Some(id) => Err(NamenodeError::req(
                ErrorKind::LeaseConflict,
                format!("{p}: lease recovery {id} of block {last} is in progress; the writer no longer holds the lease"),
            )),
            None => Ok(()),
        }
    }

    /// Files whose lease passed the hard limit, and files whose block
    /// recovery timed out; each is (re)recovered. Called by the lease monitor.
    pub(crate) async fn check_leases(&self) -> usize {
        if self.safemode.is_on() {
            return 0;
        }
        let now = tusk_common::now_ms();
        let hard = self.conf.lease_hard_limit_ms as i64;
        let paths: Vec<String> = {
            let st = self.state.read();
            st.leases
                .values()
                .filter(|l| now.saturating_sub(l.last_renewed_ms) > hard)
                .flat_map(|l| l.files.iter().map(|f| st.path_of(*f)))
                .collect()
        };
        let mut started = 0;
        for p in paths {
            match self.start_recovery(&p).await {
                Ok(true) => started += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!("{p}: lease recovery failed: {e}"),
            }
        }
        started
    }

    /// Recovers the file at `p` now; true once it is closed.
    async fn start_recovery(&self, p: &str) -> Result<bool> {
        let timeout = Duration::from_millis(self.conf.block_recovery_timeout_ms);
        let outcome = self
            .mutate_with(|st, removed| {
                let Some(id) = st.lookup(p) else { return Ok((0, Start::Closed)) };
                let Some(f) = st.inode(id)?.file() else { return Ok((0, Start::Closed)) };
                if f.client.is_none() {
                    return Ok((0, Start::Closed));
                }
                let Some(last) = f.blocks.last() else {
                    tracing::info!("{p}: lease recovery: no blocks, closing");
                    let op = edit(Op::Close(ns::OpClose { path: p.to_string(), mtime_ms: tusk_common::now_ms(), last: None }));
                    return Ok((self.commit(st, &[op], removed)?, Start::Closed));
                };
                let b = st.blocks.get(last).ok_or_else(|| NamenodeError::Internal(format!("block {last} missing")))?;
                let (gen_stamp, num_bytes) = (b.gen_stamp, b.num_bytes);
                let reported: Vec<DnIndex> = b.replicas.iter().collect();
                let mut uc = self.uc.lock();
                let previous = uc.recovering.get(&last).copied();
                if let Some(r) = previous {
                    if r.started.elapsed() < timeout {
                        return Ok((0, Start::Pending));
                    }
                    tracing::warn!("{p}: block recovery {} of block {last} did not finish within {timeout:?}; retrying", r.recovery_id);
                }
                for d in reported {
                    uc.add_expected(last, d);
                }
                let candidates = uc.expected.get(&last).cloned().unwrap_or_default();
                drop(uc);
                if candidates.is_empty() {
                    tracing::warn!("{p}: lease recovery: last block {last} has no known replica; dropping it");
                    let ops = [
                        edit(Op::AbandonBlock(ns::OpAbandonBlock { path: p.to_string(), block_id: last })),
                        edit(Op::Close(ns::OpClose { path: p.to_string(), mtime_ms: tusk_common::now_ms(), last: None })),
                    ];
                    let txid = self.commit(st, &ops, removed)?;
                    self.uc.lock().forget(last);
                    return Ok((txid, Start::Closed));
                }
                let live: Vec<(DnIndex, tusk_proto::dfs::DatanodeId)> = {
                    let dm = self.datanodes.lock();
                    candidates.iter().filter_map(|i| dm.get(*i).filter(|d| d.alive).map(|d| (*i, d.id.clone()))).collect()
                };
                if live.is_empty() {
                    tracing::warn!("{p}: lease recovery of block {last} waits: none of its {} replica holders is live", candidates.len());
                    return Ok((0, Start::Pending));
                }
                let recovery_id = st.next_gen_stamp;
                let op = edit(Op::SetGenStamp(ns::OpSetGenStamp { gen_stamp: recovery_id }));
                let txid = self.commit(st, &[op], removed)?;
                let attempts = previous.map(|r| r.attempts + 1).unwrap_or(0);
                self.uc.lock().recovering.insert(last, Recovery { recovery_id, started: Instant::now(), attempts });
                let (primary, _) = live[attempts % live.len()];
                let cmd = RecoverBlockCommand {
                    block: Some(ext(last, gen_stamp, num_bytes)),
                    new_generation_stamp: recovery_id,
                    targets: live.into_iter().map(|(_, id)| id).collect(),
                };
                tracing::info!("{p}: lease recovery of block {last}: recovery id {recovery_id}, attempt {}", attempts + 1);
                Ok((txid, Start::Send(primary, DatanodeCommand { command: Some(Command::Recover(cmd)) })))
            })
            .await?;
        match outcome {
            Start::Closed => Ok(true),
            Start::Pending => Ok(false),
            Start::Send(primary, cmd) => {
                self.datanodes.lock().queue_command(primary, cmd);
                Ok(false)
            }
        }
    }

    /// `RecoverLease`: starts recovering `path` now if it is still open.
    pub(crate) async fn recover_lease(&self, caller: &Caller, path: &str) -> Result<bool> {
        let p = normalize(path)?;
        let ugi = self.ugi(caller);
        {
            let st = self.state.read();
            let r = st.resolve(&p);
            st.check_traverse(&ugi, &r)?;
            let id = r.target().ok_or_else(|| NamenodeError::not_found(&p))?;
            let f = st
                .inode(id)?
                .file()
                .ok_or_else(|| NamenodeError::req(ErrorKind::IsADirectory, format!("{p}: is a directory")))?;
            if f.client.is_none() {
                return Ok(true);
            }
            st.check_access(&ugi, &p, id, WRITE)?;
        }
        self.start_recovery(&p).await
    }

    /// The primary datanode's report of a finished block recovery: closes the file.
    pub(crate) async fn commit_block_synchronization(&self, req: &CommitBlockSynchronizationRequest) -> Result<()> {
        let old = req.block.ok_or_else(|| NamenodeError::invalid("commit_block_synchronization: no block"))?;
        let id = old.block_id;
        if !req.close_file {
            return Err(NamenodeError::invalid(format!("block {id}: recovery without closing the file is not supported")));
        }
        let path = self
            .mutate_with(|st, removed| {
                let stale = |why: String| NamenodeError::req(ErrorKind::NotUnderConstruction, format!("block {id}: {why}"));
                let b = st.blocks.get(id).ok_or_else(|| stale("no longer exists (its file was deleted)".into()))?;
                // The recovery in flight (none after a namenode restart: then
                // any recovery id above the block's stamp is accepted).
                let current = self.uc.lock().recovery_id(id);
                if req.new_generation_stamp <= b.gen_stamp || current.is_some_and(|r| r != req.new_generation_stamp) {
                    return Err(stale(format!(
                        "recovery id {} is stale (block stamp {}, recovery in flight {current:?})",
                        req.new_generation_stamp, b.gen_stamp
                    )));
                }
                let p = st.path_of(b.inode);
                let f = st.inode(b.inode)?.file().ok_or_else(|| stale("is not a file's block".into()))?;
                if !f.is_writing(id) {
                    return Err(stale(format!("{p} is not being written or the block is not its last")));
                }
                let now = tusk_common::now_ms();
                let ops = if req.delete_block {
                    vec![
                        edit(Op::AbandonBlock(ns::OpAbandonBlock { path: p.clone(), block_id: id })),
                        edit(Op::Close(ns::OpClose { path: p.clone(), mtime_ms: now, last: None })),
                    ]
                } else {
                    let last = ns::BlockRecord { block_id: id, generation_stamp: req.new_generation_stamp, num_bytes: req.new_length };
                    vec![edit(Op::Close(ns::OpClose { path: p.clone(), mtime_ms: now, last: Some(last) }))]
                };
                let txid = self.commit(st, &ops, removed)?;
                // The replicas the primary finalized are the block's locations
                // (their incremental reports may have come first).
                if !req.delete_block
                    && let Some(b) = st.blocks.get_mut(id)
                {
                    let dm = self.datanodes.lock();
                    for u in &req.datanode_uuids {
                        if let Some(i) = dm.live_index(u) {
                            b.replicas.add(i);
                        }
                    }
                }
                Ok((txid, p))
            })
            .await?;
        self.uc.lock().forget(id);
        if req.delete_block {
            tracing::warn!("{path}: lease recovery found no usable replica of block {id}; closed without it");
        } else {
            tracing::info!(
                "{path}: lease recovery closed the file; block {id} has {} bytes on {} datanodes",
                req.new_length,
                req.datanode_uuids.len()
            );
        }
        Ok(())
    }

    /// The replicas being written in a full block report: expected
    /// locations of blocks under construction; unknown or stale ones are
    /// to be deleted.
    pub(crate) fn rbw_report(&self, uuid: &str, rbw: &[ReplicaReport]) -> Vec<DatanodeCommand> {
        if rbw.is_empty() {
            return Vec::new();
        }
        let st = self.state.read();
        let Some(idx) = self.datanodes.lock().live_index(uuid) else { return Vec::new() };
        let mut uc = self.uc.lock();
        let mut delete = Vec::new();
        for r in rbw {
            match st.blocks.get(r.block_id) {
                None if self.unsynced_removals.lock().contains(&r.block_id) => {}
                None => delete.push(ext(r.block_id, r.generation_stamp, r.num_bytes)),
                Some(b) if r.generation_stamp < b.gen_stamp => delete.push(ext(r.block_id, r.generation_stamp, r.num_bytes)),
                Some(b) => {
                    if st.inodes.get(b.inode).and_then(|i| i.file()).is_some_and(|f| f.is_writing(r.block_id)) {
                        uc.add_expected(r.block_id, idx);
                    }
                }
            }
        }
        drop(uc);
        drop(st);
        if delete.is_empty() {
            return Vec::new();
        }
        tracing::info!("datanode {uuid}: {} stale replicas being written are to be deleted", delete.len());
        self.report_deletes(idx, delete)
    }
}
