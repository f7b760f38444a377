//! gRPC services. Handlers only translate: read the request, call the
//! `Namesystem`, map the error with the one `From<NamenodeError> for Status`.

pub(crate) mod client;
pub(crate) mod datanode;

use tusk_proto::dfs::Caller;
use tusk_proto::error::ErrorKind;

use crate::error::NamenodeError;

impl From<NamenodeError> for tonic::Status {
    fn from(e: NamenodeError) -> tonic::Status {
        e.kind().status(e.to_string())
    }
}

/// The request's caller, which every ClientProtocol request must carry.
pub(crate) fn caller(c: &Option<Caller>) -> Result<&Caller, NamenodeError> {
    c.as_ref().ok_or_else(|| NamenodeError::req(ErrorKind::InvalidArgument, "request without a caller"))
}

/// The host used for locality: the one given, else the peer's IP.
pub(crate) fn client_host<T>(req: &tonic::Request<T>, given: &str) -> String {
    if !given.is_empty() {
        return given.to_string();
    }
    req.remote_addr().map(|a| a.ip().to_string()).unwrap_or_default()
}
