//! A whole map attempt over generated input (no DFS access needed: the
//! client connects lazily and generated splits are not read from it).

use super::*;
use crate::api::counters;
use crate::mapoutput::{INDEX_FILE, OUTPUT_FILE, SliceRecords, read_index};
use crate::spec::{InputFormat, JobSpec, Program};
use super::progress::tests::Shared;


fn map_spec(rows: u64, reduces: u32, sort_mb: &str) -> TaskSpec {
    let mut job = JobSpec {
        inputs: vec![],
        input_format: InputFormat::Range { rows, maps: 1 },
        mapper: Program::Identity,
        reduces,
        output: "/out".into(),
        ..JobSpec::default()
    };
    job.conf.insert("mapreduce.task.io.sort.mb".into(), sort_mb.into());
    TaskSpec {
        job_id: "job_1_0001".into(),
        task_id: "task_1_0001_m_000000".into(),
        attempt_id: "attempt_1_0001_m_000000_0".into(),
        attempt_number: 0,
        kind: TaskKind::Map { index: 0, split: Split::Range { first_row: 10, rows } },
        job,
        namenode: "127.0.0.1:1".into(),
        jobtracker: "127.0.0.1:1".into(),
        user: "tester".into(),
    }
}

fn dirs(root: &std::path::Path) -> TaskDirs {
    TaskDirs { work_dir: root.join("work"), output_dir: root.join("output"), scratch_dir: root.join("scratch") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_attempt_sorts_partitions_and_ends_with_a_done_line() {
    let root = tempfile::tempdir().unwrap();
    let buf = Shared::default();
    let rows = 200_000;
    let result = run_task_with(map_spec(rows, 3, "1"), dirs(root.path()), Arc::new(Mutex::new(buf.clone()))).await.unwrap();

    // file.out holds every row once, each partition sorted; the index
    // matches the result.
    let index = read_index(&root.path().join("output").join(INDEX_FILE)).unwrap();
    assert_eq!(result.partition_bytes, index.iter().map(|e| e.length).collect::<Vec<_>>());
    let data = std::fs::read(root.path().join("output").join(OUTPUT_FILE)).unwrap();
    let mut seen = Vec::new();
    for e in &index {
        let mut r = SliceRecords::new(&data[e.offset as usize..(e.offset + e.length) as usize]);
        let mut last: Option<Vec<u8>> = None;
        while let Some((k, v)) = r.next_record("file.out").unwrap() {
            assert!(v.is_empty());
            assert!(last.as_deref().is_none_or(|l| l <= k));
            last = Some(k.to_vec());
            seen.push(u64::from_be_bytes(k.try_into().unwrap()));
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (10..10 + rows).collect::<Vec<_>>());
    // 200k records of 8 bytes + 24 of metadata do not fit 0.8 MiB: spills happened and are gone.
    assert_eq!(std::fs::read_dir(root.path().join("scratch")).unwrap().count(), 0);

    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let last = text.lines().last().unwrap();
    match ControlLine::parse(last).unwrap() {
        ControlLine::Done { result_json, counters: cs } => {
            let parsed: TaskResult = serde_json::from_str(&result_json).unwrap();
            assert_eq!(parsed, result);
            let get = |name: &str| cs.iter().find(|(g, n, _)| g == counters::TASK && n == name).map(|c| c.2);
            assert_eq!(get(counters::MAP_OUTPUT_RECORDS), Some(rows as i64));
            assert_eq!(get(counters::MAP_INPUT_RECORDS), Some(rows as i64));
            assert!(get(counters::SPILLED_RECORDS).unwrap() >= rows as i64);
        }
        other => panic!("last line is not done: {other:?}"),
    }
    assert!(text.lines().all(|l| ControlLine::parse(l).is_some()), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_program_fails_before_reading_input() {
    let root = tempfile::tempdir().unwrap();
    let mut spec = map_spec(10, 2, "1");
    spec.job.mapper = Program::Builtin { name: "no-such-builtin".into(), args: vec![] };
    let buf = Shared::default();
    let e = run_task_with(spec, dirs(root.path()), Arc::new(Mutex::new(buf.clone()))).await.unwrap_err();
    assert!(e.to_string().contains("no-such-builtin"), "{e}");
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("\"done\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_collector_settings_are_errors_naming_the_key() {
    let root = tempfile::tempdir().unwrap();
    let spec = map_spec(10, 2, "huge");
    let e = run_task_with(spec, dirs(root.path()), Arc::new(Mutex::new(Shared::default()))).await.unwrap_err();
    assert!(e.to_string().contains("mapreduce.task.io.sort.mb"), "{e}");
}
