//! Scheduler state as the wire reports it (to_proto): jobs with stage
//! summaries, counters and, on request, every task and attempt; workers.

use std::collections::BTreeMap;

use tusk_mapreduce::api::counters as names;
use tusk_proto::compute as pb;

use crate::sched::{Attempt, AttemptState, Job, JobState, Locality, Task, TaskState, Worker};

pub(crate) fn job_state_of(s: JobState) -> pb::JobState {
    match s {
        JobState::Running => pb::JobState::JobRunning,
        JobState::Committing => pb::JobState::JobCommitting,
        JobState::Succeeded => pb::JobState::JobSucceeded,
        JobState::Failed => pb::JobState::JobFailed,
        JobState::Killed => pb::JobState::JobKilled,
    }
}

fn task_state(s: TaskState) -> pb::TaskState {
    match s {
        TaskState::Pending => pb::TaskState::TaskPending,
        TaskState::Running => pb::TaskState::TaskRunning,
        TaskState::Succeeded => pb::TaskState::TaskSucceeded,
        TaskState::Failed => pb::TaskState::TaskFailed,
        TaskState::Killed => pb::TaskState::TaskKilled,
    }
}

fn attempt_state(s: AttemptState) -> pb::AttemptState {
    match s {
        AttemptState::Starting => pb::AttemptState::AttemptStarting,
        // Committing: the process is done, its output is being moved.
        AttemptState::Running | AttemptState::Committing => pb::AttemptState::AttemptRunning,
        AttemptState::Succeeded => pb::AttemptState::AttemptSucceeded,
        AttemptState::Failed => pb::AttemptState::AttemptFailed,
        AttemptState::Killed => pb::AttemptState::AttemptKilled,
    }
}

fn locality(l: Locality) -> pb::Locality {
    match l {
        Locality::DataLocal => pb::Locality::DataLocal,
        Locality::RackLocal => pb::Locality::RackLocal,
        Locality::OffRack => pb::Locality::OffRack,
        Locality::NoPreference => pb::Locality::NoPreference,
    }
}

fn counters_of(list: &[(String, String, i64)]) -> pb::Counters {
    pb::Counters {
        counters: list.iter().map(|(g, n, v)| pb::Counter { group: g.clone(), name: n.clone(), value: *v }).collect(),
    }
}

/// Task counters summed over the attempts whose output counts, then the
/// job counters (launches, failures, kills, speculation, locality per stage;
/// zero values left out except the launch counts).
pub(crate) fn job_counters(job: &Job) -> Vec<(String, String, i64)> {
    let mut sum: BTreeMap<(String, String), i64> = BTreeMap::new();
    for stage in &job.stages {
        for t in &stage.tasks {
            let Some(a) = t.success.map(|i| &t.attempts[i]) else { continue };
            for (g, n, v) in &a.counters {
                *sum.entry((g.clone(), n.clone())).or_insert(0) += v;
            }
        }
    }
    let mut out: Vec<(String, String, i64)> = sum.into_iter().map(|((g, n), v)| (g, n, v)).collect();
    for stage in &job.stages {
        let st = &stage.stats;
        let sfx = &stage.counter_suffix;
        let mut add = |name: String, v: i64, always: bool| {
            if always || v != 0 {
                out.push((names::JOB.to_string(), name, v));
            }
        };
        add(format!("TOTAL_LAUNCHED_{sfx}"), st.launched, true);
        add(format!("NUM_FAILED_{sfx}"), st.failed, false);
        add(format!("NUM_KILLED_{sfx}"), st.killed, false);
        add(format!("SPECULATIVE_{sfx}"), st.speculative, false);
        add(format!("DATA_LOCAL_{sfx}"), st.data_local, false);
        add(format!("RACK_LOCAL_{sfx}"), st.rack_local, false);
        add(format!("OTHER_LOCAL_{sfx}"), st.other_local, false);
    }
    out
}

pub(crate) fn job_report(job: &Job, with_tasks: bool) -> pb::JobReport {
    let stages = job
        .stages
        .iter()
        .enumerate()
        .map(|(si, s)| {
            let count = |st: TaskState| s.tasks.iter().filter(|t| t.state == st).count() as u32;
            pb::StageSummary {
                name: s.name.clone(),
                total: s.tasks.len() as u32,
                pending: count(TaskState::Pending),
                running: count(TaskState::Running),
                succeeded: count(TaskState::Succeeded),
                failed: count(TaskState::Failed),
                killed: count(TaskState::Killed),
                progress: job.stage_progress(si),
            }
        })
        .collect();
    let tasks = if with_tasks {
        job.stages.iter().flat_map(|s| s.tasks.iter().map(move |t| task_report(&s.name, t))).collect()
    } else {
        Vec::new()
    };
    pb::JobReport {
        job_id: job.id.clone(),
        name: job.name.clone(),
        user: job.user.clone(),
        engine: job.engine.clone(),
        state: job_state_of(job.state) as i32,
        submit_ms: job.submit_ms,
        start_ms: job.start_ms,
        finish_ms: job.finish_ms,
        stages,
        diagnostics: job.diagnostics.clone(),
        counters: Some(counters_of(&job_counters(job))),
        output: job.output.clone(),
        tasks,
        first_launch_ms: if job.first_running_ms > 0 { job.first_running_ms - job.submit_ms } else { 0 },
    }
}

