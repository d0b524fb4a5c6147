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
//! the connection close, as a stalled glommio write does.
//!
//! The page cache: the writer reads a response's next ranges into pipes of their own ahead of
//! their turn (`fill`), so the disk reads of a fetch's ranges run together as the copying
//! path's do; and sent ranges are dropped from the cache (`POSIX_FADV_DONTNEED`) once more
//! than `DROP_BEHIND_BYTES` have been sent after them or a second has passed, when the receiver
//! has surely taken their pages (pages still held by a socket are not dropped), so cold reads
//! do not grow the page cache that direct I/O keeps segment data out of.
//!
//! The kernel looks a request's descriptors up only when a worker runs it, so everything a
//! request names (file, pipe, its own duplicate of the socket descriptor) is kept open until
//! its completion arrives, even when its waiter has gone. The io-wq worker limits are the
//! kernel's defaults (they are per thread, shared with glommio's rings).

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
const PIPES_IDLE_MAX: usize = 64;
/// Sent ranges whose pages are kept while more recent sends go on (a shard's sockets may
/// still hold them), and for how long at most.
const DROP_BEHIND_BYTES: usize = 32 << 20;
const DROP_BEHIND_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
/// Drop-behind advice covers whole 2 MiB blocks (rounded out): the page cache holds file data
/// in folios of up to that size, naturally aligned, and evicts only those wholly inside the
/// range advised.
const DROP_BEHIND_ALIGN: u64 = 2 << 20;

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

/// A fill's result: the bytes now in the pipe.
fn filled(result: i32) -> io::Result<usize> {
    match result {
        n if n < 0 => Err(io::Error::from_raw_os_error(-n)),
        0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file is shorter than the range sent")),
        n => Ok(n as usize),
    }
}

/// A range whose first pipe's worth is being read into a pipe (`Splicer::fill`).
pub struct Fill<'a> {
    file: Arc<OwnedFd>,
    pipe: Rc<Pipe>,
    position: u64,
    len: usize,
    first: Op<'a>,
}

/// The file, pipe and socket of one send.
struct Ends {
    file: Arc<OwnedFd>,
    pipe: Rc<Pipe>,
    socket: Arc<OwnedFd>,
}

impl Ends {
    fn keep(&self) -> Vec<Keep> {
        vec![Box::new(self.file.clone()), Box::new(self.pipe.clone()), Box::new(self.socket.clone())]
    }
}

/// A range sent from a file, its pages not yet dropped from the page cache (the descriptor is
/// held so the advice cannot reach another file that reused the number).
struct SentRange {
    file: Arc<OwnedFd>,
    position: u64,
    len: usize,
    at: std::time::Instant,
}

/// A request's state, by its user data (the index).
enum Slot {
    Free,
    Waiting(Option<Waker>),
    Done(i32),
    /// Nobody waits (advice, or a waiter that went away): freed when the completion arrives,
    /// and with it what the request names (descriptors the kernel looks up only when a worker
    /// runs it, so they must stay open until then).
    Abandoned {
        _held: Vec<Keep>,
    },
}

/// Something a request in the ring needs kept alive.
type Keep = Box<dyn std::any::Any>;

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
    /// Sent ranges whose pages are still cached, oldest first, with their bytes in all.
    sent: RefCell<(std::collections::VecDeque<SentRange>, usize)>,
    eventfd: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
}

impl Splicer {
    /// The ring, its completion thread (named after the shard) and its driver task. Must be
    /// called on the shard's executor.
    pub fn start(shard: usize) -> io::Result<Rc<Splicer>> {
        let ring = IoUring::builder().setup_cqsize(RING_ENTRIES * 2).build(RING_ENTRIES)?;
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
            sent: RefCell::new((std::collections::VecDeque::new(), 0)),
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

    fn advise(&self, file: &Arc<OwnedFd>, position: u64, len: usize, advice: i32) {
        let key = {
            let mut slots = self.slots.borrow_mut();
            let key = slots.take();
            slots.slots[key] = Slot::Abandoned { _held: vec![Box::new(file.clone())] };
            key
        };
        let entry = opcode::Fadvise::new(types::Fd(file.as_raw_fd()), len as libc::off_t, advice)
            .offset(position)
            .build()
            .user_data(key as u64);
        // Advice only: a full ring loses nothing but the hint.
        if self.push(&[entry]).is_err() {
            self.slots.borrow_mut().release(key);
        }
    }

    /// Starts moving the first pipe's worth of a range into a pipe of its own (reading the
    /// file into the page cache as needed) without waiting, so the disk reads of a response's
    /// ranges run together while earlier ones are being sent; `send` sends it.
    pub fn fill(&self, file: &Arc<OwnedFd>, position: u64, len: usize) -> io::Result<Fill<'_>> {
        let pipe = Rc::new(match self.pipes.borrow_mut().pop() {
            Some(p) => p,
            None => Pipe::new()?,
        });
        let step = len.min(pipe.bytes);
        let entry = opcode::Splice::new(
            types::Fd(file.as_raw_fd()),
            position as i64,
            types::Fd(pipe.write.as_raw_fd()),
            -1,
            step as u32,
        )
        .build();
        let mut first = self.op(entry, vec![Box::new(file.clone()), Box::new(pipe.clone())]);
        self.submit(&mut [&mut first])?;
        Ok(Fill { file: file.clone(), pipe, position, len, first })
    }

