//! Replica placement, as HDFS `BlockPlacementPolicyDefault`: the first
//! replica on the writer's host if a datanode runs there (else a random
//! node), the second on another rack, the third on the second's rack, any
//! more at random with at most `(replicas-1)/racks + 2` per rack. A good
//! target is live, NORMAL, not excluded, has room for the block plus the
//! blocks already scheduled to it, and carries at most twice the average
//! load (xceivers).

use std::collections::{HashMap, HashSet};

use rand::seq::IndexedRandom;
use tusk_proto::error::ErrorKind;

use super::{Datanode, DatanodeManager};
use crate::blocks::DnIndex;
use crate::error::{NamenodeError, Result};

/// One placement question.
struct Request<'a> {
    /// Nodes already holding (or chosen for) the block: they count per rack.
    existing: &'a [DnIndex],
    n: usize,
    block_size: u64,
    /// Host of the writer, for the first replica of a new block.
    writer_host: &'a str,
    /// Rack of the writer, for the third replica when not a new block.
    writer_rack: Option<&'a str>,
    new_block: bool,
    /// Only racks none of `existing` is on (repairing mis-replication).
    new_rack: bool,
    excluded: &'a dyn Fn(DnIndex, &Datanode) -> bool,
}

/// The state of one placement: candidates left and replicas per rack.
struct Chooser<'a> {
    dm: &'a DatanodeManager,
    good: Vec<DnIndex>,
    per_rack: HashMap<&'a str, usize>,
    max_per_rack: usize,
    avoid: HashSet<&'a str>,
    results: Vec<DnIndex>,
    chosen: Vec<DnIndex>,
}

impl<'a> Chooser<'a> {
    fn rack(&self, i: DnIndex) -> &'a str {
        self.dm.get(i).map(|d| d.rack()).unwrap_or("")
    }

    /// Adds a random good node satisfying `pred`; false if there is none.
    fn pick(&mut self, pred: impl Fn(&Datanode) -> bool) -> bool {
        let fits: Vec<DnIndex> = self
            .good
            .iter()
            .copied()
            .filter(|i| {
                let Some(d) = self.dm.get(*i) else { return false };
                !self.avoid.contains(d.rack())
                    && self.per_rack.get(d.rack()).copied().unwrap_or(0) < self.max_per_rack
                    && pred(d)
            })
            .collect();
        let Some(&i) = fits.choose(&mut rand::rng()) else { return false };
        self.good.retain(|g| *g != i);
        *self.per_rack.entry(self.rack(i)).or_insert(0) += 1;
        self.results.push(i);
        self.chosen.push(i);
        true
    }
}

/// HDFS `getMaxNodesPerRack`.
fn max_per_rack(total: usize, racks: usize) -> usize {
    if racks <= 1 || total <= 1 {
        return total;
    }
    let m = (total - 1) / racks + 2;
    if m == total { m - 1 } else { m }
}

impl DatanodeManager {
    fn is_good_target(&self, d: &Datanode, block_size: u64, max_load: f64) -> bool {
        d.in_service()
            && d.storage.remaining >= block_size.saturating_add(d.scheduled_bytes(block_size))
            && (max_load <= 0.0 || d.xceivers as f64 <= max_load)
    }

    /// Twice the average xceiver count of in-service nodes.
    fn max_load(&self) -> f64 {
        let (n, sum) = self.nodes.iter().filter(|d| d.in_service()).fold((0u64, 0u64), |(n, s), d| (n + 1, s + d.xceivers as u64));
        if n == 0 { 0.0 } else { 2.0 * sum as f64 / n as f64 }
    }

