//! Starting and stopping the namenode: load the namespace, serve both gRPC
//! services on one server, run the background workers.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tusk_proto::dfs::client_protocol_server::ClientProtocolServer;
use tusk_proto::dfs::datanode_protocol_server::DatanodeProtocolServer;

use crate::checkpointer::{Checkpointer, DeadNodeMonitor};
use crate::config::NamenodeConfig;
use crate::lease_monitor::{LeaseMonitor, SafeModeMonitor};
use crate::error::{NamenodeError, Result};
use crate::namesystem::Namesystem;
use crate::replication::ReplicationMonitor;
use crate::service::client::ClientService;
use crate::service::datanode::DatanodeService;

/// A running namenode.
pub struct NamenodeHandle {
    addr: SocketAddr,
    cluster_id: String,
    ns: Arc<Namesystem>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::result::Result<(), tonic::transport::Error>>,
    workers: Vec<JoinHandle<()>>,
}

fn write_addr_file(path: &Path, addr: SocketAddr) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{addr}\n")).map_err(|e| NamenodeError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| NamenodeError::io(path, e))
}

/// Loads the namespace from `config.name_dir`, binds `config.rpc_addr` and
/// serves ClientProtocol and DatanodeProtocol until `shutdown`.
pub async fn start(config: NamenodeConfig) -> Result<NamenodeHandle> {
    config.validate()?;
    let rpc_addr = config.rpc_addr.clone();
    let addr_file = config.addr_file.clone();
    let ns = tokio::task::spawn_blocking(move || Namesystem::open(config))
        .await
        .map_err(|e| NamenodeError::Internal(format!("loading the namespace: {e}")))??;
    let ns = Arc::new(ns);
    let listener = tokio::net::TcpListener::bind(&rpc_addr).await.map_err(|e| NamenodeError::io(Path::new(&rpc_addr), e))?;
    let addr = listener.local_addr().map_err(|e| NamenodeError::io(Path::new(&rpc_addr), e))?;
    let (stop, stop_rx) = watch::channel(false);
    let incoming = TcpListenerStream::new(listener).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok::<_, std::io::Error>(s)
    });
    let mut shutdown_rx = stop_rx.clone();
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(ClientProtocolServer::new(ClientService { ns: ns.clone() }))
        .add_service(DatanodeProtocolServer::new(DatanodeService { ns: ns.clone() }))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown_rx.wait_for(|s| *s).await;
        });
    let server = tokio::spawn(server);
    let workers = vec![
        tokio::spawn(Checkpointer::new(ns.clone()).run(stop_rx.clone())),
        tokio::spawn(DeadNodeMonitor::new(ns.clone()).run(stop_rx.clone())),
        tokio::spawn(LeaseMonitor::new(ns.clone()).run(stop_rx.clone())),
        tokio::spawn(SafeModeMonitor::new(ns.clone()).run(stop_rx.clone())),
        tokio::spawn(ReplicationMonitor::new(ns.clone()).run(stop_rx.clone())),
    ];
    if let Some(f) = &addr_file {
        write_addr_file(f, addr)?;
    }
    tracing::info!("namenode {} serving on {addr}", ns.cluster_id);
    Ok(NamenodeHandle { addr, cluster_id: ns.cluster_id.clone(), ns, stop, server, workers })
}

impl NamenodeHandle {
    /// The address the RPC server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cluster id from the VERSION file.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Stops serving and the workers, syncs the edit log and writes a checkpoint.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        let served = self.server.await;
        for w in self.workers {
            let _ = w.await;
        }
        let ns = self.ns;
        let done = tokio::task::spawn_blocking(move || {
            let r = ns.checkpoint();
            if let Some(j) = &ns.journal {
                j.stop();
            }
            r
        })
        .await
        .map_err(|e| NamenodeError::Internal(format!("final checkpoint: {e}")))?;
        done?;
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NamenodeError::Internal(format!("rpc server: {e}"))),
            Err(e) => Err(NamenodeError::Internal(format!("rpc server task: {e}"))),
        }
    }
}
