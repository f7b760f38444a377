//! TaskUmbilical over gRPC.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tusk_proto::compute::task_umbilical_server::TaskUmbilical;
use tusk_proto::compute::*;

use crate::jobtracker::Jobtracker;

pub(crate) struct UmbilicalService {
    pub(crate) jt: Arc<Jobtracker>,
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl TaskUmbilical for UmbilicalService {
    async fn get_map_outputs(&self, req: Request<GetMapOutputsRequest>) -> Res<GetMapOutputsResponse> {
        let r = req.get_ref();
        let o = self.jt.upstream_outputs(&r.job_id, &r.attempt_id, r.upstream_stage.map(|s| s as usize))?;
        Ok(Response::new(GetMapOutputsResponse {
            total_maps: o.total,
            outputs: o
                .outputs
                .into_iter()
                .map(|(map_index, attempt_id, worker_addr)| MapOutputLocation { map_index, attempt_id, worker_addr })
                .collect(),
            abort: o.abort,
        }))
    }

    async fn report_fetch_failure(&self, req: Request<ReportFetchFailureRequest>) -> Res<ReportFetchFailureResponse> {
        let r = req.get_ref();
        self.jt.fetch_failure(&r.job_id, &r.reduce_attempt_id, &r.map_attempt_id, &r.reason)?;
        Ok(Response::new(ReportFetchFailureResponse {}))
    }
}
