//! Commands that only change or show the namespace: `ls`, `mkdir`, `rm`,
//! `mv`, `stat`, `du`, `setrep`, `chmod`, `chown`, `touchz`, `test`.

use anyhow::{Context, bail};
use serde_json::json;
use tusk_client::{CreateOptions, ErrorKind, FileStatus};
use tusk_common::path;

use super::format::{LsWidths, human_size, ls_line, stat_format, webhdfs_status};
use super::{Dfs, TestKind};

fn resolve_all(dfs: &Dfs, paths: &[String]) -> anyhow::Result<Vec<String>> {
    let raw: Vec<String> = if paths.is_empty() { vec![String::new()] } else { paths.to_vec() };
    raw.iter().map(|p| Ok(path::normalize(&dfs.resolve(p))?)).collect()
}

/// `ls [-R] [--json] PATH...`.
pub async fn ls(dfs: &Dfs, paths: &[String], recursive: bool, json: bool) -> anyhow::Result<()> {
    let mut json_entries = Vec::new();
    for p in resolve_all(dfs, paths)? {
        let st = dfs.client.stat(&p).await?;
        if !st.is_dir {
            if json {
                json_entries.push(webhdfs_status(&st, ""));
            } else {
                println!("{}", ls_line(&st, &LsWidths::of(std::slice::from_ref(&st))));
            }
            continue;
        }
        let mut entries = Vec::new();
        collect(dfs, &p, recursive, &mut entries).await?;
        if json {
            for e in &entries {
                let suffix = e.path.strip_prefix(&p).unwrap_or(&e.path).trim_start_matches('/');
                json_entries.push(webhdfs_status(e, suffix));
            }
        } else {
            if !recursive {
                println!("Found {} items", entries.len());
            }
            let widths = LsWidths::of(&entries);
            for e in &entries {
                println!("{}", ls_line(e, &widths));
            }
        }
    }
    if json {
        println!("{}", json!({"FileStatuses": {"FileStatus": json_entries}}));
    }
    Ok(())
}

async fn collect(dfs: &Dfs, dir: &str, recursive: bool, out: &mut Vec<FileStatus>) -> anyhow::Result<()> {
    for e in dfs.client.list(dir).await? {
        let descend = recursive && e.is_dir;
        let child = e.path.clone();
        out.push(e);
        if descend {
            Box::pin(collect(dfs, &child, recursive, out)).await?;
        }
    }
    Ok(())
}

/// `mkdir [-p] PATH...`.
pub async fn mkdir(dfs: &Dfs, paths: &[String], parents: bool) -> anyhow::Result<()> {
    for p in resolve_all(dfs, paths)? {
        if !parents && let Some(st) = dfs.client.try_stat(&p).await? {
            bail!("{p}: {}", if st.is_dir { "directory exists" } else { "file exists" });
        }
        dfs.client.mkdirs(&p, None, parents).await?;
    }
    Ok(())
}

/// `rm [-r] [-f] PATH...`.
pub async fn rm(dfs: &Dfs, paths: &[String], recursive: bool, force: bool) -> anyhow::Result<()> {
    for p in resolve_all(dfs, paths)? {
        let Some(st) = dfs.client.try_stat(&p).await? else {
            if force {
                continue;
            }
            bail!("{p}: no such file or directory");
        };
        if st.is_dir && !recursive {
            if st.children_count > 0 {
                bail!("{p}: directory is not empty (use -r)");
            }
            bail!("{p}: is a directory (use -r)");
        }
        if !dfs.client.delete(&p, recursive).await? && !force {
            bail!("{p}: no such file or directory");
        }
    }
    Ok(())
}

/// `mv SRC... DST`.
pub async fn mv(dfs: &Dfs, srcs: &[String], dst: &str) -> anyhow::Result<()> {
    let dst = path::normalize(&dfs.resolve(dst))?;
    if srcs.len() > 1 && !dfs.client.try_stat(&dst).await?.is_some_and(|s| s.is_dir) {
        bail!("{dst}: not a directory (several sources need a directory destination)");
    }
    for src in resolve_all(dfs, srcs)? {
        dfs.client.rename(&src, &dst, false).await?;
    }
    Ok(())
}

