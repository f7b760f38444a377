//! The engine behind a [`crate::Session`]: dispatches parsed statements to
//! the catalog (DDL, SHOW, DESCRIBE), to DataFusion (queries) and to the
//! writers (INSERT, CTAS, LOAD).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::common::TableReference;
use datafusion::datasource::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{ObjectName, Spanned, Statement, visit_relations};
use tusk_client::{Client, ClientConfig, ClientError, ErrorKind, JobClient, MetastoreClient};
use tusk_proto::metastore as pb;

use crate::error::{Position, Result, SqlError};
use crate::hiveql::{self, Command};
use crate::outcome::Outcome;
use crate::session::SqlConfig;
use crate::store::{self, DfsStore};
use crate::table::TuskTable;

/// On the workers, a hash join whose smaller side is estimated under this
/// many bytes (or, without a size, rows) broadcasts that side.
const BROADCAST_JOIN_MAX_BYTES: usize = 10 << 20;
const BROADCAST_JOIN_MAX_ROWS: usize = 1 << 20;

/// The catalog name DataFusion sees; databases are its schemas.
pub(crate) const CATALOG: &str = "tusk";

pub(crate) struct Engine {
    pub(crate) dfs: Client,
    pub(crate) store: Arc<DfsStore>,
    /// Parquet footer statistics of the files the session has planned over.
    pub(crate) stats: Arc<crate::stats::StatsCache>,
    pub(crate) meta: MetastoreClient,
    pub(crate) ctx: SessionContext,
    pub(crate) db: String,
    /// Session views (`CREATE VIEW`), by (database, name).
    pub(crate) views: HashMap<(String, String), Arc<dyn TableProvider>>,
    /// The jobtracker, which runs queries on its workers.
    pub(crate) jobs: JobClient,
    pub(crate) namenode: String,
    /// Run every query in this process (`SqlConfig::local`).
    pub(crate) local: bool,
    /// `SqlConfig::single_task_max_bytes`.
    pub(crate) single_task_max_bytes: u64,
}

/// Where a query runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// In this process.
    Local,
    /// On the workers, `slots` tasks at a time (their slots, at most the
    /// cores of their machines: workers sharing a machine share its
    /// cores); `cores`: the most CPU cores of one worker's machine (the
    /// threads of a one-task query).
    Distributed { slots: usize, cores: usize },
}

/// A physical plan made for the workers.
pub(crate) struct Physical {
    pub(crate) plan: Arc<dyn ExecutionPlan>,
    /// Small enough to run whole in one task (its partitions on the task's
    /// threads) instead of as stages.
    pub(crate) one_task: bool,
}

