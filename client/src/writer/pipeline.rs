//! One block's write pipeline: client → dn1 → dn2 → dn3.
//!
//! The writer sends packets on the socket's write half; a spawned ack reader
//! owns the read half and consumes [`PipelineAck`]s in order. Sent packets
//! wait in the ack reader's queue (the channel plus the packet it is waiting
//! on) until acknowledged, and a semaphore bounds how many are in flight. A
//! failure closes the semaphore, so the next send or finish notices it, and
//! hands back the packets that were never acknowledged: what a later pipeline
//! recovery would resend to the surviving datanodes.

use std::sync::Arc;
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
    /// Packets sent but never acknowledged, in order.
    #[allow(dead_code)] // kept for pipeline recovery
    pub(crate) unacked: Vec<OutPacket>,
}

impl PipelineFailure {
    fn at(node: &str, message: impl Into<String>) -> PipelineFailure {
        PipelineFailure { bad_node: Some(node.to_string()), message: message.into(), unacked: Vec::new() }
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

/// An open pipeline for one block.
pub(crate) struct Pipeline {
    /// Transfer addresses, in pipeline order.
    targets: Vec<String>,
    out: OwnedWriteHalf,
    window: Arc<Semaphore>,
    to_ack: mpsc::UnboundedSender<OutPacket>,
    acker: Option<JoinHandle<AckResult>>,
    timeout: Duration,
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
    ) -> Result<Pipeline, PipelineFailure> {
        let first = targets.first().ok_or_else(|| PipelineFailure {
            bad_node: None,
            message: "the namenode gave no datanode for the block".into(),
            unacked: Vec::new(),
        })?;
        let addr = first.transfer_addr.as_str();
        let mut stream = match timeout(io_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(PipelineFailure::at(addr, format!("cannot connect: {e}"))),
            Err(_) => return Err(PipelineFailure::at(addr, format!("connect timed out after {io_timeout:?}"))),
        };
        let _ = stream.set_nodelay(true);
        let req = OpRequest {
            protocol_version: PROTOCOL_VERSION,
            op: Some(op_request::Op::WriteBlock(OpWriteBlock {
                block: Some(ExtendedBlock { num_bytes: 0, ..*block }),
                downstream: targets[1..].to_vec(),
                client_name: client_name.to_string(),
                stage: op_write_block::Stage::Create as i32,
                recovery_length: 0,
            })),
        };
        let setup = async {
            write_message_async(&mut stream, &req).await?;
            read_message_async::<_, OpResponse>(&mut stream).await
        };
        let resp = match timeout(io_timeout, setup).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(PipelineFailure::at(addr, format!("pipeline setup: {e}"))),
            Err(_) => return Err(PipelineFailure::at(addr, format!("no setup answer within {io_timeout:?}"))),
        };
        if resp.status != TransferStatus::Success as i32 {
            let bad = if resp.first_bad_node.is_empty() { addr.to_string() } else { resp.first_bad_node };
            return Err(PipelineFailure {
                bad_node: Some(bad),
                message: format!("pipeline setup refused ({}): {}", status_name(resp.status), resp.message),
                unacked: Vec::new(),
            });
        }
        let (rd, out) = stream.into_split();
        let window = Arc::new(Semaphore::new(window.max(1)));
        let (to_ack, rx) = mpsc::unbounded_channel();
        let targets: Vec<String> = targets.iter().map(|t| t.transfer_addr.clone()).collect();
        let acker = tokio::spawn(read_acks(BufReader::new(rd), rx, window.clone(), targets.clone(), io_timeout));
        Ok(Pipeline { targets, out, window, to_ack, acker: Some(acker), timeout: io_timeout })
    }

