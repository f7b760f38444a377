//! `tusk bench rereplication`: how fast a dead datanode's replicas are
//! restored. A local cluster is filled until one datanode holds the target
//! amount of data; that datanode is killed with SIGKILL; the benchmark times
//! detection (the namenode declares it dead) and re-replication (fsck finds
//! no under-replicated block). The baseline copies the same replica files
//! (data + meta) once on the same disk, in the same run.

use anyhow::{Context, bail};
use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tusk_client::{Client, ClientConfig, CreateOptions, FsckOptions};

use super::{pattern, write_pattern};
use crate::cluster::{ClusterOptions, LocalCluster};

#[derive(Debug, Args)]
pub struct RereplicationArgs {
    /// Data the killed datanode holds (e.g. 2GiB).
    #[arg(long, default_value = "2GiB", value_parser = tusk_common::size::parse_size)]
    victim_bytes: u64,
    /// Datanodes in the cluster.
    #[arg(long, default_value_t = 4)]
    datanodes: usize,
    /// Replication factor of the files.
    #[arg(long, default_value_t = 3)]
    replication: u32,
    /// Block size (e.g. 128MiB).
    #[arg(long, default_value = "128MiB", value_parser = tusk_common::size::parse_size)]
    block_size: u64,
    /// Dead-node interval of the namenode, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    dead_node_interval_ms: u64,
    /// Heartbeat interval (commands ride on heartbeats), in milliseconds.
    #[arg(long, default_value_t = 3000)]
    heartbeat_ms: u64,
    /// Replication monitor period, in milliseconds (HDFS default 3000).
    #[arg(long, default_value_t = 3000)]
    replication_interval_ms: u64,
    /// Concurrent outgoing transfers per source datanode (HDFS default 2).
    #[arg(long, default_value_t = 2)]
    max_streams: u32,
    /// Blocks scheduled per live datanode per period (HDFS default 2).
    #[arg(long, default_value_t = 2)]
    work_multiplier: u32,
}

const FILE_SIZE: u64 = 1 << 30;

pub async fn run(args: RereplicationArgs) -> anyhow::Result<()> {
    if args.datanodes <= args.replication as usize {
        bail!("--datanodes must exceed --replication, so the lost replicas have somewhere to go");
    }
    let tmp = tempfile::Builder::new().prefix("tusk-bench-rerep-").tempdir()?;
    let options = ClusterOptions {
        datanodes: args.datanodes,
        block_size: Some(args.block_size),
        replication: Some(args.replication),
        heartbeat_ms: Some(args.heartbeat_ms),
        nn_conf: vec![
            format!("dead_node_interval_ms={}", args.dead_node_interval_ms),
            format!("replication_interval_ms={}", args.replication_interval_ms),
            format!("replication_max_streams={}", args.max_streams),
            format!("replication_work_multiplier={}", args.work_multiplier),
        ],
        ..ClusterOptions::default()
    };
    eprintln!("starting a local cluster ({} datanodes) in {}", args.datanodes, tmp.path().display());
    let cluster = LocalCluster::start(tmp.path(), &options).await?;
    let result = measure(&cluster, &args).await;
    cluster.stop().await?;
    result
}

