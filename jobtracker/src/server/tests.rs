//! The jobtracker over gRPC: a fake engine, a fake worker serving
//! WorkerService on a real port, clients speaking the real protocols.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::compute::job_client_protocol_client::JobClientProtocolClient;
use tusk_proto::compute::task_umbilical_client::TaskUmbilicalClient;
use tusk_proto::compute::worker_protocol_client::WorkerProtocolClient;
use tusk_proto::compute::worker_service_server::{WorkerService, WorkerServiceServer};
use tusk_proto::compute::*;

use super::*;
use crate::testkit::{FakeEngine, fake_spec};

/// A worker that runs nothing: every launched attempt succeeds at once (a
/// reducer first asks where the map outputs are and reports what it saw).
struct FakeWorker {
    jobtracker: String,
    seen: mpsc::UnboundedSender<String>,
}

#[tonic::async_trait]
impl WorkerService for FakeWorker {
    async fn launch_task(&self, req: Request<LaunchTaskRequest>) -> Result<Response<LaunchTaskResponse>, Status> {
        let r = req.into_inner();
        let (jt, seen) = (self.jobtracker.clone(), self.seen.clone());
        tokio::spawn(async move {
            if r.task_id.contains("_r_") {
                let mut u = TaskUmbilicalClient::connect(jt.clone()).await.unwrap();
                let req = GetMapOutputsRequest {
                    job_id: r.job_id.clone(),
                    attempt_id: r.attempt_id.clone(),
                    upstream_stage: None,
                };
                let o = u.get_map_outputs(req).await.unwrap().into_inner();
                let _ = seen.send(format!("outputs {} of {} abort={}", o.outputs.len(), o.total_maps, o.abort));
            }
            let mut w = WorkerProtocolClient::connect(jt).await.unwrap();
            let done = AttemptFinishedRequest {
                worker_id: "w1".into(),
                attempt_id: r.attempt_id,
                state: AttemptState::AttemptSucceeded as i32,
                ..Default::default()
            };
            w.attempt_finished(done).await.unwrap();
        });
        Ok(Response::new(LaunchTaskResponse {}))
    }

    async fn kill_task(&self, _req: Request<KillTaskRequest>) -> Result<Response<KillTaskResponse>, Status> {
        Ok(Response::new(KillTaskResponse { found: false }))
    }

    type FetchMapOutputStream = tokio_stream::Empty<Result<MapOutputChunk, Status>>;

    async fn fetch_map_output(
        &self,
        _req: Request<FetchMapOutputRequest>,
    ) -> Result<Response<Self::FetchMapOutputStream>, Status> {
        Err(Status::unimplemented("fake worker"))
    }

    async fn get_task_log(&self, _req: Request<GetTaskLogRequest>) -> Result<Response<GetTaskLogResponse>, Status> {
        Err(Status::unimplemented("fake worker"))
    }
}

async fn fake_worker(jobtracker: SocketAddr) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let svc = FakeWorker { jobtracker: format!("http://{jobtracker}"), seen: tx };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(WorkerServiceServer::new(svc))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, rx)
}

