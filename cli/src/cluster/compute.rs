//! The compute side of a local cluster: a jobtracker (`jobtracker-0`) and
//! workers (`worker-<i>`). Worker i sits beside datanode i (modulo the
//! number of datanodes): same loopback host, its `datanode` the datanode's
//! transfer address, its local directory `data/worker-<i>`, and its share
//! of this machine's cores as task slots (at least one).

use anyhow::{Context, bail};
use std::path::Path;
use std::process::Child;
use std::time::Duration;
use tusk_client::JobClient;
use tusk_jobtracker::JobtrackerConfig;
use tusk_worker::WorkerConfig;

use super::process::{self, Daemon};
use super::{ClusterOptions, overrides};

pub const JOBTRACKER: &str = "jobtracker-0";

/// Writes the jobtracker's and the workers' configs of a new cluster in
/// `abs` (an absolute directory). Addresses not known yet (namenode,
/// jobtracker, datanodes) are filled in by [`start`].
pub fn write_configs(abs: &Path, options: &ClusterOptions) -> anyhow::Result<()> {
    let jt = JobtrackerConfig {
        rpc_addr: "127.0.0.1:0".into(),
        addr_file: Some(abs.join("run").join(format!("{JOBTRACKER}.addr"))),
        state_dir: abs.join("data").join("jobtracker"),
        ..JobtrackerConfig::default()
    };
    let jt = overrides::apply(&jt, &options.jt_conf, "jobtracker")?;
    process::write_toml(&abs.join("conf").join(format!("{JOBTRACKER}.toml")), &jt)?;
    let racks = options.racks.filter(|r| *r > 0);
    let workers = options.workers.unwrap_or(options.datanodes);
    // The workers of a local cluster share this machine's cores: running
    // more task processes than cores only thrashes caches.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slots = (cores / workers.max(1)).max(1) as u32;
    for i in 0..workers {
        let role = format!("worker-{i}");
        let host = match racks {
            Some(_) if options.datanodes > 0 => format!("127.0.0.{}", i % options.datanodes + 1),
            _ => "127.0.0.1".to_string(),
        };
        let w = WorkerConfig {
            rpc_addr: format!("{host}:0"),
            addr_file: Some(abs.join("run").join(format!("{role}.addr"))),
            local_dirs: vec![abs.join("data").join(&role)],
            host,
            slots,
            ..WorkerConfig::default()
        };
        // Validated by the worker itself once its jobtracker address is set.
        let w = overrides::apply(&w, &options.worker_conf, "worker")?;
        process::write_toml(&abs.join("conf").join(format!("{role}.toml")), &w)?;
    }
    Ok(())
}

/// Index of a `worker-<i>` role.
fn worker_index(role: &str) -> Option<usize> {
    role.strip_prefix("worker-")?.parse().ok()
}

/// The workers configured in `dir`, by index.
pub fn workers(dir: &Path) -> anyhow::Result<Vec<Daemon>> {
    Ok(Daemon::all(dir)?.into_iter().filter(|d| worker_index(&d.role).is_some()).collect())
}

/// Starts the jobtracker and the workers of the cluster in `dir` (none if
/// it has no jobtracker config: a cluster made before compute existed).
/// On a `fresh` cluster, first writes the addresses they need: the
/// namenode's, the jobtracker's, and each worker's datanode from
/// `datanodes` (transfer addresses by index). Returns the jobtracker's
/// address and the number of workers.
pub async fn start(
    dir: &Path,
    fresh: bool,
    namenode: &str,
    datanodes: &[String],
    children: &mut Vec<Child>,
    timeout: Duration,
) -> anyhow::Result<Option<(String, usize)>> {
    let jt = Daemon::new(dir, JOBTRACKER);
    if !jt.config_path().exists() {
        return Ok(None);
    }
    if fresh {
        jt.set_config("namenode_addr", namenode)?;
    }
    children.push(jt.spawn()?);
    let jt_addr = jt.wait_for_addr(children.last_mut(), timeout).await?;
    jt.pin_addr("rpc_addr", &jt_addr)?;
    let workers = workers(dir)?;
    let first = children.len();
    for w in &workers {
        if fresh {
            w.set_config("jobtracker_addr", &jt_addr)?;
            let i = worker_index(&w.role).unwrap_or(0);
            if !datanodes.is_empty() {
                w.set_config("datanode", &datanodes[i % datanodes.len()])?;
            }
        }
        children.push(w.spawn()?);
    }
    for (i, w) in workers.iter().enumerate() {
        let addr = w.wait_for_addr(children.get_mut(first + i), timeout).await?;
        w.pin_addr("rpc_addr", &addr)?;
    }
    Ok(Some((jt_addr, workers.len())))
}

