//! The in-memory namespace: the inode tree, the block map, the lease table
//! and the id counters. Mutations are first *prepared* (validated and turned
//! into `EditOp`s, see `namespace/ops.rs`) and then *applied* by the one
//! deterministic `apply` (see `namespace/apply.rs`) that also replays the
//! edit log.

pub(crate) mod apply;
pub(crate) mod inode;
pub(crate) mod ops;
pub(crate) mod permission;
pub(crate) mod query;

use std::collections::{BTreeSet, HashMap};

use tusk_proto::dfs::{FileStatus, file_status::FileType};

use crate::blocks::BlockMap;
use crate::error::{NamenodeError, Result};
use crate::idmap::IdMap;
pub(crate) use inode::{Body, Blocks, FileBody, Inode, Interner, ROOT_ID};

/// First block id handed out.
pub(crate) const FIRST_BLOCK_ID: u64 = 1 << 30;
/// First generation stamp handed out.
pub(crate) const FIRST_GEN_STAMP: u64 = 1000;

/// One lease holder: the files it has open for writing.
#[derive(Debug, Default)]
pub(crate) struct Lease {
    pub(crate) files: BTreeSet<u64>,
    pub(crate) last_renewed_ms: i64,
}

/// The whole namespace state guarded by the namesystem lock.
pub(crate) struct FsState {
    pub(crate) inodes: IdMap<Inode>,
    pub(crate) strings: Interner,
    pub(crate) blocks: BlockMap,
    /// Leases by interned client name.
    pub(crate) leases: HashMap<u32, Lease>,
    pub(crate) next_inode_id: u64,
    pub(crate) next_block_id: u64,
    pub(crate) next_gen_stamp: u64,
}

/// A path resolved against the tree: the ids of the existing prefix.
pub(crate) struct Resolved<'p> {
    pub(crate) path: &'p str,
    pub(crate) comps: Vec<&'p str>,
    /// Ids of `/`, then of each existing component, in order.
    pub(crate) chain: Vec<u64>,
}

impl Resolved<'_> {
    /// The target's id if every component exists.
    pub(crate) fn target(&self) -> Option<u64> {
        (self.chain.len() == self.comps.len() + 1).then(|| self.chain[self.comps.len()])
    }

    /// The parent's id if it exists (None for the root).
    pub(crate) fn parent(&self) -> Option<u64> {
        if self.comps.is_empty() || self.chain.len() < self.comps.len() {
            None
        } else {
            Some(self.chain[self.comps.len() - 1])
        }
    }

    /// Ids of the existing ancestors of the target (excluding the target).
    pub(crate) fn ancestors(&self) -> &[u64] {
        &self.chain[..self.chain.len().min(self.comps.len())]
    }
}

impl FsState {
    /// A namespace holding only `/`.
    pub(crate) fn new(superuser: &str, supergroup: &str, now: i64) -> FsState {
        let mut s = FsState::empty();
        let owner = s.strings.intern(superuser);
        let group = s.strings.intern(supergroup);
        s.inodes.insert(
            ROOT_ID,
            Inode {
                name: "".into(),
                parent: 0,
                mtime: now,
                atime: now,
                owner,
                group,
                mode: 0o755,
                body: Body::Dir(Vec::new()),
            },
        );
        s
    }

    /// A state without even a root (for loading an image).
    pub(crate) fn empty() -> FsState {
        FsState {
            inodes: IdMap::default(),
            strings: Interner::default(),
            blocks: BlockMap::default(),
            leases: HashMap::new(),
            next_inode_id: ROOT_ID + 1,
            next_block_id: FIRST_BLOCK_ID,
            next_gen_stamp: FIRST_GEN_STAMP,
        }
    }

    pub(crate) fn inode(&self, id: u64) -> Result<&Inode> {
        self.inodes.get(id).ok_or_else(|| NamenodeError::Internal(format!("inode {id} is missing")))
    }

    pub(crate) fn inode_mut(&mut self, id: u64) -> Result<&mut Inode> {
        self.inodes.get_mut(id).ok_or_else(|| NamenodeError::Internal(format!("inode {id} is missing")))
    }

    fn name_of(&self, id: u64) -> &str {
        self.inodes.get(id).map(|i| &*i.name).unwrap_or("")
    }

    /// Position of `name` among the sorted `children`.
    pub(crate) fn child_pos(&self, children: &[u64], name: &str) -> std::result::Result<usize, usize> {
        children.binary_search_by(|c| self.name_of(*c).as_bytes().cmp(name.as_bytes()))
    }

