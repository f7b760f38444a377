//! Jobs on a [`TestCluster`]: `tusk job` commands, the job client, and
//! reading a job's output.

use crate::TestCluster;
use anyhow::{Context, bail};
use std::process::Output;
use std::time::Duration;
use tusk_client::JobClient;
use tusk_client::{JobReport, JobState};

impl TestCluster {
    /// Runs `tusk job <args>` and returns its output.
    pub fn job(&self, args: &[&str]) -> Output {
        self.tusk().arg("job").args(args).output().unwrap_or_else(|e| panic!("cannot run tusk job: {e}"))
    }

    /// Runs `tusk job <args>`, fails the test unless it succeeds; returns stdout.
    pub fn job_ok(&self, args: &[&str]) -> String {
        let out = self.job(args);
        assert!(
            out.status.success(),
            "tusk job {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `tusk job <args>`, expects failure, returns stderr.
    pub fn job_err(&self, args: &[&str]) -> String {
        let out = self.job(args);
        assert!(
            !out.status.success(),
            "tusk job {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Submits with `tusk job <args> --detach` and returns the job id.
    pub fn submit(&self, args: &[&str]) -> String {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--detach");
        let out = self.job_ok(&all);
        job_id_in(&out).unwrap_or_else(|| panic!("no job id in the output of tusk job {args:?}: {out}"))
    }

    /// A client of the jobtracker.
    pub async fn job_client(&self) -> anyhow::Result<JobClient> {
        Ok(JobClient::connect(self.jobtracker.clone()).await?)
    }

    /// The job's report (with tasks and attempts).
    pub async fn job_report(&self, id: &str) -> anyhow::Result<JobReport> {
        Ok(self.job_client().await?.job(id, true).await?)
    }

    /// Polls until the job has finished (any final state) and returns its report.
    pub async fn wait_job(&self, id: &str, timeout: Duration) -> anyhow::Result<JobReport> {
        let jc = self.job_client().await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = jc.job(id, true).await?;
            if is_final(r.state) {
                return Ok(r);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("job {id} still {:?} after {timeout:?}", r.state);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Bytes of every `part-*` file of a job's output directory, in name order.
    pub async fn job_output(&self, dir: &str) -> anyhow::Result<Vec<u8>> {
        let client = self.client().await?;
        let mut parts: Vec<_> = client
            .list(dir)
            .await?
            .into_iter()
            .map(|f| f.path)
            .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with("part-")))
            .collect();
        parts.sort();
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(&client.read_all(&p).await.with_context(|| p.clone())?);
        }
        Ok(out)
    }
}

/// True for SUCCEEDED, FAILED and KILLED.
pub fn is_final(state: JobState) -> bool {
    state.is_finished()
}

/// The first `job_<digits>_<digits>` in `text`.
pub fn job_id_in(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| {
            let mut parts = w.split('_');
            parts.next() == Some("job")
                && parts.next().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                && parts.next().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                && parts.next().is_none()
        })
        .map(str::to_string)
}

/// Value of counter `group`/`name` in a report (0 when absent).
pub fn counter(report: &JobReport, group: &str, name: &str) -> i64 {
    report.counter(group, name)
}

/// Sorted `word\tcount` lines of a word count computed here, words split on
/// ASCII whitespace.
pub fn word_counts(text: &[u8]) -> Vec<String> {
    let mut counts = std::collections::BTreeMap::<&[u8], u64>::new();
    for w in text.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
        *counts.entry(w).or_insert(0) += 1;
    }
    counts.into_iter().map(|(w, n)| format!("{}\t{n}", String::from_utf8_lossy(w))).collect()
}

/// Lines of `text`, sorted.
pub fn sorted_lines(text: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(text).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Deterministic text: `lines` lines of words drawn from a skewed
/// vocabulary (a few very common words, a long tail), seeded.
pub fn text_corpus(lines: usize, seed: u64) -> Vec<u8> {
    const COMMON: [&str; 8] = ["the", "of", "and", "to", "in", "a", "is", "that"];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    for _ in 0..lines {
        let words = 3 + next() % 12;
        for i in 0..words {
            if i > 0 {
                out.push(b' ');
            }
            let r = next();
            if r % 3 == 0 {
                out.extend_from_slice(COMMON[(r >> 8) as usize % COMMON.len()].as_bytes());
            } else {
                out.extend_from_slice(format!("w{}", (r >> 8) % 5000).as_bytes());
            }
        }
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_job_ids() {
        assert_eq!(job_id_in("submitted job_1764_0003\n").as_deref(), Some("job_1764_0003"));
        assert_eq!(job_id_in("{\"id\":\"job_1_0001\"}").as_deref(), Some("job_1_0001"));
        assert_eq!(job_id_in("job_x_1 task_1_0001_m_000000"), None);
    }

    #[test]
    fn counts_words() {
        assert_eq!(word_counts(b"b a\n a\tc  b b"), vec!["a\t2", "b\t3", "c\t1"]);
    }
}
