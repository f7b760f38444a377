//! Starting and stopping the jobtracker: load the state directory, serve
//! the three gRPC services and the metastore's on one server, run the
//! background work.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tusk_common::now_ms;
use tusk_metastore::Metastore;
use tusk_proto::compute::job_client_protocol_server::JobClientProtocolServer;
use tusk_proto::compute::task_umbilical_server::TaskUmbilicalServer;
use tusk_proto::compute::worker_protocol_server::WorkerProtocolServer;

use crate::background::{Persister, SchedulerLoop};
use crate::config::JobtrackerConfig;
use crate::dfs::{Dfs, RackRefresher};
use crate::engine::mapreduce::MapReduceEngine;
use crate::engine::sql::SqlEngine;
use crate::engine::{Engine, EngineDefaults};
use crate::error::{JobtrackerError, Result};
use crate::jobtracker::Jobtracker;
use crate::launcher::{GrpcLink, WorkerLink};
use crate::service::client::ClientService;
use crate::service::umbilical::UmbilicalService;
use crate::service::worker::WorkerService;
use crate::store::Store;

/// The metastore's catalog, in the state directory.
const METASTORE_FILE: &str = "metastore.redb";

/// A running jobtracker.
pub struct JobtrackerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::result::Result<(), tonic::transport::Error>>,
    workers: Vec<JoinHandle<()>>,
}

fn write_addr_file(path: &Path, addr: SocketAddr) -> Result<()> {
    crate::store::write_atomic(path, format!("{addr}\n").as_bytes())
}

/// The address tasks use to reach the jobtracker.
fn advertised(config: &JobtrackerConfig, bound: SocketAddr) -> String {
    match &config.advertised_host {
        Some(h) => format!("{}:{}", h.trim(), bound.port()),
        None if bound.ip().is_unspecified() => format!("127.0.0.1:{}", bound.port()),
        None => bound.to_string(),
    }
}

/// Loads the state directory (jobs from before a restart: see the crate
/// docs) and opens the metastore, binds `config.rpc_addr` and serves
/// JobClientProtocol, WorkerProtocol, TaskUmbilical and MetastoreProtocol
/// until [`JobtrackerHandle::shutdown`].
pub async fn start(config: JobtrackerConfig) -> Result<JobtrackerHandle> {
    config.validate()?;
    let dfs = Arc::new(Dfs::new(&config.namenode_addr));
    let defaults = EngineDefaults {
        max_attempts: config.max_attempts,
        speculative: config.speculative,
        reduce_slowstart: config.reduce_slowstart,
        task_timeout_ms: config.task_timeout_ms,
        task_memory_mb: config.task_memory_mb,
    };
    let engine_dfs = dfs.clone();
    let engines = move |jt_addr: String| -> Vec<Arc<dyn Engine>> {
        vec![
            Arc::new(MapReduceEngine::new(engine_dfs.clone(), defaults.clone(), jt_addr.clone())),
            Arc::new(SqlEngine::new(engine_dfs, defaults, jt_addr)),
        ]
    };
    start_with(config, engines, Arc::new(GrpcLink::default()), Some(dfs)).await
}

/// [`start`] with the engines and the worker link given (tests).
pub(crate) async fn start_with(
    config: JobtrackerConfig,
    engines: impl FnOnce(String) -> Vec<Arc<dyn Engine>>,
    link: Arc<dyn WorkerLink>,
    dfs: Option<Arc<Dfs>>,
) -> Result<JobtrackerHandle> {
    config.validate()?;
    let state_dir = config.state_dir.clone();
    let (warehouse, namenode) = (config.warehouse_dir.clone(), config.namenode_addr.clone());
    let (store, meta, jobs, metastore) = tokio::task::spawn_blocking(move || {
        let (store, meta) = Store::open(&state_dir, now_ms())?;
        let jobs = store.load_jobs()?;
        let path = state_dir.join(METASTORE_FILE);
        let metastore = Metastore::open(&path, &warehouse, &namenode)
            .map_err(|e| JobtrackerError::Internal(format!("opening the metastore: {e}")))?;
        Ok::<_, JobtrackerError>((store, meta, jobs, metastore))
    })
    .await
    .map_err(|e| JobtrackerError::Internal(format!("loading the state directory: {e}")))??;
    let listener = tokio::net::TcpListener::bind(&config.rpc_addr)
        .await
        .map_err(|e| JobtrackerError::io(Path::new(&config.rpc_addr), e))?;
    let addr = listener.local_addr().map_err(|e| JobtrackerError::io(Path::new(&config.rpc_addr), e))?;
    let engines = engines(advertised(&config, addr));
    let addr_file = config.addr_file.clone();
    let loaded = jobs.len();
    let jt = Arc::new(Jobtracker::new(config, store, meta, engines, link));
    jt.load(jobs);

    let (stop, stop_rx) = watch::channel(false);
    let incoming = TcpListenerStream::new(listener).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok::<_, std::io::Error>(s)
    });
    let mut shutdown_rx = stop_rx.clone();
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(JobClientProtocolServer::new(ClientService { jt: jt.clone() }))
        .add_service(WorkerProtocolServer::new(WorkerService { jt: jt.clone() }))
        .add_service(TaskUmbilicalServer::new(UmbilicalService { jt: jt.clone() }))
        .add_service(tusk_metastore::server(&metastore))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown_rx.wait_for(|s| *s).await;
        });
    let server = tokio::spawn(server);
    let mut workers = vec![
        tokio::spawn(SchedulerLoop::new(jt.clone()).run(stop_rx.clone())),
        tokio::spawn(Persister::new(jt.clone()).run(stop_rx.clone())),
        metastore.start(stop_rx.clone()),
    ];
    if let Some(dfs) = dfs {
        let wake = jt.racks_wanted.clone();
        workers.push(tokio::spawn(RackRefresher::new(jt.clone(), dfs, wake).run(stop_rx.clone())));
    }
    if let Some(f) = &addr_file {
        write_addr_file(f, addr)?;
    }
    tracing::info!("jobtracker serving on {addr} ({loaded} jobs loaded)");
    Ok(JobtrackerHandle { addr, stop, server, workers })
}

impl JobtrackerHandle {
    /// The address the RPC server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and the background work, and writes every changed job.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        let served = self.server.await;
        for w in self.workers {
            let _ = w.await;
        }
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(JobtrackerError::Internal(format!("rpc server: {e}"))),
            Err(e) => Err(JobtrackerError::Internal(format!("rpc server task: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests;
