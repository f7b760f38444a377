//! Test doubles: an engine that plans jobs from a tiny JSON description and
//! records output operations, and a worker link that records launches and
//! kills (no DFS, no workers).

use futures::future::BoxFuture;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;
use tusk_proto::compute::LaunchTaskRequest;

use crate::engine::{Engine, LaunchPlan};
use crate::error::{JobtrackerError, Refusal, Result};
use crate::launcher::WorkerLink;
use crate::sched::{JobDraft, Launch, Prefs, StageDraft};

/// `{"maps": N, "reduces": R, "refuse": "message"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FakeSpec {
    maps: u32,
    reduces: u32,
    refuse: Option<String>,
}

/// An engine named "fake".
#[derive(Default)]
pub(crate) struct FakeEngine {
    /// "commit_task <attempt>", "commit_job <job>", "abort_job <job>", "discard <attempt>".
    pub(crate) calls: Mutex<Vec<String>>,
}

impl FakeEngine {
    pub(crate) fn called(&self, what: &str) -> bool {
        self.calls.lock().iter().any(|c| c == what)
    }

    fn record(&self, what: String) {
        self.calls.lock().push(what);
    }
}

pub(crate) fn fake_spec(maps: u32, reduces: u32) -> String {
    format!(r#"{{"maps": {maps}, "reduces": {reduces}}}"#)
}

impl Engine for FakeEngine {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn plan<'a>(&'a self, _user: &'a str, spec_json: &'a str) -> BoxFuture<'a, Result<JobDraft>> {
        Box::pin(async move {
            let spec: FakeSpec =
                serde_json::from_str(spec_json).map_err(|e| JobtrackerError::invalid(e.to_string()))?;
            if let Some(m) = spec.refuse {
                return Err(JobtrackerError::refused(Refusal::NotFound, m));
            }
            let stage = |name: &str, letter: &str, n: u32, upstreams: Vec<usize>| StageDraft {
                name: name.into(),
                letter: letter.into(),
                counter_suffix: format!("{}S", name.to_uppercase()),
                tasks: vec![Prefs::default(); n as usize],
                max_attempts: 2,
                speculative: false,
                commits_output: !upstreams.is_empty() || spec.reduces == 0,
                outputs_on_workers: upstreams.is_empty() && spec.reduces > 0,
                upstreams,
                slowstart: 1.0,
            };
            let mut stages = vec![stage("map", "m", spec.maps, vec![])];
            if spec.reduces > 0 {
                stages.push(stage("reduce", "r", spec.reduces, vec![0]));
            }
            Ok(JobDraft {
                name: "fake job".into(),
                output: "/out".into(),
                doc: serde_json::json!({"fake": true}),
                stages,
            })
        })
    }

    fn attach(&self, _job_id: &str, _user: &str, _doc: &serde_json::Value) -> Result<()> {
        Ok(())
    }

    fn detach(&self, _job_id: &str) {}

    fn launch(&self, l: &Launch) -> Result<LaunchPlan> {
        Ok(LaunchPlan {
            engine: "fake".into(),
            spec_json: format!(r#"{{"attempt": "{}"}}"#, l.attempt_id),
            memory_bytes: 1 << 20,
            progress_timeout_ms: 0,
            env: Default::default(),
        })
    }

    fn commit_task<'a>(
        &'a self,
        _job_id: &'a str,
        _task_id: &'a str,
        attempt_id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        self.record(format!("commit_task {attempt_id}"));
        Box::pin(async { Ok(()) })
    }

    fn discard_attempt<'a>(&'a self, _job_id: &'a str, attempt_id: &'a str) -> BoxFuture<'a, Result<()>> {
        self.record(format!("discard {attempt_id}"));
        Box::pin(async { Ok(()) })
    }

    fn commit_job<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, Result<()>> {
        self.record(format!("commit_job {job_id}"));
        Box::pin(async { Ok(()) })
    }

    fn abort_job<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, Result<()>> {
        self.record(format!("abort_job {job_id}"));
        Box::pin(async { Ok(()) })
    }
}

/// What the jobtracker asked of workers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sent {
    Launch { addr: String, req: LaunchTaskRequest },
    Kill { addr: String, attempt_id: String, reason: String },
}

/// A worker link that sends every call to a channel; launches to the
/// addresses in `refuse` fail.
pub(crate) struct FakeLink {
    tx: mpsc::UnboundedSender<Sent>,
    pub(crate) refuse: Mutex<HashSet<String>>,
}

impl FakeLink {
    pub(crate) fn new() -> (FakeLink, mpsc::UnboundedReceiver<Sent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (FakeLink { tx, refuse: Mutex::new(HashSet::new()) }, rx)
    }
}

impl WorkerLink for FakeLink {
    fn launch<'a>(&'a self, addr: &'a str, req: LaunchTaskRequest) -> BoxFuture<'a, std::result::Result<(), String>> {
        let refused = self.refuse.lock().contains(addr);
        let _ = self.tx.send(Sent::Launch { addr: addr.to_string(), req });
        Box::pin(async move { if refused { Err(format!("worker {addr}: connection refused")) } else { Ok(()) } })
    }

    fn kill<'a>(
        &'a self,
        addr: &'a str,
        attempt_id: &'a str,
        reason: &'a str,
    ) -> BoxFuture<'a, std::result::Result<bool, String>> {
        let sent =
            Sent::Kill { addr: addr.to_string(), attempt_id: attempt_id.to_string(), reason: reason.to_string() };
        let _ = self.tx.send(sent);
        Box::pin(async { Ok(true) })
    }

    fn forget(&self, _addr: &str) {}
}

/// The next message from the link, failing the test after 5 s.
pub(crate) async fn next_sent(rx: &mut mpsc::UnboundedReceiver<Sent>) -> Sent {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(s)) => s,
        other => panic!("nothing sent to workers: {other:?}"),
    }
}

/// Polls `cond` until it holds, failing the test after 5 s.
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
