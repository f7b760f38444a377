//! Built-in map and reduce functions (`Program::Builtin { name, args }`),
//! used by `tusk job run`:
//!
//! | name | kind | what it does |
//! |---|---|---|
//! | `wordcount` | map | splits values on ASCII whitespace, emits `(word, count)` |
//! | `sum` | reduce/combine | sums decimal values per key |
//! | `grep` | map | `args[0]` regex (`args[1]`: group, default 0): emits `(match, 1)` |
//! | `grep_reduce` | reduce | sums per match, then emits `(count, match)` by count desc |
//! | `teragen` | map | row numbers -> 100-byte gensort records |
//! | `teravalidate` | map | per file: first/last key, rows, checksum, misorders |
//! | `teravalidate_reduce` | reduce | checks order across files, total rows and checksum |

mod grep;
mod tera;
mod wordcount;

use crate::api::{MapRunner, ReduceRole, ReduceRunner};
use crate::error::{Result, TaskError};

pub use tera::{RECORD_LEN, gensort_record};

const MAPS: &[&str] = &["wordcount", "grep", "teragen", "teravalidate"];
const REDUCES: &[&str] = &["sum", "grep_reduce", "teravalidate_reduce"];
const COMBINERS: &[&str] = &["sum"];

/// The built-in map function `name`.
pub fn map(name: &str, args: &[String]) -> Result<Box<dyn MapRunner>> {
    match name {
        "wordcount" => Ok(Box::new(wordcount::WordCount)),
        "grep" => Ok(Box::new(grep::GrepMap::new(args)?)),
        "teragen" => Ok(Box::new(tera::TeraGen)),
        "teravalidate" => Ok(Box::new(tera::ValidateMap)),
        _ => Err(unknown("map", name, MAPS)),
    }
}

/// The built-in reduce (or combine) function `name`.
pub fn reduce(name: &str, _args: &[String], role: ReduceRole) -> Result<Box<dyn ReduceRunner>> {
    if role == ReduceRole::Combine && !COMBINERS.contains(&name) {
        return Err(unknown("combiner", name, COMBINERS));
    }
    match name {
        "sum" => Ok(Box::new(wordcount::Sum)),
        "grep_reduce" => Ok(Box::new(grep::GrepReduce)),
        "teravalidate_reduce" => Ok(Box::new(tera::ValidateReduce)),
        _ => Err(unknown("reduce", name, REDUCES)),
    }
}

fn unknown(kind: &str, name: &str, known: &[&str]) -> TaskError {
    TaskError::Invalid(format!("unknown built-in {kind} function '{name}' (known: {})", known.join(", ")))
}

/// Writes `n` in decimal into `buf`, returning the digits (no allocation).
pub(crate) fn format_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Parses a decimal integer (optional sign, surrounding ASCII spaces allowed).
pub(crate) fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let s = bytes.trim_ascii();
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return std::str::from_utf8(s).ok()?.parse().ok();
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(d - b'0');
    }
    if neg { 0i64.checked_sub_unsigned(v) } else { i64::try_from(v).ok() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_round_trip() {
        let mut buf = [0u8; 20];
        for n in [0, 1, -1, 9, 10, 12345, -98765, i64::MAX, i64::MIN] {
            let s = format_i64(n, &mut buf).to_vec();
            assert_eq!(s, n.to_string().into_bytes());
            assert_eq!(parse_i64(&s), Some(n), "{n}");
        }
        assert_eq!(parse_i64(b" 42 "), Some(42));
        assert_eq!(parse_i64(b"+7"), Some(7));
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"1x"), None);
        assert_eq!(parse_i64(b"99999999999999999999"), None);
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = map("sum", &[]).err().unwrap().to_string();
        assert_eq!(err, "unknown built-in map function 'sum' (known: wordcount, grep, teragen, teravalidate)");
        let err = reduce("grep_reduce", &[], ReduceRole::Combine).err().unwrap().to_string();
        assert_eq!(err, "unknown built-in combiner function 'grep_reduce' (known: sum)");
        assert!(reduce("sum", &[], ReduceRole::Combine).is_ok());
        assert!(reduce("teravalidate_reduce", &[], ReduceRole::Reduce).is_ok());
    }
}
