//! DFS access: one client per job user (planning and commits act as the
//! job's user), created lazily, and the rack refresher that keeps the
//! scheduler's datanode → rack map current.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tusk_client::{Client, ClientError, ClientPool, ErrorKind};

use crate::error::{JobtrackerError, Refusal, Result};
use crate::jobtracker::Jobtracker;

/// How often the datanode report (racks) is fetched.
const RACK_REFRESH: Duration = Duration::from_secs(60);
/// Retry delay of a failed report, and the least time between two reports.
const RACK_RETRY: Duration = Duration::from_secs(5);

/// Clients of the namenode, by user (planning and commits act as the
/// job's user).
pub(crate) struct Dfs {
    pool: ClientPool,
}

impl Dfs {
    pub(crate) fn new(namenode: &str) -> Dfs {
        Dfs { pool: ClientPool::new(namenode) }
    }

    pub(crate) fn namenode(&self) -> &str {
        self.pool.namenode()
    }

    /// A client acting as `user` (the jobtracker's own identity for "").
    pub(crate) async fn client(&self, user: &str) -> Result<Client> {
        self.pool.client(user).await.map_err(dfs_error)
    }

    /// Datanode transfer address → rack, from the namenode's report.
    pub(crate) async fn racks(&self) -> Result<HashMap<String, String>> {
        let report = self.client("").await?.datanode_report().await.map_err(dfs_error)?;
        Ok(report.into_iter().map(|d| (d.transfer_addr, d.rack)).collect())
    }
}

/// A DFS error as the jobtracker reports it: the client's message, with a
/// code telling "not found" / "permission" / "try later" apart.
pub(crate) fn dfs_error(e: ClientError) -> JobtrackerError {
    let reason = match e.kind() {
        Some(ErrorKind::NotFound) => Refusal::NotFound,
        Some(ErrorKind::AlreadyExists) => Refusal::AlreadyExists,
        Some(ErrorKind::PermissionDenied) => Refusal::PermissionDenied,
        Some(ErrorKind::SafeMode | ErrorKind::NoDatanodes) => Refusal::Unavailable,
        Some(ErrorKind::InvalidPath | ErrorKind::InvalidArgument) => Refusal::InvalidArgument,
        Some(_) => Refusal::FailedPrecondition,
        None => match e {
            ClientError::Rpc { .. } | ClientError::Block { .. } => Refusal::Unavailable,
            ClientError::Config(_) => Refusal::InvalidArgument,
            _ => Refusal::FailedPrecondition,
        },
    };
    JobtrackerError::refused(reason, e.to_string())
}

/// Background: fetches the datanode report every minute (sooner when a
/// worker beside an unplaced datanode registers) and hands the racks to the
/// scheduler.
pub(crate) struct RackRefresher {
    jt: Arc<Jobtracker>,
    dfs: Arc<Dfs>,
    wake: Arc<Notify>,
}

impl RackRefresher {
    pub(crate) fn new(jt: Arc<Jobtracker>, dfs: Arc<Dfs>, wake: Arc<Notify>) -> RackRefresher {
        RackRefresher { jt, dfs, wake }
    }

    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let wait = match self.dfs.racks().await {
                Ok(racks) => {
                    self.jt.set_racks(racks);
                    RACK_REFRESH
                }
                Err(e) => {
                    tracing::debug!("datanode report from {}: {e}", self.dfs.namenode());
                    RACK_RETRY
                }
            };
            // At most one report per RACK_RETRY, even when woken often.
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(RACK_RETRY) => {}
            }
            if wait > RACK_RETRY {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(wait - RACK_RETRY) => {}
                    _ = self.wake.notified() => {}
                }
            }
        }
    }
}