fn task_report(stage: &str, t: &Task) -> pb::TaskReport {
    pb::TaskReport {
        task_id: t.id.clone(),
        stage: stage.to_string(),
        index: t.index,
        state: task_state(t.state) as i32,
        progress: t.progress(),
        attempts: t.attempts.iter().map(attempt_report).collect(),
    }
}

fn attempt_report(a: &Attempt) -> pb::AttemptReport {
    pb::AttemptReport {
        attempt_id: a.id.clone(),
        state: attempt_state(a.state) as i32,
        worker_id: a.worker_id.clone(),
        worker_addr: a.worker_addr.clone(),
        start_ms: a.start_ms,
        finish_ms: a.finish_ms,
        progress: a.progress,
        status: a.status.clone(),
        locality: locality(a.locality) as i32,
        speculative: a.speculative,
        diagnostics: a.diagnostics.clone(),
        stderr_tail: a.stderr_tail.clone(),
        result_json: a.result_json.clone(),
        counters: Some(counters_of(&a.counters)),
    }
}

pub(crate) fn worker_info(w: &Worker, _now: i64) -> pb::WorkerInfo {
    pb::WorkerInfo {
        worker_id: w.id.clone(),
        addr: w.addr.clone(),
        host: w.host.clone(),
        rack: w.rack.clone(),
        datanode: w.datanode.clone(),
        slots: w.slots,
        cores: w.cores,
        running: w.running.len() as u32,
        last_contact_ms: w.last_contact_ms,
        live: w.live,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::{JobDraft, Prefs, Scheduler, StageDraft};

    #[test]
    fn counters_sum_successful_attempts_and_name_job_counters_by_stage() {
        let draft = JobDraft {
            name: "n".into(),
            output: "/o".into(),
            doc: serde_json::Value::Null,
            stages: vec![StageDraft {
                name: "map".into(),
                letter: "m".into(),
                counter_suffix: "MAPS".into(),
                tasks: vec![Prefs::default(); 2],
                max_attempts: 4,
                speculative: true,
                upstreams: vec![],
                slowstart: 0.0,
                commits_output: true,
                outputs_on_workers: false,
            }],
        };
        let mut job = Scheduler::new_job("job_1_0001".into(), 1, "u", "mapreduce", draft, 100, 150);
        let st = &mut job.stages[0];
        st.stats.launched = 3;
        st.stats.data_local = 2;
        st.stats.failed = 1;
        for (i, t) in st.tasks.iter_mut().enumerate() {
            let ok = Attempt {
                id: format!("a{i}"),
                state: AttemptState::Succeeded,
                counters: vec![("TaskCounter".into(), "MAP_INPUT_RECORDS".into(), 10)],
                ..Default::default()
            };
            let failed = Attempt {
                counters: vec![("TaskCounter".into(), "MAP_INPUT_RECORDS".into(), 99)],
                ..Default::default()
            };
            t.attempts = vec![failed, ok];
            t.success = Some(1);
            t.state = TaskState::Succeeded;
        }
        job.first_running_ms = 170;
        let c = job_counters(&job);
        let get = |g: &str, n: &str| c.iter().find(|x| x.0 == g && x.1 == n).map(|x| x.2);
        assert_eq!(get("TaskCounter", "MAP_INPUT_RECORDS"), Some(20));
        assert_eq!(get("JobCounter", names::TOTAL_LAUNCHED_MAPS), Some(3));
        assert_eq!(get("JobCounter", names::DATA_LOCAL_MAPS), Some(2));
        assert_eq!(get("JobCounter", names::NUM_FAILED_MAPS), Some(1));
        assert_eq!(get("JobCounter", names::RACK_LOCAL_MAPS), None);
        let r = job_report(&job, true);
        assert_eq!(r.first_launch_ms, 70);
        assert_eq!(r.stages[0].succeeded, 2);
        assert_eq!(r.stages[0].progress, 1.0);
        assert_eq!(r.tasks.len(), 2);
        assert_eq!(r.tasks[0].attempts.len(), 2);
        assert_eq!(r.state, pb::JobState::JobRunning as i32);
        assert!(job_report(&job, false).tasks.is_empty());
    }
}
