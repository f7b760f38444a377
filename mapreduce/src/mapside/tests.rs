use super::*;
use crate::api::{GroupedReader, ReduceRunner};
use crate::mapoutput::{SliceRecords, read_index};
use crate::spec::{JobSpec, Split, TaskKind, TaskSpec};

pub(crate) fn test_ctx(dir: &std::path::Path) -> TaskContext {
    let spec = TaskSpec {
        job_id: "job_1_0001".into(),
        task_id: "task_1_0001_m_000000".into(),
        attempt_id: "attempt_1_0001_m_000000_0".into(),
        attempt_number: 0,
        kind: TaskKind::Map { index: 0, split: Split::Range { first_row: 0, rows: 1 } },
        job: JobSpec::default(),
        namenode: "127.0.0.1:1".into(),
        jobtracker: "127.0.0.1:1".into(),
        user: "u".into(),
    };
    TaskContext { spec, work_dir: dir.to_path_buf(), input_file: String::new(), reporter: Reporter::default() }
}

/// Sums decimal values per key (a word count combiner).
struct Sum;

impl ReduceRunner for Sum {
    fn run(self: Box<Self>, input: &mut dyn GroupedReader, out: &mut dyn Emit, _ctx: &TaskContext) -> Result<()> {
        while input.next_key()? {
            let mut total = 0u64;
            while let Some(v) = input.next_value()? {
                total += std::str::from_utf8(v).unwrap().parse::<u64>().unwrap();
            }
            let key = input.key().to_vec();
            out.emit(&key, total.to_string().as_bytes())?;
        }
        Ok(())
    }
}

/// crc32c(key) % n.
struct Crc(u32);

impl PartitionFn for Crc {
    fn partition(&self, key: &[u8]) -> u32 {
        crc32c::crc32c(key) % self.0
    }
}

/// Every key in one partition.
struct Fixed(u32);

impl PartitionFn for Fixed {
    fn partition(&self, _key: &[u8]) -> u32 {
        self.0
    }
}

fn sum_factory() -> CombinerFactory {
    Box::new(|| Ok(Box::new(Sum) as Box<dyn ReduceRunner>))
}

struct Setup {
    _dir: tempfile::TempDir,
    scratch: PathBuf,
    output: PathBuf,
    ctx: TaskContext,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    let output = dir.path().join("output");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::create_dir_all(&output).unwrap();
    let ctx = test_ctx(dir.path());
    Setup { _dir: dir, scratch, output, ctx }
}

fn collector(s: &Setup, partitions: u32, sort_bytes: usize, combiner: Option<CombinerFactory>) -> MapOutputCollector {
    let cfg = CollectorConfig { partitions, sort_bytes, spill_percent: 0.8, min_spills_for_combine: 3 };
    MapOutputCollector::new(cfg, Box::new(Crc(partitions)), combiner, s.ctx.clone(), s.scratch.clone(), s.output.clone())
}

/// Every partition's records from file.out, checking the index's CRCs.
fn read_output(s: &Setup) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    let index = read_index(&s.output.join(INDEX_FILE)).unwrap();
    let data = std::fs::read(s.output.join(OUTPUT_FILE)).unwrap();
    let mut expect_offset = 0;
    index
        .iter()
        .map(|e| {
            assert_eq!(e.offset, expect_offset);
            expect_offset += e.length;
            let seg = &data[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(crc32c::crc32c(seg), e.crc32c);
            let mut r = SliceRecords::new(seg);
            let mut out = Vec::new();
            while let Some((k, v)) = r.next_record("file.out").unwrap() {
                out.push((k.to_vec(), v.to_vec()));
            }
            out
        })
        .collect()
}

fn words(n: usize) -> Vec<String> {
    let mut x: u64 = 42;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            format!("w{}", (x >> 33) % 300)
        })
        .collect()
}

