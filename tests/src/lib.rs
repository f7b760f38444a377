//! The one cluster harness of Tusk's integration tests.
//!
//! [`TestCluster`] starts a real multi-process cluster through the real
//! `tusk cluster start` command (the same code path a user runs), on ports
//! bound at `:0`, in a temporary directory with a log per daemon. It kills
//! every daemon when dropped and prints the log tails when a test fails.
//!
//! The `tusk` binary is built on first use (`cargo build --bin tusk`, a no-op
//! when fresh), so `cargo test`/`cargo nextest run` alone is enough.

pub mod jobs;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tusk_client::{Client, ClientConfig};

/// Path of the `tusk` binary, built once per test process.
pub fn tusk_bin() -> anyhow::Result<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| build_tusk().map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
}

fn build_tusk() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("TUSK_BIN") {
        return Ok(PathBuf::from(p));
    }
    // The test executable lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().context("current_exe")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("unexpected test executable location")?
        .to_path_buf();
    let target_dir = profile_dir.parent().context("unexpected target layout")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--bin", "tusk", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo build --bin tusk")?;
    if !status.success() {
        bail!("cargo build --bin tusk failed");
    }
    Ok(profile_dir.join("tusk"))
}

/// Settings of a test cluster.
#[derive(Debug, Clone)]
pub struct Builder {
    datanodes: usize,
    block_size: u64,
    replication: u32,
    heartbeat_ms: u64,
    racks: Option<usize>,
    nn_conf: Vec<String>,
    dn_conf: Vec<String>,
    workers: usize,
    jt_conf: Vec<String>,
    worker_conf: Vec<String>,
}

impl Builder {
    /// Workers (one beside each datanode while `n` ≤ datanodes); 0, the
    /// default, for filesystem-only tests (the jobtracker runs anyway).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }
    /// A jobtracker setting (`--jt-conf KEY=VALUE`).
    pub fn jt_conf(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.jt_conf.push(format!("{key}={value}"));
        self
    }
    /// A setting of every worker (`--worker-conf KEY=VALUE`).
    pub fn worker_conf(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.worker_conf.push(format!("{key}={value}"));
        self
    }
    /// Workers are declared lost `expiry_ms` after their last heartbeat
    /// (heartbeats every 200 ms).
    pub fn fast_worker_expiry(self, expiry_ms: u64) -> Self {
        self.jt_conf("worker_expiry_ms", expiry_ms).jt_conf("heartbeat_interval_ms", 200)
    }
    /// Spreads the datanodes over `n` racks (`tusk cluster start --racks`).
    pub fn racks(mut self, n: usize) -> Self {
        self.racks = Some(n);
        self
    }
    /// A namenode setting (`--nn-conf KEY=VALUE`).
    pub fn nn_conf(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.nn_conf.push(format!("{key}={value}"));
        self
    }
    /// A setting of every datanode (`--dn-conf KEY=VALUE`).
    pub fn dn_conf(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.dn_conf.push(format!("{key}={value}"));
        self
    }
    /// Short failure-detection settings: datanodes are declared dead
    /// `dead_ms` after their last heartbeat, replication work runs every
    /// 200 ms, and a transfer that got lost (e.g. to a node that flapped on
    /// a loaded machine) is retried after 5 s.
    pub fn fast_failure_detection(self, dead_ms: u64) -> Self {
        self.nn_conf("dead_node_interval_ms", dead_ms)
            .nn_conf("replication_interval_ms", 200)
            .nn_conf("replication_pending_timeout_ms", 5000)
    }
    pub fn datanodes(mut self, n: usize) -> Self {
        self.datanodes = n;
        self
    }
    pub fn block_size(mut self, b: u64) -> Self {
        self.block_size = b;
        self
    }
    pub fn replication(mut self, r: u32) -> Self {
        self.replication = r;
        self
    }

