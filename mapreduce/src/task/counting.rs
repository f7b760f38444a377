//! Counting wrappers around what user code reads and writes. Counts are
//! kept locally and added to the [`Reporter`] in batches (it takes a lock),
//! and at the end.

use crate::api::{Emit, GroupedReader, Reporter, counters};
use crate::error::Result;
use crate::mapoutput::MergedGroups;
use crate::task::progress::Progress;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Records between two reporter updates.
const BATCH: u64 = 4096;

/// An [`Emit`] counting records (and, if named, bytes) into two counters.
pub(crate) struct CountingEmit<'a, E: Emit> {
    pub(crate) inner: &'a mut E,
    reporter: Reporter,
    records_counter: &'static str,
    bytes_counter: Option<&'static str>,
    records: u64,
    bytes: u64,
}

impl<'a, E: Emit> CountingEmit<'a, E> {
    pub(crate) fn new(
        inner: &'a mut E,
        reporter: Reporter,
        records_counter: &'static str,
        bytes_counter: Option<&'static str>,
    ) -> Self {
        CountingEmit { inner, reporter, records_counter, bytes_counter, records: 0, bytes: 0 }
    }

    fn flush(&mut self) {
        if self.records > 0 {
            self.reporter.incr(counters::TASK, self.records_counter, self.records as i64);
            if let Some(b) = self.bytes_counter {
                self.reporter.incr(counters::TASK, b, self.bytes as i64);
            }
        }
        self.records = 0;
        self.bytes = 0;
    }
}

impl<E: Emit> Emit for CountingEmit<'_, E> {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.records += 1;
        self.bytes += (key.len() + value.len()) as u64;
        if self.records >= BATCH {
            self.flush();
        }
        self.inner.emit(key, value)
    }
}

impl<E: Emit> Drop for CountingEmit<'_, E> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The reducer's input: counts REDUCE_INPUT_GROUPS / _RECORDS and
/// publishes how many bytes of the merge were read (progress).
pub(crate) struct CountedGroups {
    inner: MergedGroups,
    reporter: Reporter,
    progress: Arc<Progress>,
    groups: u64,
    records: u64,
}

impl CountedGroups {
    pub(crate) fn new(inner: MergedGroups, reporter: Reporter, progress: Arc<Progress>) -> CountedGroups {
        CountedGroups { inner, reporter, progress, groups: 0, records: 0 }
    }

    fn flush(&mut self) {
        let (g, r) = (self.inner.groups(), self.inner.records());
        if g > self.groups {
            self.reporter.incr(counters::TASK, counters::REDUCE_INPUT_GROUPS, (g - self.groups) as i64);
        }
        if r > self.records {
            self.reporter.incr(counters::TASK, counters::REDUCE_INPUT_RECORDS, (r - self.records) as i64);
        }
        self.groups = g;
        self.records = r;
        self.progress.reduce_read.store(self.inner.bytes_read(), Ordering::Relaxed);
    }
}

impl GroupedReader for CountedGroups {
    fn next_key(&mut self) -> Result<bool> {
        let more = self.inner.next_key()?;
        if !more || self.inner.groups() - self.groups >= BATCH {
            self.flush();
        }
        Ok(more)
    }

    fn key(&self) -> &[u8] {
        self.inner.key()
    }

    fn next_value(&mut self) -> Result<Option<&[u8]>> {
        if self.inner.records() - self.records >= BATCH {
            self.flush();
        }
        self.inner.next_value()
    }
}

impl Drop for CountedGroups {
    fn drop(&mut self) {
        self.flush();
    }
}
