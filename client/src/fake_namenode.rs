//! A scripted in-process namenode for the client's unit tests: it answers
//! the calls the writer, the readers and the admin API make from a state
//! the test sets up, and records every request so tests can check what the
//! client asked for. Anything else answers "unimplemented".

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use tonic::{Request, Response, Status};
use tusk_proto::dfs::client_protocol_server::{ClientProtocol, ClientProtocolServer};
use tusk_proto::dfs::*;

use crate::{Client, ClientConfig};

/// What the fake answers with, and what it was asked.
#[derive(Debug, Default)]
pub(crate) struct NnState {
    // ---- script ----
    /// Datanodes `add_block` chooses from (the first `replication` not excluded).
    pub datanodes: Vec<DatanodeId>,
    /// Answers of `GetAdditionalDatanode`, one per call (empty: none).
    pub spares: VecDeque<DatanodeId>,
    pub replication: u32,
    pub block_size: u64,
    pub packet_size: u32,
    /// Last generation stamp handed out.
    pub gen_stamp: u64,
    /// Answer of `GetBlockLocations`.
    pub located: Option<LocatedBlocks>,
    /// Answers of `RecoverLease`, one per call (then `true`).
    pub recover_lease: VecDeque<bool>,
    pub safe_mode: SafeModeStatus,
    /// Messages of the `Fsck` stream.
    pub fsck: Vec<FsckResponse>,
    /// Answer of `DatanodeAdmin` and `GetDatanodeReport`.
    pub report: Vec<DatanodeInfo>,
    /// A status every scripted call fails with, when set.
    pub fail_with: Option<(tusk_proto::error::ErrorKind, String)>,
    // ---- record ----
    pub add_block_excluded: Vec<Vec<String>>,
    pub abandoned: Vec<ExtendedBlock>,
    pub completed: Vec<Option<ExtendedBlock>>,
    pub update_block: Vec<ExtendedBlock>,
    pub update_pipeline: Vec<UpdatePipelineRequest>,
    pub additional: Vec<GetAdditionalDatanodeRequest>,
    pub bad_replicas: Vec<BadReplica>,
    pub safe_mode_actions: Vec<i32>,
    pub fsck_requests: Vec<FsckRequest>,
    pub admin: Vec<DatanodeAdminRequest>,
}

/// Shared handle on the fake's state.
#[derive(Clone, Default)]
pub(crate) struct FakeNamenode {
    state: Arc<Mutex<NnState>>,
}

impl FakeNamenode {
    pub(crate) fn state(&self) -> MutexGuard<'_, NnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves on a free loopback port; returns a client of it (short timeouts).
    pub(crate) async fn start(&self) -> Client {
        self.start_with(|_| {}).await
    }

    /// [`start`](Self::start) with the client's configuration adjusted by `tweak`.
    pub(crate) async fn start_with(&self, tweak: impl FnOnce(&mut ClientConfig)) -> Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let svc = ClientProtocolServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let mut config = ClientConfig::new(addr);
        config.socket_timeout_ms = 10_000;
        config.rpc_timeout_ms = 10_000;
        config.short_circuit = false;
        tweak(&mut config);
        Client::connect(config).await.unwrap()
    }

    fn scripted(&self) -> Result<MutexGuard<'_, NnState>, Status> {
        let st = self.state();
        match &st.fail_with {
            Some((kind, message)) => Err(kind.status(message.clone())),
            None => Ok(st),
        }
    }
}

type Res<T> = Result<Response<T>, Status>;

fn nope<T>() -> Res<T> {
    Err(Status::unimplemented("not in the fake namenode"))
}

