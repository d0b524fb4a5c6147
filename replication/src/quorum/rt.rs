//! openraft's `AsyncRuntime` over `ringtail_log::platform`: tasks, timers, the clock and the
//! random source are the platform's, so the same adapter runs on glommio in the broker and on
//! the seeded virtual-time executor in the simulation (ringtail-log built with `sim`). Channels
//! and the mutex are ours (`sync.rs`): `Rc`-based, woken in a fixed order, so a simulated run
//! depends on its seed alone.
//!
//! Everything here is `!Send`: openraft is built with `single-threaded`, and a `Raft` lives on
//! the shard (executor thread) that created it.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use openraft_rt::{AsyncRuntime, OptionalSend};
use ringtail_log::platform;

use super::sync::{Mpsc, Mutex, Oneshot, Watch};

/// The quorum's runtime: a name for the platform's executor (zero-sized; the executor is the
/// one running on the current thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rt;

/// A task finished without an output: it was dropped unfinished (its executor stopped, or the
/// simulation crashed the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinError;

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the task was dropped before it finished (its executor stopped)")
    }
}

impl std::error::Error for JoinError {}

/// Awaits a spawned task's output. Dropping it leaves the task running: openraft drops some
/// handles at once (`let _ = C::spawn(..)`), where the platform's `Task` would cancel.
pub struct JoinHandle<T> {
    inner: Pin<Box<dyn Future<Output = Option<T>>>>,
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map(|output| output.ok_or(JoinError))
    }
}

/// A point on the platform's clock (monotonic; virtual in the simulation). A newtype because
/// openraft's `Instant` trait cannot be implemented for the platform's type from this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(platform::Instant);

impl Instant {
    /// The platform's instant.
    pub fn platform(self) -> platform::Instant {
        self.0
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, d: Duration) -> Instant {
        Instant(self.0 + d)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        self.0 += d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    fn sub(self, d: Duration) -> Instant {
        Instant(self.0 - d)
    }
}

impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, d: Duration) {
        self.0 -= d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, earlier: Instant) -> Duration {
        // std's `Instant - Instant` saturates at zero too.
        self.0 - earlier.0
    }
}

impl openraft_rt::Instant for Instant {
    fn now() -> Instant {
        Instant(platform::Instant::now())
    }
}

/// A platform sleep. Boxed: glommio's `sleep` is an `async fn`, whose type has no name.
pub struct Sleep {
    inner: Pin<Box<dyn Future<Output = ()>>>,
}

impl Sleep {
    fn new(duration: Duration) -> Sleep {
        Sleep {
            inner: Box::pin(async move {
                platform::sleep(duration).await;
            }),
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

/// The deadline of a [`Timeout`] passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// A future raced against a sleep; the future wins a tie (it is polled first).
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        Pin::new(&mut self.sleep).poll(cx).map(|()| Err(Elapsed))
    }
}

/// Races `future` against a platform sleep of `duration` (for callers outside openraft, such
/// as the network's per-RPC deadline).
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout { future: Box::pin(future), sleep: Sleep::new(duration) }
}

/// The platform's random source (seeded by the simulation, so election timeouts replay).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlatformRng;

impl rand_core::TryRng for PlatformRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((platform::random_u64() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(platform::random_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = platform::random_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

impl AsyncRuntime for Rt {
    type JoinError = JoinError;
    type JoinHandle<T: OptionalSend + 'static> = JoinHandle<T>;
    type Sleep = Sleep;
    type Instant = Instant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = Timeout<T>;
    type ThreadLocalRng = PlatformRng;

    fn spawn<T>(future: T) -> JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        JoinHandle { inner: Box::pin(platform::spawn_local(future).detach()) }
    }

    fn sleep(duration: Duration) -> Sleep {
        Sleep::new(duration)
    }

    fn sleep_until(deadline: Instant) -> Sleep {
        Sleep::new(openraft_rt::Instant::saturating_duration_since(&deadline, openraft_rt::Instant::now()))
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Timeout<F> {
        timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Instant, future: F) -> Timeout<F> {
        Timeout { future: Box::pin(future), sleep: Self::sleep_until(deadline) }
    }

    fn is_panic(_: &JoinError) -> bool {
        // A panic aborts the process (release builds) or unwinds the executor; a handle never
        // outlives it to see one.
        false
    }

    fn thread_rng() -> PlatformRng {
        PlatformRng
    }

    type Mpsc = Mpsc;
    type Watch = Watch;
    type Oneshot = Oneshot;
    type Mutex<T: OptionalSend + 'static> = Mutex<T>;

    fn new(_threads: usize) -> Rt {
        Rt
    }

    /// Not supported: the runtime is whatever platform executor runs the current thread, and
    /// it is entered by starting one (`glommio::LocalExecutor`, `platform::Sim::run`), never
    /// from inside. openraft's library code never calls this (only its test suites do, which
    /// this crate's tests wrap).
    fn block_on<F, T>(&mut self, _future: F) -> T
    where
        F: Future<Output = T>,
    {
        panic!("quorum::Rt cannot block: start a platform executor and await inside it");
    }
}