/// `stat [--json] [FORMAT] PATH`.
pub async fn stat(dfs: &Dfs, p: &str, format: Option<&str>, json: bool) -> anyhow::Result<()> {
    let p = path::normalize(&dfs.resolve(p))?;
    let st = dfs.client.stat(&p).await?;
    if json {
        println!("{}", json!({"FileStatus": webhdfs_status(&st, "")}));
    } else if let Some(f) = format {
        println!("{}", stat_format(f, &st));
    } else {
        let text = stat_format(
            "  Path: %n\n  Type: %F\n  Size: %b\n  Replication: %r\n  Block size: %o\n  Owner: %u\n  Group: %g\n  Permission: %A (%a)\n  Modified: %y\n  Accessed: %x",
            &st,
        );
        println!("{}", text.replacen(&format!("Path: {}", st.name), &format!("Path: {}", st.path), 1));
    }
    Ok(())
}

/// `du [-s] PATH...`: size, then size × replication, then path.
pub async fn du(dfs: &Dfs, paths: &[String], summary: bool) -> anyhow::Result<()> {
    for p in resolve_all(dfs, paths)? {
        let st = dfs.client.stat(&p).await?;
        let targets: Vec<String> =
            if summary || !st.is_dir { vec![p.clone()] } else { dfs.client.list(&p).await?.into_iter().map(|e| e.path).collect() };
        for t in targets {
            let cs = dfs.client.content_summary(&t).await?;
            println!("{:<10} {:<10} {t}", human_size(cs.length), human_size(cs.space_consumed));
        }
    }
    Ok(())
}

async fn walk_files(dfs: &Dfs, root: &str, out: &mut Vec<FileStatus>) -> anyhow::Result<()> {
    let st = dfs.client.stat(root).await?;
    if !st.is_dir {
        out.push(st);
        return Ok(());
    }
    for e in dfs.client.list(root).await? {
        if e.is_dir {
            Box::pin(walk_files(dfs, &e.path, out)).await?;
        } else {
            out.push(e);
        }
    }
    Ok(())
}

