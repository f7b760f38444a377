//! Read-only ClientProtocol queries over the namespace.

use tusk_proto::dfs::{ContentSummary, FileStatus};
use tusk_proto::error::ErrorKind;

use super::permission::{EXECUTE, READ, Ugi};
use super::{Body, FsState};
use crate::blocks::DnIndex;
use crate::error::{NamenodeError, Result};

/// One page of a directory listing.
#[derive(Debug)]
pub(crate) struct Listing {
    pub(crate) entries: Vec<FileStatus>,
    pub(crate) remaining: u32,
    pub(crate) is_file: bool,
}

/// A block overlapping a read range, with its replica holders.
#[derive(Debug)]
pub(crate) struct BlockLoc {
    pub(crate) block_id: u64,
    pub(crate) gen_stamp: u64,
    pub(crate) num_bytes: u64,
    pub(crate) offset: u64,
    pub(crate) replicas: Vec<DnIndex>,
}

/// The blocks of a file that overlap a range.
#[derive(Debug)]
pub(crate) struct FileBlocks {
    pub(crate) file_length: u64,
    pub(crate) under_construction: bool,
    pub(crate) blocks: Vec<BlockLoc>,
}

impl FsState {
    /// None when the path does not exist.
    pub(crate) fn file_info(&self, ugi: &Ugi, p: &str) -> Result<Option<FileStatus>> {
        let r = self.resolve(p);
        self.check_traverse(ugi, &r)?;
        match r.target() {
            Some(id) => Ok(Some(self.status(id)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn listing(&self, ugi: &Ugi, p: &str, start_after: &str, limit: u32) -> Result<Listing> {
        let r = self.resolve(p);
        self.check_traverse(ugi, &r)?;
        let id = r.target().ok_or_else(|| NamenodeError::not_found(p))?;
        let i = self.inode(id)?;
        if !i.is_dir() {
            return Ok(Listing { entries: vec![self.status(id)?], remaining: 0, is_file: true });
        }
        self.check_access(ugi, p, id, READ | EXECUTE)?;
        let children = i.children();
        let start = children.partition_point(|c| self.inodes.get(*c).map(|x| x.name.as_bytes() <= start_after.as_bytes()).unwrap_or(true));
        let end = children.len().min(start + limit.max(1) as usize);
        let entries = children[start..end].iter().map(|c| self.status(*c)).collect::<Result<Vec<_>>>()?;
        Ok(Listing { entries, remaining: (children.len() - end) as u32, is_file: false })
    }

    pub(crate) fn content_summary(&self, ugi: &Ugi, p: &str) -> Result<ContentSummary> {
        let r = self.resolve(p);
        self.check_traverse(ugi, &r)?;
        let id = r.target().ok_or_else(|| NamenodeError::not_found(p))?;
        if self.inode(id)?.is_dir() {
            self.check_access(ugi, p, id, READ | EXECUTE)?;
        }
        let mut s = ContentSummary::default();
        for cur in self.preorder(id) {
            match &self.inode(cur)?.body {
                Body::Dir(_) => s.directory_count += 1,
                Body::File(f) => {
                    let len = self.file_length(f);
                    s.file_count += 1;
                    s.length += len;
                    s.space_consumed += len * f.replication as u64;
                }
            }
        }
        Ok(s)
    }

    /// Blocks overlapping `[offset, offset+length)` (length 0 = to the end).
    pub(crate) fn block_locations(&self, ugi: &Ugi, p: &str, offset: u64, length: u64) -> Result<FileBlocks> {
        let r = self.resolve(p);
        self.check_traverse(ugi, &r)?;
        let id = r.target().ok_or_else(|| NamenodeError::not_found(p))?;
        let f = self
            .inode(id)?
            .file()
            .ok_or_else(|| NamenodeError::req(ErrorKind::IsADirectory, format!("{p}: is a directory")))?;
        self.check_access(ugi, p, id, READ)?;
        let end = if length == 0 { u64::MAX } else { offset.saturating_add(length) };
        let mut pos = 0u64;
        let mut blocks = Vec::new();
        let ids = f.blocks.as_slice();
        for (k, b) in ids.iter().enumerate() {
            let Some(info) = self.blocks.get(*b) else { continue };
            let is_last = k + 1 == ids.len();
            let block_end = pos + info.num_bytes;
            // The last block of a file being written may still grow: include it.
            let overlaps = (pos < end && block_end > offset) || (is_last && f.client.is_some() && pos <= end.max(offset));
            if overlaps {
                blocks.push(BlockLoc {
                    block_id: *b,
                    gen_stamp: info.gen_stamp,
                    num_bytes: info.num_bytes,
                    offset: pos,
                    replicas: info.replicas.iter().collect(),
                });
            }
            pos = block_end;
        }
        Ok(FileBlocks { file_length: pos, under_construction: f.client.is_some(), blocks })
    }
}
