//! How file statuses are shown: `ls` lines, WebHDFS-shaped JSON, sizes,
//! permissions and times.

use serde_json::{Value, json};
use tusk_client::FileStatus;
use tusk_common::mode::mode_string;

/// Sizes the way `hdfs dfs -ls -h` prints them: `0`, `1023`, `1.5 K`, `128 M`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let num = if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") };
    format!("{num} {}", UNITS[unit])
}

/// `yyyy-mm-dd hh:mm` (UTC) of a time in milliseconds since the epoch.
pub fn time_minutes(ms: i64) -> String {
    let (y, mo, d, h, mi, _) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}")
}

/// `yyyy-mm-dd hh:mm:ss` (UTC), as `hdfs dfs -stat %y` prints.
pub fn time_seconds(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// Calendar date and time (UTC) of epoch milliseconds.
fn civil(ms: i64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    // Days to civil date (proleptic Gregorian), after H. Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, sod / 3600, (sod / 60) % 60, sod % 60)
}

/// One `ls` line.
pub fn ls_line(st: &FileStatus, widths: &LsWidths) -> String {
    let repl = if st.is_dir { "-".to_string() } else { st.replication.to_string() };
    format!(
        "{} {:>rw$} {:<ow$} {:<gw$} {:>sw$} {} {}",
        mode_string(st.is_dir, st.permission),
        repl,
        st.owner,
        st.group,
        human_size(st.length),
        time_minutes(st.modification_time_ms),
        st.path,
        rw = widths.replication,
        ow = widths.owner,
        gw = widths.group,
        sw = widths.size,
    )
}

/// Column widths so that a listing lines up.
#[derive(Default)]
pub struct LsWidths {
    replication: usize,
    owner: usize,
    group: usize,
    size: usize,
}

impl LsWidths {
    pub fn of(entries: &[FileStatus]) -> LsWidths {
        let mut w = LsWidths { replication: 3, owner: 1, group: 1, size: 5 };
        for e in entries {
            w.replication = w.replication.max(e.replication.to_string().len());
            w.owner = w.owner.max(e.owner.len());
            w.group = w.group.max(e.group.len());
            w.size = w.size.max(human_size(e.length).len());
        }
        w
    }
}

/// A WebHDFS `FileStatus` object; `path_suffix` is the name relative to
/// the listed directory ("" for `stat`).
pub fn webhdfs_status(st: &FileStatus, path_suffix: &str) -> Value {
    json!({
        "pathSuffix": path_suffix,
        "type": if st.is_dir { "DIRECTORY" } else { "FILE" },
        "length": st.length,
        "replication": if st.is_dir { 0 } else { st.replication },
        "blockSize": if st.is_dir { 0 } else { st.block_size },
        "owner": st.owner,
        "group": st.group,
        "permission": format!("{:o}", st.permission),
        "modificationTime": st.modification_time_ms,
        "accessTime": st.access_time_ms,
        "childrenNum": st.children_count,
    })
}

/// Expands an `hdfs dfs -stat` format string.
pub fn stat_format(fmt: &str, st: &FileStatus) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push_str(&st.length.to_string()),
            Some('F') => out.push_str(if st.is_dir { "directory" } else { "regular file" }),
            Some('g') => out.push_str(&st.group),
            Some('u') => out.push_str(&st.owner),
            Some('n') => out.push_str(&st.name),
            Some('o') => out.push_str(&st.block_size.to_string()),
            Some('r') => out.push_str(&st.replication.to_string()),
            Some('y') => out.push_str(&time_seconds(st.modification_time_ms)),
            Some('Y') => out.push_str(&st.modification_time_ms.to_string()),
            Some('x') => out.push_str(&time_seconds(st.access_time_ms)),
            Some('X') => out.push_str(&st.access_time_ms.to_string()),
            Some('a') => out.push_str(&format!("{:o}", st.permission)),
            Some('A') => out.push_str(&mode_string(st.is_dir, st.permission)[1..]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(0), "0");
        assert_eq!(human_size(1023), "1023");
        assert_eq!(human_size(1536), "1.5 K");
        assert_eq!(human_size(128 << 20), "128 M");
    }

    #[test]
    fn epoch_times_render_in_utc() {
        assert_eq!(time_seconds(0), "1970-01-01 00:00:00");
        // 2024-02-29 12:34:56 UTC
        assert_eq!(time_seconds(1_709_210_096_000), "2024-02-29 12:34:56");
        assert_eq!(time_minutes(1_709_210_096_000), "2024-02-29 12:34");
    }
}
