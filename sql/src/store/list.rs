//! Listings: a streamed depth-first walk (`list`), one level
//! (`list_with_delimiter`), and the unfiltered walk for commit code.

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{ListResult, ObjectMeta};
use std::collections::VecDeque;
use tusk_client::{Client, ClientError, ErrorKind, FileStatus};

use super::errors::from_client;
use super::read::object_meta;
use super::{dfs_path, is_hidden, object_path};

type Result<T, E = object_store::Error> = std::result::Result<T, E>;

/// Which entries a [`Walk`] hands out.
#[derive(Clone, Copy)]
struct WalkRules {
    /// Skip names starting with `_` or `.` (and everything below them).
    skip_hidden: bool,
    /// Hand out directories too (before their children).
    dirs: bool,
}

/// A depth-first walk below `root`, one directory listing at a time: only
/// the directories still to visit and the entries of the last listed
/// directory are held in memory.
struct Walk {
    client: Client,
    root: String,
    rules: WalkRules,
    /// Directories still to list, the next one last.
    stack: Vec<String>,
    /// Entries listed but not handed out yet.
    ready: VecDeque<FileStatus>,
    failed: bool,
}

/// The directory below the root vanished, or the path is not a directory
/// any more: nothing to list there.
fn is_gone(e: &ClientError) -> bool {
    matches!(e.kind(), Some(ErrorKind::NotFound) | Some(ErrorKind::NotADirectory))
}

impl Walk {
    fn new(client: Client, root: String, rules: WalkRules) -> Walk {
        Walk { client, stack: vec![root.clone()], root, rules, ready: VecDeque::new(), failed: false }
    }

    /// The next entry, `None` at the end. A missing root lists as empty; a
    /// root that is a file lists as nothing (object-store semantics: a
    /// prefix matches whole segments below it).
    async fn next(&mut self) -> Option<Result<FileStatus, ClientError>> {
        loop {
            if let Some(st) = self.ready.pop_front() {
                return Some(Ok(st));
            }
            if self.failed {
                return None;
            }
            let dir = self.stack.pop()?;
            let entries = match self.client.list(&dir).await {
                Ok(entries) => entries,
                Err(e) if is_gone(&e) => continue,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            let mut subdirs = Vec::new();
            for st in entries {
                // `list` of a file returns the file itself.
                if st.path == dir || (self.rules.skip_hidden && is_hidden(&st.name)) {
                    continue;
                }
                if st.is_dir {
                    subdirs.push(st.path.clone());
                    if self.rules.dirs {
                        self.ready.push_back(st);
                    }
                } else {
                    self.ready.push_back(st);
                }
            }
            // Visit subdirectories in name order.
            self.stack.extend(subdirs.into_iter().rev());
        }
    }
}

/// `list`: every file below `prefix` (recursively), hidden names skipped.
pub(crate) fn list(client: Client, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
    let root = prefix.map(dfs_path).unwrap_or_else(|| "/".to_string());
    let walk = Walk::new(client, root, WalkRules { skip_hidden: true, dirs: false });
    futures::stream::unfold(walk, |mut walk| async move {
        let item = match walk.next().await? {
            Ok(st) => object_path(&st.path).map(|p| object_meta(p, &st)),
            Err(e) => Err(from_client(&walk.root, e)),
        };
        Some((item, walk))
    })
    .boxed()
}

/// `list_with_delimiter`: the files directly below `prefix` as objects, its
/// subdirectories as common prefixes; hidden names skipped.
pub(crate) async fn list_with_delimiter(client: &Client, prefix: Option<&Path>) -> Result<ListResult> {
    let dir = prefix.map(dfs_path).unwrap_or_else(|| "/".to_string());
    let mut out = ListResult { common_prefixes: Vec::new(), objects: Vec::new() };
    let entries = match client.list(&dir).await {
        Ok(entries) => entries,
        Err(e) if is_gone(&e) => return Ok(out),
        Err(e) => return Err(from_client(&dir, e)),
    };
    for st in entries {
        if st.path == dir || is_hidden(&st.name) {
            continue;
        }
        let location = object_path(&st.path)?;
        if st.is_dir {
            out.common_prefixes.push(location);
        } else {
            out.objects.push(object_meta(location, &st));
        }
    }
    Ok(out)
}

/// Everything below `dfs_dir`, hidden names and directories included.
pub(crate) async fn list_all(client: &Client, dfs_dir: &str) -> Result<Vec<FileStatus>> {
    let root = client.stat(dfs_dir).await.map_err(|e| from_client(dfs_dir, e))?;
    if !root.is_dir {
        return Ok(vec![root]);
    }
    let mut walk = Walk::new(client.clone(), root.path, WalkRules { skip_hidden: false, dirs: true });
    let mut out = Vec::new();
    while let Some(st) = walk.next().await {
        out.push(st.map_err(|e| from_client(dfs_dir, e))?);
    }
    Ok(out)
}
