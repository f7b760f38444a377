//! Issue 5: the jobtracker persists its jobs. After a restart, finished
//! jobs are still listed; a job that was running is marked failed with the
//! reason, and its output is removed; new jobs run.

use std::time::Duration;
use tusk_client::JobState;
use tusk_tests::TestCluster;
use tusk_tests::jobs::job_id_in;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobtracker_restart_keeps_history_and_fails_running_jobs() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(1).workers(1).replication(1).start()?;
    let client = cluster.client().await?;
    client.write_all("/in.txt", b"to be or not to be\n", false).await?;
    let done = job_id_in(&cluster.job_ok(&["run", "wordcount", "/in.txt", "/wc"])).expect("job id");
    let running = cluster.submit(&["streaming", "-input", "/in.txt", "-output", "/slow", "-mapper", "sh -c 'sleep 600'", "-reducer", "cat"]);
    let jc = cluster.job_client().await?;
    tusk_tests::eventually(Duration::from_secs(30), || async {
        jc.job(&running, false).await.is_ok_and(|r| r.stages.iter().any(|s| s.running > 0))
    })
    .await?;

    cluster.restart("jobtracker-0")?;

    let jc = cluster.job_client().await?;
    let before = jc.job(&done, true).await?;
    assert_eq!(before.state, JobState::Succeeded);
    assert!(before.finish_ms >= before.start_ms && before.start_ms > 0);
    assert!(!before.tasks.is_empty(), "tasks were not persisted");
    assert!(!before.counters.is_empty(), "counters were not persisted");
    // Marked failed once its output is gone (after the workers had a chance
    // to re-register and have their stray attempts killed).
    let failed = cluster.wait_job(&running, Duration::from_secs(30)).await?;
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.diagnostics.contains("restarted"), "{}", failed.diagnostics);
    assert!(client.try_stat("/slow").await?.is_none(), "the interrupted job left its output");
    let list = cluster.job_ok(&["list"]);
    assert!(list.contains(&done) && list.contains(&running), "{list}");

    // The worker re-registers and new jobs run.
    cluster.job_ok(&["run", "wordcount", "/in.txt", "/wc2"]);
    assert_eq!(cluster.job_output("/wc2").await?, cluster.job_output("/wc").await?);
    Ok(())
}
