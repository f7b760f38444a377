//! [`TuskCodec`]: datafusion-proto's extension codec for Tusk's own plan
//! nodes (the shuffle reader), and the fragment (de)serialization helpers.

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::Partitioning;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::reader::{ReadMode, ShuffleReaderExec};

#[derive(Debug, Default)]
pub struct TuskCodec;

#[derive(Serialize, Deserialize)]
struct ReaderHeader {
    stage: usize,
    per_task: bool,
    partitions: usize,
    upstream_tasks: usize,
}

impl PhysicalExtensionCodec for TuskCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        _inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let bad = |m: String| DataFusionError::Internal(format!("decoding a Tusk plan node: {m}"));
        if buf.len() < 4 {
            return Err(bad("too short".into()));
        }
        let n = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let header = buf.get(4..4 + n).ok_or_else(|| bad("truncated header".into()))?;
        let h: ReaderHeader = serde_json::from_slice(header).map_err(|e| bad(e.to_string()))?;
        let schema = protobuf::Schema::decode(&buf[4 + n..]).map_err(|e| bad(e.to_string()))?;
        let schema: Schema = (&schema).try_into().map_err(|e: datafusion_proto::protobuf::FromProtoError| bad(e.to_string()))?;
        let mode = if h.per_task { ReadMode::PerTask } else { ReadMode::Hash };
        Ok(Arc::new(ShuffleReaderExec::new(
            h.stage,
            mode,
            h.upstream_tasks,
            Arc::new(schema),
            Partitioning::UnknownPartitioning(h.partitions),
            None,
        )))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(r) = (node.as_ref() as &dyn std::any::Any).downcast_ref::<ShuffleReaderExec>() else {
            return Err(DataFusionError::Internal(format!("cannot serialize plan node {}", node.name())));
        };
        let h = ReaderHeader {
            stage: r.stage,
            per_task: r.mode == ReadMode::PerTask,
            partitions: r.partitions,
            upstream_tasks: r.upstream_tasks,
        };
        let header = serde_json::to_vec(&h).map_err(|e| DataFusionError::Internal(e.to_string()))?;
        let schema: protobuf::Schema = node.schema().as_ref().try_into()?;
        buf.extend_from_slice(&(header.len() as u32).to_le_bytes());
        buf.extend_from_slice(&header);
        schema.encode(buf).map_err(|e| DataFusionError::Internal(e.to_string()))?;
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
