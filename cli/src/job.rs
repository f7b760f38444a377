//! `tusk job ...`: submit MapReduce jobs (a definition file, a built-in, or
//! Hadoop Streaming), follow them with a live display, and inspect, kill
//! and debug them.
//!
//! Submitting prints the job id on stdout, then follows the job (progress
//! on stderr) unless `--detach`; the exit status is 0 only when the job
//! succeeded, and a job that did not succeed prints its diagnostics on
//! stderr. `--json` prints machine-readable reports on stdout instead.

pub mod argv;
mod builtin;
mod follow;
mod logs;
mod show;
mod streaming;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tusk_client::{Client, JobClient, JobReport};
use tusk_mapreduce::{JobSpec, Partitioner};

use crate::dfs::Dfs;
pub use builtin::{Builtin, sample_total_order, teragen_spec, terasort_spec, teravalidate_spec, wordcount_spec};
use follow::verdict;
pub use follow::{Display, follow, wait_polling};

/// Flags shared by every `tusk job` command.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// Jobtracker address (host:port); else TUSK_JOBTRACKER.
    #[arg(long, global = true)]
    jobtracker: Option<String>,
    /// Namenode address (host:port); else TUSK_NAMENODE, else the file named by TUSK_CONF.
    #[arg(long, global = true)]
    namenode: Option<String>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Print the job id and return at once instead of following the job.
    #[arg(long, global = true)]
    detach: bool,
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Submit a job defined in a TOML or JSON file (fields of a MapReduce JobSpec).
    Submit {
        /// JOB.toml or JOB.json.
        file: PathBuf,
    },
    /// Run a built-in job: wordcount, grep, sort, teragen, terasort, teravalidate.
    Run(builtin::RunArgs),
    /// Run a Hadoop Streaming job (-input, -output, -mapper, -reducer, -file, -D, ...).
    Streaming(streaming::StreamingArgs),
    /// Show a job's state, stages, timings and diagnostics.
    Status {
        id: String,
        /// Also every task and attempt.
        #[arg(long)]
        tasks: bool,
    },
    /// List the jobs the jobtracker knows (finished ones too).
    List {
        /// Only jobs not finished yet.
        #[arg(long)]
        running: bool,
    },
    /// Follow a job until it finishes; exit 0 only if it succeeded.
    Wait { id: String },
    /// Kill a job (its running attempts are killed, its output removed).
    Kill { id: String },
    /// Print the stderr (or stdout) of a job's attempts, from their workers.
    Logs {
        id: String,
        /// Only this attempt.
        #[arg(long)]
        attempt: Option<String>,
        /// The attempts' stdout instead of stderr.
        #[arg(long)]
        stdout: bool,
    },
    /// Print a job's counters.
    Counters { id: String },
}

