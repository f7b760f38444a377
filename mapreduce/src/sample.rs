//! Sampling the input for a total-order partitioner (Hadoop TeraSort's
//! sampler): read up to [`SAMPLE_SIZE`] keys from up to
//! [`MAX_SAMPLED_SPLITS`] evenly spaced splits, sort them, and take
//! `reduces - 1` evenly spaced keys as split points, so each reducer gets
//! about the same share of the keys and the reducers' outputs, concatenated
//! in order, are globally sorted.

use crate::api::Reporter;
use crate::error::{Result, TaskError};
use crate::spec::{InputFormat, JobSpec, Split};
use tusk_client::Client;

/// Keys read in total.
pub const SAMPLE_SIZE: usize = 100_000;
/// Splits read from.
pub const MAX_SAMPLED_SPLITS: usize = 10;

/// `reduces - 1` sorted split points for `spec`'s input (empty when
/// `reduces <= 1`). Keys are the records' keys as the input format reads
/// them. Must run on a multi-threaded Tokio runtime (the readers block on
/// it from blocking threads).
pub async fn split_points(client: &Client, spec: &JobSpec, reduces: u32) -> Result<Vec<Vec<u8>>> {
    if reduces <= 1 {
        return Ok(Vec::new());
    }
    let splits = crate::plan::plan_splits(client, spec).await?;
    let chosen = evenly_spaced(&splits, MAX_SAMPLED_SPLITS);
    let mut keys = Vec::new();
    if !chosen.is_empty() {
        let per_split = SAMPLE_SIZE / chosen.len();
        let rt = tokio::runtime::Handle::current();
        let mut readers = Vec::with_capacity(chosen.len());
        for split in chosen {
            let (client, rt, format) = (client.clone(), rt.clone(), spec.input_format.clone());
            readers.push(tokio::task::spawn_blocking(move || read_keys(client, rt, &split, &format, per_split)));
        }
        for reader in readers {
            let sampled = reader
                .await
                .map_err(|e| TaskError::io("sampling the input", std::io::Error::other(e.to_string())))??;
            keys.extend(sampled);
        }
    }
    keys.sort_unstable();
    Ok(pick_split_points(&keys, reduces))
}

/// Up to `max` splits, evenly spaced over `splits` (Hadoop: every
/// `len / max`-th split from the first).
fn evenly_spaced(splits: &[Split], max: usize) -> Vec<Split> {
    let samples = splits.len().min(max);
    if samples == 0 {
        return Vec::new();
    }
    let step = splits.len() / samples;
    (0..samples).filter_map(|i| splits.get(i * step).cloned()).collect()
}

/// The keys of the first `limit` records of `split`.
fn read_keys(
    client: Client,
    rt: tokio::runtime::Handle,
    split: &Split,
    format: &InputFormat,
    limit: usize,
) -> Result<Vec<Vec<u8>>> {
    let mut reader = crate::input::open(client, rt, split, format, Reporter::default())?;
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut keys = Vec::with_capacity(limit.min(1 << 16));
    while keys.len() < limit && reader.next(&mut key, &mut value)? {
        keys.push(key.clone());
    }
    Ok(keys)
}

/// `reduces - 1` keys of the sorted sample at evenly spaced ranks (Hadoop:
/// `sample[round(i * n / reduces)]`); with no sample at all every split
/// point is the empty key (all records go to the last reducer).
fn pick_split_points(sorted: &[Vec<u8>], reduces: u32) -> Vec<Vec<u8>> {
    let parts = u64::from(reduces);
    let n = sorted.len() as u64;
    (1..parts)
        .map(|i| {
            if n == 0 {
                return Vec::new();
            }
            let rank = ((i * n + parts / 2) / parts).min(n - 1);
            sorted.get(rank as usize).cloned().unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_split(i: u64) -> Split {
        Split::File { path: format!("/in/f{i}"), start: 0, length: 10, file_length: 10, hosts: vec![], racks: vec![] }
    }

    #[test]
    fn picks_evenly_spaced_splits() {
        let splits: Vec<Split> = (0..25).map(file_split).collect();
        let chosen = evenly_spaced(&splits, 10);
        let expected: Vec<Split> = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18].into_iter().map(file_split).collect();
        assert_eq!(chosen, expected);
        assert_eq!(evenly_spaced(&splits[..3], 10), splits[..3].to_vec());
        assert!(evenly_spaced(&[], 10).is_empty());
    }

    #[test]
    fn split_points_divide_the_sample_evenly() {
        let keys: Vec<Vec<u8>> = (0u32..1000).map(|i| i.to_be_bytes().to_vec()).collect();
        let points = pick_split_points(&keys, 4);
        assert_eq!(
            points,
            vec![250u32.to_be_bytes().to_vec(), 500u32.to_be_bytes().to_vec(), 750u32.to_be_bytes().to_vec()]
        );
        assert!(pick_split_points(&keys, 1).is_empty());
        let few = vec![b"a".to_vec(), b"b".to_vec()];
        let points = pick_split_points(&few, 5);
        assert_eq!(points.len(), 4);
        assert!(points.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(pick_split_points(&[], 3), vec![Vec::<u8>::new(), Vec::new()]);
    }
}
