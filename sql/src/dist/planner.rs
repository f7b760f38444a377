//! Cutting a DataFusion physical plan into stages at its exchanges.
//!
//! Walking the plan bottom-up:
//! - a hash `RepartitionExec` ends a stage: the stage is the repartition
//!   over its input (each task runs one input partition and hash-partitions
//!   its rows into the shuffle), and the repartition is replaced by a
//!   [`ShuffleReaderExec`] reading hash partition `p` of every task;
//! - the input of a `CoalescePartitionsExec` or `SortPreservingMergeExec`
//!   with several partitions becomes a stage of its own, read one partition
//!   per upstream task (so a merge still sees sorted streams; a
//!   `CollectLeft` join's build side is broadcast this way);
//! - round-robin repartitions are dropped (they only rebalance);
//! - a collect-left join that emits unmatched left rows (outer, semi, anti)
//!   learns which left rows never matched only in a process that saw every
//!   probe row of their keys: a hash join is planned as a partitioned join
//!   instead (both sides hash-partitioned on the keys); a null-aware anti
//!   join (`NOT IN`) or a nested-loop join gets its probe side merged into
//!   one partition;
//! - a collect-left join whose build side only scans, filters and joins
//!   small tables (at most [`INLINE_BUILD_MAX_BYTES`] of files, no
//!   exchange) gets that side as one partition inside its own stage: every
//!   probe task reads the small tables itself, which costs less than a
//!   stage of its own (a task start and a shuffle on the critical path);
//! - a join whose build side is selective makes the upstream stage reading
//!   its probe rows filter them by the build keys (see [`super::filter`]);
//! - what is left above the last cut is the final stage, whose tasks hand
//!   the result back (or write table files); for a query, a final stage
//!   that only merges the task outputs of the stage before it is left to
//!   the client ([`merge_in_client`]).
//!
//! Every operator inside a stage works partition by partition, so task `i`
//! of a stage runs partition `i` of its fragment; a scan task prefers the
//! hosts holding the blocks of its file group.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_expr::Partitioning;
use datafusion::common::JoinType;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec, PartitionMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, replace_children_if_necessary};
use tusk_client::sqljob::SqlOutput;

use super::reader::{ReadMode, ShuffleReaderExec};

/// Datanode hosts holding a scanned byte range (set by the table scan).
#[derive(Debug, Clone, Default)]
pub struct BlockHosts(pub Vec<String>);

/// How many DFS blocks the whole file of a scanned range spans (set by the
/// table scan).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileBlocks(pub usize);

/// The most file bytes a collect-left join's build side may scan to be
/// read by every probe task itself rather than be a stage of its own.
pub const INLINE_BUILD_MAX_BYTES: u64 = 16 << 20;

/// A stage of a cut plan.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    pub plan: Arc<dyn ExecutionPlan>,
    pub output: SqlOutput,
    pub upstreams: Vec<usize>,
    /// Per task: preferred datanode hosts.
    pub task_hosts: Vec<Vec<String>>,
}

impl PlannedStage {
    pub fn tasks(&self) -> usize {
        self.task_hosts.len()
    }
}

fn any(plan: &Arc<dyn ExecutionPlan>) -> &dyn std::any::Any {
    plan.as_ref() as &dyn std::any::Any
}

/// Cuts `plan` into stages; the last one is the final (result) stage.
pub fn cut(plan: Arc<dyn ExecutionPlan>) -> Result<Vec<PlannedStage>> {
    let mut stages = Vec::new();
    let (root, upstreams) = walk(plan, &mut stages)?;
    let tasks = root.output_partitioning().partition_count().max(1);
    let task_hosts = (0..tasks).map(|i| hosts_of(&root, i)).collect();
    stages.push(PlannedStage { plan: root, output: SqlOutput::Result, upstreams, task_hosts });
    Ok(stages)
}

