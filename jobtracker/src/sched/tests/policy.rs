//! Policy: locality with delay scheduling, fair share, speculation, preemption.

use super::*;

/// Deterministic pseudo-random numbers (an LCG), so runs repeat.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Answers commits and aborts with success until nothing is left.
fn settle(sim: &mut Sim) {
    loop {
        let mut acts = std::mem::take(&mut sim.other);
        acts.extend(sim.s.take_actions());
        if acts.is_empty() {
            return;
        }
        for a in acts {
            match a {
                Action::CommitTask { attempt_id, .. } => sim.s.task_committed(&attempt_id, Ok(()), sim.now),
                Action::CommitJob { job_id } => sim.s.job_committed(&job_id, Ok(()), sim.now),
                Action::AbortJob { job_id } => sim.s.job_aborted(&job_id, None, sim.now),
                Action::Kill { attempt_id, reason, .. } => sim.kills.push((attempt_id, reason)),
                Action::Launch(l) => {
                    sim.s.attempt_launched(&l.attempt_id, sim.now);
                    sim.launches.push(l);
                }
                _ => {}
            }
        }
    }
}

/// Runs until every job is over: each launched attempt succeeds after
/// `duration(launch)` ms; time moves in steps of at most 100 ms.
fn run(sim: &mut Sim, mut duration: impl FnMut(&Launch) -> i64) {
    let mut ends: Vec<(i64, String)> = Vec::new();
    let deadline = sim.now + 3_600_000;
    let mut last_hb = sim.now;
    loop {
        for l in sim.step() {
            ends.push((sim.now + duration(&l), l.attempt_id));
        }
        settle(sim);
        if sim.s.jobs().all(|j| j.state.is_finished()) {
            return;
        }
        assert!(sim.now < deadline, "jobs never finished");
        let next = ends.iter().map(|e| e.0).min().unwrap_or(i64::MAX);
        let to = next.min(sim.now + 100).max(sim.now + 1);
        sim.advance(to - sim.now);
        if sim.now - last_hb >= 1000 {
            sim.heartbeat_all();
            last_hb = sim.now;
        }
        let (due, rest): (Vec<_>, Vec<_>) = ends.into_iter().partition(|e| e.0 <= sim.now);
        ends = rest;
        for (_, a) in due {
            if sim.attempt_state(&a).is_active() {
                sim.succeed(&a);
            }
        }
    }
}

fn data_local_fraction(sim: &Sim, job: &str) -> f64 {
    let st = &sim.job(job).stages[0].stats;
    st.data_local as f64 / st.launched as f64
}

/// 3 workers with 2 slots each, each beside one datanode; 90 maps whose
/// single replica is spread over the datanodes; durations 1-6 s.
fn locality_run(wait_ms: i64, placement: impl Fn(usize) -> usize) -> (f64, i64) {
    let mut sim = Sim::with(SchedConfig { locality_wait_ms: wait_ms, ..cfg() });
    let dns = ["10.0.0.1:9866", "10.0.0.2:9866", "10.0.0.3:9866"];
    for (i, dn) in dns.iter().enumerate() {
        sim.worker(&format!("w{i}"), dn, 2);
    }
    let maps = (0..90).map(|i| prefs(dns[placement(i)])).collect();
    let id = sim.submit(mr_draft(maps, 1));
    let start = sim.now;
    let mut rng = Lcg(7);
    run(&mut sim, |_| 1000 + rng.next(5000) as i64);
    assert_eq!(sim.job(&id).state, JobState::Succeeded);
    (data_local_fraction(&sim, &id), sim.now - start)
}

