//! DFS access as the request's user: one client per user, created lazily
//! (a client connects on first use, so a namenode that is down only fails
//! the calls made meanwhile), and the few file operations the catalog needs.

use tusk_client::{Client, ClientPool, FileStatus};

use crate::error::{MetastoreError, Result, dfs_error};
use crate::paths;

/// Clients of the namenode, by user.
pub(crate) struct Dfs {
    pool: ClientPool,
}

impl Dfs {
    pub(crate) fn new(namenode: &str) -> Dfs {
        Dfs { pool: ClientPool::new(namenode) }
    }

    /// The file system as seen by `user` (never empty: requests name theirs).
    pub(crate) async fn as_user(&self, user: &str) -> Result<Fs> {
        if user.is_empty() {
            return Err(MetastoreError::invalid("the request names no user"));
        }
        Ok(Fs { client: self.pool.client(user).await.map_err(dfs_error)? })
    }
}

/// One user's view of the DFS.
#[derive(Clone)]
pub(crate) struct Fs {
    client: Client,
}

impl Fs {
    pub(crate) async fn stat(&self, path: &str) -> Result<Option<FileStatus>> {
        self.client.try_stat(path).await.map_err(dfs_error)
    }

    pub(crate) async fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.stat(path).await?.is_some())
    }

    /// Creates `path` and its parents unless it is a directory already; a
    /// file there is refused.
    pub(crate) async fn mkdirs(&self, path: &str) -> Result<()> {
        match self.stat(path).await? {
            Some(st) if st.is_dir => Ok(()),
            Some(_) => Err(MetastoreError::invalid(format!("{path} is a file, not a directory"))),
            None => self.client.mkdirs(path, None, true).await.map_err(dfs_error),
        }
    }

    /// Deletes `path` (recursively); false when it did not exist.
    pub(crate) async fn delete(&self, path: &str) -> Result<bool> {
        self.client.delete(path, true).await.map_err(dfs_error)
    }

    /// Renames `src` to exactly `dst` (which must not exist; its parent must).
    pub(crate) async fn rename(&self, src: &str, dst: &str) -> Result<()> {
        self.client.rename(src, dst, false).await.map_err(dfs_error)
    }

    /// The entries of a directory; none when it does not exist.
    pub(crate) async fn list(&self, dir: &str) -> Result<Vec<FileStatus>> {
        match self.client.list(dir).await {
            Ok(entries) => Ok(entries),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(dfs_error(e)),
        }
    }

    /// The entries of a directory that are data (not hidden); none when it
    /// does not exist.
    pub(crate) async fn data_entries(&self, dir: &str) -> Result<Vec<FileStatus>> {
        let mut entries = self.list(dir).await?;
        entries.retain(|e| !paths::is_hidden(&e.name) && e.path != dir);
        Ok(entries)
    }

    /// Deletes the data entries of `dir` (files and directories not
    /// hidden), keeping `dir`; returns how many went.
    pub(crate) async fn delete_data(&self, dir: &str) -> Result<u64> {
        let mut n = 0;
        for e in self.data_entries(dir).await? {
            if self.delete(&e.path).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}
