//! INSERT INTO|OVERWRITE, CREATE TABLE … AS SELECT and LOAD DATA.
//!
//! Output is written into a hidden staging directory, then the metastore
//! moves it into the table and registers new partitions in one commit
//! (`CommitWrite`); a failure before the commit deletes the staging
//! directory and leaves the table as it was.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use datafusion::logical_expr::{Expr as LExpr, cast, col};
use datafusion::prelude::DataFrame;
use datafusion::sql::sqlparser::ast::{CreateTable, Expr, Ident, Insert, ObjectName, Statement, TableObject};
use tusk_client::sqljob::SqlWriteSpec;
use tusk_proto::metastore as pb;

use crate::ddl::{partition_spec, table_from_ddl};
use crate::error::{Result, SqlError};
use crate::exec::{Engine, Mode, catalog_error, df_error, span_of};
use crate::format::Storage;
use crate::outcome::Outcome;
use crate::types;
use crate::write::{self, WriteTarget};

fn query_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(crate) async fn insert(e: &mut Engine, ins: Insert) -> Result<Outcome> {
    let name = match &ins.table {
        TableObject::TableName(n) => n.clone(),
        other => return Err(SqlError::unsupported(format!("INSERT INTO {other}"))),
    };
    let t = e.table(&name).await?;
    let Some(source) = ins.source else {
        return Err(SqlError::unsupported("INSERT without a query or VALUES"));
    };
    if !ins.columns.is_empty() {
        return Err(SqlError::unsupported("INSERT with a column list (Hive inserts by position)"));
    }
    // Static partition values first, then the dynamic columns.
    let spec = match &ins.partitioned {
        Some(p) => partition_spec(&t, p, true)?,
        None => vec![],
    };
    let mut static_values = Vec::new();
    let mut dynamic = Vec::new();
    for c in &t.partition_columns {
        match spec.iter().find(|(n, _)| *n == c.name) {
            Some((_, Some(v))) if dynamic.is_empty() => static_values.push(v.clone()),
            Some((_, Some(_))) => {
                return Err(SqlError::invalid(format!(
                    "static partition column {} follows a dynamic one: static partition values must come first",
                    c.name
                )));
            }
            _ => dynamic.push(c.clone()),
        }
    }
    let plan = e.plan(Statement::Query(source)).await?;
    let df = DataFrame::new(e.ctx.state(), plan);
    let expected = t.columns.len() + dynamic.len();
    let got = df.schema().fields().len();
    if got != expected {
        let mut names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        names.extend(dynamic.iter().map(|c| c.name.as_str()));
        return Err(SqlError::invalid(format!(
            "INSERT into {}.{}: the query gives {got} column{}, the table expects {expected} ({})",
            t.db,
            t.name,
            if got == 1 { "" } else { "s" },
            names.join(", ")
        ))
        .at(span_of(&name)));
    }
    let fields = types::arrow_fields(&t.columns)?;
    let mut exprs: Vec<LExpr> = Vec::with_capacity(expected);
    for (i, src) in df.schema().columns().into_iter().enumerate() {
        let expr = if i < fields.len() {
            cast(col(src), fields[i].data_type().clone()).alias(fields[i].name())
        } else {
            cast(col(src), DataType::Utf8).alias(&dynamic[i - fields.len()].name)
        };
        exprs.push(expr);
    }
    let df = df.select(exprs).map_err(df_error)?;
    let target = WriteTarget {
        staging: format!("{}/.tusk-staging-{}", t.location.trim_end_matches('/'), query_id()),
        storage: Storage::of(&t)?,
        file_schema: Arc::new(Schema::new(fields)),
        partition_names: t.partition_columns.iter().map(|c| c.name.clone()).collect(),
        static_values,
        file_stem: format!("part-{}", query_id()),
    };
    let (rows, _) = write_and_commit(e, df, &target, &t, ins.overwrite, None).await?;
    Ok(Outcome::Done(format!("{} {rows} row{} into {}.{}", if ins.overwrite { "wrote" } else { "inserted" }, if rows == 1 { "" } else { "s" }, t.db, t.name)))
}

/// Runs `df` into `target.staging`, then commits it into `t` (or creates
/// `create` with it). Returns (rows, files).
async fn write_and_commit(
    e: &mut Engine,
    df: DataFrame,
    target: &WriteTarget,
    t: &pb::Table,
    overwrite: bool,
    create: Option<pb::Table>,
) -> Result<(u64, u64)> {
    // On the workers when there are some and the query reads tables: the
    // last stage's tasks write the files, committed like its results.
    let mode = e.mode().await?;
    if let Mode::Distributed { .. } = mode {
        let name: String = format!("INSERT INTO {}.{}", t.db, t.name);
        let plan = Box::pin(e.without_scalar_subqueries(df.logical_plan().clone(), mode, &name)).await?;
        let physical = Box::pin(e.physical_plan(&plan, mode)).await?;
        if crate::dist::run::reads_files(&physical.plan) {
            let write = SqlWriteSpec {
                columns: t.columns.iter().map(|c| (c.name.clone(), c.data_type.clone())).collect(),
                format: t.format.clone(),
                format_options: t.format_options.clone(),
                partition_names: target.partition_names.clone(),
                static_values: target.static_values.clone(),
                file_stem: target.file_stem.clone(),
            };
            let written =
                Box::pin(crate::dist::run::run_write(e, &name, physical, &target.staging, write)).await;
            return commit(e, written, target, t, overwrite, create).await;
        }
        let stream = datafusion::physical_plan::execute_stream(physical.plan, e.ctx.task_ctx()).map_err(df_error)?;
        return commit_stream(e, stream, target, t, overwrite, create).await;
    }
    let stream = match df.execute_stream().await {
        Ok(s) => s,
        Err(err) => return Err(df_error(err)),
    };
    commit_stream(e, stream, target, t, overwrite, create).await
}

