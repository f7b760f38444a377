//! Giving free slots to tasks: fair share across jobs, locality with delay
//! scheduling, retries away from workers where the task failed.
//!
//! Slots are offered one at a time, round robin over the workers with free
//! slots. Each offer goes to the accepting job with the fewest attempts
//! holding slots (ties: the earliest submitted) that has a task it wants to
//! run there: within a job, stages in order; within a stage, a data-local
//! task first, then a task without preference, then (if the job has waited
//! long enough, see [`Scheduler::allowed_level`], or no live worker could do
//! better) a rack-local one, then any.

use std::collections::BTreeSet;

use super::model::{Attempt, Task};
use super::workers::Worker;
use super::{Action, AttemptRef, AttemptState, Launch, Locality, Scheduler, Urgency};
use crate::ids;

/// A task chosen for a slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pick {
    pub(super) stage: usize,
    pub(super) task: u32,
    pub(super) locality: Locality,
}

/// Locality of `task` on worker `w`.
pub(super) fn locality_of(task: &Task, w: &Worker) -> Locality {
    if task.prefs.is_empty() {
        return Locality::NoPreference;
    }
    let local = if w.datanode.is_empty() {
        task.prefs.hosts.iter().any(|h| super::pending::host_part(h) == w.host)
    } else {
        task.prefs.hosts.contains(&w.datanode)
    };
    if local {
        Locality::DataLocal
    } else if task.prefs.racks.contains(&w.rack) {
        Locality::RackLocal
    } else {
        Locality::OffRack
    }
}

impl Scheduler {
    /// Hands out free slots, then speculates on what is left, then preempts
    /// if maps wait and no slot is free. Call after any event.
    pub(crate) fn schedule(&mut self, now: i64) {
        self.assign(now);
        self.speculate(now);
        self.preempt(now);
    }

    fn usable_with_free(&self) -> Vec<String> {
        let mut v: Vec<&Worker> = self.workers.iter().filter(|w| w.usable() && w.free() > 0).collect();
        v.sort_by(|a, b| b.free().cmp(&a.free()).then_with(|| a.id.cmp(&b.id)));
        v.into_iter().map(|w| w.id.clone()).collect()
    }

    fn assign(&mut self, now: i64) {
        let workers = self.usable_with_free();
        let mut full: BTreeSet<&str> = BTreeSet::new();
        loop {
            let mut launched = false;
            for wid in &workers {
                if full.contains(wid.as_str()) {
                    continue;
                }
                if self.workers.get(wid).is_none_or(|w| w.free() == 0) || !self.offer(wid, now) {
                    full.insert(wid);
                    continue;
                }
                launched = true;
            }
            if !launched {
                return;
            }
        }
    }

    /// Offers one slot of worker `wid`; true when an attempt was launched.
    fn offer(&mut self, wid: &str, now: i64) -> bool {
        let live = self.workers.live_count();
        for seq in self.fair_order() {
            match self.pick(seq, wid, live, now) {
                Ok(p) => {
                    self.launch(seq, p, wid, false, now);
                    return true;
                }
                Err(true) => {
                    if let Some(j) = self.jobs.get_mut(&seq) {
                        j.rt.skipped_since.get_or_insert(now);
                    }
                }
                Err(false) => {}
            }
        }
        false
    }

    /// Highest locality level the job accepts now: the level of its last
    /// launch, one more per `locality_wait_ms` it has passed on slots since.
    pub(super) fn allowed_level(&self, seq: u32, now: i64) -> u8 {
        let wait = self.cfg.locality_wait_ms;
        let Some(job) = self.jobs.get(&seq) else { return 0 };
        if wait <= 0 {
            return 2;
        }
        let waited = job.rt.skipped_since.map(|t| (now - t).max(0)).unwrap_or(0);
        (job.rt.loc_level as i64 + waited / wait).min(2) as u8
    }

    /// The best locality any live worker could give a pending task: there
    /// is no point waiting for better (no worker beside those datanodes).
    fn best_level(&self, p: &super::pending::PendingSet) -> u8 {
        let live = || self.workers.iter().filter(|w| w.live);
        if live().any(|w| p.local(&w.datanode, &w.host).next().is_some()) {
            0
        } else if live().any(|w| p.rack(&w.rack).next().is_some()) {
            1
        } else {
            2
        }
    }

