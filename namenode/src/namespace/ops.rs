//! Preparing mutations: each ClientProtocol mutation is validated against
//! the namespace (paths, existence, permissions, leases) and turned into the
//! `EditOp`s that `apply` will perform. Nothing here changes the state, so a
//! refused request leaves no trace.

use tusk_common::path;
use tusk_proto::dfs::ExtendedBlock;
use tusk_proto::error::ErrorKind;
use tusk_proto::nnstorage::{self as ns, EditOp, edit_op::Op};

use super::permission::{EXECUTE, Ugi, WRITE};
use super::{FsState, Resolved};
use crate::config::NamenodeConfig;
use crate::error::{NamenodeError, Result};

/// Who asks, with what configuration, at what time.
pub(crate) struct Ctx<'a> {
    pub(crate) ugi: &'a Ugi,
    pub(crate) conf: &'a NamenodeConfig,
    pub(crate) now: i64,
}

/// What `add_block` will do once targets are chosen.
#[derive(Debug)]
pub(crate) struct AddBlockPlan {
    pub(crate) file: u64,
    pub(crate) replication: u32,
    pub(crate) block_size: u64,
    pub(crate) block_id: u64,
    pub(crate) gen_stamp: u64,
    pub(crate) previous: Option<ns::BlockRecord>,
}

/// The outcome of preparing `complete`.
#[derive(Debug)]
pub(crate) enum CompletePlan {
    AlreadyClosed,
    NotReplicated,
    Close(EditOp),
}

pub(crate) fn edit(op: Op) -> EditOp {
    EditOp { op: Some(op) }
}

fn err(kind: ErrorKind, msg: String) -> NamenodeError {
    NamenodeError::req(kind, msg)
}

impl FsState {
    fn perm(&self, ctx: &Ctx<'_>, group_of: u64, mode: u16) -> ns::PermissionStatus {
        let group = self.inodes.get(group_of).map(|i| self.strings.get(i.group)).unwrap_or("").to_string();
        ns::PermissionStatus { owner: ctx.ugi.user.clone(), group, mode: mode as u32 }
    }

    /// Checks the nearest existing ancestor of a missing target and returns
    /// it; `create_parent` allows more than one missing component.
    fn creatable_parent(&self, ctx: &Ctx<'_>, r: &Resolved<'_>, create_parent: bool) -> Result<u64> {
        let last = *r.chain.last().ok_or_else(|| NamenodeError::Internal("empty chain".into()))?;
        if !self.inode(last)?.is_dir() {
            return Err(err(
                ErrorKind::NotADirectory,
                format!("{}: {} is not a directory", r.path, self.path_of(last)),
            ));
        }
        self.check_traverse(ctx.ugi, r)?;
        let missing = r.comps.len() + 1 - r.chain.len();
        if missing > 1 && !create_parent {
            let parent = path::parent(r.path).unwrap_or("/");
            return Err(NamenodeError::not_found(parent));
        }
        self.check_access(ctx.ugi, r.path, last, WRITE | EXECUTE)?;
        Ok(last)
    }

    /// Mkdir ops for the missing components of `r` up to (excluding) index `upto`.
    fn mkdir_ops(&self, ctx: &Ctx<'_>, r: &Resolved<'_>, anchor: u64, upto: usize, last_mode: Option<u16>, ops: &mut Vec<EditOp>) {
        let dir_default = (0o777 & !ctx.conf.umask) as u16;
        let first = r.chain.len() - 1;
        let mut p = self.path_of(anchor);
        for (k, comp) in r.comps[first..upto].iter().enumerate() {
            p = path::join(&p, comp);
            let mode = match last_mode {
                Some(m) if first + k + 1 == upto => m,
                _ => dir_default | 0o300,
            };
            ops.push(edit(Op::Mkdir(ns::OpMkdir {
                path: p.clone(),
                perm: Some(self.perm(ctx, anchor, mode)),
                mtime_ms: ctx.now,
                inode_id: self.next_inode_id + ops.len() as u64,
            })));
        }
    }

