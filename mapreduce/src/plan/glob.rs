//! Glob patterns over DFS paths, as Hadoop's `globStatus`: `*` (any run of
//! characters within a component), `?` (one character), `[abc]`, `[a-z]`,
//! `[^a]` / `[!a]` (classes), `{a,b}` (alternatives, nestable, may contain
//! `/`) and `\x` (a literal `x`). Matching is per path component, so `*`
//! never crosses a `/`.

use std::collections::BTreeMap;
use tusk_client::{Client, FileStatus};
use tusk_common::path;

use super::{is_missing, stat_if_exists};
use crate::error::{Result, TaskError};

/// Most patterns one `{...}` expansion may produce.
const MAX_ALTERNATIVES: usize = 10_000;

/// True when `p` has glob syntax (otherwise it names one path).
pub(crate) fn has_magic(p: &str) -> bool {
    p.contains(['*', '?', '[', '{', '\\'])
}

/// Every existing path matching `pattern` (absolute), sorted by path,
/// each once. Directories are matched like files (the caller lists them).
pub(crate) async fn glob(client: &Client, pattern: &str) -> Result<Vec<FileStatus>> {
    let bad = |m: String| TaskError::Invalid(format!("input pattern {pattern}: {m}"));
    let mut found: BTreeMap<String, FileStatus> = BTreeMap::new();
    for alt in expand_braces(pattern).map_err(bad)? {
        let components = path::components(&alt).map(parse_component).collect::<std::result::Result<Vec<_>, _>>();
        let components = components.map_err(bad)?;
        // Candidates so far, with their status when a listing gave it.
        let mut paths: Vec<(String, Option<FileStatus>)> = vec![("/".to_string(), None)];
        for tokens in &components {
            if let Some(literal) = literal(tokens) {
                paths = paths.into_iter().map(|(p, _)| (path::join(&p, &literal), None)).collect();
                continue;
            }
            let mut next = Vec::new();
            for (dir, _) in paths {
                let entries = match client.list(&dir).await {
                    Ok(e) => e,
                    Err(e) if is_missing(&e) => continue,
                    Err(e) => return Err(e.into()),
                };
                // `list` of a file returns the file: nothing below it.
                if entries.len() == 1 && entries[0].path == dir && !entries[0].is_dir {
                    continue;
                }
                next.extend(entries.into_iter().filter(|e| matches(tokens, &e.name)).map(|e| (e.path.clone(), Some(e))));
            }
            paths = next;
        }
        for (p, status) in paths {
            let status = match status {
                Some(s) => Some(s),
                None => stat_if_exists(client, &p).await?,
            };
            if let Some(s) = status {
                found.insert(p, s);
            }
        }
    }
    Ok(found.into_values().collect())
}

/// One element of a component pattern.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(char),
    /// `?`
    Any,
    /// `*`
    Star,
    /// `[...]`: inclusive ranges (a single char is a range of one).
    Class { negated: bool, ranges: Vec<(char, char)> },
}

/// The literal text of a component without wildcards.
fn literal(tokens: &[Token]) -> Option<String> {
    tokens.iter().map(|t| if let Token::Literal(c) = t { Some(*c) } else { None }).collect()
}

/// Index just past the `]` closing the class that starts at `chars[open]`
/// (a `]` right after `[`, `[^` or `[!` is a member).
fn class_end(chars: &[char], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if matches!(chars.get(i), Some('^' | '!')) {
        i += 1;
    }
    if chars.get(i) == Some(&']') {
        i += 1;
    }
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            ']' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Parses one path component's pattern (no `/`, no braces).
fn parse_component(s: &str) -> std::result::Result<Vec<Token>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                // A trailing backslash stands for itself.
                out.push(Token::Literal(chars.get(i + 1).copied().unwrap_or('\\')));
                i += 2;
            }
            '*' => {
                if out.last() != Some(&Token::Star) {
                    out.push(Token::Star);
                }
                i += 1;
            }
            '?' => {
                out.push(Token::Any);
                i += 1;
            }
            '[' => {
                let end = class_end(&chars, i).ok_or_else(|| format!("unclosed '[' in '{s}'"))?;
                out.push(parse_class(&chars[i + 1..end - 1]));
                i = end;
            }
            c => {
                out.push(Token::Literal(c));
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The members of a class (the text between `[` and `]`).
fn parse_class(body: &[char]) -> Token {
    let (negated, body) = match body.first() {
        Some('^' | '!') => (true, &body[1..]),
        _ => (false, body),
    };
    // Unescape first, remembering which chars were escaped (never a range dash).
    let mut items: Vec<(char, bool)> = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body[i] == '\\' && i + 1 < body.len() {
            items.push((body[i + 1], true));
            i += 2;
        } else {
            items.push((body[i], false));
            i += 1;
        }
    }
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let lo = items[i].0;
        if i + 2 < items.len() && items[i + 1] == ('-', false) {
            ranges.push((lo, items[i + 2].0));
            i += 3;
        } else {
            ranges.push((lo, lo));
            i += 1;
        }
    }
    Token::Class { negated, ranges }
}

/// Whether `name` matches the component pattern (backtracking on the last
/// `*` only, which suffices when every other token matches one char).
fn matches(tokens: &[Token], name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    let (mut t, mut c) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while c < chars.len() {
        let step = match tokens.get(t) {
            Some(Token::Star) => {
                star = Some((t, c));
                t += 1;
                continue;
            }
            Some(Token::Literal(l)) => *l == chars[c],
            Some(Token::Any) => true,
            Some(Token::Class { negated, ranges }) => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&chars[c])) != *negated
            }
            None => false,
        };
        if step {
            t += 1;
            c += 1;
        } else if let Some((st, sc)) = star {
            // Let the last `*` take one more char and retry.
            t = st + 1;
            c = sc + 1;
            star = Some((st, sc + 1));
        } else {
            return false;
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::Star)
}

