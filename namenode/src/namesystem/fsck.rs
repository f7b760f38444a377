//! Fsck: the health of every block under a path, streamed. The walk is
//! resumable (a stack of directories with the last name done in each), so
//! each message is built under the locks and the locks are released between
//! messages: a slow reader never holds up the namespace. Blocks are judged
//! by the same [`classify`] the replication monitor uses.

use tusk_proto::dfs::fsck_replica::ReplicaState;
use tusk_proto::dfs::{BlockHealth, Caller, ExtendedBlock, FsckBlock, FsckFile, FsckReplica, FsckRequest, FsckResponse, FsckSummary};

use super::{Namesystem, normalize};
use crate::datanodes::DatanodeManager;
use crate::error::{NamenodeError, Result};
use crate::namespace::permission::{EXECUTE, READ, Ugi};
use crate::namespace::{Body, FileBody, FsState};
use crate::replication::{Census, ReplicaKind, Replication, classify};

/// Files per streamed message.
const FILES_PER_MESSAGE: usize = 1000;
/// Inodes visited per message at most (bounds the time the locks are held).
const INODES_PER_MESSAGE: usize = 20_000;

/// A directory being walked and the last child name done.
#[derive(Debug)]
struct Frame {
    path: String,
    after: Option<Box<str>>,
}

/// One fsck in progress.
#[derive(Debug)]
pub(crate) struct FsckRun {
    ugi: Ugi,
    list_files: bool,
    list_blocks: bool,
    list_locations: bool,
    include_open_files: bool,
    /// The path is a file: just that one.
    single: Option<String>,
    stack: Vec<Frame>,
    summary: FsckSummary,
    done: bool,
}

fn replica_state(k: ReplicaKind) -> ReplicaState {
    match k {
        ReplicaKind::Live => ReplicaState::Live,
        ReplicaKind::Corrupt => ReplicaState::Corrupt,
        ReplicaKind::Decommissioning => ReplicaState::Decommissioning,
        ReplicaKind::Decommissioned => ReplicaState::Decommissioned,
        ReplicaKind::Excess => ReplicaState::Excess,
    }
}

impl FsckRun {
    fn count(&mut self, c: &Census, problems: &[BlockHealth]) {
        let s = &mut self.summary;
        s.total_blocks += 1;
        s.live_replicas += c.live as u64;
        if problems.is_empty() {
            s.healthy_blocks += 1;
        }
        for p in problems {
            match p {
                BlockHealth::Healthy => {}
                BlockHealth::UnderReplicated => s.under_replicated_blocks += 1,
                BlockHealth::OverReplicated => s.over_replicated_blocks += 1,
                BlockHealth::MisReplicated => s.mis_replicated_blocks += 1,
                BlockHealth::Corrupt => s.corrupt_blocks += 1,
                BlockHealth::Missing => {
                    s.missing_blocks += 1;
                    s.missing_size += c.num_bytes;
                }
            }
        }
    }

