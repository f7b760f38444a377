//! Following a job until it finishes: a live display on stderr (indicatif
//! bars on a terminal, a plain `map 45% reduce 0% running 3 failed 0` line
//! whenever it changes otherwise), then the verdict.

use anyhow::bail;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tusk_client::{JobClient, JobReport, JobState};

use super::show::print_counters;

/// How long the jobtracker may stay unreachable while a job is followed.
const UNREACHABLE_LIMIT: Duration = Duration::from_secs(60);

/// How the display looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    /// Nothing (JSON output, benchmarks).
    Quiet,
}

/// Polls the job until it is finished, showing its progress; returns the
/// final report (with tasks, for diagnostics).
pub async fn follow(jobs: &JobClient, job_id: &str, display: Display) -> anyhow::Result<JobReport> {
    let display = match display {
        Display::Auto if std::io::stderr().is_terminal() => Some(Bars::new()),
        Display::Auto => None,
        Display::Quiet => {
            return wait(jobs, job_id, |_| ()).await;
        }
    };
    let mut bars = display;
    let mut last_line = String::new();
    let report = wait(jobs, job_id, |r| match &mut bars {
        Some(b) => b.update(r),
        None => {
            let line = progress_line(r);
            if line != last_line {
                eprintln!("{line}");
                last_line = line;
            }
        }
    })
    .await;
    if let Some(b) = bars {
        b.clear();
        // The bars go; one plain line stays.
        if let Ok(r) = &report {
            eprintln!("{}", progress_line(r));
        }
    }
    report
}

/// Polls the job (every 50 ms at first, then less often) until it is
/// finished, calling `on_report` with each report.
pub async fn wait(jobs: &JobClient, job_id: &str, on_report: impl FnMut(&JobReport)) -> anyhow::Result<JobReport> {
    wait_polling(jobs, job_id, None, on_report).await
}

/// [`wait`], polling every `every` when given (timing measurements).
pub async fn wait_polling(
    jobs: &JobClient,
    job_id: &str,
    every: Option<Duration>,
    mut on_report: impl FnMut(&JobReport),
) -> anyhow::Result<JobReport> {
    let started = Instant::now();
    let mut last_ok = Instant::now();
    loop {
        match jobs.job(job_id, false).await {
            Ok(r) => {
                last_ok = Instant::now();
                on_report(&r);
                if r.state.is_finished() {
                    // The full report names every attempt (diagnostics, logs).
                    return Ok(jobs.job(job_id, true).await.unwrap_or(r));
                }
            }
            Err(e) if e.kind().is_some() => return Err(e.into()),
            Err(e) => {
                if last_ok.elapsed() > UNREACHABLE_LIMIT {
                    bail!("lost the jobtracker while following {job_id}: {e}");
                }
            }
        }
        let pause = every.unwrap_or(match started.elapsed().as_secs() {
            0..2 => Duration::from_millis(50),
            2..30 => Duration::from_millis(250),
            _ => Duration::from_secs(1),
        });
        tokio::time::sleep(pause).await;
    }
}

/// `map 45% reduce 0% running 3 failed 0`.
pub fn progress_line(r: &JobReport) -> String {
    let mut line = String::new();
    for s in &r.stages {
        line.push_str(&format!("{} {:.0}% ", s.name, (s.progress * 100.0).clamp(0.0, 100.0).floor()));
    }
    let running: u32 = r.stages.iter().map(|s| s.running).sum();
    let failed: u32 = r.stages.iter().map(|s| s.failed).sum();
    line.push_str(&format!("running {running} failed {failed}"));
    if !matches!(r.state, JobState::Running) {
        line = format!("{line} ({})", r.state);
    }
    line
}

