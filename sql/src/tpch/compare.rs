//! Comparing a result set with a known answer.
//!
//! Cells are compared as text, trimmed, except numbers: two cells that both
//! read as numbers are equal when they differ by at most 10^-10 of their
//! magnitude (floating-point sums added in another order), or by at most
//! one unit in the last decimal place of the less precise of the two,
//! capped at 0.01 (one engine rounds or truncates an average or a quotient
//! to fewer places than the other: DataFusion's decimal AVG truncates to
//! six places). So `0.050081` (a decimal with six places) matches
//! `0.05008133906964238` (a double), and `15.49` would match
//! `15.48654581228407`, but `0.03` never matches `0.05`, and exact decimal
//! sums must agree to their last place. NULL is an empty cell on both sides.
//!
//! Rows are compared in order. A query whose ORDER BY can leave ties
//! ([`ORDER_TIES`]) may legitimately return tied rows in another order;
//! its rows are compared as multisets when the in-order comparison fails.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// Queries whose ORDER BY does not fully determine the row order (ties on
/// the sort keys are possible): Q3 (revenue, o_orderdate), Q5 (revenue),
/// Q10 (revenue), Q11 (value), Q18 (o_totalprice, o_orderdate). Every
/// other query either returns one row or sorts by keys unique in its
/// result (Q2: ps (partkey, suppkey) is unique; Q13, Q16, Q21: the group
/// keys are among the sort keys).
pub const ORDER_TIES: [usize; 5] = [3, 5, 10, 11, 18];

/// Most mismatching rows named in an error.
const SHOWN: usize = 5;

