//! How far an attempt is, and the thread that reports it to the worker as
//! `progress` control lines on stdout.

use crate::api::Reporter;
use crate::control::ControlLine;
use crate::input::InputProgress;
use std::io::Write;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Between two looks at the attempt's state.
const INTERVAL: Duration = Duration::from_millis(500);

/// Where control lines go (stdout in a real task).
pub(crate) type ControlOut = Arc<Mutex<dyn Write + Send>>;

/// Prints one control line and flushes. A worker that went away is not our
/// problem to report: it kills us (parent-death signal).
pub(crate) fn print_line(out: &ControlOut, line: &ControlLine) {
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(out, "{}", line.to_line());
    let _ = out.flush();
}

/// Phases of an attempt, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    Setup = 0,
    Map = 1,
    Sort = 2,
    Shuffle = 3,
    Reduce = 4,
}

/// Shared, lock-free view of an attempt's progress (Hadoop's weights: a
/// map with reducers is 2/3 map and 1/3 sort; a reduce is 1/3 shuffle,
/// 1/3 merge, 1/3 reduce).
#[derive(Default)]
pub(crate) struct Progress {
    phase: AtomicU8,
    map_has_sort: bool,
    input: Mutex<Option<InputProgress>>,
    pub(crate) maps_fetched: Arc<AtomicU64>,
    total_maps: u64,
    pub(crate) reduce_read: AtomicU64,
    reduce_total: AtomicU64,
}

impl Progress {
    pub(crate) fn for_map(has_reduces: bool) -> Progress {
        Progress { map_has_sort: has_reduces, ..Progress::default() }
    }

    pub(crate) fn for_reduce(num_maps: u32) -> Progress {
        Progress { total_maps: u64::from(num_maps), ..Progress::default() }
    }

    pub(crate) fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            1 => Phase::Map,
            2 => Phase::Sort,
            3 => Phase::Shuffle,
            4 => Phase::Reduce,
            _ => Phase::Setup,
        }
    }

    pub(crate) fn set_input(&self, p: InputProgress) {
        *self.input.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    pub(crate) fn set_reduce_total(&self, bytes: u64) {
        self.reduce_total.store(bytes, Ordering::Relaxed);
    }

    /// Fraction done, in `[0, 1]`.
    pub(crate) fn fraction(&self) -> f32 {
        let ratio = |done: u64, total: u64| if total == 0 { 1.0 } else { (done as f32 / total as f32).min(1.0) };
        match self.phase() {
            Phase::Setup => 0.0,
            Phase::Map => {
                let read = self.input.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0.0, |p| p.fraction());
                if self.map_has_sort { read * 2.0 / 3.0 } else { read }
            }
            Phase::Sort => 2.0 / 3.0,
            Phase::Shuffle => ratio(self.maps_fetched.load(Ordering::Relaxed), self.total_maps) / 3.0,
            Phase::Reduce => {
                2.0 / 3.0 + ratio(self.reduce_read.load(Ordering::Relaxed), self.reduce_total.load(Ordering::Relaxed)) / 3.0
            }
        }
    }

    /// Status shown when user code set none.
    fn status(&self) -> String {
        match self.phase() {
            Phase::Setup => "setup".to_string(),
            Phase::Map => "map".to_string(),
            Phase::Sort => "sort".to_string(),
            Phase::Shuffle => {
                format!("reduce > copy ({} of {} maps)", self.maps_fetched.load(Ordering::Relaxed), self.total_maps)
            }
            Phase::Reduce => "reduce > reduce".to_string(),
        }
    }
}

/// What was last reported: a new `progress` line is due only when the
/// reporter was called (counters, status, liveness ticks) or the fraction
/// done moved since.
struct ChangeWatch {
    last_ticks: u64,
    last_fraction: f32,
}

impl Default for ChangeWatch {
    fn default() -> Self {
        ChangeWatch { last_ticks: u64::MAX, last_fraction: -1.0 }
    }
}

