//! [`MetastoreClient`]: the SQL catalog served by the jobtracker
//! (`MetastoreProtocol`): databases, tables, partitions, and the commits
//! that move query output into tables.
//!
//! Objects travel as the wire types of `tusk_proto::metastore`. A refusal
//! comes back as [`ClientError::Namenode`] with the metastore's sentence
//! as is (`table not found: db.t`), so callers can print it; its kind says
//! which refusal it was (`NotFound`, `AlreadyExists`, `InvalidArgument`,
//! `PermissionDenied`, `Incompatible` for a protocol mismatch). A request
//! refused in the current state (a non-empty database, an external table
//! to truncate) is `InvalidArgument` too: the user must change it. An
//! unreachable metastore, or a DFS it cannot reach, is [`ClientError::Io`]
//! naming the metastore.

use std::time::Duration;

use tonic::transport::Channel;
use tusk_proto::PROTOCOL_VERSION;
use tusk_proto::error::ErrorKind;
use tusk_proto::metastore::metastore_protocol_client::MetastoreProtocolClient;
use tusk_proto::metastore::*;

use crate::error::{ClientError, Result};

/// Deadline of one metastore RPC. Commits and loads move every file of a
/// query's output, one namenode call each, so they may take a while.
const RPC_TIMEOUT: Duration = Duration::from_secs(600);

/// A connection to the metastore (the jobtracker's address). Cheap to
/// clone; clones share the channel.
#[derive(Clone)]
pub struct MetastoreClient {
    addr: String,
    rpc: MetastoreProtocolClient<Channel>,
    user: String,
}

impl MetastoreClient {
    /// Prepares a connection to the metastore at `addr` (`host:port`, the
    /// jobtracker's). The channel connects lazily, so this fails only on a
    /// malformed address. Calls act as the current user (`TUSK_USER` or the
    /// OS user).
    pub async fn connect(addr: impl Into<String>) -> Result<MetastoreClient> {
        let addr = addr.into();
        let channel = crate::job::channel("metastore", &addr, RPC_TIMEOUT)?;
        let user = tusk_common::identity::Identity::current().user;
        Ok(MetastoreClient { rpc: MetastoreProtocolClient::new(channel), addr, user })
    }

    /// The same client acting as `user` (the DFS work of its calls is done
    /// as that user).
    pub fn with_user(mut self, user: impl Into<String>) -> MetastoreClient {
        self.user = user.into();
        self
    }

    /// The user calls act as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The metastore's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Creates a database (location empty: `<warehouse>/<name>.db`); false
    /// when it existed and `if_not_exists`.
    pub async fn create_database(&self, database: Database, if_not_exists: bool) -> Result<bool> {
        let req = CreateDatabaseRequest {
            protocol_version: PROTOCOL_VERSION,
            user: self.user.clone(),
            database: Some(database),
            if_not_exists,
        };
        Ok(self.rpc.clone().create_database(req).await.map_err(|s| self.error(s))?.into_inner().created)
    }

