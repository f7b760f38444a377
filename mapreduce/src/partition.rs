//! Which reduce task gets a key: [`PartitionFn`], built from the job's
//! [`Partitioner`] by [`partitioner`].

use crate::error::{Result, TaskError};
use crate::spec::Partitioner;

/// Maps a key to a reduce partition in `0..reduces`. Called for every map
/// output record, so implementations do no allocation.
pub trait PartitionFn: Send + Sync {
    fn partition(&self, key: &[u8]) -> u32;
}

/// The partition function of `p` for `reduces` reducers. With fewer than
/// two reducers every key goes to partition 0. A total order partitioner
/// whose split points are not `reduces - 1` sorted hex strings is refused.
pub fn partitioner(p: &Partitioner, reduces: u32) -> Result<Box<dyn PartitionFn>> {
    match p {
        Partitioner::Hash if reduces <= 1 => Ok(Box::new(Single)),
        Partitioner::Hash => Ok(Box::new(HashPartition { reduces })),
        Partitioner::TotalOrder { split_points } => {
            let points = decode_split_points(split_points, reduces)?;
            Ok(Box::new(TotalOrderPartition { points }))
        }
    }
}

/// Decodes and checks total order split points: `reduces - 1` of them
/// (none when `reduces` ≤ 1), each valid hex, in non-decreasing order.
pub(crate) fn decode_split_points(split_points: &[String], reduces: u32) -> Result<Vec<Vec<u8>>> {
    let want = reduces.saturating_sub(1) as usize;
    if split_points.len() != want {
        return Err(TaskError::Invalid(format!(
            "total order partitioner: {} split points given for {reduces} reducers (need {want})",
            split_points.len()
        )));
    }
    let points = split_points
        .iter()
        .enumerate()
        .map(|(i, s)| {
            hex_decode(s).map_err(|e| TaskError::Invalid(format!("total order partitioner: split point {i}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(i) = points.windows(2).position(|w| w[0] > w[1]) {
        return Err(TaskError::Invalid(format!(
            "total order partitioner: split points are not sorted: {} (point {i}) > {} (point {})",
            split_points[i],
            split_points[i + 1],
            i + 1
        )));
    }
    Ok(points)
}

/// Everything to partition 0 (one reducer).
struct Single;

impl PartitionFn for Single {
    fn partition(&self, _key: &[u8]) -> u32 {
        0
    }
}

/// CRC32C of the key modulo the number of reducers.
struct HashPartition {
    reduces: u32,
}

impl PartitionFn for HashPartition {
    fn partition(&self, key: &[u8]) -> u32 {
        crc32c::crc32c(key) % self.reduces
    }
}

/// Reducer i gets keys in `[points[i-1], points[i])` (byte order): the
/// partition is the number of split points ≤ the key, as Hadoop's
/// TotalOrderPartitioner's binary search gives.
struct TotalOrderPartition {
    points: Vec<Vec<u8>>,
}

impl PartitionFn for TotalOrderPartition {
    fn partition(&self, key: &[u8]) -> u32 {
        // At most 100000 reducers (JobSpec::validate), so this fits.
        self.points.partition_point(|p| p.as_slice() <= key) as u32
    }
}

/// Lowercase hex of `bytes` (how total order split points are written).
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Bytes of a hex string (either case); the error says what is wrong.
pub fn hex_decode(s: &str) -> std::result::Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("'{s}' is not hex: odd number of digits"));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("'{s}' is not hex: bad digit '{}'", c as char)),
    };
    s.as_bytes().chunks(2).map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(points: &[&[u8]]) -> Box<dyn PartitionFn> {
        let sp = points.iter().map(|p| hex_encode(p)).collect();
        partitioner(&Partitioner::TotalOrder { split_points: sp }, points.len() as u32 + 1).unwrap()
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_decode(&hex_encode(&all)).unwrap(), all);
        assert_eq!(hex_encode(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(hex_decode("ABcd").unwrap(), vec![0xab, 0xcd]);
        assert_eq!(hex_decode("").unwrap(), Vec::<u8>::new());
        assert!(hex_decode("abc").unwrap_err().contains("odd"));
        assert!(hex_decode("zz").unwrap_err().contains("'z'"));
    }

    #[test]
    fn hash_partitions_are_crc32c_modulo_reduces() {
        let p = partitioner(&Partitioner::Hash, 7).unwrap();
        let mut seen = [0u32; 7];
        for i in 0..10_000u32 {
            let key = format!("key{i}");
            let got = p.partition(key.as_bytes());
            assert_eq!(got, crc32c::crc32c(key.as_bytes()) % 7);
            seen[got as usize] += 1;
        }
        // Every reducer gets a fair share (about 1428 each).
        assert!(seen.iter().all(|n| *n > 1200 && *n < 1700), "{seen:?}");
    }

    #[test]
    fn one_or_no_reducer_takes_everything() {
        for r in [0, 1] {
            let p = partitioner(&Partitioner::Hash, r).unwrap();
            assert_eq!(p.partition(b"anything"), 0);
            let t = partitioner(&Partitioner::TotalOrder { split_points: vec![] }, r).unwrap();
            assert_eq!(t.partition(b"\xff\xff"), 0);
        }
    }

    #[test]
    fn total_order_ranges_include_their_lower_split_point() {
        let p = total(&[b"b", b"d", b"d", b"f"]);
        let cases: &[(&[u8], u32)] = &[
            (b"", 0),
            (b"a", 0),
            (b"azzz", 0),
            (b"b", 1),
            (b"b\0", 1),
            (b"c", 1),
            (b"d", 3),
            (b"e", 3),
            (b"f", 4),
            (b"\xff", 4),
        ];
        for (key, want) in cases {
            assert_eq!(p.partition(key), *want, "key {key:?}");
        }
    }

    #[test]
    fn total_order_keeps_sorted_keys_in_non_decreasing_partitions() {
        let points: Vec<Vec<u8>> = (1..10u8).map(|i| vec![i * 25]).collect();
        let refs: Vec<&[u8]> = points.iter().map(Vec::as_slice).collect();
        let p = total(&refs);
        let mut last = 0;
        for k in 0..=255u8 {
            let got = p.partition(&[k, 1]);
            assert!(got >= last && got < 10, "key {k}: {got} after {last}");
            last = got;
        }
        assert_eq!(last, 9);
    }

    #[test]
    fn bad_split_points_are_refused_with_the_reason() {
        let tp = |sp: &[&str], r| partitioner(&Partitioner::TotalOrder { split_points: sp.iter().map(|s| s.to_string()).collect() }, r);
        let e = tp(&["aa"], 3).err().unwrap().to_string();
        assert!(e.contains("1 split points given for 3 reducers (need 2)"), "{e}");
        let e = tp(&["bb", "aa"], 3).err().unwrap().to_string();
        assert!(e.contains("not sorted") && e.contains("bb"), "{e}");
        let e = tp(&["aa", "xyz1"], 3).err().unwrap().to_string();
        assert!(e.contains("split point 1") && e.contains("xyz1"), "{e}");
        assert!(tp(&["aa", "aa"], 3).is_ok());
    }
}
