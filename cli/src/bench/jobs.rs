//! What the job benchmarks share: the jobtracker of the target cluster,
//! running a job to success and timing it, and the latency figures
//! (submission to first task running; an empty job end to end).

use anyhow::{Context, bail};
use std::time::{Duration, Instant};
use tusk_client::{Client, ClientConfig, JobClient, JobReport, JobState};
use tusk_mapreduce::JobSpec;

use super::Target;
use crate::job::{Display, follow, submit_spec, wait_polling, wordcount_spec};

/// Targets of the issue, printed next to the figures.
pub const FIRST_TASK_TARGET_MS: i64 = 100;
pub const EMPTY_JOB_TARGET: Duration = Duration::from_secs(1);

/// The clients of a benchmark's cluster.
pub struct Clients {
    pub dfs: Client,
    pub jobs: JobClient,
    /// Workers registered (live) when the benchmark starts.
    pub workers: usize,
    /// Their task slots in all.
    pub slots: u32,
}

impl Clients {
    pub async fn connect(target: &Target, jobtracker: Option<String>) -> anyhow::Result<Clients> {
        let jt = jobtracker.or_else(|| target.jobtracker.clone()).context(
            "no jobtracker: pass --jobtracker or set TUSK_JOBTRACKER with --namenode/TUSK_NAMENODE, \
             or give neither to run on a local cluster",
        )?;
        let dfs = Client::connect(ClientConfig::new(target.namenode.clone())).await?;
        let jobs = JobClient::connect(jt).await?.with_user(dfs.user());
        let status = jobs.cluster_status().await?;
        let workers = status.live_workers().count();
        if workers == 0 {
            bail!("the jobtracker {} has no live workers", jobs.addr());
        }
        let slots = status.live_workers().map(|w| w.slots).sum();
        Ok(Clients { dfs, jobs, workers, slots })
    }
}

/// A finished, successful job and how long it took.
pub struct JobRun {
    pub report: JobReport,
    /// Submission to the jobtracker's finish time (its own clock), plus
    /// what the client did before submitting (`prep`).
    pub time: Duration,
}

/// Runs `spec` to success with a progress display; `prep` is the client's
/// time spent preparing it (sampling), counted in the job's time.
pub async fn run_job(c: &Clients, spec: &JobSpec, prep: Duration) -> anyhow::Result<JobRun> {
    let id = submit_spec(&c.jobs, spec).await.with_context(|| format!("submitting {}", spec.name))?;
    eprintln!("{} {id}", spec.name);
    let report = follow(&c.jobs, &id, Display::Auto).await?;
    if report.state != JobState::Succeeded {
        bail!("{} job {id} {}: {}", spec.name, report.state, report.diagnostics);
    }
    let server = Duration::from_millis((report.finish_ms - report.submit_ms).max(0) as u64);
    Ok(JobRun { report, time: prep + server })
}

/// Latency figures of a cluster.
pub struct Latency {
    /// Submission to the first attempt running, of the benchmark's job.
    pub first_task_ms: i64,
    /// A wordcount over one empty file, submission to success seen by the client.
    pub empty_job: Duration,
    /// The same job's submission to first task running.
    pub empty_first_task_ms: i64,
}

/// Runs a wordcount over one empty file under `dir` and times it end to
/// end as a user sees it (polling every few milliseconds).
pub async fn empty_job(c: &Clients, dir: &str) -> anyhow::Result<(Duration, i64)> {
    let input = format!("{dir}/empty/input.txt");
    let output = format!("{dir}/empty/output");
    c.dfs.write_all(&input, b"", true).await?;
    let _ = c.dfs.delete(&output, true).await?;
    let spec = wordcount_spec(input, output, 1);
    let start = Instant::now();
    let id = submit_spec(&c.jobs, &spec).await?;
    let report = wait_polling(&c.jobs, &id, Some(Duration::from_millis(5)), |_| ()).await?;
    let took = start.elapsed();
    if report.state != JobState::Succeeded {
        bail!("empty job {id} {}: {}", report.state, report.diagnostics);
    }
    Ok((took, report.first_launch_ms))
}

/// Prints the latency lines with their targets.
pub fn print_latency(l: &Latency) {
    let met = |ok: bool| if ok { "met" } else { "missed" };
    println!(
        "submit -> first task running   {:>7} ms   (target < {FIRST_TASK_TARGET_MS} ms: {})",
        l.first_task_ms,
        met(l.first_task_ms < FIRST_TASK_TARGET_MS)
    );
    println!(
        "empty job end to end           {:>7} ms   (target < {} ms: {}; its first task after {} ms)",
        l.empty_job.as_millis(),
        EMPTY_JOB_TARGET.as_millis(),
        met(l.empty_job < EMPTY_JOB_TARGET),
        l.empty_first_task_ms
    );
}

/// MB/s of `bytes` in `d`.
pub fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}
