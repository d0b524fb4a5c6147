//! Zero-copy sends of file ranges: each shard has an io_uring ring of its own (glommio's ring
//! exposes neither splice nor sendfile) on which a range of a segment file goes to a client's
//! socket through a pipe, `splice(file -> pipe)` linked to `splice(pipe -> socket)`, the pages
//! moving by reference from the page cache to the socket without passing through user space.
//!
//! Splice requests run in the kernel's io-wq workers, never on the shard's thread: the shard
//! only pushes entries and submits (a non-blocking `io_uring_enter`). The ring signals
//! completions on an eventfd; a helper thread blocked reading it tells the shard over a channel,
//! and the shard's driver task reaps the completion queue and wakes the sends waiting on them.
//! Every ring access is on the shard's thread.
//!
//! A blocking socket write in an io-wq worker is bounded by the socket's `SO_SNDTIMEO` (the
//! connection sets it to its write timeout): a client that stops reading makes the send fail and
//! the connection close, as a stalled glommio write does. After a range is sent its pages are
//! dropped from the page cache (`POSIX_FADV_DONTNEED` on the ring), so cold reads do not grow
//! the page cache that direct I/O keeps segment data out of.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, squeue, types, IoUring, Probe};

/// Submission queue entries of a shard's ring (the completion queue has twice as many).
const RING_ENTRIES: u32 = 256;
/// Bytes a pipe is asked to hold (`F_SETPIPE_SZ`; Linux's default `pipe-max-size`): a splice
/// pair moves at most this much.
const PIPE_BYTES: usize = 1 << 20;
/// Idle pipes a shard keeps for the next sends.
const PIPES_IDLE_MAX: usize = 16;
/// io-wq workers the ring may use for regular files and for pipes and sockets: bounds the
/// kernel threads clients' slow reads can hold.
const IOWQ_WORKERS_MAX: [u32; 2] = [16, 128];
/// The user data of requests nobody waits for (drop-behind advice).
const UNWATCHED: u64 = u64::MAX;

/// Whether this kernel can send file ranges through a ring: io_uring with splice and fadvise.
pub fn probe() -> Result<(), String> {
    let ring = IoUring::new(8).map_err(|e| format!("io_uring is not available: {e}"))?;
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe).map_err(|e| format!("cannot probe io_uring: {e}"))?;
    for (name, code) in [("splice", opcode::Splice::CODE), ("fadvise", opcode::Fadvise::CODE)] {
        if !probe.is_supported(code) {
            return Err(format!("io_uring has no {name} (Linux 5.7 or later is needed)"));
        }
    }
    Pipe::new().map(|_| ()).map_err(|e| format!("cannot create a pipe: {e}"))
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// What it holds at most.
    bytes: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A smaller pipe (the user's pipe quota spent) still works, in smaller steps.
        // SAFETY: fcntl on a descriptor this owns.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES as libc::c_int) };
        // SAFETY: as above.
        let size = if size > 0 { size } else { unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) } };
        if size <= 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe { read, write, bytes: size as usize })
    }
}

/// A request's state, by its user data (the index).
enum Slot {
    Free,
    Waiting(Option<Waker>),
    Done(i32),
    /// Its waiter went away before the completion; freed when it arrives.
    Abandoned,
}

#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

impl Slots {
    fn take(&mut self) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Slot::Waiting(None);
                i
            }
            None => {
                self.slots.push(Slot::Waiting(None));
                self.slots.len() - 1
            }
        }
    }

    fn release(&mut self, i: usize) {
        self.slots[i] = Slot::Free;
        self.free.push(i);
    }
}

/// What a shard's sends of file ranges have done, for the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpliceStats {
    pub sends: u64,
    pub bytes: u64,
    pub failed: u64,
}

/// A shard's ring for zero-copy sends.
pub struct Splicer {
    ring: RefCell<IoUring>,
    slots: RefCell<Slots>,
    pipes: RefCell<Vec<Pipe>>,
    stats: RefCell<SpliceStats>,
    eventfd: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
}

