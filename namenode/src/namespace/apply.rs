//! The one deterministic function that changes the namespace. Live
//! mutations and edit-log replay both go through [`FsState::apply`], so a
//! replayed namespace equals the live one.

use tusk_proto::nnstorage::{BlockRecord, EditOp, PermissionStatus, edit_op::Op};

use super::{Body, Blocks, FileBody, FsState, Inode, ROOT_ID};
use crate::blocks::{BlockInfo, Replicas};
use crate::error::{NamenodeError, Result};

/// A block that left the namespace; its replicas must be deleted.
#[derive(Debug)]
pub(crate) struct RemovedBlock {
    pub(crate) block_id: u64,
    pub(crate) gen_stamp: u64,
    pub(crate) num_bytes: u64,
    pub(crate) replicas: Replicas,
}

/// What applying an op produced besides the namespace change.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub(crate) removed: Vec<RemovedBlock>,
}

fn bad(path: &str, why: &str) -> NamenodeError {
    NamenodeError::Internal(format!("cannot apply edit on {path}: {why}"))
}

impl FsState {
    /// Applies one edit. An error means the op does not fit the namespace
    /// (a bug or a corrupt log); the state may then be partly changed.
    pub(crate) fn apply(&mut self, op: &EditOp) -> Result<Applied> {
        let mut out = Applied::default();
        let Some(op) = &op.op else { return Err(NamenodeError::Internal("empty edit op".into())) };
        match op {
            Op::Mkdir(m) => {
                let parent = self.parent_dir(&m.path)?;
                let inode = self.new_inode(&m.path, parent, m.perm.as_ref(), m.mtime_ms, Body::Dir(Vec::new()));
                self.attach(parent, m.inode_id, inode, Some(m.mtime_ms))?;
                self.next_inode_id = self.next_inode_id.max(m.inode_id + 1);
            }
            Op::Create(c) => {
                let parent = self.parent_dir(&c.path)?;
                let name = tusk_common::path::file_name(&c.path);
                if let Some(old) = self.child(parent, name) {
                    if !c.overwrite || self.inode(old)?.is_dir() {
                        return Err(bad(&c.path, "exists"));
                    }
                    self.remove_subtree(old, &mut out)?;
                }
                let client = (!c.client_name.is_empty()).then(|| self.strings.intern_nz(&c.client_name));
                let body = Body::File(FileBody {
                    blocks: Blocks::None,
                    block_size: c.block_size,
                    replication: c.replication.min(u16::MAX as u32) as u16,
                    client,
                });
                let inode = self.new_inode(&c.path, parent, c.perm.as_ref(), c.mtime_ms, body);
                self.attach(parent, c.inode_id, inode, Some(c.mtime_ms))?;
                if let Some(cl) = client {
                    let lease = self.leases.entry(cl.get()).or_default();
                    lease.files.insert(c.inode_id);
                    lease.last_renewed_ms = lease.last_renewed_ms.max(c.mtime_ms);
                }
                self.next_inode_id = self.next_inode_id.max(c.inode_id + 1);
            }
            Op::AddBlock(a) => {
                let id = self.file_id(&a.path)?;
                let block = a.block.as_ref().ok_or_else(|| bad(&a.path, "add_block without a block"))?;
                if let Some(prev) = &a.previous {
                    self.commit_last(id, prev, &a.path)?;
                }
                let f = self.inode_mut(id)?.file_mut().ok_or_else(|| bad(&a.path, "not a file"))?;
                f.blocks.push(block.block_id);
                self.blocks.insert(
                    block.block_id,
                    BlockInfo { inode: id, num_bytes: 0, gen_stamp: block.generation_stamp, replicas: Replicas::default() },
                );
                self.next_block_id = self.next_block_id.max(block.block_id + 1);
                self.next_gen_stamp = self.next_gen_stamp.max(block.generation_stamp + 1);
            }
            Op::AbandonBlock(a) => {
                let id = self.file_id(&a.path)?;
                let f = self.inode_mut(id)?.file_mut().ok_or_else(|| bad(&a.path, "not a file"))?;
                if f.blocks.last() != Some(a.block_id) {
                    return Err(bad(&a.path, "abandoned block is not the last block"));
                }
                f.blocks.pop();
                if let Some(b) = self.blocks.remove(a.block_id) {
                    out.removed.push(RemovedBlock {
                        block_id: a.block_id,
                        gen_stamp: b.gen_stamp,
                        num_bytes: b.num_bytes,
                        replicas: b.replicas,
                    });
                }
            }
            Op::Close(c) => {
                let id = self.file_id(&c.path)?;
                if let Some(last) = &c.last {
                    self.commit_last(id, last, &c.path)?;
                }
                let inode = self.inode_mut(id)?;
                inode.mtime = c.mtime_ms;
                inode.atime = c.mtime_ms;
                let f = inode.file_mut().ok_or_else(|| bad(&c.path, "not a file"))?;
                if let Some(cl) = f.client.take() {
                    self.release_lease(cl.get(), id);
                }
            }
            Op::Delete(d) => {
                let id = self.lookup(&d.path).ok_or_else(|| bad(&d.path, "missing"))?;
                if id == ROOT_ID {
                    return Err(bad(&d.path, "cannot delete the root"));
                }
                let parent = self.inode(id)?.parent;
                self.remove_subtree(id, &mut out)?;
                self.inode_mut(parent)?.mtime = d.mtime_ms;
            }
            Op::Rename(r) => {
                let src = self.lookup(&r.src).ok_or_else(|| bad(&r.src, "missing"))?;
                let dst_parent = self.parent_dir(&r.dst)?;
                let dst_name = tusk_common::path::file_name(&r.dst);
                if src == ROOT_ID || tusk_common::path::is_ancestor_or_self(&r.src, &r.dst) {
                    return Err(bad(&r.src, "rename into itself"));
                }
                if let Some(old) = self.child(dst_parent, dst_name) {
                    if !r.overwrite {
                        return Err(bad(&r.dst, "exists"));
                    }
                    self.remove_subtree(old, &mut out)?;
                }
                let src_parent = self.detach(src)?;
                self.inode_mut(src_parent)?.mtime = r.mtime_ms;
                let mut inode = self.inodes.remove(src).ok_or_else(|| bad(&r.src, "missing"))?;
                inode.name = dst_name.into();
                self.attach(dst_parent, src, inode, Some(r.mtime_ms))?;
            }
            Op::SetReplication(s) => {
                let id = self.file_id(&s.path)?;
                if let Some(f) = self.inode_mut(id)?.file_mut() {
                    f.replication = s.replication.min(u16::MAX as u32) as u16;
                }
            }
            Op::SetPermission(s) => {
                let id = self.lookup(&s.path).ok_or_else(|| bad(&s.path, "missing"))?;
                self.inode_mut(id)?.mode = (s.mode & 0o7777) as u16;
            }
            Op::SetOwner(s) => {
                let id = self.lookup(&s.path).ok_or_else(|| bad(&s.path, "missing"))?;
                let owner = (!s.owner.is_empty()).then(|| self.strings.intern(&s.owner));
                let group = (!s.group.is_empty()).then(|| self.strings.intern(&s.group));
                let inode = self.inode_mut(id)?;
                if let Some(o) = owner {
                    inode.owner = o;
                }
                if let Some(g) = group {
                    inode.group = g;
                }
            }
            Op::UpdateBlock(u) => {
                let id = self.file_id(&u.path)?;
                let rec = u.block.as_ref().ok_or_else(|| bad(&u.path, "update_block without a block"))?;
                if self.inode(id)?.file().and_then(|f| f.blocks.last()) != Some(rec.block_id) {
                    return Err(bad(&u.path, "updated block is not the last block"));
                }
                let b = self.blocks.get_mut(rec.block_id).ok_or_else(|| bad(&u.path, "block missing"))?;
                if rec.generation_stamp <= b.gen_stamp {
                    return Err(bad(&u.path, "generation stamp does not grow"));
                }
                b.gen_stamp = rec.generation_stamp;
                b.num_bytes = rec.num_bytes;
                // Replicas with the old stamp are stale; new ones are reported again.
                b.replicas = Replicas::default();
                self.next_gen_stamp = self.next_gen_stamp.max(rec.generation_stamp + 1);
            }
            Op::SetGenStamp(g) => {
                self.next_gen_stamp = self.next_gen_stamp.max(g.gen_stamp + 1);
            }
            Op::SetTimes(s) => {
                let id = self.lookup(&s.path).ok_or_else(|| bad(&s.path, "missing"))?;
                let inode = self.inode_mut(id)?;
                if s.mtime_ms >= 0 {
                    inode.mtime = s.mtime_ms;
                }
                if s.atime_ms >= 0 {
                    inode.atime = s.atime_ms;
                }
            }
        }
        Ok(out)
    }