async fn job_until(c: &mut JobClientProtocolClient<Channel>, id: &str, state: JobState) -> JobReport {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.get_job(GetJobRequest { job_id: id.into(), with_tasks: true, wait_ms: 0 }).await.unwrap().into_inner();
        if r.state == state as i32 {
            return r;
        }
        assert!(tokio::time::Instant::now() < deadline, "job {id} stuck in state {}: {}", r.state, r.diagnostics);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn jobs_run_over_grpc_on_a_registered_worker() {
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("jt.addr");
    let config = JobtrackerConfig {
        state_dir: dir.path().join("state"),
        addr_file: Some(addr_file.clone()),
        namenode_addr: "127.0.0.1:1".into(),
        heartbeat_interval_ms: 100,
        ..Default::default()
    };
    let engine = Arc::new(FakeEngine::default());
    let e = engine.clone();
    let h = start_with(config, move |_| vec![e as Arc<dyn Engine>], Arc::new(GrpcLink::default()), None).await.unwrap();
    let jt = h.local_addr();
    assert_eq!(std::fs::read_to_string(&addr_file).unwrap().trim(), jt.to_string());
    let url = format!("http://{jt}");

    let (waddr, mut seen) = fake_worker(jt).await;
    let mut w = WorkerProtocolClient::connect(url.clone()).await.unwrap();
    let reg = |v| RegisterWorkerRequest {
        protocol_version: v,
        worker_id: "w1".into(),
        addr: waddr.to_string(),
        host: "127.0.0.1".into(),
        slots: 2,
        ..Default::default()
    };
    let err = w.register_worker(reg(PROTOCOL_VERSION + 1)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let resp = w.register_worker(reg(PROTOCOL_VERSION)).await.unwrap().into_inner();
    assert_eq!(resp.heartbeat_interval_ms, 100);

    let mut c = JobClientProtocolClient::connect(url.clone()).await.unwrap();
    let submit = |spec: String| SubmitJobRequest {
        protocol_version: PROTOCOL_VERSION,
        user: "alice".into(),
        engine: "fake".into(),
        spec_json: spec,
    };
    let err = c.submit_job(submit(r#"{"refuse": "input path does not exist: /in"}"#.into())).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (tonic::Code::NotFound, "input path does not exist: /in"));
    let id = c.submit_job(submit(fake_spec(2, 1))).await.unwrap().into_inner().job_id;
    let r = job_until(&mut c, &id, JobState::JobSucceeded).await;
    assert!(r.first_launch_ms < 100, "first_launch_ms {}", r.first_launch_ms);
    assert_eq!(r.stages.iter().map(|s| s.succeeded).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(r.tasks.len(), 3);
    assert!(r.tasks.iter().all(|t| t.attempts[0].worker_addr == waddr.to_string()));
    let saw = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await.unwrap().unwrap();
    assert_eq!(saw, "outputs 2 of 2 abort=false");

    // The worker learns the job is over with its next heartbeat.
    let hb = WorkerHeartbeatRequest { worker_id: "w1".into(), ..Default::default() };
    let answer = w.heartbeat(hb.clone()).await.unwrap().into_inner();
    assert_eq!(answer.cleanup_jobs, vec![id.clone()]);
    assert!(!answer.reregister);
    let stranger = WorkerHeartbeatRequest { worker_id: "w9".into(), ..Default::default() };
    assert!(w.heartbeat(stranger).await.unwrap().into_inner().reregister);

    let status = c.cluster_status(ClusterStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.workers.len(), 1);
    assert!(status.workers[0].live);
    assert_eq!((status.workers[0].slots, status.running_jobs), (2, 0));
    let list = c.list_jobs(ListJobsRequest { running_only: false }).await.unwrap().into_inner();
    assert_eq!(list.jobs.len(), 1);
    let k = c.kill_job(KillJobRequest { job_id: id.clone(), user: "alice".into() }).await.unwrap().into_inner();
    assert!(!k.killed);
    assert_eq!(k.state, JobState::JobSucceeded as i32);
    // A waiting GetJob answers with the final state in one call.
    let id2 = c.submit_job(submit(fake_spec(2, 1))).await.unwrap().into_inner().job_id;
    let r2 = c.get_job(GetJobRequest { job_id: id2, with_tasks: false, wait_ms: 20_000 }).await.unwrap().into_inner();
    assert_eq!(r2.state, JobState::JobSucceeded as i32, "{}", r2.diagnostics);
    let err = c.get_job(GetJobRequest { job_id: "job_1_0404".into(), with_tasks: false, wait_ms: 100 }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let mut u = TaskUmbilicalClient::connect(url).await.unwrap();
    let o = u
        .get_map_outputs(GetMapOutputsRequest {
            job_id: id.clone(),
            attempt_id: "attempt_x".into(),
            upstream_stage: None,
        })
        .await
        .unwrap();
    assert!(o.into_inner().abort);
    let bad = AttemptFinishedRequest { worker_id: "w1".into(), attempt_id: "a".into(), state: 0, ..Default::default() };
    assert_eq!(w.attempt_finished(bad).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    assert!(engine.called(&format!("commit_job {id}")));
    h.shutdown().await.unwrap();
}
