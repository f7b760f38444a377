//! A map attempt: read the split, run the map program, and either sort and
//! spill its output for the reducers or (map-only job) write the job's
//! output directly.

use super::TaskEnv;
use super::counting::CountingEmit;
use super::progress::Phase;
use crate::api::{ReduceRole, counters};
use crate::error::Result;
use crate::mapside::{CollectorConfig, CombinerFactory, MapOutputCollector};
use crate::spec::{Split, TaskResult};
use crate::{input, output, partition, user};

/// Runs the map on a blocking thread (the readers and writers block).
pub(crate) fn run(env: &TaskEnv, split: &Split) -> Result<TaskResult> {
    let spec = &env.ctx.spec;
    let job = &spec.job;
    let reporter = env.ctx.reporter.clone();
    // Programs are checked before any input is read.
    let runner = user::map_runner(&job.mapper)?;
    let (mut reader, input_progress) =
        input::open_with_progress(env.client.clone(), env.rt.clone(), split, &job.input_format, reporter.clone())?;
    env.progress.set_input(input_progress);

    if job.reduces == 0 {
        let mut out = output::open(env.client.clone(), env.rt.clone(), spec, reporter.clone())?;
        env.progress.set_phase(Phase::Map);
        {
            let mut emit =
                CountingEmit::new(&mut out, reporter, counters::MAP_OUTPUT_RECORDS, Some(counters::MAP_OUTPUT_BYTES));
            runner.run(reader.as_mut(), &mut emit, &env.ctx)?;
        }
        let path = out.close()?;
        return Ok(TaskResult { partition_bytes: Vec::new(), output_files: vec![path] });
    }

    let cfg = CollectorConfig::from_conf(&job.conf, job.reduces)?;
    let part = partition::partitioner(&job.partitioner, job.reduces)?;
    let combiner: Option<CombinerFactory> = match &job.combiner {
        None => None,
        Some(program) => {
            // Checked now; a fresh runner per spill partition later.
            user::reduce_runner(program, ReduceRole::Combine)?;
            let program = program.clone();
            Some(Box::new(move || user::reduce_runner(&program, ReduceRole::Combine)))
        }
    };
    let mut collector = MapOutputCollector::new(
        cfg,
        part,
        combiner,
        env.ctx.clone(),
        env.dirs.scratch_dir.clone(),
        env.dirs.output_dir.clone(),
    );
    env.progress.set_phase(Phase::Map);
    runner.run(reader.as_mut(), &mut collector, &env.ctx)?;
    drop(reader);
    env.progress.set_phase(Phase::Sort);
    let index = collector.finish()?;
    Ok(TaskResult { partition_bytes: index.iter().map(|e| e.length).collect(), output_files: Vec::new() })
}
