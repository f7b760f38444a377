//! HiveQL parsing: sqlparser's Hive dialect, with the few forms it lacks
//! handled on the token stream first.
//!
//! - `SHOW PARTITIONS t [PARTITION (k='v', …)]` (the dialect mis-reads it as
//!   `SHOW <variable>`) is recognised here.
//! - `STORED AS CSV` / `STORED AS JSON` are not file formats sqlparser
//!   knows: the token is replaced by `TEXTFILE` / `JSONFILE` and the real
//!   format remembered.
//! - `"text"` is a string literal in Hive (an identifier in the dialect): the
//!   token becomes a single-quoted string. Use backquotes for identifiers.
//!
//! Parser errors become [`SqlError::Syntax`] with the position taken from
//! sqlparser's message (`… at Line: L, Column: C`), or the end of the
//! statement when the parser ran out of input.

use datafusion::sql::sqlparser::ast::{Expr, ObjectName, Statement};
use datafusion::sql::sqlparser::dialect::HiveDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Word};

use crate::error::{Position, Result, SqlError};
use crate::script::position_of;

/// A parsed statement.
#[derive(Debug)]
pub enum Command {
    /// Anything sqlparser parsed; `format` is "csv" or "json" when the
    /// statement said `STORED AS CSV|JSON`.
    Statement { stmt: Box<Statement>, format: Option<&'static str> },
    /// `SHOW PARTITIONS t [PARTITION (…)]`.
    ShowPartitions { table: ObjectName, spec: Vec<Expr> },
}

/// Parses one statement (no trailing `;` needed).
pub fn parse(sql: &str) -> Result<Command> {
    let dialect = HiveDialect {};
    let mut tokens = Tokenizer::new(&dialect, sql).tokenize_with_location().map_err(|e| syntax(sql, &e.to_string()))?;
    // Double-quoted text is a string literal in Hive.
    for t in tokens.iter_mut() {
        if let Token::Word(Word { value, quote_style: Some('"'), .. }) = &t.token {
            t.token = Token::SingleQuotedString(value.clone());
        }
    }
    let words: Vec<(usize, String)> = tokens
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => Some((i, w.value.to_ascii_uppercase())),
            Token::Whitespace(_) => None,
            _ => Some((i, String::new())),
        })
        .collect();
    if words.len() >= 2 && words[0].1 == "SHOW" && words[1].1 == "PARTITIONS" {
        return show_partitions(sql, tokens[words[1].0 + 1..].to_vec());
    }
    let mut format = None;
    for w in words.windows(3) {
        if w[0].1 == "STORED" && w[1].1 == "AS" && (w[2].1 == "CSV" || w[2].1 == "JSON") {
            let (name, real) = if w[2].1 == "CSV" { ("TEXTFILE", "csv") } else { ("JSONFILE", "json") };
            tokens[w[2].0].token = Token::make_keyword(name);
            format = Some(real);
        }
    }
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let stmt = parser.parse_statement().map_err(|e| parser_error(sql, e))?;
    while parser.consume_token(&Token::SemiColon) {}
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(SqlError::Syntax {
            message: format!("unexpected {} after the end of the statement", next.token),
            position: Some(Position { line: next.span.start.line, column: next.span.start.column }),
        });
    }
    Ok(Command::Statement { stmt: Box::new(stmt), format })
}

fn show_partitions(sql: &str, rest: Vec<TokenWithSpan>) -> Result<Command> {
    let mut p = Parser::new(&HiveDialect {}).with_tokens_with_locations(rest);
    let table = p.parse_object_name(false).map_err(|e| parser_error(sql, e))?;
    let mut spec = vec![];
    if p.parse_keyword(Keyword::PARTITION) {
        p.expect_token(&Token::LParen).map_err(|e| parser_error(sql, e))?;
        spec = p.parse_comma_separated(Parser::parse_expr).map_err(|e| parser_error(sql, e))?;
        p.expect_token(&Token::RParen).map_err(|e| parser_error(sql, e))?;
    }
    let next = p.peek_token();
    if next.token != Token::EOF {
        return Err(SqlError::Syntax {
            message: format!("expected PARTITION (...) or the end of SHOW PARTITIONS, found {}", next.token),
            position: Some(Position { line: next.span.start.line, column: next.span.start.column }),
        });
    }
    Ok(Command::ShowPartitions { table, spec })
}

fn parser_error(sql: &str, e: ParserError) -> SqlError {
    let text = match e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
        ParserError::RecursionLimitExceeded => "statement nested too deeply".to_string(),
    };
    syntax(sql, &text)
}

/// A syntax error from sqlparser's text: the position is cut off the end of
/// the message (`… at Line: 1, Column: 15`); without one (end of input) the
/// error points just past the statement.
fn syntax(sql: &str, text: &str) -> SqlError {
    let text = text.strip_prefix("sql parser error: ").unwrap_or(text);
    if let Some(at) = text.rfind(" at Line: ")
        && let Some((l, c)) = text[at + " at Line: ".len()..].split_once(", Column: ")
        && let (Ok(line), Ok(column)) = (l.trim().parse(), c.trim().parse())
    {
        return SqlError::Syntax { message: tidy(&text[..at]), position: Some(Position { line, column }) };
    }
    let end = position_of(sql, sql.trim_end().len());
    SqlError::Syntax { message: tidy(text), position: Some(end) }
}

/// sqlparser says "Expected: X, found: Y"; keep it but lower-case the start.
fn tidy(msg: &str) -> String {
    let m = msg.replacen("Expected: ", "expected ", 1).replacen(", found: ", ", found ", 1);
    if m.contains("found EOF") { m.replace("found EOF", "found the end of the statement") } else { m }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(sql: &str) -> (Statement, Option<&'static str>) {
        match parse(sql).unwrap() {
            Command::Statement { stmt, format } => (*stmt, format),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn hive_forms_parse() {
        let (s, f) = stmt("CREATE TABLE t (a INT) STORED AS CSV");
        assert!(matches!(s, Statement::CreateTable(_)));
        assert_eq!(f, Some("csv"));
        let (_, f) = stmt("create external table t (a int) stored as json location '/x'");
        assert_eq!(f, Some("json"));
        let (_, f) = stmt("CREATE TABLE t (a INT) STORED AS PARQUET;");
        assert_eq!(f, None);
        match parse("SHOW PARTITIONS db.t PARTITION (dt='x')").unwrap() {
            Command::ShowPartitions { table, spec } => {
                assert_eq!(table.to_string(), "db.t");
                assert_eq!(spec.len(), 1);
            }
            c => panic!("{c:?}"),
        }
        // "text" is a string in Hive.
        let (s, _) = stmt("SELECT * FROM t WHERE name = \"bob\"");
        assert!(s.to_string().contains("'bob'"), "{s}");
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("SELECT a FROM t WHERE").unwrap_err();
        assert_eq!(e.position(), Some(Position { line: 1, column: 22 }), "{e}");
        assert!(e.to_string().contains("end of the statement"), "{e}");
        let e = parse("SELECT a FRM t").unwrap_err();
        assert_eq!(e.position(), Some(Position { line: 1, column: 14 }), "{e}");
        let e = parse("SELECT 1 2").unwrap_err();
        assert!(e.position().is_some(), "{e}");
        assert!(parse("SHOW PARTITIONS t garbage").is_err());
    }
}
