//! [`TuskCodec`]: datafusion-proto's extension codec for Tusk's own plan
//! nodes (the shuffle reader, the runtime filter), and the fragment (de)serialization helpers.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{Partitioning, PhysicalExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::filter::{BuildFrom, BuildKeys, RuntimeFilterExec};
use super::reader::{ReadMode, ShuffleReaderExec};

#[derive(Debug, Default)]
pub struct TuskCodec;

/// What a Tusk node's encoding starts with (JSON, after its length).
#[derive(Serialize, Deserialize)]
#[serde(tag = "node")]
enum Header {
    /// A [`ShuffleReaderExec`]; its schema follows.
    Reader { stage: usize, per_task: bool, partitions: usize, upstream_tasks: usize },
    /// A [`RuntimeFilterExec`]; the build side's schema, then the build
    /// keys and the probe keys follow (each a length-prefixed message).
    /// Without a build stage, the build plan is its second input.
    Filter { stage: Option<usize>, tasks: usize, partitions: usize, build_keys: usize, probe_keys: usize },
}

fn bad(m: impl fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("decoding a Tusk plan node: {m}"))
}

/// Appends `m` with its length.
fn put(buf: &mut Vec<u8>, m: &impl Message) {
    buf.extend_from_slice(&(m.encoded_len() as u32).to_le_bytes());
    m.encode_raw(buf);
}

/// Takes one length-prefixed piece off the front of `buf`.
fn take<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8]> {
    let len = buf.get(..4).ok_or_else(|| bad("truncated"))?;
    let n = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let piece = buf.get(4..4 + n).ok_or_else(|| bad("truncated"))?;
    *buf = &buf[4 + n..];
    Ok(piece)
}

fn schema_of(bytes: &[u8]) -> Result<Schema> {
    let schema = protobuf::Schema::decode(bytes).map_err(bad)?;
    (&schema).try_into().map_err(|e: datafusion_proto::protobuf::FromProtoError| bad(e))
}

impl PhysicalExtensionCodec for TuskCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut rest = buf;
        let header: Header = serde_json::from_slice(take(&mut rest)?).map_err(bad)?;
        match header {
            Header::Reader { stage, per_task, partitions, upstream_tasks } => {
                let schema = schema_of(take(&mut rest)?)?;
                let mode = if per_task { ReadMode::PerTask } else { ReadMode::Hash };
                let partitioning = Partitioning::UnknownPartitioning(partitions);
                Ok(Arc::new(ShuffleReaderExec::new(stage, mode, upstream_tasks, Arc::new(schema), partitioning, None)))
            }
            Header::Filter { stage, tasks, partitions, build_keys, probe_keys } => {
                let (input, from) = match (stage, inputs) {
                    (Some(stage), [input]) => (input, BuildFrom::Stage { stage, tasks, partitions }),
                    (None, [input, plan]) => (input, BuildFrom::Plan(plan.clone())),
                    _ => return Err(bad("a runtime filter has its input, and its build plan without a build stage")),
                };
                let schema = Arc::new(schema_of(take(&mut rest)?)?);
                let mut exprs = |n: usize, over: &Schema| -> Result<Vec<Arc<dyn PhysicalExpr>>> {
                    (0..n)
                        .map(|_| {
                            let node = protobuf::PhysicalExprNode::decode(take(&mut rest)?).map_err(bad)?;
                            parse_physical_expr(&node, ctx, over, self)
                        })
                        .collect()
                };
                let keys = exprs(build_keys, &schema)?;
                let probe = exprs(probe_keys, &input.schema())?;
                let build = BuildKeys { from, schema, keys };
                Ok(Arc::new(RuntimeFilterExec::new(input.clone(), build, probe)))
            }
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let any = node.as_ref() as &dyn std::any::Any;
        let mut body = Vec::new();
        let header = if let Some(r) = any.downcast_ref::<ShuffleReaderExec>() {
            put(&mut body, &protobuf::Schema::try_from(node.schema().as_ref())?);
            Header::Reader {
                stage: r.stage,
                per_task: r.mode == ReadMode::PerTask,
                partitions: r.partitions,
                upstream_tasks: r.upstream_tasks,
            }
        } else if let Some(f) = any.downcast_ref::<RuntimeFilterExec>() {
            put(&mut body, &protobuf::Schema::try_from(f.build.schema.as_ref())?);
            for e in f.build.keys.iter().chain(&f.probe_keys) {
                put(&mut body, &serialize_physical_expr(e, self)?);
            }
            let (tasks, partitions) = match f.build.from {
                BuildFrom::Stage { tasks, partitions, .. } => (tasks, partitions),
                BuildFrom::Plan(_) => (0, 0),
            };
            Header::Filter {
                stage: f.build.stage(),
                tasks,
                partitions,
                build_keys: f.build.keys.len(),
                probe_keys: f.probe_keys.len(),
            }
        } else {
            return Err(DataFusionError::Internal(format!("cannot serialize plan node {}", node.name())));
        };
        let header = serde_json::to_vec(&header).map_err(|e| DataFusionError::Internal(e.to_string()))?;
        buf.extend_from_slice(&(header.len() as u32).to_le_bytes());
        buf.extend_from_slice(&header);
        buf.extend_from_slice(&body);
        Ok(())
    }
}

/// A stage fragment as base64 text.
pub fn encode_plan(plan: Arc<dyn ExecutionPlan>) -> Result<String> {
    use base64::Engine as _;
    let bytes = datafusion_proto::bytes::physical_plan_to_bytes_with_extension_codec(plan, &TuskCodec)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The inverse of [`encode_plan`].
pub fn decode_plan(text: &str, ctx: &TaskContext) -> Result<Arc<dyn ExecutionPlan>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| DataFusionError::Internal(format!("plan fragment is not base64: {e}")))?;
    datafusion_proto::bytes::physical_plan_from_bytes_with_extension_codec(&bytes, ctx, &TuskCodec)
}
