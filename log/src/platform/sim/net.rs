//! A simulated network of numbered nodes exchanging messages: each message takes a random
//! delay, and may be dropped or delivered twice; links can be cut in either direction
//! (partitions) and healed. Every choice comes from the simulation's seed.
//!
//! Two kinds of links. Datagram links reorder freely and lose single messages. Connection
//! links behave like the TCP connections Kafka clients use: messages arrive in the order sent,
//! and a drop is a broken connection that loses everything in flight on it (the sender
//! notices by its timeouts and sends again, in order, as a client does after reconnecting).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::executor::{sleep, spawn_local, with_rng};

/// How the network misbehaves.
#[derive(Debug, Clone, Copy)]
pub struct NetFaults {
    /// One-way delay, microseconds, uniform in this range.
    pub delay_us: (u64, u64),
    pub drop: f64,
    pub duplicate: f64,
    /// Connection links (ordered; a drop breaks the connection) instead of datagrams.
    pub ordered: bool,
}

impl Default for NetFaults {
    fn default() -> Self {
        NetFaults { delay_us: (20, 2000), drop: 0.0, duplicate: 0.0, ordered: true }
    }
}

struct Inbox<M> {
    queue: VecDeque<(u32, M)>,
    waiter: Option<Waker>,
}

struct Inner<M> {
    inboxes: Vec<Inbox<M>>,
    /// Cut links, (from, to).
    cut: HashSet<(u32, u32)>,
    faults: NetFaults,
    /// Per link: connection generation (bumped by a break) and the last delivery time (ns).
    links: HashMap<(u32, u32), (u64, u64)>,
    sent: u64,
    dropped: u64,
    duplicated: u64,
}

/// A network of `nodes` nodes carrying messages of type `M`.
pub struct Network<M> {
    inner: Rc<RefCell<Inner<M>>>,
}

impl<M> Clone for Network<M> {
    fn clone(&self) -> Self {
        Network { inner: self.inner.clone() }
    }
}

impl<M: Clone + 'static> Network<M> {
    pub fn new(nodes: u32, faults: NetFaults) -> Self {
        let inboxes = (0..nodes).map(|_| Inbox { queue: VecDeque::new(), waiter: None }).collect();
        Network {
            inner: Rc::new(RefCell::new(Inner {
                inboxes,
                cut: HashSet::new(),
                faults,
                links: HashMap::new(),
                sent: 0,
                dropped: 0,
                duplicated: 0,
            })),
        }
    }

    /// Sends `message`; it arrives later, never, or twice, as the faults decide.
    pub fn send(&self, from: u32, to: u32, message: M) {
        let (copies, faults) = {
            let mut inner = self.inner.borrow_mut();
            inner.sent += 1;
            let faults = inner.faults;
            let copies = if inner.cut.contains(&(from, to)) || with_rng(|r| r.chance(faults.drop)) {
                inner.dropped += 1;
                // A broken connection loses what is in flight on it too.
                inner.links.entry((from, to)).or_default().0 += 1;
                0
            } else if with_rng(|r| r.chance(faults.duplicate)) {
                inner.duplicated += 1;
                2
            } else {
                1
            };
            (copies, faults)
        };
        for _ in 0..copies {
            let now = super::executor::now_nanos();
            let mut delay = with_rng(|r| r.between(faults.delay_us.0, faults.delay_us.1)) * 1000;
            let generation = {
                let mut inner = self.inner.borrow_mut();
                let link = inner.links.entry((from, to)).or_default();
                if faults.ordered {
                    // Never before the message sent ahead of it.
                    delay = delay.max(link.1.saturating_sub(now));
                    link.1 = now + delay;
                }
                link.0
            };
            let net = self.clone();
            let message = message.clone();
            spawn_local(async move {
                sleep(Duration::from_nanos(delay)).await;
                net.deliver(from, to, generation, message);
            })
            .detach();
        }
    }

    fn deliver(&self, from: u32, to: u32, generation: u64, message: M) {
        let waker = {
            let mut inner = self.inner.borrow_mut();
            // A link cut (or a connection broken) while the message was in flight loses it.
            let broken = inner.faults.ordered && inner.links.get(&(from, to)).is_some_and(|l| l.0 != generation);
            if inner.cut.contains(&(from, to)) || broken {
                inner.dropped += 1;
                return;
            }
            let inbox = &mut inner.inboxes[to as usize];
            inbox.queue.push_back((from, message));
            inbox.waiter.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The next message for `node`, with its sender.
    pub fn recv(&self, node: u32) -> Recv<M> {
        Recv { net: self.clone(), node }
    }

    /// Cuts the link from `a` to `b` and back.
    pub fn partition(&self, a: u32, b: u32) {
        let mut inner = self.inner.borrow_mut();
        inner.cut.insert((a, b));
        inner.cut.insert((b, a));
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.inner.borrow_mut().cut.clear();
    }

    /// Forgets everything queued for `node` (it crashed).
    pub fn clear_inbox(&self, node: u32) {
        let mut inner = self.inner.borrow_mut();
        inner.inboxes[node as usize].queue.clear();
        inner.inboxes[node as usize].waiter = None;
    }

    /// How many times the connection from `from` to `to` broke so far.
    pub fn generation(&self, from: u32, to: u32) -> u64 {
        self.inner.borrow().links.get(&(from, to)).map_or(0, |l| l.0)
    }

    /// Messages sent, dropped and duplicated so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        let inner = self.inner.borrow();
        (inner.sent, inner.dropped, inner.duplicated)
    }
}

pub struct Recv<M> {
    net: Network<M>,
    node: u32,
}

impl<M> Future for Recv<M> {
    type Output = (u32, M);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(u32, M)> {
        let mut inner = self.net.inner.borrow_mut();
        let inbox = &mut inner.inboxes[self.node as usize];
        match inbox.queue.pop_front() {
            Some(m) => Poll::Ready(m),
            None => {
                inbox.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
