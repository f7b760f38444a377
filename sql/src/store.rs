//! [`DfsStore`]: the DFS seen as an `object_store::ObjectStore`, so that
//! DataFusion (and anything else speaking `object_store`) reads and writes
//! Tusk's files.
//!
//! # Mapping
//!
//! An object-store [`Path`] has no leading `/`: `a/b` is the DFS file
//! `/a/b` ([`dfs_path`]). The store is registered for the URL `dfs://`
//! with an empty authority ([`register`], [`object_store_url`]), so a table
//! lives at `dfs:///warehouse/t/`; [`table_url`] turns a bare absolute
//! LOCATION (`/warehouse/t`) into that form, because DataFusion's
//! `ListingTableUrl::parse` would take a bare path for the local filesystem.
//! A URL naming a namenode (`dfs://host:port/...`) is refused: the store
//! talks to the cluster of its [`Client`].
//!
//! Objects are files. Directories exist in the DFS but not in the
//! object-store model: they never appear as objects, `list_with_delimiter`
//! shows them as common prefixes, and writes create missing parents.
//! Reading a directory is `NotFound`, as reading a prefix is in S3.
//!
//! # Hidden names
//!
//! [`list`](object_store::ObjectStore::list) and
//! [`list_with_delimiter`](object_store::ObjectStore::list_with_delimiter)
//! skip every file and directory whose name starts with `_` or `.`, below
//! the listed prefix — Hadoop's hidden-file rule (`FileInputFormat`'s
//! `hiddenFileFilter`). Job commit writes `_SUCCESS` and works under
//! `_temporary/`, SQL writes stage under `.tusk-staging-*`, and uploads in
//! progress are `.<name>.<id>._COPYING_`. DataFusion's `ListingTable`
//! keeps only names ending with the table's file extension; a TEXTFILE
//! table has none (`""`), so without this rule a query would read markers,
//! temporary files and half-written uploads as data. Code that must see
//! everything (commit, cleanup) uses [`DfsStore::list_all`].
//!
//! # Atomic writes
//!
//! The DFS has no atomic "write an object"; it has an atomic, metadata-only
//! rename. Every put, multipart upload and copy writes a hidden temporary
//! file beside its target, closes it (all bytes acknowledged by every
//! replica of the pipeline) and renames it over the target. A failed write
//! deletes its temporary file and never leaves anything under the target
//! name, as `tusk dfs put` does (ARCHITECTURE: "a failed upload never reads
//! as complete under its target name").

mod errors;
mod list;
mod read;
mod upload;
mod write;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions,
};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use tusk_client::{BlockLocation, Client, FileStatus};

/// The URL prefix every DFS table URL starts with (`dfs:///dir/`); the key
/// [`DfsStore`] is registered under.
pub const DFS_SCHEME_URL: &str = "dfs://";

/// Name of the store in `object_store::Error::Generic`.
const STORE: &str = "DFS";

/// `object_store` over a Tusk DFS [`Client`]. Cheap to clone (clones share
/// the client's connection and lease renewer).
#[derive(Clone)]
pub struct DfsStore {
    client: Client,
    /// Shown by `Display`; the client does not expose its namenode address.
    namenode: Option<Arc<str>>,
}

impl DfsStore {
    /// A store over `client`'s cluster.
    pub fn new(client: Client) -> DfsStore {
        DfsStore { client, namenode: None }
    }

    /// Names the namenode in `Display` (`DfsStore(nn:8020)`); without it
    /// the store shows its client's name (`tusk_client::Client` does not
    /// tell its namenode address).
    pub fn with_namenode(mut self, namenode: impl Into<String>) -> DfsStore {
        self.namenode = Some(Arc::from(namenode.into()));
        self
    }

