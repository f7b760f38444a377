//! The WorkerService gRPC handlers: they validate, call the [`Worker`]
//! core, and map its errors (through the one `From<WorkerError> for
//! Status`).

use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tusk_proto::compute::worker_service_server::WorkerService;
use tusk_proto::compute::{
    FetchMapOutputRequest, GetTaskLogRequest, GetTaskLogResponse, KillTaskRequest, KillTaskResponse, LaunchTaskRequest,
    LaunchTaskResponse, MapOutputChunk,
};

use crate::error::WorkerError;
use crate::worker::{Worker, check_id};
use crate::{logs, shuffle};

pub(crate) struct WorkerRpc {
    pub worker: Arc<Worker>,
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<MapOutputChunk, Status>> + Send>>;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, WorkerError> + Send + 'static) -> Result<T, Status> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Status::from),
        Err(e) => Err(Status::internal(format!("worker task failed: {e}"))),
    }
}

#[tonic::async_trait]
impl WorkerService for WorkerRpc {
    async fn launch_task(&self, request: Request<LaunchTaskRequest>) -> Result<Response<LaunchTaskResponse>, Status> {
        self.worker.launch(request.into_inner())?;
        Ok(Response::new(LaunchTaskResponse {}))
    }

    async fn kill_task(&self, request: Request<KillTaskRequest>) -> Result<Response<KillTaskResponse>, Status> {
        let req = request.into_inner();
        check_id("attempt_id", &req.attempt_id)?;
        let reason = if req.reason.is_empty() { "killed by the jobtracker" } else { req.reason.as_str() };
        let found = self.worker.kill(&req.attempt_id, reason);
        Ok(Response::new(KillTaskResponse { found }))
    }

    type FetchMapOutputStream = ChunkStream;

    async fn fetch_map_output(
        &self,
        request: Request<FetchMapOutputRequest>,
    ) -> Result<Response<Self::FetchMapOutputStream>, Status> {
        let req = request.into_inner();
        check_id("job_id", &req.job_id)?;
        check_id("attempt_id", &req.attempt_id)?;
        let dir = self.worker.map_output_dir(&req.job_id, &req.attempt_id)?;
        let local = !req.reader_host.is_empty() && req.reader_host == self.worker.settings.host;
        let segment = blocking(move || shuffle::locate(&dir, &req.attempt_id, req.partition)).await?;
        if local {
            let chunk = shuffle::local_chunk(&segment);
            let one = tokio_stream::once(Ok::<_, Status>(chunk));
            return Ok(Response::new(Box::pin(one)));
        }
        let chunks = ReceiverStream::new(shuffle::stream(segment));
        let chunks = tokio_stream::StreamExt::map(chunks, |c| c.map_err(Status::from));
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn get_task_log(&self, request: Request<GetTaskLogRequest>) -> Result<Response<GetTaskLogResponse>, Status> {
        let req = request.into_inner();
        let path = self.worker.log_path(&req.attempt_id, &req.stream)?;
        let (data, total_len) = blocking(move || logs::read_log(&path, req.offset, req.max_len)).await?;
        Ok(Response::new(GetTaskLogResponse { data, total_len }))
    }
}
