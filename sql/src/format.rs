//! Storage formats of tables: how DataFusion reads them (a `FileFormat`) and
//! how Tusk writes them (one file writer per output file).
//!
//! | catalog format | files | read as |
//! |---|---|---|
//! | `parquet` | Parquet, `.parquet` | Parquet |
//! | `textfile` | Hive text: fields split by `field.delim` (default `\x01`), no quoting, `\N` = NULL, no header | CSV with quoting off |
//! | `csv` | RFC 4180 CSV, delimiter `,`, optional header line | CSV |
//! | `json` | one JSON object per line | NDJSON |

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;
use tusk_proto::metastore as pb;

use crate::error::{Result, SqlError};

/// Format option keys (`Table.format_options`).
pub const OPT_DELIM: &str = "field.delim";
pub const OPT_HEADER: &str = "header";
pub const OPT_COMPRESSION: &str = "compression";
pub const OPT_NULL: &str = "null.format";

/// The storage formats Tusk knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    TextFile,
    Csv,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Ok(Format::Parquet),
            "textfile" => Ok(Format::TextFile),
            "csv" => Ok(Format::Csv),
            "json" | "jsonfile" => Ok(Format::Json),
            other => Err(SqlError::invalid(format!(
                "unknown storage format {other:?} (supported: PARQUET, TEXTFILE, CSV, JSON)"
            ))),
        }
    }

    /// Extension of the files Tusk writes.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => ".parquet",
            Format::TextFile => "",
            Format::Csv => ".csv",
            Format::Json => ".json",
        }
    }
}

/// How a table's files are laid out, from its catalog entry.
#[derive(Debug, Clone)]
pub struct Storage {
    pub format: Format,
    pub delimiter: u8,
    pub header: bool,
    pub compression: FileCompressionType,
    pub null: String,
}

impl Storage {
    pub fn of(table: &pb::Table) -> Result<Storage> {
        Storage::from_options(&table.format, &table.format_options)
    }

    pub fn from_options(format: &str, opts: &HashMap<String, String>) -> Result<Storage> {
        let format = Format::parse(format)?;
        let delimiter = match opts.get(OPT_DELIM) {
            Some(d) => parse_delimiter(d)?,
            None if format == Format::TextFile => 0x01,
            None => b',',
        };
        let header = match opts.get(OPT_HEADER).map(|s| s.to_ascii_lowercase()) {
            None => false,
            Some(s) if s == "true" || s == "1" => true,
            Some(s) if s == "false" || s == "0" => false,
            Some(s) => return Err(SqlError::invalid(format!("{OPT_HEADER} = {s:?}: expected true or false"))),
        };
        let compression = match opts.get(OPT_COMPRESSION).map(|s| s.to_ascii_lowercase()).as_deref() {
            None | Some("none") | Some("uncompressed") => FileCompressionType::UNCOMPRESSED,
            Some("gzip") | Some("gz") => FileCompressionType::GZIP,
            Some("bzip2") | Some("bz2") => FileCompressionType::BZIP2,
            Some("xz") => FileCompressionType::XZ,
            Some("zstd") => FileCompressionType::ZSTD,
            Some(other) => {
                return Err(SqlError::invalid(format!(
                    "{OPT_COMPRESSION} = {other:?}: expected none, gzip, bzip2, xz or zstd"
                )));
            }
        };
        if format == Format::Parquet && compression != FileCompressionType::UNCOMPRESSED {
            return Err(SqlError::invalid(format!(
                "{OPT_COMPRESSION} applies to text formats; Parquet files carry their own codec"
            )));
        }
        let null = opts.get(OPT_NULL).cloned().unwrap_or_else(|| if format == Format::TextFile { "\\N".into() } else { String::new() });
        Ok(Storage { format, delimiter, header, compression, null })
    }

    /// The DataFusion reader of these files.
    pub fn file_format(&self) -> Arc<dyn FileFormat> {
        match self.format {
            Format::Parquet => Arc::new(ParquetFormat::default()),
            Format::TextFile => Arc::new(
                CsvFormat::default()
                    .with_delimiter(self.delimiter)
                    .with_has_header(self.header)
                    // Hive text has no quoting: a NUL quote never matches.
                    // NULLs (`\N`) are handled by the table scan.
                    .with_quote(0)
                    .with_file_compression_type(self.compression),
            ),
            Format::Csv => Arc::new(
                CsvFormat::default()
                    .with_delimiter(self.delimiter)
                    .with_has_header(self.header)
                    .with_file_compression_type(self.compression),
            ),
            Format::Json => Arc::new(JsonFormat::default().with_file_compression_type(self.compression)),
        }
    }

