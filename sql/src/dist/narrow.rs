//! A task's fragment narrowed to the one partition the task runs, so that
//! DataFusion's dynamic filters work inside it.
//!
//! In one process DataFusion narrows a join's probe-side scan by the keys
//! of its finished build side, a TopK's scan by its current threshold, and
//! so on (dynamic filters): the scan skips row groups and rows that cannot
//! matter. A join's filter is complete only once every probe partition has
//! reported to it, and a task runs one partition of its stage's fragment:
//! the others, run by other tasks, would never report. So the client plans
//! without dynamic filters, and each task first rebuilds its fragment with
//! its partition as the only one (every leaf reading partition `i` of a
//! stage of several tasks keeps just that part: file group `i`, shuffle
//! partition `i`), then lets DataFusion add the dynamic filters, which now
//! see every partition there is.

use std::sync::Arc;

use datafusion::config::ConfigOptions;
use datafusion::datasource::physical_plan::{FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::filter_pushdown::FilterPushdown;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, replace_children_if_necessary};

use super::filter::RuntimeFilterExec;
use super::reader::ShuffleReaderExec;

fn any(plan: &Arc<dyn ExecutionPlan>) -> &dyn std::any::Any {
    plan.as_ref() as &dyn std::any::Any
}

/// The plan a task runs for partition `part` of `plan` (its stage's
/// fragment; a hash repartition at its root is the task's shuffle output),
/// and the partition of it to run. With dynamic filters on in `config`,
/// the plan is narrowed to that one partition and gets them; when it
/// cannot be narrowed (an operator that is not partition by partition, such
/// as a union), it is returned unchanged, without them.
pub fn for_task(plan: Arc<dyn ExecutionPlan>, part: usize, config: &ConfigOptions) -> Result<(Arc<dyn ExecutionPlan>, usize)> {
    if !config.optimizer.enable_dynamic_filter_pushdown {
        return Ok((plan, part));
    }
    // The task runs partition `part` of the repartition's input (its
    // output partitions are the shuffle's).
    let work = match any(&plan).downcast_ref::<RepartitionExec>() {
        Some(r) => r.input().clone(),
        None => plan.clone(),
    };
    let n = work.output_partitioning().partition_count();
    let (plan, part) = if n > 1 {
        match narrow(&plan, part, n)? {
            Some(one) => (one, 0),
            None => return Ok((plan, part)),
        }
    } else {
        (plan, part)
    };
    Ok((FilterPushdown::new_post_optimization().optimize(plan, config)?, part))
}

