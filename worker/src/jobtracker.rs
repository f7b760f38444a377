//! The worker's side of WorkerProtocol, as two named background workers:
//!
//! - [`JobtrackerActor`] registers (retrying with backoff until the
//!   jobtracker answers), then heartbeats every interval the jobtracker
//!   gave with the running attempts' progress and counters and the free
//!   slots, and carries out the answers: `kill_attempts`, `cleanup_jobs`,
//!   and `reregister` (a new worker id; the old identity's attempts are
//!   killed and forgotten).
//! - [`FinishReporter`] sends `AttemptFinished` as soon as an attempt ends,
//!   retrying while the jobtracker is unreachable, until the report is
//!   taken, refused, or outdated by a new registration.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::transport::{Channel, Endpoint};
use tusk_common::logging::QuietLog;
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::compute::worker_protocol_client::WorkerProtocolClient;
use tusk_proto::compute::{
    AttemptFinishedRequest, RegisterWorkerRequest, WorkerHeartbeatRequest, WorkerHeartbeatResponse,
};
use tusk_proto::error::ErrorKind;

use crate::error::{Result, WorkerError};
use crate::worker::{FinishedReport, Worker};

const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(1000);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A lazily connecting gRPC client of the jobtracker.
#[derive(Clone)]
pub(crate) struct JobtrackerClient {
    addr: String,
    rpc: WorkerProtocolClient<Channel>,
}

impl JobtrackerClient {
    /// Must be called inside the tokio runtime; does not connect yet.
    pub(crate) fn new(addr: &str) -> Result<JobtrackerClient> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| WorkerError::Config(format!("jobtracker_addr: '{addr}': {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        Ok(JobtrackerClient { addr: addr.to_string(), rpc: WorkerProtocolClient::new(endpoint.connect_lazy()) })
    }

    /// Unreachable, overloaded or failing jobtrackers are worth retrying;
    /// a refusal (version, unknown worker or attempt, bad request) is not.
    fn rpc_error(&self, status: tonic::Status) -> WorkerError {
        use tonic::Code;
        let message = status.message().to_string();
        let refused = ErrorKind::of_status(&status) == Some(ErrorKind::Incompatible)
            || matches!(
                status.code(),
                Code::FailedPrecondition | Code::InvalidArgument | Code::NotFound | Code::PermissionDenied
            );
        if refused {
            WorkerError::Refused { addr: self.addr.clone(), message }
        } else {
            WorkerError::Rpc { addr: self.addr.clone(), message: format!("{:?}: {message}", status.code()) }
        }
    }

    async fn register(&self, req: RegisterWorkerRequest) -> Result<Duration> {
        let resp = self.rpc.clone().register_worker(req).await.map_err(|s| self.rpc_error(s))?.into_inner();
        Ok(match resp.heartbeat_interval_ms {
            0 => DEFAULT_HEARTBEAT,
            ms => Duration::from_millis(ms),
        })
    }

    async fn heartbeat(&self, req: WorkerHeartbeatRequest) -> Result<WorkerHeartbeatResponse> {
        Ok(self.rpc.clone().heartbeat(req).await.map_err(|s| self.rpc_error(s))?.into_inner())
    }

    async fn attempt_finished(&self, req: AttemptFinishedRequest) -> Result<()> {
        self.rpc.clone().attempt_finished(req).await.map_err(|s| self.rpc_error(s))?;
        Ok(())
    }
}

/// What the worker announces when it registers.
#[derive(Debug, Clone)]
pub(crate) struct Announcement {
    /// host:port of the WorkerService.
    pub addr: String,
    pub host: String,
    pub datanode: String,
    pub memory_bytes: u64,
}

/// A fresh worker id: host, port and a random suffix (a new one for every
/// registration, so the jobtracker never mistakes a new life for an old one).
pub(crate) fn new_worker_id(announcement: &Announcement) -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!("worker_{}_{}", announcement.addr.replace([':', '[', ']'], "_"), &uuid[..8])
}

pub(crate) struct JobtrackerActor {
    pub worker: Arc<Worker>,
    pub client: JobtrackerClient,
    pub announcement: Announcement,
}

