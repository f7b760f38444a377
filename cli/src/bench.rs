//! `tusk bench`: benchmarks that print figures next to a baseline measured
//! in the same run. They never assert timings; they report.

mod dfsio;
mod jobs;
mod nn;
mod rereplication;
mod terasort;
mod tpch;
mod transfer;
mod wordcount;

use clap::{Args, Subcommand};
use std::process::ExitCode;

use crate::cluster::{ClusterOptions, LocalCluster};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Namenode of an existing cluster; else TUSK_NAMENODE; else a local
    /// cluster is started in a temporary directory for the run.
    #[arg(long, global = true)]
    namenode: Option<String>,
    /// Jobtracker of an existing cluster (job benchmarks); else
    /// TUSK_JOBTRACKER when the namenode is given too.
    #[arg(long, global = true)]
    jobtracker: Option<String>,
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Write then read N files (like TestDFSIO), next to plain local files.
    Dfsio(dfsio::DfsioArgs),
    /// Namenode operation throughput through the real RPC (like NNThroughputBenchmark).
    Nn(nn::NnArgs),
    /// Data-transfer protocol choice: plain framed TCP next to gRPC streaming.
    Transfer(transfer::TransferArgs),
    /// Time and throughput of re-replicating a killed datanode's blocks, next to a local copy.
    Rereplication(rereplication::RereplicationArgs),
    /// Wordcount on the cluster next to a single-threaded word count of the same bytes (COST).
    Wordcount(wordcount::WordcountArgs),
    /// Teragen + terasort + teravalidate next to an in-memory sort of the same records.
    Terasort(terasort::TerasortArgs),
    /// TPC-H: load the tables at a scale factor, run the 22 queries through Tusk SQL next to plain DataFusion on the same files.
    Tpch(tpch::TpchArgs),
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("warn");
    match args.command {
        BenchCommand::Dfsio(a) => dfsio::run(args.namenode, a).await?,
        BenchCommand::Nn(a) => nn::run(args.namenode, a).await?,
        BenchCommand::Transfer(a) => transfer::run(a).await?,
        BenchCommand::Rereplication(a) => rereplication::run(a).await?,
        BenchCommand::Wordcount(a) => wordcount::run(args.namenode, args.jobtracker, a).await?,
        BenchCommand::Terasort(a) => terasort::run(args.namenode, args.jobtracker, a).await?,
        BenchCommand::Tpch(a) => tpch::run(args.namenode, args.jobtracker, a).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The cluster a benchmark runs against: an existing one, or a local one
/// started (and stopped) for the run.
pub(crate) struct Target {
    pub namenode: String,
    /// The jobtracker: the local cluster's, or the one given with an existing cluster.
    pub jobtracker: Option<String>,
    local: Option<(LocalCluster, tempfile::TempDir)>,
}

impl Target {
    pub async fn get(namenode: Option<String>, datanodes: usize, options: ClusterOptions) -> anyhow::Result<Target> {
        if let Some(nn) = namenode.or_else(|| std::env::var("TUSK_NAMENODE").ok().filter(|s| !s.is_empty())) {
            let jobtracker = std::env::var("TUSK_JOBTRACKER").ok().filter(|s| !s.is_empty());
            return Ok(Target { namenode: nn, jobtracker, local: None });
        }
        let tmp = tempfile::Builder::new().prefix("tusk-bench-").tempdir()?;
        let options = ClusterOptions { datanodes, ..options };
        eprintln!("starting a local cluster ({datanodes} datanodes) in {}", tmp.path().display());
        let cluster = LocalCluster::start(tmp.path(), &options).await?;
        let jobtracker = cluster.jobtracker_addr.clone();
        Ok(Target { namenode: cluster.namenode_addr.clone(), jobtracker, local: Some((cluster, tmp)) })
    }

    /// A directory on the same filesystem as the cluster's data, for baselines.
    pub fn scratch_parent(&self) -> std::path::PathBuf {
        match &self.local {
            Some((c, _)) => c.dir().to_path_buf(),
            None => std::env::temp_dir(),
        }
    }

    pub async fn finish(self) -> anyhow::Result<()> {
        if let Some((cluster, _tmp)) = self.local {
            cluster.stop().await?;
        }
        Ok(())
    }
}

/// Bytes handed to one write call by the write benchmarks.
pub(crate) const WRITE_CHUNK: usize = 1 << 20;

/// One MiB of pseudo-random bytes, reused for every write.
pub(crate) fn pattern() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..WRITE_CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `size` bytes, repeating `pattern`.
pub(crate) async fn write_pattern(w: &mut tusk_client::FileWriter, size: u64, pattern: &[u8]) -> anyhow::Result<()> {
    let mut left = size;
    while left > 0 {
        let n = left.min(pattern.len() as u64) as usize;
        w.write(&pattern[..n]).await?;
        left -= n as u64;
    }
    Ok(())
}
