//! Printing what the jobtracker reports: `tusk job status|list|counters|kill`,
//! as text or (`--json`) as the report types serialized.

use std::collections::BTreeMap;
use tusk_client::{JobReport, JobState, KillOutcome};

/// `tusk job status ID [--tasks]`.
pub fn print_status(r: &JobReport, with_tasks: bool, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!("{}  {}  {} (user {})", r.job_id, r.state, r.name, r.user);
    println!("  {:<12} {}", "timing", timing(r, tusk_common::now_ms()));
    if !r.output.is_empty() {
        println!("  {:<12} {}", "output", r.output);
    }
    for s in &r.stages {
        println!(
            "  {:<12} {}/{} done, {} running, {} pending, {} failed, {} killed  {:.0}%",
            s.name,
            s.succeeded,
            s.total,
            s.running,
            s.pending,
            s.failed,
            s.killed,
            (s.progress * 100.0).clamp(0.0, 100.0).floor()
        );
    }
    if r.first_launch_ms > 0 {
        println!("  {:<12} first task running {} ms after submission", "latency", r.first_launch_ms);
    }
    if !r.diagnostics.is_empty() {
        println!("  diagnostics:");
        for line in r.diagnostics.lines() {
            println!("    {line}");
        }
    }
    if with_tasks {
        for t in &r.tasks {
            println!("  {}  {:<6} {:<9} {:>3.0}%", t.task_id, t.stage, t.state.as_str(), (t.progress * 100.0).floor());
            for a in &t.attempts {
                let took = match (a.start_ms, a.finish_ms) {
                    (s, f) if s > 0 && f >= s => format!("{:.1} s", (f - s) as f64 / 1000.0),
                    (s, _) if s > 0 => format!("{:.1} s so far", (tusk_common::now_ms() - s).max(0) as f64 / 1000.0),
                    _ => "-".to_string(),
                };
                println!(
                    "      {}  {:<9} {} ({})  {:?}  {took}{}{}",
                    a.attempt_id,
                    a.state.as_str(),
                    a.worker_id,
                    a.worker_addr,
                    a.locality,
                    if a.speculative { "  speculative" } else { "" },
                    if a.diagnostics.is_empty() { String::new() } else { format!("  {}", first_line(&a.diagnostics)) }
                );
            }
        }
    }
    Ok(())
}

/// `submitted 3.1 s ago, ran 2.9 s` and the like.
fn timing(r: &JobReport, now_ms: i64) -> String {
    let secs = |ms: i64| ms.max(0) as f64 / 1000.0;
    if r.state.is_finished() && r.finish_ms > 0 {
        format!("took {:.1} s (finished {:.0} s ago)", secs(r.finish_ms - r.submit_ms), secs(now_ms - r.finish_ms))
    } else if r.submit_ms > 0 {
        format!("submitted {:.1} s ago", secs(now_ms - r.submit_ms))
    } else {
        "-".to_string()
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// `tusk job list`.
pub fn print_list(jobs: &[JobReport], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(jobs)?);
        return Ok(());
    }
    if jobs.is_empty() {
        println!("no jobs");
        return Ok(());
    }
    let now = tusk_common::now_ms();
    println!("{:<22} {:<11} {:<10} {:>11} {:>11} {:>9}  NAME", "JOB_ID", "STATE", "USER", "MAPS", "REDUCES", "TIME");
    for r in jobs {
        let stage =
            |name: &str| r.stage(name).map(|s| format!("{}/{}", s.succeeded, s.total)).unwrap_or_else(|| "-".into());
        let end = if r.state.is_finished() && r.finish_ms > 0 { r.finish_ms } else { now };
        let time =
            if r.submit_ms > 0 { format!("{:.1}s", (end - r.submit_ms).max(0) as f64 / 1000.0) } else { "-".into() };
        println!(
            "{:<22} {:<11} {:<10} {:>11} {:>11} {:>9}  {}",
            r.job_id,
            r.state.as_str(),
            r.user,
            stage("map"),
            stage("reduce"),
            time,
            r.name
        );
    }
    Ok(())
}

/// Counters grouped by group, then name.
fn grouped(r: &JobReport) -> BTreeMap<&str, BTreeMap<&str, i64>> {
    let mut groups: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    for c in &r.counters {
        *groups.entry(&c.group).or_default().entry(&c.name).or_insert(0) += c.value;
    }
    groups
}

/// Hadoop's layout: `Counters: N`, then each group and its `NAME=value`.
pub fn print_counters(r: &JobReport) {
    let groups = grouped(r);
    println!("Counters: {}", r.counters.len());
    for (g, names) in groups {
        println!("\t{g}");
        for (n, v) in names {
            println!("\t\t{n}={v}");
        }
    }
}

/// `tusk job counters ID`.
pub fn print_counters_cmd(r: &JobReport, json: bool) -> anyhow::Result<()> {
    if json {
        let v = serde_json::json!({ "job_id": r.job_id, "counters": grouped(r) });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_counters(r);
    }
    Ok(())
}

/// `tusk job kill ID`.
pub fn print_kill(job_id: &str, k: &KillOutcome, json: bool) -> anyhow::Result<()> {
    if json {
        let v = serde_json::json!({ "job_id": job_id, "killed": k.killed, "state": k.state });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if k.killed {
        println!("killed {job_id}");
    } else if k.state == JobState::Killed {
        println!("{job_id} was already killed");
    } else {
        println!("{job_id} had already finished ({})", k.state);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tusk_client::Counter;

    fn report() -> JobReport {
        JobReport {
            job_id: "job_1_0001".into(),
            name: "wc".into(),
            user: "u".into(),
            engine: "mapreduce".into(),
            state: JobState::Succeeded,
            submit_ms: 1_000,
            start_ms: 1_010,
            finish_ms: 3_500,
            stages: Vec::new(),
            diagnostics: String::new(),
            counters: vec![
                Counter { group: "B".into(), name: "Y".into(), value: 2 },
                Counter { group: "A".into(), name: "X".into(), value: 1 },
                Counter { group: "B".into(), name: "Y".into(), value: 3 },
            ],
            output: "/o".into(),
            tasks: Vec::new(),
            first_launch_ms: 5,
        }
    }

    #[test]
    fn counters_group_and_sum() {
        let r = report();
        let g = grouped(&r);
        assert_eq!(g.keys().copied().collect::<Vec<_>>(), ["A", "B"]);
        assert_eq!(g["B"]["Y"], 5);
    }

    #[test]
    fn timing_of_finished_and_running_jobs() {
        let mut r = report();
        assert_eq!(timing(&r, 4_500), "took 2.5 s (finished 1 s ago)");
        r.state = JobState::Running;
        assert_eq!(timing(&r, 2_500), "submitted 1.5 s ago");
        r.submit_ms = 0;
        assert_eq!(timing(&r, 2_500), "-");
    }
}