/// Writes `stream` into `target.staging` and commits it (see [`write_and_commit`]).
async fn commit_stream(
    e: &mut Engine,
    stream: SendableRecordBatchStream,
    target: &WriteTarget,
    t: &pb::Table,
    overwrite: bool,
    create: Option<pb::Table>,
) -> Result<(u64, u64)> {
    let written = write::write_stream(e.store.clone(), target, stream).await;
    commit(e, written, target, t, overwrite, create).await
}

/// Commits what was written into `target.staging` into `t` (or creates
/// `create` with it); on a failed write or commit, the staging directory
/// is deleted.
async fn commit(
    e: &mut Engine,
    written: Result<write::WriteSummary>,
    target: &WriteTarget,
    t: &pb::Table,
    overwrite: bool,
    create: Option<pb::Table>,
) -> Result<(u64, u64)> {
    let summary = match written {
        Ok(s) => s,
        Err(err) => {
            let _ = e.dfs.delete(&target.staging, true).await;
            return Err(err);
        }
    };
    let req = pb::CommitWriteRequest {
        table: Some(pb::TableRef { db: t.db.clone(), name: t.name.clone() }),
        staging_dir: target.staging.clone(),
        written: summary.partitions.iter().filter(|v| !v.is_empty()).map(|v| pb::Partition { values: v.clone(), ..Default::default() }).collect(),
        overwrite,
        create,
        ..Default::default()
    };
    if let Err(err) = e.meta.commit_write(req).await {
        let _ = e.dfs.delete(&target.staging, true).await;
        return Err(catalog_error(err));
    }
    Ok((summary.rows, summary.files))
}

/// Appends (or with `overwrite` replaces) the rows of `stream` to the
/// unpartitioned table `name` (`[db.]table`): columns by position, cast to
/// the table's types. Atomic like INSERT.
pub(crate) async fn append(e: &mut Engine, name: &str, stream: SendableRecordBatchStream, overwrite: bool) -> Result<u64> {
    let object = ObjectName::from(name.split('.').map(Ident::new).collect::<Vec<_>>());
    let t = e.table(&object).await?;
    if !t.partition_columns.is_empty() {
        return Err(SqlError::unsupported(format!("appending batches to partitioned table {}.{}", t.db, t.name)));
    }
    let fields = types::arrow_fields(&t.columns)?;
    let file_schema = Arc::new(Schema::new(fields));
    if stream.schema().fields().len() != file_schema.fields().len() {
        return Err(SqlError::invalid(format!(
            "{}.{} has {} columns, the batches {}",
            t.db,
            t.name,
            file_schema.fields().len(),
            stream.schema().fields().len()
        )));
    }
    let target_schema = file_schema.clone();
    let casted = stream.map(move |b| {
        let b = b?;
        let cols = b
            .columns()
            .iter()
            .zip(target_schema.fields())
            .map(|(c, f)| datafusion::arrow::compute::cast(c.as_ref(), f.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(target_schema.clone(), cols)?)
    });
    let stream: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(file_schema.clone(), casted));
    let target = WriteTarget {
        staging: format!("{}/.tusk-staging-{}", t.location.trim_end_matches('/'), query_id()),
        storage: Storage::of(&t)?,
        file_schema,
        partition_names: vec![],
        static_values: vec![],
        file_stem: format!("part-{}", query_id()),
    };
    let (rows, _) = commit_stream(e, stream, &target, &t, overwrite, None).await?;
    Ok(rows)
}

