//! The MapReduce engine: a job is a map stage (one task per split, located
//! where the split's block is) and, unless map-only, a reduce stage (one
//! task per partition) that reads every map's output from the workers.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use tusk_client::Client;
use tusk_mapreduce::{JobSpec, Split, TaskError, TaskKind, TaskSpec, commit, plan};

use super::{Attached, Engine, EngineDefaults, JobUser, LaunchPlan};
use crate::dfs::{Dfs, dfs_error};
use crate::error::{JobtrackerError, Refusal, Result};
use crate::sched::{JobDraft, Launch, Prefs, StageDraft};

/// Engine name in `SubmitJobRequest.engine`.
pub(crate) const ENGINE: &str = "mapreduce";

const MAP_MAX_ATTEMPTS: &str = "mapreduce.map.maxattempts";
const REDUCE_MAX_ATTEMPTS: &str = "mapreduce.reduce.maxattempts";
const MAP_SPECULATIVE: &str = "mapreduce.map.speculative";
const REDUCE_SPECULATIVE: &str = "mapreduce.reduce.speculative";
const SLOWSTART: &str = "mapreduce.job.reduce.slowstart.completedmaps";
const TASK_TIMEOUT: &str = "mapreduce.task.timeout";
const MAP_MEMORY: &str = "mapreduce.map.memory.mb";
const REDUCE_MEMORY: &str = "mapreduce.reduce.memory.mb";

/// What the jobtracker keeps of a MapReduce job (persisted with it).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MrDoc {
    spec: JobSpec,
    splits: Vec<Split>,
}

/// A job's settings from its configuration (index 0: maps, 1: reduces).
struct Settings {
    max_attempts: [u32; 2],
    speculative: [bool; 2],
    slowstart: f64,
    timeout_ms: u64,
    memory_mb: [u64; 2],
}

/// A job the engine knows, parsed once.
struct MrJob {
    user: String,
    doc: MrDoc,
    memory_mb: [u64; 2],
    timeout_ms: u64,
}

impl JobUser for MrJob {
    fn user(&self) -> &str {
        &self.user
    }
}

pub(crate) struct MapReduceEngine {
    dfs: Arc<Dfs>,
    defaults: EngineDefaults,
    /// `host:port` tasks use to reach the jobtracker (TaskUmbilical).
    jobtracker_addr: String,
    jobs: Attached<MrJob>,
}

/// A refused job: the engine's message verbatim. Missing input is NOT_FOUND,
/// an existing output FAILED_PRECONDITION, any other bad definition
/// INVALID_ARGUMENT; DFS errors keep their own kind.
fn refusal(e: TaskError) -> JobtrackerError {
    match e {
        TaskError::Invalid(m) => {
            let reason = if m.starts_with("input path does not exist") || m.contains("matches no files") {
                Refusal::NotFound
            } else if m.starts_with("output directory") && m.ends_with("already exists") {
                Refusal::FailedPrecondition
            } else {
                Refusal::InvalidArgument
            };
            JobtrackerError::refused(reason, m)
        }
        TaskError::Dfs(c) => dfs_error(c),
        other => JobtrackerError::refused(Refusal::FailedPrecondition, other.to_string()),
    }
}

/// A conf value parsed, `default` when absent; a bad value names the key.
fn conf<T: FromStr>(spec: &JobSpec, key: &str, default: T) -> Result<T> {
    match spec.conf.get(key).map(|v| v.trim()) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| JobtrackerError::invalid(format!("{key}={v}: not a valid value"))),
    }
}

impl MapReduceEngine {
    pub(crate) fn new(dfs: Arc<Dfs>, defaults: EngineDefaults, jobtracker_addr: String) -> MapReduceEngine {
        MapReduceEngine { dfs, defaults, jobtracker_addr, jobs: Attached::new("mapreduce") }
    }

    async fn client_for(&self, job_id: &str) -> Result<(Client, Arc<MrJob>)> {
        self.jobs.with_client(&self.dfs, job_id).await
    }

