//! Checkpoint images: `fsimage_<txid>` = magic, a length-delimited
//! `ImageHeader`, every inode as a length-delimited `ImageInode` in pre-order
//! (parents first), and a CRC32C of all preceding bytes.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;
use tusk_proto::nnstorage::{BlockRecord, ImageHeader, ImageInode, PermissionStatus};

use crate::blocks::{BlockInfo, Replicas};
use crate::error::{NamenodeError, Result};
use crate::namespace::{Body, Blocks, FileBody, FsState, Inode, ROOT_ID};

const MAGIC: &[u8; 8] = b"TUSKIMG1";
/// Layout version of images, edit logs and VERSION files.
pub(crate) const LAYOUT_VERSION: u32 = 1;

pub(crate) fn image_name(txid: u64) -> String {
    format!("fsimage_{txid:019}")
}

/// Images in `dir` as (txid, path), newest first.
pub(crate) fn list_images(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| NamenodeError::io(dir, e))? {
        let e = e.map_err(|e| NamenodeError::io(dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(t) = name.strip_prefix("fsimage_")
            && let Ok(txid) = t.parse::<u64>()
        {
            out.push((txid, e.path()));
        }
    }
    out.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    Ok(out)
}

/// Serializes the namespace (call under at least a read lock).
pub(crate) fn serialize(state: &FsState, txid: u64, cluster_id: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64 + state.inodes.len() * 64);
    out.extend_from_slice(MAGIC);
    let header = ImageHeader {
        layout_version: LAYOUT_VERSION,
        cluster_id: cluster_id.to_string(),
        last_txid: txid,
        next_inode_id: state.next_inode_id,
        next_block_id: state.next_block_id,
        next_generation_stamp: state.next_gen_stamp,
        inode_count: state.inodes.len() as u64,
    };
    header.encode_length_delimited(&mut out).map_err(|e| NamenodeError::Internal(e.to_string()))?;
    for id in state.preorder(ROOT_ID) {
        let i = state.inode(id)?;
        let mut rec = ImageInode {
            id,
            parent_id: i.parent,
            name: i.name.to_string(),
            perm: Some(PermissionStatus {
                owner: state.strings.get(i.owner).to_string(),
                group: state.strings.get(i.group).to_string(),
                mode: i.mode as u32,
            }),
            mtime_ms: i.mtime,
            atime_ms: i.atime,
            is_dir: i.is_dir(),
            ..Default::default()
        };
        if let Body::File(f) = &i.body {
            rec.replication = f.replication as u32;
            rec.block_size = f.block_size;
            rec.client_name = f.client.map(|c| state.strings.get(c.get()).to_string()).unwrap_or_default();
            for b in f.blocks.as_slice() {
                let info = state.blocks.get(*b).ok_or_else(|| NamenodeError::Internal(format!("block {b} missing")))?;
                rec.blocks.push(BlockRecord { block_id: *b, generation_stamp: info.gen_stamp, num_bytes: info.num_bytes });
            }
        }
        rec.encode_length_delimited(&mut out).map_err(|e| NamenodeError::Internal(e.to_string()))?;
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Writes an image durably: tmp file, fsync, rename, fsync of the directory.
pub(crate) fn write_image(dir: &Path, txid: u64, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(image_name(txid));
    let tmp = dir.join(format!("{}.tmp", image_name(txid)));
    let mut f = File::create(&tmp).map_err(|e| NamenodeError::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| NamenodeError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| NamenodeError::io(&path, e))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| NamenodeError::io(dir, e))?;
    Ok(path)
}

/// Loads an image, verifying its checksum and structure.
pub(crate) fn load_image(path: &Path) -> Result<(FsState, ImageHeader)> {
    let bytes = std::fs::read(path).map_err(|e| NamenodeError::io(path, e))?;
    let corrupt = |why: String| NamenodeError::Storage(format!("{}: corrupt image: {why}", path.display()));
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt("not a Tusk image".into()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body).to_be_bytes() != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut buf = &body[MAGIC.len()..];
    let header = ImageHeader::decode_length_delimited(&mut buf).map_err(|e| corrupt(e.to_string()))?;
    if header.layout_version != LAYOUT_VERSION {
        return Err(corrupt(format!("layout version {} (expected {LAYOUT_VERSION})", header.layout_version)));
    }
    let mut state = FsState::empty();
    state.next_inode_id = header.next_inode_id;
    state.next_block_id = header.next_block_id;
    state.next_gen_stamp = header.next_generation_stamp;
    let mut count = 0u64;
    while !buf.is_empty() {
        let rec = ImageInode::decode_length_delimited(&mut buf).map_err(|e| corrupt(e.to_string()))?;
        let perm = rec.perm.unwrap_or_default();
        let owner = state.strings.intern(&perm.owner);
        let group = state.strings.intern(&perm.group);
        let body = if rec.is_dir {
            Body::Dir(Vec::new())
        } else {
            let client = (!rec.client_name.is_empty()).then(|| state.strings.intern_nz(&rec.client_name));
            for b in &rec.blocks {
                state.blocks.insert(
                    b.block_id,
                    BlockInfo { inode: rec.id, num_bytes: b.num_bytes, gen_stamp: b.generation_stamp, replicas: Replicas::default() },
                );
            }
            if let Some(c) = client {
                state.leases.entry(c.get()).or_default().files.insert(rec.id);
            }
            Body::File(FileBody {
                blocks: Blocks::from_vec(rec.blocks.iter().map(|b| b.block_id).collect()),
                block_size: rec.block_size,
                replication: rec.replication.min(u16::MAX as u32) as u16,
                client,
            })
        };
        let inode = Inode {
            name: rec.name.into(),
            parent: rec.parent_id,
            mtime: rec.mtime_ms,
            atime: rec.atime_ms,
            owner,
            group,
            mode: (perm.mode & 0o7777) as u16,
            body,
        };
        if count == 0 {
            if rec.id != ROOT_ID || rec.parent_id != 0 {
                return Err(corrupt("the first inode is not the root".into()));
            }
            state.inodes.insert(ROOT_ID, inode);
        } else {
            state.attach(rec.parent_id, rec.id, inode, None).map_err(|e| corrupt(e.to_string()))?;
        }
        count += 1;
    }
    if count != header.inode_count {
        return Err(corrupt(format!("{count} inodes, header says {}", header.inode_count)));
    }
    Ok((state, header))
}