/// Waits until the jobtracker at `jt_addr` reports every running worker of
/// `dir` live (registered and heartbeating).
pub async fn wait_workers(dir: &Path, jt_addr: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let jobs = JobClient::connect(jt_addr).await?;
    let mut last;
    loop {
        // Workers stopped on purpose (or killed) are not waited for.
        let running: Vec<String> =
            workers(dir)?.iter().filter(|w| w.pid().is_some()).filter_map(|w| w.addr()).collect();
        match jobs.cluster_status().await {
            Ok(s) => {
                let live = running.iter().filter(|a| s.live_workers().any(|w| w.addr == **a)).count();
                if live >= running.len() {
                    return Ok(());
                }
                last = format!("{live} of {} running workers registered", running.len());
            }
            Err(e) => last = e.to_string(),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("workers in {} did not register: {last} (see {})", dir.display(), dir.join("logs").display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The jobtracker address of the cluster in `dir`, if it has one.
pub fn jobtracker_addr(dir: &Path) -> anyhow::Result<Option<String>> {
    let path = Daemon::new(dir, JOBTRACKER).config_path();
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let conf: JobtrackerConfig = tusk_common::config::parse_toml(&text)?;
    Ok(Some(conf.rpc_addr))
}

/// `tusk cluster status`: what the jobtracker sees; false when it does not answer.
pub async fn print_status(jt_addr: &str) -> anyhow::Result<bool> {
    let jobs = JobClient::connect(jt_addr).await?;
    match jobs.cluster_status().await {
        Ok(s) => {
            let slots: u32 = s.live_workers().map(|w| w.slots).sum();
            println!(
                "jobtracker {jt_addr}: {} live worker(s) of {} known, {slots} slot(s), {} running job(s)",
                s.live_workers().count(),
                s.workers.len(),
                s.running_jobs
            );
            Ok(true)
        }
        Err(e) => {
            println!("jobtracker {jt_addr}: not answering ({e})");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_sit_beside_datanodes() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["conf", "run", "data"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let options = ClusterOptions {
            datanodes: 2,
            workers: Some(3),
            racks: Some(2),
            jt_conf: vec!["worker_expiry_ms=5000".into()],
            worker_conf: vec!["slots=2".into()],
            ..ClusterOptions::default()
        };
        write_configs(dir.path(), &options).unwrap();
        let read = |role: &str| std::fs::read_to_string(dir.path().join("conf").join(format!("{role}.toml"))).unwrap();
        let jt: JobtrackerConfig = tusk_common::config::parse_toml(&read(JOBTRACKER)).unwrap();
        assert_eq!(jt.worker_expiry_ms, 5000);
        assert_eq!(jt.state_dir, dir.path().join("data").join("jobtracker"));
        let hosts: Vec<String> = (0..3)
            .map(|i| {
                let w: WorkerConfig = tusk_common::config::parse_toml(&read(&format!("worker-{i}"))).unwrap();
                assert_eq!(w.slots, 2);
                assert_eq!(w.local_dirs, [dir.path().join("data").join(format!("worker-{i}"))]);
                w.host
            })
            .collect();
        assert_eq!(hosts, ["127.0.0.1", "127.0.0.2", "127.0.0.1"]);
        assert_eq!(workers(dir.path()).unwrap().len(), 3);
        assert_eq!(jobtracker_addr(dir.path()).unwrap().as_deref(), Some("127.0.0.1:0"));
        let bad = ClusterOptions { worker_conf: vec!["no_such=1".into()], ..ClusterOptions::default() };
        assert!(write_configs(dir.path(), &bad).unwrap_err().to_string().contains("no_such"));
    }
}
