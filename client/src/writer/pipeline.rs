//! One block's write pipeline: client → dn1 → dn2 → dn3.
//!
//! The writer sends packets on the socket's write half; a spawned ack reader
//! owns the read half and consumes [`PipelineAck`]s in order. Every packet
//! sits in a shared in-flight queue from the moment it is handed to
//! [`Pipeline::send`] until the whole pipeline acknowledged it, and the ack
//! reader records how many bytes of the block were acknowledged. A semaphore
//! bounds how many packets are in flight. A failure closes the semaphore, so
//! the next send or finish notices it, and hands back the packets that were
//! never acknowledged with the acknowledged length: what pipeline recovery
//! (`recovery.rs`) resends to the surviving datanodes.
//!
//! While the pipeline is open a heartbeat task ([`wire`]) sends a heartbeat
//! packet whenever nothing was sent for half the socket timeout, so an idle
//! writer keeps its datanodes; the ack reader matches their acks in order
//! and drops them (no data, no window slot, nothing to resend).

mod wire;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::BufReader;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tusk_proto::dfs::{
    DatanodeId, ExtendedBlock, OpWriteBlock, PipelineAck, TransferStatus, op_request,
    op_write_block,
};
use tusk_proto::transfer::{HEARTBEAT_SEQNO, read_message_async};

use super::packet::OutPacket;
use crate::datanode_op::{request_op, status_name};
use wire::{Wire, heartbeat_interval, packet_name, spawn_heartbeats};

/// Why a pipeline stopped, and which datanode is to blame when known.
#[derive(Debug)]
pub(crate) struct PipelineFailure {
    /// Transfer address of the failed datanode.
    pub(crate) bad_node: Option<String>,
    pub(crate) message: String,
    /// Packets handed to the pipeline but never acknowledged, in order.
    pub(crate) unacked: Vec<OutPacket>,
    /// Bytes of the block acknowledged by every datanode (the end of the
    /// last acknowledged packet; a recovery pipeline starts at its
    /// recovery length).
    pub(crate) acked_bytes: u64,
}

impl PipelineFailure {
    pub(crate) fn at(node: &str, message: impl Into<String>) -> PipelineFailure {
        PipelineFailure { bad_node: Some(node.to_string()), message: message.into(), unacked: Vec::new(), acked_bytes: 0 }
    }
}

impl std::fmt::Display for PipelineFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.bad_node {
            Some(n) => write!(f, "datanode {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

type AckResult = Result<(), PipelineFailure>;

/// Extra wait per datanode of a pipeline (HDFS `READ_TIMEOUT_EXTENSION`).
/// Each datanode waits on its downstream this much longer per node after
/// it, and the client longest, so the node next to a hung one gives up
/// first and names it; the client would otherwise blame the first node.
const TIMEOUT_EXTENSION: Duration = Duration::from_secs(5);

/// How the datanodes set up their replicas for a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// A new, empty block.
    Create,
    /// Pipeline recovery: every datanode reopens its replica, keeps its first
    /// `acked_bytes` bytes and takes the block's (new) generation stamp.
    Recovery { acked_bytes: u64 },
}

/// Packets waiting for their ack, and what is acknowledged so far. Shared by
/// the writer (pushes) and the ack reader (pops).
#[derive(Debug, Default)]
struct InFlight {
    packets: VecDeque<OutPacket>,
    acked_bytes: u64,
}

/// An open pipeline for one block.
pub(crate) struct Pipeline {
    /// Transfer addresses, in pipeline order.
    targets: Vec<String>,
    /// The write half, shared with the heartbeat task.
    wire: Arc<tokio::sync::Mutex<Wire>>,
    window: Arc<Semaphore>,
    in_flight: Arc<Mutex<InFlight>>,
    acker: Option<JoinHandle<AckResult>>,
    heartbeats: Option<JoinHandle<()>>,
    timeout: Duration,
}

fn lock(m: &Mutex<InFlight>) -> MutexGuard<'_, InFlight> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pipeline {
    /// Connects to the first target and sets up the pipeline through all of
    /// `targets`; the error names the datanode that refused or failed.
    pub(crate) async fn open(
        block: &ExtendedBlock,
        targets: &[DatanodeId],
        client_name: &str,
        io_timeout: Duration,
        window: usize,
        stage: Stage,
    ) -> Result<Pipeline, PipelineFailure> {
        let (wire_stage, acked_bytes) = match stage {
            Stage::Create => (op_write_block::Stage::Create, 0),
            Stage::Recovery { acked_bytes } => (op_write_block::Stage::PipelineRecovery, acked_bytes),
        };
        let first = targets.first().ok_or_else(|| PipelineFailure {
            bad_node: None,
            message: "no datanode to write the block to".into(),
            unacked: Vec::new(),
            acked_bytes,
        })?;
        let addr = first.transfer_addr.as_str();
        let at = |message: String| PipelineFailure { acked_bytes, ..PipelineFailure::at(addr, message) };
        let beat = heartbeat_interval(io_timeout);
        let connect_timeout = io_timeout;
        // Every later wait covers the whole pipeline.
        let io_timeout = io_timeout + TIMEOUT_EXTENSION * targets.len().min(64) as u32;
        let op = op_request::Op::WriteBlock(OpWriteBlock {
            block: Some(ExtendedBlock { num_bytes: acked_bytes, ..*block }),
            downstream: targets[1..].to_vec(),
            client_name: client_name.to_string(),
            stage: wire_stage as i32,
            recovery_length: acked_bytes,
        });
        let (stream, resp) = match request_op(addr, op, connect_timeout, io_timeout).await {
            Ok(answered) => answered,
            Err(why) => return Err(at(format!("pipeline setup: {why}"))),
        };
        if resp.status != TransferStatus::Success as i32 {
            let bad = if resp.first_bad_node.is_empty() { addr.to_string() } else { resp.first_bad_node };
            return Err(PipelineFailure {
                bad_node: Some(bad),
                message: format!("pipeline setup refused ({}): {}", status_name(resp.status), resp.message),
                unacked: Vec::new(),
                acked_bytes,
            });
        }
        let (rd, out) = stream.into_split();
        let window = Arc::new(Semaphore::new(window.max(1)));
        let in_flight = Arc::new(Mutex::new(InFlight { packets: VecDeque::new(), acked_bytes }));
        let (to_ack, rx) = mpsc::unbounded_channel();
        let targets: Vec<String> = targets.iter().map(|t| t.transfer_addr.clone()).collect();
        let acker = AckReader { window: window.clone(), in_flight: in_flight.clone(), targets: targets.clone(), io_timeout };
        let acker = tokio::spawn(acker.run(BufReader::new(rd), rx));
        let wire = Arc::new(tokio::sync::Mutex::new(Wire::new(out, to_ack, acked_bytes)));
        let heartbeats = spawn_heartbeats(wire.clone(), window.clone(), beat, io_timeout);
        Ok(Pipeline {
            targets,
            wire,
            window,
            in_flight,
            acker: Some(acker),
            heartbeats: Some(heartbeats),
            timeout: io_timeout,
        })
    }

