//! MetastoreProtocol over gRPC. Handlers only translate: check the
//! protocol version, call the [`Metastore`], map the error with the one
//! `From<MetastoreError> for Status` below.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::error::ErrorKind;
use tusk_proto::metastore::metastore_protocol_server::{MetastoreProtocol, MetastoreProtocolServer};
use tusk_proto::metastore::*;

use crate::error::MetastoreError;
use crate::metastore::Metastore;

impl From<MetastoreError> for Status {
    fn from(e: MetastoreError) -> Status {
        let message = e.to_string();
        match e {
            MetastoreError::NotFound(_) => ErrorKind::NotFound.status(message),
            MetastoreError::AlreadyExists(_) => ErrorKind::AlreadyExists.status(message),
            MetastoreError::Invalid(_) => ErrorKind::InvalidArgument.status(message),
            MetastoreError::PermissionDenied(_) => ErrorKind::PermissionDenied.status(message),
            MetastoreError::Incompatible(_) => ErrorKind::Incompatible.status(message),
            MetastoreError::Precondition(_) => Status::failed_precondition(message),
            MetastoreError::Unavailable(_) => Status::unavailable(message),
            MetastoreError::Internal(_) | MetastoreError::Io { .. } | MetastoreError::Db { .. } => {
                ErrorKind::Internal.status(message)
            }
        }
    }
}

/// The gRPC service of a [`Metastore`]; add it to a tonic server with
/// [`server`].
pub struct MetastoreService {
    ms: Arc<Metastore>,
}

/// The tonic service serving `ms` (the jobtracker adds it next to its own).
pub fn server(ms: &Arc<Metastore>) -> MetastoreProtocolServer<MetastoreService> {
    MetastoreProtocolServer::new(MetastoreService { ms: ms.clone() })
}