impl Engine {
    pub(crate) async fn connect(config: SqlConfig) -> Result<Engine> {
        let mut dfs_config = ClientConfig::new(config.namenode.clone());
        dfs_config.user = config.user.clone();
        let dfs = Client::connect(dfs_config).await?;
        let store = Arc::new(DfsStore::new(dfs.clone()));
        let runtime = RuntimeEnvBuilder::new().build_arc().map_err(SqlError::execution)?;
        store::register(&runtime, store.clone());
        let mut session = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, config.database.to_lowercase())
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(false)
            .with_repartition_file_scans(false);
        session.options_mut().sql_parser.collect_spans = true;
        let state = SessionStateBuilder::new()
            .with_config(session)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        crate::udf::register(&ctx);
        let user = dfs.user().to_string();
        let meta = MetastoreClient::connect(config.jobtracker.clone()).await.map_err(catalog_error)?.with_user(user.clone());
        let db = config.database.to_lowercase();
        let jobs = JobClient::connect(config.jobtracker.clone()).await.map_err(catalog_error)?.with_user(user.clone());
        let mut engine = Engine {
            dfs,
            store,
            stats: Arc::default(),
            meta,
            ctx,
            db: String::new(),
            views: HashMap::new(),
            jobs,
            namenode: config.namenode.clone(),
            local: config.local,
            single_task_max_bytes: config.single_task_max_bytes,
        };
        engine.use_database(&db).await?;
        Ok(engine)
    }

    pub(crate) fn database(&self) -> &str {
        &self.db
    }

    /// `USE db`: the database must exist.
    pub(crate) async fn use_database(&mut self, db: &str) -> Result<()> {
        if self.meta.get_database(db).await.map_err(catalog_error)?.is_none() {
            return Err(SqlError::Catalog { message: format!("database not found: {db}"), not_found: true, position: None });
        }
        self.db = db.to_string();
        let state = self.ctx.state_ref();
        state.write().config_mut().options_mut().catalog.default_schema = db.to_string();
        Ok(())
    }

    pub(crate) async fn execute(&mut self, sql: &str) -> Result<Outcome> {
        match hiveql::parse(sql)? {
            Command::ShowPartitions { table, spec } => Box::pin(crate::show::partitions(self, &table, &spec)).await,
            Command::Statement { stmt, format } => Box::pin(self.statement(*stmt, format)).await,
        }
    }

    async fn statement(&mut self, stmt: Statement, format: Option<&'static str>) -> Result<Outcome> {
        match stmt {
            Statement::Query(_) => {
                let (schema, batches) = Box::pin(self.query(stmt)).await?;
                Ok(Outcome::Rows { schema, batches })
            }
            Statement::Explain { statement, analyze, verbose, .. } => Box::pin(crate::show::explain(self, *statement, analyze, verbose)).await,
            Statement::Use(u) => {
                use datafusion::sql::sqlparser::ast::Use;
                let name = match u {
                    Use::Object(n) | Use::Database(n) | Use::Schema(n) => object_name(&n)?,
                    Use::Default => "default".to_string(),
                    _ => return Err(SqlError::unsupported("USE: only USE <database>")),
                };
                self.use_database(&name).await?;
                Ok(Outcome::Done("OK".into()))
            }
            Statement::Set(_) => Ok(Outcome::Done("OK (setting ignored)".into())),
            Statement::CreateView(v) => Box::pin(crate::ddl::create_view(self, v)).await,
            Statement::Insert(insert) => Box::pin(crate::dml::insert(self, insert)).await,
            Statement::LoadData { local, inpath, overwrite, table_name, partitioned, .. } => {
                Box::pin(crate::dml::load_data(self, local, &inpath, overwrite, &table_name, partitioned.as_deref())).await
            }
            Statement::CreateTable(ct) if ct.query.is_some() => Box::pin(crate::dml::create_table_as(self, ct, format)).await,
            Statement::ExplainTable { hive_format, table_name, .. } => Box::pin(crate::show::describe(self, &table_name, hive_format)).await,
            Statement::ShowDatabases { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowViews { .. } => Box::pin(crate::show::show(self, stmt)).await,
            other => Box::pin(crate::ddl::ddl(self, other, format)).await,
        }
    }

    /// Plans a query statement (table references resolved from the metastore).
    pub(crate) async fn plan(&mut self, stmt: Statement) -> Result<LogicalPlan> {
        self.plan_ignoring(stmt, None).await
    }

    /// [`Engine::plan`], not resolving `ignore` (the name a statement creates).
    pub(crate) async fn plan_ignoring(&mut self, stmt: Statement, ignore: Option<(String, String)>) -> Result<LogicalPlan> {
        self.install_tables(&stmt, ignore).await?;
        let state = self.ctx.state();
        Box::pin(state.statement_to_plan(DFStatement::Statement(Box::new(stmt)))).await.map_err(df_error)
    }

    /// Where queries run now: on the workers when there are live ones
    /// (unless the session is local), and plans are made for that.
    pub(crate) async fn mode(&mut self) -> Result<Mode> {
        let mode = if self.local {
            Mode::Local
        } else {
            let status = self.jobs.cluster_status().await.map_err(|e| SqlError::Execution(e.to_string()))?;
            let slots: usize = status.live_workers().map(|w| w.slots as usize).sum();
            // Workers sharing a machine share its cores: a stage gets no
            // more tasks than the machines have cores in all.
            let mut per_host: HashMap<&str, usize> = HashMap::new();
            for w in status.live_workers() {
                let c = per_host.entry(w.host.as_str()).or_default();
                *c = (*c).max(w.cores as usize);
            }
            let machine_cores: usize = per_host.values().sum();
            let cores = per_host.values().copied().max().unwrap_or(0).max(1);
            let slots = if machine_cores > 0 { slots.min(machine_cores) } else { slots };
            if slots == 0 { Mode::Local } else { Mode::Distributed { slots, cores } }
        };
        let state = self.ctx.state_ref();
        let mut state = state.write();
        let opts = state.config_mut().options_mut();
        let distributed = matches!(mode, Mode::Distributed { .. });
        if let Mode::Distributed { slots, .. } = mode {
            opts.execution.target_partitions = slots.max(1);
            // A join side this small is built once per probe task from a
            // broadcast copy instead of shuffling both sides (Hive's and
            // Spark's map-join threshold is 10 MB).
            opts.optimizer.hash_join_single_partition_threshold = BROADCAST_JOIN_MAX_BYTES;
            opts.optimizer.hash_join_single_partition_threshold_rows = BROADCAST_JOIN_MAX_ROWS;
        } else {
            let defaults = datafusion::config::OptimizerOptions::default();
            opts.optimizer.hash_join_single_partition_threshold = defaults.hash_join_single_partition_threshold;
            opts.optimizer.hash_join_single_partition_threshold_rows = defaults.hash_join_single_partition_threshold_rows;
        }
        // Runtime filters pushed from a join or TopK into a scan cannot
        // cross a stage boundary; a round-robin repartition is a shuffle for
        // nothing.
        opts.optimizer.enable_dynamic_filter_pushdown = !distributed;
        opts.optimizer.enable_join_dynamic_filter_pushdown = !distributed;
        opts.optimizer.enable_topk_dynamic_filter_pushdown = !distributed;
        opts.optimizer.enable_aggregate_dynamic_filter_pushdown = !distributed;
        opts.optimizer.enable_round_robin_repartition = !distributed;
        Ok(mode)
    }

    /// Runs a query to completion, on the workers when there are some.
    pub(crate) async fn query(&mut self, stmt: Statement) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let name = stmt.to_string();
        let mode = self.mode().await?;
        let plan = self.plan(stmt).await?;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let short: String = name.chars().take(120).collect();
        let batches = Box::pin(self.run_logical(plan, mode, &short)).await?;
        Ok((schema, batches))
    }

    /// Runs a logical plan: on the workers (its scalar subqueries first, as
    /// queries of their own) or here.
    pub(crate) async fn run_logical(&self, plan: LogicalPlan, mode: Mode, name: &str) -> Result<Vec<RecordBatch>> {
        let state = self.ctx.state();
        if matches!(mode, Mode::Distributed { .. }) {
            let plan = Box::pin(self.without_scalar_subqueries(plan, mode, name)).await?;
            let physical = Box::pin(self.physical_plan(&plan, mode)).await?;
            if crate::dist::run::reads_files(&physical.plan) {
                let (_, batches) = Box::pin(crate::dist::run::run(self, name, physical)).await?;
                return Ok(batches);
            }
            return Box::pin(datafusion::physical_plan::collect(physical.plan, self.ctx.task_ctx())).await.map_err(df_error);
        }
        let physical = Box::pin(state.create_physical_plan(&plan)).await.map_err(df_error)?;
        Box::pin(datafusion::physical_plan::collect(physical, self.ctx.task_ctx())).await.map_err(df_error)
    }

    /// `plan` optimized, its uncorrelated scalar subqueries run first (as
    /// queries of their own) and replaced by their values: a plan whose
    /// stages can be shipped to the workers.
    pub(crate) async fn without_scalar_subqueries(&self, plan: LogicalPlan, mode: Mode, name: &str) -> Result<LogicalPlan> {
        let plan = Box::pin(self.with_in_lists(plan, mode, name)).await?;
        let optimized = self.ctx.state().optimize(&plan).map_err(df_error)?;
        let subqueries = crate::dist::subquery::scalar_subqueries(&optimized)?;
        if subqueries.is_empty() {
            return Ok(optimized);
        }
        let mut values = HashMap::new();
        for (i, s) in subqueries.into_iter().enumerate() {
            let rows = Box::pin(self.run_logical(s.subquery.as_ref().clone(), mode, name)).await?;
            let v = crate::dist::subquery::scalar_value(&s, &rows)?;
            values.insert(i, (s, v));
        }
        crate::dist::subquery::inline(optimized, &values)
    }

    /// `plan` with its uncorrelated `IN (subquery)`s run first, each
    /// replaced by the list of its values when it has at most
    /// `IN_LIST_MAX` of them (see `dist::subquery`), when both the
    /// subquery and the rest of the query are costly (neither a one-task
    /// query): then the list saves the rest of the query most of its reads.
    /// A subquery runs with a limit of one row more than that: one with
    /// more values stays a subquery, and if it only scans it stops early.
    async fn with_in_lists(&self, plan: LogicalPlan, mode: Mode, name: &str) -> Result<LogicalPlan> {
        use crate::dist::subquery::{IN_LIST_MAX, in_list, in_subqueries, inline_in_lists};
        let mut lists = Vec::new();
        for s in in_subqueries(&plan)? {
            let capped = datafusion::logical_expr::LogicalPlanBuilder::from(s.subquery.as_ref().clone())
                .limit(0, Some(IN_LIST_MAX + 1))
                .and_then(|b| b.build())
                .map_err(df_error)?;
            let rest = inline_in_lists(plan.clone(), &[(s.clone(), None)])?;
            if !Box::pin(self.costly(&capped, mode)).await? || !Box::pin(self.costly(&rest, mode)).await? {
                continue;
            }
            let rows = Box::pin(self.run_logical(capped, mode, name)).await?;
            if let Some(list) = in_list(&rows)? {
                lists.push((s, Some(list)));
            }
        }
        inline_in_lists(plan, &lists)
    }

    /// True when `plan` reads tables on the workers and is not a one-task query.
    async fn costly(&self, plan: &LogicalPlan, mode: Mode) -> Result<bool> {
        let state = self.ctx.state();
        let optimized = state.optimize(plan).map_err(df_error)?;
        let physical = Box::pin(state.create_physical_plan(&optimized)).await.map_err(df_error)?;
        Ok(crate::dist::run::reads_files(&physical) && !self.one_task(&physical, mode))
    }

    /// Whether a physical plan that reads tables is small enough
    /// ([`SqlConfig::single_task_max_bytes`]) to run whole in one task.
    fn one_task(&self, physical: &Arc<dyn ExecutionPlan>, mode: Mode) -> bool {
        let Mode::Distributed { slots, .. } = mode else { return false };
        slots > 1 && crate::dist::run::scan_size(physical).is_some_and(|bytes| bytes <= self.single_task_max_bytes)
    }

    /// The physical plan of `plan` for `mode`. On the workers, a query
    /// small enough ([`SqlConfig::single_task_max_bytes`]) is planned again
    /// with one partition per core of a worker, to run whole in one task.
    pub(crate) async fn physical_plan(&self, plan: &LogicalPlan, mode: Mode) -> Result<Physical> {
        let mut state = self.ctx.state();
        let physical = Box::pin(state.create_physical_plan(plan)).await.map_err(df_error)?;
        let Mode::Distributed { cores, .. } = mode else { return Ok(Physical { plan: physical, one_task: false }) };
        if !crate::dist::run::reads_files(&physical) || !self.one_task(&physical, mode) {
            return Ok(Physical { plan: physical, one_task: false });
        }
        state.config_mut().options_mut().execution.target_partitions = cores;
        let plan = Box::pin(state.create_physical_plan(plan)).await.map_err(df_error)?;
        Ok(Physical { plan, one_task: true })
    }

    /// (database, table) of a name, in the current database by default.
    pub(crate) fn qualify(&self, name: &ObjectName) -> Result<(String, String)> {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| p.as_ident().map(|i| i.value.to_lowercase()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| SqlError::invalid(format!("bad table name {name}")))?;
        match parts.as_slice() {
            [t] => Ok((self.db.clone(), t.clone())),
            [d, t] => Ok((d.clone(), t.clone())),
            _ => Err(SqlError::invalid(format!("bad table name {name}: expected [database.]table")).at(span_of(name))),
        }
    }

    /// The catalog entry of a table, or `table not found: db.t` at the name.
    pub(crate) async fn table(&self, name: &ObjectName) -> Result<pb::Table> {
        let (db, t) = self.qualify(name)?;
        let found = self
            .meta
            .get_tables(&[pb::TableRef { db: db.clone(), name: t.clone() }])
            .await
            .map_err(catalog_error)?;
        found.into_iter().next().ok_or_else(|| not_found(&db, &t, span_of(name)))
    }

    /// A scannable table with its partitions.
    pub(crate) async fn tusk_table(&self, table: pb::Table) -> Result<TuskTable> {
        let partitions = if table.partition_columns.is_empty() {
            vec![]
        } else {
            self.meta.list_partitions(&table.db, &table.name).await.map_err(catalog_error)?
        };
        TuskTable::new(table, partitions, self.store.clone(), self.stats.clone())
    }

    /// Fetches every table `stmt` names and installs them (with the session
    /// views) as DataFusion's catalog for the next plan.
    async fn install_tables(&mut self, stmt: &Statement, ignore: Option<(String, String)>) -> Result<()> {
        let df_stmt = DFStatement::Statement(Box::new(stmt.clone()));
        let (refs, _ctes) = datafusion::sql::resolve::resolve_table_references(&df_stmt, true).map_err(df_error)?;
        let functions = self.ctx.state().table_functions().keys().cloned().collect::<std::collections::HashSet<_>>();
        let mut wanted = Vec::new();
        for r in &refs {
            // Table functions (`generate_series(…)`, `range(…)`) are not tables.
            if let TableReference::Bare { table } = r
                && functions.contains(table.as_ref())
            {
                continue;
            }
            let (db, name) = match r {
                TableReference::Bare { table } => (self.db.clone(), table.to_string()),
                TableReference::Partial { schema, table } => (schema.to_string(), table.to_string()),
                TableReference::Full { catalog, schema, table } if catalog.as_ref() == CATALOG => {
                    (schema.to_string(), table.to_string())
                }
                TableReference::Full { .. } => return Err(SqlError::invalid(format!("unknown catalog in {r}"))),
            };
            let key = (db.clone(), name.clone());
            if !self.views.contains_key(&key) && ignore.as_ref() != Some(&key) {
                wanted.push(pb::TableRef { db, name });
            }
        }
        let found = if wanted.is_empty() { vec![] } else { self.meta.get_tables(&wanted).await.map_err(catalog_error)? };
        for w in &wanted {
            if !found.iter().any(|t| t.db == w.db && t.name == w.name) {
                return Err(not_found(&w.db, &w.name, relation_position(stmt, &w.db, &w.name, &self.db)));
            }
        }
        let catalog = MemoryCatalogProvider::new();
        let mut schemas: HashMap<String, Arc<MemorySchemaProvider>> = HashMap::new();
        schemas.insert(self.db.clone(), Arc::new(MemorySchemaProvider::new()));
        for t in found {
            let schema = schemas.entry(t.db.clone()).or_insert_with(|| Arc::new(MemorySchemaProvider::new())).clone();
            let name = t.name.clone();
            let provider = self.tusk_table(t).await?;
            schema.register_table(name, Arc::new(provider)).map_err(df_error)?;
        }
        for ((db, name), v) in &self.views {
            let schema = schemas.entry(db.clone()).or_insert_with(|| Arc::new(MemorySchemaProvider::new())).clone();
            schema.register_table(name.clone(), v.clone()).map_err(df_error)?;
        }
        for (db, s) in schemas {
            catalog.register_schema(&db, s).map_err(df_error)?;
        }
        self.ctx.register_catalog(CATALOG, Arc::new(catalog));
        Ok(())
    }
}

