//! One data directory ("volume"): its layout, the scan of its replicas at
//! start (finalized ones must be complete; rbw ones keep their valid
//! length), and its space figures. Also the checks of a replica's files:
//! [`check_replica`] (sizes agree), [`valid_length`] and [`truncate_files`].

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::meta;
use tusk_proto::transfer::CHECKSUM_SIZE;
use crate::error::DatanodeError;

/// A finalized replica found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScannedReplica {
    pub block_id: u64,
    pub gen_stamp: u64,
    pub len: u64,
    /// Data plus meta bytes on disk.
    pub disk_bytes: u64,
}

/// A replica left in `rbw/` (its files already cut to the valid length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScannedRbw {
    pub block_id: u64,
    pub gen_stamp: u64,
    pub len: u64,
}

/// Space of the file system holding a volume.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FsSpace {
    pub total: u64,
    pub available: u64,
}

pub(crate) struct Volume {
    pub dir: PathBuf,
    finalized: PathBuf,
    rbw: PathBuf,
    /// Bytes of finalized replicas (data + meta) stored here.
    used: AtomicU64,
}

impl Volume {
    /// Creates `current/finalized` and `current/rbw` if needed.
    pub(crate) fn open(dir: &Path) -> Result<Volume, DatanodeError> {
        let current = dir.join("current");
        let finalized = current.join("finalized");
        let rbw = current.join("rbw");
        for d in [&finalized, &rbw] {
            std::fs::create_dir_all(d).map_err(|e| DatanodeError::io(d, e))?;
        }
        Ok(Volume { dir: dir.to_path_buf(), finalized, rbw, used: AtomicU64::new(0) })
    }

    pub(crate) fn rbw_data_path(&self, block_id: u64) -> PathBuf {
        self.rbw.join(meta::data_file_name(block_id))
    }

    pub(crate) fn rbw_meta_path(&self, block_id: u64, gen_stamp: u64) -> PathBuf {
        self.rbw.join(meta::meta_file_name(block_id, gen_stamp))
    }

    pub(crate) fn finalized_dir(&self, block_id: u64) -> PathBuf {
        self.finalized.join(meta::finalized_subdir(block_id))
    }

    pub(crate) fn data_path(&self, block_id: u64) -> PathBuf {
        self.finalized_dir(block_id).join(meta::data_file_name(block_id))
    }

    pub(crate) fn meta_path(&self, block_id: u64, gen_stamp: u64) -> PathBuf {
        self.finalized_dir(block_id).join(meta::meta_file_name(block_id, gen_stamp))
    }

    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn add_used(&self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn sub_used(&self, bytes: u64) {
        let _ = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(bytes)));
    }

    /// Size and free space of the file system (statvfs).
    pub(crate) fn fs_space(&self) -> Result<FsSpace, DatanodeError> {
        let st = nix::sys::statvfs::statvfs(&self.dir)
            .map_err(|e| DatanodeError::io(&self.dir, std::io::Error::from(e)))?;
        let frag = st.fragment_size() as u64;
        Ok(FsSpace {
            total: (st.blocks() as u64).saturating_mul(frag),
            available: (st.blocks_available() as u64).saturating_mul(frag),
        })
    }

    /// Every complete finalized replica. Files that do not form a complete
    /// replica (data without meta, meta without data, sizes that disagree)
    /// are what an interrupted finalize or a damaged disk leaves: they are
    /// removed and logged.
    pub(crate) fn scan(&self) -> Result<Vec<ScannedReplica>, DatanodeError> {
        let mut out = Vec::new();
        for a in read_subdirs(&self.finalized)? {
            for b in read_subdirs(&a)? {
                self.scan_leaf(&b, &mut out)?;
            }
        }
        self.used.store(out.iter().map(|r| r.disk_bytes).sum(), Ordering::Relaxed);
        Ok(out)
    }

    fn scan_leaf(&self, dir: &Path, out: &mut Vec<ScannedReplica>) -> Result<(), DatanodeError> {
        let entries = std::fs::read_dir(dir).map_err(|e| DatanodeError::io(dir, e))?;
        let mut metas = Vec::new();
        let mut datas = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| DatanodeError::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((id, gs)) = meta::parse_meta_name(&name) {
                metas.push((id, gs, entry.path()));
            } else if let Some(id) = meta::parse_data_name(&name) {
                datas.push((id, entry.path()));
            }
        }
        for (id, gs, meta_path) in metas {
            let data_path = dir.join(meta::data_file_name(id));
            match check_replica(&data_path, &meta_path) {
                Ok((len, disk_bytes)) => out.push(ScannedReplica { block_id: id, gen_stamp: gs, len, disk_bytes }),
                Err(reason) => {
                    tracing::warn!(block_id = id, path = %meta_path.display(), "removing an incomplete replica: {reason}");
                    remove_quietly(&meta_path);
                    remove_quietly(&data_path);
                }
            }
        }
        for (id, data_path) in datas {
            if !out.iter().any(|r| r.block_id == id) && data_path.exists() {
                tracing::warn!(block_id = id, path = %data_path.display(), "removing a data file without meta file");
                remove_quietly(&data_path);
            }
        }
        Ok(())
    }
}

