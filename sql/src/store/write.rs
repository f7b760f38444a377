//! Writes: put and copy through a hidden temporary file renamed over the
//! target; rename; delete.

use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, PutMode, PutOptions, PutPayload, PutResult, RenameOptions, RenameTargetMode,
};
use tusk_client::{Client, ClientError, CreateOptions, ErrorKind, FileWriter};

use super::errors::{already_exists, from_client, generic, not_implemented};
use super::read::{e_tag, read_error, stat_file};
use super::{DfsStore, dfs_path};

type Result<T, E = object_store::Error> = std::result::Result<T, E>;

/// Suffix of uploads in progress, as `tusk dfs put` (and `hdfs dfs -put`) use.
const COPYING_SUFFIX: &str = "._COPYING_";

/// Longest part of the target's name kept in a temporary name (DFS names
/// are at most 255 bytes; the rest of the temporary name needs 26).
const TEMP_NAME_KEEP: usize = 200;

/// A temporary name beside `target` (a DFS path): `.<name>.<id>._COPYING_`
/// in the same directory. Hidden (leading `.`), so listings skip it, and
/// unique, so concurrent writers of one target never share a file.
pub(crate) fn temp_path(target: &str) -> Result<String> {
    let (dir, name) = match target.rsplit_once('/') {
        Some((dir, name)) if !name.is_empty() => (dir, name),
        _ => return Err(generic(format!("{target}: cannot write the root directory"))),
    };
    let mut keep = name.len().min(TEMP_NAME_KEEP);
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    Ok(format!("{dir}/.{}.{}{COPYING_SUFFIX}", &name[..keep], &id[..12]))
}

/// Creates the temporary file `temp`, with missing parents.
pub(crate) async fn create_temp(client: &Client, location: &Path, temp: &str) -> Result<FileWriter> {
    let opts = CreateOptions { overwrite: false, create_parent: true, ..Default::default() };
    client.create(temp, opts).await.map_err(|e| from_client(location.as_ref(), e))
}

/// Deletes a temporary file after a failure; its own failure is only logged
/// (the first error is the one worth reporting).
pub(crate) async fn discard(client: &Client, temp: &str) {
    if let Err(e) = client.delete(temp, false).await {
        tracing::warn!("{temp}: cannot delete the temporary file of a failed write: {e}");
    }
}

/// Gives up on a writer after a failure (abandons its block, deletes the
/// file); only logged.
pub(crate) async fn abort_quietly(writer: FileWriter, temp: &str) {
    if let Err(e) = writer.abort().await {
        tracing::warn!("{temp}: cannot abort the temporary file of a failed write: {e}");
    }
}

/// Makes the closed temporary file `temp` the content of `location`
/// (overwriting a file there when `overwrite`), deleting `temp` on failure.
/// Returns the result with the new file's entity tag.
pub(crate) async fn publish(client: &Client, temp: &str, location: &Path, overwrite: bool) -> Result<PutResult> {
    let target = dfs_path(location);
    if let Err(e) = client.rename(temp, &target, overwrite).await {
        discard(client, temp).await;
        return Err(from_client(location.as_ref(), e));
    }
    // The tag is a courtesy: the put succeeded even if the stat fails.
    let e_tag = match client.try_stat(&target).await {
        Ok(Some(st)) => Some(e_tag(&st)),
        _ => None,
    };
    Ok(PutResult { e_tag, version: None })
}

/// `AlreadyExists` when anything (file or directory) is at `location`. A
/// non-overwriting DFS rename onto a directory would move the source into
/// it, so create-only writes look first.
async fn refuse_existing(client: &Client, location: &Path) -> Result<()> {
    match client.try_stat(&dfs_path(location)).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(already_exists(location)),
        Err(e) => Err(from_client(location.as_ref(), e)),
    }
}

/// Writes `data` to `writer`, aborting it (and deleting `temp`) on failure.
async fn write_or_abort(writer: &mut Option<FileWriter>, temp: &str, location: &Path, data: &[u8]) -> Result<()> {
    let Some(w) = writer.as_mut() else { return Err(generic(format!("{temp}: the writer failed earlier"))) };
    if let Err(e) = w.write(data).await {
        if let Some(w) = writer.take() {
            abort_quietly(w, temp).await;
        }
        return Err(from_client(location.as_ref(), e));
    }
    Ok(())
}

