//! gRPC services. Handlers only translate: read the request, call the
//! [`Jobtracker`](crate::jobtracker::Jobtracker), map the error with the one
//! `From<JobtrackerError> for Status` below.

pub(crate) mod client;
pub(crate) mod umbilical;
pub(crate) mod worker;

use tusk_proto::compute::Counters;
use tusk_proto::error::ErrorKind;

use crate::error::{JobtrackerError, Refusal};

impl From<JobtrackerError> for tonic::Status {
    fn from(e: JobtrackerError) -> tonic::Status {
        let message = e.to_string();
        match &e {
            JobtrackerError::Refused { reason, .. } => match reason {
                Refusal::InvalidArgument => ErrorKind::InvalidArgument.status(message),
                Refusal::NotFound => ErrorKind::NotFound.status(message),
                Refusal::AlreadyExists => ErrorKind::AlreadyExists.status(message),
                Refusal::PermissionDenied => ErrorKind::PermissionDenied.status(message),
                Refusal::Incompatible => ErrorKind::Incompatible.status(message),
                Refusal::FailedPrecondition => tonic::Status::failed_precondition(message),
                Refusal::Unavailable => tonic::Status::unavailable(message),
            },
            JobtrackerError::Config(_) => ErrorKind::InvalidArgument.status(message),
            JobtrackerError::Io { .. } | JobtrackerError::Corrupt { .. } | JobtrackerError::Internal(_) => {
                ErrorKind::Internal.status(message)
            }
        }
    }
}

/// Wire counters as (group, name, value).
pub(crate) fn counters_from(c: Option<Counters>) -> Vec<(String, String, i64)> {
    c.map(|c| c.counters.into_iter().map(|c| (c.group, c.name, c.value)).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_codes_with_the_message_verbatim() {
        let s: tonic::Status = JobtrackerError::refused(Refusal::NotFound, "input path does not exist: /x").into();
        assert_eq!(s.code(), tonic::Code::NotFound);
        assert_eq!(s.message(), "input path does not exist: /x");
        assert_eq!(ErrorKind::of_status(&s), Some(ErrorKind::NotFound));
        let s: tonic::Status =
            JobtrackerError::refused(Refusal::FailedPrecondition, "output directory /o already exists").into();
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        let s: tonic::Status = JobtrackerError::invalid("bad").into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let s: tonic::Status = JobtrackerError::refused(Refusal::Unavailable, "namenode down").into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        let s: tonic::Status = JobtrackerError::Internal("x".into()).into();
        assert_eq!(s.code(), tonic::Code::Internal);
    }
}
