//! Where namespace changes tell the replication machinery which blocks to
//! re-check: `after_apply` runs for every op a live mutation commits (not
//! for replay: the scan after safe mode covers that).

use tusk_proto::nnstorage::{EditOp, edit_op::Op};

use super::Replication;
use crate::namespace::FsState;
use crate::namesystem::Namesystem;

/// Notes `id` if its replica count differs from the file's replication,
/// it has corrupt replicas or its replicas may be on one rack of several
/// (cheap: no datanode lookup).
fn note_if_suspect(st: &FsState, r: &mut Replication, id: u64) {
    let Some(b) = st.blocks.get(id) else { return };
    let expected = st.inodes.get(b.inode).and_then(|i| i.file()).map(|f| f.replication as usize).unwrap_or(0);
    if b.replicas.len() != expected || r.has_corrupt(id) || (expected >= 2 && r.maybe_one_rack(b.replicas.iter())) {
        r.note(id);
    }
}

impl Namesystem {
    /// Whether changes should be noted now (in safe mode the full scan at
    /// its end takes care of every block).
    pub(crate) fn noting(&self) -> bool {
        !self.safemode.is_on()
    }

    /// Called (write lock held) after each op of a live mutation was
    /// applied: setrep re-checks every block of the file; closing a file
    /// (complete, lease recovery) and committing a block re-check blocks
    /// whose replica count is off.
    pub(crate) fn after_apply(&self, st: &FsState, op: &EditOp) {
        if !self.noting() {
            return;
        }
        let (path, every_block) = match &op.op {
            Some(Op::SetReplication(s)) => (&s.path, true),
            Some(Op::Close(c)) => (&c.path, false),
            Some(Op::AddBlock(a)) => {
                if let Some(prev) = &a.previous {
                    note_if_suspect(st, &mut self.repl.lock(), prev.block_id);
                }
                return;
            }
            _ => return,
        };
        let Some(f) = st.lookup(path).and_then(|id| st.inodes.get(id)).and_then(|i| i.file()) else { return };
        let mut r = self.repl.lock();
        for id in f.blocks.as_slice() {
            if every_block {
                r.note(*id);
            } else {
                note_if_suspect(st, &mut r, *id);
            }
        }
    }
}