    /// Whether a file can be read in byte ranges (one task per block).
    pub fn splittable(&self) -> bool {
        self.compression == FileCompressionType::UNCOMPRESSED
    }
}

/// A delimiter as Hive writes it: one character, or an escape (`\t`,
/// `\001`, `\u0001`).
pub fn parse_delimiter(d: &str) -> Result<u8> {
    let bad = || SqlError::invalid(format!("field delimiter {d:?}: must be a single ASCII character"));
    let v = match d {
        "\\t" => b'\t',
        s if s.len() == 1 && s.is_ascii() => s.as_bytes()[0],
        s if s.starts_with("\\u") => u8::from_str_radix(&s[2..], 16).map_err(|_| bad())?,
        s if s.starts_with('\\') => u8::from_str_radix(&s[1..], 8).map_err(|_| bad())?,
        s if s.chars().count() == 1 => return Err(bad()),
        _ => return Err(bad()),
    };
    if v == b'\n' || v == b'\r' {
        return Err(bad());
    }
    Ok(v)
}


/// Writes one output file into the DFS.
pub enum FileWriter {
    Parquet(Box<AsyncArrowWriter<BufWriter>>),
    Text { out: Box<BufWriter>, kind: TextKind, buf: Vec<u8> },
}

pub enum TextKind {
    Csv { delimiter: u8, null: String, quote: bool, header: bool },
    Json,
}

impl FileWriter {
    /// Opens `path` in `store` for batches of `schema`.
    pub fn create(store: Arc<dyn ObjectStore>, path: Path, schema: SchemaRef, storage: &Storage) -> Result<FileWriter> {
        match storage.format {
            Format::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                let w = AsyncArrowWriter::try_new(BufWriter::new(store, path), schema, Some(props))
                    .map_err(SqlError::execution)?;
                Ok(FileWriter::Parquet(Box::new(w)))
            }
            f => {
                let kind = match f {
                    Format::Json => TextKind::Json,
                    _ => TextKind::Csv {
                        delimiter: storage.delimiter,
                        null: storage.null.clone(),
                        quote: f == Format::Csv,
                        header: storage.header,
                    },
                };
                Ok(FileWriter::Text { out: Box::new(BufWriter::new(store, path)), kind, buf: Vec::new() })
            }
        }
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            FileWriter::Parquet(w) => w.write(batch).await.map_err(SqlError::execution),
            FileWriter::Text { out, kind, buf } => {
                buf.clear();
                match kind {
                    TextKind::Csv { delimiter, null, quote, header } => {
                        let mut b = datafusion::arrow::csv::WriterBuilder::new()
                            .with_delimiter(*delimiter)
                            .with_header(*header)
                            .with_null(null.clone());
                        if !*quote {
                            b = b.with_quote_style(datafusion::arrow::csv::QuoteStyle::Never);
                        }
                        let mut w = b.build(&mut *buf);
                        w.write(batch).map_err(SqlError::execution)?;
                        // Only the first batch of a file gets the header.
                        *header = false;
                    }
                    TextKind::Json => {
                        let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut *buf);
                        w.write(batch).map_err(SqlError::execution)?;
                        w.finish().map_err(SqlError::execution)?;
                    }
                }
                out.write_all(buf).await.map_err(SqlError::execution)
            }
        }
    }

    pub async fn close(self) -> Result<()> {
        match self {
            FileWriter::Parquet(w) => w.close().await.map(|_| ()).map_err(SqlError::execution),
            FileWriter::Text { mut out, .. } => out.shutdown().await.map_err(SqlError::execution),
        }
    }

    pub async fn abort(self) {
        if let FileWriter::Text { mut out, .. } = self {
            let _ = out.abort().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters() {
        assert_eq!(parse_delimiter(",").unwrap(), b',');
        assert_eq!(parse_delimiter("|").unwrap(), b'|');
        assert_eq!(parse_delimiter("\\t").unwrap(), b'\t');
        assert_eq!(parse_delimiter("\\001").unwrap(), 1);
        assert_eq!(parse_delimiter("\\u0001").unwrap(), 1);
        assert!(parse_delimiter("ab").is_err());
        assert!(parse_delimiter("é").is_err());
    }

    #[test]
    fn storage_defaults() {
        let s = Storage::from_options("TEXTFILE", &HashMap::new()).unwrap();
        assert_eq!((s.delimiter, s.header, s.null.as_str()), (1, false, "\\N"));
        let s = Storage::from_options("csv", &HashMap::new()).unwrap();
        assert_eq!(s.delimiter, b',');
        assert!(Storage::from_options("orc", &HashMap::new()).is_err());
        let mut o = HashMap::new();
        o.insert(OPT_COMPRESSION.to_string(), "gzip".to_string());
        assert!(Storage::from_options("parquet", &o).is_err());
    }
}