/// `table not found: db.t`, the metastore's wording.
pub(crate) fn not_found(db: &str, t: &str, position: Option<Position>) -> SqlError {
    SqlError::Catalog { message: format!("table not found: {db}.{t}"), not_found: true, position }
}

/// Where `db.t` is named in `stmt`.
fn relation_position(stmt: &Statement, db: &str, t: &str, current: &str) -> Option<Position> {
    let mut found = None;
    let _ = visit_relations(stmt, |name: &ObjectName| {
        let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident().map(|i| i.value.to_lowercase())).collect();
        let hit = match parts.as_slice() {
            [x] => x == t && db == current,
            [d, x] => d == db && x == t,
            _ => false,
        };
        if hit {
            found = span_of(name);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// The start of a node's span, when the parser recorded one.
pub(crate) fn span_of(node: &impl Spanned) -> Option<Position> {
    let s = node.span();
    (s.start.line > 0).then_some(Position { line: s.start.line, column: s.start.column })
}

/// A single-part name (database), lower-cased.
pub(crate) fn object_name(name: &ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [p] => p.as_ident().map(|i| i.value.to_lowercase()).ok_or_else(|| SqlError::invalid(format!("bad name {name}"))),
        _ => Err(SqlError::invalid(format!("bad name {name}: expected a single name")).at(span_of(name))),
    }
}

/// A metastore error: the server's sentence, kept as is.
pub(crate) fn catalog_error(e: ClientError) -> SqlError {
    let not_found = e.kind() == Some(ErrorKind::NotFound);
    match e {
        ClientError::Namenode { message, .. } => SqlError::Catalog { message, not_found, position: None },
        other => SqlError::Catalog { message: other.to_string(), not_found, position: None },
    }
}

/// A DataFusion error, with the position DataFusion's diagnostics give and
/// Hive-like wording for the common cases.
pub(crate) fn df_error(e: DataFusionError) -> SqlError {
    let position = e.diagnostic().and_then(|d| d.span).map(|s| Position { line: s.start.line, column: s.start.column });
    if let DataFusionError::External(inner) = e.find_root()
        && let Some(s) = inner.downcast_ref::<SqlError>()
    {
        return SqlError::Execution(s.to_string());
    }
    let root = e.find_root();
    let message = match root {
        DataFusionError::SchemaError(se, _) if matches!(se.as_ref(), datafusion::common::SchemaError::FieldNotFound { .. }) => {
            let datafusion::common::SchemaError::FieldNotFound { field, valid_fields } = se.as_ref() else {
                return SqlError::Execution(root.to_string());
            };
            let tables: Vec<String> = {
                let mut t: Vec<String> = valid_fields.iter().filter_map(|c| c.relation.as_ref().map(|r| r.table().to_string())).collect();
                t.dedup();
                t
            };
            let mut m = format!("unknown column '{}'", field.name);
            if let Some(q) = &field.relation {
                m = format!("unknown column '{}' in table {}", field.name, q.table());
            } else if tables.len() == 1 {
                m = format!("unknown column '{}' in table {}", field.name, tables[0]);
            }
            m
        }
        DataFusionError::Plan(m) => m.clone(),
        DataFusionError::SchemaError(s, _) => s.to_string(),
        other => other.message().to_string(),
    };
    let planning = matches!(root, DataFusionError::Plan(_) | DataFusionError::SchemaError(..) | DataFusionError::NotImplemented(_));
    if planning || position.is_some() {
        SqlError::Invalid { message, position }
    } else {
        SqlError::Execution(message)
    }
}
