//! Persistence: `<state_dir>/jobtracker.json` (first start time) and one
//! JSON document per job in `<state_dir>/jobs/<job_id>.json`. The next job
//! number is one more than the highest stored (the history drops the
//! oldest jobs first, so the newest job's file is always there).
//! Every file is replaced atomically (temporary file, fsync, rename, fsync
//! of the directory), so a crash leaves either the old or the new version.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{JobtrackerError, Result};
use crate::sched::Job;

/// `jobtracker.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The first start of this jobtracker (milliseconds since the epoch):
    /// part of every id, so ids never repeat across restarts.
    pub(crate) start_ms: i64,
}

pub(crate) struct Store {
    dir: PathBuf,
    jobs: PathBuf,
    /// Highest version written per job: writes of older snapshots are
    /// skipped, and writes happen one at a time.
    written: tokio::sync::Mutex<HashMap<String, u64>>,
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| JobtrackerError::io(&tmp, e))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| JobtrackerError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| JobtrackerError::io(path, e))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| JobtrackerError::io(dir, e))?;
    }
    Ok(())
}

impl Store {
    /// Opens the state directory (created if missing) and reads
    /// `jobtracker.json`, writing it with `now` as start time on first start.
    pub(crate) fn open(dir: &Path, now: i64) -> Result<(Store, Meta)> {
        let jobs = dir.join("jobs");
        std::fs::create_dir_all(&jobs).map_err(|e| JobtrackerError::io(&jobs, e))?;
        let store = Store { dir: dir.to_path_buf(), jobs, written: tokio::sync::Mutex::new(HashMap::new()) };
        let path = store.meta_path();
        let meta = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| JobtrackerError::Corrupt { path: path.display().to_string(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let meta = Meta { start_ms: now };
                store.write_meta_blocking(meta)?;
                meta
            }
            Err(e) => return Err(JobtrackerError::io(&path, e)),
        };
        Ok((store, meta))
    }

    fn meta_path(&self) -> PathBuf {
        self.dir.join("jobtracker.json")
    }

    fn job_path(&self, job_id: &str) -> PathBuf {
        self.jobs.join(format!("{job_id}.json"))
    }

    fn write_meta_blocking(&self, meta: Meta) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(&meta).map_err(|e| JobtrackerError::Internal(format!("encoding meta: {e}")))?;
        write_atomic(&self.meta_path(), &bytes)
    }

    /// Every stored job. A file that cannot be read is renamed to
    /// `<name>.corrupt` and skipped (with a warning), so one bad file does
    /// not keep the jobtracker down.
    pub(crate) fn load_jobs(&self) -> Result<Vec<Job>> {
        let entries = std::fs::read_dir(&self.jobs).map_err(|e| JobtrackerError::io(&self.jobs, e))?;
        let mut jobs = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| JobtrackerError::io(&self.jobs, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Job>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(job) => jobs.push(job),
                Err(e) => {
                    tracing::warn!("{}: unreadable job file, set aside: {e}", path.display());
                    let _ = std::fs::rename(&path, path.with_extension("json.corrupt"));
                }
            }
        }
        jobs.sort_by_key(|j| j.seq);
        Ok(jobs)
    }

    /// Writes version `version` of a job unless a newer one was written.
    pub(crate) async fn write_job(&self, job_id: &str, version: u64, bytes: Vec<u8>) -> Result<()> {
        let mut written = self.written.lock().await;
        if written.get(job_id).is_some_and(|v| *v >= version) {
            return Ok(());
        }
        let path = self.job_path(job_id);
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|e| JobtrackerError::Internal(format!("writing {job_id}: {e}")))??;
        written.insert(job_id.to_string(), version);
        Ok(())
    }

    /// Removes a job dropped from the history.
    pub(crate) async fn delete_job(&self, job_id: &str) -> Result<()> {
        let mut written = self.written.lock().await;
        written.remove(job_id);
        let path = self.job_path(job_id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(JobtrackerError::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::{JobDraft, Scheduler};

    fn job(seq: u32) -> Job {
        let draft =
            JobDraft { name: "j".into(), output: "/o".into(), doc: serde_json::json!({"k": 1}), stages: vec![] };
        Scheduler::new_job(crate::ids::job_id(5, seq), seq, "u", "mapreduce", draft, 1, 2)
    }

    #[test]
    fn meta_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_, m) = Store::open(dir.path(), 1234).unwrap();
        assert_eq!(m, Meta { start_ms: 1234 });
        let (_, m) = Store::open(dir.path(), 9999).unwrap();
        assert_eq!(m.start_ms, 1234, "the first start time is kept");
    }

    #[tokio::test]
    async fn jobs_are_written_replaced_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), 1).unwrap();
        let j = job(1);
        store.write_job(&j.id, 2, serde_json::to_vec(&j).unwrap()).await.unwrap();
        let mut newer = j.clone();
        newer.name = "newer".into();
        // An older snapshot arriving late does not overwrite a newer one.
        store.write_job(&j.id, 3, serde_json::to_vec(&newer).unwrap()).await.unwrap();
        store.write_job(&j.id, 2, serde_json::to_vec(&j).unwrap()).await.unwrap();
        store.write_job(&job(2).id, 1, serde_json::to_vec(&job(2)).unwrap()).await.unwrap();
        std::fs::write(dir.path().join("jobs/junk.json"), b"{").unwrap();
        std::fs::write(dir.path().join("jobs/x.json.tmp"), b"half").unwrap();
        let loaded = store.load_jobs().unwrap();
        assert_eq!(loaded.iter().map(|j| (j.seq, j.name.as_str())).collect::<Vec<_>>(), vec![(1, "newer"), (2, "j")]);
        assert_eq!(loaded[0].doc, serde_json::json!({"k": 1}));
        assert!(dir.path().join("jobs/junk.json.corrupt").exists());
        assert!(!dir.path().join("jobs/x.json.tmp").exists());
        store.delete_job(&j.id).await.unwrap();
        store.delete_job(&j.id).await.unwrap();
        assert_eq!(store.load_jobs().unwrap().len(), 1);
    }
}
