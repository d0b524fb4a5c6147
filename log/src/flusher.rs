//! The shard's flusher: group commits per log (one write and one fdatasync for everything
//! queued, completing every waiter it covers), the async-durability tick, and the shard's pool
//! of write buffers.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::config::{Durability, BLOCK_BYTES};
use crate::fault::Faults;
use crate::limits::CACHE_BUDGET_BYTES_DEFAULT;
use crate::partition::{PartitionLog, WRITES_IN_FLIGHT_DEFAULT, WRITE_BYTES_DEFAULT};
use crate::platform::{self, DmaBuffer, DmaFile, Task};
use crate::space::DiskSpace;

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    platform::wall_clock_ms()
}

/// Flushes the logs of one shard. Owned by that shard (`!Send`); create one per executor and
/// pass it to every [`PartitionLog::open`] on that executor.
///
/// Sync-durability logs ask for a flush on every append that finds none pending; while a
/// flush of a log runs, its new appends queue up and go together in its next flush, with one
/// write and one fdatasync (group commit). Logs flush independently of each other.
/// Async-durability logs are written every `tick` or once `flush_bytes_min` bytes wait, and
/// fdatasynced every `fsync_interval_ms`.
pub struct Flusher {
    faults: Faults,
    tick: Duration,
    logs: RefCell<Vec<Weak<PartitionLog>>>,
    stopped: Cell<bool>,
    /// Reusable full-size write buffers: fresh large allocations cost a page fault per 4 KiB.
    buffers: RefCell<Vec<DmaBuffer>>,
    write_bytes: Cell<usize>,
    writes_in_flight: Cell<usize>,
    stats: Rc<crate::stats::LogStats>,
    /// Bytes all caches of the shard may hold together (beyond batches not yet written).
    cache_budget_bytes: Cell<u64>,
    /// Where the next cache-budget sweep starts in `logs`, so no log is always the first victim.
    sweep_from: Cell<usize>,
    /// The data directory's free space; logs opened here take it at open.
    space: RefCell<Rc<DiskSpace>>,
}

/// Write buffers kept for reuse by one shard.
const POOLED_BUFFERS_MAX: usize = 16;

impl Flusher {
    pub fn new(faults: Faults, tick: Duration) -> Rc<Flusher> {
        Rc::new(Flusher {
            faults,
            tick,
            logs: RefCell::new(Vec::new()),
            stopped: Cell::new(false),
            buffers: RefCell::new(Vec::new()),
            write_bytes: Cell::new(WRITE_BYTES_DEFAULT),
            writes_in_flight: Cell::new(WRITES_IN_FLIGHT_DEFAULT),
            stats: Rc::new(crate::stats::LogStats::default()),
            cache_budget_bytes: Cell::new(CACHE_BUDGET_BYTES_DEFAULT),
            sweep_from: Cell::new(0),
            space: RefCell::new(Rc::new(DiskSpace::unlimited())),
        })
    }

    /// Watches free space with `space` (before any log is opened: logs keep the one they found).
    pub fn set_space(&self, space: Rc<DiskSpace>) {
        *self.space.borrow_mut() = space;
    }

    /// The free space of the data directory, as this shard sees it.
    pub fn space(&self) -> Rc<DiskSpace> {
        self.space.borrow().clone()
    }

    /// Sets the cache budget of the shard's logs together.
    pub fn set_cache_budget(&self, bytes: u64) {
        self.cache_budget_bytes.set(bytes);
    }

    pub fn cache_budget(&self) -> u64 {
        self.cache_budget_bytes.get()
    }

    /// When the shard's caches hold more than the budget, brings them just under it (a 64th of
    /// it below, so each sweep frees a little, often: freeing tens of MiB of batches at once
    /// stalls the shard for tens of ms). The logs share the budget max-min fairly: the
    /// busiest give back their oldest written batches down to a common level, logs holding
    /// less than that keep theirs, so a busy partition keeps as long a tail as the budget
    /// allows and a consumer a little behind still reads from memory. If batches not yet
    /// written keep the total above the budget, logs are then emptied of what is written, in
    /// turn. Logs that went quiet are never flushed again, so their caches shrink only here.
    pub(crate) fn enforce_cache_budget(&self) {
        let budget = self.cache_budget_bytes.get();
        if self.stats.cache_bytes.get() <= budget {
            return;
        }
        let target = budget - budget / 64;
        let logs: Vec<Rc<PartitionLog>> = self.logs.borrow().iter().filter_map(Weak::upgrade).collect();
        let sizes: Vec<u64> = logs.iter().map(|l| l.cache_bytes()).collect();
        let level = water_level(&sizes, target);
        for (log, size) in logs.iter().zip(sizes) {
            if size > level {
                log.evict_cache(level);
            }
        }
        let start = self.sweep_from.get() % logs.len().max(1);
        for i in 0..logs.len() {
            if self.stats.cache_bytes.get() <= budget {
                break;
            }
            let log = &logs[(start + i) % logs.len()];
            log.evict_cache(0);
            self.sweep_from.set(start + i + 1);
        }
    }

