//! [`JobClient`]: submit, watch and kill jobs on a jobtracker
//! (`JobClientProtocol`), and read task logs from workers
//! (`WorkerService.GetTaskLog`).
//!
//! Job definitions travel as JSON documents whose schema belongs to the
//! engine running them (`tusk_mapreduce::JobSpec` for `"mapreduce"`); this
//! crate does not depend on any engine, so callers serialize the spec.

mod types;

pub use types::{
    AttemptReport, AttemptState, ClusterStatus, Counter, JobReport, JobState, KillOutcome, Locality, StageSummary,
    TaskLog, TaskReport, TaskState, WorkerInfo,
};

use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tusk_proto::compute as pb;
use tusk_proto::compute::job_client_protocol_client::JobClientProtocolClient;
use tusk_proto::compute::worker_service_client::WorkerServiceClient;
use tusk_proto::error::ErrorKind;

use crate::error::{ClientError, Result};

/// Environment variable naming the jobtracker (`host:port`).
pub const ENV_JOBTRACKER: &str = "TUSK_JOBTRACKER";

/// Deadline of one jobtracker or worker RPC. Submission computes the
/// job's splits synchronously, so it may take a while on big inputs.
const RPC_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a jobtracker. Cheap to clone; clones share the channel.
#[derive(Clone)]
pub struct JobClient {
    addr: String,
    rpc: JobClientProtocolClient<Channel>,
    user: String,
}

impl JobClient {
    /// Prepares a connection to the jobtracker at `addr` (`host:port`). The
    /// channel connects lazily, so this fails only on a malformed address.
    /// Jobs are submitted as the current user (`TUSK_USER` or the OS user).
    pub async fn connect(addr: impl Into<String>) -> Result<JobClient> {
        let addr = addr.into();
        let channel = channel("jobtracker", &addr, RPC_TIMEOUT)?;
        let user = tusk_common::identity::Identity::current().user;
        Ok(JobClient { rpc: JobClientProtocolClient::new(channel), addr, user })
    }

    /// The jobtracker address from `explicit` (e.g. `--jobtracker`), else
    /// env `TUSK_JOBTRACKER`; the error names both.
    pub fn resolve_addr(explicit: Option<&str>) -> Result<String> {
        let env = std::env::var(ENV_JOBTRACKER).ok();
        resolve_addr_from(explicit, env.as_deref())
    }

    /// The same client acting as `user`.
    pub fn with_user(mut self, user: impl Into<String>) -> JobClient {
        self.user = user.into();
        self
    }

    /// The jobtracker's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The user jobs are submitted (and killed) as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Submits a job for `engine` (`"mapreduce"`) defined by `spec_json`;
    /// returns its id. Bad definitions, a missing input or an existing
    /// output are refused here, before any task runs.
    pub async fn submit(&self, engine: &str, spec_json: &str) -> Result<String> {
        let req = pb::SubmitJobRequest {
            protocol_version: tusk_proto::PROTOCOL_VERSION,
            user: self.user.clone(),
            engine: engine.to_string(),
            spec_json: spec_json.to_string(),
        };
        let resp = self.rpc.clone().submit_job(req).await.map_err(|s| self.error(s))?;
        Ok(resp.into_inner().job_id)
    }

    /// The job's report; with `with_tasks`, also every task and attempt.
    pub async fn job(&self, job_id: &str, with_tasks: bool) -> Result<JobReport> {
        let req = pb::GetJobRequest { job_id: job_id.to_string(), with_tasks, wait_ms: 0 };
        let resp = self.rpc.clone().get_job(req).await.map_err(|s| self.error(s))?;
        Ok(JobReport::from_proto(resp.into_inner()))
    }

