//! Safe mode: after a restart the namenode serves reads but refuses every
//! namespace mutation (and schedules no replication, deletion or lease
//! recovery) until enough blocks have been reported by datanodes. It leaves
//! by itself once `safemode_threshold` of the blocks have their minimum
//! replicas and `safemode_min_datanodes` are live, after
//! `safemode_extension_ms`; an administrator can enter and leave it by hand.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tusk_proto::dfs::SafeModeStatus;

/// What the safe-mode check needs to know of the block map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BlockCounts {
    /// Blocks with at least `min_replication` live replicas.
    pub(crate) safe: u64,
    pub(crate) total: u64,
    pub(crate) live_datanodes: usize,
}

#[derive(Debug)]
struct State {
    manual: bool,
    /// When the threshold was first met in the current automatic period.
    reached_at: Option<Instant>,
    counts: BlockCounts,
}

/// The namenode's safe mode.
#[derive(Debug)]
pub(crate) struct SafeMode {
    on: AtomicBool,
    /// Incremented each time safe mode is entered.
    epoch: AtomicU64,
    state: Mutex<State>,
    threshold: f64,
    min_datanodes: usize,
    extension: Duration,
}

impl SafeMode {
    /// Starts ON when there are blocks to wait for, OFF otherwise.
    pub(crate) fn new(total_blocks: u64, threshold: f64, min_datanodes: usize, extension: Duration) -> SafeMode {
        let on = total_blocks > 0 || min_datanodes > 0;
        if on {
            tracing::info!("safe mode is ON: waiting for {total_blocks} blocks to be reported");
        }
        SafeMode {
            on: AtomicBool::new(on),
            epoch: AtomicU64::new(u64::from(on)),
            state: Mutex::new(State {
                manual: false,
                reached_at: None,
                counts: BlockCounts { safe: 0, total: total_blocks, live_datanodes: 0 },
            }),
            threshold,
            min_datanodes,
            extension,
        }
    }

    /// Safe mode that is off and stays off unless entered by hand.
    pub(crate) fn off() -> SafeMode {
        SafeMode::new(0, 0.999, 0, Duration::ZERO)
    }

    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// How many times safe mode was entered: work skipped while it was on
    /// (however briefly) is made up for when this changes.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Safe blocks needed to reach the threshold.
    fn needed(&self, c: &BlockCounts) -> u64 {
        ((self.threshold * c.total as f64).ceil() as u64).min(c.total)
    }

    fn threshold_met(&self, c: &BlockCounts) -> bool {
        c.safe >= self.needed(c) && c.live_datanodes >= self.min_datanodes
    }

    /// Feeds fresh counts (while on); leaves safe mode when the threshold has
    /// held for the extension. Returns true when it just left.
    pub(crate) fn update(&self, counts: BlockCounts) -> bool {
        if !self.is_on() {
            return false;
        }
        let mut st = self.state.lock();
        st.counts = counts;
        if st.manual {
            return false;
        }
        if !self.threshold_met(&counts) {
            st.reached_at = None;
            return false;
        }
        let reached = *st.reached_at.get_or_insert_with(Instant::now);
        if reached.elapsed() < self.extension {
            return false;
        }
        self.on.store(false, Ordering::Release);
        tracing::info!(
            "leaving safe mode: {} of {} blocks reported, {} datanodes live",
            counts.safe,
            counts.total,
            counts.live_datanodes
        );
        true
    }

    /// Enters safe mode by hand; it stays on until [`leave`](Self::leave).
    pub(crate) fn enter(&self) {
        let mut st = self.state.lock();
        st.manual = true;
        st.reached_at = None;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.on.store(true, Ordering::Release);
        tracing::info!("safe mode is ON (entered by an administrator)");
    }

    /// Leaves safe mode at once.
    pub(crate) fn leave(&self) {
        let mut st = self.state.lock();
        st.manual = false;
        st.reached_at = None;
        if self.on.swap(false, Ordering::AcqRel) {
            tracing::info!("safe mode is OFF (left by an administrator)");
        }
    }

    /// The sentence given to clients whose mutation is refused.
    pub(crate) fn refusal(&self, what: &str) -> String {
        format!("namenode is in safe mode: cannot {what}. {}", self.describe())
    }

    fn describe(&self) -> String {
        let st = self.state.lock();
        let c = st.counts;
        if st.manual {
            return "Safe mode was turned on manually; use 'tusk dfsadmin safemode leave' to turn it off.".into();
        }
        let needed = self.needed(&c);
        if !self.threshold_met(&c) {
            let mut s = format!(
                "The reported blocks {} needs additional {} blocks to reach the threshold {:.4} of total blocks {}.",
                c.safe,
                needed.saturating_sub(c.safe),
                self.threshold,
                c.total
            );
            if c.live_datanodes < self.min_datanodes {
                s.push_str(&format!(
                    " The number of live datanodes {} needs an additional {} live datanodes.",
                    c.live_datanodes,
                    self.min_datanodes - c.live_datanodes
                ));
            }
            return s;
        }
        let left = st.reached_at.map(|r| self.extension.saturating_sub(r.elapsed())).unwrap_or(self.extension);
        format!(
            "The reported blocks {} has reached the threshold {:.4} of total blocks {}. Safe mode will be turned off automatically in {} seconds.",
            c.safe,
            self.threshold,
            c.total,
            left.as_secs()
        )
    }

    pub(crate) fn status(&self) -> SafeModeStatus {
        let on = self.is_on();
        let message = if on { format!("Safe mode is ON. {}", self.describe()) } else { "Safe mode is OFF.".to_string() };
        let st = self.state.lock();
        let extension_remaining_ms = match (on, st.reached_at) {
            (true, Some(r)) => self.extension.saturating_sub(r.elapsed()).as_millis() as u64,
            _ => 0,
        };
        SafeModeStatus {
            on,
            manual: st.manual,
            safe_blocks: st.counts.safe,
            total_blocks: st.counts.total,
            threshold: self.threshold,
            extension_remaining_ms,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(safe: u64, total: u64, dns: usize) -> BlockCounts {
        BlockCounts { safe, total, live_datanodes: dns }
    }

    #[test]
    fn empty_namespace_starts_off_and_manual_mode_sticks() {
        let s = SafeMode::new(0, 0.999, 0, Duration::ZERO);
        assert!(!s.is_on());
        s.enter();
        assert!(s.is_on());
        assert!(!s.update(counts(0, 0, 3)), "manual safe mode is not left automatically");
        assert!(s.status().manual);
        assert!(s.refusal("create /a").contains("manually"));
        s.leave();
        assert!(!s.is_on());
    }

    #[test]
    fn threshold_then_extension() {
        let s = SafeMode::new(1000, 0.999, 1, Duration::ZERO);
        assert!(s.is_on());
        assert!(!s.update(counts(998, 1000, 2)));
        let msg = s.status().message;
        assert!(msg.contains("needs additional 1 blocks"), "{msg}");
        assert!(!s.update(counts(999, 1000, 0)), "min datanodes not met");
        assert!(s.update(counts(999, 1000, 1)));
        assert!(!s.is_on());

        let s = SafeMode::new(10, 1.0, 0, Duration::from_secs(3600));
        assert!(!s.update(counts(10, 10, 1)));
        assert!(s.is_on(), "still in the extension");
        assert!(s.status().extension_remaining_ms > 0);
        assert!(s.status().message.contains("will be turned off automatically"));
    }
}