    fn settings(&self, spec: &JobSpec) -> Result<Settings> {
        let d = &self.defaults;
        let attempts =
            [conf(spec, MAP_MAX_ATTEMPTS, d.max_attempts)?, conf(spec, REDUCE_MAX_ATTEMPTS, d.max_attempts)?];
        if attempts.contains(&0) {
            return Err(JobtrackerError::invalid(format!(
                "{MAP_MAX_ATTEMPTS} / {REDUCE_MAX_ATTEMPTS}: must be at least 1"
            )));
        }
        let speculative = [conf(spec, MAP_SPECULATIVE, d.speculative)?, conf(spec, REDUCE_SPECULATIVE, d.speculative)?];
        let slowstart = conf(spec, SLOWSTART, d.reduce_slowstart)?;
        if !(0.0..=1.0).contains(&slowstart) {
            return Err(JobtrackerError::invalid(format!("{SLOWSTART}={slowstart}: must be between 0 and 1")));
        }
        let timeout = conf(spec, TASK_TIMEOUT, d.task_timeout_ms)?;
        let memory = [conf(spec, MAP_MEMORY, d.task_memory_mb)?, conf(spec, REDUCE_MEMORY, d.task_memory_mb)?];
        if memory.contains(&0) {
            return Err(JobtrackerError::invalid(format!("{MAP_MEMORY} / {REDUCE_MEMORY}: must be at least 1")));
        }
        Ok(Settings { max_attempts: attempts, speculative, slowstart, timeout_ms: timeout, memory_mb: memory })
    }

    fn parse_job(&self, user: &str, doc: MrDoc) -> Result<MrJob> {
        let s = self.settings(&doc.spec)?;
        Ok(MrJob { user: user.to_string(), doc, memory_mb: s.memory_mb, timeout_ms: s.timeout_ms })
    }

    fn draft(&self, spec: JobSpec, splits: Vec<Split>) -> Result<JobDraft> {
        let Settings { max_attempts: attempts, speculative, slowstart, .. } = self.settings(&spec)?;
        let map_only = spec.reduces == 0;
        let prefs = splits
            .iter()
            .map(|s| match s {
                Split::File { hosts, racks, .. } => Prefs { hosts: hosts.clone(), racks: racks.clone() },
                Split::Range { .. } => Prefs::default(),
            })
            .collect();
        let mut stages = vec![StageDraft {
            name: "map".into(),
            letter: "m".into(),
            counter_suffix: "MAPS".into(),
            tasks: prefs,
            max_attempts: attempts[0],
            speculative: speculative[0],
            upstreams: vec![],
            slowstart: 0.0,
            commits_output: map_only,
            outputs_on_workers: !map_only,
        }];
        if !map_only {
            stages.push(StageDraft {
                name: "reduce".into(),
                letter: "r".into(),
                counter_suffix: "REDUCES".into(),
                tasks: vec![Prefs::default(); spec.reduces as usize],
                max_attempts: attempts[1],
                speculative: speculative[1],
                upstreams: vec![0],
                slowstart,
                commits_output: true,
                outputs_on_workers: false,
            });
        }
        let name = if spec.name.is_empty() { "mapreduce job".to_string() } else { spec.name.clone() };
        let output = spec.output.clone();
        let doc = serde_json::to_value(MrDoc { spec, splits })
            .map_err(|e| JobtrackerError::Internal(format!("encoding the job: {e}")))?;
        Ok(JobDraft { name, output, doc, stages })
    }
}

