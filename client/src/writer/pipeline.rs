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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::dfs::{
    DatanodeId, ExtendedBlock, OpRequest, OpResponse, OpWriteBlock, PipelineAck, TransferStatus, op_request,
    op_write_block,
};
use tusk_proto::transfer::{read_message_async, write_message_async, write_packet_async};

use super::packet::OutPacket;

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
    out: OwnedWriteHalf,
    window: Arc<Semaphore>,
    in_flight: Arc<Mutex<InFlight>>,
    /// Seqnos announced to the ack reader, in order.
    to_ack: mpsc::UnboundedSender<u64>,
    acker: Option<JoinHandle<AckResult>>,
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
        let mut stream = match timeout(io_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(at(format!("cannot connect: {e}"))),
            Err(_) => return Err(at(format!("connect timed out after {io_timeout:?}"))),
        };
        let _ = stream.set_nodelay(true);
        // Every later wait covers the whole pipeline.
        let io_timeout = io_timeout + TIMEOUT_EXTENSION * targets.len().min(64) as u32;
        let req = OpRequest {
            protocol_version: PROTOCOL_VERSION,
            op: Some(op_request::Op::WriteBlock(OpWriteBlock {
                block: Some(ExtendedBlock { num_bytes: acked_bytes, ..*block }),
                downstream: targets[1..].to_vec(),
                client_name: client_name.to_string(),
                stage: wire_stage as i32,
                recovery_length: acked_bytes,
            })),
        };
        let setup = async {
            write_message_async(&mut stream, &req).await?;
            read_message_async::<_, OpResponse>(&mut stream).await
        };
        let resp = match timeout(io_timeout, setup).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(at(format!("pipeline setup: {e}"))),
            Err(_) => return Err(at(format!("no setup answer within {io_timeout:?}"))),
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
        Ok(Pipeline { targets, out, window, in_flight, to_ack, acker: Some(acker), timeout: io_timeout })
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
        let h = &packet.header;
        if self.to_ack.send(h.seqno).is_err() {
            return Err(self.failure("the ack reader stopped").await);
        }
        match timeout(self.timeout, write_packet_async(&mut self.out, h, &packet.checksums, &packet.data)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failure(format!("sending packet {}: {e}", h.seqno)).await),
            Err(_) => Err(self.failure(format!("sending packet {} timed out after {:?}", h.seqno, self.timeout)).await),
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
        let _ = self.out.flush().await;
        // No more packets: the ack reader stops after the queued ones, with
        // an error if the last packet was not among them.
        self.to_ack = mpsc::unbounded_channel().0;
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
        let fallback = fallback.into();
        self.window.close();
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
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            acker.abort();
        }
    }
}

