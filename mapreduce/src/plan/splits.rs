//! The pure part of split planning: cutting one file, whose length and
//! block locations are known, into splits; and cutting generated rows.

use std::collections::BTreeMap;
use tusk_client::BlockLocation;

use super::{MAX_SPLIT_SIZE_KEY, MIN_SPLIT_SIZE_KEY};
use crate::error::{Result, TaskError};
use crate::spec::Split;

/// The last split of a file may be this much bigger than the split size
/// rather than leaving a tiny split behind (Hadoop's SPLIT_SLOP = 1.1),
/// as a ratio of integers.
const SPLIT_SLOP: (u128, u128) = (11, 10);

/// Split size bounds from the job configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitSizes {
    /// `mapreduce.input.fileinputformat.split.minsize`, default 1.
    pub min: u64,
    /// `mapreduce.input.fileinputformat.split.maxsize`, default unlimited.
    pub max: u64,
}

impl Default for SplitSizes {
    fn default() -> Self {
        SplitSizes { min: 1, max: u64::MAX }
    }
}

impl SplitSizes {
    /// Reads both keys (bytes, or sizes such as `64MiB`); a bad value is an
    /// error naming the key.
    pub fn from_conf(conf: &BTreeMap<String, String>) -> Result<SplitSizes> {
        let get = |key: &str, default: u64| -> Result<u64> {
            let Some(v) = conf.get(key) else { return Ok(default) };
            let v = v.trim();
            v.parse::<u64>()
                .or_else(|_| tusk_common::size::parse_size(v))
                .map_err(|_| TaskError::Invalid(format!("{key}={v}: not a size in bytes")))
        };
        Ok(SplitSizes { min: get(MIN_SPLIT_SIZE_KEY, 1)?.max(1), max: get(MAX_SPLIT_SIZE_KEY, u64::MAX)?.max(1) })
    }

    /// Hadoop's `computeSplitSize`: `max(min, min(max, block_size))`.
    pub fn split_size(&self, block_size: u64) -> u64 {
        self.min.max(self.max.min(block_size)).max(1)
    }
}

/// The splits of file `path` (`length` > 0 bytes, blocks of `block_size`,
/// block locations `blocks`): consecutive ranges of the split size, the
/// last up to 1.1 times as big; one split for the whole file when not
/// `splitable`. Each split carries the hosts and racks of the block holding
/// its first byte.
pub(crate) fn file_splits(
    path: &str,
    length: u64,
    block_size: u64,
    blocks: &[BlockLocation],
    sizes: SplitSizes,
    splitable: bool,
) -> Vec<Split> {
    let mut sorted: Vec<&BlockLocation> = blocks.iter().collect();
    sorted.sort_by_key(|b| b.offset);
    let make = |start: u64, len: u64| {
        let (hosts, racks) = match block_at(&sorted, start) {
            Some(b) => (b.hosts.clone(), b.racks.clone()),
            None => (Vec::new(), Vec::new()),
        };
        Split::File { path: path.to_string(), start, length: len, file_length: length, hosts, racks }
    };
    if length == 0 {
        return Vec::new();
    }
    if !splitable {
        return vec![make(0, length)];
    }
    // A file with an unknown block size is cut as if it were one block.
    let split_size = sizes.split_size(if block_size == 0 { length } else { block_size });
    let mut out = Vec::new();
    let mut remaining = length;
    while u128::from(remaining) * SPLIT_SLOP.1 > u128::from(split_size) * SPLIT_SLOP.0 {
        out.push(make(length - remaining, split_size));
        remaining -= split_size;
    }
    if remaining > 0 {
        out.push(make(length - remaining, remaining));
    }
    out
}

/// The block holding file offset `pos` (blocks sorted by offset); the last
/// block starting at or before `pos` when none covers it exactly (a block
/// still being written may be longer than reported).
fn block_at<'a>(blocks: &[&'a BlockLocation], pos: u64) -> Option<&'a BlockLocation> {
    let i = blocks.partition_point(|b| b.offset <= pos);
    i.checked_sub(1).map(|i| blocks[i])
}

