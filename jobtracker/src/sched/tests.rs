//! Scheduler tests on a simulated cluster: explicit time, no network.

mod faults;
mod lifecycle;
mod policy;
mod stages;

use std::collections::BTreeMap;

use super::lifecycle::Finished;
use super::*;

pub(super) fn cfg() -> SchedConfig {
    SchedConfig {
        locality_wait_ms: 3000,
        worker_expiry_ms: 10_000,
        max_fetch_failures: 3,
        retained_jobs: 1000,
        restart_grace_ms: 3000,
    }
}

pub(super) fn prefs(dn: &str) -> Prefs {
    Prefs { hosts: vec![dn.to_string()], racks: vec!["/default-rack".to_string()] }
}

/// A MapReduce-shaped job: one map per entry of `maps`, `reduces` reducers.
pub(super) fn mr_draft(maps: Vec<Prefs>, reduces: u32) -> JobDraft {
    let mut stages = vec![StageDraft {
        name: "map".into(),
        letter: "m".into(),
        counter_suffix: "MAPS".into(),
        tasks: maps,
        max_attempts: 4,
        speculative: true,
        upstreams: vec![],
        slowstart: 0.0,
        commits_output: reduces == 0,
        outputs_on_workers: reduces > 0,
    }];
    if reduces > 0 {
        stages.push(StageDraft {
            name: "reduce".into(),
            letter: "r".into(),
            counter_suffix: "REDUCES".into(),
            tasks: vec![Prefs::default(); reduces as usize],
            max_attempts: 4,
            speculative: true,
            upstreams: vec![0],
            slowstart: 0.05,
            commits_output: true,
            outputs_on_workers: false,
        });
    }
    JobDraft { name: "test".into(), output: "/out".into(), doc: serde_json::Value::Null, stages }
}

/// A scheduler, a clock, and a record of what it asked for.
pub(super) struct Sim {
    pub(super) s: Scheduler,
    pub(super) now: i64,
    pub(super) seq: u32,
    /// Every launch, in order.
    pub(super) launches: Vec<Launch>,
    /// Every kill: (attempt, reason).
    pub(super) kills: Vec<(String, String)>,
    /// Every other action.
    pub(super) other: Vec<Action>,
}

impl Sim {
    pub(super) fn new() -> Sim {
        Sim::with(cfg())
    }

    pub(super) fn with(c: SchedConfig) -> Sim {
        Sim { s: Scheduler::new(c), now: 1_000_000, seq: 0, launches: Vec::new(), kills: Vec::new(), other: Vec::new() }
    }

    /// Registers worker `id` beside datanode `dn` (may be empty).
    pub(super) fn worker(&mut self, id: &str, dn: &str, slots: u32) {
        let reg = WorkerReg {
            id: id.into(),
            addr: format!("{id}:7000"),
            host: format!("host-{id}"),
            datanode: dn.into(),
            slots,
            cores: slots,
        };
        self.s.register_worker(reg, self.now);
    }

    pub(super) fn submit(&mut self, draft: JobDraft) -> String {
        self.seq += 1;
        let id = crate::ids::job_id(42, self.seq);
        let job = Scheduler::new_job(id.clone(), self.seq, "alice", "mapreduce", draft, self.now, self.now);
        self.s.add_job(job, self.now).unwrap();
        id
    }

    /// Runs the scheduler; launches are confirmed at once. Returns the new launches.
    pub(super) fn step(&mut self) -> Vec<Launch> {
        self.s.schedule(self.now);
        let mut new = Vec::new();
        for a in self.s.take_actions() {
            match a {
                Action::Launch(l) => {
                    self.s.attempt_launched(&l.attempt_id, self.now);
                    new.push(l);
                }
                Action::Kill { attempt_id, reason, .. } => self.kills.push((attempt_id, reason)),
                other => self.other.push(other),
            }
        }
        self.launches.extend(new.iter().cloned());
        new
    }