    fn place(&self, req: &Request<'_>) -> Vec<DnIndex> {
        let max_load = self.max_load();
        let good: Vec<DnIndex> = self
            .iter()
            .filter(|(i, d)| {
                !req.existing.contains(i) && !(req.excluded)(*i, d) && self.is_good_target(d, req.block_size, max_load)
            })
            .map(|(i, _)| i)
            .collect();
        let n = req.n.min(good.len());
        if n == 0 {
            return Vec::new();
        }
        let existing: Vec<DnIndex> = req.existing.iter().copied().filter(|i| self.get(*i).is_some()).collect();
        let racks: HashSet<&str> = good.iter().chain(&existing).filter_map(|i| self.get(*i)).map(|d| d.rack()).collect();
        let mut c = Chooser {
            dm: self,
            good,
            per_rack: HashMap::new(),
            max_per_rack: max_per_rack(existing.len() + n, racks.len()),
            avoid: HashSet::new(),
            results: existing.clone(),
            chosen: Vec::with_capacity(n),
        };
        for i in &existing {
            *c.per_rack.entry(c.rack(*i)).or_insert(0) += 1;
        }
        if req.new_rack {
            c.avoid = existing.iter().map(|i| c.rack(*i)).collect();
        }
        while c.chosen.len() < n {
            let ok = match c.results.len() {
                0 => (!req.writer_host.is_empty() && c.pick(|d| d.id.host == req.writer_host)) || c.pick(|_| true),
                1 => {
                    let r0 = c.rack(c.results[0]);
                    c.pick(|d| d.rack() != r0) || c.pick(|_| true)
                }
                2 => {
                    let (r0, r1) = (c.rack(c.results[0]), c.rack(c.results[1]));
                    if r0 == r1 {
                        c.pick(|d| d.rack() != r0) || c.pick(|_| true)
                    } else if req.new_block {
                        c.pick(|d| d.rack() == r1) || c.pick(|_| true)
                    } else if let Some(w) = req.writer_rack {
                        c.pick(|d| d.rack() == w) || c.pick(|_| true)
                    } else {
                        c.pick(|_| true)
                    }
                }
                _ => c.pick(|_| true),
            };
            if !ok {
                break;
            }
        }
        c.chosen
    }

    /// Up to `replication` distinct targets for a new block (fewer when
    /// fewer nodes are good). `excluded` holds datanode uuids.
    pub(crate) fn choose_targets(&self, replication: usize, block_size: u64, client_host: &str, excluded: &[String]) -> Vec<DnIndex> {
        self.place(&Request {
            existing: &[],
            n: replication,
            block_size,
            writer_host: client_host,
            writer_rack: None,
            new_block: true,
            new_rack: false,
            excluded: &|_, d| excluded.contains(&d.id.datanode_uuid),
        })
    }

    /// `n` more targets for a block whose pipeline already has `existing`
    /// (GetAdditionalDatanode): placed relative to the existing nodes and
    /// the writer's rack. `excluded` holds datanode uuids.
    pub(crate) fn choose_additional(
        &self,
        existing: &[DnIndex],
        n: usize,
        block_size: u64,
        client_host: &str,
        excluded: &[String],
    ) -> Vec<DnIndex> {
        self.place(&Request {
            existing,
            n,
            block_size,
            writer_host: client_host,
            writer_rack: self.client_rack(client_host),
            new_block: false,
            new_rack: false,
            excluded: &|_, d| excluded.contains(&d.id.datanode_uuid),
        })
    }

    /// Targets for re-replication from `source`: `live` are the replicas
    /// that count, `holders` every node with a replica (or one on its way).
    /// `new_rack`: only on racks without a live replica.
    pub(crate) fn choose_replication_targets(
        &self,
        source: DnIndex,
        live: &[DnIndex],
        holders: &HashSet<DnIndex>,
        n: usize,
        block_size: u64,
        new_rack: bool,
    ) -> Vec<DnIndex> {
        self.place(&Request {
            existing: live,
            n,
            block_size,
            writer_host: "",
            writer_rack: self.get(source).map(|d| d.rack()),
            new_block: false,
            new_rack,
            excluded: &|i, _| holders.contains(&i),
        })
    }

    /// Targets of a new block of `path` (add_block), counted as scheduled
    /// writes; the NoDatanodes error names why nothing fits.
    pub(crate) fn place_new_block(
        &mut self,
        path: &str,
        replication: usize,
        block_size: u64,
        client_host: &str,
        excluded: &[String],
    ) -> Result<Vec<DnIndex>> {
        let t = self.choose_targets(replication, block_size, client_host, excluded);
        if t.is_empty() {
            return Err(self.no_room(path, block_size, excluded));
        }
        self.add_scheduled(&t);
        Ok(t)
    }