/// `CREATE TABLE t [STORED AS …] AS SELECT …`.
pub(crate) async fn create_table_as(e: &mut Engine, mut ct: CreateTable, format: Option<&'static str>) -> Result<Outcome> {
    let Some(query) = ct.query.take() else {
        return Err(SqlError::invalid("CREATE TABLE AS without a query"));
    };
    if !ct.columns.is_empty() {
        return Err(SqlError::invalid("CREATE TABLE … AS SELECT takes its columns from the query; do not list them"));
    }
    let mut table = table_from_ddl(e, &ct, format)?;
    if !table.partition_columns.is_empty() {
        return Err(SqlError::unsupported("CREATE TABLE … PARTITIONED BY … AS SELECT (create the table, then INSERT)"));
    }
    if table.external {
        return Err(SqlError::invalid("CREATE EXTERNAL TABLE … AS SELECT: CTAS creates managed tables (as in Hive)"));
    }
    let name = ct.name.clone();
    let existing = e.meta.get_tables(&[pb::TableRef { db: table.db.clone(), name: table.name.clone() }]).await.map_err(catalog_error)?;
    if !existing.is_empty() {
        if ct.if_not_exists {
            return Ok(Outcome::Done("OK (table exists)".into()));
        }
        return Err(SqlError::Catalog {
            message: format!("table already exists: {}.{}", table.db, table.name),
            not_found: false,
            position: span_of(&name),
        });
    }
    let plan = e.plan(Statement::Query(query)).await?;
    let df = DataFrame::new(e.ctx.state(), plan);
    let mut seen = std::collections::HashSet::new();
    for f in df.schema().fields() {
        let n = f.name().to_lowercase();
        if !seen.insert(n.clone()) {
            return Err(SqlError::invalid(format!("CTAS: the query has two columns named {n}; give them distinct aliases")));
        }
        if n.contains('(') || n.contains(' ') {
            return Err(SqlError::invalid(format!("CTAS: column {n:?} needs an alias (AS name)")));
        }
        table.columns.push(pb::Column { name: n, data_type: types::sql_type_of(f.data_type())?, comment: String::new() });
    }
    let fields = types::arrow_fields(&table.columns)?;
    let exprs: Vec<LExpr> = df
        .schema()
        .columns()
        .into_iter()
        .zip(&fields)
        .map(|(c, f)| cast(col(c), f.data_type().clone()).alias(f.name()))
        .collect();
    let df = df.select(exprs).map_err(df_error)?;
    let Some(db) = e.meta.get_database(&table.db).await.map_err(catalog_error)? else {
        return Err(SqlError::Catalog { message: format!("database not found: {}", table.db), not_found: true, position: None });
    };
    let base = if table.location.is_empty() { db.location.clone() } else { table.location.clone() };
    let target = WriteTarget {
        staging: format!("{}/.tusk-staging-{}", base.trim_end_matches('/'), query_id()),
        storage: Storage::of(&table)?,
        file_schema: Arc::new(Schema::new(fields)),
        partition_names: vec![],
        static_values: vec![],
        file_stem: format!("part-{}", query_id()),
    };
    let t = table.clone();
    let (rows, _) = write_and_commit(e, df, &target, &t, false, Some(table)).await?;
    Ok(Outcome::Done(format!("created {}.{} with {rows} row{}", t.db, t.name, if rows == 1 { "" } else { "s" })))
}

/// `LOAD DATA [LOCAL] INPATH '…' [OVERWRITE] INTO TABLE t [PARTITION (…)]`:
/// moves the files (a DFS path) or uploads them (LOCAL) into the table.
pub(crate) async fn load_data(
    e: &mut Engine,
    local: bool,
    inpath: &str,
    overwrite: bool,
    table: &ObjectName,
    partition: Option<&[Expr]>,
) -> Result<Outcome> {
    let t = e.table(table).await?;
    let values = match partition {
        Some(p) => crate::ddl::full_spec(&t, p)?,
        None if !t.partition_columns.is_empty() => {
            return Err(SqlError::invalid(format!(
                "LOAD DATA into partitioned table {}.{} needs PARTITION (…) with every partition column",
                t.db, t.name
            )));
        }
        None => vec![],
    };
    let mut staging = None;
    let source = if local {
        let dir = format!("{}/.tusk-staging-{}", t.location.trim_end_matches('/'), query_id());
        if let Err(err) = upload_local(e, inpath, &dir).await {
            let _ = e.dfs.delete(&dir, true).await;
            return Err(err);
        }
        staging = Some(dir.clone());
        dir
    } else {
        crate::ddl::normalize_location(inpath)?
    };
    let r = e.meta.load_data(&t.db, &t.name, &source, &values, overwrite).await.map_err(catalog_error);
    if let Some(dir) = staging {
        let _ = e.dfs.delete(&dir, true).await;
    }
    let files = r?;
    Ok(Outcome::Done(format!("loaded {files} file{} into {}.{}", if files == 1 { "" } else { "s" }, t.db, t.name)))
}

/// Copies a local file, or the files of a local directory, into `dir`.
async fn upload_local(e: &Engine, inpath: &str, dir: &str) -> Result<()> {
    let path = std::path::Path::new(inpath.strip_prefix("file://").unwrap_or(inpath));
    let io = |err: std::io::Error| SqlError::Io { path: path.display().to_string(), source: err };
    let meta = tokio::fs::metadata(path).await.map_err(io)?;
    let files: Vec<std::path::PathBuf> = if meta.is_dir() {
        let mut v = Vec::new();
        let mut rd = tokio::fs::read_dir(path).await.map_err(io)?;
        while let Some(entry) = rd.next_entry().await.map_err(io)? {
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.file_type().await.map_err(io)?.is_file() && !name.starts_with('.') && !name.starts_with('_') {
                v.push(entry.path());
            }
        }
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let data = tokio::fs::read(&f).await.map_err(|err| SqlError::Io { path: f.display().to_string(), source: err })?;
        e.dfs.write_all(&format!("{dir}/{name}"), &data, false).await?;
    }
    Ok(())
}
