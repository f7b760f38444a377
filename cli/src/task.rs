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
use std::os::fd::AsFd;
use tusk_mapreduce::control::{READY_LINE, TASK_MEMORY_ENV, WARM_FLAG, WarmStart};
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

/// A warm task process (see [`WARM_FLAG`]): warms DataFusion up, then
/// serves attempts one after another. For each, it waits for the worker's
/// [`WarmStart`] line on stdin, takes on the attempt (its stderr file,
/// working directory and environment) and runs it with `run` as if the
/// process had been started with its arguments. After an attempt that
/// succeeded it tidies up and prints [`READY_LINE`]; after one that failed,
/// or when it cannot tidy up, it exits with the attempt's status. Exits 0
/// at end of file on stdin: the worker no longer needs it.
///
/// Attempts run in an async runtime of their own, gone when `run` returns:
/// between attempts the process has one thread, so changing its
/// environment is sound.
pub fn serve_warm(run: impl Fn(Vec<OsString>) -> ExitCode) -> ExitCode {
    let fail = |e: anyhow::Error| {
        eprintln!("tusk task {WARM_FLAG}: {}", crate::error_line(&e));
        ExitCode::from(1)
    };
    tusk_sql::task::prewarm();
    let home = match Home::here() {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    loop {
        let (argv, env) = match await_attempt() {
            Ok(Some(a)) => a,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => return fail(e),
        };
        let code = run(argv);
        if code != ExitCode::SUCCESS {
            return code;
        }
        if let Err(e) = home.tidy(env) {
            // The attempt succeeded; this process just serves no other.
            eprintln!("tusk task {WARM_FLAG}: not taking another attempt: {}", crate::error_line(&e));
            return code;
        }
        println!("{READY_LINE}");
        if std::io::Write::flush(&mut std::io::stdout()).is_err() {
            return code;
        }
    }
}

/// What a warm process goes back to between attempts.
struct Home {
    cwd: PathBuf,
    stderr: std::os::fd::OwnedFd,
}

/// The environment variables an attempt set, with their values before it.
type SetEnv = Vec<(String, Option<OsString>)>;

impl Home {
    fn here() -> anyhow::Result<Home> {
        let cwd = std::env::current_dir().context("cannot find the working directory")?;
        let stderr = std::io::stderr().as_fd().try_clone_to_owned().context("keeping stderr")?;
        Ok(Home { cwd, stderr })
    }

    /// Back home after an attempt that set `env`; fails if the attempt left
    /// a thread running.
    fn tidy(&self, env: SetEnv) -> anyhow::Result<()> {
        let threads = std::fs::read_dir("/proc/self/task").map(Iterator::count).context("counting threads")?;
        anyhow::ensure!(threads == 1, "the attempt left {} threads running", threads - 1);
        let memory_limit: Option<u64> = std::env::var(TASK_MEMORY_ENV).ok().and_then(|v| v.trim().parse().ok());
        for (k, old) in env.into_iter().rev() {
            // SAFETY: this process has one thread (checked above).
            unsafe {
                match old {
                    Some(v) => std::env::set_var(&k, v),
                    None => std::env::remove_var(&k),
                }
            }
        }
        std::env::set_current_dir(&self.cwd).with_context(|| format!("{}: cannot go back", self.cwd.display()))?;
        nix::unistd::dup2_stderr(&self.stderr).context("restoring stderr")?;
        give_back_memory_over(memory_limit.map(|l| l / 2));
        Ok(())
    }
}

/// The heap a process keeps between attempts makes the next ones faster
/// (no page faults for it) but counts against their memory limit: above
/// `limit` bytes resident, the free part of it goes back to the system.
fn give_back_memory_over(limit: Option<u64>) {
    let resident = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        let kb = s.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
        kb.split_whitespace().next()?.parse::<u64>().ok().map(|kb| kb * 1024)
    });
    if let (Some(limit), Some(resident)) = (limit, resident)
        && resident > limit
    {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free heap memory to the system.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Waits for the worker's [`WarmStart`] line on stdin, then takes on the
/// attempt (its stderr file, working directory and environment) and
/// returns its arguments and the variables it set. `None` at end of file.
fn await_attempt() -> anyhow::Result<Option<(Vec<OsString>, SetEnv)>> {
    use std::io::BufRead;
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
    let mut set = Vec::with_capacity(start.env.len());
    for (k, v) in &start.env {
        set.push((k.clone(), std::env::var_os(k)));
        // SAFETY: no other thread exists (see `serve_warm`), so nothing
        // reads the environment meanwhile.
        unsafe { std::env::set_var(k, v) };
    }
    let program = std::env::args_os().next().unwrap_or_else(|| "tusk".into());
    Ok(Some((std::iter::once(program).chain(start.args.into_iter().map(OsString::from)).collect(), set)))
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
