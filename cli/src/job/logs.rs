//! `tusk job logs ID [--attempt A] [--stdout]`: the logs of a job's attempts,
//! read from the workers that ran them; when a worker is gone, the stderr
//! tail the jobtracker kept in the job's report.

use anyhow::bail;
use std::io::Write;
use tusk_client::{AttemptReport, JobClient, JobReport};

/// Bytes asked of a worker per call.
const CHUNK: u64 = 1 << 20;

/// Prints the `stream` log (`stderr` or `stdout`) of every attempt of the
/// job, or of `only` when given.
pub async fn print_logs(jobs: &JobClient, r: &JobReport, only: Option<&str>, stream: &str) -> anyhow::Result<()> {
    let attempts: Vec<&AttemptReport> =
        r.tasks.iter().flat_map(|t| &t.attempts).filter(|a| only.is_none_or(|o| o == a.attempt_id)).collect();
    if let Some(o) = only
        && attempts.is_empty()
    {
        bail!("{o}: no such attempt in {}", r.job_id);
    }
    if attempts.is_empty() {
        println!("{}: no attempts ran", r.job_id);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for a in attempts {
        writeln!(
            out,
            "==> {} ({}, worker {} {}) {stream} <==",
            a.attempt_id,
            a.state.as_str(),
            a.worker_id,
            a.worker_addr
        )?;
        if a.worker_addr.is_empty() {
            writeln!(out, "(not started on a worker)")?;
            continue;
        }
        match fetch(jobs, &a.worker_addr, &a.attempt_id, stream).await {
            Ok(bytes) => out.write_all(&bytes)?,
            Err(e) => {
                let kept = stream == "stderr" && !a.stderr_tail.is_empty();
                if kept {
                    writeln!(out, "({e}; the last lines the jobtracker kept:)")?;
                    out.write_all(a.stderr_tail.as_bytes())?;
                } else {
                    writeln!(out, "(log unavailable: {e})")?;
                }
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The whole log, in chunks.
async fn fetch(jobs: &JobClient, worker: &str, attempt: &str, stream: &str) -> tusk_client::Result<Vec<u8>> {
    let mut all = Vec::new();
    loop {
        let part = jobs.task_log_stream(worker, attempt, stream, all.len() as i64, CHUNK).await?;
        let done = part.data.is_empty() || all.len() as u64 + part.data.len() as u64 >= part.total_len;
        all.extend_from_slice(&part.data);
        if done {
            return Ok(all);
        }
    }
}
