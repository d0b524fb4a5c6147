//! The channels and the mutex openraft's runtime asks for (bounded mpsc, oneshot, watch, an
//! async mutex), single-threaded and `Rc`-based. Waiters are woken in the order they started
//! waiting, so on the simulation's executor a run depends on its seed alone (tokio's watch,
//! for one, picks among its notifiers at random).
//!
//! Owned by the executor thread that created them (`!Send`), like everything of the quorum.

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::{poll_fn, Future};
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use openraft_rt::mpsc::{MpscReceiver, MpscSender, MpscWeakSender, SendError, TryRecvError};
use openraft_rt::oneshot::OneshotSender;
use openraft_rt::watch::{self, RecvError, WatchReceiver, WatchSender};
use openraft_rt::{OptionalSend, OptionalSync};

/// Wakers keyed by the waiter's ticket: a waiter polled again replaces its waker rather than
/// adding one, and wakes go out in ticket (arrival) order.
#[derive(Default)]
struct Waiters {
    next_ticket: u64,
    wakers: BTreeMap<u64, Waker>,
}

impl Waiters {
    fn ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    fn register(&mut self, ticket: u64, waker: &Waker) {
        self.wakers.insert(ticket, waker.clone());
    }

    fn forget(&mut self, ticket: u64) {
        self.wakers.remove(&ticket);
    }

    fn wake_all(&mut self) {
        for (_, w) in std::mem::take(&mut self.wakers) {
            w.wake();
        }
    }
}

// ------------------------------------------------------------------------------------ mpsc

/// openraft's bounded multi-producer, single-consumer channel.
pub struct Mpsc;

struct Channel<T> {
    queue: VecDeque<T>,
    capacity: usize,
    receiver: Option<Waker>,
    /// Senders waiting for room.
    senders_waiting: Waiters,
    senders: usize,
    receiver_alive: bool,
}

pub struct Sender<T>(Rc<RefCell<Channel<T>>>);
pub struct Receiver<T>(Rc<RefCell<Channel<T>>>);
pub struct WeakSender<T>(Weak<RefCell<Channel<T>>>);

impl openraft_rt::Mpsc for Mpsc {
    type Sender<T: OptionalSend> = Sender<T>;
    type Receiver<T: OptionalSend> = Receiver<T>;
    type WeakSender<T: OptionalSend> = WeakSender<T>;

