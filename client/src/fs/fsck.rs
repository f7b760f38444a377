//! What [`Client::fsck`](crate::Client::fsck) returns: the namenode's
//! health report of a tree (HDFS `fsck`), collected from its stream.

use tusk_proto::dfs;

use crate::error::{ClientError, Result};

/// What fsck lists (HDFS `-files`, `-blocks`, `-locations`, `-openforwrite`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsckOptions {
    /// Every file checked (else only files with problems).
    pub list_files: bool,
    /// Every block of the listed files (else only blocks with problems).
    pub list_blocks: bool,
    /// Replica locations (with racks) of the listed blocks.
    pub list_locations: bool,
    /// Check files open for writing too (else they are only counted).
    pub include_open_files: bool,
}

/// One health problem of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockProblem {
    /// Fewer live replicas than the file's replication.
    UnderReplicated,
    /// More live replicas than the file's replication.
    OverReplicated,
    /// Enough replicas, but all on one rack while several racks exist.
    MisReplicated,
    /// Some replicas are corrupt (good ones may remain).
    Corrupt,
    /// No live, uncorrupted replica: the data cannot be read.
    Missing,
}

/// The state of one replica in an fsck report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsckReplicaState {
    Live,
    Corrupt,
    Decommissioning,
    Decommissioned,
    /// Being deleted as an excess replica.
    Excess,
}

/// One replica of a block and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct FsckReplica {
    pub uuid: String,
    /// `host:port` of the datanode's block streaming server.
    pub transfer_addr: String,
    pub host: String,
    pub rack: String,
    pub state: FsckReplicaState,
}

/// One block of a file as fsck saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct FsckBlock {
    pub block_id: u64,
    pub generation_stamp: u64,
    /// Bytes in the block.
    pub length: u64,
    pub expected_replicas: u32,
    pub live_replicas: u32,
    pub corrupt_replicas: u32,
    /// Every problem of the block (empty: healthy).
    pub problems: Vec<BlockProblem>,
    /// Replicas, when locations were asked for.
    pub replicas: Vec<FsckReplica>,
    /// Racks holding a replica.
    pub racks: u32,
}

impl FsckBlock {
    /// `blk_<id>_<generation stamp>`.
    pub fn name(&self) -> String {
        format!("blk_{}_{}", self.block_id, self.generation_stamp)
    }

    pub fn has(&self, problem: BlockProblem) -> bool {
        self.problems.contains(&problem)
    }
}

/// One file as fsck saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct FsckFile {
    pub path: String,
    pub length: u64,
    pub replication: u32,
    /// Open for writing.
    pub under_construction: bool,
    pub block_count: u32,
    /// All its blocks with [`FsckOptions::list_blocks`], else those with problems.
    pub blocks: Vec<FsckBlock>,
    pub healthy: bool,
}

/// Totals over the checked tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FsckSummary {
    pub total_size: u64,
    pub total_dirs: u64,
    pub total_files: u64,
    pub total_blocks: u64,
    pub healthy_blocks: u64,
    pub under_replicated_blocks: u64,
    pub over_replicated_blocks: u64,
    pub mis_replicated_blocks: u64,
    pub corrupt_blocks: u64,
    pub missing_blocks: u64,
    /// Bytes in missing blocks.
    pub missing_size: u64,
    /// Live replicas over all blocks.
    pub live_replicas: u64,
    pub default_replication: u32,
    pub datanodes: u32,
    pub racks: u32,
    /// Files open for writing.
    pub open_files: u64,
    /// No corrupt and no missing block.
    pub healthy: bool,
    pub started_ms: i64,
    pub finished_ms: i64,
}

/// The whole answer of an fsck.
#[derive(Debug, Clone, PartialEq)]
pub struct FsckReport {
    /// The checked path.
    pub path: String,
    /// Files in path order (see [`FsckOptions::list_files`]).
    pub files: Vec<FsckFile>,
    pub summary: FsckSummary,
}

