//! Top-level command line. Each subcommand's flags live next to its code.

use clap::{Parser, Subcommand};

/// Tusk: a distributed filesystem and data platform.
#[derive(Debug, Parser)]
#[command(name = "tusk", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the namenode (or format its storage with --format).
    Namenode(crate::daemon::NamenodeArgs),
    /// Run a datanode.
    Datanode(crate::daemon::DatanodeArgs),
    /// Run the jobtracker (schedules MapReduce jobs on workers).
    Jobtracker(crate::daemon::JobtrackerArgs),
    /// Run a worker (runs task attempts beside a datanode).
    Worker(crate::daemon::WorkerArgs),
    /// Run one task attempt (started by a worker).
    #[command(hide = true)]
    Task(crate::task::TaskArgs),
    /// MapReduce jobs: submit, run built-ins, Hadoop Streaming, status, list, wait, kill, logs, counters.
    Job(crate::job::JobArgs),
    /// HiveQL: run statements (-e), a script (-f) or stdin, or an interactive shell.
    Sql(crate::sql::SqlArgs),
    /// Filesystem commands (put, get, cat, ls, mkdir, rm, mv, cp, stat, du, fsck, ...).
    Dfs(crate::dfs::DfsArgs),
    /// Administration: safe mode, datanode report, decommissioning.
    Dfsadmin(crate::dfsadmin::DfsadminArgs),
    /// Start, stop and inspect a local multi-process cluster.
    Cluster(crate::cluster::ClusterArgs),
    /// Start a local cluster, upload sample data, read it back, count its words, query it with SQL, stop.
    Demo(crate::demo::DemoArgs),
    /// Benchmarks (dfsio, nn, transfer, rereplication, wordcount, terasort, tpch).
    Bench(crate::bench::BenchArgs),
}
