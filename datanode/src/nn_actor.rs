//! The namenode actor: a named background worker that registers this
//! datanode (retrying with backoff while the namenode is unreachable), sends
//! a full block report after every registration and then periodically, and
//! heartbeats, handing the commands of the answers to [`commands`] (block
//! recovery as the primary datanode is in [`recovery`]). It also sends what
//! storage queued on its own (bad replicas found by reads or the block
//! scanner, vanished replicas). [`NamenodeReporter`] is the synchronous
//! incremental block report used by the transfer threads before they ack a
//! block's last packet.

mod commands;
mod recovery;

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tonic::transport::{Channel, Endpoint};
use tusk_common::logging::QuietLog;
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::dfs::datanode_protocol_client::DatanodeProtocolClient;
use tusk_proto::dfs::{
    BadReplica, BlockReportRequest, CommitBlockSynchronizationRequest, DatanodeCommand, DatanodeId, HeartbeatRequest,
    IncrementalBlockReportRequest, RegisterDatanodeRequest, ReplicaReport, ReportBadBlocksRequest,
};
use tusk_proto::error::ErrorKind;

use crate::error::DatanodeError;
use crate::storage::Storage;
use crate::transfer::{BlockReceivedSink, Xceivers};

const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(3000);
const DEFAULT_BLOCK_REPORT: Duration = Duration::from_secs(6 * 3600);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A lazily connecting gRPC client of the namenode (reconnects by itself).
#[derive(Clone)]
pub(crate) struct NamenodeClient {
    pub addr: String,
    rpc: DatanodeProtocolClient<Channel>,
    /// Orders incremental and full block reports: a full report is built
    /// and sent while no incremental report is on its way, so the namenode
    /// never processes a report built before a replica it already heard of
    /// (which would make it drop that replica's location).
    reports: Arc<tokio::sync::Mutex<()>>,
}