    /// Drops a database (its tables too with `cascade`); false when it did
    /// not exist and `if_exists`.
    pub async fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
        let req = DropDatabaseRequest {
            protocol_version: PROTOCOL_VERSION,
            user: self.user.clone(),
            name: name.to_string(),
            if_exists,
            cascade,
        };
        Ok(self.rpc.clone().drop_database(req).await.map_err(|s| self.error(s))?.into_inner().dropped)
    }

    /// A database, `None` when it does not exist.
    pub async fn get_database(&self, name: &str) -> Result<Option<Database>> {
        let req = GetDatabaseRequest { protocol_version: PROTOCOL_VERSION, name: name.to_string() };
        match self.rpc.clone().get_database(req).await {
            Ok(resp) => Ok(resp.into_inner().database),
            Err(s) => none_if_not_found(self.error(s)),
        }
    }

    /// Every database, sorted by name.
    pub async fn list_databases(&self) -> Result<Vec<Database>> {
        let req = ListDatabasesRequest { protocol_version: PROTOCOL_VERSION };
        Ok(self.rpc.clone().list_databases(req).await.map_err(|s| self.error(s))?.into_inner().databases)
    }

    /// Creates a table (location empty: the managed default; an external
    /// table's location must exist). Returns whether it was created and
    /// the table as stored (or as it exists, with `if_not_exists`).
    pub async fn create_table(&self, table: Table, if_not_exists: bool) -> Result<CreateTableResponse> {
        let req = CreateTableRequest {
            protocol_version: PROTOCOL_VERSION,
            user: self.user.clone(),
            table: Some(table),
            if_not_exists,
        };
        Ok(self.rpc.clone().create_table(req).await.map_err(|s| self.error(s))?.into_inner())
    }

    /// The tables among `tables` that exist, in request order.
    pub async fn get_tables(&self, tables: &[TableRef]) -> Result<Vec<Table>> {
        let req = GetTablesRequest { protocol_version: PROTOCOL_VERSION, tables: tables.to_vec() };
        Ok(self.rpc.clone().get_tables(req).await.map_err(|s| self.error(s))?.into_inner().tables)
    }

    /// One table, `None` when it does not exist.
    pub async fn get_table(&self, db: &str, name: &str) -> Result<Option<Table>> {
        Ok(self.get_tables(&[table_ref(db, name)]).await?.into_iter().next())
    }

    /// The tables of a database, sorted by name (`database not found: d`
    /// when it does not exist).
    pub async fn list_tables(&self, db: &str) -> Result<Vec<Table>> {
        let req = ListTablesRequest { protocol_version: PROTOCOL_VERSION, db: db.to_string() };
        Ok(self.rpc.clone().list_tables(req).await.map_err(|s| self.error(s))?.into_inner().tables)
    }

    /// Drops a table (a managed table's data too); false when it did not
    /// exist and `if_exists`.
    pub async fn drop_table(&self, db: &str, name: &str, if_exists: bool) -> Result<bool> {
        let req = DropTableRequest {
            protocol_version: PROTOCOL_VERSION,
            user: self.user.clone(),
            table: Some(table_ref(db, name)),
            if_exists,
        };
        Ok(self.rpc.clone().drop_table(req).await.map_err(|s| self.error(s))?.into_inner().dropped)
    }

    /// Renames a table (moving a managed table's default directory);
    /// returns it as stored.
    pub async fn rename_table(&self, from: TableRef, to: TableRef) -> Result<Table> {
        let req = RenameTableRequest {
            protocol_version: PROTOCOL_VERSION,
            user: self.user.clone(),
            from: Some(from),
            to: Some(to),
        };
        let resp = self.rpc.clone().rename_table(req).await.map_err(|s| self.error(s))?.into_inner();
        resp.table.ok_or_else(|| self.missing("RenameTable", "table"))
    }

    /// Registers partitions; returns those added (existing ones are
    /// skipped with `if_not_exists`, refused otherwise).
    pub async fn add_partitions(
        &self,
        db: &str,
        table: &str,
        partitions: Vec<Partition>,
        if_not_exists: bool,
    ) -> Result<Vec<Partition>> {
        let req = AddPartitionsRequest {
            protocol_version: PROTOCOL_VERSION,
            user: self.user.clone(),
            table: Some(table_ref(db, table)),
            partitions,
            if_not_exists,
        };
        Ok(self.rpc.clone().add_partitions(req).await.map_err(|s| self.error(s))?.into_inner().added)
    }

    /// Drops the partitions matching any of `specs`; returns them.
    pub async fn drop_partitions(
        &self,
        db: &str,
        table: &str,
        specs: Vec<PartitionSpec>,
        if_exists: bool,
    ) -> Result<Vec<Partition>> {
        let req = DropPartitionsRequest {
            protocol_version: PROTOCOL_VERSION,
            user: self.user.clone(),
            table: Some(table_ref(db, table)),
            specs,
            if_exists,
        };
        Ok(self.rpc.clone().drop_partitions(req).await.map_err(|s| self.error(s))?.into_inner().dropped)
    }

    /// A table's partitions, sorted by values.
    pub async fn list_partitions(&self, db: &str, table: &str) -> Result<Vec<Partition>> {
        let req = ListPartitionsRequest { protocol_version: PROTOCOL_VERSION, table: Some(table_ref(db, table)) };
        Ok(self.rpc.clone().list_partitions(req).await.map_err(|s| self.error(s))?.into_inner().partitions)
    }

    /// Moves a query's output from its staging directory into a table (and
    /// creates the table for CTAS) as one step. `protocol_version` and
    /// `user` are filled in from this client.
    pub async fn commit_write(&self, mut req: CommitWriteRequest) -> Result<CommitWriteResponse> {
        req.protocol_version = PROTOCOL_VERSION;
        req.user = self.user.clone();
        Ok(self.rpc.clone().commit_write(req).await.map_err(|s| self.error(s))?.into_inner())
    }

    /// LOAD DATA INPATH: moves `source` (a file, or a directory's files)
    /// into the table or into the partition with values `partition`;
    /// returns the number of files moved.
    pub async fn load_data(
        &self,
        db: &str,
        table: &str,
        source: &str,
        partition: &[String],
        overwrite: bool,
    ) -> Result<u64> {
        let req = LoadDataRequest {
            protocol_version: PROTOCOL_VERSION,
            user: self.user.clone(),
            table: Some(table_ref(db, table)),
            source: source.to_string(),
            partition: partition.to_vec(),
            overwrite,
        };
        Ok(self.rpc.clone().load_data(req).await.map_err(|s| self.error(s))?.into_inner().files)
    }

    /// TRUNCATE TABLE: deletes the data of a managed table, or of the
    /// partitions matching `specs` (every partition when empty).
    pub async fn truncate_table(&self, db: &str, table: &str, specs: Vec<PartitionSpec>) -> Result<()> {
        let req = TruncateTableRequest {
            protocol_version: PROTOCOL_VERSION,
            user: self.user.clone(),
            table: Some(table_ref(db, table)),
            specs,
        };
        self.rpc.clone().truncate_table(req).await.map_err(|s| self.error(s))?;
        Ok(())
    }

    /// MSCK REPAIR TABLE: registers partition directories the catalog
    /// lacks (`add`) and forgets default-location partitions whose
    /// directory is gone (`drop`).
    pub async fn repair_table(&self, db: &str, table: &str, add: bool, drop: bool) -> Result<RepairTableResponse> {
        let req = RepairTableRequest {
            protocol_version: PROTOCOL_VERSION,
            user: self.user.clone(),
            table: Some(table_ref(db, table)),
            add,
            drop,
        };
        Ok(self.rpc.clone().repair_table(req).await.map_err(|s| self.error(s))?.into_inner())
    }

    fn error(&self, status: tonic::Status) -> ClientError {
        status_error(&self.addr, status)
    }

    fn missing(&self, call: &str, field: &str) -> ClientError {
        ClientError::Io {
            context: format!("metastore {}", self.addr),
            source: std::io::Error::other(format!("{call} answered without {field}")),
        }
    }
}

