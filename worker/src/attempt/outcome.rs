//! How a finished attempt is described to the jobtracker: its state,
//! diagnostics and the tail of its stderr.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;
use tusk_proto::compute::{AttemptState, Counter, Counters};

use crate::runtime::ExitOutcome;

/// Lines of stderr sent with a failed attempt.
const TAIL_LINES: usize = 20;
/// Bytes of stderr sent with a failed attempt, at most.
const TAIL_BYTES: u64 = 4096;
/// Longest stderr line quoted in diagnostics.
const MAX_QUOTED: usize = 1000;

/// The end of an attempt, as reported in `AttemptFinished`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    pub state: AttemptState,
    pub diagnostics: String,
    pub stderr_tail: String,
    pub counters: Counters,
    pub result_json: String,
}

/// Why the worker stopped an attempt itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stopped {
    /// Killed on request, with the reason given.
    Killed(String),
    /// Used `used` bytes with a limit of `limit`.
    Memory { used: u64, limit: u64 },
    /// No control line for this long.
    NoProgress(Duration),
}

/// The `done` line of a task: its commit. Printed once its output is
/// complete, it makes the attempt a success whatever happens to the process
/// afterwards (as Hadoop's `done()` call from a task).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Done {
    pub result_json: String,
    pub counters: Counters,
}

impl Outcome {
    pub(crate) fn failed(diagnostics: String, stderr_tail: String, counters: Counters) -> Outcome {
        Outcome { state: AttemptState::AttemptFailed, diagnostics, stderr_tail, counters, result_json: String::new() }
    }

    pub(crate) fn killed(reason: String, counters: Counters) -> Outcome {
        Outcome {
            state: AttemptState::AttemptKilled,
            diagnostics: reason,
            stderr_tail: String::new(),
            counters,
            result_json: String::new(),
        }
    }

    /// A task that printed its `done` line.
    pub(crate) fn succeeded(done: Done) -> Outcome {
        Outcome {
            state: AttemptState::AttemptSucceeded,
            diagnostics: String::new(),
            stderr_tail: String::new(),
            counters: done.counters,
            result_json: done.result_json,
        }
    }

    /// Decides the outcome from how the task ended. A task that printed its
    /// `done` line succeeded, even if a kill arrived meanwhile or it then
    /// failed to exit cleanly.
    pub(crate) fn decide(
        stopped: Option<Stopped>,
        exit: Result<ExitOutcome, String>,
        done: Option<Done>,
        counters: Counters,
        stderr: &Path,
    ) -> Outcome {
        if let Some(done) = done {
            return Outcome::succeeded(done);
        }
        let (tail, last_line) = stderr_tail(stderr);
        let with_last = |head: String| match &last_line {
            Some(l) => format!("{head}: {l}"),
            None => head,
        };
        let diagnostics = match stopped {
            Some(Stopped::Killed(reason)) => return Outcome::killed(reason, counters),
            Some(Stopped::Memory { used, limit }) => {
                format!("memory {} exceeds the limit of {}", fmt_bytes(used), fmt_bytes(limit))
            }
            Some(Stopped::NoProgress(d)) => format!("no progress for {}", fmt_secs(d)),
            None => match exit {
                Ok(ExitOutcome::Code(0)) => with_last("exit status 0 without a done line".to_string()),
                Ok(other) => with_last(other.to_string()),
                Err(e) => e,
            },
        };
        Outcome::failed(diagnostics, tail, counters)
    }
}

/// The last lines of a stderr file (at most [`TAIL_LINES`] lines and
/// [`TAIL_BYTES`] bytes) and its last non-empty line.
pub(crate) fn stderr_tail(path: &Path) -> (String, Option<String>) {
    let Ok(mut f) = std::fs::File::open(path) else { return (String::new(), None) };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_BYTES);
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.take(TAIL_BYTES).read_to_end(&mut bytes).is_err() {
        return (String::new(), None);
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut text: &str = &text;
    // Started mid-line: drop the fragment, unless it is all there is.
    if start > 0
        && let Some(i) = text.find('\n')
        && !text[i + 1..].trim().is_empty()
    {
        text = &text[i + 1..];
    }
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    let last = lines.iter().rev().map(|l| l.trim()).find(|l| !l.is_empty()).map(|l| {
        let mut l = l.to_string();
        if l.len() > MAX_QUOTED {
            let mut cut = MAX_QUOTED;
            while !l.is_char_boundary(cut) {
                cut -= 1;
            }
            l.truncate(cut);
            l.push('…');
        }
        l
    });
    (tail, last)
}

/// `1.3 GiB`, `300.0 MiB`, `512.0 KiB`, `12 B`.
pub(crate) fn fmt_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            return format!("{:.1} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} B")
}

