//! Hadoop Streaming: maps, combiners and reducers written as shell
//! commands that read records as lines on stdin and write lines on stdout.
//!
//! One command process runs per map attempt, per reduce attempt, and per
//! combiner call (each spill/merge partition), as `sh -c COMMAND` in the
//! attempt's working directory (see [`localize`]). A scoped writer thread
//! feeds stdin while the calling thread reads stdout and emits records, and
//! a third thread relays stderr (so no pipe can fill up and deadlock, however
//! large input or output is). The calling thread spawns and waits for the
//! process, which is what its parent-death signal is tied to.
//!
//! Lines on stdin are `key\tvalue` (the value alone for a mapper over text
//! input); a record with an empty value is written as `key` alone, so a line
//! without a tab reaches the next command as it left the previous one
//! (Hadoop writes `key\t`). Stdout lines split at the first tab; a line
//! without one is all key. Hadoop's settings that are honoured:
//! `stream.{map,reduce}.{input,output}.field.separator`,
//! `stream.num.{map,reduce}.output.key.fields`, `stream.map.input.ignoreKey`,
//! `stream.non.zero.exit.is.failure`, `stream.stderr.reporter.prefix`
//! (combiners use the reduce settings).

mod env;
mod lines;
mod localize;
mod process;
mod stderr;
#[cfg(test)]
mod tests;

use crate::api::{Emit, GroupedReader, MapRunner, RecordReader, ReduceRole, ReduceRunner, TaskContext};
use crate::error::{Result, TaskError};
use crate::user::check_command;
use lines::{LineFormat, trim_eol};
pub use localize::localize;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::ChildStdin;
use std::sync::atomic::{AtomicBool, Ordering};

/// Size of the buffers on the command's pipes.
const PIPE_BUFFER: usize = 256 * 1024;
/// Records between two liveness reports to the reporter.
const PROGRESS_EVERY: u64 = 8192;

/// Which program a command is, for messages and settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Mapper,
    Reducer,
    Combiner,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Mapper => "mapper",
            Role::Reducer => "reducer",
            Role::Combiner => "combiner",
        })
    }
}

/// A streaming mapper: every record of the split goes to the command's
/// stdin (the line alone for text input, `key\tvalue` otherwise); every
/// stdout line is a map output record.
pub struct StreamingMap {
    command: String,
}

impl StreamingMap {
    pub fn new(command: &str) -> Result<StreamingMap> {
        check_command(command, "mapper")?;
        Ok(StreamingMap { command: command.to_string() })
    }
}

