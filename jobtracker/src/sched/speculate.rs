//! Speculative execution of stragglers, and preemption of reducers when
//! maps wait for slots.

use super::assign::{Pick, locality_of};
use super::{AttemptRef, Scheduler};

/// A straggler must run at least this much longer than the mean task.
const SPECULATION_SLACK_MS: f64 = 1000.0;

impl Scheduler {
    /// Uses the slots left after normal assignment for speculative attempts:
    /// on another worker than the straggler's first; then, when the only
    /// free slots are on the straggler's own worker (say reducers hold the
    /// others), there: a fresh process is worth having even on the same
    /// machine when the straggling attempt itself is what is slow.
    pub(super) fn speculate(&mut self, now: i64) {
        for allow_same_worker in [false, true] {
            let workers: Vec<String> =
                self.workers.iter().filter(|w| w.usable() && w.free() > 0).map(|w| w.id.clone()).collect();
            for wid in workers {
                while self.workers.get(&wid).is_some_and(|w| w.free() > 0) {
                    let Some((seq, pick)) = self.straggler_for(&wid, now, allow_same_worker) else { break };
                    tracing::info!("speculating task {} of stage {} on worker {wid}", pick.task, pick.stage);
                    self.launch(seq, pick, &wid, true, now);
                }
            }
        }
    }

    /// The task most worth a speculative attempt on `wid`: a stage with no
    /// pending task and at least one completed task; a running task with a
    /// single attempt (elsewhere, unless `allow_same_worker`) whose elapsed time exceeds
    /// max(1.5 × mean, mean + 1 s) and whose remaining time, estimated from
    /// its progress rate, exceeds the mean. A stage reading another is not
    /// speculated before that stage is complete, and its attempts' elapsed
    /// time counts from then: waiting for input is not being slow.
    fn straggler_for(&self, wid: &str, now: i64, allow_same_worker: bool) -> Option<(u32, Pick)> {
        let w = self.workers.get(wid)?;
        for seq in self.fair_order() {
            let job = self.jobs.get(&seq)?;
            let mut best: Option<(f64, Pick)> = None;
            for &(si, ti) in &job.rt.running {
                let stage = &job.stages[si];
                if !stage.speculative || !job.rt.pending[si].is_empty() || stage.stats.done_count == 0 {
                    continue;
                }
                let task = &stage.tasks[ti as usize];
                if task.committing.is_some() || task.failed_on.contains(wid) {
                    continue;
                }
                if !stage.upstreams.iter().all(|&u| job.stage_complete(u)) {
                    continue;
                }
                let input_at = stage.upstreams.iter().map(|&u| job.rt.complete_at[u]).max().unwrap_or(0);
                let mut active = task.active();
                let (Some((_, a)), None) = (active.next(), active.next()) else { continue };
                if a.kill_reason.is_some() || (a.worker_id == wid && !allow_same_worker) {
                    continue;
                }
                let mean = stage.stats.done_ms_sum as f64 / stage.stats.done_count as f64;
                let elapsed = (now - a.start_ms.max(input_at)) as f64;
                if elapsed <= (1.5 * mean).max(mean + SPECULATION_SLACK_MS) {
                    continue;
                }
                let p = a.progress as f64;
                let remaining = if p > 0.0 { elapsed * (1.0 - p) / p } else { f64::INFINITY };
                if remaining <= mean {
                    continue;
                }
                if best.is_none_or(|(r, _)| remaining > r) {
                    best = Some((remaining, Pick { stage: si, task: ti, locality: locality_of(task, w) }));
                }
            }
            if let Some((_, pick)) = best {
                return Some((seq, pick));
            }
        }
        None
    }

    /// When no usable worker has a free slot and a job has tasks waiting in
    /// a stage whose downstream stage holds slots, kill the most recently
    /// started downstream attempts (at most one per waiting task), so
    /// reducers waiting on maps cannot hold the cluster forever.
    pub(super) fn preempt(&mut self, _now: i64) {
        let usable: Vec<_> = self.workers.iter().filter(|w| w.usable()).collect();
        if usable.is_empty() || usable.iter().any(|w| w.free() > 0) {
            return;
        }
        let mut kills: Vec<(AttemptRef, String)> = Vec::new();
        for job in self.jobs.values().filter(|j| j.accepting()) {
            for si in 0..job.stages.len() {
                let waiting = job.rt.pending[si].len();
                if waiting == 0 || !job.stage_ready(si) {
                    continue;
                }
                let reason = format!("preempted: {}s must run", job.stages[si].name);
                let mut candidates = Vec::new();
                let mut preempting = 0;
                for &(di, ti) in &job.rt.running {
                    if !job.stages[di].upstreams.contains(&si) {
                        continue;
                    }
                    for (ai, a) in job.task(di, ti).active() {
                        match &a.kill_reason {
                            Some(r) if r.starts_with("preempted") => preempting += 1,
                            Some(_) => {}
                            None => candidates.push((
                                a.start_ms,
                                a.id.clone(),
                                AttemptRef { seq: job.seq, stage: di, task: ti, attempt: ai },
                            )),
                        }
                    }
                }
                candidates.sort();
                while preempting < waiting {
                    let Some((_, id, r)) = candidates.pop() else { break };
                    tracing::info!("{id}: {reason}");
                    kills.push((r, reason.clone()));
                    preempting += 1;
                }
            }
        }
        for (r, reason) in kills {
            self.kill_attempt(r, &reason);
        }
    }
}
