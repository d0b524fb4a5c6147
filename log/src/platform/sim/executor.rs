//! A single-threaded executor with virtual time. Ready tasks run in an order drawn from the
//! seed (so interleavings vary between seeds and repeat within one); when none is ready, the
//! clock jumps to the earliest timer. Nothing here reads the real clock.
//!
//! Semantics follow glommio's where the log relies on them: `spawn_local` returns a [`Task`]
//! that is awaited for its output, cancelled when dropped, and kept running by `detach`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::ops::{Add, Sub};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use super::rng::SimRng;

type BoxedTask = Pin<Box<dyn Future<Output = ()>>>;

struct Slot {
    generation: u64,
    /// The node (task group) the task belongs to: tasks inherit their spawner's.
    group: u32,
    future: Option<BoxedTask>,
    /// Set when the task is cancelled while it is being polled; the poller drops it after.
    cancelled: bool,
}

/// The executor of the current thread's simulation.
struct Runtime {
    now: Cell<u64>,
    rng: RefCell<SimRng>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<usize>>,
    next_generation: Cell<u64>,
    ready: Arc<Mutex<Vec<(usize, u64)>>>,
    /// (deadline, sequence) -> waker. Sleeps remove their entry when dropped.
    timers: RefCell<BTreeMap<(u64, u64), Waker>>,
    timer_seq: Cell<u64>,
    polls: Cell<u64>,
    /// The group of the task being polled (0 outside any).
    current_group: Cell<u32>,
}

thread_local! {
    static RUNTIME: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
}

fn runtime() -> Rc<Runtime> {
    RUNTIME.with(|r| r.borrow().clone()).expect("no simulation runs on this thread: create a Sim first")
}

/// Virtual nanoseconds since the simulation started.
pub fn now_nanos() -> u64 {
    RUNTIME.with(|r| r.borrow().as_ref().map_or(0, |rt| rt.now.get()))
}

/// A draw from the simulation's generator (for the disk and network models).
pub fn with_rng<T>(f: impl FnOnce(&mut SimRng) -> T) -> T {
    let rt = runtime();
    let mut rng = rt.rng.borrow_mut();
    f(&mut rng)
}

struct TaskWaker {
    id: usize,
    generation: u64,
    ready: Arc<Mutex<Vec<(usize, u64)>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.lock().expect("single-threaded").push((self.id, self.generation));
    }
}

impl Runtime {
    fn spawn(&self, future: BoxedTask) -> (usize, u64) {
        self.spawn_in(self.current_group.get(), future)
    }

    fn spawn_in(&self, group: u32, future: BoxedTask) -> (usize, u64) {
        let generation = self.next_generation.get();
        self.next_generation.set(generation + 1);
        let slot = Slot { generation, group, future: Some(future), cancelled: false };
        let id = match self.free.borrow_mut().pop() {
            Some(id) => {
                self.slots.borrow_mut()[id] = slot;
                id
            }
            None => {
                let mut slots = self.slots.borrow_mut();
                slots.push(slot);
                slots.len() - 1
            }
        };
        self.ready.lock().expect("single-threaded").push((id, generation));
        (id, generation)
    }

    fn cancel(&self, id: usize, generation: u64) {
        let future = {
            let mut slots = self.slots.borrow_mut();
            let Some(slot) = slots.get_mut(id) else { return };
            if slot.generation != generation {
                return;
            }
            match slot.future.take() {
                Some(f) => {
                    slot.generation = u64::MAX;
                    self.free.borrow_mut().push(id);
                    Some(f)
                }
                None => {
                    slot.cancelled = true;
                    None
                }
            }
        };
        drop(future); // outside the borrow: dropping may cancel other tasks
    }

