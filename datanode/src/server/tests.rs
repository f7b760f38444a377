//! A whole datanode (`start`) against a stub namenode served over gRPC.

use super::*;
use crate::test_client::{payload, poll_until, read_block, write_block};
use parking_lot::Mutex;
use tonic::{Request, Response, Status};
use tusk_proto::dfs::datanode_command::Command;
use tusk_proto::dfs::datanode_protocol_server::{DatanodeProtocol, DatanodeProtocolServer};
use tusk_proto::dfs::*;
use tusk_proto::error::ErrorKind;

#[derive(Default)]
struct NnState {
    registrations: Vec<RegisterDatanodeRequest>,
    reports: Vec<BlockReportRequest>,
    incremental: Vec<IncrementalBlockReportRequest>,
    heartbeats: Vec<HeartbeatRequest>,
    bad_blocks: Vec<ReportBadBlocksRequest>,
    commits: Vec<CommitBlockSynchronizationRequest>,
    /// Commands for the next heartbeat answer.
    pending: Vec<DatanodeCommand>,
    /// Commands for the next heartbeat answer to one datanode (by uuid).
    pending_for: std::collections::HashMap<String, Vec<DatanodeCommand>>,
    refuse: bool,
}

#[derive(Clone, Default)]
struct StubNamenode(Arc<Mutex<NnState>>);

#[tonic::async_trait]
impl DatanodeProtocol for StubNamenode {
    async fn register_datanode(
        &self,
        req: Request<RegisterDatanodeRequest>,
    ) -> Result<Response<RegisterDatanodeResponse>, Status> {
        let mut s = self.0.lock();
        if s.refuse {
            return Err(ErrorKind::Incompatible.status("datanode belongs to cluster CID-other, namenode to CID-test"));
        }
        s.registrations.push(req.into_inner());
        Ok(Response::new(RegisterDatanodeResponse {
            cluster_id: "CID-test".into(),
            heartbeat_interval_ms: 20,
            block_report_interval_ms: 3_600_000,
        }))
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let mut s = self.0.lock();
        let req = req.into_inner();
        let mut commands = std::mem::take(&mut s.pending);
        commands.extend(s.pending_for.remove(&req.datanode_uuid).unwrap_or_default());
        s.heartbeats.push(req);
        Ok(Response::new(HeartbeatResponse { commands }))
    }

    async fn block_report(&self, req: Request<BlockReportRequest>) -> Result<Response<BlockReportResponse>, Status> {
        self.0.lock().reports.push(req.into_inner());
        Ok(Response::new(BlockReportResponse::default()))
    }

    async fn incremental_block_report(
        &self,
        req: Request<IncrementalBlockReportRequest>,
    ) -> Result<Response<IncrementalBlockReportResponse>, Status> {
        self.0.lock().incremental.push(req.into_inner());
        Ok(Response::new(IncrementalBlockReportResponse::default()))
    }

    async fn report_bad_blocks(&self, req: Request<ReportBadBlocksRequest>) -> Result<Response<ReportBadBlocksResponse>, Status> {
        self.0.lock().bad_blocks.push(req.into_inner());
        Ok(Response::new(ReportBadBlocksResponse::default()))
    }

    async fn commit_block_synchronization(
        &self,
        req: Request<CommitBlockSynchronizationRequest>,
    ) -> Result<Response<CommitBlockSynchronizationResponse>, Status> {
        self.0.lock().commits.push(req.into_inner());
        Ok(Response::new(CommitBlockSynchronizationResponse::default()))
    }
}

async fn serve_stub(stub: StubNamenode) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DatanodeProtocolServer::new(stub))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

fn config(dir: &Path, namenode: &str) -> DatanodeConfig {
    DatanodeConfig {
        data_dirs: vec![dir.join("d1"), dir.join("d2")],
        namenode_addr: namenode.to_string(),
        transfer_addr: "127.0.0.1:0".into(),
        addr_file: Some(dir.join("run/dn.addr")),
        socket_timeout_ms: 20_000,
        domain_socket_path: Some(dir.join("run/dn.sock")),
        ..Default::default()
    }
}

mod recovery;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_reports_blocks_and_obeys_commands() {
    let t = tempfile::tempdir().unwrap();
    let stub = StubNamenode::default();
    let nn = serve_stub(stub.clone()).await;
    let handle = start(config(t.path(), &nn)).await.unwrap();
    let addr = handle.transfer_addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_eq!(std::fs::read_to_string(t.path().join("run/dn.addr")).unwrap().trim(), addr.to_string());

