//! `tusk bench wordcount`: a wordcount job over generated text with a
//! Zipf word distribution (as natural language has), next to a plain
//! single-threaded Rust word count of the same bytes read from a local file
//! (Frank McSherry's COST: how the cluster compares with one thread).

use anyhow::{Context, bail};
use clap::Args;
use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use tusk_client::CreateOptions;

use super::Target;
use super::jobs::{Clients, Latency, empty_job, mbps, print_latency, run_job};
use crate::cluster::ClusterOptions;
use crate::dfs::format::human_size;
use crate::job::wordcount_spec;

#[derive(Debug, Args)]
pub struct WordcountArgs {
    /// Bytes of text to count (e.g. 1GiB).
    #[arg(long, default_value = "1GiB", value_parser = tusk_common::size::parse_size)]
    size: u64,
    /// Reduce tasks (default: one per worker).
    #[arg(long)]
    reduces: Option<u32>,
    /// Distinct words of the vocabulary the text is drawn from.
    #[arg(long, default_value_t = 100_000)]
    vocabulary: usize,
    /// Datanodes (each with a worker) of the local cluster.
    #[arg(long, default_value_t = 3)]
    datanodes: usize,
    /// Block size of the local cluster (one map per block).
    #[arg(long, value_parser = tusk_common::size::parse_size)]
    block_size: Option<u64>,
}

const DIR: &str = "/bench/wordcount";

pub async fn run(namenode: Option<String>, jobtracker: Option<String>, args: WordcountArgs) -> anyhow::Result<()> {
    if args.size == 0 || args.vocabulary == 0 {
        bail!("--size and --vocabulary must be positive");
    }
    let options = ClusterOptions { block_size: args.block_size, ..ClusterOptions::default() };
    let target = Target::get(namenode, args.datanodes, options).await?;
    let c = Clients::connect(&target, jobtracker).await?;
    let reduces = args.reduces.unwrap_or(c.workers as u32);

    let scratch = tempfile::Builder::new().prefix("wordcount-bench-").tempdir_in(target.scratch_parent())?;
    let local = scratch.path().join("words.txt");
    let t = Instant::now();
    let bytes = generate(&local, args.size, args.vocabulary)?;
    eprintln!("generated {} of text in {:.1?}", human_size(bytes), t.elapsed());
    let _ = c.dfs.delete(DIR, true).await?;
    let input = format!("{DIR}/input/words.txt");
    let t = Instant::now();
    upload(&c.dfs, &local, &input).await?;
    eprintln!("uploaded it to {input} in {:.1?}", t.elapsed());

    let base = baseline(&local, &scratch.path().join("counts.txt"))?;
    drop(scratch);

    let output = format!("{DIR}/output");
    let job = run_job(&c, &wordcount_spec(input, output.clone(), reduces), Duration::ZERO).await?;
    let (words, distinct) = read_counts(&c.dfs, &output).await?;
    if (words, distinct) != (base.words, base.distinct) {
        bail!(
            "{output}: the job counted {words} words ({distinct} distinct), the baseline {} ({} distinct)",
            base.words,
            base.distinct
        );
    }
    let (empty, empty_first) = empty_job(&c, DIR).await?;
    let _ = c.dfs.delete(DIR, true).await;

    let maps = job.report.stage("map").map_or(0, |s| s.total);
    println!(
        "wordcount: {} of text, {words} words ({distinct} distinct); {} worker(s) with {} slot(s), {maps} maps, {reduces} reduces",
        human_size(bytes),
        c.workers,
        c.slots
    );
    println!("{:<30} {:>9} {:>10}", "", "time", "MB/s");
    println!("{:<30} {:>7.2} s {:>10.1}", "tusk wordcount job", job.time.as_secs_f64(), mbps(bytes, job.time));
    println!(
        "{:<30} {:>7.2} s {:>10.1}",
        "baseline (1 thread, local)",
        base.time.as_secs_f64(),
        mbps(bytes, base.time)
    );
    let cost = job.time.as_secs_f64() / base.time.as_secs_f64().max(1e-9);
    println!(
        "{:<30} {:>9.2}   (target <= 1: {})",
        "COST (job / baseline)",
        cost,
        if cost <= 1.0 { "met" } else { "missed" }
    );
    print_latency(&Latency {
        first_task_ms: job.report.first_launch_ms,
        empty_job: empty,
        empty_first_task_ms: empty_first,
    });
    target.finish().await
}

/// Writes about `size` bytes of text: lines of 6 to 16 words drawn from a
/// vocabulary of `vocabulary` words with Zipf's law (s = 1). Returns the
/// bytes written.
fn generate(path: &Path, size: u64, vocabulary: usize) -> anyhow::Result<u64> {
    let words: Vec<Vec<u8>> = (0..vocabulary).map(word).collect();
    let zipf = ZipfTable::new(vocabulary);
    let file = std::fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut written = 0u64;
    while written < size {
        let n = 6 + rng.next() % 11;
        for i in 0..n {
            let w = &words[zipf.sample(rng.next())];
            out.write_all(w)?;
            out.write_all(if i + 1 == n { b"\n" } else { b" " })?;
            written += w.len() as u64 + 1;
        }
    }
    out.flush().with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(written)
}

/// The word of rank `rank`: consonant-vowel syllables spelling `rank + 90`
/// in base 90, so frequent words are short (two syllables) and rare ones long.
fn word(rank: usize) -> Vec<u8> {
    const CONSONANTS: &[u8] = b"bcdfghjklmnprstvwz";
    const VOWELS: &[u8] = b"aeiou";
    let base = CONSONANTS.len() * VOWELS.len();
    let mut n = rank + base;
    let mut syllables = Vec::new();
    while n > 0 {
        let s = n % base;
        syllables.push([CONSONANTS[s / VOWELS.len()], VOWELS[s % VOWELS.len()]]);
        n /= base;
    }
    syllables.into_iter().rev().flatten().collect()
}

