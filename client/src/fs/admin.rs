//! Recovery and administration calls of [`Client`]: lease recovery, safe
//! mode, fsck, decommissioning, and bad replica reports from readers.

use tusk_common::path;
use tusk_proto::dfs;

use super::fsck::{FsckOptions, FsckReport};
use super::{Client, DatanodeInfo};
use crate::error::{ClientError, Result};

/// What [`Client::safe_mode`] does (HDFS `dfsadmin -safemode get|enter|leave`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SafeModeAction {
    /// Only report the state.
    Get,
    /// Enter safe mode; it lasts until an administrator leaves it.
    Enter,
    /// Leave safe mode.
    Leave,
}

/// The namenode's safe mode state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SafeModeStatus {
    /// Namespace changes are refused.
    pub on: bool,
    /// Entered by an administrator (left only by an administrator).
    pub manual: bool,
    /// Blocks with their minimum replicas reported, and all blocks.
    pub safe_blocks: u64,
    pub total_blocks: u64,
    /// Fraction of safe blocks needed to leave by itself.
    pub threshold: f64,
    /// Milliseconds left of the extension once the threshold is reached.
    pub extension_remaining_ms: u64,
    /// The namenode's sentence about the state.
    pub message: String,
}

impl From<dfs::SafeModeStatus> for SafeModeStatus {
    fn from(s: dfs::SafeModeStatus) -> Self {
        SafeModeStatus {
            on: s.on,
            manual: s.manual,
            safe_blocks: s.safe_blocks,
            total_blocks: s.total_blocks,
            threshold: s.threshold,
            extension_remaining_ms: s.extension_remaining_ms,
            message: s.message,
        }
    }
}

impl Client {
    /// Starts the recovery of a file left open for writing (HDFS
    /// `recoverLease`): `true` when the file is closed (already, or at once),
    /// `false` while its last block is being recovered; call again later.
    pub async fn recover_lease(&self, path: &str) -> Result<bool> {
        let path = path::normalize(path)?;
        let rpc = self.rpc();
        let req = dfs::RecoverLeaseRequest { caller: rpc.caller(), path };
        Ok(rpc.stub().recover_lease(req).await.map_err(|s| rpc.error(s))?.into_inner().closed)
    }

    /// Reports, enters or leaves safe mode; returns the state afterwards.
    pub async fn safe_mode(&self, action: SafeModeAction) -> Result<SafeModeStatus> {
        let rpc = self.rpc();
        let action = match action {
            SafeModeAction::Get => dfs::SafeModeAction::SafemodeGet,
            SafeModeAction::Enter => dfs::SafeModeAction::SafemodeEnter,
            SafeModeAction::Leave => dfs::SafeModeAction::SafemodeLeave,
        };
        let req = dfs::SafeModeRequest { caller: rpc.caller(), action: action as i32 };
        Ok(rpc.stub().set_safe_mode(req).await.map_err(|s| rpc.error(s))?.into_inner().into())
    }

    /// Checks the health of the tree at `path` (HDFS `fsck`): every file's
    /// blocks and their replicas, and totals.
    pub async fn fsck(&self, path: &str, opts: FsckOptions) -> Result<FsckReport> {
        let path = path::normalize(path)?;
        let rpc = self.rpc();
        let req = dfs::FsckRequest {
            caller: rpc.caller(),
            path: path.clone(),
            list_files: opts.list_files,
            list_blocks: opts.list_blocks,
            list_locations: opts.list_locations,
            include_open_files: opts.include_open_files,
        };
        let mut stream = rpc.stub().fsck(req).await.map_err(|s| rpc.error(s))?.into_inner();
        let mut messages = Vec::new();
        while let Some(m) = stream.message().await.map_err(|s| rpc.error(s))? {
            messages.push(m);
        }
        FsckReport::collect(path, messages)
    }

    /// Starts decommissioning the datanode `node` (uuid, `host:port` transfer
    /// address or host), or returns it to service (`decommission = false`).
    /// Needs the superuser. Returns the datanodes it applied to.
    pub async fn datanode_admin(&self, node: &str, decommission: bool) -> Result<Vec<DatanodeInfo>> {
        let node = node.trim();
        if node.is_empty() {
            let message = "not a datanode name (expected a uuid, host:port or host)".into();
            return Err(ClientError::InvalidArgument { path: "''".into(), message });
        }
        let rpc = self.rpc();
        let action = if decommission { dfs::AdminAction::Decommission } else { dfs::AdminAction::Recommission };
        let req = dfs::DatanodeAdminRequest { caller: rpc.caller(), node: node.to_string(), action: action as i32 };
        let resp = rpc.stub().datanode_admin(req).await.map_err(|s| rpc.error(s))?.into_inner();
        Ok(resp.datanodes.into_iter().map(DatanodeInfo::from).collect())
    }

