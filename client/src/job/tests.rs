//! [`JobClient`] against a fake jobtracker and a fake worker on loopback.

use super::*;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};
use tusk_proto::compute::job_client_protocol_server::{JobClientProtocol, JobClientProtocolServer};
use tusk_proto::compute::worker_service_server::{WorkerService, WorkerServiceServer};

#[derive(Clone, Default)]
struct Fake {
    submitted: Arc<Mutex<Vec<pb::SubmitJobRequest>>>,
}

type Res<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl JobClientProtocol for Fake {
    async fn submit_job(&self, req: Request<pb::SubmitJobRequest>) -> Res<pb::SubmitJobResponse> {
        let req = req.into_inner();
        if req.spec_json.contains("/exists") {
            return Err(ErrorKind::AlreadyExists.status("output directory /exists already exists"));
        }
        if req.spec_json.contains("/missing") {
            // A status without the kind in its metadata: the code says it.
            return Err(Status::not_found("input path does not exist: /missing"));
        }
        self.submitted.lock().unwrap().push(req);
        Ok(Response::new(pb::SubmitJobResponse { job_id: "job_1_0001".into() }))
    }
    async fn get_job(&self, req: Request<pb::GetJobRequest>) -> Res<pb::JobReport> {
        let req = req.into_inner();
        if req.job_id != "job_1_0001" {
            return Err(ErrorKind::NotFound.status(format!("{}: no such job", req.job_id)));
        }
        let tasks =
            if req.with_tasks { vec![pb::TaskReport { task_id: "t".into(), ..Default::default() }] } else { vec![] };
        Ok(Response::new(pb::JobReport {
            job_id: req.job_id,
            state: pb::JobState::JobRunning as i32,
            tasks,
            ..Default::default()
        }))
    }
    async fn list_jobs(&self, req: Request<pb::ListJobsRequest>) -> Res<pb::ListJobsResponse> {
        let n = if req.into_inner().running_only { 1 } else { 2 };
        Ok(Response::new(pb::ListJobsResponse { jobs: vec![pb::JobReport::default(); n] }))
    }
    async fn kill_job(&self, req: Request<pb::KillJobRequest>) -> Res<pb::KillJobResponse> {
        let req = req.into_inner();
        assert!(!req.user.is_empty());
        Ok(Response::new(pb::KillJobResponse { killed: true, state: pb::JobState::JobKilled as i32 }))
    }
    async fn cluster_status(&self, _: Request<pb::ClusterStatusRequest>) -> Res<pb::ClusterStatusResponse> {
        let w = |live| pb::WorkerInfo { live, slots: 2, ..Default::default() };
        Ok(Response::new(pb::ClusterStatusResponse { workers: vec![w(true), w(false)], running_jobs: 1 }))
    }
}

type ChunkStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = std::result::Result<pb::MapOutputChunk, Status>> + Send>>;

#[tonic::async_trait]
impl WorkerService for Fake {
    async fn launch_task(&self, _: Request<pb::LaunchTaskRequest>) -> Res<pb::LaunchTaskResponse> {
        Err(Status::unimplemented("fake"))
    }
    async fn kill_task(&self, _: Request<pb::KillTaskRequest>) -> Res<pb::KillTaskResponse> {
        Err(Status::unimplemented("fake"))
    }
    type FetchMapOutputStream = ChunkStream;
    async fn fetch_map_output(&self, _: Request<pb::FetchMapOutputRequest>) -> Res<ChunkStream> {
        Err(Status::unimplemented("fake"))
    }
    async fn get_task_log(&self, req: Request<pb::GetTaskLogRequest>) -> Res<pb::GetTaskLogResponse> {
        let req = req.into_inner();
        if req.attempt_id != "attempt_1" {
            return Err(Status::not_found(format!("{}: no such attempt", req.attempt_id)));
        }
        let log = format!("{} log line\n", req.stream).into_bytes();
        let start = if req.offset < 0 {
            log.len().saturating_sub(req.offset.unsigned_abs() as usize)
        } else {
            req.offset as usize
        };
        let start = start.min(log.len());
        let end = (start + req.max_len as usize).min(log.len());
        Ok(Response::new(pb::GetTaskLogResponse { data: log[start..end].to_vec(), total_len: log.len() as u64 }))
    }
}

