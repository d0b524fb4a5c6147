//! Counters and latency histograms kept in plain cells: one shard owns them (no atomics, no
//! locks on the data path) and the broker's metrics scrape copies them out.

use std::cell::Cell;
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds; one more bucket counts the rest.
pub const LATENCY_BOUNDS_US: [u64; 18] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000,
];
const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// A latency histogram with fixed buckets (`LATENCY_BOUNDS_US`).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    counts: [Cell<u64>; BUCKETS],
    sum_us: Cell<u64>,
}

/// A copy of a histogram that can cross threads: per-bucket (not cumulative) counts, the last
/// one above every bound, and the sum of the observations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub counts: Vec<u64>,
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// (upper bound in seconds, count) per bucket, the last bound `f64::MAX` (+Inf).
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        let bounds = LATENCY_BOUNDS_US.iter().map(|&us| us as f64 / 1e6).chain(std::iter::once(f64::MAX));
        bounds.zip(self.counts.iter().copied()).collect()
    }

    /// Adds another snapshot's observations.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        self.sum_seconds += other.sum_seconds;
    }
}

impl LatencyHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BOUNDS_US.partition_point(|&bound| bound < us);
        self.counts[i].set(self.counts[i].get() + 1);
        self.sum_us.set(self.sum_us.get().saturating_add(us));
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self.counts.iter().map(Cell::get).collect(),
            sum_seconds: self.sum_us.get() as f64 / 1e6,
        }
    }
}

/// What the logs of one shard report: group-commit and fdatasync latencies, and whether reads
/// were served from the batch cache. Shared by a [`crate::Flusher`] and the logs opened with it.
#[derive(Debug)]
pub struct LogStats {
    /// Recording on (the default) or off, to measure what it costs.
    pub enabled: Cell<bool>,
    /// One group commit of one log: write and, under sync durability, fdatasync.
    pub flush_latency: LatencyHistogram,
    /// One fdatasync of a segment file.
    pub fdatasync_latency: LatencyHistogram,
    /// Reads answered from the batch cache / from disk.
    pub cache_hits: Cell<u64>,
    pub cache_misses: Cell<u64>,
    /// Bytes of batches held in the caches of every log of the shard (always counted: the
    /// shard's cache budget is enforced with it).
    pub cache_bytes: Cell<u64>,
    /// Idempotent producers forgotten because a partition reached its producer cap.
    pub producers_evicted: Cell<u64>,
    /// Flushes that found no space on the file system (their batches were taken back, or
    /// kept queued under async durability).
    pub flushes_out_of_space: Cell<u64>,
}

impl Default for LogStats {
    fn default() -> Self {
        LogStats {
            enabled: Cell::new(true),
            flush_latency: LatencyHistogram::default(),
            fdatasync_latency: LatencyHistogram::default(),
            cache_hits: Cell::new(0),
            cache_misses: Cell::new(0),
            cache_bytes: Cell::new(0),
            producers_evicted: Cell::new(0),
            flushes_out_of_space: Cell::new(0),
        }
    }
}

impl LogStats {
    pub(crate) fn observe(&self, histogram: &LatencyHistogram, started: crate::platform::Instant) {
        if self.enabled.get() {
            histogram.observe(started.elapsed());
        }
    }

    pub(crate) fn count(&self, counter: &Cell<u64>) {
        if self.enabled.get() {
            counter.set(counter.get() + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_merge() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(51));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count(), 3);
        let b = s.buckets();
        assert_eq!(b[0], (50e-6, 1));
        assert_eq!(b[1], (100e-6, 1));
        assert_eq!(b.last(), Some(&(f64::MAX, 1)));
        let mut m = s.clone();
        m.merge(&s);
        assert_eq!(m.count(), 6);
        assert!((m.sum_seconds - 2.0 * s.sum_seconds).abs() < 1e-9);
    }
}