#[tonic::async_trait]
impl ClientProtocol for FakeNamenode {
    async fn mkdirs(&self, _r: Request<MkdirsRequest>) -> Res<MkdirsResponse> {
        nope()
    }
    async fn create(&self, r: Request<CreateRequest>) -> Res<CreateResponse> {
        let st = self.scripted()?;
        let r = r.into_inner();
        let replication = if r.replication == 0 { st.replication } else { r.replication };
        let status = FileStatus { replication, block_size: st.block_size, under_construction: true, ..Default::default() };
        Ok(Response::new(CreateResponse { status: Some(status) }))
    }
    async fn add_block(&self, r: Request<AddBlockRequest>) -> Res<AddBlockResponse> {
        let mut st = self.scripted()?;
        let r = r.into_inner();
        st.gen_stamp += 1;
        let block = ExtendedBlock { block_id: 1000 + st.add_block_excluded.len() as u64, generation_stamp: st.gen_stamp, num_bytes: 0 };
        let locations: Vec<DatanodeId> = st
            .datanodes
            .iter()
            .filter(|d| !r.excluded_uuids.contains(&d.datanode_uuid))
            .take(st.replication as usize)
            .cloned()
            .collect();
        st.add_block_excluded.push(r.excluded_uuids);
        Ok(Response::new(AddBlockResponse { block: Some(LocatedBlock { block: Some(block), offset: 0, locations }) }))
    }
    async fn abandon_block(&self, r: Request<AbandonBlockRequest>) -> Res<AbandonBlockResponse> {
        let mut st = self.scripted()?;
        st.abandoned.extend(r.into_inner().block);
        Ok(Response::new(AbandonBlockResponse {}))
    }
    async fn complete(&self, r: Request<CompleteRequest>) -> Res<CompleteResponse> {
        let mut st = self.scripted()?;
        st.completed.push(r.into_inner().last);
        Ok(Response::new(CompleteResponse { completed: true }))
    }
    async fn get_block_locations(&self, _r: Request<GetBlockLocationsRequest>) -> Res<GetBlockLocationsResponse> {
        let st = self.scripted()?;
        Ok(Response::new(GetBlockLocationsResponse { blocks: st.located.clone() }))
    }
    async fn get_file_info(&self, _r: Request<GetFileInfoRequest>) -> Res<GetFileInfoResponse> {
        nope()
    }
    async fn get_listing(&self, _r: Request<GetListingRequest>) -> Res<GetListingResponse> {
        nope()
    }
    async fn delete(&self, _r: Request<DeleteRequest>) -> Res<DeleteResponse> {
        nope()
    }
    async fn rename(&self, _r: Request<RenameRequest>) -> Res<RenameResponse> {
        nope()
    }
    async fn set_replication(&self, _r: Request<SetReplicationRequest>) -> Res<SetReplicationResponse> {
        nope()
    }
    async fn set_permission(&self, _r: Request<SetPermissionRequest>) -> Res<SetPermissionResponse> {
        nope()
    }
    async fn set_owner(&self, _r: Request<SetOwnerRequest>) -> Res<SetOwnerResponse> {
        nope()
    }
    async fn set_times(&self, _r: Request<SetTimesRequest>) -> Res<SetTimesResponse> {
        nope()
    }
    async fn get_content_summary(&self, _r: Request<ContentSummaryRequest>) -> Res<ContentSummaryResponse> {
        nope()
    }
    async fn renew_lease(&self, _r: Request<RenewLeaseRequest>) -> Res<RenewLeaseResponse> {
        Ok(Response::new(RenewLeaseResponse {}))
    }
    async fn get_datanode_report(&self, _r: Request<DatanodeReportRequest>) -> Res<DatanodeReportResponse> {
        let st = self.scripted()?;
        Ok(Response::new(DatanodeReportResponse { datanodes: st.report.clone() }))
    }
    async fn get_server_defaults(&self, _r: Request<ServerDefaultsRequest>) -> Res<ServerDefaultsResponse> {
        let st = self.state();
        Ok(Response::new(ServerDefaultsResponse {
            block_size: st.block_size,
            replication: st.replication,
            bytes_per_checksum: 512,
            packet_size: st.packet_size,
            cluster_id: "fake".into(),
            protocol_version: tusk_proto::PROTOCOL_VERSION,
        }))
    }
    async fn update_block_for_pipeline(
        &self,
        r: Request<UpdateBlockForPipelineRequest>,
    ) -> Res<UpdateBlockForPipelineResponse> {
        let mut st = self.scripted()?;
        let block = r.into_inner().block.unwrap_or_default();
        st.update_block.push(block);
        st.gen_stamp += 1;
        let block = ExtendedBlock { generation_stamp: st.gen_stamp, ..block };
        Ok(Response::new(UpdateBlockForPipelineResponse { block: Some(block) }))
    }
    async fn update_pipeline(&self, r: Request<UpdatePipelineRequest>) -> Res<UpdatePipelineResponse> {
        let mut st = self.scripted()?;
        st.update_pipeline.push(r.into_inner());
        Ok(Response::new(UpdatePipelineResponse {}))
    }
    async fn get_additional_datanode(
        &self,
        r: Request<GetAdditionalDatanodeRequest>,
    ) -> Res<GetAdditionalDatanodeResponse> {
        let mut st = self.scripted()?;
        st.additional.push(r.into_inner());
        let datanodes = st.spares.pop_front().into_iter().collect();
        Ok(Response::new(GetAdditionalDatanodeResponse { datanodes }))
    }
    async fn recover_lease(&self, _r: Request<RecoverLeaseRequest>) -> Res<RecoverLeaseResponse> {
        let mut st = self.scripted()?;
        let closed = st.recover_lease.pop_front().unwrap_or(true);
        Ok(Response::new(RecoverLeaseResponse { closed }))
    }
    async fn report_bad_blocks(&self, r: Request<ReportBadBlocksRequest>) -> Res<ReportBadBlocksResponse> {
        let mut st = self.scripted()?;
        st.bad_replicas.extend(r.into_inner().replicas);
        Ok(Response::new(ReportBadBlocksResponse {}))
    }
    async fn set_safe_mode(&self, r: Request<SafeModeRequest>) -> Res<SafeModeStatus> {
        let mut st = self.scripted()?;
        st.safe_mode_actions.push(r.into_inner().action);
        Ok(Response::new(st.safe_mode.clone()))
    }
    type FsckStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<FsckResponse, Status>> + Send>>;
    async fn fsck(&self, r: Request<FsckRequest>) -> Res<Self::FsckStream> {
        let mut st = self.scripted()?;
        st.fsck_requests.push(r.into_inner());
        let items: Vec<Result<FsckResponse, Status>> = st.fsck.iter().cloned().map(Ok).collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }
    async fn datanode_admin(&self, r: Request<DatanodeAdminRequest>) -> Res<DatanodeAdminResponse> {
        let mut st = self.scripted()?;
        st.admin.push(r.into_inner());
        Ok(Response::new(DatanodeAdminResponse { datanodes: st.report.clone() }))
    }
}