#[test]
fn tiny_buffer_spills_often_and_merge_is_sorted_and_stable() {
    let s = setup();
    let mut c = collector(&s, 4, 16 << 10, None);
    let ws = words(20_000);
    for (i, w) in ws.iter().enumerate() {
        c.emit(w.as_bytes(), i.to_string().as_bytes()).unwrap();
    }
    assert!((20..=spills::MERGE_FACTOR).contains(&c.spill_count()), "{}", c.spill_count());
    c.finish().unwrap();
    let parts = read_output(&s);
    assert_eq!(parts.len(), 4);
    let mut total = 0;
    for (p, recs) in parts.iter().enumerate() {
        // Reference: this partition's records, stably sorted by key.
        let mut want: Vec<(Vec<u8>, Vec<u8>)> = ws
            .iter()
            .enumerate()
            .filter(|(_, w)| crc32c::crc32c(w.as_bytes()) % 4 == p as u32)
            .map(|(i, w)| (w.as_bytes().to_vec(), i.to_string().into_bytes()))
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(recs, &want, "partition {p}");
        total += recs.len();
    }
    assert_eq!(total, 20_000);
    let r = &s.ctx.reporter;
    assert_eq!(r.counter(counters::TASK, counters::MAP_OUTPUT_RECORDS), 20_000);
    let bytes: usize = ws.iter().enumerate().map(|(i, w)| w.len() + i.to_string().len()).sum();
    assert_eq!(r.counter(counters::TASK, counters::MAP_OUTPUT_BYTES), bytes as i64);
    // Spilled once to spill files, once more by the final merge.
    assert_eq!(r.counter(counters::TASK, counters::SPILLED_RECORDS), 40_000);
    // Spill files are gone.
    assert_eq!(std::fs::read_dir(&s.scratch).unwrap().count(), 0);
}

fn counts_of(parts: &[Vec<(Vec<u8>, Vec<u8>)>]) -> BTreeMap<Vec<u8>, u64> {
    let mut m = BTreeMap::new();
    for recs in parts {
        for (k, v) in recs {
            *m.entry(k.clone()).or_insert(0) += std::str::from_utf8(v).unwrap().parse::<u64>().unwrap();
        }
    }
    m
}

fn reference_counts(ws: &[String]) -> BTreeMap<Vec<u8>, u64> {
    let mut m = BTreeMap::new();
    for w in ws {
        *m.entry(w.as_bytes().to_vec()).or_insert(0) += 1;
    }
    m
}

#[test]
fn combiner_runs_on_spills_and_on_the_merge_of_three_or_more() {
    let s = setup();
    let mut c = collector(&s, 3, 2048, Some(sum_factory()));
    let ws = words(30_000);
    for w in &ws {
        c.emit(w.as_bytes(), b"1").unwrap();
    }
    assert!(c.spill_count() >= 3);
    c.finish().unwrap();
    let parts = read_output(&s);
    // Combined on merge: each key once, in sorted order, counts right.
    for recs in &parts {
        for pair in recs.windows(2) {
            assert!(pair[0].0 < pair[1].0, "key repeated or out of order");
        }
    }
    assert_eq!(counts_of(&parts), reference_counts(&ws));
    let r = &s.ctx.reporter;
    let c_in = r.counter(counters::TASK, counters::COMBINE_INPUT_RECORDS);
    let c_out = r.counter(counters::TASK, counters::COMBINE_OUTPUT_RECORDS);
    assert!(c_in >= 30_000 && c_out < c_in, "{c_in} {c_out}");
    assert_eq!(r.counter(counters::TASK, counters::MAP_OUTPUT_RECORDS), 30_000);
}

#[test]
fn two_spills_are_merged_without_combining_again() {
    let s = setup();
    // Big enough for about half of the records.
    let ws = words(2_000);
    let per_record = 4 + 1 + sortbuf::META_BYTES;
    let sort_bytes = (per_record * 1_200) as f64 / 0.8;
    let mut c = collector(&s, 2, sort_bytes as usize, Some(sum_factory()));
    for w in &ws {
        c.emit(w.as_bytes(), b"1").unwrap();
    }
    assert_eq!(c.spill_count(), 1);
    c.finish().unwrap();
    let parts = read_output(&s);
    assert_eq!(counts_of(&parts), reference_counts(&ws));
    // Keys seen in both spills appear twice (combined per spill only).
    let records: usize = parts.iter().map(Vec::len).sum();
    assert!(records > reference_counts(&ws).len());
}

