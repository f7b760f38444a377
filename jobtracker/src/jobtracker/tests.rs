//! The jobtracker core with its background loops, a fake engine and a fake
//! worker link: event-driven launches, commits, kills, restarts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use tusk_proto::compute::LaunchTaskRequest;

use super::*;
use crate::background::{Persister, SchedulerLoop};
use crate::sched::{AttemptState, JobState};
use crate::testkit::{FakeEngine, FakeLink, Sent, eventually, fake_spec, next_sent};

struct Harness {
    jt: Arc<Jobtracker>,
    engine: Arc<FakeEngine>,
    link: Arc<FakeLink>,
    rx: mpsc::UnboundedReceiver<Sent>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn harness(dir: &Path) -> Harness {
    let cfg = JobtrackerConfig {
        state_dir: dir.to_path_buf(),
        heartbeat_interval_ms: 100,
        worker_expiry_ms: 5000,
        ..Default::default()
    };
    let (store, meta) = Store::open(dir, now_ms()).unwrap();
    let jobs = store.load_jobs().unwrap();
    let engine = Arc::new(FakeEngine::default());
    let (link, rx) = FakeLink::new();
    let link = Arc::new(link);
    let jt = Arc::new(Jobtracker::new(cfg, store, meta, vec![engine.clone()], link.clone()));
    jt.load(jobs);
    let (stop, stop_rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(SchedulerLoop::new(jt.clone()).run(stop_rx.clone())),
        tokio::spawn(Persister::new(jt.clone()).run(stop_rx)),
    ];
    Harness { jt, engine, link, rx, stop, tasks }
}

impl Harness {
    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await.unwrap();
        }
    }

    fn register(&self, id: &str, slots: u32) {
        let reg = WorkerReg {
            id: id.into(),
            addr: format!("{id}:1"),
            host: "127.0.0.1".into(),
            datanode: String::new(),
            slots,
            cores: slots,
        };
        self.jt.register_worker(tusk_proto::PROTOCOL_VERSION, reg).unwrap();
    }

    async fn next_launch(&mut self) -> (String, LaunchTaskRequest) {
        match next_sent(&mut self.rx).await {
            Sent::Launch { addr, req } => (addr, req),
            other => panic!("expected a launch, got {other:?}"),
        }
    }

    fn finish(&self, addr: &str, attempt_id: &str, state: AttemptState) {
        let worker_id = addr.trim_end_matches(":1").to_string();
        self.jt.attempt_finished(Finished {
            worker_id,
            attempt_id: attempt_id.into(),
            state,
            diagnostics: String::new(),
            stderr_tail: String::new(),
            counters: vec![("TaskCounter".into(), "RECORDS".into(), 1)],
            result_json: String::new(),
        });
    }

    fn state(&self, job_id: &str) -> JobState {
        self.jt.sched.lock().job(job_id).map(|j| j.state).unwrap()
    }
}

#[tokio::test]
async fn a_job_starts_at_once_and_runs_to_success() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(dir.path()).await;
    h.register("w1", 2);
    let t0 = tokio::time::Instant::now();
    let id = h.jt.submit("alice", "fake", &fake_spec(2, 1)).await.unwrap();
    let (addr, first) = h.next_launch().await;
    let latency = t0.elapsed();
    assert!(latency < Duration::from_millis(100), "submission to first launch took {latency:?}");
    assert_eq!((addr.as_str(), first.job_id.as_str(), first.engine.as_str()), ("w1:1", id.as_str(), "fake"));
    let (_, second) = h.next_launch().await;
    h.finish(&addr, &first.attempt_id, AttemptState::Succeeded);
    h.finish(&addr, &second.attempt_id, AttemptState::Succeeded);
    let (_, reduce) = h.next_launch().await;
    assert!(reduce.task_id.contains("_r_"));
    h.finish(&addr, &reduce.attempt_id, AttemptState::Succeeded);
    eventually("job succeeded", || h.state(&id) == JobState::Succeeded).await;
    assert!(h.engine.called(&format!("commit_task {}", reduce.attempt_id)));
    assert!(h.engine.called(&format!("commit_job {id}")));
    let r = h.jt.job_report(&id, true).unwrap();
    assert!(r.first_launch_ms >= 0 && r.first_launch_ms < 100, "first_launch_ms {}", r.first_launch_ms);
    assert_eq!(r.tasks.len(), 3);
    let c = r.counters.unwrap().counters;
    let get = |n: &str| c.iter().find(|c| c.name == n).map(|c| c.value);
    assert_eq!(get("RECORDS"), Some(3));
    assert_eq!(get("TOTAL_LAUNCHED_MAPS"), Some(2));
    assert_eq!(get("TOTAL_LAUNCHED_REDUCES"), Some(1));
    assert_eq!(h.jt.list_jobs(true).len(), 0);
    assert_eq!(h.jt.list_jobs(false).len(), 1);
    h.stop().await;
    let (store, _) = Store::open(dir.path(), 0).unwrap();
    let saved = store.load_jobs().unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].state, JobState::Succeeded);
    assert_eq!(saved[0].stages[1].tasks[0].attempts[0].state, AttemptState::Succeeded);
}

