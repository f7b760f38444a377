//! `tusk dfsadmin report`: cluster totals, then one block per datanode, as
//! `hdfs dfsadmin -report` prints them (or one JSON document).

use serde_json::{Value, json};
use std::fmt::Write;
use tusk_client::{AdminState, DatanodeInfo};

use crate::dfs::format::{human_size, time_seconds};

/// Which datanodes the report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFilter {
    /// Live, then dead datanodes.
    All,
    Live,
    Dead,
    /// Datanodes whose decommission is in progress.
    Decommissioning,
}

/// HDFS "Decommission Status" text.
pub fn decommission_status(s: AdminState) -> &'static str {
    match s {
        AdminState::Normal => "Normal",
        AdminState::DecommissionInProgress => "Decommission in progress",
        AdminState::Decommissioned => "Decommissioned",
    }
}

/// Totals over the live datanodes, and counts by state.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub configured_capacity: u64,
    pub dfs_used: u64,
    pub dfs_remaining: u64,
    pub live: usize,
    pub dead: usize,
    pub decommissioning: usize,
    pub decommissioned: usize,
}

impl Totals {
    pub fn of(nodes: &[DatanodeInfo]) -> Totals {
        let mut t = Totals::default();
        for d in nodes {
            if d.live {
                t.live += 1;
                t.configured_capacity += d.capacity;
                t.dfs_used += d.dfs_used;
                t.dfs_remaining += d.remaining;
            } else {
                t.dead += 1;
            }
            match d.admin_state {
                AdminState::DecommissionInProgress => t.decommissioning += 1,
                AdminState::Decommissioned => t.decommissioned += 1,
                AdminState::Normal => {}
            }
        }
        t
    }

    /// What DFS can use: used plus remaining (capacity minus non-DFS use).
    pub fn present_capacity(&self) -> u64 {
        self.dfs_used + self.dfs_remaining
    }
}

/// `part / whole` as a percentage with two decimals (`0.00%` of nothing).
fn pct(part: u64, whole: u64) -> String {
    let p = if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 };
    format!("{p:.2}%")
}

/// `1536 (1.5 K)`.
fn bytes(n: u64) -> String {
    format!("{n} ({})", human_size(n))
}

