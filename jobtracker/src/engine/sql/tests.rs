use super::*;
use tusk_client::sqljob::SqlStageSpec;

fn engine() -> SqlEngine {
    let defaults = EngineDefaults::for_tests();
    SqlEngine::new(Arc::new(Dfs::new("127.0.0.1:1")), defaults, "10.0.0.1:8021".into())
}

fn stage(name: &str, tasks: usize, upstreams: Vec<usize>, output: SqlOutput) -> SqlStageSpec {
    SqlStageSpec {
        name: name.into(),
        plan: format!("plan-of-{name}"),
        task_hosts: (0..tasks).map(|i| if i == 0 { vec!["10.0.0.2:9866".into()] } else { vec![] }).collect(),
        upstreams,
        output,
    }
}

/// Two scans shuffled into a join that writes the result.
fn join_spec() -> SqlJobSpec {
    SqlJobSpec {
        name: "SELECT ... JOIN ...".into(),
        stages: vec![
            stage("scan-a", 2, vec![], SqlOutput::Shuffle { partitions: 3 }),
            stage("scan-b", 1, vec![], SqlOutput::Shuffle { partitions: 3 }),
            stage("join", 3, vec![0, 1], SqlOutput::Result),
        ],
        result_dir: "/tmp/tusk-sql/q1/".into(),
        namenode: "nn:8020".into(),
        max_attempts: 0,
        write: None,
        direct_results: false,
    }
}

fn json(spec: &SqlJobSpec) -> String {
    serde_json::to_string(spec).unwrap()
}

async fn refused(spec: &SqlJobSpec) -> String {
    let err = engine().plan("alice", &json(spec)).await.unwrap_err();
    assert!(matches!(err, JobtrackerError::Refused { reason: Refusal::InvalidArgument, .. }), "{err:?}");
    err.to_string()
}

fn launch(stage: usize, index: u32) -> Launch {
    let task_id = crate::ids::task_id("job_1_0001", &stage_letter(stage), index);
    Launch {
        job_id: "job_1_0001".into(),
        attempt_id: crate::ids::attempt_id(&task_id, 1),
        task_id,
        attempt_number: 1,
        stage,
        stage_name: String::new(),
        task_index: index,
        worker_id: "w".into(),
        worker_addr: "w:1".into(),
    }
}

#[tokio::test]
async fn a_query_becomes_one_scheduler_stage_per_spec_stage() {
    let d = engine().plan("alice", &json(&join_spec())).await.unwrap();
    assert_eq!((d.name.as_str(), d.output.as_str()), ("SELECT ... JOIN ...", "/tmp/tusk-sql/q1"));
    assert_eq!(d.stages.len(), 3);
    let names: Vec<(&str, &str)> = d.stages.iter().map(|s| (s.name.as_str(), s.letter.as_str())).collect();
    assert_eq!(names, vec![("scan-a", "s0"), ("scan-b", "s1"), ("join", "s2")]);
    let (a, join) = (&d.stages[0], &d.stages[2]);
    assert_eq!(a.tasks.len(), 2);
    assert_eq!(a.tasks[0], Prefs { hosts: vec!["10.0.0.2:9866".into()], racks: vec![] });
    assert!(a.tasks[1].is_empty());
    assert_eq!((a.upstreams.clone(), a.outputs_on_workers, a.commits_output), (vec![], true, false));
    assert_eq!((join.upstreams.clone(), join.outputs_on_workers, join.commits_output), (vec![0, 1], false, true));
    for s in &d.stages {
        assert_eq!((s.max_attempts, s.speculative, s.slowstart), (4, false, 1.0));
    }
    assert_eq!(d.stages[1].counter_suffix, "STAGE1_TASKS");
    // The doc is the spec, completed: a restarted jobtracker attaches it again.
    let back: SqlJobSpec = serde_json::from_value(d.doc).unwrap();
    assert_eq!(back.result_dir, "/tmp/tusk-sql/q1");
    assert_eq!(back.stages, join_spec().stages);
}