async fn serve(fake: &Fake) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(JobClientProtocolServer::new(fake.clone()))
            .add_service(WorkerServiceServer::new(fake.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

#[tokio::test]
async fn calls_carry_the_user_and_replies_convert() {
    let fake = Fake::default();
    let addr = serve(&fake).await;
    let jc = JobClient::connect(addr.clone()).await.unwrap().with_user("alice");
    assert_eq!(jc.user(), "alice");
    assert_eq!(jc.addr(), addr);
    assert_eq!(jc.submit("mapreduce", "{\"output\":\"/o\"}").await.unwrap(), "job_1_0001");
    {
        let sent = fake.submitted.lock().unwrap();
        assert_eq!(sent[0].user, "alice");
        assert_eq!(sent[0].engine, "mapreduce");
        assert_eq!(sent[0].protocol_version, tusk_proto::PROTOCOL_VERSION);
    }
    let r = jc.job("job_1_0001", false).await.unwrap();
    assert_eq!(r.state, JobState::Running);
    assert!(r.tasks.is_empty());
    assert_eq!(jc.job("job_1_0001", true).await.unwrap().tasks.len(), 1);
    assert_eq!(jc.list().await.unwrap().len(), 2);
    assert_eq!(jc.list_running().await.unwrap().len(), 1);
    assert_eq!(jc.kill("job_1_0001").await.unwrap(), KillOutcome { killed: true, state: JobState::Killed });
    let cs = jc.cluster_status().await.unwrap();
    assert_eq!((cs.workers.len(), cs.live_workers().count(), cs.running_jobs), (2, 1, 1));
}

#[tokio::test]
async fn refusals_keep_the_server_sentence_and_kind() {
    let fake = Fake::default();
    let addr = serve(&fake).await;
    let jc = JobClient::connect(addr).await.unwrap();
    let e = jc.submit("mapreduce", "{\"output\":\"/exists\"}").await.unwrap_err();
    assert_eq!(e.kind(), Some(ErrorKind::AlreadyExists));
    assert_eq!(e.to_string(), "output directory /exists already exists");
    let e = jc.submit("mapreduce", "{\"inputs\":[\"/missing\"]}").await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.to_string(), "input path does not exist: /missing");
    let e = jc.job("job_9_0009", false).await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.to_string(), "job_9_0009: no such job");
}

#[tokio::test]
async fn task_logs_come_from_the_worker() {
    let fake = Fake::default();
    let addr = serve(&fake).await;
    let jc = JobClient::connect("127.0.0.1:1").await.unwrap();
    assert_eq!(jc.task_log(&addr, "attempt_1", 0, 1 << 20).await.unwrap(), b"stderr log line\n");
    assert_eq!(jc.task_log(&addr, "attempt_1", -5, 100).await.unwrap(), b"line\n");
    let out = jc.task_log_stream(&addr, "attempt_1", "stdout", 0, 6).await.unwrap();
    assert_eq!((out.data.as_slice(), out.total_len), (&b"stdout"[..], 16));
    let e = jc.task_log(&addr, "attempt_2", 0, 10).await.unwrap_err();
    assert_eq!(e.to_string(), "attempt_2: no such attempt");
}

#[tokio::test]
async fn an_unreachable_jobtracker_is_named() {
    // Bind then drop: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let jc = JobClient::connect(format!("127.0.0.1:{port}")).await.unwrap();
    let e = jc.list().await.unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with(&format!("jobtracker 127.0.0.1:{port}: ")), "{text}");
    assert_eq!(e.kind(), None);
}

#[tokio::test]
async fn malformed_addresses_are_refused_up_front() {
    for bad in ["nohost", ":80", "h:port", "h:99999"] {
        let e = JobClient::connect(bad).await.err().unwrap();
        assert!(e.to_string().contains(bad) && e.to_string().contains("jobtracker"), "{e}");
    }
    assert!(JobClient::connect("http://h:1").await.is_ok());
}

#[test]
fn the_address_comes_from_the_flag_then_the_environment() {
    assert_eq!(resolve_addr_from(Some("a:1"), Some("b:2")).unwrap(), "a:1");
    assert_eq!(resolve_addr_from(Some(" "), Some("b:2")).unwrap(), "b:2");
    let e = resolve_addr_from(None, Some("")).unwrap_err();
    assert!(e.to_string().contains("--jobtracker") && e.to_string().contains(ENV_JOBTRACKER), "{e}");
}