    /// Tells the namenode about replicas that failed their checksums.
    pub(crate) async fn report_bad_replicas(&self, replicas: Vec<dfs::BadReplica>) -> Result<()> {
        let rpc = self.rpc();
        rpc.stub().report_bad_blocks(dfs::ReportBadBlocksRequest { replicas }).await.map_err(|s| rpc.error(s))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AdminState;
    use crate::fake_namenode::FakeNamenode;
    use tusk_proto::error::ErrorKind;

    #[tokio::test]
    async fn safe_mode_actions_map_to_the_wire_and_back() {
        let nn = FakeNamenode::default();
        nn.state().safe_mode = dfs::SafeModeStatus { on: true, message: "Safe mode is ON.".into(), ..Default::default() };
        let c = nn.start().await;
        let st = c.safe_mode(SafeModeAction::Get).await.unwrap();
        assert!(st.on);
        assert_eq!(st.message, "Safe mode is ON.");
        c.safe_mode(SafeModeAction::Enter).await.unwrap();
        c.safe_mode(SafeModeAction::Leave).await.unwrap();
        let want = [dfs::SafeModeAction::SafemodeGet, dfs::SafeModeAction::SafemodeEnter, dfs::SafeModeAction::SafemodeLeave];
        assert_eq!(nn.state().safe_mode_actions, want.map(|a| a as i32).to_vec());
    }

    #[tokio::test]
    async fn namenode_refusals_keep_their_kind() {
        let nn = FakeNamenode::default();
        nn.state().fail_with = Some((ErrorKind::SafeMode, "namenode is in safe mode: wait".into()));
        let c = nn.start().await;
        let e = c.recover_lease("/f").await.unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::SafeMode));
        assert_eq!(e.to_string(), "namenode is in safe mode: wait");
        nn.state().fail_with = Some((ErrorKind::PermissionDenied, "superuser privilege is required".into()));
        let e = c.datanode_admin("h:1", true).await.unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::PermissionDenied));
        nn.state().fail_with = Some((ErrorKind::NotFound, "/x: no such file or directory".into()));
        assert!(c.fsck("/x", FsckOptions::default()).await.unwrap_err().is_not_found());
        // Paths are checked before any call.
        assert_eq!(c.recover_lease("rel").await.unwrap_err().kind(), Some(ErrorKind::InvalidPath));
    }

    #[tokio::test]
    async fn recover_lease_says_whether_the_file_is_closed() {
        let nn = FakeNamenode::default();
        nn.state().recover_lease = [false, true].into_iter().collect();
        let c = nn.start().await;
        assert!(!c.recover_lease("/f").await.unwrap());
        assert!(c.recover_lease("/f").await.unwrap());
    }

    #[tokio::test]
    async fn fsck_collects_every_message_and_sends_the_options() {
        let nn = FakeNamenode::default();
        nn.state().fsck = vec![
            dfs::FsckResponse { files: vec![dfs::FsckFile { path: "/a".into(), ..Default::default() }], summary: None },
            dfs::FsckResponse {
                files: vec![dfs::FsckFile { path: "/b".into(), ..Default::default() }],
                summary: Some(dfs::FsckSummary { total_files: 2, healthy: true, ..Default::default() }),
            },
        ];
        let c = nn.start().await;
        let opts = FsckOptions { list_files: true, list_blocks: true, list_locations: false, include_open_files: true };
        let r = c.fsck("/d/", opts).await.unwrap();
        assert_eq!(r.path, "/d");
        assert_eq!(r.files.len(), 2);
        assert!(r.is_healthy());
        let req = nn.state().fsck_requests[0].clone();
        assert_eq!((req.path.as_str(), req.list_files, req.list_blocks, req.list_locations, req.include_open_files), ("/d", true, true, false, true));
    }

    #[tokio::test]
    async fn datanode_admin_names_the_node_and_the_action() {
        let nn = FakeNamenode::default();
        nn.state().report = vec![dfs::DatanodeInfo {
            admin_state: dfs::datanode_info::AdminState::DecommissionInProgress as i32,
            ..Default::default()
        }];
        let c = nn.start().await;
        let got = c.datanode_admin(" h:1 ", true).await.unwrap();
        assert_eq!(got[0].admin_state, AdminState::DecommissionInProgress);
        c.datanode_admin("h:1", false).await.unwrap();
        {
            let st = nn.state();
            assert_eq!(st.admin[0].node, "h:1");
            assert_eq!(st.admin[0].action, dfs::AdminAction::Decommission as i32);
            assert_eq!(st.admin[1].action, dfs::AdminAction::Recommission as i32);
        }
        assert!(c.datanode_admin("  ", true).await.is_err());
    }
}
