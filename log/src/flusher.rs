//! The shard's group-commit flusher: one task per shard writes and syncs every log with queued
//! batches, all logs at once, and completes every waiter a flush covers.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use glommio::io::{DmaBuffer, DmaFile};

use crate::config::Durability;
use crate::fault::Faults;
use crate::partition::{PartitionLog, WRITE_BYTES_MAX};

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Flushes the logs of one shard. Owned by that shard (`!Send`); create one per executor and
/// pass it to every [`PartitionLog::open`] on that executor.
///
/// Sync-durability logs ask for a flush on every append; while one round of flushes runs, new
/// appends queue up and go together in the next round, each log with one write and one
/// fdatasync (group commit). Async-durability logs are written every `tick` or once enough
/// bytes wait, and fdatasynced on their `fsync_interval_ms`.
pub struct Flusher {
    faults: Faults,
    tick: Duration,
    queue: RefCell<Vec<Rc<PartitionLog>>>,
    logs: RefCell<Vec<Weak<PartitionLog>>>,
    signalled: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    stopped: Cell<bool>,
    /// Reusable full-size write buffers: fresh large allocations cost a page fault per 4 KiB.
    buffers: RefCell<Vec<DmaBuffer>>,
}

/// Write buffers kept for reuse by one shard.
const POOLED_BUFFERS_MAX: usize = 16;

impl Flusher {
    pub fn new(faults: Faults, tick: Duration) -> Rc<Flusher> {
        Rc::new(Flusher {
            faults,
            tick,
            queue: RefCell::new(Vec::new()),
            logs: RefCell::new(Vec::new()),
            signalled: Cell::new(false),
            waker: RefCell::new(None),
            stopped: Cell::new(false),
            buffers: RefCell::new(Vec::new()),
        })
    }

    /// A write buffer of `WRITE_BYTES_MAX` bytes, reused when one is free.
    pub(crate) fn take_buffer(&self, file: &DmaFile) -> DmaBuffer {
        self.buffers.borrow_mut().pop().unwrap_or_else(|| file.alloc_dma_buffer(WRITE_BYTES_MAX))
    }

    pub(crate) fn return_buffer(&self, buf: DmaBuffer) {
        let mut buffers = self.buffers.borrow_mut();
        if buf.len() == WRITE_BYTES_MAX && buffers.len() < POOLED_BUFFERS_MAX {
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

    pub(crate) fn request(&self, log: Rc<PartitionLog>) {
        self.queue.borrow_mut().push(log);
        self.signal();
    }

    fn signal(&self) {
        self.signalled.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Ends the task started by [`Flusher::spawn`] after its current round.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.signal();
    }

    /// Starts the flush loop on the current executor.
    pub fn spawn(self: &Rc<Self>) -> glommio::Task<()> {
        let this = self.clone();
        glommio::spawn_local(async move { this.run().await })
    }

    async fn run(&self) {
        while !self.stopped.get() {
            futures_lite::future::or(Signalled { flusher: self }, async {
                glommio::timer::sleep(self.tick).await;
            })
            .await;
            self.signalled.set(false);
            self.round().await;
        }
        self.round().await;
    }

    /// Flushes every log that asked, plus async logs that are due, concurrently.
    async fn round(&self) {
        let now = now_ms();
        let mut work: Vec<Rc<PartitionLog>> = self.queue.borrow_mut().drain(..).collect();
        for weak in self.logs.borrow().iter() {
            let Some(log) = weak.upgrade() else { continue };
            if log.config().durability != Durability::Async || log.failed().is_some() {
                continue;
            }
            if log.flush_requested_or_due(now).0 {
                work.push(log);
            }
        }
        work.sort_by_key(Rc::as_ptr);
        work.dedup_by(|a, b| Rc::ptr_eq(a, b));
        let tasks: Vec<_> = work
            .into_iter()
            .map(|log| {
                let sync = log.config().durability == Durability::Sync || log.flush_requested_or_due(now).1;
                // A failed flush marks the log failed and wakes its waiters with the error.
                glommio::spawn_local(async move { log.flush(sync, now).await })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

struct Signalled<'a> {
    flusher: &'a Flusher,
}

impl Future for Signalled<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.flusher.signalled.get() {
            return Poll::Ready(());
        }
        *self.flusher.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}
