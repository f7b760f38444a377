//! A reduce attempt: shuffle this partition of every map's output, merge,
//! run the reduce program over the groups, write the job's output.

use super::TaskEnv;
use super::counting::{CountedGroups, CountingEmit};
use super::progress::Phase;
use crate::api::{ReduceRole, counters};
use crate::error::{Result, TaskError};
use crate::reduceside::{ShuffleConfig, ShuffleTask, merge_segments, shuffle};
use crate::spec::TaskResult;
use crate::{output, user};
use std::sync::Arc;

/// Fetches map outputs (async), then reduces on a blocking thread.
pub(crate) async fn run(env: Arc<TaskEnv>, partition: u32, num_maps: u32) -> Result<TaskResult> {
    let spec = &env.ctx.spec;
    // Programs are checked before anything is fetched.
    user::reduce_runner(&spec.job.reducer, ReduceRole::Reduce)?;
    let cfg = ShuffleConfig::from_conf(&spec.job.conf)?;
    let task = ShuffleTask {
        job_id: spec.job_id.clone(),
        attempt_id: spec.attempt_id.clone(),
        partition,
        num_maps,
        jobtracker: spec.jobtracker.clone(),
        scratch_dir: env.dirs.scratch_dir.clone(),
        reporter: env.ctx.reporter.clone(),
        fetched: Arc::clone(&env.progress.maps_fetched),
        upstream_stage: None,
        host: std::env::var(crate::control::WORKER_HOST_ENV).unwrap_or_default(),
    };
    env.progress.set_phase(Phase::Shuffle);
    let segments = shuffle(&task, &cfg).await?;
    env.progress.set_reduce_total(segments.iter().map(|s| s.len()).sum());

    let env2 = Arc::clone(&env);
    tokio::task::spawn_blocking(move || {
        let env = env2;
        let groups = merge_segments(segments, &env.dirs.scratch_dir)?;
        let reporter = env.ctx.reporter.clone();
        let mut input = CountedGroups::new(groups, reporter.clone(), Arc::clone(&env.progress));
        let runner = user::reduce_runner(&env.ctx.spec.job.reducer, ReduceRole::Reduce)?;
        let mut out = output::open(env.client.clone(), env.rt.clone(), &env.ctx.spec, reporter.clone())?;
        env.progress.set_phase(Phase::Reduce);
        {
            let mut emit = CountingEmit::new(&mut out, reporter, counters::REDUCE_OUTPUT_RECORDS, None);
            runner.run(&mut input, &mut emit, &env.ctx)?;
        }
        drop(input);
        let path = out.close()?;
        Ok(TaskResult { partition_bytes: Vec::new(), output_files: vec![path] })
    })
    .await
    .map_err(|e| TaskError::User(format!("reduce thread failed: {e}")))?
}