/// `setrep [-w] N PATH...` (files below directories too). With `-w`, waits
/// until every block of every file has exactly N live replicas (copies made
/// or excess ones deleted), as HDFS `setrep -w` does.
pub async fn setrep(dfs: &Dfs, paths: &[String], replication: u32, wait: bool) -> anyhow::Result<()> {
    let mut changed = Vec::new();
    for p in resolve_all(dfs, paths)? {
        let mut files = Vec::new();
        walk_files(dfs, &p, &mut files).await?;
        for f in files {
            dfs.client.set_replication(&f.path, replication).await?;
            println!("Replication {replication} set: {}", f.path);
            changed.push(f.path);
        }
    }
    if wait {
        for path in changed {
            print!("Waiting for {path} ...");
            let _ = std::io::Write::flush(&mut std::io::stdout());
            let opts = tusk_client::FsckOptions { list_files: true, list_blocks: true, ..Default::default() };
            loop {
                let report = dfs.client.fsck(&path, opts).await?;
                let blocks = report.files.iter().flat_map(|f| f.blocks.iter());
                if blocks.into_iter().all(|b| b.live_replicas == replication) {
                    break;
                }
                print!(".");
                let _ = std::io::Write::flush(&mut std::io::stdout());
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            println!(" done");
        }
    }
    Ok(())
}

/// Every path at or below `root` when `recursive`, else just `root`.
async fn targets(dfs: &Dfs, root: &str, recursive: bool) -> anyhow::Result<Vec<FileStatus>> {
    let st = dfs.client.stat(root).await?;
    let mut out = vec![];
    if recursive && st.is_dir {
        collect(dfs, root, true, &mut out).await?;
    }
    out.insert(0, st);
    Ok(out)
}

/// `chmod [-R] MODE PATH...`.
pub async fn chmod(dfs: &Dfs, paths: &[String], mode: &str, recursive: bool) -> anyhow::Result<()> {
    for p in resolve_all(dfs, paths)? {
        for t in targets(dfs, &p, recursive).await? {
            let new = apply_mode(mode, t.permission, t.is_dir)?;
            dfs.client.set_permission(&t.path, new).await?;
        }
    }
    Ok(())
}

/// `chown [-R] OWNER[:GROUP] PATH...`.
pub async fn chown(dfs: &Dfs, paths: &[String], spec: &str, recursive: bool) -> anyhow::Result<()> {
    let (owner, group) = match spec.split_once(':') {
        Some((o, g)) => (Some(o).filter(|o| !o.is_empty()), Some(g).filter(|g| !g.is_empty())),
        None => (Some(spec).filter(|o| !o.is_empty()), None),
    };
    if owner.is_none() && group.is_none() {
        bail!("'{spec}': expected OWNER[:GROUP] or :GROUP");
    }
    for p in resolve_all(dfs, paths)? {
        for t in targets(dfs, &p, recursive).await? {
            dfs.client.set_owner(&t.path, owner, group).await?;
        }
    }
    Ok(())
}

/// `touchz PATH...`: creates empty files; an existing empty file is fine.
pub async fn touchz(dfs: &Dfs, paths: &[String]) -> anyhow::Result<()> {
    for p in resolve_all(dfs, paths)? {
        if let Some(st) = dfs.client.try_stat(&p).await? {
            if st.is_dir {
                bail!("{p}: is a directory");
            }
            if st.length > 0 {
                bail!("{p}: not a zero-length file");
            }
            continue;
        }
        let w = dfs.client.create(&p, CreateOptions::default()).await?;
        w.close().await?;
    }
    Ok(())
}

/// `test -e|-d|-f|-s|-z PATH`.
pub async fn test(dfs: &Dfs, p: &str, kind: TestKind) -> anyhow::Result<bool> {
    let p = path::normalize(&dfs.resolve(p))?;
    let st = match dfs.client.stat(&p).await {
        Ok(st) => st,
        Err(e) if e.kind() == Some(ErrorKind::NotFound) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    Ok(match kind {
        TestKind::Exists => true,
        TestKind::Dir => st.is_dir,
        TestKind::File => !st.is_dir,
        TestKind::NonEmpty => !st.is_dir && st.length > 0,
        TestKind::Zero => !st.is_dir && st.length == 0,
    })
}

/// Applies an octal (`755`, `1777`) or symbolic (`u+x,go-w`, `a=r`) mode.
fn apply_mode(spec: &str, current: u32, is_dir: bool) -> anyhow::Result<u32> {
    if !spec.is_empty() && spec.chars().all(|c| c.is_digit(8)) {
        let m = u32::from_str_radix(spec, 8).with_context(|| format!("'{spec}': invalid mode"))?;
        if m > 0o1777 {
            bail!("'{spec}': invalid mode (at most 1777)");
        }
        return Ok(m);
    }
    let mut mode = current;
    for clause in spec.split(',') {
        let op_at = clause.find(['+', '-', '=']).with_context(|| format!("'{spec}': invalid mode"))?;
        let (who, rest) = clause.split_at(op_at);
        let (op, perms) = rest.split_at(1);
        let mut mask = 0u32;
        for c in if who.is_empty() { "a".chars() } else { who.chars() } {
            mask |= match c {
                'u' => 0o700,
                'g' => 0o070,
                'o' => 0o007,
                'a' => 0o777,
                _ => bail!("'{spec}': invalid mode ('{c}' is not one of u, g, o, a)"),
            };
        }
        let mut bits = 0u32;
        let mut sticky = false;
        for c in perms.chars() {
            match c {
                'r' => bits |= 0o444,
                'w' => bits |= 0o222,
                'x' => bits |= 0o111,
                'X' if is_dir || current & 0o111 != 0 => bits |= 0o111,
                'X' => {}
                't' => sticky = true,
                _ => bail!("'{spec}': invalid mode ('{c}' is not one of r, w, x, X, t)"),
            }
        }
        let bits = bits & mask;
        match op {
            "+" => mode |= bits | if sticky { 0o1000 } else { 0 },
            "-" => mode &= !(bits | if sticky { 0o1000 } else { 0 }),
            _ => mode = (mode & !mask) | bits | if sticky { 0o1000 } else { mode & 0o1000 },
        }
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::apply_mode;

    #[test]
    fn modes_parse() {
        assert_eq!(apply_mode("755", 0, false).unwrap(), 0o755);
        assert_eq!(apply_mode("1777", 0, true).unwrap(), 0o1777);
        assert_eq!(apply_mode("u+x", 0o644, false).unwrap(), 0o744);
        assert_eq!(apply_mode("go-w", 0o666, false).unwrap(), 0o644);
        assert_eq!(apply_mode("a=r", 0o777, false).unwrap(), 0o444);
        assert_eq!(apply_mode("+t", 0o777, true).unwrap(), 0o1777);
        assert!(apply_mode("9", 0, false).is_err());
        assert!(apply_mode("q+x", 0, false).unwrap_err().to_string().contains("'q'"));
        assert!(apply_mode("17777", 0, false).is_err());
    }
}
