//! The worker's error type, and its one mapping to a `tonic::Status`.
//! Every variant names the input that was wrong (an attempt, a path, a peer).

use std::path::PathBuf;
use tusk_proto::error::ErrorKind;

/// What can go wrong in a worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A configuration value that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The RPC server could not bind its address.
    #[error("worker rpc server: cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    /// A request that is malformed (empty or unsafe id, unknown engine...).
    #[error("{0}")]
    InvalidRequest(String),
    /// Every slot is taken.
    #[error("cannot launch {attempt_id}: all {slots} slots of worker {worker_id} are busy")]
    NoFreeSlot { attempt_id: String, slots: u32, worker_id: String },
    /// The worker does not know this attempt (never ran here, or cleaned up).
    #[error("attempt {0}: unknown on this worker")]
    UnknownAttempt(String),
    /// The attempt exists but has no map output to serve.
    #[error("attempt {attempt_id}: no map output ({reason})")]
    NoMapOutput { attempt_id: String, reason: String },
    /// A partition the map output does not have.
    #[error("attempt {attempt_id}: partition {partition} out of range (map output has {partitions} partitions)")]
    BadPartition { attempt_id: String, partition: u32, partitions: usize },
    /// The map output files are unreadable or inconsistent.
    #[error("{}: {reason}", path.display())]
    CorruptMapOutput { path: PathBuf, reason: String },
    /// The task runtime could not start or control a task process.
    #[error("{attempt_id}: {message}")]
    Runtime { attempt_id: String, message: String },
    /// A call to the jobtracker failed (retryable).
    #[error("jobtracker {addr}: {message}")]
    Rpc { addr: String, message: String },
    /// The jobtracker refused this worker or a report (protocol version,
    /// unknown attempt): retrying will not help.
    #[error("jobtracker {addr} refused: {message}")]
    Refused { addr: String, message: String },
    /// A failed component of the worker itself (the RPC server).
    #[error("internal error: {0}")]
    Internal(String),
    /// The worker is stopping and takes no new work.
    #[error("worker {0} is shutting down")]
    ShuttingDown(String),
}

impl WorkerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> WorkerError {
        WorkerError::Io { path: path.into(), source }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, WorkerError::Rpc { .. } | WorkerError::NoFreeSlot { .. } | WorkerError::ShuttingDown(_))
    }
}

/// The single translation of worker errors for gRPC callers.
impl From<WorkerError> for tonic::Status {
    fn from(e: WorkerError) -> tonic::Status {
        let message = e.to_string();
        match e {
            WorkerError::NoFreeSlot { .. } => tonic::Status::resource_exhausted(message),
            WorkerError::ShuttingDown(_) => tonic::Status::unavailable(message),
            WorkerError::InvalidRequest(_) | WorkerError::BadPartition { .. } | WorkerError::Config(_) => {
                ErrorKind::InvalidArgument.status(message)
            }
            WorkerError::UnknownAttempt(_) | WorkerError::NoMapOutput { .. } => ErrorKind::NotFound.status(message),
            WorkerError::Io { .. }
            | WorkerError::Bind { .. }
            | WorkerError::CorruptMapOutput { .. }
            | WorkerError::Runtime { .. }
            | WorkerError::Rpc { .. }
            | WorkerError::Refused { .. }
            | WorkerError::Internal(_) => ErrorKind::Internal.status(message),
        }
    }
}

/// Result of the worker.
pub type Result<T, E = WorkerError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_codes_and_messages() {
        let s: tonic::Status =
            WorkerError::NoFreeSlot { attempt_id: "attempt_1_0001_m_000000_0".into(), slots: 2, worker_id: "w".into() }
                .into();
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("attempt_1_0001_m_000000_0"), "{}", s.message());
        let s: tonic::Status = WorkerError::UnknownAttempt("attempt_x".into()).into();
        assert_eq!(s.code(), tonic::Code::NotFound);
        assert_eq!(ErrorKind::of_status(&s), Some(ErrorKind::NotFound));
        assert_eq!(s.message(), "attempt attempt_x: unknown on this worker");
        let s: tonic::Status = WorkerError::ShuttingDown("w1".into()).into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(WorkerError::Rpc { addr: "a".into(), message: "m".into() }.is_retryable());
        assert!(!WorkerError::Refused { addr: "a".into(), message: "m".into() }.is_retryable());
    }
}
