//! Running a physical plan across the workers: cut it into stages, submit
//! them as one `sql` job, wait, then take the final stage's rows from its
//! tasks' reports (small results, as Spark's driver gets them) or from
//! their files in the DFS (as Hive fetches a query's result from its
//! scratch directory), deleting those.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use tusk_client::sqljob::{SQL_ENGINE, SqlJobSpec, SqlStageSpec, SqlTaskResult, SqlWriteSpec, result_part_name};
use tusk_client::{AttemptState, JobClient, JobState};

use super::codec::encode_plan;
use super::planner::{FileBlocks, PlannedStage, cut, merge_in_client, whole};
use super::reader::ShuffleReaderExec;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::memory::MemorySourceConfig;
use crate::error::{Result, SqlError};
use crate::exec::{Engine, Physical, df_error};
use crate::write::{MAX_DYNAMIC_PARTITIONS, WriteSummary, summaries_of};

/// True when the plan reads table files (worth distributing); plans over
/// literals alone run in the client.
pub(crate) fn reads_files(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if let Some(ds) = (plan.as_ref() as &dyn std::any::Any).downcast_ref::<DataSourceExec>()
        && ds.data_source().downcast_ref::<FileScanConfig>().is_some()
    {
        return true;
    }
    plan.children().into_iter().any(reads_files)
}

/// The bytes `plan`'s scans read, or `None` when one of its files spans
/// several blocks (such a table is read by several tasks, never by one).
pub(crate) fn scan_size(plan: &Arc<dyn ExecutionPlan>) -> Option<u64> {
    let mut total = 0u64;
    if let Some(ds) = (plan.as_ref() as &dyn std::any::Any).downcast_ref::<DataSourceExec>() {
        let conf = ds.data_source().downcast_ref::<FileScanConfig>()?;
        for f in conf.file_groups.iter().flat_map(|g| g.iter()) {
            if f.extensions.get::<FileBlocks>().is_some_and(|b| b.0 > 1) {
                return None;
            }
            total += match &f.range {
                Some(r) => (r.end - r.start) as u64,
                None => f.object_meta.size,
            };
        }
    }
    for c in plan.children() {
        total += scan_size(c)?;
    }
    Some(total)
}

/// How a plan runs as a job.
pub(crate) struct Staged {
    pub stages: Vec<PlannedStage>,
    /// For a query: the merge the client runs over the final stage's task
    /// outputs (see [`merge_in_client`]).
    pub client_merge: Option<Arc<dyn ExecutionPlan>>,
}

/// The stages of `physical`, as EXPLAIN shows them: one stage of one task
/// for a one-task plan. A query (`to_client`) may leave its last merge to
/// the client.
pub(crate) fn stages(physical: &Physical, to_client: bool) -> Result<Staged> {
    if physical.one_task {
        return Ok(Staged { stages: vec![whole(physical.plan.clone())], client_merge: None });
    }
    let mut stages = cut(physical.plan.clone()).map_err(df_error)?;
    let client_merge = if to_client { merge_in_client(&mut stages) } else { None };
    Ok(Staged { stages, client_merge })
}

/// Runs `plan` as a job; returns its rows (in task order, or merged by the
/// client as the plan says).
pub(crate) async fn run(e: &Engine, name: &str, plan: Physical) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = plan.plan.schema();
    let result_dir = format!("/tmp/tusk-sql/{}/{}", e.dfs.user(), uuid::Uuid::new_v4().simple());
    let staged = stages(&plan, true)?;
    let merge = staged.client_merge.clone();
    let outcome = run_job(e, name, staged, &result_dir, None).await;
    // Small results came back in the reports: only a big one (or a
    // failed attempt) may have left files.
    if !matches!(&outcome, Ok(o) if !o.files) {
        let _ = e.dfs.delete(&result_dir, true).await;
    }
    let per_task = outcome?.tasks;
    let Some(merge) = merge else { return Ok((schema, per_task.into_iter().flatten().collect())) };
    let merge = merge
        .transform_up(|node| {
            if (node.as_ref() as &dyn std::any::Any).is::<ShuffleReaderExec>() {
                let rows: Arc<dyn ExecutionPlan> = MemorySourceConfig::try_new_exec(&per_task, node.schema(), None)?;
                return Ok(Transformed::yes(rows));
            }
            Ok(Transformed::no(node))
        })
        .map_err(df_error)?
        .data;
    let batches = datafusion::physical_plan::collect(merge, e.ctx.task_ctx()).await.map_err(df_error)?;
    Ok((schema, batches))
}

