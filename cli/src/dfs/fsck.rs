//! `tusk dfs fsck PATH`: the namenode's health report of a tree, printed
//! the way `hdfs fsck` prints it (or as one JSON document). Exit status 0
//! when the tree is HEALTHY, 1 when a block is corrupt or missing.

use clap::Args;
use serde_json::{Value, json};
use std::fmt::Write;
use std::process::ExitCode;
use tusk_client::{BlockProblem, FsckBlock, FsckFile, FsckOptions, FsckReplicaState, FsckReport};

use super::Dfs;
use super::format::time_seconds;

/// Flags of `tusk dfs fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// The tree to check.
    path: String,
    /// List every file checked (else only files with problems).
    #[arg(long)]
    files: bool,
    /// List every block of the listed files (implies --files).
    #[arg(long)]
    blocks: bool,
    /// Show the replica locations of every block (implies --blocks).
    #[arg(long)]
    locations: bool,
    /// Show the rack of every replica location (implies --locations).
    #[arg(long)]
    racks: bool,
    /// Check files open for writing too.
    #[arg(long)]
    openforwrite: bool,
    /// Print one JSON document {path, files, summary, status}.
    #[arg(long)]
    json: bool,
}

/// What the text report shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct View {
    pub blocks: bool,
    pub locations: bool,
    pub racks: bool,
}

impl FsckArgs {
    fn options(&self) -> FsckOptions {
        let locations = self.locations || self.racks;
        let blocks = self.blocks || locations;
        FsckOptions {
            list_files: self.files || blocks,
            list_blocks: blocks,
            list_locations: locations,
            include_open_files: self.openforwrite,
        }
    }

    fn view(&self) -> View {
        let o = self.options();
        View { blocks: o.list_blocks, locations: o.list_locations, racks: self.racks }
    }
}