/// The cells of a result set as text (Arrow's display; NULL as empty).
pub fn result_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, String> {
    let opts = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot display the result: {e}"))?;
        for r in 0..b.num_rows() {
            rows.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    Ok(rows)
}

/// A CSV answer: header line, then `|`-separated rows. Only the last empty
/// line (the file's final newline) is dropped: a row of one NULL is an
/// empty line.
fn parse_csv(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let Some((header, rows)) = lines.split_first() else {
        return Err("the expected answer is empty (no header line)".into());
    };
    let header: Vec<String> = header.split('|').map(str::to_string).collect();
    let rows = rows.iter().map(|l| l.split('|').map(str::to_string).collect()).collect();
    Ok((header, rows))
}

/// Compares `actual` with the CSV answer `expected_csv`, rows in order.
pub fn compare(expected_csv: &str, actual: &[RecordBatch]) -> Result<(), String> {
    let (header, expected) = parse_csv(expected_csv)?;
    compare_rows(&header, &expected, &result_rows(actual)?, false)
}

/// Compares `actual` with the CSV answer `expected_csv` as multisets of rows.
pub fn compare_unordered(expected_csv: &str, actual: &[RecordBatch]) -> Result<(), String> {
    let (header, expected) = parse_csv(expected_csv)?;
    compare_rows(&header, &expected, &result_rows(actual)?, true)
}

/// Compares the result of TPC-H query `n` with its CSV answer: in order,
/// or as multisets for the queries of [`ORDER_TIES`].
pub fn check(n: usize, expected_csv: &str, actual: &[RecordBatch]) -> Result<(), String> {
    let (header, expected) = parse_csv(expected_csv)?;
    let actual = result_rows(actual)?;
    compare_rows(&header, &expected, &actual, false)
        .or_else(|e| if ORDER_TIES.contains(&n) { compare_rows(&header, &expected, &actual, true) } else { Err(e) })
}

/// Compares two results of TPC-H query `n` (two engines on the same data)
/// with the same rules as [`check`].
pub fn check_same(n: usize, expected: &[RecordBatch], actual: &[RecordBatch]) -> Result<(), String> {
    let (expected, actual) = (result_rows(expected)?, result_rows(actual)?);
    let width = expected.first().or(actual.first()).map_or(0, Vec::len);
    let header: Vec<String> = (1..=width).map(|i| format!("column {i}")).collect();
    compare_rows(&header, &expected, &actual, false)
        .or_else(|e| if ORDER_TIES.contains(&n) { compare_rows(&header, &expected, &actual, true) } else { Err(e) })
}

fn compare_rows(header: &[String], expected: &[Vec<String>], actual: &[Vec<String>], unordered: bool) -> Result<(), String> {
    if expected.len() != actual.len() {
        return Err(format!("{} rows, expected {}{}", actual.len(), expected.len(), first_rows(actual)));
    }
    if let Some((i, r)) = actual.iter().enumerate().find(|(_, r)| r.len() != header.len()) {
        return Err(format!("row {}: {} columns, expected {} ({})", i + 1, r.len(), header.len(), header.join("|")));
    }
    if let Some((i, r)) = expected.iter().enumerate().find(|(_, r)| r.len() != header.len()) {
        return Err(format!("expected row {}: {} cells, the header has {}", i + 1, r.len(), header.len()));
    }
    let mut problems = Vec::new();
    if unordered {
        let mut used = vec![false; actual.len()];
        for (i, e) in expected.iter().enumerate() {
            let found = actual.iter().enumerate().position(|(j, a)| !used[j] && row_matches(e, a));
            match found {
                Some(j) => used[j] = true,
                None => problems.push(format!("expected row {} not found: {}", i + 1, e.join("|"))),
            }
        }
    } else {
        for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
            if let Some(c) = (0..e.len()).find(|&c| !cell_matches(&e[c], &a[c])) {
                problems.push(format!(
                    "row {}, {}: {:?}, expected {:?}\n    got      {}\n    expected {}",
                    i + 1,
                    header[c],
                    a[c],
                    e[c],
                    a.join("|"),
                    e.join("|")
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let n = problems.len();
    let mut msg = problems.into_iter().take(SHOWN).collect::<Vec<_>>().join("\n  ");
    if n > SHOWN {
        msg.push_str(&format!("\n  … {} more", n - SHOWN));
    }
    Err(format!("{n} of {} rows differ{}:\n  {msg}", expected.len(), if unordered { " (compared unordered)" } else { "" }))
}

fn first_rows(rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = rows.iter().take(3).map(|r| r.join("|")).collect();
    format!("; first rows: {}", shown.join(" / "))
}

fn row_matches(expected: &[String], actual: &[String]) -> bool {
    expected.len() == actual.len() && expected.iter().zip(actual).all(|(e, a)| cell_matches(e, a))
}

/// See the module documentation.
fn cell_matches(expected: &str, actual: &str) -> bool {
    let (e, a) = (expected.trim(), actual.trim());
    if e == a {
        return true;
    }
    match (number(e), number(a)) {
        (Some((x, dx)), Some((y, dy))) => {
            let diff = (x - y).abs();
            let ulp = 10f64.powi(-(dx.min(dy) as i32));
            let magnitude = x.abs().max(y.abs());
            diff <= 1e-10 * magnitude || diff <= ulp.min(0.01) + f64::EPSILON * magnitude
        }
        _ => false,
    }
}

/// A plain decimal number (`-12`, `3.50`, `1.5e3`) and its decimal places;
/// `None` for anything else (dates, phone numbers, names, `inf`).
fn number(s: &str) -> Option<(f64, usize)> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, x)) => (m, x.parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let places = (frac.len() as i32 - exponent).max(0) as usize;
    s.parse::<f64>().ok().map(|v| (v, places))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Decimal128Array, Int64Array, StringArray};
    use std::sync::Arc;

    fn batch(names: &[&str], amounts: &[Option<i128>], counts: &[i64]) -> RecordBatch {
        let names: ArrayRef = Arc::new(StringArray::from(names.to_vec()));
        let amounts: ArrayRef = Arc::new(Decimal128Array::from(amounts.to_vec()).with_precision_and_scale(15, 4).unwrap());
        let counts: ArrayRef = Arc::new(Int64Array::from(counts.to_vec()));
        RecordBatch::try_from_iter([("name", names), ("amount", amounts), ("n", counts)]).unwrap()
    }

    #[test]
    fn numbers_within_tolerance_strings_exact() {
        assert!(cell_matches("0.05008133906964238", "0.050081"));
        assert!(cell_matches("15.48654581228407", "15.49"));
        assert!(cell_matches("25.575154611454693", "25.575154"), "truncated");
        assert!(!cell_matches("25.575156611454693", "25.575154"));
        assert!(!cell_matches("0.03", "0.05"));
        assert!(!cell_matches("100", "101"));
        assert!(cell_matches("1193053.2253", "1193053.225300"));
        assert!(cell_matches("526165934.000839", "526165934.0008"));
        assert!(!cell_matches("526165934.000839", "526165934.1008"));
        assert!(cell_matches("0.0", "0.000000"));
        assert!(cell_matches("ly final ", "ly final"));
        assert!(!cell_matches("Supplier#000000077", "Supplier#000000078"));
        assert!(!cell_matches("1995-03-15", "1995-03-16"));
        assert!(!cell_matches("", "0"));
        assert!(number("inf").is_none() && number("25-989-741-2988").is_none() && number("-").is_none());
        assert_eq!(number("-1.50"), Some((-1.5, 2)));
        assert_eq!(number("1.5e3"), Some((1500.0, 0)));
    }

    #[test]
    fn rows_in_order_or_as_multisets() {
        let csv = "name|amount|n\nann|1.5000|3\nbob||4\n";
        let right = [batch(&["ann", "bob"], &[Some(15000), None], &[3, 4])];
        assert_eq!(compare(csv, &right), Ok(()));
        let swapped = [batch(&["bob", "ann"], &[None, Some(15000)], &[4, 3])];
        let e = compare(csv, &swapped).unwrap_err();
        assert!(e.contains("2 of 2 rows differ") && e.contains("row 1, name"), "{e}");
        assert_eq!(compare_unordered(csv, &swapped), Ok(()));
        assert_eq!(check(3, csv, &swapped), Ok(()), "Q3 may order ties either way");
        assert!(check(1, csv, &swapped).is_err(), "Q1's order is fully determined");
        let wrong = [batch(&["ann", "bob"], &[Some(15100), None], &[3, 4])];
        let e = compare(csv, &wrong).unwrap_err();
        assert!(e.contains("row 1, amount: \"1.5100\", expected \"1.5000\""), "{e}");
        assert!(compare_unordered(csv, &wrong).unwrap_err().contains("expected row 1 not found"));
        let short = [batch(&["ann"], &[Some(15000)], &[3])];
        assert!(compare(csv, &short).unwrap_err().starts_with("1 rows, expected 2"));
        assert!(compare("", &[]).is_err());
        assert_eq!(compare("avg_yearly\n\n", &[single_null()]), Ok(()), "one NULL row");
        assert!(compare("avg_yearly\n", &[single_null()]).is_err(), "no rows expected");
    }

    fn single_null() -> RecordBatch {
        let a: ArrayRef = Arc::new(Decimal128Array::from(vec![None::<i128>]).with_precision_and_scale(15, 2).unwrap());
        RecordBatch::try_from_iter([("avg_yearly", a)]).unwrap()
    }

    #[test]
    fn two_engines_compared() {
        let a = [batch(&["ann", "bob"], &[Some(15000), None], &[3, 4])];
        let b = [batch(&["bob", "ann"], &[None, Some(15000)], &[4, 3])];
        assert_eq!(check_same(1, &a, &a), Ok(()));
        assert!(check_same(1, &a, &b).is_err());
        assert_eq!(check_same(11, &a, &b), Ok(()));
        assert!(check_same(1, &a, &[]).is_err());
    }
}