impl Volume {
    /// Every replica left in `rbw/` by an earlier run, cut to its valid
    /// length (see [`valid_length`]). A meta file without data, a data file
    /// without meta, an unreadable meta header, or older meta files of a
    /// block with several are removed and logged.
    pub(crate) fn scan_rbw(&self) -> Result<Vec<ScannedRbw>, DatanodeError> {
        let entries = std::fs::read_dir(&self.rbw).map_err(|e| DatanodeError::io(&self.rbw, e))?;
        let mut metas: Vec<(u64, u64)> = Vec::new();
        let mut datas = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| DatanodeError::io(&self.rbw, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((id, gs)) = meta::parse_meta_name(&name) {
                metas.push((id, gs));
            } else if let Some(id) = meta::parse_data_name(&name) {
                datas.push(id);
            } else {
                tracing::warn!(path = %entry.path().display(), "removing an unknown file from rbw");
                remove_quietly(&entry.path());
            }
        }
        // Newest generation stamp first, so older meta files of a block go.
        metas.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut out: Vec<ScannedRbw> = Vec::new();
        for (id, gs) in metas {
            let meta_path = self.rbw_meta_path(id, gs);
            let data_path = self.rbw_data_path(id);
            if out.last().is_some_and(|r| r.block_id == id) {
                tracing::warn!(path = %meta_path.display(), "removing an older meta file of an rbw replica");
                remove_quietly(&meta_path);
                continue;
            }
            let checked = valid_length(&data_path, &meta_path).and_then(|(len, bpc)| {
                truncate_files(&data_path, &meta_path, len, bpc)
                    .map(|_| len)
                    .map_err(|e| format!("{}: {e}", data_path.display()))
            });
            match checked {
                Ok(len) => {
                    tracing::info!(block_id = id, gen_stamp = gs, len, "kept an rbw replica of an earlier run");
                    out.push(ScannedRbw { block_id: id, gen_stamp: gs, len });
                }
                Err(reason) => {
                    tracing::warn!(block_id = id, path = %meta_path.display(), "removing an unusable rbw replica: {reason}");
                    remove_quietly(&meta_path);
                    remove_quietly(&data_path);
                }
            }
        }
        for id in datas {
            if !out.iter().any(|r| r.block_id == id) {
                let path = self.rbw_data_path(id);
                tracing::warn!(block_id = id, path = %path.display(), "removing an rbw data file without meta file");
                remove_quietly(&path);
            }
        }
        Ok(out)
    }
}