/// `3 seconds ago`, `5 minutes ago`, `2 hours ago`, `4 days ago`.
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    let s = (now_ms - then_ms).max(0) / 1000;
    let (n, unit) = match s {
        0..120 => (s, "second"),
        120..7200 => (s / 60, "minute"),
        7200..172_800 => (s / 3600, "hour"),
        _ => (s / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn selected(nodes: &[DatanodeInfo], filter: ReportFilter) -> Vec<&DatanodeInfo> {
    let mut v: Vec<&DatanodeInfo> = nodes
        .iter()
        .filter(|d| match filter {
            ReportFilter::All => true,
            ReportFilter::Live => d.live,
            ReportFilter::Dead => !d.live,
            ReportFilter::Decommissioning => d.admin_state == AdminState::DecommissionInProgress,
        })
        .collect();
    v.sort_by(|a, b| a.transfer_addr.cmp(&b.transfer_addr));
    v
}

/// The text report: totals, a rule, then the sections of datanodes.
pub fn to_text(nodes: &[DatanodeInfo], filter: ReportFilter, now_ms: i64) -> String {
    let t = Totals::of(nodes);
    let mut out = String::new();
    let present = t.present_capacity();
    let _ = writeln!(out, "Configured Capacity: {}", bytes(t.configured_capacity));
    let _ = writeln!(out, "Present Capacity: {}", bytes(present));
    let _ = writeln!(out, "DFS Remaining: {}", bytes(t.dfs_remaining));
    let _ = writeln!(out, "DFS Used: {}", bytes(t.dfs_used));
    let _ = writeln!(out, "DFS Used%: {}", pct(t.dfs_used, present));
    let _ = writeln!(out, "Live datanodes: {}", t.live);
    let _ = writeln!(out, "Dead datanodes: {}", t.dead);
    let _ = writeln!(out, "Decommissioning datanodes: {}", t.decommissioning);
    let _ = writeln!(out, "Decommissioned datanodes: {}", t.decommissioned);
    let _ = writeln!(out);
    let _ = writeln!(out, "-------------------------------------------------");
    let sections: Vec<(&str, Vec<&DatanodeInfo>)> = match filter {
        ReportFilter::All => vec![
            ("Live datanodes", selected(nodes, ReportFilter::Live)),
            ("Dead datanodes", selected(nodes, ReportFilter::Dead)),
        ],
        ReportFilter::Live => vec![("Live datanodes", selected(nodes, filter))],
        ReportFilter::Dead => vec![("Dead datanodes", selected(nodes, filter))],
        ReportFilter::Decommissioning => vec![("Decommissioning datanodes", selected(nodes, filter))],
    };
    for (title, list) in sections {
        let _ = writeln!(out, "{title} ({}):", list.len());
        let _ = writeln!(out);
        for d in list {
            node_block(&mut out, d, now_ms);
            let _ = writeln!(out);
        }
    }
    out
}

fn node_block(out: &mut String, d: &DatanodeInfo, now_ms: i64) {
    let _ = writeln!(out, "Name: {}", d.transfer_addr);
    let _ = writeln!(out, "Hostname: {}", d.host);
    let _ = writeln!(out, "Uuid: {}", d.uuid);
    let rack = if d.rack.is_empty() { "/default-rack" } else { &d.rack };
    let _ = writeln!(out, "Rack: {rack}");
    let _ = writeln!(out, "Decommission Status : {}", decommission_status(d.admin_state));
    if d.admin_state == AdminState::DecommissionInProgress {
        let _ = writeln!(out, "Blocks pending decommission: {}", d.blocks_pending_decommission);
    }
    let _ = writeln!(out, "Configured Capacity: {}", bytes(d.capacity));
    let _ = writeln!(out, "DFS Used: {}", bytes(d.dfs_used));
    let _ = writeln!(out, "DFS Remaining: {}", bytes(d.remaining));
    let _ = writeln!(out, "DFS Used%: {}", pct(d.dfs_used, d.capacity));
    let _ = writeln!(out, "DFS Remaining%: {}", pct(d.remaining, d.capacity));
    let _ = writeln!(out, "Blocks: {}", d.num_blocks);
    let _ = writeln!(out, "Xceivers: {}", d.xceivers);
    let contact = if d.last_contact_ms <= 0 {
        "never".to_string()
    } else {
        format!("{} ({})", time_seconds(d.last_contact_ms), ago(d.last_contact_ms, now_ms))
    };
    let _ = writeln!(out, "Last contact: {contact}");
}

/// `{summary: {...}, datanodes: [...]}` with the filter applied to the list.
pub fn to_json(nodes: &[DatanodeInfo], filter: ReportFilter) -> Value {
    let t = Totals::of(nodes);
    let list = selected(nodes, filter);
    json!({
        "summary": {
            "configured_capacity": t.configured_capacity,
            "present_capacity": t.present_capacity(),
            "dfs_used": t.dfs_used,
            "dfs_remaining": t.dfs_remaining,
            "live": t.live,
            "dead": t.dead,
            "decommissioning": t.decommissioning,
            "decommissioned": t.decommissioned,
        },
        "datanodes": list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_709_210_096_000;

    fn node(n: u32, live: bool, admin_state: AdminState) -> DatanodeInfo {
        DatanodeInfo {
            uuid: format!("uuid-{n}"),
            transfer_addr: format!("127.0.0.1:500{n}"),
            host: "127.0.0.1".into(),
            rack: if n == 1 { "/rack1".into() } else { String::new() },
            admin_state,
            blocks_pending_decommission: if admin_state == AdminState::DecommissionInProgress { 7 } else { 0 },
            capacity: 1000,
            dfs_used: 100,
            remaining: 800,
            last_contact_ms: NOW - 3000,
            live,
            num_blocks: 12,
            xceivers: 1,
        }
    }

    fn cluster() -> Vec<DatanodeInfo> {
        vec![
            node(2, true, AdminState::DecommissionInProgress),
            node(1, true, AdminState::Normal),
            node(3, false, AdminState::Decommissioned),
        ]
    }

    #[test]
    fn totals_count_live_capacity_and_states() {
        let t = Totals::of(&cluster());
        assert_eq!((t.configured_capacity, t.dfs_used, t.dfs_remaining), (2000, 200, 1600));
        assert_eq!((t.live, t.dead, t.decommissioning, t.decommissioned), (2, 1, 1, 1));
        assert_eq!(t.present_capacity(), 1800);
    }

    #[test]
    fn the_text_report_has_totals_then_nodes_by_section() {
        let text = to_text(&cluster(), ReportFilter::All, NOW);
        let l: Vec<&str> = text.lines().collect();
        assert_eq!(
            &l[..9],
            &[
                "Configured Capacity: 2000 (2.0 K)",
                "Present Capacity: 1800 (1.8 K)",
                "DFS Remaining: 1600 (1.6 K)",
                "DFS Used: 200 (200)",
                "DFS Used%: 11.11%",
                "Live datanodes: 2",
                "Dead datanodes: 1",
                "Decommissioning datanodes: 1",
                "Decommissioned datanodes: 1",
            ]
        );
        let live = l.iter().position(|x| *x == "Live datanodes (2):").unwrap();
        let dead = l.iter().position(|x| *x == "Dead datanodes (1):").unwrap();
        let n1 = l.iter().position(|x| *x == "Name: 127.0.0.1:5001").unwrap();
        let n2 = l.iter().position(|x| *x == "Name: 127.0.0.1:5002").unwrap();
        let n3 = l.iter().position(|x| *x == "Name: 127.0.0.1:5003").unwrap();
        assert!(live < n1 && n1 < n2 && n2 < dead && dead < n3, "{text}");
        let block1: &[&str] = &l[n1..n1 + 14];
        assert_eq!(
            block1,
            &[
                "Name: 127.0.0.1:5001",
                "Hostname: 127.0.0.1",
                "Uuid: uuid-1",
                "Rack: /rack1",
                "Decommission Status : Normal",
                "Configured Capacity: 1000 (1000)",
                "DFS Used: 100 (100)",
                "DFS Remaining: 800 (800)",
                "DFS Used%: 10.00%",
                "DFS Remaining%: 80.00%",
                "Blocks: 12",
                "Xceivers: 1",
                "Last contact: 2024-02-29 12:34:53 (3 seconds ago)",
                "",
            ]
        );
        assert_eq!(l[n2 + 3], "Rack: /default-rack");
        assert_eq!(l[n2 + 4], "Decommission Status : Decommission in progress");
        assert_eq!(l[n2 + 5], "Blocks pending decommission: 7");
        assert_eq!(l[n3 + 4], "Decommission Status : Decommissioned");
    }

    #[test]
    fn filters_pick_one_section() {
        let text = to_text(&cluster(), ReportFilter::Decommissioning, NOW);
        assert!(text.contains("Decommissioning datanodes (1):\n\nName: 127.0.0.1:5002\n"), "{text}");
        assert!(!text.contains("Name: 127.0.0.1:5001") && !text.contains("Live datanodes ("), "{text}");
        let text = to_text(&cluster(), ReportFilter::Dead, NOW);
        assert!(text.contains("Dead datanodes (1):") && !text.contains("Live datanodes ("), "{text}");
        let text = to_text(&cluster(), ReportFilter::Live, NOW);
        assert!(text.contains("Live datanodes (2):") && !text.contains("Name: 127.0.0.1:5003"), "{text}");
    }

    #[test]
    fn json_has_totals_and_the_selected_nodes() {
        let v = to_json(&cluster(), ReportFilter::Live);
        assert_eq!(v["summary"]["live"], 2);
        assert_eq!(v["summary"]["present_capacity"], 1800);
        let nodes = v["datanodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0]["transfer_addr"], "127.0.0.1:5001");
        assert_eq!(nodes[1]["admin_state"], "DECOMMISSION_IN_PROGRESS");
        assert_eq!(nodes[1]["blocks_pending_decommission"], 7);
    }

    #[test]
    fn contact_ages_are_human() {
        assert_eq!(ago(NOW - 1000, NOW), "1 second ago");
        assert_eq!(ago(NOW - 119_000, NOW), "119 seconds ago");
        assert_eq!(ago(NOW - 600_000, NOW), "10 minutes ago");
        assert_eq!(ago(NOW - 3 * 3_600_000, NOW), "3 hours ago");
        assert_eq!(ago(NOW - 3 * 86_400_000, NOW), "3 days ago");
        assert_eq!(ago(NOW + 5000, NOW), "0 seconds ago");
    }
}
