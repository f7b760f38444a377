//! Asking a datanode for one op on its transfer port: connect, send the
//! `OpRequest`, read the `OpResponse` (then, for reads and writes, packets
//! follow on the same socket).

use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::dfs::{OpRequest, OpResponse, TransferStatus, op_request};
use tusk_proto::transfer::{read_message_async, write_message_async};

/// Connects to `addr` (within `connect_timeout`), sends `op` and reads the
/// answer (within `answer_timeout`). The error says which step failed; the
/// answer's status is left to the caller.
pub(crate) async fn request_op(
    addr: &str,
    op: op_request::Op,
    connect_timeout: Duration,
    answer_timeout: Duration,
) -> Result<(TcpStream, OpResponse), String> {
    let mut stream = match timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
        Err(_) => return Err(format!("connect timed out after {connect_timeout:?}")),
    };
    let _ = stream.set_nodelay(true);
    let req = OpRequest { protocol_version: PROTOCOL_VERSION, op: Some(op) };
    let exchange = async {
        write_message_async(&mut stream, &req).await?;
        read_message_async::<_, OpResponse>(&mut stream).await
    };
    match timeout(answer_timeout, exchange).await {
        Ok(Ok(resp)) => Ok((stream, resp)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {answer_timeout:?}")),
    }
}

/// The name of a wire `TransferStatus`, for messages.
pub(crate) fn status_name(status: i32) -> &'static str {
    TransferStatus::try_from(status).map(|s| s.as_str_name()).unwrap_or("UNKNOWN")
}
