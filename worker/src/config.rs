//! Worker configuration (defaults < TOML file < `TUSK_WORKER_*` env < flags).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::error::WorkerError;

/// Everything a worker needs to know to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// Address the WorkerService (task launches, kills, shuffle, task logs)
    /// binds (host:port; port 0 picks a free port).
    pub rpc_addr: String,
    /// File to which the advertised WorkerService address (`host:port`) is
    /// written once the server listens (through a temporary file and a rename).
    pub addr_file: Option<PathBuf>,
    /// Address (host:port) of the jobtracker's RPC server.
    pub jobtracker_addr: String,
    /// Local directories for attempts (working directories, map output,
    /// spills, logs), typically one per disk; attempts go round robin.
    pub local_dirs: Vec<PathBuf>,
    /// Host this worker runs on: announced to the jobtracker (locality when
    /// no datanode is named) and used in the advertised address when
    /// `rpc_addr` binds every interface.
    pub host: String,
    /// Transfer address (host:port) of the datanode beside this worker, so
    /// the scheduler can run maps next to their blocks; empty when none.
    pub datanode: String,
    /// Concurrent task attempts; 0 derives it: min(cores, physical memory /
    /// `task_memory_mb`), at least 1.
    pub slots: u32,
    /// Memory of one task attempt in MiB: the limit enforced when a launch
    /// names none, and the unit of slot derivation.
    pub task_memory_mb: u64,
    /// Program run for each attempt as `<task_executable> task --spec ...`;
    /// unset: the running executable (the `tusk` binary).
    pub task_executable: Option<PathBuf>,
    /// Task runtime: "process" (each attempt a child process in its own
    /// process group); container runtimes come later.
    pub runtime: String,
    /// Processes of the task program kept started ahead of attempts
    /// (`<task_executable> task --warm`), each waiting to become one
    /// attempt's process: an attempt starts without the few milliseconds of
    /// a process start. Unset: one per slot; 0: none.
    pub warm_tasks: Option<u32>,
    /// Attempts one warm process serves, one after another, as Hadoop's
    /// JVM reuse (`mapreduce.job.jvm.numtasks`) or Tez's container reuse: a
    /// process that ran an attempt keeps its heap, and the next attempt
    /// skips the page faults of a new one. Only a process whose attempt
    /// succeeded and left nothing running is reused. 1: none.
    pub warm_task_attempts: u32,
    /// Task processes back their heaps with transparent huge pages (glibc's
    /// `glibc.malloc.hugetlb=1` tunable, added to `GLIBC_TUNABLES`). Every
    /// page of a new process's heap costs a page fault when first touched;
    /// with 2 MiB pages there are far fewer. Measured over TPC-H SF1 with
    /// every attempt in a new process: half the page faults, about 8% less
    /// CPU. With warm processes reused (`warm_task_attempts`) the heap is
    /// mostly warm already and the gain was within noise, while huge pages
    /// can raise a task's resident memory: off by default. Only where the
    /// kernel's transparent huge pages are `madvise` or `always`.
    pub task_huge_pages: bool,
    /// How long the logs (stdout, stderr) of a finished job's attempts are
    /// kept after the job's local files are cleaned up, in milliseconds
    /// (Hadoop's `yarn.nodemanager.log.retain-seconds`, 3 h). 0: deleted
    /// with the job.
    pub log_retain_ms: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            rpc_addr: "127.0.0.1:0".to_string(),
            addr_file: None,
            jobtracker_addr: "127.0.0.1:8021".to_string(),
            local_dirs: vec![PathBuf::from("./tusk-data/worker")],
            host: "127.0.0.1".to_string(),
            datanode: String::new(),
            slots: 0,
            task_memory_mb: 1024,
            task_executable: None,
            runtime: "process".to_string(),
            warm_tasks: None,
            warm_task_attempts: 100,
            task_huge_pages: false,
            log_retain_ms: 3 * 3600 * 1000,
        }
    }
}

/// Task runtimes this build knows.
pub(crate) const RUNTIMES: [&str; 1] = ["process"];

impl WorkerConfig {
    /// Checks the values that cannot be right, naming the field.
    pub fn validate(&self) -> Result<(), WorkerError> {
        let bad = |m: String| Err(WorkerError::Config(m));
        if !looks_like_host_port(&self.rpc_addr) {
            return bad(format!("rpc_addr: '{}' is not host:port", self.rpc_addr));
        }
        if !looks_like_host_port(&self.jobtracker_addr) {
            return bad(format!("jobtracker_addr: '{}' is not host:port", self.jobtracker_addr));
        }
        if !self.datanode.is_empty() && !looks_like_host_port(&self.datanode) {
            return bad(format!("datanode: '{}' is not host:port", self.datanode));
        }
        if self.local_dirs.is_empty() {
            return bad("local_dirs: at least one local directory is needed".into());
        }
        for (i, d) in self.local_dirs.iter().enumerate() {
            if d.as_os_str().is_empty() {
                return bad(format!("local_dirs[{i}]: empty path"));
            }
            if self.local_dirs[..i].contains(d) {
                return bad(format!("local_dirs: {} is listed twice", d.display()));
            }
        }
        if self.host.is_empty() || self.host.contains(char::is_whitespace) || self.host.contains('/') {
            return bad(format!("host: '{}' is not a host name or IP", self.host));
        }
        if self.task_memory_mb == 0 {
            return bad("task_memory_mb: must be at least 1".into());
        }
        if self.warm_task_attempts == 0 {
            return bad("warm_task_attempts: must be at least 1".into());
        }
        if let Some(p) = &self.task_executable
            && p.as_os_str().is_empty()
        {
            return bad("task_executable: empty path".into());
        }
        if !RUNTIMES.contains(&self.runtime.as_str()) {
            return bad(format!("runtime: '{}' is not one of {}", self.runtime, RUNTIMES.join(", ")));
        }
        Ok(())
    }

