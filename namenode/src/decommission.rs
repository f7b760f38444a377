//! Decommissioning. The administrator's decisions (which datanodes are
//! decommissioning or decommissioned) form the [`AdminSet`], persisted in
//! `<name_dir>/excludes.json` so a restarted namenode keeps them; a
//! re-registering datanode takes the state recorded for its uuid or
//! transfer address. The [`check`] pass (run by the replication monitor)
//! moves a DECOMMISSION_IN_PROGRESS node to DECOMMISSIONED once every block
//! it holds has enough live replicas elsewhere.

use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tusk_proto::dfs::DatanodeId;
use tusk_proto::dfs::datanode_info::AdminState;

use crate::blocks::DnIndex;
use crate::datanodes::DatanodeManager;
use crate::error::{NamenodeError, Result};
use crate::namespace::FsState;
use crate::replication::{Census, Replication, classify};

/// Most blocks of decommissioning nodes checked per pass (bounds the time
/// the locks are held; the rest wait for the next pass).
const CHECKS_PER_TICK: usize = 200_000;

/// Name of the persisted admin set inside the name directory.
pub(crate) const EXCLUDES_FILE: &str = "excludes.json";

/// One datanode the administrator took out of service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AdminEntry {
    pub(crate) uuid: String,
    pub(crate) transfer_addr: String,
    pub(crate) host: String,
    /// `DECOMMISSION_IN_PROGRESS` or `DECOMMISSIONED`.
    pub(crate) state: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ExcludesFile {
    nodes: Vec<AdminEntry>,
}

/// The decommissioning and decommissioned datanodes, with a version that
/// grows on every change (so concurrent saves keep the newest).
#[derive(Debug, Default)]
pub(crate) struct AdminSet {
    entries: Vec<AdminEntry>,
    version: u64,
}

impl AdminEntry {
    fn matches(&self, id: &DatanodeId) -> bool {
        (!self.uuid.is_empty() && self.uuid == id.datanode_uuid)
            || (!self.transfer_addr.is_empty() && self.transfer_addr == id.transfer_addr)
    }

    fn admin_state(&self) -> AdminState {
        match AdminState::from_str_name(&self.state) {
            Some(AdminState::Decommissioned) => AdminState::Decommissioned,
            _ => AdminState::DecommissionInProgress,
        }
    }
}

impl AdminSet {
    /// Reads the set; a missing file is an empty set.
    pub(crate) fn load(path: &Path) -> Result<AdminSet> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AdminSet::default()),
            Err(e) => return Err(NamenodeError::io(path, e)),
        };
        let f: ExcludesFile = serde_json::from_str(&text)
            .map_err(|e| NamenodeError::Storage(format!("{}: not a datanode admin file: {e}", path.display())))?;
        if !f.nodes.is_empty() {
            tracing::info!("{}: {} datanodes decommissioning or decommissioned", path.display(), f.nodes.len());
        }
        Ok(AdminSet { entries: f.nodes, version: 0 })
    }

    /// The recorded state of a datanode (NORMAL when not in the set).
    pub(crate) fn state_of(&self, id: &DatanodeId) -> AdminState {
        self.entries.iter().find(|e| e.matches(id)).map(AdminEntry::admin_state).unwrap_or(AdminState::Normal)
    }

    /// Records `state` for the node (NORMAL removes it).
    pub(crate) fn set(&mut self, id: &DatanodeId, state: AdminState) {
        self.entries.retain(|e| !e.matches(id));
        if state != AdminState::Normal {
            self.entries.push(AdminEntry {
                uuid: id.datanode_uuid.clone(),
                transfer_addr: id.transfer_addr.clone(),
                host: id.host.clone(),
                state: state.as_str_name().to_string(),
            });
        }
        self.version += 1;
    }

    /// Removes entries of datanodes that did not register since the start,
    /// named by uuid, transfer address or host. True if any was removed.
    pub(crate) fn remove_named(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.uuid != name && e.transfer_addr != name && e.host != name);
        let removed = self.entries.len() != before;
        if removed {
            self.version += 1;
        }
        removed
    }

    /// The version and the file contents to persist.
    pub(crate) fn snapshot(&self) -> Result<(u64, Vec<u8>)> {
        let f = ExcludesFile { nodes: self.entries.clone() };
        let bytes = serde_json::to_vec_pretty(&f).map_err(|e| NamenodeError::Internal(format!("excludes: {e}")))?;
        Ok((self.version, bytes))
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[AdminEntry] {
        &self.entries
    }
}

/// Where the admin set is persisted (nowhere for an in-memory namesystem).
/// Its mutex only serializes writers; it is taken with no other lock held.
#[derive(Debug)]
pub(crate) struct ExcludesStore {
    path: Option<PathBuf>,
    written: Mutex<u64>,
}

impl ExcludesStore {
    pub(crate) fn new(path: Option<PathBuf>) -> ExcludesStore {
        ExcludesStore { path, written: Mutex::new(0) }
    }

    /// Writes `bytes` (of admin set `version`) atomically unless a newer
    /// version was written already: temporary file, fsync, rename, fsync
    /// of the directory.
    pub(crate) fn save(&self, version: u64, bytes: &[u8]) -> Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let mut written = self.written.lock();
        if version <= *written {
            return Ok(());
        }
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| NamenodeError::io(&tmp, e))?;
        f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| NamenodeError::io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| NamenodeError::io(path, e))?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| NamenodeError::io(dir, e))?;
        }
        *written = version;
        Ok(())
    }
}