fn check_version(v: u32) -> Result<(), MetastoreError> {
    if v == PROTOCOL_VERSION {
        return Ok(());
    }
    Err(MetastoreError::Incompatible(format!("client speaks protocol version {v}, this metastore {PROTOCOL_VERSION}")))
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl MetastoreProtocol for MetastoreService {
    async fn create_database(&self, req: Request<CreateDatabaseRequest>) -> Res<CreateDatabaseResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        let created = self.ms.create_database(&r.user, r.database, r.if_not_exists).await?;
        Ok(Response::new(CreateDatabaseResponse { created }))
    }

    async fn drop_database(&self, req: Request<DropDatabaseRequest>) -> Res<DropDatabaseResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        let dropped = self.ms.drop_database(&r.user, &r.name, r.if_exists, r.cascade).await?;
        Ok(Response::new(DropDatabaseResponse { dropped }))
    }

    async fn get_database(&self, req: Request<GetDatabaseRequest>) -> Res<GetDatabaseResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        let database = self.ms.get_database(&r.name)?;
        Ok(Response::new(GetDatabaseResponse { database: Some(database) }))
    }

    async fn list_databases(&self, req: Request<ListDatabasesRequest>) -> Res<ListDatabasesResponse> {
        check_version(req.get_ref().protocol_version)?;
        Ok(Response::new(ListDatabasesResponse { databases: self.ms.list_databases()? }))
    }

    async fn create_table(&self, req: Request<CreateTableRequest>) -> Res<CreateTableResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        let (created, table) = self.ms.create_table(&r.user, r.table, r.if_not_exists).await?;
        Ok(Response::new(CreateTableResponse { created, table: Some(table) }))
    }

    async fn get_tables(&self, req: Request<GetTablesRequest>) -> Res<GetTablesResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        Ok(Response::new(GetTablesResponse { tables: self.ms.get_tables(&r.tables)? }))
    }

    async fn list_tables(&self, req: Request<ListTablesRequest>) -> Res<ListTablesResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        Ok(Response::new(ListTablesResponse { tables: self.ms.list_tables(&r.db)? }))
    }

    async fn drop_table(&self, req: Request<DropTableRequest>) -> Res<DropTableResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        let dropped = self.ms.drop_table(&r.user, r.table.as_ref(), r.if_exists).await?;
        Ok(Response::new(DropTableResponse { dropped }))
    }

    async fn rename_table(&self, req: Request<RenameTableRequest>) -> Res<RenameTableResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        let table = self.ms.rename_table(&r.user, r.from.as_ref(), r.to.as_ref()).await?;
        Ok(Response::new(RenameTableResponse { table: Some(table) }))
    }

    async fn add_partitions(&self, req: Request<AddPartitionsRequest>) -> Res<AddPartitionsResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        let added = self.ms.add_partitions(&r.user, r.table.as_ref(), r.partitions, r.if_not_exists).await?;
        Ok(Response::new(AddPartitionsResponse { added }))
    }

    async fn drop_partitions(&self, req: Request<DropPartitionsRequest>) -> Res<DropPartitionsResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        let dropped = self.ms.drop_partitions(&r.user, r.table.as_ref(), &r.specs, r.if_exists).await?;
        Ok(Response::new(DropPartitionsResponse { dropped }))
    }

    async fn list_partitions(&self, req: Request<ListPartitionsRequest>) -> Res<ListPartitionsResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        Ok(Response::new(ListPartitionsResponse { partitions: self.ms.list_partitions(r.table.as_ref())? }))
    }

    async fn commit_write(&self, req: Request<CommitWriteRequest>) -> Res<CommitWriteResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        Ok(Response::new(self.ms.commit_write(r).await?))
    }

    async fn load_data(&self, req: Request<LoadDataRequest>) -> Res<LoadDataResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        let files = self.ms.load_data(&r.user, r.table.as_ref(), &r.source, &r.partition, r.overwrite).await?;
        Ok(Response::new(LoadDataResponse { files }))
    }

    async fn truncate_table(&self, req: Request<TruncateTableRequest>) -> Res<TruncateTableResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        self.ms.truncate_table(&r.user, r.table.as_ref(), &r.specs).await?;
        Ok(Response::new(TruncateTableResponse {}))
    }

    async fn repair_table(&self, req: Request<RepairTableRequest>) -> Res<RepairTableResponse> {
        let r = req.into_inner();
        check_version(r.protocol_version)?;
        let (added, dropped) = self.ms.repair_table(&r.user, r.table.as_ref(), r.add, r.drop).await?;
        Ok(Response::new(RepairTableResponse { added, dropped }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_codes_with_the_message_verbatim() {
        let s: Status = MetastoreError::table_not_found("db", "t").into();
        assert_eq!(s.code(), tonic::Code::NotFound);
        assert_eq!(s.message(), "table not found: db.t");
        assert_eq!(ErrorKind::of_status(&s), Some(ErrorKind::NotFound));
        let s: Status = MetastoreError::table_exists("db", "t").into();
        assert_eq!((s.code(), s.message()), (tonic::Code::AlreadyExists, "table already exists: db.t"));
        let s: Status = MetastoreError::invalid("bad").into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let s: Status = MetastoreError::Precondition("cannot truncate non-managed table db.t".into()).into();
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        assert_eq!(s.message(), "cannot truncate non-managed table db.t");
        let s: Status = MetastoreError::Unavailable("namenode down".into()).into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        let s: Status = MetastoreError::Internal("x".into()).into();
        assert_eq!(s.code(), tonic::Code::Internal);
        let s: Status = check_version(PROTOCOL_VERSION + 1).unwrap_err().into();
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        assert_eq!(ErrorKind::of_status(&s), Some(ErrorKind::Incompatible));
        assert!(s.message().contains(&format!("{}", PROTOCOL_VERSION + 1)), "{}", s.message());
        assert!(s.message().contains(&format!("metastore {PROTOCOL_VERSION}")), "{}", s.message());
        assert!(check_version(PROTOCOL_VERSION).is_ok());
    }
}
