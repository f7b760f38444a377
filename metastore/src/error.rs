//! The metastore's error type. It becomes a `tonic::Status` in exactly one
//! place (`service.rs`); messages are whole sentences a SQL client prints
//! as they are (`table not found: db.t`).

use tusk_client::{ClientError, ErrorKind};

/// Everything that can go wrong in the metastore.
#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    /// No such database, table or partition (or DFS path).
    #[error("{0}")]
    NotFound(String),
    /// The database, table or partition exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is malformed: bad names, columns, formats, values.
    #[error("{0}")]
    Invalid(String),
    /// The request cannot be served in the current state (a non-empty
    /// database, an external table to truncate, an unfinished commit).
    #[error("{0}")]
    Precondition(String),
    /// The DFS refused the request's user.
    #[error("{0}")]
    PermissionDenied(String),
    /// The client speaks another protocol version.
    #[error("{0}")]
    Incompatible(String),
    /// The DFS cannot be reached (or is in safe mode); retrying may help.
    #[error("{0}")]
    Unavailable(String),
    /// A broken internal invariant (a record that does not decode...).
    #[error("internal error: {0}")]
    Internal(String),
    /// A local I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The embedded database failed.
    #[error("metastore database {path}: {source}")]
    Db {
        path: String,
        #[source]
        source: redb::Error,
    },
}

impl MetastoreError {
    /// True when retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MetastoreError::Unavailable(_))
    }

    /// The same error with its message rewritten (messages of the
    /// refusal kinds only; the others keep theirs).
    pub(crate) fn reworded(self, f: impl FnOnce(&str) -> String) -> Self {
        use MetastoreError::*;
        match self {
            NotFound(m) => NotFound(f(&m)),
            AlreadyExists(m) => AlreadyExists(f(&m)),
            Invalid(m) => Invalid(f(&m)),
            Precondition(m) => Precondition(f(&m)),
            PermissionDenied(m) => PermissionDenied(f(&m)),
            Incompatible(m) => Incompatible(f(&m)),
            Unavailable(m) => Unavailable(f(&m)),
            Internal(m) => Internal(f(&m)),
            other => other,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        MetastoreError::Invalid(message.into())
    }

    pub(crate) fn database_not_found(db: &str) -> Self {
        MetastoreError::NotFound(format!("database not found: {db}"))
    }

    pub(crate) fn table_not_found(db: &str, table: &str) -> Self {
        MetastoreError::NotFound(format!("table not found: {db}.{table}"))
    }

    pub(crate) fn table_exists(db: &str, table: &str) -> Self {
        MetastoreError::AlreadyExists(format!("table already exists: {db}.{table}"))
    }
}

/// A DFS error as the metastore reports it: the client's message, with a
/// kind telling "not found" / "permission" / "try later" apart.
pub(crate) fn dfs_error(e: ClientError) -> MetastoreError {
    let message = e.to_string();
    match e.kind() {
        Some(ErrorKind::NotFound) => MetastoreError::NotFound(message),
        Some(ErrorKind::AlreadyExists) => MetastoreError::AlreadyExists(message),
        Some(ErrorKind::PermissionDenied) => MetastoreError::PermissionDenied(message),
        Some(ErrorKind::SafeMode | ErrorKind::NoDatanodes) => MetastoreError::Unavailable(message),
        Some(
            ErrorKind::InvalidPath
            | ErrorKind::InvalidArgument
            | ErrorKind::NotADirectory
            | ErrorKind::IsADirectory
            | ErrorKind::DirectoryNotEmpty,
        ) => MetastoreError::Invalid(message),
        Some(ErrorKind::Internal) => MetastoreError::Internal(message),
        Some(_) => MetastoreError::Precondition(message),
        None => match e {
            ClientError::Config(_) | ClientError::InvalidArgument { .. } => MetastoreError::Invalid(message),
            _ => MetastoreError::Unavailable(message),
        },
    }
}

/// Result alias of the crate.
pub type Result<T, E = MetastoreError> = std::result::Result<T, E>;