/// `600 s`, `1.5 s`.
pub(crate) fn fmt_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { format!("{:.1} s", d.as_secs_f64()) }
}

/// Counter triples of the control channel as the wire type.
pub(crate) fn counters(triples: Vec<(String, String, i64)>) -> Counters {
    Counters { counters: triples.into_iter().map(|(group, name, value)| Counter { group, name, value }).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(fmt_bytes((1.3 * (1u64 << 30) as f64) as u64), "1.3 GiB");
        assert_eq!(fmt_bytes(1 << 30), "1.0 GiB");
        assert_eq!(fmt_bytes(100 << 20), "100.0 MiB");
        assert_eq!(fmt_bytes(12), "12 B");
        assert_eq!(fmt_secs(Duration::from_millis(600_000)), "600 s");
        assert_eq!(fmt_secs(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn the_tail_is_the_last_20_lines_within_4_kib() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stderr");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, format!("{text}\n\n")).unwrap();
        let (tail, last) = stderr_tail(&p);
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), 20);
        assert_eq!((lines[0], lines[19]), ("line 80", "line 99"));
        assert_eq!(last.as_deref(), Some("line 99"));

        let long: String = "y".repeat(10_000);
        std::fs::write(&p, format!("first\n{long}\nbad record: 42\n")).unwrap();
        let (tail, last) = stderr_tail(&p);
        assert!(tail.len() <= 4096, "{}", tail.len());
        assert!(tail.ends_with("bad record: 42"), "{tail}");
        assert!(!tail.contains("first"));
        assert_eq!(last.as_deref(), Some("bad record: 42"));

        std::fs::write(&p, long.as_bytes()).unwrap();
        let (tail, last) = stderr_tail(&p);
        assert_eq!(tail.len(), 4096);
        assert_eq!(last.unwrap().chars().count(), MAX_QUOTED + 1);
        assert_eq!(stderr_tail(&dir.path().join("missing")), (String::new(), None));
    }

    #[test]
    fn outcomes_follow_the_exit_and_the_done_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stderr");
        std::fs::write(&p, "starting\nTraceback: boom\n\n").unwrap();
        let done =
            Some(Done { result_json: "{\"r\":1}".into(), counters: counters(vec![("G".into(), "N".into(), 2)]) });
        let none = Counters::default();

        let ok = Outcome::decide(None, Ok(ExitOutcome::Code(0)), done.clone(), none.clone(), &p);
        assert_eq!(ok.state, AttemptState::AttemptSucceeded);
        assert_eq!(ok.result_json, "{\"r\":1}");
        assert_eq!(ok.counters.counters[0].value, 2);

        let late_kill = Outcome::decide(
            Some(Stopped::Killed("k".into())),
            Ok(ExitOutcome::Code(0)),
            done.clone(),
            none.clone(),
            &p,
        );
        assert_eq!(late_kill.state, AttemptState::AttemptSucceeded);

        let committed = Outcome::decide(None, Ok(ExitOutcome::Code(3)), done, none.clone(), &p);
        assert_eq!(committed.state, AttemptState::AttemptSucceeded);

        let failed = Outcome::decide(None, Ok(ExitOutcome::Code(3)), None, none.clone(), &p);
        assert_eq!(failed.state, AttemptState::AttemptFailed);
        assert_eq!(failed.diagnostics, "exit status 3: Traceback: boom");
        assert_eq!(failed.stderr_tail, "starting\nTraceback: boom");

        let no_done = Outcome::decide(None, Ok(ExitOutcome::Code(0)), None, none.clone(), &p);
        assert_eq!(no_done.diagnostics, "exit status 0 without a done line: Traceback: boom");

        let signal = Outcome::decide(None, Ok(ExitOutcome::Signal(9)), None, none.clone(), &dir.path().join("x"));
        assert_eq!(signal.diagnostics, "killed by signal 9");

        let killed = Outcome::decide(
            Some(Stopped::Killed("speculative loser".into())),
            Ok(ExitOutcome::Signal(15)),
            None,
            none.clone(),
            &p,
        );
        assert_eq!((killed.state, killed.diagnostics.as_str()), (AttemptState::AttemptKilled, "speculative loser"));

        let mem = Outcome::decide(
            Some(Stopped::Memory { used: 3 << 29, limit: 1 << 30 }),
            Ok(ExitOutcome::Signal(9)),
            None,
            none.clone(),
            &p,
        );
        assert_eq!(mem.diagnostics, "memory 1.5 GiB exceeds the limit of 1.0 GiB");
        assert_eq!(mem.state, AttemptState::AttemptFailed);

        let slow = Outcome::decide(
            Some(Stopped::NoProgress(Duration::from_secs(600))),
            Ok(ExitOutcome::Signal(9)),
            None,
            none,
            &p,
        );
        assert_eq!(slow.diagnostics, "no progress for 600 s");
    }
}