/// `plan` with each leaf of `n` partitions reduced to its partition `part`
/// (leaves of one partition, such as a broadcast side, and whatever a
/// merge reads whole are kept), or `None` if some node would not end up
/// with one partition.
fn narrow(plan: &Arc<dyn ExecutionPlan>, part: usize, n: usize) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let count = plan.output_partitioning().partition_count();
    if any(plan).is::<CoalescePartitionsExec>() || any(plan).is::<SortPreservingMergeExec>() {
        return Ok((count == 1).then(|| plan.clone()));
    }
    if let Some(ds) = any(plan).downcast_ref::<DataSourceExec>() {
        return Ok(match (count, ds.data_source().downcast_ref::<FileScanConfig>()) {
            (1, _) => Some(plan.clone()),
            (c, Some(conf)) if c == n => {
                let group = conf.file_groups.get(part).cloned().unwrap_or_default();
                let one = FileScanConfigBuilder::from(conf.clone()).with_file_groups(vec![group]).build();
                Some(DataSourceExec::from_data_source(one))
            }
            _ => None,
        });
    }
    if let Some(r) = any(plan).downcast_ref::<ShuffleReaderExec>() {
        return Ok(match count {
            1 => Some(plan.clone()),
            c if c == n => Some(Arc::new(r.narrowed(part))),
            _ => None,
        });
    }
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    if children.is_empty() {
        return Ok((count == 1).then(|| plan.clone()));
    }
    // A runtime filter's build plan (its second child) runs whole.
    let narrowed_children = if any(plan).is::<RuntimeFilterExec>() { 1 } else { children.len() };
    let mut new_children = Vec::with_capacity(children.len());
    for (i, c) in children.into_iter().enumerate() {
        if i >= narrowed_children {
            new_children.push(c);
            continue;
        }
        match narrow(&c, part, n)? {
            Some(one) => new_children.push(one),
            None => return Ok(None),
        }
    }
    let rebuilt = replace_children_if_necessary(plan.clone(), new_children)?;
    let now = rebuilt.output_partitioning().partition_count();
    // A hash repartition (the task's output) keeps the shuffle's partitions.
    let ok = if any(plan).is::<RepartitionExec>() { true } else { (count == n || count == 1) && now == 1 };
    Ok(ok.then_some(rebuilt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// A probe side of two files (two partitions) joined with a filtered
    /// small side: each task's narrowed fragment has one partition and a
    /// dynamic filter on its probe scan, and the tasks' rows together are
    /// the query's.
    #[tokio::test]
    async fn each_task_runs_one_partition_with_dynamic_filters() {
        let dir = tempfile::tempdir().unwrap();
        let (big, dims) = (dir.path().join("big"), dir.path().join("dims"));
        std::fs::create_dir_all(&big).unwrap();
        std::fs::create_dir_all(&dims).unwrap();
        let writer = SessionContext::new();
        for (i, range) in [(0, "0, 5000"), (1, "5000, 10000")] {
            let sql = format!(
                "COPY (SELECT value % 40 AS k, value AS v FROM range({range})) TO '{}/part-{i}.parquet' STORED AS PARQUET",
                big.display()
            );
            writer.sql(&sql).await.unwrap().collect().await.unwrap();
        }
        let sql = format!(
            "COPY (SELECT value AS k, concat('key', value) AS name FROM range(0, 40)) TO '{}/part-0.parquet' STORED AS PARQUET",
            dims.display()
        );
        writer.sql(&sql).await.unwrap().collect().await.unwrap();

        // Planned as the client plans: two partitions, no dynamic filters.
        let mut config = SessionConfig::new().with_target_partitions(2);
        let o = &mut config.options_mut().optimizer;
        o.enable_dynamic_filter_pushdown = false;
        o.enable_join_dynamic_filter_pushdown = false;
        o.enable_topk_dynamic_filter_pushdown = false;
        o.enable_aggregate_dynamic_filter_pushdown = false;
        o.enable_round_robin_repartition = false;
        let ctx = SessionContext::new_with_config(config);
        for (t, d) in [("big", &big), ("dims", &dims)] {
            ctx.sql(&format!("CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{}/'", d.display()))
                .await
                .unwrap();
        }
        let query = "SELECT b.v FROM big b JOIN dims d ON b.k = d.k WHERE d.name IN ('key3', 'key7') ORDER BY b.v";
        let want = ctx.sql(query).await.unwrap().collect().await.unwrap();
        let plan = ctx.sql(query).await.unwrap().create_physical_plan().await.unwrap();
        // Below the final sort and merge: the stage of two tasks.
        let mut stage = plan.clone();
        while stage.output_partitioning().partition_count() < 2 {
            stage = stage.children()[0].clone();
        }
        assert!(!displayable(stage.as_ref()).indent(true).to_string().contains("DynamicFilter"));

        let on = datafusion::config::ConfigOptions::default();
        let mut rows: Vec<i64> = Vec::new();
        for part in 0..2 {
            let (task, p) = for_task(stage.clone(), part, &on).unwrap();
            assert_eq!((task.output_partitioning().partition_count(), p), (1, 0));
            let text = displayable(task.as_ref()).indent(true).to_string();
            assert!(text.contains("DynamicFilter"), "{text}");
            for b in collect(task, ctx.task_ctx()).await.unwrap() {
                let col = b.column(0).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().unwrap();
                rows.extend(col.values().iter());
            }
        }
        rows.sort_unstable();
        let expected: Vec<i64> = (0..10000).filter(|v| v % 40 == 3 || v % 40 == 7).collect();
        assert_eq!(rows, expected);
        assert_eq!(want.iter().map(|b| b.num_rows()).sum::<usize>(), expected.len(), "{}", pretty_format_batches(&want).unwrap());

        // Dynamic filters off: the fragment is left as it is.
        let mut off = datafusion::config::ConfigOptions::default();
        off.optimizer.enable_dynamic_filter_pushdown = false;
        let (task, p) = for_task(stage.clone(), 1, &off).unwrap();
        assert_eq!((task.output_partitioning().partition_count(), p), (2, 1));
    }
}
