//! Runtime filters between stages: [`RuntimeFilterExec`] drops the rows of
//! a join's probe side whose keys are not among its build side's keys, in
//! the upstream stage that reads them.
//!
//! In one process DataFusion narrows a join's probe scan with the keys of
//! the finished build side (dynamic filters). Across stages the build side
//! is another stage's shuffle output, so [`add`] places the filter as near
//! the probe scans as the key columns follow ([`push`]) and makes the stage
//! holding it wait for the build stage and read its keys: when the build
//! side is a filtered subset of its table (a date range of orders, the
//! parts of one brand), most probe rows have no partner, and dropping them
//! where they are read saves their joins, aggregation, shuffle write,
//! fetch and hashing in later stages. Each task gives up filtering (passes
//! rows through) when the build side has more than [`MAX_KEYS`] keys or
//! when its first rows mostly pass.

mod push;

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{JoinType, NullEquality};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;

use super::ShuffleEnv;
use push::Push;
use super::planner::PlannedStage;
use super::reader::{ReadMode, ShuffleReaderExec, decode_all, fetch};

/// The most distinct build keys a probe task collects; past it the build
/// side is not selective enough to be worth a filter.
pub const MAX_KEYS: usize = 2_000_000;

/// Probe rows a task looks at before judging the filter: when more than
/// [`KEEP_RATIO`] of them pass, it stops filtering.
const JUDGE_AFTER_ROWS: u64 = 200_000;
const KEEP_RATIO: f64 = 0.9;

/// Where the build side's rows come from.
#[derive(Debug, Clone)]
pub enum BuildFrom {
    /// A stage's output: `partitions` partitions of each of its `tasks`.
    Stage { stage: usize, tasks: usize, partitions: usize },
    /// A plan over small tables that the filtering task runs itself (a
    /// build side read by every probe task, see the planner).
    Plan(Arc<dyn ExecutionPlan>),
}

/// The build side's keys.
#[derive(Debug, Clone)]
pub struct BuildKeys {
    pub from: BuildFrom,
    /// The build side's schema.
    pub schema: SchemaRef,
    /// Key expressions over `schema`.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
}

impl BuildKeys {
    /// The build stage, when the keys come from one.
    pub fn stage(&self) -> Option<usize> {
        match self.from {
            BuildFrom::Stage { stage, .. } => Some(stage),
            BuildFrom::Plan(_) => None,
        }
    }
}

/// Passes on the rows of its input whose `probe_keys` hash like some row of
/// the build side's keys (a hash match may be a false positive, which the
/// join then drops; a true partner is never dropped).
#[derive(Debug)]
pub struct RuntimeFilterExec {
    input: Arc<dyn ExecutionPlan>,
    pub build: BuildKeys,
    pub probe_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The build keys' hashes, loaded once per process (`None`: too many).
    loaded: Arc<OnceCell<Option<Arc<KeySet>>>>,
}

#[derive(Debug)]
struct KeySet {
    hashes: HashSet<u64, BuildHasherDefault<AlreadyHashed>>,
    state: RandomState,
}

/// The set's hasher: its values are hashes already.
#[derive(Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl RuntimeFilterExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, build: BuildKeys, probe_keys: Vec<Arc<dyn PhysicalExpr>>) -> RuntimeFilterExec {
        RuntimeFilterExec { input, build, probe_keys, loaded: Arc::new(OnceCell::new()) }
    }
}

impl DisplayAs for RuntimeFilterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let names = |k: &[Arc<dyn PhysicalExpr>]| k.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ");
        let from = match self.build.stage() {
            Some(stage) => format!("stage {stage}"),
            None => "the build side below".to_string(),
        };
        write!(f, "RuntimeFilterExec: [{}] among the keys [{}] of {from}", names(&self.probe_keys), names(&self.build.keys))
    }
}

impl ExecutionPlan for RuntimeFilterExec {
    fn name(&self) -> &str {
        "RuntimeFilterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        // Dropping rows keeps the input's partitioning and order.
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        match &self.build.from {
            BuildFrom::Plan(build) => vec![&self.input, build],
            BuildFrom::Stage { .. } => vec![&self.input],
        }
    }