pub async fn run(dfs: &Dfs, args: &FsckArgs) -> anyhow::Result<ExitCode> {
    let path = tusk_common::path::normalize(&dfs.resolve(&args.path))?;
    let report = dfs.client.fsck(&path, args.options()).await?;
    if args.json {
        println!("{}", to_json(&report));
    } else {
        print!("{}", to_text(&report, args.view(), dfs.client.user()));
    }
    Ok(if report.is_healthy() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `HEALTHY` or `CORRUPT`.
pub fn status_word(report: &FsckReport) -> &'static str {
    if report.is_healthy() { "HEALTHY" } else { "CORRUPT" }
}

/// The JSON document: `{path, files: [...], summary: {...}, status}`,
/// shaped like the wire messages (`FsckFile`, `FsckBlock`, `FsckSummary`
/// of dfs.proto, enum values by name) plus `summary.missing_replicas` and
/// each block's `name`.
pub fn to_json(report: &FsckReport) -> Value {
    let s = &report.summary;
    json!({
        "path": report.path,
        "files": report.files.iter().map(file_json).collect::<Vec<_>>(),
        "summary": {
            "total_size": s.total_size,
            "total_dirs": s.total_dirs,
            "total_files": s.total_files,
            "total_blocks": s.total_blocks,
            "healthy_blocks": s.healthy_blocks,
            "under_replicated_blocks": s.under_replicated_blocks,
            "over_replicated_blocks": s.over_replicated_blocks,
            "mis_replicated_blocks": s.mis_replicated_blocks,
            "corrupt_blocks": s.corrupt_blocks,
            "missing_blocks": s.missing_blocks,
            "missing_size": s.missing_size,
            "missing_replicas": report.missing_replicas(),
            "live_replicas": s.live_replicas,
            "default_replication": s.default_replication,
            "datanodes": s.datanodes,
            "racks": s.racks,
            "open_files": s.open_files,
            "healthy": s.healthy,
            "started_ms": s.started_ms,
            "finished_ms": s.finished_ms,
        },
        "status": status_word(report),
    })
}

fn file_json(f: &FsckFile) -> Value {
    json!({
        "path": f.path,
        "length": f.length,
        "replication": f.replication,
        "under_construction": f.under_construction,
        "block_count": f.block_count,
        "blocks": f.blocks.iter().map(block_json).collect::<Vec<_>>(),
        "healthy": f.healthy,
    })
}

fn block_json(b: &FsckBlock) -> Value {
    let replicas: Vec<Value> = b
        .replicas
        .iter()
        .map(|r| {
            json!({
                "datanode": {
                    "datanode_uuid": r.uuid,
                    "transfer_addr": r.transfer_addr,
                    "host": r.host,
                    "rack": r.rack,
                },
                "state": r.state.as_str(),
            })
        })
        .collect();
    json!({
        "name": b.name(),
        "block": { "block_id": b.block_id, "generation_stamp": b.generation_stamp, "num_bytes": b.length },
        "expected_replicas": b.expected_replicas,
        "live_replicas": b.live_replicas,
        "corrupt_replicas": b.corrupt_replicas,
        "problems": b.problems.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "replicas": replicas,
        "racks": b.racks,
    })
}

/// `n (p %)` of `total`, one decimal.
fn with_pct(n: u64, total: u64) -> String {
    let p = if total == 0 { 0.0 } else { n as f64 * 100.0 / total as f64 };
    format!("{n} ({p:.1} %)")
}

/// The whole text report, ending with the verdict line.
pub fn to_text(report: &FsckReport, view: View, user: &str) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(out, "FSCK started by {user} for path {} at {}", report.path, time_seconds(s.started_ms));
    let _ = writeln!(out);
    for f in &report.files {
        let _ = writeln!(out, "{}", file_line(f));
        if view.blocks {
            for (i, b) in f.blocks.iter().enumerate() {
                let _ = writeln!(out, "{}", block_line(i, b, view));
            }
            let _ = writeln!(out);
        }
    }
    if !view.blocks && !report.files.is_empty() {
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "Status: {}", status_word(report));
    let row = |out: &mut String, key: &str, value: String| {
        let _ = writeln!(out, " {:<31}{value}", format!("{key}:"));
    };
    row(&mut out, "Total size", format!("{} B", s.total_size));
    row(&mut out, "Total dirs", s.total_dirs.to_string());
    let files = if s.open_files > 0 {
        format!("{} (Files currently being written: {})", s.total_files, s.open_files)
    } else {
        s.total_files.to_string()
    };
    row(&mut out, "Total files", files);
    let blocks = match s.total_size.checked_div(s.total_blocks) {
        Some(avg) => format!("{} (avg. block size {avg} B)", s.total_blocks),
        None => s.total_blocks.to_string(),
    };
    row(&mut out, "Total blocks (validated)", blocks);
    let minimal = s.total_blocks.saturating_sub(s.missing_blocks);
    row(&mut out, "Minimally replicated blocks", with_pct(minimal, s.total_blocks));
    row(&mut out, "Under-replicated blocks", with_pct(s.under_replicated_blocks, s.total_blocks));
    row(&mut out, "Over-replicated blocks", with_pct(s.over_replicated_blocks, s.total_blocks));
    row(&mut out, "Mis-replicated blocks", with_pct(s.mis_replicated_blocks, s.total_blocks));
    row(&mut out, "Corrupt blocks", s.corrupt_blocks.to_string());
    let missing_replicas = report.missing_replicas();
    row(&mut out, "Missing replicas", with_pct(missing_replicas, s.live_replicas + missing_replicas));
    row(&mut out, "Missing blocks", s.missing_blocks.to_string());
    row(&mut out, "Default replication factor", s.default_replication.to_string());
    let avg = if s.total_blocks == 0 { 0.0 } else { s.live_replicas as f64 / s.total_blocks as f64 };
    row(&mut out, "Average block replication", format!("{avg:.1}"));
    row(&mut out, "Number of data-nodes", s.datanodes.to_string());
    row(&mut out, "Number of racks", s.racks.to_string());
    if !report.is_healthy() {
        let corrupt_files = report.files.iter().filter(|f| f.blocks.iter().any(is_damaged)).count();
        let _ = writeln!(out, "  ********************************");
        let _ = writeln!(out, "  CORRUPT FILES:\t{corrupt_files}");
        let _ = writeln!(out, "  MISSING BLOCKS:\t{}", s.missing_blocks);
        let _ = writeln!(out, "  MISSING SIZE:\t\t{} B", s.missing_size);
        let _ = writeln!(out, "  CORRUPT BLOCKS:\t{}", s.corrupt_blocks);
        let _ = writeln!(out, "  ********************************");
    }
    let took = s.finished_ms.saturating_sub(s.started_ms).max(0);
    let _ = writeln!(out, "FSCK ended at {} in {took} milliseconds", time_seconds(s.finished_ms));
    let _ = writeln!(out);
    let _ = writeln!(out, "The filesystem under path '{}' is {}", report.path, status_word(report));
    out
}

