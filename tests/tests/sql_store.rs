//! `DfsStore` (tusk-sql) against a real cluster: the `object_store`
//! contract (reads, ranges, preconditions, atomic puts, multipart uploads,
//! listings with Hadoop's hidden names, copy, rename, delete), then
//! DataFusion writing Parquet and CSV into `dfs:///` and reading them back.

use bytes::Bytes;
use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tusk_client::{Client, ClientConfig};
use tusk_sql::store::{self, DfsStore};
use tusk_tests::{TestCluster, eventually, test_bytes};

const BLOCK: u64 = 256 * 1024;

/// A one-datanode cluster with small blocks, and a store over it.
async fn start() -> anyhow::Result<(TestCluster, DfsStore)> {
    let cluster = TestCluster::builder().datanodes(1).workers(0).replication(1).block_size(BLOCK).start()?;
    let store = DfsStore::new(cluster.client().await?).with_namenode(cluster.namenode.clone());
    Ok((cluster, store))
}

fn p(s: &str) -> Path {
    Path::parse(s).unwrap()
}

async fn listed(store: &DfsStore, prefix: Option<&str>) -> Vec<String> {
    let prefix = prefix.map(p);
    let mut names: Vec<String> =
        store.list(prefix.as_ref()).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
    names.sort();
    names
}

/// Every path below `dir`, hidden ones included.
async fn all_paths(store: &DfsStore, dir: &str) -> Vec<String> {
    store.list_all(dir).await.unwrap().into_iter().map(|s| s.path).collect()
}