/// Expands `{a,b}` alternatives (nested, possibly containing `/`) into
/// brace-free patterns, in order. Braces inside a `[...]` class or escaped
/// are literal.
fn expand_braces(pattern: &str) -> std::result::Result<Vec<String>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    expand_into(&chars, &mut out)?;
    Ok(out)
}

fn expand_into(chars: &[char], out: &mut Vec<String>) -> std::result::Result<(), String> {
    let Some(open) = first_group(chars)? else {
        out.push(chars.iter().collect());
        return Ok(());
    };
    let (close, commas) = group_end(chars, open)?;
    let prefix = &chars[..open];
    let suffix = &chars[close + 1..];
    let mut bounds = vec![open];
    bounds.extend(commas);
    bounds.push(close);
    for w in bounds.windows(2) {
        let alt = &chars[w[0] + 1..w[1]];
        let joined: Vec<char> = prefix.iter().chain(alt).chain(suffix).copied().collect();
        expand_into(&joined, out)?;
        if out.len() > MAX_ALTERNATIVES {
            return Err(format!("more than {MAX_ALTERNATIVES} alternatives"));
        }
    }
    Ok(())
}

/// Index of the first unescaped `{` outside a class.
fn first_group(chars: &[char]) -> std::result::Result<Option<usize>, String> {
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '[' => i = class_end(chars, i).ok_or("unclosed '['")?,
            '{' => return Ok(Some(i)),
            _ => i += 1,
        }
    }
    Ok(None)
}

/// The `}` closing the group opened at `open`, and the top-level commas in it.
fn group_end(chars: &[char], open: usize) -> std::result::Result<(usize, Vec<usize>), String> {
    let mut depth = 0;
    let mut commas = Vec::new();
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '[' => {
                i = class_end(chars, i).ok_or("unclosed '['")?;
                continue;
            }
            '{' => depth += 1,
            '}' if depth == 0 => return Ok((i, commas)),
            '}' => depth -= 1,
            ',' if depth == 0 => commas.push(i),
            _ => {}
        }
        i += 1;
    }
    Err("unclosed '{'".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        matches(&parse_component(pattern).unwrap(), name)
    }

    #[test]
    fn magic_is_recognized() {
        for p in ["/a/*", "/a?", "/[ab]", "/{a,b}", "/a\\*"] {
            assert!(has_magic(p), "{p}");
        }
        for p in ["/a/b.txt", "/a-b_c/d,e"] {
            assert!(!has_magic(p), "{p}");
        }
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("*", "anything"));
        assert!(m("*", ""));
        assert!(m("part-*", "part-r-00000"));
        assert!(!m("part-*", "_part"));
        assert!(m("*.txt", "a.b.txt"));
        assert!(!m("*.txt", "a.txt.gz"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(m("a*b*c", "abcbc"));
        assert!(!m("a*b*c", "abcb"));
        assert!(m("**x", "yyx"));
        assert!(m("?", "é"));
        assert!(!m("?", ""));
        assert!(!m("?", "ab"));
        assert!(m("f??e", "file"));
        assert!(m("*a", "aaaa"));
        assert!(!m("a", "ab"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("[abc]x", "bx"));
        assert!(!m("[abc]x", "dx"));
        assert!(m("part-0000[0-3]", "part-00002"));
        assert!(!m("part-0000[0-3]", "part-00004"));
        assert!(m("[^a-c]", "d"));
        assert!(!m("[!a-c]", "b"));
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("[\\-x]", "-"));
        assert!(!m("[\\-x]", "a"));
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
        assert!(m("a\\?b", "a?b"));
        assert!(m("x\\", "x\\"));
        assert!(parse_component("[ab").unwrap_err().contains("unclosed '['"));
        assert_eq!(literal(&parse_component("a\\*b").unwrap()).as_deref(), Some("a*b"));
        assert_eq!(literal(&parse_component("a*").unwrap()), None);
    }

    #[test]
    fn braces_expand_in_order_nested_and_across_slashes() {
        let e = |p| expand_braces(p).unwrap();
        assert_eq!(e("/a/b"), vec!["/a/b"]);
        assert_eq!(e("/d/{a,b}.txt"), vec!["/d/a.txt", "/d/b.txt"]);
        assert_eq!(e("/{x/1,y}/f"), vec!["/x/1/f", "/y/f"]);
        assert_eq!(e("/{a,b{c,d}}"), vec!["/a", "/bc", "/bd"]);
        assert_eq!(e("/{a,b}{1,2}"), vec!["/a1", "/a2", "/b1", "/b2"]);
        assert_eq!(e("/{a,}x"), vec!["/ax", "/x"]);
        assert_eq!(e("/[{]\\{a}"), vec!["/[{]\\{a}"]);
        assert!(expand_braces("/{a,b").unwrap_err().contains("unclosed '{'"));
        let many = "/{0,1,2,3,4,5,6,7,8,9}".repeat(5);
        assert!(expand_braces(&many).unwrap_err().contains("alternatives"));
    }

    #[test]
    fn components_with_braces_match_each_alternative() {
        let any = |pattern: &str, name: &str| {
            expand_braces(pattern).unwrap().iter().any(|p| m(p, name))
        };
        assert!(any("part-{m,r}-*", "part-m-00001"));
        assert!(any("part-{m,r}-*", "part-r-00001"));
        assert!(!any("part-{m,r}-*", "part-x-00001"));
        assert!(any("{*.txt,*.log}", "a.log"));
    }
}
