//! `tusk bench terasort`: teragen, then terasort (timed) and teravalidate
//! on the cluster, next to a single-threaded in-memory sort of the same
//! 100-byte records read from (and written to) a local file.

use anyhow::{Context, bail};
use clap::Args;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::Target;
use super::jobs::{Clients, Latency, empty_job, mbps, print_latency, run_job};
use crate::cluster::ClusterOptions;
use crate::dfs::format::human_size;
use crate::job::{sample_total_order, teragen_spec, terasort_spec, teravalidate_spec};

#[derive(Debug, Args)]
pub struct TerasortArgs {
    /// Bytes of records to sort (100 bytes each; e.g. 1GiB).
    #[arg(long, default_value = "1GiB", value_parser = tusk_common::size::parse_size)]
    size: u64,
    /// Reduce tasks of terasort (default: one per worker).
    #[arg(long)]
    reduces: Option<u32>,
    /// Map tasks of teragen (default: one per task slot).
    #[arg(long)]
    maps: Option<u32>,
    /// Datanodes (each with a worker) of the local cluster.
    #[arg(long, default_value_t = 3)]
    datanodes: usize,
    /// Block size of the local cluster (one terasort map per block).
    #[arg(long, value_parser = tusk_common::size::parse_size)]
    block_size: Option<u64>,
}

const DIR: &str = "/bench/terasort";
const RECORD: usize = 100;
const KEY: usize = 10;

pub async fn run(namenode: Option<String>, jobtracker: Option<String>, args: TerasortArgs) -> anyhow::Result<()> {
    let rows = args.size / RECORD as u64;
    if rows == 0 {
        bail!("--size must be at least {RECORD} bytes (one record)");
    }
    let options = ClusterOptions { block_size: args.block_size, ..ClusterOptions::default() };
    let target = Target::get(namenode, args.datanodes, options).await?;
    let c = Clients::connect(&target, jobtracker).await?;
    let reduces = args.reduces.unwrap_or(c.workers as u32);
    let maps = args.maps.unwrap_or(c.slots.max(1));
    let bytes = rows * RECORD as u64;
    let _ = c.dfs.delete(DIR, true).await?;
    let (input, output, report) = (format!("{DIR}/input"), format!("{DIR}/output"), format!("{DIR}/report"));

    let generated = run_job(&c, &teragen_spec(rows, maps, input.clone()), Duration::ZERO).await?;
    eprintln!("teragen: {rows} records ({}) in {:.1?}", human_size(bytes), generated.time);

    let scratch = tempfile::Builder::new().prefix("terasort-bench-").tempdir_in(target.scratch_parent())?;
    let local = scratch.path().join("input");
    let t = Instant::now();
    download(&c.dfs, &input, &local, bytes).await?;
    eprintln!("copied the records to a local file in {:.1?}", t.elapsed());
    let base = baseline(&local, &scratch.path().join("sorted"), rows)?;
    drop(scratch);

    let mut spec = terasort_spec(input.clone(), output.clone(), reduces);
    let t = Instant::now();
    if reduces > 1 {
        sample_total_order(&c.dfs, &mut spec).await?;
    }
    let sort = run_job(&c, &spec, t.elapsed()).await?;
    let sorted_bytes: u64 =
        c.dfs.list(&output).await?.iter().filter(|e| e.name.starts_with("part-")).map(|e| e.length).sum();
    if sorted_bytes != bytes {
        bail!("{output}: holds {sorted_bytes} bytes of records, teragen wrote {bytes}");
    }
    let check = run_job(&c, &teravalidate_spec(output, report.clone()), Duration::ZERO).await?;
    let validated = validated_rows(&c.dfs, &report).await?;
    if validated != rows {
        bail!("{report}: teravalidate saw {validated} rows, teragen wrote {rows}");
    }
    eprintln!("teravalidate: {validated} rows in order in {:.1?}", check.time);
    let (empty, empty_first) = empty_job(&c, DIR).await?;
    let _ = c.dfs.delete(DIR, true).await;

    let map_tasks = sort.report.stage("map").map_or(0, |s| s.total);
    println!(
        "terasort: {rows} records ({}); {} worker(s) with {} slot(s), {map_tasks} maps, {reduces} reduces",
        human_size(bytes),
        c.workers,
        c.slots
    );
    println!("{:<34} {:>9} {:>10}", "", "time", "MB/s");
    println!(
        "{:<34} {:>7.2} s {:>10.1}",
        "tusk terasort job (with sampling)",
        sort.time.as_secs_f64(),
        mbps(bytes, sort.time)
    );
    println!(
        "{:<34} {:>7.2} s {:>10.1}",
        "baseline (1 thread, in memory)",
        base.total.as_secs_f64(),
        mbps(bytes, base.total)
    );
    println!(
        "{:<34} read {:.2} s, sort {:.2} s, write {:.2} s",
        "  of which",
        base.read.as_secs_f64(),
        base.sort.as_secs_f64(),
        base.write.as_secs_f64()
    );
    let cost = sort.time.as_secs_f64() / base.total.as_secs_f64().max(1e-9);
    println!("{:<34} {:>9.2}", "COST (job / baseline)", cost);
    print_latency(&Latency {
        first_task_ms: sort.report.first_launch_ms,
        empty_job: empty,
        empty_first_task_ms: empty_first,
    });
    target.finish().await
}

