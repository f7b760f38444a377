//! [`ShuffleReaderExec`]: the leaf of a stage that reads an upstream
//! stage's shuffle output, fetched from the workers that hold it (the
//! MapReduce shuffle: `TaskUmbilical.GetMapOutputs` says where each
//! upstream task's output is, `WorkerService.FetchMapOutput` streams a
//! CRC-checked segment; failed fetches are reported and the upstream task
//! re-run). Each segment is an Arrow IPC stream.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::ipc::reader::{StreamDecoder, StreamReader};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;
use tokio::sync::Mutex;
use tusk_mapreduce::reduceside::{Segment, ShuffleConfig, ShuffleTask, shuffle};

use super::ShuffleEnv;

/// How the reader's partitions map onto the upstream output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Partition `p` is hash partition `p` of every upstream task.
    Hash,
    /// Partition `p` is the whole (single-partition) output of upstream task
    /// `p` (below a coalesce or a sort-preserving merge).
    PerTask,
}

/// Reads stage `stage`'s output.
#[derive(Debug)]
pub struct ShuffleReaderExec {
    pub stage: usize,
    pub mode: ReadMode,
    /// Partitions this node exposes.
    pub partitions: usize,
    /// Tasks of the upstream stage.
    pub upstream_tasks: usize,
    /// Set in a task narrowed to one partition (see `narrow`): this node
    /// has one partition, which reads partition `only` of the upstream output.
    only: Option<usize>,
    schema: SchemaRef,
    props: Arc<PlanProperties>,
    /// PerTask: the fetched outputs, taken by each partition once.
    fetched: Arc<Mutex<Option<Vec<Option<Segment>>>>>,
}

impl ShuffleReaderExec {
    /// `partitioning` is what the replaced operator produced (kept for
    /// EXPLAIN and the planner; workers see `UnknownPartitioning`).
    pub fn new(stage: usize, mode: ReadMode, upstream_tasks: usize, schema: SchemaRef, partitioning: Partitioning, eq: Option<EquivalenceProperties>) -> ShuffleReaderExec {
        let partitions = partitioning.partition_count();
        let eq = eq.unwrap_or_else(|| EquivalenceProperties::new(schema.clone()));
        let props = PlanProperties::new(eq, partitioning, EmissionType::Incremental, Boundedness::Bounded);
        ShuffleReaderExec {
            stage,
            mode,
            partitions,
            upstream_tasks,
            only: None,
            schema,
            props: Arc::new(props),
            fetched: Arc::new(Mutex::new(None)),
        }
    }

    /// This reader with partition `p` as its only partition.
    pub fn narrowed(&self, p: usize) -> ShuffleReaderExec {
        let eq = self.props.eq_properties.clone();
        let props = PlanProperties::new(eq, Partitioning::UnknownPartitioning(1), EmissionType::Incremental, Boundedness::Bounded);
        ShuffleReaderExec {
            stage: self.stage,
            mode: self.mode,
            partitions: 1,
            upstream_tasks: self.upstream_tasks,
            only: Some(p),
            schema: self.schema.clone(),
            props: Arc::new(props),
            fetched: Arc::new(Mutex::new(None)),
        }
    }
}

impl DisplayAs for ShuffleReaderExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let mode = match self.mode {
            ReadMode::Hash => "hash partitions",
            ReadMode::PerTask => "one partition per task",
        };
        write!(f, "ShuffleReaderExec: stage={}, {} of {} upstream tasks", self.stage, mode, self.upstream_tasks)
    }
}