impl MapRunner for StreamingMap {
    fn run(self: Box<Self>, input: &mut dyn RecordReader, out: &mut dyn Emit, ctx: &TaskContext) -> Result<()> {
        let format = LineFormat::for_role(Role::Mapper, ctx);
        run_command(Role::Mapper, &self.command, ctx, &format, out, |feed| {
            let (mut key, mut value) = (Vec::new(), Vec::new());
            while input.next(&mut key, &mut value)? {
                if !feed.record(&key, &value)? {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// A streaming reducer or combiner: every value of every group goes to the
/// command's stdin as `key\tvalue`, in sorted order; every stdout line is
/// an output record.
pub struct StreamingReduce {
    command: String,
    role: Role,
}

impl StreamingReduce {
    pub fn new(command: &str, role: ReduceRole) -> Result<StreamingReduce> {
        let role = match role {
            ReduceRole::Reduce => Role::Reducer,
            ReduceRole::Combine => Role::Combiner,
        };
        check_command(command, &role.to_string())?;
        Ok(StreamingReduce { command: command.to_string(), role })
    }
}

impl ReduceRunner for StreamingReduce {
    fn run(self: Box<Self>, input: &mut dyn GroupedReader, out: &mut dyn Emit, ctx: &TaskContext) -> Result<()> {
        let format = LineFormat::for_role(self.role, ctx);
        run_command(self.role, &self.command, ctx, &format, out, |feed| {
            let mut key = Vec::new();
            while input.next_key()? {
                key.clear();
                key.extend_from_slice(input.key());
                while let Some(value) = input.next_value()? {
                    if !feed.record(&key, value)? {
                        return Ok(());
                    }
                }
            }
            Ok(())
        })
    }
}

/// The writing end of a command's stdin, used by the writer thread.
struct Feed<'a> {
    w: BufWriter<ChildStdin>,
    format: &'a LineFormat,
    stop: &'a AtomicBool,
    ctx: &'a TaskContext,
    role: Role,
    command: &'a str,
    records: u64,
}

impl Feed<'_> {
    /// Writes one record; false when the command closed its stdin (or the
    /// reader side gave up), so feeding should stop.
    fn record(&mut self, key: &[u8], value: &[u8]) -> Result<bool> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        self.records += 1;
        if self.records.is_multiple_of(PROGRESS_EVERY) {
            self.ctx.reporter.progress();
        }
        let written = self.format.write_record(&mut self.w, key, value);
        self.check(written)
    }

    /// Flushes and closes stdin (EOF for the command).
    fn finish(mut self) -> Result<()> {
        let flushed = self.w.flush();
        self.check(flushed).map(|_| ())
    }

    fn check(&self, r: std::io::Result<()>) -> Result<bool> {
        match r {
            Ok(()) => Ok(true),
            // The command exited or closed stdin: its exit status decides.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(TaskError::io(format!("{} command '{}': write to its stdin", self.role, self.command), e)),
        }
    }
}

/// Runs `command` once: `feed` writes its input (on a scoped thread) while
/// this thread turns its stdout into records for `out`.
fn run_command(
    role: Role,
    command: &str,
    ctx: &TaskContext,
    format: &LineFormat,
    out: &mut dyn Emit,
    feed: impl FnOnce(&mut Feed<'_>) -> Result<()> + Send,
) -> Result<()> {
    let spawned = process::spawn(role, command, ctx)?;
    let mut child = spawned.child;
    let stop = AtomicBool::new(false);
    let conf = &ctx.spec.job.conf;
    let prefix = conf.get("stream.stderr.reporter.prefix").map_or(stderr::DEFAULT_PREFIX, String::as_str);
    let nonzero_is_failure =
        conf.get("stream.non.zero.exit.is.failure").is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"));

    let (read_result, fed, status) = std::thread::scope(|s| -> Result<_> {
        let mut feeder = Feed {
            w: BufWriter::with_capacity(PIPE_BUFFER, spawned.stdin),
            format,
            stop: &stop,
            ctx,
            role,
            command,
            records: 0,
        };
        let writer = std::thread::Builder::new()
            .name(format!("{role}-stdin"))
            .spawn_scoped(s, move || {
                let fed = feed(&mut feeder);
                // Closing stdin even after an input error lets the command end.
                let finished = feeder.finish();
                fed.and(finished)
            })
            .map_err(|e| TaskError::io(format!("{role} command '{command}': start the stdin writer thread"), e))?;
        let reporter = &ctx.reporter;
        let stderr_pipe = spawned.stderr;
        let relay = std::thread::Builder::new()
            .name(format!("{role}-stderr"))
            .spawn_scoped(s, move || stderr::relay(stderr_pipe, reporter, prefix, std::io::stderr()));
        if let Err(e) = relay {
            stop.store(true, Ordering::Relaxed);
            child.kill();
            return Err(TaskError::io(format!("{role} command '{command}': start the stderr thread"), e));
        }

        let read_result = read_output(role, command, spawned.stdout, format, out, ctx);
        if read_result.is_err() {
            // Stop everything; the stdout pipe is already closed, so
            // anything still writing to it gets SIGPIPE.
            stop.store(true, Ordering::Relaxed);
            child.kill();
        }
        let status = child.wait(role, command);
        let fed = writer.join().unwrap_or_else(|_| {
            Err(TaskError::User(format!("{role} command '{command}': stdin writer thread panicked")))
        });
        Ok((read_result, fed, status))
    })?;

    read_result?;
    fed?;
    let status = status?;
    match process::status_error(role, command, status) {
        Some(e) if nonzero_is_failure => Err(e),
        _ => Ok(()),
    }
}

/// Reads the command's stdout to its end, one record per line.
fn read_output(
    role: Role,
    command: &str,
    stdout: std::process::ChildStdout,
    format: &LineFormat,
    out: &mut dyn Emit,
    ctx: &TaskContext,
) -> Result<()> {
    let mut r = BufReader::with_capacity(PIPE_BUFFER, stdout);
    let mut line = Vec::with_capacity(4096);
    let mut n: u64 = 0;
    loop {
        line.clear();
        let got = r
            .read_until(b'\n', &mut line)
            .map_err(|e| TaskError::io(format!("{role} command '{command}': read its stdout"), e))?;
        if got == 0 {
            return Ok(());
        }
        let (key, value) = format.split(trim_eol(&line));
        out.emit(key, value)?;
        n += 1;
        if n.is_multiple_of(PROGRESS_EVERY) {
            ctx.reporter.progress();
        }
    }
}
