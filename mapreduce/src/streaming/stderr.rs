//! A streaming command's stderr: `reporter:counter:GROUP,COUNTER,AMOUNT`
//! and `reporter:status:MESSAGE` lines update the attempt's [`Reporter`];
//! every other line is copied to the task's own stderr (the attempt's
//! `stderr` log).

use super::lines::trim_eol;
use crate::api::Reporter;
use std::io::{BufRead, BufReader, Read, Write};

/// Default prefix of reporter lines (`stream.stderr.reporter.prefix`).
pub(crate) const DEFAULT_PREFIX: &str = "reporter:";

/// What one stderr line means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StderrLine<'a> {
    Counter {
        group: String,
        name: String,
        amount: i64,
    },
    Status(String),
    /// A reporter line that could not be understood (a warning is logged).
    Malformed(&'a [u8]),
    /// Anything else: copied to the task's stderr.
    Other,
}

/// Classifies a stderr line (without its end of line).
pub(crate) fn parse<'a>(line: &'a [u8], prefix: &str) -> StderrLine<'a> {
    let Some(rest) = line.strip_prefix(prefix.as_bytes()) else { return StderrLine::Other };
    if let Some(counter) = rest.strip_prefix(b"counter:") {
        let text = String::from_utf8_lossy(counter);
        let parts: Vec<&str> = text.split(',').collect();
        if let [group, name, amount] = parts.as_slice()
            && let Ok(amount) = amount.trim().parse::<i64>()
        {
            return StderrLine::Counter { group: group.to_string(), name: name.to_string(), amount };
        }
        return StderrLine::Malformed(line);
    }
    if let Some(status) = rest.strip_prefix(b"status:") {
        return StderrLine::Status(String::from_utf8_lossy(status).into_owned());
    }
    StderrLine::Other
}

/// Reads `stderr` to its end, applying reporter lines to `reporter` and
/// copying the rest to `sink`. Stops quietly on a read error (the child
/// is gone; its exit status tells what happened).
pub(crate) fn relay(stderr: impl Read, reporter: &Reporter, prefix: &str, mut sink: impl Write) {
    let mut r = BufReader::with_capacity(64 * 1024, stderr);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // Writing to our own stderr can only fail if it is gone; nothing
        // better to do with the line then.
        match parse(trim_eol(&line), prefix) {
            StderrLine::Counter { group, name, amount } => reporter.incr(&group, &name, amount),
            StderrLine::Status(status) => reporter.set_status(&status),
            StderrLine::Malformed(l) => {
                let _ = writeln!(sink, "tusk streaming: cannot parse reporter line: {}", String::from_utf8_lossy(l));
            }
            StderrLine::Other => {
                let _ = sink.write_all(&line);
                if !line.ends_with(b"\n") {
                    let _ = sink.write_all(b"\n");
                }
            }
        }
    }
    let _ = sink.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reporter_lines() {
        assert_eq!(
            parse(b"reporter:counter:My Group,Lines,12", DEFAULT_PREFIX),
            StderrLine::Counter { group: "My Group".into(), name: "Lines".into(), amount: 12 }
        );
        assert_eq!(
            parse(b"reporter:counter:G,C,-3", DEFAULT_PREFIX),
            StderrLine::Counter { group: "G".into(), name: "C".into(), amount: -3 }
        );
        assert_eq!(
            parse(b"reporter:status:half done: 50%", DEFAULT_PREFIX),
            StderrLine::Status("half done: 50%".into())
        );
        assert_eq!(parse(b"reporter:counter:G,C", DEFAULT_PREFIX), StderrLine::Malformed(b"reporter:counter:G,C"));
        assert_eq!(parse(b"reporter:counter:G,C,x", DEFAULT_PREFIX), StderrLine::Malformed(b"reporter:counter:G,C,x"));
        assert_eq!(parse(b"Traceback (most recent call last):", DEFAULT_PREFIX), StderrLine::Other);
        assert_eq!(parse(b"reporter:other", DEFAULT_PREFIX), StderrLine::Other);
        assert_eq!(parse(b"my:status:x", "my:"), StderrLine::Status("x".into()));
    }

    #[test]
    fn relay_updates_reporter_and_copies_the_rest() {
        let input = b"hello\nreporter:counter:G,C,2\nreporter:counter:G,C,3\r\nreporter:status:busy\nbad:x\nreporter:counter:oops\nlast";
        let reporter = Reporter::default();
        let mut sink = Vec::new();
        relay(&input[..], &reporter, DEFAULT_PREFIX, &mut sink);
        assert_eq!(reporter.counter("G", "C"), 5);
        assert_eq!(reporter.status(), "busy");
        let text = String::from_utf8(sink).unwrap();
        assert_eq!(text, "hello\nbad:x\ntusk streaming: cannot parse reporter line: reporter:counter:oops\nlast\n");
    }
}