fn assert_no_temp_files(paths: &[String]) {
    assert!(paths.iter().all(|p| !p.contains("_COPYING_")), "temporary files left: {paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_paths_and_registration() -> anyhow::Result<()> {
    assert_eq!(store::object_store_url().as_str(), "dfs:///");
    assert_eq!(store::DFS_SCHEME_URL, "dfs://");
    assert_eq!(store::dfs_path(&p("a/b.parquet")), "/a/b.parquet");
    assert_eq!(store::dfs_path(&Path::default()), "/");

    assert_eq!(store::table_url("/x/y", true)?, "dfs:///x/y/");
    assert_eq!(store::table_url("/x/y/", true)?, "dfs:///x/y/");
    assert_eq!(store::table_url("/x/y", false)?, "dfs:///x/y");
    assert_eq!(store::table_url("/", true)?, "dfs:///");
    assert_eq!(store::table_url("dfs:///x/y", true)?, "dfs:///x/y/");
    assert_eq!(store::table_url("dfs:///x/f.csv", false)?, "dfs:///x/f.csv");
    assert_eq!(store::table_url("/x/a b", true)?, "dfs:///x/a%20b/");
    assert_eq!(store::table_url("s3://bucket/t/", true)?, "s3://bucket/t/");
    assert_eq!(store::table_url("file:///tmp/t", false)?, "file:///tmp/t");
    let e = store::table_url("dfs://nn:8020/x", true).unwrap_err().to_string();
    assert!(e.contains("dfs://nn:8020/x") && e.contains("namenode"), "{e}");
    assert!(store::table_url("dfs://nn/x", true).is_err());
    assert!(store::table_url("relative/path", true).is_err());
    assert!(store::table_url("/x/../y", true).is_err());

    for (name, hidden) in [("_SUCCESS", true), (".x._COPYING_", true), ("_temporary", true), ("part-0.csv", false)] {
        assert_eq!(store::is_hidden(name), hidden, "{name}");
    }

    // Registration: a dfs:/// URL resolves to the store (no cluster needed:
    // the client connects lazily).
    let client = Client::connect(ClientConfig::new("127.0.0.1:1")).await?;
    let dfs = Arc::new(DfsStore::new(client).with_namenode("nn.example:8020"));
    assert_eq!(dfs.to_string(), "DfsStore(nn.example:8020)");
    let ctx = SessionContext::new();
    store::register(&ctx.runtime_env(), dfs);
    let found = ctx.runtime_env().object_store(ObjectStoreUrl::parse("dfs:///")?)?;
    assert_eq!(found.to_string(), "DfsStore(nn.example:8020)");
    let table = ListingTableUrl::parse("dfs:///some/table/")?;
    assert!(table.is_collection());
    assert_eq!(table.prefix().as_ref(), "some/table");
    assert_eq!(ctx.runtime_env().object_store(table.object_store())?.to_string(), "DfsStore(nn.example:8020)");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_follow_the_object_store_contract() -> anyhow::Result<()> {
    let (_cluster, store) = start().await?;
    let b = BLOCK;
    let data = test_bytes(3 * b as usize + 777, 1);
    let len = data.len() as u64;
    let loc = p("r/data.bin");
    store.put(&loc, data.clone().into()).await?;

    // Whole object, metadata from the DFS.
    let got = store.get(&loc).await?;
    let st = store.client().stat("/r/data.bin").await?;
    assert_eq!(got.meta.size, len);
    assert_eq!(got.meta.e_tag.as_deref(), Some(format!("{}-{len}", st.modification_time_ms).as_str()));
    assert_eq!(got.meta.last_modified.timestamp_millis(), st.modification_time_ms);
    assert_eq!(got.range, 0..len);
    let meta = got.meta.clone();
    assert!(got.bytes().await? == data, "whole object");
    assert_eq!(store.head(&loc).await?, meta);

    // Block locations for the planner: four blocks, each on the datanode.
    let blocks = store.block_locations("/r/data.bin", 0, 0).await?;
    let offsets: Vec<u64> = blocks.iter().map(|l| l.offset).collect();
    assert_eq!(offsets, [0, b, 2 * b, 3 * b]);
    assert_eq!(blocks.iter().map(|l| l.length).sum::<u64>(), len);
    assert!(blocks.iter().all(|l| l.hosts.len() == 1), "{blocks:?}");
    assert_eq!(store.block_locations("/r/data.bin", b + 1, 10).await?.len(), 1);
    let e = store.block_locations("/r/missing", 0, 0).await.unwrap_err();
    assert!(matches!(e, object_store::Error::NotFound { .. }), "{e:?}");

    // Every kind of range.
    let cases: Vec<(GetRange, std::ops::Range<u64>)> = vec![
        (GetRange::Bounded(b - 10..b + 10), b - 10..b + 10),
        (GetRange::Bounded(5..2 * b + 3), 5..2 * b + 3),
        (GetRange::Offset(2 * b + 5), 2 * b + 5..len),
        (GetRange::Suffix(1000), len - 1000..len),
        (GetRange::Suffix(len + 100), 0..len),
        (GetRange::Bounded(len - 5..len + 100), len - 5..len),
    ];
    for (range, want) in cases {
        let r = store.get_opts(&loc, GetOptions { range: Some(range.clone()), ..Default::default() }).await?;
        assert_eq!(r.range, want, "{range:?}");
        let bytes = r.bytes().await?;
        assert!(bytes[..] == data[want.start as usize..want.end as usize], "{range:?}");
    }
    assert!(store.get_range(&loc, 1..4).await?[..] == data[1..4]);
    for bad in [GetRange::Bounded(len..len + 1), GetRange::Offset(len + 1)] {
        let e = store.get_opts(&loc, GetOptions { range: Some(bad.clone()), ..Default::default() }).await.unwrap_err();
        assert!(matches!(e, object_store::Error::Generic { .. }), "{bad:?}: {e:?}");
        assert!(e.to_string().contains("Wanted range starting at"), "{bad:?}: {e}");
    }

    // Many ranges from one reader: across blocks, overlapping, past the end.
    let ranges = [0..10, b - 3..b + 3, 2 * b..3 * b + 1, 5..7, 7..7, len - 1..len + 50, 100..b * 3];
    let got = store.get_ranges(&loc, &ranges).await?;
    assert_eq!(got.len(), ranges.len());
    for (r, bytes) in ranges.iter().zip(&got) {
        let end = r.end.min(len) as usize;
        assert!(bytes[..] == data[r.start as usize..end], "range {r:?}");
    }
    let e = store.get_ranges(&loc, &[0..1, len + 1..len + 2]).await.unwrap_err();
    assert!(matches!(e, object_store::Error::Generic { .. }), "{e:?}");

    // Preconditions.
    let tag = meta.e_tag.clone().unwrap();
    let at = meta.last_modified;
    let ok = GetOptions { if_match: Some(tag.clone()), ..Default::default() };
    assert!(store.get_opts(&loc, ok).await.is_ok());
    let failing = [
        GetOptions { if_match: Some("1-2".into()), ..Default::default() },
        GetOptions { if_unmodified_since: Some(at - std::time::Duration::from_secs(1)), ..Default::default() },
    ];
    for o in failing {
        let e = store.get_opts(&loc, o).await.unwrap_err();
        assert!(matches!(e, object_store::Error::Precondition { .. }), "{e:?}");
    }
    let unmodified = [
        GetOptions { if_none_match: Some(tag.clone()), ..Default::default() },
        GetOptions { if_modified_since: Some(at), ..Default::default() },
    ];
    for o in unmodified {
        let e = store.get_opts(&loc, o).await.unwrap_err();
        assert!(matches!(e, object_store::Error::NotModified { .. }), "{e:?}");
    }

    // Missing objects and directories are NotFound, whatever the call.
    for missing in [p("r/missing"), p("r"), p("nope/deeper")] {
        let e = store.get(&missing).await.unwrap_err();
        assert!(matches!(e, object_store::Error::NotFound { .. }), "get {missing}: {e:?}");
        let e = store.head(&missing).await.unwrap_err();
        assert!(matches!(e, object_store::Error::NotFound { .. }), "head {missing}: {e:?}");
        let e = store.get_ranges(&missing, &[0..1, 2..3]).await.unwrap_err();
        assert!(matches!(e, object_store::Error::NotFound { .. }), "get_ranges {missing}: {e:?}");
    }

    // An empty object.
    store.put(&p("r/empty"), PutPayload::new()).await?;
    let r = store.get(&p("r/empty")).await?;
    assert_eq!((r.meta.size, r.range.clone()), (0, 0..0));
    assert!(r.bytes().await?.is_empty());

    // A large object streams in pieces of at most 8 MiB.
    let big = test_bytes(9 << 20, 2);
    store.put(&p("r/big"), big.clone().into()).await?;
    let chunks: Vec<Bytes> = store.get(&p("r/big")).await?.into_stream().try_collect().await?;
    assert!(chunks.len() >= 2, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|c| c.len() <= 8 << 20), "{:?}", chunks.iter().map(Bytes::len).collect::<Vec<_>>());
    assert!(chunks.concat() == big, "big object");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_and_uploads_are_atomic() -> anyhow::Result<()> {
    let (_cluster, store) = start().await?;
    let client = store.client().clone();

    // Parents are created; the tag is the object's.
    let loc = p("w/a/b/c.txt");
    let put = store.put(&loc, Bytes::from_static(b"first").into()).await?;
    assert!(client.stat("/w/a/b").await?.is_dir);
    assert_eq!(put.e_tag, store.head(&loc).await?.e_tag);
    assert_eq!(store.get(&loc).await?.bytes().await?, "first");

    // Create refuses an existing object and leaves it alone; Overwrite replaces.
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    let e = store.put_opts(&loc, Bytes::from_static(b"second").into(), create.clone()).await.unwrap_err();
    assert!(matches!(e, object_store::Error::AlreadyExists { .. }), "{e:?}");
    assert_eq!(store.get(&loc).await?.bytes().await?, "first");
    store.put(&loc, Bytes::from_static(b"third").into()).await?;
    assert_eq!(store.get(&loc).await?.bytes().await?, "third");
    store.put_opts(&p("w/new"), Bytes::from_static(b"n").into(), create.clone()).await?;
    let e = store.put_opts(&p("w/a"), Bytes::from_static(b"x").into(), create).await.unwrap_err();
    assert!(matches!(e, object_store::Error::AlreadyExists { .. }), "create onto a directory: {e:?}");
    let update = PutOptions {
        mode: PutMode::Update(UpdateVersion { e_tag: put.e_tag.clone(), version: None }),
        ..Default::default()
    };
    let e = store.put_opts(&loc, Bytes::from_static(b"u").into(), update).await.unwrap_err();
    assert!(matches!(e, object_store::Error::NotImplemented { .. }), "{e:?}");

    // A failed put (the target is a directory) leaves no file behind.
    assert!(store.put(&p("w/a/b"), Bytes::from_static(b"x").into()).await.is_err());
    assert!(client.stat("/w/a/b").await?.is_dir);
    assert_no_temp_files(&all_paths(&store, "/w").await);

    // Multipart: parts issued before any is awaited land in call order.
    let b = BLOCK as usize;
    let parts =
        [test_bytes(100_000, 3), test_bytes(b + 3, 4), test_bytes(1, 5), test_bytes(70_000, 6), test_bytes(2 * b, 7)];
    let m = p("w/m/multi.bin");
    let mut upload = store.put_multipart(&m).await?;
    let pending: Vec<_> = parts.iter().map(|d| upload.put_part(d.clone().into())).collect();
    futures::future::try_join_all(pending).await?;
    // Not visible before complete; its temporary file is hidden from listings.
    assert!(matches!(store.head(&m).await, Err(object_store::Error::NotFound { .. })));
    assert!(listed(&store, Some("w/m")).await.is_empty());
    let temps = all_paths(&store, "/w/m").await;
    assert!(
        temps.len() == 1 && temps[0].starts_with("/w/m/.multi.bin.") && temps[0].ends_with("._COPYING_"),
        "{temps:?}"
    );
    let done = upload.complete().await?;
    assert_eq!(done.e_tag, store.head(&m).await?.e_tag);
    assert!(store.get(&m).await?.bytes().await? == parts.concat(), "multipart content");
    assert_eq!(all_paths(&store, "/w/m").await, vec!["/w/m/multi.bin".to_string()]);
    assert!(upload.put_part(Bytes::from_static(b"late").into()).await.is_err(), "part after complete");

    // A multipart upload replaces an existing object.
    let mut upload = store.put_multipart(&m).await?;
    upload.put_part(Bytes::from_static(b"replaced").into()).await?;
    upload.complete().await?;
    assert_eq!(store.get(&m).await?.bytes().await?, "replaced");

    // Abort leaves nothing.
    let gone = p("w/m/aborted.bin");
    let mut upload = store.put_multipart(&gone).await?;
    upload.put_part(test_bytes(b + 10, 8).into()).await?;
    upload.put_part(test_bytes(1000, 9).into()).await?;
    upload.abort().await?;
    assert!(matches!(store.head(&gone).await, Err(object_store::Error::NotFound { .. })));
    assert_eq!(all_paths(&store, "/w/m").await, vec!["/w/m/multi.bin".to_string()]);

    // An upload dropped unfinished is aborted by its task.
    let mut upload = store.put_multipart(&p("w/d/dropped.bin")).await?;
    upload.put_part(test_bytes(1000, 12).into()).await?;
    assert_eq!(all_paths(&store, "/w/d").await.len(), 1);
    drop(upload);
    eventually(Duration::from_secs(10), || async { all_paths(&store, "/w/d").await.is_empty() }).await?;

    // The writer DataFusion uses: small writes buffered into parts.
    let dyn_store: Arc<dyn ObjectStore> = Arc::new(store.clone());
    let data = test_bytes(3 << 20, 10);
    let mut w = object_store::buffered::BufWriter::with_capacity(dyn_store, p("w/buf/out.bin"), 1 << 20);
    for piece in data.chunks(100_003) {
        w.write_all(piece).await?;
    }
    w.shutdown().await?;
    assert!(store.get(&p("w/buf/out.bin")).await?.bytes().await? == data, "BufWriter content");
    assert_no_temp_files(&all_paths(&store, "/w").await);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_skip_hidden_names() -> anyhow::Result<()> {
    let (_cluster, store) = start().await?;
    let client = store.client().clone();
    for (path, body) in [("t/a.csv", "1"), ("t/sub/b.csv", "22"), ("t/sub/deeper/c.csv", "333"), ("tx/other.csv", "4")]
    {
        store.put(&p(path), Bytes::from(body).into()).await?;
    }
    for hidden in [
        "/t/_SUCCESS",
        "/t/.hidden",
        "/t/_temporary/0/x.csv",
        "/t/.tusk-staging-1/y.csv",
        "/t/sub/_part",
        "/t/sub/.z.csv._COPYING_",
    ] {
        client.write_all(hidden, b"junk", false).await?;
    }
    client.mkdirs("/t/empty", None, true).await?;

    assert_eq!(listed(&store, Some("t")).await, ["t/a.csv", "t/sub/b.csv", "t/sub/deeper/c.csv"]);
    assert_eq!(listed(&store, None).await, ["t/a.csv", "t/sub/b.csv", "t/sub/deeper/c.csv", "tx/other.csv"]);
    let metas: Vec<_> = store.list(Some(&p("t/sub"))).try_collect().await?;
    let mut sizes: Vec<(String, u64)> = metas.iter().map(|m| (m.location.to_string(), m.size)).collect();
    sizes.sort();
    assert_eq!(sizes, [("t/sub/b.csv".to_string(), 2), ("t/sub/deeper/c.csv".to_string(), 3)]);
    assert!(metas.iter().all(|m| m.e_tag.is_some()));
    // Prefixes match whole segments; a file or a missing path lists nothing.
    assert!(listed(&store, Some("t/su")).await.is_empty());
    assert!(listed(&store, Some("t/a.csv")).await.is_empty());
    assert!(listed(&store, Some("nope")).await.is_empty());
    // A hidden prefix named explicitly is listed.
    assert_eq!(listed(&store, Some("t/_temporary")).await, ["t/_temporary/0/x.csv"]);
    let after: Vec<String> = store
        .list_with_offset(Some(&p("t")), &p("t/sub/b.csv"))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await?;
    assert_eq!(after, ["t/sub/deeper/c.csv"]);

    let one = store.list_with_delimiter(Some(&p("t"))).await?;
    let objects: Vec<String> = one.objects.iter().map(|m| m.location.to_string()).collect();
    assert_eq!(objects, ["t/a.csv"]);
    assert_eq!(one.common_prefixes, [p("t/empty"), p("t/sub")]);
    let top = store.list_with_delimiter(None).await?;
    assert_eq!(top.common_prefixes, [p("t"), p("tx")]);
    assert!(top.objects.is_empty());
    let none = store.list_with_delimiter(Some(&p("t/a.csv"))).await?;
    assert!(none.objects.is_empty() && none.common_prefixes.is_empty());
    let none = store.list_with_delimiter(Some(&p("missing"))).await?;
    assert!(none.objects.is_empty() && none.common_prefixes.is_empty());

    // The unfiltered listing sees everything, directories too.
    let all = all_paths(&store, "/t").await;
    for want in [
        "/t/_SUCCESS",
        "/t/.hidden",
        "/t/_temporary",
        "/t/_temporary/0/x.csv",
        "/t/sub/.z.csv._COPYING_",
        "/t/empty",
        "/t/sub/deeper/c.csv",
    ] {
        assert!(all.contains(&want.to_string()), "{want} missing from {all:?}");
    }
    assert_eq!(all.len(), 15, "{all:?}");
    let e = store.list_all("/nope").await.unwrap_err();
    assert!(matches!(e, object_store::Error::NotFound { .. }), "{e:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_rename_and_delete() -> anyhow::Result<()> {
    let (_cluster, store) = start().await?;
    let data = test_bytes(2 * BLOCK as usize + 5, 11);
    let src = p("c/src.bin");
    store.put(&src, data.clone().into()).await?;

    // Copy streams across blocks into a new directory.
    store.copy(&src, &p("c/dir/dst.bin")).await?;
    assert!(store.get(&p("c/dir/dst.bin")).await?.bytes().await? == data, "copy");
    let e = store.copy_if_not_exists(&src, &p("c/dir/dst.bin")).await.unwrap_err();
    assert!(matches!(e, object_store::Error::AlreadyExists { .. }), "{e:?}");
    let e = store.copy(&p("c/missing"), &p("c/x")).await.unwrap_err();
    assert!(matches!(e, object_store::Error::NotFound { .. }), "{e:?}");
    store.put(&p("c/other"), Bytes::from_static(b"other").into()).await?;
    store.copy(&p("c/other"), &p("c/dir/dst.bin")).await?;
    assert_eq!(store.get(&p("c/dir/dst.bin")).await?.bytes().await?, "other");
    store.copy_if_not_exists(&src, &p("c/fresh")).await?;
    assert!(store.get(&p("c/fresh")).await?.bytes().await? == data, "copy_if_not_exists");

    // Rename into a missing directory; the source disappears.
    store.rename(&p("c/fresh"), &p("c/new/moved.bin")).await?;
    assert!(matches!(store.head(&p("c/fresh")).await, Err(object_store::Error::NotFound { .. })));
    assert!(store.get(&p("c/new/moved.bin")).await?.bytes().await? == data, "renamed");
    // Create mode refuses an existing file and a directory (which a DFS
    // rename would otherwise move the source into).
    let e = store.rename_if_not_exists(&p("c/other"), &p("c/new/moved.bin")).await.unwrap_err();
    assert!(matches!(e, object_store::Error::AlreadyExists { .. }), "{e:?}");
    let e = store.rename_if_not_exists(&p("c/other"), &p("c/dir")).await.unwrap_err();
    assert!(matches!(e, object_store::Error::AlreadyExists { .. }), "{e:?}");
    assert_eq!(store.get(&p("c/other")).await?.bytes().await?, "other");
    assert!(matches!(store.head(&p("c/dir/other")).await, Err(object_store::Error::NotFound { .. })));
    store.rename_if_not_exists(&p("c/other"), &p("c/other2")).await?;
    // Overwrite mode replaces the target.
    store.rename(&p("c/other2"), &p("c/new/moved.bin")).await?;
    assert_eq!(store.get(&p("c/new/moved.bin")).await?.bytes().await?, "other");
    assert!(matches!(store.head(&p("c/other2")).await, Err(object_store::Error::NotFound { .. })));
    let e = store.rename(&p("c/missing"), &p("c/y")).await.unwrap_err();
    assert!(matches!(e, object_store::Error::NotFound { .. }), "{e:?}");

    // Delete: present, missing (fine), many in order.
    store.delete(&src).await?;
    assert!(matches!(store.head(&src).await, Err(object_store::Error::NotFound { .. })));
    store.delete(&p("c/never-was")).await?;
    let targets = vec![p("c/dir/dst.bin"), p("c/gone"), p("c/new/moved.bin")];
    let stream = futures::stream::iter(targets.clone().into_iter().map(Ok)).boxed();
    let deleted: Vec<Path> = store.delete_stream(stream).try_collect().await?;
    assert_eq!(deleted, targets);
    assert!(listed(&store, Some("c")).await.is_empty());
    assert_no_temp_files(&all_paths(&store, "/c").await);
    Ok(())
}

/// Every column of every row, as i64.
fn int_rows(batches: &[RecordBatch]) -> Vec<Vec<i64>> {
    let mut rows = Vec::new();
    for batch in batches {
        let cols: Vec<Int64Array> = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Int64).unwrap().as_any().downcast_ref::<Int64Array>().unwrap().clone())
            .collect();
        for r in 0..batch.num_rows() {
            rows.push(cols.iter().map(|c| c.value(r)).collect());
        }
    }
    rows
}

async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datafusion_writes_and_reads_tables_in_the_dfs() -> anyhow::Result<()> {
    let (_cluster, store) = start().await?;
    let client = store.client().clone();
    let ctx = SessionContext::new();
    store::register(&ctx.runtime_env(), Arc::new(store.clone()));
    const N: i64 = 100_000;
    let rows = format!(
        "SELECT value AS id, value * 2 AS twice, concat('row-', CAST(value AS VARCHAR)) AS name FROM generate_series(1, {N})"
    );

    // Parquet through COPY, read back through read_parquet.
    // Uncompressed, so that files span several blocks.
    query(
        &ctx,
        &format!("COPY ({rows}) TO 'dfs:///t/p/' STORED AS PARQUET OPTIONS ('format.compression' 'uncompressed')"),
    )
    .await;
    let files: Vec<_> = store.list(Some(&p("t/p"))).try_collect().await?;
    assert!(!files.is_empty() && files.iter().all(|m| m.location.as_ref().ends_with(".parquet")), "{files:?}");
    assert!(files.iter().any(|m| m.size > BLOCK), "a Parquet file spanning blocks: {files:?}");
    assert_no_temp_files(&all_paths(&store, "/t/p").await);
    client.write_all("/t/p/_SUCCESS", b"", false).await?;
    client.write_all("/t/p/.junk.parquet", b"not parquet at all", false).await?;
    let df = ctx.read_parquet("dfs:///t/p/", ParquetReadOptions::default()).await?;
    ctx.register_table("p", df.into_view())?;
    let got = int_rows(&query(&ctx, "SELECT count(*), sum(id), sum(twice), count(DISTINCT name) FROM p").await);
    assert_eq!(got, vec![vec![N, N * (N + 1) / 2, N * (N + 1), N]]);
    let one = query(&ctx, "SELECT name FROM p WHERE id = 77777").await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&one)?.to_string();
    assert!(text.contains("row-77777") && one.iter().map(RecordBatch::num_rows).sum::<usize>() == 1, "{text}");

    // CSV through COPY; hidden files beside the data are not read, even by
    // a table without a file extension (as a TEXTFILE table has none).
    query(&ctx, &format!("COPY ({rows}) TO 'dfs:///t/c/' STORED AS CSV OPTIONS ('format.has_header' 'true')")).await;
    for (junk, body) in [
        ("/t/c/_SUCCESS", "9,9,nine\n"),
        ("/t/c/.part.csv._COPYING_", "8,8,eight\n"),
        ("/t/c/.junk.csv", "7,7,seven\n"),
    ] {
        client.write_all(junk, body.as_bytes(), false).await?;
    }
    let location = store::table_url("/t/c", true)?;
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE c (id BIGINT, twice BIGINT, name VARCHAR) STORED AS CSV LOCATION '{location}' \
             OPTIONS ('format.has_header' 'true')"
        ),
    )
    .await;
    let got = int_rows(&query(&ctx, "SELECT count(*), sum(id), max(twice) FROM c").await);
    assert_eq!(got, vec![vec![N, N * (N + 1) / 2, 2 * N]]);
    ctx.register_csv("raw", &location, CsvReadOptions::new().has_header(true).file_extension("")).await?;
    let got = int_rows(&query(&ctx, "SELECT count(*), sum(id) FROM raw").await);
    assert_eq!(got, vec![vec![N, N * (N + 1) / 2]]);

    // Single-file tables (head, then gets), one per written file.
    let csv = store.list(Some(&p("t/c"))).try_collect::<Vec<_>>().await?;
    assert!(!csv.is_empty() && csv.iter().all(|m| m.location.as_ref().ends_with(".csv")), "{csv:?}");
    let mut total = 0;
    for (i, meta) in csv.iter().enumerate() {
        let single = store::table_url(&store::dfs_path(&meta.location), false)?;
        ctx.register_csv(format!("single{i}").as_str(), &single, CsvReadOptions::new().has_header(true)).await?;
        let got = int_rows(&query(&ctx, &format!("SELECT count(*) FROM single{i}")).await);
        assert!(got[0][0] > 0, "{single}");
        total += got[0][0];
    }
    assert_eq!(total, N);
    Ok(())
}
