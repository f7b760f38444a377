//! Issue 6: queries run across the workers: the plan is cut into stages
//! that run as tasks (scans beside their blocks), exchange data through the
//! workers' shuffle, and give the same answers as a local computation, even
//! when a worker is killed mid-query.

use std::collections::BTreeMap;
use std::time::Duration;

use tusk_client::{AttemptState, JobState};
use tusk_tests::TestCluster;
#[path = "support/sql.rs"]
mod sql;
use sql::{exec, query};

const ROWS: u64 = 300_000;
const KEYS: u64 = 40;

/// `k|v` lines (k = i % KEYS, v = i): about 3.5 MB, several 1 MiB blocks.
fn big_text() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..ROWS {
        s.push_str(&format!("{}|{}\n", i % KEYS, i));
    }
    s.into_bytes()
}

/// (count, sum(v)) per key, computed here.
fn expected() -> BTreeMap<u64, (u64, u64)> {
    let mut m = BTreeMap::new();
    for i in 0..ROWS {
        let e = m.entry(i % KEYS).or_insert((0, 0));
        e.0 += 1;
        e.1 += i;
    }
    m
}

async fn setup(cluster: &TestCluster) -> anyhow::Result<tusk_sql::Session> {
    let client = cluster.client().await?;
    client.write_all("/data/big/part-0", &big_text(), false).await?;
    let mut s = sql::session(cluster).await?;
    exec(&mut s, "CREATE EXTERNAL TABLE big (k INT, v BIGINT) ROW FORMAT DELIMITED FIELDS TERMINATED BY '|' LOCATION '/data/big'").await?;
    exec(&mut s, "CREATE TABLE dims (k INT, name STRING) STORED AS PARQUET").await?;
    let values: Vec<String> = (0..KEYS).map(|k| format!("({k}, 'key{k:02}')")).collect();
    exec(&mut s, &format!("INSERT INTO dims VALUES {}", values.join(", "))).await?;
    Ok(s)
}

