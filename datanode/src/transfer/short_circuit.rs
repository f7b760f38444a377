//! Short-circuit local reads (HDFS `dfs.client.read.shortcircuit`): a Unix
//! domain socket on which a client running on this host asks for a finalized
//! replica and receives open, read-only file descriptors of its data and meta
//! files (SCM_RIGHTS). The client then reads the files itself and verifies
//! every chunk against the stored checksums; no block bytes cross a socket.
//!
//! One request per connection: an `OpRequest` frame carrying
//! `RequestShortCircuitFds`, answered by one `OpResponse` frame sent with a
//! single `sendmsg` together with the two descriptors (data first, meta
//! second). A refusal is an `OpResponse` with `ERROR_INVALID` and no
//! descriptors. Connections are served on their own OS threads, like the
//! TCP transfer server.

use std::fs::File;
use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use tokio::sync::oneshot;
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::dfs::op_request::Op;
use tusk_proto::dfs::{OpRequest, OpRequestShortCircuitFds, OpResponse, TransferStatus};
use tusk_proto::transfer::{read_message, write_message};

use super::{TransferContext, error_response};
use crate::error::DatanodeError;

/// Longest path a Unix socket address holds (`sun_path` is 108 bytes with
/// the terminating NUL).
pub(crate) const MAX_SOCKET_PATH: usize = 107;

/// The running accept loop of the domain socket.
pub(crate) struct DomainSocketServer {
    path: PathBuf,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl DomainSocketServer {
    /// Binds `path`, replacing a stale socket a previous run left behind (any
    /// other kind of file there is an error). The socket is made
    /// world-writable (0666, like HDFS's): who may connect is decided by the
    /// permissions of its directory, and a client only ever receives
    /// read-only descriptors of finalized replicas.
    pub(crate) fn bind(path: &Path) -> Result<tokio::net::UnixListener, DatanodeError> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                std::fs::remove_file(path).map_err(|e| DatanodeError::io(path, e))?;
            }
            Ok(_) => {
                return Err(DatanodeError::Config(format!(
                    "domain_socket_path: {} exists and is not a socket",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DatanodeError::io(path, e)),
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| DatanodeError::io(parent, e))?;
        }
        let bind_err = |source| DatanodeError::Bind { addr: path.display().to_string(), source };
        let listener = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(|e| DatanodeError::io(path, e))?;
        Ok(listener)
    }

    /// Starts accepting on `listener` (bound at `path`); each connection gets
    /// its own thread.
    pub(crate) fn spawn(listener: tokio::net::UnixListener, path: PathBuf, ctx: Arc<TransferContext>) -> DomainSocketServer {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => hand_off(&ctx, stream),
                        Err(e) => {
                            tracing::warn!("domain socket: accept failed: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    },
                }
            }
        });
        DomainSocketServer { path, stop, task }
    }

    /// Stops accepting and removes the socket file.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("{}: cannot remove the domain socket: {e}", self.path.display());
        }
    }
}

fn hand_off(ctx: &Arc<TransferContext>, stream: tokio::net::UnixStream) {
    let Some(slot) = ctx.xceivers.acquire(ctx.max_xceivers) else {
        tracing::warn!(max = ctx.max_xceivers, "refusing a short-circuit connection: too many xceivers");
        return;
    };
    let stream = match stream.into_std().and_then(|s| s.set_nonblocking(false).map(|_| s)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("short-circuit connection: {e}");
            return;
        }
    };
    let ctx = Arc::clone(ctx);
    let spawned = std::thread::Builder::new().name("short-circuit".into()).spawn(move || {
        let _slot = slot;
        serve_connection(&ctx, stream);
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start a thread for a short-circuit connection: {e}");
    }
}

/// Name of the peer in errors and logs (a domain socket peer has no address).
const PEER: &str = "short-circuit client";

fn serve_connection(ctx: &TransferContext, stream: UnixStream) {
    let setup = stream
        .set_read_timeout(Some(ctx.socket_timeout))
        .and_then(|_| stream.set_write_timeout(Some(ctx.socket_timeout)));
    if let Err(e) = setup {
        tracing::warn!("short-circuit connection: {e}");
        return;
    }
    let req: OpRequest = match read_message(&mut &stream) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("short-circuit connection closed before a request: {e}");
            return;
        }
    };
    let (resp, files) = match answer(ctx, req) {
        Ok((resp, files)) => (resp, Some(files)),
        Err(resp) => (resp, None),
    };
    if let Err(e) = send(&stream, &resp, files.as_ref()) {
        tracing::debug!("short-circuit answer not delivered: {e}");
    }
}

/// The response and the replica's (data, meta) files, or a refusal.
fn answer(ctx: &TransferContext, req: OpRequest) -> Result<(OpResponse, (File, File)), OpResponse> {
    let refuse = |msg: String| error_response(TransferStatus::ErrorInvalid, msg, &ctx.self_addr);
    if req.protocol_version != PROTOCOL_VERSION {
        return Err(refuse(format!(
            "data transfer protocol version {} is not supported (this datanode speaks {PROTOCOL_VERSION})",
            req.protocol_version
        )));
    }
    let op: OpRequestShortCircuitFds = match req.op {
        Some(Op::RequestShortCircuitFds(op)) => op,
        _ => return Err(refuse("the domain socket serves only short-circuit file descriptor requests".into())),
    };
    let Some(block) = op.block else {
        return Err(refuse("short-circuit request without a block".into()));
    };
    let replica = ctx.storage.open_replica(block.block_id, block.generation_stamp).map_err(|e| {
        tracing::debug!(client = %op.client_name, "short-circuit request refused: {e}");
        error_response(e.transfer_status(), e.to_string(), &ctx.self_addr)
    })?;
    let resp = OpResponse {
        status: TransferStatus::Success as i32,
        bytes_per_checksum: replica.bytes_per_checksum(),
        replica_length: replica.len(),
        ..Default::default()
    };
    tracing::debug!(block_id = block.block_id, client = %op.client_name, "short-circuit descriptors handed out");
    Ok((resp, replica.into_files()))
}

/// Sends the response frame, with the descriptors attached to its first byte.
fn send(stream: &UnixStream, resp: &OpResponse, files: Option<&(File, File)>) -> Result<(), DatanodeError> {
    let io = |e: std::io::Error| DatanodeError::transfer(PEER, e.into());
    let mut frame = Vec::new();
    write_message(&mut frame, resp).map_err(|e| DatanodeError::transfer(PEER, e))?;
    let Some((data, meta)) = files else {
        return (&*stream).write_all(&frame).map_err(io);
    };
    let fds: [RawFd; 2] = [data.as_raw_fd(), meta.as_raw_fd()];
    let sent = send_with_fds(stream, &frame, &fds).map_err(io)?;
    // The frame is small, but a stream socket may still take it in parts.
    (&*stream).write_all(&frame[sent..]).map_err(io)
}

fn send_with_fds(stream: &UnixStream, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<usize> {
    let iov = [IoSlice::new(bytes)];
    let cmsgs = [ControlMessage::ScmRights(fds)];
    loop {
        match sendmsg::<()>(stream.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