    /// True when `task` should not run on `wid` (it failed there and some
    /// other live worker has not failed it).
    fn avoids(&self, task: &Task, wid: &str, live: usize) -> bool {
        task.failed_on.contains(wid) && task.failed_on.iter().filter(|w| self.workers.is_live(w)).count() < live
    }

    /// A task of job `seq` for a slot on `wid`; `Err(true)` when the job
    /// passed on the slot to wait for locality.
    fn pick(&self, seq: u32, wid: &str, live: usize, now: i64) -> Result<Pick, bool> {
        let (Some(job), Some(w)) = (self.jobs.get(&seq), self.workers.get(wid)) else { return Err(false) };
        let mut skipped = false;
        for si in 0..job.stages.len() {
            let p = &job.rt.pending[si];
            if p.is_empty() || !job.stage_ready(si) {
                continue;
            }
            let tasks = &job.stages[si].tasks;
            let ok = |ti: &u32| !self.avoids(&tasks[*ti as usize], wid, live);
            let pick = |ti: u32, locality| Ok(Pick { stage: si, task: ti, locality });
            if let Some(ti) = p.local(&w.datanode, &w.host).find(ok) {
                return pick(ti, Locality::DataLocal);
            }
            if let Some(ti) = p.no_pref().find(ok) {
                return pick(ti, Locality::NoPreference);
            }
            if !p.has_located() {
                continue;
            }
            let level = self.allowed_level(seq, now).max(self.best_level(p));
            if level >= 1
                && let Some(ti) = p.rack(&w.rack).find(ok)
            {
                return pick(ti, Locality::RackLocal);
            }
            if level >= 2
                && let Some(ti) = p.all().find(ok)
            {
                return pick(ti, locality_of(&tasks[ti as usize], w));
            }
            skipped = true;
        }
        Err(skipped)
    }

    /// Starts a new attempt of a task on `wid`.
    pub(super) fn launch(&mut self, seq: u32, p: Pick, wid: &str, speculative: bool, now: i64) {
        let Some(w) = self.workers.get(wid) else { return };
        let (waddr, whost) = (w.addr.clone(), w.host.clone());
        let Some(job) = self.jobs.get_mut(&seq) else { return };
        let job_id = job.id.clone();
        let stage = &mut job.stages[p.stage];
        let stage_name = stage.name.clone();
        let task = &mut stage.tasks[p.task as usize];
        let number = task.attempts.len() as u32;
        let attempt_id = ids::attempt_id(&task.id, number);
        let task_id = task.id.clone();
        task.attempts.push(Attempt {
            id: attempt_id.clone(),
            number,
            worker_id: wid.to_string(),
            worker_addr: waddr.clone(),
            worker_host: whost,
            state: AttemptState::Starting,
            start_ms: now,
            locality: p.locality,
            speculative,
            ..Default::default()
        });
        let st = &mut stage.stats;
        st.launched += 1;
        if speculative {
            st.speculative += 1;
        }
        match p.locality {
            Locality::DataLocal => st.data_local += 1,
            Locality::RackLocal => st.rack_local += 1,
            Locality::OffRack => st.other_local += 1,
            Locality::NoPreference => {}
        }
        job.rt.active += 1;
        if !speculative {
            if let Some(level) = p.locality.level() {
                job.rt.loc_level = level;
            }
            job.rt.skipped_since = None;
        }
        job.rt.workers.insert(wid.to_string());
        job.refresh_task(p.stage, p.task);
        let attempt = job.task(p.stage, p.task).attempts.len() - 1;
        if let Some(w) = self.workers.get_mut(wid) {
            w.running.insert(attempt_id.clone());
        }
        self.attempts.insert(attempt_id.clone(), AttemptRef { seq, stage: p.stage, task: p.task, attempt });
        self.outbox.push(Action::Launch(Launch {
            job_id,
            task_id,
            attempt_id,
            attempt_number: number,
            stage: p.stage,
            stage_name,
            task_index: p.task,
            worker_id: wid.to_string(),
            worker_addr: waddr,
        }));
        self.mark(seq, Urgency::Soon, now);
    }
}
