//! The worker started as in production, against a fake jobtracker, running
//! a fake task executable (a shell script whose behaviour the launch picks
//! with `MODE`).

mod fake_jobtracker;

use super::*;
use crate::runtime::procfs;
use fake_jobtracker::FakeJobtracker;
use std::collections::HashMap;
use futures::StreamExt;
use std::os::unix::fs::PermissionsExt;
use tonic::transport::Channel;
use tusk_mapreduce::mapoutput::{INDEX_FILE, IndexEntry, OUTPUT_FILE, write_index};
use tusk_proto::compute::worker_service_client::WorkerServiceClient;
use tusk_proto::compute::{
    AttemptFinishedRequest, AttemptState, FetchMapOutputRequest, GetTaskLogRequest, KillTaskRequest, LaunchTaskRequest,
    WorkerHeartbeatResponse,
};

const JOB: &str = "job_1700000000000_0001";

const TASK_SCRIPT: &str = r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) ENGINE=$2; shift ;;
    --spec) SPEC=$2; shift ;;
    --output-dir) OUT=$2; shift ;;
    --scratch-dir) SCRATCH=$2; shift ;;
  esac
  shift
done
echo $$ > pid
case "$MODE" in
  ok)
    echo "plain output from $TUSK_ATTEMPT_ID in $(pwd) within $TUSK_TASK_MEMORY_BYTES bytes"
    test -d "$SCRATCH" || exit 9
    echo '@tusk {"progress":{"progress":0.5,"status":"halfway","counters":[["G","N",1]]}}'
    echo '@tusk {"done":{"result_json":"{\"partition_bytes\":[3]}","counters":[["G","N",2]]}}'
    ;;
  mapout)
    cp "$SRC/file.out" "$SRC/file.out.index" "$OUT/" || exit 5
    echo "engine $ENGINE"
    echo '@tusk {"done":{"result_json":"{}","counters":[]}}'
    ;;
  linger)
    echo $$ > "$OUT/pid"
    sleep 1000 &
    echo '@tusk {"done":{"result_json":"{}","counters":[]}}'
    sleep 1000
    ;;
  fail)
    i=0
    while [ $i -lt 30 ]; do echo "noise $i" >&2; i=$((i+1)); done
    echo "bad record at line 42" >&2
    exit 3
    ;;
  hang)
    echo '@tusk {"progress":{"progress":0.5,"status":"halfway","counters":[["G","N",7]]}}'
    sleep 1000 &
    sleep 1000
    ;;
  stubborn)
    trap '' TERM
    sleep 1000 &
    wait
    wait
    ;;
  mem)
    exec python3 -c "import time; b = b'x' * (300 << 20); time.sleep(1000)"
    ;;
esac
"#;

struct Setup {
    jt: FakeJobtracker,
    worker: Option<WorkerHandle>,
    client: WorkerServiceClient<Channel>,
    dir: tempfile::TempDir,
}

fn config(dir: &Path, jt_addr: &str, slots: u32) -> WorkerConfig {
    let script = dir.join("task.sh");
    std::fs::write(&script, TASK_SCRIPT).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    WorkerConfig {
        jobtracker_addr: jt_addr.to_string(),
        local_dirs: vec![dir.join("local1"), dir.join("local2")],
        slots,
        task_executable: Some(script),
        // The script does not speak the warm protocol (the process
        // runtime's tests cover warm starts).
        warm_tasks: Some(0),
        addr_file: Some(dir.join("run/worker.addr")),
        ..Default::default()
    }
}

async fn setup(slots: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (jt, jt_addr) = FakeJobtracker::start(0).await;
    let worker = start(config(dir.path(), &jt_addr, slots)).await.unwrap();
    let client = WorkerServiceClient::connect(format!("http://{}", worker.local_addr())).await.unwrap();
    jt.wait_for("registration", |h| h.registrations.first().cloned()).await;
    Setup { jt, worker: Some(worker), client, dir }
}

