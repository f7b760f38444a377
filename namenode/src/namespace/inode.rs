//! Compact inodes. Owner, group and lease-holder names are interned to u32
//! ids; a directory's children are inode ids sorted by name.

use std::collections::HashMap;
use std::num::NonZeroU32;

/// The root directory's inode id.
pub(crate) const ROOT_ID: u64 = 1;

pub(crate) struct Inode {
    pub(crate) name: Box<str>,
    pub(crate) parent: u64,
    pub(crate) mtime: i64,
    pub(crate) atime: i64,
    pub(crate) owner: u32,
    pub(crate) group: u32,
    pub(crate) mode: u16,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    /// Children ids, sorted by name (byte order).
    Dir(Vec<u64>),
    File(FileBody),
}

pub(crate) struct FileBody {
    pub(crate) blocks: Blocks,
    pub(crate) block_size: u64,
    pub(crate) replication: u16,
    /// Interned lease holder while the file is under construction.
    pub(crate) client: Option<NonZeroU32>,
}

impl FileBody {
    /// Whether `block_id` is the last block of this file while it is being
    /// written (it may legitimately lack replicas, and is never re-replicated).
    pub(crate) fn is_writing(&self, block_id: u64) -> bool {
        self.client.is_some() && self.blocks.last() == Some(block_id)
    }
}

/// A file's block ids; most files have one block, kept inline.
pub(crate) enum Blocks {
    None,
    One(u64),
    Many(Box<[u64]>),
}

impl Blocks {
    pub(crate) fn as_slice(&self) -> &[u64] {
        match self {
            Blocks::None => &[],
            Blocks::One(b) => std::slice::from_ref(b),
            Blocks::Many(v) => v,
        }
    }

    pub(crate) fn last(&self) -> Option<u64> {
        self.as_slice().last().copied()
    }

    pub(crate) fn push(&mut self, id: u64) {
        *self = match std::mem::replace(self, Blocks::None) {
            Blocks::None => Blocks::One(id),
            Blocks::One(b) => Blocks::Many(Box::new([b, id])),
            Blocks::Many(v) => {
                let mut v = v.into_vec();
                v.push(id);
                Blocks::Many(v.into_boxed_slice())
            }
        };
    }

    pub(crate) fn pop(&mut self) -> Option<u64> {
        let (rest, popped) = match std::mem::replace(self, Blocks::None) {
            Blocks::None => (Blocks::None, None),
            Blocks::One(b) => (Blocks::None, Some(b)),
            Blocks::Many(v) => {
                let mut v = v.into_vec();
                let p = v.pop();
                let rest = match v.len() {
                    0 => Blocks::None,
                    1 => Blocks::One(v[0]),
                    _ => Blocks::Many(v.into_boxed_slice()),
                };
                (rest, p)
            }
        };
        *self = rest;
        popped
    }

    pub(crate) fn from_vec(v: Vec<u64>) -> Blocks {
        match v.len() {
            0 => Blocks::None,
            1 => Blocks::One(v[0]),
            _ => Blocks::Many(v.into_boxed_slice()),
        }
    }
}

impl Inode {
    pub(crate) fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }

    pub(crate) fn children(&self) -> &[u64] {
        match &self.body {
            Body::Dir(c) => c,
            Body::File(_) => &[],
        }
    }

    pub(crate) fn file(&self) -> Option<&FileBody> {
        match &self.body {
            Body::File(f) => Some(f),
            Body::Dir(_) => None,
        }
    }

    pub(crate) fn file_mut(&mut self) -> Option<&mut FileBody> {
        match &mut self.body {
            Body::File(f) => Some(f),
            Body::Dir(_) => None,
        }
    }
}

/// Interned strings (user, group and client names). Ids are never reused.
#[derive(Default)]
pub(crate) struct Interner {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32>,
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as u32 + 1;
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    pub(crate) fn lookup(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub(crate) fn get(&self, id: u32) -> &str {
        id.checked_sub(1).and_then(|i| self.names.get(i as usize)).map(|s| &**s).unwrap_or("")
    }

    pub(crate) fn intern_nz(&mut self, s: &str) -> NonZeroU32 {
        NonZeroU32::new(self.intern(s)).unwrap_or(NonZeroU32::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_push_pop() {
        let mut b = Blocks::None;
        b.push(1);
        b.push(2);
        b.push(3);
        assert_eq!(b.as_slice(), &[1, 2, 3]);
        assert_eq!(b.pop(), Some(3));
        assert_eq!(b.pop(), Some(2));
        assert!(matches!(b, Blocks::One(1)));
        assert_eq!(b.pop(), Some(1));
        assert_eq!(b.pop(), None);
        assert!(std::mem::size_of::<Inode>() <= 96, "{}", std::mem::size_of::<Inode>());
    }

    #[test]
    fn interner_is_stable() {
        let mut i = Interner::default();
        let a = i.intern("alice");
        assert_eq!(i.intern("alice"), a);
        assert_ne!(i.intern("bob"), a);
        assert_eq!(i.get(a), "alice");
        assert_eq!(i.get(0), "");
    }
}
