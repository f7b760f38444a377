//! WorkerProtocol over gRPC.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tusk_proto::compute::worker_protocol_server::WorkerProtocol;
use tusk_proto::compute::*;

use super::counters_from;
use crate::error::JobtrackerError;
use crate::jobtracker::Jobtracker;
use crate::sched::{self, Finished, WorkerReg};

pub(crate) struct WorkerService {
    pub(crate) jt: Arc<Jobtracker>,
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl WorkerProtocol for WorkerService {
    async fn register_worker(&self, req: Request<RegisterWorkerRequest>) -> Res<RegisterWorkerResponse> {
        let r = req.into_inner();
        let reg = WorkerReg { id: r.worker_id, addr: r.addr, host: r.host, datanode: r.datanode, slots: r.slots, cores: r.cores };
        let heartbeat_interval_ms = self.jt.register_worker(r.protocol_version, reg)?;
        Ok(Response::new(RegisterWorkerResponse { heartbeat_interval_ms }))
    }

    async fn heartbeat(&self, req: Request<WorkerHeartbeatRequest>) -> Res<WorkerHeartbeatResponse> {
        let r = req.into_inner();
        let running = r
            .running
            .into_iter()
            .map(|p| sched::AttemptProgress {
                attempt_id: p.attempt_id,
                progress: p.progress,
                status: p.status,
                counters: counters_from(p.counters),
            })
            .collect();
        let reply = self.jt.heartbeat(&r.worker_id, running);
        Ok(Response::new(WorkerHeartbeatResponse {
            reregister: reply.reregister,
            kill_attempts: reply.kill,
            cleanup_jobs: reply.cleanup,
        }))
    }

    async fn attempt_finished(&self, req: Request<AttemptFinishedRequest>) -> Res<AttemptFinishedResponse> {
        let r = req.into_inner();
        let state = match AttemptState::try_from(r.state) {
            Ok(AttemptState::AttemptSucceeded) => sched::AttemptState::Succeeded,
            Ok(AttemptState::AttemptFailed) => sched::AttemptState::Failed,
            Ok(AttemptState::AttemptKilled) => sched::AttemptState::Killed,
            _ => {
                return Err(JobtrackerError::invalid(format!(
                    "{}: AttemptFinished with state {}: must be SUCCEEDED, FAILED or KILLED",
                    r.attempt_id, r.state
                ))
                .into());
            }
        };
        self.jt.attempt_finished(Finished {
            worker_id: r.worker_id,
            attempt_id: r.attempt_id,
            state,
            diagnostics: r.diagnostics,
            stderr_tail: r.stderr_tail,
            counters: counters_from(r.counters),
            result_json: r.result_json,
        });
        Ok(Response::new(AttemptFinishedResponse {}))
    }
}