    /// Checks one file; Some when it is to be listed.
    fn file(&mut self, st: &FsState, dm: &DatanodeManager, r: &Replication, racks: usize, path: String, f: &FileBody) -> Option<FsckFile> {
        let open = f.client.is_some();
        let length = st.file_length(f);
        if open {
            self.summary.open_files += 1;
            if !self.include_open_files {
                return None;
            }
        }
        self.summary.total_files += 1;
        self.summary.total_size += length;
        let ids = f.blocks.as_slice();
        let mut out = FsckFile {
            path,
            length,
            replication: f.replication as u32,
            under_construction: open,
            block_count: ids.len() as u32,
            blocks: Vec::new(),
            healthy: true,
        };
        let mut troubled = false;
        for id in ids {
            let Some(c) = classify(st, dm, r, *id, racks) else { continue };
            let problems = c.problems();
            self.count(&c, &problems);
            if problems.iter().any(|p| matches!(p, BlockHealth::Corrupt | BlockHealth::Missing)) {
                out.healthy = false;
            }
            troubled |= !problems.is_empty();
            if !self.list_blocks && problems.is_empty() {
                continue;
            }
            let replicas = if self.list_locations {
                c.replicas
                    .iter()
                    .filter_map(|(d, k)| {
                        let node = dm.get(*d)?;
                        Some(FsckReplica { datanode: Some(node.id.clone()), state: replica_state(*k) as i32 })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            out.blocks.push(FsckBlock {
                block: Some(ExtendedBlock { block_id: *id, generation_stamp: c.gen_stamp, num_bytes: c.num_bytes }),
                expected_replicas: c.expected,
                live_replicas: c.live,
                corrupt_replicas: c.corrupt,
                problems: problems.iter().map(|p| *p as i32).collect(),
                replicas,
                racks: c.live_racks,
            });
        }
        (self.list_files || troubled).then_some(out)
    }

    /// Walks on until a message is full; true when the walk is over.
    fn walk(&mut self, st: &FsState, dm: &DatanodeManager, r: &Replication, files: &mut Vec<FsckFile>) -> bool {
        let racks = dm.cluster_racks();
        if let Some(p) = self.single.take()
            && let Some(f) = st.lookup(&p).and_then(|id| st.inodes.get(id)).and_then(|i| i.file())
            && let Some(out) = self.file(st, dm, r, racks, p, f)
        {
            files.push(out);
        }
        let mut visited = 0;
        while files.len() < FILES_PER_MESSAGE && visited < INODES_PER_MESSAGE {
            let Some(frame) = self.stack.last_mut() else { break };
            let Some(dir) = st.lookup(&frame.path).and_then(|id| st.inodes.get(id)).filter(|i| i.is_dir()) else {
                self.stack.pop();
                continue;
            };
            let children = dir.children();
            let start = match &frame.after {
                None => 0,
                Some(a) => children.partition_point(|c| st.inodes.get(*c).is_none_or(|x| x.name.as_bytes() <= a.as_bytes())),
            };
            let Some((child, inode)) = children.get(start).and_then(|c| Some((*c, st.inodes.get(*c)?))) else {
                self.stack.pop();
                continue;
            };
            visited += 1;
            frame.after = Some(inode.name.clone());
            let path = tusk_common::path::join(&frame.path, &inode.name);
            match &inode.body {
                Body::Dir(_) => {
                    if st.check_access(&self.ugi, &path, child, READ | EXECUTE).is_ok() {
                        self.summary.total_dirs += 1;
                        self.stack.push(Frame { path, after: None });
                    } else {
                        tracing::debug!("fsck: {path} skipped: {} may not list it", self.ugi.user);
                    }
                }
                Body::File(f) => {
                    if let Some(out) = self.file(st, dm, r, racks, path, f) {
                        files.push(out);
                    }
                }
            }
        }
        if !self.stack.is_empty() {
            return false;
        }
        let s = &mut self.summary;
        s.datanodes = dm.live_count() as u32;
        s.racks = racks as u32;
        s.healthy = s.corrupt_blocks == 0 && s.missing_blocks == 0;
        s.finished_ms = tusk_common::now_ms();
        true
    }
}

impl Namesystem {
    /// Checks the caller may read `req.path` (traverse, and READ+EXECUTE
    /// on a directory) and prepares the walk.
    pub(crate) fn start_fsck(&self, caller: &Caller, req: &FsckRequest) -> Result<FsckRun> {
        let p = normalize(if req.path.is_empty() { "/" } else { &req.path })?;
        let ugi = self.ugi(caller);
        let st = self.state.read();
        let resolved = st.resolve(&p);
        st.check_traverse(&ugi, &resolved)?;
        let id = resolved.target().ok_or_else(|| NamenodeError::not_found(&p))?;
        let is_dir = st.inode(id)?.is_dir();
        if is_dir {
            st.check_access(&ugi, &p, id, READ | EXECUTE)?;
        }
        drop(st);
        tracing::debug!("fsck {p} by {}", ugi.user);
        let summary = FsckSummary {
            default_replication: self.conf.default_replication,
            total_dirs: is_dir as u64,
            started_ms: tusk_common::now_ms(),
            ..Default::default()
        };
        Ok(FsckRun {
            ugi,
            list_files: req.list_files,
            list_blocks: req.list_blocks,
            list_locations: req.list_locations,
            include_open_files: req.include_open_files,
            single: (!is_dir).then(|| p.clone()),
            stack: if is_dir { vec![Frame { path: p, after: None }] } else { Vec::new() },
            summary,
            done: false,
        })
    }

    /// The next message of the run (the last one carries the summary);
    /// None after the last.
    pub(crate) fn fsck_next(&self, run: &mut FsckRun) -> Option<FsckResponse> {
        loop {
            if run.done {
                return None;
            }
            let mut files = Vec::new();
            let finished = {
                let st = self.state.read();
                let dm = self.datanodes.lock();
                let r = self.repl.lock();
                run.walk(&st, &dm, &r, &mut files)
            };
            run.done = finished;
            if finished || !files.is_empty() {
                let summary = finished.then_some(run.summary);
                return Some(FsckResponse { files, summary });
            }
        }
    }
}
