//! One task attempt, as run by `tusk task` in a child process of a worker:
//! [`run_task`].
//!
//! The attempt connects to the DFS as the job's user, places the job's
//! files in its working directory, then runs the map side
//! (read the split → map program → sort/spill/merge into `file.out`, or the
//! job's output for a map-only job) or the reduce side (shuffle → merge →
//! reduce program → the job's output). A progress thread prints `progress`
//! control lines on stdout while anything changes; on success the last
//! line is `done` with the [`TaskResult`] and the final counters.

mod counting;
mod map;
mod progress;
mod reduce;

use crate::api::{Reporter, TaskContext};
use crate::control::ControlLine;
use crate::error::{Result, TaskError};
use crate::spec::{Split, TaskKind, TaskResult, TaskSpec};
use progress::{ControlOut, Phase, Progress, ProgressThread, print_line};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tusk_client::{Client, ClientConfig};

/// Local directories of an attempt (created if missing).
#[derive(Debug, Clone)]
pub struct TaskDirs {
    /// The attempt's working directory: localized files, user commands' cwd.
    pub work_dir: PathBuf,
    /// Where a map leaves `file.out` and its index for the worker to serve.
    pub output_dir: PathBuf,
    /// Spills, fetched map output and other temporary files.
    pub scratch_dir: PathBuf,
}

/// What the map and reduce sides share.
pub(crate) struct TaskEnv {
    pub(crate) ctx: TaskContext,
    pub(crate) dirs: TaskDirs,
    pub(crate) client: Client,
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) progress: Arc<Progress>,
}

/// Runs the attempt `spec` describes (see the module docs), printing
/// control lines on stdout; on success the last one is `done`.
pub async fn run_task(spec: TaskSpec, dirs: TaskDirs) -> Result<TaskResult> {
    let out: ControlOut = Arc::new(Mutex::new(std::io::stdout()));
    run_task_with(spec, dirs, out).await
}

/// [`run_task`] with control lines going to `out`.
pub(crate) async fn run_task_with(spec: TaskSpec, dirs: TaskDirs, out: ControlOut) -> Result<TaskResult> {
    for d in [&dirs.work_dir, &dirs.output_dir, &dirs.scratch_dir] {
        std::fs::create_dir_all(d).map_err(|e| TaskError::io(format!("{}: create", d.display()), e))?;
    }
    let reporter = Reporter::default();
    let progress = Arc::new(match &spec.kind {
        TaskKind::Map { .. } => Progress::for_map(spec.job.reduces > 0),
        TaskKind::Reduce { num_maps, .. } => Progress::for_reduce(*num_maps),
    });
    let thread = ProgressThread::start(reporter.clone(), Arc::clone(&progress), Arc::clone(&out));

    let mut config = ClientConfig::new(spec.namenode.clone());
    config.user = Some(spec.user.clone());
    let client = Client::connect(config).await?;
    if !spec.job.files.is_empty() {
        crate::streaming::localize(&client, &spec.job.files, &dirs.work_dir).await?;
    }
    let input_file = match &spec.kind {
        TaskKind::Map { split: Split::File { path, .. }, .. } => path.clone(),
        _ => String::new(),
    };
    let kind = spec.kind.clone();
    let ctx = TaskContext { spec, work_dir: dirs.work_dir.clone(), input_file, reporter: reporter.clone() };
    let env = Arc::new(TaskEnv { ctx, dirs, client, rt: tokio::runtime::Handle::current(), progress });
    env.progress.set_phase(Phase::Setup);

    let result = match kind {
        TaskKind::Map { split, .. } => {
            let env = Arc::clone(&env);
            tokio::task::spawn_blocking(move || map::run(&env, &split))
                .await
                .map_err(|e| TaskError::User(format!("map thread failed: {e}")))??
        }
        TaskKind::Reduce { partition, num_maps } => reduce::run(Arc::clone(&env), partition, num_maps).await?,
    };

    thread.stop();
    let result_json = serde_json::to_string(&result)
        .map_err(|e| TaskError::Invalid(format!("cannot encode the task result: {e}")))?;
    print_line(&out, &ControlLine::Done { result_json, counters: reporter.counters() });
    Ok(result)
}

#[cfg(test)]
mod tests;
