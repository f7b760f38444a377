//! The namenode's error type. It is mapped to a `tonic::Status` in exactly one
//! place (`service.rs`).

use std::path::Path;
use tusk_proto::error::ErrorKind;

/// Everything that can go wrong in the namenode.
#[derive(Debug, thiserror::Error)]
pub enum NamenodeError {
    /// A refused request (namespace rule, permission, lease, protocol...);
    /// `message` is the full sentence for the caller.
    #[error("{message}")]
    Request { kind: ErrorKind, message: String },
    /// The name directory holds no namespace.
    #[error("{0}: not formatted; run `tusk namenode --format`")]
    NotFormatted(String),
    /// The name directory is corrupt, foreign or already formatted.
    #[error("{0}")]
    Storage(String),
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An invalid configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A broken internal invariant or a failed background component.
    #[error("internal error: {0}")]
    Internal(String),
}

impl NamenodeError {
    /// The kind carried to clients.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NamenodeError::Request { kind, .. } => *kind,
            NamenodeError::Config(_) => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        }
    }

    /// True when retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::SafeMode | ErrorKind::NoDatanodes)
    }

    pub(crate) fn req(kind: ErrorKind, message: impl Into<String>) -> Self {
        NamenodeError::Request { kind, message: message.into() }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        NamenodeError::Io { path: path.display().to_string(), source }
    }

    pub(crate) fn not_found(path: &str) -> Self {
        Self::req(ErrorKind::NotFound, format!("{path}: no such file or directory"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::req(ErrorKind::InvalidArgument, message)
    }
}

impl From<tusk_common::path::PathError> for NamenodeError {
    fn from(e: tusk_common::path::PathError) -> Self {
        NamenodeError::req(ErrorKind::InvalidPath, e.to_string())
    }
}

/// Result alias of the crate.
pub(crate) type Result<T, E = NamenodeError> = std::result::Result<T, E>;
