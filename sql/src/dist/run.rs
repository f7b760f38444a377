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
use tusk_client::sqljob::{SQL_ENGINE, SqlJobSpec, SqlStageSpec, result_part_name};
use tusk_client::{JobClient, JobState};

use super::codec::encode_plan;
use super::planner::{FileBlocks, PlannedStage, cut};
use crate::error::{Result, SqlError};
use crate::exec::df_error;

/// True when the plan reads table files (worth distributing); plans over
/// literals alone run in the client.
pub(crate) fn reads_files(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if (plan.as_ref() as &dyn std::any::Any).is::<DataSourceExec>() {
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

/// The stages of `plan`, as EXPLAIN shows them.
pub(crate) fn stages(plan: Arc<dyn ExecutionPlan>) -> Result<Vec<PlannedStage>> {
    cut(plan).map_err(df_error)
}

/// Runs `plan` as a job; returns its rows in task order.
pub(crate) async fn run(
    jobs: &JobClient,
    dfs: &tusk_client::Client,
    namenode: &str,
    name: &str,
    plan: Arc<dyn ExecutionPlan>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let t0 = std::time::Instant::now();
    let tm = |what: &str| if std::env::var_os("TUSK_T").is_some() { eprintln!("T client {what} {:?} @{}", t0.elapsed(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)); };
    let schema = plan.schema();
    let planned = stages(plan)?;
    let tasks = planned.last().map(|s| s.tasks()).unwrap_or(0);
    let result_dir = format!("/tmp/tusk-sql/{}/{}", dfs.user(), uuid::Uuid::new_v4().simple());
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
    let spec = SqlJobSpec { name: name.to_string(), stages, result_dir: result_dir.clone(), namenode: namenode.to_string(), max_attempts: 0 };
    let json = serde_json::to_string(&spec).map_err(|e| SqlError::Execution(format!("encoding the job: {e}")))?;
    tm("encoded");
    dfs.mkdirs(&result_dir, None, true).await?;
    tm("mkdirs");
    let outcome = async {
        let job_id = jobs.submit(SQL_ENGINE, &json).await.map_err(|e| SqlError::Execution(e.to_string()))?;
        tm("submitted");
        let report = wait(jobs, &job_id).await?;
        tm("finished");
        if report.state != JobState::Succeeded {
            return Err(SqlError::Execution(format!("query {job_id} {}: {}", report.state.as_str().to_lowercase(), report.diagnostics)));
        }
        let mut batches = Vec::new();
        for t in 0..tasks {
            let path = format!("{result_dir}/{}", result_part_name(t as u32));
            let bytes = dfs.read_all(&path).await?;
            if bytes.is_empty() {
                continue;
            }
            let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)
                .map_err(|e| SqlError::Execution(format!("{path}: {e}")))?;
            for b in reader {
                batches.push(b.map_err(|e| SqlError::Execution(format!("{path}: {e}")))?);
            }
        }
        tm("read");
        Ok(batches)
    }
    .await;
    let _ = dfs.delete(&result_dir, true).await;
    tm("deleted");
    Ok((schema, outcome?))
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
