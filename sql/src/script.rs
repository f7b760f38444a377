//! Scripts: `--hivevar` substitution and splitting into statements.
//!
//! Hive substitutes `${name}`, `${hivevar:name}` and `${env:NAME}` in the
//! text before parsing it; so does Tusk. A variable that is not defined is
//! an error here (Hive leaves it in place, which then fails to parse with a
//! less helpful message). Statements are separated by `;` outside quotes and
//! comments.

use std::collections::HashMap;

use crate::error::{Position, Result, SqlError};

/// One statement of a script and where it starts in the script.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptStatement {
    pub text: String,
    pub start: Position,
}

/// Replaces `${k}`, `${hivevar:k}` (from `vars`) and `${env:K}` (from the
/// environment). `$` not followed by `{` is left alone.
pub fn substitute(text: &str, vars: &HashMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut consumed = 0usize;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let name = after[..end].trim();
        let value = if let Some(k) = name.strip_prefix("env:") {
            std::env::var(k).ok()
        } else {
            let k = name.strip_prefix("hivevar:").unwrap_or(name);
            vars.get(k).cloned()
        };
        match value {
            Some(v) => out.push_str(&v),
            None => {
                return Err(SqlError::Invalid {
                    message: format!("undefined variable ${{{name}}} (define it with --hivevar {name}=VALUE)"),
                    position: Some(position_of(text, consumed + i)),
                });
            }
        }
        consumed += i + 2 + end + 1;
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Line and column of byte offset `at` in `text`.
pub(crate) fn position_of(text: &str, at: usize) -> Position {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() as u64 + 1;
    let column = match before.rfind('\n') {
        Some(nl) => before[nl + 1..].chars().count() as u64 + 1,
        None => before.chars().count() as u64 + 1,
    };
    Position { line, column }
}

#[derive(Clone, Copy, PartialEq)]
enum Lex {
    Code,
    Quote(char),
    LineComment,
    BlockComment,
}

/// Walks `text`, calling `on_semicolon(byte offset)` for every `;` in code.
/// Returns the state at the end (to tell an unterminated quote).
fn scan(text: &str, mut on_semicolon: impl FnMut(usize)) -> Lex {
    let mut state = Lex::Code;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match state {
            Lex::Code => match c {
                '\'' | '"' | '`' => state = Lex::Quote(c),
                '-' if chars.peek().is_some_and(|(_, n)| *n == '-') => state = Lex::LineComment,
                '/' if chars.peek().is_some_and(|(_, n)| *n == '*') => {
                    chars.next();
                    state = Lex::BlockComment;
                }
                ';' => on_semicolon(i),
                _ => {}
            },
            Lex::Quote(q) => {
                if c == '\\' && q != '`' {
                    chars.next();
                } else if c == q {
                    state = Lex::Code;
                }
            }
            Lex::LineComment => {
                if c == '\n' {
                    state = Lex::Code;
                }
            }
            Lex::BlockComment => {
                if c == '*' && chars.peek().is_some_and(|(_, n)| *n == '/') {
                    chars.next();
                    state = Lex::Code;
                }
            }
        }
    }
    state
}

/// True when `text` has nothing but whitespace and comments.
fn is_blank(text: &str) -> bool {
    let mut s = text.trim_start();
    loop {
        if s.is_empty() {
            return true;
        }
        if let Some(r) = s.strip_prefix("--") {
            s = r.split_once('\n').map(|(_, r)| r).unwrap_or("").trim_start();
        } else if let Some(r) = s.strip_prefix("/*") {
            match r.split_once("*/") {
                Some((_, r)) => s = r.trim_start(),
                None => return true,
            }
        } else {
            return false;
        }
    }
}

/// Splits a script into statements (without the `;`), skipping empty ones.
pub fn split(text: &str) -> Vec<ScriptStatement> {
    let mut cuts = Vec::new();
    scan(text, |i| cuts.push(i));
    let mut out = Vec::new();
    let mut from = 0;
    for end in cuts.into_iter().chain(std::iter::once(text.len())) {
        let piece = &text[from..end];
        if !is_blank(piece) {
            let lead = piece.len() - piece.trim_start().len();
            out.push(ScriptStatement { text: piece.trim().to_string(), start: position_of(text, from + lead) });
        }
        from = (end + 1).min(text.len());
    }
    out
}

/// True when `buffer` ends a statement: its last code character is `;`
/// (whitespace and comments may follow), outside any quote. The
/// interactive shell reads lines until this holds.
pub fn is_complete(buffer: &str) -> bool {
    let mut last = None;
    let end = scan(buffer, |i| last = Some(i));
    if matches!(end, Lex::Quote(_) | Lex::BlockComment) {
        return false;
    }
    match last {
        Some(i) => is_blank(&buffer[i + 1..]),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn substitutes_hivevars() {
        let v = vars(&[("t", "sales"), ("d", "2024-01-01")]);
        assert_eq!(
            substitute("SELECT * FROM ${t} WHERE dt = '${hivevar:d}'", &v).unwrap(),
            "SELECT * FROM sales WHERE dt = '2024-01-01'"
        );
        assert_eq!(substitute("SELECT $1, '$x'", &v).unwrap(), "SELECT $1, '$x'");
        let e = substitute("SELECT 1;\nSELECT ${nope}", &v).unwrap_err();
        assert_eq!(e.position(), Some(Position { line: 2, column: 8 }));
        assert!(e.to_string().contains("undefined variable ${nope}"), "{e}");
    }

    #[test]
    fn splits_outside_quotes_and_comments() {
        let s = split("SELECT ';'; -- a; comment\nSELECT \"x;\" /* ; */ ;\n\n  SHOW TABLES");
        let texts: Vec<_> = s.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["SELECT ';'", "-- a; comment\nSELECT \"x;\" /* ; */", "SHOW TABLES"]);
        assert_eq!(s[0].start, Position { line: 1, column: 1 });
        assert_eq!(s[1].start, Position { line: 1, column: 13 });
        assert_eq!(s[2].start, Position { line: 4, column: 3 });
        assert!(split(" ; -- nothing\n;").is_empty());
        assert_eq!(split("SELECT 'it\\'s;'").len(), 1);
    }

    #[test]
    fn completeness() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1;  -- done\n"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT 1 /* ; */"));
        assert!(is_complete("SELECT\n  1\n;"));
    }
}