impl Splicer {
    /// The ring, its completion thread (named after the shard) and its driver task. Must be
    /// called on the shard's executor.
    pub fn start(shard: usize) -> io::Result<Rc<Splicer>> {
        let ring = IoUring::builder().setup_cqsize(RING_ENTRIES * 2).build(RING_ENTRIES)?;
        let mut workers = IOWQ_WORKERS_MAX;
        // Older kernels lack the setting; their io-wq limits still apply.
        let _ = ring.submitter().register_iowq_max_workers(&mut workers);
        // SAFETY: eventfd returns a new descriptor or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor was just created and is owned by nothing else.
        let eventfd = Arc::new(unsafe { OwnedFd::from_raw_fd(efd) });
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_tx, wake_rx) = flume::bounded::<()>(1);
        {
            let (eventfd, stop) = (eventfd.clone(), stop.clone());
            std::thread::Builder::new().name(format!("ringtail-splice-{shard}")).spawn(move || loop {
                let mut count = 0u64;
                // SAFETY: reads 8 bytes into `count` from the eventfd this thread shares.
                let n = unsafe { libc::read(eventfd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
                if stop.load(Ordering::Acquire) {
                    break;
                }
                if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    break;
                }
                // Full: a wake-up is already on its way, and its reaping sees this completion too.
                if let Err(flume::TrySendError::Disconnected(_)) = wake_tx.try_send(()) {
                    break;
                }
            })?;
        }
        let splicer = Rc::new(Splicer {
            ring: RefCell::new(ring),
            slots: RefCell::new(Slots::default()),
            pipes: RefCell::new(Vec::new()),
            stats: RefCell::new(SpliceStats::default()),
            eventfd,
            stop,
        });
        let weak = Rc::downgrade(&splicer);
        glommio::spawn_local(drive(weak, wake_rx)).detach();
        Ok(splicer)
    }

    pub fn stats(&self) -> SpliceStats {
        *self.stats.borrow()
    }

    /// Sends `len` bytes of `file` from `position` to `socket`, every byte or an error (the
    /// file shorter than the range, a truncation; the client not reading for the socket's send
    /// timeout; the connection gone). Nothing else may write to the socket meanwhile.
    pub async fn send_file(&self, file: RawFd, position: u64, len: usize, socket: RawFd) -> io::Result<()> {
        let pipe = match self.pipes.borrow_mut().pop() {
            Some(p) => p,
            None => Pipe::new()?,
        };
        let result = self.send_through(&pipe, file, position, len, socket).await;
        // Drop-behind: these pages were read for this send only.
        let advice = opcode::Fadvise::new(types::Fd(file), len as libc::off_t, libc::POSIX_FADV_DONTNEED)
            .offset(position)
            .build()
            .user_data(UNWATCHED);
        let _ = self.push(&[advice]);
        let mut stats = self.stats.borrow_mut();
        match &result {
            Ok(()) => {
                stats.sends += 1;
                stats.bytes += len as u64;
                // Only an emptied pipe is used again; a failed send's may still hold bytes.
                let mut pipes = self.pipes.borrow_mut();
                if pipes.len() < PIPES_IDLE_MAX {
                    pipes.push(pipe);
                }
            }
            Err(_) => stats.failed += 1,
        }
        result
    }

