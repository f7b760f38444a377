//! Background workers for leases and safe mode: the lease monitor recovers
//! files whose writer stopped renewing (hard limit) and retries block
//! recoveries that timed out; the safe-mode monitor counts reported blocks
//! while safe mode is on and lets the namenode leave it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::checkpointer::every;
use crate::namesystem::Namesystem;
use crate::safemode::BlockCounts;

/// Recovers files whose lease passed `lease_hard_limit_ms`.
pub(crate) struct LeaseMonitor {
    ns: Arc<Namesystem>,
    check_every: Duration,
}

impl LeaseMonitor {
    pub(crate) fn new(ns: Arc<Namesystem>) -> LeaseMonitor {
        let hard = Duration::from_millis(ns.conf.lease_hard_limit_ms);
        LeaseMonitor { ns, check_every: (hard / 4).clamp(Duration::from_millis(50), Duration::from_secs(2)) }
    }

    pub(crate) async fn run(self, stop: watch::Receiver<bool>) {
        every(self.check_every, stop, || async {
            self.ns.check_leases().await;
        })
        .await
    }
}

/// Feeds block counts to safe mode while it is on.
pub(crate) struct SafeModeMonitor {
    ns: Arc<Namesystem>,
}

impl SafeModeMonitor {
    pub(crate) fn new(ns: Arc<Namesystem>) -> SafeModeMonitor {
        SafeModeMonitor { ns }
    }

    pub(crate) async fn run(self, stop: watch::Receiver<bool>) {
        every(Duration::from_millis(200), stop, || async {
            if self.ns.safemode.is_on() {
                let counts = self.ns.safe_block_counts();
                self.ns.safemode.update(counts);
            }
        })
        .await
    }
}

impl Namesystem {
    /// Blocks with at least `min_replication` reported replicas, all
    /// blocks, and live datanodes (a scan of the block map: run only while
    /// in safe mode).
    pub(crate) fn safe_block_counts(&self) -> BlockCounts {
        let st = self.state.read();
        let min = self.conf.min_replication as usize;
        let (mut safe, mut total) = (0, 0);
        for (id, b) in st.blocks.iter() {
            // The last block of a file being written may legitimately have no replica yet.
            if st.inodes.get(b.inode).and_then(|i| i.file()).is_some_and(|f| f.is_writing(id)) {
                continue;
            }
            total += 1;
            if b.replicas.len() >= min {
                safe += 1;
            }
        }
        let live_datanodes = self.datanodes.lock().live_count();
        BlockCounts { safe, total, live_datanodes }
    }
}
