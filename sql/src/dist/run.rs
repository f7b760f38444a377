//! Running a physical plan across the workers: cut it into stages, submit
//! them as one `sql` job, wait, then read the final stage's result files
//! from the DFS (as Hive fetches a query's result from its scratch
//! directory) and delete them.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use tusk_client::sqljob::{SQL_ENGINE, SqlJobSpec, SqlStageSpec, SqlWriteSpec, result_part_name};
use tusk_client::{JobClient, JobState};

use super::codec::encode_plan;
use super::planner::{FileBlocks, PlannedStage, cut, whole};
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

/// The stages of `physical`, as EXPLAIN shows them: one stage of one task
/// for a one-task plan.
pub(crate) fn stages(physical: &Physical) -> Result<Vec<PlannedStage>> {
    if physical.one_task {
        return Ok(vec![whole(physical.plan.clone())]);
    }
    cut(physical.plan.clone()).map_err(df_error)
}

/// Runs `plan` as a job; returns its rows in task order.
pub(crate) async fn run(e: &Engine, name: &str, plan: Physical) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = plan.plan.schema();
    let result_dir = format!("/tmp/tusk-sql/{}/{}", e.dfs.user(), uuid::Uuid::new_v4().simple());
    let outcome = run_job(e, name, plan, &result_dir, None).await;
    let _ = e.dfs.delete(&result_dir, true).await;
    Ok((schema, outcome?))
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
    let parts = run_job(e, name, plan, staging, Some(write)).await?;
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

/// Cuts `plan` into stages, runs them as one job with its results (or
/// write summaries) in `result_dir`, and returns the last stage's rows in
/// task order.
async fn run_job(
    e: &Engine,
    name: &str,
    plan: Physical,
    result_dir: &str,
    write: Option<SqlWriteSpec>,
) -> Result<Vec<RecordBatch>> {
    let (jobs, dfs) = (&e.jobs, &e.dfs);
    let planned = stages(&plan)?;
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
    let spec = SqlJobSpec {
        name: name.to_string(),
        stages,
        result_dir: result_dir.to_string(),
        namenode: e.namenode.clone(),
        max_attempts: 0,
        write,
    };
    let json = serde_json::to_string(&spec).map_err(|e| SqlError::Execution(format!("encoding the job: {e}")))?;
    dfs.mkdirs(result_dir, None, true).await?;
    let job_id = jobs.submit(SQL_ENGINE, &json).await.map_err(|e| SqlError::Execution(e.to_string()))?;
    let report = wait(jobs, &job_id).await?;
    if report.state != JobState::Succeeded {
        return Err(SqlError::Execution(format!("query {job_id} {}: {}", report.state.as_str().to_lowercase(), report.diagnostics)));
    }
    let mut batches = Vec::new();
    for t in 0..tasks {
        let path = format!("{}/{}", result_dir.trim_end_matches('/'), result_part_name(t as u32));
        let bytes = dfs.read_all(&path).await?;
        if bytes.is_empty() {
            continue;
        }
        let reader =
            StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| SqlError::Execution(format!("{path}: {e}")))?;
        for b in reader {
            batches.push(b.map_err(|e| SqlError::Execution(format!("{path}: {e}")))?);
        }
    }
    Ok(batches)
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