    fn parent_dir(&self, path: &str) -> Result<u64> {
        let parent = tusk_common::path::parent(path).ok_or_else(|| bad(path, "no parent"))?;
        let id = self.lookup(parent).ok_or_else(|| bad(path, "parent missing"))?;
        if !self.inode(id)?.is_dir() {
            return Err(bad(path, "parent is not a directory"));
        }
        Ok(id)
    }

    fn file_id(&self, path: &str) -> Result<u64> {
        let id = self.lookup(path).ok_or_else(|| bad(path, "missing"))?;
        if self.inode(id)?.is_dir() {
            return Err(bad(path, "is a directory"));
        }
        Ok(id)
    }

    fn new_inode(&mut self, path: &str, parent: u64, perm: Option<&PermissionStatus>, mtime: i64, body: Body) -> Inode {
        let parent_group = self.inodes.get(parent).map(|p| p.group).unwrap_or(0);
        let (owner, group, mode) = match perm {
            Some(p) => {
                let group = if p.group.is_empty() { parent_group } else { self.strings.intern(&p.group) };
                (self.strings.intern(&p.owner), group, (p.mode & 0o7777) as u16)
            }
            None => (0, parent_group, 0o755),
        };
        Inode {
            name: tusk_common::path::file_name(path).into(),
            parent,
            mtime,
            atime: mtime,
            owner,
            group,
            mode,
            body,
        }
    }