    /// Starts the cluster and waits until every datanode is live.
    pub fn start(self) -> anyhow::Result<TestCluster> {
        let dir = tempfile::Builder::new().prefix("tusk-test-").tempdir()?;
        let bin = tusk_bin()?;
        let mut cmd = Command::new(&bin);
        cmd.args(["cluster", "start", "--dir"])
            .arg(dir.path())
            .args(["--datanodes", &self.datanodes.to_string()])
            .args(["--block-size", &self.block_size.to_string()])
            .args(["--replication", &self.replication.to_string()])
            .args(["--heartbeat-ms", &self.heartbeat_ms.to_string()]);
        if let Some(r) = self.racks {
            cmd.args(["--racks", &r.to_string()]);
        }
        for s in &self.nn_conf {
            cmd.args(["--nn-conf", s]);
        }
        for s in &self.dn_conf {
            cmd.args(["--dn-conf", s]);
        }
        cmd.args(["--workers", &self.workers.to_string()]);
        for s in &self.jt_conf {
            cmd.args(["--jt-conf", s]);
        }
        for s in &self.worker_conf {
            cmd.args(["--worker-conf", s]);
        }
        let out = cmd.stdin(Stdio::null()).output().context("running tusk cluster start")?;
        let mut cluster =
            TestCluster { dir, bin, namenode: String::new(), jobtracker: String::new(), block_size: self.block_size };
        if !out.status.success() {
            cluster.print_logs();
            bail!("tusk cluster start failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let env = std::fs::read_to_string(cluster.dir.path().join("cluster.env"))?;
        let namenode = env
            .lines()
            .find_map(|l| l.strip_prefix("export TUSK_NAMENODE="))
            .context("cluster.env has no TUSK_NAMENODE")?
            .trim()
            .to_string();
        cluster.namenode = namenode;
        cluster.jobtracker = env
            .lines()
            .find_map(|l| l.strip_prefix("export TUSK_JOBTRACKER="))
            .context("cluster.env has no TUSK_JOBTRACKER")?
            .trim()
            .to_string();
        Ok(cluster)
    }
}

/// A running multi-process cluster; every daemon is killed on drop.
pub struct TestCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// RPC address of the namenode.
    pub namenode: String,
    /// RPC address of the jobtracker.
    pub jobtracker: String,
    /// The cluster's default block size.
    pub block_size: u64,
}

impl TestCluster {
    /// 3 datanodes, 1 MiB blocks, replication 3, 300 ms heartbeats.
    pub fn builder() -> Builder {
        Builder {
            datanodes: 3,
            block_size: 1 << 20,
            replication: 3,
            heartbeat_ms: 300,
            racks: None,
            nn_conf: Vec::new(),
            dn_conf: Vec::new(),
            workers: 0,
            jt_conf: Vec::new(),
            worker_conf: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new client (its own connection and client name).
    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(ClientConfig::new(self.namenode.clone())).await?)
    }

    /// A client acting as another user.
    pub async fn client_as(&self, user: &str) -> anyhow::Result<Client> {
        let mut config = ClientConfig::new(self.namenode.clone());
        config.user = Some(user.to_string());
        config.groups = Some(vec![user.to_string()]);
        Ok(Client::connect(config).await?)
    }