    /// Sends one packet, waiting while the window is full. An earlier ack
    /// failure surfaces here; the failure's `unacked` includes `packet`.
    pub(crate) async fn send(&mut self, packet: OutPacket) -> Result<(), PipelineFailure> {
        lock(&self.in_flight).packets.push_back(packet.clone());
        let acquired = match timeout(self.timeout, self.window.acquire()).await {
            Ok(Ok(permit)) => {
                permit.forget();
                Ok(())
            }
            Ok(Err(_closed)) => Err("the pipeline failed".to_string()),
            Err(_) => Err(format!("no ack within {:?} with the window full", self.timeout)),
        };
        if let Err(why) = acquired {
            return Err(self.failure(why).await);
        }
        let sent = self.wire.lock().await.send(&packet.header, &packet.checksums, &packet.data, self.timeout).await;
        match sent {
            Ok(()) => Ok(()),
            Err(why) => Err(self.failure(why).await),
        }
    }

    /// Sends the block's empty last packet and waits until every packet is
    /// acknowledged (then every datanode has finalized its replica).
    pub(crate) async fn finish(&mut self, last: OutPacket) -> Result<(), PipelineFailure> {
        self.send(last).await?;
        self.wait_acked().await
    }

    /// Waits until every packet sent, the block's last packet among them, is
    /// acknowledged. Used by [`finish`](Self::finish), and after a recovery
    /// that resent the last packet.
    pub(crate) async fn wait_acked(&mut self) -> Result<(), PipelineFailure> {
        // No more packets: the ack reader stops after the queued ones, with
        // an error if the last packet was not among them; no heartbeats.
        self.stop_heartbeats();
        self.wire.lock().await.close().await;
        let Some(acker) = self.acker.take() else {
            return Err(self.with_unacked(self.first_node_failure("the ack reader is gone")));
        };
        match acker.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(f)) => Err(self.with_unacked(f)),
            Err(e) => Err(self.with_unacked(self.first_node_failure(format!("ack reader failed: {e}")))),
        }
    }

    fn first_node_failure(&self, message: impl Into<String>) -> PipelineFailure {
        PipelineFailure::at(self.targets.first().map(String::as_str).unwrap_or("?"), message)
    }

    /// `f` with the packets still unacknowledged and the acknowledged length.
    /// Call only once the ack reader has stopped.
    fn with_unacked(&self, mut f: PipelineFailure) -> PipelineFailure {
        let mut st = lock(&self.in_flight);
        f.unacked = st.packets.drain(..).collect();
        f.acked_bytes = st.acked_bytes;
        f
    }

    /// The ack reader's account of a failure if it has one (it usually knows
    /// which datanode failed), else `fallback` blamed on the first datanode.
    async fn failure(&mut self, fallback: impl Into<String>) -> PipelineFailure {
        let mut fallback = fallback.into();
        self.window.close();
        self.stop_heartbeats();
        if let Some(why) = self.wire.lock().await.heartbeat_error() {
            fallback = format!("{fallback} (after a failed heartbeat: {why})");
        }
        let mut found = None;
        if let Some(mut acker) = self.acker.take() {
            // A broken socket makes the reader fail promptly too; do not wait long.
            let grace = self.timeout.min(Duration::from_secs(5));
            match timeout(grace, &mut acker).await {
                Ok(Ok(Err(f))) => found = Some(f),
                Ok(_) => {}
                Err(elapsed) => {
                    tracing::debug!("ack reader did not finish: {elapsed}");
                    acker.abort();
                    // Once it has stopped, the in-flight queue is final.
                    let _ = acker.await;
                }
            }
        }
        let f = found.unwrap_or_else(|| self.first_node_failure(fallback));
        self.with_unacked(f)
    }

    fn stop_heartbeats(&mut self) {
        if let Some(task) = self.heartbeats.take() {
            task.abort();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop_heartbeats();
        if let Some(acker) = self.acker.take() {
            acker.abort();
        }
    }
}