fn attempt(n: u32) -> String {
    format!("attempt_1700000000000_0001_m_{n:06}_0")
}

fn launch(n: u32, mode: &str) -> LaunchTaskRequest {
    LaunchTaskRequest {
        job_id: JOB.into(),
        task_id: format!("task_1700000000000_0001_m_{n:06}"),
        attempt_id: attempt(n),
        engine: "mapreduce".into(),
        spec_json: format!("{{\"fake\":{n}}}"),
        env: HashMap::from([("MODE".to_string(), mode.to_string())]),
        ..Default::default()
    }
}

impl Setup {
    fn worker(&self) -> &WorkerHandle {
        self.worker.as_ref().unwrap()
    }

    async fn launch(&mut self, req: LaunchTaskRequest) {
        self.client.launch_task(req).await.unwrap();
    }

    /// The attempt's directory, in whichever local dir it went.
    fn attempt_dir(&self, attempt_id: &str) -> PathBuf {
        self.find_attempt_dir(attempt_id).unwrap_or_else(|| panic!("no directory for {attempt_id}"))
    }

    fn find_attempt_dir(&self, attempt_id: &str) -> Option<PathBuf> {
        ["local1", "local2"]
            .iter()
            .map(|l| self.dir.path().join(l).join("jobs").join(JOB).join(attempt_id))
            .find(|d| d.exists())
    }

    /// Process group id of a running attempt (its main process wrote `pid`).
    async fn pgid(&self, attempt_id: &str) -> i32 {
        let mut text = String::new();
        eventually("the task's pid file", || {
            let file = self.find_attempt_dir(attempt_id).map(|d| d.join("work/pid"));
            text = file.and_then(|f| std::fs::read_to_string(f).ok()).unwrap_or_default();
            text.ends_with('\n')
        })
        .await;
        text.trim().parse().unwrap()
    }

    async fn log(&mut self, attempt_id: &str, stream: &str) -> String {
        let req = GetTaskLogRequest { attempt_id: attempt_id.into(), stream: stream.into(), offset: 0, max_len: 0 };
        String::from_utf8(self.client.get_task_log(req).await.unwrap().into_inner().data).unwrap()
    }

    async fn fetch(&mut self, attempt_id: &str, partition: u32) -> Result<(u64, u32, Vec<u8>, usize), tonic::Status> {
        let req = FetchMapOutputRequest { job_id: JOB.into(), attempt_id: attempt_id.into(), partition, ..Default::default() };
        let mut stream = self.client.fetch_map_output(req).await?.into_inner();
        let (mut total, mut crc, mut data, mut chunks) = (0, 0, Vec::new(), 0);
        while let Some(c) = stream.message().await? {
            if chunks == 0 {
                (total, crc) = (c.total_len, c.crc32c);
            }
            chunks += 1;
            data.extend_from_slice(&c.data);
        }
        Ok((total, crc, data, chunks))
    }
}

