//! Network topology: which rack each datanode sits in, read from the
//! optional `topology_file` (one `NAME RACK` mapping per line, `#`
//! comments). NAME is matched against a datanode's transfer address
//! (`host:port`) first, then its host; anything unmatched is on
//! [`DEFAULT_RACK`]. The file is re-read when its modification time (or
//! size) changes, which is checked whenever a datanode registers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{NamenodeError, Result};

/// The rack of every node the topology does not name (as in HDFS).
pub(crate) const DEFAULT_RACK: &str = "/default-rack";

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
}

/// The name → rack mapping and where it came from.
#[derive(Debug, Default)]
pub(crate) struct Topology {
    path: Option<PathBuf>,
    stamp: Option<Stamp>,
    map: HashMap<String, String>,
}

fn stamp_of(path: &Path) -> Result<Stamp> {
    let md = std::fs::metadata(path).map_err(|e| NamenodeError::io(path, e))?;
    Ok(Stamp { mtime: md.modified().ok(), len: md.len() })
}

/// Parses the topology text; `origin` names the file in error messages.
pub(crate) fn parse(text: &str, origin: &str) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, rack] = fields[..] else {
            return Err(NamenodeError::Config(format!(
                "{origin}:{}: expected `NAME RACK`, found {} fields: {line:?}",
                n + 1,
                fields.len()
            )));
        };
        if !rack.starts_with('/') || rack.len() < 2 {
            return Err(NamenodeError::Config(format!(
                "{origin}:{}: rack {rack:?} must be a path like /dc1/rack1",
                n + 1
            )));
        }
        map.insert(name.to_string(), rack.trim_end_matches('/').to_string());
    }
    Ok(map)
}

impl Topology {
    /// Reads `path` if given; no file means every node is on the default rack.
    pub(crate) fn load(path: Option<&Path>) -> Result<Topology> {
        let mut t = Topology { path: path.map(Path::to_path_buf), ..Default::default() };
        if path.is_some() {
            t.refresh()?;
        }
        Ok(t)
    }

    /// A topology from text (tests, and no file behind it).
    #[cfg(test)]
    pub(crate) fn from_text(text: &str) -> Result<Topology> {
        Ok(Topology { map: parse(text, "<text>")?, ..Default::default() })
    }

    /// Re-reads the file when it changed on disk. Ok(true) when the mapping
    /// changed; on an error the previous mapping stays in force.
    pub(crate) fn refresh(&mut self) -> Result<bool> {
        let Some(path) = self.path.clone() else { return Ok(false) };
        let stamp = stamp_of(&path)?;
        if self.stamp == Some(stamp) {
            return Ok(false);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| NamenodeError::io(&path, e))?;
        let map = parse(&text, &path.display().to_string())?;
        self.stamp = Some(stamp);
        if map == self.map {
            return Ok(false);
        }
        tracing::info!("topology {}: {} mappings", path.display(), map.len());
        self.map = map;
        Ok(true)
    }

    /// The rack of a datanode: by transfer address, then by host.
    pub(crate) fn resolve(&self, transfer_addr: &str, host: &str) -> String {
        self.map
            .get(transfer_addr)
            .or_else(|| self.map.get(host))
            .cloned()
            .unwrap_or_else(|| DEFAULT_RACK.to_string())
    }

    /// The rack of a host that is not a datanode (a client), if mapped.
    pub(crate) fn resolve_host(&self, host: &str) -> Option<&str> {
        self.map.get(host).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_and_resolves_addr_then_host() {
        let t = Topology::from_text(
            "# racks\n10.0.0.1:9866 /r1\n\n10.0.0.1   /r9  # host fallback\n  10.0.0.2 /dc/r2/ \n",
        )
        .unwrap();
        assert_eq!(t.resolve("10.0.0.1:9866", "10.0.0.1"), "/r1");
        assert_eq!(t.resolve("10.0.0.1:9867", "10.0.0.1"), "/r9");
        assert_eq!(t.resolve("10.0.0.2:1", "10.0.0.2"), "/dc/r2");
        assert_eq!(t.resolve("10.0.0.3:1", "10.0.0.3"), DEFAULT_RACK);
        assert_eq!(t.resolve_host("10.0.0.2"), Some("/dc/r2"));
        assert_eq!(t.resolve_host("10.0.0.3"), None);
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse("a /r1\nb c d\n", "topo.txt").unwrap_err().to_string();
        assert!(e.contains("topo.txt:2") && e.contains("NAME RACK"), "{e}");
        let e = parse("a rack1\n", "topo.txt").unwrap_err().to_string();
        assert!(e.contains("topo.txt:1") && e.contains("rack1"), "{e}");
    }

    #[test]
    fn reloads_when_the_file_changes_and_keeps_the_old_map_on_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topology");
        std::fs::write(&path, "h1 /a\n").unwrap();
        let mut t = Topology::load(Some(&path)).unwrap();
        assert_eq!(t.resolve("h1:1", "h1"), "/a");
        assert!(!t.refresh().unwrap(), "unchanged file");
        let set_mtime = |secs: u64| {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)).unwrap();
        };
        std::fs::write(&path, "h1 /b\n").unwrap();
        set_mtime(1_000);
        assert!(t.refresh().unwrap());
        assert_eq!(t.resolve("h1:1", "h1"), "/b");
        std::fs::write(&path, "h1 b c\n").unwrap();
        set_mtime(2_000);
        assert!(t.refresh().is_err());
        assert_eq!(t.resolve("h1:1", "h1"), "/b", "a broken file keeps the previous mapping");
        assert!(Topology::load(Some(&dir.path().join("missing"))).is_err());
        assert_eq!(Topology::load(None).unwrap().resolve("x:1", "x"), DEFAULT_RACK);
    }
}