    /// The job's report once it has finished, or after `wait` (at most
    /// 30 s) if it is still running: one call instead of polling.
    pub async fn wait_finished(&self, job_id: &str, wait: Duration) -> Result<JobReport> {
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1);
        let req = pb::GetJobRequest { job_id: job_id.to_string(), with_tasks: false, wait_ms };
        let resp = self.rpc.clone().get_job(req).await.map_err(|s| self.error(s))?;
        Ok(JobReport::from_proto(resp.into_inner()))
    }

    /// Every job the jobtracker knows (running and finished).
    pub async fn list(&self) -> Result<Vec<JobReport>> {
        self.list_jobs(false).await
    }

    /// Jobs not finished yet.
    pub async fn list_running(&self) -> Result<Vec<JobReport>> {
        self.list_jobs(true).await
    }

    async fn list_jobs(&self, running_only: bool) -> Result<Vec<JobReport>> {
        let resp = self.rpc.clone().list_jobs(pb::ListJobsRequest { running_only }).await.map_err(|s| self.error(s))?;
        Ok(resp.into_inner().jobs.into_iter().map(JobReport::from_proto).collect())
    }

    /// Kills a job; `killed` is false when it had already finished.
    pub async fn kill(&self, job_id: &str) -> Result<KillOutcome> {
        let req = pb::KillJobRequest { job_id: job_id.to_string(), user: self.user.clone() };
        let resp = self.rpc.clone().kill_job(req).await.map_err(|s| self.error(s))?.into_inner();
        Ok(KillOutcome { killed: resp.killed, state: JobState::from_proto(resp.state) })
    }

    /// The workers and how busy they are.
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        let resp = self.rpc.clone().cluster_status(pb::ClusterStatusRequest {}).await.map_err(|s| self.error(s))?;
        Ok(ClusterStatus::from_proto(resp.into_inner()))
    }

    /// Up to `max_len` bytes of an attempt's stderr from `offset` (negative:
    /// from the end), read from the worker at `worker_addr` that ran it.
    pub async fn task_log(&self, worker_addr: &str, attempt_id: &str, offset: i64, max_len: u64) -> Result<Vec<u8>> {
        Ok(task_log(worker_addr, attempt_id, "stderr", offset, max_len).await?.data)
    }

    /// Like [`task_log`](Self::task_log) for `stream` (`"stderr"` or
    /// `"stdout"`), also returning the log's total length.
    pub async fn task_log_stream(
        &self,
        worker_addr: &str,
        attempt_id: &str,
        stream: &str,
        offset: i64,
        max_len: u64,
    ) -> Result<TaskLog> {
        task_log(worker_addr, attempt_id, stream, offset, max_len).await
    }

    fn error(&self, status: tonic::Status) -> ClientError {
        status_error("jobtracker", &self.addr, status)
    }
}

/// One `GetTaskLog` call to a worker.
async fn task_log(worker_addr: &str, attempt_id: &str, stream: &str, offset: i64, max_len: u64) -> Result<TaskLog> {
    let mut rpc = WorkerServiceClient::new(channel("worker", worker_addr, RPC_TIMEOUT)?);
    let req = pb::GetTaskLogRequest { attempt_id: attempt_id.to_string(), stream: stream.to_string(), offset, max_len };
    let resp = rpc.get_task_log(req).await.map_err(|s| status_error("worker", worker_addr, s))?.into_inner();
    Ok(TaskLog { data: resp.data, total_len: resp.total_len })
}

/// A lazily connecting channel to `role` at `addr` (`host:port`, or a URI).
/// A lazy channel to `addr` (`host:port` or a URI) with per-call deadline
/// `timeout`; a malformed address is an error naming `role`.
pub(crate) fn channel(role: &str, addr: &str, timeout: Duration) -> Result<Channel> {
    let addr = addr.trim();
    let bad = |why: String| ClientError::Config(format!("{role} address '{addr}': {why} (expected host:port)"));
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no port".into()))?;
        if host.is_empty() {
            return Err(bad("no host".into()));
        }
        port.parse::<u16>().map_err(|_| bad("invalid port".into()))?;
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| bad(e.to_string()))?
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

fn resolve_addr_from(explicit: Option<&str>, env: Option<&str>) -> Result<String> {
    explicit
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .or(env.map(str::trim).filter(|s| !s.is_empty()))
        .map(str::to_string)
        .ok_or_else(|| {
            ClientError::Config(format!(
                "no jobtracker address: pass --jobtracker host:port or set {ENV_JOBTRACKER}=host:port \
                 (`tusk cluster start` writes it to cluster.env)"
            ))
        })
}

/// The one translation of a gRPC status from the jobtracker or a worker.
/// A refusal carries the server's sentence as is (its [`ErrorKind`] from the
/// status metadata, else from the status code); an unreachable server is
/// named with its role and address.
fn status_error(role: &str, addr: &str, status: tonic::Status) -> ClientError {
    let kind = ErrorKind::of_status(&status).or(match status.code() {
        tonic::Code::NotFound => Some(ErrorKind::NotFound),
        tonic::Code::AlreadyExists => Some(ErrorKind::AlreadyExists),
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Some(ErrorKind::InvalidArgument),
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => Some(ErrorKind::PermissionDenied),
        tonic::Code::FailedPrecondition => Some(ErrorKind::Incompatible),
        _ => None,
    });
    if let Some(kind) = kind
        && !status.message().is_empty()
    {
        return ClientError::Namenode { kind, message: status.message().to_string() };
    }
    let message = crate::error::status_text(&status);
    ClientError::Io { context: format!("{role} {addr}"), source: std::io::Error::other(message) }
}

#[cfg(test)]
mod tests;
