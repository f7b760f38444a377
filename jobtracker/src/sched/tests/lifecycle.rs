//! Jobs across their life: late results, restarts, history, persistence marks.

use super::*;

fn reload(job: &Job) -> Job {
    let text = serde_json::to_string(job).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_late_success_of_a_done_task_is_discarded() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    sim.worker("w2", "", 1);
    let id = sim.submit(mr_draft(vec![Prefs::default(); 2], 0));
    let l = sim.step();
    sim.advance(100);
    sim.succeed(&l[0].attempt_id);
    sim.advance(5000);
    // The straggler gets a speculative copy; both then report success.
    let spec = sim.step();
    assert_eq!(spec.len(), 1);
    assert!(spec[0].task_index == l[1].task_index);
    sim.succeed(&spec[0].attempt_id);
    sim.finish(&l[1].attempt_id, AttemptState::Succeeded);
    let j = sim.job(&id);
    let t = j.task(0, l[1].task_index);
    assert_eq!(t.success, Some(1), "the first success counts");
    assert_eq!(t.attempts[0].state, AttemptState::Killed);
    assert!(t.attempts[0].diagnostics.contains("succeeded"));
}

#[test]
fn a_job_round_trips_through_json() {
    let mut sim = Sim::new();
    sim.worker("w1", "10.0.0.1:9866", 2);
    let id = sim.submit(mr_draft(vec![prefs("10.0.0.1:9866"), prefs("10.0.0.2:9866")], 1));
    let l = sim.step();
    sim.succeed(&l[0].attempt_id);
    let j = sim.job(&id);
    let back = reload(j);
    // Everything but the attempts' results, which stay in memory only.
    let mut want = j.stages.clone();
    let attempts = want.iter_mut().flat_map(|s| s.tasks.iter_mut()).flat_map(|t| t.attempts.iter_mut());
    for a in attempts {
        a.result_json.clear();
    }
    assert!(j.stages.iter().flat_map(|s| &s.tasks).flat_map(|t| &t.attempts).any(|a| !a.result_json.is_empty()));
    assert_eq!(back.stages, want);
    assert_eq!((back.id.as_str(), back.state, back.submit_ms), (j.id.as_str(), j.state, j.submit_ms));
}

#[test]
fn restart_fails_running_jobs_and_recommits_committing_ones() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    let running = sim.submit(mr_draft(vec![Prefs::default(); 2], 0));
    let l = sim.step();
    sim.succeed(&l[0].attempt_id);
    let committing = sim.submit(mr_draft(vec![], 0));
    let done = sim.submit(mr_draft(vec![], 0));
    sim.s.job_committed(&done, Ok(()), sim.now);
    let saved: Vec<Job> = sim.s.jobs().map(reload).collect();
    assert_eq!(sim.job(&committing).state, JobState::Committing);

    let mut sim2 = Sim::new();
    sim2.now = sim.now + 60_000;
    for j in saved {
        sim2.s.load_job(j, sim2.now).unwrap();
    }
    let acts = sim2.s.take_actions();
    assert!(acts.contains(&Action::CommitJob { job_id: committing.clone() }));
    assert!(!acts.iter().any(|a| matches!(a, Action::AbortJob { .. })), "workers get a moment to re-register");
    let j = sim2.job(&running);
    assert_eq!(j.diagnostics, "jobtracker restarted while the job was running");
    assert_eq!(j.task(0, l[1].task_index).attempts[0].state, AttemptState::Killed);
    assert_eq!(j.task(0, l[0].task_index).state, TaskState::Succeeded);
    // A worker re-registering reports the old attempt: it is killed.
    sim2.worker("w1", "", 2);
    let old = AttemptProgress { attempt_id: l[1].attempt_id.clone(), ..Default::default() };
    assert_eq!(sim2.s.heartbeat("w1", vec![old], sim2.now).kill, vec![l[1].attempt_id.clone()]);
    assert!(sim2.step().is_empty(), "nothing of an old job runs again");
    sim2.advance(3000);
    assert!(sim2.s.take_actions().contains(&Action::AbortJob { job_id: running.clone() }));
    sim2.s.job_aborted(&running, None, sim2.now);
    sim2.s.job_committed(&committing, Ok(()), sim2.now);
    assert_eq!(sim2.job(&running).state, JobState::Failed);
    assert_eq!(sim2.job(&committing).state, JobState::Succeeded);
    assert_eq!(sim2.job(&done).state, JobState::Succeeded);
    assert_eq!(sim2.s.jobs().map(|j| j.seq).max(), Some(3));
}

