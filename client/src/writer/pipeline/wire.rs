//! The sending side of a pipeline, shared by the writer's packet sends and
//! the pipeline's heartbeat task (HDFS `DataStreamer` heartbeats).
//!
//! Every datanode of a pipeline gives up on a writer that sends nothing for
//! its socket timeout. An application may well pause longer than that (a
//! slow pipe into `tusk dfs put -`, a record a minute), so while a block's
//! pipeline is open and nothing was sent for half the socket timeout (at
//! most [`MAX_HEARTBEAT_INTERVAL`]), the heartbeat task sends a heartbeat
//! packet (`HEARTBEAT_SEQNO`, no data). The datanodes forward and ack it
//! like any packet and write nothing.
//!
//! Packets and heartbeats go through [`Wire::send`] under one lock, which
//! announces each seqno to the ack reader and writes the packet in the same
//! order, so acks are matched in wire order. Heartbeats take no window slot
//! and never enter the in-flight queue of data packets: pipeline recovery
//! never resends them and they never count as acknowledged bytes.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tusk_proto::dfs::PacketHeader;
use tusk_proto::transfer::{HEARTBEAT_SEQNO, heartbeat_header, is_heartbeat, write_packet_async};

/// Longest wait between heartbeats, whatever the socket timeout (HDFS sends
/// them at half the socket timeout; 30 s keeps a pipeline alive for
/// datanodes with the default 60 s timeout).
pub(super) const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// How long a pipeline may stay silent before a heartbeat: half the socket
/// timeout, at most [`MAX_HEARTBEAT_INTERVAL`].
pub(super) fn heartbeat_interval(socket_timeout: Duration) -> Duration {
    (socket_timeout / 2).clamp(Duration::from_millis(1), MAX_HEARTBEAT_INTERVAL)
}

/// `packet N`, or `heartbeat`, for messages.
pub(super) fn packet_name(seqno: u64) -> String {
    if seqno == HEARTBEAT_SEQNO { "heartbeat".to_string() } else { format!("packet {seqno}") }
}

/// The socket's write half with what goes with it.
pub(super) struct Wire {
    out: OwnedWriteHalf,
    /// Seqnos announced to the ack reader, in wire order; `None` once no
    /// more packets will be sent.
    to_ack: Option<mpsc::UnboundedSender<u64>>,
    /// When a packet or heartbeat was last sent.
    last_sent: Instant,
    /// Bytes of the block sent so far (a heartbeat's `offset_in_block`).
    sent_bytes: u64,
    /// The block's last packet was sent: no heartbeat may follow it.
    ended: bool,
    /// Why the heartbeat task stopped sending, if it failed.
    heartbeat_error: Option<String>,
}

impl Wire {
    /// A wire for a pipeline whose block already holds `sent_bytes` bytes.
    pub(super) fn new(out: OwnedWriteHalf, to_ack: mpsc::UnboundedSender<u64>, sent_bytes: u64) -> Wire {
        Wire { out, to_ack: Some(to_ack), last_sent: Instant::now(), sent_bytes, ended: false, heartbeat_error: None }
    }

    /// Announces `header.seqno` to the ack reader and writes the packet.
    /// The error says what failed.
    pub(super) async fn send(
        &mut self,
        header: &PacketHeader,
        checksums: &[u8],
        data: &[u8],
        io_timeout: Duration,
    ) -> Result<(), String> {
        let what = packet_name(header.seqno);
        let Some(to_ack) = &self.to_ack else {
            return Err(format!("sending {what}: the block's packets were all sent already"));
        };
        if to_ack.send(header.seqno).is_err() {
            return Err("the ack reader stopped".to_string());
        }
        match timeout(io_timeout, write_packet_async(&mut self.out, header, checksums, data)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("sending {what}: {e}")),
            Err(_) => return Err(format!("sending {what} timed out after {io_timeout:?}")),
        }
        self.last_sent = Instant::now();
        if !is_heartbeat(header) {
            self.sent_bytes = header.offset_in_block + u64::from(header.data_len);
        }
        self.ended |= header.last_packet;
        Ok(())
    }

    /// No more packets: the ack reader stops after the announced ones, and
    /// no heartbeat is sent any more.
    pub(super) async fn close(&mut self) {
        let _ = self.out.flush().await;
        self.to_ack = None;
        self.ended = true;
    }

    /// Why heartbeats stopped, if sending one failed.
    pub(super) fn heartbeat_error(&self) -> Option<&str> {
        self.heartbeat_error.as_deref()
    }
}

/// Starts the heartbeat task of a pipeline: it ends when the block's last
/// packet was sent, when the pipeline failed (`window` closed), or when a
/// heartbeat cannot be sent (then it closes `window`, so the writer's next
/// call sees the failure). A heartbeat whose ack is bad or late fails the
/// ack reader like any packet's.
pub(super) fn spawn_heartbeats(
    wire: Arc<Mutex<Wire>>,
    window: Arc<Semaphore>,
    interval: Duration,
    io_timeout: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let due = wire.lock().await.last_sent + interval;
            tokio::time::sleep_until(due).await;
            if window.is_closed() {
                return;
            }
            let mut w = wire.lock().await;
            if w.ended || w.to_ack.is_none() {
                return;
            }
            if w.last_sent.elapsed() < interval {
                // A packet went out meanwhile.
                continue;
            }
            let header = heartbeat_header(w.sent_bytes);
            if let Err(why) = w.send(&header, &[], &[], io_timeout).await {
                tracing::debug!("pipeline heartbeat failed: {why}");
                w.heartbeat_error = Some(why);
                window.close();
                return;
            }
            tracing::trace!(offset = header.offset_in_block, "pipeline heartbeat sent");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_come_at_half_the_socket_timeout_capped_at_30_s() {
        assert_eq!(heartbeat_interval(Duration::from_secs(60)), Duration::from_secs(30));
        assert_eq!(heartbeat_interval(Duration::from_secs(600)), Duration::from_secs(30));
        assert_eq!(heartbeat_interval(Duration::from_millis(300)), Duration::from_millis(150));
        assert_eq!(heartbeat_interval(Duration::ZERO), Duration::from_millis(1));
    }

    #[test]
    fn heartbeats_are_named_as_such() {
        assert_eq!(packet_name(7), "packet 7");
        assert_eq!(packet_name(HEARTBEAT_SEQNO), "heartbeat");
    }
}
