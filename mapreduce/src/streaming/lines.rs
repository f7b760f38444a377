//! How records become lines on a streaming command's stdin and how its
//! stdout lines become records (Hadoop's TextInputWriter /
//! TextOutputReader, with the `stream.*.field.separator` settings).

use super::Role;
use crate::api::TaskContext;
use crate::spec::InputFormat;

/// Line framing of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineFormat {
    /// Between key and value on stdin (`stream.map.input.field.separator`,
    /// `stream.reduce.input.field.separator`; default tab).
    pub(crate) input_separator: Vec<u8>,
    /// Write only the value (Hadoop does for text input: the mapper sees
    /// the line, not its byte offset; `stream.map.input.ignoreKey`).
    pub(crate) ignore_key: bool,
    /// Separator of output fields (`stream.map.output.field.separator`, ...).
    pub(crate) output_separator: Vec<u8>,
    /// The key is the first `key_fields` fields of an output line
    /// (`stream.num.map.output.key.fields`, ...; default 1).
    pub(crate) key_fields: usize,
}

impl LineFormat {
    /// The framing of `role` under the job's configuration.
    pub(crate) fn for_role(role: Role, ctx: &TaskContext) -> LineFormat {
        let conf = &ctx.spec.job.conf;
        let stage = if role == Role::Mapper { "map" } else { "reduce" };
        let sep = |key: String| match conf.get(&key) {
            Some(s) if !s.is_empty() => s.as_bytes().to_vec(),
            _ => b"\t".to_vec(),
        };
        let ignore_key = role == Role::Mapper
            && match conf.get("stream.map.input.ignoreKey") {
                Some(v) => v.trim().eq_ignore_ascii_case("true"),
                None => ctx.spec.job.input_format == InputFormat::Text,
            };
        let key_fields = conf
            .get(&format!("stream.num.{stage}.output.key.fields"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1);
        LineFormat {
            input_separator: sep(format!("stream.{stage}.input.field.separator")),
            ignore_key,
            output_separator: sep(format!("stream.{stage}.output.field.separator")),
            key_fields,
        }
    }

    /// Appends the stdin line of a record to `buf`: `key SEP value\n`, the
    /// value alone when the key is ignored, and `key\n` when the value is
    /// empty (so a line without a separator reaches the next program as it
    /// left the previous one).
    pub(crate) fn write_record(&self, buf: &mut impl LineSink, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        if self.ignore_key {
            buf.put(value)?;
        } else if value.is_empty() {
            buf.put(key)?;
        } else {
            buf.put(key)?;
            buf.put(&self.input_separator)?;
            buf.put(value)?;
        }
        buf.put(b"\n")
    }

    /// Splits an output line (without its end of line) into key and value:
    /// the key ends before the `key_fields`-th separator; a line with fewer
    /// separators is all key, with an empty value.
    pub(crate) fn split<'a>(&self, line: &'a [u8]) -> (&'a [u8], &'a [u8]) {
        let sep = self.output_separator.as_slice();
        let mut from = 0;
        for field in 1..=self.key_fields {
            match find(&line[from..], sep) {
                Some(at) if field == self.key_fields => {
                    let pos = from + at;
                    return (&line[..pos], &line[pos + sep.len()..]);
                }
                Some(at) => from += at + sep.len(),
                None => break,
            }
        }
        (line, &[])
    }
}

/// Where record lines are written (a `BufWriter` in production, a `Vec` in tests).
pub(crate) trait LineSink {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

impl<W: std::io::Write> LineSink for W {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)
    }
}

/// A line without its `\n` or `\r\n`.
pub(crate) fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [] => None,
        [b] => haystack.iter().position(|c| c == b),
        _ => haystack.windows(needle.len()).position(|w| w == needle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::memio::context;

    fn fmt(sep: &str, key_fields: usize) -> LineFormat {
        LineFormat {
            input_separator: b"\t".to_vec(),
            ignore_key: false,
            output_separator: sep.as_bytes().to_vec(),
            key_fields,
        }
    }

    #[test]
    fn split_at_first_tab_or_whole_line() {
        let f = fmt("\t", 1);
        assert_eq!(f.split(b"a\tb\tc"), (&b"a"[..], &b"b\tc"[..]));
        assert_eq!(f.split(b"abc"), (&b"abc"[..], &b""[..]));
        assert_eq!(f.split(b"\tx"), (&b""[..], &b"x"[..]));
        assert_eq!(f.split(b"a\t"), (&b"a"[..], &b""[..]));
    }

    #[test]
    fn split_with_several_key_fields_and_long_separator() {
        assert_eq!(fmt("\t", 2).split(b"a\tb\tc\td"), (&b"a\tb"[..], &b"c\td"[..]));
        assert_eq!(fmt("\t", 3).split(b"a\tb"), (&b"a\tb"[..], &b""[..]));
        assert_eq!(fmt("::", 1).split(b"k::v::w"), (&b"k"[..], &b"v::w"[..]));
    }

    #[test]
    fn record_lines() {
        let mut out = Vec::new();
        let f = fmt("\t", 1);
        f.write_record(&mut out, b"k", b"v").unwrap();
        f.write_record(&mut out, b"line", b"").unwrap();
        let ignore = LineFormat { ignore_key: true, ..f };
        ignore.write_record(&mut out, b"17", b"text").unwrap();
        assert_eq!(out, b"k\tv\nline\ntext\n");
        assert_eq!(trim_eol(b"x\r\n"), b"x");
        assert_eq!(trim_eol(b"x"), b"x");
    }

    #[test]
    fn format_from_conf() {
        let mut ctx = context(true);
        assert!(!LineFormat::for_role(Role::Mapper, &ctx).ignore_key, "KeyValueText input keeps the key");
        ctx.spec.job.input_format = InputFormat::Text;
        assert!(LineFormat::for_role(Role::Mapper, &ctx).ignore_key, "text input: the line only");
        assert!(!LineFormat::for_role(Role::Reducer, &ctx).ignore_key);
        ctx.spec.job.conf.insert("stream.map.output.field.separator".into(), ".".into());
        ctx.spec.job.conf.insert("stream.num.map.output.key.fields".into(), "2".into());
        let f = LineFormat::for_role(Role::Mapper, &ctx);
        assert_eq!(f.split(b"a.b.c"), (&b"a.b"[..], &b"c"[..]));
        assert_eq!(LineFormat::for_role(Role::Reducer, &ctx).split(b"a.b\tc"), (&b"a.b"[..], &b"c"[..]));
    }
}
