//! The control channel from a task process to its worker: lines on the
//! task's stdout that start with [`PREFIX`], each carrying one JSON
//! [`ControlLine`]. Every other stdout line is ordinary output the worker
//! copies to the attempt's `stdout` file.

use serde::{Deserialize, Serialize};

/// Marks a control line on the task's stdout.
pub const PREFIX: &str = "@tusk ";

/// The environment variable in which the worker gives a task process its
/// memory limit in bytes (it kills an attempt whose processes use more),
/// so an engine can size its buffers and spill before reaching it.
pub const TASK_MEMORY_ENV: &str = "TUSK_TASK_MEMORY_BYTES";
/// Environment variable naming the host of the worker running the task (a
/// shuffle reads map outputs on that host straight from their files).
pub const WORKER_HOST_ENV: &str = "TUSK_WORKER_HOST";

/// The argument that starts a warm task process: `<task program> task
/// --warm`. Started by the worker ahead of any attempt, such a process
/// waits for one [`WarmStart`] line on its stdin, then becomes that attempt
/// exactly as if it had been started for it (and, after [`READY_LINE`],
/// waits for the next one); at end of file on stdin (the worker no longer
/// needs it) it exits 0.
pub const WARM_FLAG: &str = "--warm";

/// Printed on stdout by a warm task process after an attempt that
/// succeeded, once it has tidied up (no thread but its main one; its
/// working directory, stderr and environment its own again): it can take
/// another [`WarmStart`] line. The worker counts the attempt's process as
/// exited with status 0 when it reads this line; it closes the process's
/// stdin instead when it wants no more of it.
pub const READY_LINE: &str = "@tusk ready";

/// What a warm task process needs to become an attempt's process: the one
/// JSON line the worker writes on its stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmStart {
    /// The attempt's arguments after the program name (`task --engine ...`).
    pub args: Vec<String>,
    /// Added to the environment the process was started with.
    pub env: Vec<(String, String)>,
    /// The attempt's working directory.
    pub cwd: String,
    /// File the attempt's stderr goes to (appended to).
    pub stderr: String,
}

/// One message from a task process to the worker running it.
///
/// Externally tagged JSON: `{"progress":{"progress":0.5,"status":"...",
/// "counters":[["G","N",3]]}}` and, last, `{"done":{"result_json":"...",
/// "counters":[...]}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlLine {
    /// The attempt is alive: how far it is (0..=1), its status message and
    /// its counters so far (group, name, value).
    Progress { progress: f32, status: String, counters: Vec<(String, String, i64)> },
    /// The attempt succeeded: the engine's result (a
    /// [`TaskResult`](crate::spec::TaskResult) as JSON) and the final
    /// counters. Printed last, once the output is complete: it is the
    /// attempt's commit, and the worker reports the success without waiting
    /// for the process to exit.
    Done { result_json: String, counters: Vec<(String, String, i64)> },
}

impl ControlLine {
    /// The line to print: [`PREFIX`] then compact JSON, without a newline.
    /// JSON escapes control characters, so the line never contains `\n`.
    pub fn to_line(&self) -> String {
        // Serializing plain strings, floats and integers cannot fail; a
        // non-finite progress (NaN) is clamped before it gets here.
        let json = serde_json::to_string(&self.sanitized()).unwrap_or_else(|_| "{}".to_string());
        format!("{PREFIX}{json}")
    }

    /// Parses one stdout line (a trailing `\n` / `\r\n` is ignored); `None`
    /// when it is not a control line or its JSON is not a [`ControlLine`].
    pub fn parse(line: &str) -> Option<ControlLine> {
        let line = line.trim_end_matches(['\n', '\r']);
        serde_json::from_str(line.strip_prefix(PREFIX)?).ok()
    }

    /// serde_json refuses NaN and infinities: progress is clamped to 0..=1.
    fn sanitized(&self) -> ControlLine {
        match self {
            ControlLine::Progress { progress, status, counters } => ControlLine::Progress {
                progress: if progress.is_finite() { progress.clamp(0.0, 1.0) } else { 0.0 },
                status: status.clone(),
                counters: counters.clone(),
            },
            done => done.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let p = ControlLine::Progress {
            progress: 0.5,
            status: "map > sort\nwith a newline".into(),
            counters: vec![("TaskCounter".into(), "MAP_INPUT_RECORDS".into(), 3)],
        };
        let line = p.to_line();
        assert!(line.starts_with(PREFIX));
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(ControlLine::parse(&line), Some(p));
        assert_eq!(ControlLine::parse(&format!("{line}\r\n")).map(|l| l.to_line()), Some(line));

        let d = ControlLine::Done { result_json: "{\"partition_bytes\":[1,2]}".into(), counters: vec![] };
        assert_eq!(ControlLine::parse(&d.to_line()), Some(d));
    }

    #[test]
    fn wire_shape_is_externally_tagged_with_counter_triples() {
        let p = ControlLine::Progress { progress: 0.25, status: "s".into(), counters: vec![("G".into(), "N".into(), 3)] };
        assert_eq!(p.to_line(), r#"@tusk {"progress":{"progress":0.25,"status":"s","counters":[["G","N",3]]}}"#);
        let parsed = ControlLine::parse(r#"@tusk {"done":{"result_json":"{}","counters":[["A","B",-1]]}}"#);
        assert_eq!(parsed, Some(ControlLine::Done { result_json: "{}".into(), counters: vec![("A".into(), "B".into(), -1)] }));
    }

    #[test]
    fn other_lines_are_not_control_lines() {
        for line in ["hello", "@tusk", "@tusk not json", "@tusk {\"unknown\":{}}", " @tusk {\"done\":{}}", "@tuskx {}"] {
            assert_eq!(ControlLine::parse(line), None, "{line}");
        }
    }

    #[test]
    fn non_finite_progress_is_clamped() {
        let p = ControlLine::Progress { progress: f32::NAN, status: String::new(), counters: vec![] };
        assert!(matches!(ControlLine::parse(&p.to_line()), Some(ControlLine::Progress { progress, .. }) if progress == 0.0));
        let p = ControlLine::Progress { progress: 7.0, status: String::new(), counters: vec![] };
        assert!(matches!(ControlLine::parse(&p.to_line()), Some(ControlLine::Progress { progress, .. }) if progress == 1.0));
    }
}
