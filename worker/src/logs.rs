//! Task logs and local-file hygiene: reading an attempt's `stdout`/`stderr`
//! for GetTaskLog, keeping them in `<local_dir>/logs/<attempt_id>/` once
//! the attempt's directory is deleted, removing retained logs after
//! `log_retain_ms` (the [`LogJanitor`]), and clearing the attempt
//! directories a previous run of the worker left behind.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

use crate::error::{Result, WorkerError};

/// Most bytes one GetTaskLog answer carries.
pub(crate) const MAX_LOG_READ: u64 = 4 << 20;
/// Bytes returned when a request names no length.
const DEFAULT_LOG_READ: u64 = 1 << 20;
const LOG_FILES: [&str; 2] = ["stdout", "stderr"];

/// Reads `[offset, offset + max_len)` of a log (a negative offset counts
/// back from the end); returns the bytes and the file's length.
pub(crate) fn read_log(path: &Path, offset: i64, max_len: u64) -> Result<(Vec<u8>, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| WorkerError::io(path, e))?;
    let len = f.metadata().map_err(|e| WorkerError::io(path, e))?.len();
    let start = if offset < 0 { len.saturating_sub(offset.unsigned_abs()) } else { (offset as u64).min(len) };
    let want = match max_len {
        0 => DEFAULT_LOG_READ,
        n => n.min(MAX_LOG_READ),
    };
    let mut data = Vec::new();
    f.seek(SeekFrom::Start(start)).map_err(|e| WorkerError::io(path, e))?;
    f.take(want).read_to_end(&mut data).map_err(|e| WorkerError::io(path, e))?;
    Ok((data, len))
}

/// Where an attempt's logs are kept after its directory is gone.
fn retained_dir(local_dir: &Path, attempt_id: &str) -> PathBuf {
    local_dir.join("logs").join(attempt_id)
}

/// The retained `name` log of an attempt, if some local dir has it.
pub(crate) fn retained_log(local_dirs: &[PathBuf], attempt_id: &str, name: &str) -> Option<PathBuf> {
    local_dirs.iter().map(|d| retained_dir(d, attempt_id).join(name)).find(|p| p.is_file())
}

/// Deletes an attempt's directory, first moving its logs to the retained
/// logs when `keep_logs`. Failures are logged: cleanup must not stop.
pub(crate) fn retire_attempt_dir(local_dir: &Path, dir: &Path, attempt_id: &str, keep_logs: bool) {
    if keep_logs && dir.is_dir() {
        let keep = retained_dir(local_dir, attempt_id);
        match std::fs::create_dir_all(&keep) {
            Ok(()) => {
                for name in LOG_FILES {
                    let from = dir.join(name);
                    if from.exists()
                        && let Err(e) = std::fs::rename(&from, keep.join(name))
                    {
                        tracing::warn!("{}: cannot keep the log: {e}", from.display());
                    }
                }
            }
            Err(e) => tracing::warn!("{}: cannot keep logs: {e}", keep.display()),
        }
    }
    remove_dir(dir);
    // The job's directory goes with its last attempt.
    if let Some(job_dir) = dir.parent() {
        let _ = std::fs::remove_dir(job_dir);
    }
}

/// Deletes a directory tree; missing is fine, other failures are logged.
pub(crate) fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("{}: cannot delete: {e}", dir.display()),
    }
}

/// Creates `<local_dir>/jobs` and `<local_dir>/logs`, first moving aside
/// the `jobs` a previous run left (its attempts are gone with it); returns
/// the moved-aside directories for [`clear_previous_run`].
pub(crate) fn prepare_local_dirs(local_dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut stale = Vec::new();
    for d in local_dirs {
        std::fs::create_dir_all(d).map_err(|e| WorkerError::io(d, e))?;
        for entry in std::fs::read_dir(d).map_err(|e| WorkerError::io(d, e))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with("jobs.previous-") {
                stale.push(entry.path());
            }
        }
        let jobs = d.join("jobs");
        if jobs.exists() {
            let aside = d.join(format!("jobs.previous-{}", uuid::Uuid::new_v4().simple()));
            std::fs::rename(&jobs, &aside).map_err(|e| WorkerError::io(&jobs, e))?;
            stale.push(aside);
        }
        for sub in ["jobs", "logs", "warm"] {
            let p = d.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| WorkerError::io(&p, e))?;
        }
    }
    Ok(stale)
}

