//! JobClientProtocol over gRPC.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tusk_proto::compute::job_client_protocol_server::JobClientProtocol;
use tusk_proto::compute::*;

use crate::error::{JobtrackerError, Refusal};
use crate::jobtracker::Jobtracker;
use crate::report::job_state_of;

pub(crate) struct ClientService {
    pub(crate) jt: Arc<Jobtracker>,
}

type Res<T> = Result<Response<T>, Status>;

/// The longest a GetJob waits for its job to finish (`wait_ms`).
const MAX_JOB_WAIT_MS: u32 = 30_000;

#[tonic::async_trait]
impl JobClientProtocol for ClientService {
    async fn submit_job(&self, req: Request<SubmitJobRequest>) -> Res<SubmitJobResponse> {
        let r = req.into_inner();
        if r.protocol_version != tusk_proto::PROTOCOL_VERSION {
            return Err(JobtrackerError::refused(
                Refusal::Incompatible,
                format!(
                    "client speaks protocol version {}, this jobtracker {}",
                    r.protocol_version,
                    tusk_proto::PROTOCOL_VERSION
                ),
            )
            .into());
        }
        let job_id = self.jt.submit(&r.user, &r.engine, &r.spec_json).await?;
        Ok(Response::new(SubmitJobResponse { job_id }))
    }

    async fn get_job(&self, req: Request<GetJobRequest>) -> Res<JobReport> {
        let r = req.get_ref();
        if r.wait_ms > 0 {
            let wait = std::time::Duration::from_millis(u64::from(r.wait_ms.min(MAX_JOB_WAIT_MS)));
            return Ok(Response::new(self.jt.job_report_when_finished(&r.job_id, r.with_tasks, wait).await?));
        }
        Ok(Response::new(self.jt.job_report(&r.job_id, r.with_tasks)?))
    }

    async fn list_jobs(&self, req: Request<ListJobsRequest>) -> Res<ListJobsResponse> {
        Ok(Response::new(ListJobsResponse { jobs: self.jt.list_jobs(req.get_ref().running_only) }))
    }

    async fn kill_job(&self, req: Request<KillJobRequest>) -> Res<KillJobResponse> {
        let r = req.into_inner();
        let out = self.jt.kill_job(&r.job_id, &r.user).await?;
        Ok(Response::new(KillJobResponse { killed: out.killed, state: job_state_of(out.state) as i32 }))
    }

    async fn cluster_status(&self, _req: Request<ClusterStatusRequest>) -> Res<ClusterStatusResponse> {
        Ok(Response::new(self.jt.cluster_status()))
    }
}