/// When the final stage only merges the task outputs of the stage before it
/// (a `SortPreservingMergeExec` or `CoalescePartitionsExec`, with its
/// `fetch`, over a per-task shuffle read no other stage reads), drops that
/// stage: the one before becomes the final stage, each of its tasks hands
/// its rows back, and the returned merge (still over the
/// [`ShuffleReaderExec`]) is what the client runs on them. That saves a
/// task start and a shuffle on every such query's critical path, as a
/// single-process engine merges its partitions in the process that asked.
pub fn merge_in_client(stages: &mut Vec<PlannedStage>) -> Option<Arc<dyn ExecutionPlan>> {
    let n = stages.len();
    let last = stages.last()?;
    let root = last.plan.clone();
    if !(any(&root).is::<SortPreservingMergeExec>() || any(&root).is::<CoalescePartitionsExec>()) {
        return None;
    }
    let child = root.children().first().map(|c| (*c).clone())?;
    let reader = any(&child).downcast_ref::<ShuffleReaderExec>()?;
    let before = n.checked_sub(2)?;
    let read_elsewhere = stages[..n - 1].iter().any(|s| s.upstreams.contains(&before));
    if reader.mode != ReadMode::PerTask || reader.stage != before || last.upstreams != [before] || read_elsewhere {
        return None;
    }
    stages.pop();
    stages[before].output = SqlOutput::Result;
    Some(root)
}

/// `plan` run whole by one task, its partitions on the task's threads and
/// merged into one, placed beside the hosts holding most of what it scans.
pub fn whole(plan: Arc<dyn ExecutionPlan>) -> PlannedStage {
    let plan: Arc<dyn ExecutionPlan> = if plan.output_partitioning().partition_count() > 1 {
        Arc::new(CoalescePartitionsExec::new(plan))
    } else {
        plan
    };
    let mut bytes = HashMap::new();
    scanned_bytes(&plan, None, &mut bytes);
    PlannedStage { plan, output: SqlOutput::Result, upstreams: vec![], task_hosts: vec![most_bytes(bytes)] }
}

/// True for a join whose build (left) side is collected whole and which
/// emits left rows that no probe partition matched (outer, semi, anti,
/// mark joins): it learns which left rows matched only from every probe
/// partition in one process, so its probe side must be one partition.
fn needs_whole_probe(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let emits_left = |t: &JoinType| {
        matches!(t, JoinType::Left | JoinType::Full | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark)
    };
    if let Some(j) = any(plan).downcast_ref::<HashJoinExec>() {
        return *j.partition_mode() == PartitionMode::CollectLeft
            && emits_left(j.join_type())
            && j.right().output_partitioning().partition_count() > 1;
    }
    if let Some(j) = any(plan).downcast_ref::<NestedLoopJoinExec>() {
        return emits_left(j.join_type()) && j.right().output_partitioning().partition_count() > 1;
    }
    false
}

/// `plan` (a join) with its build side as one partition when that side is
/// small and has no exchange (see the module docs); else `plan` unchanged.
fn inline_small_build(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let collect_left = any(&plan)
        .downcast_ref::<HashJoinExec>()
        .is_some_and(|j| *j.partition_mode() == PartitionMode::CollectLeft)
        || any(&plan).is::<NestedLoopJoinExec>();
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    let [left, right] = children.as_slice() else { return Ok(plan) };
    if !collect_left || !any(left).is::<CoalescePartitionsExec>() {
        return Ok(plan);
    }
    let Some(input) = left.children().first().map(|c| (*c).clone()) else { return Ok(plan) };
    if input.output_partitioning().partition_count() <= 1
        || crate::dist::run::scan_size(&input).is_none_or(|b| b > INLINE_BUILD_MAX_BYTES)
    {
        return Ok(plan);
    }
    match single_partition(&input)? {
        Some(one) => replace_children_if_necessary(plan, vec![one, right.clone()]),
        None => Ok(plan),
    }
}

