//! Cross-shard messages with real backpressure. Every (source, destination, class) has its own
//! bounded queue, and the destination runs at most a fixed number of handlers per queue at once:
//! when they are all busy, the queue fills and its senders wait (Seastar's idea of service
//! groups). One source flooding a shard therefore slows that source only, parked work (a long
//! poll, a group join) never holds up produce and fetch, and control messages (metadata, topic
//! changes, shutdown) never wait behind either. Replies do not travel here at all: each request
//! carries its own one-message reply channel, so a reply is never queued behind a request.
//!
//! Deadlock freedom rests on one rule, kept by the handlers: a handler of the `Data` class
//! never waits for another shard, and a `Parked` handler waits only for local events or
//! timeouts. Only `Control` handlers (the controller) wait for other shards, and only for their
//! `Control` queues, which no other class can fill.

use std::future::Future;
use std::rc::Rc;

use glommio::sync::Semaphore;

/// Kinds of cross-shard work, each with its own queues and handler slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Produce, fetch and offset reads: short, and waiting for nothing but the local disk.
    Data = 0,
    /// Work that may wait long for a local event: parked fetches, group joins.
    Parked = 1,
    /// Metadata, topic changes, shutdown.
    Control = 2,
}

pub const CLASSES: usize = 3;

impl Class {
    /// Handlers of one queue running at once.
    fn concurrency(self) -> u64 {
        match self {
            Class::Data => crate::limits::CROSS_SHARD_DATA_HANDLERS_MAX,
            Class::Parked => crate::limits::CROSS_SHARD_PARKED_HANDLERS_MAX,
            Class::Control => crate::limits::CROSS_SHARD_CONTROL_HANDLERS_MAX,
        }
    }
}

/// A message that says which class it belongs to.
pub trait Classified {
    fn class(&self) -> Class;
}

/// What one source holds to reach every shard: a sender per destination and class.
#[derive(Debug)]
pub struct Outbox<T> {
    to: Vec<[flume::Sender<T>; CLASSES]>,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Outbox { to: self.to.clone() }
    }
}

impl<T: Classified> Outbox<T> {
    /// Queues `msg` for `shard`, waiting while that queue is full. Gives the message back if
    /// the shard has stopped.
    pub async fn send(&self, shard: usize, msg: T) -> Result<(), T> {
        self.to[shard][msg.class() as usize].send_async(msg).await.map_err(|e| e.into_inner())
    }

    /// The same, blocking: for threads that are not shards (start-up, shutdown, the admin
    /// endpoint), with a time limit.
    pub fn send_blocking(&self, shard: usize, msg: T, timeout: std::time::Duration) -> Result<(), T> {
        let class = msg.class() as usize;
        self.to[shard][class].send_timeout(msg, timeout).map_err(|e| e.into_inner())
    }

    pub fn shards(&self) -> usize {
        self.to.len()
    }
}

/// What one shard receives: a receiver per source and class. Sources are the shards, then one
/// for the broker's other threads.
#[derive(Debug)]
pub struct Inbox<T> {
    from: Vec<[flume::Receiver<T>; CLASSES]>,
}

impl<T> Clone for Inbox<T> {
    fn clone(&self) -> Self {
        Inbox { from: self.from.clone() }
    }
}

/// Builds the queues of `shards` shards: one outbox per source (each shard, then the outbox
/// of the broker's other threads, last) and one inbox per shard. Each queue holds `capacity`.
pub fn mailboxes<T>(shards: usize, capacity: usize) -> (Vec<Outbox<T>>, Vec<Inbox<T>>) {
    let sources = shards + 1;
    let mut outboxes: Vec<Outbox<T>> = (0..sources).map(|_| Outbox { to: Vec::with_capacity(shards) }).collect();
    let mut inboxes: Vec<Inbox<T>> = (0..shards).map(|_| Inbox { from: Vec::with_capacity(sources) }).collect();
    for inbox in inboxes.iter_mut() {
        for outbox in outboxes.iter_mut() {
            let (tx, rx): (Vec<_>, Vec<_>) = (0..CLASSES).map(|_| flume::bounded(capacity)).unzip();
            outbox.to.push(tx.try_into().unwrap_or_else(|_| unreachable!("CLASSES senders")));
            inbox.from.push(rx.try_into().unwrap_or_else(|_| unreachable!("CLASSES receivers")));
        }
    }
    (outboxes, inboxes)
}