fn is_damaged(b: &FsckBlock) -> bool {
    b.has(BlockProblem::Missing) || b.has(BlockProblem::Corrupt)
}

/// `PATH LEN bytes, replicated: replication=N, B block(s): OK` or the problems.
pub fn file_line(f: &FsckFile) -> String {
    let open = if f.under_construction { ", OPENFORWRITE" } else { "" };
    format!(
        "{} {} bytes, replicated: replication={}, {} block(s){open}: {}",
        f.path,
        f.length,
        f.replication,
        f.block_count,
        file_status(f)
    )
}

/// `OK`, or every problem of the file's blocks.
fn file_status(f: &FsckFile) -> String {
    let mut parts = Vec::new();
    let missing: Vec<&FsckBlock> = f.blocks.iter().filter(|b| b.has(BlockProblem::Missing)).collect();
    if !missing.is_empty() {
        let size: u64 = missing.iter().map(|b| b.length).sum();
        parts.push(format!("MISSING {} blocks of total size {size} B.", missing.len()));
    }
    for b in &f.blocks {
        if b.has(BlockProblem::Corrupt) {
            parts.push(format!("CORRUPT {}: {} corrupt replica(s).", b.name(), b.corrupt_replicas));
        }
        if b.has(BlockProblem::UnderReplicated) && !b.has(BlockProblem::Missing) {
            parts.push(format!(
                "Under replicated {}. Target Replicas is {} but found {} live replica(s).",
                b.name(),
                b.expected_replicas,
                b.live_replicas
            ));
        }
        if b.has(BlockProblem::MisReplicated) {
            parts.push(format!(
                "Replica placement policy is violated for {}. Block should be additionally replicated on 1 more rack(s).",
                b.name()
            ));
        }
    }
    if parts.is_empty() {
        if f.healthy || !f.blocks.iter().any(is_damaged) { "OK".to_string() } else { "CORRUPT".to_string() }
    } else {
        parts.join(" ")
    }
}