/// Concatenates teragen's output files (in name order) into `local`.
async fn download(client: &tusk_client::Client, dir: &str, local: &Path, expected: u64) -> anyhow::Result<()> {
    let mut files: Vec<_> =
        client.list(dir).await?.into_iter().filter(|e| !e.is_dir && e.name.starts_with("part-")).collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = std::fs::File::create(local).with_context(|| format!("{}: cannot create", local.display()))?;
    let mut total = 0u64;
    for f in files {
        let mut r = client.open(&f.path).await?;
        while let Some(chunk) = r.next_chunk().await? {
            out.write_all(&chunk).with_context(|| format!("{}: cannot write", local.display()))?;
            total += chunk.len() as u64;
        }
    }
    if total != expected {
        bail!("{dir}: holds {total} bytes, expected {expected}");
    }
    Ok(())
}

/// Times of the baseline's phases.
struct Baseline {
    read: Duration,
    sort: Duration,
    write: Duration,
    total: Duration,
}

/// Reads every record into memory, sorts them by their 10-byte keys on one
/// thread, and writes them out.
fn baseline(input: &Path, output: &Path, rows: u64) -> anyhow::Result<Baseline> {
    let start = Instant::now();
    let mut records = vec![[0u8; RECORD]; rows as usize];
    let mut file = std::fs::File::open(input).with_context(|| format!("{}: cannot open", input.display()))?;
    file.read_exact(records.as_flattened_mut()).with_context(|| format!("{}: cannot read", input.display()))?;
    let read = start.elapsed();
    records.sort_unstable_by(|a, b| a[..KEY].cmp(&b[..KEY]));
    let sort = start.elapsed() - read;
    let mut out = std::fs::File::create(output).with_context(|| format!("{}: cannot create", output.display()))?;
    out.write_all(records.as_flattened()).with_context(|| format!("{}: cannot write", output.display()))?;
    let total = start.elapsed();
    if records.windows(2).any(|w| w[0][..KEY] > w[1][..KEY]) {
        bail!("the baseline sort is not in order");
    }
    Ok(Baseline { read, sort, write: total - read - sort, total })
}

/// The `rows` figure of a teravalidate report; an `error` line is an error.
async fn validated_rows(client: &tusk_client::Client, report: &str) -> anyhow::Result<u64> {
    let mut rows = None;
    for e in client.list(report).await? {
        if e.is_dir || !e.name.starts_with("part-") {
            continue;
        }
        let text = client.read_all(&e.path).await?;
        for line in String::from_utf8_lossy(&text).lines() {
            if line.starts_with("error") {
                bail!("{report}: teravalidate found a problem: {line}");
            }
            if let Some(n) = line.strip_prefix("rows\t") {
                rows = Some(n.trim().parse::<u64>().with_context(|| format!("{report}: bad line {line:?}"))?);
            }
        }
    }
    rows.with_context(|| format!("{report}: no rows line"))
}