impl<T: Classified + 'static> Inbox<T> {
    /// Messages waiting in every queue of this shard.
    pub fn depth(&self) -> usize {
        self.from.iter().flat_map(|queues| queues.iter()).map(flume::Receiver::len).sum()
    }

    /// Serves every queue on the current executor until the returned tasks are dropped or every
    /// sender is gone: one task per queue takes a message once one of its handler slots is free
    /// and runs `handle` on it in a task of its own.
    pub fn serve<F, Fut>(&self, handle: F) -> Vec<glommio::Task<()>>
    where
        F: Fn(T) -> Fut + Clone + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let mut pumps = Vec::new();
        for queues in &self.from {
            for (class, rx) in queues.iter().enumerate() {
                let rx = rx.clone();
                let handle = handle.clone();
                let concurrency = [Class::Data, Class::Parked, Class::Control][class].concurrency();
                let slots = Rc::new(Semaphore::new(concurrency));
                pumps.push(glommio::spawn_local(async move {
                    loop {
                        let Ok(slot) = slots.acquire_static_permit(1).await else { break };
                        let Ok(msg) = rx.recv_async().await else { break };
                        let work = handle(msg);
                        glommio::spawn_local(async move {
                            work.await;
                            drop(slot);
                        })
                        .detach();
                    }
                }));
            }
        }
        pumps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A request to do some work and then, for `Data`, ask the next shard for a control step:
    /// the pattern of the broker (data work, controller steps waiting on other shards).
    enum Msg {
        Work { hops_left: u32, done: flume::Sender<()> },
        Control { done: flume::Sender<()> },
        Park { done: flume::Sender<()> },
    }

    impl Classified for Msg {
        fn class(&self) -> Class {
            match self {
                Msg::Work { .. } => Class::Data,
                Msg::Control { .. } => Class::Control,
                Msg::Park { .. } => Class::Parked,
            }
        }
    }

    #[test]
    fn every_shard_flooding_every_other_shard_finishes() {
        const SHARDS: usize = 3;
        const MESSAGES_PER_PAIR: usize = 3000;
        let (outboxes, inboxes) = mailboxes::<Msg>(SHARDS, 16);
        let handled = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for (id, inbox) in inboxes.into_iter().enumerate() {
            let outbox = outboxes[id].clone();
            let handled = handled.clone();
            let finished = finished.clone();
            let builder = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound).name(&format!("mb-{id}"));
            threads.push(
                builder
                    .spawn(move || async move {
                        let next = (id + 1) % SHARDS;
                        let handler_outbox = outbox.clone();
                        let handler_handled = handled.clone();
                        let pumps = inbox.serve(move |msg: Msg| {
                            let outbox = handler_outbox.clone();
                            let handled = handler_handled.clone();
                            async move {
                                handled.fetch_add(1, Ordering::Relaxed);
                                match msg {
                                    Msg::Work { hops_left, done } => {
                                        if hops_left > 0 {
                                            // Data work hands a control step on and returns at once.
                                            let _ = outbox.send(next, Msg::Control { done }).await;
                                        } else {
                                            let _ = done.send_async(()).await;
                                        }
                                    }
                                    Msg::Control { done } => {
                                        let _ = done.send_async(()).await;
                                    }
                                    Msg::Park { done } => {
                                        glommio::timer::sleep(Duration::from_millis(20)).await;
                                        let _ = done.send_async(()).await;
                                    }
                                }
                            }
                        });
                        // Flood every shard, this one included, and wait for every answer.
                        let (done_tx, done_rx) = flume::unbounded();
                        let mut sent = 0;
                        for i in 0..MESSAGES_PER_PAIR {
                            for target in 0..SHARDS {
                                let msg = match i % 100 {
                                    0 => Msg::Park { done: done_tx.clone() },
                                    n => Msg::Work { hops_left: (n % 2) as u32, done: done_tx.clone() },
                                };
                                outbox.send(target, msg).await.map_err(|_| "a shard stopped").unwrap();
                                sent += 1;
                            }
                        }
                        for _ in 0..sent {
                            done_rx.recv_async().await.unwrap();
                        }
                        // Keep serving until every shard has its answers.
                        finished.fetch_add(1, Ordering::AcqRel);
                        while finished.load(Ordering::Acquire) < SHARDS {
                            glommio::timer::sleep(Duration::from_millis(5)).await;
                        }
                        drop(pumps);
                    })
                    .unwrap(),
            );
        }
        let started = std::time::Instant::now();
        for t in threads {
            t.join().unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(60));
        // Every message once, and a control step for every Work with a hop (odd i % 100).
        let sent = SHARDS * SHARDS * MESSAGES_PER_PAIR;
        let hops = SHARDS * SHARDS * (MESSAGES_PER_PAIR / 100) * 50;
        assert_eq!(handled.load(Ordering::Relaxed), sent + hops);
    }
}