#[test]
fn delay_scheduling_keeps_maps_data_local() {
    let (with_delay, t_delay) = locality_run(3000, |i| i % 3);
    assert!(with_delay >= 0.9, "data-local fraction {with_delay}");
    // Skewed placement (half the blocks on one datanode) still stays local
    // without idling the cluster for long.
    let (skewed, t_skewed) = locality_run(3000, |i| if i % 2 == 0 { 0 } else { 1 + i % 4 / 2 });
    let (no_delay, t_no_delay) = locality_run(0, |i| if i % 2 == 0 { 0 } else { 1 + i % 4 / 2 });
    assert!(skewed >= 0.9, "skewed data-local fraction {skewed} (without delay: {no_delay})");
    assert!(skewed > no_delay, "delay scheduling must help: {skewed} vs {no_delay}");
    assert!(t_skewed < t_no_delay * 2, "delay scheduling must not stall: {t_skewed} ms vs {t_no_delay} ms");
    assert!(t_delay > 0);
    eprintln!(
        "data-local: uniform {with_delay:.3} ({t_delay} ms); skewed {skewed:.3} ({t_skewed} ms), without delay {no_delay:.3} ({t_no_delay} ms)"
    );
}

#[test]
fn locality_levels_are_counted() {
    let mut sim = Sim::new();
    sim.worker("w1", "10.0.0.1:9866", 1);
    // Workers beside the other blocks exist but cannot take work now.
    sim.worker("w2", "10.0.0.8:9866", 1);
    sim.worker("w3", "10.0.0.9:9866", 1);
    sim.s.set_racks([("10.0.0.9:9866".to_string(), "/other".to_string())].into_iter().collect());
    for w in ["w2", "w3"] {
        sim.s.workers.get_mut(w).unwrap().suspect = true;
    }
    let far = Prefs { hosts: vec!["10.0.0.9:9866".into()], racks: vec!["/other".into()] };
    let near = Prefs { hosts: vec!["10.0.0.8:9866".into()], racks: vec!["/default-rack".into()] };
    let id = sim.submit(mr_draft(vec![prefs("10.0.0.1:9866"), near, far], 0));
    let l = sim.step();
    assert_eq!(sim.job(&id).task(0, l[0].task_index).attempts[0].locality, Locality::DataLocal);
    sim.succeed(&l[0].attempt_id);
    // Nothing local left: the job passes on the slot until it has waited.
    assert!(sim.step().is_empty());
    sim.advance(2999);
    assert!(sim.step().is_empty());
    sim.advance(1);
    let l = sim.step();
    assert_eq!(l.len(), 1);
    assert_eq!(sim.job(&id).task(0, l[0].task_index).attempts[0].locality, Locality::RackLocal);
    sim.succeed(&l[0].attempt_id);
    // Having launched rack-local, it waits one more period for off-rack.
    assert!(sim.step().is_empty());
    sim.advance(3000);
    let l = sim.step();
    assert_eq!(sim.job(&id).task(0, l[0].task_index).attempts[0].locality, Locality::OffRack);
    let st = &sim.job(&id).stages[0].stats;
    assert_eq!((st.data_local, st.rack_local, st.other_local, st.launched), (1, 1, 1, 3));
}

#[test]
fn no_waiting_for_locality_no_live_worker_can_give() {
    let mut sim = Sim::new();
    sim.worker("w1", "10.0.0.1:9866", 1);
    // Blocks on a datanode without a worker beside it, same rack: rack-local at once.
    let id = sim.submit(mr_draft(vec![prefs("10.0.0.7:9866")], 0));
    let l = sim.step();
    assert_eq!(l.len(), 1);
    assert_eq!(sim.job(&id).task(0, 0).attempts[0].locality, Locality::RackLocal);
    // Another rack entirely: anywhere at once.
    let far = Prefs { hosts: vec!["10.9.0.1:9866".into()], racks: vec!["/far".into()] };
    sim.worker("w2", "10.0.0.2:9866", 1);
    let id2 = sim.submit(mr_draft(vec![far], 0));
    assert_eq!(sim.step().len(), 1);
    assert_eq!(sim.job(&id2).task(0, 0).attempts[0].locality, Locality::OffRack);
}

#[test]
fn worker_without_datanode_is_local_by_host() {
    let mut sim = Sim::new();
    let reg =
        WorkerReg { id: "w1".into(), addr: "a:1".into(), host: "10.0.0.5".into(), datanode: String::new(), slots: 1, cores: 1 };
    sim.s.register_worker(reg, sim.now);
    let id = sim.submit(mr_draft(vec![prefs("10.0.0.6:9866"), prefs("10.0.0.5:9866")], 0));
    let l = sim.step();
    assert_eq!(l[0].task_index, 1);
    assert_eq!(sim.job(&id).task(0, 1).attempts[0].locality, Locality::DataLocal);
}

