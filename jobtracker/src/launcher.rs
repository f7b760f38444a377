//! Talking to workers: LaunchTask and KillTask on their WorkerService, over
//! one cached connection per worker address.

use futures::future::BoxFuture;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tusk_proto::compute::worker_service_client::WorkerServiceClient;
use tusk_proto::compute::{KillTaskRequest, LaunchTaskRequest};

/// How long connecting to a worker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of one LaunchTask / KillTask call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The jobtracker's side of WorkerService (a trait so the jobtracker can be
/// tested without workers). Errors are the sentence to record.
pub(crate) trait WorkerLink: Send + Sync {
    fn launch<'a>(&'a self, addr: &'a str, req: LaunchTaskRequest) -> BoxFuture<'a, Result<(), String>>;
    /// True when the worker knew the attempt.
    fn kill<'a>(&'a self, addr: &'a str, attempt_id: &'a str, reason: &'a str) -> BoxFuture<'a, Result<bool, String>>;
    /// Drops the connection to a worker that is gone.
    fn forget(&self, addr: &str);
}

/// [`WorkerLink`] over gRPC.
#[derive(Default)]
pub(crate) struct GrpcLink {
    clients: Mutex<HashMap<String, WorkerServiceClient<Channel>>>,
}

impl GrpcLink {
    fn client(&self, addr: &str) -> Result<WorkerServiceClient<Channel>, String> {
        if let Some(c) = self.clients.lock().get(addr) {
            return Ok(c.clone());
        }
        let uri = if addr.contains("://") { addr.to_string() } else { format!("http://{addr}") };
        let channel = Endpoint::from_shared(uri)
            .map_err(|e| format!("worker address {addr}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        let client = WorkerServiceClient::new(channel);
        Ok(self.clients.lock().entry(addr.to_string()).or_insert(client).clone())
    }
}

fn status_text(addr: &str, s: tonic::Status) -> String {
    format!("worker {addr}: {}", s.message())
}

impl WorkerLink for GrpcLink {
    fn launch<'a>(&'a self, addr: &'a str, req: LaunchTaskRequest) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut c = self.client(addr)?;
            c.launch_task(req).await.map(|_| ()).map_err(|s| status_text(addr, s))
        })
    }

    fn kill<'a>(&'a self, addr: &'a str, attempt_id: &'a str, reason: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let mut c = self.client(addr)?;
            let req = KillTaskRequest { attempt_id: attempt_id.to_string(), reason: reason.to_string() };
            c.kill_task(req).await.map(|r| r.into_inner().found).map_err(|s| status_text(addr, s))
        })
    }

    fn forget(&self, addr: &str) {
        self.clients.lock().remove(addr);
    }
}