    /// `/a/f: no datanode has room for a block of N bytes (3 live, 3 full, 0 excluded)`.
    pub(crate) fn no_room(&self, path: &str, block_size: u64, excluded: &[String]) -> NamenodeError {
        let live: Vec<&Datanode> = self.nodes.iter().filter(|d| d.alive).collect();
        let excl = live.iter().filter(|d| excluded.contains(&d.id.datanode_uuid)).count();
        let out = live.iter().filter(|d| !d.in_service() && !excluded.contains(&d.id.datanode_uuid)).count();
        let full = live
            .iter()
            .filter(|d| d.in_service() && !excluded.contains(&d.id.datanode_uuid))
            .filter(|d| d.storage.remaining < block_size.saturating_add(d.scheduled_bytes(block_size)))
            .count();
        let mut msg =
            format!("{path}: no datanode has room for a block of {block_size} bytes ({} live, {full} full, {excl} excluded", live.len());
        if out > 0 {
            msg += &format!(", {out} decommissioning or decommissioned");
        }
        msg.push(')');
        NamenodeError::req(ErrorKind::NoDatanodes, msg)
    }
}

#[cfg(test)]
mod tests {
    use tusk_proto::dfs::StorageReport;
    use tusk_proto::dfs::datanode_info::AdminState;

    use super::super::tests::dn;
    use super::*;
    use crate::decommission::AdminSet;
    use crate::topology::Topology;

    /// Nodes 1..=3 on /r1, 4..=6 on /r2, 7..=9 on /r3.
    fn racked() -> (DatanodeManager, Vec<DnIndex>) {
        let topo: String = (1..=9).map(|n| format!("10.0.0.{n} /r{}\n", (n - 1) / 3 + 1)).collect();
        let mut m = DatanodeManager::new(Topology::from_text(&topo).unwrap(), AdminSet::default());
        let idx = (1..=9).map(|n| dn(&mut m, n, 1 << 30)).collect();
        (m, idx)
    }

    fn rack(m: &DatanodeManager, i: DnIndex) -> String {
        m.get(i).unwrap().id.rack.clone()
    }

