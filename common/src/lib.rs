//! Small pieces shared by every Tusk crate: layered configuration loading,
//! DFS path rules, the caller's identity, sizes, time and logging.
//!
//! This crate sits at the bottom with `tusk-proto`; it must never depend on a
//! daemon or on the client.

pub mod config;
pub mod identity;
pub mod logging;
pub mod mode;
pub mod path;
pub mod size;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
