//! Keeps this client's leases alive while it has files open for writing.
//!
//! The namenode expires a lease that is not renewed (then another client may
//! recover the file). One background task per client renews every
//! [`RENEW_INTERVAL`] while at least one [`LeaseGuard`] is alive; it stops by
//! itself when the last guard is dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tusk_proto::dfs::RenewLeaseRequest;

use crate::namenode_rpc::NamenodeRpc;

/// How often leases are renewed.
pub(crate) const RENEW_INTERVAL: Duration = Duration::from_secs(20);

#[derive(Default)]
struct State {
    open_writers: usize,
    task_running: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the task when the last writer goes away.
    idle: Notify,
}

/// The per-client renewer; writers hold a [`LeaseGuard`] from [`LeaseRenewer::register`].
pub(crate) struct LeaseRenewer {
    shared: Arc<Shared>,
    rpc: NamenodeRpc,
}

/// Proof that a writer is open; dropping it lets the renewer stop.
pub(crate) struct LeaseGuard {
    shared: Arc<Shared>,
}

impl LeaseRenewer {
    pub(crate) fn new(rpc: NamenodeRpc) -> LeaseRenewer {
        LeaseRenewer { shared: Arc::default(), rpc }
    }

    /// Counts one more open writer, starting the renewal task if needed.
    /// Must be called inside a tokio runtime.
    pub(crate) fn register(&self) -> LeaseGuard {
        let start = {
            let mut st = lock(&self.shared.state);
            st.open_writers += 1;
            let start = !st.task_running;
            st.task_running = true;
            start
        };
        if start {
            tokio::spawn(renew_loop(Arc::downgrade(&self.shared), self.rpc.clone()));
        }
        LeaseGuard { shared: self.shared.clone() }
    }

    /// Number of writers currently open.
    #[cfg(test)]
    pub(crate) fn open_writers(&self) -> usize {
        lock(&self.shared.state).open_writers
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let idle = {
            let mut st = lock(&self.shared.state);
            st.open_writers = st.open_writers.saturating_sub(1);
            st.open_writers == 0
        };
        if idle {
            self.shared.idle.notify_waiters();
        }
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // The state is two plain counters; a panic elsewhere cannot leave it torn.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn renew_loop(shared: std::sync::Weak<Shared>, rpc: NamenodeRpc) {
    loop {
        {
            let Some(s) = shared.upgrade() else { return };
            let idle = s.idle.notified();
            tokio::pin!(idle);
            // Register interest before checking, so a drop in between is not missed.
            idle.as_mut().enable();
            if should_stop(&s) {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(RENEW_INTERVAL) => {}
                _ = idle => {}
            }
        }
        let Some(s) = shared.upgrade() else { return };
        if should_stop(&s) {
            return;
        }
        let req = RenewLeaseRequest { caller: rpc.caller() };
        if let Err(status) = rpc.stub().renew_lease(req).await {
            tracing::warn!("lease renewal for {} failed: {}", rpc.caller_ref().client_name, rpc.error(status));
        }
    }
}

/// True (and marks the task stopped) when no writer is open.
fn should_stop(s: &Shared) -> bool {
    let mut st = lock(&s.state);
    if st.open_writers == 0 {
        st.task_running = false;
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use tusk_proto::dfs::Caller;

    #[tokio::test]
    async fn the_task_stops_when_the_last_writer_closes() {
        let rpc = NamenodeRpc::new(&ClientConfig::new("127.0.0.1:1"), Caller::default()).unwrap();
        let r = LeaseRenewer::new(rpc);
        let a = r.register();
        let b = r.register();
        assert_eq!(r.open_writers(), 2);
        assert!(lock(&r.shared.state).task_running);
        drop(a);
        drop(b);
        assert_eq!(r.open_writers(), 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while lock(&r.shared.state).task_running {
            assert!(tokio::time::Instant::now() < deadline, "renewer did not stop");
            tokio::task::yield_now().await;
        }
        // A new writer restarts it.
        let _c = r.register();
        assert!(lock(&r.shared.state).task_running);
    }
}