    pub(crate) fn child(&self, dir: u64, name: &str) -> Option<u64> {
        let children = self.inodes.get(dir)?.children();
        self.child_pos(children, name).ok().map(|i| children[i])
    }

    /// Resolves a normalized path as far as it exists.
    pub(crate) fn resolve<'p>(&self, path: &'p str) -> Resolved<'p> {
        let comps: Vec<&str> = tusk_common::path::components(path).collect();
        let mut chain = Vec::with_capacity(comps.len() + 1);
        chain.push(ROOT_ID);
        let mut cur = ROOT_ID;
        for c in &comps {
            match self.child(cur, c) {
                Some(id) => {
                    chain.push(id);
                    cur = id;
                }
                None => break,
            }
        }
        Resolved { path, comps, chain }
    }

    pub(crate) fn lookup(&self, path: &str) -> Option<u64> {
        self.resolve(path).target()
    }

    /// The full path of an inode.
    pub(crate) fn path_of(&self, mut id: u64) -> String {
        let mut names = Vec::new();
        while id != ROOT_ID && id != 0 {
            match self.inodes.get(id) {
                Some(i) => {
                    names.push(&*i.name);
                    id = i.parent;
                }
                None => break,
            }
        }
        if names.is_empty() {
            return "/".to_string();
        }
        names.iter().rev().fold(String::new(), |acc, n| acc + "/" + n)
    }

    pub(crate) fn file_length(&self, f: &FileBody) -> u64 {
        f.blocks.as_slice().iter().filter_map(|b| self.blocks.get(*b)).map(|b| b.num_bytes).sum()
    }

    /// The wire status of an inode.
    pub(crate) fn status(&self, id: u64) -> Result<FileStatus> {
        let i = self.inode(id)?;
        let mut st = FileStatus {
            name: i.name.to_string(),
            modification_time_ms: i.mtime,
            access_time_ms: i.atime,
            permission: i.mode as u32,
            owner: self.strings.get(i.owner).to_string(),
            group: self.strings.get(i.group).to_string(),
            inode_id: id,
            ..Default::default()
        };
        match &i.body {
            Body::Dir(c) => {
                st.file_type = FileType::Directory as i32;
                st.children_count = c.len() as u32;
            }
            Body::File(f) => {
                st.file_type = FileType::File as i32;
                st.length = self.file_length(f);
                st.replication = f.replication as u32;
                st.block_size = f.block_size;
                st.under_construction = f.client.is_some();
            }
        }
        Ok(st)
    }

    /// Ids of the subtree rooted at `id`, parents before children, children sorted.
    pub(crate) fn preorder(&self, id: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut stack = vec![id];
        while let Some(cur) = stack.pop() {
            out.push(cur);
            if let Some(i) = self.inodes.get(cur) {
                stack.extend(i.children().iter().rev());
            }
        }
        out
    }

    /// A canonical text rendering of everything durable, for tests comparing
    /// a replayed namespace with the live one.
    #[cfg(test)]
    pub(crate) fn dump(&self) -> Vec<String> {
        let mut out = vec![format!(
            "counters inode={} block={} gs={}",
            self.next_inode_id, self.next_block_id, self.next_gen_stamp
        )];
        for id in self.preorder(ROOT_ID) {
            let Some(i) = self.inodes.get(id) else { continue };
            let mut line = format!(
                "{id} {} {}:{} {:o} m={} a={}",
                self.path_of(id),
                self.strings.get(i.owner),
                self.strings.get(i.group),
                i.mode,
                i.mtime,
                i.atime
            );
            if let Body::File(f) = &i.body {
                line += &format!(" r={} bs={} uc={:?}", f.replication, f.block_size, f.client.map(|c| self.strings.get(c.get())));
                for b in f.blocks.as_slice() {
                    let bi = self.blocks.get(*b);
                    line += &format!(" [{b} {:?}]", bi.map(|x| (x.gen_stamp, x.num_bytes, x.inode)));
                }
            }
            out.push(line);
        }
        out.push(format!("blocks={}", self.blocks.len()));
        let mut leases: Vec<_> = self.leases.iter().map(|(k, l)| (self.strings.get(*k).to_string(), l.files.clone())).collect();
        leases.sort();
        out.push(format!("leases={leases:?}"));
        out
    }
}