/// Zipf sampling in O(1): a table of 2^20 quantiles of the distribution.
struct ZipfTable {
    ranks: Vec<u32>,
}

impl ZipfTable {
    const BITS: u32 = 20;

    fn new(n: usize) -> ZipfTable {
        let weights: Vec<f64> = (0..n).map(|r| 1.0 / (r as f64 + 1.0)).collect();
        let total: f64 = weights.iter().sum();
        let slots = 1usize << Self::BITS;
        let mut ranks = Vec::with_capacity(slots);
        let (mut rank, mut cum) = (0usize, weights.first().copied().unwrap_or(1.0));
        for i in 0..slots {
            let q = (i as f64 + 0.5) / slots as f64 * total;
            while cum < q && rank + 1 < n {
                rank += 1;
                cum += weights[rank];
            }
            ranks.push(rank as u32);
        }
        ZipfTable { ranks }
    }

    fn sample(&self, random: u64) -> usize {
        self.ranks[(random >> (64 - Self::BITS)) as usize] as usize
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

async fn upload(client: &tusk_client::Client, local: &Path, path: &str) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(local).with_context(|| format!("{}: cannot open", local.display()))?;
    let opts = CreateOptions { overwrite: true, create_parent: true, ..Default::default() };
    let mut w = client.create(path, opts).await?;
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = file.read(&mut buf).with_context(|| format!("{}: cannot read", local.display()))?;
        if n == 0 {
            break;
        }
        w.write(&buf[..n]).await?;
    }
    w.close().await?;
    Ok(())
}

/// What the baseline found and how long it took.
struct Baseline {
    time: Duration,
    words: u64,
    distinct: u64,
}

/// The single-threaded word count: read the file in 1 MiB chunks, split on
/// ASCII whitespace (as the built-in mapper does), count in a HashMap, and
/// write `word<TAB>count` lines to `out`.
fn baseline(path: &Path, out: &Path) -> anyhow::Result<Baseline> {
    let start = Instant::now();
    let mut file = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut count = |text: &[u8]| {
        for w in text.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
            match counts.get_mut(w) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(w.to_vec(), 1);
                }
            }
        }
    };
    let mut buf = vec![0u8; 1 << 20];
    // The start of a word cut by the end of the previous chunk.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = file.read(&mut buf).with_context(|| format!("{}: cannot read", path.display()))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let cut = chunk.iter().rposition(|b| b.is_ascii_whitespace()).map_or(0, |i| i + 1);
        if carry.is_empty() {
            count(&chunk[..cut]);
        } else if cut > 0 {
            carry.extend_from_slice(&chunk[..cut]);
            count(&carry);
            carry.clear();
        }
        carry.extend_from_slice(&chunk[cut..]);
    }
    count(&carry);
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let mut words = 0;
    for (word, n) in &counts {
        w.write_all(word)?;
        writeln!(w, "\t{n}")?;
        words += n;
    }
    w.flush()?;
    Ok(Baseline { time: start.elapsed(), words, distinct: counts.len() as u64 })
}

/// Total of the counts and number of words in a wordcount output.
async fn read_counts(client: &tusk_client::Client, output: &str) -> anyhow::Result<(u64, u64)> {
    let (mut words, mut distinct) = (0u64, 0u64);
    for e in client.list(output).await? {
        if e.is_dir || !e.name.starts_with("part-") {
            continue;
        }
        let data = client.read_all(&e.path).await?;
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let n = line
                .iter()
                .rposition(|b| *b == b'\t')
                .and_then(|i| std::str::from_utf8(&line[i + 1..]).ok()?.trim().parse::<u64>().ok())
                .with_context(|| format!("{}: unexpected line {:?}", e.path, String::from_utf8_lossy(line)))?;
            words += n;
            distinct += 1;
        }
    }
    Ok((words, distinct))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_distinct_and_frequent_ones_short() {
        let words: Vec<Vec<u8>> = (0..20_000).map(word).collect();
        let set: std::collections::HashSet<&Vec<u8>> = words.iter().collect();
        assert_eq!(set.len(), words.len());
        assert_eq!(words[0].len(), 4);
        assert!(words[19_999].len() >= 6);
    }

    #[test]
    fn zipf_favours_low_ranks() {
        let z = ZipfTable::new(1000);
        let mut rng = XorShift(7);
        let mut hits = vec![0u32; 1000];
        for _ in 0..100_000 {
            hits[z.sample(rng.next())] += 1;
        }
        // p(rank 0) = 1 / H(1000) ~ 13%; rank 1 about half of it.
        assert!((11_000..16_000).contains(&hits[0]), "{}", hits[0]);
        assert!(hits[1] > hits[0] / 3 && hits[1] < hits[0], "{} {}", hits[0], hits[1]);
        assert!(hits[999] < 100);
    }

    #[test]
    fn the_baseline_counts_words_cut_by_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        let bytes = generate(&path, 3 << 20, 500).unwrap();
        assert!(bytes >= 3 << 20);
        let text = std::fs::read(&path).unwrap();
        let expected = text.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).count() as u64;
        let b = baseline(&path, &dir.path().join("out.txt")).unwrap();
        assert_eq!(b.words, expected);
        assert!(b.distinct > 100 && b.distinct <= 500);
    }
}
