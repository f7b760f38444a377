//! The jobtracker's background work, each a small type with one job:
//! the scheduling loop and the persister (the rack refresher is in `dfs.rs`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::jobtracker::Jobtracker;

/// Scheduling runs at least this often (delay-scheduling waits expire,
/// stragglers appear, workers expire) besides after every event.
const SCHEDULE_TICK: Duration = Duration::from_millis(100);
/// The persister looks for due writes this often.
const PERSIST_TICK: Duration = Duration::from_millis(200);

/// Runs a scheduling pass after every event (submission, registration,
/// heartbeat, attempt finished...) and every [`SCHEDULE_TICK`].
pub(crate) struct SchedulerLoop {
    jt: Arc<Jobtracker>,
}

impl SchedulerLoop {
    pub(crate) fn new(jt: Arc<Jobtracker>) -> SchedulerLoop {
        SchedulerLoop { jt }
    }

    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(SCHEDULE_TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = self.jt.kick.notified() => {}
                _ = tick.tick() => {}
            }
            self.jt.schedule_pass();
        }
    }
}

/// Writes changed jobs: state changes at once, task changes within a
/// second, progress within five; everything on shutdown.
pub(crate) struct Persister {
    jt: Arc<Jobtracker>,
}

impl Persister {
    pub(crate) fn new(jt: Arc<Jobtracker>) -> Persister {
        Persister { jt }
    }

    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = self.jt.persist.notified() => {}
                _ = tokio::time::sleep(PERSIST_TICK) => {}
            }
            self.jt.flush(false).await;
        }
        self.jt.flush(true).await;
    }
}