fn status_name(status: i32) -> &'static str {
    TransferStatus::try_from(status).map(|s| s.as_str_name()).unwrap_or("UNKNOWN")
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
            let ack = match timeout(io_timeout, read_message_async::<_, PipelineAck>(rd)).await {
                Ok(Ok(ack)) => ack,
                Ok(Err(e)) => return Err(PipelineFailure::at(first, format!("reading ack {seqno}: {e}"))),
                Err(_) => return Err(PipelineFailure::at(first, format!("no ack for packet {seqno} within {io_timeout:?}"))),
            };
            if ack.seqno != seqno {
                return Err(PipelineFailure::at(first, format!("ack for packet {} while waiting for {seqno}", ack.seqno)));
            }
            check_ack(&ack, &self.targets)?;
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
        return Err(PipelineFailure::at(node, format!("packet {}: {message}", ack.seqno)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Vec<String> {
        vec!["dn1:1".into(), "dn2:1".into(), "dn3:1".into()]
    }

    #[test]
    fn acks_blame_the_first_failing_datanode() {
        let ok = TransferStatus::Success as i32;
        let bad = TransferStatus::ErrorChecksum as i32;
        let ack = |statuses: Vec<i32>| PipelineAck { seqno: 4, statuses, message: String::new() };
        assert!(check_ack(&ack(vec![ok, ok, ok]), &targets()).is_ok());
        let f = check_ack(&ack(vec![ok, bad, ok]), &targets()).unwrap_err();
        assert_eq!(f.bad_node.as_deref(), Some("dn2:1"));
        assert!(f.to_string().contains("ERROR_CHECKSUM"), "{f}");
        let f = check_ack(&ack(vec![ok]), &targets()).unwrap_err();
        assert_eq!(f.bad_node.as_deref(), Some("dn2:1"));
    }

    /// A fake single datanode: accepts the setup, acks packets with `status`.
    async fn fake_datanode(status: TransferStatus, setup_ok: bool) -> (String, JoinHandle<Vec<u32>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let _req: OpRequest = read_message_async(&mut s).await.unwrap();
            let st = if setup_ok { TransferStatus::Success } else { TransferStatus::ErrorExists };
            let resp = OpResponse { status: st as i32, message: "exists".into(), ..Default::default() };
            write_message_async(&mut s, &resp).await.unwrap();
            let mut lens = Vec::new();
            if !setup_ok {
                return lens;
            }
            loop {
                let p = tusk_proto::transfer::read_packet_async(&mut s, 512).await.unwrap();
                lens.push(p.header.data_len);
                let ack = PipelineAck { seqno: p.header.seqno, statuses: vec![status as i32], message: String::new() };
                write_message_async(&mut s, &ack).await.unwrap();
                if p.header.last_packet || status != TransferStatus::Success {
                    return lens;
                }
            }
        });
        (addr, h)
    }

    fn packets(n: usize) -> (Vec<OutPacket>, OutPacket) {
        let mut a = super::super::packet::PacketAssembler::new(1 << 20, 512, 512);
        let mut out = Vec::new();
        for _ in 0..n {
            a.fill(&[9u8; 512]);
            out.push(a.take_packet().unwrap());
        }
        (out, a.end_block().0)
    }

    fn target(addr: &str) -> Vec<DatanodeId> {
        vec![DatanodeId { transfer_addr: addr.to_string(), ..Default::default() }]
    }

    #[tokio::test]
    async fn packets_flow_and_the_last_ack_ends_the_block() {
        let (addr, dn) = fake_datanode(TransferStatus::Success, true).await;
        let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 0 };
        let mut p = Pipeline::open(&block, &target(&addr), "c", Duration::from_secs(10), 2, Stage::Create).await.unwrap();
        let (data, last) = packets(5);
        for d in data {
            p.send(d).await.unwrap();
        }
        p.finish(last).await.unwrap();
        assert_eq!(dn.await.unwrap(), vec![512, 512, 512, 512, 512, 0]);
    }

    #[tokio::test]
    async fn a_bad_ack_surfaces_on_a_later_call() {
        let (addr, dn) = fake_datanode(TransferStatus::Error, true).await;
        let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 0 };
        let mut p = Pipeline::open(&block, &target(&addr), "c", Duration::from_secs(10), 4, Stage::Create).await.unwrap();
        let (data, last) = packets(3);
        let mut err = None;
        for d in data {
            if let Err(e) = p.send(d).await {
                err = Some(e);
                break;
            }
        }
        let err = match err {
            Some(e) => e,
            None => p.finish(last).await.unwrap_err(),
        };
        assert_eq!(err.bad_node.as_deref(), Some(addr.as_str()));
        assert!(err.to_string().contains("ERROR"), "{err}");
        assert!(!err.unacked.is_empty());
        dn.await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_setup_names_the_datanode() {
        let (addr, _dn) = fake_datanode(TransferStatus::Success, false).await;
        let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 0 };
        let f = match Pipeline::open(&block, &target(&addr), "c", Duration::from_secs(10), 4, Stage::Create).await {
            Ok(_) => panic!("setup should fail"),
            Err(f) => f,
        };
        assert_eq!(f.bad_node.as_deref(), Some(addr.as_str()));
        assert!(f.message.contains("ERROR_EXISTS") && f.message.contains("exists"), "{}", f.message);
    }

    /// A fake head datanode: acks packets before `fail_at` with `slots`
    /// SUCCESS statuses; at `fail_at` it either acks with ERROR in
    /// `bad_slot` (then drains the connection) or hangs up. Returns the
    /// setup request it received.
    async fn failing_datanode(fail_at: u64, bad_slot: Option<usize>, slots: usize) -> (String, JoinHandle<OpRequest>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let req: OpRequest = read_message_async(&mut s).await.unwrap();
            write_message_async(&mut s, &OpResponse::default()).await.unwrap();
            loop {
                let Ok(p) = tusk_proto::transfer::read_packet_async(&mut s, 512).await else { return req };
                let seqno = p.header.seqno;
                let mut statuses = vec![TransferStatus::Success as i32; slots];
                if seqno == fail_at {
                    let Some(i) = bad_slot else { return req };
                    statuses[i] = TransferStatus::Error as i32;
                }
                let ack = PipelineAck { seqno, statuses, message: String::new() };
                if write_message_async(&mut s, &ack).await.is_err() || p.header.last_packet {
                    return req;
                }
                if seqno == fail_at {
                    // Like a datanode that gave up: read on, ack nothing more.
                    while tusk_proto::transfer::read_packet_async(&mut s, 512).await.is_ok() {}
                    return req;
                }
            }
        });
        (addr, h)
    }

    /// Sends `n` 512-byte packets then the last one until something fails.
    async fn send_until_failure(p: &mut Pipeline, n: usize) -> PipelineFailure {
        let (data, last) = packets(n);
        for d in data {
            if let Err(f) = p.send(d).await {
                return f;
            }
        }
        p.finish(last).await.unwrap_err()
    }

    fn seqnos(f: &PipelineFailure) -> Vec<u64> {
        f.unacked.iter().map(|p| p.header.seqno).collect()
    }

    fn three_targets(head: &str) -> Vec<DatanodeId> {
        ["", "dn2:1", "dn3:1"]
            .iter()
            .map(|a| DatanodeId { transfer_addr: if a.is_empty() { head.to_string() } else { a.to_string() }, ..Default::default() })
            .collect()
    }

    #[tokio::test]
    async fn a_bad_ack_reports_the_acked_length_and_every_unacked_packet() {
        let (addr, dn) = failing_datanode(3, Some(1), 3).await;
        let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 0 };
        let mut p = Pipeline::open(&block, &three_targets(&addr), "c", Duration::from_secs(10), 16, Stage::Create)
            .await
            .unwrap();
        let f = send_until_failure(&mut p, 6).await;
        assert_eq!(f.bad_node.as_deref(), Some("dn2:1"), "{f}");
        assert_eq!(f.acked_bytes, 3 * 512);
        let got = seqnos(&f);
        assert_eq!(got.first(), Some(&3), "{got:?}");
        assert_eq!(got, (3..3 + got.len() as u64).collect::<Vec<_>>(), "in order, none missing");
        assert_eq!(f.unacked[0].header.offset_in_block, f.acked_bytes);
        drop(p);
        let req = dn.await.unwrap();
        let Some(op_request::Op::WriteBlock(op)) = req.op else { panic!("not a write") };
        assert_eq!(op.stage, op_write_block::Stage::Create as i32);
        assert_eq!(op.downstream.len(), 2);
    }

    #[tokio::test]
    async fn a_hang_up_blames_the_first_datanode() {
        let (addr, _dn) = failing_datanode(2, None, 3).await;
        let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 0 };
        let mut p = Pipeline::open(&block, &three_targets(&addr), "c", Duration::from_secs(10), 16, Stage::Create)
            .await
            .unwrap();
        let f = send_until_failure(&mut p, 5).await;
        assert_eq!(f.bad_node.as_deref(), Some(addr.as_str()), "{f}");
        // The reset may swallow acks the datanode sent before hanging up:
        // then less is counted as acked and more is given back, never the reverse.
        assert!(f.acked_bytes <= 2 * 512 && f.acked_bytes % 512 == 0, "{}", f.acked_bytes);
        assert_eq!(seqnos(&f).first(), Some(&(f.acked_bytes / 512)));
        // Every packet handed to the pipeline is either acked or given back.
        assert_eq!(seqnos(&f).last(), Some(&5), "the last packet too: {:?}", seqnos(&f));
    }

    #[tokio::test]
    async fn a_recovery_pipeline_starts_at_its_recovery_length() {
        let (addr, dn) = failing_datanode(0, Some(0), 1).await;
        let block = ExtendedBlock { block_id: 1, generation_stamp: 7, num_bytes: 0 };
        let stage = Stage::Recovery { acked_bytes: 1024 };
        let mut p = Pipeline::open(&block, &target(&addr), "c", Duration::from_secs(10), 4, stage).await.unwrap();
        let f = send_until_failure(&mut p, 2).await;
        assert_eq!(f.acked_bytes, 1024, "nothing new acked: the recovery length stands");
        assert_eq!(seqnos(&f).first(), Some(&0));
        drop(p);
        let Some(op_request::Op::WriteBlock(op)) = dn.await.unwrap().op else { panic!("not a write") };
        assert_eq!(op.stage, op_write_block::Stage::PipelineRecovery as i32);
        assert_eq!(op.recovery_length, 1024);
        assert_eq!(op.block.map(|b| b.generation_stamp), Some(7));
    }

    /// A fake head of a two-node pipeline whose downstream hangs: like a
    /// real datanode it answers only once its own (shorter) wait on the
    /// downstream ran out, later than the client's base socket timeout,
    /// naming the downstream node; then the same for the first packet's ack.
    async fn head_of_a_hung_pipeline(delay: Duration) -> (String, JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = tokio::spawn(async move {
            for fail_setup in [true, false] {
                let (mut s, _) = l.accept().await.unwrap();
                let _req: OpRequest = read_message_async(&mut s).await.unwrap();
                if !fail_setup {
                    write_message_async(&mut s, &OpResponse::default()).await.unwrap();
                    let p = tusk_proto::transfer::read_packet_async(&mut s, 512).await.unwrap();
                    tokio::time::sleep(delay).await;
                    let statuses = vec![TransferStatus::Success as i32, TransferStatus::Error as i32];
                    let ack = PipelineAck { seqno: p.header.seqno, statuses, message: "downstream timed out".into() };
                    write_message_async(&mut s, &ack).await.unwrap();
                    let _ = tusk_proto::transfer::read_packet_async(&mut s, 512).await;
                    return;
                }
                tokio::time::sleep(delay).await;
                let resp = OpResponse {
                    status: TransferStatus::Error as i32,
                    first_bad_node: "dn2:1".into(),
                    message: "downstream timed out".into(),
                    ..Default::default()
                };
                write_message_async(&mut s, &resp).await.unwrap();
            }
        });
        (addr, h)
    }

    #[tokio::test]
    async fn the_wait_grows_with_the_pipeline_so_the_datanodes_name_a_hung_node() {
        let base = Duration::from_millis(300);
        let (addr, _dn) = head_of_a_hung_pipeline(base * 3).await;
        let mut targets = target(&addr);
        targets.push(DatanodeId { transfer_addr: "dn2:1".into(), ..Default::default() });
        let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 0 };
        let f = match Pipeline::open(&block, &targets, "c", base, 4, Stage::Create).await {
            Ok(_) => panic!("setup should fail"),
            Err(f) => f,
        };
        assert_eq!(f.bad_node.as_deref(), Some("dn2:1"), "{f}");
        let mut p = Pipeline::open(&block, &targets, "c", base, 4, Stage::Create).await.unwrap();
        let f = send_until_failure(&mut p, 1).await;
        assert_eq!(f.bad_node.as_deref(), Some("dn2:1"), "{f}");
    }

    #[tokio::test]
    async fn the_last_ack_accounts_for_the_whole_block() {
        let (addr, dn) = fake_datanode(TransferStatus::Success, true).await;
        let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 0 };
        let mut p = Pipeline::open(&block, &target(&addr), "c", Duration::from_secs(10), 2, Stage::Create).await.unwrap();
        let (data, last) = packets(3);
        for d in data {
            p.send(d).await.unwrap();
        }
        p.finish(last).await.unwrap();
        assert_eq!(lock(&p.in_flight).acked_bytes, 3 * 512);
        assert!(lock(&p.in_flight).packets.is_empty());
        dn.await.unwrap();
    }
}
