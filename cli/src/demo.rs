//! `tusk demo`: the first thing a new user runs. It starts a real local
//! cluster (separate processes), uploads sample data, lists it, reads it
//! back, checks every byte, counts its words with a MapReduce job (checked
//! against a local count), queries the sales with SQL (checked against a
//! local sum), and stops the cluster.

use anyhow::{Context, bail};
use clap::Args;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;
use tusk_client::{CreateOptions, JobState};
use tusk_sql::{Outcome, Session, SqlConfig};

use crate::cluster::{ClusterOptions, LocalCluster};
use crate::dfs::format::{LsWidths, human_size, ls_line};
use crate::job::{Display, follow, submit_spec, wordcount_spec};
use crate::sql::format::{Format, render};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the cluster directory afterwards (it is printed).
    #[arg(long)]
    keep: bool,
}

/// Block size of the demo cluster: small, so the sample files span
/// several blocks on several datanodes.
const DEMO_BLOCK_SIZE: u64 = 1 << 20;

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("warn");
    let tmp = tempfile::Builder::new().prefix("tusk-demo-").tempdir().context("cannot create a temporary directory")?;
    let dir = tmp.path().to_path_buf();
    println!("== Tusk demo ==");
    println!(
        "starting a local cluster (1 namenode, 3 datanodes, block size {}, 1 jobtracker, 3 workers) in {}",
        human_size(DEMO_BLOCK_SIZE),
        dir.display()
    );
    let options = ClusterOptions {
        datanodes: 3,
        block_size: Some(DEMO_BLOCK_SIZE),
        replication: Some(3),
        heartbeat_ms: Some(1000),
        ..ClusterOptions::default()
    };
    let started = Instant::now();
    let cluster = LocalCluster::start(&dir, &options).await?;
    println!(
        "cluster up in {:.1?}: namenode at {}, jobtracker at {}",
        started.elapsed(),
        cluster.namenode_addr,
        cluster.jobtracker_addr.as_deref().unwrap_or("-")
    );
    let outcome = exercise(&cluster).await;
    println!("stopping the cluster");
    cluster.stop().await?;
    if args.keep {
        let kept = tmp.keep();
        println!("kept {}", kept.display());
    }
    outcome?;
    println!("demo finished: all checks passed");
    Ok(ExitCode::SUCCESS)
}

async fn exercise(cluster: &LocalCluster) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let files = sample_files();
    client.mkdirs("/demo/input", None, true).await?;
    println!("\nuploading {} sample files to /demo/input (replication 3)", files.len());
    for (name, data) in &files {
        let path = format!("/demo/input/{name}");
        let t = Instant::now();
        let mut w = client.create(&path, CreateOptions { overwrite: true, ..Default::default() }).await?;
        w.write(data).await?;
        w.close().await?;
        let secs = t.elapsed().as_secs_f64().max(1e-6);
        println!("  put {path:<28} {:>8}  {:>7.1} MB/s", human_size(data.len() as u64), data.len() as f64 / 1e6 / secs);
    }
    println!("\n$ tusk dfs ls /demo/input");
    let entries = client.list("/demo/input").await?;
    println!("Found {} items", entries.len());
    let widths = LsWidths::of(&entries);
    for e in &entries {
        println!("{}", ls_line(e, &widths));
    }
    println!("\nreading every file back and comparing bytes");
    for (name, data) in &files {
        let path = format!("/demo/input/{name}");
        let back = client.read_all(&path).await?;
        if back.as_ref() != data.as_slice() {
            bail!("{path}: read back {} bytes that differ from the {} uploaded", back.len(), data.len());
        }
        println!("  {path:<28} {} bytes identical", data.len());
    }
    let summary = client.content_summary("/demo").await?;
    println!(
        "\n/demo holds {} files in {} directories: {} of data, {} on disk with replicas",
        summary.file_count,
        summary.directory_count,
        human_size(summary.length),
        human_size(summary.space_consumed)
    );
    let fsck = client.fsck("/demo", tusk_client::FsckOptions::default()).await?;
    println!(
        "\n$ tusk dfs fsck /demo\n{} blocks, {} live replicas, {} under-replicated, {} corrupt, {} missing: {}",
        fsck.summary.total_blocks,
        fsck.summary.live_replicas,
        fsck.summary.under_replicated_blocks,
        fsck.summary.corrupt_blocks,
        fsck.summary.missing_blocks,
        if fsck.is_healthy() { "HEALTHY" } else { "CORRUPT" }
    );
    if !fsck.is_healthy() {
        bail!("fsck found /demo unhealthy");
    }
    // Space used reaches the namenode with the next heartbeats.
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let mut report = client.datanode_report().await?;
    while report.iter().any(|d| d.live && d.num_blocks > 0 && d.dfs_used == 0) && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        report = client.datanode_report().await?;
    }
    println!("\ndatanodes:");
    for d in report {
        println!("  {}  {}  used {}  {} blocks", d.transfer_addr, if d.live { "live" } else { "dead" }, human_size(d.dfs_used), d.num_blocks);
    }
    wordcount(cluster, &files).await?;
    sql(cluster, &files).await
}