    fn channel<T: OptionalSend>(buffer: usize) -> (Sender<T>, Receiver<T>) {
        let channel = Rc::new(RefCell::new(Channel {
            queue: VecDeque::new(),
            capacity: buffer.max(1),
            receiver: None,
            senders_waiting: Waiters::default(),
            senders: 1,
            receiver_alive: true,
        }));
        (Sender(channel.clone()), Receiver(channel))
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.borrow_mut().senders += 1;
        Sender(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut c = self.0.borrow_mut();
            c.senders -= 1;
            if c.senders == 0 {
                c.receiver.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Clone for WeakSender<T> {
    fn clone(&self) -> Self {
        WeakSender(self.0.clone())
    }
}

/// Removes a cancelled send's waker.
struct SendTicket<T> {
    channel: Rc<RefCell<Channel<T>>>,
    ticket: Option<u64>,
}

impl<T> Drop for SendTicket<T> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket {
            self.channel.borrow_mut().senders_waiting.forget(t);
        }
    }
}

impl<T: OptionalSend> MpscSender<Mpsc, T> for Sender<T> {
    fn send(&self, message: T) -> impl Future<Output = Result<(), SendError<T>>> + OptionalSend {
        let mut message = Some(message);
        let mut ticket = SendTicket { channel: self.0.clone(), ticket: None };
        poll_fn(move |cx| {
            let waker = {
                let mut c = ticket.channel.borrow_mut();
                let m = message.take().expect("polled after completion");
                if !c.receiver_alive {
                    return Poll::Ready(Err(SendError(m)));
                }
                if c.queue.len() >= c.capacity {
                    message = Some(m);
                    let t = *ticket.ticket.get_or_insert_with(|| c.senders_waiting.ticket());
                    c.senders_waiting.register(t, cx.waker());
                    return Poll::Pending;
                }
                c.queue.push_back(m);
                if let Some(t) = ticket.ticket.take() {
                    c.senders_waiting.forget(t);
                }
                c.receiver.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
            Poll::Ready(Ok(()))
        })
    }

    fn downgrade(&self) -> WeakSender<T> {
        WeakSender(Rc::downgrade(&self.0))
    }
}

impl<T: OptionalSend> MpscWeakSender<Mpsc, T> for WeakSender<T> {
    fn upgrade(&self) -> Option<Sender<T>> {
        let channel = self.0.upgrade()?;
        {
            let mut c = channel.borrow_mut();
            if c.senders == 0 {
                return None;
            }
            c.senders += 1;
        }
        Some(Sender(channel))
    }
}

impl<T> Receiver<T> {
    /// Takes the next message and lets the waiting senders try again (in arrival order).
    fn pop(&mut self) -> Option<T> {
        let mut c = self.0.borrow_mut();
        let message = c.queue.pop_front()?;
        c.senders_waiting.wake_all();
        Some(message)
    }
}

impl<T: OptionalSend> MpscReceiver<T> for Receiver<T> {
    fn recv(&mut self) -> impl Future<Output = Option<T>> + OptionalSend {
        poll_fn(move |cx| {
            if let Some(m) = self.pop() {
                return Poll::Ready(Some(m));
            }
            let mut c = self.0.borrow_mut();
            if c.senders == 0 {
                return Poll::Ready(None);
            }
            c.receiver = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Some(m) = self.pop() {
            return Ok(m);
        }
        match self.0.borrow().senders {
            0 => Err(TryRecvError::Disconnected),
            _ => Err(TryRecvError::Empty),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let dropped = {
            let mut c = self.0.borrow_mut();
            c.receiver_alive = false;
            c.senders_waiting.wake_all();
            std::mem::take(&mut c.queue)
        };
        // Outside the borrow: a message's drop may touch this channel.
        drop(dropped);
    }
}

// --------------------------------------------------------------------------------- oneshot

/// openraft's one-shot channel.
pub struct Oneshot;

struct OneshotState<T> {
    value: Option<T>,
    receiver: Option<Waker>,
    sender_alive: bool,
    receiver_alive: bool,
}

pub struct OneshotTx<T>(Rc<RefCell<OneshotState<T>>>);
pub struct OneshotRx<T>(Rc<RefCell<OneshotState<T>>>);

/// The sender was dropped without sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canceled;

impl fmt::Display for Canceled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the sender was dropped without sending")
    }
}

impl std::error::Error for Canceled {}

impl openraft_rt::Oneshot for Oneshot {
    type Sender<T: OptionalSend> = OneshotTx<T>;
    type Receiver<T: OptionalSend> = OneshotRx<T>;
    type ReceiverError = Canceled;

    fn channel<T: OptionalSend>() -> (OneshotTx<T>, OneshotRx<T>) {
        let state = Rc::new(RefCell::new(OneshotState {
            value: None,
            receiver: None,
            sender_alive: true,
            receiver_alive: true,
        }));
        (OneshotTx(state.clone()), OneshotRx(state))
    }
}

impl<T: OptionalSend> OneshotSender<T> for OneshotTx<T> {
    fn send(self, value: T) -> Result<(), T> {
        let waker = {
            let mut s = self.0.borrow_mut();
            if !s.receiver_alive {
                return Err(value);
            }
            s.value = Some(value);
            s.receiver.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}

impl<T> Drop for OneshotTx<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.0.borrow_mut();
            s.sender_alive = false;
            s.receiver.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for OneshotRx<T> {
    type Output = Result<T, Canceled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.0.borrow_mut();
        if let Some(v) = s.value.take() {
            return Poll::Ready(Ok(v));
        }
        if !s.sender_alive {
            return Poll::Ready(Err(Canceled));
        }
        s.receiver = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> Drop for OneshotRx<T> {
    fn drop(&mut self) {
        let value = {
            let mut s = self.0.borrow_mut();
            s.receiver_alive = false;
            s.value.take()
        };
        drop(value);
    }
}

// ----------------------------------------------------------------------------------- watch

/// openraft's watch channel: the latest value, and a version each receiver compares with the
/// one it saw last.
pub struct Watch;

struct Watched<T> {
    value: RefCell<T>,
    version: Cell<u64>,
    receivers_waiting: RefCell<Waiters>,
    senders: Cell<usize>,
    receivers: Cell<usize>,
}

impl<T> Watched<T> {
    fn changed(&self) {
        self.version.set(self.version.get() + 1);
        self.receivers_waiting.borrow_mut().wake_all();
    }
}

pub struct WatchTx<T>(Rc<Watched<T>>);

pub struct WatchRx<T> {
    shared: Rc<Watched<T>>,
    seen: u64,
}

impl openraft_rt::Watch for Watch {
    type Sender<T: OptionalSend + OptionalSync> = WatchTx<T>;
    type Receiver<T: OptionalSend + OptionalSync> = WatchRx<T>;
    type Ref<'a, T: OptionalSend + 'a> = Ref<'a, T>;

    fn channel<T: OptionalSend + OptionalSync>(init: T) -> (WatchTx<T>, WatchRx<T>) {
        let shared = Rc::new(Watched {
            value: RefCell::new(init),
            version: Cell::new(0),
            receivers_waiting: RefCell::new(Waiters::default()),
            senders: Cell::new(1),
            receivers: Cell::new(1),
        });
        (WatchTx(shared.clone()), WatchRx { shared, seen: 0 })
    }
}

impl<T> Clone for WatchTx<T> {
    fn clone(&self) -> Self {
        self.0.senders.set(self.0.senders.get() + 1);
        WatchTx(self.0.clone())
    }
}

impl<T> Drop for WatchTx<T> {
    fn drop(&mut self) {
        self.0.senders.set(self.0.senders.get() - 1);
        if self.0.senders.get() == 0 {
            self.0.receivers_waiting.borrow_mut().wake_all();
        }
    }
}

impl<T> Clone for WatchRx<T> {
    fn clone(&self) -> Self {
        self.shared.receivers.set(self.shared.receivers.get() + 1);
        WatchRx { shared: self.shared.clone(), seen: self.seen }
    }
}

impl<T> Drop for WatchRx<T> {
    fn drop(&mut self) {
        self.shared.receivers.set(self.shared.receivers.get() - 1);
    }
}

impl<T: OptionalSend + OptionalSync> WatchSender<Watch, T> for WatchTx<T> {
    fn send(&self, value: T) -> Result<(), watch::SendError<T>> {
        if self.0.receivers.get() == 0 {
            return Err(watch::SendError(value));
        }
        let old = self.0.value.replace(value);
        self.0.changed();
        drop(old);
        Ok(())
    }

    fn send_if_modified<F>(&self, modify: F) -> bool
    where
        F: FnOnce(&mut T) -> bool,
    {
        let modified = modify(&mut self.0.value.borrow_mut());
        if modified {
            self.0.changed();
        }
        modified
    }

    fn borrow_watched(&self) -> Ref<'_, T> {
        self.0.value.borrow()
    }

    fn subscribe(&self) -> WatchRx<T> {
        self.0.receivers.set(self.0.receivers.get() + 1);
        WatchRx { shared: self.0.clone(), seen: self.0.version.get() }
    }
}

impl<T: OptionalSend + OptionalSync> WatchReceiver<Watch, T> for WatchRx<T> {
    async fn changed(&mut self) -> Result<(), RecvError> {
        let shared = self.shared.clone();
        let ticket = shared.receivers_waiting.borrow_mut().ticket();
        let forget = Forget { waiters: &shared.receivers_waiting, ticket };
        let seen = &mut self.seen;
        let outcome = poll_fn(|cx| {
            let version = shared.version.get();
            if version != *seen {
                *seen = version;
                return Poll::Ready(Ok(()));
            }
            if shared.senders.get() == 0 {
                return Poll::Ready(Err(RecvError(())));
            }
            shared.receivers_waiting.borrow_mut().register(ticket, cx.waker());
            Poll::Pending
        })
        .await;
        drop(forget);
        outcome
    }

    fn borrow_watched(&self) -> Ref<'_, T> {
        self.shared.value.borrow()
    }

    fn borrow_and_update(&mut self) -> Ref<'_, T> {
        self.seen = self.shared.version.get();
        self.shared.value.borrow()
    }
}

/// Removes a finished or cancelled wait's waker.
struct Forget<'a> {
    waiters: &'a RefCell<Waiters>,
    ticket: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.waiters.borrow_mut().forget(self.ticket);
    }
}

// ----------------------------------------------------------------------------------- mutex

/// openraft's async mutex: granted in the order the lockers first asked.
pub struct Mutex<T> {
    value: RefCell<T>,
    locked: Cell<bool>,
    /// Tickets of the waiting lockers, in arrival order, with their wakers.
    queue: RefCell<VecDeque<(u64, Option<Waker>)>>,
    next_ticket: Cell<u64>,
}

pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    value: Option<RefMut<'a, T>>,
}

impl<T> Mutex<T> {
    fn wake_head(&self) {
        if let Some((_, Some(w))) = self.queue.borrow().front() {
            w.wake_by_ref();
        }
    }
}

impl<T: OptionalSend + 'static> openraft_rt::Mutex<T> for Mutex<T> {
    type Guard<'a> = MutexGuard<'a, T>;

