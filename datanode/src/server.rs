//! Starting and stopping a datanode: storage, transfer server, namenode
//! actor, block scanner.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tusk_proto::dfs::DatanodeId;

use crate::config::DatanodeConfig;
use crate::error::DatanodeError;
use crate::nn_actor::{NamenodeActor, NamenodeClient, NamenodeReporter};
use crate::storage::Storage;
use crate::storage::scanner::BlockScanner;
use crate::transfer::short_circuit::DomainSocketServer;
use crate::transfer::{TransferContext, TransferServer, Xceivers};

/// A running datanode.
pub struct DatanodeHandle {
    transfer_addr: SocketAddr,
    uuid: String,
    server: TransferServer,
    domain_socket: Option<DomainSocketServer>,
    scanner: Option<BlockScanner>,
    shutdown: watch::Sender<bool>,
    actor: tokio::task::JoinHandle<()>,
    fatal: Option<oneshot::Receiver<DatanodeError>>,
}

/// Opens the data directories, starts the transfer server and the namenode
/// actor. Returns once the transfer server listens; registration with the
/// namenode goes on in the background (see [`DatanodeHandle::fatal_error`]).
pub async fn start(config: DatanodeConfig) -> Result<DatanodeHandle, DatanodeError> {
    config.validate()?;
    let dirs = config.data_dirs.clone();
    let (reserved, sync) = (config.reserved_bytes, config.sync_on_finalize);
    let storage = tokio::task::spawn_blocking(move || Storage::open(&dirs, reserved, sync))
        .await
        .map_err(|e| DatanodeError::Config(format!("opening the data directories: {e}")))??;
    let storage = Arc::new(storage);
    let uuid = storage.datanode_uuid();

    let listener = TransferServer::bind(&config.transfer_addr).await?;
    let bound = listener
        .local_addr()
        .map_err(|source| DatanodeError::Bind { addr: config.transfer_addr.clone(), source })?;
    let ip = advertised_ip(&config, bound.ip()).await?;
    let transfer_addr = SocketAddr::new(ip, bound.port());

    let client = NamenodeClient::new(&config.namenode_addr)?;
    let xceivers = Arc::new(Xceivers::default());
    let socket_timeout = Duration::from_millis(config.socket_timeout_ms);
    let sink = NamenodeReporter {
        runtime: tokio::runtime::Handle::current(),
        client: client.clone(),
        uuid: uuid.clone(),
    };
    let ctx = TransferContext {
        storage: Arc::clone(&storage),
        sink: Arc::new(sink),
        self_addr: transfer_addr.to_string(),
        socket_timeout,
        max_xceivers: config.max_xceivers,
        xceivers: Arc::clone(&xceivers),
    };
    let ctx = Arc::new(ctx);
    let server = TransferServer::spawn(listener, Arc::clone(&ctx));
    let domain_socket = match start_domain_socket(&config, &ctx) {
        Ok(d) => d,
        Err(e) => {
            server.stop().await;
            return Err(e);
        }
    };
    let socket_path = domain_socket.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
    let domain_socket = domain_socket.map(|(d, _)| d);
    if let Some(file) = &config.addr_file
        && let Err(e) = write_addr_file(file, transfer_addr)
    {
        server.stop().await;
        if let Some(d) = domain_socket {
            d.stop().await;
        }
        return Err(e);
    }
    tracing::info!(addr = %transfer_addr, uuid = %uuid, domain_socket = %socket_path, "transfer server listening");
    let period = Duration::from_millis(config.scan_period_ms);
    let scanner = match BlockScanner::start(Arc::clone(&storage), config.scan_bytes_per_sec, period) {
        Ok(s) => s,
        Err(e) => {
            server.stop().await;
            if let Some(d) = domain_socket {
                d.stop().await;
            }
            return Err(e);
        }
    };

    let actor = NamenodeActor {
        storage,
        client,
        id: DatanodeId {
            datanode_uuid: uuid.clone(),
            transfer_addr: transfer_addr.to_string(),
            host: ip.to_string(),
            domain_socket_path: socket_path,
            ..Default::default()
        },
        xceivers,
        socket_timeout,
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (fatal_tx, fatal_rx) = oneshot::channel();
    let actor = actor.spawn(shutdown_rx, fatal_tx);
    Ok(DatanodeHandle { transfer_addr, uuid, server, domain_socket, scanner, shutdown, actor, fatal: Some(fatal_rx) })
}

/// Binds the short-circuit domain socket when configured; returns the
/// server and the absolute path advertised to the namenode.
fn start_domain_socket(
    config: &DatanodeConfig,
    ctx: &Arc<TransferContext>,
) -> Result<Option<(DomainSocketServer, String)>, DatanodeError> {
    let Some(path) = &config.domain_socket_path else {
        return Ok(None);
    };
    let abs = std::path::absolute(path).map_err(|e| DatanodeError::io(path, e))?;
    let advertised = abs
        .to_str()
        .ok_or_else(|| DatanodeError::Config(format!("domain_socket_path: {} is not UTF-8", abs.display())))?
        .to_string();
    let listener = DomainSocketServer::bind(&abs)?;
    Ok(Some((DomainSocketServer::spawn(listener, abs, Arc::clone(ctx)), advertised)))
}

impl DatanodeHandle {
    /// The advertised `ip:port` of the transfer server (what the namenode
    /// hands to clients).
    pub fn transfer_addr(&self) -> SocketAddr {
        self.transfer_addr
    }

    /// Persistent identity of this datanode (from its VERSION files).
    pub fn datanode_uuid(&self) -> &str {
        &self.uuid
    }

    /// Stops accepting connections, the block scanner and the namenode
    /// actor. Transfers in progress finish (or fail) on their own threads.
    pub async fn shutdown(self) -> Result<(), DatanodeError> {
        let _ = self.shutdown.send(true);
        self.server.stop().await;
        if let Some(d) = self.domain_socket {
            d.stop().await;
        }
        if let Some(scanner) = self.scanner {
            let _ = tokio::task::spawn_blocking(move || scanner.stop()).await;
        }
        let mut actor = self.actor;
        if tokio::time::timeout(Duration::from_secs(2), &mut actor).await.is_err() {
            actor.abort();
        }
        tracing::info!(uuid = %self.uuid, "datanode stopped");
        Ok(())
    }

    /// Resolves when the datanode meets an error it cannot continue after
    /// (the namenode refused it: other protocol version or cluster id).
    /// Never resolves otherwise.
    pub async fn fatal_error(&mut self) -> DatanodeError {
        if let Some(rx) = self.fatal.as_mut()
            && let Ok(e) = rx.await
        {
            self.fatal = None;
            return e;
        }
        self.fatal = None;
        std::future::pending().await
    }
}

/// The IP announced for the transfer server: `advertised_host` (resolved),
/// else the bind IP if specific, else the local IP that routes to the
/// namenode, else 127.0.0.1.
async fn advertised_ip(config: &DatanodeConfig, bind_ip: IpAddr) -> Result<IpAddr, DatanodeError> {
    if let Some(host) = &config.advertised_host {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ip);
        }
        let mut addrs = tokio::net::lookup_host((host.as_str(), 0))
            .await
            .map_err(|e| DatanodeError::Config(format!("advertised_host: cannot resolve '{host}': {e}")))?;
        return addrs
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| DatanodeError::Config(format!("advertised_host: '{host}' resolves to no address")));
    }
    if !bind_ip.is_unspecified() {
        return Ok(bind_ip);
    }
    Ok(route_to(&config.namenode_addr).await.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)))
}

/// The local IP the kernel would use to reach `addr` (a UDP connect sends nothing).
async fn route_to(addr: &str) -> Option<IpAddr> {
    let target = tokio::net::lookup_host(addr).await.ok()?.next()?;
    let local: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { "[::]:0".parse().ok()? };
    let sock = std::net::UdpSocket::bind(local).ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified())
}

fn write_addr_file(file: &Path, addr: SocketAddr) -> Result<(), DatanodeError> {
    tusk_common::write_addr_file(file, &addr).map_err(|(path, e)| DatanodeError::io(&path, e))
}

#[cfg(test)]
mod tests;
