//! Running a physical plan across the workers: cut it into stages, submit
//! them as one `sql` job, wait, then read the final stage's result files
//! from the DFS (as Hive fetches a query's result from its scratch
//! directory) and delete them.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use tusk_client::sqljob::{SQL_ENGINE, SqlJobSpec, SqlStageSpec, result_part_name};
use tusk_client::{JobClient, JobState};

use super::codec::encode_plan;
use super::planner::{PlannedStage, cut};
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
    dfs.mkdirs(&result_dir, None, true).await?;
    let outcome = async {
        let job_id = jobs.submit(SQL_ENGINE, &json).await.map_err(|e| SqlError::Execution(e.to_string()))?;
        let report = wait(jobs, &job_id).await?;
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
        Ok(batches)
    }
    .await;
    let _ = dfs.delete(&result_dir, true).await;
    Ok((schema, outcome?))
}

/// Polls the job until it is over (every 10 ms at first, backing off to 50 ms).
async fn wait(jobs: &JobClient, job_id: &str) -> Result<tusk_client::JobReport> {
    let mut delay = Duration::from_millis(10);
    loop {
        let r = jobs.job(job_id, false).await.map_err(|e| SqlError::Execution(e.to_string()))?;
        if r.state.is_finished() {
            return Ok(r);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}
