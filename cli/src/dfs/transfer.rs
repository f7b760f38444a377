//! Commands that move bytes: `put`, `get`, `cat`, `cp`.
//!
//! Uploads and copies write `<target>._COPYING_` and rename it over the
//! target only when every byte is acknowledged, so a failed or interrupted
//! transfer never leaves a file that reads as complete under the target name.

use anyhow::{Context, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;
use tusk_client::{CreateOptions, FileReader, FileWriter};
use tusk_common::path;

use super::Dfs;
use crate::progress::transfer_bar;

/// Suffix of in-progress uploads, as `hdfs dfs -put` uses.
const COPYING_SUFFIX: &str = "._COPYING_";
/// Read size for local files and stdin.
const IO_CHUNK: usize = 1 << 20;

pub struct PutOptions {
    pub force: bool,
    pub replication: Option<u32>,
    pub block_size: Option<u64>,
}

/// `put SRC... DST`.
pub async fn put(dfs: &Dfs, srcs: &[String], dst: &str, opts: &PutOptions) -> anyhow::Result<()> {
    let dst = path::normalize(&dfs.resolve(dst))?;
    let dst_status = dfs.client.try_stat(&dst).await?;
    let dst_is_dir = dst_status.as_ref().is_some_and(|s| s.is_dir);
    if srcs.len() > 1 && !dst_is_dir {
        bail!("{dst}: not a directory (several sources need a directory destination)");
    }
    for src in srcs {
        if src == "-" {
            if dst_is_dir {
                bail!("{dst}: is a directory (stdin needs a file destination)");
            }
            let mut stdin = tokio::io::stdin();
            upload_stream(dfs, Source::Local(&mut stdin), None, &dst, opts, "stdin").await?;
            continue;
        }
        let local = Path::new(src);
        let meta = std::fs::metadata(local).with_context(|| format!("{src}: no such file or directory"))?;
        let target = if dst_is_dir { path::join(&dst, &local_name(local)?) } else { dst.clone() };
        if meta.is_dir() {
            put_dir(dfs, local, &target, opts).await?;
        } else {
            put_file(dfs, local, &target, opts).await?;
        }
    }
    Ok(())
}

fn local_name(p: &Path) -> anyhow::Result<String> {
    let name = p
        .canonicalize()
        .ok()
        .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    name.with_context(|| format!("{}: has no file name", p.display()))
}

async fn put_dir(dfs: &Dfs, local: &Path, target: &str, opts: &PutOptions) -> anyhow::Result<()> {
    if let Some(st) = dfs.client.try_stat(target).await? {
        if !st.is_dir {
            bail!("{target}: file exists");
        }
    } else {
        dfs.client.mkdirs(target, None, false).await?;
    }
    let mut entries: Vec<_> = std::fs::read_dir(local)
        .with_context(|| format!("{}: cannot read directory", local.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: cannot read directory", local.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let child = path::join(target, &name);
        let ft = e.file_type().with_context(|| format!("{}: cannot stat", e.path().display()))?;
        if ft.is_dir() {
            Box::pin(put_dir(dfs, &e.path(), &child, opts)).await?;
        } else {
            put_file(dfs, &e.path(), &child, opts).await?;
        }
    }
    Ok(())
}

async fn put_file(dfs: &Dfs, local: &Path, target: &str, opts: &PutOptions) -> anyhow::Result<()> {
    let mut file = tokio::fs::File::open(local)
        .await
        .with_context(|| format!("{}: cannot open", local.display()))?;
    let len = file.metadata().await.map(|m| m.len()).ok();
    upload_stream(dfs, Source::Local(&mut file), len, target, opts, &local.display().to_string()).await
}

/// Where uploaded bytes come from: a local stream or a DFS file.
enum Source<'a> {
    Local(&'a mut (dyn tokio::io::AsyncRead + Unpin + Send)),
    Dfs(Box<FileReader>),
}

/// A piece read from a [`Source`]: local bytes stay in the caller's buffer
/// (no extra copy), DFS chunks arrive as their own buffers.
enum Piece<'b> {
    Borrowed(&'b [u8]),
    Owned(bytes::Bytes),
}

impl std::ops::Deref for Piece<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Piece::Borrowed(b) => b,
            Piece::Owned(b) => b,
        }
    }
}

impl Source<'_> {
    /// The next piece of bytes; `None` at the end.
    async fn next<'b>(&mut self, buf: &'b mut [u8]) -> anyhow::Result<Option<Piece<'b>>> {
        match self {
            Source::Local(r) => match r.read(buf).await? {
                0 => Ok(None),
                n => Ok(Some(Piece::Borrowed(&buf[..n]))),
            },
            Source::Dfs(r) => Ok(r.next_chunk().await?.map(Piece::Owned)),
        }
    }
}

/// Uploads `src` to `target` through `target._COPYING_`, renamed over the
/// target only once every byte is acknowledged.
async fn upload_stream(
    dfs: &Dfs,
    mut src: Source<'_>,
    len: Option<u64>,
    target: &str,
    opts: &PutOptions,
    label: &str,
) -> anyhow::Result<()> {
    if !opts.force
        && let Some(st) = dfs.client.try_stat(target).await?
    {
        bail!("{target}: {}", if st.is_dir { "is a directory" } else { "file exists" });
    }
    let tmp = format!("{target}{COPYING_SUFFIX}");
    let create = CreateOptions {
        overwrite: true,
        create_parent: false,
        replication: opts.replication,
        block_size: opts.block_size,
        permission: None,
    };
    let writer = dfs.client.create(&tmp, create).await?;
    let bar = transfer_bar(len.unwrap_or(0), label);
    let result = copy_into(&mut src, writer, &bar, label).await;
    bar.finish_and_clear();
    if let Err(e) = result {
        let _ = dfs.client.delete(&tmp, false).await;
        return Err(e);
    }
    if let Err(e) = dfs.client.rename(&tmp, target, opts.force).await {
        let _ = dfs.client.delete(&tmp, false).await;
        return Err(e.into());
    }
    Ok(())
}

