//! One daemon of a local cluster: its files, spawning it as a detached
//! process, waiting for it to serve, and stopping it.

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a daemon gets to stop after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A daemon of the cluster in `dir`, named by its role (`namenode-0`, `datanode-2`).
pub struct Daemon {
    dir: PathBuf,
    pub role: String,
}

impl Daemon {
    pub fn new(dir: &Path, role: &str) -> Daemon {
        Daemon { dir: dir.to_path_buf(), role: role.to_string() }
    }

    /// Every daemon with a config in `dir/conf`, namenode first, then
    /// datanodes by index.
    pub fn all(dir: &Path) -> anyhow::Result<Vec<Daemon>> {
        let conf = dir.join("conf");
        if !conf.exists() {
            return Ok(Vec::new());
        }
        let mut roles = Vec::new();
        for e in std::fs::read_dir(&conf).with_context(|| format!("{}: cannot read", conf.display()))? {
            let e = e.with_context(|| format!("{}: cannot read", conf.display()))?;
            if let Some(role) = e.file_name().to_string_lossy().strip_suffix(".toml") {
                roles.push(role.to_string());
            }
        }
        roles.sort_by_key(|r| {
            let (kind, idx) = r.rsplit_once('-').unwrap_or((r.as_str(), "0"));
            (kind != "namenode", kind.to_string(), idx.parse::<u32>().unwrap_or(u32::MAX))
        });
        Ok(roles.into_iter().map(|r| Daemon::new(dir, &r)).collect())
    }

    fn kind(&self) -> &str {
        self.role.rsplit_once('-').map(|(k, _)| k).unwrap_or(&self.role)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("conf").join(format!("{}.toml", self.role))
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("logs").join(format!("{}.log", self.role))
    }
    fn pid_path(&self) -> PathBuf {
        self.dir.join("pids").join(format!("{}.pid", self.role))
    }
    fn addr_path(&self) -> PathBuf {
        self.dir.join("run").join(format!("{}.addr", self.role))
    }

    /// The pid of the running daemon, if it runs.
    pub fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pid_path()).ok()?.trim().parse().ok()?;
        is_tusk_alive(pid).then_some(pid)
    }

    /// The address the daemon bound, if it wrote one.
    pub fn addr(&self) -> Option<String> {
        let a = std::fs::read_to_string(self.addr_path()).ok()?;
        let a = a.trim();
        (!a.is_empty()).then(|| a.to_string())
    }

    pub fn clear_addr(&self) {
        let _ = std::fs::remove_file(self.addr_path());
    }

    fn log_file(&self) -> anyhow::Result<std::fs::File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("{}: cannot open log", self.log_path().display()))
    }

    fn command(&self) -> anyhow::Result<Command> {
        let exe = std::env::current_exe().context("cannot find the tusk executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg(self.kind()).arg("--config").arg(self.config_path());
        let log = self.log_file()?;
        let log2 = log.try_clone().context("cannot duplicate the log handle")?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        Ok(cmd)
    }

    /// Runs `tusk namenode --format` for this daemon's config.
    pub fn format(&self) -> anyhow::Result<()> {
        let status = self.command()?.arg("--format").status().context("cannot run tusk namenode --format")?;
        if !status.success() {
            bail!("formatting {} failed:\n{}", self.role, self.log_tail(20));
        }
        Ok(())
    }

    /// Starts the daemon as a process of its own group (so a terminal's
    /// Ctrl-C does not reach it) and records its pid.
    pub fn spawn(&self) -> anyhow::Result<Child> {
        use std::os::unix::process::CommandExt;
        self.clear_addr();
        let child = self
            .command()?
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}", self.role))?;
        write_atomic(&self.pid_path(), format!("{}\n", child.id()).as_bytes())?;
        Ok(child)
    }

    /// Waits until the daemon has written its bound address.
    pub async fn wait_for_addr(&self, mut child: Option<&mut Child>, timeout: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(a) = self.addr() {
                return Ok(a);
            }
            if let Some(c) = child.as_deref_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                bail!("{} exited ({status}) before serving:\n{}", self.role, self.log_tail(30));
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{} did not start within {:?}:\n{}", self.role, timeout, self.log_tail(30));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Writes the bound address back into the config under `key`, so a
    /// restart binds the same port.
    pub fn pin_addr(&self, key: &str, addr: &str) -> anyhow::Result<()> {
        self.set_config(key, addr)
    }

    pub fn set_namenode(&self, addr: &str) -> anyhow::Result<()> {
        self.set_config("namenode_addr", addr)
    }

    /// Sets one string setting in the daemon's config file.
    pub fn set_config(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let mut table: toml::Table = text.parse().with_context(|| format!("{}: invalid TOML", path.display()))?;
        table.insert(key.to_string(), toml::Value::String(value.to_string()));
        write_atomic(&path, table.to_string().as_bytes())
    }

    /// SIGTERM, wait, SIGKILL if needed. Returns whether it was running.
    pub async fn stop(&self, children: &mut Vec<Child>) -> anyhow::Result<bool> {
        let Some(pid) = self.pid() else {
            let _ = std::fs::remove_file(self.pid_path());
            return Ok(false);
        };
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        while alive_reaping(pid, children) {
            if tokio::time::Instant::now() >= deadline {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(self.pid_path());
        Ok(true)
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path(), lines)
    }
}

/// The last `lines` lines of a file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Reaps our own exited children, then reports whether `pid` still runs.
fn alive_reaping(pid: i32, children: &mut Vec<Child>) -> bool {
    children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    is_tusk_alive(pid)
}

/// True if `pid` is a live (not zombie) process running a `tusk` binary.
/// Checking the command line guards against a reused pid.
fn is_tusk_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z") | Some("X") | None) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("tusk"))
        .unwrap_or(false)
}

/// Serializes `value` as TOML into `path` atomically.
pub fn write_toml<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = toml::to_string(value).with_context(|| format!("{}: cannot serialize config", path.display()))?;
    write_atomic(path, text.as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}
