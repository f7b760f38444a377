//! Faults: failed attempts, lost workers, fetch failures, failed launches.

use super::*;

#[test]
fn a_failed_attempt_is_retried_on_another_worker() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    sim.worker("w2", "", 1);
    let id = sim.submit(mr_draft(vec![Prefs::default()], 0));
    let l = sim.step();
    let first = l[0].worker_id.clone();
    sim.finish(&l[0].attempt_id, AttemptState::Failed);
    let l2 = sim.step();
    assert_eq!(l2.len(), 1);
    assert_ne!(l2[0].worker_id, first, "avoids the worker where it failed");
    assert_eq!(l2[0].attempt_number, 1);
    // It fails there too: with every live worker tried, any worker will do.
    sim.finish(&l2[0].attempt_id, AttemptState::Failed);
    assert_eq!(sim.step().len(), 1);
    let j = sim.job(&id);
    assert_eq!(j.task(0, 0).failures, 2);
    assert_eq!(j.stages[0].stats.failed, 2);
}

#[test]
fn killed_attempts_do_not_count_as_failures() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    let id = sim.submit(mr_draft(vec![Prefs::default()], 0));
    for _ in 0..6 {
        let l = sim.step();
        sim.finish(&l[0].attempt_id, AttemptState::Killed);
    }
    let j = sim.job(&id);
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.task(0, 0).failures, 0);
    assert_eq!(j.stages[0].stats.killed, 6);
}

#[test]
fn a_task_failing_max_attempts_times_fails_the_job() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    sim.worker("w2", "", 2);
    let id = sim.submit(mr_draft(vec![Prefs::default(), Prefs::default()], 0));
    let l = sim.step();
    let other = l[1].attempt_id.clone();
    let mut failing = l[0].attempt_id.clone();
    for n in 0..4 {
        sim.finish_with(&failing, AttemptState::Failed, "exit status 1: bad record", "line 1\nTraceback: bad record\n");
        if n < 3 {
            let l = sim.step();
            assert_eq!(l.len(), 1);
            failing = l[0].attempt_id.clone();
        }
    }
    let j = sim.job(&id);
    assert_eq!(j.state, JobState::Running, "aborting: reported as running until the output is gone");
    assert_eq!(j.ending, Some(Ending::Fail));
    let host = sim.s.workers().find(|w| w.id == sim.worker_of(&failing)).unwrap().host.clone();
    assert_eq!(
        j.diagnostics,
        format!(
            "task {} failed 4 times; last attempt {failing} on worker {host}: exit status 1: bad record\nline 1\nTraceback: bad record",
            j.task(0, 0).id
        )
    );
    // The other running attempt is killed; the abort waits for it.
    let acts = sim.s.take_actions();
    assert!(acts.iter().any(
        |a| matches!(a, Action::Kill { attempt_id, reason, .. } if *attempt_id == other && reason == "job failed")
    ));
    assert!(!acts.iter().any(|a| matches!(a, Action::AbortJob { .. })));
    assert!(sim.step().is_empty(), "a failing job launches nothing");
    sim.finish(&other, AttemptState::Killed);
    assert!(sim.s.take_actions().contains(&Action::AbortJob { job_id: id.clone() }));
    sim.s.job_aborted(&id, None, sim.now);
    let j = sim.job(&id);
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.task(0, 0).state, TaskState::Failed);
    assert_eq!(j.task(0, 1).state, TaskState::Killed);
    assert_eq!(j.stages[0].stats.failed, 4);
}

#[test]
fn an_ending_job_stops_waiting_for_attempts_after_the_drain_timeout() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    let id = sim.submit(mr_draft(vec![Prefs::default(); 2], 0));
    let l = sim.step();
    let out = sim.s.kill_job(&id, "bob", sim.now).unwrap();
    assert!(out.killed);
    sim.step();
    assert_eq!(sim.kills.len(), 2);
    sim.advance(DRAIN_TIMEOUT_MS);
    assert!(sim.s.take_actions().contains(&Action::AbortJob { job_id: id.clone() }));
    assert_eq!(sim.attempt_state(&l[0].attempt_id), AttemptState::Killed);
    assert_eq!(sim.s.workers().next().unwrap().free(), 2, "slots are given back");
    sim.s.job_aborted(&id, None, sim.now);
    assert_eq!(sim.job(&id).state, JobState::Killed);
    assert_eq!(sim.job(&id).diagnostics, "killed by bob");
    let again = sim.s.kill_job(&id, "bob", sim.now).unwrap();
    assert!(!again.killed);
    assert_eq!(again.state, JobState::Killed);
    assert!(sim.s.kill_job("job_1_0099", "bob", sim.now).is_err());
}