#[test]
fn damaged_job_files_are_refused() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    let id = sim.submit(mr_draft(vec![Prefs::default()], 1));
    let l = sim.step();
    sim.succeed(&l[0].attempt_id);
    let good = reload(sim.job(&id));
    let mut s = Scheduler::new(cfg());
    let mut bad = good.clone();
    bad.stages[0].tasks[0].success = Some(5);
    assert!(s.load_job(bad, 0).unwrap_err().to_string().contains("names an attempt it does not have"));
    let mut bad = good.clone();
    bad.stages[1].upstreams = vec![1];
    assert!(s.load_job(bad, 0).is_err());
    s.load_job(good.clone(), 0).unwrap();
    assert!(s.load_job(good, 0).unwrap_err().to_string().contains("used twice"));
}

#[test]
fn a_failed_job_commit_aborts_the_job() {
    let mut sim = Sim::new();
    let id = sim.submit(mr_draft(vec![], 0));
    sim.s.take_actions();
    sim.s.job_committed(&id, Err("namenode unreachable".into()), sim.now);
    assert!(sim.s.take_actions().contains(&Action::AbortJob { job_id: id.clone() }));
    sim.s.job_aborted(&id, Some("still unreachable".into()), sim.now);
    let j = sim.job(&id);
    assert_eq!(j.state, JobState::Failed);
    assert!(j.diagnostics.starts_with("job commit failed: namenode unreachable"));
    assert!(j.diagnostics.contains("could not delete the output: still unreachable"));
}

#[test]
fn history_keeps_the_last_finished_jobs() {
    let mut sim = Sim::with(SchedConfig { retained_jobs: 2, ..cfg() });
    sim.worker("w1", "", 1);
    let running = sim.submit(mr_draft(vec![Prefs::default()], 0));
    sim.step();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = sim.submit(mr_draft(vec![], 0));
        sim.advance(10);
        sim.s.job_committed(&id, Ok(()), sim.now);
        ids.push(id);
    }
    let kept: Vec<String> = sim.s.jobs().map(|j| j.id.clone()).collect();
    assert_eq!(kept, vec![running, ids[2].clone(), ids[3].clone()]);
    assert_eq!(sim.s.take_forgotten(), vec![ids[0].clone(), ids[1].clone()]);
}

#[test]
fn changes_reach_the_disk_by_urgency() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    let id = sim.submit(mr_draft(vec![Prefs::default()], 0));
    let seq = sim.job(&id).seq;
    assert_eq!(sim.s.take_due(sim.now, false), vec![seq], "a new job is written at once");
    let l = sim.step();
    assert!(sim.s.take_due(sim.now, false).is_empty(), "a launch waits a moment");
    sim.advance(1000);
    assert_eq!(sim.s.take_due(sim.now, false), vec![seq]);
    let p = AttemptProgress { attempt_id: l[0].attempt_id.clone(), progress: 0.5, ..Default::default() };
    sim.s.heartbeat("w1", vec![p], sim.now);
    sim.advance(1000);
    assert!(sim.s.take_due(sim.now, false).is_empty(), "progress waits longer");
    assert_eq!(sim.s.take_due(sim.now, true), vec![seq], "unless forced");
}

#[test]
fn upstream_outputs_tell_stale_attempts_to_stop() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    let id = sim.submit(mr_draft(vec![Prefs::default()], 1));
    let l = sim.step();
    sim.succeed(&l[0].attempt_id);
    let r = sim.step();
    let outs = sim.s.upstream_outputs(&id, &r[0].attempt_id, None).unwrap();
    assert_eq!(
        outs,
        UpstreamOutputs { total: 1, outputs: vec![(0, l[0].attempt_id.clone(), "w1:7000".into())], abort: false }
    );
    assert!(sim.s.upstream_outputs(&id, "attempt_unknown", None).unwrap().abort);
    assert!(sim.s.upstream_outputs("job_0_0404", &r[0].attempt_id, None).is_err());
    sim.s.kill_job(&id, "", sim.now).unwrap();
    assert!(sim.s.upstream_outputs(&id, &r[0].attempt_id, None).unwrap().abort);
}

#[test]
fn only_the_latest_jobs_keep_their_attempts_results() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    let mut ids = Vec::new();
    for _ in 0..=crate::sched::RESULTS_KEPT {
        let id = sim.submit(mr_draft(vec![Prefs::default()], 0));
        let l = sim.step();
        sim.succeed(&l[0].attempt_id);
        sim.s.job_committed(&id, Ok(()), sim.now);
        assert!(sim.job(&id).state.is_finished());
        ids.push(id);
    }
    let result = |sim: &Sim, id: &str| sim.job(id).stages[0].tasks[0].attempts[0].result_json.clone();
    assert_eq!(result(&sim, &ids[0]), "", "the oldest job dropped its result");
    assert_eq!(result(&sim, &ids[1]), "{}");
    assert_eq!(result(&sim, &ids[crate::sched::RESULTS_KEPT]), "{}");
}
