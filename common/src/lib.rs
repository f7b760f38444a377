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

/// Writes `addr` and a newline to `file` through a temporary file and a
/// rename (creating the parent directory), so a reader never sees a partial
/// address. A failure names the path it happened on.
pub fn write_addr_file(
    file: &std::path::Path,
    addr: &dyn std::fmt::Display,
) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| (parent.to_path_buf(), e))?;
    }
    std::fs::write(&tmp, format!("{addr}\n")).map_err(|e| (tmp.clone(), e))?;
    std::fs::rename(&tmp, file).map_err(|e| (file.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn addr_file_is_written_whole_and_names_a_failing_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/addr");
        super::write_addr_file(&file, &"127.0.0.1:9000").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "127.0.0.1:9000\n");
        let blocked = file.join("below-a-file");
        let (path, _) = super::write_addr_file(&blocked, &"x").unwrap_err();
        assert_eq!(path, file);
    }
}
