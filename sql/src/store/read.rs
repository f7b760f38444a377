//! Reads: `get_opts` streams a range in bounded chunks; `get_ranges` serves
//! many ranges from one open reader.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    Attributes, GetOptions, GetRange, GetResult, GetResultPayload, OBJECT_STORE_COALESCE_DEFAULT, ObjectMeta,
};
use std::ops::Range;
use std::sync::Arc;
use tusk_client::{Client, ClientError, ErrorKind, FileStatus};

use super::errors::{from_client, generic, not_found, not_implemented};
use super::{DfsStore, STORE, dfs_path};

/// Largest piece a `get` stream yields. A get holds at most
/// `READ_AHEAD` of them in memory, whatever the size of the file.
pub(crate) const GET_CHUNK: u64 = 8 << 20;

/// Chunks of a `get` stream read ahead of its consumer.
const READ_AHEAD: usize = 2;

type Result<T, E = object_store::Error> = std::result::Result<T, E>;

/// A client error met while reading `path`: reading a directory is
/// `NotFound` (a prefix is no object), the rest as [`from_client`].
pub(crate) fn read_error(path: &str, e: ClientError) -> object_store::Error {
    if e.kind() == Some(ErrorKind::IsADirectory) {
        return not_found(path, e.to_string());
    }
    from_client(path, e)
}

/// The entity tag of a file version: modification time and length, which
/// change together with every rewrite (files are write-once).
pub(crate) fn e_tag(st: &FileStatus) -> String {
    format!("{}-{}", st.modification_time_ms, st.length)
}

/// The object metadata of the file `st` at `location`.
pub(crate) fn object_meta(location: Path, st: &FileStatus) -> ObjectMeta {
    ObjectMeta {
        location,
        last_modified: DateTime::from_timestamp_millis(st.modification_time_ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        size: st.length,
        e_tag: Some(e_tag(st)),
        version: None,
    }
}

/// The status of the file at `location`; `NotFound` when nothing or a
/// directory is there.
pub(crate) async fn stat_file(client: &Client, location: &Path) -> Result<FileStatus> {
    let path = dfs_path(location);
    match client.try_stat(&path).await {
        Ok(Some(st)) if !st.is_dir => Ok(st),
        Ok(Some(_)) => Err(not_found(location.as_ref(), format!("{path}: is a directory"))),
        Ok(None) => Err(not_found(location.as_ref(), format!("{path}: no such file or directory"))),
        Err(e) => Err(read_error(location.as_ref(), e)),
    }
}

fn range_error(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic { store: STORE, source: Box::new(e) }
}

/// `get_opts`: preconditions, `head`, every `GetRange`; the bytes come as a
/// stream of at most [`GET_CHUNK`]-byte pieces, read one ahead.
pub(crate) async fn get(store: &DfsStore, location: &Path, options: GetOptions) -> Result<GetResult> {
    if options.version.is_some() {
        return Err(not_implemented("get_opts with a version"));
    }
    let client = store.client();
    let path = dfs_path(location);
    let st = stat_file(client, location).await?;
    let meta = object_meta(location.clone(), &st);
    options.check_preconditions(&meta)?;
    let range = match &options.range {
        Some(r) => r.as_range(meta.size).map_err(range_error)?,
        None => 0..meta.size,
    };
    let empty = |meta, range| GetResult {
        payload: GetResultPayload::Stream(futures::stream::empty().boxed()),
        meta,
        range,
        attributes: Attributes::default(),
    };
    if options.head || range.is_empty() {
        return Ok(empty(meta, range));
    }
    let reader = client.open(&path).await.map_err(|e| read_error(location.as_ref(), e))?;
    if reader.len() != meta.size {
        return Err(generic(format!(
            "{path}: the file changed while being opened ({} bytes, then {})",
            meta.size,
            reader.len()
        )));
    }
    let reader = Arc::new(reader);
    let name = location.to_string();
    let end = range.end;
    let chunks = (range.start..range.end).step_by(GET_CHUNK as usize);
    let stream = futures::stream::iter(chunks)
        .map(move |start| {
            let reader = Arc::clone(&reader);
            let name = name.clone();
            let len = GET_CHUNK.min(end - start);
            async move { reader.read_range(start, len).await.map_err(|e| read_error(&name, e)) }
        })
        .buffered(READ_AHEAD)
        .boxed();
    Ok(GetResult { payload: GetResultPayload::Stream(stream), meta, range, attributes: Attributes::default() })
}

/// `get_ranges`: one reader (one namenode call) for every range; ranges
/// closer than 1 MiB are read together, up to 10 at once. Ranges past the
/// end are cut at the end; a range starting past it is an error.
pub(crate) async fn get_ranges(client: &Client, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let path = dfs_path(location);
    let reader = client.open(&path).await.map_err(|e| read_error(location.as_ref(), e))?;
    let len = reader.len();
    for r in ranges {
        // An empty range inside the file is harmless: it reads as empty.
        if !(r.start == r.end && r.start <= len) {
            GetRange::Bounded(r.clone()).as_range(len).map_err(range_error)?;
        }
    }
    let reader = &reader;
    let name = location.as_ref();
    object_store::coalesce_ranges(
        ranges,
        |r: Range<u64>| async move {
            let end = r.end.min(len);
            reader.read_range(r.start, end.saturating_sub(r.start)).await.map_err(|e| read_error(name, e))
        },
        OBJECT_STORE_COALESCE_DEFAULT,
    )
    .await
}