    /// The DFS client, for operations `object_store` has no word for.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The blocks of the DFS file `path` overlapping `[offset, offset +
    /// len)` (`len` 0: to the end), with the datanodes holding each, for
    /// placing scan tasks beside their data.
    pub async fn block_locations(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<BlockLocation>, object_store::Error> {
        self.client.block_locations(path, offset, len).await.map_err(|e| read::read_error(path, e))
    }

    /// Every file and directory below the DFS directory `dfs_dir`, hidden
    /// names included (parents before their children, siblings by name),
    /// for commit and cleanup code. A missing `dfs_dir` is `NotFound`; a
    /// file is listed as itself.
    pub async fn list_all(&self, dfs_dir: &str) -> Result<Vec<FileStatus>, object_store::Error> {
        list::list_all(&self.client, dfs_dir).await
    }
}

impl fmt::Display for DfsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namenode {
            Some(nn) => write!(f, "DfsStore({nn})"),
            None => write!(f, "DfsStore({})", self.client.client_name()),
        }
    }
}

impl fmt::Debug for DfsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DfsStore")
            .field("namenode", &self.namenode)
            .field("client", &self.client.client_name())
            .field("user", &self.client.user())
            .finish()
    }
}

/// The DFS path of an object: `a/b` → `/a/b` (the root for the empty path).
pub fn dfs_path(p: &Path) -> String {
    format!("/{}", p.as_ref())
}

/// The object path of a DFS path: `/a/b` → `a/b`.
pub(crate) fn object_path(dfs: &str) -> Result<Path, object_store::Error> {
    Ok(Path::parse(dfs.trim_start_matches('/'))?)
}

/// The URL of the DFS store (`dfs:///`), for `FileScanConfig`s built by
/// hand.
#[allow(clippy::expect_used, reason = "a constant URL, parsed by the tests in tests/tests/sql_store.rs")]
pub fn object_store_url() -> ObjectStoreUrl {
    ObjectStoreUrl::parse(DFS_SCHEME_URL).expect("dfs:// is a valid object store URL")
}

/// Registers `store` in `runtime` for every `dfs:///…` URL (replacing an
/// earlier registration). With a `SessionContext`: `register(&ctx.runtime_env(), store)`.
pub fn register(runtime: &RuntimeEnv, store: Arc<DfsStore>) {
    let url = object_store_url();
    runtime.register_object_store(url.as_ref(), store);
}

/// The URL DataFusion should use for a table LOCATION: a bare absolute DFS
/// path `/x/y` becomes `dfs:///x/y`; a `dfs:///…` URL is kept; both end
/// with `/` when `dir` (DataFusion treats only such URLs as directories).
/// Other schemes (`s3://bucket/…`, `file:///…`) are returned as written. A
/// `dfs://` URL with an authority (`dfs://nn:8020/x`) and relative paths are
/// refused: the store serves the one cluster of its client.
pub fn table_url(location: &str, dir: bool) -> Result<String, DataFusionError> {
    let refuse = |why: String| DataFusionError::Plan(format!("location {location:?}: {why}"));
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let url = url::Url::parse(location).map_err(|e| refuse(format!("not an absolute path or a URL ({e})")))?;
        if url.scheme() != "dfs" {
            return Ok(location.to_string());
        }
        if url.host_str().is_some_and(|h| !h.is_empty()) || url.port().is_some() {
            return Err(refuse(
                "a dfs:// URL must not name a namenode; write dfs:///path (or /path) for the cluster's own DFS".into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refuse("a dfs:// URL takes no query or fragment".into()));
        }
        let decoded = Path::from_url_path(url.path()).map_err(|e| refuse(e.to_string()))?;
        dfs_path(&decoded)
    };
    let normalized = tusk_common::path::normalize(&path).map_err(|e| refuse(e.to_string()))?;
    let mut url = url::Url::parse("dfs:///").map_err(|e| refuse(e.to_string()))?;
    url.set_path(&normalized);
    let mut out = url.to_string();
    if dir && !out.ends_with('/') {
        out.push('/');
    }
    Ok(out)
}

/// True for names Hadoop treats as hidden: `_SUCCESS`, `_temporary`,
/// `.staging`, `.x._COPYING_`.
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
}

#[async_trait]
impl ObjectStore for DfsStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        write::put(self, location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        upload::start(self, location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        read::get(self, location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        read::get_ranges(&self.client, location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let client = self.client.clone();
        locations
            .map(move |location| {
                let client = client.clone();
                async move { write::delete(&client, location?).await }
            })
            .buffered(8)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        list::list(self.client.clone(), prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        list::list_with_delimiter(&self.client, prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        write::copy(self, from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        write::rename(&self.client, from, to, options).await
    }
}