    async fn send_through(&self, pipe: &Pipe, file: RawFd, position: u64, len: usize, socket: RawFd) -> io::Result<()> {
        let mut sent = 0usize;
        while sent < len {
            let step = (len - sent).min(pipe.bytes) as u32;
            let fill = opcode::Splice::new(
                types::Fd(file),
                (position + sent as u64) as i64,
                types::Fd(pipe.write.as_raw_fd()),
                -1,
                step,
            )
            .build()
            .flags(squeue::Flags::IO_LINK);
            let drain = opcode::Splice::new(types::Fd(pipe.read.as_raw_fd()), -1, types::Fd(socket), -1, step).build();
            let (filled, drained) = {
                let (mut fill, mut drain) = (self.op(fill), self.op(drain));
                self.submit(&mut [&mut fill, &mut drain])?;
                (fill.await, drain.await)
            };
            let filled = match filled {
                n if n < 0 => return Err(io::Error::from_raw_os_error(-n)),
                0 => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file is shorter than the range sent"))
                }
                n => n as usize,
            };
            // A short fill breaks the link: the drain is cancelled and the pipe holds `filled`.
            let mut drained = match drained {
                n if n >= 0 => n as usize,
                n if -n == libc::ECANCELED => 0,
                n => return Err(io::Error::from_raw_os_error(-n)),
            };
            while drained < filled {
                let rest = (filled - drained) as u32;
                let entry = opcode::Splice::new(types::Fd(pipe.read.as_raw_fd()), -1, types::Fd(socket), -1, rest);
                let mut drain = self.op(entry.build());
                self.submit(&mut [&mut drain])?;
                drained += match drain.await {
                    n if n > 0 => n as usize,
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    n if -n == libc::EAGAIN => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client read nothing for the write timeout",
                        ))
                    }
                    n => return Err(io::Error::from_raw_os_error(-n)),
                };
            }
            sent += filled;
        }
        Ok(())
    }

    /// A request whose completion the returned future waits for.
    fn op(&self, entry: squeue::Entry) -> Op<'_> {
        let key = self.slots.borrow_mut().take();
        Op { splicer: self, key, entry: entry.user_data(key as u64), submitted: false, finished: false }
    }

    /// Submits `ops` together (a linked pair stays whole).
    fn submit(&self, ops: &mut [&mut Op<'_>]) -> io::Result<()> {
        let entries: Vec<squeue::Entry> = ops.iter().map(|o| o.entry.clone()).collect();
        self.push(&entries)?;
        ops.iter_mut().for_each(|o| o.submitted = true);
        Ok(())
    }

    /// Queues `entries` together and submits them without waiting.
    fn push(&self, entries: &[squeue::Entry]) -> io::Result<()> {
        let mut ring = self.ring.borrow_mut();
        let room = {
            let sq = ring.submission();
            sq.capacity() - sq.len()
        };
        if room < entries.len() {
            ring.submit()?;
        }
        // SAFETY: every descriptor an entry names stays open until its completion: the file's
        // and the socket's are held by the sender's caller, which awaits the completion (a
        // dropped waiter closes nothing the kernel has not already taken a reference to), and
        // drop-behind advice names a file only by descriptor, which the kernel resolves at
        // submission.
        unsafe { ring.submission().push_multiple(entries) }
            .map_err(|_| io::Error::other("the splice ring's submission queue is full"))?;
        ring.submit()?;
        Ok(())
    }

    /// Reaps the completion queue, waking the sends waiting on it.
    fn reap(&self) {
        let mut ring = self.ring.borrow_mut();
        let mut slots = self.slots.borrow_mut();
        for cqe in ring.completion() {
            let key = cqe.user_data();
            if key == UNWATCHED {
                continue;
            }
            let key = key as usize;
            match std::mem::replace(&mut slots.slots[key], Slot::Done(cqe.result())) {
                Slot::Waiting(waker) => {
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
                Slot::Abandoned => slots.release(key),
                Slot::Free | Slot::Done(_) => {}
            }
        }
    }
}

impl Drop for Splicer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let one = 1u64;
        // SAFETY: writes 8 bytes to the eventfd, waking the helper thread so it sees `stop`.
        unsafe { libc::write(self.eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// The driver: reaps completions whenever the helper thread says there are some.
async fn drive(splicer: Weak<Splicer>, wake: flume::Receiver<()>) {
    while wake.recv_async().await.is_ok() {
        let Some(s) = splicer.upgrade() else { break };
        s.reap();
    }
}

/// One request's completion: its result (`-errno` for an error).
struct Op<'a> {
    splicer: &'a Splicer,
    key: usize,
    entry: squeue::Entry,
    /// In the ring: its slot is held until the completion arrives.
    submitted: bool,
    finished: bool,
}

impl Future for Op<'_> {
    type Output = i32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<i32> {
        let mut slots = self.splicer.slots.borrow_mut();
        let key = self.key;
        match &mut slots.slots[key] {
            Slot::Done(result) => {
                let result = *result;
                slots.release(key);
                drop(slots);
                self.finished = true;
                Poll::Ready(result)
            }
            Slot::Waiting(waker) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Slot::Free | Slot::Abandoned => unreachable!("a request's slot is held until its waiter finishes"),
        }
    }
}

impl Drop for Op<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut slots = self.splicer.slots.borrow_mut();
        match slots.slots[self.key] {
            Slot::Waiting(_) if self.submitted => slots.slots[self.key] = Slot::Abandoned,
            _ => slots.release(self.key),
        }
    }
}
