//! `tusk`: the one binary. It parses flags and hands over to the library
//! crates; daemons are started through their `start(config)` functions.

mod args;
mod bench;
mod cluster;
mod daemon;
mod demo;
mod dfs;
mod dfsadmin;
mod job;
mod progress;
mod sql;
mod task;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // `tusk job streaming` also takes Hadoop's single-dash spelling.
    let argv = match job::argv::rewrite(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("tusk: {e}");
            return ExitCode::from(2);
        }
    };
    // A warm task process waits here, single-threaded, for its attempts.
    if task::is_warm(&argv) {
        return task::serve_warm(run_argv);
    }
    run_argv(argv)
}

/// Runs the command `argv` in a new async runtime, dropped (its threads
/// gone) before returning.
fn run_argv(argv: Vec<std::ffi::OsString>) -> ExitCode {
    let cli = args::Cli::parse_from(argv);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tusk: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tusk: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: args::Cli) -> anyhow::Result<ExitCode> {
    use args::Command;
    match cli.command {
        Command::Namenode(a) => daemon::namenode(a).await,
        Command::Datanode(a) => daemon::datanode(a).await,
        Command::Jobtracker(a) => daemon::jobtracker(a).await,
        Command::Worker(a) => daemon::worker(a).await,
        Command::Task(a) => task::run(a).await,
        Command::Job(a) => job::run(a).await,
        Command::Sql(a) => sql::run(a).await,
        Command::Dfs(a) => dfs::run(a).await,
        Command::Dfsadmin(a) => dfsadmin::run(a).await,
        Command::Cluster(a) => cluster::run(a).await,
        Command::Demo(a) => demo::run(a).await,
        Command::Bench(a) => bench::run(a).await,
    }
}

/// One line for the user: the error and its causes, without repeating
/// a cause that the message already contains.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !line.contains(&c) {
            line.push_str(": ");
            line.push_str(&c);
        }
    }
    line
}