#[test]
fn a_lost_worker_reruns_running_attempts_and_map_outputs_still_needed() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    sim.worker("w2", "", 2);
    let id = sim.submit(mr_draft(vec![Prefs::default(); 3], 1));
    let l = sim.step();
    assert_eq!(l.len(), 3);
    let on_w1: Vec<&Launch> = l.iter().filter(|l| l.worker_id == "w1").collect();
    let on_w2: Vec<&Launch> = l.iter().filter(|l| l.worker_id == "w2").collect();
    assert_eq!((on_w1.len(), on_w2.len()), (2, 1));
    // A map on w1 succeeds, the other is still running there.
    sim.succeed(&on_w1[0].attempt_id);
    sim.succeed(&on_w2[0].attempt_id);
    let r = sim.step();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].stage_name, "reduce");
    let outs = sim.s.upstream_outputs(&id, &r[0].attempt_id, None).unwrap();
    assert_eq!((outs.total, outs.outputs.len()), (3, 2));
    // w1 goes silent; w2 keeps heartbeating.
    for _ in 0..11 {
        sim.advance(1000);
        sim.s.heartbeat("w2", vec![], sim.now);
    }
    assert!(!sim.s.workers().find(|w| w.id == "w1").unwrap().live);
    let a = sim.job(&id).task(0, on_w1[1].task_index).attempts[0].clone();
    assert_eq!(a.state, AttemptState::Killed);
    assert_eq!(a.diagnostics, "worker w1 lost");
    // Its finished map output is gone too: that map is pending again.
    let done = sim.job(&id).task(0, on_w1[0].task_index).clone();
    assert_eq!(done.state, TaskState::Pending);
    assert_eq!(done.attempts[0].state, AttemptState::Killed);
    let outs = sim.s.upstream_outputs(&id, &r[0].attempt_id, None).unwrap();
    assert_eq!(outs.outputs.len(), 1, "only the map on w2 is listed");
    let l2 = sim.step();
    assert!(sim.has_other(|a| *a == Action::ForgetWorker { addr: "w1:7000".into() }));
    assert_eq!(l2.len(), 1, "w2 has one free slot (the reducer holds the other)");
    assert_eq!(l2[0].worker_id, "w2");
    // The lost worker must register again, under a new record.
    assert!(sim.s.heartbeat("w1", vec![], sim.now).reregister);
}

#[test]
fn a_lost_worker_does_not_rerun_committed_map_only_output() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    sim.worker("w2", "", 1);
    let id = sim.submit(mr_draft(vec![Prefs::default(); 2], 0));
    let l = sim.step();
    sim.succeed(&l[0].attempt_id);
    let w = l[0].worker_id.clone();
    sim.s.lose_worker(&w, "worker lost", sim.now);
    assert_eq!(sim.job(&id).task(0, l[0].task_index).state, TaskState::Succeeded);
}

#[test]
fn a_worker_registering_again_loses_its_old_attempts() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    let id = sim.submit(mr_draft(vec![Prefs::default()], 0));
    let l = sim.step();
    sim.worker("w1", "", 1);
    assert_eq!(sim.attempt_state(&l[0].attempt_id), AttemptState::Killed);
    let l2 = sim.step();
    assert_eq!(l2.len(), 1);
    // Its old attempt, if still reported, is killed.
    let old = AttemptProgress { attempt_id: l[0].attempt_id.clone(), ..Default::default() };
    let r = sim.s.heartbeat("w1", vec![old], sim.now);
    assert_eq!(r.kill, vec![l[0].attempt_id.clone()]);
    assert_eq!(sim.job(&id).task(0, 0).failures, 0);
}

#[test]
fn heartbeats_record_progress_and_kill_unknown_attempts() {
    let mut sim = Sim::new();
    assert!(sim.s.heartbeat("nobody", vec![], sim.now).reregister);
    sim.worker("w1", "", 1);
    let id = sim.submit(mr_draft(vec![Prefs::default()], 0));
    sim.s.schedule(sim.now);
    let l = match sim.s.take_actions().remove(0) {
        Action::Launch(l) => l,
        other => panic!("{other:?}"),
    };
    // The heartbeat confirms the attempt runs even before the launch answer.
    let p = AttemptProgress {
        attempt_id: l.attempt_id.clone(),
        progress: 0.25,
        status: "reading".into(),
        counters: vec![("G".into(), "N".into(), 5)],
    };
    let stray = AttemptProgress { attempt_id: "attempt_9_0001_m_000000_0".into(), ..Default::default() };
    let r = sim.s.heartbeat("w1", vec![p, stray], sim.now);
    assert_eq!(r.kill, vec!["attempt_9_0001_m_000000_0".to_string()]);
    let a = &sim.job(&id).task(0, 0).attempts[0];
    assert_eq!((a.state, a.progress, a.status.as_str()), (AttemptState::Running, 0.25, "reading"));
    assert_eq!(sim.job(&id).stage_progress(0), 0.25);
}

