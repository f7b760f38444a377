//! A tiny in-process jobtracker (WorkerProtocol only) that records what
//! workers tell it and answers heartbeats as a test scripts.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tusk_proto::compute::worker_protocol_server::{WorkerProtocol, WorkerProtocolServer};
use tusk_proto::compute::{
    AttemptFinishedRequest, AttemptFinishedResponse, RegisterWorkerRequest, RegisterWorkerResponse,
    WorkerHeartbeatRequest, WorkerHeartbeatResponse,
};

/// What the fake jobtracker heard, and what it will answer.
#[derive(Default)]
pub(super) struct Heard {
    pub registrations: Vec<RegisterWorkerRequest>,
    pub heartbeats: Vec<WorkerHeartbeatRequest>,
    pub finished: Vec<AttemptFinishedRequest>,
    /// Answers of the next heartbeats (then empty answers).
    pub answers: VecDeque<WorkerHeartbeatResponse>,
    /// Registrations still to refuse as unavailable.
    pub refuse_registrations: usize,
}

#[derive(Clone)]
pub(super) struct FakeJobtracker {
    heard: Arc<Mutex<Heard>>,
    changed: Arc<watch::Sender<u64>>,
}

impl FakeJobtracker {
    /// Serves on a free port; returns the fake and its address.
    pub(super) async fn start(refuse_registrations: usize) -> (FakeJobtracker, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let heard = Heard { refuse_registrations, ..Default::default() };
        let jt = FakeJobtracker { heard: Arc::new(Mutex::new(heard)), changed: Arc::new(watch::channel(0).0) };
        let service = WorkerProtocolServer::new(jt.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (jt, addr)
    }

    fn record(&self, f: impl FnOnce(&mut Heard)) {
        f(&mut self.heard.lock());
        self.changed.send_modify(|n| *n += 1);
    }

    /// The next heartbeat gets `answer`.
    pub(super) fn answer_next(&self, answer: WorkerHeartbeatResponse) {
        self.heard.lock().answers.push_back(answer);
    }

    pub(super) fn with<T>(&self, f: impl FnOnce(&Heard) -> T) -> T {
        f(&self.heard.lock())
    }

    /// Waits (at most 20 s) until `f` finds something in what was heard.
    pub(super) async fn wait_for<T>(&self, what: &str, f: impl Fn(&Heard) -> Option<T>) -> T {
        let mut rx = self.changed.subscribe();
        let found = async {
            loop {
                rx.borrow_and_update();
                if let Some(t) = f(&self.heard.lock()) {
                    return t;
                }
                rx.changed().await.unwrap();
            }
        };
        match tokio::time::timeout(Duration::from_secs(20), found).await {
            Ok(t) => t,
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }

    /// The report of a finished attempt.
    pub(super) async fn finished(&self, attempt_id: &str) -> AttemptFinishedRequest {
        self.wait_for(&format!("{attempt_id} to finish"), |h| {
            h.finished.iter().find(|f| f.attempt_id == attempt_id).cloned()
        })
        .await
    }
}

#[tonic::async_trait]
impl WorkerProtocol for FakeJobtracker {
    async fn register_worker(
        &self,
        request: Request<RegisterWorkerRequest>,
    ) -> Result<Response<RegisterWorkerResponse>, Status> {
        let mut refused = false;
        self.record(|h| {
            if h.refuse_registrations > 0 {
                h.refuse_registrations -= 1;
                refused = true;
            } else {
                h.registrations.push(request.into_inner());
            }
        });
        if refused {
            return Err(Status::unavailable("jobtracker starting"));
        }
        Ok(Response::new(RegisterWorkerResponse { heartbeat_interval_ms: 50 }))
    }

    async fn heartbeat(
        &self,
        request: Request<WorkerHeartbeatRequest>,
    ) -> Result<Response<WorkerHeartbeatResponse>, Status> {
        let mut answer = WorkerHeartbeatResponse::default();
        self.record(|h| {
            h.heartbeats.push(request.into_inner());
            answer = h.answers.pop_front().unwrap_or_default();
        });
        Ok(Response::new(answer))
    }

    async fn attempt_finished(
        &self,
        request: Request<AttemptFinishedRequest>,
    ) -> Result<Response<AttemptFinishedResponse>, Status> {
        self.record(|h| h.finished.push(request.into_inner()));
        Ok(Response::new(AttemptFinishedResponse {}))
    }
}
