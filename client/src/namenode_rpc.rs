//! The connection to the namenode: a tonic channel plus who we are.

use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tusk_proto::dfs::Caller;
use tusk_proto::dfs::client_protocol_client::ClientProtocolClient;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};

/// A cheap-to-clone handle for namenode RPCs.
#[derive(Clone)]
pub(crate) struct NamenodeRpc {
    addr: String,
    rpc: ClientProtocolClient<Channel>,
    caller: Caller,
}

impl NamenodeRpc {
    /// A lazily connecting channel to the configured namenode; only the
    /// address is checked here.
    pub(crate) fn new(config: &ClientConfig, caller: Caller) -> Result<NamenodeRpc> {
        let (host, port) = config.namenode_host_port()?;
        let uri = format!("http://{host}:{port}");
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| ClientError::Config(format!("namenode address '{}': {e}", config.namenode)))?
            .timeout(Duration::from_millis(config.rpc_timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(config.socket_timeout_ms.max(1)))
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        Ok(NamenodeRpc { addr: config.namenode.clone(), rpc: ClientProtocolClient::new(channel), caller })
    }

    /// A client stub for one call (clones share the channel).
    pub(crate) fn stub(&self) -> ClientProtocolClient<Channel> {
        self.rpc.clone()
    }

    /// The caller to put in a request.
    pub(crate) fn caller(&self) -> Option<Caller> {
        Some(self.caller.clone())
    }

    pub(crate) fn caller_ref(&self) -> &Caller {
        &self.caller
    }

    /// Translates a failed call's status.
    pub(crate) fn error(&self, status: tonic::Status) -> ClientError {
        ClientError::from_status(&self.addr, status)
    }
}
