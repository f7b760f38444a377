//! The data-transfer server: a tokio task accepts connections and hands each
//! to its own OS thread ("xceiver") that speaks the blocking framing of
//! `tusk_proto::transfer`: one `OpRequest`, one `OpResponse`, then packets
//! (see [`write`] and [`read`]). [`push`] is the sending side used to copy a
//! replica to other datanodes; [`recovery`] serves the single-response ops of
//! pipeline and block recovery.

pub(crate) mod push;
mod read;
pub(crate) mod recovery;
pub(crate) mod short_circuit;
mod write;

use std::io::{BufReader, BufWriter};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::dfs::op_request::Op;
use tusk_proto::dfs::{OpRequest, OpResponse, ReplicaReport, TransferStatus};
use tusk_proto::transfer::{FrameError, read_message, write_message};

use crate::error::DatanodeError;
use crate::storage::Storage;

/// Buffer size of socket readers and writers (two packets).
pub(crate) const SOCKET_BUFFER: usize = 128 * 1024;

/// Where a finalized replica is announced before the last packet is acked.
/// The namenode actor implements it with a synchronous incremental block
/// report; tests use a recorder.
pub(crate) trait BlockReceivedSink: Send + Sync + 'static {
    /// Returns once the namenode knows about `replica`.
    fn block_received(&self, replica: ReplicaReport) -> Result<(), DatanodeError>;
}

/// Counts live transfer connections (reported in heartbeats).
#[derive(Debug, Default)]
pub(crate) struct Xceivers(AtomicU32);

impl Xceivers {
    pub(crate) fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Takes a slot unless `max` are in use.
    fn acquire(self: &Arc<Self>, max: u32) -> Option<XceiverSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| XceiverSlot(Arc::clone(self)))
    }
}

/// One live connection; released on drop.
struct XceiverSlot(Arc<Xceivers>);

impl Drop for XceiverSlot {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What every connection thread needs.
pub(crate) struct TransferContext {
    pub storage: Arc<Storage>,
    pub sink: Arc<dyn BlockReceivedSink>,
    /// Advertised `ip:port` of this server (named as `first_bad_node`).
    pub self_addr: String,
    pub socket_timeout: Duration,
    pub max_xceivers: u32,
    pub xceivers: Arc<Xceivers>,
}

/// The running accept loop.
pub(crate) struct TransferServer {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl TransferServer {
    /// Binds `addr` (port 0 allowed).
    pub(crate) async fn bind(addr: &str) -> Result<tokio::net::TcpListener, DatanodeError> {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DatanodeError::Bind { addr: addr.to_string(), source })
    }

    /// Starts accepting on `listener`; each connection gets its own thread.
    pub(crate) fn spawn(listener: tokio::net::TcpListener, ctx: Arc<TransferContext>) -> TransferServer {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => hand_off(&ctx, stream, peer),
                        Err(e) => {
                            tracing::warn!("transfer server: accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            }
            tracing::debug!("transfer server stopped accepting");
        });
        TransferServer { stop, task }
    }

    /// Stops accepting; connections in progress finish on their own threads.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn hand_off(ctx: &Arc<TransferContext>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let Some(slot) = ctx.xceivers.acquire(ctx.max_xceivers) else {
        tracing::warn!(%peer, max = ctx.max_xceivers, "refusing a transfer connection: too many xceivers");
        return;
    };
    let stream = match stream.into_std().and_then(|s| s.set_nonblocking(false).map(|_| s)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, "transfer connection: {e}");
            return;
        }
    };
    let ctx = Arc::clone(ctx);
    let spawned = std::thread::Builder::new().name(format!("xceiver-{peer}")).spawn(move || {
        let _slot = slot;
        serve_connection(&ctx, stream, peer);
    });
    if let Err(e) = spawned {
        tracing::error!(%peer, "cannot start a thread for a transfer connection: {e}");
    }
}

/// Sets no-delay and the read/write timeouts on a transfer socket.
pub(crate) fn configure(stream: &TcpStream, timeout: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))
}

/// Buffered halves of a socket.
pub(crate) fn split(stream: TcpStream) -> std::io::Result<(BufReader<TcpStream>, BufWriter<TcpStream>)> {
    let r = stream.try_clone()?;
    Ok((BufReader::with_capacity(SOCKET_BUFFER, r), BufWriter::with_capacity(SOCKET_BUFFER, stream)))
}