#[test]
fn an_attempt_ending_before_its_launch_answer_still_counts_as_started() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    let id = sim.submit(mr_draft(vec![Prefs::default()], 0));
    sim.s.schedule(sim.now);
    let Action::Launch(l) = sim.s.take_actions().remove(0) else { panic!() };
    sim.advance(7);
    sim.finish(&l.attempt_id, AttemptState::Failed);
    assert_eq!(sim.job(&id).first_running_ms, sim.now);
    assert_eq!(sim.attempt_state(&l.attempt_id), AttemptState::Failed);
    // The late launch answer changes nothing.
    sim.s.attempt_launched(&l.attempt_id, sim.now);
    assert_eq!(sim.attempt_state(&l.attempt_id), AttemptState::Failed);
}

#[test]
fn fetch_failures_rerun_a_map_after_the_threshold() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    sim.worker("w2", "", 2);
    let id = sim.submit(mr_draft(vec![Prefs::default(); 2], 1));
    let l = sim.step();
    sim.succeed(&l[0].attempt_id);
    sim.succeed(&l[1].attempt_id);
    let r = sim.step();
    let red = r[0].attempt_id.clone();
    let bad = l[0].attempt_id.clone();
    for _ in 0..2 {
        sim.s.fetch_failure(&id, &red, &bad, "connection reset", sim.now).unwrap();
    }
    assert_eq!(sim.attempt_state(&bad), AttemptState::Succeeded, "two reports are not enough");
    sim.s.fetch_failure(&id, &red, &bad, "connection reset", sim.now).unwrap();
    assert_eq!(sim.attempt_state(&bad), AttemptState::Failed);
    let t = sim.job(&id).task(0, l[0].task_index);
    assert_eq!(t.failures, 1);
    assert!(t.attempts[0].diagnostics.contains("too many fetch failures (3)"));
    let outs = sim.s.upstream_outputs(&id, &red, None).unwrap();
    assert_eq!(outs.outputs.iter().map(|o| o.0).collect::<Vec<_>>(), vec![l[1].task_index]);
    let again = sim.step();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].task_index, l[0].task_index);
    assert_ne!(again[0].worker_id, l[0].worker_id, "avoids the worker that could not serve it");
    sim.succeed(&again[0].attempt_id);
    let outs = sim.s.upstream_outputs(&id, &red, None).unwrap();
    assert_eq!(outs.outputs.len(), 2);
    assert!(outs.outputs.iter().any(|o| o.1 == again[0].attempt_id));
    // Reports naming an attempt that no longer counts are ignored.
    sim.s.fetch_failure(&id, &red, &bad, "late", sim.now).unwrap();
    assert_eq!(sim.job(&id).task(0, l[0].task_index).failures, 1);
}

#[test]
fn a_fetch_failure_on_a_lost_worker_reruns_at_once() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    sim.worker("w2", "", 1);
    let mut d = mr_draft(vec![Prefs::default(); 2], 1);
    d.stages[0].outputs_on_workers = false; // keep the output listed when w1 goes
    let id = sim.submit(d);
    let l = sim.step();
    sim.succeed(&l[0].attempt_id);
    sim.succeed(&l[1].attempt_id);
    let r = sim.step();
    let victim = if r[0].worker_id == "w1" { &l[1] } else { &l[0] };
    sim.s.lose_worker(&victim.worker_id, "lost", sim.now);
    sim.s.fetch_failure(&id, &r[0].attempt_id, &victim.attempt_id, "refused", sim.now).unwrap();
    assert_eq!(sim.attempt_state(&victim.attempt_id), AttemptState::Failed);
    assert!(sim.s.fetch_failure(&id, &r[0].attempt_id, "attempt_nope", "x", sim.now).is_err());
}

#[test]
fn a_failed_launch_requeues_the_task_and_rests_the_worker() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 1);
    sim.worker("w2", "", 1);
    let id = sim.submit(mr_draft(vec![Prefs::default()], 0));
    sim.s.schedule(sim.now);
    let Action::Launch(l) = sim.s.take_actions().remove(0) else { panic!() };
    sim.s.launch_failed(&l.attempt_id, "connection refused", sim.now);
    assert_eq!(sim.attempt_state(&l.attempt_id), AttemptState::Killed);
    assert_eq!(sim.job(&id).task(0, 0).failures, 0);
    let l2 = sim.step();
    assert_eq!(l2.len(), 1);
    assert_ne!(l2[0].worker_id, l.worker_id, "the suspect worker gets nothing");
    assert!(!sim.s.workers().find(|w| w.id == l.worker_id).unwrap().usable());
    sim.s.heartbeat(&l.worker_id, vec![], sim.now);
    assert!(sim.s.workers().find(|w| w.id == l.worker_id).unwrap().usable());
}