    /// Latencies and cache counters of the logs flushed here.
    pub fn stats(&self) -> &Rc<crate::stats::LogStats> {
        &self.stats
    }

    /// Sets the size of flush write chunks (rounded to 4 KiB, at least 4 KiB) and how many of
    /// one flush may be outstanding (at least 1). Buffers pooled at the old size are dropped.
    pub fn set_write_shape(&self, write_bytes: usize, writes_in_flight: usize) {
        let block = BLOCK_BYTES as usize;
        self.write_bytes.set((write_bytes / block * block).max(block));
        self.writes_in_flight.set(writes_in_flight.max(1));
        self.buffers.borrow_mut().clear();
    }

    /// Write chunk size and chunk writes in flight per flush.
    pub fn write_shape(&self) -> (usize, usize) {
        (self.write_bytes.get(), self.writes_in_flight.get())
    }

    /// A write buffer of the chunk size, reused when one is free.
    pub(crate) fn take_buffer(&self, file: &DmaFile) -> DmaBuffer {
        self.buffers.borrow_mut().pop().unwrap_or_else(|| file.alloc_dma_buffer(self.write_bytes.get()))
    }

    pub(crate) fn return_buffer(&self, buf: DmaBuffer) {
        let mut buffers = self.buffers.borrow_mut();
        if buf.len() == self.write_bytes.get() && buffers.len() < POOLED_BUFFERS_MAX {
            buffers.push(buf);
        }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub(crate) fn register(&self, log: &Rc<PartitionLog>) {
        let mut logs = self.logs.borrow_mut();
        logs.retain(|l| l.strong_count() > 0);
        logs.push(Rc::downgrade(log));
    }

    /// Starts a flush of `log` now. Each log flushes on its own, so a slow fdatasync of one
    /// partition never delays another's commit; flushes of one log queue on its flush lock,
    /// and appends made while one runs go together in the next (group commit).
    pub(crate) fn request(&self, log: Rc<PartitionLog>) {
        let now = now_ms();
        let sync = log.config().durability == Durability::Sync || log.flush_requested_or_due(now).1;
        // A failed flush marks the log failed and wakes its waiters with the error.
        platform::spawn_local(async move {
            let _ = log.flush(sync, now).await;
        })
        .detach();
    }

    /// Ends the task started by [`Flusher::spawn`] within one tick.
    pub fn stop(&self) {
        self.stopped.set(true);
    }

    /// Starts the async-durability tick on the current executor.
    pub fn spawn(self: &Rc<Self>) -> Task<()> {
        let this = self.clone();
        platform::spawn_local(async move { this.run().await })
    }

    async fn run(&self) {
        while !self.stopped.get() {
            platform::sleep(self.tick).await;
            self.tick_async_logs().await;
        }
    }

    /// Writes out async-durability logs with queued batches, and syncs those that are due;
    /// tries again the logs that found no space, once the file system has room for them.
    async fn tick_async_logs(&self) {
        let now = now_ms();
        let space = self.space();
        let due: Vec<Rc<PartitionLog>> = self
            .logs
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|log| log.failed().is_none())
            .filter(|log| match log.is_space_stalled() {
                true => space.may_retry(log.config().space_priority),
                false => log.config().durability == Durability::Async && log.flush_requested_or_due(now).0,
            })
            .collect();
        let tasks: Vec<_> = due
            .into_iter()
            .map(|log| {
                let sync = log.config().durability == Durability::Sync || log.flush_requested_or_due(now).1;
                platform::spawn_local(async move { log.flush(sync, now).await })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// The largest level L such that the sizes, each cut to L, sum to at most `target` (max-min
/// fair shares of `target`); `u64::MAX` when they fit whole.
fn water_level(sizes: &[u64], target: u64) -> u64 {
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    let mut rest = target;
    for (i, &size) in sorted.iter().enumerate() {
        let left = (sorted.len() - i) as u64;
        if size.saturating_mul(left) > rest {
            return rest / left;
        }
        rest -= size;
    }
    u64::MAX
}

#[cfg(test)]
mod tests {
    use super::water_level;

    #[test]
    fn the_water_level_cuts_only_the_largest_caches() {
        // 32 logs, 16 idle: the busy ones share the whole target, not half of it.
        let mut sizes = vec![0u64; 16];
        sizes.extend([4 << 20; 16]);
        assert_eq!(water_level(&sizes, 56 << 20), (56 << 20) / 16);
        // Small caches keep theirs; the big one takes the rest.
        assert_eq!(water_level(&[10, 20, 1000], 100), 70);
        assert_eq!(water_level(&[10, 20, 30], 100), u64::MAX);
        assert_eq!(water_level(&[], 100), u64::MAX);
        assert_eq!(water_level(&[50, 50], 60), 30);
    }
}
