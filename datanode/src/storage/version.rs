//! The `VERSION` file of a data directory: which datanode and cluster the
//! directory belongs to. Every data directory carries the same one.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::DatanodeError;

/// Layout of the data directories this code reads and writes.
pub(crate) const LAYOUT_VERSION: u32 = 1;
pub(crate) const VERSION_FILE: &str = "VERSION";

/// Contents of a `VERSION` file (TOML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VersionFile {
    pub datanode_uuid: String,
    /// Empty until the first registration with a namenode.
    pub cluster_id: String,
    pub layout_version: u32,
}

fn path_of(dir: &Path) -> PathBuf {
    dir.join(VERSION_FILE)
}

/// Reads `dir/VERSION`; `None` if the directory is new.
pub(crate) fn read(dir: &Path) -> Result<Option<VersionFile>, DatanodeError> {
    let path = path_of(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DatanodeError::io(path, e)),
    };
    let v: VersionFile =
        toml::from_str(&text).map_err(|e| DatanodeError::Version { path: path.clone(), reason: e.to_string() })?;
    if v.layout_version != LAYOUT_VERSION {
        return Err(DatanodeError::Version {
            path,
            reason: format!("layout version {} is not supported (expected {LAYOUT_VERSION})", v.layout_version),
        });
    }
    if v.datanode_uuid.is_empty() {
        return Err(DatanodeError::Version { path, reason: "datanode_uuid is empty".into() });
    }
    Ok(Some(v))
}

/// Writes `dir/VERSION` atomically (temporary file, fsync, rename).
pub(crate) fn write(dir: &Path, v: &VersionFile) -> Result<(), DatanodeError> {
    let path = path_of(dir);
    let tmp = dir.join("VERSION.tmp");
    let text = toml::to_string(v).map_err(|e| DatanodeError::Version { path: path.clone(), reason: e.to_string() })?;
    let write_tmp = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    };
    write_tmp().map_err(|e| DatanodeError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| DatanodeError::io(&path, e))
}

/// Reads the `VERSION` of every directory, checks they agree, and writes one
/// to the directories that have none. A datanode without any gets a new uuid.
pub(crate) fn init_dirs(dirs: &[PathBuf]) -> Result<VersionFile, DatanodeError> {
    let mut found: Vec<(PathBuf, Option<VersionFile>)> = Vec::new();
    for d in dirs {
        found.push((d.clone(), read(d)?));
    }
    let mut chosen: Option<(PathBuf, VersionFile)> = None;
    for (dir, v) in found.iter().filter_map(|(d, v)| v.as_ref().map(|v| (d, v))) {
        match &mut chosen {
            None => chosen = Some((dir.clone(), v.clone())),
            Some((first, c)) => {
                if c.datanode_uuid != v.datanode_uuid {
                    return Err(DatanodeError::InconsistentDirs(format!(
                        "{} belongs to datanode {} but {} to datanode {}",
                        first.display(),
                        c.datanode_uuid,
                        dir.display(),
                        v.datanode_uuid
                    )));
                }
                if c.cluster_id.is_empty() {
                    c.cluster_id = v.cluster_id.clone();
                } else if !v.cluster_id.is_empty() && v.cluster_id != c.cluster_id {
                    return Err(DatanodeError::InconsistentDirs(format!(
                        "{} belongs to cluster {} but {} to cluster {}",
                        first.display(),
                        c.cluster_id,
                        dir.display(),
                        v.cluster_id
                    )));
                }
            }
        }
    }
    let identity = match chosen {
        Some((_, v)) => v,
        None => VersionFile {
            datanode_uuid: uuid::Uuid::new_v4().to_string(),
            cluster_id: String::new(),
            layout_version: LAYOUT_VERSION,
        },
    };
    for (dir, v) in &found {
        if v.as_ref() != Some(&identity) {
            write(dir, &identity)?;
        }
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_dirs_share_one_identity_and_keep_it() {
        let t = tempfile::tempdir().unwrap();
        let dirs = vec![t.path().join("a"), t.path().join("b")];
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        let v = init_dirs(&dirs).unwrap();
        assert_eq!(v.cluster_id, "");
        assert_eq!(read(&dirs[1]).unwrap(), Some(v.clone()));
        // A third, new directory joins with the same identity.
        let mut more = dirs.clone();
        more.push(t.path().join("c"));
        std::fs::create_dir_all(&more[2]).unwrap();
        assert_eq!(init_dirs(&more).unwrap(), v);
        assert_eq!(read(&more[2]).unwrap(), Some(v));
    }

    #[test]
    fn disagreeing_dirs_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let dirs = vec![t.path().join("a"), t.path().join("b")];
        for (d, uuid) in dirs.iter().zip(["u1", "u2"]) {
            std::fs::create_dir_all(d).unwrap();
            let v = VersionFile { datanode_uuid: uuid.into(), cluster_id: String::new(), layout_version: 1 };
            write(d, &v).unwrap();
        }
        let e = init_dirs(&dirs).unwrap_err().to_string();
        assert!(e.contains("u1") && e.contains("u2"), "{e}");
        std::fs::write(dirs[0].join(VERSION_FILE), "layout_version = 9\ndatanode_uuid = \"u\"\ncluster_id = \"\"\n").unwrap();
        let e = read(&dirs[0]).unwrap_err().to_string();
        assert!(e.contains("layout version 9") && e.contains("VERSION"), "{e}");
    }
}
