//! Datanode configuration (defaults < TOML file < `TUSK_DATANODE_*` env < flags).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::error::DatanodeError;
use crate::transfer::short_circuit::MAX_SOCKET_PATH;

/// Everything a datanode needs to know to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatanodeConfig {
    /// Data directories ("volumes"), typically one per disk. Each holds a
    /// `VERSION` file and the replicas under `current/`.
    pub data_dirs: Vec<PathBuf>,
    /// Address (host:port) of the namenode's RPC server.
    pub namenode_addr: String,
    /// Address the block transfer server binds (host:port; port 0 picks a free port).
    pub transfer_addr: String,
    /// Host or IP announced to the namenode and clients. When unset: the bind
    /// IP if it is not unspecified, else the local IP used to reach the
    /// namenode, else 127.0.0.1.
    pub advertised_host: Option<String>,
    /// File to which the advertised transfer address (`ip:port`) is written once
    /// the server listens (written to a temporary file, then renamed).
    pub addr_file: Option<PathBuf>,
    /// fsync replica files before finalizing them (HDFS `dfs.datanode.synconclose`).
    pub sync_on_finalize: bool,
    /// Bytes kept free on every volume; a volume with less room takes no new replicas.
    pub reserved_bytes: u64,
    /// Largest number of concurrent transfer connections; more are refused.
    pub max_xceivers: u32,
    /// Read/write timeout on transfer sockets, in milliseconds.
    pub socket_timeout_ms: u64,
    /// Unix domain socket for short-circuit local reads (HDFS
    /// `dfs.domain.socket.path`): clients on this host receive open file
    /// descriptors of replicas there and read them directly. Unset: no
    /// short-circuit reads. At most 107 bytes once made absolute; the socket
    /// is created with mode 0666, so restrict access with its directory.
    pub domain_socket_path: Option<PathBuf>,
    /// Read rate of the block scanner, which verifies every finalized
    /// replica against its checksums in the background (HDFS
    /// `dfs.block.scanner.volume.bytes.per.second`). 0 turns it off.
    pub scan_bytes_per_sec: u64,
    /// The block scanner verifies every replica once per this many
    /// milliseconds (HDFS `dfs.datanode.scan.period.hours`, 3 weeks).
    pub scan_period_ms: u64,
}

/// Default read rate of the block scanner: 1 MiB/s.
pub(crate) const DEFAULT_SCAN_BYTES_PER_SEC: u64 = 1 << 20;
/// Default block scanner period: 3 weeks.
pub(crate) const DEFAULT_SCAN_PERIOD_MS: u64 = 21 * 24 * 3600 * 1000;

impl Default for DatanodeConfig {
    fn default() -> Self {
        DatanodeConfig {
            data_dirs: vec![PathBuf::from("./tusk-data/data")],
            namenode_addr: "127.0.0.1:8020".to_string(),
            transfer_addr: "0.0.0.0:9866".to_string(),
            advertised_host: None,
            addr_file: None,
            sync_on_finalize: false,
            reserved_bytes: 0,
            max_xceivers: 4096,
            socket_timeout_ms: 60_000,
            domain_socket_path: None,
            scan_bytes_per_sec: DEFAULT_SCAN_BYTES_PER_SEC,
            scan_period_ms: DEFAULT_SCAN_PERIOD_MS,
        }
    }
}

impl DatanodeConfig {
    /// Checks the values that cannot be right, naming the field.
    pub fn validate(&self) -> Result<(), DatanodeError> {
        let bad = |m: String| Err(DatanodeError::Config(m));
        if self.data_dirs.is_empty() {
            return bad("data_dirs: at least one data directory is needed".into());
        }
        for (i, d) in self.data_dirs.iter().enumerate() {
            if d.as_os_str().is_empty() {
                return bad(format!("data_dirs[{i}]: empty path"));
            }
            if self.data_dirs[..i].contains(d) {
                return bad(format!("data_dirs: {} is listed twice", d.display()));
            }
        }
        if !looks_like_host_port(&self.namenode_addr) {
            return bad(format!("namenode_addr: '{}' is not host:port", self.namenode_addr));
        }
        if !looks_like_host_port(&self.transfer_addr) {
            return bad(format!("transfer_addr: '{}' is not host:port", self.transfer_addr));
        }
        if let Some(h) = &self.advertised_host
            && (h.is_empty() || h.contains(char::is_whitespace))
        {
            return bad(format!("advertised_host: '{h}' is not a host name or IP"));
        }
        if self.max_xceivers == 0 {
            return bad("max_xceivers: must be at least 1".into());
        }
        if self.socket_timeout_ms == 0 {
            return bad("socket_timeout_ms: must be at least 1".into());
        }
        if self.scan_bytes_per_sec > 0 && self.scan_period_ms == 0 {
            return bad("scan_period_ms: must be at least 1 while the block scanner runs (scan_bytes_per_sec > 0)".into());
        }
        if let Some(p) = &self.domain_socket_path {
            let abs = std::path::absolute(p).map_err(|e| DatanodeError::Config(format!("domain_socket_path: {}: {e}", p.display())))?;
            let len = abs.as_os_str().len();
            if p.as_os_str().is_empty() || len > MAX_SOCKET_PATH {
                return bad(format!(
                    "domain_socket_path: '{}' must be a non-empty path of at most {MAX_SOCKET_PATH} bytes (absolute: {len})",
                    p.display()
                ));
            }
        }
        Ok(())
    }
}

fn looks_like_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_is_valid() {
        let text = include_str!("../datanode.example.toml");
        let c: DatanodeConfig = tusk_common::config::parse_toml(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.data_dirs, vec![PathBuf::from("/var/lib/tusk/data1"), PathBuf::from("/var/lib/tusk/data2")]);
        assert_eq!(c.namenode_addr, "nn.example.com:8020");
        assert_eq!(c.advertised_host.as_deref(), Some("10.0.0.12"));
        assert_eq!(c.addr_file, Some(PathBuf::from("/run/tusk/datanode.addr")));
        assert!(c.sync_on_finalize);
        assert_eq!(c.reserved_bytes, 1 << 30);
        assert_eq!(c.max_xceivers, 4096);
        assert_eq!(c.socket_timeout_ms, 60_000);
        assert_eq!(c.domain_socket_path, None);
        assert_eq!(c.scan_bytes_per_sec, 2 << 20);
        assert_eq!(c.scan_period_ms, 1_814_400_000);
    }

    #[test]
    fn defaults_survive_an_empty_file() {
        let c: DatanodeConfig = tusk_common::config::parse_toml("").unwrap();
        assert_eq!(c, DatanodeConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let c = DatanodeConfig { transfer_addr: "nowhere".into(), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("transfer_addr"));
        let c = DatanodeConfig { data_dirs: vec![], ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("data_dirs"));
        let c = DatanodeConfig { max_xceivers: 0, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("max_xceivers"));
        let long = PathBuf::from(format!("/tmp/{}/dn.sock", "x".repeat(120)));
        let c = DatanodeConfig { domain_socket_path: Some(long), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("domain_socket_path"));
        let c = DatanodeConfig { domain_socket_path: Some("/run/tusk/dn.sock".into()), ..Default::default() };
        c.validate().unwrap();
        let c = DatanodeConfig { scan_period_ms: 0, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("scan_period_ms"));
        let c = DatanodeConfig { scan_period_ms: 0, scan_bytes_per_sec: 0, ..Default::default() };
        c.validate().unwrap();
        assert_eq!(DatanodeConfig::default().scan_period_ms, 1_814_400_000);
        assert_eq!(DatanodeConfig::default().scan_bytes_per_sec, 1_048_576);
    }
}