impl FsckReport {
    /// No corrupt and no missing block (HDFS "HEALTHY").
    pub fn is_healthy(&self) -> bool {
        self.summary.healthy
    }

    /// Replicas lacking for the listed blocks to reach their expected count.
    /// Every block lacking replicas is listed (it has a problem), so this is
    /// the tree's total.
    pub fn missing_replicas(&self) -> u64 {
        let blocks = self.files.iter().flat_map(|f| &f.blocks);
        blocks.map(|b| u64::from(b.expected_replicas.saturating_sub(b.live_replicas))).sum()
    }

    /// Builds the report from the stream's messages (files, then the
    /// summary in the last one).
    pub(crate) fn collect(path: String, messages: Vec<dfs::FsckResponse>) -> Result<FsckReport> {
        let mut files = Vec::new();
        let mut summary = None;
        for m in messages {
            files.extend(m.files.into_iter().map(FsckFile::from));
            if let Some(s) = m.summary {
                summary = Some(FsckSummary::from(s));
            }
        }
        let summary = summary.ok_or_else(|| ClientError::InvalidArgument {
            path: path.clone(),
            message: "the namenode's fsck answer ended without a summary".into(),
        })?;
        Ok(FsckReport { path, files, summary })
    }
}

impl BlockProblem {
    /// The wire name (`UNDER_REPLICATED`, `MISSING`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BlockProblem::UnderReplicated => "UNDER_REPLICATED",
            BlockProblem::OverReplicated => "OVER_REPLICATED",
            BlockProblem::MisReplicated => "MIS_REPLICATED",
            BlockProblem::Corrupt => "CORRUPT",
            BlockProblem::Missing => "MISSING",
        }
    }

    fn from_proto(v: i32) -> Option<BlockProblem> {
        use dfs::BlockHealth as W;
        match W::try_from(v).ok()? {
            W::Healthy => None,
            W::UnderReplicated => Some(BlockProblem::UnderReplicated),
            W::OverReplicated => Some(BlockProblem::OverReplicated),
            W::MisReplicated => Some(BlockProblem::MisReplicated),
            W::Corrupt => Some(BlockProblem::Corrupt),
            W::Missing => Some(BlockProblem::Missing),
        }
    }
}

impl FsckReplicaState {
    /// The wire name (`LIVE`, `CORRUPT`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FsckReplicaState::Live => "LIVE",
            FsckReplicaState::Corrupt => "CORRUPT",
            FsckReplicaState::Decommissioning => "DECOMMISSIONING",
            FsckReplicaState::Decommissioned => "DECOMMISSIONED",
            FsckReplicaState::Excess => "EXCESS",
        }
    }
}

impl From<dfs::FsckReplica> for FsckReplica {
    fn from(r: dfs::FsckReplica) -> Self {
        use dfs::fsck_replica::ReplicaState as W;
        let state = match W::try_from(r.state) {
            Ok(W::Corrupt) => FsckReplicaState::Corrupt,
            Ok(W::Decommissioning) => FsckReplicaState::Decommissioning,
            Ok(W::Decommissioned) => FsckReplicaState::Decommissioned,
            Ok(W::Excess) => FsckReplicaState::Excess,
            Ok(W::Live) | Err(_) => FsckReplicaState::Live,
        };
        let id = r.datanode.unwrap_or_default();
        FsckReplica { uuid: id.datanode_uuid, transfer_addr: id.transfer_addr, host: id.host, rack: id.rack, state }
    }
}

impl From<dfs::FsckBlock> for FsckBlock {
    fn from(b: dfs::FsckBlock) -> Self {
        let blk = b.block.unwrap_or_default();
        FsckBlock {
            block_id: blk.block_id,
            generation_stamp: blk.generation_stamp,
            length: blk.num_bytes,
            expected_replicas: b.expected_replicas,
            live_replicas: b.live_replicas,
            corrupt_replicas: b.corrupt_replicas,
            problems: b.problems.into_iter().filter_map(BlockProblem::from_proto).collect(),
            replicas: b.replicas.into_iter().map(FsckReplica::from).collect(),
            racks: b.racks,
        }
    }
}

