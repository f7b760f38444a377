//! The SQL front end's error type. Every error a user can cause names the
//! problem and, when known, where it is in the statement (`line 1, column
//! 15: …`, 1-based, counted in the script as the user wrote it).

use std::fmt;

/// A position in a script: line and column, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Everything that can go wrong running a statement.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text is not valid HiveQL.
    #[error("{}{message}", at(.position))]
    Syntax { message: String, position: Option<Position> },
    /// The statement is valid but wrong: unknown table or column, type
    /// errors, wrong number of columns, bad options...
    #[error("{}{message}", at(.position))]
    Invalid { message: String, position: Option<Position> },
    /// The statement is valid but not supported by Tusk.
    #[error("{}not supported: {message}", at(.position))]
    Unsupported { message: String, position: Option<Position> },
    /// The metastore refused or failed the call; its message is shown as is
    /// (`table not found: db.t`).
    #[error("{}{message}", at(.position))]
    Catalog { message: String, not_found: bool, position: Option<Position> },
    /// The DFS failed.
    #[error("{0}")]
    Dfs(String),
    /// Query execution failed.
    #[error("{0}")]
    Execution(String),
    /// A local file (script, LOAD DATA LOCAL source) could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Bad configuration (addresses, hivevars).
    #[error("{0}")]
    Config(String),
}

fn at(p: &Option<Position>) -> String {
    match p {
        Some(p) => format!("{p}: "),
        None => String::new(),
    }
}

impl SqlError {
    pub(crate) fn invalid(message: impl Into<String>) -> SqlError {
        SqlError::Invalid { message: message.into(), position: None }
    }

    pub(crate) fn unsupported(message: impl Into<String>) -> SqlError {
        SqlError::Unsupported { message: message.into(), position: None }
    }

    pub(crate) fn execution(e: impl fmt::Display) -> SqlError {
        SqlError::Execution(e.to_string())
    }

    /// The position, if the error has one.
    pub fn position(&self) -> Option<Position> {
        match self {
            SqlError::Syntax { position, .. }
            | SqlError::Invalid { position, .. }
            | SqlError::Unsupported { position, .. }
            | SqlError::Catalog { position, .. } => *position,
            _ => None,
        }
    }

    /// Sets the position when the error has none yet.
    pub(crate) fn at(mut self, pos: Option<Position>) -> SqlError {
        if let SqlError::Syntax { position, .. }
        | SqlError::Invalid { position, .. }
        | SqlError::Unsupported { position, .. }
        | SqlError::Catalog { position, .. } = &mut self
            && position.is_none()
        {
            *position = pos;
        }
        self
    }

    /// Moves the position from statement coordinates to script coordinates:
    /// the statement starts at `start` in the script.
    pub(crate) fn shifted(mut self, start: Position) -> SqlError {
        if let SqlError::Syntax { position: Some(p), .. }
        | SqlError::Invalid { position: Some(p), .. }
        | SqlError::Unsupported { position: Some(p), .. }
        | SqlError::Catalog { position: Some(p), .. } = &mut self
        {
            if p.line == 1 {
                p.column += start.column - 1;
            }
            p.line += start.line - 1;
        }
        self
    }

    /// True for "table/database not found" errors.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SqlError::Catalog { not_found: true, .. })
    }
}

impl From<tusk_client::ClientError> for SqlError {
    fn from(e: tusk_client::ClientError) -> SqlError {
        SqlError::Dfs(e.to_string())
    }
}

/// Result alias of the crate.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;