async fn measure(cluster: &LocalCluster, args: &RereplicationArgs) -> anyhow::Result<()> {
    let client = Client::connect(ClientConfig::new(cluster.namenode_addr.clone())).await?;
    let victim = "datanode-1";
    let victim_dir = cluster.dir().join("data").join(victim);
    let pattern = pattern();
    client.mkdirs("/bench/rerep", None, true).await?;
    let fill = Instant::now();
    let mut written = 0u64;
    let mut files = 0;
    while replica_bytes(&victim_dir)?.0 < args.victim_bytes {
        let opts = CreateOptions { overwrite: true, replication: Some(args.replication), ..Default::default() };
        let mut w = client.create(&format!("/bench/rerep/file_{files}"), opts).await?;
        write_pattern(&mut w, FILE_SIZE, &pattern).await?;
        w.close().await?;
        written += FILE_SIZE;
        files += 1;
    }
    let (victim_data, victim_files) = replica_bytes(&victim_dir)?;
    println!(
        "rereplication: wrote {} MiB in {files} files (replication {}) in {:.1} s; {victim} holds {} MiB in {} replicas",
        written >> 20,
        args.replication,
        fill.elapsed().as_secs_f64(),
        victim_data >> 20,
        victim_files.len() / 2
    );

    let baseline = baseline_copy(cluster.dir(), &victim_files)?;

    let pid: i32 = std::fs::read_to_string(cluster.dir().join("pids").join(format!("{victim}.pid")))?.trim().parse()?;
    let victim_addr = std::fs::read_to_string(cluster.dir().join("run").join(format!("{victim}.addr")))?.trim().to_string();
    let killed = Instant::now();
    kill(Pid::from_raw(pid), Signal::SIGKILL).with_context(|| format!("kill -9 {victim}"))?;
    loop {
        let report = client.datanode_report().await?;
        if report.iter().any(|d| d.transfer_addr == victim_addr && !d.live) {
            break;
        }
        if killed.elapsed() > Duration::from_millis(args.dead_node_interval_ms) + Duration::from_secs(120) {
            bail!("the namenode never declared {victim} dead");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let detected = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let r = client.fsck("/", FsckOptions::default()).await?;
        if r.summary.under_replicated_blocks == 0 && r.summary.missing_blocks == 0 {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("  {} blocks still under-replicated", r.summary.under_replicated_blocks);
            last_report = Instant::now();
        }
        if detected.elapsed() > Duration::from_secs(1800) {
            bail!("re-replication did not finish within 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let repaired = detected.elapsed();
    let mbps = |bytes: u64, d: Duration| bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9);
    println!("detection: {:.1} s after kill -9 (dead_node_interval_ms = {})", (detected - killed).as_secs_f64(), args.dead_node_interval_ms);
    println!(
        "settings: heartbeat {} ms, replication interval {} ms, max streams {}, work multiplier {}",
        args.heartbeat_ms, args.replication_interval_ms, args.max_streams, args.work_multiplier
    );
    println!("{:<28} {:>10} {:>12}", "", "time", "throughput");
    println!(
        "{:<28} {:>8.1} s {:>7.1} MB/s",
        "re-replication (detected->done)",
        repaired.as_secs_f64(),
        mbps(victim_data, repaired)
    );
    println!("{:<28} {:>8.1} s {:>7.1} MB/s", "baseline: local file copy", baseline.as_secs_f64(), mbps(victim_data, baseline));
    let _ = client.delete("/bench/rerep", true).await;
    Ok(())
}

/// Bytes of finalized replica data under a datanode's directory, and the
/// replica files (data and meta: two per replica).
fn replica_bytes(dir: &Path) -> anyhow::Result<(u64, Vec<PathBuf>)> {
    let mut total = 0;
    let mut files = Vec::new();
    let mut stack = vec![dir.join("current").join("finalized")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd {
            let e = e?;
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name().to_string_lossy().starts_with("blk_") {
                if !e.file_name().to_string_lossy().ends_with(".meta") {
                    total += e.metadata()?.len();
                }
                files.push(p);
            }
        }
    }
    Ok((total, files))
}

/// Copies every replica file once, from three threads (as many as the
/// surviving sources), to a scratch directory on the same disk. Neither
/// this nor the datanodes fsync (the default), so both write through the
/// same page cache.
fn baseline_copy(cluster_dir: &Path, files: &[PathBuf]) -> anyhow::Result<Duration> {
    let scratch = tempfile::Builder::new().prefix("rerep-baseline-").tempdir_in(cluster_dir)?;
    let start = Instant::now();
    let threads = 3.min(files.len().max(1));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let dst = scratch.path();
                s.spawn(move || -> anyhow::Result<()> {
                    for (i, f) in files.iter().enumerate().filter(|(i, _)| i % threads == t) {
                        std::fs::copy(f, dst.join(format!("{i}"))).with_context(|| format!("copying {}", f.display()))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("baseline copier panicked"))??;
        }
        anyhow::Ok(())
    })?;
    Ok(start.elapsed())
}
