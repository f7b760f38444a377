//! Tusk's wire formats.
//!
//! - [`dfs`]: the namenode's gRPC services (`ClientProtocol`,
//!   `DatanodeProtocol`) and the headers of the data-transfer protocol.
//! - [`transfer`]: framing of the data-transfer protocol (plain TCP).
//! - [`compute`]: the jobtracker's, workers' and tasks' gRPC services.
//! - [`metastore`]: the SQL catalog (a role of the jobtracker daemon).
//! - [`nnstorage`]: edit-log records and checkpoint images of the namenode.

pub mod error;
pub mod transfer;

/// gRPC services and messages of the distributed filesystem.
#[allow(clippy::all, missing_docs)]
pub mod dfs {
    tonic::include_proto!("tusk.dfs");
}

/// Namenode on-disk records.
#[allow(clippy::all, missing_docs)]
pub mod nnstorage {
    tonic::include_proto!("tusk.nnstorage");
}

/// Compute: jobtracker, workers and task processes.
#[allow(clippy::all, missing_docs)]
pub mod compute {
    tonic::include_proto!("tusk.compute");
}

/// The metastore: Hive-style catalog of databases, tables and partitions.
#[allow(clippy::all, missing_docs)]
pub mod metastore {
    tonic::include_proto!("tusk.metastore");
}

/// A streaming service for `tusk bench transfer` only.
#[allow(clippy::all, missing_docs)]
pub mod bench {
    tonic::include_proto!("tusk.bench");
}

/// Version of the RPC and data-transfer protocols. Peers with another
/// version are refused with a clear error. 3: `GetJobRequest.wait_ms`, SQL
/// jobs that write table files.
pub const PROTOCOL_VERSION: u32 = 3;