/// Deletes what [`prepare_local_dirs`] moved aside, keeping the attempts'
/// logs when `keep_logs`. Blocking; run in the background.
pub(crate) fn clear_previous_run(stale: Vec<PathBuf>, keep_logs: bool) {
    for dir in stale {
        let Some(local_dir) = dir.parent().map(Path::to_path_buf) else { continue };
        let jobs = std::fs::read_dir(&dir).into_iter().flatten().flatten();
        for job in jobs {
            for attempt in std::fs::read_dir(job.path()).into_iter().flatten().flatten() {
                let id = attempt.file_name().to_string_lossy().into_owned();
                retire_attempt_dir(&local_dir, &attempt.path(), &id, keep_logs);
            }
        }
        remove_dir(&dir);
    }
}

/// Deletes retained logs older than the retention, now and then.
pub(crate) struct LogJanitor {
    pub local_dirs: Vec<PathBuf>,
    pub retain: Duration,
}

impl LogJanitor {
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let period = (self.retain / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(period) => {}
            }
            let (dirs, retain) = (self.local_dirs.clone(), self.retain);
            let _ = tokio::task::spawn_blocking(move || expire_logs(&dirs, retain, SystemTime::now())).await;
        }
    }
}

/// Removes `<local_dir>/logs/<attempt>` dirs last modified before `now -
/// retain`.
fn expire_logs(local_dirs: &[PathBuf], retain: Duration, now: SystemTime) {
    for d in local_dirs {
        for entry in std::fs::read_dir(d.join("logs")).into_iter().flatten().flatten() {
            let modified = entry.metadata().and_then(|m| m.modified());
            if let Ok(t) = modified
                && now.duration_since(t).is_ok_and(|age| age >= retain)
            {
                remove_dir(&entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ranges_count_from_either_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stderr");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_log(&p, 0, 0).unwrap(), (b"0123456789".to_vec(), 10));
        assert_eq!(read_log(&p, 3, 4).unwrap().0, b"3456");
        assert_eq!(read_log(&p, -3, 0).unwrap().0, b"789");
        assert_eq!(read_log(&p, -30, 2).unwrap().0, b"01");
        assert_eq!(read_log(&p, 30, 2).unwrap(), (vec![], 10));
        let e = read_log(&dir.path().join("nope"), 0, 0).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn retired_attempts_keep_their_logs_until_they_expire() {
        let ld = tempfile::tempdir().unwrap();
        let ld = ld.path();
        let stale = prepare_local_dirs(&[ld.to_path_buf()]).unwrap();
        assert!(stale.is_empty());
        let attempt = ld.join("jobs/job_1/attempt_1");
        std::fs::create_dir_all(attempt.join("output")).unwrap();
        std::fs::write(attempt.join("stderr"), "err").unwrap();
        std::fs::write(attempt.join("output/file.out"), "data").unwrap();
        retire_attempt_dir(ld, &attempt, "attempt_1", true);
        assert!(!ld.join("jobs/job_1").exists(), "the job dir goes with its last attempt");
        let kept = retained_log(&[ld.to_path_buf()], "attempt_1", "stderr").unwrap();
        assert_eq!(std::fs::read_to_string(kept).unwrap(), "err");

        expire_logs(&[ld.to_path_buf()], Duration::from_secs(3600), SystemTime::now());
        assert!(retained_log(&[ld.to_path_buf()], "attempt_1", "stderr").is_some());
        expire_logs(&[ld.to_path_buf()], Duration::from_secs(3600), SystemTime::now() + Duration::from_secs(7200));
        assert!(retained_log(&[ld.to_path_buf()], "attempt_1", "stderr").is_none());
    }

    #[test]
    fn a_previous_run_is_moved_aside_and_cleared() {
        let ld = tempfile::tempdir().unwrap();
        let ld = ld.path().to_path_buf();
        let old = ld.join("jobs/job_1/attempt_old");
        std::fs::create_dir_all(old.join("work")).unwrap();
        std::fs::write(old.join("stdout"), "out").unwrap();
        let stale = prepare_local_dirs(std::slice::from_ref(&ld)).unwrap();
        assert_eq!(stale.len(), 1);
        assert!(ld.join("jobs").is_dir() && ld.join("logs").is_dir());
        assert_eq!(std::fs::read_dir(ld.join("jobs")).unwrap().count(), 0);
        clear_previous_run(stale, true);
        assert!(retained_log(std::slice::from_ref(&ld), "attempt_old", "stdout").is_some());
        let names: Vec<String> =
            std::fs::read_dir(&ld).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| n.starts_with("jobs.previous-")), "{names:?}");
    }
}
