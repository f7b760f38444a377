//! `tusk bench dfsio`: N files of S bytes written concurrently with
//! replication R, then read back; the baseline writes the same bytes R times
//! to plain local files on the same filesystem and reads them back once.

use anyhow::{Context, bail};
use clap::Args;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tusk_client::{Client, ClientConfig, CreateOptions};

use super::{Target, WRITE_CHUNK, pattern, write_pattern};
use crate::cluster::ClusterOptions;

#[derive(Debug, Args)]
pub struct DfsioArgs {
    /// Number of files, written and read concurrently.
    #[arg(long, default_value_t = 4)]
    files: usize,
    /// Size of each file (e.g. 256MiB).
    #[arg(long, default_value = "256MiB", value_parser = tusk_common::size::parse_size)]
    size: u64,
    /// Replication factor.
    #[arg(long, default_value_t = 3)]
    replication: u32,
}

pub async fn run(namenode: Option<String>, args: DfsioArgs) -> anyhow::Result<()> {
    if args.files == 0 || args.size == 0 {
        bail!("--files and --size must be positive");
    }
    let datanodes = (args.replication as usize).max(3);
    let target = Target::get(namenode, datanodes, ClusterOptions::default()).await?;
    let pattern = pattern();
    let total = args.files as u64 * args.size;
    println!(
        "dfsio: {} files x {} MiB, replication {} ({} MiB of data)",
        args.files,
        args.size >> 20,
        args.replication,
        total >> 20
    );

    let scratch = tempfile::Builder::new().prefix("dfsio-baseline-").tempdir_in(target.scratch_parent())?;
    let base_write = baseline_write(scratch.path(), &args, &pattern)?;
    let base_read = baseline_read(scratch.path(), &args)?;
    drop(scratch);

    let client = Client::connect(ClientConfig::new(target.namenode.clone())).await?;
    let _ = client.delete("/bench/dfsio", true).await?;
    client.mkdirs("/bench/dfsio", None, true).await?;
    let tusk_write = tusk_write(&target.namenode, &args, &pattern).await?;
    let tusk_read = tusk_read(&target.namenode, &args).await?;
    let _ = client.delete("/bench/dfsio", true).await;

    let mbps = |d: Duration| total as f64 / 1e6 / d.as_secs_f64().max(1e-9);
    println!("{:<8} {:>14} {:>14} {:>16}", "phase", "tusk", "baseline", "time ratio");
    for (phase, t, b, goal) in [("write", tusk_write, base_write, 1.5), ("read", tusk_read, base_read, 1.2)] {
        let ratio = t.as_secs_f64() / b.as_secs_f64().max(1e-9);
        println!(
            "{phase:<8} {:>9.1} MB/s {:>9.1} MB/s {:>9.2}x (target <= {goal}x: {})",
            mbps(t),
            mbps(b),
            ratio,
            if ratio <= goal { "met" } else { "missed" }
        );
    }
    target.finish().await
}


fn baseline_write(dir: &std::path::Path, args: &DfsioArgs, pattern: &[u8]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.files)
            .map(|f| {
                s.spawn(move || -> anyhow::Result<()> {
                    for r in 0..args.replication {
                        let path = dir.join(format!("file_{f}.r{r}"));
                        let mut out = std::fs::File::create(&path).with_context(|| format!("{}", path.display()))?;
                        write_n(&mut out, args.size, pattern)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("baseline writer panicked"))??;
        }
        anyhow::Ok(())
    })?;
    Ok(start.elapsed())
}

fn write_n(out: &mut std::fs::File, size: u64, pattern: &[u8]) -> anyhow::Result<()> {
    let mut left = size;
    while left > 0 {
        let n = left.min(pattern.len() as u64) as usize;
        out.write_all(&pattern[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn baseline_read(dir: &std::path::Path, args: &DfsioArgs) -> anyhow::Result<Duration> {
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.files)
            .map(|f| {
                s.spawn(move || -> anyhow::Result<u64> {
                    let mut file = std::fs::File::open(dir.join(format!("file_{f}.r0")))?;
                    let mut buf = vec![0u8; WRITE_CHUNK];
                    let mut n = 0u64;
                    loop {
                        let k = file.read(&mut buf)?;
                        if k == 0 {
                            return Ok(n);
                        }
                        n += k as u64;
                    }
                })
            })
            .collect();
        for h in handles {
            let n = h.join().map_err(|_| anyhow::anyhow!("baseline reader panicked"))??;
            if n != args.size {
                bail!("baseline read {n} bytes, expected {}", args.size);
            }
        }
        anyhow::Ok(())
    })?;
    Ok(start.elapsed())
}

async fn tusk_write(namenode: &str, args: &DfsioArgs, pattern: &[u8]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for f in 0..args.files {
        let (nn, pattern, size, replication) = (namenode.to_string(), pattern.to_vec(), args.size, args.replication);
        tasks.spawn(async move {
            let client = Client::connect(ClientConfig::new(nn)).await?;
            let opts = CreateOptions { overwrite: true, replication: Some(replication), ..Default::default() };
            let mut w = client.create(&format!("/bench/dfsio/file_{f}"), opts).await?;
            write_pattern(&mut w, size, &pattern).await?;
            w.close().await?;
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(start.elapsed())
}

async fn tusk_read(namenode: &str, args: &DfsioArgs) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for f in 0..args.files {
        let (nn, size) = (namenode.to_string(), args.size);
        tasks.spawn(async move {
            let client = Client::connect(ClientConfig::new(nn)).await?;
            let mut r = client.open(&format!("/bench/dfsio/file_{f}")).await?;
            let mut n = 0u64;
            while let Some(chunk) = r.next_chunk().await? {
                n += chunk.len() as u64;
            }
            if n != size {
                bail!("file_{f}: read {n} bytes, expected {size}");
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(start.elapsed())
}
