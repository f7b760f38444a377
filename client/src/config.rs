//! Client configuration: where the namenode is, who we are, and timeouts.

use serde::Deserialize;
use std::path::Path;

use crate::error::{ClientError, Result};

/// Environment variable naming the namenode (`host:port`).
pub(crate) const ENV_NAMENODE: &str = "TUSK_NAMENODE";
/// Environment variable naming a TOML client configuration file.
pub(crate) const ENV_CONF: &str = "TUSK_CONF";
/// Environment variable turning short-circuit local reads off (`0`, `false`)
/// or on (`1`, `true`); it overrides the configuration file.
pub(crate) const ENV_SHORT_CIRCUIT: &str = "TUSK_SHORT_CIRCUIT";

/// How a [`Client`](crate::Client) reaches the cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Namenode RPC address, `host:port`.
    pub namenode: String,
    /// User to act as; `None` means the current identity (`TUSK_USER` or the OS user).
    pub user: Option<String>,
    /// Groups of that user; `None` means the current identity's groups.
    pub groups: Option<Vec<String>>,
    /// Deadline of one namenode RPC, in milliseconds.
    pub rpc_timeout_ms: u64,
    /// Deadline of one connect / read / write on a datanode socket, in milliseconds.
    pub socket_timeout_ms: u64,
    /// Packets sent down a write pipeline before their acks return.
    pub max_packets_in_flight: usize,
    /// How long a reader waits for a block to get a location (a namenode that
    /// just restarted waits for block reports), in milliseconds.
    pub location_retry_ms: u64,
    /// Read replicas stored on this host directly from their files (HDFS
    /// `dfs.client.read.shortcircuit`): the datanode passes open descriptors
    /// over its domain socket, and every chunk is still verified against its
    /// stored checksum. Any failure falls back to reading over TCP. Default
    /// true; env `TUSK_SHORT_CIRCUIT=0|false` turns it off.
    pub short_circuit: bool,
}

/// The optional keys of the file named by `TUSK_CONF`.
#[derive(Debug, Default, Deserialize)]
/// Unknown keys are ignored: the file may be shared with other tools.
#[serde(default)]
struct ConfFile {
    /// Namenode RPC address, `host:port`.
    namenode: Option<String>,
    /// User to act as.
    user: Option<String>,
    /// Groups of that user.
    groups: Option<Vec<String>>,
    /// See [`ClientConfig::rpc_timeout_ms`].
    rpc_timeout_ms: Option<u64>,
    /// See [`ClientConfig::socket_timeout_ms`].
    socket_timeout_ms: Option<u64>,
    /// See [`ClientConfig::max_packets_in_flight`].
    max_packets_in_flight: Option<usize>,
    /// See [`ClientConfig::location_retry_ms`].
    location_retry_ms: Option<u64>,
    /// See [`ClientConfig::short_circuit`].
    short_circuit: Option<bool>,
}

impl ClientConfig {
    /// A configuration with the default timeouts for the namenode at
    /// `namenode`; short-circuit reads are on unless env `TUSK_SHORT_CIRCUIT`
    /// says `0` or `false`.
    pub fn new(namenode: impl Into<String>) -> Self {
        ClientConfig {
            namenode: namenode.into(),
            user: None,
            groups: None,
            rpc_timeout_ms: 60_000,
            socket_timeout_ms: 60_000,
            max_packets_in_flight: 64,
            location_retry_ms: 10_000,
            short_circuit: env_short_circuit().unwrap_or(true),
        }
    }

    /// Namenode address from (first wins): `explicit` (e.g. `--namenode`),
    /// env `TUSK_NAMENODE`, the TOML file named by env `TUSK_CONF` (key
    /// `namenode = "host:port"`; the file may also set `user`, `groups` and
    /// the timeouts). The error names all three places if none is set.
    pub fn resolve(explicit: Option<&str>) -> Result<Self> {
        let env_nn = std::env::var(ENV_NAMENODE).ok().filter(|s| !s.trim().is_empty());
        let env_conf = std::env::var(ENV_CONF).ok().filter(|s| !s.trim().is_empty());
        Self::resolve_from(explicit, env_nn.as_deref(), env_conf.as_deref())
    }

    /// [`resolve`](Self::resolve) with the environment passed in.
    pub(crate) fn resolve_from(explicit: Option<&str>, env_namenode: Option<&str>, conf_file: Option<&str>) -> Result<Self> {
        let file = match conf_file {
            Some(f) => read_conf_file(Path::new(f))?,
            None => ConfFile::default(),
        };
        let namenode = explicit
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .or(env_namenode.map(str::trim).filter(|s| !s.is_empty()))
            .or(file.namenode.as_deref().map(str::trim).filter(|s| !s.is_empty()))
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "no namenode address: pass --namenode host:port, set {ENV_NAMENODE}=host:port, \
                     or set namenode = \"host:port\" in the TOML file named by {ENV_CONF}{}",
                    match conf_file {
                        Some(f) => format!(" (currently {f})"),
                        None => " (unset)".to_string(),
                    }
                ))
            })?;
        let mut c = ClientConfig::new(namenode);
        c.user = file.user;
        c.groups = file.groups;
        if let Some(v) = file.rpc_timeout_ms {
            c.rpc_timeout_ms = v;
        }
        if let Some(v) = file.socket_timeout_ms {
            c.socket_timeout_ms = v;
        }
        if let Some(v) = file.max_packets_in_flight {
            c.max_packets_in_flight = v;
        }
        if let Some(v) = file.location_retry_ms {
            c.location_retry_ms = v;
        }
        if let Some(v) = file.short_circuit
            && env_short_circuit().is_none()
        {
            c.short_circuit = v;
        }
        Ok(c)
    }

    /// The namenode address split into host and port; the error names it.
    pub(crate) fn namenode_host_port(&self) -> Result<(&str, u16)> {
        let bad = |why: &str| ClientError::Config(format!("namenode address '{}': {why} (expected host:port)", self.namenode));
        let (host, port) = self.namenode.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
        Ok((host, port))
    }
}

