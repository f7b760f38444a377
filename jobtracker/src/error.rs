//! The jobtracker's error type. It becomes a `tonic::Status` in exactly one
//! place (`service.rs`).

use std::path::Path;

/// Why a request was refused; decides the gRPC code the caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The job or request is malformed (bad spec, unknown engine...).
    InvalidArgument,
    /// The request cannot be served in the current state (job over, output
    /// already exists...).
    FailedPrecondition,
    /// No such job, attempt or input path.
    NotFound,
    /// Something that must not exist does (an output directory).
    AlreadyExists,
    /// The DFS refused the job's user.
    PermissionDenied,
    /// The peer speaks another protocol version.
    Incompatible,
    /// A dependency (the namenode) cannot be reached; retrying may help.
    Unavailable,
}

/// Everything that can go wrong in the jobtracker.
#[derive(Debug, thiserror::Error)]
pub enum JobtrackerError {
    /// A refused request; `message` is the full sentence for the caller
    /// (for a bad job: the engine's message verbatim).
    #[error("{message}")]
    Refused { reason: Refusal, message: String },
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A state file that cannot be read back.
    #[error("{path}: {message}")]
    Corrupt { path: String, message: String },
    /// An invalid configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A broken internal invariant or a failed background component.
    #[error("internal error: {0}")]
    Internal(String),
}

impl JobtrackerError {
    /// True when retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, JobtrackerError::Refused { reason: Refusal::Unavailable, .. })
    }

    pub(crate) fn refused(reason: Refusal, message: impl Into<String>) -> Self {
        JobtrackerError::Refused { reason, message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::refused(Refusal::InvalidArgument, message)
    }

    pub(crate) fn no_such_job(job_id: &str) -> Self {
        Self::refused(Refusal::NotFound, format!("{job_id}: no such job"))
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        JobtrackerError::Io { path: path.display().to_string(), source }
    }
}

/// Result alias of the crate.
pub(crate) type Result<T, E = JobtrackerError> = std::result::Result<T, E>;
