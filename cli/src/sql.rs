//! `tusk sql`: HiveQL from the command line, in the manner of the Hive CLI.
//!
//! `-e SQL` runs statements given on the command line, `-f FILE` a script;
//! with neither, an interactive shell when stdin is a terminal, else the
//! whole of stdin is run as a script (as `hive -f /dev/stdin`). Result rows
//! go to stdout in the `--format` asked for; status lines (`3 rows (0.120
//! s)`, `OK (0.015 s)`) and errors (`error: line 1, column 8: ...`) go to
//! stderr, so stdout stays clean for a pipe. A script stops at its first
//! failing statement; the exit status is 1 if a statement failed.

pub mod format;
mod shell;

use anyhow::Context;
use clap::Args;
use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use tusk_client::{ClientConfig, JobClient};
use tusk_sql::{Outcome, Session, SqlConfig, SqlError, StatementResult};

pub use format::Format;

/// Flags of `tusk sql` (Hive CLI spellings where Hive has one).
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Run these `;`-separated statements and exit (as `hive -e`).
    #[arg(short = 'e', long = "execute", value_name = "SQL", allow_hyphen_values = true, conflicts_with = "file")]
    execute: Option<String>,
    /// Run the statements of a script file and exit (as `hive -f`).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Define a variable, substituted for `${KEY}` and `${hivevar:KEY}` in
    /// the statements; repeatable (Hive's `--hivevar`, also `-d`/`--define`).
    #[arg(
        long = "hivevar",
        short = 'd',
        visible_alias = "define",
        value_name = "KEY=VALUE",
        value_parser = parse_var
    )]
    hivevars: Vec<(String, String)>,
    /// The database to start in (`USE db` changes it).
    #[arg(long, value_name = "DB", default_value = "default")]
    database: String,
    /// How result rows are printed on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Silent: no status lines (row counts, timings, messages) on stderr (as `hive -S`).
    #[arg(short = 'S', long)]
    silent: bool,
    /// Echo each statement on stderr before its result (as `hive -v`).
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Namenode address (host:port); else TUSK_NAMENODE, else the file named by TUSK_CONF.
    #[arg(long, value_name = "ADDR")]
    namenode: Option<String>,
    /// Jobtracker address (host:port), which also serves the metastore; else TUSK_JOBTRACKER.
    #[arg(long, value_name = "ADDR")]
    jobtracker: Option<String>,
}

/// `KEY=VALUE`, split at the first `=`.
fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

/// Where the statements come from.
enum Source {
    /// A script: `-e`, `-f` or stdin; `name` prefixes its errors (`-f`).
    Script { text: String, name: Option<String> },
    /// The interactive shell.
    Shell,
}

/// Runs `tusk sql`.
pub async fn run(args: SqlArgs) -> anyhow::Result<ExitCode> {
    tusk_common::logging::init("warn");
    let source = source(&args)?;
    let mut session = match Session::connect(config(&args)?).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut printer = Printer::new(args.format, args.silent, args.verbose);
    match source {
        Source::Script { text, name } => run_script(&mut session, &text, name.as_deref(), &mut printer).await,
        Source::Shell => shell::run(&mut session, &mut printer).await,
    }
}

fn source(args: &SqlArgs) -> anyhow::Result<Source> {
    if let Some(text) = &args.execute {
        return Ok(Source::Script { text: text.clone(), name: None });
    }
    if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(Source::Script { text, name: Some(path.display().to_string()) });
    }
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(Source::Shell);
    }
    let mut text = String::new();
    stdin.read_to_string(&mut text).context("cannot read the script from stdin")?;
    Ok(Source::Script { text, name: None })
}

/// The session's configuration: addresses as `tusk dfs` and `tusk job`
/// resolve them (flag, then environment), the user from the `TUSK_CONF`
/// file if it names one.
fn config(args: &SqlArgs) -> anyhow::Result<SqlConfig> {
    let client = ClientConfig::resolve(args.namenode.as_deref())?;
    let jobtracker = JobClient::resolve_addr(args.jobtracker.as_deref())?;
    let mut config = SqlConfig::new(client.namenode, jobtracker);
    config.user = client.user;
    config.database = args.database.clone();
    config.hivevars = args.hivevars.iter().cloned().collect::<HashMap<_, _>>();
    Ok(config)
}