    pub(super) fn advance(&mut self, ms: i64) {
        self.now += ms;
        self.s.tick(self.now);
    }

    /// Heartbeats every live worker with no progress.
    pub(super) fn heartbeat_all(&mut self) {
        let ids: Vec<String> = self.s.workers().filter(|w| w.live).map(|w| w.id.clone()).collect();
        for id in ids {
            let running: Vec<AttemptProgress> = self
                .s
                .workers()
                .find(|w| w.id == id)
                .map(|w| {
                    w.running.iter().map(|a| AttemptProgress { attempt_id: a.clone(), ..Default::default() }).collect()
                })
                .unwrap_or_default();
            self.s.heartbeat(&id, running, self.now);
        }
    }

    pub(super) fn worker_of(&self, attempt_id: &str) -> String {
        let r = self.s.locate(attempt_id).expect("known attempt");
        self.s.attempt(r).unwrap().worker_id.clone()
    }

    pub(super) fn finish(&mut self, attempt_id: &str, state: AttemptState) {
        self.finish_with(attempt_id, state, "boom", "");
    }

    pub(super) fn finish_with(&mut self, attempt_id: &str, state: AttemptState, diag: &str, tail: &str) {
        let f = Finished {
            worker_id: self.worker_of(attempt_id),
            attempt_id: attempt_id.into(),
            state,
            diagnostics: diag.into(),
            stderr_tail: tail.into(),
            counters: vec![("TaskCounter".into(), "MAP_INPUT_RECORDS".into(), 10)],
            result_json: "{}".into(),
        };
        self.s.attempt_finished(f, self.now);
    }

    /// Finishes an attempt successfully and completes any task commit it needs.
    pub(super) fn succeed(&mut self, attempt_id: &str) {
        self.finish(attempt_id, AttemptState::Succeeded);
        self.commit_tasks();
    }

    /// Answers every pending CommitTask with success.
    pub(super) fn commit_tasks(&mut self) {
        for a in self.s.take_actions() {
            match a {
                Action::CommitTask { attempt_id, .. } => self.s.task_committed(&attempt_id, Ok(()), self.now),
                Action::Kill { attempt_id, reason, .. } => self.kills.push((attempt_id, reason)),
                Action::Launch(l) => {
                    self.s.attempt_launched(&l.attempt_id, self.now);
                    self.launches.push(l);
                }
                other => self.other.push(other),
            }
        }
        // A commit may have produced more actions (kills, job commit).
        for a in self.s.take_actions() {
            match a {
                Action::Kill { attempt_id, reason, .. } => self.kills.push((attempt_id, reason)),
                other => self.other.push(other),
            }
        }
    }

    pub(super) fn job(&self, id: &str) -> &Job {
        self.s.job(id).unwrap()
    }

    pub(super) fn attempt_state(&self, attempt_id: &str) -> AttemptState {
        let id = attempt_id;
        for j in self.s.jobs() {
            for s in &j.stages {
                for t in &s.tasks {
                    if let Some(a) = t.attempts.iter().find(|a| a.id == id) {
                        return a.state;
                    }
                }
            }
        }
        panic!("no attempt {id}")
    }

    /// Attempts holding a slot, per job.
    pub(super) fn running_per_job(&self) -> BTreeMap<String, u32> {
        self.s.jobs().map(|j| (j.id.clone(), j.rt.active)).collect()
    }

    pub(super) fn has_other(&self, pred: impl Fn(&Action) -> bool) -> bool {
        self.other.iter().any(pred)
    }
}

#[test]
fn first_task_launches_at_submission() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    let id = sim.submit(mr_draft(vec![Prefs::default(); 3], 1));
    let l = sim.step();
    assert_eq!(l.len(), 2, "both free slots are used at once");
    assert_eq!(l[0].job_id, id);
    assert_eq!(l[0].stage_name, "map");
    assert_eq!(l[0].attempt_id, "attempt_42_0001_m_000000_0");
    assert_eq!(l[0].worker_addr, "w1:7000");
    assert_eq!(sim.job(&id).first_running_ms, sim.now);
    let t = sim.job(&id).task(0, 0);
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(t.attempts[0].locality, Locality::NoPreference);
}

