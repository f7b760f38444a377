//! Two datanodes' transfer servers in-process, a test client speaking the
//! async framing, and a recording sink instead of a namenode.

use super::*;
use parking_lot::Mutex;
use crate::test_client::{block, dn_id, payload, poll_until, read_block, write_block};
use tokio::net::TcpStream as AsyncStream;
use tusk_proto::dfs::{DatanodeId, ExtendedBlock, OpWriteBlock, PipelineAck};
use tusk_proto::transfer::{compute_checksums, read_message_async, write_message_async};

#[derive(Default)]
struct Recorder(Mutex<Vec<ReplicaReport>>);

impl BlockReceivedSink for Recorder {
    fn block_received(&self, replica: ReplicaReport) -> Result<(), DatanodeError> {
        self.0.lock().push(replica);
        Ok(())
    }
}

struct Node {
    addr: String,
    storage: Arc<Storage>,
    sink: Arc<Recorder>,
    xceivers: Arc<Xceivers>,
    dir: tempfile::TempDir,
    server: TransferServer,
}

impl Node {
    async fn start() -> Node {
        Node::start_with(64).await
    }

    async fn start_with(max_xceivers: u32) -> Node {
        Node::start_opts(max_xceivers, Duration::from_secs(20)).await
    }

    async fn start_opts(max_xceivers: u32, socket_timeout: Duration) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(Storage::open(&[dir.path().join("d")], 0, false).unwrap());
        let listener = TransferServer::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sink = Arc::new(Recorder::default());
        let xceivers: Arc<Xceivers> = Arc::default();
        let ctx = Arc::new(TransferContext {
            storage: Arc::clone(&storage),
            sink: sink.clone(),
            self_addr: addr.clone(),
            socket_timeout,
            max_xceivers,
            xceivers: Arc::clone(&xceivers),
        });
        let server = TransferServer::spawn(listener, ctx);
        Node { addr, storage, sink, xceivers, dir, server }
    }

    fn ctx_xceivers(&self) -> u32 {
        self.xceivers.count()
    }

    fn id(&self) -> DatanodeId {
        dn_id(&self.addr)
    }

    fn leaf(&self, block_id: u64) -> std::path::PathBuf {
        self.dir.path().join("d/current/finalized").join(crate::storage::finalized_subdir_for_tests(block_id))
    }

    fn rbw_is_empty(&self) -> bool {
        std::fs::read_dir(self.dir.path().join("d/current/rbw")).unwrap().next().is_none()
    }
}



mod heartbeat;
mod recovery;

