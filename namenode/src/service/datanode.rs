//! DatanodeProtocol over gRPC.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tusk_proto::dfs::datanode_protocol_server::DatanodeProtocol;
use tusk_proto::dfs::*;

use crate::error::NamenodeError;
use crate::namesystem::Namesystem;

pub(crate) struct DatanodeService {
    pub(crate) ns: Arc<Namesystem>,
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl DatanodeProtocol for DatanodeService {
    async fn register_datanode(&self, req: Request<RegisterDatanodeRequest>) -> Res<RegisterDatanodeResponse> {
        let r = req.into_inner();
        let id = r.id.ok_or_else(|| NamenodeError::invalid("register: missing datanode id"))?;
        let resp = self.ns.register_datanode(r.protocol_version, id, &r.cluster_id, r.storage.unwrap_or_default())?;
        Ok(Response::new(resp))
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Res<HeartbeatResponse> {
        let r = req.into_inner();
        let commands = self.ns.heartbeat(&r.datanode_uuid, r.storage.unwrap_or_default(), r.xceivers);
        Ok(Response::new(HeartbeatResponse { commands }))
    }

    async fn block_report(&self, req: Request<BlockReportRequest>) -> Res<BlockReportResponse> {
        let r = req.into_inner();
        let mut commands = self.ns.block_report(&r.datanode_uuid, &r.replicas);
        commands.extend(self.ns.rbw_report(&r.datanode_uuid, &r.rbw));
        Ok(Response::new(BlockReportResponse { commands }))
    }

    async fn incremental_block_report(&self, req: Request<IncrementalBlockReportRequest>) -> Res<IncrementalBlockReportResponse> {
        let r = req.into_inner();
        self.ns.incremental_report(&r.datanode_uuid, &r.received, &r.deleted)?;
        Ok(Response::new(IncrementalBlockReportResponse {}))
    }

    async fn report_bad_blocks(&self, req: Request<ReportBadBlocksRequest>) -> Res<ReportBadBlocksResponse> {
        self.ns.report_bad_blocks(&req.get_ref().replicas)?;
        Ok(Response::new(ReportBadBlocksResponse {}))
    }

    async fn commit_block_synchronization(
        &self,
        req: Request<CommitBlockSynchronizationRequest>,
    ) -> Res<CommitBlockSynchronizationResponse> {
        self.ns.commit_block_synchronization(req.get_ref()).await?;
        Ok(Response::new(CommitBlockSynchronizationResponse {}))
    }
}