    #[test]
    fn placement_prefers_local_and_skips_full_and_excluded() {
        let mut m = DatanodeManager::default();
        for n in 1..=4 {
            dn(&mut m, n, 1 << 30);
        }
        dn(&mut m, 5, 10);
        for _ in 0..20 {
            let t = m.choose_targets(3, 1 << 20, "10.0.0.3", &["uuid-1".into()]);
            assert_eq!(t.len(), 3);
            assert_eq!(m.get(t[0]).unwrap().id.host, "10.0.0.3");
            let uuids: Vec<_> = t.iter().map(|i| m.get(*i).unwrap().id.datanode_uuid.clone()).collect();
            assert!(!uuids.contains(&"uuid-1".to_string()) && !uuids.contains(&"uuid-5".to_string()), "{uuids:?}");
            let mut d = t.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3);
        }
        assert_eq!(m.choose_targets(10, 1 << 20, "", &[]).len(), 4);
        assert!(m.choose_targets(3, 1 << 40, "", &[]).is_empty());
    }

    #[test]
    fn second_replica_off_rack_third_on_the_seconds_rack() {
        let (m, idx) = racked();
        for _ in 0..50 {
            let t = m.choose_targets(3, 1 << 20, "10.0.0.2", &[]);
            assert_eq!(t.len(), 3);
            assert_eq!(t[0], idx[1], "local first");
            assert_ne!(rack(&m, t[1]), rack(&m, t[0]));
            assert_eq!(rack(&m, t[2]), rack(&m, t[1]));
            assert_ne!(t[2], t[1]);
            // A writer on no datanode: a random first node, same rack rules.
            let t = m.choose_targets(3, 1 << 20, "192.168.1.1", &[]);
            assert_ne!(rack(&m, t[1]), rack(&m, t[0]));
            assert_eq!(rack(&m, t[2]), rack(&m, t[1]));
            // Many replicas: at most (9-1)/3+2 = 4 per rack... and all 9 nodes.
            let t = m.choose_targets(9, 1 << 20, "", &[]);
            assert_eq!(t.len(), 9);
            let t = m.choose_targets(6, 1 << 20, "", &[]);
            let mut per: HashMap<String, usize> = HashMap::new();
            for i in &t {
                *per.entry(rack(&m, *i)).or_default() += 1;
            }
            assert!(per.values().all(|c| *c <= 3), "{per:?}");
        }
    }

    #[test]
    fn full_and_decommissioning_nodes_get_nothing_and_the_error_says_why() {
        let (mut m, idx) = racked();
        // Every node has room for exactly 2 blocks of 1 MiB.
        for i in &idx {
            m.nodes[*i as usize].storage.remaining = 2 << 20;
        }
        m.set_admin_state(idx[8], AdminState::DecommissionInProgress);
        let t = m.place_new_block("/a/f", 3, 1 << 20, "", &[]).unwrap();
        assert_eq!(t.len(), 3);
        for _ in 0..20 {
            assert!(!m.choose_targets(9, 1 << 20, "", &[]).contains(&idx[8]));
        }
        // Scheduled writes take room: 8 nodes x 2 blocks, 3 placed already.
        let mut placed = 3;
        while let Ok(t) = m.place_new_block("/a/f", 3, 1 << 20, "", &[]) {
            placed += t.len();
            assert!(placed <= 16);
        }
        assert_eq!(placed, 16);
        let e = m.place_new_block("/a/f", 3, 1 << 20, "", &["uuid-1".into()]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoDatanodes);
        assert_eq!(
            e.to_string(),
            "/a/f: no datanode has room for a block of 1048576 bytes (9 live, 7 full, 1 excluded, 1 decommissioning or decommissioned)"
        );
        // A reported replica frees the scheduled room again.
        m.replica_received(idx[0]);
        assert_eq!(m.choose_targets(3, 1 << 20, "", &[]), vec![idx[0]]);
        let mut m = DatanodeManager::default();
        for n in 1..=3 {
            dn(&mut m, n, 1 << 20);
        }
        assert_eq!(
            m.place_new_block("/big", 3, 128 << 20, "", &[]).unwrap_err().to_string(),
            "/big: no datanode has room for a block of 134217728 bytes (3 live, 3 full, 0 excluded)"
        );
        m.nodes[0].storage = StorageReport { capacity: 1 << 40, dfs_used: 0, remaining: 1 << 40 };
        m.nodes[1].xceivers = 100;
        // Node 1 carries more than twice the average load.
        assert_eq!(m.choose_targets(3, 1, "", &[]).len(), 2);
    }

    #[test]
    fn additional_and_replication_targets_respect_racks() {
        let (m, idx) = racked();
        for _ in 0..30 {
            // Pipeline lost its second node: existing = [node on /r1, node on /r2].
            let t = m.choose_additional(&[idx[0], idx[3]], 1, 1, "10.0.0.1", &["uuid-2".into()]);
            assert_eq!(t.len(), 1);
            assert_eq!(rack(&m, t[0]), "/r1", "third goes to the writer's rack when racks differ");
            assert_ne!(t[0], idx[1]);
            // Two live replicas on one rack: the new one goes elsewhere.
            let holders: HashSet<DnIndex> = [idx[0], idx[1]].into();
            let t = m.choose_replication_targets(idx[0], &[idx[0], idx[1]], &holders, 1, 1, false);
            assert_ne!(rack(&m, t[0]), "/r1");
            // Mis-replication repair: off every rack holding a replica.
            let holders: HashSet<DnIndex> = [idx[0], idx[1], idx[2], idx[3]].into();
            let t = m.choose_replication_targets(idx[0], &[idx[0], idx[1], idx[2]], &holders, 1, 1, true);
            assert_ne!(rack(&m, t[0]), "/r1");
            assert!(!holders.contains(&t[0]));
        }
        assert_eq!(max_per_rack(3, 2), 2);
        assert_eq!(max_per_rack(3, 1), 3);
        assert_eq!(max_per_rack(10, 3), 5);
    }
}