impl ExecutionPlan for ShuffleReaderExec {
    fn name(&self) -> &str {
        "ShuffleReaderExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let env = context
            .session_config()
            .get_extension::<ShuffleEnv>()
            .ok_or_else(|| DataFusionError::Internal("ShuffleReaderExec runs only inside a Tusk task".into()))?;
        let partition = self.only.unwrap_or(partition);
        let stage = self.stage;
        let mode = self.mode;
        let upstream_tasks = self.upstream_tasks;
        let fetched = self.fetched.clone();
        let schema = self.schema.clone();
        let segments = async move {
            let segs: Vec<Segment> = match mode {
                ReadMode::Hash => fetch(&env, stage, partition as u32, upstream_tasks).await?,
                ReadMode::PerTask => {
                    let mut guard = fetched.lock().await;
                    if guard.is_none() {
                        let all = fetch(&env, stage, 0, upstream_tasks).await?;
                        let mut by_task: Vec<Option<Segment>> = (0..upstream_tasks).map(|_| None).collect();
                        for s in all {
                            let i = s.map_index() as usize;
                            if i < by_task.len() {
                                by_task[i] = Some(s);
                            }
                        }
                        *guard = Some(by_task);
                    }
                    guard.as_mut().and_then(|v| v.get_mut(partition)).and_then(Option::take).into_iter().collect()
                }
            };
            Ok::<_, DataFusionError>(segs)
        };
        let batches = futures::stream::once(segments)
            .map(|r| match r {
                Ok(segs) => futures::stream::iter(decode_all(segs)).left_stream(),
                Err(e) => futures::stream::iter(vec![Err(e)]).right_stream(),
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// Fetches partition `partition` of every task of `stage`.
pub(super) async fn fetch(env: &ShuffleEnv, stage: usize, partition: u32, tasks: usize) -> Result<Vec<Segment>> {
    let task = ShuffleTask {
        job_id: env.job_id.clone(),
        attempt_id: env.attempt_id.clone(),
        partition,
        num_maps: tasks as u32,
        jobtracker: env.jobtracker.clone(),
        scratch_dir: env.scratch_dir.clone(),
        reporter: env.reporter.clone(),
        fetched: Arc::new(AtomicU64::new(0)),
        upstream_stage: Some(stage as u32),
        host: std::env::var(tusk_mapreduce::control::WORKER_HOST_ENV).unwrap_or_default(),
    };
    let cfg = ShuffleConfig::from_conf(&Default::default()).map_err(|e| DataFusionError::External(Box::new(e)))?;
    shuffle(&task, &cfg).await.map_err(|e| DataFusionError::Execution(format!("shuffle from stage {stage}: {e}")))
}

/// Decodes segments (each an Arrow IPC stream) into batches, lazily: one
/// segment's reader at a time. A segment held in memory is decoded in
/// place: its batches' arrays are slices of the fetched bytes (shuffle
/// files are not compressed), not copies.
pub(crate) fn decode_all(segments: Vec<Segment>) -> impl Iterator<Item = Result<RecordBatch>> + Send {
    segments.into_iter().filter(|s| !s.is_empty()).flat_map(|s| {
        let who = format!("output of {}", s.attempt_id());
        let fail = move |e: &dyn std::fmt::Display| DataFusionError::Execution(format!("{who}: {e}"));
        let it: Box<dyn Iterator<Item = Result<RecordBatch>> + Send> = match s.into_memory() {
            Ok(bytes) => Box::new(InPlace { decoder: StreamDecoder::new(), bytes: Buffer::from_vec(bytes), fail, done: false }),
            Err(s) => match s.into_reader().map_err(|e| fail(&e)).and_then(|r| StreamReader::try_new(r, None).map_err(|e| fail(&e))) {
                Ok(reader) => Box::new(reader.map(move |b| b.map_err(|e| fail(&e)))),
                Err(e) => Box::new(std::iter::once(Err(e))),
            },
        };
        it
    })
}

/// The batches of one Arrow IPC stream held in memory.
struct InPlace<F> {
    decoder: StreamDecoder,
    bytes: Buffer,
    fail: F,
    done: bool,
}

impl<F: Fn(&dyn std::fmt::Display) -> DataFusionError> Iterator for InPlace<F> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        if self.done {
            return None;
        }
        let next = match self.decoder.decode(&mut self.bytes) {
            Ok(Some(batch)) => return Some(Ok(batch)),
            Ok(None) if self.bytes.is_empty() => self.decoder.finish().err().map(|e| Err((self.fail)(&e))),
            Ok(None) => Some(Err((self.fail)(&format!("{} bytes after the end of its stream", self.bytes.len())))),
            Err(e) => Some(Err((self.fail)(&e))),
        };
        self.done = true;
        next
    }
}
