//! The quorum's Raft log on disk: one append-only file, `log`, of framed, CRC-checked records
//! of every change (votes, entries, truncations, purges, the committed id), through
//! `ringtail_log::platform` files only.
//!
//! **One file, one order.** A vote and the entries around it are records of the same file,
//! written in the order openraft asked for them, and a write goes out only after the one
//! before it is fdatasynced: at any moment at most one write is unsynced, so a crash can only
//! tear the end of the file, and never keeps a later record while losing an earlier one (the
//! reordering openraft's `io_ordering` document shows losing committed data). `save_vote` and
//! `truncate_after` return once their record is synced; `append` returns at once (its entries
//! readable) and completes its `IOFlushed` after the sync; the committed id rides along with
//! the next sync. Writes of many callers share one sync (group commit) in a flusher task.
//!
//! **Recovery** reads the file front to back. A damaged or cut record reaching the end of the
//! file (or followed only by zeros) is the torn last write, which nobody was told was durable:
//! it is cut (the file is rewritten without it). Damage with whole records after it is refused
//! with [`QuorumStoreError::Damaged`].
//!
//! **Compaction.** Entries live in memory from open to purge (the metadata log is purged
//! behind every snapshot). Once the file holds more dead bytes (purged or truncated entries,
//! superseded votes) than live ones plus `LOG_DEAD_BYTES_MIN`, the flusher rewrites it whole
//! from memory (temporary file, fdatasync, rename, directory fsync), so its size stays within
//! about twice what is unpurged.
//!
//! The file's format is in `log_file.rs`.

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::future::poll_fn;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use openraft_rt::oneshot::{Oneshot as _, OneshotSender as _};
use ringtail_log::platform::{self, BufferedFile, OpenOptions};

use super::limits::{LOG_DEAD_BYTES_MIN, LOG_FILE_BYTES_MAX, LOG_READ_CHUNK_BYTES};
use super::log_file::{clone_change, frame, io_error, parse, Change, LogContent};
pub use super::log_file::{LogRecovery, QuorumStoreError, LOG_FILE};
use super::sync::{Oneshot, OneshotTx};
use super::types::{Entry, LogId, QuorumTypes, Vote};

/// Who hears that a write is durable.
enum Done {
    Flushed(IOFlushed<QuorumTypes>),
    Waiter(OneshotTx<Result<(), io::Error>>),
}

impl Done {
    fn complete(self, result: &Result<(), (io::ErrorKind, String)>) {
        let result = result.clone().map_err(|(kind, message)| io::Error::new(kind, message));
        match self {
            Done::Flushed(callback) => callback.io_completed(result),
            Done::Waiter(tx) => drop(tx.send(result)),
        }
    }
}

/// Records not yet handed to the flusher, and who waits for them.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    done: Vec<Done>,
    /// Something waits for durability (a committed id alone waits for the next sync).
    flush: bool,
    /// The file holds too many dead bytes: rewrite it from memory.
    compact: bool,
}

/// What the log file, its flusher and its readers share. Owned by the executor thread of the
/// node's `Raft` (`!Send`); only the flusher task writes the file.
struct Shared {
    dir: PathBuf,
    content: RefCell<LogContent>,
    pending: RefCell<Pending>,
    file: RefCell<Option<Rc<BufferedFile>>>,
    /// Bytes written and synced to the file.
    file_bytes: Cell<u64>,
    /// The first failed write or sync: the log stops for good (never a retried fsync).
    failed: RefCell<Option<(io::ErrorKind, String)>>,
    flusher: Rc<Signal>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.flusher.close();
    }
}