/// Closes `writer`, deleting `temp` when that fails.
async fn close_or_discard(client: &Client, writer: Option<FileWriter>, temp: &str, location: &Path) -> Result<()> {
    let Some(w) = writer else { return Err(generic(format!("{temp}: the writer failed earlier"))) };
    if let Err(e) = w.close().await {
        discard(client, temp).await;
        return Err(from_client(location.as_ref(), e));
    }
    Ok(())
}

/// `put_opts`: temporary file, close, rename over the target.
pub(crate) async fn put(store: &DfsStore, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
    let overwrite = match opts.mode {
        PutMode::Overwrite => true,
        PutMode::Create => false,
        PutMode::Update(_) => return Err(not_implemented("put_opts with PutMode::Update")),
    };
    if !opts.attributes.is_empty() {
        return Err(not_implemented("put_opts with attributes"));
    }
    let client = store.client();
    let temp = temp_path(&dfs_path(location))?;
    if !overwrite {
        refuse_existing(client, location).await?;
    }
    let mut writer = Some(create_temp(client, location, &temp).await?);
    for chunk in payload.iter() {
        write_or_abort(&mut writer, &temp, location, chunk).await?;
    }
    close_or_discard(client, writer, &temp, location).await?;
    publish(client, &temp, location, overwrite).await
}

/// `copy_opts`: the source streamed into a temporary file renamed over the
/// target (the DFS has no server-side copy).
pub(crate) async fn copy(store: &DfsStore, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
    let overwrite = match options.mode {
        CopyMode::Overwrite => true,
        CopyMode::Create => false,
    };
    let client = store.client();
    stat_file(client, from).await?;
    let temp = temp_path(&dfs_path(to))?;
    if !overwrite {
        refuse_existing(client, to).await?;
    }
    let mut reader = client.open(&dfs_path(from)).await.map_err(|e| read_error(from.as_ref(), e))?;
    let mut writer = Some(create_temp(client, to, &temp).await?);
    loop {
        let chunk = match reader.next_chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                if let Some(w) = writer.take() {
                    abort_quietly(w, &temp).await;
                }
                return Err(read_error(from.as_ref(), e));
            }
        };
        write_or_abort(&mut writer, &temp, to, &chunk).await?;
    }
    close_or_discard(client, writer, &temp, to).await?;
    publish(client, &temp, to, overwrite).await.map(|_| ())
}

/// `rename_opts`: one atomic DFS rename (metadata only). Missing parents of
/// the target are created, as object stores have no directories.
pub(crate) async fn rename(client: &Client, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
    let overwrite = match options.target_mode {
        RenameTargetMode::Overwrite => true,
        RenameTargetMode::Create => false,
    };
    if !overwrite {
        refuse_existing(client, to).await?;
    }
    let (src, dst) = (dfs_path(from), dfs_path(to));
    match client.rename(&src, &dst, overwrite).await {
        Ok(()) => return Ok(()),
        Err(e) if e.is_not_found() => {
            // Either the source is missing (report it) or the target's parent.
            if client.try_stat(&src).await.map_err(|e| from_client(from.as_ref(), e))?.is_none() {
                return Err(from_client(from.as_ref(), e));
            }
        }
        Err(e) => return Err(from_client(from.as_ref(), e)),
    }
    if let Some(parent) = tusk_common::path::parent(&dst) {
        client.mkdirs(parent, None, true).await.map_err(|e| from_client(to.as_ref(), e))?;
    }
    client.rename(&src, &dst, overwrite).await.map_err(|e| from_client(from.as_ref(), e))
}

/// One `delete_stream` item: a non-recursive delete; a missing path is fine
/// (as in S3). A non-empty directory is an error.
pub(crate) async fn delete(client: &Client, location: Path) -> Result<Path> {
    match client.delete(&dfs_path(&location), false).await {
        Ok(_) => Ok(location),
        Err(e) if e.is_not_found() => Ok(location),
        Err(e) => Err(delete_error(&location, e)),
    }
}

fn delete_error(location: &Path, e: ClientError) -> object_store::Error {
    if e.kind() == Some(ErrorKind::DirectoryNotEmpty) {
        return generic(format!("{}: is a non-empty directory, not an object ({e})", dfs_path(location)));
    }
    from_client(location.as_ref(), e)
}