/// Bytes of a replica's data that can be trusted, and its bytes per
/// checksum: the chunks that both files hold, less trailing chunks whose
/// checksum does not verify (a write torn by a crash). Only the last chunks
/// are read.
pub(crate) fn valid_length(data_path: &Path, meta_path: &Path) -> Result<(u64, u32), String> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let mut meta_f = std::fs::File::open(meta_path).map_err(|e| err(meta_path, e))?;
    let mut h = [0u8; meta::HEADER_LEN as usize];
    meta_f.read_exact(&mut h).map_err(|e| format!("{}: header: {e}", meta_path.display()))?;
    let bpc = meta::decode_header(&h).map_err(|e| format!("{}: {e}", meta_path.display()))?;
    let meta_len = meta_f.metadata().map_err(|e| err(meta_path, e))?.len();
    let data = std::fs::File::open(data_path).map_err(|e| err(data_path, e))?;
    let data_len = data.metadata().map_err(|e| err(data_path, e))?.len();
    let bpc64 = bpc as u64;
    let sums = (meta_len - meta::HEADER_LEN) / CHECKSUM_SIZE as u64;
    let mut chunks = sums.min(data_len.div_ceil(bpc64));
    let mut valid = data_len.min(chunks * bpc64);
    let mut buf = vec![0u8; bpc as usize];
    while chunks > 0 {
        let start = (chunks - 1) * bpc64;
        let chunk = &mut buf[..(valid - start) as usize];
        data.read_exact_at(chunk, start).map_err(|e| err(data_path, e))?;
        let mut stored = [0u8; CHECKSUM_SIZE];
        let at = meta::HEADER_LEN + (chunks - 1) * CHECKSUM_SIZE as u64;
        meta_f.read_exact_at(&mut stored, at).map_err(|e| err(meta_path, e))?;
        if crc32c::crc32c(chunk).to_be_bytes() == stored {
            break;
        }
        chunks -= 1;
        valid = start;
    }
    Ok((valid, bpc))
}

/// Cuts a replica's files to `len` data bytes (at most its valid length):
/// the data file, the meta file to the chunks covering `len`, and the
/// checksum of a last partial chunk recomputed when data was cut inside it.
pub(crate) fn truncate_files(data_path: &Path, meta_path: &Path, len: u64, bytes_per_checksum: u32) -> std::io::Result<()> {
    let bpc = bytes_per_checksum as u64;
    let data = std::fs::File::options().read(true).write(true).open(data_path)?;
    let old_len = data.metadata()?.len();
    if old_len > len {
        data.set_len(len)?;
    }
    let meta_f = std::fs::File::options().read(true).write(true).open(meta_path)?;
    let chunks = len.div_ceil(bpc);
    meta_f.set_len(meta::HEADER_LEN + chunks * CHECKSUM_SIZE as u64)?;
    if !len.is_multiple_of(bpc) && old_len > len {
        let start = (chunks - 1) * bpc;
        let mut chunk = vec![0u8; (len - start) as usize];
        data.read_exact_at(&mut chunk, start)?;
        let at = meta::HEADER_LEN + (chunks - 1) * CHECKSUM_SIZE as u64;
        meta_f.write_all_at(&crc32c::crc32c(&chunk).to_be_bytes(), at)?;
    }
    Ok(())
}

/// Checks that a data file and its meta file form a complete replica;
/// returns `(data length, data + meta bytes)`.
pub(crate) fn check_replica(data_path: &Path, meta_path: &Path) -> Result<(u64, u64), String> {
    let data_len = std::fs::metadata(data_path).map_err(|e| format!("{}: {e}", data_path.display()))?.len();
    let mut f = std::fs::File::open(meta_path).map_err(|e| format!("{}: {e}", meta_path.display()))?;
    let meta_len = f.metadata().map_err(|e| format!("{}: {e}", meta_path.display()))?.len();
    let mut h = [0u8; meta::HEADER_LEN as usize];
    f.read_exact(&mut h).map_err(|e| format!("{}: header: {e}", meta_path.display()))?;
    let bpc = meta::decode_header(&h).map_err(|e| format!("{}: {e}", meta_path.display()))?;
    let want = meta::expected_meta_len(data_len, bpc);
    if meta_len != want {
        return Err(format!(
            "{} holds {data_len} bytes but its meta file has {meta_len} bytes (expected {want})",
            data_path.display()
        ));
    }
    Ok((data_len, data_len + meta_len))
}

fn read_subdirs(dir: &Path) -> Result<Vec<PathBuf>, DatanodeError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DatanodeError::io(dir, e))? {
        let entry = entry.map_err(|e| DatanodeError::io(dir, e))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && entry.file_name().to_string_lossy().starts_with("subdir") {
            out.push(entry.path());
        }
    }
    Ok(out)
}

pub(crate) fn remove_quietly(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), "cannot remove: {e}"),
    }
}