    /// Polls one ready task; false when none was ready.
    fn poll_one(&self) -> bool {
        let next = {
            let mut ready = self.ready.lock().expect("single-threaded");
            if ready.is_empty() {
                return false;
            }
            let i = self.rng.borrow_mut().below(ready.len() as u64) as usize;
            ready.swap_remove(i)
        };
        let (id, generation) = next;
        let future = {
            let mut slots = self.slots.borrow_mut();
            match slots.get_mut(id) {
                Some(slot) if slot.generation == generation => slot.future.take(),
                _ => None,
            }
        };
        let Some(mut future) = future else { return true };
        self.polls.set(self.polls.get() + 1);
        let waker = Waker::from(Arc::new(TaskWaker { id, generation, ready: self.ready.clone() }));
        let group = self.slots.borrow()[id].group;
        let outer = self.current_group.replace(group);
        let done = future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready();
        self.current_group.set(outer);
        let finished = {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[id];
            if done || slot.cancelled {
                slot.generation = u64::MAX;
                slot.cancelled = false;
                self.free.borrow_mut().push(id);
                Some(future)
            } else {
                slot.future = Some(future);
                None
            }
        };
        drop(finished);
        true
    }

    /// Moves the clock to the earliest timer and wakes it; false when there is none.
    fn advance(&self) -> bool {
        let first = self.timers.borrow_mut().pop_first();
        match first {
            Some(((deadline, _), waker)) => {
                self.now.set(self.now.get().max(deadline));
                waker.wake();
                true
            }
            None => false,
        }
    }

    /// Drops every task of `group` (its node crashed).
    fn kill_group(&self, group: u32) {
        loop {
            let futures: Vec<BoxedTask> = {
                let mut slots = self.slots.borrow_mut();
                let mut free = self.free.borrow_mut();
                let mut out = Vec::new();
                for (id, slot) in slots.iter_mut().enumerate() {
                    if slot.group != group || slot.generation == u64::MAX {
                        continue;
                    }
                    match slot.future.take() {
                        Some(f) => {
                            out.push(f);
                            slot.generation = u64::MAX;
                            free.push(id);
                        }
                        // Being polled (the caller is inside it): dropped when it yields.
                        None => slot.cancelled = true,
                    }
                }
                out
            };
            if futures.is_empty() {
                break;
            }
            drop(futures);
        }
    }

    /// Drops every task (a crash, or the end of a run), timers included.
    fn clear(&self) {
        let futures: Vec<BoxedTask> = {
            let mut slots = self.slots.borrow_mut();
            slots.iter_mut().filter_map(|s| s.future.take()).collect()
        };
        drop(futures);
        // Dropping may have spawned or woken; whatever is left goes too.
        loop {
            let more: Vec<BoxedTask> = {
                let mut slots = self.slots.borrow_mut();
                slots.iter_mut().filter_map(|s| s.future.take()).collect()
            };
            if more.is_empty() {
                break;
            }
            drop(more);
        }
        self.slots.borrow_mut().clear();
        self.free.borrow_mut().clear();
        self.ready.lock().expect("single-threaded").clear();
        self.timers.borrow_mut().clear();
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd<T> {
    /// The main future finished.
    Done(T),
    /// The poll budget ran out first (the harness crashes the node here).
    OutOfSteps,
    /// No task was ready and no timer was set, with the main future unfinished: a hang.
    Stalled,
}

/// One simulated world's executor, installed on the current thread while it lives.
pub struct Sim {
    rt: Rc<Runtime>,
}

impl Sim {
    /// Installs a simulation with its generator on this thread. One at a time per thread.
    pub fn new(seed: u64) -> Sim {
        let rt = Rc::new(Runtime {
            now: Cell::new(0),
            rng: RefCell::new(SimRng::new(seed)),
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            next_generation: Cell::new(0),
            ready: Arc::new(Mutex::new(Vec::new())),
            timers: RefCell::new(BTreeMap::new()),
            timer_seq: Cell::new(0),
            polls: Cell::new(0),
            current_group: Cell::new(0),
        });
        RUNTIME.with(|r| {
            let mut r = r.borrow_mut();
            assert!(r.is_none(), "one simulation per thread at a time");
            *r = Some(rt.clone());
        });
        Sim { rt }
    }

    /// Runs `future` (and whatever it spawns) until it finishes, stalls, or `max_polls` task
    /// polls have run. Tasks still running afterwards stay (call [`Sim::crash`] to drop them).
    pub fn run<T: 'static>(&self, future: impl Future<Output = T> + 'static, max_polls: u64) -> RunEnd<T> {
        let out: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
        let sink = out.clone();
        let (id, generation) = self.rt.spawn(Box::pin(async move {
            let v = future.await;
            *sink.borrow_mut() = Some(v);
        }));
        let budget_end = self.rt.polls.get().saturating_add(max_polls);
        let end = loop {
            if let Some(v) = out.borrow_mut().take() {
                break RunEnd::Done(v);
            }
            if self.rt.polls.get() >= budget_end {
                break RunEnd::OutOfSteps;
            }
            if !self.rt.poll_one() && !self.rt.advance() {
                break RunEnd::Stalled;
            }
        };
        if !matches!(end, RunEnd::Done(_)) {
            self.rt.cancel(id, generation);
        }
        end
    }

    /// Drops every task and timer, as a process dying would.
    pub fn crash(&self) {
        self.rt.clear();
    }

    /// Drops every task of `group` (one simulated node's process), wherever it waits.
    pub fn kill_group(&self, group: u32) {
        self.rt.kill_group(group);
    }

    /// Virtual time elapsed.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.rt.now.get())
    }

