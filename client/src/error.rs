//! The client's error type and the one place where a gRPC status becomes a
//! [`ClientError`].

use tusk_proto::error::ErrorKind;

/// Result of every client operation.
pub type Result<T> = std::result::Result<T, ClientError>;

/// Everything that can go wrong in a client call. Messages name the path,
/// block or address involved so they can be shown to a user as they are.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The namenode refused the call; `kind` says why (from the status
    /// metadata), `message` is the namenode's full sentence.
    #[error("{message}")]
    Namenode { kind: ErrorKind, message: String },
    /// The namenode could not be reached, or answered with a status that
    /// carries no [`ErrorKind`].
    #[error("namenode {addr}: {message}")]
    Rpc { addr: String, message: String },
    /// A path broke the DFS path rules; found before any RPC.
    #[error("{0}")]
    InvalidPath(#[from] tusk_common::path::PathError),
    /// An argument does not make sense for this path (e.g. a seek past EOF).
    #[error("{path}: {message}")]
    InvalidArgument { path: String, message: String },
    /// Every replica failed (read), or the write pipeline failed.
    #[error("{path}: could not {op} block {block}: {message}")]
    Block { path: String, op: &'static str, block: String, message: String },
    /// Every replica that could be reached sent data that failed its checksum.
    #[error("{path}: checksum error in block {block} at datanode {datanode}")]
    Checksum { path: String, block: String, datanode: String },
    /// The client configuration is missing or wrong.
    #[error("{0}")]
    Config(String),
    /// A local I/O error.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// The namenode's error kind, when the namenode refused the call.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Namenode { kind, .. } => Some(*kind),
            ClientError::InvalidPath(_) => Some(ErrorKind::InvalidPath),
            _ => None,
        }
    }

    /// True when the path (or a parent) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == Some(ErrorKind::NotFound)
    }

    /// The one translation of a gRPC status from the namenode at `addr`.
    pub(crate) fn from_status(addr: &str, status: tonic::Status) -> ClientError {
        if let Some(kind) = ErrorKind::of_status(&status) {
            return ClientError::Namenode { kind, message: status.message().to_string() };
        }
        ClientError::Rpc { addr: addr.to_string(), message: status_text(&status) }
    }

    /// A "no such file or directory" error for `path`, shaped like the
    /// namenode's own.
    pub(crate) fn not_found(path: &str) -> ClientError {
        ClientError::Namenode { kind: ErrorKind::NotFound, message: format!("{path}: no such file or directory") }
    }
}

/// A status's message (its code's description when empty) with its source
/// chain: transport failures hide the useful part ("connection refused")
/// there.
pub(crate) fn status_text(status: &tonic::Status) -> String {
    let mut message = if status.message().is_empty() {
        status.code().description().to_string()
    } else {
        status.message().to_string()
    };
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_with_a_kind_become_namenode_errors() {
        let s = ErrorKind::AlreadyExists.status("/a/f: file exists");
        let e = ClientError::from_status("nn:1", s);
        assert_eq!(e.kind(), Some(ErrorKind::AlreadyExists));
        assert_eq!(e.to_string(), "/a/f: file exists");
        assert!(!e.is_not_found());

        let e = ClientError::from_status("nn:1", ErrorKind::NotFound.status("/x: no such file or directory"));
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), "/x: no such file or directory");
    }

    #[test]
    fn statuses_without_a_kind_name_the_namenode() {
        let e = ClientError::from_status("nn:9000", tonic::Status::unavailable("tcp connect error"));
        assert!(matches!(e, ClientError::Rpc { .. }), "{e:?}");
        assert_eq!(e.kind(), None);
        assert_eq!(e.to_string(), "namenode nn:9000: tcp connect error");

        let e = ClientError::from_status("nn:9000", tonic::Status::new(tonic::Code::Internal, ""));
        assert!(e.to_string().starts_with("namenode nn:9000: "), "{e}");
        assert!(e.to_string().len() > "namenode nn:9000: ".len(), "{e}");
    }

    #[test]
    fn local_errors_have_kinds_where_they_mean_one() {
        let e: ClientError = tusk_common::path::normalize("a/b").unwrap_err().into();
        assert_eq!(e.kind(), Some(ErrorKind::InvalidPath));
        assert!(e.to_string().starts_with("a/b: invalid path"), "{e}");
        assert!(ClientError::not_found("/q").is_not_found());
        assert_eq!(ClientError::not_found("/q").to_string(), "/q: no such file or directory");
    }
}