    /// Environment every task process starts with, on top of the worker's.
    pub(crate) fn task_base_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if self.task_huge_pages {
            let tunables = with_malloc_huge_pages(std::env::var("GLIBC_TUNABLES").ok().as_deref());
            env.push(("GLIBC_TUNABLES".to_string(), tunables));
        }
        env
    }

    /// Memory of one attempt in bytes.
    pub(crate) fn task_memory_bytes(&self) -> u64 {
        self.task_memory_mb.saturating_mul(1 << 20)
    }
}

/// `GLIBC_TUNABLES` with `glibc.malloc.hugetlb=1` added, unless it
/// already sets that tunable.
fn with_malloc_huge_pages(tunables: Option<&str>) -> String {
    const HUGE: &str = "glibc.malloc.hugetlb";
    match tunables.map(str::trim).filter(|t| !t.is_empty()) {
        None => format!("{HUGE}=1"),
        Some(t) if t.split(':').any(|kv| kv.split('=').next() == Some(HUGE)) => t.to_string(),
        Some(t) => format!("{t}:{HUGE}=1"),
    }
}

fn looks_like_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// Slots from the machine's size: min(cores, memory / per-task memory), at
/// least 1.
pub(crate) fn derive_slots(cores: usize, memory_bytes: u64, task_memory_bytes: u64) -> u32 {
    let by_memory = memory_bytes / task_memory_bytes.max(1);
    let slots = (cores as u64).min(by_memory).max(1);
    u32::try_from(slots).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_is_valid() {
        let text = include_str!("../worker.example.toml");
        let c: WorkerConfig = tusk_common::config::parse_toml(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.rpc_addr, "0.0.0.0:8042");
        assert_eq!(c.addr_file, Some(PathBuf::from("/run/tusk/worker.addr")));
        assert_eq!(c.jobtracker_addr, "jt.example.com:8021");
        assert_eq!(c.local_dirs, vec![PathBuf::from("/var/lib/tusk/worker1"), PathBuf::from("/var/lib/tusk/worker2")]);
        assert_eq!(c.host, "10.0.0.12");
        assert_eq!(c.datanode, "10.0.0.12:9866");
        assert_eq!(c.slots, 0);
        assert_eq!(c.task_memory_mb, 2048);
        assert_eq!(c.task_executable, None);
        assert_eq!(c.runtime, "process");
        assert_eq!(c.log_retain_ms, 10_800_000);
    }

    #[test]
    fn defaults_survive_an_empty_file() {
        let c: WorkerConfig = tusk_common::config::parse_toml("").unwrap();
        assert_eq!(c, WorkerConfig::default());
        c.validate().unwrap();
        assert_eq!(c.rpc_addr, "127.0.0.1:0");
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.task_memory_bytes(), 1 << 30);
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (WorkerConfig { rpc_addr: "nowhere".into(), ..Default::default() }, "rpc_addr"),
            (WorkerConfig { jobtracker_addr: "jt".into(), ..Default::default() }, "jobtracker_addr"),
            (WorkerConfig { datanode: "dn:x".into(), ..Default::default() }, "datanode"),
            (WorkerConfig { local_dirs: vec![], ..Default::default() }, "local_dirs"),
            (WorkerConfig { local_dirs: vec!["/a".into(), "/a".into()], ..Default::default() }, "listed twice"),
            (WorkerConfig { host: "".into(), ..Default::default() }, "host"),
            (WorkerConfig { task_memory_mb: 0, ..Default::default() }, "task_memory_mb"),
            (WorkerConfig { warm_task_attempts: 0, ..Default::default() }, "warm_task_attempts"),
            (WorkerConfig { runtime: "docker".into(), ..Default::default() }, "runtime: 'docker'"),
            (WorkerConfig { task_executable: Some("".into()), ..Default::default() }, "task_executable"),
        ];
        for (c, needle) in cases {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e} should name {needle}");
        }
        WorkerConfig { datanode: "127.0.0.1:9866".into(), ..Default::default() }.validate().unwrap();
    }

    #[test]
    fn huge_pages_join_the_tunables_already_set() {
        assert_eq!(with_malloc_huge_pages(None), "glibc.malloc.hugetlb=1");
        assert_eq!(with_malloc_huge_pages(Some(" ")), "glibc.malloc.hugetlb=1");
        assert_eq!(
            with_malloc_huge_pages(Some("glibc.malloc.arena_max=2")),
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
        );
        assert_eq!(with_malloc_huge_pages(Some("glibc.malloc.hugetlb=0")), "glibc.malloc.hugetlb=0");
        assert!(WorkerConfig::default().task_base_env().is_empty());
        let on = WorkerConfig { task_huge_pages: true, ..Default::default() };
        assert!(on.task_base_env().iter().any(|(k, v)| k == "GLIBC_TUNABLES" && v.contains("hugetlb")));
    }

    #[test]
    fn slots_follow_cores_and_memory() {
        const GIB: u64 = 1 << 30;
        assert_eq!(derive_slots(8, 4 * GIB, GIB), 4);
        assert_eq!(derive_slots(2, 24 * GIB, GIB), 2);
        assert_eq!(derive_slots(4, GIB / 2, GIB), 1);
        assert_eq!(derive_slots(0, 0, 0), 1);
    }
}