/// A [`TableRef`] from its parts.
fn table_ref(db: &str, name: &str) -> TableRef {
    TableRef { db: db.to_string(), name: name.to_string() }
}

fn none_if_not_found<T>(e: ClientError) -> Result<Option<T>> {
    if e.is_not_found() { Ok(None) } else { Err(e) }
}


/// The one translation of a status from the metastore: a refusal keeps the
/// metastore's sentence and its kind (from the status metadata, else from
/// the code); anything else names the metastore.
fn status_error(addr: &str, status: tonic::Status) -> ClientError {
    let kind = ErrorKind::of_status(&status).or(match status.code() {
        tonic::Code::NotFound => Some(ErrorKind::NotFound),
        tonic::Code::AlreadyExists => Some(ErrorKind::AlreadyExists),
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange | tonic::Code::FailedPrecondition => {
            Some(ErrorKind::InvalidArgument)
        }
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => Some(ErrorKind::PermissionDenied),
        _ => None,
    });
    if let Some(kind) = kind
        && !status.message().is_empty()
    {
        return ClientError::Namenode { kind, message: status.message().to_string() };
    }
    let message = crate::error::status_text(&status);
    ClientError::Io { context: format!("metastore {addr}"), source: std::io::Error::other(message) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_the_sentence_and_the_kind() {
        let e = status_error("jt:1", ErrorKind::NotFound.status("table not found: db.t"));
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), "table not found: db.t");
        let e = status_error("jt:1", ErrorKind::AlreadyExists.status("table already exists: db.t"));
        assert_eq!((e.kind(), e.to_string().as_str()), (Some(ErrorKind::AlreadyExists), "table already exists: db.t"));
        let e = status_error("jt:1", tonic::Status::failed_precondition("cannot truncate non-managed table db.t"));
        assert_eq!(e.kind(), Some(ErrorKind::InvalidArgument));
        assert_eq!(e.to_string(), "cannot truncate non-managed table db.t");
        let e =
            status_error("jt:1", ErrorKind::Incompatible.status("client speaks protocol version 9, this metastore 2"));
        assert_eq!(e.kind(), Some(ErrorKind::Incompatible));
        let e = status_error("jt:1", ErrorKind::Internal.status("internal error: x"));
        assert_eq!((e.kind(), e.to_string().as_str()), (Some(ErrorKind::Internal), "internal error: x"));
        assert!(
            none_if_not_found::<()>(status_error("jt:1", ErrorKind::NotFound.status("database not found: d")))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn unreachable_or_unavailable_names_the_metastore() {
        let e = status_error("jt:9", tonic::Status::unavailable("namenode nn:1: connection refused"));
        assert_eq!(e.kind(), None);
        assert_eq!(e.to_string(), "metastore jt:9: namenode nn:1: connection refused");
        assert!(none_if_not_found::<()>(e).is_err());
    }

    #[tokio::test]
    async fn addresses_are_checked_before_any_call() {
        assert!(MetastoreClient::connect("localhost:8021").await.is_ok());
        let e = MetastoreClient::connect("localhost").await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("metastore address 'localhost'"), "{e}");
        let c = MetastoreClient::connect("h:1").await.unwrap().with_user("alice");
        assert_eq!((c.user(), c.addr()), ("alice", "h:1"));
    }
}