#[tokio::test]
async fn max_attempts_and_namenode_default_to_the_jobtracker_s() {
    let mut spec = join_spec();
    spec.max_attempts = 2;
    spec.namenode = String::new();
    spec.name = String::new();
    let d = engine().plan("alice", &json(&spec)).await.unwrap();
    assert!(d.stages.iter().all(|s| s.max_attempts == 2));
    assert_eq!(d.name, "sql query");
    let back: SqlJobSpec = serde_json::from_value(d.doc).unwrap();
    assert_eq!(back.namenode, "127.0.0.1:1");
}

#[tokio::test]
async fn bad_queries_are_refused_with_the_reason() {
    let e = engine().plan("alice", "{not json").await.unwrap_err().to_string();
    assert!(e.starts_with("job definition is not valid JSON for a SQL job"), "{e}");
    let e = engine().plan("alice", r#"{"name": "q"}"#).await.unwrap_err().to_string();
    assert!(e.contains("not valid JSON for a SQL job") && e.contains("stages"), "{e}");

    let mut s = join_spec();
    s.stages.clear();
    assert_eq!(refused(&s).await, "invalid SQL job: a SQL job needs at least one stage");
    let mut s = join_spec();
    s.stages[1].upstreams = vec![1];
    assert_eq!(refused(&s).await, "invalid SQL job: stage 1 (scan-b): reads stage 1, which does not come before it");
    let mut s = join_spec();
    s.stages[2].upstreams = vec![0, 1, 0];
    assert!(refused(&s).await.contains("reads stage 0 twice"));
    let mut s = join_spec();
    s.stages[2].upstreams = vec![1];
    assert_eq!(refused(&s).await, "invalid SQL job: stage 0: its shuffle output is read by no stage");
    let mut s = join_spec();
    s.stages[1].output = SqlOutput::Result;
    assert!(refused(&s).await.contains("stage 1 (scan-b): only the last stage may write the result"));
    let mut s = join_spec();
    s.stages[2].output = SqlOutput::Shuffle { partitions: 1 };
    assert!(refused(&s).await.contains("stage 2 (join): the last stage must write the result"));
    let mut s = join_spec();
    s.stages[0].output = SqlOutput::Shuffle { partitions: 0 };
    assert!(refused(&s).await.contains("at least one partition"));
    let mut s = join_spec();
    s.stages[1].task_hosts.clear();
    assert!(refused(&s).await.contains("stage 1 (scan-b): no tasks"));
    let mut s = join_spec();
    s.stages[2].plan = " ".into();
    assert!(refused(&s).await.contains("stage 2 (join): empty plan"));
    for dir in ["", "relative/dir", "/"] {
        let mut s = join_spec();
        s.result_dir = dir.into();
        assert!(refused(&s).await.contains("result_dir"), "{dir:?}");
    }
}

#[tokio::test]
async fn a_single_stage_query_writes_the_result_directly() {
    let spec = SqlJobSpec {
        name: "SELECT 1".into(),
        stages: vec![stage("scan", 1, vec![], SqlOutput::Result)],
        result_dir: "/r".into(),
        namenode: "nn:1".into(),
        max_attempts: 0,
        write: None,
        direct_results: false,
    };
    let d = engine().plan("alice", &json(&spec)).await.unwrap();
    assert_eq!(d.stages.len(), 1);
    assert!(d.stages[0].commits_output && !d.stages[0].outputs_on_workers);
}

#[tokio::test]
async fn attempts_get_their_stage_s_task_spec() {
    let e = engine();
    let d = e.plan("alice", &json(&join_spec())).await.unwrap();
    e.attach("job_1_0001", "alice", &d.doc).unwrap();
    let p = e.launch(&launch(2, 1)).unwrap();
    assert_eq!((p.engine.as_str(), p.memory_bytes, p.progress_timeout_ms), ("sql", 1024 << 20, 600_000));
    assert!(p.env.is_empty());
    let t: SqlTaskSpec = serde_json::from_str(&p.spec_json).unwrap();
    let want = SqlTaskSpec {
        job_id: "job_1_0001".into(),
        task_id: "task_1_0001_s2_000001".into(),
        attempt_id: "attempt_1_0001_s2_000001_1".into(),
        user: "alice".into(),
        stage: 2,
        task_index: 1,
        plan: "plan-of-join".into(),
        upstreams: vec![0, 1],
        output: SqlOutput::Result,
        result_dir: "/tmp/tusk-sql/q1".into(),
        namenode: "nn:8020".into(),
        jobtracker: "10.0.0.1:8021".into(),
        write: None,
        direct_result_max_bytes: 0,
    };
    assert_eq!(t, want);
    let t: SqlTaskSpec = serde_json::from_str(&e.launch(&launch(0, 0)).unwrap().spec_json).unwrap();
    assert_eq!((t.plan.as_str(), t.output), ("plan-of-scan-a", SqlOutput::Shuffle { partitions: 3 }));
    assert!(e.launch(&launch(3, 0)).is_err(), "no such stage");
    e.detach("job_1_0001");
    assert!(e.launch(&launch(0, 0)).is_err());

    // A query handing results back: the last stage's tasks share the
    // budget; the shuffle stages have none.
    let mut spec = join_spec();
    spec.direct_results = true;
    let d = e.plan("alice", &json(&spec)).await.unwrap();
    e.attach("job_1_0002", "alice", &d.doc).unwrap();
    let budget = |stage, task| -> u64 {
        let p = e.launch(&Launch { job_id: "job_1_0002".into(), ..launch(stage, task) }).unwrap();
        serde_json::from_str::<SqlTaskSpec>(&p.spec_json).unwrap().direct_result_max_bytes
    };
    let last_tasks = spec.stages[2].task_hosts.len() as u64;
    assert_eq!(budget(2, 1), DIRECT_RESULT_MAX_BYTES as u64 / last_tasks);
    assert_eq!(budget(0, 0), 0);
}

#[test]
fn task_ids_give_back_stage_and_index() {
    let id = crate::ids::task_id("job_1700000000000_0007", &stage_letter(12), 345);
    assert_eq!(task_position(&id), Some((12, 345)));
    assert_eq!(task_position("task_1_0001_m_000003"), None);
    assert_eq!(task_position("garbage"), None);
}

#[test]
fn result_files_live_under_the_result_directory() {
    assert_eq!(attempt_dir("/r/q", "attempt_1"), "/r/q/_temporary/attempt_1");
    assert_eq!(temporary("/r/q"), "/r/q/_temporary");
}

#[test]
fn a_stored_doc_that_is_not_a_sql_job_cannot_be_attached() {
    let e = engine();
    let err = e.attach("job_1_0001", "alice", &serde_json::json!({"spec": {}})).unwrap_err();
    assert!(err.to_string().contains("stored SQL job unreadable"), "{err}");
}

#[tokio::test]
async fn a_write_reaches_the_last_stage_s_tasks_only() {
    let e = engine();
    let mut spec = join_spec();
    let write = tusk_client::sqljob::SqlWriteSpec {
        columns: vec![("k".into(), "int".into())],
        format: "parquet".into(),
        format_options: Default::default(),
        partition_names: vec!["day".into()],
        static_values: vec![],
        file_stem: "part-x".into(),
    };
    spec.write = Some(write.clone());
    let d = e.plan("alice", &json(&spec)).await.unwrap();
    e.attach("job_1_0001", "alice", &d.doc).unwrap();
    let last: SqlTaskSpec = serde_json::from_str(&e.launch(&launch(2, 1)).unwrap().spec_json).unwrap();
    assert_eq!(last.write, Some(write));
    let scan: SqlTaskSpec = serde_json::from_str(&e.launch(&launch(0, 0)).unwrap().spec_json).unwrap();
    assert_eq!(scan.write, None);
}