    /// Task polls so far.
    pub fn polls(&self) -> u64 {
        self.rt.polls.get()
    }

    /// A draw from the run's generator.
    pub fn rng<T>(&self, f: impl FnOnce(&mut SimRng) -> T) -> T {
        f(&mut self.rt.rng.borrow_mut())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.rt.clear();
        RUNTIME.with(|r| r.borrow_mut().take());
    }
}

struct JoinState<T> {
    output: Option<T>,
    waiter: Option<Waker>,
    /// The task was dropped before it finished.
    abandoned: bool,
}

/// Marks the task's join state abandoned when the task's future is dropped unfinished.
struct Abandon<T>(Rc<RefCell<JoinState<T>>>);

impl<T> Drop for Abandon<T> {
    fn drop(&mut self) {
        let waiter = {
            let Ok(mut s) = self.0.try_borrow_mut() else { return };
            if s.output.is_some() {
                return;
            }
            s.abandoned = true;
            s.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

/// A spawned task: await it for its output; dropping it cancels the task, as in glommio.
pub struct Task<T> {
    id: usize,
    generation: u64,
    state: Rc<RefCell<JoinState<T>>>,
    detached: bool,
}

/// What `detach` returns: awaitable for the task's output (`None` if the task was dropped
/// unfinished, as by a crash), and dropping it leaves the task running; glommio's surface.
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
}

impl<T> Future for JoinHandle<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.state.borrow_mut();
        match s.output.take() {
            Some(v) => Poll::Ready(Some(v)),
            None if s.abandoned => Poll::Ready(None),
            None => {
                s.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Spawns a task in task group `group` (a simulated node; its tasks inherit it), detached.
pub fn spawn_in_group<T: 'static>(group: u32, future: impl Future<Output = T> + 'static) -> JoinHandle<T> {
    let rt = runtime();
    let outer = rt.current_group.replace(group);
    let task = spawn_local(future);
    rt.current_group.set(outer);
    task.detach()
}

/// Spawns a task on the current simulation.
pub fn spawn_local<T: 'static>(future: impl Future<Output = T> + 'static) -> Task<T> {
    let state = Rc::new(RefCell::new(JoinState { output: None, waiter: None, abandoned: false }));
    let sink = state.clone();
    let (id, generation) = runtime().spawn(Box::pin(async move {
        let _abandon = Abandon(sink.clone());
        let v = future.await;
        let waiter = {
            let mut s = sink.borrow_mut();
            s.output = Some(v);
            s.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }));
    Task { id, generation, state, detached: false }
}

impl<T> Task<T> {
    /// Lets the task run on when this handle is dropped.
    pub fn detach(mut self) -> JoinHandle<T> {
        self.detached = true;
        JoinHandle { state: self.state.clone() }
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.state.borrow_mut();
        match s.output.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if !self.detached {
            if let Some(rt) = RUNTIME.with(|r| r.borrow().clone()) {
                rt.cancel(self.id, self.generation);
            }
        }
    }
}

/// A point in virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    pub fn now() -> Instant {
        Instant(now_nanos())
    }

    /// The start of the simulation.
    pub fn zero() -> Instant {
        Instant(0)
    }

    pub fn elapsed(&self) -> Duration {
        Instant::now() - *self
    }

    pub fn duration_since(&self, earlier: Instant) -> Duration {
        *self - earlier
    }
}

impl std::ops::AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl std::ops::Sub<Duration> for Instant {
    type Output = Instant;

    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }
}