async fn copy_into(
    src: &mut Source<'_>,
    mut writer: FileWriter,
    bar: &indicatif::ProgressBar,
    label: &str,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; IO_CHUNK];
    loop {
        let piece = match src.next(&mut buf).await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e.context(format!("{label}: read failed")));
            }
        };
        if let Err(e) = writer.write(&piece).await {
            let _ = writer.abort().await;
            return Err(e.into());
        }
        bar.inc(piece.len() as u64);
    }
    writer.close().await?;
    Ok(())
}

/// `get SRC... LOCALDST`.
pub async fn get(dfs: &Dfs, srcs: &[String], dst: &Path, force: bool) -> anyhow::Result<()> {
    let dst_is_dir = dst.is_dir();
    if srcs.len() > 1 && !dst_is_dir {
        bail!("{}: not a directory (several sources need a directory destination)", dst.display());
    }
    for src in srcs {
        let src = path::normalize(&dfs.resolve(src))?;
        let st = dfs.client.stat(&src).await?;
        let target = if dst_is_dir { dst.join(path::file_name(&src)) } else { dst.to_path_buf() };
        if st.is_dir {
            get_dir(dfs, &src, &target, force).await?;
        } else {
            get_file(dfs, &src, &target, force).await?;
        }
    }
    Ok(())
}

async fn get_dir(dfs: &Dfs, src: &str, target: &Path, force: bool) -> anyhow::Result<()> {
    if target.exists() && !target.is_dir() {
        bail!("{}: file exists", target.display());
    }
    std::fs::create_dir_all(target).with_context(|| format!("{}: cannot create directory", target.display()))?;
    for child in dfs.client.list(src).await? {
        let local = target.join(&child.name);
        if child.is_dir {
            Box::pin(get_dir(dfs, &child.path, &local, force)).await?;
        } else {
            get_file(dfs, &child.path, &local, force).await?;
        }
    }
    Ok(())
}

async fn get_file(dfs: &Dfs, src: &str, target: &Path, force: bool) -> anyhow::Result<()> {
    if target.exists() && !force {
        bail!("{}: file exists", target.display());
    }
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(COPYING_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let result = download(dfs, src, &tmp).await;
    match result {
        Ok(()) => std::fs::rename(&tmp, target)
            .with_context(|| format!("{}: cannot rename into place", target.display())),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

async fn download(dfs: &Dfs, src: &str, local: &Path) -> anyhow::Result<()> {
    let mut reader = dfs.client.open(src).await?;
    let mut out = std::io::BufWriter::with_capacity(
        IO_CHUNK,
        std::fs::File::create(local).with_context(|| format!("{}: cannot create", local.display()))?,
    );
    let bar = transfer_bar(reader.len(), src);
    while let Some(chunk) = reader.next_chunk().await? {
        out.write_all(&chunk).with_context(|| format!("{}: write failed", local.display()))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let file = out.into_inner().map_err(|e| e.into_error()).with_context(|| format!("{}: write failed", local.display()))?;
    file.sync_all().with_context(|| format!("{}: sync failed", local.display()))?;
    Ok(())
}

/// `cat PATH...`: streams files to stdout. A closed stdout (`| head`) ends
/// quietly.
pub async fn cat(dfs: &Dfs, paths: &[String]) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for p in paths {
        let p = path::normalize(&dfs.resolve(p))?;
        let st = dfs.client.stat(&p).await?;
        if st.is_dir {
            bail!("{p}: is a directory");
        }
        let mut reader = dfs.client.open(&p).await?;
        while let Some(chunk) = reader.next_chunk().await? {
            match out.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(anyhow::Error::new(e).context("stdout")),
            }
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::Error::new(e).context("stdout")),
        _ => Ok(()),
    }
}

/// `cp SRC... DST` within the DFS.
pub async fn cp(dfs: &Dfs, srcs: &[String], dst: &str, force: bool) -> anyhow::Result<()> {
    let dst = path::normalize(&dfs.resolve(dst))?;
    let dst_is_dir = dfs.client.try_stat(&dst).await?.is_some_and(|s| s.is_dir);
    if srcs.len() > 1 && !dst_is_dir {
        bail!("{dst}: not a directory (several sources need a directory destination)");
    }
    for src in srcs {
        let src = path::normalize(&dfs.resolve(src))?;
        let target = if dst_is_dir { path::join(&dst, path::file_name(&src)) } else { dst.clone() };
        if path::is_ancestor_or_self(&src, &target) {
            bail!("{target}: cannot copy {src} into itself");
        }
        copy_tree(dfs, &src, &target, force).await?;
    }
    Ok(())
}

async fn copy_tree(dfs: &Dfs, src: &str, target: &str, force: bool) -> anyhow::Result<()> {
    let st = dfs.client.stat(src).await?;
    if st.is_dir {
        if dfs.client.try_stat(target).await?.is_none() {
            dfs.client.mkdirs(target, None, false).await?;
        }
        for child in dfs.client.list(src).await? {
            Box::pin(copy_tree(dfs, &child.path, &path::join(target, &child.name), force)).await?;
        }
        return Ok(());
    }
    let opts = PutOptions { force, replication: Some(st.replication), block_size: Some(st.block_size) };
    let reader = dfs.client.open(src).await?;
    upload_stream(dfs, Source::Dfs(Box::new(reader)), Some(st.length), target, &opts, src).await
}
