//! The datanode's error type. Every variant names the input that was wrong
//! (a path, a block, a peer).

use std::path::PathBuf;
use tusk_proto::dfs::TransferStatus;
use tusk_proto::transfer::FrameError;

/// What can go wrong in a datanode.
#[derive(Debug, thiserror::Error)]
pub enum DatanodeError {
    /// A file-system operation on a data directory failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A `VERSION` file that cannot be used.
    #[error("{}: invalid VERSION file: {reason}", path.display())]
    Version { path: PathBuf, reason: String },
    /// The data directories belong to different datanodes or clusters.
    #[error("data directories disagree: {0}")]
    InconsistentDirs(String),
    /// The namenode belongs to another cluster than the data directories.
    #[error("cluster id mismatch: data directories belong to cluster '{local}', namenode {namenode} answers '{remote}'")]
    ClusterMismatch { local: String, remote: String, namenode: String },
    /// The namenode refused this datanode (protocol version or cluster id).
    #[error("namenode {namenode} refused registration: {message}")]
    Refused { namenode: String, message: String },
    /// A call to the namenode failed (retryable).
    #[error("namenode {namenode}: {message}")]
    Rpc { namenode: String, message: String },
    /// A replica of this block is already stored or being written here.
    #[error("block {block_id}: a replica already exists")]
    ReplicaExists { block_id: u64 },
    /// No (usable) replica of this block is stored here.
    #[error("block {block_id}: {reason}")]
    ReplicaNotFound { block_id: u64, reason: String },
    /// A replica whose files do not agree with each other.
    #[error("block {block_id}: corrupt replica {}: {reason}", path.display())]
    CorruptReplica { block_id: u64, path: PathBuf, reason: String },
    /// Every volume is full (or past its reserved space), or a write ran
    /// out of room.
    #[error("block {block_id}: no space left ({detail})")]
    NoSpace { block_id: u64, detail: String },
    /// The thread writing a replica did not let go of it in time.
    #[error("block {block_id}: the writer of the replica did not stop within {secs} s")]
    WriterBusy { block_id: u64, secs: u64 },
    /// A recovery (pipeline or block recovery) that this replica cannot
    /// take part in (too few bytes, newer generation stamp...).
    #[error("block {block_id}: {message}")]
    RecoveryRefused { block_id: u64, message: String },
    /// A block recovery with an older recovery id than one already seen.
    #[error("block {block_id}: recovery id {recovery_id} is superseded by recovery {current}")]
    RecoverySuperseded { block_id: u64, recovery_id: u64, current: u64 },
    /// Data in a write pipeline that breaks the protocol.
    #[error("block {block_id}: {message}")]
    BadPacket { block_id: u64, status: TransferStatus, message: String },
    /// A transfer peer failed or broke the framing.
    #[error("peer {peer}: {source}")]
    Transfer { peer: String, source: FrameError },
    /// A transfer peer answered with an error.
    #[error("peer {peer}: {message}")]
    PeerRefused { peer: String, message: String },
    /// A transfer peer found a checksum error in the data it was sent.
    #[error("peer {peer} found a checksum error: {message}")]
    PeerChecksum { peer: String, message: String },
    /// The transfer server could not bind its address.
    #[error("transfer server: cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    /// A configuration value that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl DatanodeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> DatanodeError {
        DatanodeError::Io { path: path.into(), source }
    }

    pub(crate) fn transfer(peer: impl ToString, source: FrameError) -> DatanodeError {
        DatanodeError::Transfer { peer: peer.to_string(), source }
    }

    /// The status a transfer peer is told when this error ends its request.
    pub(crate) fn transfer_status(&self) -> TransferStatus {
        match self {
            DatanodeError::ReplicaExists { .. } => TransferStatus::ErrorExists,
            DatanodeError::ReplicaNotFound { .. } | DatanodeError::CorruptReplica { .. } => {
                TransferStatus::ErrorInvalid
            }
            DatanodeError::BadPacket { status, .. } => *status,
            DatanodeError::RecoverySuperseded { .. } => TransferStatus::ErrorExists,
            _ => TransferStatus::Error,
        }
    }
}