    fn new(value: T) -> Mutex<T> {
        Mutex {
            value: RefCell::new(value),
            locked: Cell::new(false),
            queue: RefCell::new(VecDeque::new()),
            next_ticket: Cell::new(0),
        }
    }

    fn lock(&self) -> impl Future<Output = MutexGuard<'_, T>> + OptionalSend {
        let mut lock = Lock { mutex: self, ticket: None };
        poll_fn(move |cx| lock.poll(cx))
    }
}

struct Lock<'a, T> {
    mutex: &'a Mutex<T>,
    ticket: Option<u64>,
}

impl<'a, T> Lock<'a, T> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<MutexGuard<'a, T>> {
        let m = self.mutex;
        let ticket = *self.ticket.get_or_insert_with(|| {
            let t = m.next_ticket.get();
            m.next_ticket.set(t + 1);
            m.queue.borrow_mut().push_back((t, None));
            t
        });
        let mut queue = m.queue.borrow_mut();
        if !m.locked.get() && queue.front().map(|q| q.0) == Some(ticket) {
            queue.pop_front();
            self.ticket = None;
            m.locked.set(true);
            return Poll::Ready(MutexGuard { mutex: m, value: Some(m.value.borrow_mut()) });
        }
        if let Some(entry) = queue.iter_mut().find(|q| q.0 == ticket) {
            entry.1 = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T> Drop for Lock<'_, T> {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else { return };
        let was_head = {
            let mut queue = self.mutex.queue.borrow_mut();
            let head = queue.front().map(|q| q.0) == Some(ticket);
            queue.retain(|q| q.0 != ticket);
            head
        };
        if was_head {
            self.mutex.wake_head();
        }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value.as_ref().expect("held until dropped")
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().expect("held until dropped")
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.value = None;
        self.mutex.locked.set(false);
        self.mutex.wake_head();
    }
}
