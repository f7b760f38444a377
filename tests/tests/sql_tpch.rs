//! Issue 6: TPC-H at scale factor 0.01 through a Tusk SQL session: the
//! eight tables generated and loaded by `tusk_sql::tpch::load` (several
//! Parquet files per table), then all 22 queries, each compared with the
//! committed known answer (produced by DuckDB on the same generated data;
//! see `sql/src/tpch/answers/README.md`).
//!
//! Derived from the TPC-H specification; results are not comparable to
//! published TPC-H results.

use std::time::Instant;

use tusk_sql::tpch;
use tusk_tests::TestCluster;
#[path = "support/sql.rs"]
mod sql;
use sql::exec;

/// Rows per table at SF 0.01 (dbgen's counts).
const ROWS: [(&str, u64); 8] = [
    ("region", 5),
    ("nation", 25),
    ("supplier", 100),
    ("customer", 1_500),
    ("part", 2_000),
    ("partsupp", 8_000),
    ("orders", 15_000),
    ("lineitem", 60_175),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_22_queries_match_the_known_answers_at_sf_0_01() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().datanodes(1).workers(1).replication(1).start()?;
    let client = cluster.client().await?;
    // Stages even for these small tables: the distributed plans are checked.
    let mut s = sql::staged_session(&cluster).await?;

    let report = tpch::load(&mut s, "tpch", tpch::ANSWER_SCALE, 2).await?;
    for (name, rows) in ROWS {
        let t = report.table(name).ok_or_else(|| anyhow::anyhow!("{name} not loaded"))?;
        assert_eq!(t.rows, rows, "{name}: rows loaded");
        assert_eq!(t.location, format!("/user/hive/warehouse/tpch.db/{name}"), "{name}: location");
    }
    let files = client.list("/user/hive/warehouse/tpch.db/lineitem").await?;
    let parquet = files.iter().filter(|f| !f.is_dir && f.name.ends_with(".parquet")).count();
    assert!(parquet >= 2, "lineitem is loaded in two parts, so at least two files: {files:?}");
    eprintln!("loaded {} rows in {:.1?}", report.rows(), report.elapsed);

    exec(&mut s, "USE tpch").await?;
    let mut mismatches = Vec::new();
    for n in 1..=22 {
        let t = Instant::now();
        let expected = tpch::answer(n).ok_or_else(|| anyhow::anyhow!("no answer for Q{n}"))?;
        match tpch::run_query(&mut s, n).await {
            Ok(batches) => {
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                eprintln!("Q{n}: {rows} rows in {:.2?}", t.elapsed());
                if let Err(e) = tpch::check(n, expected, &batches) {
                    mismatches.push(format!("Q{n}: {e}"));
                }
            }
            Err(e) => mismatches.push(format!("Q{n} failed: {e}")),
        }
    }
    assert!(mismatches.is_empty(), "{} of 22 TPC-H queries differ from the known answers:\n{}", mismatches.len(), mismatches.join("\n"));

    // The comparison catches a wrong result: one duplicated line item
    // (shipped 1996-03-13, so inside Q1's date range) changes Q1's sums.
    exec(&mut s, "INSERT INTO lineitem SELECT * FROM lineitem WHERE l_orderkey = 1 AND l_linenumber = 1").await?;
    let q1 = tpch::run_query(&mut s, 1).await?;
    assert!(tpch::check(1, tpch::answer(1).unwrap_or_default(), &q1).is_err(), "one extra line item changes Q1");
    Ok(())
}