    /// Inserts `inode` as child `id` of `parent`, keeping children sorted.
    pub(crate) fn attach(&mut self, parent: u64, id: u64, mut inode: Inode, mtime: Option<i64>) -> Result<()> {
        inode.parent = parent;
        let pos = {
            let p = self.inode(parent)?;
            match self.child_pos(p.children(), &inode.name) {
                Ok(_) => return Err(bad(&inode.name, "name taken")),
                Err(pos) => pos,
            }
        };
        if self.inodes.insert(id, inode).is_some() {
            return Err(NamenodeError::Internal(format!("inode id {id} reused")));
        }
        let p = self.inode_mut(parent)?;
        if let Some(m) = mtime {
            p.mtime = m;
        }
        match &mut p.body {
            Body::Dir(c) => c.insert(pos, id),
            Body::File(_) => return Err(NamenodeError::Internal("attach under a file".into())),
        }
        Ok(())
    }

    /// Unlinks `id` from its parent (the inode stays in the map); returns the parent.
    fn detach(&mut self, id: u64) -> Result<u64> {
        let (parent, name) = {
            let i = self.inode(id)?;
            (i.parent, i.name.clone())
        };
        let pos = {
            let p = self.inode(parent)?;
            self.child_pos(p.children(), &name).map_err(|_| NamenodeError::Internal(format!("inode {id} not in its parent")))?
        };
        if let Body::Dir(c) = &mut self.inode_mut(parent)?.body {
            c.remove(pos);
        }
        Ok(parent)
    }

    /// Removes `id` and everything below it, collecting removed blocks.
    fn remove_subtree(&mut self, id: u64, out: &mut Applied) -> Result<()> {
        self.detach(id)?;
        for cur in self.preorder(id) {
            let Some(inode) = self.inodes.remove(cur) else { continue };
            if let Body::File(f) = inode.body {
                if let Some(cl) = f.client {
                    self.release_lease(cl.get(), cur);
                }
                for b in f.blocks.as_slice() {
                    if let Some(info) = self.blocks.remove(*b) {
                        out.removed.push(RemovedBlock {
                            block_id: *b,
                            gen_stamp: info.gen_stamp,
                            num_bytes: info.num_bytes,
                            replicas: info.replicas,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn release_lease(&mut self, client: u32, file: u64) {
        if let Some(l) = self.leases.get_mut(&client) {
            l.files.remove(&file);
            if l.files.is_empty() {
                self.leases.remove(&client);
            }
        }
    }

    /// Sets the final length of the file's last block, which must be `rec`.
    fn commit_last(&mut self, file: u64, rec: &BlockRecord, path: &str) -> Result<()> {
        let last = self.inode(file)?.file().and_then(|f| f.blocks.last());
        if last != Some(rec.block_id) {
            return Err(bad(path, "committed block is not the last block"));
        }
        let b = self.blocks.get_mut(rec.block_id).ok_or_else(|| bad(path, "block missing"))?;
        b.num_bytes = rec.num_bytes;
        // A block recovery commits with its recovery id: replicas with the
        // older stamp are stale (the recovered ones are reported again).
        if rec.generation_stamp > b.gen_stamp {
            b.gen_stamp = rec.generation_stamp;
            b.replicas = Replicas::default();
        }
        Ok(())
    }
}