/// Runs a whole script, stopping at the first failing statement.
async fn run_script(session: &mut Session, text: &str, name: Option<&str>, printer: &mut Printer) -> anyhow::Result<ExitCode> {
    let result = session.run_script(text, &mut |r| printer.print(r)).await;
    let output_ok = printer.finish();
    match result {
        Err(e) => {
            report_error(&e, name);
            Ok(ExitCode::FAILURE)
        }
        Ok(_) if !output_ok => Ok(ExitCode::FAILURE),
        Ok(_) => Ok(ExitCode::SUCCESS),
    }
}

/// `error: [FILE: ]line L, column C: message` on stderr.
fn report_error(e: &SqlError, name: Option<&str>) {
    match name {
        Some(name) => eprintln!("error: {name}: {e}"),
        None => eprintln!("error: {e}"),
    }
}

/// Prints each statement's result as it arrives: rows on stdout, status
/// lines on stderr. Once stdout fails (a closed pipe) nothing more is
/// written there; [`finish`](Printer::finish) tells.
pub struct Printer {
    format: Format,
    silent: bool,
    verbose: bool,
    /// The first failure to format or write results.
    failure: Option<String>,
    /// Stdout is gone (a reader closed the pipe): stay quiet.
    closed: bool,
}

impl Printer {
    /// A printer of results in `format`; `silent` drops the status lines,
    /// `verbose` echoes each statement first.
    pub fn new(format: Format, silent: bool, verbose: bool) -> Printer {
        Printer { format, silent, verbose, failure: None, closed: false }
    }

    /// Prints one statement's result.
    pub fn print(&mut self, r: StatementResult) {
        if self.verbose {
            eprintln!("{};", r.text);
        }
        if let Outcome::Rows { schema, batches } = &r.outcome
            && !self.closed
        {
            let written = format::render(self.format, schema, batches)
                .map_err(|e| Some(format!("cannot print the result of `{}`: {e}", first_line(&r.text))))
                .and_then(|bytes| write_stdout(&bytes));
            match written {
                Ok(()) => {}
                Err(None) => self.closed = true,
                Err(Some(message)) => {
                    eprintln!("error: {message}");
                    self.failure.get_or_insert(message);
                }
            }
        }
        if !self.silent {
            eprintln!("{}", format::summary(&r.outcome, r.elapsed));
        }
    }

    /// True if every result was printed (a closed pipe counts as a failure
    /// too, silently); resets for the next script.
    pub fn finish(&mut self) -> bool {
        let ok = self.failure.is_none() && !self.closed;
        self.failure = None;
        ok
    }
}

/// Writes and flushes; `Err(None)` for a closed pipe, `Err(Some(why))` else.
fn write_stdout(bytes: &[u8]) -> Result<(), Option<String>> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(None),
        Err(e) => Err(Some(format!("cannot write the results to stdout: {e}"))),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        sql: SqlArgs,
    }

    fn parse(args: &[&str]) -> Result<SqlArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("sql").chain(args.iter().copied())).map(|c| c.sql)
    }

    #[test]
    fn hivevars_take_every_spelling() {
        let a = parse(&["--hivevar", "a=1", "--hivevar=b=x=y", "-d", "c=", "--define", "d = 4", "-e", "SELECT 1"]).unwrap();
        let vars: Vec<(&str, &str)> = a.hivevars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(vars, [("a", "1"), ("b", "x=y"), ("c", ""), ("d", " 4")]);
        assert!(parse(&["--hivevar", "novalue"]).is_err());
        assert!(parse(&["--hivevar", "=v"]).is_err());
    }

    #[test]
    fn defaults_and_conflicts() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.database, "default");
        assert_eq!(a.format, Format::Table);
        assert!(a.execute.is_none() && a.file.is_none() && !a.silent && !a.verbose);
        let a = parse(&["--format", "tsv", "--database", "sales", "-S", "-e", "-- c\nSELECT 1"]).unwrap();
        assert_eq!((a.format, a.database.as_str(), a.silent), (Format::Tsv, "sales", true));
        assert_eq!(a.execute.as_deref(), Some("-- c\nSELECT 1"));
        assert!(parse(&["-e", "SELECT 1", "-f", "x.sql"]).is_err());
        assert!(parse(&["--format", "xml"]).is_err());
    }

    #[test]
    fn printer_finish_resets() {
        let mut p = Printer::new(Format::Csv, true, false);
        assert!(p.finish());
        p.failure = Some("x".into());
        assert!(!p.finish());
        assert!(p.finish());
    }
}
