//! The one translation of DFS client errors into `object_store` errors.

use object_store::Error;
use tusk_client::{ClientError, ErrorKind};

use object_store::path::Path;

use super::{STORE, dfs_path};

/// `e`, met on `path` (object or DFS path), as an `object_store` error of
/// the matching kind; the client's message is kept as the source.
pub(crate) fn from_client(path: &str, e: ClientError) -> Error {
    let path = path.to_string();
    match e.kind() {
        Some(ErrorKind::NotFound) => Error::NotFound { path, source: Box::new(e) },
        Some(ErrorKind::AlreadyExists) => Error::AlreadyExists { path, source: Box::new(e) },
        Some(ErrorKind::PermissionDenied) => Error::PermissionDenied { path, source: Box::new(e) },
        _ => Error::Generic { store: STORE, source: Box::new(e) },
    }
}

/// A `Generic` error with `message`.
pub(crate) fn generic(message: impl Into<String>) -> Error {
    Error::Generic { store: STORE, source: message.into().into() }
}

/// `NotFound` for `path`, with `why`.
pub(crate) fn not_found(path: &str, why: impl Into<String>) -> Error {
    Error::NotFound { path: path.to_string(), source: why.into().into() }
}

/// `AlreadyExists` for `location`.
pub(crate) fn already_exists(location: &Path) -> Error {
    Error::AlreadyExists { path: location.to_string(), source: format!("{}: file exists", dfs_path(location)).into() }
}

/// `NotImplemented` for `operation`.
pub(crate) fn not_implemented(operation: &str) -> Error {
    Error::NotImplemented { operation: operation.to_string(), implementer: "DfsStore".to_string() }
}
