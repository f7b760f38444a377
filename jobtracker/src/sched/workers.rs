//! Workers: registration, heartbeats, racks, and losing a worker (its
//! running attempts are killed and re-run; map outputs it held that are
//! still needed are recomputed).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::{Action, AttemptRef, AttemptState, Scheduler, Urgency};

/// Rack of a worker whose datanode the namenode did not place.
pub(crate) const DEFAULT_RACK: &str = "/default-rack";

/// Lost workers kept for the cluster status.
const LOST_KEPT: usize = 100;

/// A worker as it registers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkerReg {
    pub(crate) id: String,
    pub(crate) addr: String,
    pub(crate) host: String,
    pub(crate) datanode: String,
    pub(crate) slots: u32,
    /// CPU cores of its machine (0: not reported).
    pub(crate) cores: u32,
}

/// A worker the jobtracker knows.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub(crate) id: String,
    pub(crate) addr: String,
    pub(crate) host: String,
    pub(crate) datanode: String,
    pub(crate) rack: String,
    pub(crate) slots: u32,
    pub(crate) cores: u32,
    /// Attempts holding its slots.
    pub(crate) running: BTreeSet<String>,
    pub(crate) last_contact_ms: i64,
    pub(crate) live: bool,
    /// A launch on it failed: no new launches until it heartbeats again.
    pub(crate) suspect: bool,
    /// Jobs over whose local files it may delete (sent with the next heartbeat).
    pub(crate) cleanup: BTreeSet<String>,
}

impl Worker {
    pub(crate) fn free(&self) -> u32 {
        self.slots.saturating_sub(self.running.len() as u32)
    }

    /// May take new attempts.
    pub(crate) fn usable(&self) -> bool {
        self.live && !self.suspect
    }
}

