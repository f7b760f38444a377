//! The SQL engine: a query cut by the client (`tusk-sql`) into stages
//! ([`SqlJobSpec`]); each stage becomes a scheduler stage with one task per
//! plan partition. Shuffle stages leave their output on the workers (the
//! map-output layout, served by `FetchMapOutput`); the last stage writes one
//! Arrow file per task under `<result_dir>/_temporary/<attempt>/`, which the
//! task commit renames to `<result_dir>/part-NNNNN.arrow`. The plans are
//! opaque here: the jobtracker never links DataFusion.

use futures::future::BoxFuture;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tusk_client::sqljob::{
    DIRECT_RESULT_MAX_BYTES, SQL_ENGINE, SqlJobSpec, SqlOutput, SqlTaskSpec, attempt_data_dir, result_part_name,
    task_data_dir,
};
use tusk_client::{Client, ErrorKind};

use super::{Attached, Engine, EngineDefaults, JobUser, LaunchPlan};
use crate::dfs::{Dfs, dfs_error};
use crate::error::{JobtrackerError, Refusal, Result};
use crate::sched::{JobDraft, Launch, Prefs, StageDraft};

/// Where attempts of the result stage write, under the result directory.
const TEMPORARY: &str = "_temporary";

/// A job the engine knows (its spec is the job's persisted `doc`).
struct SqlJob {
    user: String,
    spec: SqlJobSpec,
}

impl JobUser for SqlJob {
    fn user(&self) -> &str {
        &self.user
    }
}

pub(crate) struct SqlEngine {
    dfs: Arc<Dfs>,
    defaults: EngineDefaults,
    /// `host:port` tasks use to reach the jobtracker (TaskUmbilical).
    jobtracker_addr: String,
    jobs: Attached<SqlJob>,
}

/// Letter of stage `si` in task ids: `task_<job>_s<si>_<index>`.
fn stage_letter(si: usize) -> String {
    format!("s{si}")
}

/// (stage, task index) of a task id made with [`stage_letter`].
fn task_position(task_id: &str) -> Option<(usize, u32)> {
    let mut parts = task_id.rsplit('_');
    let index = parts.next()?.parse().ok()?;
    let stage = parts.next()?.strip_prefix('s')?.parse().ok()?;
    Some((stage, index))
}

fn temporary(result_dir: &str) -> String {
    tusk_common::path::join(result_dir, TEMPORARY)
}

/// Whether the job's last stage hands its results back in its reports.
fn direct(spec: &SqlJobSpec) -> bool {
    spec.direct_results && spec.write.is_none()
}

fn attempt_dir(result_dir: &str, attempt_id: &str) -> String {
    tusk_common::path::join(&temporary(result_dir), attempt_id)
}

/// Checks a query's stages; the message names the stage and what is wrong.
fn validate(spec: &SqlJobSpec) -> std::result::Result<(), String> {
    let n = spec.stages.len();
    if n == 0 {
        return Err("a SQL job needs at least one stage".into());
    }
    let mut read = BTreeSet::new();
    for (si, s) in spec.stages.iter().enumerate() {
        let name = if s.name.is_empty() { format!("stage {si}") } else { format!("stage {si} ({})", s.name) };
        if s.plan.trim().is_empty() {
            return Err(format!("{name}: empty plan"));
        }
        if s.task_hosts.is_empty() {
            return Err(format!("{name}: no tasks (task_hosts is empty)"));
        }
        let mut seen = BTreeSet::new();
        for &u in &s.upstreams {
            if u >= si {
                return Err(format!("{name}: reads stage {u}, which does not come before it"));
            }
            if !seen.insert(u) {
                return Err(format!("{name}: reads stage {u} twice"));
            }
            read.insert(u);
        }
        match (&s.output, si + 1 == n) {
            (SqlOutput::Result, true) => {}
            (SqlOutput::Shuffle { partitions: 0 }, false) => {
                return Err(format!("{name}: a shuffle needs at least one partition"));
            }
            (SqlOutput::Shuffle { .. }, false) => {}
            (SqlOutput::Result, false) => return Err(format!("{name}: only the last stage may write the result")),
            (SqlOutput::Shuffle { .. }, true) => return Err(format!("{name}: the last stage must write the result")),
        }
    }
    if let Some(unread) = (0..n - 1).find(|si| !read.contains(si)) {
        return Err(format!("stage {unread}: its shuffle output is read by no stage"));
    }
    Ok(())
}

