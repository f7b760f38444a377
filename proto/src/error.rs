//! How the namenode tells a client *what kind* of error it met.
//!
//! A failed RPC carries a `tonic::Status` whose message is the human sentence
//! (for example `/data/x: no such file or directory`) and whose metadata key
//! [`ERROR_KIND_KEY`] holds one [`ErrorKind`] as text, so the client can
//! rebuild a typed error without parsing messages.

use std::fmt;
use std::str::FromStr;

/// gRPC metadata key carrying the [`ErrorKind`] of a failed call.
pub const ERROR_KIND_KEY: &str = "x-tusk-error";

/// The kinds of namespace errors a client may want to tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    PermissionDenied,
    /// Another client holds the file's lease.
    LeaseConflict,
    InvalidPath,
    InvalidArgument,
    /// The file is not open for writing (by this client).
    NotUnderConstruction,
    /// The namenode refuses mutations (safe mode).
    SafeMode,
    /// No datanode could take a block.
    NoDatanodes,
    /// A peer speaks another protocol version or belongs to another cluster.
    Incompatible,
    Internal,
}

impl ErrorKind {
    /// The text used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::NotADirectory => "not_a_directory",
            ErrorKind::IsADirectory => "is_a_directory",
            ErrorKind::DirectoryNotEmpty => "not_empty",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::LeaseConflict => "lease_conflict",
            ErrorKind::InvalidPath => "invalid_path",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotUnderConstruction => "not_under_construction",
            ErrorKind::SafeMode => "safe_mode",
            ErrorKind::NoDatanodes => "no_datanodes",
            ErrorKind::Incompatible => "incompatible",
            ErrorKind::Internal => "internal",
        }
    }

    /// The gRPC code that goes with this kind.
    pub fn code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::AlreadyExists => Code::AlreadyExists,
            ErrorKind::PermissionDenied => Code::PermissionDenied,
            ErrorKind::NotADirectory
            | ErrorKind::IsADirectory
            | ErrorKind::DirectoryNotEmpty
            | ErrorKind::InvalidPath
            | ErrorKind::InvalidArgument => Code::InvalidArgument,
            ErrorKind::LeaseConflict | ErrorKind::NotUnderConstruction | ErrorKind::Incompatible => {
                Code::FailedPrecondition
            }
            ErrorKind::SafeMode | ErrorKind::NoDatanodes => Code::Unavailable,
            ErrorKind::Internal => Code::Internal,
        }
    }

    /// Builds a status of this kind with `message`.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        let mut status = tonic::Status::new(self.code(), message);
        if let Ok(v) = self.as_str().parse() {
            status.metadata_mut().insert(ERROR_KIND_KEY, v);
        }
        status
    }

    /// Reads the kind carried by `status`, if any.
    pub fn of_status(status: &tonic::Status) -> Option<ErrorKind> {
        status.metadata().get(ERROR_KIND_KEY)?.to_str().ok()?.parse().ok()
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        const ALL: [ErrorKind; 14] = [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::NotADirectory,
            ErrorKind::IsADirectory,
            ErrorKind::DirectoryNotEmpty,
            ErrorKind::PermissionDenied,
            ErrorKind::LeaseConflict,
            ErrorKind::InvalidPath,
            ErrorKind::InvalidArgument,
            ErrorKind::NotUnderConstruction,
            ErrorKind::SafeMode,
            ErrorKind::NoDatanodes,
            ErrorKind::Incompatible,
            ErrorKind::Internal,
        ];
        ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn kinds_survive_a_status() {
        let s = ErrorKind::DirectoryNotEmpty.status("/a: directory is not empty");
        assert_eq!(ErrorKind::of_status(&s), Some(ErrorKind::DirectoryNotEmpty));
        assert_eq!(s.message(), "/a: directory is not empty");
        assert_eq!(ErrorKind::of_status(&tonic::Status::internal("x")), None);
    }
}