/// The value of `TUSK_SHORT_CIRCUIT`, if set to something meaningful.
fn env_short_circuit() -> Option<bool> {
    parse_switch(&std::env::var(ENV_SHORT_CIRCUIT).ok()?)
}

/// `0/false/no/off` or `1/true/yes/on` (any case); anything else is no answer.
fn parse_switch(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "0" | "false" | "no" | "off" => Some(false),
        "1" | "true" | "yes" | "on" => Some(true),
        _ => None,
    }
}

fn read_conf_file(path: &Path) -> Result<ConfFile> {
    let text = std::fs::read_to_string(path).map_err(|source| ClientError::Io {
        context: format!("client config {} (from {ENV_CONF})", path.display()),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ClientError::Config(format!("client config {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_beats_env_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("client.toml");
        std::fs::write(&f, "namenode = \"file:1\"\nuser = \"carol\"\nrpc_timeout_ms = 5\n").unwrap();
        let f = f.to_str().unwrap();

        let c = ClientConfig::resolve_from(Some("flag:3"), Some("env:2"), Some(f)).unwrap();
        assert_eq!(c.namenode, "flag:3");
        assert_eq!(c.user.as_deref(), Some("carol"));
        assert_eq!(c.rpc_timeout_ms, 5);
        assert_eq!(c.socket_timeout_ms, 60_000);
        assert_eq!(ClientConfig::resolve_from(None, Some("env:2"), Some(f)).unwrap().namenode, "env:2");
        assert_eq!(ClientConfig::resolve_from(None, None, Some(f)).unwrap().namenode, "file:1");
        assert_eq!(ClientConfig::resolve_from(Some(""), Some("env:2"), None).unwrap().namenode, "env:2");
    }

    #[test]
    fn missing_everywhere_names_all_three_places() {
        let e = ClientConfig::resolve_from(None, None, None).unwrap_err();
        let text = e.to_string();
        for want in ["--namenode", "TUSK_NAMENODE", "TUSK_CONF"] {
            assert!(text.contains(want), "{text}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("empty.toml");
        std::fs::write(&f, "user = \"x\"\n").unwrap();
        let e = ClientConfig::resolve_from(None, None, f.to_str()).unwrap_err();
        assert!(e.to_string().contains("empty.toml"), "{e}");
    }

    #[test]
    fn bad_files_are_named() {
        let e = ClientConfig::resolve_from(Some("a:1"), None, Some("/nonexistent/tusk.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/tusk.toml"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, "namenode = 5\n").unwrap();
        let e = ClientConfig::resolve_from(None, None, f.to_str()).unwrap_err();
        assert!(e.to_string().contains("bad.toml") && e.to_string().contains("namenode"), "{e}");
        // Keys of other tools sharing the file are ignored.
        std::fs::write(&f, "namenode = \"h:1\"\n[datanode]\nx = 1\n").unwrap();
        assert_eq!(ClientConfig::resolve_from(None, None, f.to_str()).unwrap().namenode, "h:1");
    }

    /// The only test that touches the process environment.
    #[test]
    fn resolve_reads_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "namenode = \"conf:7\"\n").unwrap();
        // SAFETY: no other test in this crate reads or writes these variables.
        unsafe {
            std::env::remove_var(ENV_NAMENODE);
            std::env::set_var(ENV_CONF, &f);
        }
        assert_eq!(ClientConfig::resolve(None).unwrap().namenode, "conf:7");
        unsafe { std::env::set_var(ENV_NAMENODE, "envnn:8") };
        assert_eq!(ClientConfig::resolve(None).unwrap().namenode, "envnn:8");
        assert_eq!(ClientConfig::resolve(Some("flag:9")).unwrap().namenode, "flag:9");
        unsafe {
            std::env::remove_var(ENV_NAMENODE);
            std::env::remove_var(ENV_CONF);
        }
        assert!(matches!(ClientConfig::resolve(None), Err(ClientError::Config(_))));
    }

    #[test]
    fn short_circuit_switch_values() {
        assert_eq!(parse_switch("0"), Some(false));
        assert_eq!(parse_switch(" FALSE "), Some(false));
        assert_eq!(parse_switch("true"), Some(true));
        assert_eq!(parse_switch("1"), Some(true));
        assert_eq!(parse_switch(""), None);
        assert_eq!(parse_switch("maybe"), None);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "namenode = \"h:1\"\nshort_circuit = false\n").unwrap();
        assert!(!ClientConfig::resolve_from(None, None, f.to_str()).unwrap().short_circuit);
    }

    #[test]
    fn namenode_address_must_have_host_and_port() {
        assert_eq!(ClientConfig::new("h:9000").namenode_host_port().unwrap(), ("h", 9000));
        for bad in ["h", ":9000", "h:x", "h:70000"] {
            let e = ClientConfig::new(bad).namenode_host_port().unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
