//! Background workers: the checkpointer and the dead-node monitor.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::namesystem::Namesystem;

/// Writes a checkpoint when `checkpoint_txns` edits accumulated or
/// `checkpoint_period_secs` passed with edits (checked every few seconds).
pub(crate) struct Checkpointer {
    pub(crate) ns: Arc<Namesystem>,
    pub(crate) check_every: Duration,
}

impl Checkpointer {
    pub(crate) fn new(ns: Arc<Namesystem>) -> Checkpointer {
        let period = Duration::from_secs(ns.conf.checkpoint_period_secs);
        Checkpointer { ns, check_every: period.min(Duration::from_secs(5)) }
    }

    pub(crate) async fn run(self, stop: watch::Receiver<bool>) {
        every(self.check_every, stop, || async {
            if !self.ns.checkpoint_due() {
                return;
            }
            let ns = self.ns.clone();
            match tokio::task::spawn_blocking(move || ns.checkpoint()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("checkpoint failed: {e}"),
                Err(e) => tracing::error!("checkpoint task failed: {e}"),
            }
        })
        .await
    }
}

/// Declares datanodes without a heartbeat for `dead_node_interval_ms` dead
/// and forgets their replicas.
pub(crate) struct DeadNodeMonitor {
    pub(crate) ns: Arc<Namesystem>,
    pub(crate) check_every: Duration,
}

impl DeadNodeMonitor {
    pub(crate) fn new(ns: Arc<Namesystem>) -> DeadNodeMonitor {
        let every = Duration::from_millis(ns.conf.dead_node_interval_ms / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        DeadNodeMonitor { ns, check_every: every }
    }

    pub(crate) async fn run(self, stop: watch::Receiver<bool>) {
        every(self.check_every, stop, || async {
            self.ns.check_dead_nodes();
        }).await
    }
}

/// Runs `job` every `period` until `stop` turns true.
pub(crate) async fn every<F, Fut>(period: Duration, mut stop: watch::Receiver<bool>, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        job().await;
    }
}