#[test]
fn empty_job_commits_at_once() {
    let mut sim = Sim::new();
    let id = sim.submit(mr_draft(vec![], 0));
    sim.step();
    assert_eq!(sim.job(&id).state, JobState::Committing);
    assert!(sim.has_other(|a| *a == Action::CommitJob { job_id: id.clone() }));
    sim.s.job_committed(&id, Ok(()), sim.now);
    assert_eq!(sim.job(&id).state, JobState::Succeeded);
}

#[test]
fn reduces_wait_for_every_map_launched_and_slowstart() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 3);
    let id = sim.submit(mr_draft(vec![Prefs::default(); 4], 1));
    let l = sim.step();
    assert_eq!(l.len(), 3);
    assert!(l.iter().all(|l| l.stage_name == "map"));
    // A map done: its slot goes to the last map, not to the reducer.
    sim.succeed(&l[0].attempt_id);
    let l2 = sim.step();
    assert_eq!(l2.len(), 1);
    assert_eq!(l2[0].stage_name, "map");
    // Every map launched and 1/4 done >= 5%: the reducer may start.
    sim.succeed(&l[1].attempt_id);
    let l3 = sim.step();
    assert_eq!(l3.len(), 1);
    assert_eq!(l3[0].stage_name, "reduce");
    assert_eq!(l3[0].task_id, format!("task_{}_r_000000", id.trim_start_matches("job_")));
}

#[test]
fn map_only_job_commits_tasks_then_the_job() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    let id = sim.submit(mr_draft(vec![Prefs::default(); 2], 0));
    let l = sim.step();
    sim.finish(&l[0].attempt_id, AttemptState::Succeeded);
    assert_eq!(sim.attempt_state(&l[0].attempt_id), AttemptState::Committing);
    let acts = sim.s.take_actions();
    assert!(acts.contains(&Action::CommitTask {
        job_id: id.clone(),
        task_id: l[0].task_id.clone(),
        attempt_id: l[0].attempt_id.clone()
    }));
    // The committing attempt no longer holds its slot.
    assert_eq!(sim.s.workers().next().unwrap().free(), 1);
    sim.s.task_committed(&l[0].attempt_id, Ok(()), sim.now);
    assert_eq!(sim.attempt_state(&l[0].attempt_id), AttemptState::Succeeded);
    sim.succeed(&l[1].attempt_id);
    assert_eq!(sim.job(&id).state, JobState::Committing);
    assert!(sim.has_other(|a| *a == Action::CommitJob { job_id: id.clone() }));
    sim.s.job_committed(&id, Ok(()), sim.now);
    let j = sim.job(&id);
    assert_eq!(j.state, JobState::Succeeded);
    assert!(j.stages[0].tasks.iter().all(|t| t.state == TaskState::Succeeded));
    // The worker is told to clean the job up.
    let r = sim.s.heartbeat("w1", vec![], sim.now);
    assert_eq!(r.cleanup, vec![id]);
}

#[test]
fn failed_task_commit_retries_the_task() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    let id = sim.submit(mr_draft(vec![Prefs::default()], 0));
    let l = sim.step();
    sim.finish(&l[0].attempt_id, AttemptState::Succeeded);
    sim.s.take_actions();
    sim.s.task_committed(&l[0].attempt_id, Err("rename failed".into()), sim.now);
    assert_eq!(sim.attempt_state(&l[0].attempt_id), AttemptState::Failed);
    assert!(
        sim.s.take_actions().contains(&Action::Discard { job_id: id.clone(), attempt_id: l[0].attempt_id.clone() })
    );
    let l2 = sim.step();
    assert_eq!(l2.len(), 1, "the task runs again");
    assert_eq!(sim.job(&id).task(0, 0).failures, 1);
}