/// A collect-left hash join that must see its whole probe side in one
/// process (see [`needs_whole_probe`]) planned instead as a partitioned
/// join: both sides hash-partitioned on the join keys, so each task sees
/// every probe row of its keys and the probe side is read by as many tasks
/// as before instead of one. Not for a null-aware anti join (`NOT IN`),
/// whose build-side NULLs concern every partition, nor a mark join.
fn partitioned_instead(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(j) = any(plan).downcast_ref::<HashJoinExec>() else { return Ok(None) };
    // A mark join's mark is about the whole other side: left as it was.
    if !needs_whole_probe(plan) || j.null_aware || j.on().is_empty() || *j.join_type() == JoinType::LeftMark {
        return Ok(None);
    }
    let n = j.right().output_partitioning().partition_count();
    let (left_keys, right_keys): (Vec<_>, Vec<_>) = j.on().iter().cloned().unzip();
    // The build side was merged for the collect; each task now takes its
    // keys' share of it.
    let build = match any(j.left()).downcast_ref::<CoalescePartitionsExec>() {
        Some(c) => c.input().clone(),
        None => j.left().clone(),
    };
    let left: Arc<dyn ExecutionPlan> = Arc::new(RepartitionExec::try_new(build, Partitioning::Hash(left_keys, n))?);
    let right: Arc<dyn ExecutionPlan> =
        Arc::new(RepartitionExec::try_new(j.right().clone(), Partitioning::Hash(right_keys, n))?);
    let joined = j.builder().with_partition_mode(PartitionMode::Partitioned).with_new_children(vec![left, right])?;
    Ok(Some(joined.build_exec()?))
}

/// `plan` computing the same rows as one partition, when it has no exchange
/// (its scans read all their files in one group); `None` otherwise.
fn single_partition(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(ds) = any(plan).downcast_ref::<DataSourceExec>()
        && let Some(conf) = ds.data_source().downcast_ref::<FileScanConfig>()
    {
        let files: Vec<PartitionedFile> = conf.file_groups.iter().flat_map(|g| g.iter().cloned()).collect();
        let one = FileScanConfigBuilder::from(conf.clone()).with_file_groups(vec![FileGroup::new(files)]).build();
        let one: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(one);
        return Ok(Some(one));
    }
    if any(plan).is::<RepartitionExec>() || any(plan).is::<ShuffleReaderExec>() {
        return Ok(None);
    }
    let mut children = Vec::new();
    for c in plan.children() {
        match single_partition(c)? {
            Some(one) => children.push(one),
            None => return Ok(None),
        }
    }
    let one = if children.is_empty() { plan.clone() } else { replace_children_if_necessary(plan.clone(), children)? };
    Ok((one.output_partitioning().partition_count() == 1).then_some(one))
}

