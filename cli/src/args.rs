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
    /// Filesystem commands (put, get, cat, ls, mkdir, rm, mv, cp, stat, du, fsck, ...).
    Dfs(crate::dfs::DfsArgs),
    /// Administration: safe mode, datanode report, decommissioning.
    Dfsadmin(crate::dfsadmin::DfsadminArgs),
    /// Start, stop and inspect a local multi-process cluster.
    Cluster(crate::cluster::ClusterArgs),
    /// Start a local cluster, upload sample data, read it back, stop.
    Demo(crate::demo::DemoArgs),
    /// Benchmarks (dfsio, nn).
    Bench(crate::bench::BenchArgs),
}