impl ChangeWatch {
    /// The line to print now, if anything changed.
    fn poll(&mut self, reporter: &Reporter, progress: &Progress) -> Option<ControlLine> {
        let fraction = progress.fraction();
        if reporter.ticks() == self.last_ticks && (fraction - self.last_fraction).abs() < 0.001 {
            return None;
        }
        let user_status = reporter.status();
        let status = if user_status.is_empty() { progress.status() } else { user_status };
        let counters = reporter.counters();
        // Reading the reporter ticks it too: remember the count after.
        self.last_ticks = reporter.ticks();
        self.last_fraction = fraction;
        Some(ControlLine::Progress { progress: fraction, status, counters })
    }
}

/// The reporting thread; stopped (and joined) by [`stop`](Self::stop) or on drop.
pub(crate) struct ProgressThread {
    stop: Option<Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ProgressThread {
    /// Every 500 ms, prints a `progress` line if anything changed since the
    /// last one: a reporter call (counters, status, liveness ticks) or the
    /// fraction done. Silence means no progress, which is what the worker's
    /// progress timeout (`mapreduce.task.timeout`) watches for.
    pub(crate) fn start(reporter: Reporter, progress: Arc<Progress>, out: ControlOut) -> ProgressThread {
        let (tx, rx) = channel::<()>();
        let handle = std::thread::Builder::new()
            .name("tusk-progress".to_string())
            .spawn(move || {
                let mut watch = ChangeWatch::default();
                loop {
                    match rx.recv_timeout(INTERVAL) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    if let Some(line) = watch.poll(&reporter, &progress) {
                        print_line(&out, &line);
                    }
                }
            })
            .ok();
        if handle.is_none() {
            tracing::warn!("could not start the progress thread; progress will not be reported");
        }
        ProgressThread { stop: Some(tx), handle }
    }

    /// Stops the thread; no progress line is printed after this returns.
    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for ProgressThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn fractions_follow_the_phases() {
        let p = Progress::for_reduce(4);
        assert_eq!(p.fraction(), 0.0);
        p.set_phase(Phase::Shuffle);
        p.maps_fetched.store(2, Ordering::Relaxed);
        assert!((p.fraction() - 1.0 / 6.0).abs() < 1e-6);
        assert!(p.status().contains("2 of 4"));
        p.set_phase(Phase::Reduce);
        p.set_reduce_total(100);
        p.reduce_read.store(50, Ordering::Relaxed);
        assert!((p.fraction() - 5.0 / 6.0).abs() < 1e-6);
        let m = Progress::for_map(true);
        m.set_phase(Phase::Sort);
        assert!((m.fraction() - 2.0 / 3.0).abs() < 1e-6);
    }

    /// A Write that appends to a shared buffer (the task tests use it too).
    #[derive(Clone, Default)]
    pub(in crate::task) struct Shared(pub(in crate::task) Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(buf: &Shared) -> Vec<ControlLine> {
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| ControlLine::parse(l).unwrap()).collect()
    }

    #[test]
    fn lines_are_due_on_change_only() {
        let reporter = Reporter::default();
        let progress = Progress::for_map(false);
        let mut watch = ChangeWatch::default();
        reporter.incr("G", "N", 5);
        assert!(watch.poll(&reporter, &progress).is_some(), "the first look reports");
        assert!(watch.poll(&reporter, &progress).is_none(), "nothing changed");
        assert!(watch.poll(&reporter, &progress).is_none(), "still nothing changed");
        reporter.set_status("working");
        match watch.poll(&reporter, &progress) {
            Some(ControlLine::Progress { status, counters, .. }) => {
                assert_eq!(status, "working");
                assert_eq!(counters, vec![("G".to_string(), "N".to_string(), 5)]);
            }
            other => panic!("{other:?}"),
        }
        progress.set_phase(Phase::Sort);
        assert!(watch.poll(&reporter, &progress).is_some(), "the fraction moved");
    }

    #[test]
    fn the_thread_prints_what_is_due_and_stops() {
        let buf = Shared::default();
        let out: ControlOut = Arc::new(Mutex::new(buf.clone()));
        let reporter = Reporter::default();
        reporter.set_status("working");
        let t = ProgressThread::start(reporter, Arc::new(Progress::for_map(false)), out);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lines(&buf).is_empty() {
            assert!(std::time::Instant::now() < deadline, "no progress line");
            std::thread::sleep(Duration::from_millis(10));
        }
        t.stop();
        assert!(matches!(&lines(&buf)[0], ControlLine::Progress { status, .. } if status == "working"));
    }
}