/// Counts the words of the sample data with a MapReduce job, checks the
/// counts against a local count, and prints the most frequent words.
async fn wordcount(cluster: &LocalCluster, files: &[(&str, Vec<u8>)]) -> anyhow::Result<()> {
    const OUTPUT: &str = "/demo/wordcount";
    println!("\n$ tusk job run wordcount /demo/input {OUTPUT} --reduces 2");
    let jobs = cluster.job_client().await?;
    let client = cluster.client().await?;
    let id = submit_spec(&jobs, &wordcount_spec("/demo/input".into(), OUTPUT.into(), 2)).await?;
    println!("{id}");
    let report = follow(&jobs, &id, Display::Auto).await?;
    if report.state != JobState::Succeeded {
        bail!("wordcount {id} {}: {}", report.state, report.diagnostics);
    }
    let maps = report.stage("map").map_or(0, |s| s.total);
    println!(
        "{id} SUCCEEDED in {:.1} s: {maps} map(s), 2 reduce(s); first task running {} ms after submission",
        (report.finish_ms - report.submit_ms) as f64 / 1000.0,
        report.first_launch_ms
    );
    let mut counts: HashMap<String, u64> = HashMap::new();
    for e in client.list(OUTPUT).await? {
        if e.is_dir || !e.name.starts_with("part-") {
            continue;
        }
        let text = client.read_all(&e.path).await?;
        for line in String::from_utf8_lossy(&text).lines() {
            let parsed = line.split_once('\t').and_then(|(w, n)| Some((w, n.trim().parse::<u64>().ok()?)));
            let Some((word, n)) = parsed else { bail!("{}: unexpected line {line:?}", e.path) };
            *counts.entry(word.to_string()).or_insert(0) += n;
        }
    }
    let mut expected: HashMap<String, u64> = HashMap::new();
    for (_, data) in files {
        for w in data.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
            *expected.entry(String::from_utf8_lossy(w).into_owned()).or_insert(0) += 1;
        }
    }
    if counts != expected {
        bail!(
            "{OUTPUT}: the job counted {} distinct words ({} in all), a local count {} ({})",
            counts.len(),
            counts.values().sum::<u64>(),
            expected.len(),
            expected.values().sum::<u64>()
        );
    }
    let mut top: Vec<(&String, &u64)> = counts.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!("{} distinct words, {} in all, identical to a local count; the top 10:", counts.len(), counts.values().sum::<u64>());
    for (word, n) in top.into_iter().take(10) {
        println!("  {n:>8}  {word}");
    }
    Ok(())
}

