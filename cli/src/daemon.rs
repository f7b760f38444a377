//! `tusk namenode`, `tusk datanode`, `tusk jobtracker` and `tusk worker`:
//! load the layered configuration (defaults < `--config` file <
//! `TUSK_NAMENODE_*`/`TUSK_DATANODE_*`/`TUSK_JOBTRACKER_*`/`TUSK_WORKER_*` env
//! < flags), start the daemon and run until SIGTERM or SIGINT.

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use tusk_common::config::load_layered;

/// Flags of `tusk namenode`.
#[derive(Debug, Args)]
pub struct NamenodeArgs {
    /// TOML configuration file (see namenode/namenode.example.toml).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Initialise a new namespace in the name directory, then exit.
    #[arg(long)]
    format: bool,
    /// With --format: overwrite an existing namespace.
    #[arg(long, requires = "format")]
    force: bool,
    #[command(flatten)]
    flags: NamenodeFlags,
}

/// Namenode settings that can be given as flags (highest precedence).
#[derive(Debug, Args, Serialize)]
struct NamenodeFlags {
    /// Directory of the namespace image and edit log.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    name_dir: Option<PathBuf>,
    /// Address to serve RPC on (host:port; port 0 picks a free one).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    rpc_addr: Option<String>,
    /// File to write the bound RPC address to.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    addr_file: Option<PathBuf>,
}

/// Flags of `tusk datanode`.
#[derive(Debug, Args)]
pub struct DatanodeArgs {
    /// TOML configuration file (see datanode/datanode.example.toml).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: DatanodeFlags,
}

/// Datanode settings that can be given as flags (highest precedence).
#[derive(Debug, Args, Serialize)]
struct DatanodeFlags {
    /// Data directory (repeat for several disks).
    #[arg(long = "data-dir")]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dirs: Option<Vec<PathBuf>>,
    /// Namenode RPC address (host:port).
    #[arg(long = "namenode")]
    #[serde(skip_serializing_if = "Option::is_none")]
    namenode_addr: Option<String>,
    /// Address of the block transfer server (host:port; port 0 picks one).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    transfer_addr: Option<String>,
    /// File to write the bound transfer address to.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    addr_file: Option<PathBuf>,
}

/// Flags of `tusk jobtracker`.
#[derive(Debug, Args)]
pub struct JobtrackerArgs {
    /// TOML configuration file.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: JobtrackerFlags,
}

/// Jobtracker settings that can be given as flags (highest precedence).
#[derive(Debug, Args, Serialize)]
struct JobtrackerFlags {
    /// Address to serve RPC on (host:port; port 0 picks a free one).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    rpc_addr: Option<String>,
    /// File to write the bound RPC address to.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    addr_file: Option<PathBuf>,
    /// Directory where jobs, tasks and attempts are persisted.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    state_dir: Option<PathBuf>,
    /// Namenode RPC address (host:port).
    #[arg(long = "namenode")]
    #[serde(skip_serializing_if = "Option::is_none")]
    namenode_addr: Option<String>,
}

/// Flags of `tusk worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// TOML configuration file.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: WorkerFlags,
}

/// Worker settings that can be given as flags (highest precedence).
#[derive(Debug, Args, Serialize)]
struct WorkerFlags {
    /// Address to serve the worker service on (host:port; port 0 picks one).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    rpc_addr: Option<String>,
    /// File to write the bound address to.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    addr_file: Option<PathBuf>,
    /// Jobtracker RPC address (host:port).
    #[arg(long = "jobtracker")]
    #[serde(skip_serializing_if = "Option::is_none")]
    jobtracker_addr: Option<String>,
    /// Local directory for task attempts and map output (repeat for several disks).
    #[arg(long = "local-dir")]
    #[serde(skip_serializing_if = "Option::is_none")]
    local_dirs: Option<Vec<PathBuf>>,
    /// Transfer address of the datanode beside this worker (locality).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    datanode: Option<String>,
    /// Host this worker runs on, as datanodes name it.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    /// Concurrent task attempts (0 derives it from cores and memory).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    slots: Option<u32>,
}

pub async fn namenode(args: NamenodeArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("info");
    let config: tusk_namenode::NamenodeConfig =
        load_layered(args.config.as_deref(), "TUSK_NAMENODE_", &args.flags)?;
    config.validate()?;
    if args.format {
        let user = tusk_common::identity::Identity::current().user;
        let cluster_id = tusk_namenode::format(&config, &user, args.force)?;
        println!(
            "formatted {} (cluster id {cluster_id}, superuser {user})",
            config.name_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let handle = tusk_namenode::start(config).await.context("namenode")?;
    tracing::info!(addr = %handle.local_addr(), "namenode serving");
    let fatal = until_stopped("namenode", std::future::pending::<std::convert::Infallible>()).await?;
    let stopped = handle.shutdown().await;
    finish("namenode", fatal, stopped)
}

pub async fn datanode(args: DatanodeArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("info");
    let config: tusk_datanode::DatanodeConfig =
        load_layered(args.config.as_deref(), "TUSK_DATANODE_", &args.flags)?;
    config.validate()?;
    let mut handle = tusk_datanode::start(config).await.context("datanode")?;
    tracing::info!(addr = %handle.transfer_addr(), uuid = handle.datanode_uuid(), "datanode serving");
    let fatal = until_stopped("datanode", handle.fatal_error()).await?;
    let stopped = handle.shutdown().await;
    finish("datanode", fatal, stopped)
}

pub async fn jobtracker(args: JobtrackerArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("info");
    let config: tusk_jobtracker::JobtrackerConfig =
        load_layered(args.config.as_deref(), "TUSK_JOBTRACKER_", &args.flags)?;
    config.validate()?;
    let handle = tusk_jobtracker::start(config).await.context("jobtracker")?;
    let fatal = until_stopped("jobtracker", std::future::pending::<std::convert::Infallible>()).await?;
    let stopped = handle.shutdown().await;
    finish("jobtracker", fatal, stopped)
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("info");
    let config: tusk_worker::WorkerConfig = load_layered(args.config.as_deref(), "TUSK_WORKER_", &args.flags)?;
    config.validate()?;
    let mut handle = tusk_worker::start(config).await.context("worker")?;
    let fatal = until_stopped("worker", handle.fatal_error()).await?;
    let stopped = handle.shutdown().await;
    finish("worker", fatal, stopped)
}

/// Waits for SIGTERM or SIGINT (`None`), or for the daemon's error it
/// cannot continue after (`fatal`); logs that `role` is stopping.
async fn until_stopped<E: std::fmt::Display>(
    role: &str,
    fatal: impl std::future::Future<Output = E>,
) -> anyhow::Result<Option<E>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        e = fatal => {
            tracing::error!("{role} stopping: {e}");
            return Ok(Some(e));
        }
    }
    tracing::info!("{role} stopping");
    Ok(None)
}

/// The exit of a daemon that was shut down: its fatal error if it had one
/// (a shutdown error then goes unreported), else the shutdown's result.
fn finish<E, S>(role: &'static str, fatal: Option<E>, stopped: Result<(), S>) -> anyhow::Result<ExitCode>
where
    E: std::error::Error + Send + Sync + 'static,
    S: std::error::Error + Send + Sync + 'static,
{
    if let Some(e) = fatal {
        return Err(anyhow::Error::new(e).context(role));
    }
    stopped?;
    Ok(ExitCode::SUCCESS)
}