/// Runs `plan` (data columns, then the dynamic partition columns) as a job
/// whose last stage's tasks write table files as `write` says, into the
/// hidden directory `staging`. Returns what was written, with the files in
/// `staging`'s partition directories, ready for the metastore's
/// `CommitWrite`. On error the caller deletes `staging`.
pub(crate) async fn run_write(
    e: &Engine,
    name: &str,
    plan: Physical,
    staging: &str,
    write: SqlWriteSpec,
) -> Result<WriteSummary> {
    let parts: Vec<RecordBatch> = run_job(e, name, stages(&plan, false)?, staging, Some(write)).await?.tasks.into_iter().flatten().collect();
    let dfs = &e.dfs;
    let mut summary = WriteSummary::default();
    for batch in &parts {
        for s in summaries_of(batch)? {
            summary.merge(s);
        }
    }
    if summary.partitions.len() > MAX_DYNAMIC_PARTITIONS {
        return Err(SqlError::invalid(format!(
            "the INSERT creates more than {MAX_DYNAMIC_PARTITIONS} partitions (hive.exec.max.dynamic.partitions)"
        )));
    }
    // Each task's files are in `task-NNNNN/`: move them up (file names
    // carry the task index, so they never collide).
    for entry in dfs.list(staging).await? {
        let dir = format!("{}/{}", staging.trim_end_matches('/'), entry.name);
        if entry.is_dir && entry.name.starts_with("task-") {
            Box::pin(move_tree(dfs, &dir, staging)).await?;
            dfs.delete(&dir, true).await?;
        } else if !entry.is_dir && entry.name.starts_with("part-") && entry.name.ends_with(".arrow") {
            dfs.delete(&dir, false).await?;
        }
    }
    Ok(summary)
}

/// Moves every file below `src` to the same relative path below `dst`.
async fn move_tree(dfs: &tusk_client::Client, src: &str, dst: &str) -> Result<()> {
    for entry in dfs.list(src).await? {
        let from = format!("{}/{}", src.trim_end_matches('/'), entry.name);
        let to = format!("{}/{}", dst.trim_end_matches('/'), entry.name);
        if entry.is_dir {
            dfs.mkdirs(&to, None, true).await?;
            Box::pin(move_tree(dfs, &from, &to)).await?;
        } else {
            dfs.rename(&from, &to, false).await?;
        }
    }
    Ok(())
}

/// The last stage's rows, per task in task order.
struct JobRows {
    tasks: Vec<Vec<RecordBatch>>,
    /// Some were read from files in the result directory.
    files: bool,
}

