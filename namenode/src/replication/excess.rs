//! Choosing which replicas of an over-replicated block to delete (HDFS
//! `chooseReplicasToDelete`): from the rack holding the most replicas, the
//! node with the least remaining space; never below the expected count, and
//! never the last replica of a rack when that would leave the block on too
//! few racks.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::{Census, ReplicaKind};
use crate::blocks::DnIndex;
use crate::datanodes::DatanodeManager;

/// Live replicas of the block to invalidate; `protect` (the source of a
/// transfer in flight) is kept.
pub(crate) fn choose(c: &Census, dm: &DatanodeManager, protect: Option<DnIndex>) -> Vec<DnIndex> {
    let mut live: Vec<DnIndex> = c.nodes(ReplicaKind::Live).collect();
    let rack = |i: DnIndex| dm.get(i).map(|d| d.rack()).unwrap_or("");
    let remaining = |i: DnIndex| dm.get(i).map(|d| d.storage.remaining).unwrap_or(0);
    let mut out = Vec::new();
    while live.len() as u32 > c.expected {
        let mut per_rack: HashMap<&str, usize> = HashMap::new();
        for i in &live {
            *per_rack.entry(rack(*i)).or_insert(0) += 1;
        }
        let count = |i: DnIndex| per_rack.get(rack(i)).copied().unwrap_or(0);
        let Some(victim) =
            live.iter().copied().filter(|i| Some(*i) != protect).max_by_key(|i| (count(*i), Reverse(remaining(*i))))
        else {
            break;
        };
        if count(victim) == 1 && ((per_rack.len() - 1) as u32) < c.required_racks {
            break;
        }
        live.retain(|i| *i != victim);
        out.push(victim);
    }
    out
}

#[cfg(test)]
mod tests {
    use tusk_proto::dfs::{DatanodeId, StorageReport};

    use super::*;
    use crate::decommission::AdminSet;
    use crate::topology::Topology;

    fn census(replicas: &[DnIndex], expected: u32, required_racks: u32) -> Census {
        Census {
            expected,
            live: replicas.len() as u32,
            required_racks,
            replicas: replicas.iter().map(|d| (*d, ReplicaKind::Live)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn most_crowded_rack_then_fullest_node_never_the_last_of_a_needed_rack() {
        let topo = "h1 /a\nh2 /a\nh3 /a\nh4 /b\n";
        let mut m = DatanodeManager::new(Topology::from_text(topo).unwrap(), AdminSet::default());
        let free = [500u64, 100, 300, 10];
        let idx: Vec<DnIndex> = (1..=4)
            .map(|n| {
                let id = DatanodeId { datanode_uuid: format!("u{n}"), transfer_addr: format!("h{n}:1"), host: format!("h{n}"), ..Default::default() };
                let remaining = free[n - 1];
                m.register(id, StorageReport { capacity: 1000, dfs_used: 0, remaining }).unwrap()
            })
            .collect();
        // 4 replicas, 2 wanted: two from rack /a, fullest first (h2, then h3).
        assert_eq!(choose(&census(&idx, 2, 2), &m, None), vec![idx[1], idx[2]]);
        // 1 wanted but 2 racks required: the /b replica is never dropped.
        assert_eq!(choose(&census(&idx, 1, 2), &m, None), vec![idx[1], idx[2]]);
        // One rack only: down to the expected count.
        assert_eq!(choose(&census(&idx, 1, 1), &m, None).len(), 3);
        // The source of a transfer in flight is kept.
        assert_eq!(choose(&census(&idx, 3, 2), &m, Some(idx[1])), vec![idx[2]]);
        assert!(choose(&census(&idx, 4, 2), &m, None).is_empty());
    }
}
