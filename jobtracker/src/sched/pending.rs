//! The tasks of one stage waiting for a slot, indexed by where their input
//! lives, so a free slot finds a data-local or rack-local task without a scan.

use std::collections::{BTreeSet, HashMap};

use super::model::Prefs;

/// Pending task indexes of a stage.
#[derive(Debug, Default, Clone)]
pub(crate) struct PendingSet {
    all: BTreeSet<u32>,
    /// Tasks without a preferred location (reducers, generated input).
    no_pref: BTreeSet<u32>,
    /// By preferred `host:port` (a datanode's transfer address).
    by_addr: HashMap<String, BTreeSet<u32>>,
    /// By the host part of a preferred address (workers without a datanode).
    by_host: HashMap<String, BTreeSet<u32>>,
    by_rack: HashMap<String, BTreeSet<u32>>,
}

/// The host part of `host:port` (`[v6]:port` too); the whole string without a port.
pub(crate) fn host_part(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h).unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => addr,
    }
}

fn add(map: &mut HashMap<String, BTreeSet<u32>>, key: &str, idx: u32) {
    map.entry(key.to_string()).or_default().insert(idx);
}

fn del(map: &mut HashMap<String, BTreeSet<u32>>, key: &str, idx: u32) {
    if let Some(set) = map.get_mut(key) {
        set.remove(&idx);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

fn iter_of<'a>(map: &'a HashMap<String, BTreeSet<u32>>, key: &str) -> impl Iterator<Item = u32> + 'a {
    map.get(key).into_iter().flat_map(|s| s.iter().copied())
}

impl PendingSet {
    pub(crate) fn insert(&mut self, idx: u32, prefs: &Prefs) {
        if !self.all.insert(idx) {
            return;
        }
        if prefs.is_empty() {
            self.no_pref.insert(idx);
        }
        for h in &prefs.hosts {
            add(&mut self.by_addr, h, idx);
            add(&mut self.by_host, host_part(h), idx);
        }
        for r in &prefs.racks {
            add(&mut self.by_rack, r, idx);
        }
    }

    pub(crate) fn remove(&mut self, idx: u32, prefs: &Prefs) {
        if !self.all.remove(&idx) {
            return;
        }
        self.no_pref.remove(&idx);
        for h in &prefs.hosts {
            del(&mut self.by_addr, h, idx);
            del(&mut self.by_host, host_part(h), idx);
        }
        for r in &prefs.racks {
            del(&mut self.by_rack, r, idx);
        }
    }

    pub(crate) fn clear(&mut self) {
        *self = PendingSet::default();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// True when some pending task prefers a location (delay scheduling applies).
    pub(crate) fn has_located(&self) -> bool {
        self.all.len() > self.no_pref.len()
    }

    /// Tasks whose input is on the datanode `addr` (or, with `addr` empty,
    /// on a datanode of host `host`).
    pub(crate) fn local<'a>(&'a self, addr: &str, host: &str) -> Box<dyn Iterator<Item = u32> + 'a> {
        if addr.is_empty() { Box::new(iter_of(&self.by_host, host)) } else { Box::new(iter_of(&self.by_addr, addr)) }
    }

    pub(crate) fn rack<'a>(&'a self, rack: &str) -> impl Iterator<Item = u32> + 'a {
        iter_of(&self.by_rack, rack)
    }

    pub(crate) fn no_pref(&self) -> impl Iterator<Item = u32> + '_ {
        self.no_pref.iter().copied()
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = u32> + '_ {
        self.all.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefs(hosts: &[&str], racks: &[&str]) -> Prefs {
        Prefs {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            racks: racks.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn host_part_handles_ports_and_v6() {
        assert_eq!(host_part("10.0.0.1:9866"), "10.0.0.1");
        assert_eq!(host_part("[::1]:9866"), "::1");
        assert_eq!(host_part("node7"), "node7");
        assert_eq!(host_part("::1"), "::1");
    }

    #[test]
    fn indexes_follow_inserts_and_removes() {
        let mut p = PendingSet::default();
        let a = prefs(&["10.0.0.1:1", "10.0.0.2:1"], &["/r1"]);
        let b = prefs(&["10.0.0.2:1"], &["/r1"]);
        p.insert(0, &a);
        p.insert(1, &b);
        p.insert(2, &Prefs::default());
        assert_eq!(p.len(), 3);
        assert!(p.has_located());
        assert_eq!(p.local("10.0.0.2:1", "").collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(p.local("", "10.0.0.1").collect::<Vec<_>>(), vec![0]);
        assert_eq!(p.rack("/r1").collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(p.no_pref().collect::<Vec<_>>(), vec![2]);
        p.remove(0, &a);
        p.remove(0, &a);
        assert_eq!(p.local("10.0.0.1:1", "").count(), 0);
        assert_eq!(p.rack("/r1").collect::<Vec<_>>(), vec![1]);
        p.remove(1, &b);
        assert!(!p.has_located());
        assert_eq!(p.all().collect::<Vec<_>>(), vec![2]);
    }
}
