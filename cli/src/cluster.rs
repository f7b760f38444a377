//! `tusk cluster`: a local cluster of real daemon processes in one directory.
//!
//! Layout of `DIR`: `conf/<role>-<i>.toml` (each daemon's config),
//! `logs/<role>-<i>.log`, `pids/<role>-<i>.pid`, `run/<role>-<i>.addr` (the
//! address a daemon bound), `run/datanode-<i>.sock` (a datanode's
//! short-circuit read socket), `data/…` (name and data directories) and
//! `cluster.env` (`export TUSK_NAMENODE=…` and `export TUSK_JOBTRACKER=…`).
//! Roles: `namenode-0`, `datanode-<i>`, `jobtracker-0`, `worker-<i>` (see
//! [`compute`]). Daemons bind port 0 on first
//! start; the bound port is then written back into their config, so a
//! restart keeps the address clients and datanodes know.

mod compute;
pub mod overrides;
mod process;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tusk_client::{Client, ClientConfig, SafeModeAction};
use tusk_datanode::DatanodeConfig;
use tusk_namenode::NamenodeConfig;

use process::Daemon;

/// How long a daemon may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Start a namenode, datanodes, a jobtracker and workers as separate
    /// processes (or restart a stopped cluster in DIR).
    Start {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        options: ClusterOptions,
        /// Return once the datanodes are live, without waiting for the
        /// namenode to leave safe mode.
        #[arg(long)]
        no_wait_safemode: bool,
    },
    /// Stop every daemon of the cluster in DIR.
    Stop {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Show the daemons of the cluster in DIR and what the namenode sees.
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Restart one daemon (e.g. namenode-0, datanode-2, jobtracker-0, worker-1) from its config.
    Restart {
        #[arg(long)]
        dir: PathBuf,
        role: String,
    },
}

/// Settings of a new local cluster.
#[derive(Debug, Clone, Args)]
pub struct ClusterOptions {
    /// Number of datanodes.
    #[arg(long, default_value_t = 3)]
    pub datanodes: usize,
    /// Default block size of the cluster (e.g. 128MiB).
    #[arg(long, value_parser = tusk_common::size::parse_size)]
    pub block_size: Option<u64>,
    /// Default replication factor.
    #[arg(long)]
    pub replication: Option<u32>,
    /// Datanode heartbeat interval in milliseconds.
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Spread the datanodes over this many racks: datanode i runs on the
    /// loopback address 127.0.0.<i+1> and a topology file maps those to
    /// racks /rack0, /rack1, ... (contiguous groups).
    #[arg(long)]
    pub racks: Option<usize>,
    /// Any namenode setting, as KEY=VALUE (repeatable), e.g. dead_node_interval_ms=5000.
    #[arg(long = "nn-conf", value_name = "KEY=VALUE")]
    pub nn_conf: Vec<String>,
    /// Any datanode setting for every datanode, as KEY=VALUE (repeatable).
    #[arg(long = "dn-conf", value_name = "KEY=VALUE")]
    pub dn_conf: Vec<String>,
    /// Number of workers (default: one per datanode; worker i runs beside datanode i).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Any jobtracker setting, as KEY=VALUE (repeatable), e.g. worker_expiry_ms=5000.
    #[arg(long = "jt-conf", value_name = "KEY=VALUE")]
    pub jt_conf: Vec<String>,
    /// Any worker setting for every worker, as KEY=VALUE (repeatable), e.g. slots=2.
    #[arg(long = "worker-conf", value_name = "KEY=VALUE")]
    pub worker_conf: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            datanodes: 3,
            block_size: None,
            replication: None,
            heartbeat_ms: None,
            racks: None,
            nn_conf: Vec::new(),
            dn_conf: Vec::new(),
            workers: None,
            jt_conf: Vec::new(),
            worker_conf: Vec::new(),
        }
    }
}