fn walk(plan: Arc<dyn ExecutionPlan>, stages: &mut Vec<PlannedStage>) -> Result<(Arc<dyn ExecutionPlan>, Vec<usize>)> {
    let plan = inline_small_build(plan)?;
    let plan = if let Some(partitioned) = partitioned_instead(&plan)? {
        partitioned
    } else if needs_whole_probe(&plan) {
        let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
        match children.as_slice() {
            [left, right] => {
                let merged: Arc<dyn ExecutionPlan> = Arc::new(CoalescePartitionsExec::new(right.clone()));
                replace_children_if_necessary(plan.clone(), vec![left.clone(), merged])?
            }
            _ => plan,
        }
    } else {
        plan
    };
    if let Some(r) = any(&plan).downcast_ref::<RepartitionExec>() {
        let (input, ups) = walk(r.input().clone(), stages)?;
        return match r.partitioning().clone() {
            Partitioning::Hash(exprs, n) => {
                let eq = r.properties().eq_properties.clone();
                let schema = r.schema();
                let stage_plan = replace_children_if_necessary(plan.clone(), vec![input.clone()])?;
                let tasks = input.output_partitioning().partition_count().max(1);
                let task_hosts = (0..tasks).map(|i| hosts_of(&input, i)).collect();
                stages.push(PlannedStage {
                    plan: stage_plan,
                    output: SqlOutput::Shuffle { partitions: n as u32 },
                    upstreams: ups,
                    task_hosts,
                });
                let id = stages.len() - 1;
                let reader = ShuffleReaderExec::new(id, ReadMode::Hash, tasks, schema, Partitioning::Hash(exprs, n), Some(eq));
                Ok((Arc::new(reader), vec![id]))
            }
            // Round-robin (and range) repartitions only rebalance: dropped.
            _ => Ok((input, ups)),
        };
    }
    let is_merge = any(&plan).is::<CoalescePartitionsExec>() || any(&plan).is::<SortPreservingMergeExec>();
    if is_merge && let Some(child) = plan.children().first().map(|c| (*c).clone()) {
        let (input, ups) = walk(child, stages)?;
        let tasks = input.output_partitioning().partition_count();
        if tasks <= 1 {
            return Ok((replace_children_if_necessary(plan, vec![input])?, ups));
        }
        let eq = input.properties().eq_properties.clone();
        let schema = input.schema();
        let task_hosts = (0..tasks).map(|i| hosts_of(&input, i)).collect();
        stages.push(PlannedStage { plan: input, output: SqlOutput::Shuffle { partitions: 1 }, upstreams: ups, task_hosts });
        let id = stages.len() - 1;
        let reader = ShuffleReaderExec::new(id, ReadMode::PerTask, tasks, schema, Partitioning::UnknownPartitioning(tasks), Some(eq));
        return Ok((replace_children_if_necessary(plan, vec![Arc::new(reader)])?, vec![id]));
    }
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    if children.is_empty() {
        return Ok((plan, vec![]));
    }
    let mut new_children = Vec::with_capacity(children.len());
    let mut ups = Vec::new();
    for c in children {
        let (nc, u) = walk(c, stages)?;
        new_children.push(nc);
        for x in u {
            if !ups.contains(&x) {
                ups.push(x);
            }
        }
    }
    super::filter::add(&plan, &new_children, stages)?;
    Ok((replace_children_if_necessary(plan, new_children)?, ups))
}

/// Adds, per datanode host, the bytes the scans of `plan` read from it
/// (file group `group` of the scans only, when given).
fn scanned_bytes(plan: &Arc<dyn ExecutionPlan>, group: Option<usize>, bytes: &mut HashMap<String, u64>) {
    if let Some(ds) = any(plan).downcast_ref::<DataSourceExec>()
        && let Some(conf) = ds.data_source().downcast_ref::<FileScanConfig>()
    {
        let groups = conf.file_groups.iter().enumerate().filter(|(i, _)| group.is_none_or(|g| g == *i));
        for f in groups.flat_map(|(_, g)| g.iter()) {
            let len = f.range.as_ref().map(|r| (r.end - r.start) as u64).unwrap_or(f.object_meta.size);
            if let Some(h) = f.extensions.get::<BlockHosts>() {
                for host in &h.0 {
                    *bytes.entry(host.clone()).or_default() += len;
                }
            }
        }
    }
    if group.is_none() {
        for c in plan.children() {
            scanned_bytes(c, None, bytes);
        }
    }
}

/// The hosts holding the most bytes (ties: all of them, sorted).
fn most_bytes(bytes: HashMap<String, u64>) -> Vec<String> {
    let mut v: Vec<(String, u64)> = bytes.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top = v.first().map(|x| x.1).unwrap_or(0);
    v.into_iter().filter(|x| x.1 == top).map(|x| x.0).collect()
}

/// The datanode hosts partition `p` of `plan` reads from, if it is a scan
/// (through partition-preserving operators).
fn hosts_of(plan: &Arc<dyn ExecutionPlan>, p: usize) -> Vec<String> {
    if any(plan).downcast_ref::<DataSourceExec>().is_some() {
        let mut bytes = HashMap::new();
        scanned_bytes(plan, Some(p), &mut bytes);
        return most_bytes(bytes);
    }
    let n = plan.output_partitioning().partition_count();
    for c in plan.children() {
        if c.output_partitioning().partition_count() == n {
            let h = hosts_of(c, p);
            if !h.is_empty() {
                return h;
            }
        }
    }
    vec![]
}
