//! The ReplicationMonitor: every `replication_interval_ms` it advances
//! decommissioning nodes and, unless in safe mode, re-checks noted blocks
//! (queueing under-replicated ones, deleting excess and corrupt replicas),
//! requeues timed-out transfers and schedules TransferBlock commands for up
//! to `live datanodes * replication_work_multiplier` queued blocks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;
use tokio::sync::watch;
use tusk_proto::dfs::{DatanodeCommand, DatanodeId, ExtendedBlock, TransferBlockCommand, datanode_command::Command};

use super::{Census, ReplicaKind, Replication, classify, excess, queue};
use crate::blocks::DnIndex;
use crate::checkpointer::every;
use crate::config::NamenodeConfig;
use crate::datanodes::DatanodeManager;
use crate::decommission;
use crate::error::Result;
use crate::namespace::{FIRST_BLOCK_ID, FsState};
use crate::namesystem::Namesystem;

/// Most noted blocks re-checked in one tick (bounds the lock hold time).
const MAX_CHECKS_PER_TICK: usize = 200_000;
/// Most blocks, and block ids, the full scan looks at in one tick.
const SCAN_BLOCKS_PER_TICK: usize = 500_000;
const SCAN_IDS_PER_TICK: u64 = 4_000_000;

/// The named background worker.
pub(crate) struct ReplicationMonitor {
    ns: Arc<Namesystem>,
    period: Duration,
}

impl ReplicationMonitor {
    pub(crate) fn new(ns: Arc<Namesystem>) -> ReplicationMonitor {
        let period = Duration::from_millis(ns.conf.replication_interval_ms);
        ReplicationMonitor { ns, period }
    }

    pub(crate) async fn run(self, stop: watch::Receiver<bool>) {
        every(self.period, stop, || async {
            let ns = self.ns.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || ns.replication_tick()).await {
                tracing::error!("replication monitor tick failed: {e}");
            }
        })
        .await
    }
}

/// What one tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TickStats {
    /// Blocks re-checked.
    pub(crate) checked: usize,
    /// TransferBlock commands queued.
    pub(crate) scheduled: usize,
    /// Replicas queued for deletion (excess or corrupt).
    pub(crate) invalidated: usize,
    /// Pending transfers that timed out.
    pub(crate) timed_out: usize,
}

/// One tick's work, under the three locks.
struct Work<'a> {
    st: &'a FsState,
    dm: &'a mut DatanodeManager,
    r: &'a mut Replication,
    conf: &'a NamenodeConfig,
    racks: usize,
    now: Instant,
    stats: TickStats,
}

/// A live datanode without a heartbeat for this long is stale (HDFS default
/// 30 s = 10 heartbeats): excess replicas are not trimmed while one holds a
/// replica.
fn stale_interval(conf: &NamenodeConfig) -> Duration {
    Duration::from_millis(conf.heartbeat_interval_ms.saturating_mul(10))
}

fn ext(id: u64, c: &Census) -> ExtendedBlock {
    ExtendedBlock { block_id: id, generation_stamp: c.gen_stamp, num_bytes: c.num_bytes }
}

