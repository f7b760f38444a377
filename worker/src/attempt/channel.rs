//! The control channel: the task's stdout, read line by line. Lines
//! starting with `@tusk ` carrying a valid [`ControlLine`] are handed to the
//! supervisor; every other line is copied to the attempt's `stdout` file.

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tusk_mapreduce::control::ControlLine;

/// Longest line kept in memory; the rest of a longer line goes straight to
/// the `stdout` file (it cannot be a control line).
const MAX_LINE: usize = 16 << 20;

/// Reads control lines off a task's stdout.
pub(crate) struct ControlChannel {
    reader: BufReader<Pin<Box<dyn AsyncRead + Send>>>,
    /// The line being assembled (kept across cancelled reads).
    line: Vec<u8>,
    /// Inside an overlong line: bytes go to the file until its newline.
    passthrough: bool,
    stdout_file: Option<std::io::BufWriter<std::fs::File>>,
    stdout_path: PathBuf,
    eof: bool,
}

impl ControlChannel {
    pub(crate) fn new(stdout: Pin<Box<dyn AsyncRead + Send>>, stdout_path: PathBuf) -> ControlChannel {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&stdout_path);
        let stdout_file = match file {
            Ok(f) => Some(std::io::BufWriter::new(f)),
            Err(e) => {
                tracing::warn!("{}: cannot open the task's stdout log: {e}", stdout_path.display());
                None
            }
        };
        ControlChannel {
            reader: BufReader::with_capacity(64 << 10, stdout),
            line: Vec::new(),
            passthrough: false,
            stdout_file,
            stdout_path,
            eof: false,
        }
    }

    pub(crate) fn at_eof(&self) -> bool {
        self.eof
    }

    /// The next control line; `None` at the end of stdout (or when it cannot
    /// be read). Cancel safe: bytes already read stay buffered.
    pub(crate) async fn next(&mut self) -> Option<ControlLine> {
        loop {
            if self.eof {
                return None;
            }
            let buf = match self.reader.fill_buf().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("{}: reading the task's stdout: {e}", self.stdout_path.display());
                    &[]
                }
            };
            if buf.is_empty() {
                self.eof = true;
                let last = std::mem::take(&mut self.line);
                let control = self.take_line(last);
                self.flush();
                return control;
            }
            let (chunk, used, complete) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (buf[..i].to_vec(), i + 1, true),
                None => (buf.to_vec(), buf.len(), false),
            };
            self.reader.consume(used);
            if self.passthrough {
                self.write_out(&chunk);
                if complete {
                    self.write_out(b"\n");
                    self.passthrough = false;
                }
                continue;
            }
            self.line.extend_from_slice(&chunk);
            if complete {
                let line = std::mem::take(&mut self.line);
                if let Some(control) = self.take_line(line) {
                    return Some(control);
                }
            } else if self.line.len() > MAX_LINE {
                let head = std::mem::take(&mut self.line);
                self.write_out(&head);
                self.passthrough = true;
            }
        }
    }

    /// A whole line: a control line, or text for the `stdout` file.
    fn take_line(&mut self, line: Vec<u8>) -> Option<ControlLine> {
        if line.is_empty() && self.eof {
            return None;
        }
        if let Some(control) = std::str::from_utf8(&line).ok().and_then(ControlLine::parse) {
            return Some(control);
        }
        self.write_out(&line);
        self.write_out(b"\n");
        // Ordinary output is rare (the engine keeps user output away from
        // the control channel): make it visible to log readers at once.
        self.flush();
        None
    }

    fn write_out(&mut self, bytes: &[u8]) {
        if let Some(f) = self.stdout_file.as_mut()
            && let Err(e) = f.write_all(bytes)
        {
            tracing::warn!("{}: writing the task's stdout log: {e}", self.stdout_path.display());
            self.stdout_file = None;
        }
    }

    pub(crate) fn flush(&mut self) {
        if let Some(f) = self.stdout_file.as_mut()
            && let Err(e) = f.flush()
        {
            tracing::warn!("{}: writing the task's stdout log: {e}", self.stdout_path.display());
            self.stdout_file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &'static [u8]) -> (Vec<ControlLine>, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout");
        let mut ch = ControlChannel::new(Box::pin(input), path.clone());
        let mut lines = Vec::new();
        while let Some(l) = ch.next().await {
            lines.push(l);
        }
        assert!(ch.at_eof());
        (lines, std::fs::read_to_string(&path).unwrap())
    }

    #[tokio::test]
    async fn control_lines_are_parsed_and_the_rest_goes_to_the_file() {
        let input = b"hello\n@tusk {\"progress\":{\"progress\":0.5,\"status\":\"s\",\"counters\":[[\"G\",\"N\",3]]}}\n\
                      @tusk not json\n\n@tusk {\"done\":{\"result_json\":\"{}\",\"counters\":[]}}";
        let (lines, out) = read_all(input).await;
        assert_eq!(
            lines,
            vec![
                ControlLine::Progress {
                    progress: 0.5,
                    status: "s".into(),
                    counters: vec![("G".into(), "N".into(), 3)]
                },
                ControlLine::Done { result_json: "{}".into(), counters: vec![] },
            ]
        );
        assert_eq!(out, "hello\n@tusk not json\n\n");
    }

    #[tokio::test]
    async fn an_overlong_line_passes_through_without_being_held() {
        let mut big = vec![b'x'; MAX_LINE + 100_000];
        big.extend_from_slice(b"\nafter\n@tusk {\"done\":{\"result_json\":\"r\",\"counters\":[]}}\n");
        let big: &'static [u8] = Box::leak(big.into_boxed_slice());
        let (lines, out) = read_all(big).await;
        assert_eq!(lines, vec![ControlLine::Done { result_json: "r".into(), counters: vec![] }]);
        assert_eq!(out.len(), MAX_LINE + 100_000 + "\nafter\n".len());
        assert!(out.ends_with("xx\nafter\n"));
    }
}