impl std::ops::SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, d: Duration) {
        *self = *self - d;
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }
}

impl Sub for Instant {
    type Output = Duration;

    fn sub(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// Completes once `duration` of virtual time has passed.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep { deadline: (Instant::now() + duration).0, key: None }
}

pub struct Sleep {
    deadline: u64,
    key: Option<(u64, u64)>,
}

impl Future for Sleep {
    type Output = Duration;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Duration> {
        let rt = runtime();
        if rt.now.get() >= self.deadline {
            if let Some(key) = self.key.take() {
                rt.timers.borrow_mut().remove(&key);
            }
            return Poll::Ready(Duration::ZERO);
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let seq = rt.timer_seq.get();
                rt.timer_seq.set(seq + 1);
                (self.deadline, seq)
            }
        };
        rt.timers.borrow_mut().insert(key, cx.waker().clone());
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            if let Some(rt) = RUNTIME.with(|r| r.borrow().clone()) {
                rt.timers.borrow_mut().remove(&key);
            }
        }
    }
}

/// A counting semaphore with first-come, first-served waiters (glommio's surface).
pub struct Semaphore {
    inner: Rc<SemaphoreInner>,
}

struct SemaphoreInner {
    available: Cell<u64>,
    next_ticket: Cell<u64>,
    /// Waiting tickets in arrival order, with their wakers.
    queue: RefCell<VecDeque<(u64, u64, Option<Waker>)>>,
}

impl SemaphoreInner {
    fn wake_head(&self) {
        if let Some((_, _, Some(w))) = self.queue.borrow().front() {
            w.wake_by_ref();
        }
    }
}

/// Held units of a [`Semaphore`], given back when dropped.
pub struct SemaphorePermit {
    inner: Rc<SemaphoreInner>,
    units: u64,
}

impl Drop for SemaphorePermit {
    fn drop(&mut self) {
        self.inner.available.set(self.inner.available.get() + self.units);
        self.inner.wake_head();
    }
}

impl Semaphore {
    pub fn new(units: u64) -> Semaphore {
        Semaphore {
            inner: Rc::new(SemaphoreInner {
                available: Cell::new(units),
                next_ticket: Cell::new(0),
                queue: RefCell::new(VecDeque::new()),
            }),
        }
    }

    pub fn available(&self) -> u64 {
        self.inner.available.get()
    }

    /// Waits for `units` and holds them until the permit is dropped. Never fails (the log's
    /// semaphores are never closed); the `Result` mirrors glommio's.
    pub async fn acquire_permit(&self, units: u64) -> Result<SemaphorePermit, std::io::Error> {
        let ticket = self.inner.next_ticket.get();
        self.inner.next_ticket.set(ticket + 1);
        self.inner.queue.borrow_mut().push_back((ticket, units, None));
        let wait = Acquire { inner: self.inner.clone(), ticket, units, done: false };
        wait.await;
        Ok(SemaphorePermit { inner: self.inner.clone(), units })
    }
}

struct Acquire {
    inner: Rc<SemaphoreInner>,
    ticket: u64,
    units: u64,
    done: bool,
}

impl Future for Acquire {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let granted = {
            let mut queue = self.inner.queue.borrow_mut();
            let at_head = queue.front().map(|q| q.0) == Some(self.ticket);
            if at_head && self.inner.available.get() >= self.units {
                queue.pop_front();
                self.inner.available.set(self.inner.available.get() - self.units);
                true
            } else {
                if let Some(entry) = queue.iter_mut().find(|q| q.0 == self.ticket) {
                    entry.2 = Some(cx.waker().clone());
                }
                false
            }
        };
        if granted {
            self.done = true;
            // The next waiter may fit in what is left.
            self.inner.wake_head();
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if !self.done {
            let was_head = {
                let mut queue = self.inner.queue.borrow_mut();
                let head = queue.front().map(|q| q.0) == Some(self.ticket);
                queue.retain(|q| q.0 != self.ticket);
                head
            };
            if was_head {
                self.inner.wake_head();
            }
        }
    }
}
