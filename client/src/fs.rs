//! [`Client`]: the namespace operations, and the entry points to reading and
//! writing files.

mod admin;
mod fsck;
mod types;

pub use admin::{SafeModeAction, SafeModeStatus};
pub use fsck::{BlockProblem, FsckBlock, FsckFile, FsckOptions, FsckReplica, FsckReplicaState, FsckReport, FsckSummary};
pub use types::{AdminState, BlockLocation, ContentSummary, CreateOptions, DatanodeInfo, FileStatus, ServerDefaults};

use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::OnceCell;
use tusk_common::path;
use tusk_proto::dfs;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::lease_renewer::{LeaseGuard, LeaseRenewer};
use crate::namenode_rpc::NamenodeRpc;
use crate::reader::FileReader;
use crate::writer::FileWriter;

/// A connection to a Tusk cluster. Cheap to clone; clones share the channel,
/// the identity and the lease renewer.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    rpc: NamenodeRpc,
    defaults: OnceCell<ServerDefaults>,
    leases: LeaseRenewer,
    /// This host's addresses for short-circuit locality (found once).
    local_ips: OnceCell<Vec<std::net::IpAddr>>,
}

impl Client {
    /// Prepares a connection to `config.namenode`. The channel connects
    /// lazily, so this fails only on a malformed address (the error names it).
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        let identity = match (&config.user, &config.groups) {
            (Some(u), Some(g)) => tusk_common::identity::Identity { user: u.clone(), groups: g.clone() },
            _ => {
                let me = tusk_common::identity::Identity::current();
                match (&config.user, &config.groups) {
                    (None, Some(g)) => tusk_common::identity::Identity { user: me.user, groups: g.clone() },
                    // Another user than ourselves: we do not know its groups.
                    (Some(u), None) if *u != me.user => {
                        tusk_common::identity::Identity { user: u.clone(), groups: Vec::new() }
                    }
                    _ => me,
                }
            }
        };
        let caller = dfs::Caller {
            user: identity.user,
            groups: identity.groups,
            client_name: format!("DFSClient_{}", uuid::Uuid::new_v4().simple()),
        };
        let rpc = NamenodeRpc::new(&config, caller)?;
        let leases = LeaseRenewer::new(rpc.clone());
        let inner = Inner { config, rpc, defaults: OnceCell::new(), leases, local_ips: OnceCell::new() };
        Ok(Client { inner: Arc::new(inner) })
    }

    /// The user this client acts as.
    pub fn user(&self) -> &str {
        &self.inner.rpc.caller_ref().user
    }

    /// This client's unique name (the lease holder of the files it writes).
    pub fn client_name(&self) -> &str {
        &self.inner.rpc.caller_ref().client_name
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Addresses of this host besides loopback (the route to the namenode).
    pub(crate) async fn local_ips(&self) -> &[std::net::IpAddr] {
        self.inner
            .local_ips
            .get_or_init(|| crate::reader::local_addresses(&self.inner.config.namenode))
            .await
    }

    pub(crate) fn rpc(&self) -> &NamenodeRpc {
        &self.inner.rpc
    }

    pub(crate) fn register_writer(&self) -> LeaseGuard {
        self.inner.leases.register()
    }

    /// The cluster's defaults (fetched once per client).
    pub async fn server_defaults(&self) -> Result<ServerDefaults> {
        let rpc = &self.inner.rpc;
        let d = self
            .inner
            .defaults
            .get_or_try_init(|| async {
                let resp = rpc.stub().get_server_defaults(dfs::ServerDefaultsRequest {}).await.map_err(|s| rpc.error(s))?;
                Ok::<_, ClientError>(ServerDefaults::from_proto(resp.into_inner()))
            })
            .await?;
        Ok(d.clone())
    }

    /// Creates the directory `path` (and its parents with `create_parent`).
    pub async fn mkdirs(&self, path: &str, permission: Option<u32>, create_parent: bool) -> Result<()> {
        let path = path::normalize(path)?;
        let rpc = &self.inner.rpc;
        let req = dfs::MkdirsRequest { caller: rpc.caller(), path, permission: permission.unwrap_or(0), create_parent };
        rpc.stub().mkdirs(req).await.map_err(|s| rpc.error(s))?;
        Ok(())
    }

    /// Creates a file and returns a writer for it. The file is visible (under
    /// construction) at once and closed by [`FileWriter::close`].
    pub async fn create(&self, path: &str, opts: CreateOptions) -> Result<FileWriter> {
        let path = path::normalize(path)?;
        if opts.replication == Some(0) {
            return Err(ClientError::InvalidArgument { path, message: "replication must be at least 1".into() });
        }
        if opts.block_size == Some(0) {
            return Err(ClientError::InvalidArgument { path, message: "block size must be at least 1 byte".into() });
        }
        let defaults = self.server_defaults().await?;
        let rpc = &self.inner.rpc;
        let req = dfs::CreateRequest {
            caller: rpc.caller(),
            path: path.clone(),
            permission: opts.permission.unwrap_or(0),
            overwrite: opts.overwrite,
            create_parent: opts.create_parent,
            replication: opts.replication.unwrap_or(0),
            block_size: opts.block_size.unwrap_or(0),
        };
        let resp = rpc.stub().create(req).await.map_err(|s| rpc.error(s))?.into_inner();
        let block_size = resp
            .status
            .as_ref()
            .map(|s| s.block_size)
            .filter(|b| *b > 0)
            .or(opts.block_size)
            .unwrap_or(defaults.block_size);
        if block_size == 0 {
            return Err(ClientError::InvalidArgument { path, message: "the namenode reported a block size of 0".into() });
        }
        let replication = resp
            .status
            .as_ref()
            .map(|s| s.replication)
            .filter(|r| *r > 0)
            .or(opts.replication)
            .unwrap_or(defaults.replication);
        Ok(FileWriter::new(self.clone(), path, block_size, replication, &defaults))
    }

    /// Opens a file for reading.
    pub async fn open(&self, path: &str) -> Result<FileReader> {
        let path = path::normalize(path)?;
        FileReader::open(self.clone(), path).await
    }

    /// The status of `path`; a missing path is a `NotFound` error.
    pub async fn stat(&self, path: &str) -> Result<FileStatus> {
        let p = path::normalize(path)?;
        self.try_stat(&p).await?.ok_or_else(|| ClientError::not_found(&p))
    }

    /// The status of `path`, or `None` when it does not exist.
    pub async fn try_stat(&self, path: &str) -> Result<Option<FileStatus>> {
        let path = path::normalize(path)?;
        let rpc = &self.inner.rpc;
        let req = dfs::GetFileInfoRequest { caller: rpc.caller(), path: path.clone() };
        let resp = rpc.stub().get_file_info(req).await.map_err(|s| rpc.error(s))?.into_inner();
        Ok(resp.status.map(|s| FileStatus::from_proto(path, s)))
    }

    /// The blocks of the file `path` overlapping `[offset, offset + len)`
    /// (`len` 0: to the end of the file), sorted by offset, each with the
    /// datanodes holding it. A missing path is a `NotFound` error.
    pub async fn block_locations(&self, path: &str, offset: u64, len: u64) -> Result<Vec<BlockLocation>> {
        let path = path::normalize(path)?;
        let rpc = &self.inner.rpc;
        let req = dfs::GetBlockLocationsRequest {
            caller: rpc.caller(),
            path: path.clone(),
            offset,
            length: len,
            client_host: String::new(),
        };
        let resp = rpc.stub().get_block_locations(req).await.map_err(|s| rpc.error(s))?.into_inner();
        let located = resp.blocks.ok_or_else(|| ClientError::not_found(&path))?;
        let mut blocks: Vec<BlockLocation> = located.blocks.iter().map(BlockLocation::from_proto).collect();
        blocks.sort_by_key(|b| b.offset);
        Ok(blocks)
    }

    /// The entries of a directory sorted by name (every page), or the file
    /// itself when `path` is a file.
    pub async fn list(&self, path: &str) -> Result<Vec<FileStatus>> {
        let path = path::normalize(path)?;
        let rpc = &self.inner.rpc;
        let mut out = Vec::new();
        let mut start_after = String::new();
        loop {
            let req = dfs::GetListingRequest {
                caller: rpc.caller(),
                path: path.clone(),
                start_after: start_after.clone(),
                limit: 0,
            };
            let resp = rpc.stub().get_listing(req).await.map_err(|s| rpc.error(s))?.into_inner();
            if resp.is_file {
                return Ok(resp.entries.into_iter().map(|e| FileStatus::from_proto(path.clone(), e)).collect());
            }
            let last = resp.entries.last().map(|e| e.name.clone());
            out.extend(resp.entries.into_iter().map(|e| {
                let full = path::join(&path, &e.name);
                FileStatus::from_proto(full, e)
            }));
            match last {
                Some(name) if resp.remaining > 0 => start_after = name,
                _ => return Ok(out),
            }
        }
    }

    /// Deletes `path`; `false` when it did not exist.
    pub async fn delete(&self, path: &str, recursive: bool) -> Result<bool> {
        let path = path::normalize(path)?;
        let rpc = &self.inner.rpc;
        let req = dfs::DeleteRequest { caller: rpc.caller(), path, recursive };
        Ok(rpc.stub().delete(req).await.map_err(|s| rpc.error(s))?.into_inner().deleted)
    }

    /// Renames `src` to `dst` atomically (into `dst` when it is a directory
    /// and `!overwrite`, as HDFS does).
    pub async fn rename(&self, src: &str, dst: &str, overwrite: bool) -> Result<()> {
        let src = path::normalize(src)?;
        let dst = path::normalize(dst)?;
        let rpc = &self.inner.rpc;
        let req = dfs::RenameRequest { caller: rpc.caller(), src, dst, overwrite };
        rpc.stub().rename(req).await.map_err(|s| rpc.error(s))?;
        Ok(())
    }

    /// Changes a file's target replication.
    pub async fn set_replication(&self, path: &str, replication: u32) -> Result<()> {
        let path = path::normalize(path)?;
        if replication == 0 {
            return Err(ClientError::InvalidArgument { path, message: "replication must be at least 1".into() });
        }
        let rpc = &self.inner.rpc;
        let req = dfs::SetReplicationRequest { caller: rpc.caller(), path, replication };
        rpc.stub().set_replication(req).await.map_err(|s| rpc.error(s))?;
        Ok(())
    }

    /// Sets the permission bits (at most 0o1777).
    pub async fn set_permission(&self, path: &str, mode: u32) -> Result<()> {
        let path = path::normalize(path)?;
        if mode > 0o1777 {
            return Err(ClientError::InvalidArgument { path, message: format!("invalid mode {mode:o}") });
        }
        let rpc = &self.inner.rpc;
        let req = dfs::SetPermissionRequest { caller: rpc.caller(), path, permission: mode };
        rpc.stub().set_permission(req).await.map_err(|s| rpc.error(s))?;
        Ok(())
    }

    /// Changes owner and/or group (`None` leaves it unchanged).
    pub async fn set_owner(&self, path: &str, owner: Option<&str>, group: Option<&str>) -> Result<()> {
        let path = path::normalize(path)?;
        let rpc = &self.inner.rpc;
        let req = dfs::SetOwnerRequest {
            caller: rpc.caller(),
            path,
            owner: owner.unwrap_or_default().to_string(),
            group: group.unwrap_or_default().to_string(),
        };
        rpc.stub().set_owner(req).await.map_err(|s| rpc.error(s))?;
        Ok(())
    }

    /// Sets modification and/or access time (`None` leaves it unchanged).
    pub async fn set_times(&self, path: &str, mtime_ms: Option<i64>, atime_ms: Option<i64>) -> Result<()> {
        let path = path::normalize(path)?;
        let rpc = &self.inner.rpc;
        let req = dfs::SetTimesRequest {
            caller: rpc.caller(),
            path,
            modification_time_ms: mtime_ms.unwrap_or(-1),
            access_time_ms: atime_ms.unwrap_or(-1),
        };
        rpc.stub().set_times(req).await.map_err(|s| rpc.error(s))?;
        Ok(())
    }

    /// Totals over the tree at `path`.
    pub async fn content_summary(&self, path: &str) -> Result<ContentSummary> {
        let path = path::normalize(path)?;
        let rpc = &self.inner.rpc;
        let req = dfs::ContentSummaryRequest { caller: rpc.caller(), path };
        let resp = rpc.stub().get_content_summary(req).await.map_err(|s| rpc.error(s))?.into_inner();
        Ok(resp.summary.map(ContentSummary::from).unwrap_or_default())
    }

    /// Every datanode the namenode knows, live or dead.
    pub async fn datanode_report(&self) -> Result<Vec<DatanodeInfo>> {
        let rpc = &self.inner.rpc;
        let resp = rpc.stub().get_datanode_report(dfs::DatanodeReportRequest {}).await.map_err(|s| rpc.error(s))?;
        Ok(resp.into_inner().datanodes.into_iter().map(DatanodeInfo::from).collect())
    }

    /// Reads a whole file into memory.
    pub async fn read_all(&self, path: &str) -> Result<Bytes> {
        self.open(path).await?.read_to_end().await
    }

    /// Writes `data` as the whole content of `path`, creating missing parent
    /// directories. On failure the partial file is deleted (best effort).
    pub async fn write_all(&self, path: &str, data: &[u8], overwrite: bool) -> Result<()> {
        let opts = CreateOptions { overwrite, create_parent: true, ..Default::default() };
        let mut w = self.create(path, opts).await?;
        if let Err(e) = w.write(data).await {
            let _ = w.abort().await;
            return Err(e);
        }
        w.close().await?;
        Ok(())
    }
}