    poll_until("registration and first block report", || !stub.0.lock().reports.is_empty()).await;
    {
        let s = stub.0.lock();
        let reg = &s.registrations[0];
        assert_eq!(reg.cluster_id, "");
        assert_eq!(reg.protocol_version, tusk_proto::PROTOCOL_VERSION);
        let id = reg.id.clone().unwrap();
        assert_eq!(id.datanode_uuid, handle.datanode_uuid());
        assert_eq!(id.transfer_addr, addr.to_string());
        assert_eq!(id.host, "127.0.0.1");
        assert_eq!(id.domain_socket_path, t.path().join("run/dn.sock").to_str().unwrap());
        assert!(s.reports[0].replicas.is_empty());
    }
    for d in ["d1", "d2"] {
        let v = std::fs::read_to_string(t.path().join(d).join("VERSION")).unwrap();
        assert!(v.contains("CID-test"), "{v}");
    }

    // A written block is reported before its last ack arrives.
    let data = payload(70_000);
    let (_, acks) = write_block(&[addr.to_string()], 501, &data, None).await;
    assert_eq!(acks.len(), 3);
    assert!(acks.iter().all(|a| a.statuses == vec![TransferStatus::Success as i32]));
    {
        let s = stub.0.lock();
        let received: Vec<_> = s.incremental.iter().flat_map(|r| r.received.clone()).collect();
        assert_eq!(received, vec![ReplicaReport { block_id: 501, generation_stamp: 1000, num_bytes: 70_000 }]);
    }
    poll_until("a heartbeat showing the used space", || {
        stub.0.lock().heartbeats.last().and_then(|h| h.storage).is_some_and(|s| s.dfs_used > 70_000 && s.capacity > 0)
    })
    .await;

    // DeleteBlocks: the replica goes, then an incremental report says so.
    let delete = DeleteBlocksCommand { blocks: vec![ExtendedBlock { block_id: 501, generation_stamp: 1000, num_bytes: 0 }] };
    stub.0.lock().pending.push(DatanodeCommand { command: Some(Command::Delete(delete)) });
    poll_until("the deletion report", || stub.0.lock().incremental.iter().any(|r| !r.deleted.is_empty())).await;
    assert!(read_block(&addr.to_string(), 501, 0, 10).await.is_err());

    // Reregister: registers again (now with the cluster id) and reports again.
    stub.0.lock().pending.push(DatanodeCommand { command: Some(Command::Reregister(true)) });
    poll_until("the second registration", || stub.0.lock().reports.len() >= 2).await;
    assert_eq!(stub.0.lock().registrations[1].cluster_id, "CID-test");
    let uuid = handle.datanode_uuid().to_string();
    assert!(t.path().join("run/dn.sock").exists());
    handle.shutdown().await.unwrap();
    assert!(!t.path().join("run/dn.sock").exists(), "the domain socket is removed at shutdown");

    // A restart keeps the identity.
    let handle = start(config(t.path(), &nn)).await.unwrap();
    assert_eq!(handle.datanode_uuid(), uuid);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_fatal_and_an_absent_namenode_is_not() {
    let t = tempfile::tempdir().unwrap();
    let stub = StubNamenode::default();
    stub.0.lock().refuse = true;
    let nn = serve_stub(stub).await;
    let mut handle = start(config(t.path(), &nn)).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), handle.fatal_error()).await.unwrap();
    assert!(matches!(e, DatanodeError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("CID-other"), "{e}");
    handle.shutdown().await.unwrap();

    // Nobody listens at the namenode address: the datanode still serves.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nn = gone.local_addr().unwrap().to_string();
    drop(gone);
    let t = tempfile::tempdir().unwrap();
    let mut cfg = config(t.path(), &nn);
    cfg.addr_file = None;
    let mut handle = start(cfg).await.unwrap();
    let e = read_block(&handle.transfer_addr().to_string(), 1, 0, 1).await.unwrap_err();
    assert!(e.contains("no finalized replica"), "{e}");
    assert!(tokio::time::timeout(Duration::from_millis(300), handle.fatal_error()).await.is_err());
    handle.shutdown().await.unwrap();
}