/// One running attempt in a heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AttemptProgress {
    pub(crate) attempt_id: String,
    pub(crate) progress: f32,
    pub(crate) status: String,
    pub(crate) counters: Vec<(String, String, i64)>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HeartbeatReply {
    pub(crate) reregister: bool,
    pub(crate) kill: Vec<String>,
    pub(crate) cleanup: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Workers {
    map: BTreeMap<String, Worker>,
    /// Datanode transfer address → rack (from the namenode's report).
    racks: HashMap<String, String>,
    lost: VecDeque<String>,
}

impl Workers {
    pub(crate) fn get(&self, id: &str) -> Option<&Worker> {
        self.map.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Worker> {
        self.map.get_mut(id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Worker> {
        self.map.values()
    }

    pub(crate) fn is_live(&self, id: &str) -> bool {
        self.map.get(id).is_some_and(|w| w.live)
    }

    pub(crate) fn live_count(&self) -> usize {
        self.map.values().filter(|w| w.live).count()
    }

    /// The rack the namenode reported for a datanode, if it did.
    pub(super) fn known_rack(&self, datanode: &str) -> Option<&str> {
        self.racks.get(datanode).map(String::as_str)
    }

    fn rack_of(&self, datanode: &str) -> String {
        self.racks.get(datanode).cloned().unwrap_or_else(|| DEFAULT_RACK.to_string())
    }
}

impl Scheduler {
    /// A worker (re)starts: any earlier identity with its id or address is
    /// lost (its attempts are gone), then it gets a fresh record.
    pub(crate) fn register_worker(&mut self, reg: WorkerReg, now: i64) {
        let old: Vec<String> = self
            .workers
            .map
            .values()
            .filter(|w| w.live && (w.id == reg.id || w.addr == reg.addr))
            .map(|w| w.id.clone())
            .collect();
        for id in old {
            self.lose_worker(&id, &format!("worker {id} lost (it registered again)"), now);
        }
        self.workers.lost.retain(|id| *id != reg.id);
        let rack = self.workers.rack_of(&reg.datanode);
        let w = Worker {
            id: reg.id.clone(),
            addr: reg.addr,
            host: reg.host,
            datanode: reg.datanode,
            rack,
            slots: reg.slots,
            cores: reg.cores,
            running: BTreeSet::new(),
            last_contact_ms: now,
            live: true,
            suspect: false,
            cleanup: BTreeSet::new(),
        };
        self.workers.map.insert(reg.id, w);
    }

    /// True when a registered worker's datanode has no known rack yet.
    pub(crate) fn has_unplaced_worker(&self) -> bool {
        self.workers
            .map
            .values()
            .any(|w| w.live && !w.datanode.is_empty() && !self.workers.racks.contains_key(&w.datanode))
    }

    /// New rack map from the namenode's datanode report.
    pub(crate) fn set_racks(&mut self, racks: HashMap<String, String>) {
        self.workers.racks = racks;
        let racks = &self.workers.racks;
        for w in self.workers.map.values_mut() {
            w.rack = racks.get(&w.datanode).cloned().unwrap_or_else(|| DEFAULT_RACK.to_string());
        }
    }

    /// A heartbeat: records progress, answers with attempts to kill (unknown
    /// to the jobtracker, or meant to die) and jobs to clean up.
    pub(crate) fn heartbeat(&mut self, worker_id: &str, running: Vec<AttemptProgress>, now: i64) -> HeartbeatReply {
        match self.workers.map.get_mut(worker_id) {
            Some(w) if w.live => {
                w.last_contact_ms = now;
                w.suspect = false;
            }
            _ => return HeartbeatReply { reregister: true, ..Default::default() },
        }
        let mut kill = Vec::new();
        for p in running {
            let r = self.locate(&p.attempt_id);
            let mine = r
                .and_then(|r| self.attempt(r))
                .is_some_and(|a| a.worker_id == worker_id && a.state.is_active() && a.kill_reason.is_none());
            match r {
                Some(r) if mine => self.record_progress(r, p, now),
                _ => kill.push(p.attempt_id),
            }
        }
        let cleanup = match self.workers.map.get_mut(worker_id) {
            Some(w) => std::mem::take(&mut w.cleanup).into_iter().collect(),
            None => Vec::new(),
        };
        HeartbeatReply { reregister: false, kill, cleanup }
    }

    fn record_progress(&mut self, r: AttemptRef, p: AttemptProgress, now: i64) {
        let Some(a) = self.attempt_mut(r) else { return };
        a.progress = p.progress.clamp(0.0, 1.0);
        a.status = p.status;
        if !p.counters.is_empty() {
            a.counters = p.counters;
        }
        let starting = a.state == AttemptState::Starting;
        if starting {
            self.attempt_launched_at(r, now);
        }
        self.mark(r.seq, Urgency::Lazy, now);
    }

    /// Loses workers silent for longer than the expiry.
    pub(crate) fn expire_workers(&mut self, now: i64) {
        let expired: Vec<String> = self
            .workers
            .map
            .values()
            .filter(|w| w.live && now - w.last_contact_ms > self.cfg.worker_expiry_ms)
            .map(|w| w.id.clone())
            .collect();
        for id in expired {
            tracing::warn!("worker {id}: no heartbeat for {} ms, lost", self.cfg.worker_expiry_ms);
            self.lose_worker(&id, &format!("worker {id} lost"), now);
        }
    }

    /// The worker is gone: its running attempts are KILLED and their tasks
    /// re-queued; its successful attempts whose output stays on workers
    /// (map output, SQL shuffle output) are re-run while any stage reading
    /// them still has tasks to finish.
    pub(crate) fn lose_worker(&mut self, id: &str, diag: &str, now: i64) {
        let Some(w) = self.workers.map.get_mut(id) else { return };
        if !w.live {
            return;
        }
        w.live = false;
        w.suspect = false;
        w.cleanup.clear();
        let running = std::mem::take(&mut w.running);
        let addr = w.addr.clone();
        for a in running {
            if let Some(r) = self.locate(&a) {
                self.end_attempt(r, AttemptState::Killed, diag, "", now);
            }
        }
        let seqs: Vec<u32> = self.jobs.values().filter(|j| j.accepting()).map(|j| j.seq).collect();
        for seq in seqs {
            self.rerun_lost_outputs(seq, id, now);
        }
        self.workers.lost.push_back(id.to_string());
        while self.workers.lost.len() > LOST_KEPT {
            if let Some(old) = self.workers.lost.pop_front() {
                self.workers.map.remove(&old);
            }
        }
        self.outbox.push(Action::ForgetWorker { addr });
    }

    fn rerun_lost_outputs(&mut self, seq: u32, worker_id: &str, now: i64) {
        let Some(job) = self.jobs.get_mut(&seq) else { return };
        let mut changed = Vec::new();
        for si in 0..job.stages.len() {
            if !job.stages[si].outputs_on_workers {
                continue;
            }
            if !job.output_needed(si) {
                continue;
            }
            for t in &mut job.stages[si].tasks {
                let Some(ai) = t.success else { continue };
                if t.attempts[ai].worker_id != worker_id {
                    continue;
                }
                let a = &mut t.attempts[ai];
                a.state = AttemptState::Killed;
                a.diagnostics = format!("worker {worker_id} lost: its output is needed again");
                t.success = None;
                changed.push((si, t.index));
            }
        }
        for (si, ti) in changed {
            job.stages[si].stats.killed += 1;
            job.refresh_task(si, ti);
        }
        self.mark(seq, Urgency::Soon, now);
    }
}
