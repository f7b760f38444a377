//! ClientProtocol over gRPC.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tusk_proto::dfs::client_protocol_server::ClientProtocol;
use tusk_proto::dfs::*;

use super::{caller, client_host};
use crate::error::NamenodeError;
use crate::namesystem::Namesystem;

pub(crate) struct ClientService {
    pub(crate) ns: Arc<Namesystem>,
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ClientProtocol for ClientService {
    async fn mkdirs(&self, req: Request<MkdirsRequest>) -> Res<MkdirsResponse> {
        let r = req.get_ref();
        self.ns.mkdirs(caller(&r.caller)?, &r.path, r.permission, r.create_parent).await?;
        Ok(Response::new(MkdirsResponse {}))
    }

    async fn create(&self, req: Request<CreateRequest>) -> Res<CreateResponse> {
        let r = req.get_ref();
        let status = self
            .ns
            .create(caller(&r.caller)?, &r.path, r.permission, r.overwrite, r.create_parent, r.replication, r.block_size)
            .await?;
        Ok(Response::new(CreateResponse { status: Some(status) }))
    }

    async fn add_block(&self, req: Request<AddBlockRequest>) -> Res<AddBlockResponse> {
        let host = client_host(&req, &req.get_ref().client_host);
        let r = req.get_ref();
        let block = self
            .ns
            .add_block(caller(&r.caller)?, &r.path, r.previous.as_ref(), &r.excluded_uuids, &host)
            .await?;
        Ok(Response::new(AddBlockResponse { block: Some(block) }))
    }

    async fn abandon_block(&self, req: Request<AbandonBlockRequest>) -> Res<AbandonBlockResponse> {
        let r = req.get_ref();
        let block = r.block.as_ref().ok_or_else(|| NamenodeError::invalid(format!("{}: abandon_block without a block", r.path)))?;
        self.ns.abandon_block(caller(&r.caller)?, &r.path, block).await?;
        Ok(Response::new(AbandonBlockResponse {}))
    }

    async fn complete(&self, req: Request<CompleteRequest>) -> Res<CompleteResponse> {
        let r = req.get_ref();
        let completed = self.ns.complete(caller(&r.caller)?, &r.path, r.last.as_ref()).await?;
        Ok(Response::new(CompleteResponse { completed }))
    }

    async fn get_block_locations(&self, req: Request<GetBlockLocationsRequest>) -> Res<GetBlockLocationsResponse> {
        let host = client_host(&req, &req.get_ref().client_host);
        let r = req.get_ref();
        let blocks = self.ns.get_block_locations(caller(&r.caller)?, &r.path, r.offset, r.length, &host)?;
        Ok(Response::new(GetBlockLocationsResponse { blocks: Some(blocks) }))
    }

    async fn get_file_info(&self, req: Request<GetFileInfoRequest>) -> Res<GetFileInfoResponse> {
        let r = req.get_ref();
        let status = self.ns.get_file_info(caller(&r.caller)?, &r.path)?;
        Ok(Response::new(GetFileInfoResponse { status }))
    }

    async fn get_listing(&self, req: Request<GetListingRequest>) -> Res<GetListingResponse> {
        let r = req.get_ref();
        let l = self.ns.get_listing(caller(&r.caller)?, &r.path, &r.start_after, r.limit)?;
        Ok(Response::new(GetListingResponse { entries: l.entries, remaining: l.remaining, is_file: l.is_file }))
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Res<DeleteResponse> {
        let r = req.get_ref();
        let deleted = self.ns.delete(caller(&r.caller)?, &r.path, r.recursive).await?;
        Ok(Response::new(DeleteResponse { deleted }))
    }

    async fn rename(&self, req: Request<RenameRequest>) -> Res<RenameResponse> {
        let r = req.get_ref();
        self.ns.rename(caller(&r.caller)?, &r.src, &r.dst, r.overwrite).await?;
        Ok(Response::new(RenameResponse {}))
    }

    async fn set_replication(&self, req: Request<SetReplicationRequest>) -> Res<SetReplicationResponse> {
        let r = req.get_ref();
        self.ns.set_replication(caller(&r.caller)?, &r.path, r.replication).await?;
        Ok(Response::new(SetReplicationResponse {}))
    }

    async fn set_permission(&self, req: Request<SetPermissionRequest>) -> Res<SetPermissionResponse> {
        let r = req.get_ref();
        self.ns.set_permission(caller(&r.caller)?, &r.path, r.permission).await?;
        Ok(Response::new(SetPermissionResponse {}))
    }

    async fn set_owner(&self, req: Request<SetOwnerRequest>) -> Res<SetOwnerResponse> {
        let r = req.get_ref();
        self.ns.set_owner(caller(&r.caller)?, &r.path, &r.owner, &r.group).await?;
        Ok(Response::new(SetOwnerResponse {}))
    }

    async fn set_times(&self, req: Request<SetTimesRequest>) -> Res<SetTimesResponse> {
        let r = req.get_ref();
        self.ns.set_times(caller(&r.caller)?, &r.path, r.modification_time_ms, r.access_time_ms).await?;
        Ok(Response::new(SetTimesResponse {}))
    }

    async fn get_content_summary(&self, req: Request<ContentSummaryRequest>) -> Res<ContentSummaryResponse> {
        let r = req.get_ref();
        let summary = self.ns.content_summary(caller(&r.caller)?, &r.path)?;
        Ok(Response::new(ContentSummaryResponse { summary: Some(summary) }))
    }

    async fn renew_lease(&self, req: Request<RenewLeaseRequest>) -> Res<RenewLeaseResponse> {
        self.ns.renew_lease(caller(&req.get_ref().caller)?)?;
        Ok(Response::new(RenewLeaseResponse {}))
    }

    async fn get_datanode_report(&self, _req: Request<DatanodeReportRequest>) -> Res<DatanodeReportResponse> {
        Ok(Response::new(DatanodeReportResponse { datanodes: self.ns.datanode_report() }))
    }

    async fn get_server_defaults(&self, _req: Request<ServerDefaultsRequest>) -> Res<ServerDefaultsResponse> {
        Ok(Response::new(self.ns.server_defaults()))
    }

    async fn update_block_for_pipeline(&self, req: Request<UpdateBlockForPipelineRequest>) -> Res<UpdateBlockForPipelineResponse> {
        let r = req.get_ref();
        let block = r.block.as_ref().ok_or_else(|| NamenodeError::invalid(format!("{}: update_block_for_pipeline without a block", r.path)))?;
        let block = self.ns.update_block_for_pipeline(caller(&r.caller)?, &r.path, block).await?;
        Ok(Response::new(UpdateBlockForPipelineResponse { block: Some(block) }))
    }

    async fn update_pipeline(&self, req: Request<UpdatePipelineRequest>) -> Res<UpdatePipelineResponse> {
        let r = req.get_ref();
        let block = r.block.as_ref().ok_or_else(|| NamenodeError::invalid(format!("{}: update_pipeline without a block", r.path)))?;
        self.ns.update_pipeline(caller(&r.caller)?, &r.path, block, &r.datanode_uuids).await?;
        Ok(Response::new(UpdatePipelineResponse {}))
    }

    async fn get_additional_datanode(&self, req: Request<GetAdditionalDatanodeRequest>) -> Res<GetAdditionalDatanodeResponse> {
        let host = client_host(&req, &req.get_ref().client_host);
        let r = req.get_ref();
        let block = r.block.as_ref().ok_or_else(|| NamenodeError::invalid(format!("{}: get_additional_datanode without a block", r.path)))?;
        let datanodes = self.ns.get_additional_datanode(
            caller(&r.caller)?,
            &r.path,
            block,
            &r.existing_uuids,
            &r.excluded_uuids,
            r.num_additional,
            &host,
        )?;
        Ok(Response::new(GetAdditionalDatanodeResponse { datanodes }))
    }

    async fn recover_lease(&self, req: Request<RecoverLeaseRequest>) -> Res<RecoverLeaseResponse> {
        let r = req.get_ref();
        let closed = self.ns.recover_lease(caller(&r.caller)?, &r.path).await?;
        Ok(Response::new(RecoverLeaseResponse { closed }))
    }

    async fn report_bad_blocks(&self, req: Request<ReportBadBlocksRequest>) -> Res<ReportBadBlocksResponse> {
        self.ns.report_bad_blocks(&req.get_ref().replicas)?;
        Ok(Response::new(ReportBadBlocksResponse {}))
    }

    async fn set_safe_mode(&self, req: Request<SafeModeRequest>) -> Res<SafeModeStatus> {
        let r = req.get_ref();
        let action = SafeModeAction::try_from(r.action)
            .map_err(|_| NamenodeError::invalid(format!("safe mode: unknown action {}", r.action)))?;
        Ok(Response::new(self.ns.set_safe_mode(caller(&r.caller)?, action)?))
    }

    type FsckStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<FsckResponse, Status>> + Send>>;

    async fn fsck(&self, req: Request<FsckRequest>) -> Res<Self::FsckStream> {
        let r = req.get_ref();
        let mut run = self.ns.start_fsck(caller(&r.caller)?, r)?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let ns = self.ns.clone();
        // Each message is built under the namesystem locks, released before
        // it is sent: a slow reader holds nothing.
        tokio::task::spawn_blocking(move || {
            while let Some(msg) = ns.fsck_next(&mut run) {
                if tx.blocking_send(Ok(msg)).is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn datanode_admin(&self, req: Request<DatanodeAdminRequest>) -> Res<DatanodeAdminResponse> {
        let r = req.get_ref();
        let action = AdminAction::try_from(r.action)
            .map_err(|_| NamenodeError::invalid(format!("datanode admin: unknown action {}", r.action)))?;
        let (ns, who, node) = (self.ns.clone(), caller(&r.caller)?.clone(), r.node.clone());
        // The decision is persisted (file write and fsync) before the answer:
        // off the async runtime's threads.
        let datanodes = tokio::task::spawn_blocking(move || ns.datanode_admin(&who, &node, action))
            .await
            .map_err(|e| NamenodeError::Internal(format!("datanode admin: {e}")))??;
        Ok(Response::new(DatanodeAdminResponse { datanodes }))
    }
}
