//! Jobtracker configuration (layered: defaults < TOML < `TUSK_JOBTRACKER_*` < flags).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::error::JobtrackerError;

/// Everything the jobtracker can be told. See `jobtracker.example.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobtrackerConfig {
    /// Address of the gRPC server (clients, workers and task processes);
    /// port 0 picks a free port.
    pub rpc_addr: String,
    /// If set, the bound RPC address is written to this file once serving.
    pub addr_file: Option<PathBuf>,
    /// Host or IP that task processes use to reach the jobtracker (written
    /// into every task definition). Unset: the bound IP, or 127.0.0.1 when
    /// bound to an unspecified address (0.0.0.0).
    pub advertised_host: Option<String>,
    /// Directory holding the jobtracker's state: `jobtracker.json` (first
    /// start time, next job number), `jobs/<job_id>.json`, and the
    /// metastore's catalog `metastore.redb`.
    pub state_dir: PathBuf,
    /// Address (host:port) of the namenode's RPC server.
    pub namenode_addr: String,
    /// DFS directory of the metastore's managed tables (Hive's
    /// `hive.metastore.warehouse.dir`): tables of the `default` database
    /// live in `<warehouse_dir>/<table>`, those of database `d` in
    /// `<warehouse_dir>/d.db/<table>`.
    pub warehouse_dir: String,
    /// How often workers heartbeat (told to them at registration), in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// A worker without a heartbeat for this long is lost: its running
    /// attempts are killed and re-run, and its map outputs still needed are
    /// recomputed (Hadoop's 10 minutes), in milliseconds.
    pub worker_expiry_ms: u64,
    /// Delay scheduling: how long a job waits for a data-local slot before it
    /// accepts a rack-local one, and as long again before it accepts any, in
    /// milliseconds. 0 turns delay scheduling off.
    pub locality_wait_ms: u64,
    /// Failed attempts after which a task (and its job) fails; a job may
    /// override it with `mapreduce.map.maxattempts` / `mapreduce.reduce.maxattempts`.
    pub max_attempts: u32,
    /// Speculative execution of stragglers; a job may turn it off with
    /// `mapreduce.map.speculative` / `mapreduce.reduce.speculative` = false.
    pub speculative: bool,
    /// Fetch-failure reports naming one map attempt after which that map is
    /// declared failed and run again.
    pub max_fetch_failures: u32,
    /// Fraction of a job's maps that must be done before its reducers start
    /// (`mapreduce.job.reduce.slowstart.completedmaps` overrides it per job).
    /// 1.0 (all maps), not Hadoop's 0.05: maps and reducers share one pool
    /// of slots here, and reducers started early only hold slots that a
    /// straggling map's speculative attempt (or a re-run map) needs.
    pub reduce_slowstart: f64,
    /// Finished jobs kept (listed, persisted); older ones are forgotten.
    pub retained_jobs: usize,
    /// Memory limit of one task process, in MiB (sent with every launch;
    /// `mapreduce.map.memory.mb` / `mapreduce.reduce.memory.mb` override it per job).
    pub task_memory_mb: u64,
    /// A task attempt without progress for this long is killed by its worker,
    /// in milliseconds (`mapreduce.task.timeout` overrides it per job; 0: never).
    pub task_timeout_ms: u64,
}

impl Default for JobtrackerConfig {
    fn default() -> Self {
        JobtrackerConfig {
            rpc_addr: "127.0.0.1:0".to_string(),
            addr_file: None,
            advertised_host: None,
            state_dir: PathBuf::from("./tusk-data/jobtracker"),
            namenode_addr: "127.0.0.1:8020".to_string(),
            warehouse_dir: "/user/hive/warehouse".to_string(),
            heartbeat_interval_ms: 1000,
            worker_expiry_ms: 600_000,
            locality_wait_ms: 3000,
            max_attempts: 4,
            speculative: true,
            max_fetch_failures: 3,
            reduce_slowstart: 1.0,
            retained_jobs: 1000,
            task_memory_mb: 1024,
            task_timeout_ms: 600_000,
        }
    }
}

impl JobtrackerConfig {
    /// Checks the values that would make the jobtracker misbehave; the error
    /// names the field.
    pub fn validate(&self) -> Result<(), JobtrackerError> {
        let err = |m: String| Err(JobtrackerError::Config(m));
        if self.rpc_addr.trim().is_empty() {
            return err("rpc_addr: must not be empty".to_string());
        }
        if self.namenode_addr.trim().is_empty() {
            return err("namenode_addr: must not be empty".to_string());
        }
        if let Err(e) = tusk_common::path::normalize(self.warehouse_dir.trim()) {
            return err(format!("warehouse_dir: {e}"));
        }
        if self.state_dir.as_os_str().is_empty() {
            return err("state_dir: must not be empty".to_string());
        }
        if self.advertised_host.as_deref().is_some_and(|h| h.trim().is_empty()) {
            return err("advertised_host: must not be empty when set".to_string());
        }
        for (name, v) in [
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("worker_expiry_ms", self.worker_expiry_ms),
            ("max_attempts", self.max_attempts as u64),
            ("max_fetch_failures", self.max_fetch_failures as u64),
            ("retained_jobs", self.retained_jobs as u64),
            ("task_memory_mb", self.task_memory_mb),
        ] {
            if v == 0 {
                return err(format!("{name} = 0: must be positive"));
            }
        }
        if self.worker_expiry_ms <= self.heartbeat_interval_ms {
            return err(format!(
                "worker_expiry_ms = {}: must be longer than heartbeat_interval_ms ({})",
                self.worker_expiry_ms, self.heartbeat_interval_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.reduce_slowstart) {
            return err(format!("reduce_slowstart = {}: must be in 0..=1", self.reduce_slowstart));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../jobtracker.example.toml");
        let c: JobtrackerConfig = tusk_common::config::parse_toml(text).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/tusk/jobtracker"));
        assert_eq!(c.rpc_addr, "0.0.0.0:8021");
        assert_eq!(c.locality_wait_ms, 3000);
        assert_eq!(c.max_attempts, 4);
        assert!(c.speculative);
        assert_eq!(c.reduce_slowstart, 1.0);
        assert_eq!(c.warehouse_dir, "/user/hive/warehouse");
        c.validate().unwrap();
        JobtrackerConfig::default().validate().unwrap();
    }

    #[test]
    fn every_field_has_a_default() {
        let c: JobtrackerConfig = tusk_common::config::parse_toml("").unwrap();
        assert_eq!(c, JobtrackerConfig::default());
        assert_eq!(c.rpc_addr, "127.0.0.1:0");
        assert_eq!(c.worker_expiry_ms, 600_000);
        assert_eq!(c.retained_jobs, 1000);
        assert_eq!(c.task_timeout_ms, 600_000);
        assert_eq!(c.warehouse_dir, "/user/hive/warehouse");
    }

    #[test]
    fn bad_values_are_named() {
        let c = JobtrackerConfig { max_attempts: 0, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("max_attempts"));
        let c = JobtrackerConfig { reduce_slowstart: 1.5, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("reduce_slowstart"));
        let c = JobtrackerConfig { worker_expiry_ms: 500, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("worker_expiry_ms"));
        let c = JobtrackerConfig { namenode_addr: " ".into(), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("namenode_addr"));
        let c = JobtrackerConfig { warehouse_dir: "user/hive".into(), ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().contains("warehouse_dir"));
    }
}
