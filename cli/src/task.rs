//! `tusk task` (hidden): one task attempt, started by a worker as a child
//! process in the attempt's working directory. Progress and the result go
//! to stdout as control lines (written by the engine); errors go to stderr
//! as `tusk task: <error>` with exit status 1.

use anyhow::Context;
use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use tusk_mapreduce::TaskSpec;
use tusk_mapreduce::control::{WARM_FLAG, WarmStart};
use tusk_mapreduce::task::{TaskDirs, run_task};

/// Flags of `tusk task`, as the worker passes them.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// The engine of the attempt: `mapreduce` or `sql`.
    #[arg(long, default_value = "mapreduce")]
    engine: String,
    /// The attempt's `task.json` (a MapReduce `TaskSpec`, or a `SqlTaskSpec`).
    #[arg(long)]
    spec: PathBuf,
    /// Where a map (or a SQL shuffle stage) writes its partitioned output and index.
    #[arg(long)]
    output_dir: PathBuf,
    /// Spills, fetched map output and other temporary files.
    #[arg(long)]
    scratch_dir: PathBuf,
}

/// glibc's malloc serves large blocks (128 KiB and up, at first) with
/// `mmap` and gives them back with `munmap` when freed, so each new batch
/// buffer costs fresh page faults; a long-lived process raises that
/// threshold as it goes, a task process lives too briefly to. Blocks up
/// to 32 MiB (glibc's ceiling) come from the heap from the start, and freed
/// memory stays in the process (it ends soon anyway). Measured on TPC-H
/// SF1: about 3% less CPU over the 22 queries.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // the task allocates anything large.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// True for `tusk task --warm` (see [`WARM_FLAG`]).
pub fn is_warm(argv: &[OsString]) -> bool {
    matches!(argv, [_, task, flag] if task == "task" && flag == WARM_FLAG)
}

/// A warm task process: warms DataFusion up, waits for the worker's
/// [`WarmStart`] line on stdin, then takes on the attempt (its stderr file,
/// working directory and environment) and returns its arguments, to be run
/// as if the process had been started with them. `None` at end of file:
/// the worker no longer needs this process.
///
/// Runs before the async runtime starts: the process has one thread, so
/// changing its environment is sound.
pub fn await_attempt() -> anyhow::Result<Option<Vec<OsString>>> {
    use std::io::BufRead;
    tusk_sql::task::prewarm();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).context("reading the attempt from stdin")? == 0 {
        return Ok(None);
    }
    let start: WarmStart = serde_json::from_str(&line).context("not a warm start line")?;
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&start.stderr)
        .with_context(|| format!("{}: cannot open", start.stderr))?;
    nix::unistd::dup2_stderr(&stderr).context("redirecting stderr")?;
    std::env::set_current_dir(&start.cwd).with_context(|| format!("{}: cannot enter", start.cwd))?;
    for (k, v) in &start.env {
        // SAFETY: no other thread exists yet (see above), so nothing reads
        // the environment meanwhile.
        unsafe { std::env::set_var(k, v) };
    }
    let program = std::env::args_os().next().unwrap_or_else(|| "tusk".into());
    Ok(Some(std::iter::once(program).chain(start.args.into_iter().map(OsString::from)).collect()))
}

pub async fn run(args: TaskArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("warn");
    keep_freed_memory();
    kill_group_on_sigterm()?;
    match run_attempt(args).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("tusk task: {}", crate::error_line(&e));
            Ok(ExitCode::from(1))
        }
    }
}

/// SIGTERM (the worker killing the attempt, or dying: it is the task's
/// parent-death signal) kills the attempt's whole process group at once,
/// so user programs and whatever they started never outlive it. The
/// worker starts every attempt as the leader of its own group.
fn kill_group_on_sigterm() -> anyhow::Result<()> {
    use nix::sys::signal::{Signal, killpg};
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        if term.recv().await.is_some() {
            let _ = killpg(nix::unistd::getpgrp(), Signal::SIGKILL);
            std::process::exit(143);
        }
    });
    Ok(())
}

async fn run_attempt(args: TaskArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.spec).with_context(|| format!("{}: cannot read", args.spec.display()))?;
    let work_dir = std::env::current_dir().context("cannot find the working directory")?;
    match args.engine.as_str() {
        "mapreduce" => {
            let spec: TaskSpec = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a task definition", args.spec.display()))?;
            let dirs = TaskDirs { work_dir, output_dir: args.output_dir, scratch_dir: args.scratch_dir };
            run_task(spec, dirs).await?;
        }
        "sql" => tusk_sql::task::run(&text, &work_dir, &args.output_dir, &args.scratch_dir).await?,
        other => anyhow::bail!("unknown engine {other:?} (this build runs: mapreduce, sql)"),
    }
    Ok(())
}