    fn apply_expressions(&self, f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        for e in &self.probe_keys {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let mut build = self.build.clone();
        let mut children = children.into_iter();
        let input = children.next();
        if let (BuildFrom::Plan(plan), Some(new)) = (&mut build.from, children.next()) {
            *plan = new;
        }
        let (Some(input), None) = (input, children.next()) else {
            return Err(DataFusionError::Internal("RuntimeFilterExec takes its input and its build plan".into()));
        };
        Ok(Arc::new(RuntimeFilterExec::new(input, build, self.probe_keys.clone())))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let env = context
            .session_config()
            .get_extension::<ShuffleEnv>()
            .ok_or_else(|| DataFusionError::Internal("RuntimeFilterExec runs only inside a Tusk task".into()))?;
        let input = self.input.execute(partition, context.clone())?;
        let schema = self.input.schema();
        let (loaded, build, probe_keys) = (self.loaded.clone(), self.build.clone(), self.probe_keys.clone());
        let filtered = async move {
            let keys = loaded.get_or_try_init(|| load(&env, context, &build)).await?.clone();
            let mut judge = Judge { env, rows_in: 0, rows_out: 0, on: keys.is_some() };
            Ok::<_, DataFusionError>(input.try_filter_map(move |batch| {
                let out = match &keys {
                    Some(keys) if judge.on => judge.apply(keys, &probe_keys, batch),
                    _ => Ok(Some(batch)),
                };
                futures::future::ready(out)
            }))
        };
        let stream = futures::stream::once(filtered).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One partition's filtering, and its judgement of whether it pays.
struct Judge {
    env: Arc<ShuffleEnv>,
    rows_in: u64,
    rows_out: u64,
    on: bool,
}

impl Judge {
    fn apply(&mut self, keys: &KeySet, probe_keys: &[Arc<dyn PhysicalExpr>], batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let n = batch.num_rows();
        let hashes = hash_keys(probe_keys, &batch, &keys.state)?;
        let mask = BooleanArray::new(BooleanBuffer::collect_bool(n, |i| keys.hashes.contains(&hashes[i])), None);
        let out = filter_record_batch(&batch, &mask)?;
        self.rows_in += n as u64;
        self.rows_out += out.num_rows() as u64;
        self.env.reporter.incr("SQL", "RUNTIME_FILTER_DROPPED_ROWS", (n - out.num_rows()) as i64);
        if self.rows_in >= JUDGE_AFTER_ROWS && self.rows_out as f64 > KEEP_RATIO * self.rows_in as f64 {
            self.on = false;
        }
        Ok((out.num_rows() > 0).then_some(out))
    }
}

fn hash_keys(keys: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch, state: &RandomState) -> Result<Vec<u64>> {
    let arrays = keys
        .iter()
        .map(|k| k.evaluate(batch).and_then(|v| v.into_array(batch.num_rows())))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let mut hashes = vec![0u64; batch.num_rows()];
    create_hashes(&arrays, state, &mut hashes)?;
    Ok(hashes)
}

/// Reads the whole build side (every partition of the build stage's
/// output, or of the build plan) and hashes its keys; `None` when they are
/// more than [`MAX_KEYS`].
async fn load(env: &ShuffleEnv, ctx: Arc<TaskContext>, build: &BuildKeys) -> Result<Option<Arc<KeySet>>> {
    let state = RandomState::default();
    let mut hashes = HashSet::default();
    let mut add = |batch: RecordBatch| -> Result<bool> {
        hashes.extend(hash_keys(&build.keys, &batch, &state)?);
        Ok(hashes.len() <= MAX_KEYS)
    };
    match &build.from {
        BuildFrom::Stage { stage, tasks, partitions } => {
            for p in 0..*partitions {
                for batch in decode_all(fetch(env, *stage, p as u32, *tasks).await?) {
                    if !add(batch?)? {
                        return Ok(None);
                    }
                }
            }
        }
        BuildFrom::Plan(plan) => {
            for p in 0..plan.output_partitioning().partition_count() {
                let mut stream = plan.execute(p, ctx.clone())?;
                while let Some(batch) = stream.next().await {
                    if !add(batch?)? {
                        return Ok(None);
                    }
                }
            }
        }
    }
    Ok(Some(Arc::new(KeySet { hashes, state })))
}

/// Whether rows of a join's probe (right) side that match no build row can
/// be dropped without changing its output: they are not output themselves
/// and they mark no build row as matched.
fn drops_unmatched_probe(j: &HashJoinExec) -> bool {
    matches!(
        j.join_type(),
        JoinType::Inner | JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark | JoinType::RightSemi
    ) && !j.null_aware
        && j.null_equality() == NullEquality::NullEqualsNothing
        && !j.on().is_empty()
}

/// True when `plan` (a build side) keeps only some rows of what it reads:
/// a filter or an inner or semi join below.
fn selective(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let any = plan.as_ref() as &dyn Any;
    if any.is::<FilterExec>() {
        return true;
    }
    if let Some(j) = any.downcast_ref::<HashJoinExec>()
        && matches!(j.join_type(), JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi)
    {
        return true;
    }
    plan.children().into_iter().any(selective)
}

/// When `join` (the plan before its children were cut) is a hash join that
/// may drop unmatched probe rows and whose build side (`cut[0]`) is
/// selective and not estimated at more than [`MAX_KEYS`] rows, and either
/// a stage's output (partitioned join, or collect-left join reading one) or
/// a plan over small tables run in this stage (collect-left join): the
/// probe rows are filtered by the build keys as low as their key columns
/// follow (see [`push`]), when that is in an upstream stage (which then
/// waits for the build stage, if there is one).
pub(crate) fn add(join: &Arc<dyn ExecutionPlan>, cut: &[Arc<dyn ExecutionPlan>], stages: &mut [PlannedStage]) -> Result<()> {
    let Some(j) = (join.as_ref() as &dyn Any).downcast_ref::<HashJoinExec>() else { return Ok(()) };
    if !drops_unmatched_probe(j) {
        return Ok(());
    }
    let stats = StatisticsContext::new().compute(j.left().as_ref(), &StatisticsArgs::new()).ok();
    let ([l, r], Some(stats)) = (cut, stats) else { return Ok(()) };
    let Some(from) = build_from(j, l) else { return Ok(()) };
    let too_big = matches!(stats.num_rows, Precision::Exact(n) | Precision::Inexact(n) if n > MAX_KEYS);
    let selective = match &from {
        BuildFrom::Stage { stage, .. } => stages.get(*stage).is_some_and(|s| selective(&s.plan)),
        BuildFrom::Plan(plan) => selective(plan),
    };
    if too_big || !selective {
        return Ok(());
    }
    let (left_keys, right_keys): (Vec<_>, Vec<_>) = j.on().iter().cloned().unzip();
    // Equal values hash alike only as the same type.
    let (ls, rs) = (l.schema(), r.schema());
    let same_types = left_keys.iter().zip(&right_keys).all(|(a, b)| match (a.data_type(&ls), b.data_type(&rs)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    });
    let columns: Option<Vec<usize>> = right_keys
        .iter()
        .map(|k| (k.as_ref() as &dyn Any).downcast_ref::<Column>().map(|c| c.index()))
        .collect();
    let Some(columns) = columns.filter(|_| same_types) else { return Ok(()) };
    let keys = BuildKeys { from, schema: l.schema(), keys: left_keys };
    let build = keys.stage();
    let mut push = Push { build: keys, stages, landed: None };
    push.place(r.clone(), &columns)?;
    if let (Some(up), Some(build)) = (push.landed, build)
        && let Some(stage) = stages.get_mut(up)
        && !stage.upstreams.contains(&build)
    {
        stage.upstreams.push(build);
    }
    Ok(())
}

/// Where the build side (`left`, cut) of `j` comes from, when a filter can
/// get its keys: a hash-partitioned stage output (partitioned join), a
/// stage output merged for a collect-left join, or a plan of its own
/// (collect-left join over small tables, no stage inside).
fn build_from(j: &HashJoinExec, left: &Arc<dyn ExecutionPlan>) -> Option<BuildFrom> {
    let reader = |p: &Arc<dyn ExecutionPlan>, mode: ReadMode| {
        (p.as_ref() as &dyn Any).downcast_ref::<ShuffleReaderExec>().filter(|r| r.mode == mode).map(|r| (r.stage, r.upstream_tasks, r.partitions))
    };
    match j.partition_mode() {
        PartitionMode::Partitioned => {
            reader(left, ReadMode::Hash).map(|(stage, tasks, partitions)| BuildFrom::Stage { stage, tasks, partitions })
        }
        PartitionMode::CollectLeft => {
            if let Some(c) = (left.as_ref() as &dyn Any).downcast_ref::<CoalescePartitionsExec>() {
                // Each upstream task wrote one partition.
                return reader(c.input(), ReadMode::PerTask).map(|(stage, tasks, _)| BuildFrom::Stage { stage, tasks, partitions: 1 });
            }
            (left.output_partitioning().partition_count() == 1 && standalone(left)).then(|| BuildFrom::Plan(left.clone()))
        }
        _ => None,
    }
}

/// True when `plan` reads no stage output (directly or for a filter), so
/// any task may run it.
fn standalone(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let any = plan.as_ref() as &dyn Any;
    if any.is::<ShuffleReaderExec>() || any.downcast_ref::<RuntimeFilterExec>().is_some_and(|f| f.build.stage().is_some()) {
        return false;
    }
    plan.children().into_iter().all(standalone)
}
