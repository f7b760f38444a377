//! The output commit protocol (Hadoop's `FileOutputCommitter`, algorithm
//! 1): attempts write under `OUT/_temporary/0/_temporary/<attempt>`; the
//! jobtracker commits the first successful attempt of a task by renaming
//! its directory to `OUT/_temporary/0/<task>`; job commit moves every
//! committed task's files into `OUT`, deletes `_temporary` and writes
//! `_SUCCESS`. Failed, killed and losing attempts never reach `OUT`.
//!
//! The jobtracker calls these; they run with its DFS identity.

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use tusk_client::{Client, CreateOptions, FileStatus};
use tusk_common::path;

use crate::error::{Result, TaskError};
use crate::plan::{is_hidden, is_missing, stat_if_exists};
use crate::spec::layout;

/// Renames in flight while moving one task's files.
const PARALLEL_MOVES: usize = 16;

/// Creates `OUT/_temporary/0` (and `OUT`) before any task runs.
pub async fn setup_job(client: &Client, output: &str) -> Result<()> {
    client.mkdirs(&job_attempt_path(output), None, true).await?;
    Ok(())
}

/// Commits attempt `attempt_id` of task `task_id`: renames its work
/// directory to the task's committed directory, replacing what an earlier
/// commit of the same task left (a jobtracker that restarted mid-commit).
/// An attempt without a work directory cannot be committed.
pub async fn commit_task(client: &Client, output: &str, task_id: &str, attempt_id: &str) -> Result<()> {
    let src = layout::work_path(output, attempt_id);
    let dst = layout::committed_task_path(output, task_id);
    if stat_if_exists(client, &src).await?.is_none() {
        return Err(TaskError::Invalid(format!("cannot commit {attempt_id}: its output directory {src} does not exist")));
    }
    client.delete(&dst, true).await?;
    client.rename(&src, &dst, false).await?;
    Ok(())
}

/// Deletes what attempt `attempt_id` wrote (failed, killed or beaten by
/// another attempt of its task); nothing to delete is fine.
pub async fn discard_attempt(client: &Client, output: &str, attempt_id: &str) -> Result<()> {
    client.delete(&layout::work_path(output, attempt_id), true).await?;
    Ok(())
}

/// Commits the job: moves every committed task's files into `output`
/// (merging directories, replacing same-named files), deletes
/// `OUT/_temporary` (with the uncommitted attempts under it) and writes an
/// empty `OUT/_SUCCESS`. Idempotent: run again after a crash at any point,
/// it moves what is left and finishes.
pub async fn commit_job(client: &Client, output: &str) -> Result<()> {
    let out = path::normalize(output).map_err(|e| TaskError::Invalid(format!("output directory {e}")))?;
    let tasks = match client.list(&job_attempt_path(&out)).await {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    for task in tasks.iter().filter(|t| t.is_dir && !is_hidden(&t.name)) {
        // Tasks one after the other (a later task's file of the same name
        // wins, as in Hadoop); each task's files in parallel.
        let files = client.list(&task.path).await?;
        futures::stream::iter(files)
            .map(|f| {
                let dst = path::join(&out, &f.name);
                merge(client, f, dst)
            })
            .buffer_unordered(PARALLEL_MOVES)
            .try_collect::<Vec<()>>()
            .await?;
    }
    client.delete(&layout::temporary(&out), true).await?;
    let opts = CreateOptions { overwrite: true, create_parent: false, ..Default::default() };
    client.create(&layout::success_marker(&out), opts).await?.close().await?;
    Ok(())
}

/// Deletes the job's whole output directory (the job created it: it did
/// not exist at submission); a missing directory is fine.
pub async fn abort_job(client: &Client, output: &str) -> Result<()> {
    client.delete(output, true).await?;
    Ok(())
}

/// `OUT/_temporary/0`: the job attempt's directory.
fn job_attempt_path(output: &str) -> String {
    format!("{}/0", layout::temporary(output))
}

/// Moves `src` to `dst`: a rename when `dst` is free; directories merge
/// into existing directories; anything else in the way is replaced.
fn merge(client: &Client, src: FileStatus, dst: String) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        match stat_if_exists(client, &dst).await? {
            None => {}
            Some(existing) if existing.is_dir && src.is_dir => {
                for child in client.list(&src.path).await? {
                    let d = path::join(&dst, &child.name);
                    merge(client, child, d).await?;
                }
                client.delete(&src.path, true).await?;
                return Ok(());
            }
            Some(_) => {
                client.delete(&dst, true).await?;
            }
        }
        client.rename(&src.path, &dst, false).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_nests_attempts_under_the_job_attempt_directory() {
        assert_eq!(job_attempt_path("/out"), "/out/_temporary/0");
        assert_eq!(job_attempt_path("/out/"), "/out/_temporary/0");
        let work = layout::work_path("/out", "attempt_1_0001_r_000002_0");
        let committed = layout::committed_task_path("/out", "task_1_0001_r_000002");
        assert!(work.starts_with(&job_attempt_path("/out")));
        assert!(committed.starts_with(&job_attempt_path("/out")));
        // Uncommitted attempts sit in a hidden directory that job commit skips.
        let rel = work.strip_prefix("/out/_temporary/0/").unwrap();
        assert!(is_hidden(rel.split('/').next().unwrap()), "{rel}");
        let rel = committed.strip_prefix("/out/_temporary/0/").unwrap();
        assert!(!is_hidden(rel), "{rel}");
    }
}
