//! SHOW, DESCRIBE and EXPLAIN: answers built from the catalog, as result
//! sets shaped like Hive's.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::displayable;
use datafusion::prelude::DataFrame;
use datafusion::sql::sqlparser::ast::{
    Expr, HiveDescribeFormat, ObjectName, ShowCreateObject, ShowStatementFilter, ShowStatementFilterPosition, Statement,
};
use tusk_metastore::paths;
use tusk_proto::metastore as pb;

use crate::ddl::partition_spec;
use crate::error::{Result, SqlError};
use crate::exec::{Engine, Mode, catalog_error, df_error, object_name};
use crate::outcome::Outcome;
use crate::table::options_text;

/// A result set of string columns.
pub(crate) fn strings(columns: &[&str], rows: Vec<Vec<String>>) -> Result<Outcome> {
    let schema = Arc::new(Schema::new(columns.iter().map(|c| Field::new(*c, DataType::Utf8, true)).collect::<Vec<_>>()));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| Arc::new(StringArray::from_iter(rows.iter().map(|r| r.get(i).map(|s| s.as_str())))) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(SqlError::execution)?;
    Ok(Outcome::Rows { schema, batches: vec![batch] })
}

/// Hive's `LIKE 'pat*|other'` on names.
fn hive_like(pattern: &str, name: &str) -> bool {
    pattern.split('|').any(|alt| glob(alt.trim().to_lowercase().as_bytes(), name.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'%'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'_') | Some(b'.'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

fn like_filter(filter: &Option<ShowStatementFilterPosition>) -> Option<String> {
    match filter {
        Some(ShowStatementFilterPosition::Suffix(ShowStatementFilter::Like(p)))
        | Some(ShowStatementFilterPosition::Infix(ShowStatementFilter::Like(p))) => Some(p.clone()),
        Some(ShowStatementFilterPosition::Suffix(ShowStatementFilter::ILike(p)))
        | Some(ShowStatementFilterPosition::Infix(ShowStatementFilter::ILike(p))) => Some(p.clone()),
        _ => None,
    }
}

pub(crate) async fn show(e: &mut Engine, stmt: Statement) -> Result<Outcome> {
    match stmt {
        Statement::ShowDatabases { show_options, .. } | Statement::ShowSchemas { show_options, .. } => {
            let like = like_filter(&show_options.filter_position);
            let dbs = e.meta.list_databases().await.map_err(catalog_error)?;
            let rows = dbs
                .into_iter()
                .filter(|d| like.as_deref().is_none_or(|p| hive_like(p, &d.name)))
                .map(|d| vec![d.name])
                .collect();
            strings(&["database_name"], rows)
        }
        Statement::ShowTables { show_options, .. } | Statement::ShowViews { show_options, .. } => {
            let db = match show_options.show_in.as_ref().and_then(|i| i.parent_name.as_ref()) {
                Some(n) => object_name(n)?,
                None => e.db.clone(),
            };
            let like = like_filter(&show_options.filter_position);
            let tables = e.meta.list_tables(&db).await.map_err(catalog_error)?;
            let mut names: Vec<String> = tables.into_iter().map(|t| t.name).collect();
            names.extend(e.views.keys().filter(|(d, _)| *d == db).map(|(_, n)| n.clone()));
            names.sort();
            let rows = names.into_iter().filter(|n| like.as_deref().is_none_or(|p| hive_like(p, n))).map(|n| vec![n]).collect();
            strings(&["tab_name"], rows)
        }
        Statement::ShowCreate { obj_type: ShowCreateObject::Table, obj_name } => {
            let t = e.table(&obj_name).await?;
            strings(&["createtab_stmt"], vec![vec![show_create(&t)]])
        }
        other => Err(SqlError::unsupported(format!("{other}"))),
    }
}

/// `SHOW CREATE TABLE`: DDL that recreates the table.
pub(crate) fn show_create(t: &pb::Table) -> String {
    let cols = |cs: &[pb::Column]| {
        cs.iter()
            .map(|c| {
                let comment = if c.comment.is_empty() { String::new() } else { format!(" COMMENT '{}'", quote(&c.comment)) };
                format!("  `{}` {}{}", c.name, c.data_type, comment)
            })
            .collect::<Vec<_>>()
            .join(",\n")
    };
    let mut s = format!(
        "CREATE {}TABLE `{}`.`{}` (\n{}\n)",
        if t.external { "EXTERNAL " } else { "" },
        t.db,
        t.name,
        cols(&t.columns)
    );
    if !t.comment.is_empty() {
        s += &format!("\nCOMMENT '{}'", quote(&t.comment));
    }
    if !t.partition_columns.is_empty() {
        s += &format!("\nPARTITIONED BY (\n{}\n)", cols(&t.partition_columns));
    }
    if let Some(d) = t.format_options.get(crate::format::OPT_DELIM) {
        s += &format!("\nROW FORMAT DELIMITED FIELDS TERMINATED BY '{}'", delim_text(d));
    }
    s += &format!("\nSTORED AS {}", t.format.to_uppercase());
    s += &format!("\nLOCATION '{}'", quote(&t.location));
    let mut props: Vec<(String, String)> = t.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in &t.format_options {
        if k != crate::format::OPT_DELIM {
            props.push((format!("tusk.format.{k}"), v.clone()));
        }
    }
    props.sort();
    if !props.is_empty() {
        let p: Vec<String> = props.iter().map(|(k, v)| format!("  '{}'='{}'", quote(k), quote(v))).collect();
        s += &format!("\nTBLPROPERTIES (\n{}\n)", p.join(",\n"));
    }
    s
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

fn delim_text(d: &str) -> String {
    match d.as_bytes() {
        [b] if *b < 0x20 || *b == 0x7f => format!("\\{:03o}", b),
        _ => quote(d),
    }
}

/// `SHOW PARTITIONS t [PARTITION (…)]`: `k1=v1/k2=v2` per partition.
pub(crate) async fn partitions(e: &mut Engine, table: &ObjectName, spec: &[Expr]) -> Result<Outcome> {
    let t = e.table(table).await?;
    if t.partition_columns.is_empty() {
        return Err(SqlError::invalid(format!("table {}.{} is not partitioned", t.db, t.name)));
    }
    let names: Vec<&str> = t.partition_columns.iter().map(|c| c.name.as_str()).collect();
    let filter = partition_spec(&t, spec, true)?;
    let parts = e.meta.list_partitions(&t.db, &t.name).await.map_err(catalog_error)?;
    let rows = parts
        .into_iter()
        .filter(|p| {
            filter.iter().all(|(col, v)| {
                let i = names.iter().position(|n| n == col);
                i.and_then(|i| p.values.get(i)).is_some_and(|pv| Some(pv) == v.as_ref())
            })
        })
        .map(|p| vec![paths::partition_path(&names, &p.values)])
        .collect();
    strings(&["partition"], rows)
}

/// `DESCRIBE [FORMATTED|EXTENDED] t`.
pub(crate) async fn describe(e: &mut Engine, name: &ObjectName, format: Option<HiveDescribeFormat>) -> Result<Outcome> {
    let t = e.table(name).await?;
    let row = |a: &str, b: &str, c: &str| vec![a.to_string(), b.to_string(), c.to_string()];
    let mut rows: Vec<Vec<String>> = t.columns.iter().map(|c| row(&c.name, &c.data_type.to_lowercase(), &c.comment)).collect();
    rows.extend(t.partition_columns.iter().map(|c| row(&c.name, &c.data_type.to_lowercase(), &c.comment)));
    if !t.partition_columns.is_empty() {
        rows.push(row("", "", ""));
        rows.push(row("# Partition Information", "", ""));
        rows.push(row("# col_name", "data_type", "comment"));
        rows.extend(t.partition_columns.iter().map(|c| row(&c.name, &c.data_type.to_lowercase(), &c.comment)));
    }
    if format.is_some() {
        let when = |ms: u64| {
            chrono::DateTime::from_timestamp_millis(ms as i64).map(|d| d.to_rfc2822()).unwrap_or_default()
        };
        rows.push(row("", "", ""));
        rows.push(row("# Detailed Table Information", "", ""));
        rows.push(row("Database:", &t.db, ""));
        rows.push(row("Table:", &t.name, ""));
        rows.push(row("Owner:", &t.owner, ""));
        rows.push(row("CreateTime:", &when(t.created_ms), ""));
        rows.push(row("LastModifiedTime:", &when(t.modified_ms), ""));
        rows.push(row("Location:", &t.location, ""));
        rows.push(row("Table Type:", if t.external { "EXTERNAL_TABLE" } else { "MANAGED_TABLE" }, ""));
        if !t.comment.is_empty() {
            rows.push(row("Comment:", &t.comment, ""));
        }
        rows.push(row("Table Parameters:", "", ""));
        let mut props: Vec<_> = t.properties.iter().collect();
        props.sort();
        for (k, v) in props {
            rows.push(row("", k, v));
        }
        rows.push(row("", "", ""));
        rows.push(row("# Storage Information", "", ""));
        rows.push(row("Format:", &t.format.to_uppercase(), ""));
        rows.push(row("Format Options:", &options_text(&t.format_options), ""));
        if !t.partition_columns.is_empty() {
            let n = e.meta.list_partitions(&t.db, &t.name).await.map_err(catalog_error)?.len();
            rows.push(row("Partitions:", &n.to_string(), ""));
        }
    }
    strings(&["col_name", "data_type", "comment"], rows)
}

/// `EXPLAIN [ANALYZE] query`: the logical and physical plans.
pub(crate) async fn explain(e: &mut Engine, stmt: Statement, analyze: bool, verbose: bool) -> Result<Outcome> {
    if !matches!(stmt, Statement::Query(_)) {
        return Err(SqlError::unsupported("EXPLAIN of a statement other than a query"));
    }
    let mode = e.mode().await?;
    let plan = e.plan(stmt).await?;
    let df = DataFrame::new(e.ctx.state(), plan);
    let logical = df.logical_plan().display_indent().to_string();
    let physical = Box::pin(e.physical_plan(df.logical_plan(), mode)).await?;
    let mut rows = vec![
        vec!["logical_plan".to_string(), logical],
        vec!["physical_plan".to_string(), displayable(physical.plan.as_ref()).indent(verbose).to_string()],
    ];
    if let Mode::Distributed { slots, .. } = mode
        && crate::dist::run::reads_files(&physical.plan)
    {
        let staged = crate::dist::run::stages(&physical, true)?;
        let stages = &staged.stages;
        let n = stages.len();
        for (i, st) in stages.iter().enumerate() {
            let what = match st.output {
                tusk_client::sqljob::SqlOutput::Shuffle { partitions } => format!("shuffle into {partitions} partition(s)"),
                tusk_client::sqljob::SqlOutput::Result => "result to the client".to_string(),
            };
            let reads = if st.upstreams.is_empty() {
                "reads tables".to_string()
            } else {
                format!("reads stage(s) {}", st.upstreams.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(", "))
            };
            let mut placement = String::new();
            for (t, hosts) in st.task_hosts.iter().enumerate() {
                let h = if hosts.is_empty() { "any worker".to_string() } else { format!("beside {}", hosts.join(" or ")) };
                placement += &format!("  task {t}: {h}\n");
            }
            rows.push(vec![
                format!("stage {i} of {n}"),
                format!(
                    "{} task(s), {reads}, {what}\n{placement}{}",
                    st.tasks(),
                    displayable(st.plan.as_ref()).indent(verbose)
                ),
            ]);
        }
        if let Some(merge) = &staged.client_merge {
            rows.push(vec![
                "client".to_string(),
                format!("merges the rows of stage {}'s tasks\n{}", n.saturating_sub(1), displayable(merge.as_ref()).indent(verbose)),
            ]);
        }
        rows.push(vec![
            "cluster".to_string(),
            format!("up to {slots} task(s) per stage (the workers' slots, at most their machines' cores)"),
        ]);
    } else {
        rows.push(vec!["execution".to_string(), "in the client (no workers, or no table read)".to_string()]);
    }
    if analyze {
        let t = std::time::Instant::now();
        let batches = datafusion::physical_plan::collect(physical.plan.clone(), e.ctx.task_ctx()).await.map_err(df_error)?;
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        rows.push(vec![
            "analyze".to_string(),
            format!(
                "{n} rows in {:.3} s\n{}",
                t.elapsed().as_secs_f64(),
                datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(physical.plan.as_ref()).indent(verbose)
            ),
        ]);
    }
    strings(&["plan_type", "plan"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_like_patterns() {
        assert!(hive_like("sa*", "sales"));
        assert!(hive_like("x|sales", "sales"));
        assert!(!hive_like("sa", "sales"));
        assert!(hive_like("*", "anything"));
        assert!(hive_like("s_les", "sales"));
    }
}
