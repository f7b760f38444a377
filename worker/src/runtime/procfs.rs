//! What the worker reads from `/proc`: the members of a process group and
//! their resident memory, and the machine's memory.

use std::path::Path;

/// A live process of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub pid: i32,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// The fields of `/proc/<pid>/stat` the worker needs.
struct Stat {
    state: char,
    pgrp: i32,
    rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid pgrp ... rss ...`;
/// comm may hold spaces and parentheses, so fields are counted after the
/// last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // fields[0] is field 3 of proc(5) (state); rss is field 24.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        rss_pages: fields.get(21)?.parse().ok()?,
    })
}

/// Bytes per page, for RSS in pages.
fn page_size() -> u64 {
    use nix::unistd::{SysconfVar, sysconf};
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 4096,
    })
}

fn field_kb(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_ascii_whitespace().next()?.parse().ok()
}

/// Live (not zombie) members of process group `pgid`, with their RSS.
pub(crate) fn group_members(pgid: i32) -> Vec<Member> {
    members_in(Path::new("/proc"), pgid, page_size())
}

fn members_in(proc_dir: &Path, pgid: i32, page: u64) -> Vec<Member> {
    let Ok(entries) = std::fs::read_dir(proc_dir) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        // A process may vanish between the listing and the read.
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if let Some(stat) = parse_stat(&text)
            && stat.pgrp == pgid
            && stat.state != 'Z'
            && stat.state != 'X'
        {
            out.push(Member { pid, rss_bytes: stat.rss_pages.saturating_mul(page) });
        }
    }
    out
}

/// Resident memory of every live member of process group `pgid`, in bytes.
pub(crate) fn group_rss(pgid: i32) -> u64 {
    group_members(pgid).iter().map(|m| m.rss_bytes).sum()
}

/// Physical memory of the machine (`MemTotal`), if readable.
pub(crate) fn physical_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    Some(field_kb(&text, "MemTotal:")? * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (evil ) 1 2 (x) S 17 4242 4242 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 3 0 555 123456789 2500 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.pgrp, 4242);
        assert_eq!(s.rss_pages, 2500);
        assert!(parse_stat("12 (x) R").is_none());
    }

    #[test]
    fn members_of_a_fake_proc_tree() {
        let dir = tempfile::tempdir().unwrap();
        let stat = |pid: i32, state: char, pgrp: i32, rss: u64| {
            let d = dir.path().join(pid.to_string());
            std::fs::create_dir(&d).unwrap();
            let text = format!("{pid} (sh) {state} 1 {pgrp} {pgrp} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 1000 {rss} 0 0");
            std::fs::write(d.join("stat"), text).unwrap();
        };
        stat(10, 'S', 10, 100);
        stat(11, 'R', 10, 50);
        stat(12, 'Z', 10, 0);
        stat(13, 'S', 99, 1000);
        std::fs::create_dir(dir.path().join("self")).unwrap();
        let mut m = members_in(dir.path(), 10, 4096);
        m.sort_by_key(|m| m.pid);
        assert_eq!(m, vec![Member { pid: 10, rss_bytes: 409_600 }, Member { pid: 11, rss_bytes: 204_800 }]);
    }

    #[test]
    fn own_group_and_machine_are_measured() {
        let pgid = nix::unistd::getpgrp().as_raw();
        let me = std::process::id() as i32;
        let members = group_members(pgid);
        let own = members.iter().find(|m| m.pid == me).expect("this process is in its own group");
        assert!(own.rss_bytes > 1 << 20, "{own:?}");
        assert!(physical_memory_bytes().unwrap() > 64 << 20);
        assert!([4096, 16384, 65536].contains(&page_size()));
    }
}