impl Work<'_> {
    fn run(&mut self) {
        self.scan();
        let timeout = Duration::from_millis(self.conf.replication_pending_timeout_ms);
        for id in self.r.pending.expire(self.now, timeout) {
            tracing::warn!("replication of block {id} timed out; it is checked again");
            self.stats.timed_out += 1;
            self.r.note(id);
        }
        for id in self.r.take_dirty(MAX_CHECKS_PER_TICK) {
            self.check(id);
        }
        self.schedule();
    }

    /// Advances the full scan of the block map (ids are handed out in
    /// order from FIRST_BLOCK_ID, so a cursor survives between ticks).
    fn scan(&mut self) {
        if self.r.rescan {
            self.r.rescan = false;
            self.r.scan_next = Some(FIRST_BLOCK_ID);
        }
        let Some(mut id) = self.r.scan_next else { return };
        let st = self.st;
        let end = st.next_block_id.min(id.saturating_add(SCAN_IDS_PER_TICK));
        let mut checked = 0;
        while id < end && checked < SCAN_BLOCKS_PER_TICK {
            if st.blocks.get(id).is_some() {
                self.check(id);
                checked += 1;
            }
            id += 1;
        }
        if id >= st.next_block_id {
            self.r.scan_next = None;
            tracing::info!("replication: checked all {} blocks; {} need replicas", st.blocks.len(), self.r.queue.len());
        } else {
            self.r.scan_next = Some(id);
        }
    }

    /// Re-checks one block: deletes corrupt replicas once enough are live,
    /// excess ones when too many are, and (re)queues it by priority.
    fn check(&mut self, id: u64) {
        self.stats.checked += 1;
        let Some(mut c) = classify(self.st, self.dm, self.r, id, self.racks) else {
            self.r.forget_block(id);
            return;
        };
        if c.corrupt > 0 && c.live >= c.expected {
            for dn in c.nodes(ReplicaKind::Corrupt).collect::<Vec<_>>() {
                if self.r.start_invalidating_corrupt(id, dn) {
                    tracing::info!("block {id}: deleting the corrupt replica on {}", self.name(dn));
                    self.dm.invalidate(dn, ext(id, &c));
                    self.stats.invalidated += 1;
                }
            }
        }
        let stale = stale_interval(self.conf);
        let stale_holder = || {
            c.nodes(ReplicaKind::Live)
                .any(|d| self.dm.get(d).is_some_and(|n| n.contents_stale || n.heartbeat_stale(stale, self.now)))
        };
        if !c.under_construction && c.live > c.expected && stale_holder() {
            // A holder restarted and has not re-reported, or has gone quiet:
            // its replica may be gone, so trimming another could leave too
            // few (or none).
            self.r.postponed.insert(id);
        } else if !c.under_construction && c.live > c.expected {
            let victims = excess::choose(&c, self.dm, self.r.pending.source(id));
            for dn in &victims {
                tracing::info!("block {id}: {} live replicas for {} wanted; deleting the one on {}", c.live, c.expected, self.name(*dn));
                self.r.add_excess(id, *dn);
                self.dm.invalidate(*dn, ext(id, &c));
                self.stats.invalidated += 1;
            }
            if !victims.is_empty() {
                match classify(self.st, self.dm, self.r, id, self.racks) {
                    Some(again) => c = again,
                    None => return,
                }
            }
        }
        match c.priority(self.r.pending.count(id)) {
            Some(p) => self.r.queue.update(id, p),
            None => self.r.queue.remove(id),
        }
    }

    fn name(&self, dn: DnIndex) -> String {
        self.dm.get(dn).map(|d| format!("{} ({})", d.id.datanode_uuid, d.id.transfer_addr)).unwrap_or_default()
    }

    /// Takes queued blocks in priority order and sends transfers for them.
    fn schedule(&mut self) {
        let limit = self.dm.live_count().saturating_mul(self.conf.replication_work_multiplier as usize);
        if limit == 0 {
            return;
        }
        for (id, _) in self.r.queue.take(limit) {
            let Some(c) = classify(self.st, self.dm, self.r, id, self.racks) else {
                self.r.forget_block(id);
                continue;
            };
            let pending = self.r.pending.count(id);
            let Some(p) = c.priority(pending) else { continue };
            if p < queue::CORRUPT && self.transfer(id, &c, p, pending) {
                self.stats.scheduled += 1;
            }
            if let Some(p) = c.priority(self.r.pending.count(id)) {
                self.r.queue.update(id, p);
            }
        }
    }

    /// A source for a copy: decommissioning holders first (they serve no
    /// writes), then live ones, then decommissioned ones as a last resort;
    /// only sources with fewer than `replication_max_streams` transfers in
    /// flight.
    fn choose_source(&self, c: &Census) -> Option<DnIndex> {
        let max = self.conf.replication_max_streams;
        for kind in [ReplicaKind::Decommissioning, ReplicaKind::Live, ReplicaKind::Decommissioned] {
            let fits: Vec<DnIndex> = c.nodes(kind).filter(|d| self.r.pending.outgoing(*d) < max).collect();
            if let Some(d) = fits.choose(&mut rand::rng()) {
                return Some(*d);
            }
        }
        None
    }

    fn transfer(&mut self, id: u64, c: &Census, prio: u8, pending: u32) -> bool {
        let need = if prio == queue::MIS_REPLICATED { 1 } else { c.expected.saturating_sub(c.live + pending) as usize };
        if need == 0 {
            return false;
        }
        let Some(source) = self.choose_source(c) else { return false };
        let live: Vec<DnIndex> = c.nodes(ReplicaKind::Live).collect();
        let mut holders: HashSet<DnIndex> = self.st.blocks.get(id).map(|b| b.replicas.iter().collect()).unwrap_or_default();
        holders.extend(self.r.pending.targets(id));
        let targets =
            self.dm.choose_replication_targets(source, &live, &holders, need, c.num_bytes, prio == queue::MIS_REPLICATED);
        if targets.is_empty() {
            return false;
        }
        let ids: Vec<DatanodeId> = targets.iter().filter_map(|t| self.dm.get(*t)).map(|d| d.id.clone()).collect();
        tracing::info!(
            "block {id}: {} live of {} wanted; {} copies it to {}",
            c.live,
            c.expected,
            self.name(source),
            ids.iter().map(|d| d.transfer_addr.as_str()).collect::<Vec<_>>().join(", ")
        );
        let cmd = TransferBlockCommand { block: Some(ext(id, c)), targets: ids };
        self.dm.queue_command(source, DatanodeCommand { command: Some(Command::Transfer(cmd)) });
        self.dm.add_scheduled(&targets);
        self.r.pending.add(id, source, &targets, self.now);
        true
    }
}

