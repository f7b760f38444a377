//! How `tusk sql` prints a result set on stdout, and the status line that
//! goes with it on stderr.
//!
//! Every format prints its header even when there are no rows, except
//! `json`, which has no header. NULL is `NULL` in `table` and `tsv` (as the
//! Hive CLI prints it), an empty field in `csv` and `null` in `json`.

use std::sync::Arc;
use std::time::Duration;

use arrow::csv::WriterBuilder as CsvWriterBuilder;
use arrow::array::{Array, ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::WriterBuilder as JsonWriterBuilder;
use arrow::json::writer::LineDelimited;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow::util::pretty::pretty_format_batches_with_options;
use tusk_sql::Outcome;

/// The output format of result rows (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An aligned table with a header, for people.
    #[default]
    Table,
    /// RFC 4180 CSV with a header line; fields are quoted only when needed.
    Csv,
    /// Tab-separated with a header line, no quoting, NULL as `NULL`; tabs,
    /// newlines and backslashes inside values are escaped (`\t`, `\n`, `\\`).
    Tsv,
    /// One JSON object per row (JSON Lines), NULL as `null`.
    Json,
}

/// Renders a result set in `format`; the text ends with a newline unless
/// it is empty (`json` with no rows).
pub fn render(format: Format, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    match format {
        Format::Table => table(schema, batches),
        Format::Csv => csv(schema, batches),
        Format::Tsv => tsv(schema, batches),
        Format::Json => json(batches),
    }
}

/// The status line of a statement: `3 rows (0.120 s)`, or the statement's
/// own message (`OK (0.015 s)`).
pub fn summary(outcome: &Outcome, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    match outcome {
        Outcome::Rows { .. } => {
            let n = outcome.row_count();
            format!("{n} {} ({secs:.3} s)", if n == 1 { "row" } else { "rows" })
        }
        Outcome::Done(message) => format!("{message} ({secs:.3} s)"),
    }
}

/// Timestamps as Hive prints them: `2026-01-02 03:04:05`, with the
/// fraction of a second only when there is one (`.120`).
const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

fn display_options() -> FormatOptions<'static> {
    FormatOptions::default().with_null("NULL").with_timestamp_format(Some(TIMESTAMP_FORMAT)).with_display_error(true)
}

fn table(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    // A leading empty batch gives the header even when no row follows.
    let mut all = Vec::with_capacity(batches.len() + 1);
    all.push(RecordBatch::new_empty(schema.clone()));
    all.extend(batches.iter().cloned());
    let text = pretty_format_batches_with_options(&all, &display_options())?.to_string();
    let mut out = text.into_bytes();
    out.push(b'\n');
    Ok(out)
}

fn csv(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::new();
    {
        let mut writer =
            CsvWriterBuilder::new().with_header(true).with_timestamp_format(TIMESTAMP_FORMAT.to_string()).build(&mut out);
        // The header is written with the first batch, even an empty one.
        writer.write(&nested_as_text(&RecordBatch::new_empty(schema.clone()))?)?;
        for batch in batches {
            writer.write(&nested_as_text(batch)?)?;
        }
    }
    Ok(out)
}