#[test]
fn output_that_fits_in_memory_is_written_without_spills() {
    let s = setup();
    let mut c = collector(&s, 5, 1 << 20, Some(sum_factory()));
    let ws = words(1000);
    for w in &ws {
        c.emit(w.as_bytes(), b"1").unwrap();
    }
    let index = c.finish().unwrap();
    assert_eq!(index.len(), 5);
    assert_eq!(std::fs::read_dir(&s.scratch).unwrap().count(), 0);
    let parts = read_output(&s);
    assert_eq!(counts_of(&parts), reference_counts(&ws));
    let keys: usize = parts.iter().map(Vec::len).sum();
    assert_eq!(keys, reference_counts(&ws).len());
}

#[test]
fn empty_output_has_an_index_of_empty_partitions() {
    let s = setup();
    let index = collector(&s, 3, 1 << 20, None).finish().unwrap();
    assert_eq!(index, vec![IndexEntry { offset: 0, length: 0, crc32c: 0 }; 3]);
    assert_eq!(read_output(&s), vec![vec![], vec![], vec![]]);
}

#[test]
fn a_record_bigger_than_the_buffer_gets_its_own_spill() {
    let s = setup();
    let mut c = collector(&s, 2, 1024, None);
    c.emit(b"a", b"small").unwrap();
    let big = vec![b'x'; 10_000];
    c.emit(b"big", &big).unwrap();
    c.emit(b"c", b"small").unwrap();
    c.finish().unwrap();
    let all: Vec<(Vec<u8>, Vec<u8>)> = read_output(&s).into_iter().flatten().collect();
    assert_eq!(all.len(), 3);
    assert!(all.contains(&(b"big".to_vec(), big)));
}

#[test]
fn more_spills_than_the_merge_factor_take_several_passes() {
    let s = setup();
    let mut c = collector(&s, 2, 512, Some(sum_factory()));
    let ws = words(6_000);
    for w in &ws {
        c.emit(w.as_bytes(), b"1").unwrap();
    }
    assert!(c.spill_count() > spills::MERGE_FACTOR + 10, "{}", c.spill_count());
    c.finish().unwrap();
    assert_eq!(counts_of(&read_output(&s)), reference_counts(&ws));
    assert_eq!(std::fs::read_dir(&s.scratch).unwrap().count(), 0);
}

#[test]
fn a_bad_partition_is_an_error() {
    let s = setup();
    let cfg = CollectorConfig { partitions: 2, sort_bytes: 4096, spill_percent: 0.8, min_spills_for_combine: 3 };
    let mut c = MapOutputCollector::new(cfg, Box::new(Fixed(7)), None, s.ctx.clone(), s.scratch.clone(), s.output.clone());
    let e = c.emit(b"k", b"v").unwrap_err().to_string();
    assert!(e.contains("partition 7 of 2"), "{e}");
}

#[test]
fn conf_sizes_are_read_and_checked() {
    let mut conf = BTreeMap::new();
    let c = CollectorConfig::from_conf(&conf, 4).unwrap();
    assert_eq!((c.sort_bytes, c.spill_percent, c.min_spills_for_combine), (100 << 20, 0.8, 3));
    conf.insert("mapreduce.task.io.sort.mb".to_string(), "16".to_string());
    conf.insert("mapreduce.map.sort.spill.percent".to_string(), "0.5".to_string());
    let c = CollectorConfig::from_conf(&conf, 4).unwrap();
    assert_eq!((c.sort_bytes, c.spill_percent), (16 << 20, 0.5));
    conf.insert("mapreduce.task.io.sort.mb".to_string(), "lots".to_string());
    let e = CollectorConfig::from_conf(&conf, 4).unwrap_err().to_string();
    assert!(e.contains("mapreduce.task.io.sort.mb=lots"), "{e}");
    conf.insert("mapreduce.task.io.sort.mb".to_string(), "4096".to_string());
    assert!(CollectorConfig::from_conf(&conf, 4).is_err());
    conf.insert("mapreduce.task.io.sort.mb".to_string(), "1".to_string());
    conf.insert("mapreduce.map.sort.spill.percent".to_string(), "1.5".to_string());
    assert!(CollectorConfig::from_conf(&conf, 4).is_err());
}