/// `maps` splits over rows `0..rows`, sizes differing by at most one row
/// (the first `rows % maps` get the extra row); never more splits than
/// rows, and one empty split when there are no rows.
pub(crate) fn range_splits(rows: u64, maps: u32) -> Vec<Split> {
    let n = u64::from(maps.max(1)).min(rows.max(1));
    let (each, extra) = (rows / n, rows % n);
    let mut first_row = 0;
    (0..n)
        .map(|i| {
            let rows = each + u64::from(i < extra);
            let s = Split::Range { first_row, rows };
            first_row += rows;
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn blocks(length: u64, block_size: u64) -> Vec<BlockLocation> {
        (0..length.div_ceil(block_size))
            .map(|i| BlockLocation {
                offset: i * block_size,
                length: block_size.min(length - i * block_size),
                hosts: vec![format!("dn{i}:1"), format!("dn{}:1", i + 1)],
                racks: vec![format!("/r{}", i % 2)],
            })
            .collect()
    }

    /// (start, length, first host) of each split.
    fn cut(length: u64, block_size: u64, sizes: SplitSizes) -> Vec<(u64, u64, String)> {
        file_splits("/f", length, block_size, &blocks(length, block_size), sizes, true)
            .into_iter()
            .map(|s| match s {
                Split::File { path, start, length: len, file_length, hosts, .. } => {
                    assert_eq!((path.as_str(), file_length), ("/f", length));
                    (start, len, hosts.first().cloned().unwrap_or_default())
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn covers_exactly(splits: &[(u64, u64, String)], length: u64) {
        let mut pos = 0;
        for (start, len, _) in splits {
            assert_eq!(*start, pos, "{splits:?}");
            assert!(*len > 0);
            pos += len;
        }
        assert_eq!(pos, length);
    }

    #[test]
    fn one_split_per_block_with_that_blocks_hosts() {
        let got = cut(3 * 128 * MB, 128 * MB, SplitSizes::default());
        let want: Vec<(u64, u64, String)> =
            (0..3).map(|i| (i * 128 * MB, 128 * MB, format!("dn{i}:1"))).collect();
        assert_eq!(got, want);
        let s = &file_splits("/f", 300, 128, &blocks(300, 128), SplitSizes::default(), true)[1];
        let Split::File { hosts, racks, .. } = s else { panic!() };
        assert_eq!((hosts.clone(), racks.clone()), (vec!["dn1:1".to_string(), "dn2:1".to_string()], vec!["/r1".to_string()]));
    }

    #[test]
    fn the_last_split_absorbs_up_to_ten_percent() {
        // 2 blocks + 10%: the tail joins the second split.
        let got = cut(2 * 100 + 10, 100, SplitSizes::default());
        assert_eq!(got, vec![(0, 100, "dn0:1".into()), (100, 110, "dn1:1".into())]);
        // 2 blocks + 11%: its own split, on the third block's hosts.
        let got = cut(2 * 100 + 11, 100, SplitSizes::default());
        assert_eq!(got, vec![(0, 100, "dn0:1".into()), (100, 100, "dn1:1".into()), (200, 11, "dn2:1".into())]);
        // A file of 1.1 blocks is one split.
        assert_eq!(cut(110, 100, SplitSizes::default()), vec![(0, 110, "dn0:1".into())]);
    }

    #[test]
    fn min_and_max_sizes_bound_the_split_size() {
        let s = |min, max| SplitSizes { min, max };
        assert_eq!(s(1, u64::MAX).split_size(128), 128);
        assert_eq!(s(1, 50).split_size(128), 50);
        assert_eq!(s(200, 50).split_size(128), 200);
        assert_eq!(s(300, u64::MAX).split_size(128), 300);
        // Max below the block size: several splits per block, hosts of the block each starts in.
        let got = cut(256, 128, s(1, 64));
        assert_eq!(got.iter().map(|g| (g.0, g.2.as_str())).collect::<Vec<_>>(), vec![(0, "dn0:1"), (64, "dn0:1"), (128, "dn1:1"), (192, "dn1:1")]);
        // Min above the block size: splits spanning blocks.
        let got = cut(930, 100, s(300, u64::MAX));
        assert_eq!(got.iter().map(|g| (g.0, g.1, g.2.as_str())).collect::<Vec<_>>(), vec![(0, 300, "dn0:1"), (300, 300, "dn3:1"), (600, 330, "dn6:1")]);
        assert_eq!(cut(1000, 100, s(300, u64::MAX)).len(), 4);
    }

    #[test]
    fn splits_tile_every_file_whatever_the_sizes() {
        for length in [1u64, 2, 99, 100, 101, 109, 110, 111, 999, 1000, 1001, 4096, 10_007] {
            for block in [1u64, 7, 100, 128, 4096, 1 << 30] {
                for (min, max) in [(1, u64::MAX), (1, 33), (250, u64::MAX), (64, 64)] {
                    let got = cut(length, block, SplitSizes { min, max });
                    covers_exactly(&got, length);
                    let size = SplitSizes { min, max }.split_size(block);
                    for (i, (_, len, _)) in got.iter().enumerate() {
                        if i + 1 < got.len() {
                            assert_eq!(*len, size);
                        } else {
                            assert!(*len * 10 <= size * 11, "last split {len} of size {size}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn unsplitable_and_empty_files() {
        let all = file_splits("/f", 1000, 100, &blocks(1000, 100), SplitSizes::default(), false);
        assert_eq!(all.len(), 1);
        let Split::File { start, length, hosts, .. } = &all[0] else { panic!() };
        assert_eq!((*start, *length, hosts[0].as_str()), (0, 1000, "dn0:1"));
        assert!(file_splits("/f", 0, 100, &[], SplitSizes::default(), true).is_empty());
        // No location known (nothing reported yet): a split without hosts.
        let s = file_splits("/f", 10, 100, &[], SplitSizes::default(), true);
        assert!(matches!(&s[..], [Split::File { hosts, .. }] if hosts.is_empty()));
        // Unknown block size: the whole file is one block.
        assert_eq!(file_splits("/f", 500, 0, &[], SplitSizes::default(), true).len(), 1);
    }

    #[test]
    fn sizes_come_from_the_conf() {
        let mut conf = BTreeMap::new();
        assert_eq!(SplitSizes::from_conf(&conf).unwrap(), SplitSizes::default());
        conf.insert(MIN_SPLIT_SIZE_KEY.to_string(), "1024".to_string());
        conf.insert(MAX_SPLIT_SIZE_KEY.to_string(), "64MiB".to_string());
        assert_eq!(SplitSizes::from_conf(&conf).unwrap(), SplitSizes { min: 1024, max: 64 * MB });
        conf.insert(MAX_SPLIT_SIZE_KEY.to_string(), "0".to_string());
        assert_eq!(SplitSizes::from_conf(&conf).unwrap().max, 1);
        conf.insert(MAX_SPLIT_SIZE_KEY.to_string(), "-5".to_string());
        let e = SplitSizes::from_conf(&conf).unwrap_err().to_string();
        assert!(e.contains(MAX_SPLIT_SIZE_KEY) && e.contains("-5"), "{e}");
    }

    #[test]
    fn ranges_split_rows_evenly() {
        let rows = |s: Vec<Split>| {
            s.into_iter()
                .map(|s| match s {
                    Split::Range { first_row, rows } => (first_row, rows),
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(range_splits(10, 3)), vec![(0, 4), (4, 3), (7, 3)]);
        assert_eq!(rows(range_splits(9, 3)), vec![(0, 3), (3, 3), (6, 3)]);
        assert_eq!(rows(range_splits(2, 5)), vec![(0, 1), (1, 1)]);
        assert_eq!(rows(range_splits(0, 4)), vec![(0, 0)]);
        for (r, m) in [(1_000_003u64, 7u32), (5, 5), (1, 1), (100, 1)] {
            let got = rows(range_splits(r, m));
            assert_eq!(got.iter().map(|g| g.1).sum::<u64>(), r);
            assert!(got.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
        }
    }
}
