//! The shuffle against an in-process fake jobtracker and fake workers.

use super::*;
use crate::api::{GroupedReader, counters};
use crate::mapoutput::put_record;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tusk_proto::compute::task_umbilical_server::{TaskUmbilical, TaskUmbilicalServer};
use tusk_proto::compute::worker_service_server::{WorkerService, WorkerServiceServer};
use tusk_proto::compute::*;

/// What the fake jobtracker lists; `reveal` maps become visible one more
/// per poll; a map whose attempt collects 3 failure reports is replaced by
/// `replacement[attempt]`.
#[derive(Default)]
struct Jt {
    total: u32,
    outputs: Vec<MapOutputLocation>,
    visible: usize,
    reveal_per_poll: bool,
    abort: bool,
    polls: u32,
    reports: Vec<ReportFetchFailureRequest>,
    replacement: HashMap<String, String>,
    /// At this poll, (map index, new attempt).
    switch_at: Option<(u32, u32, String)>,
}

#[derive(Clone, Default)]
struct FakeJt(Arc<Mutex<Jt>>);

#[tonic::async_trait]
impl TaskUmbilical for FakeJt {
    async fn get_map_outputs(&self, _r: Request<GetMapOutputsRequest>) -> Result<Response<GetMapOutputsResponse>, Status> {
        let mut jt = self.0.lock().unwrap();
        jt.polls += 1;
        if let Some((at, map, attempt)) = jt.switch_at.clone()
            && jt.polls >= at
        {
            jt.outputs[map as usize].attempt_id = attempt;
            jt.switch_at = None;
        }
        if jt.reveal_per_poll {
            jt.visible = (jt.visible + 1).min(jt.outputs.len());
        } else {
            jt.visible = jt.outputs.len();
        }
        Ok(Response::new(GetMapOutputsResponse {
            total_maps: jt.total,
            outputs: jt.outputs[..jt.visible].to_vec(),
            abort: jt.abort,
        }))
    }

    async fn report_fetch_failure(
        &self,
        r: Request<ReportFetchFailureRequest>,
    ) -> Result<Response<ReportFetchFailureResponse>, Status> {
        let r = r.into_inner();
        let mut jt = self.0.lock().unwrap();
        let n = jt.reports.iter().filter(|x| x.map_attempt_id == r.map_attempt_id).count() + 1;
        if n >= 3
            && let Some(new) = jt.replacement.get(&r.map_attempt_id).cloned()
        {
            for o in jt.outputs.iter_mut().filter(|o| o.attempt_id == r.map_attempt_id) {
                o.attempt_id = new.clone();
            }
        }
        jt.reports.push(r);
        Ok(Response::new(ReportFetchFailureResponse {}))
    }
}

#[derive(Default)]
struct Worker {
    /// attempt → partition bytes (partition 0 only in these tests).
    data: HashMap<String, Vec<u8>>,
    /// attempt → tries still to fail.
    fail: HashMap<String, u32>,
    /// attempt → tries still to send a wrong CRC.
    corrupt: HashMap<String, u32>,
    calls: HashMap<String, u32>,
    /// attempt → (file, offset) named to a reader on host "here".
    local: HashMap<String, (std::path::PathBuf, u64)>,
    /// Calls that asked for a file on this host.
    local_asks: u32,
}

#[derive(Clone, Default)]
struct FakeWorker(Arc<Mutex<Worker>>);

type ChunkStream = Pin<Box<dyn Stream<Item = Result<MapOutputChunk, Status>> + Send>>;