/// Rack of datanode `i` of `n` spread over `racks` racks.
fn rack_of(i: usize, n: usize, racks: usize) -> String {
    format!("/rack{}", i * racks / n.max(1))
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("warn");
    match args.command {
        ClusterCommand::Start { dir, options, no_wait_safemode } => {
            let cluster = LocalCluster::start(&dir, &options).await?;
            if !no_wait_safemode {
                cluster.wait_safe_mode_off(START_TIMEOUT).await?;
            }
            println!("cluster running in {}", dir.display());
            println!("  namenode   {}", cluster.namenode_addr);
            println!("  datanodes  {}", cluster.datanodes);
            if let Some(jt) = &cluster.jobtracker_addr {
                println!("  jobtracker {jt}");
                println!("  workers    {}", cluster.workers);
            }
            println!("  logs       {}", dir.join("logs").display());
            println!("use it with:  source {}", dir.join("cluster.env").display());
            cluster.detach();
        }
        ClusterCommand::Stop { dir } => {
            let stopped = LocalCluster::open(&dir)?.stop().await?;
            println!("stopped {stopped} daemon(s) in {}", dir.display());
        }
        ClusterCommand::Status { dir } => return status(&dir).await,
        ClusterCommand::Restart { dir, role } => {
            let mut cluster = LocalCluster::open(&dir)?;
            cluster.restart(&role).await?;
            println!("restarted {role}");
            cluster.detach();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A local cluster rooted in a directory.
pub struct LocalCluster {
    dir: PathBuf,
    pub namenode_addr: String,
    pub datanodes: usize,
    /// The jobtracker's address (none in a cluster made before compute existed).
    pub jobtracker_addr: Option<String>,
    pub workers: usize,
    /// Children started by this process (so they can be reaped).
    children: Vec<std::process::Child>,
}

impl LocalCluster {
    /// Starts a new cluster in `dir`, or restarts a stopped one that lives
    /// there, and waits until every datanode and worker has registered.
    pub async fn start(dir: &Path, options: &ClusterOptions) -> anyhow::Result<LocalCluster> {
        if let Some(running) = Daemon::all(dir)?.into_iter().find(|d| d.pid().is_some()) {
            bail!("{}: a cluster is already running there ({} is up)", dir.display(), running.role);
        }
        let fresh = !dir.join("conf").join("namenode-0.toml").exists();
        if fresh {
            Self::write_configs(dir, options)?;
        }
        let mut children = Vec::new();
        let nn = Daemon::new(dir, "namenode-0");
        if fresh {
            nn.format()?;
        }
        children.push(nn.spawn()?);
        let nn_addr = nn.wait_for_addr(children.last_mut(), START_TIMEOUT).await?;
        nn.pin_addr("rpc_addr", &nn_addr)?;
        let dns: Vec<Daemon> = Daemon::all(dir)?.into_iter().filter(|d| d.role.starts_with("datanode-")).collect();
        for dn in &dns {
            if fresh {
                dn.set_namenode(&nn_addr)?;
            }
            children.push(dn.spawn()?);
        }
        let mut dn_addrs = Vec::new();
        for (i, dn) in dns.iter().enumerate() {
            let addr = dn.wait_for_addr(children.get_mut(i + 1), START_TIMEOUT).await?;
            dn.pin_addr("transfer_addr", &addr)?;
            dn_addrs.push(addr);
        }
        let compute = compute::start(dir, fresh, &nn_addr, &dn_addrs, &mut children, START_TIMEOUT).await?;
        let mut env = format!("export TUSK_NAMENODE={nn_addr}\n");
        if let Some((jt, _)) = &compute {
            env.push_str(&format!("export TUSK_JOBTRACKER={jt}\n"));
        }
        std::fs::write(dir.join("cluster.env"), env).with_context(|| format!("{}: cannot write cluster.env", dir.display()))?;
        let (jobtracker_addr, workers) = compute.map_or((None, 0), |(jt, n)| (Some(jt), n));
        let cluster = LocalCluster {
            dir: dir.to_path_buf(),
            namenode_addr: nn_addr,
            datanodes: dns.len(),
            jobtracker_addr,
            workers,
            children,
        };
        cluster.wait_live_datanodes(START_TIMEOUT).await?;
        cluster.wait_workers(START_TIMEOUT).await?;
        Ok(cluster)
    }

    fn write_configs(dir: &Path, options: &ClusterOptions) -> anyhow::Result<()> {
        for sub in ["conf", "logs", "pids", "run", "data"] {
            std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("{}: cannot create", dir.join(sub).display()))?;
        }
        let abs = std::path::absolute(dir).with_context(|| format!("{}: bad directory", dir.display()))?;
        let mut nn = NamenodeConfig {
            name_dir: abs.join("data").join("name"),
            rpc_addr: "127.0.0.1:0".into(),
            addr_file: Some(abs.join("run").join("namenode-0.addr")),
            ..NamenodeConfig::default()
        };
        if let Some(b) = options.block_size {
            nn.default_block_size = b;
        }
        if let Some(r) = options.replication {
            nn.default_replication = r;
        } else {
            nn.default_replication = nn.default_replication.min(options.datanodes.max(1) as u32);
        }
        if let Some(h) = options.heartbeat_ms {
            nn.heartbeat_interval_ms = h;
        }
        // A local cluster leaves safe mode as soon as its blocks are reported.
        nn.safemode_extension_ms = 0;
        let racks = options.racks.filter(|r| *r > 0);
        let mut nn_sets = Vec::new();
        if let Some(racks) = racks {
            if options.datanodes > 254 {
                bail!("--racks: at most 254 datanodes (one loopback address each)");
            }
            let topology = abs.join("conf").join("topology.txt");
            let mut text = String::from("# datanode host -> rack, written by tusk cluster start --racks\n");
            for i in 0..options.datanodes {
                text.push_str(&format!("127.0.0.{} {}\n", i + 1, rack_of(i, options.datanodes, racks)));
            }
            std::fs::write(&topology, text).with_context(|| format!("{}: cannot write", topology.display()))?;
            nn_sets.push(format!("topology_file = {:?}", topology.display().to_string()));
        }
        nn_sets.extend(options.nn_conf.iter().cloned());
        let nn = overrides::apply(&nn, &nn_sets, "namenode")?;
        nn.validate()?;
        process::write_toml(&abs.join("conf").join("namenode-0.toml"), &nn)?;
        for i in 0..options.datanodes {
            let role = format!("datanode-{i}");
            let host = if racks.is_some() { format!("127.0.0.{}", i + 1) } else { "127.0.0.1".to_string() };
            let dn = DatanodeConfig {
                data_dirs: vec![abs.join("data").join(&role)],
                namenode_addr: String::new(),
                transfer_addr: format!("{host}:0"),
                addr_file: Some(abs.join("run").join(format!("{role}.addr"))),
                domain_socket_path: short_circuit_socket(&abs, &role),
                ..DatanodeConfig::default()
            };
            // Validated by the datanode itself once its namenode address is set.
            let dn = overrides::apply(&dn, &options.dn_conf, "datanode")?;
            process::write_toml(&abs.join("conf").join(format!("{role}.toml")), &dn)?;
        }
        compute::write_configs(&abs, options)
    }

    /// The cluster that lives in `dir` (started earlier, maybe by another process).
    pub fn open(dir: &Path) -> anyhow::Result<LocalCluster> {
        let nn_conf = dir.join("conf").join("namenode-0.toml");
        if !nn_conf.exists() {
            bail!("{}: no cluster there (no conf/namenode-0.toml)", dir.display());
        }
        let text = std::fs::read_to_string(&nn_conf).with_context(|| format!("{}: cannot read", nn_conf.display()))?;
        let conf: NamenodeConfig = tusk_common::config::parse_toml(&text)?;
        let datanodes = Daemon::all(dir)?.iter().filter(|d| d.role.starts_with("datanode-")).count();
        Ok(LocalCluster {
            dir: dir.to_path_buf(),
            namenode_addr: conf.rpc_addr,
            datanodes,
            jobtracker_addr: compute::jobtracker_addr(dir)?,
            workers: compute::workers(dir)?.len(),
            children: Vec::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A client of this cluster's namenode.
    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(ClientConfig::new(self.namenode_addr.clone())).await?)
    }

    /// A client of this cluster's jobtracker.
    pub async fn job_client(&self) -> anyhow::Result<tusk_client::JobClient> {
        let Some(addr) = &self.jobtracker_addr else {
            bail!("{}: the cluster has no jobtracker (made before compute existed)", self.dir.display());
        };
        Ok(tusk_client::JobClient::connect(addr.clone()).await?)
    }

    /// Waits until the jobtracker reports every running worker live.
    pub async fn wait_workers(&self, timeout: Duration) -> anyhow::Result<()> {
        match &self.jobtracker_addr {
            Some(jt) => compute::wait_workers(&self.dir, jt, timeout).await,
            None => Ok(()),
        }
    }

    /// Waits until the namenode reports every running datanode live.
    pub async fn wait_live_datanodes(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let client = self.client().await?;
        let mut last;
        loop {
            // Datanodes stopped on purpose (or killed) are not waited for.
            let running: Vec<String> = Daemon::all(&self.dir)?
                .iter()
                .filter(|d| d.role.starts_with("datanode-") && d.pid().is_some())
                .filter_map(|d| d.addr())
                .collect();
            match client.datanode_report().await {
                Ok(r) => {
                    let live = running.iter().filter(|a| r.iter().any(|d| d.live && d.transfer_addr == **a)).count();
                    if live >= running.len() {
                        return Ok(());
                    }
                    last = format!("{live} of {} running datanodes live", running.len());
                }
                Err(e) => last = e.to_string(),
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("cluster in {} did not come up: {last} (see {})", self.dir.display(), self.dir.join("logs").display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the namenode has left safe mode (its blocks reported).
    pub async fn wait_safe_mode_off(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let client = self.client().await?;
        loop {
            let last = match client.safe_mode(SafeModeAction::Get).await {
                Ok(s) if !s.on => return Ok(()),
                Ok(s) => s.message,
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                bail!("the namenode of {} is still in safe mode: {last}", self.dir.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Restarts one daemon from its config and waits until it serves (and,
    /// for the namenode, until it has left safe mode).
    pub async fn restart(&mut self, role: &str) -> anyhow::Result<()> {
        let d = Daemon::new(&self.dir, role);
        if !d.config_path().exists() {
            bail!("{}: no daemon '{role}' (no {})", self.dir.display(), d.config_path().display());
        }
        d.stop(&mut self.children).await?;
        d.clear_addr();
        let mut child = d.spawn()?;
        d.wait_for_addr(Some(&mut child), START_TIMEOUT).await?;
        self.children.push(child);
        self.wait_live_datanodes(START_TIMEOUT).await?;
        if role.starts_with("jobtracker") || role.starts_with("worker") {
            self.wait_workers(START_TIMEOUT).await?;
        }
        if role.starts_with("namenode") {
            self.wait_safe_mode_off(START_TIMEOUT).await?;
        }
        Ok(())
    }

    /// Stops every daemon (workers, then the jobtracker, the datanodes and
    /// the namenode); returns how many were running.
    pub async fn stop(mut self) -> anyhow::Result<usize> {
        let mut daemons = Daemon::all(&self.dir)?;
        let rank = |role: &str| ["worker", "jobtracker", "datanode", "namenode"].iter().position(|k| role.starts_with(k));
        daemons.sort_by_key(|d| rank(&d.role));
        let mut stopped = 0;
        for d in daemons {
            if d.stop(&mut self.children).await? {
                stopped += 1;
            }
        }
        Ok(stopped)
    }

    /// Leaves the daemons running after this process exits.
    pub fn detach(mut self) {
        self.children.clear();
    }
}

async fn status(dir: &Path) -> anyhow::Result<ExitCode> {
    let cluster = LocalCluster::open(dir)?;
    let mut all_up = true;
    for d in Daemon::all(dir)? {
        match d.pid() {
            Some(pid) => println!("{:<12} running  pid {pid:<8} {}", d.role, d.addr().unwrap_or_default()),
            None => {
                all_up = false;
                println!("{:<12} stopped", d.role)
            }
        }
    }
    match cluster.client().await?.datanode_report().await {
        Ok(report) => {
            let live = report.iter().filter(|d| d.live).count();
            println!("namenode {}: {live} live datanode(s) of {} known", cluster.namenode_addr, report.len());
        }
        Err(e) => {
            all_up = false;
            println!("namenode {}: not answering ({e})", cluster.namenode_addr);
        }
    }
    if let Some(jt) = &cluster.jobtracker_addr {
        all_up &= compute::print_status(jt).await?;
    }
    Ok(if all_up { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `<dir>/run/<role>.sock` for a datanode's short-circuit domain socket, or
/// `None` when that path is too long for a Unix socket address (the
/// datanode then serves reads over TCP only).
fn short_circuit_socket(abs_dir: &Path, role: &str) -> Option<PathBuf> {
    /// `sun_path` holds 108 bytes including the terminating NUL.
    const MAX_SOCKET_PATH: usize = 107;
    let path = abs_dir.join("run").join(format!("{role}.sock"));
    (path.as_os_str().len() <= MAX_SOCKET_PATH).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_dirs_get_a_socket_and_long_ones_none() {
        let p = short_circuit_socket(Path::new("/tmp/tusk-test-abc"), "datanode-0");
        assert_eq!(p, Some(PathBuf::from("/tmp/tusk-test-abc/run/datanode-0.sock")));
        let long = format!("/tmp/{}", "d".repeat(100));
        assert_eq!(short_circuit_socket(Path::new(&long), "datanode-0"), None);
    }
}