impl NamenodeClient {
    /// Must be called inside the tokio runtime; does not connect yet.
    pub(crate) fn new(addr: &str) -> Result<NamenodeClient, DatanodeError> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| DatanodeError::Config(format!("namenode_addr: '{addr}': {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        Ok(NamenodeClient {
            addr: addr.to_string(),
            rpc: DatanodeProtocolClient::new(endpoint.connect_lazy()),
            reports: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    fn rpc_error(&self, status: tonic::Status) -> DatanodeError {
        let incompatible = ErrorKind::of_status(&status) == Some(ErrorKind::Incompatible)
            || status.code() == tonic::Code::FailedPrecondition;
        let message = status.message().to_string();
        if incompatible {
            DatanodeError::Refused { namenode: self.addr.clone(), message }
        } else {
            DatanodeError::Rpc { namenode: self.addr.clone(), message: format!("{:?}: {message}", status.code()) }
        }
    }

    pub(crate) async fn incremental_report(
        &self,
        uuid: &str,
        received: Vec<ReplicaReport>,
        deleted: Vec<ReplicaReport>,
    ) -> Result<(), DatanodeError> {
        let req = IncrementalBlockReportRequest { datanode_uuid: uuid.to_string(), received, deleted };
        let _in_order = self.reports.lock().await;
        self.rpc.clone().incremental_block_report(req).await.map_err(|s| self.rpc_error(s))?;
        Ok(())
    }

    pub(crate) async fn report_bad_blocks(&self, replicas: Vec<BadReplica>) -> Result<(), DatanodeError> {
        let req = ReportBadBlocksRequest { replicas };
        self.rpc.clone().report_bad_blocks(req).await.map_err(|s| self.rpc_error(s))?;
        Ok(())
    }

    pub(crate) async fn commit_block_synchronization(
        &self,
        req: CommitBlockSynchronizationRequest,
    ) -> Result<(), DatanodeError> {
        self.rpc.clone().commit_block_synchronization(req).await.map_err(|s| self.rpc_error(s))?;
        Ok(())
    }
}

/// Tells the namenode about each finalized replica, from a transfer thread.
pub(crate) struct NamenodeReporter {
    pub runtime: tokio::runtime::Handle,
    pub client: NamenodeClient,
    pub uuid: String,
}

impl BlockReceivedSink for NamenodeReporter {
    fn block_received(&self, replica: ReplicaReport) -> Result<(), DatanodeError> {
        self.runtime.block_on(async {
            let mut attempt = 0;
            loop {
                match self.client.incremental_report(&self.uuid, vec![replica], vec![]).await {
                    Ok(()) => return Ok(()),
                    Err(e) if attempt < 2 => {
                        tracing::debug!(block_id = replica.block_id, "incremental block report failed, retrying: {e}");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    }
}

/// Registration results the actor keeps.
struct Intervals {
    heartbeat: Duration,
    block_report: Duration,
}

pub(crate) struct NamenodeActor {
    pub storage: Arc<Storage>,
    pub client: NamenodeClient,
    pub id: DatanodeId,
    pub xceivers: Arc<Xceivers>,
    pub socket_timeout: Duration,
}

impl NamenodeActor {
    /// Runs until `shutdown` turns true or a fatal error (sent on `fatal`).
    pub(crate) fn spawn(
        self,
        shutdown: watch::Receiver<bool>,
        fatal: oneshot::Sender<DatanodeError>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if let Err(e) = self.run(shutdown).await {
                tracing::error!("datanode cannot continue: {e}");
                let _ = fatal.send(e);
            }
        })
    }

    async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), DatanodeError> {
        loop {
            let Some(intervals) = self.register(&mut shutdown).await? else { return Ok(()) };
            let mut next_report = Instant::now();
            let mut ticker = tokio::time::interval(intervals.heartbeat);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut quiet = QuietLog::new("namenode");
            loop {
                let report_due = tokio::time::Instant::from_std(next_report);
                let reregister = tokio::select! {
                    _ = shutdown.changed() => return Ok(()),
                    _ = tokio::time::sleep_until(report_due) => match self.full_block_report().await {
                        Ok(cmds) => {
                            next_report = Instant::now() + intervals.block_report;
                            commands::handle(self, cmds).await
                        }
                        Err(e) => {
                            quiet.failed("full block report", &e);
                            next_report = Instant::now() + intervals.heartbeat;
                            false
                        }
                    },
                    _ = self.storage.notices.notify.notified() => {
                        self.send_notices(&mut quiet).await;
                        false
                    }
                    _ = ticker.tick() => match self.heartbeat().await {
                        Ok(cmds) => {
                            quiet.recovered("heartbeat");
                            self.send_notices(&mut quiet).await;
                            commands::handle(self, cmds).await
                        }
                        Err(e) => {
                            quiet.failed("heartbeat", &e);
                            false
                        }
                    },
                };
                if reregister {
                    tracing::info!(namenode = %self.client.addr, "namenode asked to register again");
                    break;
                }
            }
        }
    }

    /// Registers, retrying with backoff; `None` when shut down meanwhile.
    async fn register(&self, shutdown: &mut watch::Receiver<bool>) -> Result<Option<Intervals>, DatanodeError> {
        let mut backoff = Duration::from_millis(100);
        let mut quiet = QuietLog::new("namenode");
        loop {
            let req = RegisterDatanodeRequest {
                protocol_version: PROTOCOL_VERSION,
                id: Some(self.id.clone()),
                cluster_id: self.storage.cluster_id(),
                storage: Some(self.storage.storage_report()),
            };
            match self.client.rpc.clone().register_datanode(req).await {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    self.storage.adopt_cluster_id(&resp.cluster_id, &self.client.addr)?;
                    let ms = |v: u64, d: Duration| if v == 0 { d } else { Duration::from_millis(v) };
                    tracing::info!(namenode = %self.client.addr, cluster_id = %resp.cluster_id, uuid = %self.id.datanode_uuid, "registered");
                    return Ok(Some(Intervals {
                        heartbeat: ms(resp.heartbeat_interval_ms, DEFAULT_HEARTBEAT),
                        block_report: ms(resp.block_report_interval_ms, DEFAULT_BLOCK_REPORT),
                    }));
                }
                Err(status) => {
                    let e = self.client.rpc_error(status);
                    if matches!(e, DatanodeError::Refused { .. }) {
                        return Err(e);
                    }
                    quiet.failed("registration", &e);
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return Ok(None),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Sends the bad and vanished replicas storage queued; what cannot be
    /// sent is queued again for the next heartbeat.
    async fn send_notices(&self, quiet: &mut QuietLog) {
        let mut q = self.storage.notices.take();
        if !q.bad.is_empty() {
            let bad = std::mem::take(&mut q.bad);
            let n = bad.len();
            match self.client.report_bad_blocks(bad.clone()).await {
                Ok(()) => tracing::info!(count = n, "bad replicas reported to the namenode"),
                Err(e) => {
                    quiet.failed("reporting bad replicas", &e);
                    q.bad = bad;
                }
            }
        }
        if !q.deleted.is_empty() {
            let deleted = std::mem::take(&mut q.deleted);
            match self.client.incremental_report(&self.id.datanode_uuid, vec![], deleted.clone()).await {
                Ok(()) => tracing::info!(count = deleted.len(), "vanished replicas reported deleted"),
                Err(e) => {
                    quiet.failed("reporting vanished replicas", &e);
                    q.deleted = deleted;
                }
            }
        }
        if !q.bad.is_empty() || !q.deleted.is_empty() {
            self.storage.notices.requeue(q);
        }
    }

    async fn full_block_report(&self) -> Result<Vec<DatanodeCommand>, DatanodeError> {
        // No incremental report may overtake this one between its snapshot
        // and its processing by the namenode.
        let _in_order = self.client.reports.lock().await;
        let replicas = self.storage.block_report();
        let rbw = self.storage.rbw_report();
        let (n, n_rbw) = (replicas.len(), rbw.len());
        let req = BlockReportRequest { datanode_uuid: self.id.datanode_uuid.clone(), replicas, rbw };
        let resp = self.client.rpc.clone().block_report(req).await.map_err(|s| self.client.rpc_error(s))?;
        tracing::debug!(replicas = n, rbw = n_rbw, "full block report sent");
        Ok(resp.into_inner().commands)
    }

    async fn heartbeat(&self) -> Result<Vec<DatanodeCommand>, DatanodeError> {
        let req = HeartbeatRequest {
            datanode_uuid: self.id.datanode_uuid.clone(),
            storage: Some(self.storage.storage_report()),
            xceivers: self.xceivers.count(),
        };
        let resp = self.client.rpc.clone().heartbeat(req).await.map_err(|s| self.client.rpc_error(s))?;
        Ok(resp.into_inner().commands)
    }
}
