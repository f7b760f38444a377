//! Heartbeat packets over real sockets, with a short socket timeout: an
//! idle writer that sends heartbeats keeps its pipeline (in every stage), a
//! writer that sends nothing loses it, and a heartbeat never changes a
//! replica nor ends a block.

use super::*;
use crate::test_client::{Pipeline, WriteOp, assert_acks_ok, open_pipeline};
use tusk_proto::dfs::PacketHeader;
use tusk_proto::dfs::op_write_block::Stage;
use tusk_proto::transfer::{HEARTBEAT_SEQNO, heartbeat_header};

/// The datanodes' socket timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(400);
/// How often the test writer sends a heartbeat while idle (well inside the
/// timeout, so a loaded machine does not make the test flaky).
const BEAT: Duration = Duration::from_millis(100);

async fn nodes(n: usize) -> Vec<Node> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Node::start_opts(64, TIMEOUT).await);
    }
    out
}

fn addrs(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| n.addr.clone()).collect()
}

fn assert_heartbeat_ack(ack: &PipelineAck, n_nodes: usize) {
    assert_eq!(ack.seqno, HEARTBEAT_SEQNO, "{ack:?}");
    assert_eq!(ack.statuses, vec![TransferStatus::Success as i32; n_nodes], "{ack:?}");
}

/// The writer pauses for `pause`, sending only heartbeats (every [`BEAT`])
/// and checking each one's ack. Returns how many were sent.
async fn idle_with_heartbeats(p: &mut Pipeline, n_nodes: usize, pause: Duration) -> usize {
    let end = std::time::Instant::now() + pause;
    let mut beats = 0;
    while std::time::Instant::now() < end {
        // The pause of the writer is what is under test.
        tokio::time::sleep(BEAT).await;
        p.heartbeat().await;
        let acks = p.acks(1).await;
        assert_eq!(acks.len(), 1, "no ack for heartbeat {beats}");
        assert_heartbeat_ack(&acks[0], n_nodes);
        beats += 1;
    }
    beats
}

