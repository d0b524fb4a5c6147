//! openraft's runtime conformance suite against `quorum::Rt` on glommio.
//!
//! The suite enters its runtime with `new` and `block_on`, which `Rt` does not offer (it runs
//! inside whatever platform executor runs the thread): `GlommioRt` is `Rt` with a `block_on`
//! that starts a glommio executor on the calling thread, and everything else delegated.

use std::future::Future;
use std::time::Duration;

use openraft_rt::{AsyncRuntime, OptionalSend};
use ringtail_replication::quorum::Rt;

#[derive(Debug)]
struct GlommioRt;

impl AsyncRuntime for GlommioRt {
    type JoinError = <Rt as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Rt as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Rt as AsyncRuntime>::Sleep;
    type Instant = <Rt as AsyncRuntime>::Instant;
    type TimeoutError = <Rt as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Rt as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = <Rt as AsyncRuntime>::ThreadLocalRng;
    type Mpsc = <Rt as AsyncRuntime>::Mpsc;
    type Watch = <Rt as AsyncRuntime>::Watch;
    type Oneshot = <Rt as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <Rt as AsyncRuntime>::Mutex<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Rt::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Rt::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Rt::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        Rt::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        Rt::timeout_at(deadline, future)
    }

    fn is_panic(e: &Self::JoinError) -> bool {
        Rt::is_panic(e)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        Rt::thread_rng()
    }

    fn new(_threads: usize) -> GlommioRt {
        GlommioRt
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .expect("start a glommio executor")
            .run(future)
    }
}

#[test]
fn rt_passes_openraft_runtime_conformance_suite() {
    openraft_rt::testing::Suite::<GlommioRt>::test_all();
}
