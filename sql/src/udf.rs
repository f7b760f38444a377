//! Tusk's own SQL functions, registered in every session and task.
//!
//! - `sleep(seconds)`: waits, then returns 0 for every row. It waits once
//!   per batch of rows it is evaluated on (the largest argument in the
//!   batch), not once per row: enough to slow a stage down in a demo or a
//!   failure test without making big inputs take forever.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, Float64Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;

/// The longest single wait `sleep` accepts, in seconds.
const MAX_SLEEP_SECS: f64 = 300.0;

#[derive(Debug, PartialEq, Eq, Hash)]
struct Sleep {
    signature: Signature,
}

impl ScalarUDFImpl for Sleep {
    fn name(&self) -> &str {
        "sleep"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(DataFusionError::Plan("sleep(seconds) takes one argument".into()));
        };
        let secs = match arg {
            ColumnarValue::Scalar(s) => s.to_array_of_size(1)?,
            ColumnarValue::Array(a) => a.clone(),
        };
        let secs = cast(&secs, &DataType::Float64)?;
        let max = secs
            .as_any()
            .downcast_ref::<Float64Array>()
            .map(|a| a.iter().flatten().fold(0.0f64, f64::max))
            .unwrap_or(0.0);
        if !(0.0..=MAX_SLEEP_SECS).contains(&max) {
            return Err(DataFusionError::Execution(format!("sleep({max}): seconds must be in 0..={MAX_SLEEP_SECS}")));
        }
        if args.number_rows > 0 {
            std::thread::sleep(Duration::from_secs_f64(max));
        }
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(vec![0i64; args.number_rows]))))
    }
}

/// Registers Tusk's functions in `ctx`.
pub fn register(ctx: &SessionContext) {
    let sleep = Sleep { signature: Signature::numeric(1, Volatility::Volatile) };
    ctx.register_udf(ScalarUDF::from(sleep));
}
