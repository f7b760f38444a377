//! Stages reading several upstream stages (a SQL join reads two shuffles),
//! and jobs stored before stages could.

use super::*;

/// Two scans writing shuffle output and a join reading both:
/// stage 0 (`a`, `scans` tasks), stage 1 (`b`, `scans` tasks), stage 2
/// (`join`, `joins` tasks, upstreams [0, 1], commits output).
fn join_draft(scans: usize, joins: usize) -> JobDraft {
    let stage = |i: usize, name: &str, n: usize, upstreams: Vec<usize>, last: bool| StageDraft {
        name: name.into(),
        letter: format!("s{i}"),
        counter_suffix: format!("STAGE{i}_TASKS"),
        tasks: vec![Prefs::default(); n],
        max_attempts: 4,
        speculative: false,
        upstreams,
        slowstart: 1.0,
        commits_output: last,
        outputs_on_workers: !last,
    };
    JobDraft {
        name: "join".into(),
        output: "/tmp/result".into(),
        doc: serde_json::Value::Null,
        stages: vec![
            stage(0, "a", scans, vec![], false),
            stage(1, "b", scans, vec![], false),
            stage(2, "join", joins, vec![0, 1], true),
        ],
    }
}

fn of_stage(l: &[Launch], stage: usize) -> Vec<Launch> {
    l.iter().filter(|l| l.stage == stage).cloned().collect()
}

#[test]
fn a_join_starts_only_when_both_upstream_stages_are_done() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 8);
    let id = sim.submit(join_draft(2, 2));
    let l = sim.step();
    assert_eq!(l.len(), 4, "both scans start at once, the join waits");
    let (a, b) = (of_stage(&l, 0), of_stage(&l, 1));
    assert_eq!((a.len(), b.len()), (2, 2));
    assert_eq!(a[0].task_id, format!("task_{}_s0_000000", id.trim_start_matches("job_")));
    for x in &a {
        sim.succeed(&x.attempt_id);
    }
    assert!(sim.step().is_empty(), "stage 1 is not done yet");
    sim.succeed(&b[0].attempt_id);
    assert!(sim.step().is_empty(), "slowstart 1.0: every task of each upstream must be done");
    sim.succeed(&b[1].attempt_id);
    let j = sim.step();
    assert_eq!(j.len(), 2);
    assert!(j.iter().all(|l| l.stage == 2 && l.stage_name == "join"));
    for x in &j {
        sim.succeed(&x.attempt_id);
    }
    assert_eq!(sim.job(&id).state, JobState::Committing);
}

#[test]
fn a_join_waits_for_each_upstream_by_its_own_slowstart_share() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 8);
    let mut d = join_draft(2, 1);
    d.stages[2].slowstart = 0.5;
    sim.submit(d);
    let l = sim.step();
    sim.succeed(&of_stage(&l, 0)[0].attempt_id);
    sim.succeed(&of_stage(&l, 0)[1].attempt_id);
    assert!(sim.step().is_empty(), "stage 0 entirely done does not make up for stage 1");
    sim.succeed(&of_stage(&l, 1)[0].attempt_id);
    assert_eq!(of_stage(&sim.step(), 2).len(), 1, "half of each upstream is done");
}

/// Runs both scans of a join job to completion on w1 / w2 and starts the
/// join; returns (job id, scan launches, join launches).
fn scans_done_join_running(sim: &mut Sim) -> (String, Vec<Launch>, Vec<Launch>) {
    sim.worker("w1", "", 3);
    sim.worker("w2", "", 3);
    let id = sim.submit(join_draft(2, 1));
    let l = sim.step();
    assert_eq!(l.len(), 4);
    for x in &l {
        sim.succeed(&x.attempt_id);
    }
    let j = sim.step();
    assert_eq!(of_stage(&j, 2).len(), 1);
    (id, l, j)
}

