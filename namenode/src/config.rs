//! Namenode configuration (layered: defaults < TOML < `TUSK_NAMENODE_*` < flags).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::error::NamenodeError;

/// Everything the namenode can be told. See `namenode.example.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamenodeConfig {
    /// Directory holding the namespace: VERSION, checkpoint images, edit logs.
    pub name_dir: PathBuf,
    /// Address of the gRPC server (ClientProtocol and DatanodeProtocol); port 0 picks a free port.
    pub rpc_addr: String,
    /// If set, the bound RPC address is written to this file once serving.
    pub addr_file: Option<PathBuf>,
    /// Replication of a new file when the client asks for 0.
    pub default_replication: u32,
    /// Block size of a new file when the client asks for 0 (bytes, multiple of 512).
    pub default_block_size: u64,
    /// Replicas a block needs before the file can be completed.
    pub min_replication: u32,
    /// Highest replication a file may ask for.
    pub max_replication: u32,
    /// How often datanodes heartbeat (told to them at registration), in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// How often datanodes send a full block report, in milliseconds.
    pub block_report_interval_ms: u64,
    /// A datanode without a heartbeat for this long is dead; its replicas are forgotten.
    pub dead_node_interval_ms: u64,
    /// Checkpoint at least this often (seconds) when there were edits.
    pub checkpoint_period_secs: u64,
    /// Checkpoint once this many edits accumulated since the last checkpoint.
    pub checkpoint_txns: u64,
    /// Entries per listing page when the client asks for 0.
    pub listing_page_size: u32,
    /// Bits removed from the default permissions (0o777 dirs, 0o666 files).
    pub umask: u32,
    /// Members of this group are superusers.
    pub supergroup: String,
    /// Safe mode ends once this fraction of blocks has `min_replication` reported replicas.
    pub safemode_threshold: f64,
    /// Safe mode also waits for this many live datanodes.
    pub safemode_min_datanodes: u32,
    /// How long safe mode lasts after the threshold is reached, in milliseconds.
    pub safemode_extension_ms: u64,
    /// After this long without renewal another client may take a file over, in milliseconds.
    pub lease_soft_limit_ms: u64,
    /// After this long without renewal the namenode recovers and closes the file, in milliseconds.
    pub lease_hard_limit_ms: u64,
    /// A block recovery not committed within this long is retried, in milliseconds.
    pub block_recovery_timeout_ms: u64,
    /// How often the replication monitor runs (re-replication, excess and
    /// corrupt replica deletion, decommission progress), in milliseconds.
    pub replication_interval_ms: u64,
    /// Each run schedules work for at most this many blocks per live datanode.
    pub replication_work_multiplier: u32,
    /// A datanode is the source of at most this many re-replications at once.
    pub replication_max_streams: u32,
    /// A re-replication not confirmed within this long is scheduled again, in milliseconds.
    pub replication_pending_timeout_ms: u64,
    /// Optional rack mapping: one `NAME RACK` per line (NAME = a datanode's
    /// `host:port` or host), `#` comments; re-read when it changes. Without
    /// it every datanode is on `/default-rack`.
    pub topology_file: Option<PathBuf>,
}

impl Default for NamenodeConfig {
    fn default() -> Self {
        NamenodeConfig {
            name_dir: PathBuf::from("./tusk-data/name"),
            rpc_addr: "0.0.0.0:8020".to_string(),
            addr_file: None,
            default_replication: 3,
            default_block_size: 128 << 20,
            min_replication: 1,
            max_replication: 512,
            heartbeat_interval_ms: 3000,
            block_report_interval_ms: 6 * 3600 * 1000,
            dead_node_interval_ms: 630_000,
            checkpoint_period_secs: 3600,
            checkpoint_txns: 1_000_000,
            listing_page_size: 1000,
            umask: 0o022,
            supergroup: "supergroup".to_string(),
            safemode_threshold: 0.999,
            safemode_min_datanodes: 0,
            safemode_extension_ms: 30_000,
            lease_soft_limit_ms: 60_000,
            lease_hard_limit_ms: 20 * 60_000,
            block_recovery_timeout_ms: 60_000,
            replication_interval_ms: 3000,
            replication_work_multiplier: 2,
            replication_max_streams: 2,
            replication_pending_timeout_ms: 300_000,
            topology_file: None,
        }
    }
}

impl NamenodeConfig {
    /// Checks the values that would make the namenode misbehave.
    pub fn validate(&self) -> Result<(), NamenodeError> {
        let err = |m: String| Err(NamenodeError::Config(m));
        if self.max_replication == 0 || self.max_replication > 512 {
            return err(format!("max_replication = {}: must be in 1..=512", self.max_replication));
        }
        if !(1..=self.max_replication).contains(&self.default_replication) {
            return err(format!(
                "default_replication = {}: must be in 1..={}",
                self.default_replication, self.max_replication
            ));
        }
        if !(1..=self.max_replication).contains(&self.min_replication) {
            return err(format!("min_replication = {}: must be in 1..={}", self.min_replication, self.max_replication));
        }
        if self.default_block_size < 512 || self.default_block_size & 511 != 0 {
            return err(format!(
                "default_block_size = {}: must be a multiple of 512 and at least 512",
                self.default_block_size
            ));
        }
        if self.rpc_addr.is_empty() {
            return err("rpc_addr: must not be empty".to_string());
        }
        if self.name_dir.as_os_str().is_empty() {
            return err("name_dir: must not be empty".to_string());
        }
        for (name, v) in [
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("block_report_interval_ms", self.block_report_interval_ms),
            ("dead_node_interval_ms", self.dead_node_interval_ms),
            ("checkpoint_period_secs", self.checkpoint_period_secs),
            ("checkpoint_txns", self.checkpoint_txns),
            ("lease_soft_limit_ms", self.lease_soft_limit_ms),
            ("lease_hard_limit_ms", self.lease_hard_limit_ms),
            ("block_recovery_timeout_ms", self.block_recovery_timeout_ms),
            ("replication_interval_ms", self.replication_interval_ms),
            ("replication_work_multiplier", self.replication_work_multiplier as u64),
            ("replication_max_streams", self.replication_max_streams as u64),
            ("replication_pending_timeout_ms", self.replication_pending_timeout_ms),
        ] {
            if v == 0 {
                return err(format!("{name} = 0: must be positive"));
            }
        }
        if !(0.0..=1.0).contains(&self.safemode_threshold) {
            return err(format!("safemode_threshold = {}: must be in 0..=1", self.safemode_threshold));
        }
        if self.lease_hard_limit_ms < self.lease_soft_limit_ms {
            return err(format!(
                "lease_hard_limit_ms = {}: must be at least lease_soft_limit_ms ({})",
                self.lease_hard_limit_ms, self.lease_soft_limit_ms
            ));
        }
        if self.listing_page_size == 0 {
            return err("listing_page_size = 0: must be positive".to_string());
        }
        if self.umask > 0o777 {
            return err(format!("umask = {:o}: must be at most 0o777", self.umask));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../namenode.example.toml");
        let c: NamenodeConfig = tusk_common::config::parse_toml(text).unwrap();
        assert_eq!(c.name_dir, PathBuf::from("/var/lib/tusk/name"));
        assert_eq!(c.default_replication, 3);
        assert_eq!(c.umask, 0o022);
        c.validate().unwrap();
        NamenodeConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let c = NamenodeConfig { default_block_size: 1000, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("default_block_size"));
        let c = NamenodeConfig { default_replication: 600, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("default_replication"));
    }
}