fn all_ok(acks: &[PipelineAck], n_nodes: usize) {
    for (i, a) in acks.iter().enumerate() {
        assert_eq!(a.seqno, i as u64);
        assert_eq!(a.statuses, vec![TransferStatus::Success as i32; n_nodes], "{a:?}");
    }
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_node_pipeline_stores_identical_replicas_and_reads_back() {
    let (a, b) = (Node::start().await, Node::start().await);
    let data = payload(200 * 1024 + 17);
    let id = 0x12_3456;
    let (resp, acks) = write_block(&[a.addr.clone(), b.addr.clone()], id, &data, None).await;
    assert_eq!(resp.status, TransferStatus::Success as i32, "{resp:?}");
    assert_eq!(acks.len(), 5);
    all_ok(&acks, 2);
    // The last ack means both nodes already reported the replica.
    let want = ReplicaReport { block_id: id, generation_stamp: 1000, num_bytes: data.len() as u64 };
    assert_eq!(*a.sink.0.lock(), vec![want]);
    assert_eq!(*b.sink.0.lock(), vec![want]);

    let mut sums = Vec::new();
    compute_checksums(&data, 512, &mut sums);
    for n in [&a, &b] {
        let leaf = n.leaf(id);
        assert_eq!(std::fs::read(leaf.join(format!("blk_{id}"))).unwrap(), data);
        let meta = std::fs::read(leaf.join(format!("blk_{id}_1000.meta"))).unwrap();
        assert_eq!(&meta[..7], &[0, 1, 1, 0, 0, 2, 0]);
        assert_eq!(&meta[7..], &sums[..]);
        assert!(n.rbw_is_empty());
    }
    for n in [&a, &b] {
        assert_eq!(read_block(&n.addr, id, 0, data.len() as u64).await.unwrap(), data);
        assert_eq!(read_block(&n.addr, id, 1000, 3000).await.unwrap(), &data[1000..4000]);
        assert_eq!(read_block(&n.addr, id, 0, 10).await.unwrap(), &data[..10]);
        let tail = data.len() as u64 - 5;
        assert_eq!(read_block(&n.addr, id, tail, 5).await.unwrap(), &data[tail as usize..]);
    }
    let e = read_block(&a.addr, id, 10, data.len() as u64).await.unwrap_err();
    assert!(e.contains("beyond"), "{e}");

    // A second write of the same block is refused by the first node.
    let (resp, _) = write_block(&[a.addr.clone(), b.addr.clone()], id, &data, None).await;
    assert_eq!(resp.status, TransferStatus::ErrorExists as i32);
    assert_eq!(resp.first_bad_node, a.addr);
    a.server.stop().await;
    b.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_packet_is_refused_and_leaves_no_replica() {
    let (a, b) = (Node::start().await, Node::start().await);
    let data = payload(150_000);
    let (resp, acks) = write_block(&[a.addr.clone(), b.addr.clone()], 77, &data, Some(1)).await;
    assert_eq!(resp.status, TransferStatus::Success as i32);
    let last = acks.last().unwrap();
    assert_eq!(last.seqno, 1);
    assert_eq!(last.statuses, vec![TransferStatus::ErrorChecksum as i32]);
    assert!(last.message.contains("checksum"), "{last:?}");
    all_ok(&acks[..1], 2);
    assert!(a.storage.replica(77).is_none() && a.rbw_is_empty());
    assert_eq!(a.storage.rbw_replica(77), None);
    // The downstream got the good first packet only and keeps it for a
    // recovery, once its upstream went away.
    poll_until("the downstream writer to let go", || b.storage.rbw_replica(77) == Some((1000, 65536, false))).await;
    assert!(b.storage.replica(77).is_none());
    assert!(a.sink.0.lock().is_empty() && b.sink.0.lock().is_empty());
    // The block can be written again afterwards (the leftover is replaced).
    let (_, acks) = write_block(&[a.addr.clone(), b.addr.clone()], 77, &data, None).await;
    all_ok(&acks, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_block_and_bad_pipeline_are_reported() {
    let a = Node::start().await;
    let e = read_block(&a.addr, 999, 0, 1).await.unwrap_err();
    assert!(e.starts_with(&format!("status {}", TransferStatus::ErrorInvalid as i32)), "{e}");
    assert!(e.contains("999"), "{e}");
    // A downstream node that does not listen is named as the bad node.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_addr = gone.local_addr().unwrap().to_string();
    drop(gone);
    let ghost = DatanodeId { datanode_uuid: "x".into(), transfer_addr: gone_addr.clone(), host: "127.0.0.1".into(), ..Default::default() };
    let stream = AsyncStream::connect(&a.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let op = OpWriteBlock { block: block(5, 1), downstream: vec![ghost], client_name: "c".into(), stage: 0, recovery_length: 0 };
    let req = OpRequest { protocol_version: PROTOCOL_VERSION, op: Some(Op::WriteBlock(op)) };
    write_message_async(&mut wr, &req).await.unwrap();
    let resp: OpResponse = read_message_async(&mut rd).await.unwrap();
    assert_eq!(resp.status, TransferStatus::Error as i32);
    assert_eq!(resp.first_bad_node, gone_addr);
    poll_until("the replica to be abandoned", || a.rbw_is_empty()).await;
    // A peer speaking another protocol version is refused.
    let mut s = AsyncStream::connect(&a.addr).await.unwrap();
    write_message_async(&mut s, &OpRequest { protocol_version: 99, op: None }).await.unwrap();
    let resp: OpResponse = read_message_async(&mut s).await.unwrap();
    assert_eq!(resp.status, TransferStatus::ErrorInvalid as i32);
    assert!(resp.message.contains("99"), "{resp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_disk_corruption_reaches_the_reader() {
    let a = Node::start().await;
    let data = payload(10_000);
    let (_, acks) = write_block(std::slice::from_ref(&a.addr), 31, &data, None).await;
    all_ok(&acks, 1);
    let path = a.leaf(31).join("blk_31");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[6000] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let e = read_block(&a.addr, 31, 0, 10_000).await.unwrap_err();
    assert!(e.contains("checksum error in chunk 11"), "{e}");
    // Ranges before the damage still read fine.
    assert_eq!(read_block(&a.addr, 31, 0, 5000).await.unwrap(), &data[..5000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_pushed_to_other_datanodes() {
    let (a, b, c) = (Node::start().await, Node::start().await, Node::start().await);
    let data = payload(300_000);
    let (_, acks) = write_block(std::slice::from_ref(&a.addr), 42, &data, None).await;
    all_ok(&acks, 1);
    let storage = Arc::clone(&a.storage);
    let targets = vec![b.id(), c.id()];
    tokio::task::spawn_blocking(move || {
        push_replica_for_tests(&storage, &targets)
    })
    .await
    .unwrap()
    .unwrap();
    for n in [&b, &c] {
        assert_eq!(n.sink.0.lock().len(), 1);
        assert_eq!(read_block(&n.addr, 42, 0, data.len() as u64).await.unwrap(), data);
    }
    // Pushing to a node that has it already fails, naming that node.
    let storage = Arc::clone(&a.storage);
    let targets = vec![b.id()];
    let e = tokio::task::spawn_blocking(move || push_replica_for_tests(&storage, &targets)).await.unwrap().unwrap_err();
    assert!(e.to_string().contains(&b.addr), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_refused_with_a_checksum_error_makes_the_replica_a_suspect() {
    let (a, b) = (Node::start().await, Node::start().await);
    let data = payload(100_000);
    let (_, acks) = write_block(std::slice::from_ref(&a.addr), 42, &data, None).await;
    all_ok(&acks, 1);
    let path = a.leaf(42).join("blk_42");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[70_000] ^= 4;
    std::fs::write(&path, &bytes).unwrap();
    let storage = Arc::clone(&a.storage);
    let targets = vec![b.id()];
    let e = tokio::task::spawn_blocking(move || push_replica_for_tests(&storage, &targets)).await.unwrap().unwrap_err();
    assert!(matches!(e, DatanodeError::PeerChecksum { .. }), "{e}");
    assert!(e.to_string().contains(&b.addr), "{e}");
    assert!(a.storage.scan_queue.is_suspect(42));
    // The receiver kept nothing of it.
    poll_until("the receiver to drop the copy", || b.rbw_is_empty()).await;
    assert!(b.storage.replica(42).is_none() && b.storage.rbw_replica(42).is_none());
}

fn push_replica_for_tests(storage: &Storage, targets: &[DatanodeId]) -> Result<(), DatanodeError> {
    let blk = ExtendedBlock { block_id: 42, generation_stamp: 1000, num_bytes: 0 };
    push::push_replica(storage, &blk, targets, "datanode-test", Duration::from_secs(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_xceivers_are_refused() {
    use tokio::io::AsyncReadExt;
    let a = Node::start_with(1).await;
    let held = AsyncStream::connect(&a.addr).await.unwrap();
    poll_until("the first connection to be counted", || a.ctx_xceivers() == 1).await;
    let mut second = AsyncStream::connect(&a.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), second.read(&mut buf)).await.unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    drop(held);
    poll_until("the slot to be released", || a.ctx_xceivers() == 0).await;
    assert!(read_block(&a.addr, 1, 0, 1).await.unwrap_err().contains("no finalized replica"));
}
