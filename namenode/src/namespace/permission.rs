//! POSIX permission checks in the manner of HDFS. The superuser (the user
//! who formatted the namespace, or a member of the supergroup) is never
//! refused.

use tusk_proto::error::ErrorKind;

use super::{FsState, Resolved};
use tusk_common::mode::mode_string;

use crate::error::{NamenodeError, Result};

pub(crate) const READ: u16 = 4;
pub(crate) const WRITE: u16 = 2;
pub(crate) const EXECUTE: u16 = 1;

/// The caller as the namenode sees it.
#[derive(Debug, Clone)]
pub(crate) struct Ugi {
    pub(crate) user: String,
    pub(crate) groups: Vec<String>,
    pub(crate) client_name: String,
    pub(crate) superuser: bool,
}

impl Ugi {
    pub(crate) fn new(user: &str, groups: &[String], client_name: &str, superuser: &str, supergroup: &str) -> Ugi {
        Ugi {
            user: user.to_string(),
            groups: groups.to_vec(),
            client_name: client_name.to_string(),
            superuser: user == superuser || groups.iter().any(|g| g == supergroup),
        }
    }
}

fn access_name(access: u16) -> String {
    let mut s = String::new();
    if access & READ != 0 {
        s += "READ_";
    }
    if access & WRITE != 0 {
        s += "WRITE_";
    }
    if access & EXECUTE != 0 {
        s += "EXECUTE_";
    }
    s.trim_end_matches('_').to_string()
}

impl FsState {
    /// Checks that `ugi` has `access` on inode `id`; `path` names the request.
    pub(crate) fn check_access(&self, ugi: &Ugi, path: &str, id: u64, access: u16) -> Result<()> {
        if ugi.superuser {
            return Ok(());
        }
        let i = self.inode(id)?;
        let owner = self.strings.get(i.owner);
        let group = self.strings.get(i.group);
        let bits = if owner == ugi.user {
            (i.mode >> 6) & 7
        } else if ugi.groups.iter().any(|g| g == group) {
            (i.mode >> 3) & 7
        } else {
            i.mode & 7
        };
        if bits & access == access {
            return Ok(());
        }
        Err(NamenodeError::req(
            ErrorKind::PermissionDenied,
            format!(
                "{path}: permission denied: user={}, access={}, inode=\"{}\":{owner}:{group}:{}",
                ugi.user,
                access_name(access),
                self.path_of(id),
                mode_string(i.is_dir(), u32::from(i.mode))
            ),
        ))
    }

    /// EXECUTE on every existing ancestor directory of the target.
    pub(crate) fn check_traverse(&self, ugi: &Ugi, r: &Resolved<'_>) -> Result<()> {
        if ugi.superuser {
            return Ok(());
        }
        for id in r.ancestors() {
            if self.inode(*id)?.is_dir() {
                self.check_access(ugi, r.path, *id, EXECUTE)?;
            }
        }
        Ok(())
    }

    /// The caller must own the inode (or be the superuser).
    pub(crate) fn check_owner(&self, ugi: &Ugi, path: &str, id: u64) -> Result<()> {
        if ugi.superuser {
            return Ok(());
        }
        let i = self.inode(id)?;
        if self.strings.get(i.owner) == ugi.user {
            return Ok(());
        }
        Err(NamenodeError::req(
            ErrorKind::PermissionDenied,
            format!(
                "{path}: permission denied: user={} is not the owner of inode=\"{}\":{}:{}:{}",
                ugi.user,
                self.path_of(id),
                self.strings.get(i.owner),
                self.strings.get(i.group),
                mode_string(i.is_dir(), u32::from(i.mode))
            ),
        ))
    }

    /// Sticky bit: in a sticky `parent`, only the owner of the child or of
    /// the parent may remove or rename the child.
    pub(crate) fn check_sticky(&self, ugi: &Ugi, path: &str, parent: u64, child: u64) -> Result<()> {
        if ugi.superuser {
            return Ok(());
        }
        let p = self.inode(parent)?;
        if p.mode & 0o1000 == 0 {
            return Ok(());
        }
        let c = self.inode(child)?;
        if self.strings.get(p.owner) == ugi.user || self.strings.get(c.owner) == ugi.user {
            return Ok(());
        }
        Err(NamenodeError::req(
            ErrorKind::PermissionDenied,
            format!("{path}: permission denied by sticky bit: user={}", ugi.user),
        ))
    }

    /// For a recursive delete: READ, WRITE and EXECUTE on every directory of the subtree.
    pub(crate) fn check_subtree_dirs(&self, ugi: &Ugi, path: &str, id: u64) -> Result<()> {
        if ugi.superuser {
            return Ok(());
        }
        for cur in self.preorder(id) {
            let i = self.inode(cur)?;
            if i.is_dir() && !i.children().is_empty() {
                self.check_access(ugi, path, cur, READ | WRITE | EXECUTE)?;
            }
        }
        Ok(())
    }
}
