//! Logging setup for daemons and the CLI (tracing to stderr).

use tracing_subscriber::EnvFilter;

/// Installs a stderr subscriber; `RUST_LOG` overrides `default_filter`.
/// Calling it twice is harmless.
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Logs a repeated failure (of a retried call to a peer) at warn level at
/// most every `every`, at debug level in between, and says once when the
/// peer answers again.
pub struct QuietLog {
    /// What is called, as the recovery line names it ("namenode").
    peer: &'static str,
    every: std::time::Duration,
    last_warned: Option<std::time::Instant>,
}

impl QuietLog {
    /// Warns at most every five seconds.
    pub fn new(peer: &'static str) -> QuietLog {
        QuietLog { peer, every: std::time::Duration::from_secs(5), last_warned: None }
    }

    /// Logs a failure of `what`.
    pub fn failed(&mut self, what: &str, e: &dyn std::fmt::Display) {
        if self.last_warned.is_none_or(|t| t.elapsed() >= self.every) {
            tracing::warn!("{what}: {e}");
            self.last_warned = Some(std::time::Instant::now());
        } else {
            tracing::debug!("{what}: {e}");
        }
    }

    /// Logs that `what` worked again, once after failures.
    pub fn recovered(&mut self, what: &str) {
        if self.last_warned.take().is_some() {
            tracing::info!("{what}: {} reachable again", self.peer);
        }
    }

    /// True while the last failure has not been followed by a success.
    pub fn failing(&self) -> bool {
        self.last_warned.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_log_tracks_failure_until_recovery() {
        let mut q = QuietLog::new("namenode");
        assert!(!q.failing());
        q.failed("heartbeat", &"connection refused");
        q.failed("heartbeat", &"connection refused");
        assert!(q.failing());
        q.recovered("heartbeat");
        assert!(!q.failing());
    }
}
