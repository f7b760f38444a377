//! Moving a runtime filter down from the top of a probe stage towards the
//! scans whose rows carry its keys, across stage boundaries when a key is
//! shuffled on: DataFusion's dynamic filters in one process reach a scan
//! through aggregates and joins the same way.
//!
//! A filter that drops rows whose key has no partner among the build
//! keys may go below an operator that passes each key value on unchanged
//! and never turns a dropped row into a kept one: projections and filters,
//! the side of an inner join (or the output side of a semi join) that
//! carries the key, an aggregate grouping on the key, and a shuffle
//! hash-partitioning rows (the upstream stage then waits for the build
//! stage instead). A key that does not follow (an aggregate's value) is
//! left out below that point: a partner of the whole key is a partner of
//! any of its parts, so filtering on fewer keys only keeps more rows.

use std::any::Any;
use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, replace_children_if_necessary};

use super::super::planner::PlannedStage;
use super::super::reader::{ReadMode, ShuffleReaderExec};
use super::{BuildKeys, RuntimeFilterExec};

/// One key on its way down: which build key it pairs with, and the column
/// of the current operator's output holding it.
#[derive(Debug, Clone, Copy)]
struct Key {
    build: usize,
    column: usize,
}

/// Where the filter is going.
pub(super) struct Push<'a> {
    pub build: BuildKeys,
    pub stages: &'a mut [PlannedStage],
    /// The upstream stage the filter landed in (it must then wait for the
    /// build stage, if there is one); `None`: it was not placed.
    pub landed: Option<usize>,
}

impl Push<'_> {
    /// Follows the key columns `columns` (one per build key, in the output
    /// of `plan`, the join's probe side in the stage being cut) down, and
    /// places the filter as low as they go when that is in an upstream
    /// stage (rewritten in place). In the join's own stage the filter would
    /// repeat the join's lookups, or make them before a more selective join
    /// below it: it is not placed there.
    pub(super) fn place(&mut self, plan: Arc<dyn ExecutionPlan>, columns: &[usize]) -> Result<()> {
        let keys: Vec<Key> = columns.iter().enumerate().map(|(build, &column)| Key { build, column }).collect();
        self.down(plan, keys).map(|_| ())
    }

    fn down(&mut self, plan: Arc<dyn ExecutionPlan>, keys: Vec<Key>) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(r) = (plan.as_ref() as &dyn Any).downcast_ref::<ShuffleReaderExec>() {
            // Hash-partitioned rows keep their columns across the shuffle:
            // the filter moves into the stage writing them, when that one
            // comes after the build stage.
            let up = r.stage;
            let upstream = self.stages.get(up).filter(|_| r.mode == ReadMode::Hash && self.build.stage().is_none_or(|b| up > b)).and_then(|s| {
                (s.plan.as_ref() as &dyn Any).downcast_ref::<RepartitionExec>().map(|rep| (s.plan.clone(), rep.input().clone()))
            });
            let Some((root, input)) = upstream else { return self.here(plan, &keys) };
            self.landed = Some(up);
            let input = self.down(input, keys)?;
            if let Some(stage) = self.stages.get_mut(up) {
                stage.plan = replace_children_if_necessary(root, vec![input])?;
            }
            return Ok(plan);
        }
        let Some((child_index, below)) = follow(&plan, &keys) else { return self.here(plan, &keys) };
        let mut children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
        let Some(child) = children.get(child_index).cloned() else { return self.here(plan, &keys) };
        children[child_index] = self.down(child, below)?;
        replace_children_if_necessary(plan, children)
    }

    /// `plan` under a filter on `keys`, in an upstream stage; `plan` itself
    /// in the join's own stage.
    fn here(&mut self, plan: Arc<dyn ExecutionPlan>, keys: &[Key]) -> Result<Arc<dyn ExecutionPlan>> {
        if self.landed.is_none() {
            return Ok(plan);
        }
        let schema = plan.schema();
        let probe: Option<Vec<Arc<dyn PhysicalExpr>>> = keys
            .iter()
            .map(|k| schema.fields().get(k.column).map(|f| Arc::new(Column::new(f.name(), k.column)) as Arc<dyn PhysicalExpr>))
            .collect();
        let Some(probe) = probe else { return Ok(plan) };
        let mut build = self.build.clone();
        build.keys = keys.iter().filter_map(|k| self.build.keys.get(k.build).cloned()).collect();
        Ok(Arc::new(RuntimeFilterExec::new(plan, build, probe)))
    }
}

/// The child of `plan` the keys follow into, and their columns there; only
/// keys that follow are kept, and `None` when none does.
fn follow(plan: &Arc<dyn ExecutionPlan>, keys: &[Key]) -> Option<(usize, Vec<Key>)> {
    let any = plan.as_ref() as &dyn Any;
    let map = |f: &dyn Fn(usize) -> Option<usize>| -> Vec<Key> {
        keys.iter().filter_map(|k| f(k.column).map(|column| Key { build: k.build, column })).collect()
    };
    let below = if let Some(p) = any.downcast_ref::<ProjectionExec>() {
        (0, map(&|c| column_of(&p.expr().get(c)?.expr)))
    } else if let Some(f) = any.downcast_ref::<FilterExec>() {
        (0, map(&|c| match f.projection() {
            Some(p) => p.get(c).copied(),
            None => Some(c),
        }))
    } else if let Some(a) = any.downcast_ref::<AggregateExec>() {
        let groups = a.group_expr();
        if !groups.is_single() {
            return None;
        }
        (0, map(&|c| column_of(&groups.expr().get(c)?.0)))
    } else if let Some(j) = any.downcast_ref::<HashJoinExec>() {
        return join_side(j, keys);
    } else if any.is::<CoalescePartitionsExec>() {
        (0, keys.to_vec())
    } else {
        return None;
    };
    (!below.1.is_empty()).then_some(below)
}

fn column_of(e: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    (e.as_ref() as &dyn Any).downcast_ref::<Column>().map(|c| c.index())
}

/// The side of an inner join carrying most keys (the probe side on a tie),
/// or a semi join's output side, and the keys' columns in it.
fn join_side(j: &HashJoinExec, keys: &[Key]) -> Option<(usize, Vec<Key>)> {
    let left_width = j.left().schema().fields().len();
    let unprojected = |c: usize| match &j.projection {
        Some(p) => p.get(c).copied(),
        None => Some(c),
    };
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for k in keys {
        let Some(c) = unprojected(k.column) else { continue };
        match j.join_type() {
            JoinType::Inner if c < left_width => left.push(Key { build: k.build, column: c }),
            JoinType::Inner => right.push(Key { build: k.build, column: c - left_width }),
            JoinType::LeftSemi => left.push(Key { build: k.build, column: c }),
            JoinType::RightSemi => right.push(Key { build: k.build, column: c }),
            _ => return None,
        }
    }
    match (left.is_empty(), right.is_empty()) {
        (true, true) => None,
        _ if right.len() >= left.len() => Some((1, right)),
        _ => Some((0, left)),
    }
}