/// Wakes the flusher.
#[derive(Default)]
struct Signal {
    raised: Cell<bool>,
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    fn raise(&self) {
        self.raised.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn close(&self) {
        self.closed.set(true);
        self.raise();
    }

    /// Waits for a raise; false once closed.
    async fn wait(&self) -> bool {
        poll_fn(|cx| {
            if self.raised.replace(false) {
                return Poll::Ready(!self.closed.get());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl Shared {
    fn check(&self) -> Result<(), io::Error> {
        match &*self.failed.borrow() {
            Some((kind, message)) => Err(io::Error::new(*kind, format!("the quorum log stopped: {message}"))),
            None => Ok(()),
        }
    }

    /// Applies `change` in memory and queues its record; `done` hears when it is durable.
    fn push(&self, change: Change<'_>, done: Option<Done>, flush: bool) -> Result<(), io::Error> {
        self.check()?;
        let mut pending = self.pending.borrow_mut();
        let mut content = self.content.borrow_mut();
        let at = pending.bytes.len();
        frame(clone_change(&change), &mut pending.bytes);
        let record_bytes = (pending.bytes.len() - at) as u64;
        if let Err(reason) = content.apply(change, record_bytes) {
            pending.bytes.truncate(at);
            return Err(io::Error::new(io::ErrorKind::InvalidInput, reason));
        }
        pending.done.extend(done);
        pending.flush |= flush;
        let total = self.file_bytes.get() + pending.bytes.len() as u64;
        let dead = total.saturating_sub(content.live_bytes);
        if dead > content.live_bytes + LOG_DEAD_BYTES_MIN {
            pending.compact = true;
            pending.flush = true;
        }
        if pending.flush {
            self.flusher.raise();
        }
        Ok(())
    }

    /// Queues `change` and waits until it is durable.
    async fn push_durable(&self, change: Change<'_>) -> Result<(), io::Error> {
        let (tx, rx) = Oneshot::channel();
        self.push(change, Some(Done::Waiter(tx)), true)?;
        rx.await.map_err(|_| io::Error::other("the quorum log's flusher stopped"))?
    }

    /// Writes what is pending (or the whole log, compacted) and syncs it; completes the
    /// waiters after.
    async fn flush_once(&self) -> bool {
        let (bytes, done, compact) = {
            let mut pending = self.pending.borrow_mut();
            if !pending.flush {
                return false;
            }
            let p = std::mem::take(&mut *pending);
            (p.bytes, p.done, p.compact)
        };
        // After a failed write or fdatasync nothing more is written: the file's end is not
        // known any more (the failed write may be there, in part), and a write at the old end
        // would leave the rest of it behind as damage in the middle of the log. Found by the
        // deterministic simulation (an fdatasync failed, the next flush wrote over its records).
        let failed = self.failed.borrow().clone();
        if let Some(e) = failed {
            for d in done {
                d.complete(&Err(e.clone()));
            }
            return true;
        }
        let result = match compact {
            true => self.rewrite().await,
            false => self.write(bytes).await,
        };
        let result = result.map_err(|e| (e.kind(), e.to_string()));
        if let Err(e) = &result {
            self.failed.borrow_mut().get_or_insert_with(|| e.clone());
        }
        for d in done {
            d.complete(&result);
        }
        true
    }

    async fn write(&self, bytes: Vec<u8>) -> Result<(), io::Error> {
        let file = self.file.borrow().clone().ok_or_else(|| io::Error::other("the quorum log is closed"))?;
        let length = bytes.len();
        let at = self.file_bytes.get();
        let written = file.write_at(bytes, at).await.map_err(platform::io_error)?;
        if written != length {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "short write: the file system is full"));
        }
        file.fdatasync().await.map_err(platform::io_error)?;
        self.file_bytes.set(at + length as u64);
        Ok(())
    }

    /// Replaces the file with the log as memory holds it (which includes every pending
    /// record taken for this flush).
    async fn rewrite(&self) -> Result<(), io::Error> {
        let bytes = self.content.borrow().encode();
        let length = bytes.len() as u64;
        let old = self.file.borrow_mut().take();
        ringtail_log::write_file_atomic(&self.dir, LOG_FILE, bytes).await.map_err(io::Error::other)?;
        if let Some(old) = old.and_then(|f| Rc::try_unwrap(f).ok()) {
            // The old file is unlinked already; a failure to close it loses nothing.
            let _ = old.close().await;
        }
        let file = open_file(&self.dir.join(LOG_FILE)).await.map_err(io::Error::from)?;
        *self.file.borrow_mut() = Some(Rc::new(file));
        self.file_bytes.set(length);
        Ok(())
    }
}

async fn open_file(path: &Path) -> Result<BufferedFile, QuorumStoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .buffered_open(path)
        .await
        .map_err(|e| io_error("opening", path)(platform::io_error(e)))
}

/// Writes pending records until the log is dropped.
async fn flush_loop(shared: Weak<Shared>, signal: Rc<Signal>) {
    while signal.wait().await {
        let Some(shared) = shared.upgrade() else { return };
        while shared.flush_once().await {}
    }
}

/// Directory levels above the quorum directory whose entries are made durable at open: its
/// parent (`cluster-metadata`) and the data directory.
const ANCESTORS_SYNCED: usize = 2;

async fn sync_dir(dir: &Path) -> Result<(), QuorumStoreError> {
    let d = platform::Directory::open(dir).await.map_err(|e| io_error("opening", dir)(platform::io_error(e)))?;
    d.sync().await.map_err(|e| io_error("syncing", dir)(platform::io_error(e)))?;
    let _ = d.close().await;
    Ok(())
}

/// Creates `dir` and its missing parents, each made durable in its parent. An existing one is
/// synced, with its parents: a name seen in a directory may not be durable yet (a rename whose
/// directory fsync failed, or a crash before it), and nothing in it may be trusted until it is.
/// Found by a review with the simulation: a `log` whose rename was never synced was read,
/// appended to and acknowledged, then lost its name at the next power loss.
pub(crate) async fn create_dir_all(dir: &Path) -> Result<(), QuorumStoreError> {
    if platform::Directory::open(dir).await.is_ok() {
        sync_dir(dir).await?;
        let mut at = dir.parent();
        for _ in 0..ANCESTORS_SYNCED {
            match at.filter(|p| !p.as_os_str().is_empty()) {
                Some(p) => {
                    sync_dir(p).await?;
                    at = p.parent();
                }
                None => break,
            }
        }
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Box::pin(create_dir_all(parent)).await?;
    }
    let created =
        platform::Directory::create(dir).await.map_err(|e| io_error("creating", dir)(platform::io_error(e)))?;
    let _ = created.close().await;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        let p =
            platform::Directory::open(parent).await.map_err(|e| io_error("opening", parent)(platform::io_error(e)))?;
        p.sync().await.map_err(|e| io_error("syncing", parent)(platform::io_error(e)))?;
        let _ = p.close().await;
    }
    Ok(())
}

async fn read_all(file: &BufferedFile, path: &Path) -> Result<Vec<u8>, QuorumStoreError> {
    let size = file.file_size().await.map_err(|e| io_error("sizing", path)(platform::io_error(e)))?;
    if size > LOG_FILE_BYTES_MAX {
        return Err(QuorumStoreError::TooLarge { path: path.to_path_buf(), bytes: size, max: LOG_FILE_BYTES_MAX });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    while (bytes.len() as u64) < size {
        let want = (size - bytes.len() as u64).min(LOG_READ_CHUNK_BYTES as u64) as usize;
        let chunk = file
            .read_at(bytes.len() as u64, want)
            .await
            .map_err(|e| io_error("reading", path)(platform::io_error(e)))?;
        if chunk.is_empty() {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The quorum's Raft log (openraft's `RaftLogStorage`). Owned by the executor thread of the
/// node's `Raft` (`!Send`); its readers share its memory.
pub struct LogStore {
    shared: Rc<Shared>,
    recovery: LogRecovery,
}

/// Reads the log (openraft's `RaftLogReader`), from memory.
#[derive(Clone)]
pub struct LogReader {
    shared: Rc<Shared>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`: reads it, cuts a torn last write, and starts the
    /// flusher task on the current executor.
    pub async fn open(dir: &Path) -> Result<LogStore, QuorumStoreError> {
        create_dir_all(dir).await?;
        let path = dir.join(LOG_FILE);
        // A compaction that died before its rename leaves its temporary file; the log is whole.
        let _ = platform::remove(dir.join(format!("{LOG_FILE}.tmp"))).await;
        let file = open_file(&path).await?;
        let bytes = read_all(&file, &path).await?;
        let (content, valid_bytes, records) = parse(&bytes, &path)?;
        let torn_bytes = bytes.len() as u64 - valid_bytes;
        drop(bytes);
        let signal = Rc::new(Signal::default());
        let shared = Rc::new(Shared {
            dir: dir.to_path_buf(),
            content: RefCell::new(content),
            pending: RefCell::new(Pending::default()),
            file: RefCell::new(Some(Rc::new(file))),
            file_bytes: Cell::new(valid_bytes),
            failed: RefCell::new(None),
            flusher: signal.clone(),
        });
        if valid_bytes == 0 || torn_bytes > 0 {
            // A new log gets its header; a torn one loses its tail. Both by a rewrite, so the
            // next record never lands behind a torn one.
            shared.rewrite().await.map_err(io_error("rewriting", &path))?;
        }
        drop(platform::spawn_local(flush_loop(Rc::downgrade(&shared), signal)).detach());
        Ok(LogStore { shared, recovery: LogRecovery { records, torn_bytes } })
    }

    /// What recovery found at open.
    pub fn recovery(&self) -> LogRecovery {
        self.recovery
    }

    /// The log file's size as written, and the bytes a compaction would leave.
    pub fn file_bytes(&self) -> (u64, u64) {
        (self.shared.file_bytes.get(), self.shared.content.borrow().live_bytes)
    }
}

fn range_bounds<RB: RangeBounds<u64>>(range: &RB) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<QuorumTypes> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        self.shared.check()?;
        let content = self.shared.content.borrow();
        Ok(content.entries.range(range_bounds(&range)).map(|(_, (e, _))| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.shared.check()?;
        Ok(self.shared.content.borrow().vote)
    }
}

impl RaftLogReader<QuorumTypes> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        LogReader { shared: self.shared.clone() }.try_get_log_entries(range).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        LogReader { shared: self.shared.clone() }.read_vote().await
    }
}

impl RaftLogStorage<QuorumTypes> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<QuorumTypes>, io::Error> {
        self.shared.check()?;
        let content = self.shared.content.borrow();
        Ok(LogState { last_purged_log_id: content.last_purged, last_log_id: content.last_log_id() })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader { shared: self.shared.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.shared.push_durable(Change::Vote(vote)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.shared.push(Change::Committed(committed.as_ref()), None, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.shared.check()?;
        Ok(self.shared.content.borrow().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<QuorumTypes>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        for entry in entries {
            self.shared.push(Change::Entry(&entry), None, false)?;
        }
        self.shared.push_done(Done::Flushed(callback))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.shared.push_durable(Change::TruncateAfter(last_log_id.as_ref())).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // Not waited for: a purge lost in a crash leaves entries a snapshot covers already.
        self.shared.push(Change::Purge(&log_id), None, true)
    }
}

impl Shared {
    /// Registers `done` to hear when everything queued so far is durable.
    fn push_done(&self, done: Done) -> Result<(), io::Error> {
        self.check()?;
        let mut pending = self.pending.borrow_mut();
        pending.done.push(done);
        pending.flush = true;
        self.flusher.raise();
        Ok(())
    }
}
