//! DDL: databases, tables, views, partitions, MSCK, TRUNCATE, DROP. The
//! metastore does the catalog and DFS work; this module turns HiveQL into
//! its requests.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::datasource::ViewTable;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::sql::sqlparser::ast::{
    AddDropSync, AlterTableOperation, BinaryOperator, ColumnOption, CreateTable, CreateTableOptions, CreateView, Expr,
    FileFormat, HiveDelimiter, HiveDistributionStyle, HiveIOFormat, HiveRowFormat, ObjectType, Partition,
    RenameTableNameKind, SqlOption, Statement, Value,
};
use tusk_proto::metastore as pb;

use crate::error::{Result, SqlError};
use crate::exec::{Engine, catalog_error, object_name, span_of};
use crate::format::{self, Format, OPT_COMPRESSION, OPT_DELIM, OPT_HEADER, OPT_NULL, Storage};
use crate::outcome::Outcome;
use crate::types;

fn ok() -> Result<Outcome> {
    Ok(Outcome::Done("OK".into()))
}

pub(crate) async fn ddl(e: &mut Engine, stmt: Statement, format: Option<&'static str>) -> Result<Outcome> {
    match stmt {
        Statement::CreateDatabase { db_name, if_not_exists, location, .. } => {
            let name = object_name(&db_name)?;
            let db = pb::Database { name, location: location.unwrap_or_default(), ..Default::default() };
            let created = e.meta.create_database(db, if_not_exists).await.map_err(|x| catalog_error(x).at(span_of(&db_name)))?;
            Ok(Outcome::Done(if created { "OK" } else { "OK (database exists)" }.into()))
        }
        Statement::CreateTable(ct) => create_table(e, ct, format).await,
        Statement::Drop { object_type, if_exists, names, cascade, .. } => {
            for n in &names {
                match object_type {
                    ObjectType::Database | ObjectType::Schema => {
                        let db = object_name(n)?;
                        e.meta.drop_database(&db, if_exists, cascade).await.map_err(|x| catalog_error(x).at(span_of(n)))?;
                    }
                    ObjectType::Table => {
                        let (db, t) = e.qualify(n)?;
                        e.meta.drop_table(&db, &t, if_exists).await.map_err(|x| catalog_error(x).at(span_of(n)))?;
                    }
                    ObjectType::View => {
                        let key = e.qualify(n)?;
                        if e.views.remove(&key).is_none() && !if_exists {
                            return Err(SqlError::Catalog {
                                message: format!("view not found: {}.{}", key.0, key.1),
                                not_found: true,
                                position: span_of(n),
                            });
                        }
                    }
                    other => return Err(SqlError::unsupported(format!("DROP {other}"))),
                }
            }
            ok()
        }
        Statement::AlterTable(at) => {
            let t = e.table(&at.name).await?;
            let tref = pb::TableRef { db: t.db.clone(), name: t.name.clone() };
            for op in at.operations {
                match op {
                    AlterTableOperation::AddPartitions { if_not_exists, new_partitions } => {
                        let location = at.location.as_ref().map(|l| l.location.value.clone()).unwrap_or_default();
                        if !location.is_empty() && new_partitions.len() > 1 {
                            return Err(SqlError::invalid("ADD PARTITION with LOCATION: one partition per statement"));
                        }
                        let mut parts = Vec::new();
                        for p in new_partitions {
                            let exprs = match p {
                                Partition::Partitions(v) => v,
                                Partition::Expr(x) | Partition::Part(x) => vec![x],
                                Partition::Identifier(_) => return Err(SqlError::invalid("ADD PARTITION needs (col='value', …)")),
                            };
                            let values = full_spec(&t, &exprs)?;
                            parts.push(pb::Partition { values, location: location.clone(), created_ms: 0 });
                        }
                        e.meta.add_partitions(&t.db, &t.name, parts, if_not_exists).await.map_err(catalog_error)?;
                    }
                    AlterTableOperation::DropPartitions { partitions, if_exists } => {
                        let spec = spec_message(&t, &partitions)?;
                        e.meta.drop_partitions(&t.db, &t.name, vec![spec], if_exists).await.map_err(catalog_error)?;
                    }
                    AlterTableOperation::RenameTable { table_name } => {
                        let to = match table_name {
                            RenameTableNameKind::To(n) | RenameTableNameKind::As(n) => n,
                        };
                        let (db, name) = e.qualify(&to)?;
                        e.meta.rename_table(tref.clone(), pb::TableRef { db, name }).await.map_err(|x| catalog_error(x).at(span_of(&to)))?;
                    }
                    other => return Err(SqlError::unsupported(format!("ALTER TABLE … {other}"))),
                }
            }
            ok()
        }
        Statement::Msck(m) => {
            let t = e.table(&m.table_name).await?;
            if t.partition_columns.is_empty() {
                return Err(SqlError::invalid(format!("table {}.{} is not partitioned", t.db, t.name)));
            }
            let (add, drop) = match m.partition_action {
                None | Some(AddDropSync::ADD) => (true, false),
                Some(AddDropSync::DROP) => (false, true),
                Some(AddDropSync::SYNC) => (true, true),
            };
            let r = e
                .meta
                .repair_table(&t.db, &t.name, add, drop)
                .await
                .map_err(catalog_error)?;
            Ok(Outcome::Done(format!("partitions added: {}, dropped: {}", r.added.len(), r.dropped.len())))
        }
        Statement::Truncate(tr) => {
            for target in &tr.table_names {
                let t = e.table(&target.name).await?;
                let specs = match &tr.partitions {
                    Some(p) => vec![spec_message(&t, p)?],
                    None => vec![],
                };
                e.meta
                    .truncate_table(&t.db, &t.name, specs)
                    .await
                    .map_err(|x| catalog_error(x).at(span_of(&target.name)))?;
            }
            ok()
        }
        other => Err(SqlError::unsupported(first_words(&other.to_string()))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// `CREATE VIEW v [(cols)] AS query`: a view of this session.
pub(crate) async fn create_view(e: &mut Engine, v: CreateView) -> Result<Outcome> {
    let key = e.qualify(&v.name)?;
    if e.views.contains_key(&key) && !v.or_replace {
        if v.if_not_exists {
            return ok();
        }
        return Err(SqlError::invalid(format!("view already exists: {}.{}", key.0, key.1)).at(span_of(&v.name)));
    }
    let stmt = Statement::CreateView(v);
    let text = stmt.to_string();
    let plan = e.plan_ignoring(stmt, Some(key.clone())).await?;
    let LogicalPlan::Ddl(DdlStatement::CreateView(cv)) = plan else {
        return Err(SqlError::invalid("CREATE VIEW did not plan as a view"));
    };
    let view = ViewTable::new(cv.input.as_ref().clone(), Some(text));
    e.views.insert(key, Arc::new(view));
    ok()
}

/// Values of a `PARTITION (k='v', …)` spec naming every partition column, in order.
pub(crate) fn full_spec(t: &pb::Table, exprs: &[Expr]) -> Result<Vec<String>> {
    let spec = partition_spec(t, exprs, false)?;
    let mut values = Vec::new();
    for c in &t.partition_columns {
        match spec.iter().find(|(n, _)| *n == c.name) {
            Some((_, Some(v))) => values.push(v.clone()),
            _ => {
                return Err(SqlError::invalid(format!(
                    "partition spec of {}.{} must give a value for {}",
                    t.db, t.name, c.name
                )));
            }
        }
    }
    Ok(values)
}

fn spec_message(t: &pb::Table, exprs: &[Expr]) -> Result<pb::PartitionSpec> {
    let spec = partition_spec(t, exprs, false)?;
    let mut m = pb::PartitionSpec::default();
    for (n, v) in spec {
        let Some(v) = v else {
            return Err(SqlError::invalid(format!("partition column {n} needs a value here")));
        };
        m.names.push(n);
        m.values.push(v);
    }
    Ok(m)
}

/// A `PARTITION (…)` clause: `k='v'` (static) or `k` (dynamic, only when
/// `allow_dynamic`... callers decide) per partition column of `t`.
pub(crate) fn partition_spec(t: &pb::Table, exprs: &[Expr], _allow_dynamic: bool) -> Result<Vec<(String, Option<String>)>> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for x in exprs {
        let (name, value, at) = match x {
            Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => match (left.as_ref(), right.as_ref()) {
                (Expr::Identifier(i), v) => (i.value.to_lowercase(), Some(literal_text(v)?), ident_pos(i)),
                _ => return Err(SqlError::invalid(format!("bad partition spec {x}: expected column = 'value'"))),
            },
            Expr::Identifier(i) => (i.value.to_lowercase(), None, ident_pos(i)),
            _ => return Err(SqlError::invalid(format!("bad partition spec {x}: expected column = 'value'"))),
        };
        if !t.partition_columns.iter().any(|c| c.name == name) {
            let cols: Vec<&str> = t.partition_columns.iter().map(|c| c.name.as_str()).collect();
            return Err(SqlError::invalid(format!(
                "{name} is not a partition column of {}.{} (partition columns: {})",
                t.db,
                t.name,
                if cols.is_empty() { "none".to_string() } else { cols.join(", ") }
            ))
            .at(at));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(SqlError::invalid(format!("partition column {name} given twice")).at(at));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn ident_pos(i: &datafusion::sql::sqlparser::ast::Ident) -> Option<crate::error::Position> {
    (i.span.start.line > 0).then_some(crate::error::Position { line: i.span.start.line, column: i.span.start.column })
}

/// The text of a literal in a partition spec or an option.
pub(crate) fn literal_text(v: &Expr) -> Result<String> {
    match v {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s.clone()),
            Value::Number(n, _) => Ok(n.to_string()),
            Value::Boolean(b) => Ok(b.to_string()),
            Value::Null => Ok(tusk_metastore::paths::DEFAULT_PARTITION.to_string()),
            other => Err(SqlError::invalid(format!("expected a literal, found {other}"))),
        },
        Expr::UnaryOp { op: datafusion::sql::sqlparser::ast::UnaryOperator::Minus, expr } => Ok(format!("-{}", literal_text(expr)?)),
        other => Err(SqlError::invalid(format!("expected a literal, found {other}"))),
    }
}

/// The catalog entry `CREATE TABLE` describes (columns may be empty for CTAS).
pub(crate) fn table_from_ddl(e: &Engine, ct: &CreateTable, format_override: Option<&'static str>) -> Result<pb::Table> {
    let (db, name) = e.qualify(&ct.name)?;
    let column = |c: &datafusion::sql::sqlparser::ast::ColumnDef| -> Result<pb::Column> {
        let comment = c
            .options
            .iter()
            .find_map(|o| match &o.option {
                ColumnOption::Comment(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(pb::Column { name: c.name.value.to_lowercase(), data_type: types::type_text(&c.data_type), comment })
    };
    let columns = ct.columns.iter().map(column).collect::<Result<Vec<_>>>()?;
    let partition_columns = match &ct.hive_distribution {
        HiveDistributionStyle::PARTITIONED { columns } => columns.iter().map(column).collect::<Result<Vec<_>>>()?,
        HiveDistributionStyle::NONE => vec![],
        _ => return Err(SqlError::unsupported("CLUSTERED BY / SKEWED BY")),
    };
    types::arrow_fields(&columns).map_err(|x| x.at(span_of(&ct.name)))?;
    types::arrow_fields(&partition_columns)?;
    let mut opts: HashMap<String, String> = HashMap::new();
    let mut stored = None;
    let mut location = ct.location.clone();
    if let Some(h) = &ct.hive_formats {
        match &h.row_format {
            Some(HiveRowFormat::DELIMITED { delimiters }) => {
                for d in delimiters {
                    match d.delimiter {
                        HiveDelimiter::FieldsTerminatedBy => {
                            format::parse_delimiter(&d.char.value)?;
                            opts.insert(OPT_DELIM.into(), d.char.value.clone());
                        }
                        HiveDelimiter::LinesTerminatedBy if d.char.value == "\\n" || d.char.value == "\n" => {}
                        HiveDelimiter::NullDefinedAs => {
                            opts.insert(OPT_NULL.into(), d.char.value.clone());
                        }
                        ref other => return Err(SqlError::unsupported(format!("ROW FORMAT DELIMITED {other}"))),
                    }
                }
            }
            Some(HiveRowFormat::SERDE { class }) => return Err(SqlError::unsupported(format!("ROW FORMAT SERDE '{class}'"))),
            None => {}
        }
        match &h.storage {
            Some(HiveIOFormat::FileFormat { format }) => stored = Some(*format),
            Some(HiveIOFormat::IOF { .. } | HiveIOFormat::Using { .. }) => return Err(SqlError::unsupported("STORED AS INPUTFORMAT … OUTPUTFORMAT …")),
            None => {}
        }
        if location.is_none() {
            location = h.location.clone();
        }
    }
    if stored.is_none() {
        stored = ct.file_format;
    }
    let fmt = match (format_override, stored) {
        (Some(f), _) => f.to_string(),
        (None, None) | (None, Some(FileFormat::TEXTFILE)) => "textfile".to_string(),
        (None, Some(FileFormat::PARQUET)) => "parquet".to_string(),
        (None, Some(FileFormat::JSONFILE)) => "json".to_string(),
        (None, Some(other)) => {
            return Err(SqlError::unsupported(format!("STORED AS {other} (supported: PARQUET, TEXTFILE, CSV, JSON)")));
        }
    };
    let mut properties = HashMap::new();
    if let CreateTableOptions::TableProperties(props) | CreateTableOptions::With(props) | CreateTableOptions::Options(props) = &ct.table_options {
        for p in props {
            let SqlOption::KeyValue { key, value } = p else {
                return Err(SqlError::invalid(format!("bad table property {p}: expected 'key'='value'")));
            };
            let v = literal_text(value)?;
            match key.value.as_str() {
                "skip.header.line.count" => {
                    opts.insert(OPT_HEADER.into(), (v != "0").to_string());
                }
                "serialization.null.format" => {
                    opts.insert(OPT_NULL.into(), v.clone());
                }
                "compression" | "tusk.format.compression" => {
                    opts.insert(OPT_COMPRESSION.into(), v.clone());
                }
                "tusk.format.header" => {
                    opts.insert(OPT_HEADER.into(), v.clone());
                }
                "field.delim" | "tusk.format.field.delim" => {
                    format::parse_delimiter(&v)?;
                    opts.insert(OPT_DELIM.into(), v.clone());
                }
                _ => {}
            }
            if !key.value.starts_with("tusk.format.") {
                properties.insert(key.value.clone(), v);
            }
        }
    }
    Storage::from_options(&fmt, &opts)?;
    if Format::parse(&fmt)? == Format::Parquet && opts.contains_key(OPT_DELIM) {
        return Err(SqlError::invalid("ROW FORMAT DELIMITED does not apply to STORED AS PARQUET"));
    }
    let comment = match &ct.comment {
        Some(datafusion::sql::sqlparser::ast::CommentDef::WithEq(c) | datafusion::sql::sqlparser::ast::CommentDef::WithoutEq(c)) => c.clone(),
        _ => String::new(),
    };
    Ok(pb::Table {
        db,
        name,
        columns,
        partition_columns,
        location: location.map(|l| normalize_location(&l)).transpose()?.unwrap_or_default(),
        format: fmt,
        format_options: opts,
        external: ct.external,
        properties,
        comment,
        ..Default::default()
    })
}

/// A LOCATION as the catalog keeps it: an absolute DFS path.
pub(crate) fn normalize_location(l: &str) -> Result<String> {
    let p = l.strip_prefix("dfs://").unwrap_or(l);
    if !p.starts_with('/') {
        return Err(SqlError::invalid(format!(
            "LOCATION '{l}': expected an absolute DFS path (/dir or dfs:///dir)"
        )));
    }
    let trimmed = p.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() })
}

async fn create_table(e: &mut Engine, ct: CreateTable, format: Option<&'static str>) -> Result<Outcome> {
    if ct.like.is_some() || ct.clone.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE … LIKE / CLONE"));
    }
    let table = table_from_ddl(e, &ct, format)?;
    if table.columns.is_empty() {
        return Err(SqlError::invalid(format!("CREATE TABLE {}.{}: no columns", table.db, table.name)).at(span_of(&ct.name)));
    }
    let r = e.meta.create_table(table, ct.if_not_exists).await.map_err(|x| catalog_error(x).at(span_of(&ct.name)))?;
    Ok(Outcome::Done(if r.created { "OK" } else { "OK (table exists)" }.into()))
}