async fn open(op: &WriteOp<'_>) -> Pipeline {
    let (resp, p) = open_pipeline(op).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    p.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_idle_pipeline_alive_and_write_nothing() {
    let ns = nodes(2).await;
    let pipeline = addrs(&ns);
    let id = 0x4b1;
    let data = payload(96 * 1024 + 2048 + 5000);
    let mut p = open(&WriteOp::create(&pipeline, id)).await;

    // 1.5 packets, then a packet and a heartbeat before their acks are read:
    // the heartbeat is acked in order after the data.
    p.send(&data[..96 * 1024]).await;
    assert_acks_ok(&p.acks(2).await, 0, 2);
    p.send(&data[96 * 1024..96 * 1024 + 2048]).await;
    p.heartbeat().await;
    let acks = p.acks(2).await;
    assert_eq!(acks.len(), 2, "{acks:?}");
    assert_acks_ok(&acks[..1], 2, 2);
    assert_heartbeat_ack(&acks[1], 2);

    // Idle for several socket timeouts: only heartbeats flow.
    let beats = idle_with_heartbeats(&mut p, 2, TIMEOUT * 4).await;
    assert!(beats >= 4, "{beats} heartbeats");
    let sent = (96 * 1024 + 2048) as u64;
    for n in &ns {
        assert_eq!(n.storage.rbw_replica(id), Some((1000, sent, true)), "still being written on {}", n.addr);
        assert!(n.sink.0.lock().is_empty());
    }

    // More data (a partial last chunk), a heartbeat after it, the last packet.
    p.send(&data[sent as usize..]).await;
    p.heartbeat().await;
    p.finish().await;
    let acks = p.acks(3).await;
    assert_eq!(acks.len(), 3, "{acks:?}");
    assert_acks_ok(&acks[..1], 3, 2);
    assert_heartbeat_ack(&acks[1], 2);
    assert_acks_ok(&acks[2..], 4, 2);

    let want = ReplicaReport { block_id: id, generation_stamp: 1000, num_bytes: data.len() as u64 };
    for n in &ns {
        assert_eq!(*n.sink.0.lock(), vec![want], "finalized with exactly the data bytes on {}", n.addr);
        assert_eq!(read_block(&n.addr, id, 0, data.len() as u64).await.unwrap(), data);
        assert!(n.rbw_is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_writer_is_timed_out_and_a_recovery_kept_alive_by_heartbeats_finishes_the_block() {
    let ns = nodes(2).await;
    let pipeline = addrs(&ns);
    let id = 0x4b2;
    let data = payload(64 * 1024 + 3000);
    let mut p = open(&WriteOp::create(&pipeline, id)).await;
    p.send(&data[..64 * 1024]).await;
    assert_acks_ok(&p.acks(1).await, 0, 2);

    // Not even a heartbeat: the head datanode gives up after its socket
    // timeout and hangs up; the replicas stay in rbw for a recovery.
    let started = std::time::Instant::now();
    let acks = p.acks(1).await;
    assert!(acks.is_empty(), "{acks:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "hung up after {:?}", started.elapsed());
    for n in &ns {
        poll_until("the writer to be released", || n.storage.rbw_replica(id) == Some((1000, 64 * 1024, false))).await;
        poll_until("the connections to close", || n.ctx_xceivers() == 0).await;
    }

    // PIPELINE_RECOVERY: heartbeats first, then the rest of the block.
    let mut p = open(&WriteOp::recovery(&pipeline, id, 1001, 64 * 1024)).await;
    p.heartbeat().await;
    assert_heartbeat_ack(&p.acks(1).await[0], 2);
    assert!(idle_with_heartbeats(&mut p, 2, TIMEOUT * 3).await >= 3);
    p.send(&data[64 * 1024..]).await;
    p.finish().await;
    assert_acks_ok(&p.acks(2).await, 0, 2);
    let want = ReplicaReport { block_id: id, generation_stamp: 1001, num_bytes: data.len() as u64 };
    for n in &ns {
        assert_eq!(*n.sink.0.lock(), vec![want]);
        assert_eq!(read_block(&n.addr, id, 0, data.len() as u64).await.unwrap(), data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_work_in_transfer_rbw_and_the_replica_stays_in_rbw() {
    let ns = nodes(2).await;
    let pipeline = addrs(&ns);
    let id = 0x4b3;
    let data = payload(70_000);
    let op = WriteOp { pipeline: &pipeline, block_id: id, gen_stamp: 1002, stage: Stage::TransferRbw, recovery_length: 0 };
    let mut p = open(&op).await;
    p.send(&data).await;
    assert_acks_ok(&p.acks(2).await, 0, 2);
    assert!(idle_with_heartbeats(&mut p, 2, TIMEOUT * 3).await >= 3);
    p.finish().await;
    assert_acks_ok(&p.acks(1).await, 2, 2);
    for n in &ns {
        poll_until("the rbw replica to be released", || n.storage.rbw_replica(id) == Some((1002, 70_000, false))).await;
        assert!(n.storage.replica(id).is_none(), "never finalized");
        assert!(n.sink.0.lock().is_empty(), "never reported");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_with_data_or_ending_the_block_is_refused() {
    let ns = nodes(1).await;
    let pipeline = addrs(&ns);
    let n = &ns[0];
    let cases = [
        (0x4b4, PacketHeader { last_packet: true, ..heartbeat_header(512) }, &[][..]),
        (0x4b5, PacketHeader { data_len: 512, ..heartbeat_header(512) }, &[7u8; 512][..]),
    ];
    for (id, header, body) in cases {
        let mut p = open(&WriteOp::create(&pipeline, id)).await;
        p.send(&payload(512)).await;
        p.send_raw(header, body).await;
        let acks = p.acks(2).await;
        assert_eq!(acks.len(), 2, "{acks:?}");
        assert_acks_ok(&acks[..1], 0, 1);
        assert_eq!(acks[1].seqno, HEARTBEAT_SEQNO);
        assert_eq!(acks[1].statuses, vec![TransferStatus::ErrorInvalid as i32], "{:?}", acks[1]);
        assert!(acks[1].message.contains("heartbeat"), "{:?}", acks[1]);
        // Nothing was finalized, nothing of the heartbeat was written.
        poll_until("the writer to be released", || n.storage.rbw_replica(id) == Some((1000, 512, false))).await;
        assert!(n.storage.replica(id).is_none());
    }
    assert!(n.sink.0.lock().is_empty());
}
