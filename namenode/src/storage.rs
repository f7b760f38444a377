//! The name directory: layout, the VERSION file, `format`, and loading the
//! namespace at start (newest valid image + replay of later edits).
//!
//! ```text
//! <name_dir>/current/VERSION
//! <name_dir>/current/fsimage_<txid>
//! <name_dir>/current/edits_<first>-<last>
//! <name_dir>/current/edits_inprogress_<first>
//! ```

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::NamenodeConfig;
use crate::editlog::{self, finalized_name};
use crate::error::{NamenodeError, Result};
use crate::image::{self, LAYOUT_VERSION};
use crate::namespace::FsState;

/// Contents of `current/VERSION`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct VersionFile {
    pub(crate) cluster_id: String,
    pub(crate) layout_version: u32,
    pub(crate) superuser: String,
    pub(crate) created_ms: i64,
}

pub(crate) fn current_dir(name_dir: &Path) -> PathBuf {
    name_dir.join("current")
}

fn version_path(name_dir: &Path) -> PathBuf {
    current_dir(name_dir).join("VERSION")
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| NamenodeError::io(&tmp, e))?;
    OpenOptions::new().write(true).open(&tmp).and_then(|f| f.sync_all()).map_err(|e| NamenodeError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| NamenodeError::io(path, e))
}

/// Initialises `config.name_dir` with a fresh namespace; returns the new
/// cluster id. Refuses a directory that already holds a namespace unless
/// `force`.
pub fn format(config: &NamenodeConfig, superuser: &str, force: bool) -> Result<String> {
    config.validate()?;
    if superuser.is_empty() {
        return Err(NamenodeError::Config("format: the superuser name must not be empty".into()));
    }
    let dir = current_dir(&config.name_dir);
    let holds_namespace = dir.exists()
        && std::fs::read_dir(&dir).map_err(|e| NamenodeError::io(&dir, e))?.next().is_some();
    if holds_namespace {
        if !force {
            let which = read_version(&config.name_dir).map(|v| format!(" (cluster {})", v.cluster_id)).unwrap_or_default();
            return Err(NamenodeError::Storage(format!(
                "{}: already holds a namespace{which}; refusing to format it (use --force to erase it)",
                config.name_dir.display()
            )));
        }
        std::fs::remove_dir_all(&dir).map_err(|e| NamenodeError::io(&dir, e))?;
    }
    // A new namespace starts without the old one's decommissioning decisions.
    let excludes = config.name_dir.join(crate::decommission::EXCLUDES_FILE);
    match std::fs::remove_file(&excludes) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(NamenodeError::io(&excludes, e)),
    }
    std::fs::create_dir_all(&dir).map_err(|e| NamenodeError::io(&dir, e))?;
    let cluster_id = format!("CID-{}", uuid::Uuid::new_v4());
    let now = tusk_common::now_ms();
    let state = FsState::new(superuser, &config.supergroup, now);
    let bytes = image::serialize(&state, 0, &cluster_id)?;
    image::write_image(&dir, 0, &bytes)?;
    let version = VersionFile {
        cluster_id: cluster_id.clone(),
        layout_version: LAYOUT_VERSION,
        superuser: superuser.to_string(),
        created_ms: now,
    };
    let text = toml::to_string(&version).map_err(|e| NamenodeError::Internal(e.to_string()))?;
    write_atomic(&version_path(&config.name_dir), &text)?;
    tracing::info!("formatted {} as {cluster_id}", config.name_dir.display());
    Ok(cluster_id)
}

/// Reads and checks `current/VERSION`.
pub(crate) fn read_version(name_dir: &Path) -> Result<VersionFile> {
    let path = version_path(name_dir);
    if !path.exists() {
        return Err(NamenodeError::NotFormatted(name_dir.display().to_string()));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| NamenodeError::io(&path, e))?;
    let v: VersionFile = toml::from_str(&text)
        .map_err(|e| NamenodeError::Storage(format!("{}: not a Tusk namenode VERSION file: {e}", path.display())))?;
    if v.layout_version != LAYOUT_VERSION {
        return Err(NamenodeError::Storage(format!(
            "{}: layout version {} is not supported (expected {LAYOUT_VERSION})",
            path.display(),
            v.layout_version
        )));
    }
    Ok(v)
}

