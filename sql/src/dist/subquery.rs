//! Uncorrelated scalar subqueries (`WHERE x > (SELECT avg(y) FROM t)`).
//!
//! DataFusion runs them inside the plan (`ScalarSubqueryExec` fills shared
//! slots that `ScalarSubqueryExpr`s read), which cannot be split across
//! processes. Tusk runs each such subquery first, as a query of its own
//! (distributed too), and puts its value into the outer plan as a literal,
//! as Spark does.

use std::collections::HashMap;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan, Subquery};

use crate::error::{Result, SqlError};
use crate::exec::df_error;

/// The uncorrelated scalar subqueries of `plan` (not those nested inside
/// them: they are resolved when the subquery itself runs).
pub(crate) fn scalar_subqueries(plan: &LogicalPlan) -> Result<Vec<Subquery>> {
    let mut found: Vec<Subquery> = Vec::new();
    plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarSubquery(s) = e
                    && s.outer_ref_columns.is_empty()
                    && !found.contains(s)
                {
                    found.push(s.clone());
                    return Ok(TreeNodeRecursion::Jump);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })
    .map_err(df_error)?;
    Ok(found)
}

/// The value of a scalar subquery from its result rows: NULL without rows,
/// an error with more than one.
pub(crate) fn scalar_value(s: &Subquery, batches: &[RecordBatch]) -> Result<ScalarValue> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let field = s.subquery.schema().field(0).clone();
    match rows {
        0 => ScalarValue::try_new_null(field.data_type()).map_err(df_error),
        1 => {
            let b = batches.iter().find(|b| b.num_rows() == 1).ok_or_else(|| SqlError::execution("scalar subquery row"))?;
            ScalarValue::try_from_array(b.column(0), 0).map_err(df_error)
        }
        n => Err(SqlError::Execution(format!("a scalar subquery returned {n} rows (at most one allowed)"))),
    }
}

/// `plan` with each subquery in `values` replaced by its value.
pub(crate) fn inline(plan: LogicalPlan, values: &HashMap<usize, (Subquery, ScalarValue)>) -> Result<LogicalPlan> {
    let out = plan
        .transform_up(|node| {
            node.map_expressions(|e| {
                e.transform_up(|e| {
                    if let Expr::ScalarSubquery(s) = &e
                        && let Some((_, v)) = values.values().find(|(q, _)| q == s)
                    {
                        return Ok(Transformed::yes(Expr::Literal(v.clone(), None)));
                    }
                    Ok(Transformed::no(e))
                })
            })
        })
        .map_err(df_error)?;
    // The schemas of rewritten nodes are unchanged (a literal of the
    // subquery's type replaces it).
    Ok(out.data)
}