#[tonic::async_trait]
impl WorkerService for FakeWorker {
    async fn launch_task(&self, _r: Request<LaunchTaskRequest>) -> Result<Response<LaunchTaskResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn kill_task(&self, _r: Request<KillTaskRequest>) -> Result<Response<KillTaskResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    type FetchMapOutputStream = ChunkStream;
    async fn fetch_map_output(
        &self,
        r: Request<FetchMapOutputRequest>,
    ) -> Result<Response<Self::FetchMapOutputStream>, Status> {
        let r = r.into_inner();
        let mut w = self.0.lock().unwrap();
        *w.calls.entry(r.attempt_id.clone()).or_default() += 1;
        if let Some(n) = w.fail.get_mut(&r.attempt_id)
            && *n > 0
        {
            *n -= 1;
            return Err(Status::unavailable("injected failure"));
        }
        if r.reader_host == "here" {
            w.local_asks += 1;
            if let Some((path, offset)) = w.local.get(&r.attempt_id).cloned() {
                let data = w.data.get(&r.attempt_id).cloned().unwrap_or_default();
                let chunk = MapOutputChunk {
                    total_len: data.len() as u64,
                    crc32c: crc32c::crc32c(&data),
                    local_path: path.to_string_lossy().into_owned(),
                    local_offset: offset,
                    ..Default::default()
                };
                return Ok(Response::new(Box::pin(tokio_stream::iter(vec![Ok(chunk)]))));
            }
        }
        let corrupt = match w.corrupt.get_mut(&r.attempt_id) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        let data = w.data.get(&r.attempt_id).cloned().ok_or_else(|| Status::not_found(r.attempt_id.clone()))?;
        let crc = crc32c::crc32c(&data) ^ u32::from(corrupt);
        let total = data.len() as u64;
        let mut chunks: Vec<Result<MapOutputChunk, Status>> = data
            .chunks(1000)
            .enumerate()
            .map(|(i, c)| Ok(MapOutputChunk { total_len: if i == 0 { total } else { 0 }, data: bytes::Bytes::copy_from_slice(c), crc32c: if i == 0 { crc } else { 0 }, ..Default::default() }))
            .collect();
        if chunks.is_empty() {
            chunks.push(Ok(MapOutputChunk { total_len: 0, data: bytes::Bytes::new(), crc32c: crc, ..Default::default() }));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
    async fn get_task_log(&self, _r: Request<GetTaskLogRequest>) -> Result<Response<GetTaskLogResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

async fn serve_jt(jt: FakeJt) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TaskUmbilicalServer::new(jt))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
    );
    addr
}

async fn serve_worker(w: FakeWorker) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(WorkerServiceServer::new(w))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
    );
    addr
}

/// Map `m`'s sorted output: keys `k000`..; every third map has many records.
fn map_output(m: u32, tag: &str) -> (Vec<u8>, Vec<(String, String)>) {
    let n = if m.is_multiple_of(3) { 3000 } else { 20 };
    let mut recs: Vec<(String, String)> = (0..n).map(|i| (format!("k{:03}", (i * 7 + m as usize) % 500), format!("{tag}{m}-{i}"))).collect();
    recs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut buf = Vec::new();
    for (k, v) in &recs {
        put_record(&mut buf, k.as_bytes(), v.as_bytes());
    }
    (buf, recs)
}

fn test_cfg() -> ShuffleConfig {
    ShuffleConfig {
        parallel_copies: 3,
        memory_bytes: 100_000,
        max_in_memory_segment: 25_000,
        poll_interval: Duration::from_millis(10),
        retry_backoff: vec![Duration::from_millis(5), Duration::from_millis(10)],
        tries_before_report: 3,
        chunk_timeout: Duration::from_secs(10),
    }
}

struct Fixture {
    jt: FakeJt,
    worker: FakeWorker,
    task: ShuffleTask,
    _dir: tempfile::TempDir,
    /// map → its records under the attempt the final result must come from.
    expected: BTreeMap<u32, Vec<(String, String)>>,
}