impl From<dfs::FsckFile> for FsckFile {
    fn from(f: dfs::FsckFile) -> Self {
        FsckFile {
            path: f.path,
            length: f.length,
            replication: f.replication,
            under_construction: f.under_construction,
            block_count: f.block_count,
            blocks: f.blocks.into_iter().map(FsckBlock::from).collect(),
            healthy: f.healthy,
        }
    }
}

impl From<dfs::FsckSummary> for FsckSummary {
    fn from(s: dfs::FsckSummary) -> Self {
        FsckSummary {
            total_size: s.total_size,
            total_dirs: s.total_dirs,
            total_files: s.total_files,
            total_blocks: s.total_blocks,
            healthy_blocks: s.healthy_blocks,
            under_replicated_blocks: s.under_replicated_blocks,
            over_replicated_blocks: s.over_replicated_blocks,
            mis_replicated_blocks: s.mis_replicated_blocks,
            corrupt_blocks: s.corrupt_blocks,
            missing_blocks: s.missing_blocks,
            missing_size: s.missing_size,
            live_replicas: s.live_replicas,
            default_replication: s.default_replication,
            datanodes: s.datanodes,
            racks: s.racks,
            open_files: s.open_files,
            healthy: s.healthy,
            started_ms: s.started_ms,
            finished_ms: s.finished_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(id: u64, expected: u32, live: u32, problems: &[dfs::BlockHealth]) -> dfs::FsckBlock {
        dfs::FsckBlock {
            block: Some(dfs::ExtendedBlock { block_id: id, generation_stamp: 7, num_bytes: 10 }),
            expected_replicas: expected,
            live_replicas: live,
            problems: problems.iter().map(|p| *p as i32).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_stream_is_collected_with_its_summary() {
        let f = |p: &str, blocks| dfs::FsckFile { path: p.into(), blocks, ..Default::default() };
        let msgs = vec![
            dfs::FsckResponse { files: vec![f("/a", vec![block(1, 3, 1, &[dfs::BlockHealth::UnderReplicated])])], summary: None },
            dfs::FsckResponse {
                files: vec![f("/b", vec![block(2, 2, 0, &[dfs::BlockHealth::Missing, dfs::BlockHealth::Healthy])])],
                summary: Some(dfs::FsckSummary { total_files: 2, healthy: false, ..Default::default() }),
            },
        ];
        let r = FsckReport::collect("/".into(), msgs).unwrap();
        assert_eq!(r.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), vec!["/a", "/b"]);
        assert_eq!(r.files[0].blocks[0].problems, vec![BlockProblem::UnderReplicated]);
        assert_eq!(r.files[1].blocks[0].problems, vec![BlockProblem::Missing], "HEALTHY is no problem");
        assert_eq!(r.files[0].blocks[0].name(), "blk_1_7");
        assert_eq!(r.missing_replicas(), 2 + 2);
        assert_eq!(r.summary.total_files, 2);
        assert!(!r.is_healthy());
    }

    #[test]
    fn a_stream_without_a_summary_is_an_error() {
        let e = FsckReport::collect("/x".into(), vec![dfs::FsckResponse::default()]).unwrap_err();
        assert!(e.to_string().starts_with("/x: ") && e.to_string().contains("summary"), "{e}");
    }

    #[test]
    fn replicas_keep_their_place_and_state() {
        let r = dfs::FsckReplica {
            datanode: Some(dfs::DatanodeId { transfer_addr: "h:1".into(), rack: "/r2".into(), ..Default::default() }),
            state: dfs::fsck_replica::ReplicaState::Corrupt as i32,
        };
        let r = FsckReplica::from(r);
        assert_eq!((r.transfer_addr.as_str(), r.rack.as_str(), r.state), ("h:1", "/r2", FsckReplicaState::Corrupt));
    }
}