/// The stages of `sql`'s plan that scan `big`, the rows its job's runtime
/// filters dropped, and the job.
async fn filtered(s: &mut tusk_sql::Session, jc: &tusk_client::JobClient, sql: &str) -> anyhow::Result<(Vec<String>, u64, String)> {
    let plan = query(s, &format!("EXPLAIN {sql}")).await?;
    let scans = plan.iter().filter(|r| r[0].starts_with("stage ") && r[1].contains("data/big/")).map(|r| r[1].clone()).collect();
    // Job names are the statement's first 120 characters.
    let jobs = jc.list().await?;
    let job = jobs.iter().find(|j| sql.starts_with(&j.name)).map(|j| j.job_id.clone()).unwrap_or_default();
    let dropped = jc.job(&job, false).await?.counter("SQL", "RUNTIME_FILTER_DROPPED_ROWS");
    Ok((scans, dropped as u64, job))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_run_across_workers_beside_their_blocks() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(3).workers(3).replication(1).start()?;
    let mut s = setup(&cluster).await?;
    let want = expected();

    let got = query(&mut s, "SELECT k, count(*), sum(v) FROM big GROUP BY k ORDER BY k").await?;
    let want_rows: Vec<Vec<String>> = want.iter().map(|(k, (c, v))| vec![k.to_string(), c.to_string(), v.to_string()]).collect();
    assert_eq!(got, want_rows);

    // A join of two tables (two upstream stages), a filter and a sort.
    let got = query(&mut s, "SELECT d.name, sum(b.v) FROM big b JOIN dims d ON b.k = d.k WHERE b.k < 5 GROUP BY d.name ORDER BY d.name").await?;
    let want_join: Vec<Vec<String>> = (0..5).map(|k| vec![format!("key{k:02}"), want[&k].1.to_string()]).collect();
    assert_eq!(got, want_join);

    // A window function and a CTE.
    let got = query(
        &mut s,
        "WITH top AS (SELECT k, v, row_number() OVER (PARTITION BY k ORDER BY v DESC) AS rn FROM big)
         SELECT k, v FROM top WHERE rn = 1 AND k < 3 ORDER BY k",
    )
    .await?;
    let last = |k: u64| (0..ROWS).rev().find(|i| i % KEYS == k).unwrap_or(0);
    assert_eq!(got, (0..3).map(|k| vec![k.to_string(), last(k).to_string()]).collect::<Vec<_>>());

    // They ran as jobs of several stages, the scan in several tasks.
    let jc = cluster.job_client().await?;
    let jobs = jc.list().await?;
    let sql: Vec<_> = jobs.iter().filter(|j| j.engine == "sql").collect();
    assert!(sql.len() >= 3, "queries did not run on the workers: {jobs:?}");
    assert!(sql.iter().all(|j| j.state == JobState::Succeeded));
    assert!(sql.iter().all(|j| j.stages.len() >= 2), "{sql:?}");
    assert!(sql.iter().any(|j| j.stages[0].total >= 2), "the 4-block table was not scanned by several tasks: {sql:?}");

    // A query over a small table (one file, one block) runs as one task.
    let got = query(&mut s, "SELECT name FROM dims WHERE k % 7 = 3 ORDER BY name").await?;
    assert_eq!(got, (0..KEYS).filter(|k| k % 7 == 3).map(|k| vec![format!("key{k:02}")]).collect::<Vec<_>>());
    let jobs = jc.list().await?;
    let small: Vec<_> = jobs.iter().filter(|j| j.engine == "sql" && j.name.contains("FROM dims")).collect();
    assert_eq!(small.len(), 1, "{jobs:?}");
    assert_eq!((small[0].stages.len(), small[0].stages[0].total), (1, 1), "{small:?}");

    // EXPLAIN shows the stages and where their tasks go.
    let plan = query(&mut s, "EXPLAIN SELECT k, sum(v) FROM big GROUP BY k").await?;
    let text: String = plan.iter().map(|r| format!("{}\n{}\n", r[0], r[1])).collect();
    assert!(text.contains("stage 0 of") && text.contains("ShuffleReaderExec") && text.contains("beside"), "{text}");
    // A sorted result's last merge runs in the client, not as a stage.
    let plan = query(&mut s, "EXPLAIN SELECT k, sum(v) FROM big GROUP BY k ORDER BY k").await?;
    let client: Vec<&String> = plan.iter().filter(|r| r[0] == "client").map(|r| &r[1]).collect();
    assert!(client.len() == 1 && client[0].contains("SortPreservingMergeExec"), "{plan:?}");
    assert!(!plan.iter().any(|r| r[0].starts_with("stage ") && r[1].contains("SortPreservingMergeExec")), "{plan:?}");

    // The small side of a join is read by the probe tasks themselves, in
    // their stage, not by a stage of its own.
    let plan = query(&mut s, "EXPLAIN SELECT d.name, sum(b.v) FROM big b JOIN dims d ON b.k = d.k GROUP BY d.name").await?;
    let stages: Vec<&String> = plan.iter().filter(|r| r[0].starts_with("stage ")).map(|r| &r[1]).collect();
    let text: String = stages.iter().map(|s| format!("{s}\n")).collect();
    assert!(stages.iter().any(|s| s.contains("/dims/") && s.contains("data/big/")), "{text}");
    assert!(!stages.iter().any(|s| s.contains("/dims/") && !s.contains("data/big/")), "{text}");

    // A join that emits unmatched rows of its small side (here LEFT JOIN
    // dims) learns which ones never matched only from the whole other
    // side: it is hash-partitioned on the keys on both sides, so each task
    // sees every row of its keys, rather than the big side read by one task.
    let sql_left = "SELECT d.name, count(b.v) FROM dims d LEFT JOIN big b ON d.k = b.k AND b.v % 2 = 0 GROUP BY d.name ORDER BY d.name";
    let got = query(&mut s, sql_left).await?;
    let per_key = (ROWS / KEYS).to_string(); // v = i and k = i % 40: even keys hold only even v
    assert_eq!(got, (0..KEYS).map(|k| vec![format!("key{k:02}"), if k % 2 == 0 { per_key.clone() } else { "0".into() }]).collect::<Vec<_>>());
    let plan = query(&mut s, &format!("EXPLAIN {sql_left}")).await?;
    let text: String = plan.iter().filter(|r| r[0].starts_with("stage ")).map(|r| format!("{}\n", r[1])).collect();
    assert!(text.contains("mode=Partitioned, join_type=Left"), "{text}");

    // A partitioned join whose build side is a filtered stage (4 of the 40
    // keys, by a column the probe side does not have, so no predicate can
    // be inferred for it) filters its probe side by those keys before the
    // shuffle: the probe stage waits for the build stage, and 9 in 10 rows
    // of `big` are dropped in the scan stage. Semi and anti joins still
    // give the right answers.
    let dropped_rows = ROWS - 4 * (ROWS / KEYS);
    let sql_semi = "SELECT d.name FROM dims d WHERE d.name < 'key04' AND EXISTS (SELECT 1 FROM big b WHERE b.k = d.k) ORDER BY d.name";
    let got = query(&mut s, sql_semi).await?;
    assert_eq!(got, (0..4).map(|k| vec![format!("key{k:02}")]).collect::<Vec<_>>());
    let (scans, dropped, semi_job) = filtered(&mut s, &jc, sql_semi).await?;
    assert!(scans.len() == 1 && scans[0].contains("RuntimeFilterExec") && scans[0].contains("reads stage(s)"), "{scans:?}");
    assert_eq!(dropped, dropped_rows);
    // The filter follows its key down through an aggregate and across the
    // shuffle below it, into the stage scanning `big`.
    let sql_agg = "SELECT d.name FROM dims d WHERE d.name < 'key04' AND EXISTS \
                   (SELECT 1 FROM (SELECT k, sum(v) AS s FROM big GROUP BY k) t WHERE t.k = d.k AND t.s > 0) ORDER BY d.name";
    let got = query(&mut s, sql_agg).await?;
    assert_eq!(got, (0..4).map(|k| vec![format!("key{k:02}")]).collect::<Vec<_>>());
    let (scans, dropped, _) = filtered(&mut s, &jc, sql_agg).await?;
    assert!(scans.len() == 1 && scans[0].contains("RuntimeFilterExec") && scans[0].contains("reads stage(s)"), "{scans:?}");
    assert_eq!(dropped, dropped_rows);
    // A broadcast join's small build side (filtered dims, read by the join's
    // tasks themselves) filters the scan of `big` in the stage before the
    // aggregate: that stage reads the small table too, no stage waits.
    let sql_bcast = "SELECT d.name, t.s FROM dims d JOIN (SELECT k, sum(v) AS s FROM big GROUP BY k) t ON d.k = t.k \
                     WHERE d.name < 'key04' ORDER BY d.name";
    let got = query(&mut s, sql_bcast).await?;
    assert_eq!(got, (0..4).map(|k| vec![format!("key{k:02}"), want[&k].1.to_string()]).collect::<Vec<_>>());
    let (scans, dropped, _) = filtered(&mut s, &jc, sql_bcast).await?;
    assert!(scans.len() == 1 && scans[0].contains("of the build side below") && scans[0].contains("reads tables"), "{scans:?}");
    assert_eq!(dropped, dropped_rows);
    // Keys 1 to 39 have a v above 299 960: only key 0 has none.
    let got = query(&mut s, "SELECT d.name FROM dims d WHERE d.name < 'key04' AND NOT EXISTS (SELECT 1 FROM big b WHERE b.k = d.k AND b.v > 299960)").await?;
    assert_eq!(got, vec![vec!["key00".to_string()]]);

    // A query's last task hands small results back in its report; a result
    // over 1 MiB goes through a file in the DFS, which the client deletes.
    let report = jc.job(&semi_job, true).await?;
    let last = report.stages.last().map(|st| st.name.clone()).unwrap_or_default();
    let results: Vec<&str> = report.tasks.iter().filter(|t| t.stage == last).flat_map(|t| &t.attempts).map(|a| a.result_json.as_str()).collect();
    assert!(!results.is_empty() && results.iter().all(|r| r.starts_with("{\"rows\":")), "{results:?}");
    let sql_all = "SELECT v, k FROM big ORDER BY v";
    let got = query(&mut s, sql_all).await?;
    assert_eq!(got.len() as u64, ROWS);
    assert!(got.iter().enumerate().all(|(i, r)| r[0] == i.to_string() && r[1] == (i as u64 % KEYS).to_string()));
    let jobs = jc.list().await?;
    let all = jobs.iter().find(|j| j.name == sql_all).map(|j| j.job_id.clone()).unwrap_or_default();
    let report = jc.job(&all, true).await?;
    let last = report.stages.last().map(|st| st.name.clone()).unwrap_or_default();
    let results: Vec<&str> = report.tasks.iter().filter(|t| t.stage == last).flat_map(|t| &t.attempts).map(|a| a.result_json.as_str()).collect();
    // The sort's tasks each hand back their sorted share (through a file
    // when over their part of the 1 MiB) and the client merges them in order.
    let kinds: Vec<&str> = results.iter().map(|r| r.split(':').next().unwrap_or_default()).collect();
    assert!(kinds.len() >= 2 && kinds.contains(&"{\"file\""), "{kinds:?}");
    let client = cluster.client().await?;
    for user in client.list("/tmp/tusk-sql").await? {
        let left = client.list(&format!("/tmp/tusk-sql/{}", user.name)).await?;
        assert!(left.is_empty(), "query results left behind: {left:?}");
    }

    // An uncorrelated IN subquery that reads much, under a query that reads
    // much, runs first: its 7 500 values filter the outer scan as a list.
    let sql_in = "SELECT count(*), sum(v) FROM big WHERE v IN (SELECT v FROM big WHERE k = 3)";
    let got = query(&mut s, sql_in).await?;
    assert_eq!(got, vec![vec![want[&3].0.to_string(), want[&3].1.to_string()]]);
    let jobs = jc.list().await?;
    let ran = jobs.iter().filter(|j| j.name == sql_in).count();
    assert_eq!(ran, 2, "the subquery, then the query with its values: {jobs:?}");
    // With more than 10 000 values it stays a semi join.
    let got = query(&mut s, "SELECT count(*) FROM big WHERE v IN (SELECT v FROM big WHERE k < 20)").await?;
    assert_eq!(got, vec![vec![(ROWS / 2).to_string()]]);
    // NOT IN keeps SQL's three-valued logic: a NULL among the values
    // matches no row.
    let got = query(&mut s, "SELECT count(*) FROM big WHERE k NOT IN (SELECT CASE WHEN v = 1 THEN NULL ELSE k END FROM big WHERE v < 5)").await?;
    assert_eq!(got, vec![vec!["0".to_string()]]);
    let got = query(&mut s, "SELECT count(*) FROM big WHERE k NOT IN (SELECT k FROM big WHERE v < 5 AND v <> 1)").await?;
    assert_eq!(got, vec![vec![(ROWS - 4 * (ROWS / KEYS)).to_string()]]);

    // INSERT … SELECT runs on the workers too: the last stage's tasks write
    // the files (a dynamic-partition insert here), committed atomically.
    exec(&mut s, "CREATE TABLE agg (k INT, c BIGINT) PARTITIONED BY (bucket INT) STORED AS PARQUET").await?;
    exec(&mut s, "INSERT INTO agg PARTITION (bucket) SELECT k, count(*), k % 4 FROM big GROUP BY k").await?;
    let jobs = jc.list().await?;
    let insert: Vec<_> = jobs.iter().filter(|j| j.name == "INSERT INTO default.agg").collect();
    assert_eq!(insert.len(), 1, "{jobs:?}");
    assert!(insert[0].state == JobState::Succeeded && insert[0].stages.len() >= 2, "{insert:?}");
    let writers = insert[0].stages.last().map(|st| st.total).unwrap_or(0);
    let got = query(&mut s, "SELECT bucket, count(*), sum(c) FROM agg GROUP BY bucket ORDER BY bucket").await?;
    let per_bucket = |b: u64| want.iter().filter(|(k, _)| **k % 4 == b).map(|(_, (c, _))| *c).sum::<u64>();
    assert_eq!(got, (0..4).map(|b| vec![b.to_string(), (KEYS / 4).to_string(), per_bucket(b).to_string()]).collect::<Vec<_>>());
    let client = cluster.client().await?;
    let table_dir = "/user/hive/warehouse/agg";
    let top: Vec<String> = client.list(table_dir).await?.into_iter().map(|f| f.name).collect();
    assert_eq!(top, vec!["bucket=0", "bucket=1", "bucket=2", "bucket=3"], "no staging left behind");
    let files = client.list(&format!("{table_dir}/bucket=0")).await?.len();
    assert!(files >= 1 && files as u32 <= writers, "{files} files from {writers} writing tasks");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_during_a_multi_stage_query() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(3).workers(3).replication(1).fast_worker_expiry(5000).start()?;
    let mut s = setup(&cluster).await?;
    let want = expected();
    // Stage 0 scans and pre-aggregates, stage 1 (after the shuffle) sleeps
    // a little per task: time to kill a worker running stage 1 (one that
    // also holds stage-0 output when there is one).
    let sql = "SELECT k, c + sleep(3) AS c, s FROM (SELECT k, count(*) AS c, sum(v) AS s FROM big GROUP BY k) ORDER BY k";
    let session = tokio::spawn(async move {
        let r = query(&mut s, sql).await;
        (s, r)
    });
    let jc = cluster.job_client().await?;
    let found = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let finished = || session.is_finished();
    tusk_tests::eventually(Duration::from_secs(120), || {
        let jc = jc.clone();
        let found = found.clone();
        let done = finished();
        async move {
            if done {
                return true;
            }
            let Ok(jobs) = jc.list_running().await else { return false };
            let Some(job) = jobs.iter().find(|j| j.engine == "sql") else { return false };
            let Ok(r) = jc.job(&job.job_id, true).await else { return false };
            let attempts: Vec<_> = r.tasks.iter().flat_map(|t| t.attempts.iter().map(move |a| (t.stage.as_str(), a))).collect();
            let running: Vec<_> = attempts.iter().filter(|(st, a)| *st == "stage-1" && a.state == AttemptState::Running).collect();
            // Rather a worker that also holds stage-0 output (lost, so
            // recomputed); else any worker running stage 1.
            let holds_stage0 = |addr: &str| {
                attempts.iter().any(|(st, b)| *st == "stage-0" && b.state == AttemptState::Succeeded && b.worker_addr == addr)
            };
            let pick = running.iter().find(|(_, a)| holds_stage0(&a.worker_addr)).or(running.first());
            let Some((_, a)) = pick else { return false };
            if let Ok(mut v) = found.lock() {
                *v = a.worker_addr.clone();
            }
            true
        }
    })
    .await?;
    if session.is_finished() {
        let (_, r) = session.await?;
        anyhow::bail!("the query ended before a worker could be killed: {:?}", r.map(|rows| rows.len()));
    }
    let victim = found.lock().map(|v| v.clone()).unwrap_or_default();
    let role = (0..3)
        .map(|i| format!("worker-{i}"))
        .find(|r| std::fs::read_to_string(cluster.dir().join("run").join(format!("{r}.addr"))).is_ok_and(|a| a.trim() == victim))
        .ok_or_else(|| anyhow::anyhow!("no worker at {victim}"))?;
    cluster.kill9(&role)?;
    let (_, got) = tokio::time::timeout(Duration::from_secs(240), session).await??;
    let got = got?;
    let want_rows: Vec<Vec<String>> = want.iter().map(|(k, (c, v))| vec![k.to_string(), c.to_string(), v.to_string()]).collect();
    assert_eq!(got, want_rows, "wrong answer after losing {role}");
    Ok(())
}
