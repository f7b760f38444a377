//! In-memory readers and emitters for unit tests of user code runners.

use crate::api::{Emit, GroupedReader, RecordReader, Reporter, TaskContext};
use crate::error::{Result, TaskError};
use crate::spec::{InputFormat, JobSpec, Split, TaskKind, TaskSpec};

pub(crate) type Record = (Vec<u8>, Vec<u8>);

/// Records from string pairs.
pub(crate) fn records(pairs: &[(&str, &str)]) -> Vec<Record> {
    pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
}

/// Records as `key\tvalue` strings (for readable assertions).
pub(crate) fn lines(records: &[Record]) -> Vec<String> {
    records.iter().map(|(k, v)| format!("{}\t{}", String::from_utf8_lossy(k), String::from_utf8_lossy(v))).collect()
}

/// A [`RecordReader`] over a vector; optionally fails after `fail_after` records.
pub(crate) struct VecReader {
    records: std::vec::IntoIter<Record>,
    fail_after: Option<usize>,
    served: usize,
}

impl VecReader {
    pub(crate) fn new(records: Vec<Record>) -> VecReader {
        VecReader { records: records.into_iter(), fail_after: None, served: 0 }
    }
    pub(crate) fn failing_after(records: Vec<Record>, n: usize) -> VecReader {
        VecReader { records: records.into_iter(), fail_after: Some(n), served: 0 }
    }
}

impl RecordReader for VecReader {
    fn next(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<bool> {
        if self.fail_after == Some(self.served) {
            return Err(TaskError::Invalid("test reader: injected failure".into()));
        }
        key.clear();
        value.clear();
        match self.records.next() {
            Some((k, v)) => {
                self.served += 1;
                key.extend_from_slice(&k);
                value.extend_from_slice(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// A [`GroupedReader`] over groups given in order.
pub(crate) struct VecGrouped {
    groups: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    group: Option<usize>,
    value: usize,
}

/// Groups from string keys and values (must already be sorted by key).
pub(crate) fn grouped(groups: &[(&str, &[&str])]) -> VecGrouped {
    VecGrouped::new(
        groups
            .iter()
            .map(|(k, vs)| (k.as_bytes().to_vec(), vs.iter().map(|v| v.as_bytes().to_vec()).collect()))
            .collect(),
    )
}

impl VecGrouped {
    pub(crate) fn new(groups: Vec<(Vec<u8>, Vec<Vec<u8>>)>) -> VecGrouped {
        VecGrouped { groups, group: None, value: 0 }
    }

    /// Groups sorted records by key (stable: values keep their order).
    pub(crate) fn from_records(mut records: Vec<Record>) -> VecGrouped {
        records.sort_by(|a, b| a.0.cmp(&b.0));
        let mut groups: Vec<(Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
        for (k, v) in records {
            match groups.last_mut() {
                Some((last, vs)) if *last == k => vs.push(v),
                _ => groups.push((k, vec![v])),
            }
        }
        VecGrouped::new(groups)
    }
}

impl GroupedReader for VecGrouped {
    fn next_key(&mut self) -> Result<bool> {
        let next = self.group.map_or(0, |g| g + 1);
        self.group = Some(next);
        self.value = 0;
        Ok(next < self.groups.len())
    }
    fn key(&self) -> &[u8] {
        self.group.and_then(|g| self.groups.get(g)).map_or(&[][..], |(k, _)| k)
    }
    fn next_value(&mut self) -> Result<Option<&[u8]>> {
        let Some((_, values)) = self.group.and_then(|g| self.groups.get(g)) else { return Ok(None) };
        let v = values.get(self.value).map(|v| v.as_slice());
        self.value += 1;
        Ok(v)
    }
}

/// Collects emitted records; optionally fails at record `fail_at`.
#[derive(Default)]
pub(crate) struct VecEmit {
    pub(crate) records: Vec<Record>,
    pub(crate) fail_at: Option<usize>,
}

impl Emit for VecEmit {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.fail_at == Some(self.records.len()) {
            return Err(TaskError::Invalid("test emitter: injected failure".into()));
        }
        self.records.push((key.to_vec(), value.to_vec()));
        Ok(())
    }
}

/// The context of map task 3 (`is_map`) or reduce partition 2 of a job
/// with KeyValueText input, working in the system temp dir.
pub(crate) fn context(is_map: bool) -> TaskContext {
    let kind = if is_map {
        TaskKind::Map {
            index: 3,
            split: Split::File {
                path: "/in/part-0".into(),
                start: 128,
                length: 256,
                file_length: 1000,
                hosts: vec![],
                racks: vec![],
            },
        }
    } else {
        TaskKind::Reduce { partition: 2, num_maps: 4 }
    };
    let t = if is_map { 'm' } else { 'r' };
    let idx = if is_map { 3 } else { 2 };
    let job = JobSpec { input_format: InputFormat::KeyValueText, output: "/out".into(), ..JobSpec::default() };
    TaskContext {
        spec: TaskSpec {
            job_id: "job_17_0001".into(),
            task_id: format!("task_17_0001_{t}_{idx:06}"),
            attempt_id: format!("attempt_17_0001_{t}_{idx:06}_0"),
            attempt_number: 0,
            kind,
            job,
            namenode: "127.0.0.1:1".into(),
            jobtracker: "127.0.0.1:2".into(),
            user: "tester".into(),
        },
        work_dir: std::env::temp_dir(),
        input_file: if is_map { "/in/part-0".into() } else { String::new() },
        reporter: Reporter::default(),
    }
}