#[test]
fn get_map_outputs_names_the_upstream_stage_and_refuses_others() {
    let mut sim = Sim::new();
    let (id, l, j) = scans_done_join_running(&mut sim);
    let join = &j[0].attempt_id;
    let listed = |stage: usize| {
        let mut v: Vec<(u32, String, String)> =
            of_stage(&l, stage).iter().map(|x| (x.task_index, x.attempt_id.clone(), x.worker_addr.clone())).collect();
        v.sort();
        v
    };
    for (ask, stage) in [(None, 0), (Some(0), 0), (Some(1), 1)] {
        let mut o = sim.s.upstream_outputs(&id, join, ask).unwrap();
        o.outputs.sort();
        assert_eq!(o, UpstreamOutputs { total: 2, outputs: listed(stage), abort: false }, "asked {ask:?}");
    }
    let e = sim.s.upstream_outputs(&id, join, Some(2)).unwrap_err().to_string();
    assert!(e.contains("does not read stage 2"), "{e}");
    assert!(sim.s.upstream_outputs(&id, join, Some(7)).is_err());
    // A finished attempt is told to stop.
    assert!(sim.s.upstream_outputs(&id, &l[0].attempt_id, Some(0)).unwrap().abort);
    // A running scan reads nothing.
    let id = sim.submit(join_draft(1, 1));
    let scan = sim.step()[0].attempt_id.clone();
    assert!(sim.s.upstream_outputs(&id, &scan, None).unwrap_err().to_string().contains("reads no other stage"));
    assert!(sim.s.upstream_outputs(&id, &scan, Some(0)).is_err());
}

#[test]
fn a_lost_worker_reruns_upstream_outputs_the_join_still_needs() {
    let mut sim = Sim::new();
    let (id, l, j) = scans_done_join_running(&mut sim);
    // Lose the worker holding a task of stage 1, not the one running the join.
    let join_worker = j[0].worker_id.clone();
    let victim = of_stage(&l, 1).into_iter().find(|x| x.worker_id != join_worker).expect("a scan elsewhere");
    let lost = victim.worker_id.clone();
    sim.s.lose_worker(&lost, &format!("worker {lost} lost"), sim.now);
    let t = sim.job(&id).task(1, victim.task_index).clone();
    assert_eq!(t.state, TaskState::Pending);
    assert_eq!(t.attempts[0].state, AttemptState::Killed);
    assert!(t.attempts[0].diagnostics.contains("its output is needed again"));
    // Stage 0 outputs on the lost worker are needed by the join too.
    for x in of_stage(&l, 0).iter().filter(|x| x.worker_id == lost) {
        assert_eq!(sim.job(&id).task(0, x.task_index).state, TaskState::Pending);
    }
    let o = sim.s.upstream_outputs(&id, &j[0].attempt_id, Some(1)).unwrap();
    assert!(!o.outputs.iter().any(|x| x.0 == victim.task_index), "the lost output is not listed");
    assert_eq!(sim.attempt_state(&j[0].attempt_id), AttemptState::Running, "the join keeps waiting");
    let again = sim.step();
    assert_eq!(again.len(), 1 + of_stage(&l, 0).iter().filter(|x| x.worker_id == lost).count());
    let rerun = of_stage(&again, 1);
    assert_eq!(rerun.len(), 1);
    assert_eq!((rerun[0].task_index, rerun[0].worker_id.as_str()), (victim.task_index, join_worker.as_str()));
    sim.succeed(&rerun[0].attempt_id);
    let o = sim.s.upstream_outputs(&id, &j[0].attempt_id, Some(1)).unwrap();
    assert!(o.outputs.iter().any(|x| x.1 == rerun[0].attempt_id));
}

#[test]
fn outputs_no_stage_needs_any_more_are_not_rerun() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 4);
    sim.worker("w2", "", 4);
    // A chain: 0 → 1 → 2; once stage 1 is done, stage 0's output is not needed.
    let mut d = join_draft(2, 1);
    d.stages[1].upstreams = vec![0];
    d.stages[2].upstreams = vec![1];
    let id = sim.submit(d);
    let l = sim.step();
    assert_eq!(of_stage(&l, 0).len(), 2);
    for x in &l {
        sim.succeed(&x.attempt_id);
    }
    let l1 = of_stage(&sim.step(), 1);
    assert_eq!(l1.len(), 2);
    for x in &l1 {
        sim.succeed(&x.attempt_id);
    }
    let l2 = of_stage(&sim.step(), 2);
    assert_eq!(l2.len(), 1);
    let w = of_stage(&l, 0)[0].worker_id.clone();
    sim.s.lose_worker(&w, "lost", sim.now);
    for x in of_stage(&l, 0) {
        assert_eq!(sim.job(&id).task(0, x.task_index).state, TaskState::Succeeded, "stage 1 is complete");
    }
}