    /// A `tusk` command pointed at this cluster.
    pub fn tusk(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("TUSK_NAMENODE", &self.namenode)
            .env("TUSK_JOBTRACKER", &self.jobtracker)
            .env_remove("TUSK_CONF")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `tusk dfs <args>` and returns its output.
    pub fn dfs(&self, args: &[&str]) -> Output {
        self.tusk().arg("dfs").args(args).output().unwrap_or_else(|e| panic!("cannot run tusk dfs: {e}"))
    }

    /// Runs `tusk dfs <args>` and fails the test unless it succeeds; returns stdout.
    pub fn dfs_ok(&self, args: &[&str]) -> String {
        let out = self.dfs(args);
        assert!(
            out.status.success(),
            "tusk dfs {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `tusk dfs <args>`, expects failure, returns stderr.
    pub fn dfs_err(&self, args: &[&str]) -> String {
        let out = self.dfs(args);
        assert!(!out.status.success(), "tusk dfs {args:?} unexpectedly succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Pid of a daemon (`namenode-0`, `datanode-1`) if it runs.
    pub fn pid(&self, role: &str) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir().join("pids").join(format!("{role}.pid"))).ok()?;
        text.trim().parse().ok()
    }

    /// SIGKILLs a daemon and waits until it is gone.
    pub fn kill9(&self, role: &str) -> anyhow::Result<()> {
        let pid = self.pid(role).with_context(|| format!("{role} has no pid"))?;
        kill(Pid::from_raw(pid), Signal::SIGKILL).with_context(|| format!("kill -9 {role}"))?;
        wait_until(Duration::from_secs(10), || !process_alive(pid)).with_context(|| format!("{role} did not die"))?;
        Ok(())
    }

    /// `tusk cluster restart <role>`: restarts a daemon from its config and
    /// waits until every datanode is live again.
    pub fn restart(&self, role: &str) -> anyhow::Result<()> {
        let out = self.tusk().args(["cluster", "restart", "--dir"]).arg(self.dir()).arg(role).output()?;
        if !out.status.success() {
            bail!("restart {role}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Runs `tusk <args>` against this cluster and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.tusk().args(args).output().unwrap_or_else(|e| panic!("cannot run tusk {args:?}: {e}"))
    }

    /// Runs `tusk <args>`, fails the test unless it succeeds; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "tusk {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `tusk dfs fsck PATH --json` parsed.
    pub fn fsck_json(&self, path: &str) -> serde_json::Value {
        let out = self.dfs(&["fsck", path, "--files", "--blocks", "--locations", "--json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("fsck --json output is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Stops every daemon (`tusk cluster stop`).
    pub fn stop_all(&self) -> anyhow::Result<()> {
        let out = self.tusk().args(["cluster", "stop", "--dir"]).arg(self.dir()).output()?;
        if !out.status.success() {
            bail!("cluster stop: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Starts the stopped cluster again (`tusk cluster start` on its
    /// directory); returns once every datanode has registered, maybe
    /// before the namenode left safe mode.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        let out = self.tusk().args(["cluster", "start", "--no-wait-safemode", "--dir"]).arg(self.dir()).output()?;
        if !out.status.success() {
            bail!("cluster start: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Sets `key = value` (a TOML value, e.g. `5` or `"x"`) in a daemon's
    /// config; it takes effect when the daemon is restarted.
    pub fn set_conf(&self, role: &str, key: &str, value: &str) -> anyhow::Result<()> {
        let path = self.dir().join("conf").join(format!("{role}.toml"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let mut table: toml::Table = toml::from_str(&text)?;
        let parsed: toml::Table = toml::from_str(&format!("v = {value}"))?;
        let v = parsed.get("v").cloned().context("no value")?;
        table.insert(key.to_string(), v);
        std::fs::write(&path, toml::to_string(&table)?)?;
        Ok(())
    }

    /// The data directory of a datanode role.
    pub fn data_dir(&self, role: &str) -> PathBuf {
        self.dir().join("data").join(role)
    }

    /// Finalized replica data files (`blk_<id>`) of `block_id` on each
    /// datanode, as (role, path).
    pub fn replica_files(&self, block_id: u64) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for role in self.roles().into_iter().filter(|r| r.starts_with("datanode-")) {
            for (id, path) in self.finalized_replicas(&role) {
                if id == block_id {
                    out.push((role.clone(), path));
                }
            }
        }
        out.sort();
        out
    }

    /// Finalized replica data files on a datanode, as (block id, path), by id.
    pub fn finalized_replicas(&self, role: &str) -> Vec<(u64, PathBuf)> {
        let mut out = Vec::new();
        let mut stack = vec![self.data_dir(role).join("current").join("finalized")];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().to_string();
                if p.is_dir() {
                    stack.push(p);
                } else if let Some(id) = name.strip_prefix("blk_").and_then(|s| s.parse().ok()) {
                    out.push((id, p));
                }
            }
        }
        out.sort();
        out
    }

    /// Every daemon role of the cluster.
    pub fn roles(&self) -> Vec<String> {
        let mut roles: Vec<String> = std::fs::read_dir(self.dir().join("conf"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".toml").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        roles.sort();
        roles
    }

    /// The last lines of every daemon's log.
    pub fn print_logs(&self) {
        for role in self.roles() {
            let path = self.dir().join("logs").join(format!("{role}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("----- {role} ({}) -----", path.display());
            for l in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        for role in self.roles() {
            if let Some(pid) = self.pid(&role)
                && process_alive(pid)
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// True if `pid` runs and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z") | Some("X") | None
        ),
        Err(_) => false,
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            bail!("condition not met within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Async flavour of [`wait_until`] for conditions that need the client.
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond().await {
        if tokio::time::Instant::now() >= deadline {
            bail!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Every block of the files under `path` per fsck (open files too), with
/// replicas and their states; empty when fsck fails.
pub async fn fsck_blocks(client: &Client, path: &str) -> Vec<tusk_client::FsckBlock> {
    let opts = tusk_client::FsckOptions { list_files: true, list_blocks: true, list_locations: true, include_open_files: true };
    match client.fsck(path, opts).await {
        Ok(report) => report.files.into_iter().flat_map(|f| f.blocks).collect(),
        Err(_) => Vec::new(),
    }
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