/// The batch with its lists, maps and structs as text (`[1, NULL]`,
/// `{x: 1}`), which the CSV writer refuses otherwise.
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    if !batch.columns().iter().any(|c| c.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = display_options();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !column.data_type().is_nested() {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let text = (0..column.len())
            .map(|i| if column.is_null(i) { Ok(None) } else { formatter.value(i).try_to_string().map(Some) })
            .collect::<Result<StringArray, ArrowError>>()?;
        fields.push(Field::new(field.name(), DataType::Utf8, true));
        columns.push(Arc::new(text) as ArrayRef);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

fn tsv(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut out = String::new();
    let names: Vec<String> = schema.fields().iter().map(|f| tsv_escape(f.name())).collect();
    out.push_str(&names.join("\t"));
    out.push('\n');
    let options = display_options();
    for batch in batches {
        let formatters =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            for (i, f) in formatters.iter().enumerate() {
                if i > 0 {
                    out.push('\t');
                }
                out.push_str(&tsv_escape(&f.value(row).try_to_string()?));
            }
            out.push('\n');
        }
    }
    Ok(out.into_bytes())
}

/// Keeps one row per line and one field per tab.
fn tsv_escape(s: &str) -> String {
    if !s.contains(['\t', '\n', '\r', '\\']) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

fn json(batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::new();
    let mut writer = JsonWriterBuilder::new().with_explicit_nulls(true).build::<_, LineDelimited>(&mut out);
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, ListArray, TimestampMillisecondArray};
    use arrow::datatypes::Int32Type;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true), Field::new("b", DataType::Utf8, true)]))
    }

    /// Two batches: (1, 'x'), (2, NULL) and (NULL, 'say "hi", bye').
    fn batches() -> Vec<RecordBatch> {
        let one = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(vec![Some(1), Some(2)])) as ArrayRef,
                Arc::new(StringArray::from(vec![Some("x"), None])) as ArrayRef,
            ],
        )
        .unwrap();
        let two = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(vec![None])) as ArrayRef,
                Arc::new(StringArray::from(vec![Some("say \"hi\", bye")])) as ArrayRef,
            ],
        )
        .unwrap();
        vec![one, two]
    }

    fn text(format: Format, batches: &[RecordBatch]) -> String {
        String::from_utf8(render(format, &schema(), batches).unwrap()).unwrap()
    }

    #[test]
    fn table_aligns_and_shows_null() {
        let expected = "\
+------+---------------+
| a    | b             |
+------+---------------+
| 1    | x             |
| 2    | NULL          |
| NULL | say \"hi\", bye |
+------+---------------+
";
        assert_eq!(text(Format::Table, &batches()), expected);
    }

    #[test]
    fn table_of_no_rows_has_its_header() {
        assert_eq!(text(Format::Table, &[]), "+---+---+\n| a | b |\n+---+---+\n+---+---+\n");
        let empty = RecordBatch::new_empty(schema());
        assert_eq!(text(Format::Table, &[empty]), "+---+---+\n| a | b |\n+---+---+\n+---+---+\n");
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(text(Format::Csv, &batches()), "a,b\n1,x\n2,\n,\"say \"\"hi\"\", bye\"\n");
        assert_eq!(text(Format::Csv, &[]), "a,b\n");
    }

    #[test]
    fn tsv_prints_null_and_escapes() {
        assert_eq!(text(Format::Tsv, &batches()), "a\tb\n1\tx\n2\tNULL\nNULL\tsay \"hi\", bye\n");
        assert_eq!(text(Format::Tsv, &[]), "a\tb\n");
        assert_eq!(tsv_escape("a\tb\nc\\d\r"), "a\\tb\\nc\\\\d\\r");
        assert_eq!(tsv_escape("plain"), "plain");
    }

    #[test]
    fn json_is_one_object_per_row() {
        assert_eq!(
            text(Format::Json, &batches()),
            "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":null}\n{\"a\":null,\"b\":\"say \\\"hi\\\", bye\"}\n"
        );
        assert_eq!(text(Format::Json, &[]), "");
        for line in text(Format::Json, &batches()).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v.is_object(), "{line}");
        }
    }

    #[test]
    fn timestamps_print_as_in_hive_and_nested_values_as_text() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None]), None]);
        let ts = TimestampMillisecondArray::from(vec![Some(1_767_323_045_000), Some(1_767_323_045_120)]);
        let batch = RecordBatch::try_from_iter(vec![("l", Arc::new(list) as ArrayRef), ("ts", Arc::new(ts) as ArrayRef)]).unwrap();
        let render = |f| String::from_utf8(super::render(f, &batch.schema(), std::slice::from_ref(&batch)).unwrap()).unwrap();
        assert_eq!(render(Format::Csv), "l,ts\n\"[1, NULL]\",2026-01-02 03:04:05\n,2026-01-02 03:04:05.120\n");
        assert_eq!(render(Format::Tsv), "l\tts\n[1, NULL]\t2026-01-02 03:04:05\nNULL\t2026-01-02 03:04:05.120\n");
        assert!(render(Format::Table).contains("| [1, NULL] | 2026-01-02 03:04:05     |"), "{}", render(Format::Table));
        assert_eq!(String::from_utf8(super::render(Format::Csv, &batch.schema(), &[]).unwrap()).unwrap(), "l,ts\n");
    }

    #[test]
    fn summaries() {
        let rows = Outcome::Rows { schema: schema(), batches: batches() };
        assert_eq!(summary(&rows, Duration::from_millis(1234)), "3 rows (1.234 s)");
        let one = Outcome::Rows { schema: schema(), batches: vec![batches()[1].clone()] };
        assert_eq!(summary(&one, Duration::from_millis(5)), "1 row (0.005 s)");
        let none = Outcome::Rows { schema: schema(), batches: vec![] };
        assert_eq!(summary(&none, Duration::ZERO), "0 rows (0.000 s)");
        assert_eq!(summary(&Outcome::Done("OK".into()), Duration::from_millis(20)), "OK (0.020 s)");
    }
}
