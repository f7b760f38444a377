//! Issue 5: MapReduce jobs run next to their data. Built-in word count on a
//! real cluster: output, commit, locality and the job commands.

use std::time::Duration;
use tusk_mapreduce::api::counters::{JOB, TASK};
use tusk_tests::TestCluster;
use tusk_tests::jobs::{counter, job_id_in, text_corpus, word_counts};

/// Word count over several multi-block files (lines cross block
/// boundaries) equals a count computed here; the output is committed with
/// `_SUCCESS` and no `_temporary`; with replication 3 on 3 datanodes, each
/// with a worker, at least 90% of maps are data-local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wordcount_equals_an_independent_count_and_maps_are_data_local() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(3).workers(3).replication(3).start()?;
    let client = cluster.client().await?;
    let mut all = Vec::new();
    for (i, lines) in [60_000usize, 25_000, 1].into_iter().enumerate() {
        let text = text_corpus(lines, i as u64 + 1);
        client.write_all(&format!("/in/part{i}.txt"), &text, false).await?;
        all.extend_from_slice(&text);
    }
    client.write_all("/in/_ignored", b"hidden files are not input\n", false).await?;
    client.write_all("/in/empty.txt", b"", false).await?;

    let out = cluster.job_ok(&["run", "wordcount", "/in", "/out", "--reduces", "3"]);
    let id = job_id_in(&out).unwrap_or_else(|| panic!("no job id in {out}"));

    let mut got: Vec<String> = String::from_utf8(cluster.job_output("/out").await?)?.lines().map(str::to_string).collect();
    got.sort();
    assert_eq!(got, word_counts(&all), "word counts differ from the independent count");
    let names: Vec<String> = client.list("/out").await?.into_iter().map(|f| f.path).collect();
    assert!(names.iter().any(|p| p == "/out/_SUCCESS"), "{names:?}");
    assert!(!names.iter().any(|p| p.contains("_temporary")), "{names:?}");
    assert_eq!(names.iter().filter(|p| p.contains("/part-r-")).count(), 3, "{names:?}");

    let report = cluster.job_report(&id).await?;
    let maps = counter(&report, JOB, "TOTAL_LAUNCHED_MAPS");
    let local = counter(&report, JOB, "DATA_LOCAL_MAPS");
    assert!(maps >= 5, "expected a map per block, got {maps}");
    assert!(local * 10 >= maps * 9, "only {local} of {maps} maps were data-local");
    assert_eq!(counter(&report, TASK, "MAP_INPUT_RECORDS"), 85_001);
    assert!(counter(&report, TASK, "COMBINE_OUTPUT_RECORDS") > 0, "the combiner did not run");
    assert!(report.first_launch_ms >= 0);

    // The job commands know the job.
    let list = cluster.job_ok(&["list", "--json"]);
    assert!(list.contains(&id), "{list}");
    let status: serde_json::Value = serde_json::from_str(&cluster.job_ok(&["status", &id, "--json"]))?;
    assert!(status.to_string().contains("SUCCEEDED"), "{status}");
    let counters: serde_json::Value = serde_json::from_str(&cluster.job_ok(&["counters", &id, "--json"]))?;
    assert!(counters.to_string().contains("MAP_INPUT_RECORDS"), "{counters}");
    let waited = cluster.job_ok(&["wait", &id]);
    assert!(waited.contains("SUCCEEDED") || waited.contains("succeeded"), "{waited}");
    Ok(())
}

/// A job over an empty file runs end to end (one empty reduce output) and a
/// map-only job (teragen) writes `part-m-*` files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_map_only_jobs() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(1).workers(1).replication(1).start()?;
    let client = cluster.client().await?;
    client.write_all("/empty.txt", b"", false).await?;
    cluster.job_ok(&["run", "wordcount", "/empty.txt", "/wc"]);
    assert!(cluster.job_output("/wc").await?.is_empty());
    assert!(client.try_stat("/wc/_SUCCESS").await?.is_some());

    let id = cluster.submit(&["run", "teragen", "1000", "/gen", "--maps", "2"]);
    let report = cluster.wait_job(&id, Duration::from_secs(120)).await?;
    assert_eq!(report.state, tusk_client::JobState::Succeeded, "{}", report.diagnostics);
    let files: Vec<String> = client.list("/gen").await?.into_iter().map(|f| f.path).collect();
    assert_eq!(files.iter().filter(|p| p.contains("/part-m-")).count(), 2, "{files:?}");
    assert_eq!(cluster.job_output("/gen").await?.len(), 100_000);
    Ok(())
}

/// Jobs submitted together run at the same time and all succeed with
/// their own output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_share_the_cluster() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(2).workers(2).replication(2).start()?;
    let client = cluster.client().await?;
    let mut texts = Vec::new();
    for i in 0..3u64 {
        let text = text_corpus(20_000, 100 + i);
        client.write_all(&format!("/c{i}.txt"), &text, false).await?;
        texts.push(text);
    }
    let ids: Vec<String> =
        (0..3).map(|i| cluster.submit(&["run", "wordcount", &format!("/c{i}.txt"), &format!("/wc{i}")])).collect();
    for (i, id) in ids.iter().enumerate() {
        let report = cluster.wait_job(id, std::time::Duration::from_secs(120)).await?;
        assert_eq!(report.state, tusk_client::JobState::Succeeded, "{}", report.diagnostics);
        let mut got: Vec<String> =
            String::from_utf8(cluster.job_output(&format!("/wc{i}")).await?)?.lines().map(str::to_string).collect();
        got.sort();
        assert_eq!(got, word_counts(&texts[i]), "job {id} counted the wrong input");
    }
    Ok(())
}