/// `maps` maps, attempt `a<m>` each, all on one worker.
async fn fixture(maps: u32) -> Fixture {
    let jt = FakeJt::default();
    let worker = FakeWorker::default();
    let jt_addr = serve_jt(jt.clone()).await;
    let w_addr = serve_worker(worker.clone()).await;
    let mut expected = BTreeMap::new();
    {
        let mut j = jt.0.lock().unwrap();
        let mut w = worker.0.lock().unwrap();
        j.total = maps;
        for m in 0..maps {
            let (bytes, recs) = map_output(m, "a");
            w.data.insert(format!("a{m}"), bytes);
            expected.insert(m, recs);
            j.outputs.push(MapOutputLocation { map_index: m, attempt_id: format!("a{m}"), worker_addr: w_addr.clone() });
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let task = ShuffleTask {
        job_id: "job_1_0001".into(),
        attempt_id: "attempt_1_0001_r_000000_0".into(),
        partition: 0,
        num_maps: maps,
        jobtracker: jt_addr,
        scratch_dir: dir.path().to_path_buf(),
        reporter: Reporter::default(),
        fetched: Arc::new(AtomicU64::new(0)),
        upstream_stage: None,
        host: String::new(),
    };
    Fixture { jt, worker, task, _dir: dir, expected }
}

/// The grouped stream as (key, values), and what the maps' records give.
fn check_merge(f: &Fixture, segments: Vec<Segment>) {
    let mut g = merge_segments(segments, &f.task.scratch_dir).unwrap();
    let mut got: Vec<(String, Vec<String>)> = Vec::new();
    while g.next_key().unwrap() {
        let k = String::from_utf8(g.key().to_vec()).unwrap();
        let mut vs = Vec::new();
        while let Some(v) = g.next_value().unwrap() {
            vs.push(String::from_utf8(v.to_vec()).unwrap());
        }
        got.push((k, vs));
    }
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for recs in f.expected.values() {
        for (k, v) in recs {
            want.entry(k.clone()).or_default().push(v.clone());
        }
    }
    let want: Vec<(String, Vec<String>)> = want.into_iter().collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn fetches_every_map_in_memory_and_on_disk_and_merges_them() {
    let f = fixture(7).await;
    f.jt.0.lock().unwrap().reveal_per_poll = true;
    let segments = shuffle(&f.task, &test_cfg()).await.unwrap();
    assert_eq!(segments.len(), 7);
    assert!(segments.iter().any(Segment::in_memory));
    assert!(segments.iter().any(|s| !s.in_memory()), "big segments go to scratch");
    let total: u64 = segments.iter().map(Segment::len).sum();
    assert_eq!(f.task.reporter.counter(counters::TASK, counters::REDUCE_SHUFFLE_BYTES), total as i64);
    assert_eq!(f.task.fetched.load(Ordering::Relaxed), 7);
    assert!(f.jt.0.lock().unwrap().polls >= 7, "maps were revealed one per poll");
    check_merge(&f, segments);
    // Scratch files went away with their segments.
    assert_eq!(std::fs::read_dir(&f.task.scratch_dir).unwrap().count(), 0);
}

#[tokio::test]
async fn failed_and_corrupt_fetches_are_retried_without_reports() {
    let f = fixture(4).await;
    {
        let mut w = f.worker.0.lock().unwrap();
        w.fail.insert("a1".into(), 2);
        w.corrupt.insert("a2".into(), 1);
        w.corrupt.insert("a0".into(), 1);
    }
    let segments = shuffle(&f.task, &test_cfg()).await.unwrap();
    let w = f.worker.0.lock().unwrap();
    assert_eq!(w.calls["a1"], 3);
    assert_eq!(w.calls["a2"], 2);
    assert_eq!(w.calls["a0"], 2);
    drop(w);
    assert!(f.jt.0.lock().unwrap().reports.is_empty());
    check_merge(&f, segments);
}

#[tokio::test]
async fn an_unfetchable_output_is_reported_and_its_rerun_is_fetched() {
    let mut f = fixture(3).await;
    let (bytes, recs) = map_output(2, "b");
    {
        let mut w = f.worker.0.lock().unwrap();
        w.fail.insert("a2".into(), u32::MAX);
        w.data.insert("b2".into(), bytes);
        f.jt.0.lock().unwrap().replacement.insert("a2".into(), "b2".into());
    }
    f.expected.insert(2, recs);
    let segments = shuffle(&f.task, &test_cfg()).await.unwrap();
    let reports = f.jt.0.lock().unwrap().reports.clone();
    assert!(reports.len() >= 3, "{reports:?}");
    assert!(reports.iter().all(|r| r.map_attempt_id == "a2" && r.reduce_attempt_id == f.task.attempt_id));
    assert!(reports[0].reason.contains("injected failure"), "{}", reports[0].reason);
    assert_eq!(segments.iter().find(|s| s.map_index() == 2).unwrap().attempt_id(), "b2");
    check_merge(&f, segments);
}

#[tokio::test]
async fn a_new_attempt_of_a_map_replaces_the_old_one() {
    let mut f = fixture(3).await;
    let (bytes, recs) = map_output(0, "c");
    f.worker.0.lock().unwrap().data.insert("c0".into(), bytes);
    {
        let mut jt = f.jt.0.lock().unwrap();
        // Map 2 shows up late; by then map 0 has a new attempt.
        jt.reveal_per_poll = true;
        jt.switch_at = Some((3, 0, "c0".into()));
    }
    f.expected.insert(0, recs);
    let segments = shuffle(&f.task, &test_cfg()).await.unwrap();
    assert_eq!(segments[0].attempt_id(), "c0");
    check_merge(&f, segments);
}

#[tokio::test]
async fn an_abort_from_the_jobtracker_ends_the_shuffle() {
    let f = fixture(2).await;
    {
        let mut jt = f.jt.0.lock().unwrap();
        jt.abort = true;
        jt.outputs.clear();
    }
    let e = shuffle(&f.task, &test_cfg()).await.unwrap_err();
    assert!(matches!(e, TaskError::Aborted(_)), "{e}");
}

#[tokio::test]
async fn an_unreachable_worker_is_reported() {
    let f = fixture(1).await;
    // A port nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = l.local_addr().unwrap().to_string();
    drop(l);
    {
        let mut jt = f.jt.0.lock().unwrap();
        jt.outputs[0].worker_addr = dead.clone();
        jt.replacement.insert("a0".into(), "never".into());
    }
    let task = f.task.clone();
    let run = tokio::spawn(async move { shuffle(&task, &test_cfg()).await });
    // Wait (with a deadline) for the reports to arrive, then stop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if f.jt.0.lock().unwrap().reports.len() >= 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no fetch failure reports");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.abort();
    let reports = f.jt.0.lock().unwrap().reports.clone();
    assert!(reports[0].reason.contains(&dead), "{}", reports[0].reason);
}

#[test]
fn many_disk_segments_are_premerged() {
    let dir = tempfile::tempdir().unwrap();
    let mut segments = Vec::new();
    let mut want: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for m in 0..(MERGE_FACTOR as u32 * 2 + 5) {
        let mut buf = Vec::new();
        for i in 0..10u32 {
            let k = format!("{:04}", (i * 13 + m) % 50).into_bytes();
            *want.entry(k.clone()).or_default() += 1;
            put_record(&mut buf, &k, b"v");
        }
        // Sort the segment's records by key (they were emitted unsorted).
        let mut recs = Vec::new();
        let mut s = crate::mapoutput::SliceRecords::new(&buf);
        while let Some((k, v)) = s.next_record("t").unwrap() {
            recs.push((k.to_vec(), v.to_vec()));
        }
        recs.sort();
        let mut sorted = Vec::new();
        for (k, v) in &recs {
            put_record(&mut sorted, k, v);
        }
        if m % 5 == 0 {
            segments.push(Segment::from_bytes(m, "a", sorted));
        } else {
            let p = dir.path().join(format!("s{m}"));
            std::fs::write(&p, &sorted).unwrap();
            segments.push(Segment::from_file(m, "a", p, sorted.len() as u64));
        }
    }
    let mut g = merge_segments(segments, dir.path()).unwrap();
    let mut got: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut last: Option<Vec<u8>> = None;
    while g.next_key().unwrap() {
        let k = g.key().to_vec();
        assert!(last.as_ref().is_none_or(|l| *l < k), "keys out of order");
        let mut n = 0;
        while g.next_value().unwrap().is_some() {
            n += 1;
        }
        got.insert(k.clone(), n);
        last = Some(k);
    }
    assert_eq!(got, want);
}

#[test]
fn conf_is_read_and_checked() {
    let mut conf = BTreeMap::new();
    let c = ShuffleConfig::from_conf(&conf).unwrap();
    assert_eq!((c.parallel_copies, c.memory_bytes, c.max_in_memory_segment), (5, 256 << 20, 64 << 20));
    conf.insert("mapreduce.reduce.shuffle.parallelcopies".to_string(), "0".to_string());
    assert!(ShuffleConfig::from_conf(&conf).is_err());
    conf.insert("mapreduce.reduce.shuffle.parallelcopies".to_string(), "x".to_string());
    let e = ShuffleConfig::from_conf(&conf).unwrap_err().to_string();
    assert!(e.contains("parallelcopies=x"), "{e}");
}

/// A fixture whose task runs on host "here", and a directory for files.
async fn on_this_host(maps: u32) -> (Fixture, tempfile::TempDir) {
    let mut f = fixture(maps).await;
    f.task.host = "here".into();
    (f, tempfile::tempdir().unwrap())
}

/// Writes `attempt`'s partition (changed by `spoil`) into a file after
/// `prefix`, and has the fake worker name that file to readers on "here".
fn put_local(f: &Fixture, dir: &tempfile::TempDir, attempt: &str, prefix: &[u8], spoil: impl Fn(&mut Vec<u8>)) {
    let mut w = f.worker.0.lock().unwrap();
    let mut data = w.data[attempt].clone();
    spoil(&mut data);
    let path = dir.path().join(format!("{attempt}.out"));
    std::fs::write(&path, [prefix, &data].concat()).unwrap();
    w.local.insert(attempt.into(), (path, prefix.len() as u64));
}

#[tokio::test]
async fn outputs_on_this_host_are_read_from_their_files() {
    let (f, dir) = on_this_host(5).await;
    // Each in a file after 7 bytes of another partition; the worker could
    // stream them too. a0 (3000 records) is over the in-memory segment
    // size, so it is streamed into a scratch file instead.
    for a in ["a0", "a1", "a2"] {
        put_local(&f, &dir, a, b"partit0", |_| {});
    }
    // a4's file is gone: it is fetched over the network instead.
    f.worker.0.lock().unwrap().local.insert("a4".into(), (dir.path().join("missing.out"), 0));
    let segments = shuffle(&f.task, &test_cfg()).await.unwrap();
    let w = f.worker.0.lock().unwrap();
    assert_eq!(w.local_asks, 5, "every first fetch named this host");
    assert_eq!((w.calls["a1"], w.calls["a2"], w.calls["a3"]), (1, 1, 1), "read from their files or streamed once");
    assert_eq!(w.calls["a0"], 2, "too big for memory: streamed");
    assert_eq!(w.calls["a4"], 2, "the unreadable file was then streamed");
    drop(w);
    check_merge(&f, segments);
}

#[tokio::test]
async fn a_local_file_with_other_bytes_is_refused_and_streamed() {
    let (f, dir) = on_this_host(2).await;
    put_local(&f, &dir, "a1", b"", |bytes| bytes[0] ^= 1);
    let segments = shuffle(&f.task, &test_cfg()).await.unwrap();
    assert_eq!(f.worker.0.lock().unwrap().calls["a1"], 2, "the checksum failed, then it was streamed");
    check_merge(&f, segments);
}
