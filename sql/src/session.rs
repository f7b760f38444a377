//! [`Session`]: one user's SQL session (current database, session views),
//! running HiveQL statements against the metastore and the DFS.

use std::collections::HashMap;
use std::time::Instant;

use crate::error::{Result, SqlError};
use crate::outcome::{Outcome, StatementResult};
use crate::script;

/// Where a session connects, and as whom.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// The namenode (`host:port`).
    pub namenode: String,
    /// The jobtracker (`host:port`), which also serves the metastore.
    pub jobtracker: String,
    /// The user (HDFS simple authentication); `None`: `TUSK_USER` or the OS user.
    pub user: Option<String>,
    /// The database to start in (`USE` changes it).
    pub database: String,
    /// `--hivevar k=v`: substituted for `${k}` and `${hivevar:k}`.
    pub hivevars: HashMap<String, String>,
    /// Run queries in this process instead of on the workers.
    pub local: bool,
    /// A query reading at most this many bytes, none of its files spanning
    /// more than one block, runs as one task on one worker (beside most of
    /// its data) instead of as stages of parallel tasks: its start-up costs
    /// more than its work. 0: every query that reads tables runs stages.
    pub single_task_max_bytes: u64,
}

/// [`SqlConfig::single_task_max_bytes`] by default: 64 MiB.
pub const SINGLE_TASK_MAX_BYTES: u64 = 64 << 20;

impl SqlConfig {
    /// A configuration with the `default` database and no variables.
    pub fn new(namenode: impl Into<String>, jobtracker: impl Into<String>) -> SqlConfig {
        SqlConfig {
            namenode: namenode.into(),
            jobtracker: jobtracker.into(),
            user: None,
            database: "default".to_string(),
            hivevars: HashMap::new(),
            local: false,
            single_task_max_bytes: SINGLE_TASK_MAX_BYTES,
        }
    }
}

/// A SQL session.
pub struct Session {
    inner: crate::exec::Engine,
    hivevars: HashMap<String, String>,
}

impl Session {
    /// Connects to the namenode and the metastore. Channels are lazy: an
    /// unreachable daemon fails the first statement, not this call; a
    /// database that does not exist fails here.
    pub async fn connect(config: SqlConfig) -> Result<Session> {
        let hivevars = config.hivevars.clone();
        let inner = Box::pin(crate::exec::Engine::connect(config)).await?;
        Ok(Session { inner, hivevars })
    }

    /// The current database.
    pub fn database(&self) -> &str {
        self.inner.database()
    }

    /// Runs a script: `--hivevar` substitution, then each `;`-separated
    /// statement in order, handing each result to `on_result` as soon as it
    /// is done. Stops at the first failing statement; its error carries the
    /// position in `script` (line and column as written, after substitution).
    /// Returns the number of statements run.
    pub async fn run_script(&mut self, text: &str, on_result: &mut (dyn FnMut(StatementResult) + Send)) -> Result<usize> {
        let text = script::substitute(text, &self.hivevars)?;
        let mut n = 0;
        for st in script::split(&text) {
            let started = Instant::now();
            // Boxed: DataFusion's planning futures are large; kept off the caller's stack.
            let outcome = Box::pin(self.inner.execute(&st.text)).await.map_err(|e| e.shifted(st.start))?;
            on_result(StatementResult { text: st.text, outcome, elapsed: started.elapsed() });
            n += 1;
        }
        Ok(n)
    }

    /// Appends the rows of `batches` to the unpartitioned table `table`
    /// (`[db.]name`), or replaces its rows with `overwrite`; columns by
    /// position, cast to the table's types. Atomic like `INSERT`: nothing is
    /// visible until every row is written. Returns the rows written.
    pub async fn append_batches(
        &mut self,
        table: &str,
        batches: datafusion::execution::SendableRecordBatchStream,
        overwrite: bool,
    ) -> Result<u64> {
        Box::pin(crate::dml::append(&mut self.inner, table, batches, overwrite)).await
    }

    /// Runs a single statement (no `--hivevar` substitution).
    pub async fn execute(&mut self, sql: &str) -> Result<Outcome> {
        let statements = script::split(sql);
        match statements.as_slice() {
            [one] => Box::pin(self.inner.execute(&one.text)).await.map_err(|e| e.shifted(one.start)),
            [] => Err(SqlError::Syntax { message: "empty statement".into(), position: None }),
            _ => Err(SqlError::Syntax { message: "several statements: use run_script".into(), position: None }),
        }
    }
}