/// Whether a block no longer needs the replica of a decommissioning node
/// (HDFS `isSufficient`): enough live replicas, or the default replication
/// for files asking for more than the cluster can give, or the minimum for
/// the last block of a file being written.
fn sufficient(c: &Census, default_replication: u32, min_replication: u32) -> bool {
    c.live >= c.expected || c.live >= default_replication || (c.under_construction && c.live >= min_replication)
}

/// Advances every decommissioning datanode; returns true when an admin
/// state changed (the admin set must then be saved).
pub(crate) fn check(
    st: &FsState,
    dm: &mut DatanodeManager,
    r: &mut Replication,
    default_replication: u32,
    min_replication: u32,
) -> bool {
    let racks = dm.cluster_racks();
    let mut changed = false;
    let mut budget = CHECKS_PER_TICK;
    let nodes: Vec<DnIndex> = dm.with_admin_state(AdminState::DecommissionInProgress);
    r.decommissioning.retain(|dn, _| nodes.contains(dn));
    for dn in nodes {
        let Some(node) = dm.get(dn) else { continue };
        let alive = node.alive;
        if !alive && !r.decommissioning.contains_key(&dn) {
            // Dead before its blocks were ever checked: its replicas were
            // forgotten when it died; nothing to wait for.
            finish(dm, dn, "was dead");
            changed = true;
            continue;
        }
        // A node that died while draining keeps the blocks that still
        // needed it: it is decommissioned only once they have their
        // replicas elsewhere (not while its replica may be the last one).
        if alive && !node.block_report_received {
            continue;
        }
        let (mut left, fresh) = match r.decommissioning.remove(&dn) {
            Some(l) => (l, false),
            None => {
                // First pass since the node's block report: queue its blocks.
                let l = blocks_on(st, dn);
                tracing::info!("decommissioning datanode {}: {} blocks to check", node.id.datanode_uuid, l.len());
                for id in &l {
                    r.note(*id);
                }
                (l, true)
            }
        };
        let lacking = |id: &u64, dm: &DatanodeManager, r: &Replication| {
            let Some(b) = st.blocks.get(*id) else { return false };
            if alive && !b.replicas.contains(dn) {
                return false;
            }
            match classify(st, dm, r, *id, racks) {
                Some(c) => !sufficient(&c, default_replication, min_replication),
                None => false,
            }
        };
        // Check a bounded share; blocks still lacking go to the back.
        let n = left.len().min(budget);
        budget -= n;
        let mut head: Vec<u64> = left.drain(..n).collect();
        head.retain(|id| lacking(id, dm, r));
        left.extend(head);
        if left.is_empty() && alive && !fresh {
            // Before declaring it done, one more look at everything it holds
            // now: replicas may have reached it since the first pass (a
            // pipeline opened before, a block report).
            left = blocks_on(st, dn).into_iter().filter(|id| lacking(id, dm, r)).collect();
            for id in &left {
                r.note(*id);
            }
        }
        dm.set_pending_decommission(dn, left.len() as u64);
        if left.is_empty() {
            r.decommissioning.remove(&dn);
            finish(dm, dn, "has no block left that lacks replicas elsewhere");
            changed = true;
        } else {
            r.decommissioning.insert(dn, left);
        }
    }
    changed
}

fn finish(dm: &mut DatanodeManager, dn: DnIndex, why: &str) {
    dm.set_admin_state(dn, AdminState::Decommissioned);
    if let Some(d) = dm.get(dn) {
        tracing::info!("datanode {} ({}) is decommissioned: it {why}", d.id.datanode_uuid, d.id.transfer_addr);
    }
}

/// Every block with a replica on `dn` (one pass over the block map).
pub(crate) fn blocks_on(st: &FsState, dn: DnIndex) -> Vec<u64> {
    st.blocks.iter().filter(|(_, b)| b.replicas.contains(dn)).map(|(id, _)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> DatanodeId {
        DatanodeId {
            datanode_uuid: format!("u{n}"),
            transfer_addr: format!("10.0.0.{n}:9866"),
            host: format!("10.0.0.{n}"),
            ..Default::default()
        }
    }

    #[test]
    fn admin_set_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EXCLUDES_FILE);
        assert!(AdminSet::load(&path).unwrap().entries().is_empty());
        let mut s = AdminSet::default();
        s.set(&id(1), AdminState::DecommissionInProgress);
        s.set(&id(2), AdminState::Decommissioned);
        s.set(&id(1), AdminState::Decommissioned);
        let store = ExcludesStore::new(Some(path.clone()));
        let (v, bytes) = s.snapshot().unwrap();
        store.save(v, &bytes).unwrap();
        // An older snapshot never overwrites a newer one.
        store.save(v - 1, b"garbage").unwrap();
        let back = AdminSet::load(&path).unwrap();
        assert_eq!(back.entries().len(), 2);
        assert_eq!(back.state_of(&id(1)), AdminState::Decommissioned);
        // Matched by transfer address after a datanode was reformatted.
        let other_uuid = DatanodeId { datanode_uuid: "fresh".into(), ..id(2) };
        assert_eq!(back.state_of(&other_uuid), AdminState::Decommissioned);
        assert_eq!(back.state_of(&id(3)), AdminState::Normal);
        std::fs::write(&path, "{not json").unwrap();
        assert!(AdminSet::load(&path).unwrap_err().to_string().contains("excludes.json"));
        let mut s = back;
        assert!(s.remove_named("10.0.0.2"));
        assert!(!s.remove_named("10.0.0.2"));
        s.set(&id(1), AdminState::Normal);
        assert!(s.entries().is_empty());
    }
}