#[test]
fn a_fetch_failure_reruns_the_named_task_of_either_upstream() {
    let mut sim = Sim::new();
    let (id, l, j) = scans_done_join_running(&mut sim);
    let bad = of_stage(&l, 1)[1].clone();
    for _ in 0..3 {
        sim.s.fetch_failure(&id, &j[0].attempt_id, &bad.attempt_id, "connection reset", sim.now).unwrap();
    }
    assert_eq!(sim.attempt_state(&bad.attempt_id), AttemptState::Failed);
    assert_eq!(sim.job(&id).task(1, bad.task_index).failures, 1);
    let again = sim.step();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].stage, again[0].task_index), (1, bad.task_index));
}

#[test]
fn jobs_stored_with_a_single_upstream_still_load() {
    let mut sim = Sim::new();
    sim.worker("w1", "", 2);
    let id = sim.submit(mr_draft(vec![Prefs::default()], 1));
    let l = sim.step();
    sim.succeed(&l[0].attempt_id);
    let mut v = serde_json::to_value(sim.job(&id)).unwrap();
    // The layout before `upstreams`: `"upstream": null` / `"upstream": 0`.
    for (si, old) in [(0, serde_json::Value::Null), (1, serde_json::json!(0))] {
        let stage = v["stages"][si].as_object_mut().unwrap();
        assert!(stage.remove("upstreams").is_some());
        stage.insert("upstream".into(), old);
    }
    let job: Job = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(job.stages[0].upstreams, Vec::<usize>::new());
    assert_eq!(job.stages[1].upstreams, vec![0]);
    // Without either field: reads nothing.
    v["stages"][0].as_object_mut().unwrap().remove("upstream");
    let job: Job = serde_json::from_value(v).unwrap();
    assert!(job.stages[0].upstreams.is_empty());
    let mut s = Scheduler::new(cfg());
    s.load_job(job, sim.now).unwrap();
    assert_eq!(s.job(&id).unwrap().stages[1].upstreams, vec![0]);
    // Written back in the new layout.
    let text = serde_json::to_string(s.job(&id).unwrap()).unwrap();
    assert!(text.contains(r#""upstreams":[0]"#) && !text.contains(r#""upstream":"#), "{text}");
}

#[test]
fn tasks_naming_only_hosts_get_their_racks() {
    let mut sim = Sim::new();
    let racks = [("dn1:9866", "/r1"), ("dn2:9866", "/r2"), ("dn3:9866", "/r1")];
    sim.s.set_racks(racks.iter().map(|(d, r)| (d.to_string(), r.to_string())).collect());
    let mut d = join_draft(3, 1);
    let hosts = |h: &[&str]| Prefs { hosts: h.iter().map(|s| s.to_string()).collect(), racks: vec![] };
    d.stages[0].tasks = vec![hosts(&["dn3:9866", "dn1:9866", "dn2:9866"]), hosts(&["dnX:9866"]), Prefs::default()];
    d.stages[1].tasks[0] = Prefs { hosts: vec!["dn1:9866".into()], racks: vec!["/given".into()] };
    let id = sim.submit(d);
    let j = sim.job(&id);
    assert_eq!(j.task(0, 0).prefs.racks, vec!["/r1".to_string(), "/r2".to_string()]);
    assert!(j.task(0, 1).prefs.racks.is_empty(), "unknown datanode: no rack");
    assert!(j.task(0, 2).prefs.is_empty());
    assert_eq!(j.task(1, 0).prefs.racks, vec!["/given".to_string()], "racks given are kept");
}