impl Replication {
    /// Starts the deletion of a corrupt replica once; false if it was started.
    fn start_invalidating_corrupt(&mut self, id: u64, dn: DnIndex) -> bool {
        match self.corrupt.get_mut(&id).and_then(|v| v.iter_mut().find(|m| m.dn == dn)) {
            Some(m) if !m.invalidated => {
                m.invalidated = true;
                true
            }
            _ => false,
        }
    }
}

impl Namesystem {
    /// One ReplicationMonitor tick now.
    pub(crate) fn replication_tick(&self) -> TickStats {
        self.replication_tick_at(Instant::now())
    }

    /// One tick as if at `now` (tests move time forward).
    pub(crate) fn replication_tick_at(&self, now: Instant) -> TickStats {
        let (stats, admin_changed) = {
            let st = self.state.read();
            let mut dm = self.datanodes.lock();
            let mut r = self.repl.lock();
            let admin_changed =
                decommission::check(&st, &mut dm, &mut r, self.conf.default_replication, self.conf.min_replication);
            let stats = if self.safemode.is_on() {
                // No work in safe mode; everything is checked once it ends.
                r.rescan = true;
                TickStats::default()
            } else {
                let racks = dm.cluster_racks();
                if r.refresh_racks(&dm) {
                    r.rescan = true;
                }
                let epoch = self.safemode.epoch();
                if epoch != r.safemode_epoch {
                    // Safe mode came and went since the last tick (maybe too
                    // briefly for a tick to see it); notes were dropped meanwhile.
                    r.safemode_epoch = epoch;
                    r.rescan = true;
                }
                // Blocks postponed for a quiet holder are looked at again once
                // every live node heartbeats again (or is declared dead).
                let stale = stale_interval(&self.conf);
                if r.has_postponed() && !dm.live_nodes().any(|d| d.heartbeat_stale(stale, now)) {
                    r.recheck_postponed();
                }
                let mut w = Work { st: &st, dm: &mut dm, r: &mut r, conf: &self.conf, racks, now, stats: TickStats::default() };
                w.run();
                w.stats
            };
            (stats, admin_changed)
        };
        if admin_changed && let Err(e) = self.save_admin_set() {
            tracing::error!("saving the datanode admin states: {e}");
        }
        if stats != TickStats::default() {
            tracing::debug!(?stats, "replication monitor");
        }
        stats
    }

    /// Persists the admin set (no-op for an in-memory namesystem).
    pub(crate) fn save_admin_set(&self) -> Result<()> {
        let (version, bytes) = self.datanodes.lock().admin.snapshot()?;
        self.excludes.save(version, &bytes)
    }
}