pub async fn run(args: JobArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("warn");
    let jobs = JobClient::connect(JobClient::resolve_addr(args.jobtracker.as_deref())?).await?;
    let out = Output { json: args.json, detach: args.detach };
    match args.command {
        JobCommand::Submit { file } => {
            let dfs = Dfs::connect(args.namenode.as_deref()).await?;
            let mut spec = load_spec(&file)?;
            resolve_paths(&mut spec, &|p| dfs.resolve(p));
            if matches!(&spec.partitioner, Partitioner::TotalOrder { split_points } if split_points.is_empty())
                && spec.reduces > 1
            {
                builtin::sample_total_order(&dfs.client, &mut spec).await?;
            }
            submit(&jobs, &dfs.client, &spec, None, out).await.map(|(code, _)| code)
        }
        JobCommand::Run(a) => {
            let dfs = Dfs::connect(args.namenode.as_deref()).await?;
            let mut spec = builtin::build_spec(&a, &|p| dfs.resolve(p))?;
            if builtin::needs_sampling(a.builtin(), &spec) {
                builtin::sample_total_order(&dfs.client, &mut spec).await?;
            }
            let (code, report) = submit(&jobs, &dfs.client, &spec, None, out).await?;
            match (a.builtin(), report) {
                (Builtin::Teravalidate { .. }, Some(r)) if code == ExitCode::SUCCESS && !out.json => {
                    show_validate_report(&dfs.client, &r).await
                }
                _ => Ok(code),
            }
        }
        JobCommand::Streaming(a) => {
            let dfs = Dfs::connect(args.namenode.as_deref()).await?;
            // Checked before anything is uploaded.
            streaming::build_spec(&a, &|p| dfs.resolve(p), Vec::new())?;
            let staged = streaming::stage_files(&dfs.client, &a.local_files()).await?;
            let (dir, files) = staged.map(|(d, f)| (Some(d), f)).unwrap_or_default();
            let spec = streaming::build_spec(&a, &|p| dfs.resolve(p), files)?;
            submit(&jobs, &dfs.client, &spec, dir, out).await.map(|(code, _)| code)
        }
        JobCommand::Status { id, tasks } => {
            show::print_status(&jobs.job(&id, tasks).await?, tasks, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::List { running } => {
            let list = if running { jobs.list_running().await? } else { jobs.list().await? };
            show::print_list(&list, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Wait { id } => {
            let r = follow(&jobs, &id, if args.json { Display::Quiet } else { Display::Auto }).await?;
            verdict(&r, args.json)
        }
        JobCommand::Kill { id } => {
            let k = jobs.kill(&id).await?;
            show::print_kill(&id, &k, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Logs { id, attempt, stdout } => {
            let r = jobs.job(&id, true).await?;
            logs::print_logs(&jobs, &r, attempt.as_deref(), if stdout { "stdout" } else { "stderr" }).await?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Counters { id } => {
            show::print_counters_cmd(&jobs.job(&id, false).await?, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How a submitting command reports.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
    detach: bool,
}

/// Submits `spec` as the DFS client's user; then prints the id and either
/// returns (`--detach`) or follows the job to its verdict. The staging
/// directory of uploaded files is removed once the job is over.
async fn submit(
    jobs: &JobClient,
    client: &Client,
    spec: &JobSpec,
    staging: Option<String>,
    out: Output,
) -> anyhow::Result<(ExitCode, Option<JobReport>)> {
    let jobs = jobs.clone().with_user(client.user());
    let id = match submit_spec(&jobs, spec).await {
        Ok(id) => id,
        Err(e) => {
            remove_staging(client, staging.as_deref()).await;
            return Err(e);
        }
    };
    if out.detach {
        if out.json {
            println!("{}", serde_json::json!({ "job_id": id }));
        } else {
            println!("{id}");
        }
        return Ok((ExitCode::SUCCESS, None));
    }
    if !out.json {
        println!("{id}");
    }
    let report = follow(&jobs, &id, if out.json { Display::Quiet } else { Display::Auto }).await;
    remove_staging(client, staging.as_deref()).await;
    let report = report?;
    Ok((verdict(&report, out.json)?, Some(report)))
}

/// Submits `spec` to the jobtracker (as the client's user); returns the job id.
pub async fn submit_spec(jobs: &JobClient, spec: &JobSpec) -> anyhow::Result<String> {
    let json = serde_json::to_string(spec).context("serializing the job")?;
    Ok(jobs.submit("mapreduce", &json).await?)
}

async fn remove_staging(client: &Client, dir: Option<&str>) {
    if let Some(dir) = dir
        && let Err(e) = client.delete(dir, true).await
    {
        tracing::warn!("cannot remove the staging directory {dir}: {e}");
    }
}

/// Prints teravalidate's report and how many problems it lists. As in
/// Hadoop, the exit status says whether the job ran, not what it found.
async fn show_validate_report(client: &Client, r: &JobReport) -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    for e in client.list(&r.output).await? {
        if !e.is_dir && !e.name.starts_with('_') {
            text.push_str(&String::from_utf8_lossy(&client.read_all(&e.path).await?));
        }
    }
    println!("teravalidate report ({}):\n{}", r.output, text.trim_end());
    let errors = text.lines().filter(|l| l.starts_with("error")).count();
    if errors > 0 {
        eprintln!("teravalidate: {errors} problem(s) found: the input is not sorted");
    }
    Ok(ExitCode::SUCCESS)
}

/// `-D KEY=VALUE` options as a job configuration.
pub fn defines(list: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut conf = BTreeMap::new();
    for kv in list {
        let Some((k, v)) = kv.split_once('=') else { bail!("-D '{kv}': expected KEY=VALUE") };
        let k = k.trim();
        if k.is_empty() {
            bail!("-D '{kv}': empty key");
        }
        conf.insert(k.to_string(), v.to_string());
    }
    Ok(conf)
}

/// A job definition from a TOML or JSON file (JSON when the name ends in
/// `.json` or the text starts with `{`). Unknown fields are refused, so a
/// misspelt one does not silently fall back to its default.
fn load_spec(path: &Path) -> anyhow::Result<JobSpec> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let value: serde_json::Value = if json {
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?
    } else {
        let table: toml::Table = toml::from_str(&text).with_context(|| format!("{}: invalid TOML", path.display()))?;
        serde_json::to_value(table).with_context(|| format!("{}: invalid job definition", path.display()))?
    };
    let known = serde_json::to_value(JobSpec::default())?;
    if let (Some(given), Some(known)) = (value.as_object(), known.as_object()) {
        let unknown: Vec<&String> = given.keys().filter(|k| !known.contains_key(*k)).collect();
        if !unknown.is_empty() {
            let names: Vec<&String> = known.keys().collect();
            bail!("{}: unknown field(s) {unknown:?} (a job has {names:?})", path.display());
        }
    }
    serde_json::from_value(value).with_context(|| format!("{}: invalid job definition", path.display()))
}

/// Makes the job's DFS paths absolute (relative ones are under the home directory).
fn resolve_paths(spec: &mut JobSpec, resolve: &dyn Fn(&str) -> String) {
    for p in spec.inputs.iter_mut().chain(spec.files.iter_mut()) {
        *p = resolve(p);
    }
    if !spec.output.is_empty() {
        spec.output = resolve(&spec.output);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tusk_mapreduce::{InputFormat, Program};

    #[test]
    fn defines_split_at_the_first_equals() {
        let c = defines(&["a.b=1".into(), "c=x=y".into(), "e=".into()]).unwrap();
        assert_eq!(c.get("a.b").map(String::as_str), Some("1"));
        assert_eq!(c.get("c").map(String::as_str), Some("x=y"));
        assert_eq!(c.get("e").map(String::as_str), Some(""));
        assert!(defines(&["nokey".into()]).unwrap_err().to_string().contains("nokey"));
        assert!(defines(&["=v".into()]).is_err());
    }

    #[test]
    fn job_files_in_toml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("job.toml");
        std::fs::write(
            &toml_path,
            r#"
name = "lines"
inputs = ["in"]
output = "/out"
reduces = 2
mapper = { type = "command", command = "cat" }
input_format = { type = "key_value_text" }
[conf]
"mapreduce.map.speculative" = "false"
"#,
        )
        .unwrap();
        let mut spec = load_spec(&toml_path).unwrap();
        resolve_paths(&mut spec, &|p| if p.starts_with('/') { p.into() } else { format!("/user/u/{p}") });
        assert_eq!(spec.inputs, ["/user/u/in"]);
        assert_eq!(spec.output, "/out");
        assert_eq!(spec.reduces, 2);
        assert_eq!(spec.mapper, Program::Command { command: "cat".into() });
        assert_eq!(spec.input_format, InputFormat::KeyValueText);
        assert_eq!(spec.conf.len(), 1);

        let json_path = dir.path().join("job.json");
        std::fs::write(&json_path, serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(load_spec(&json_path).unwrap(), spec);

        std::fs::write(&toml_path, "output = \"/o\"\nreduce = 3\n").unwrap();
        let e = load_spec(&toml_path).unwrap_err().to_string();
        assert!(e.contains("reduce") && e.contains("job.toml"), "{e}");
        std::fs::write(&toml_path, "output = [").unwrap();
        assert!(load_spec(&toml_path).unwrap_err().to_string().contains("invalid TOML"));
        assert!(load_spec(&dir.path().join("none.toml")).unwrap_err().to_string().contains("none.toml"));
    }
}