#[test]
fn free_slots_go_to_the_job_with_fewest_running_attempts() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    sim.worker("w2", "", 2);
    let a = sim.submit(mr_draft(vec![Prefs::default(); 20], 0));
    let la = sim.step();
    assert_eq!(la.len(), 4, "job A takes the whole idle cluster");
    let b = sim.submit(mr_draft(vec![Prefs::default(); 20], 0));
    assert!(sim.step().is_empty(), "no free slot yet");
    // Two of A's attempts end: both slots go to B (0 running < 3 running).
    sim.succeed(&la[0].attempt_id);
    let l = sim.step();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].job_id, b);
    sim.succeed(&la[1].attempt_id);
    let l = sim.step();
    assert_eq!(l[0].job_id, b);
    assert_eq!(sim.running_per_job()[&a], 2);
    assert_eq!(sim.running_per_job()[&b], 2);
    // Equal shares: the tie goes to the earliest submitted job.
    sim.succeed(&la[2].attempt_id);
    let l = sim.step();
    assert_eq!(l[0].job_id, a);
}

#[test]
fn a_straggler_gets_one_speculative_attempt_and_the_loser_is_killed() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    sim.worker("w2", "", 2);
    let id = sim.submit(mr_draft(vec![Prefs::default(); 3], 0));
    let l = sim.step();
    assert_eq!(l.len(), 3);
    sim.advance(1000);
    sim.succeed(&l[0].attempt_id);
    sim.succeed(&l[1].attempt_id);
    // Mean 1 s; the straggler needs > max(1.5 s, 2 s) elapsed.
    sim.advance(900);
    assert!(sim.step().is_empty(), "not slow enough yet");
    sim.advance(200);
    let spec = sim.step();
    assert_eq!(spec.len(), 1);
    assert_eq!(spec[0].task_index, 2);
    assert_ne!(spec[0].worker_id, l[2].worker_id, "speculates on another worker");
    let j = sim.job(&id);
    assert!(j.task(0, 2).attempts[1].speculative);
    assert_eq!(j.stages[0].stats.speculative, 1);
    // Only one speculative attempt per task.
    sim.advance(5000);
    assert!(sim.step().is_empty());
    // The speculative attempt wins; the original is killed, then discarded.
    sim.succeed(&spec[0].attempt_id);
    assert!(sim.kills.iter().any(|(a, r)| *a == l[2].attempt_id && r.contains("succeeded")));
    sim.finish(&l[2].attempt_id, AttemptState::Killed);
    assert_eq!(sim.attempt_state(&l[2].attempt_id), AttemptState::Killed);
    let acts = sim.s.take_actions();
    assert!(acts.contains(&Action::Discard { job_id: id.clone(), attempt_id: l[2].attempt_id.clone() }));
    assert!(acts.contains(&Action::CommitJob { job_id: id.clone() }), "job commits once the loser is gone");
}

#[test]
fn a_straggler_is_speculated_on_its_own_worker_when_no_other_has_a_free_slot() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 3);
    let id = sim.submit(mr_draft(vec![Prefs::default(); 2], 0));
    let l = sim.step();
    assert_eq!(l.len(), 2);
    sim.advance(1000);
    sim.succeed(&l[0].attempt_id);
    sim.advance(2100);
    let spec = sim.step();
    assert_eq!(spec.len(), 1, "the only free slots are on the straggler's worker");
    assert_eq!(spec[0].worker_id, "w1");
    assert!(sim.job(&id).task(0, l[1].task_index).attempts[1].speculative);
}

