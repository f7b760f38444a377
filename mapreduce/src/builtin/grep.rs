//! `grep` (map) and `grep_reduce` (reduce), Hadoop's Grep example in one
//! job: the map emits `(match, 1)` for every match of a regular expression
//! in each value (combine with `sum`); the single reducer sums per match and,
//! at the end, emits `(count, match)` ordered by count descending, then by
//! match.

use super::format_i64;
use super::wordcount::sum_values;
use crate::api::{Emit, GroupedReader, MapRunner, RecordReader, ReduceRunner, TaskContext};
use crate::error::{Result, TaskError};
use regex::bytes::Regex;

pub(crate) struct GrepMap {
    regex: Regex,
    group: usize,
}

impl GrepMap {
    /// `args[0]`: the regular expression; `args[1]` (optional): the
    /// capture group to emit instead of the whole match.
    pub(crate) fn new(args: &[String]) -> Result<GrepMap> {
        let Some(pattern) = args.first() else {
            return Err(TaskError::Invalid("grep: missing the regular expression argument".into()));
        };
        let regex = Regex::new(pattern)
            .map_err(|e| TaskError::Invalid(format!("grep: bad regular expression '{pattern}': {e}")))?;
        let group = match args.get(1) {
            None => 0,
            Some(g) => g
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|g| *g < regex.captures_len())
                .ok_or_else(|| TaskError::Invalid(format!("grep: '{pattern}' has no capture group '{g}'")))?,
        };
        Ok(GrepMap { regex, group })
    }
}

impl MapRunner for GrepMap {
    fn run(self: Box<Self>, input: &mut dyn RecordReader, out: &mut dyn Emit, _ctx: &TaskContext) -> Result<()> {
        let (mut key, mut value) = (Vec::new(), Vec::new());
        while input.next(&mut key, &mut value)? {
            if self.group == 0 {
                for m in self.regex.find_iter(&value) {
                    out.emit(m.as_bytes(), b"1")?;
                }
            } else {
                for caps in self.regex.captures_iter(&value) {
                    if let Some(m) = caps.get(self.group) {
                        out.emit(m.as_bytes(), b"1")?;
                    }
                }
            }
        }
        Ok(())
    }
}

pub(crate) struct GrepReduce;

impl ReduceRunner for GrepReduce {
    fn run(self: Box<Self>, input: &mut dyn GroupedReader, out: &mut dyn Emit, _ctx: &TaskContext) -> Result<()> {
        let mut found: Vec<(i64, Vec<u8>)> = Vec::new();
        while input.next_key()? {
            let key = input.key().to_vec();
            let count = sum_values(&key, input)?;
            found.push((count, key));
        }
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut buf = [0u8; 20];
        for (count, matched) in found {
            out.emit(format_i64(count, &mut buf), &matched)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::memio::{VecEmit, VecGrouped, VecReader, context, lines, records};

    fn grep(args: &[&str], text: &[&str]) -> Vec<String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let input = text.iter().enumerate().map(|(i, l)| (i.to_string().into_bytes(), l.as_bytes().to_vec())).collect();
        let ctx = context(true);
        let mut mapped = VecEmit::default();
        Box::new(GrepMap::new(&args).unwrap()).run(&mut VecReader::new(input), &mut mapped, &ctx).unwrap();
        let mut out = VecEmit::default();
        Box::new(GrepReduce).run(&mut VecGrouped::from_records(mapped.records), &mut out, &ctx).unwrap();
        lines(&out.records)
    }

    #[test]
    fn counts_matches_ordered_by_count_then_match() {
        let text =
            ["dfs.replication dfs.blocksize", "dfs.blocksize mapred.x", "dfs.name dfs.blocksize dfs.name", "none here"];
        assert_eq!(grep(&["dfs[a-z.]+"], &text), vec!["3\tdfs.blocksize", "2\tdfs.name", "1\tdfs.replication"]);
    }

    #[test]
    fn capture_group_is_emitted() {
        assert_eq!(grep(&["dfs\\.([a-z]+)", "1"], &["dfs.x dfs.y", "dfs.x"]), vec!["2\tx", "1\ty"]);
    }

    #[test]
    fn reduce_sums_combined_counts() {
        let mut input =
            VecGrouped::from_records(records(&[("b", "2"), ("a", "1"), ("b", "1"), ("c", "3"), ("a", "2")]));
        let mut out = VecEmit::default();
        Box::new(GrepReduce).run(&mut input, &mut out, &context(false)).unwrap();
        assert_eq!(lines(&out.records), vec!["3\ta", "3\tb", "3\tc"]);
    }

    #[test]
    fn bad_arguments_are_refused() {
        let err = GrepMap::new(&[]).err().unwrap().to_string();
        assert!(err.contains("missing the regular expression"), "{err}");
        let err = GrepMap::new(&["(".into()]).err().unwrap().to_string();
        assert!(err.starts_with("grep: bad regular expression '('"), "{err}");
        let err = GrepMap::new(&["a(b)".into(), "2".into()]).err().unwrap().to_string();
        assert!(err.contains("no capture group '2'"), "{err}");
    }
}