#[tokio::test]
async fn bad_jobs_are_refused_before_they_get_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path()).await;
    let err = h.jt.submit("alice", "fake", r#"{"refuse": "input path does not exist: /nope"}"#).await.unwrap_err();
    assert_eq!(err.to_string(), "input path does not exist: /nope");
    assert!(matches!(err, JobtrackerError::Refused { reason: Refusal::NotFound, .. }));
    let err = h.jt.submit("alice", "sql", "{}").await.unwrap_err();
    assert!(err.to_string().contains("unknown engine \"sql\""), "{err}");
    assert!(h.jt.submit("", "fake", &fake_spec(1, 0)).await.is_err());
    assert!(h.jt.list_jobs(false).is_empty());
    let id = h.jt.submit("alice", "fake", &fake_spec(1, 0)).await.unwrap();
    assert!(id.ends_with("_0001"), "refused jobs use no number: {id}");
    h.stop().await;
}

#[tokio::test]
async fn kill_answers_once_the_output_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(dir.path()).await;
    h.register("w1", 1);
    let id = h.jt.submit("alice", "fake", &fake_spec(1, 0)).await.unwrap();
    let (addr, l) = h.next_launch().await;
    let jt = h.jt.clone();
    let kill_id = id.clone();
    let kill = tokio::spawn(async move { jt.kill_job(&kill_id, "bob").await });
    match next_sent(&mut h.rx).await {
        Sent::Kill { attempt_id, reason, .. } => {
            assert_eq!(attempt_id, l.attempt_id);
            assert_eq!(reason, "job killed");
        }
        other => panic!("{other:?}"),
    }
    assert!(!kill.is_finished());
    h.finish(&addr, &l.attempt_id, AttemptState::Killed);
    let out = kill.await.unwrap().unwrap();
    assert!(out.killed);
    assert_eq!(out.state, JobState::Killed);
    assert!(h.engine.called(&format!("abort_job {id}")));
    assert!(!h.engine.called(&format!("discard {}", l.attempt_id)), "the abort deletes everything");
    let again = h.jt.kill_job(&id, "bob").await.unwrap();
    assert!(!again.killed);
    assert!(h.jt.kill_job("job_1_9999", "bob").await.is_err());
    h.stop().await;
}

#[tokio::test]
async fn a_refused_launch_goes_to_another_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(dir.path()).await;
    h.link.refuse.lock().insert("w1:1".into());
    h.register("w1", 1);
    h.register("w2", 1);
    let id = h.jt.submit("alice", "fake", &fake_spec(1, 0)).await.unwrap();
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let (addr, _) = h.next_launch().await;
        addrs.push(addr);
    }
    addrs.sort();
    assert_eq!(addrs, vec!["w1:1".to_string(), "w2:1".to_string()]);
    let r = h.jt.job_report(&id, true).unwrap();
    let diag: Vec<&str> = r.tasks[0].attempts.iter().map(|a| a.diagnostics.as_str()).collect();
    assert!(diag.iter().any(|d| d.starts_with("launch on worker w1 failed")), "{diag:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_finished_jobs_and_fails_running_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(dir.path()).await;
    h.register("w1", 1);
    let done = h.jt.submit("alice", "fake", &fake_spec(0, 0)).await.unwrap();
    eventually("empty job done", || h.state(&done) == JobState::Succeeded).await;
    let running = h.jt.submit("alice", "fake", &fake_spec(1, 0)).await.unwrap();
    let (_, l) = h.next_launch().await;
    eventually("attempt running", || {
        h.jt.job_report(&running, true).unwrap().tasks[0].attempts[0].state
            == tusk_proto::compute::AttemptState::AttemptRunning as i32
    })
    .await;
    h.stop().await;

    let h2 = harness(dir.path()).await;
    eventually("running job failed", || h2.state(&running) == JobState::Failed).await;
    let r = h2.jt.job_report(&running, true).unwrap();
    assert_eq!(r.diagnostics, "jobtracker restarted while the job was running");
    assert_eq!(r.tasks[0].attempts[0].attempt_id, l.attempt_id);
    assert!(h2.engine.called(&format!("abort_job {running}")));
    assert_eq!(h2.state(&done), JobState::Succeeded);
    let next = h2.jt.submit("alice", "fake", &fake_spec(0, 0)).await.unwrap();
    let prefix = |id: &str| id.rsplit_once('_').map(|(p, _)| p.to_string()).unwrap();
    assert_eq!(prefix(&next), prefix(&done), "ids keep the first start time");
    assert!(next.ends_with("_0003"), "{next}");
    h2.stop().await;
}

#[tokio::test]
async fn no_output_moves_when_the_committing_state_cannot_be_saved() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(dir.path()).await;
    h.register("w1", 1);
    let id = h.jt.submit("alice", "fake", &fake_spec(1, 0)).await.unwrap();
    let (addr, l) = h.next_launch().await;
    // A directory where the job file's temporary goes: every save fails.
    std::fs::create_dir_all(dir.path().join("jobs").join(format!("{id}.json.tmp")).join("x")).unwrap();
    h.finish(&addr, &l.attempt_id, AttemptState::Succeeded);
    eventually("job failed", || h.state(&id) == JobState::Failed).await;
    assert!(h.engine.called(&format!("commit_task {}", l.attempt_id)));
    assert!(!h.engine.called(&format!("commit_job {id}")), "the output moved without COMMITTING on disk");
    assert!(h.engine.called(&format!("abort_job {id}")));
    let r = h.jt.job_report(&id, false).unwrap();
    assert!(r.diagnostics.contains("saving the COMMITTING state"), "{}", r.diagnostics);
    h.stop().await;
}