/// Cuts `plan` into stages, runs them as one job with its results (or
/// write summaries) in `result_dir` (a query's small results in its tasks'
/// reports), and returns the last stage's rows in task order.
async fn run_job(
    e: &Engine,
    name: &str,
    staged: Staged,
    result_dir: &str,
    write: Option<SqlWriteSpec>,
) -> Result<JobRows> {
    let (jobs, dfs) = (&e.jobs, &e.dfs);
    let planned = staged.stages;
    let tasks = planned.last().map(|s| s.tasks()).unwrap_or(0);
    let mut stages = Vec::with_capacity(planned.len());
    for (i, s) in planned.into_iter().enumerate() {
        stages.push(SqlStageSpec {
            name: format!("stage-{i}"),
            plan: encode_plan(s.plan.clone()).map_err(df_error)?,
            task_hosts: s.task_hosts,
            upstreams: s.upstreams,
            output: s.output,
        });
    }
    let last_stage = stages.last().map(|s| s.name.clone()).unwrap_or_default();
    let direct_results = write.is_none();
    let spec = SqlJobSpec {
        name: name.to_string(),
        stages,
        result_dir: result_dir.to_string(),
        namenode: e.namenode.clone(),
        max_attempts: 0,
        write,
        direct_results,
    };
    let json = serde_json::to_string(&spec).map_err(|e| SqlError::Execution(format!("encoding the job: {e}")))?;
    if !direct_results {
        dfs.mkdirs(result_dir, None, true).await?;
    }
    let job_id = jobs.submit(SQL_ENGINE, &json).await.map_err(|e| SqlError::Execution(e.to_string()))?;
    let report = wait(jobs, &job_id).await?;
    if report.state != JobState::Succeeded {
        return Err(SqlError::Execution(format!("query {job_id} {}: {}", report.state.as_str().to_lowercase(), report.diagnostics)));
    }
    let mut rows = JobRows { tasks: Vec::with_capacity(tasks), files: !direct_results };
    if direct_results {
        let report = jobs.job(&job_id, true).await.map_err(|e| SqlError::Execution(e.to_string()))?;
        for (t, result) in task_results(&report, &last_stage, tasks)?.into_iter().enumerate() {
            let batches = match result {
                SqlTaskResult::Rows(ipc) => {
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(ipc)
                        .map_err(|e| SqlError::Execution(format!("{job_id}: the rows of task {t} are not base64: {e}")))?;
                    decode(bytes, &format!("{job_id}: the rows of task {t}"))?
                }
                SqlTaskResult::File(path) => {
                    rows.files = true;
                    decode(dfs.read_all(&path).await?, &path)?
                }
            };
            rows.tasks.push(batches);
        }
        return Ok(rows);
    }
    for t in 0..tasks {
        let path = format!("{}/{}", result_dir.trim_end_matches('/'), result_part_name(t as u32));
        rows.tasks.push(decode(dfs.read_all(&path).await?, &path)?);
    }
    Ok(rows)
}

/// The results of the `tasks` tasks of stage `stage`, in task order, from
/// their successful attempts.
fn task_results(report: &tusk_client::JobReport, stage: &str, tasks: usize) -> Result<Vec<SqlTaskResult>> {
    let mut found: Vec<Option<SqlTaskResult>> = (0..tasks).map(|_| None).collect();
    for t in report.tasks.iter().filter(|t| t.stage == stage) {
        let done = t.attempts.iter().find(|a| a.state == AttemptState::Succeeded);
        if let (Some(slot), Some(a)) = (found.get_mut(t.index as usize), done) {
            let r = serde_json::from_str(&a.result_json)
                .map_err(|e| SqlError::Execution(format!("{}: no result in its report ({e})", a.attempt_id)))?;
            *slot = Some(r);
        }
    }
    found
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| SqlError::Execution(format!("{}: task {i} of {stage} left no result", report.job_id))))
        .collect()
}

/// The batches of one Arrow IPC stream (`what` names it in errors).
fn decode(bytes: impl AsRef<[u8]>, what: &str) -> Result<Vec<RecordBatch>> {
    let bytes = bytes.as_ref();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let reader = StreamReader::try_new(bytes, None).map_err(|e| SqlError::Execution(format!("{what}: {e}")))?;
    reader.map(|b| b.map_err(|e| SqlError::Execution(format!("{what}: {e}")))).collect()
}

/// Waits for the job to be over: the jobtracker answers as soon as it is
/// (each call waits at most 10 s, then asks again).
async fn wait(jobs: &JobClient, job_id: &str) -> Result<tusk_client::JobReport> {
    loop {
        let r = jobs.wait_finished(job_id, Duration::from_secs(10)).await.map_err(|e| SqlError::Execution(e.to_string()))?;
        if r.state.is_finished() {
            return Ok(r);
        }
    }
}
