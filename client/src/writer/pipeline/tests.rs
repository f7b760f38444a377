//! The pipeline against fake datanodes over real sockets.

use super::*;
use tusk_proto::dfs::{OpRequest, OpResponse};
use tusk_proto::transfer::write_message_async;

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

/// A fake single datanode that acks every packet and heartbeat; returns
/// the headers it received.
async fn recording_datanode() -> (String, JoinHandle<Vec<tusk_proto::dfs::PacketHeader>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _req: OpRequest = read_message_async(&mut s).await.unwrap();
        write_message_async(&mut s, &OpResponse::default()).await.unwrap();
        let mut headers = Vec::new();
        loop {
            let p = tusk_proto::transfer::read_packet_async(&mut s, 512).await.unwrap();
            headers.push(p.header);
            let ack = PipelineAck { seqno: p.header.seqno, statuses: vec![0], message: String::new() };
            write_message_async(&mut s, &ack).await.unwrap();
            if p.header.last_packet {
                return headers;
            }
        }
    });
    (addr, h)
}

/// Polls until the pipeline has failed (its window is closed).
async fn wait_failed(p: &Pipeline) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !p.window.is_closed() {
        assert!(tokio::time::Instant::now() < deadline, "the pipeline did not fail");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_idle_pipeline_sends_heartbeats_whose_acks_are_not_data() {
    let (addr, dn) = recording_datanode().await;
    let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 0 };
    let timeout = Duration::from_millis(200);
    let mut p = Pipeline::open(&block, &target(&addr), "c", timeout, 4, Stage::Create).await.unwrap();
    let (mut data, last) = packets(3);
    let third = data.pop().unwrap();
    for d in data {
        p.send(d).await.unwrap();
    }
    // The writer pauses for several socket timeouts.
    tokio::time::sleep(timeout * 4).await;
    p.send(third).await.unwrap();
    p.finish(last).await.unwrap();
    assert_eq!(lock(&p.in_flight).acked_bytes, 3 * 512, "heartbeats acknowledge no bytes");
    assert!(lock(&p.in_flight).packets.is_empty());
    assert_eq!(p.window.available_permits(), 4, "heartbeats take no window slot");

    let headers = dn.await.unwrap();
    let seqnos: Vec<u64> = headers.iter().map(|h| h.seqno).filter(|s| *s != HEARTBEAT_SEQNO).collect();
    assert_eq!(seqnos, vec![0, 1, 2, 3]);
    let beats: Vec<_> = headers.iter().filter(|h| h.seqno == HEARTBEAT_SEQNO).collect();
    assert!(beats.len() >= 3, "{headers:?}");
    for h in &beats {
        assert_eq!((h.offset_in_block, h.data_len, h.last_packet), (2 * 512, 0, false), "{h:?}");
    }
    // Heartbeats only while idle, never after the last packet.
    let first_beat = headers.iter().position(|h| h.seqno == HEARTBEAT_SEQNO).unwrap();
    let last_beat = headers.iter().rposition(|h| h.seqno == HEARTBEAT_SEQNO).unwrap();
    assert_eq!((first_beat, last_beat), (2, 1 + beats.len()), "{headers:?}");
}

#[tokio::test]
async fn a_bad_heartbeat_ack_fails_the_pipeline_like_any_packet() {
    // The head of a 3-node pipeline acks data, then a heartbeat with ERROR
    // in the second node's slot.
    let (addr, dn) = failing_datanode(HEARTBEAT_SEQNO, Some(1), 3).await;
    let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 0 };
    let mut p = Pipeline::open(&block, &three_targets(&addr), "c", Duration::from_millis(200), 16, Stage::Create)
        .await
        .unwrap();
    let (mut data, _last) = packets(3);
    let third = data.pop().unwrap();
    for d in data {
        p.send(d).await.unwrap();
    }
    wait_failed(&p).await;
    let f = p.send(third).await.unwrap_err();
    assert_eq!(f.bad_node.as_deref(), Some("dn2:1"), "{f}");
    assert!(f.message.contains("heartbeat") && f.message.contains("ERROR"), "{f}");
    assert_eq!(f.acked_bytes, 2 * 512);
    assert_eq!(seqnos(&f), vec![2], "only data is handed back for a resend");
    drop(p);
    dn.await.unwrap();
}

#[tokio::test]
async fn a_head_that_went_away_is_found_by_a_heartbeat() {
    // A head that takes the setup and then goes away without a word.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let dn = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _req: OpRequest = read_message_async(&mut s).await.unwrap();
        write_message_async(&mut s, &OpResponse::default()).await.unwrap();
    });
    let block = ExtendedBlock { block_id: 1, generation_stamp: 1, num_bytes: 0 };
    let mut p = Pipeline::open(&block, &target(&addr), "c", Duration::from_millis(100), 4, Stage::Create).await.unwrap();
    dn.await.unwrap();
    wait_failed(&p).await;
    let (mut data, _) = packets(1);
    let f = p.send(data.remove(0)).await.unwrap_err();
    assert_eq!(f.bad_node.as_deref(), Some(addr.as_str()), "{f}");
    assert!(f.message.contains("heartbeat"), "{f}");
    assert_eq!((f.acked_bytes, seqnos(&f)), (0, vec![0]));
}