/// The ack reader: matches each ack to the oldest unacknowledged packet.
struct AckReader {
    window: Arc<Semaphore>,
    in_flight: Arc<Mutex<InFlight>>,
    targets: Vec<String>,
    io_timeout: Duration,
}

impl AckReader {
    async fn run(self, mut rd: BufReader<OwnedReadHalf>, mut rx: mpsc::UnboundedReceiver<u64>) -> AckResult {
        let r = self.read_acks(&mut rd, &mut rx).await;
        if r.is_err() {
            self.window.close();
        }
        r
    }

    async fn read_acks(&self, rd: &mut BufReader<OwnedReadHalf>, rx: &mut mpsc::UnboundedReceiver<u64>) -> AckResult {
        let first = self.targets.first().map(String::as_str).unwrap_or("?");
        let io_timeout = self.io_timeout;
        loop {
            // Wait for a packet before reading, so an idle writer does not time out.
            let Some(seqno) = rx.recv().await else {
                return Err(PipelineFailure::at(first, "the block ended before its last packet was sent"));
            };
            let what = packet_name(seqno);
            let ack = match timeout(io_timeout, read_message_async::<_, PipelineAck>(rd)).await {
                Ok(Ok(ack)) => ack,
                Ok(Err(e)) => return Err(PipelineFailure::at(first, format!("reading the ack of {what}: {e}"))),
                Err(_) => return Err(PipelineFailure::at(first, format!("no ack for {what} within {io_timeout:?}"))),
            };
            if ack.seqno != seqno {
                let got = packet_name(ack.seqno);
                return Err(PipelineFailure::at(first, format!("ack for {got} while waiting for the ack of {what}")));
            }
            check_ack(&ack, &self.targets)?;
            if seqno == HEARTBEAT_SEQNO {
                // A heartbeat holds no data and took no window slot.
                continue;
            }
            let last = {
                let mut st = lock(&self.in_flight);
                match st.packets.front() {
                    Some(p) if p.header.seqno == seqno => {
                        let h = p.header;
                        st.acked_bytes = h.offset_in_block + u64::from(h.data_len);
                        st.packets.pop_front();
                        h.last_packet
                    }
                    other => {
                        let had = other.map(|p| p.header.seqno.to_string()).unwrap_or_else(|| "none".into());
                        return Err(PipelineFailure::at(
                            first,
                            format!("ack for packet {seqno} while the oldest packet in flight is {had}"),
                        ));
                    }
                }
            };
            self.window.add_permits(1);
            if last {
                return Ok(());
            }
        }
    }
}

/// Finds the first datanode whose status in `ack` is not SUCCESS (or missing).
fn check_ack(ack: &PipelineAck, targets: &[String]) -> Result<(), PipelineFailure> {
    for (i, node) in targets.iter().enumerate() {
        let why = match ack.statuses.get(i) {
            Some(s) if *s == TransferStatus::Success as i32 => continue,
            Some(s) => status_name(*s).to_string(),
            None => "no status in the ack".to_string(),
        };
        let message = if ack.message.is_empty() { why } else { format!("{why}: {}", ack.message) };
        return Err(PipelineFailure::at(node, format!("{}: {message}", packet_name(ack.seqno))));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
