//! `tusk dfsadmin ...`: cluster administration as `hdfs dfsadmin` does it:
//! safe mode, the datanode report, decommissioning. The namenode address
//! and the user are found exactly as for `tusk dfs`.

mod report;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;
use tusk_client::{AdminState, DatanodeInfo, SafeModeAction, SafeModeStatus};

use crate::dfs::Dfs;
use report::{ReportFilter, decommission_status};

/// Flags shared by every `tusk dfsadmin` command.
#[derive(Debug, Args)]
pub struct DfsadminArgs {
    /// Namenode address (host:port); else TUSK_NAMENODE, else the file named by TUSK_CONF.
    #[arg(long, global = true)]
    namenode: Option<String>,
    #[command(subcommand)]
    command: DfsadminCommand,
}

#[derive(Debug, Subcommand)]
enum DfsadminCommand {
    /// Show, enter or leave safe mode, or wait until it is off.
    Safemode {
        action: SafemodeArg,
        /// With `wait`: give up (exit 1) after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Cluster capacity and the state of every datanode.
    Report {
        /// One JSON document {summary, datanodes}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: ReportFlags,
    },
    /// Start decommissioning a datanode (uuid, host:port or host).
    Decommission {
        node: String,
        /// Wait until it is decommissioned.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up (exit 1) after this many seconds.
        #[arg(long, requires = "wait")]
        timeout: Option<u64>,
    },
    /// Return a decommissioning or decommissioned datanode to service.
    Recommission { node: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SafemodeArg {
    Get,
    Enter,
    Leave,
    Wait,
}

/// At most one of the report filters.
#[derive(Debug, Args)]
#[group(multiple = false)]
struct ReportFlags {
    /// Only live datanodes.
    #[arg(long)]
    live: bool,
    /// Only dead datanodes.
    #[arg(long)]
    dead: bool,
    /// Only datanodes being decommissioned.
    #[arg(long)]
    decommissioning: bool,
}

impl ReportFlags {
    fn filter(&self) -> ReportFilter {
        if self.live {
            ReportFilter::Live
        } else if self.dead {
            ReportFilter::Dead
        } else if self.decommissioning {
            ReportFilter::Decommissioning
        } else {
            ReportFilter::All
        }
    }
}

/// First wait between two polls; doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(1);

pub async fn run(args: DfsadminArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("warn");
    let dfs = Dfs::connect(args.namenode.as_deref()).await?;
    match args.command {
        DfsadminCommand::Safemode { action, timeout } => safemode(&dfs, action, timeout).await?,
        DfsadminCommand::Report { json, filter } => {
            let nodes = dfs.client.datanode_report().await?;
            let now = tusk_common::now_ms();
            if json {
                println!("{}", report::to_json(&nodes, filter.filter()));
            } else {
                print!("{}", report::to_text(&nodes, filter.filter(), now));
            }
        }
        DfsadminCommand::Decommission { node, wait, timeout } => decommission(&dfs, &node, wait, timeout).await?,
        DfsadminCommand::Recommission { node } => {
            for d in dfs.client.datanode_admin(&node, false).await? {
                println!("Recommission requested for datanode {}", node_state(&d));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `Safe mode is ON` / `Safe mode is OFF`.
pub fn safe_mode_line(st: &SafeModeStatus) -> &'static str {
    if st.on { "Safe mode is ON" } else { "Safe mode is OFF" }
}

async fn safemode(dfs: &Dfs, action: SafemodeArg, timeout: Option<u64>) -> anyhow::Result<()> {
    let c = &dfs.client;
    match action {
        SafemodeArg::Get => {
            let st = c.safe_mode(SafeModeAction::Get).await?;
            println!("{}", safe_mode_line(&st));
            if st.on && !st.message.is_empty() {
                println!("{}", st.message);
            }
        }
        SafemodeArg::Enter => println!("{}", safe_mode_line(&c.safe_mode(SafeModeAction::Enter).await?)),
        SafemodeArg::Leave => println!("{}", safe_mode_line(&c.safe_mode(SafeModeAction::Leave).await?)),
        SafemodeArg::Wait => {
            let deadline = timeout.map(|s| Instant::now() + Duration::from_secs(s));
            let mut delay = POLL_FIRST;
            loop {
                let st = c.safe_mode(SafeModeAction::Get).await?;
                if !st.on {
                    println!("{}", safe_mode_line(&st));
                    return Ok(());
                }
                if let Some(d) = deadline
                    && Instant::now() + delay > d
                {
                    let secs = timeout.unwrap_or_default();
                    bail!("safe mode is still ON after {secs} seconds: {}", st.message);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(POLL_MAX);
            }
        }
    }
    Ok(())
}

/// `ADDR (UUID): Decommission Status`.
fn node_state(d: &DatanodeInfo) -> String {
    format!("{} ({}): {}", d.transfer_addr, d.uuid, decommission_status(d.admin_state))
}

async fn decommission(dfs: &Dfs, node: &str, wait: bool, timeout: Option<u64>) -> anyhow::Result<()> {
    let nodes = dfs.client.datanode_admin(node, true).await?;
    if nodes.is_empty() {
        bail!("{node}: no such datanode");
    }
    for d in &nodes {
        println!("Decommission requested for datanode {}", node_state(d));
    }
    if !wait {
        return Ok(());
    }
    let deadline = timeout.map(|s| Instant::now() + Duration::from_secs(s));
    let mut pending: Vec<String> =
        nodes.iter().filter(|d| d.admin_state != AdminState::Decommissioned).map(|d| d.uuid.clone()).collect();
    let mut delay = POLL_FIRST;
    while !pending.is_empty() {
        if let Some(d) = deadline
            && Instant::now() + delay > d
        {
            let report = dfs.client.datanode_report().await?;
            let left: Vec<String> = report
                .iter()
                .filter(|d| pending.contains(&d.uuid))
                .map(|d| format!("{} ({} blocks pending)", d.transfer_addr, d.blocks_pending_decommission))
                .collect();
            bail!("decommission not finished after {} seconds: {}", timeout.unwrap_or_default(), left.join(", "));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(POLL_MAX);
        let report = dfs.client.datanode_report().await?;
        for uuid in pending.clone() {
            match report.iter().find(|d| d.uuid == uuid) {
                None => bail!("datanode {uuid} is no longer known to the namenode"),
                Some(d) if d.admin_state == AdminState::Normal => {
                    bail!("datanode {} was returned to service while waiting", d.transfer_addr)
                }
                Some(d) if d.admin_state == AdminState::Decommissioned => {
                    println!("Datanode {}", node_state(d));
                    pending.retain(|u| *u != uuid);
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}