/// Polls `cond` until it holds, failing the test after 20 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state(f: &AttemptFinishedRequest) -> AttemptState {
    AttemptState::try_from(f.state).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_reports_done_succeeds() {
    let mut s = setup(2).await;
    let reg = s.jt.with(|h| h.registrations[0].clone());
    assert_eq!(reg.addr, s.worker().advertised_addr());
    assert_eq!((reg.slots, reg.host.as_str(), reg.runtime.as_str()), (2, "127.0.0.1", "process"));
    assert_eq!(reg.memory_bytes, 2 << 30);
    assert_eq!(reg.protocol_version, tusk_proto::PROTOCOL_VERSION);
    let addr_file = std::fs::read_to_string(s.dir.path().join("run/worker.addr")).unwrap();
    assert_eq!(addr_file.trim(), s.worker().local_addr().to_string());

    s.launch(launch(0, "ok")).await;
    let f = s.jt.finished(&attempt(0)).await;
    assert_eq!(state(&f), AttemptState::AttemptSucceeded, "{f:?}");
    assert_eq!(f.worker_id, s.worker().worker_id());
    assert_eq!(f.result_json, "{\"partition_bytes\":[3]}");
    let c = &f.counters.as_ref().unwrap().counters;
    assert_eq!((c[0].group.as_str(), c[0].name.as_str(), c[0].value), ("G", "N", 2));

    let dir = s.attempt_dir(&attempt(0));
    assert_eq!(std::fs::read_to_string(dir.join("task.json")).unwrap(), "{\"fake\":0}");
    let out = s.log(&attempt(0), "stdout").await;
    let cwd = std::fs::canonicalize(&dir).unwrap().join("work");
    // The task learns its id and its memory limit (the default, 1 GiB).
    assert_eq!(out, format!("plain output from {} in {} within {} bytes\n", attempt(0), cwd.display(), 1u64 << 30));
    // A finished attempt keeps its logs and, having succeeded, its output.
    eventually("work/ and scratch/ to go", || !dir.join("work").exists() && !dir.join("scratch").exists()).await;
    assert!(dir.join("output").is_dir() && dir.join("stderr").is_file());
    // The slot is free again and the attempt no longer listed once reported.
    s.jt.wait_for("a heartbeat with every slot free", |h| {
        h.heartbeats.last().filter(|hb| hb.free_slots == 2 && hb.running.is_empty()).map(|_| ())
    })
    .await;
    s.worker.take().unwrap().shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_done_line_commits_a_task_that_then_lingers() {
    let mut s = setup(1).await;
    s.launch(launch(0, "linger")).await;
    let f = s.jt.finished(&attempt(0)).await;
    // A succeeded attempt keeps its output directory (work/ goes at once).
    let pid_file = s.attempt_dir(&attempt(0)).join("output/pid");
    let pgid: i32 = std::fs::read_to_string(pid_file).unwrap().trim().parse().unwrap();
    // Reported while the task still runs: the done line is its commit.
    assert_eq!(state(&f), AttemptState::AttemptSucceeded, "{f:?}");
    assert!(!procfs::group_members(pgid).is_empty(), "the task was waited for");
    // The slot is free for the next task at once.
    s.jt.wait_for("a heartbeat with the slot free", |h| h.heartbeats.last().filter(|hb| hb.free_slots == 1).map(|_| ()))
        .await;
    // Its processes go after the exit grace period.
    eventually("the lingering task's processes to die", || procfs::group_members(pgid).is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_fails_with_its_stderr_tail() {
    let mut s = setup(1).await;
    s.launch(launch(0, "fail")).await;
    let f = s.jt.finished(&attempt(0)).await;
    assert_eq!(state(&f), AttemptState::AttemptFailed);
    assert_eq!(f.diagnostics, "exit status 3: bad record at line 42");
    let tail: Vec<&str> = f.stderr_tail.lines().collect();
    assert_eq!(tail.len(), 20);
    assert_eq!((tail[0], tail[19]), ("noise 11", "bad record at line 42"));
    assert!(s.log(&attempt(0), "").await.starts_with("noise 0\n"));
    let dir = s.attempt_dir(&attempt(0));
    eventually("a failed attempt's output to go", || !dir.join("output").exists()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_over_its_memory_limit_is_killed() {
    let mut s = setup(1).await;
    s.launch(LaunchTaskRequest { memory_bytes: 100 << 20, ..launch(0, "mem") }).await;
    let f = s.jt.finished(&attempt(0)).await;
    assert_eq!(state(&f), AttemptState::AttemptFailed, "{f:?}");
    assert!(
        f.diagnostics.starts_with("memory ") && f.diagnostics.ends_with(" exceeds the limit of 100.0 MiB"),
        "{}",
        f.diagnostics
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_without_progress_is_killed_after_the_timeout() {
    let mut s = setup(1).await;
    s.launch(LaunchTaskRequest { progress_timeout_ms: 1000, ..launch(0, "hang") }).await;
    let pgid = s.pgid(&attempt(0)).await;
    let f = s.jt.finished(&attempt(0)).await;
    assert_eq!(state(&f), AttemptState::AttemptFailed);
    assert_eq!(f.diagnostics, "no progress for 1 s");
    eventually("the task's processes to die", || procfs::group_members(pgid).is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_task_stops_a_stubborn_group_and_reports_killed() {
    let mut s = setup(1).await;
    s.launch(launch(0, "stubborn")).await;
    let pgid = s.pgid(&attempt(0)).await;
    eventually("the background sleep", || procfs::group_members(pgid).len() >= 2).await;
    let asked = tokio::time::Instant::now();
    let req = KillTaskRequest { attempt_id: attempt(0), reason: "speculative loser".into() };
    assert!(s.client.kill_task(req).await.unwrap().into_inner().found);
    let f = s.jt.finished(&attempt(0)).await;
    assert!(asked.elapsed() >= KILL_GRACE_IN_TESTS, "SIGTERM was ignored: SIGKILL comes after the grace");
    assert_eq!((state(&f), f.diagnostics.as_str()), (AttemptState::AttemptKilled, "speculative loser"));
    eventually("the task's processes to die", || procfs::group_members(pgid).is_empty()).await;
    let req = KillTaskRequest { attempt_id: attempt(9), reason: String::new() };
    assert!(!s.client.kill_task(req).await.unwrap().into_inner().found);
}

const KILL_GRACE_IN_TESTS: Duration = Duration::from_millis(900);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_beyond_the_slots_are_refused() {
    let mut s = setup(1).await;
    s.launch(launch(0, "hang")).await;
    // Launching the same attempt again is a no-op, not a second process.
    s.launch(launch(0, "hang")).await;
    let e = s.client.launch_task(launch(1, "ok")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(e.message().contains(&attempt(1)) && e.message().contains("all 1 slots"), "{}", e.message());
    let bad = LaunchTaskRequest { attempt_id: "../../etc".into(), ..launch(2, "ok") };
    assert_eq!(s.client.launch_task(bad).await.unwrap_err().code(), tonic::Code::InvalidArgument);

    s.client.kill_task(KillTaskRequest { attempt_id: attempt(0), reason: "make room".into() }).await.unwrap();
    s.jt.finished(&attempt(0)).await;
    s.launch(launch(1, "ok")).await;
    assert_eq!(state(&s.jt.finished(&attempt(1)).await), AttemptState::AttemptSucceeded);
    assert_eq!(s.jt.with(|h| h.finished.len()), 2);
}

/// A map output of three partitions (the middle one over 2 MiB, the last
/// empty) in `<dir>/src`, for the `mapout` mode to copy.
fn map_output_source(dir: &Path) -> (PathBuf, Vec<Vec<u8>>, Vec<IndexEntry>) {
    let src = dir.join("src");
    std::fs::create_dir(&src).unwrap();
    let parts: Vec<Vec<u8>> = vec![b"first".to_vec(), (0..(2 << 20) + 3).map(|i| (i % 253) as u8).collect(), vec![]];
    let mut entries = Vec::new();
    let mut offset = 0;
    for p in &parts {
        entries.push(IndexEntry { offset, length: p.len() as u64, crc32c: crc32c::crc32c(p) });
        offset += p.len() as u64;
    }
    std::fs::write(src.join(OUTPUT_FILE), parts.concat()).unwrap();
    write_index(&src.join(INDEX_FILE), &entries).unwrap();
    (src, parts, entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_map_output_serves_the_partition_bytes() {
    let mut s = setup(1).await;
    let (src, parts, entries) = map_output_source(s.dir.path());
    let mut req = launch(0, "mapout");
    req.engine = String::new();
    req.env.insert("SRC".into(), src.display().to_string());
    s.launch(req).await;
    assert_eq!(state(&s.jt.finished(&attempt(0)).await), AttemptState::AttemptSucceeded);
    assert_eq!(s.log(&attempt(0), "stdout").await, "engine mapreduce\n", "no engine named: mapreduce");

    let (total, crc, data, chunks) = s.fetch(&attempt(0), 1).await.unwrap();
    assert_eq!((total, crc, chunks), (parts[1].len() as u64, entries[1].crc32c, 3));
    assert!(data == parts[1], "partition 1 bytes differ");
    assert_eq!(s.fetch(&attempt(0), 0).await.unwrap(), (5, entries[0].crc32c, b"first".to_vec(), 1));
    assert_eq!(s.fetch(&attempt(0), 2).await.unwrap(), (0, entries[2].crc32c, vec![], 1));

    // A reader on the worker's own host is told where the bytes are.
    let ask = |host: &str| FetchMapOutputRequest {
        job_id: JOB.into(),
        attempt_id: attempt(0),
        partition: 1,
        reader_host: host.into(),
    };
    let chunks: Vec<_> = s.client.fetch_map_output(ask("127.0.0.1")).await.unwrap().into_inner().collect().await;
    let [Ok(c)] = chunks.as_slice() else { panic!("one chunk expected: {chunks:?}") };
    assert!(c.data.is_empty() && c.local_path.ends_with(OUTPUT_FILE), "{c:?}");
    assert_eq!((c.total_len, c.crc32c, c.local_offset), (parts[1].len() as u64, entries[1].crc32c, entries[1].offset));
    let bytes = std::fs::read(&c.local_path).unwrap();
    assert!(bytes[c.local_offset as usize..][..parts[1].len()] == parts[1][..], "the named range holds the partition");
    // A reader elsewhere gets the bytes.
    let chunks: Vec<_> = s.client.fetch_map_output(ask("10.9.9.9")).await.unwrap().into_inner().collect().await;
    assert!(chunks.len() == 3 && chunks.iter().all(|c| c.as_ref().is_ok_and(|c| c.local_path.is_empty())), "{chunks:?}");

    let e = s.fetch(&attempt(0), 3).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = s.fetch(&attempt(5), 0).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains(&attempt(5)), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_attempts_run_with_their_engine_and_serve_shuffle_output_like_maps() {
    let mut s = setup(1).await;
    let (src, parts, entries) = map_output_source(s.dir.path());
    let mut req = launch(0, "mapout");
    req.engine = "sql".into();
    req.env.insert("SRC".into(), src.display().to_string());
    s.launch(req).await;
    assert_eq!(state(&s.jt.finished(&attempt(0)).await), AttemptState::AttemptSucceeded);
    assert_eq!(s.log(&attempt(0), "stdout").await, "engine sql\n");
    let (total, crc, data, _) = s.fetch(&attempt(0), 1).await.unwrap();
    assert_eq!((total, crc), (parts[1].len() as u64, entries[1].crc32c));
    assert!(data == parts[1], "partition 1 bytes differ");

    let e = s.client.launch_task(LaunchTaskRequest { engine: "spark".into(), ..launch(1, "ok") }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("unknown engine 'spark' (this worker runs: mapreduce, sql)"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_carry_progress_and_their_kills_are_carried_out() {
    let mut s = setup(2).await;
    s.launch(launch(0, "hang")).await;
    let hb =
        s.jt.wait_for("a heartbeat with the attempt's progress", |h| {
            h.heartbeats.iter().find(|hb| hb.running.iter().any(|r| r.progress == 0.5)).cloned()
        })
        .await;
    assert_eq!(hb.free_slots, 1);
    assert_eq!(hb.worker_id, s.worker().worker_id());
    let p = &hb.running[0];
    assert_eq!((p.attempt_id.as_str(), p.status.as_str()), (attempt(0).as_str(), "halfway"));
    assert_eq!(p.counters.as_ref().unwrap().counters[0].value, 7);

    s.jt.answer_next(WorkerHeartbeatResponse { kill_attempts: vec![attempt(0)], ..Default::default() });
    let f = s.jt.finished(&attempt(0)).await;
    assert_eq!((state(&f), f.diagnostics.as_str()), (AttemptState::AttemptKilled, "killed by the jobtracker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reregistering_takes_a_new_id_and_drops_the_old_attempts() {
    let mut s = setup(1).await;
    let first_id = s.worker().worker_id();
    s.launch(launch(0, "hang")).await;
    let pgid = s.pgid(&attempt(0)).await;
    s.jt.answer_next(WorkerHeartbeatResponse { reregister: true, ..Default::default() });
    let second = s.jt.wait_for("a second registration", |h| h.registrations.get(1).cloned()).await;
    assert_ne!(second.worker_id, first_id);
    assert_eq!(s.worker().worker_id(), second.worker_id);
    eventually("the old attempt's processes to die", || procfs::group_members(pgid).is_empty()).await;
    // Its slot is free for the new identity, and it is never reported.
    s.jt.wait_for("a heartbeat of the new identity with a free slot", |h| {
        h.heartbeats.last().filter(|hb| hb.worker_id == second.worker_id && hb.free_slots == 1).map(|_| ())
    })
    .await;
    s.launch(launch(1, "ok")).await;
    s.jt.finished(&attempt(1)).await;
    assert!(s.jt.with(|h| h.finished.iter().all(|f| f.attempt_id != attempt(0))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_the_job_and_keeps_its_logs() {
    let mut s = setup(1).await;
    s.launch(launch(0, "ok")).await;
    s.jt.finished(&attempt(0)).await;
    let job_dir = s.attempt_dir(&attempt(0)).parent().unwrap().to_path_buf();
    s.jt.answer_next(WorkerHeartbeatResponse { cleanup_jobs: vec![JOB.into()], ..Default::default() });
    eventually("the job's directory to go", || !job_dir.exists()).await;
    assert!(s.log(&attempt(0), "stdout").await.starts_with("plain output"));
    let e = s.fetch(&attempt(0), 0).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_retried_until_the_jobtracker_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (jt, jt_addr) = FakeJobtracker::start(3).await;
    let worker = start(config(dir.path(), &jt_addr, 1)).await.unwrap();
    let reg = jt.wait_for("a registration", |h| h.registrations.first().cloned()).await;
    assert_eq!(reg.worker_id, worker.worker_id());
    assert_eq!(jt.with(|h| h.refuse_registrations), 0);
    worker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_kills_running_attempts_and_reports_them() {
    let mut s = setup(1).await;
    s.launch(launch(0, "hang")).await;
    let pgid = s.pgid(&attempt(0)).await;
    s.worker.take().unwrap().shutdown().await.unwrap();
    let f = s.jt.finished(&attempt(0)).await;
    assert_eq!((state(&f), f.diagnostics.as_str()), (AttemptState::AttemptKilled, "worker shutting down"));
    eventually("the task's processes to die", || procfs::group_members(pgid).is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_cannot_start_fails() {
    let mut s = setup(1).await;
    let script = s.dir.path().join("task.sh");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    s.launch(launch(0, "ok")).await;
    let f = s.jt.finished(&attempt(0)).await;
    assert_eq!(state(&f), AttemptState::AttemptFailed);
    assert!(
        f.diagnostics.starts_with("cannot start the task: ") && f.diagnostics.contains("task.sh"),
        "{}",
        f.diagnostics
    );
}

#[tokio::test]
async fn bad_configurations_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), "127.0.0.1:1", 1);
    c.task_executable = Some(dir.path().join("missing-tusk"));
    let e = start(c).await.err().unwrap().to_string();
    assert!(e.contains("task_executable") && e.contains("missing-tusk"), "{e}");
    let c = WorkerConfig { runtime: "docker".into(), ..config(dir.path(), "127.0.0.1:1", 1) };
    assert!(start(c).await.err().unwrap().to_string().contains("runtime"));
}
