//! Failure handling over real sockets: broken pipelines leave rbw replicas,
//! PIPELINE_RECOVERY resumes them, TransferRbw + TRANSFER_RBW bring in a
//! replacement datanode, full disks fail cleanly.

use super::*;
use crate::storage::Reopen;
use crate::test_client::{Pipeline, WriteOp, assert_acks_ok, call, open_pipeline};
use tokio::net::TcpListener as AsyncListener;
use tusk_proto::dfs::{OpRequest, OpTransferRbw};
use tusk_proto::transfer::{read_packet_async, verify_checksums};

const P: usize = 64 * 1024;

/// Opens a CREATE pipeline (gs 1000), sends `data`, checks its acks, and
/// returns the pipeline without finishing it.
async fn start_block(pipeline: &[String], id: u64, data: &[u8]) -> Pipeline {
    let (resp, p) = open_pipeline(&WriteOp::create(pipeline, id)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    let mut p = p.unwrap();
    p.send(data).await;
    let acks = p.acks(data.len().div_ceil(P)).await;
    assert_eq!(acks.len(), data.len().div_ceil(P));
    assert_acks_ok(&acks, 0, pipeline.len());
    p
}

async fn wait_rbw(n: &Node, id: u64, gs: u64, len: u64) {
    poll_until(&format!("an inactive rbw replica on {}", n.addr), || n.storage.rbw_replica(id) == Some((gs, len, false))).await;
}

/// The finalized replica's data, its checksums verified, and its meta file path.
fn stored(n: &Node, id: u64, gs: u64) -> (Vec<u8>, std::path::PathBuf) {
    let r = n.storage.open_replica(id, gs).unwrap();
    assert_eq!(r.gen_stamp(), gs);
    let (mut d, mut c) = (Vec::new(), Vec::new());
    r.read_chunks(0, r.len() as usize, &mut d, &mut c).unwrap();
    assert_eq!(verify_checksums(&d, &c, 512), Ok(()));
    (d, n.storage.replica_paths(id).unwrap().1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_pipeline_leaves_rbw_replicas_behind() {
    let (a, b) = (Node::start().await, Node::start().await);
    let data = payload(3 * P);
    let p = start_block(&[a.addr.clone(), b.addr.clone()], 61, &data).await;
    drop(p); // the client goes away
    for n in [&a, &b] {
        wait_rbw(n, 61, 1000, data.len() as u64).await;
        assert!(n.storage.replica(61).is_none());
        assert!(n.sink.0.lock().is_empty());
        let (d, m) = n.storage.replica_paths(61).unwrap();
        assert_eq!(std::fs::read(d).unwrap(), data);
        assert!(m.ends_with("rbw/blk_61_1000.meta"), "{}", m.display());
        assert_eq!(
            n.storage.rbw_report(),
            vec![ReplicaReport { block_id: 61, generation_stamp: 1000, num_bytes: data.len() as u64 }]
        );
    }
}

/// A fake datanode that accepts one write, answers SUCCESS, reads one
/// packet and hangs up without acking it.
async fn failing_downstream() -> String {
    let l = AsyncListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _: OpRequest = read_message_async(&mut s).await.unwrap();
        let ok = OpResponse { status: TransferStatus::Success as i32, ..Default::default() };
        write_message_async(&mut s, &ok).await.unwrap();
        let _ = read_packet_async(&mut s, 512).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_downstream_is_named_and_the_replica_stays_for_recovery() {
    let a = Node::start().await;
    let bad = failing_downstream().await;
    let data = payload(2 * P);
    let (resp, p) = open_pipeline(&WriteOp::create(&[a.addr.clone(), bad.clone()], 62)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32);
    let mut p = p.unwrap();
    p.send(&data).await;
    let acks = p.acks(2).await;
    let last = acks.last().unwrap();
    assert_eq!(last.statuses, vec![TransferStatus::Success as i32, TransferStatus::Error as i32], "{last:?}");
    assert!(last.message.contains(&bad), "{last:?}");
    drop(p);
    poll_until("the writer to let go", || a.storage.rbw_replica(62).is_some_and(|(_, _, active)| !active)).await;
    let (_, held, _) = a.storage.rbw_replica(62).unwrap();
    assert!(held == P as u64 || held == 2 * P as u64, "{held}");
    // The client recovers without the bad node and finishes the block.
    let (resp, p) = open_pipeline(&WriteOp::recovery(std::slice::from_ref(&a.addr), 62, 1001, P as u64)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    let mut p = p.unwrap();
    p.seqno = 1;
    p.send(&data[P..]).await;
    p.finish().await;
    assert_acks_ok(&p.acks(2).await, 1, 1);
    assert_eq!(stored(&a, 62, 1001).0, data);
    assert!(a.rbw_is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_recovery_resumes_both_replicas_with_the_new_stamp() {
    let (a, b) = (Node::start().await, Node::start().await);
    let pipeline = [a.addr.clone(), b.addr.clone()];
    let data = payload(3 * P + 10_000);
    let mut p = start_block(&pipeline, 63, &data[..3 * P]).await;
    // The fourth packet goes out but its ack never comes back.
    p.send(&data[3 * P..]).await;
    drop(p);
    for n in [&a, &b] {
        poll_until("the writer to let go", || n.storage.rbw_replica(63).is_some_and(|(_, _, active)| !active)).await;
    }
    let acked = 3 * P as u64;
    let (resp, p) = open_pipeline(&WriteOp::recovery(&pipeline, 63, 1001, acked)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    for n in [&a, &b] {
        assert_eq!(n.storage.rbw_replica(63), Some((1001, acked, true)), "truncated to the acked length");
    }
    let mut p = p.unwrap();
    p.seqno = 3;
    p.send(&data[3 * P..]).await;
    p.finish().await;
    assert_acks_ok(&p.acks(2).await, 3, 2);
    let want = ReplicaReport { block_id: 63, generation_stamp: 1001, num_bytes: data.len() as u64 };
    for n in [&a, &b] {
        assert_eq!(*n.sink.0.lock(), vec![want]);
        let (d, meta) = stored(n, 63, 1001);
        assert_eq!(d, data);
        assert!(meta.ends_with("blk_63_1001.meta") && meta.to_string_lossy().contains("finalized"), "{}", meta.display());
        assert!(n.rbw_is_empty());
        assert!(n.storage.rbw_report().is_empty());
    }
    // A finalized replica can be recovered again (its last ack was lost):
    // it goes back to rbw and is finalized with the newer stamp.
    let (resp, p) = open_pipeline(&WriteOp::recovery(&pipeline, 63, 1002, data.len() as u64)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    let mut p = p.unwrap();
    p.seqno = 4;
    p.finish().await;
    assert_acks_ok(&p.acks(1).await, 4, 2);
    for n in [&a, &b] {
        assert_eq!(stored(n, 63, 1002).0, data);
        assert_eq!(n.sink.0.lock().last().unwrap().generation_stamp, 1002);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_on_a_node_with_too_few_bytes_names_it() {
    let (a, b) = (Node::start().await, Node::start().await);
    let pipeline = [a.addr.clone(), b.addr.clone()];
    let data = payload(2 * P);
    drop(start_block(&pipeline, 64, &data).await);
    wait_rbw(&a, 64, 1000, 2 * P as u64).await;
    wait_rbw(&b, 64, 1000, 2 * P as u64).await;
    // b lost its second packet.
    drop(b.storage.reopen_rbw(64, 1000, P as u64, Reopen::Pipeline).unwrap());
    let (resp, _) = open_pipeline(&WriteOp::recovery(&pipeline, 64, 1001, 2 * P as u64)).await;
    assert_eq!(resp.status, TransferStatus::Error as i32, "{resp:?}");
    assert_eq!(resp.first_bad_node, b.addr);
    assert!(resp.message.contains("fewer than the 131072"), "{resp:?}");
    let (resp, _) = open_pipeline(&WriteOp::recovery(std::slice::from_ref(&b.addr), 64, 1001, 2 * P as u64)).await;
    assert_eq!(resp.status, TransferStatus::Error as i32);
    assert_eq!(resp.first_bad_node, b.addr);
    // a kept its replica; the client retries without b.
    let (resp, p) = open_pipeline(&WriteOp::recovery(std::slice::from_ref(&a.addr), 64, 1002, 2 * P as u64)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    let mut p = p.unwrap();
    p.seqno = 2;
    p.finish().await;
    assert_acks_ok(&p.acks(1).await, 2, 1);
    assert_eq!(stored(&a, 64, 1002).0, data);
    // A node without any replica refuses too.
    let c = Node::start().await;
    let (resp, _) = open_pipeline(&WriteOp::recovery(std::slice::from_ref(&c.addr), 64, 1003, 1)).await;
    assert_ne!(resp.status, TransferStatus::Success as i32);
    assert_eq!(resp.first_bad_node, c.addr);
}

/// A replacement datanode added before any byte was acknowledged (the
/// client adds it without a TransferRbw) holds no replica yet: a recovery
/// keeping 0 bytes starts an empty one there instead of refusing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_added_before_any_ack_joins_the_recovery_with_an_empty_replica() {
    let (a, n) = (Node::start().await, Node::start().await);
    let (resp, p) = open_pipeline(&WriteOp::create(std::slice::from_ref(&a.addr), 66)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    drop(p); // the pipeline failed before its first ack
    wait_rbw(&a, 66, 1000, 0).await;
    let pipeline = [a.addr.clone(), n.addr.clone()];
    let (resp, p) = open_pipeline(&WriteOp::recovery(&pipeline, 66, 1001, 0)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    assert_eq!(n.storage.rbw_replica(66), Some((1001, 0, true)));
    let data = payload(P + 100);
    let mut p = p.unwrap();
    p.send(&data).await;
    p.finish().await;
    assert_acks_ok(&p.acks(3).await, 0, 2);
    for node in [&a, &n] {
        assert_eq!(stored(node, 66, 1001).0, data);
        assert!(node.rbw_is_empty());
    }
}

fn transfer_rbw(id: u64, length: u64, targets: Vec<DatanodeId>) -> Op {
    Op::TransferRbw(OpTransferRbw {
        block: block(id, 1000),
        length,
        new_generation_stamp: 1001,
        targets,
        client_name: "DFSClient_test".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_rbw_brings_a_replacement_into_the_recovered_pipeline() {
    let (a, b, c) = (Node::start().await, Node::start().await, Node::start().await);
    let data = payload(4 * P + 1234);
    let acked = 3 * P as u64;
    drop(start_block(&[a.addr.clone(), b.addr.clone()], 65, &data[..acked as usize]).await);
    wait_rbw(&a, 65, 1000, acked).await;
    wait_rbw(&b, 65, 1000, acked).await;

    // Refusals: more bytes than the replica holds, an unreachable target.
    let resp = call(&a.addr, transfer_rbw(65, acked + 1, vec![c.id()])).await;
    assert_eq!(resp.status, TransferStatus::Error as i32, "{resp:?}");
    assert_eq!(resp.first_bad_node, a.addr);
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ghost = gone.local_addr().unwrap().to_string();
    drop(gone);
    let resp = call(&a.addr, transfer_rbw(65, acked, vec![dn_id(&ghost)])).await;
    assert_eq!(resp.status, TransferStatus::Error as i32, "{resp:?}");
    assert_eq!(resp.first_bad_node, ghost);

    // The copy: c keeps an rbw replica with the new stamp, not reported.
    let resp = call(&a.addr, transfer_rbw(65, acked, vec![c.id()])).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    assert_eq!(c.storage.rbw_replica(65), Some((1001, acked, false)));
    assert!(c.storage.replica(65).is_none() && c.sink.0.lock().is_empty());
    assert_eq!(a.storage.rbw_replica(65), Some((1000, acked, false)), "the source is unchanged");

    // The recovered pipeline a, b, c finishes the block.
    let pipeline = [a.addr.clone(), b.addr.clone(), c.addr.clone()];
    let (resp, p) = open_pipeline(&WriteOp::recovery(&pipeline, 65, 1001, acked)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    let mut p = p.unwrap();
    p.seqno = 3;
    p.send(&data[acked as usize..]).await;
    p.finish().await;
    assert_acks_ok(&p.acks(3).await, 3, 3);
    let want = ReplicaReport { block_id: 65, generation_stamp: 1001, num_bytes: data.len() as u64 };
    for n in [&a, &b, &c] {
        assert_eq!(*n.sink.0.lock(), vec![want]);
        assert_eq!(stored(n, 65, 1001).0, data);
        assert!(n.rbw_is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_cleanly_naming_the_datanode() {
    let a = Node::start().await;
    a.storage.set_reserved_bytes(u64::MAX / 2);
    let (resp, _) = write_block(std::slice::from_ref(&a.addr), 70, &payload(1000), None).await;
    assert_eq!(resp.status, TransferStatus::Error as i32, "{resp:?}");
    assert_eq!(resp.first_bad_node, a.addr);
    assert!(resp.message.contains("no space left") && resp.message.contains(&a.addr), "{resp:?}");
    assert!(a.rbw_is_empty());

    // The disk fills up in the middle of a block.
    a.storage.set_reserved_bytes(0);
    let mut p = start_block(std::slice::from_ref(&a.addr), 71, &payload(P)).await;
    a.storage.set_reserved_bytes(u64::MAX / 2);
    p.send(&payload(P)).await;
    let acks = p.acks(1).await;
    assert_eq!(acks[0].statuses, vec![TransferStatus::Error as i32], "{acks:?}");
    assert!(acks[0].message.contains("no space left") && acks[0].message.contains(&a.addr), "{acks:?}");
    poll_until("the replica to be removed", || a.storage.rbw_replica(71).is_none() && a.rbw_is_empty()).await;
    assert!(a.sink.0.lock().is_empty());
}

/// A datanode that accepts a write request and then says nothing (a hung
/// process, or a host gone without a reset).
async fn silent_datanode() -> (String, tokio::task::JoinHandle<()>) {
    let l = AsyncListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _: OpRequest = read_message_async(&mut s).await.unwrap();
        // Hold the connection open without answering until the test ends.
        let _ = read_packet_async(&mut s, 512).await;
    });
    (addr, h)
}

/// Waits on a downstream node grow with the nodes after it (HDFS
/// READ_TIMEOUT_EXTENSION), so the datanode next to a hung node gives up
/// first and the hung node is the one named, not a healthy one upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_datanode_is_named_by_its_neighbour_not_by_the_head() {
    let timeout = Duration::from_millis(500);
    let (a, b) = (Node::start_opts(64, timeout).await, Node::start_opts(64, timeout).await);
    let (hung, _h) = silent_datanode().await;
    let pipeline = [a.addr.clone(), b.addr.clone(), hung.clone()];
    let (resp, _) = open_pipeline(&WriteOp::create(&pipeline, 67)).await;
    assert_eq!(resp.status, TransferStatus::Error as i32, "{resp:?}");
    assert_eq!(resp.first_bad_node, hung, "{resp:?}");
}

/// The last packet says where the sender thinks the block ends: a replica
/// of another length is not finalized (nor reported, nor acked SUCCESS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_packet_at_another_length_than_the_replica_is_refused() {
    let a = Node::start().await;
    let data = payload(P + 1000);
    let mut p = start_block(std::slice::from_ref(&a.addr), 68, &data[..P]).await;
    // The packet with the last 1000 bytes never arrived.
    p.offset += 1000;
    p.finish().await;
    let acks = p.acks(1).await;
    assert_eq!(acks[0].statuses, vec![TransferStatus::ErrorInvalid as i32], "{acks:?}");
    assert!(acks[0].message.contains(&format!("{}", P + 1000)), "{acks:?}");
    assert!(a.storage.replica(68).is_none() && a.sink.0.lock().is_empty());
    drop(p);
    wait_rbw(&a, 68, 1000, P as u64).await;
}
