//! Uncorrelated scalar subqueries (`WHERE x > (SELECT avg(y) FROM t)`).
//!
//! DataFusion runs them inside the plan (`ScalarSubqueryExec` fills shared
//! slots that `ScalarSubqueryExpr`s read), which cannot be split across
//! processes. Tusk runs each such subquery first, as a query of its own
//! (distributed too), and puts its value into the outer plan as a literal,
//! as Spark does.
//!
//! Uncorrelated `x [NOT] IN (SELECT y …)` that reads much may also run
//! first: when it returns at most [`IN_LIST_MAX`] values, they replace it
//! as `x [NOT] IN (v1, v2, …)` (the same three-valued result), a filter
//! DataFusion pushes into the scans (and across equi-joins), where the row
//! groups' statistics skip what cannot match. Left as a subquery, it is a
//! semi join that reads and shuffles the whole other side first.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{Expr, LogicalPlan, Subquery};

use crate::error::{Result, SqlError};
use crate::exec::df_error;

/// The distinct subqueries `pick` chooses among the expressions of `plan`
/// (not those nested inside them: they are resolved when the subquery
/// itself runs).
fn find_subqueries(plan: &LogicalPlan, pick: impl Fn(&Expr) -> Option<&Subquery>) -> Result<Vec<Subquery>> {
    let mut found: Vec<Subquery> = Vec::new();
    plan.apply(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                let Some(s) = pick(e) else { return Ok(TreeNodeRecursion::Continue) };
                if !found.contains(s) {
                    found.push(s.clone());
                }
                Ok(TreeNodeRecursion::Jump)
            })
        })
    })
    .map_err(df_error)?;
    Ok(found)
}

/// `plan` with every expression for which `replace` gives a new one
/// rewritten (bottom-up); the schemas stay as they were, the replacements
/// having the replaced expressions' types.
fn rewrite_exprs(plan: LogicalPlan, replace: impl Fn(&Expr) -> Option<Expr>) -> Result<LogicalPlan> {
    let out = plan
        .transform_up(|node| {
            node.map_expressions(|e| {
                e.transform_up(|e| Ok(replace(&e).map_or_else(|| Transformed::no(e), Transformed::yes)))
            })
        })
        .map_err(df_error)?;
    Ok(out.data)
}

/// The uncorrelated scalar subqueries of `plan`.
pub(crate) fn scalar_subqueries(plan: &LogicalPlan) -> Result<Vec<Subquery>> {
    find_subqueries(plan, |e| match e {
        Expr::ScalarSubquery(s) if s.outer_ref_columns.is_empty() => Some(s),
        _ => None,
    })
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
    rewrite_exprs(plan, |e| match e {
        Expr::ScalarSubquery(s) => values.values().find(|(q, _)| q == s).map(|(_, v)| Expr::Literal(v.clone(), None)),
        _ => None,
    })
}

/// Most values of an `IN (subquery)` put into the plan as a list.
pub(crate) const IN_LIST_MAX: usize = 10_000;

/// The uncorrelated one-column `IN (subquery)`s of `plan`.
pub(crate) fn in_subqueries(plan: &LogicalPlan) -> Result<Vec<Subquery>> {
    find_subqueries(plan, |e| match e {
        Expr::InSubquery(i)
            if i.subquery.outer_ref_columns.is_empty() && i.subquery.subquery.schema().fields().len() == 1 =>
        {
            Some(&i.subquery)
        }
        _ => None,
    })
}

/// The distinct values of a one-column result as literals, or `None` when
/// there are more than [`IN_LIST_MAX`].
pub(crate) fn in_list(batches: &[RecordBatch]) -> Result<Option<Vec<Expr>>> {
    let mut seen = HashSet::new();
    let mut list = Vec::new();
    for b in batches {
        for row in 0..b.num_rows() {
            let v = ScalarValue::try_from_array(b.column(0), row).map_err(df_error)?;
            if seen.insert(v.clone()) {
                if list.len() == IN_LIST_MAX {
                    return Ok(None);
                }
                list.push(Expr::Literal(v, None));
            }
        }
    }
    Ok(Some(list))
}

/// `plan` with each `x [NOT] IN (subquery)` whose subquery is in `lists`
/// replaced by `x [NOT] IN (its values)`, or by `true` when the list is
/// `None` (to plan what the rest of the query reads).
pub(crate) fn inline_in_lists(plan: LogicalPlan, lists: &[(Subquery, Option<Vec<Expr>>)]) -> Result<LogicalPlan> {
    if lists.is_empty() {
        return Ok(plan);
    }
    rewrite_exprs(plan, |e| {
        let Expr::InSubquery(i) = e else { return None };
        let (_, list) = lists.iter().find(|(q, _)| *q == i.subquery)?;
        Some(match list {
            Some(list) => Expr::InList(InList::new(i.expr.clone(), list.clone(), i.negated)),
            None => Expr::Literal(ScalarValue::Boolean(Some(true)), None),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(values: Vec<Option<i64>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap()
    }

    #[test]
    fn a_list_holds_each_value_once_nulls_included_up_to_the_limit() {
        let list = in_list(&[batch(vec![Some(3), Some(1), Some(3)]), batch(vec![None, Some(1), None])]).unwrap().unwrap();
        let lit = |v: Option<i64>| Expr::Literal(ScalarValue::Int64(v), None);
        assert_eq!(list, vec![lit(Some(3)), lit(Some(1)), lit(None)]);
        let many: Vec<Option<i64>> = (0..=IN_LIST_MAX as i64).map(Some).collect();
        assert!(in_list(&[batch(many)]).unwrap().is_none(), "one value over the limit");
        let enough: Vec<Option<i64>> = (0..IN_LIST_MAX as i64).chain(0..5).map(Some).collect();
        assert_eq!(in_list(&[batch(enough)]).unwrap().map(|l| l.len()), Some(IN_LIST_MAX), "repeats do not count");
    }
}
