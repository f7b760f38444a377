//! `tusk bench tpch`: generates and loads the TPC-H tables at a scale
//! factor through a SQL session, then runs the 22 queries through Tusk and,
//! in the same run, through plain single-process DataFusion reading the
//! same Parquet files in the DFS (`tusk_sql::tpch::Baseline`).
//!
//! Derived from the TPC-H specification; results are not comparable to
//! published TPC-H results.

use anyhow::{Context, bail};
use clap::Args;
use std::time::{Duration, Instant};
use tusk_client::{Client, ClientConfig};
use tusk_sql::tpch::{self, Baseline, LoadReport, TableLoad};
use tusk_sql::{Session, SqlConfig};

use super::Target;
use crate::cluster::ClusterOptions;
use crate::dfs::format::human_size;

#[derive(Debug, Args)]
pub struct TpchArgs {
    /// TPC-H scale factor (1 is about 1 GB of generated text; 0.01 is 87 k rows).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Generator parts per table (NATION and REGION: one); each part is loaded
    /// as its own append, so a table has at least this many files.
    #[arg(long, default_value_t = 4)]
    parts: usize,
    /// Queries to run, e.g. 1,3,5 (default: all 22).
    #[arg(long, value_delimiter = ',')]
    queries: Vec<usize>,
    /// Keep the database after the run (default: drop it). Only useful
    /// with an existing cluster: a local one is removed at the end.
    #[arg(long)]
    keep: bool,
    /// The database to load into (dropped and recreated first).
    #[arg(long, default_value = "tpch")]
    db: String,
    /// Datanodes (each with a worker) of the local cluster.
    #[arg(long, default_value_t = 3)]
    datanodes: usize,
    /// A query reading at most this many bytes (no file over one block)
    /// runs as one task; 0 runs every query as stages of parallel tasks.
    #[arg(long, default_value_t = tusk_sql::SINGLE_TASK_MAX_BYTES)]
    single_task_max_bytes: u64,
    /// Timed runs of each query by each engine, taken in turns (Tusk, then
    /// DataFusion) after one untimed run each; the median counts.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// One query, run by both engines.
struct QueryRun {
    n: usize,
    tusk: Result<Timed, String>,
    datafusion: Result<Timed, String>,
}

/// A timed run: its time and its result's rows.
struct Timed {
    time: Duration,
    /// CPU time the whole machine spent meanwhile (every process: for Tusk
    /// its daemons and tasks too), when `/proc/stat` tells.
    cpu: Option<Duration>,
    batches: Vec<arrow::record_batch::RecordBatch>,
}

impl Timed {
    fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

pub async fn run(namenode: Option<String>, jobtracker: Option<String>, args: TpchArgs) -> anyhow::Result<()> {
    if !(args.scale.is_finite() && args.scale > 0.0) {
        bail!("--scale must be positive");
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let queries = if args.queries.is_empty() { (1..=22).collect() } else { args.queries.clone() };
    if let Some(bad) = queries.iter().find(|n| !(1..=22).contains(*n)) {
        bail!("--queries: there is no TPC-H query {bad} (1 to 22)");
    }
    let target = Target::get(namenode, args.datanodes, ClusterOptions::default()).await?;
    let result = bench(&target, jobtracker, &args, &queries).await;
    target.finish().await?;
    result
}

async fn bench(target: &Target, jobtracker: Option<String>, args: &TpchArgs, queries: &[usize]) -> anyhow::Result<()> {
    let jt = jobtracker.or_else(|| target.jobtracker.clone()).context(
        "no jobtracker (it serves the metastore): pass --jobtracker or set TUSK_JOBTRACKER with \
         --namenode/TUSK_NAMENODE, or give neither to run on a local cluster",
    )?;
    let dfs = Client::connect(ClientConfig::new(target.namenode.clone())).await?;
    let mut config = SqlConfig::new(target.namenode.clone(), jt);
    config.single_task_max_bytes = args.single_task_max_bytes;
    let mut session = Session::connect(config).await?;

    eprintln!("loading TPC-H scale factor {} into database {} ({} part(s) per table)", args.scale, args.db, args.parts);
    let report = tpch::load_with_progress(&mut session, &args.db, args.scale, args.parts, &mut |t: &TableLoad| {
        eprintln!("  {:<9} {:>11} rows in {:.1?}", t.name, t.rows, t.elapsed);
    })
    .await?;
    print_load(&dfs, &report).await?;
    session.execute(&format!("USE {}", report.db)).await?;
    let baseline = Baseline::new(dfs.clone(), &report).await?;

    let mut runs = Vec::new();
    for &n in queries {
        eprintln!("Q{n}");
        // Warm-up, then the timed runs in turns: a machine whose speed
        // drifts slows both engines alike.
        let mut tusk = tpch::run_query(&mut session, n).await.map(|_| Vec::new()).map_err(|e| e.to_string());
        let mut datafusion = baseline.run_query(n).await.map(|_| Vec::new()).map_err(|e| e.to_string());
        for _ in 0..args.runs {
            if let Ok(t) = &mut tusk {
                match time_tusk(&mut session, n).await {
                    Ok(run) => t.push(run),
                    Err(e) => tusk = Err(e),
                }
            }
            if let Ok(d) = &mut datafusion {
                match time_baseline(&baseline, n).await {
                    Ok(run) => d.push(run),
                    Err(e) => datafusion = Err(e),
                }
            }
        }
        runs.push(QueryRun { n, tusk: tusk.map(median), datafusion: datafusion.map(median) });
    }
    print_queries(&runs, args.scale, args.runs);

    if !args.keep {
        session.execute(&format!("DROP DATABASE {} CASCADE", report.db)).await?;
    }
    Ok(())
}

/// The run of median time, with the median CPU time of the runs.
fn median(mut runs: Vec<Timed>) -> Timed {
    let mut cpus: Vec<Duration> = runs.iter().filter_map(|r| r.cpu).collect();
    cpus.sort();
    let cpu = (cpus.len() == runs.len()).then(|| cpus.get(cpus.len() / 2).copied()).flatten();
    runs.sort_by_key(|r| r.time);
    let mid = runs.len() / 2;
    let mut run = runs.swap_remove(mid);
    run.cpu = cpu;
    run
}

/// Runs query `n` through the session, timed.
async fn time_tusk(session: &mut Session, n: usize) -> Result<Timed, String> {
    let (t, cpu) = (Instant::now(), busy_cpu());
    let batches = tpch::run_query(session, n).await.map_err(|e| e.to_string())?;
    Ok(Timed { time: t.elapsed(), cpu: cpu_since(cpu), batches })
}

/// Runs query `n` through plain DataFusion, timed.
async fn time_baseline(baseline: &Baseline, n: usize) -> Result<Timed, String> {
    let (t, cpu) = (Instant::now(), busy_cpu());
    let batches = baseline.run_query(n).await.map_err(|e| e.to_string())?;
    Ok(Timed { time: t.elapsed(), cpu: cpu_since(cpu), batches })
}

/// Busy CPU time of the whole machine since boot (user, nice, system, irq,
/// softirq, steal in `/proc/stat`), in clock ticks.
fn busy_cpu() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    Some([0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum())
}

/// Busy CPU time since `start` (`/proc/stat` counts in 1/100 s).
fn cpu_since(start: Option<u64>) -> Option<Duration> {
    Some(Duration::from_millis(busy_cpu()?.checked_sub(start?)? * 10))
}

/// The load figures, with each table's size in the DFS.
async fn print_load(dfs: &Client, report: &LoadReport) -> anyhow::Result<()> {
    println!("TPC-H scale factor {} in database {}", report.scale, report.db);
    println!("{:<10} {:>12} {:>6} {:>10} {:>10} {:>9}", "table", "rows", "files", "parquet", "in memory", "time");
    let (mut files, mut bytes, mut arrow_bytes) = (0, 0, 0);
    for t in &report.tables {
        let summary = dfs.content_summary(&t.location).await?;
        files += summary.file_count;
        bytes += summary.length;
        arrow_bytes += t.arrow_bytes;
        println!(
            "{:<10} {:>12} {:>6} {:>10} {:>10} {:>7.2} s",
            t.name,
            t.rows,
            summary.file_count,
            human_size(summary.length),
            human_size(t.arrow_bytes),
            t.elapsed.as_secs_f64()
        );
    }
    println!(
        "{:<10} {:>12} {:>6} {:>10} {:>10} {:>7.2} s",
        "total",
        report.rows(),
        files,
        human_size(bytes),
        human_size(arrow_bytes),
        report.elapsed.as_secs_f64()
    );
    println!();
    Ok(())
}

/// The query table: each engine's time, the ratio, whether the results
/// agree, and (at the scale of the known answers) whether each engine's
/// result is the known answer.
fn print_queries(runs: &[QueryRun], scale: f64, times: usize) {
    let with_answers = scale == tpch::ANSWER_SCALE;
    println!(
        "each query run once untimed (warm-up), then timed {times} time(s) by each engine in turns, the median shown; \
         tusk = SQL session, datafusion = one process"
    );
    println!("cpu: CPU time the whole machine was busy meanwhile (tusk: client, daemons and tasks)");
    println!(
        "{:<5} {:>10} {:>12} {:>7} {:>10} {:>10} {:>7} {:>11} {:>12}{}",
        "query",
        "tusk s",
        "datafusion s",
        "ratio",
        "tusk cpu",
        "df cpu",
        "rows",
        "rows equal",
        "same result",
        if with_answers { "  known answer (tusk/datafusion)" } else { "" }
    );
    let (mut tusk_total, mut df_total, mut both) = (0.0, 0.0, 0);
    let (mut tusk_cpu, mut df_cpu) = (Duration::ZERO, Duration::ZERO);
    let cpu = |t: &Result<Timed, String>| {
        t.as_ref().ok().and_then(|t| t.cpu).map_or("-".to_string(), |c| format!("{:.2}", c.as_secs_f64()))
    };
    let mut errors = Vec::new();
    for r in runs {
        let secs = |t: &Result<Timed, String>| t.as_ref().map_or("error".to_string(), |t| format!("{:.3}", t.time.as_secs_f64()));
        let (ratio, rows, equal, same) = match (&r.tusk, &r.datafusion) {
            (Ok(a), Ok(b)) => {
                tusk_total += a.time.as_secs_f64();
                df_total += b.time.as_secs_f64();
                tusk_cpu += a.cpu.unwrap_or_default();
                df_cpu += b.cpu.unwrap_or_default();
                both += 1;
                let ratio = a.time.as_secs_f64() / b.time.as_secs_f64().max(1e-9);
                let same = tpch::check_same(r.n, &b.batches, &a.batches);
                if let (Err(e), false) = (&same, with_answers) {
                    errors.push(format!("Q{}: tusk's result differs from datafusion's: {e}", r.n));
                }
                (format!("{ratio:.2}"), a.rows().to_string(), yes(a.rows() == b.rows()), yes(same.is_ok()))
            }
            _ => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let mut known = Vec::new();
        for (engine, run) in [("tusk", &r.tusk), ("datafusion", &r.datafusion)] {
            match run {
                Err(e) => {
                    errors.push(format!("Q{} failed in {engine}: {e}", r.n));
                    known.push("-");
                }
                Ok(t) if with_answers => match tpch::answer(r.n).map(|csv| tpch::check(r.n, csv, &t.batches)) {
                    Some(Ok(())) => known.push("ok"),
                    Some(Err(e)) => {
                        errors.push(format!("Q{}: {engine}'s result differs from the known answer: {e}", r.n));
                        known.push("DIFFERS");
                    }
                    None => known.push("-"),
                },
                Ok(_) => {}
            }
        }
        let known = if with_answers { format!("  {}", known.join("/")) } else { String::new() };
        println!(
            "Q{:<4} {:>10} {:>12} {:>7} {:>10} {:>10} {:>7} {:>11} {:>12}{known}",
            r.n,
            secs(&r.tusk),
            secs(&r.datafusion),
            ratio,
            cpu(&r.tusk),
            cpu(&r.datafusion),
            rows,
            equal,
            same
        );
    }
    let ratio = if df_total > 0.0 { format!("{:.2}", tusk_total / df_total) } else { "-".into() };
    println!(
        "{:<5} {:>10.3} {:>12.3} {:>7} {:>10.2} {:>10.2}   ({both} of {} queries ran in both)",
        "total",
        tusk_total,
        df_total,
        ratio,
        tusk_cpu.as_secs_f64(),
        df_cpu.as_secs_f64(),
        runs.len()
    );
    if !errors.is_empty() {
        println!();
        for e in errors {
            println!("{e}");
        }
    }
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}