    /// Sends one packet, waiting while the window is full. An earlier ack
    /// failure surfaces here.
    pub(crate) async fn send(&mut self, packet: OutPacket) -> Result<(), PipelineFailure> {
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
        if self.to_ack.send(packet.clone()).is_err() {
            return Err(self.failure("the ack reader stopped").await);
        }
        let h = &packet.header;
        match timeout(self.timeout, write_packet_async(&mut self.out, h, &packet.checksums, &packet.data)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failure(format!("sending packet {}: {e}", h.seqno)).await),
            Err(_) => Err(self.failure(format!("sending packet {} timed out after {:?}", h.seqno, self.timeout)).await),
        }
    }

    /// Sends the block's empty last packet and waits until every packet is
    /// acknowledged (then every datanode has finalized its replica).
    pub(crate) async fn finish(mut self, last: OutPacket) -> Result<(), PipelineFailure> {
        self.send(last).await?;
        let _ = self.out.flush().await;
        let Some(acker) = self.acker.take() else {
            return Err(self.first_node_failure("the ack reader is gone"));
        };
        match acker.await {
            Ok(r) => r,
            Err(e) => Err(self.first_node_failure(format!("ack reader failed: {e}"))),
        }
    }

    fn first_node_failure(&self, message: impl Into<String>) -> PipelineFailure {
        PipelineFailure::at(self.targets.first().map(String::as_str).unwrap_or("?"), message)
    }

    /// The ack reader's account of a failure if it has one (it usually knows
    /// which datanode failed), else `fallback` blamed on the first datanode.
    async fn failure(&mut self, fallback: impl Into<String>) -> PipelineFailure {
        let fallback = fallback.into();
        self.window.close();
        if let Some(acker) = self.acker.take() {
            // A broken socket makes the reader fail promptly too; do not wait long.
            let grace = self.timeout.min(Duration::from_secs(5));
            match timeout(grace, acker).await {
                Ok(Ok(Err(f))) => return f,
                Ok(_) => {}
                Err(elapsed) => tracing::debug!("ack reader did not finish: {elapsed}"),
            }
        }
        self.first_node_failure(fallback)
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
async fn read_acks(
    mut rd: BufReader<OwnedReadHalf>,
    mut rx: mpsc::UnboundedReceiver<OutPacket>,
    window: Arc<Semaphore>,
    targets: Vec<String>,
    io_timeout: Duration,
) -> AckResult {
    let first = targets.first().cloned().unwrap_or_default();
    loop {
        // Wait for a packet before reading, so an idle writer does not time out.
        let Some(packet) = rx.recv().await else { return Ok(()) };
        let fail = |mut f: PipelineFailure, packet: OutPacket, rx: &mut mpsc::UnboundedReceiver<OutPacket>| {
            window.close();
            f.unacked.push(packet);
            while let Ok(p) = rx.try_recv() {
                f.unacked.push(p);
            }
            Err(f)
        };
        let seqno = packet.header.seqno;
        let ack = match timeout(io_timeout, read_message_async::<_, PipelineAck>(&mut rd)).await {
            Ok(Ok(ack)) => ack,
            Ok(Err(e)) => return fail(PipelineFailure::at(&first, format!("reading ack {seqno}: {e}")), packet, &mut rx),
            Err(_) => {
                let f = PipelineFailure::at(&first, format!("no ack for packet {seqno} within {io_timeout:?}"));
                return fail(f, packet, &mut rx);
            }
        };
        if ack.seqno != seqno {
            let f = PipelineFailure::at(&first, format!("ack for packet {} while waiting for {seqno}", ack.seqno));
            return fail(f, packet, &mut rx);
        }
        if let Err(f) = check_ack(&ack, &targets) {
            return fail(f, packet, &mut rx);
        }
        window.add_permits(1);
        if packet.header.last_packet {
            return Ok(());
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
        let mut p = Pipeline::open(&block, &target(&addr), "c", Duration::from_secs(10), 2).await.unwrap();
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
        let mut p = Pipeline::open(&block, &target(&addr), "c", Duration::from_secs(10), 4).await.unwrap();
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
        let f = match Pipeline::open(&block, &target(&addr), "c", Duration::from_secs(10), 4).await {
            Ok(_) => panic!("setup should fail"),
            Err(f) => f,
        };
        assert_eq!(f.bad_node.as_deref(), Some(addr.as_str()));
        assert!(f.message.contains("ERROR_EXISTS") && f.message.contains("exists"), "{}", f.message);
    }
}