/// A namespace loaded from disk.
pub(crate) struct Loaded {
    pub(crate) version: VersionFile,
    pub(crate) state: FsState,
    pub(crate) image_txid: u64,
    pub(crate) last_txid: u64,
}

/// Loads the newest valid image and replays every later edit. A torn last
/// record of the newest segment is truncated away; leftover in-progress
/// segments are finalized so that a new one can start at `last_txid + 1`.
pub(crate) fn load(name_dir: &Path) -> Result<Loaded> {
    let version = read_version(name_dir)?;
    let dir = current_dir(name_dir);
    let mut loaded = None;
    for (txid, path) in image::list_images(&dir)? {
        match image::load_image(&path) {
            Ok((state, header)) => {
                if header.cluster_id != version.cluster_id {
                    return Err(NamenodeError::Storage(format!(
                        "{}: belongs to cluster {}, but VERSION says {}",
                        path.display(),
                        header.cluster_id,
                        version.cluster_id
                    )));
                }
                loaded = Some((state, txid));
                break;
            }
            Err(e) => tracing::warn!("skipping image: {e}"),
        }
    }
    let Some((mut state, image_txid)) = loaded else {
        return Err(NamenodeError::Storage(format!("{}: no valid checkpoint image", dir.display())));
    };
    let segments = editlog::list_segments(&dir)?;
    let mut last = image_txid;
    let n = segments.len();
    for (k, seg) in segments.iter().enumerate() {
        if seg.last.is_some_and(|l| l <= image_txid) {
            continue;
        }
        if seg.first > last + 1 {
            return Err(NamenodeError::Storage(format!(
                "{}: edits {}..{} are missing",
                dir.display(),
                last + 1,
                seg.first - 1
            )));
        }
        let newest = k + 1 == n;
        let end = editlog::read_segment(&seg.path, newest, |txid, op| {
            if txid <= last {
                return Ok(());
            }
            if txid != last + 1 {
                return Err(NamenodeError::Storage(format!(
                    "{}: txid {txid} follows {last}",
                    seg.path.display()
                )));
            }
            state.apply(&op).map_err(|e| {
                NamenodeError::Storage(format!("{}: txid {txid} cannot be replayed: {e}", seg.path.display()))
            })?;
            last = txid;
            Ok(())
        })?;
        if end.torn {
            tracing::warn!("{}: dropping a torn last record at offset {}", seg.path.display(), end.valid_len);
            let f = OpenOptions::new().write(true).open(&seg.path).map_err(|e| NamenodeError::io(&seg.path, e))?;
            f.set_len(end.valid_len).and_then(|_| f.sync_all()).map_err(|e| NamenodeError::io(&seg.path, e))?;
        }
        if seg.last.is_none() {
            if last >= seg.first {
                let done = dir.join(finalized_name(seg.first, last));
                std::fs::rename(&seg.path, &done).map_err(|e| NamenodeError::io(&seg.path, e))?;
            } else {
                std::fs::remove_file(&seg.path).map_err(|e| NamenodeError::io(&seg.path, e))?;
            }
        }
    }
    Ok(Loaded { version, state, image_txid, last_txid: last })
}

/// Deletes images older than `keep_from` and segments fully covered by it.
pub(crate) fn purge(dir: &Path, keep_from: u64) -> Result<()> {
    for (txid, path) in image::list_images(dir)? {
        if txid < keep_from {
            std::fs::remove_file(&path).map_err(|e| NamenodeError::io(&path, e))?;
        }
    }
    for seg in editlog::list_segments(dir)? {
        if seg.last.is_some_and(|l| l <= keep_from) {
            std::fs::remove_file(&seg.path).map_err(|e| NamenodeError::io(&seg.path, e))?;
        }
    }
    Ok(())
}