    pub(crate) fn prep_mkdirs(&self, ctx: &Ctx<'_>, p: &str, permission: u32, create_parent: bool) -> Result<Vec<EditOp>> {
        let r = self.resolve(p);
        if let Some(t) = r.target() {
            self.check_traverse(ctx.ugi, &r)?;
            if self.inode(t)?.is_dir() {
                return Ok(Vec::new());
            }
            return Err(err(ErrorKind::AlreadyExists, format!("{p}: file exists")));
        }
        let anchor = self.creatable_parent(ctx, &r, create_parent)?;
        let mode = if permission == 0 { (0o777 & !ctx.conf.umask) as u16 } else { (permission & 0o7777) as u16 };
        let mut ops = Vec::new();
        self.mkdir_ops(ctx, &r, anchor, r.comps.len(), Some(mode), &mut ops);
        Ok(ops)
    }

    fn lease_holder(&self, id: u64) -> Option<&str> {
        self.inodes.get(id)?.file()?.client.map(|c| self.strings.get(c.get()))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn prep_create(
        &self,
        ctx: &Ctx<'_>,
        p: &str,
        permission: u32,
        overwrite: bool,
        create_parent: bool,
        replication: u32,
        block_size: u64,
    ) -> Result<Vec<EditOp>> {
        let replication = if replication == 0 { ctx.conf.default_replication } else { replication };
        if !(ctx.conf.min_replication..=ctx.conf.max_replication).contains(&replication) {
            return Err(NamenodeError::invalid(format!(
                "{p}: replication {replication} is outside {}..={}",
                ctx.conf.min_replication, ctx.conf.max_replication
            )));
        }
        let block_size = if block_size == 0 { ctx.conf.default_block_size } else { block_size };
        if block_size < 512 || block_size & 511 != 0 {
            return Err(NamenodeError::invalid(format!("{p}: block size {block_size} is not a positive multiple of 512")));
        }
        let r = self.resolve(p);
        let mut ops = Vec::new();
        let mut replaces = false;
        let parent;
        if let Some(t) = r.target() {
            self.check_traverse(ctx.ugi, &r)?;
            if self.inode(t)?.is_dir() {
                return Err(err(ErrorKind::IsADirectory, format!("{p}: is a directory")));
            }
            if let Some(holder) = self.lease_holder(t)
                && holder != ctx.ugi.client_name
                && !(overwrite && self.lease_soft_expired(t, ctx))
            {
                return Err(err(ErrorKind::LeaseConflict, format!("{p}: is being written by another client ({holder})")));
            }
            if !overwrite {
                return Err(err(ErrorKind::AlreadyExists, format!("{p}: file exists")));
            }
            parent = r.chain[r.comps.len() - 1];
            self.check_access(ctx.ugi, p, parent, WRITE | EXECUTE)?;
            self.check_sticky(ctx.ugi, p, parent, t)?;
            replaces = true;
        } else {
            parent = self.creatable_parent(ctx, &r, create_parent)?;
            self.mkdir_ops(ctx, &r, parent, r.comps.len() - 1, None, &mut ops);
        }
        let mode = if permission == 0 { (0o666 & !ctx.conf.umask) as u16 } else { (permission & 0o7777) as u16 };
        ops.push(edit(Op::Create(ns::OpCreate {
            path: p.to_string(),
            perm: Some(self.perm(ctx, parent, mode)),
            mtime_ms: ctx.now,
            replication,
            block_size,
            client_name: ctx.ugi.client_name.clone(),
            overwrite: replaces,
            inode_id: self.next_inode_id + ops.len() as u64,
        })));
        Ok(ops)
    }

    /// True when the holder of file `id`'s lease has not renewed it within
    /// the soft limit: another client may then take the file over.
    fn lease_soft_expired(&self, id: u64, ctx: &Ctx<'_>) -> bool {
        let Some(client) = self.inodes.get(id).and_then(|i| i.file()).and_then(|f| f.client) else { return false };
        self.leases
            .get(&client.get())
            .is_some_and(|l| ctx.now.saturating_sub(l.last_renewed_ms) > ctx.conf.lease_soft_limit_ms as i64)
    }

    /// The file at `p`, which must be under construction by the caller.
    pub(crate) fn writable_file(&self, ctx: &Ctx<'_>, p: &str) -> Result<u64> {
        let r = self.resolve(p);
        self.check_traverse(ctx.ugi, &r)?;
        let id = r.target().ok_or_else(|| NamenodeError::not_found(p))?;
        let f = self.inode(id)?.file().ok_or_else(|| err(ErrorKind::IsADirectory, format!("{p}: is a directory")))?;
        match f.client {
            None => Err(err(ErrorKind::NotUnderConstruction, format!("{p}: is not open for writing"))),
            Some(c) if self.strings.get(c.get()) != ctx.ugi.client_name => Err(err(
                ErrorKind::LeaseConflict,
                format!("{p}: is being written by another client ({})", self.strings.get(c.get())),
            )),
            Some(_) => Ok(id),
        }
    }

    /// Checks that `given` names the file's last block; returns its record with the given length.
    fn match_last(&self, p: &str, file: u64, given: Option<&ExtendedBlock>) -> Result<Option<ns::BlockRecord>> {
        let last = self.inode(file)?.file().and_then(|f| f.blocks.last());
        match (given, last) {
            (None, None) => Ok(None),
            (Some(g), Some(l)) if g.block_id == l => {
                let b = self.blocks.get(l).ok_or_else(|| NamenodeError::Internal(format!("block {l} missing")))?;
                if g.generation_stamp != b.gen_stamp {
                    return Err(NamenodeError::invalid(format!(
                        "{p}: block {l} has generation stamp {}, not {}",
                        b.gen_stamp, g.generation_stamp
                    )));
                }
                Ok(Some(ns::BlockRecord { block_id: l, generation_stamp: b.gen_stamp, num_bytes: g.num_bytes }))
            }
            (Some(g), _) => Err(NamenodeError::invalid(format!("{p}: block {} is not the file's last block", g.block_id))),
            (None, Some(l)) => Err(NamenodeError::invalid(format!("{p}: the file's last block {l} was not given"))),
        }
    }

    pub(crate) fn prep_add_block(&self, ctx: &Ctx<'_>, p: &str, previous: Option<&ExtendedBlock>) -> Result<AddBlockPlan> {
        let file = self.writable_file(ctx, p)?;
        let previous = self.match_last(p, file, previous)?;
        let f = self.inode(file)?.file().ok_or_else(|| NamenodeError::Internal("not a file".into()))?;
        Ok(AddBlockPlan {
            file,
            replication: f.replication as u32,
            block_size: f.block_size,
            block_id: self.next_block_id,
            gen_stamp: self.next_gen_stamp,
            previous,
        })
    }

    /// None when the block is not the file's last one (already abandoned).
    pub(crate) fn prep_abandon_block(&self, ctx: &Ctx<'_>, p: &str, block: &ExtendedBlock) -> Result<Option<EditOp>> {
        let file = self.writable_file(ctx, p)?;
        let last = self.inode(file)?.file().and_then(|f| f.blocks.last());
        if last != Some(block.block_id) {
            return Ok(None);
        }
        Ok(Some(edit(Op::AbandonBlock(ns::OpAbandonBlock { path: p.to_string(), block_id: block.block_id }))))
    }

    pub(crate) fn prep_complete(&self, ctx: &Ctx<'_>, p: &str, last: Option<&ExtendedBlock>) -> Result<CompletePlan> {
        let r = self.resolve(p);
        self.check_traverse(ctx.ugi, &r)?;
        let id = r.target().ok_or_else(|| NamenodeError::not_found(p))?;
        let f = self.inode(id)?.file().ok_or_else(|| err(ErrorKind::IsADirectory, format!("{p}: is a directory")))?;
        if f.client.is_none() {
            // A retried complete names the last block as it was closed; a
            // lease recovery closed it with another stamp (and length).
            let closed = f.blocks.last().map(|id| (id, self.blocks.get(id).map(|b| b.gen_stamp)));
            let matches = last.map(|b| (b.block_id, Some(b.generation_stamp))) == closed;
            if matches {
                return Ok(CompletePlan::AlreadyClosed);
            }
            return Err(err(ErrorKind::NotUnderConstruction, format!("{p}: is not open for writing")));
        }
        self.writable_file(ctx, p)?;
        let rec = self.match_last(p, id, last)?;
        let need = ctx.conf.min_replication.min(f.replication as u32).max(1) as usize;
        for b in f.blocks.as_slice() {
            if self.blocks.get(*b).map(|i| i.replicas.len()).unwrap_or(0) < need {
                return Ok(CompletePlan::NotReplicated);
            }
        }
        Ok(CompletePlan::Close(edit(Op::Close(ns::OpClose { path: p.to_string(), mtime_ms: ctx.now, last: rec }))))
    }

    /// None when `p` does not exist.
    pub(crate) fn prep_delete(&self, ctx: &Ctx<'_>, p: &str, recursive: bool) -> Result<Option<EditOp>> {
        if p == "/" {
            return Err(NamenodeError::invalid("/: the root directory cannot be deleted"));
        }
        let r = self.resolve(p);
        self.check_traverse(ctx.ugi, &r)?;
        let Some(id) = r.target() else { return Ok(None) };
        let parent = r.chain[r.comps.len() - 1];
        self.check_access(ctx.ugi, p, parent, WRITE | EXECUTE)?;
        self.check_sticky(ctx.ugi, p, parent, id)?;
        let i = self.inode(id)?;
        if i.is_dir() && !i.children().is_empty() {
            if !recursive {
                return Err(err(ErrorKind::DirectoryNotEmpty, format!("{p}: directory is not empty")));
            }
            self.check_subtree_dirs(ctx.ugi, p, id)?;
        }
        Ok(Some(edit(Op::Delete(ns::OpDelete { path: p.to_string(), mtime_ms: ctx.now }))))
    }

    /// None when the rename changes nothing (source and destination agree).
    pub(crate) fn prep_rename(&self, ctx: &Ctx<'_>, src: &str, dst: &str, overwrite: bool) -> Result<Option<EditOp>> {
        if src == "/" {
            return Err(NamenodeError::invalid("/: the root directory cannot be renamed"));
        }
        let rs = self.resolve(src);
        self.check_traverse(ctx.ugi, &rs)?;
        let src_id = rs.target().ok_or_else(|| NamenodeError::not_found(src))?;
        let src_parent = rs.chain[rs.comps.len() - 1];
        self.check_access(ctx.ugi, src, src_parent, WRITE | EXECUTE)?;
        self.check_sticky(ctx.ugi, src, src_parent, src_id)?;
        let src_is_dir = self.inode(src_id)?.is_dir();

        let rd = self.resolve(dst);
        self.check_traverse(ctx.ugi, &rd)?;
        let (target, dst_parent, existing) = match rd.target() {
            Some(d) if self.inode(d)?.is_dir() && !overwrite => {
                let name = path::file_name(src);
                (path::join(dst, name), d, self.child(d, name))
            }
            Some(d) => (dst.to_string(), rd.chain[rd.comps.len() - 1], Some(d)),
            None => {
                let parent_path = path::parent(dst).unwrap_or("/");
                let pid = rd.parent().ok_or_else(|| NamenodeError::not_found(parent_path))?;
                if !self.inode(pid)?.is_dir() {
                    return Err(err(ErrorKind::NotADirectory, format!("{dst}: {parent_path} is not a directory")));
                }
                (dst.to_string(), pid, None)
            }
        };
        if target == src || existing == Some(src_id) {
            return Ok(None);
        }
        if path::is_ancestor_or_self(src, &target) {
            return Err(NamenodeError::invalid(format!("{src}: cannot move a directory into its own subtree ({dst})")));
        }
        if let Some(e) = existing {
            if !overwrite {
                return Err(err(ErrorKind::AlreadyExists, format!("{target}: file exists")));
            }
            let ei = self.inode(e)?;
            match (ei.is_dir(), src_is_dir) {
                (true, false) => return Err(err(ErrorKind::IsADirectory, format!("{target}: is a directory"))),
                (false, true) => return Err(err(ErrorKind::NotADirectory, format!("{target}: is not a directory"))),
                (true, true) if !ei.children().is_empty() => {
                    return Err(err(ErrorKind::DirectoryNotEmpty, format!("{target}: directory is not empty")));
                }
                _ => {}
            }
            if path::is_ancestor_or_self(&target, src) {
                return Err(NamenodeError::invalid(format!("{target}: cannot overwrite an ancestor of {src}")));
            }
            self.check_sticky(ctx.ugi, &target, dst_parent, e)?;
        }
        self.check_access(ctx.ugi, dst, dst_parent, WRITE | EXECUTE)?;
        Ok(Some(edit(Op::Rename(ns::OpRename {
            src: src.to_string(),
            dst: target,
            mtime_ms: ctx.now,
            overwrite: existing.is_some(),
        }))))
    }

    fn existing(&self, ctx: &Ctx<'_>, p: &str) -> Result<u64> {
        let r = self.resolve(p);
        self.check_traverse(ctx.ugi, &r)?;
        r.target().ok_or_else(|| NamenodeError::not_found(p))
    }

    pub(crate) fn prep_set_replication(&self, ctx: &Ctx<'_>, p: &str, replication: u32) -> Result<EditOp> {
        let id = self.existing(ctx, p)?;
        if self.inode(id)?.is_dir() {
            return Err(err(ErrorKind::IsADirectory, format!("{p}: is a directory")));
        }
        if !(ctx.conf.min_replication..=ctx.conf.max_replication).contains(&replication) {
            return Err(NamenodeError::invalid(format!(
                "{p}: replication {replication} is outside {}..={}",
                ctx.conf.min_replication, ctx.conf.max_replication
            )));
        }
        self.check_access(ctx.ugi, p, id, WRITE)?;
        Ok(edit(Op::SetReplication(ns::OpSetReplication { path: p.to_string(), replication })))
    }

    pub(crate) fn prep_set_permission(&self, ctx: &Ctx<'_>, p: &str, mode: u32) -> Result<EditOp> {
        let id = self.existing(ctx, p)?;
        self.check_owner(ctx.ugi, p, id)?;
        Ok(edit(Op::SetPermission(ns::OpSetPermission { path: p.to_string(), mode: mode & 0o7777 })))
    }

    pub(crate) fn prep_set_owner(&self, ctx: &Ctx<'_>, p: &str, owner: &str, group: &str) -> Result<EditOp> {
        if owner.is_empty() && group.is_empty() {
            return Err(NamenodeError::invalid(format!("{p}: set_owner needs an owner or a group")));
        }
        let id = self.existing(ctx, p)?;
        self.check_owner(ctx.ugi, p, id)?;
        if !ctx.ugi.superuser {
            let i = self.inode(id)?;
            if !owner.is_empty() && owner != self.strings.get(i.owner) {
                return Err(err(
                    ErrorKind::PermissionDenied,
                    format!("{p}: permission denied: only the superuser may change the owner (user={})", ctx.ugi.user),
                ));
            }
            if !group.is_empty() && !ctx.ugi.groups.iter().any(|g| g == group) {
                return Err(err(
                    ErrorKind::PermissionDenied,
                    format!("{p}: permission denied: user={} is not a member of group {group}", ctx.ugi.user),
                ));
            }
        }
        Ok(edit(Op::SetOwner(ns::OpSetOwner { path: p.to_string(), owner: owner.to_string(), group: group.to_string() })))
    }

    pub(crate) fn prep_set_times(&self, ctx: &Ctx<'_>, p: &str, mtime: i64, atime: i64) -> Result<EditOp> {
        let id = self.existing(ctx, p)?;
        if self.check_owner(ctx.ugi, p, id).is_err() {
            self.check_access(ctx.ugi, p, id, WRITE)?;
        }
        Ok(edit(Op::SetTimes(ns::OpSetTimes { path: p.to_string(), mtime_ms: mtime.max(-1), atime_ms: atime.max(-1) })))
    }
}