/// Connects to a peer's `host:port` transfer address.
pub(crate) fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, DatanodeError> {
    let io = |source: std::io::Error| DatanodeError::transfer(addr, FrameError::Io(source));
    let mut last = None;
    for sa in addr.to_socket_addrs().map_err(io)? {
        match TcpStream::connect_timeout(&sa, timeout) {
            Ok(s) => {
                configure(&s, timeout).map_err(io)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(io(last.unwrap_or_else(|| std::io::Error::other("address resolves to nothing"))))
}

/// Sends an `OpResponse` and flushes.
pub(crate) fn respond(out: &mut BufWriter<TcpStream>, resp: &OpResponse, peer: &str) -> Result<(), DatanodeError> {
    use std::io::Write;
    write_message(out, resp).map_err(|e| DatanodeError::transfer(peer, e))?;
    out.flush().map_err(|e| DatanodeError::transfer(peer, e.into()))
}

/// Sends `op` to the peer at `addr` on an open connection and reads its
/// `OpResponse`.
pub(crate) fn request(
    input: &mut BufReader<TcpStream>,
    output: &mut BufWriter<TcpStream>,
    addr: &str,
    op: Op,
) -> Result<OpResponse, DatanodeError> {
    use std::io::Write;
    let req = OpRequest { protocol_version: PROTOCOL_VERSION, op: Some(op) };
    write_message(output, &req).map_err(|e| DatanodeError::transfer(addr, e))?;
    output.flush().map_err(|e| DatanodeError::transfer(addr, e.into()))?;
    read_message(input).map_err(|e| DatanodeError::transfer(addr, e))
}

/// The message of an error of this datanode (`me`), naming it.
pub(crate) fn own_message(me: &str, e: &DatanodeError) -> String {
    format!("datanode {me}: {e}")
}

/// An error response naming `bad_node`.
pub(crate) fn error_response(status: TransferStatus, message: String, bad_node: &str) -> OpResponse {
    OpResponse { status: status as i32, message, first_bad_node: bad_node.to_string(), ..Default::default() }
}

/// True for a peer that simply went away (reads may stop early).
pub(crate) fn is_hangup(e: &DatanodeError) -> bool {
    use std::io::ErrorKind::*;
    match e {
        DatanodeError::Transfer { source: FrameError::Io(io), .. } => {
            matches!(io.kind(), BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof)
        }
        _ => false,
    }
}

fn serve_connection(ctx: &TransferContext, stream: TcpStream, peer: SocketAddr) {
    let peer_s = peer.to_string();
    let halves = configure(&stream, ctx.socket_timeout).and_then(|_| split(stream));
    let (mut input, mut output) = match halves {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(peer = %peer_s, "transfer connection: {e}");
            return;
        }
    };
    let req: OpRequest = match read_message(&mut input) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(peer = %peer_s, "transfer connection closed before a request: {e}");
            return;
        }
    };
    let result = if req.protocol_version != PROTOCOL_VERSION {
        let msg = format!(
            "data transfer protocol version {} is not supported (this datanode speaks {PROTOCOL_VERSION})",
            req.protocol_version
        );
        respond(&mut output, &error_response(TransferStatus::ErrorInvalid, msg, &ctx.self_addr), &peer_s)
    } else {
        match req.op {
            Some(Op::WriteBlock(op)) => write::serve(ctx, &peer_s, input, output, op),
            Some(Op::ReadBlock(op)) => read::serve(ctx, &peer_s, &mut output, op),
            Some(Op::RequestShortCircuitFds(_)) => {
                let msg = "short-circuit file descriptors are only served on the datanode's domain socket".to_string();
                respond(&mut output, &error_response(TransferStatus::ErrorInvalid, msg, &ctx.self_addr), &peer_s)
            }
            Some(Op::TransferRbw(op)) => recovery::serve_transfer_rbw(ctx, &peer_s, &mut output, op),
            Some(Op::InitReplicaRecovery(op)) => recovery::serve_init(ctx, &peer_s, &mut output, op),
            Some(Op::UpdateReplicaUnderRecovery(op)) => recovery::serve_update(ctx, &peer_s, &mut output, op),
            None => {
                let msg = "request without an operation".to_string();
                respond(&mut output, &error_response(TransferStatus::ErrorInvalid, msg, &ctx.self_addr), &peer_s)
            }
        }
    };
    match result {
        Ok(()) => {}
        Err(e) if is_hangup(&e) => tracing::debug!(peer = %peer_s, "transfer peer hung up: {e}"),
        Err(e) => tracing::warn!(peer = %peer_s, "transfer failed: {e}"),
    }
}

#[cfg(test)]
mod tests;