/// Queries the sample sales with SQL: an external CSV table over a copy of
/// `sales.csv` without its header, a grouped query, the result checked
/// against a local computation.
async fn sql(cluster: &LocalCluster, files: &[(&str, Vec<u8>)]) -> anyhow::Result<()> {
    const DIR: &str = "/demo/sales";
    let sales = files.iter().find(|(n, _)| *n == "sales.csv").map(|(_, d)| d.as_slice()).context("no sales.csv")?;
    let rows = sales.splitn(2, |b| *b == b'\n').nth(1).unwrap_or_default();
    let client = cluster.client().await?;
    client.mkdirs(DIR, None, true).await?;
    let mut w = client.create(&format!("{DIR}/sales.csv"), CreateOptions { overwrite: true, ..Default::default() }).await?;
    w.write(rows).await?;
    w.close().await?;
    let jobtracker = cluster.jobtracker_addr.clone().context("the demo cluster has no jobtracker")?;
    let mut session = Session::connect(SqlConfig::new(cluster.namenode_addr.clone(), jobtracker)).await?;
    let create = format!(
        "CREATE EXTERNAL TABLE sales (id BIGINT, day STRING, city STRING, product STRING, quantity INT, price_cents INT)\n\
         ROW FORMAT DELIMITED FIELDS TERMINATED BY ','\nSTORED AS TEXTFILE\nLOCATION '{DIR}'"
    );
    let query = "SELECT city, COUNT(*) AS orders, SUM(quantity) AS units, SUM(quantity * price_cents) AS revenue_cents\n\
                 FROM sales GROUP BY city ORDER BY city";
    for sql in [create.as_str(), query] {
        println!("\n$ tusk sql -e \"{}\"", sql.replace('\n', " "));
        let t = Instant::now();
        match session.execute(sql).await? {
            Outcome::Done(message) => println!("{message} ({:.3} s)", t.elapsed().as_secs_f64()),
            Outcome::Rows { schema, batches } => {
                std::io::stdout().write_all(&render(Format::Table, &schema, &batches)?)?;
                let got = rows_as_text(&batches)?;
                let want = sales_by_city(rows)?;
                if got != want {
                    bail!("the query returned {got:?}, a local computation {want:?}");
                }
                println!("{} rows in {:.3} s, identical to a local computation", got.len(), t.elapsed().as_secs_f64());
            }
        }
    }
    Ok(())
}

/// Each row as its fields' text, joined with `|`.
fn rows_as_text(batches: &[RecordBatch]) -> anyhow::Result<Vec<String>> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let columns =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let fields = columns.iter().map(|c| c.value(row).try_to_string()).collect::<Result<Vec<_>, _>>()?;
            rows.push(fields.join("|"));
        }
    }
    Ok(rows)
}

/// `city|orders|units|revenue_cents` per city, sorted by city, from the CSV rows.
fn sales_by_city(rows: &[u8]) -> anyhow::Result<Vec<String>> {
    let mut by_city: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for line in String::from_utf8_lossy(rows).lines() {
        let f: Vec<&str> = line.split(',').collect();
        let [_, _, city, _, quantity, price] = f.as_slice() else { bail!("sales.csv: unexpected line {line:?}") };
        let (q, p): (u64, u64) = (quantity.parse()?, price.parse()?);
        let e = by_city.entry(city.to_string()).or_default();
        *e = (e.0 + 1, e.1 + q, e.2 + q * p);
    }
    Ok(by_city.into_iter().map(|(c, (n, q, r))| format!("{c}|{n}|{q}|{r}")).collect())
}

/// Deterministic sample data: a CSV of sales, a text of words, and a small
/// README. Together a few MiB, so several blocks per file.
fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    const PRODUCTS: [&str; 8] = ["tea", "coffee", "cocoa", "juice", "water", "milk", "soda", "kefir"];
    const CITIES: [&str; 6] = ["Lisbon", "Oslo", "Lagos", "Lima", "Osaka", "Perth"];
    const WORDS: [&str; 12] =
        ["tusk", "data", "block", "replica", "node", "map", "reduce", "query", "table", "shard", "stream", "batch"];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut sales = String::from("id,day,city,product,quantity,price_cents\n");
    for id in 0..60_000u64 {
        let r = next();
        sales.push_str(&format!(
            "{id},2026-11-{:02},{},{},{},{}\n",
            1 + r % 28,
            CITIES[(r >> 8) as usize % CITIES.len()],
            PRODUCTS[(r >> 16) as usize % PRODUCTS.len()],
            1 + (r >> 24) % 9,
            100 + (r >> 32) % 900
        ));
    }
    let mut words = String::new();
    for i in 0..400_000u64 {
        words.push_str(WORDS[next() as usize % WORDS.len()]);
        words.push(if i % 12 == 11 { '\n' } else { ' ' });
    }
    let readme = "Sample data of the Tusk demo: sales.csv and words.txt.\n".to_string();
    vec![("README.txt", readme.into_bytes()), ("sales.csv", sales.into_bytes()), ("words.txt", words.into_bytes())]
}
