//! Placing the job's `files` (`-file`, uploaded to the DFS by the client)
//! in the attempt's working directory, where commands find them.

use crate::error::{Result, TaskError};
use std::path::Path;
use tokio::io::AsyncWriteExt;
use tusk_client::Client;

/// Downloads the job's `files` (DFS paths) into `work_dir`, each under its
/// base name and executable, so commands can run them (`-mapper m.py` with
/// `-file m.py`). The task runner calls it before the first program runs.
/// Two files with the same base name are refused before anything is
/// downloaded.
pub async fn localize(client: &Client, files: &[String], work_dir: &Path) -> Result<()> {
    for (file, name) in files.iter().zip(local_names(files)?) {
        let dest = work_dir.join(name);
        let io_err = |e| TaskError::io(format!("{file} -> {}", dest.display()), e);
        let mut reader = client.open(file).await?;
        let mut f = tokio::fs::File::create(&dest).await.map_err(io_err)?;
        while let Some(chunk) = reader.next_chunk().await? {
            f.write_all(&chunk).await.map_err(io_err)?;
        }
        f.flush().await.map_err(io_err)?;
        drop(f);
        make_executable(&dest).await?;
    }
    Ok(())
}

/// The local name of each file: its base name; refuses paths without one
/// and two files with the same one.
fn local_names(files: &[String]) -> Result<Vec<&str>> {
    let mut seen: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    let mut names = Vec::with_capacity(files.len());
    for file in files {
        let name = file.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        if name.is_empty() || name == "." || name == ".." {
            return Err(TaskError::Invalid(format!("{file}: cannot localize: no file name")));
        }
        if let Some(other) = seen.insert(name, file) {
            return Err(TaskError::Invalid(format!("{other} and {file}: both would be localized as {name}")));
        }
        names.push(name);
    }
    Ok(names)
}

async fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .await
        .map_err(|e| TaskError::io(format!("{}: chmod 755", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(files: &[&str]) -> Result<Vec<String>> {
        let files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        local_names(&files).map(|n| n.into_iter().map(String::from).collect())
    }

    #[test]
    fn files_keep_their_base_names() {
        assert_eq!(names(&["/user/a/.staging/x/mapper.py", "/d/reducer.sh", "rel.txt"]).unwrap(), [
            "mapper.py",
            "reducer.sh",
            "rel.txt"
        ]);
        assert!(names(&[]).unwrap().is_empty());
    }

    #[test]
    fn clashing_or_nameless_files_are_refused() {
        let err = names(&["/a/m.py", "/b/m.py"]).unwrap_err().to_string();
        assert_eq!(err, "/a/m.py and /b/m.py: both would be localized as m.py");
        let err = names(&["/"]).unwrap_err().to_string();
        assert_eq!(err, "/: cannot localize: no file name");
        assert!(names(&["/x/.."]).is_err());
    }
}