impl Engine for MapReduceEngine {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn plan<'a>(&'a self, user: &'a str, spec_json: &'a str) -> BoxFuture<'a, Result<JobDraft>> {
        Box::pin(async move {
            let spec: JobSpec = serde_json::from_str(spec_json).map_err(|e| {
                JobtrackerError::invalid(format!("job definition is not valid JSON for a MapReduce job: {e}"))
            })?;
            spec.validate().map_err(refusal)?;
            self.settings(&spec)?;
            let client = self.dfs.client(user).await?;
            let splits = plan::plan_splits(&client, &spec).await.map_err(refusal)?;
            commit::setup_job(&client, &spec.output).await.map_err(refusal)?;
            self.draft(spec, splits)
        })
    }

    fn attach(&self, job_id: &str, user: &str, doc: &serde_json::Value) -> Result<()> {
        let doc: MrDoc = serde_json::from_value(doc.clone())
            .map_err(|e| JobtrackerError::Internal(format!("{job_id}: stored job definition unreadable: {e}")))?;
        let job = self.parse_job(user, doc)?;
        self.jobs.insert(job_id, job);
        Ok(())
    }

    fn detach(&self, job_id: &str) {
        self.jobs.remove(job_id);
    }

    fn launch(&self, l: &Launch) -> Result<LaunchPlan> {
        let job = self.jobs.get(&l.job_id)?;
        let kind =
            match l.stage {
                0 => {
                    let split =
                        job.doc.splits.get(l.task_index as usize).cloned().ok_or_else(|| {
                            JobtrackerError::Internal(format!("{}: no split {}", l.job_id, l.task_index))
                        })?;
                    TaskKind::Map { index: l.task_index, split }
                }
                _ => TaskKind::Reduce { partition: l.task_index, num_maps: job.doc.splits.len() as u32 },
            };
        let spec = TaskSpec {
            job_id: l.job_id.clone(),
            task_id: l.task_id.clone(),
            attempt_id: l.attempt_id.clone(),
            attempt_number: l.attempt_number,
            kind,
            job: job.doc.spec.clone(),
            namenode: self.dfs.namenode().to_string(),
            jobtracker: self.jobtracker_addr.clone(),
            user: job.user.clone(),
        };
        let spec_json = serde_json::to_string(&spec)
            .map_err(|e| JobtrackerError::Internal(format!("{}: encoding: {e}", l.attempt_id)))?;
        let memory_mb = job.memory_mb[l.stage.min(1)];
        Ok(LaunchPlan {
            engine: ENGINE.to_string(),
            spec_json,
            memory_bytes: memory_mb.saturating_mul(1 << 20),
            progress_timeout_ms: job.timeout_ms,
            env: HashMap::new(),
        })
    }

    fn commit_task<'a>(&'a self, job_id: &'a str, task_id: &'a str, attempt_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (client, job) = self.client_for(job_id).await?;
            commit::commit_task(&client, &job.doc.spec.output, task_id, attempt_id).await.map_err(refusal)
        })
    }

    fn discard_attempt<'a>(&'a self, job_id: &'a str, attempt_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (client, job) = self.client_for(job_id).await?;
            commit::discard_attempt(&client, &job.doc.spec.output, attempt_id).await.map_err(refusal)
        })
    }

    fn commit_job<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (client, job) = self.client_for(job_id).await?;
            commit::commit_job(&client, &job.doc.spec.output).await.map_err(refusal)
        })
    }

    fn abort_job<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (client, job) = self.client_for(job_id).await?;
            commit::abort_job(&client, &job.doc.spec.output).await.map_err(refusal)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tusk_mapreduce::Program;

    fn engine() -> MapReduceEngine {
        let defaults = EngineDefaults::for_tests();
        MapReduceEngine::new(Arc::new(Dfs::new("127.0.0.1:1")), defaults, "10.0.0.1:8021".into())
    }

    fn spec(reduces: u32, conf: &[(&str, &str)]) -> JobSpec {
        JobSpec {
            inputs: vec!["/in".into()],
            output: "/out".into(),
            reduces,
            mapper: Program::Builtin { name: "wordcount".into(), args: vec![] },
            conf: conf.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            ..Default::default()
        }
    }

    fn splits() -> Vec<Split> {
        vec![
            Split::File {
                path: "/in/a".into(),
                start: 0,
                length: 10,
                file_length: 10,
                hosts: vec!["10.0.0.2:9866".into()],
                racks: vec!["/r1".into()],
            },
            Split::Range { first_row: 0, rows: 5 },
        ]
    }

    fn launch(stage: usize, index: u32) -> Launch {
        let task_id = crate::ids::task_id("job_1_0001", if stage == 0 { "m" } else { "r" }, index);
        Launch {
            job_id: "job_1_0001".into(),
            attempt_id: crate::ids::attempt_id(&task_id, 2),
            task_id,
            attempt_number: 2,
            stage,
            stage_name: String::new(),
            task_index: index,
            worker_id: "w".into(),
            worker_addr: "w:1".into(),
        }
    }

    #[test]
    fn a_job_becomes_map_and_reduce_stages() {
        let e = engine();
        let d = e
            .draft(spec(3, &[(REDUCE_MAX_ATTEMPTS, "2"), (MAP_SPECULATIVE, "false"), (SLOWSTART, "0.5")]), splits())
            .unwrap();
        assert_eq!(d.output, "/out");
        assert_eq!(d.stages.len(), 2);
        let (m, r) = (&d.stages[0], &d.stages[1]);
        assert_eq!((m.name.as_str(), m.letter.as_str(), m.counter_suffix.as_str()), ("map", "m", "MAPS"));
        assert_eq!(m.tasks[0], Prefs { hosts: vec!["10.0.0.2:9866".into()], racks: vec!["/r1".into()] });
        assert!(m.tasks[1].is_empty());
        assert_eq!((m.max_attempts, m.speculative, m.commits_output, m.outputs_on_workers), (4, false, false, true));
        assert_eq!(
            (r.tasks.len(), r.max_attempts, r.speculative, r.upstreams.clone(), r.slowstart),
            (3, 2, true, vec![0], 0.5)
        );
        assert!(r.commits_output);
        let map_only = e.draft(spec(0, &[]), splits()).unwrap();
        assert_eq!(map_only.stages.len(), 1);
        assert!(map_only.stages[0].commits_output);
        assert!(!map_only.stages[0].outputs_on_workers);
    }

    #[test]
    fn bad_conf_values_are_refused_by_name() {
        let e = engine();
        for (k, v) in [(MAP_MAX_ATTEMPTS, "x"), (SLOWSTART, "2"), (TASK_TIMEOUT, "-1"), (MAP_MEMORY, "0")] {
            let err = e.draft(spec(1, &[(k, v)]), splits()).unwrap_err();
            assert!(err.to_string().contains(k), "{err}");
            assert!(matches!(err, JobtrackerError::Refused { reason: Refusal::InvalidArgument, .. }));
        }
    }

    #[test]
    fn attempts_get_task_specs() {
        let e = engine();
        let d = e.draft(spec(2, &[(TASK_TIMEOUT, "5000"), (REDUCE_MEMORY, "2048")]), splits()).unwrap();
        e.attach("job_1_0001", "alice", &d.doc).unwrap();
        let p = e.launch(&launch(0, 0)).unwrap();
        assert_eq!((p.engine.as_str(), p.memory_bytes, p.progress_timeout_ms), ("mapreduce", 1024 << 20, 5000));
        let t: TaskSpec = serde_json::from_str(&p.spec_json).unwrap();
        assert_eq!(t.attempt_id, "attempt_1_0001_m_000000_2");
        assert_eq!((t.attempt_number, t.user.as_str(), t.jobtracker.as_str()), (2, "alice", "10.0.0.1:8021"));
        assert_eq!(t.namenode, "127.0.0.1:1");
        assert!(matches!(t.kind, TaskKind::Map { index: 0, split: Split::File { .. } }));
        assert_eq!(t.job.reduces, 2);
        let p = e.launch(&launch(1, 1)).unwrap();
        assert_eq!(p.memory_bytes, 2048 << 20);
        let t: TaskSpec = serde_json::from_str(&p.spec_json).unwrap();
        assert_eq!(t.kind, TaskKind::Reduce { partition: 1, num_maps: 2 });
        assert!(e.launch(&launch(0, 9)).is_err());
        e.detach("job_1_0001");
        assert!(e.launch(&launch(0, 0)).is_err());
    }

    #[test]
    fn refusals_keep_the_message_and_pick_a_code() {
        let r = refusal(TaskError::Invalid("input path does not exist: /x".into()));
        assert!(
            matches!(&r, JobtrackerError::Refused { reason: Refusal::NotFound, message } if message == "input path does not exist: /x")
        );
        let r = refusal(TaskError::Invalid("output directory /out already exists".into()));
        assert!(matches!(r, JobtrackerError::Refused { reason: Refusal::FailedPrecondition, .. }));
        let r = refusal(TaskError::Invalid("no input paths given".into()));
        assert!(matches!(r, JobtrackerError::Refused { reason: Refusal::InvalidArgument, .. }));
    }

    #[tokio::test]
    async fn unparsable_jobs_are_refused_before_any_dfs_call() {
        let e = engine();
        let err = e.plan("alice", "{not json").await.unwrap_err();
        assert!(err.to_string().starts_with("job definition is not valid JSON"), "{err}");
        let err = e.plan("alice", r#"{"inputs":["/in"],"reduces":1}"#).await.unwrap_err();
        assert_eq!(err.to_string(), "no output directory given");
    }
}