impl JobtrackerActor {
    /// Runs until `shutdown` turns true or the jobtracker refuses this
    /// worker (sent on `fatal`).
    pub(crate) fn spawn(
        self,
        shutdown: watch::Receiver<bool>,
        fatal: oneshot::Sender<WorkerError>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if let Err(e) = self.run(shutdown).await {
                tracing::error!("worker cannot continue: {e}");
                let _ = fatal.send(e);
            }
        })
    }

    async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        loop {
            let Some(interval) = self.register(&mut shutdown).await? else { return Ok(()) };
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut quiet = QuietLog::new("jobtracker");
            loop {
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return Ok(()),
                    _ = ticker.tick() => {}
                }
                let resp = match self.client.heartbeat(self.worker.heartbeat_request()).await {
                    Ok(r) => {
                        quiet.recovered("heartbeat");
                        r
                    }
                    Err(e) => {
                        quiet.failed("heartbeat", &e);
                        continue;
                    }
                };
                if self.handle(resp) {
                    break;
                }
            }
        }
    }

    /// Carries out a heartbeat answer; true when the worker must register again.
    fn handle(&self, resp: WorkerHeartbeatResponse) -> bool {
        for attempt_id in &resp.kill_attempts {
            self.worker.kill(attempt_id, "killed by the jobtracker");
        }
        for job_id in resp.cleanup_jobs {
            let worker = Arc::clone(&self.worker);
            tokio::spawn(async move {
                tracing::info!(job = %job_id, "cleaning up a finished job");
                worker.cleanup_job(&job_id).await;
            });
        }
        if resp.reregister {
            let old = self.worker.identity().worker_id;
            let new = self.worker.renew_identity(new_worker_id(&self.announcement));
            tracing::warn!(old = %old, new = %new.worker_id, "the jobtracker does not know this worker: registering again");
        }
        resp.reregister
    }

    /// Registers, retrying with backoff until the jobtracker answers.
    /// `None` when shut down meanwhile.
    async fn register(&self, shutdown: &mut watch::Receiver<bool>) -> Result<Option<Duration>> {
        let mut backoff = FIRST_BACKOFF;
        let mut quiet = QuietLog::new("jobtracker");
        loop {
            let identity = self.worker.identity();
            let req = RegisterWorkerRequest {
                protocol_version: PROTOCOL_VERSION,
                worker_id: identity.worker_id.clone(),
                addr: self.announcement.addr.clone(),
                host: self.announcement.host.clone(),
                datanode: self.announcement.datanode.clone(),
                slots: self.worker.settings.slots,
                memory_bytes: self.announcement.memory_bytes,
                runtime: self.worker.runtime_name().to_string(),
                cores: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
            };
            match self.client.register(req).await {
                Ok(interval) => {
                    tracing::info!(
                        worker = %identity.worker_id,
                        jobtracker = %self.client.addr,
                        slots = self.worker.settings.slots,
                        "registered with the jobtracker"
                    );
                    return Ok(Some(interval));
                }
                Err(e @ WorkerError::Refused { .. }) => return Err(e),
                Err(e) => quiet.failed("registering with the jobtracker", &e),
            }
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return Ok(None),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Sends the reports of finished attempts (see the module docs).
pub(crate) struct FinishReporter {
    pub worker: Arc<Worker>,
    pub client: JobtrackerClient,
}

impl FinishReporter {
    pub(crate) async fn run(
        self,
        mut reports: mpsc::UnboundedReceiver<FinishedReport>,
        mut stop: watch::Receiver<bool>,
    ) {
        let this = Arc::new(self);
        loop {
            let report = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = reports.recv() => match r {
                    Some(r) => r,
                    None => return,
                },
            };
            let this = Arc::clone(&this);
            let stop = stop.clone();
            tokio::spawn(async move { this.send(report, stop).await });
        }
    }

    async fn send(&self, report: FinishedReport, mut stop: watch::Receiver<bool>) {
        let FinishedReport { epoch, mut request } = report;
        let attempt_id = request.attempt_id.clone();
        let mut backoff = FIRST_BACKOFF;
        let mut quiet = QuietLog::new("jobtracker");
        loop {
            let identity = self.worker.identity();
            if identity.epoch != epoch {
                // Launched under an identity the jobtracker has forgotten.
                self.worker.mark_reported(&attempt_id);
                return;
            }
            request.worker_id = identity.worker_id;
            match self.client.attempt_finished(request.clone()).await {
                Ok(()) => break,
                Err(e @ WorkerError::Refused { .. }) => {
                    tracing::warn!(attempt = %attempt_id, "report of the finished attempt refused: {e}");
                    break;
                }
                Err(e) => quiet.failed(&format!("reporting {attempt_id} finished"), &e),
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.worker.mark_reported(&attempt_id);
    }
}
