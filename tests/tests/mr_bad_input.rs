//! Issue 5: bad jobs get a clear error before or during the job, and
//! nothing is half-written.

use tusk_client::JobState;
use tusk_tests::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jobs_are_refused_with_clear_errors_and_leave_nothing() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(1).workers(1).replication(1).start()?;
    let client = cluster.client().await?;
    client.write_all("/in.txt", b"a b c\n", false).await?;
    client.mkdirs("/exists", None, true).await?;
    client.write_all("/exists/keep.txt", b"precious\n", false).await?;

    // Missing input: refused before the job starts.
    let err = cluster.job_err(&["run", "wordcount", "/no/such/input", "/out1"]);
    assert!(err.contains("/no/such/input") && err.contains("does not exist"), "{err}");
    assert!(client.try_stat("/out1").await?.is_none());
    let err = cluster.job_err(&["run", "wordcount", "/no/*.txt", "/out1"]);
    assert!(err.contains("/no/*.txt"), "{err}");

    // Existing output directory: refused, left as it was.
    let err = cluster.job_err(&["run", "wordcount", "/in.txt", "/exists"]);
    assert!(err.contains("/exists") && err.contains("already exists"), "{err}");
    assert_eq!(client.read_all("/exists/keep.txt").await?.as_ref(), b"precious\n");
    assert_eq!(client.list("/exists").await?.len(), 1);

    // Unknown option (Hadoop spelling): named in the error, nothing submitted.
    let err = cluster.job_err(&["streaming", "-input", "/in.txt", "-output", "/out2", "-mapper", "cat", "-frobnicate", "3"]);
    assert!(err.contains("frobnicate"), "{err}");
    assert!(client.try_stat("/out2").await?.is_none());
    let err = cluster.job_err(&["run", "nosuchjob", "/in.txt", "/out2"]);
    assert!(err.contains("nosuchjob"), "{err}");

    // A mapper command that does not exist: the job fails with the
    // shell's complaint, and its output directory is gone.
    let err = cluster.job_err(&["streaming", "-input", "/in.txt", "-output", "/out3", "-mapper", "no-such-command-xyz", "-reducer", "cat"]);
    assert!(err.contains("no-such-command-xyz"), "{err}");
    assert!(client.try_stat("/out3").await?.is_none(), "a failed job left /out3");
    let jobs = cluster.job_client().await?.list().await?;
    assert!(jobs.iter().any(|j| j.output == "/out3" && j.state == JobState::Failed));
    // Nothing else appeared in the namespace root.
    let mut root: Vec<String> = client.list("/").await?.into_iter().map(|f| f.path).collect();
    root.retain(|p| p != "/user" && p != "/tmp");
    root.sort();
    assert_eq!(root, vec!["/exists", "/in.txt"]);
    Ok(())
}

/// `tusk job kill` stops a running job: its attempts die and its output
/// directory is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_job_leaves_no_output() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(1).workers(1).replication(1).start()?;
    let client = cluster.client().await?;
    client.write_all("/in.txt", b"a b c\n", false).await?;
    let id = cluster.submit(&["streaming", "-input", "/in.txt", "-output", "/slow", "-mapper", "sh -c 'sleep 600'", "-reducer", "cat"]);
    let jc = cluster.job_client().await?;
    tusk_tests::eventually(std::time::Duration::from_secs(30), || async {
        jc.job(&id, false).await.is_ok_and(|r| r.stages.iter().any(|s| s.running > 0))
    })
    .await?;
    cluster.job_ok(&["kill", &id]);
    let report = cluster.wait_job(&id, std::time::Duration::from_secs(30)).await?;
    assert_eq!(report.state, JobState::Killed);
    assert!(client.try_stat("/slow").await?.is_none());
    Ok(())
}