/// `0. blk_ID_GS len=L Live_repl=N [locations]`, or `... len=L MISSING!`.
pub fn block_line(i: usize, b: &FsckBlock, view: View) -> String {
    let mut line = format!("{i}. {} len={}", b.name(), b.length);
    if b.has(BlockProblem::Missing) {
        line.push_str(" MISSING!");
    } else {
        let _ = write!(line, " Live_repl={}", b.live_replicas);
    }
    if view.locations && !b.replicas.is_empty() {
        let locs: Vec<String> = b
            .replicas
            .iter()
            .map(|r| {
                let mut s = r.transfer_addr.clone();
                if view.racks {
                    let _ = write!(s, " {}", if r.rack.is_empty() { "/default-rack" } else { &r.rack });
                }
                if r.state != FsckReplicaState::Live {
                    let _ = write!(s, " ({})", r.state.as_str());
                }
                s
            })
            .collect();
        let _ = write!(line, " [{}]", locs.join(", "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use tusk_client::{FsckReplica, FsckSummary};

    fn replica(addr: &str, rack: &str, state: FsckReplicaState) -> FsckReplica {
        FsckReplica { uuid: format!("u-{addr}"), transfer_addr: addr.into(), host: "127.0.0.1".into(), rack: rack.into(), state }
    }

    fn block(id: u64, len: u64, live: u32, problems: Vec<BlockProblem>, replicas: Vec<FsckReplica>) -> FsckBlock {
        FsckBlock {
            block_id: id,
            generation_stamp: 1001,
            length: len,
            expected_replicas: 3,
            live_replicas: live,
            corrupt_replicas: replicas.iter().filter(|r| r.state == FsckReplicaState::Corrupt).count() as u32,
            problems,
            replicas,
            racks: 1,
        }
    }

    fn file(path: &str, blocks: Vec<FsckBlock>) -> FsckFile {
        let healthy = !blocks.iter().any(is_damaged);
        FsckFile {
            path: path.into(),
            length: blocks.iter().map(|b| b.length).sum(),
            replication: 3,
            under_construction: false,
            block_count: blocks.len() as u32,
            blocks,
            healthy,
        }
    }

    fn healthy_report() -> FsckReport {
        let reps = vec![
            replica("127.0.0.1:5001", "/rack1", FsckReplicaState::Live),
            replica("127.0.0.1:5002", "/rack2", FsckReplicaState::Live),
            replica("127.0.0.1:5003", "/rack2", FsckReplicaState::Live),
        ];
        FsckReport {
            path: "/data".into(),
            files: vec![file("/data/a", vec![block(1, 1000, 3, vec![], reps)])],
            summary: FsckSummary {
                total_size: 1000,
                total_dirs: 1,
                total_files: 1,
                total_blocks: 1,
                healthy_blocks: 1,
                live_replicas: 3,
                default_replication: 3,
                datanodes: 3,
                racks: 2,
                healthy: true,
                started_ms: 1_709_210_096_000,
                finished_ms: 1_709_210_096_004,
                ..Default::default()
            },
        }
    }

    fn corrupt_report() -> FsckReport {
        let under = block(2, 10, 1, vec![BlockProblem::UnderReplicated], vec![]);
        let gone = block(
            3,
            20,
            0,
            vec![BlockProblem::Missing, BlockProblem::Corrupt, BlockProblem::UnderReplicated],
            vec![replica("127.0.0.1:5001", "/rack1", FsckReplicaState::Corrupt)],
        );
        FsckReport {
            path: "/".into(),
            files: vec![file("/b", vec![under]), file("/c", vec![gone])],
            summary: FsckSummary {
                total_size: 30,
                total_dirs: 2,
                total_files: 2,
                total_blocks: 2,
                under_replicated_blocks: 2,
                corrupt_blocks: 1,
                missing_blocks: 1,
                missing_size: 20,
                live_replicas: 1,
                default_replication: 3,
                datanodes: 3,
                racks: 1,
                open_files: 1,
                healthy: false,
                ..Default::default()
            },
        }
    }

    fn lines(s: &str) -> Vec<&str> {
        s.lines().collect()
    }

    #[test]
    fn a_healthy_tree_lists_files_blocks_and_totals() {
        let view = View { blocks: true, locations: true, racks: false };
        let text = to_text(&healthy_report(), view, "alice");
        let l = lines(&text);
        assert_eq!(l[0], "FSCK started by alice for path /data at 2024-02-29 12:34:56");
        assert!(l.contains(&"/data/a 1000 bytes, replicated: replication=3, 1 block(s): OK"), "{text}");
        assert!(
            l.contains(&"0. blk_1_1001 len=1000 Live_repl=3 [127.0.0.1:5001, 127.0.0.1:5002, 127.0.0.1:5003]"),
            "{text}"
        );
        for want in [
            "Status: HEALTHY",
            " Total size:                    1000 B",
            " Total dirs:                    1",
            " Total files:                   1",
            " Total blocks (validated):      1 (avg. block size 1000 B)",
            " Minimally replicated blocks:   1 (100.0 %)",
            " Under-replicated blocks:       0 (0.0 %)",
            " Over-replicated blocks:        0 (0.0 %)",
            " Mis-replicated blocks:         0 (0.0 %)",
            " Corrupt blocks:                0",
            " Missing replicas:              0 (0.0 %)",
            " Missing blocks:                0",
            " Default replication factor:    3",
            " Average block replication:     3.0",
            " Number of data-nodes:          3",
            " Number of racks:               2",
            "FSCK ended at 2024-02-29 12:34:56 in 4 milliseconds",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("CORRUPT"), "{text}");
        assert_eq!(l.last(), Some(&"The filesystem under path '/data' is HEALTHY"));
    }

    #[test]
    fn racks_and_replica_states_show_in_locations() {
        let view = View { blocks: true, locations: true, racks: true };
        let r = healthy_report();
        assert_eq!(
            block_line(0, &r.files[0].blocks[0], view),
            "0. blk_1_1001 len=1000 Live_repl=3 [127.0.0.1:5001 /rack1, 127.0.0.1:5002 /rack2, 127.0.0.1:5003 /rack2]"
        );
        let c = corrupt_report();
        assert_eq!(block_line(0, &c.files[1].blocks[0], view), "0. blk_3_1001 len=20 MISSING! [127.0.0.1:5001 /rack1 (CORRUPT)]");
        let no_locations = View { blocks: true, ..Default::default() };
        assert_eq!(block_line(4, &c.files[0].blocks[0], no_locations), "4. blk_2_1001 len=10 Live_repl=1");
    }

    #[test]
    fn problems_are_named_per_file_and_the_tree_is_corrupt() {
        let text = to_text(&corrupt_report(), View::default(), "bob");
        let l = lines(&text);
        assert!(
            l.contains(&"/b 10 bytes, replicated: replication=3, 1 block(s): Under replicated blk_2_1001. Target Replicas is 3 but found 1 live replica(s)."),
            "{text}"
        );
        assert!(
            l.contains(&"/c 20 bytes, replicated: replication=3, 1 block(s): MISSING 1 blocks of total size 20 B. CORRUPT blk_3_1001: 1 corrupt replica(s)."),
            "{text}"
        );
        for want in [
            "Status: CORRUPT",
            " Total files:                   2 (Files currently being written: 1)",
            " Minimally replicated blocks:   1 (50.0 %)",
            " Under-replicated blocks:       2 (100.0 %)",
            " Corrupt blocks:                1",
            " Missing replicas:              5 (83.3 %)",
            " Missing blocks:                1",
            " Average block replication:     0.5",
            "  CORRUPT FILES:\t1",
            "  MISSING SIZE:\t\t20 B",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{text}");
        }
        assert_eq!(l.last(), Some(&"The filesystem under path '/' is CORRUPT"));
    }

    #[test]
    fn open_files_are_marked() {
        let mut f = healthy_report().files.remove(0);
        f.under_construction = true;
        assert_eq!(file_line(&f), "/data/a 1000 bytes, replicated: replication=3, 1 block(s), OPENFORWRITE: OK");
    }

    #[test]
    fn json_has_files_summary_and_status() {
        let v = to_json(&corrupt_report());
        assert_eq!(v["status"], "CORRUPT");
        assert_eq!(v["path"], "/");
        assert_eq!(v["files"][1]["path"], "/c");
        let b = &v["files"][1]["blocks"][0];
        assert_eq!(b["problems"][0], "MISSING");
        assert_eq!(b["block"]["block_id"], 3);
        assert_eq!(b["block"]["generation_stamp"], 1001);
        assert_eq!(b["name"], "blk_3_1001");
        assert_eq!(b["live_replicas"], 0);
        assert_eq!(b["replicas"][0]["state"], "CORRUPT");
        assert_eq!(b["replicas"][0]["datanode"]["transfer_addr"], "127.0.0.1:5001");
        assert_eq!(b["replicas"][0]["datanode"]["rack"], "/rack1");
        assert_eq!(v["summary"]["mis_replicated_blocks"], 0);
        assert_eq!(v["summary"]["missing_blocks"], 1);
        assert_eq!(v["summary"]["missing_replicas"], 5);
        assert_eq!(to_json(&healthy_report())["status"], "HEALTHY");
    }

    #[test]
    fn flags_imply_what_they_need() {
        let a = FsckArgs {
            path: "/".into(),
            files: false,
            blocks: false,
            locations: false,
            racks: true,
            openforwrite: true,
            json: false,
        };
        let o = a.options();
        assert!(o.list_files && o.list_blocks && o.list_locations && o.include_open_files);
        let v = a.view();
        assert!(v.blocks && v.locations && v.racks);
        let a = FsckArgs { racks: false, openforwrite: false, ..a };
        assert_eq!(a.options(), FsckOptions::default());
    }
}