impl SqlEngine {
    pub(crate) fn new(dfs: Arc<Dfs>, defaults: EngineDefaults, jobtracker_addr: String) -> SqlEngine {
        SqlEngine { dfs, defaults, jobtracker_addr, jobs: Attached::new("sql") }
    }

    async fn client_for(&self, job_id: &str) -> Result<(Client, Arc<SqlJob>)> {
        self.jobs.with_client(&self.dfs, job_id).await
    }

    /// Parses, checks and completes a submitted spec (result directory
    /// normalized, the jobtracker's namenode when none is given).
    fn parse(&self, spec_json: &str) -> Result<SqlJobSpec> {
        let mut spec: SqlJobSpec = serde_json::from_str(spec_json)
            .map_err(|e| JobtrackerError::invalid(format!("job definition is not valid JSON for a SQL job: {e}")))?;
        validate(&spec).map_err(|m| JobtrackerError::invalid(format!("invalid SQL job: {m}")))?;
        let dir = spec.result_dir.trim();
        spec.result_dir = match tusk_common::path::normalize(dir) {
            Ok(d) if d != "/" => d,
            Ok(_) => return Err(JobtrackerError::invalid("invalid SQL job: result_dir cannot be /")),
            Err(e) => return Err(JobtrackerError::invalid(format!("invalid SQL job: result_dir {dir:?}: {e}"))),
        };
        if spec.namenode.trim().is_empty() {
            spec.namenode = self.dfs.namenode().to_string();
        }
        Ok(spec)
    }

    fn draft(&self, spec: SqlJobSpec) -> Result<JobDraft> {
        let max_attempts = if spec.max_attempts > 0 { spec.max_attempts } else { self.defaults.max_attempts };
        let stages = spec
            .stages
            .iter()
            .enumerate()
            .map(|(si, s)| {
                let result = s.output == SqlOutput::Result;
                StageDraft {
                    name: if s.name.is_empty() { format!("stage-{si}") } else { s.name.clone() },
                    letter: stage_letter(si),
                    counter_suffix: format!("STAGE{si}_TASKS"),
                    tasks: s.task_hosts.iter().map(|h| Prefs { hosts: h.clone(), racks: Vec::new() }).collect(),
                    max_attempts,
                    speculative: false,
                    upstreams: s.upstreams.clone(),
                    slowstart: 1.0,
                    commits_output: result,
                    outputs_on_workers: !result,
                }
            })
            .collect();
        let name = if spec.name.trim().is_empty() { "sql query".to_string() } else { spec.name.clone() };
        let output = spec.result_dir.clone();
        let doc =
            serde_json::to_value(&spec).map_err(|e| JobtrackerError::Internal(format!("encoding the job: {e}")))?;
        Ok(JobDraft { name, output, doc, stages })
    }
}

/// Deletes `path` (recursively); a missing path is fine.
/// Renames a writing attempt's data directory to its task's. Idempotent:
/// with the attempt's directory gone and the task's there, it is done; a
/// task directory left by an earlier, interrupted commit of another
/// attempt is replaced.
async fn commit_data(client: &Client, src: &str, dst: &str) -> Result<()> {
    match client.try_stat(src).await {
        Ok(None) => {
            return match client.try_stat(dst).await {
                Ok(Some(_)) => Ok(()),
                // The attempt wrote no rows, so no data directory.
                Ok(None) => Ok(()),
                Err(e) => Err(dfs_error(e)),
            };
        }
        Ok(Some(_)) => {}
        Err(e) => return Err(dfs_error(e)),
    }
    delete_if_there(client, dst).await?;
    client.rename(src, dst, false).await.map_err(dfs_error)
}

async fn delete_if_there(client: &Client, path: &str) -> Result<()> {
    match client.delete(path, true).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == Some(ErrorKind::NotFound) => Ok(()),
        Err(e) => Err(dfs_error(e)),
    }
}

