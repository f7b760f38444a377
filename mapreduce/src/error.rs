//! Errors of the MapReduce engine.

/// Why a task, a split computation or a commit failed. Messages name the
/// input (path, program, record) so they can be shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A DFS operation failed.
    #[error("{0}")]
    Dfs(#[from] tusk_client::ClientError),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The user's program failed (exit status, crash, bad output).
    #[error("{0}")]
    User(String),
    /// The job or task definition is wrong (missing input, bad option).
    #[error("{0}")]
    Invalid(String),
    /// Map output could not be fetched from the worker holding it.
    #[error("{0}")]
    Shuffle(String),
    /// The jobtracker told the attempt to stop.
    #[error("task aborted: {0}")]
    Aborted(String),
}

impl TaskError {
    /// An I/O error with what was being done (`/x/spill0.out: write`).
    pub fn io(context: impl Into<String>, source: std::io::Error) -> TaskError {
        TaskError::Io { context: context.into(), source }
    }
}

/// Result of the engine.
pub type Result<T, E = TaskError> = std::result::Result<T, E>;