    /// Sends a filled range to `socket`: every byte, or an error (the file shorter than the
    /// range, a truncation; the client not reading for the socket's send timeout; the
    /// connection gone). Nothing else may write to the socket meanwhile.
    pub async fn send(&self, fill: Fill<'_>, socket: RawFd) -> io::Result<()> {
        let Fill { file, pipe, position, len, first } = fill;
        let result = async {
            // The requests name a descriptor of the socket of their own, kept open until they
            // complete even if this send is dropped and the connection closes its own.
            // SAFETY: F_DUPFD_CLOEXEC on the open socket returns a new descriptor or -1.
            let socket = match unsafe { libc::fcntl(socket, libc::F_DUPFD_CLOEXEC, 0) } {
                -1 => return Err(io::Error::last_os_error()),
                // SAFETY: the new descriptor is owned by nothing else.
                fd => Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }),
            };
            let ends = Ends { file: file.clone(), pipe: pipe.clone(), socket };
            let filled = filled(first.await)?;
            self.drain(&ends, filled, 0).await?;
            self.send_through(&ends, position + filled as u64, len - filled).await
        }
        .await;
        self.drop_behind(SentRange { file, position, len, at: std::time::Instant::now() });
        let mut stats = self.stats.borrow_mut();
        match &result {
            Ok(()) => {
                stats.sends += 1;
                stats.bytes += len as u64;
                // Only an emptied pipe is used again; a failed send's may still hold bytes.
                let mut pipes = self.pipes.borrow_mut();
                if let (true, Ok(pipe)) = (pipes.len() < PIPES_IDLE_MAX, Rc::try_unwrap(pipe)) {
                    pipes.push(pipe);
                }
            }
            Err(_) => stats.failed += 1,
        }
        result
    }

    /// Notes a sent range, and drops from the page cache the ranges sent long enough ago.
    fn drop_behind(&self, range: SentRange) {
        let now = range.at;
        {
            let mut sent = self.sent.borrow_mut();
            sent.1 += range.len;
            sent.0.push_back(range);
        }
        self.drop_sent(now);
    }

    /// Drops from the page cache the sent ranges more than `DROP_BEHIND_BYTES` or
    /// `DROP_BEHIND_AFTER` behind `now` (letting go of their files: a deleted segment's space is
    /// freed once nothing holds it).
    fn drop_sent(&self, now: std::time::Instant) {
        let mut sent = self.sent.borrow_mut();
        let (ranges, bytes) = &mut *sent;
        while let Some(oldest) = ranges.front() {
            if *bytes <= DROP_BEHIND_BYTES && now.duration_since(oldest.at) < DROP_BEHIND_AFTER {
                break;
            }
            let oldest = ranges.pop_front().expect("looked at");
            *bytes -= oldest.len;
            let start = oldest.position / DROP_BEHIND_ALIGN * DROP_BEHIND_ALIGN;
            let end = (oldest.position + oldest.len as u64).div_ceil(DROP_BEHIND_ALIGN) * DROP_BEHIND_ALIGN;
            self.advise(&oldest.file, start, (end - start) as usize, libc::POSIX_FADV_DONTNEED);
        }
    }

    /// The rest of a range, a pipe's worth at a time: `splice(file -> pipe)` linked to
    /// `splice(pipe -> socket)`.
    async fn send_through(&self, ends: &Ends, position: u64, len: usize) -> io::Result<()> {
        let (file, socket, pipe) = (ends.file.as_raw_fd(), ends.socket.as_raw_fd(), &ends.pipe);
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
            let (filled_now, drained) = {
                let (mut fill, mut drain) = (self.op(fill, ends.keep()), self.op(drain, ends.keep()));
                self.submit(&mut [&mut fill, &mut drain])?;
                (fill.await, drain.await)
            };
            let filled_now = filled(filled_now)?;
            // A short fill breaks the link: the drain is cancelled and the pipe holds it all.
            let drained = match drained {
                n if n >= 0 => n as usize,
                n if -n == libc::ECANCELED => 0,
                n => return Err(io::Error::from_raw_os_error(-n)),
            };
            self.drain(ends, filled_now, drained).await?;
            sent += filled_now;
        }
        Ok(())
    }

    /// Moves what the pipe holds (`filled`, of which `drained` already went) to the socket.
    async fn drain(&self, ends: &Ends, filled: usize, mut drained: usize) -> io::Result<()> {
        while drained < filled {
            let rest = (filled - drained) as u32;
            let entry = opcode::Splice::new(
                types::Fd(ends.pipe.read.as_raw_fd()),
                -1,
                types::Fd(ends.socket.as_raw_fd()),
                -1,
                rest,
            );
            let mut drain = self.op(entry.build(), ends.keep());
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
        Ok(())
    }

    /// A request whose completion the returned future waits for.
    fn op(&self, entry: squeue::Entry, keep: Vec<Keep>) -> Op<'_> {
        let key = self.slots.borrow_mut().take();
        Op { splicer: self, key, entry: entry.user_data(key as u64), keep, submitted: false, finished: false }
    }

    /// Submits `ops` together (a linked pair stays whole).
    fn submit(&self, ops: &mut [&mut Op<'_>]) -> io::Result<()> {
        let entries: Vec<squeue::Entry> = ops.iter().map(|o| o.entry.clone()).collect();
        self.push(&entries)?;
        ops.iter_mut().for_each(|o| o.submitted = true);
        Ok(())
    }

    /// Queues `entries` together and submits them without waiting. Once queued they are in
    /// the ring whatever the submission's outcome: a failed `io_uring_enter` leaves them queued,
    /// and the driver enters again. An error means nothing was queued.
    fn push(&self, entries: &[squeue::Entry]) -> io::Result<()> {
        let mut ring = self.ring.borrow_mut();
        let room = {
            let sq = ring.submission();
            sq.capacity() - sq.len()
        };
        if room < entries.len() {
            let _ = ring.submit();
        }
        // SAFETY: every descriptor an entry names stays open until its completion arrives: the
        // requests' slots hold the file, the pipe and the socket's duplicate descriptor until
        // then (`Op::drop` hands them to the slot if its waiter goes first; advice holds its
        // file from the start).
        unsafe { ring.submission().push_multiple(entries) }
            .map_err(|_| io::Error::other("the splice ring's submission queue is full"))?;
        let _ = ring.submit();
        Ok(())
    }

    /// Reaps the completion queue, waking the sends waiting on it. Also enters the ring when
    /// requests are still queued (an earlier enter failed) or completions overflowed the queue
    /// (the kernel keeps those until an enter asks for them).
    fn reap(&self) {
        let mut ring = self.ring.borrow_mut();
        let mut slots = self.slots.borrow_mut();
        loop {
            for cqe in ring.completion() {
                let key = cqe.user_data() as usize;
                match std::mem::replace(&mut slots.slots[key], Slot::Done(cqe.result())) {
                    Slot::Waiting(waker) => {
                        if let Some(w) = waker {
                            w.wake();
                        }
                    }
                    Slot::Abandoned { .. } => slots.release(key),
                    Slot::Free | Slot::Done(_) => {}
                }
            }
            let (queued, overflow) = {
                let mut sq = ring.submission();
                sq.sync();
                (!sq.is_empty(), sq.cq_overflow())
            };
            if !(queued || overflow) {
                break;
            }
            // Overflowed completions come back with this enter: reap them too.
            let entered = ring.submit().is_ok();
            if !(overflow && entered) {
                break;
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

/// The driver: reaps completions whenever the helper thread says there are some, and at least
/// every `DROP_BEHIND_AFTER` (requests left queued, sent ranges to drop on an idle shard).
async fn drive(splicer: Weak<Splicer>, wake: flume::Receiver<()>) {
    loop {
        let woken = futures_lite::future::or(async { wake.recv_async().await.is_ok() }, async {
            glommio::timer::sleep(DROP_BEHIND_AFTER).await;
            true
        })
        .await;
        let Some(s) = splicer.upgrade() else { break };
        if !woken {
            break;
        }
        s.reap();
        s.drop_sent(std::time::Instant::now());
    }
}

/// One request's completion: its result (`-errno` for an error).
struct Op<'a> {
    splicer: &'a Splicer,
    key: usize,
    entry: squeue::Entry,
    /// The descriptors it names, handed to its slot if it is dropped before completing.
    keep: Vec<Keep>,
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
            Slot::Free | Slot::Abandoned { .. } => unreachable!("a request's slot is held until its waiter finishes"),
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
            Slot::Waiting(_) if self.submitted => {
                slots.slots[self.key] = Slot::Abandoned { _held: std::mem::take(&mut self.keep) }
            }
            _ => slots.release(self.key),
        }
    }
}