impl Engine for SqlEngine {
    fn name(&self) -> &'static str {
        SQL_ENGINE
    }

    fn plan<'a>(&'a self, _user: &'a str, spec_json: &'a str) -> BoxFuture<'a, Result<JobDraft>> {
        Box::pin(async move { self.draft(self.parse(spec_json)?) })
    }

    fn attach(&self, job_id: &str, user: &str, doc: &serde_json::Value) -> Result<()> {
        let spec: SqlJobSpec = serde_json::from_value(doc.clone())
            .map_err(|e| JobtrackerError::Internal(format!("{job_id}: stored SQL job unreadable: {e}")))?;
        let job = SqlJob { user: user.to_string(), spec };
        self.jobs.insert(job_id, job);
        Ok(())
    }

    fn detach(&self, job_id: &str) {
        self.jobs.remove(job_id);
    }

    fn launch(&self, l: &Launch) -> Result<LaunchPlan> {
        let job = self.jobs.get(&l.job_id)?;
        let stage = job
            .spec
            .stages
            .get(l.stage)
            .ok_or_else(|| JobtrackerError::Internal(format!("{}: no stage {}", l.job_id, l.stage)))?;
        let spec = SqlTaskSpec {
            job_id: l.job_id.clone(),
            task_id: l.task_id.clone(),
            attempt_id: l.attempt_id.clone(),
            user: job.user.clone(),
            stage: l.stage,
            task_index: l.task_index,
            plan: stage.plan.clone(),
            upstreams: stage.upstreams.clone(),
            output: stage.output.clone(),
            result_dir: job.spec.result_dir.clone(),
            namenode: job.spec.namenode.clone(),
            jobtracker: self.jobtracker_addr.clone(),
            write: if stage.output == SqlOutput::Result { job.spec.write.clone() } else { None },
            direct_result_max_bytes: if stage.output == SqlOutput::Result && direct(&job.spec) {
                // The stage's tasks share the budget: the job report carries
                // all of their results.
                (DIRECT_RESULT_MAX_BYTES / stage.task_hosts.len().max(1)) as u64
            } else {
                0
            },
        };
        let spec_json = serde_json::to_string(&spec)
            .map_err(|e| JobtrackerError::Internal(format!("{}: encoding: {e}", l.attempt_id)))?;
        Ok(LaunchPlan {
            engine: SQL_ENGINE.to_string(),
            spec_json,
            memory_bytes: self.defaults.task_memory_mb.saturating_mul(1 << 20),
            progress_timeout_ms: self.defaults.task_timeout_ms,
            env: HashMap::new(),
        })
    }

    /// Renames the attempt's result part into the result directory
    /// (replacing what an earlier, interrupted commit of the task left).
    /// Idempotent: with the part already in place and the attempt's file
    /// gone, the commit is done. Shuffle stages have nothing to commit.
    fn commit_task<'a>(&'a self, job_id: &'a str, task_id: &'a str, attempt_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some((stage, index)) = task_position(task_id) else {
                return Err(JobtrackerError::Internal(format!("{task_id}: not a task id of the sql engine")));
            };
            // Shuffle output stays on the workers; a direct result is in the
            // attempt's report, or in its file, which the client reads there.
            let job = self.jobs.get(job_id)?;
            if direct(&job.spec) || job.spec.stages.get(stage).is_none_or(|s| s.output != SqlOutput::Result) {
                return Ok(());
            }
            let (client, job) = self.client_for(job_id).await?;
            let dir = &job.spec.result_dir;
            if job.spec.write.is_some() {
                commit_data(&client, &attempt_data_dir(dir, attempt_id), &task_data_dir(dir, index)).await?;
            }
            let part = result_part_name(index);
            let src = tusk_common::path::join(&attempt_dir(dir, attempt_id), &part);
            let dst = tusk_common::path::join(dir, &part);
            match client.rename(&src, &dst, true).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == Some(ErrorKind::NotFound) => match client.try_stat(&dst).await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(JobtrackerError::refused(
                        Refusal::FailedPrecondition,
                        format!("cannot commit {attempt_id}: its result {src} does not exist"),
                    )),
                    Err(e) => Err(dfs_error(e)),
                },
                Err(e) => Err(dfs_error(e)),
            }
        })
    }

    fn discard_attempt<'a>(&'a self, job_id: &'a str, attempt_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (client, job) = self.client_for(job_id).await?;
            delete_if_there(&client, &attempt_dir(&job.spec.result_dir, attempt_id)).await
        })
    }

    fn commit_job<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if direct(&self.jobs.get(job_id)?.spec) {
                // Nothing was committed: the client deletes the directory.
                return Ok(());
            }
            let (client, job) = self.client_for(job_id).await?;
            delete_if_there(&client, &temporary(&job.spec.result_dir)).await
        })
    }

    fn abort_job<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (client, job) = self.client_for(job_id).await?;
            delete_if_there(&client, &job.spec.result_dir).await
        })
    }
}

#[cfg(test)]
mod tests;
