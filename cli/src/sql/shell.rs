//! The interactive shell of `tusk sql`: line editing and history
//! (`~/.tusk_sql_history`) with rustyline, statements spanning lines until
//! a `;` ends them, errors printed without leaving the shell.
//!
//! Ctrl-C clears the statement being typed, or interrupts the one running;
//! `quit;`, `exit;` or Ctrl-D leave.

use rustyline::error::ReadlineError;
use rustyline::{Config, DefaultEditor};
use std::path::PathBuf;
use std::process::ExitCode;
use tusk_sql::Session;

use super::{Printer, report_error};

/// Shown while a statement is still open.
const CONTINUATION_PROMPT: &str = "    -> ";

/// How many statements the history keeps.
const HISTORY_SIZE: usize = 1000;

/// Runs the shell until the user leaves.
pub async fn run(session: &mut Session, printer: &mut Printer) -> anyhow::Result<ExitCode> {
    let config = Config::builder().auto_add_history(false).max_history_size(HISTORY_SIZE)?.build();
    let mut editor = DefaultEditor::with_config(config)?;
    let history = history_path();
    if let Some(path) = &history {
        // A first session has no history file yet.
        let _ = editor.load_history(path);
    }
    eprintln!("Tusk SQL (HiveQL). End statements with ';'. quit; or Ctrl-D leaves, Ctrl-C cancels.");
    let mut buffer = String::new();
    loop {
        let prompt =
            if buffer.is_empty() { format!("tusk ({})> ", session.database()) } else { CONTINUATION_PROMPT.to_string() };
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        match accumulate(&mut buffer, &line) {
            Step::More => {}
            Step::Quit => break,
            Step::Run(text) => {
                if editor.add_history_entry(text.trim()).unwrap_or(false)
                    && let Some(path) = &history
                {
                    // History is a convenience: an unwritable file is not an error.
                    let _ = editor.append_history(path);
                }
                run_statements(session, &text, printer).await;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs what was typed; Ctrl-C stops it (the session stays usable).
async fn run_statements(session: &mut Session, text: &str, printer: &mut Printer) {
    let mut on_result = |r: tusk_sql::StatementResult| printer.print(r);
    let result = tokio::select! {
        r = session.run_script(text, &mut on_result) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    match result {
        Some(Ok(_)) => {}
        Some(Err(e)) => report_error(&e, None),
        None => eprintln!("interrupted"),
    }
    printer.finish();
}

/// `~/.tusk_sql_history`, or none without a home directory.
fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".tusk_sql_history"))
}

/// What to do after a line was read.
#[derive(Debug, PartialEq)]
enum Step {
    /// Read another line.
    More,
    /// Leave the shell.
    Quit,
    /// Run these statements.
    Run(String),
}

/// Adds a line to the statement being typed. Blank lines and `--` comments
/// outside a statement are skipped; `quit`/`exit` (with or without `;`)
/// leave; a buffer ending in `;` is run.
fn accumulate(buffer: &mut String, line: &str) -> Step {
    if buffer.is_empty() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("--") {
            return Step::More;
        }
        if is_quit(t) {
            return Step::Quit;
        }
    } else {
        buffer.push('\n');
    }
    buffer.push_str(line);
    if !tusk_sql::script::is_complete(buffer) {
        return Step::More;
    }
    let text = std::mem::take(buffer);
    if is_quit(&text) { Step::Quit } else { Step::Run(text) }
}

fn is_quit(text: &str) -> bool {
    let word = text.trim().trim_end_matches(';').trim();
    word.eq_ignore_ascii_case("quit") || word.eq_ignore_ascii_case("exit")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> Vec<Step> {
        let mut buffer = String::new();
        lines.iter().map(|l| accumulate(&mut buffer, l)).collect()
    }

    #[test]
    fn statements_span_lines_until_a_semicolon() {
        assert_eq!(
            feed(&["SELECT a,", "  b FROM t", "WHERE s = 'x;y';"]),
            [Step::More, Step::More, Step::Run("SELECT a,\n  b FROM t\nWHERE s = 'x;y';".into())]
        );
        assert_eq!(feed(&["SELECT 1; SELECT 2;"]), [Step::Run("SELECT 1; SELECT 2;".into())]);
        assert_eq!(feed(&["SELECT 'a", ";", "';"]), [Step::More, Step::More, Step::Run("SELECT 'a\n;\n';".into())]);
    }

    #[test]
    fn blank_and_comment_lines_outside_a_statement_are_skipped() {
        let mut buffer = String::new();
        assert_eq!(accumulate(&mut buffer, "   "), Step::More);
        assert_eq!(accumulate(&mut buffer, "-- a note"), Step::More);
        assert!(buffer.is_empty());
        assert_eq!(accumulate(&mut buffer, "SHOW TABLES"), Step::More);
        assert_eq!(accumulate(&mut buffer, ""), Step::More);
        assert_eq!(accumulate(&mut buffer, ";"), Step::Run("SHOW TABLES\n\n;".into()));
        assert!(buffer.is_empty());
    }

    #[test]
    fn quit_and_exit_leave() {
        for line in ["quit;", "exit;", "QUIT", " exit ;; ", "quit"] {
            assert_eq!(feed(&[line]), [Step::Quit], "{line}");
        }
        assert_eq!(feed(&["exit", "SELECT 1;"]), [Step::Quit, Step::Run("SELECT 1;".into())]);
        assert_eq!(feed(&["SELECT 1", "quit;"]), [Step::More, Step::Run("SELECT 1\nquit;".into())]);
    }
}