#[test]
fn reducers_waiting_for_maps_are_not_stragglers() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    sim.worker("w2", "", 2);
    let mut d = mr_draft(vec![Prefs::default(); 2], 2);
    d.stages[0].speculative = false;
    d.stages[1].slowstart = 0.5;
    let id = sim.submit(d);
    let maps = sim.step();
    sim.succeed(&maps[0].attempt_id);
    let reds = sim.step();
    assert_eq!(reds.len(), 2, "both reducers start once half the maps are done");
    // One reducer finishes fast; the other waits for the slow map: no
    // speculation while a map is still running.
    sim.heartbeat_all();
    sim.advance(9_000);
    sim.heartbeat_all();
    sim.advance(1_000);
    sim.succeed(&maps[1].attempt_id);
    sim.advance(100);
    sim.succeed(&reds[0].attempt_id);
    sim.advance(1_000);
    assert!(sim.step().is_empty(), "its wait for the map does not count");
    // Slow since the map output is there: > max(1.5 × 10.1 s, 11.1 s).
    for _ in 0..2 {
        sim.heartbeat_all();
        sim.advance(7_000);
    }
    sim.heartbeat_all();
    assert!(sim.step().is_empty(), "15.1 s is not slow enough yet");
    sim.advance(1_100);
    let spec = sim.step();
    assert_eq!(spec.len(), 1);
    assert_eq!(spec[0].task_index, reds[1].task_index);
    assert!(sim.job(&id).task(1, reds[1].task_index).attempts[1].speculative);
}

#[test]
fn no_speculation_for_tasks_with_good_progress_or_when_disabled() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    sim.worker("w2", "", 2);
    let mut d = mr_draft(vec![Prefs::default(); 2], 0);
    let id = sim.submit(d.clone());
    let l = sim.step();
    sim.advance(1000);
    sim.succeed(&l[0].attempt_id);
    sim.advance(1500);
    // 95% done after 2.5 s: ~130 ms left, less than the mean.
    let p = AttemptProgress { attempt_id: l[1].attempt_id.clone(), progress: 0.95, ..Default::default() };
    sim.s.heartbeat(&l[1].worker_id, vec![p], sim.now);
    assert!(sim.step().is_empty());
    assert_eq!(sim.job(&id).task(0, 1).attempts.len(), 1);

    d.stages[0].speculative = false;
    let id2 = sim.submit(d);
    let l = sim.step();
    sim.advance(1000);
    sim.succeed(&l[0].attempt_id);
    sim.advance(10_000);
    sim.heartbeat_all();
    assert!(sim.step().iter().all(|l| l.job_id != id2));
}

#[test]
fn waiting_maps_preempt_the_latest_reducer() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    let id = sim.submit(mr_draft(vec![Prefs::default(); 2], 2));
    let l = sim.step();
    sim.succeed(&l[0].attempt_id);
    sim.succeed(&l[1].attempt_id);
    let r1 = sim.step();
    assert_eq!(r1.len(), 2);
    assert!(r1.iter().all(|l| l.stage_name == "reduce"));
    // A map output cannot be fetched: the map must run again, no slot is free.
    for _ in 0..3 {
        sim.s.fetch_failure(&id, &r1[0].attempt_id, &l[0].attempt_id, "connection refused", sim.now).unwrap();
    }
    assert_eq!(sim.job(&id).task(0, 0).state, TaskState::Pending);
    assert!(sim.step().is_empty());
    assert_eq!(sim.kills.len(), 1, "one reducer per waiting map");
    let (victim, reason) = sim.kills[0].clone();
    assert_eq!(reason, "preempted: maps must run");
    assert_eq!(victim, r1[1].attempt_id, "the most recently started reducer");
    // Still waiting for the kill: no second victim.
    sim.step();
    assert_eq!(sim.kills.len(), 1);
    // The reducer dies; the map takes its slot (reducers wait for maps).
    sim.finish(&victim, AttemptState::Killed);
    assert_eq!(sim.attempt_state(&victim), AttemptState::Killed);
    let l2 = sim.step();
    assert_eq!(l2.len(), 1);
    assert_eq!(l2[0].stage_name, "map");
    assert_eq!(sim.job(&id).stages[1].stats.killed, 1);
    assert_eq!(sim.job(&id).stages[1].stats.failed, 0, "preemption is not a failure");
}