/// One bar per stage plus a status line, on stderr.
struct Bars {
    multi: MultiProgress,
    stages: Vec<(String, ProgressBar)>,
    status: ProgressBar,
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let status = multi.add(ProgressBar::new_spinner());
        status.enable_steady_tick(Duration::from_millis(120));
        Bars { multi, stages: Vec::new(), status }
    }

    fn update(&mut self, r: &JobReport) {
        for s in &r.stages {
            let bar = match self.stages.iter().find(|(n, _)| *n == s.name) {
                Some((_, b)) => b.clone(),
                None => {
                    let b = self.multi.insert_before(&self.status, ProgressBar::new(100));
                    let style = ProgressStyle::with_template("{prefix:>7} [{bar:40}] {pos:>3}%  {msg}")
                        .map(|st| st.progress_chars("=> "))
                        .unwrap_or_else(|_| ProgressStyle::default_bar());
                    b.set_style(style);
                    b.set_prefix(s.name.clone());
                    self.stages.push((s.name.clone(), b.clone()));
                    b
                }
            };
            bar.set_position(((s.progress * 100.0).clamp(0.0, 100.0)) as u64);
            bar.set_message(format!("{}/{} done, {} running, {} failed", s.succeeded, s.total, s.running, s.failed));
        }
        let running: u32 = r.stages.iter().map(|s| s.running).sum();
        self.status.set_message(format!("{} {} ({} task(s) running)", r.job_id, r.state, running));
    }

    fn clear(self) {
        for (_, b) in &self.stages {
            b.finish_and_clear();
        }
        self.status.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// Prints the verdict of a finished job and returns the exit status: 0 only
/// when it succeeded. A job that did not succeed gets its diagnostics on
/// stderr.
pub fn verdict(r: &JobReport, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        let took = if r.finish_ms > 0 && r.submit_ms > 0 { (r.finish_ms - r.submit_ms) as f64 / 1000.0 } else { 0.0 };
        if r.state == JobState::Succeeded {
            println!(
                "job {} SUCCEEDED in {took:.1} s (first task running {} ms after submission)",
                r.job_id, r.first_launch_ms
            );
            if !r.output.is_empty() {
                println!("output in {}", r.output);
            }
            print_counters(r);
        } else {
            eprintln!("job {} {} after {took:.1} s", r.job_id, r.state);
        }
    }
    if r.state == JobState::Succeeded {
        return Ok(ExitCode::SUCCESS);
    }
    if !r.diagnostics.is_empty() {
        eprintln!("{}", r.diagnostics.trim_end());
    }
    Ok(ExitCode::from(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tusk_client::StageSummary;

    fn stage(name: &str, progress: f32, running: u32, failed: u32) -> StageSummary {
        StageSummary { name: name.into(), total: 4, pending: 0, running, succeeded: 0, failed, killed: 0, progress }
    }

    #[test]
    fn the_plain_line_shows_stages_running_and_failed() {
        let mut r = empty_report();
        r.state = JobState::Running;
        r.stages = vec![stage("map", 0.456, 3, 1), stage("reduce", 0.0, 0, 0)];
        assert_eq!(progress_line(&r), "map 45% reduce 0% running 3 failed 1");
        r.state = JobState::Committing;
        r.stages = vec![stage("map", 1.0, 0, 0), stage("reduce", 1.2, 0, 0)];
        assert_eq!(progress_line(&r), "map 100% reduce 100% running 0 failed 0 (COMMITTING)");
    }

    fn empty_report() -> JobReport {
        JobReport {
            job_id: "job_1_0001".into(),
            name: String::new(),
            user: String::new(),
            engine: String::new(),
            state: JobState::Prep,
            submit_ms: 0,
            start_ms: 0,
            finish_ms: 0,
            stages: Vec::new(),
            diagnostics: String::new(),
            counters: Vec::new(),
            output: String::new(),
            tasks: Vec::new(),
            first_launch_ms: 0,
        }
    }

    #[test]
    fn only_success_exits_zero() {
        let mut r = empty_report();
        r.state = JobState::Succeeded;
        assert_eq!(verdict(&r, true).unwrap(), ExitCode::SUCCESS);
        for s in [JobState::Failed, JobState::Killed] {
            r.state = s;
            r.diagnostics = "task task_1_0001_m_000000 failed 4 times".into();
            assert_eq!(verdict(&r, true).unwrap(), ExitCode::from(1));
        }
    }
}
