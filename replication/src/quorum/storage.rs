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
//! Layout: an 8-byte header (`RTQL`, version u16, zero u16), then records: length u32 (of what
//! follows the CRC), CRC-32C u32 (of what follows it), kind u8, body. Bodies use `codec.rs`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
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

use super::codec::{self, DecodeError, Reader};
use super::limits::{ENTRY_BYTES_MAX, LOG_DEAD_BYTES_MIN, LOG_FILE_BYTES_MAX, LOG_READ_CHUNK_BYTES};
use super::sync::{Oneshot, OneshotTx};
use super::types::{Entry, LogId, QuorumTypes, Vote};

pub const LOG_FILE: &str = "log";
const LOG_MAGIC: &[u8; 4] = b"RTQL";
const LOG_VERSION: u16 = 1;
const HEADER_BYTES: usize = 8;
/// Length and CRC.
const FRAME_HEADER_BYTES: usize = 8;
/// The largest record body: an entry and its kind byte.
const FRAME_BODY_BYTES_MAX: usize = ENTRY_BYTES_MAX + 1;

const KIND_VOTE: u8 = 1;
const KIND_ENTRY: u8 = 2;
const KIND_TRUNCATE_AFTER: u8 = 3;
const KIND_PURGE: u8 = 4;
const KIND_COMMITTED: u8 = 5;

/// Why the quorum's files could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum QuorumStoreError {
    #[error("I/O error while {op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("{path} is damaged at byte {position}: {reason}; restore this controller's quorum directory from another controller or a backup")]
    Damaged { path: PathBuf, position: u64, reason: String },
    #[error("{path} is {bytes} bytes, more than the {max} a quorum log may be; it is not a quorum log, or its compaction failed")]
    TooLarge { path: PathBuf, bytes: u64, max: u64 },
}

impl From<QuorumStoreError> for io::Error {
    fn from(e: QuorumStoreError) -> io::Error {
        match e {
            QuorumStoreError::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> QuorumStoreError {
    let path = path.to_path_buf();
    move |source| QuorumStoreError::Io { op, path, source }
}

/// One change, as a record of the file.
enum Change<'a> {
    Vote(&'a Vote),
    Entry(&'a Entry),
    TruncateAfter(Option<&'a LogId>),
    Purge(&'a LogId),
    Committed(Option<&'a LogId>),
}

/// Appends `change` as one framed record.
fn frame(change: Change<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    match change {
        Change::Vote(v) => {
            out.push(KIND_VOTE);
            codec::put_vote(out, v);
        }
        Change::Entry(e) => {
            out.push(KIND_ENTRY);
            codec::put_entry(out, e);
        }
        Change::TruncateAfter(id) => {
            out.push(KIND_TRUNCATE_AFTER);
            codec::put_optional_log_id(out, id);
        }
        Change::Purge(id) => {
            out.push(KIND_PURGE);
            codec::put_log_id(out, id);
        }
        Change::Committed(id) => {
            out.push(KIND_COMMITTED);
            codec::put_optional_log_id(out, id);
        }
    }
    let body = start + FRAME_HEADER_BYTES;
    let length = out.len() - body;
    assert!(length <= FRAME_BODY_BYTES_MAX, "a quorum log record of {length} bytes");
    let crc = crc32c::crc32c(&out[body..]);
    out[start..start + 4].copy_from_slice(&(length as u32).to_be_bytes());
    out[start + 4..body].copy_from_slice(&crc.to_be_bytes());
}

/// The log as the records so far made it; in memory from open on.
#[derive(Debug, Default, Clone, PartialEq)]
struct LogContent {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    /// Unpurged entries by index, with the bytes of their records.
    entries: BTreeMap<u64, (Entry, u64)>,
    /// The bytes of the entries' records.
    entry_bytes: u64,
    /// Bytes of the records a compaction would write: the header, and the records of the
    /// vote, the committed id, the purge point and the entries.
    live_bytes: u64,
}

fn header() -> [u8; HEADER_BYTES] {
    let mut h = [0; HEADER_BYTES];
    h[0..4].copy_from_slice(LOG_MAGIC);
    h[4..6].copy_from_slice(&LOG_VERSION.to_be_bytes());
    h
}

/// The bytes of `change`'s record.
fn framed_len(change: Change<'_>) -> u64 {
    let mut out = Vec::new();
    frame(change, &mut out);
    out.len() as u64
}

impl LogContent {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries.values().next_back().map(|(e, _)| e.log_id).or(self.last_purged)
    }

    /// Refuses entries that do not continue the log (the no-hole rule).
    fn check_continues(&self, index: u64) -> Result<(), String> {
        let last = match (self.entries.keys().next_back(), &self.last_purged) {
            (Some(last), _) => *last,
            (None, Some(purged)) => purged.index,
            (None, None) => return Ok(()),
        };
        match last.checked_add(1) {
            Some(expected) if expected == index => Ok(()),
            _ => Err(format!("entry {index} does not follow entry {last}")),
        }
    }

    /// Applies `change`, whose record is `record_bytes` long.
    fn apply(&mut self, change: Change<'_>, record_bytes: u64) -> Result<(), String> {
        match change {
            Change::Vote(v) => self.vote = Some(*v),
            Change::Committed(id) => self.committed = id.copied(),
            Change::Entry(e) => {
                self.check_continues(e.log_id.index)?;
                self.entries.insert(e.log_id.index, (e.clone(), record_bytes));
                self.entry_bytes += record_bytes;
            }
            Change::TruncateAfter(id) => {
                let from = id.map_or(0, |id| id.index + 1);
                let cut = self.entries.split_off(&from);
                self.entry_bytes -= cut.values().map(|(_, b)| b).sum::<u64>();
            }
            Change::Purge(id) => {
                if self.last_purged.is_some_and(|p| p.index > id.index) {
                    return Err(format!("purge to {} after a purge to {:?}", id.index, self.last_purged));
                }
                let kept = self.entries.split_off(&(id.index + 1));
                self.entry_bytes -= self.entries.values().map(|(_, b)| b).sum::<u64>();
                self.entries = kept;
                self.last_purged = Some(*id);
            }
        }
        self.live_bytes = self.count_live_bytes();
        Ok(())
    }

    fn count_live_bytes(&self) -> u64 {
        let mut bytes = HEADER_BYTES as u64 + framed_len(Change::Committed(self.committed.as_ref()));
        bytes += self.vote.as_ref().map_or(0, |v| framed_len(Change::Vote(v)));
        bytes += self.last_purged.as_ref().map_or(0, |p| framed_len(Change::Purge(p)));
        bytes + self.entry_bytes
    }

    /// The whole file a compaction writes.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.live_bytes as usize);
        out.extend_from_slice(&header());
        if let Some(v) = &self.vote {
            frame(Change::Vote(v), &mut out);
        }
        if let Some(p) = &self.last_purged {
            frame(Change::Purge(p), &mut out);
        }
        for (e, _) in self.entries.values() {
            frame(Change::Entry(e), &mut out);
        }
        frame(Change::Committed(self.committed.as_ref()), &mut out);
        debug_assert_eq!(out.len() as u64, self.live_bytes);
        out
    }
}

/// What reading the log file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecovery {
    /// Records read.
    pub records: u64,
    /// Bytes of a torn last write, cut.
    pub torn_bytes: u64,
}

/// Parses a log file. Returns the content and the bytes of whole, valid records; anything
/// after them is a torn last write.
fn parse(bytes: &[u8], path: &Path) -> Result<(LogContent, u64, u64), QuorumStoreError> {
    let damaged = |position: usize, reason: String| QuorumStoreError::Damaged {
        path: path.to_path_buf(),
        position: position as u64,
        reason,
    };
    let mut content = LogContent::default();
    if bytes.len() < HEADER_BYTES || bytes.iter().all(|&b| b == 0) {
        if bytes.iter().all(|&b| b == 0) || header().starts_with(bytes) {
            // A new log, or its first write torn.
            content.live_bytes = content.count_live_bytes();
            return Ok((content, 0, 0));
        }
        return Err(damaged(0, "not a quorum log (too short for its header)".into()));
    }
    if &bytes[0..4] != LOG_MAGIC {
        return Err(damaged(0, "not a quorum log (bad magic)".into()));
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != LOG_VERSION {
        return Err(damaged(4, format!("version {version}; this build reads {LOG_VERSION}")));
    }
    let mut at = HEADER_BYTES;
    let mut records = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn_from_here = rest.len() < FRAME_HEADER_BYTES || rest.iter().all(|&b| b == 0);
        if torn_from_here {
            break;
        }
        let length = u32::from_be_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        if length > FRAME_BODY_BYTES_MAX {
            return Err(damaged(at, format!("a record of {length} bytes")));
        }
        let end = FRAME_HEADER_BYTES + length;
        if end > rest.len() {
            // Cut by the end of the file: the torn last write.
            break;
        }
        let crc = u32::from_be_bytes(rest[4..8].try_into().expect("4 bytes"));
        if crc32c::crc32c(&rest[FRAME_HEADER_BYTES..end]) != crc {
            if rest[end..].iter().all(|&b| b == 0) {
                break;
            }
            return Err(damaged(at, "a record fails its checksum and whole records follow".into()));
        }
        let body = &rest[FRAME_HEADER_BYTES..end];
        apply_record(&mut content, body, end as u64).map_err(|reason| damaged(at, reason))?;
        records += 1;
        at += end;
    }
    content.live_bytes = content.count_live_bytes();
    Ok((content, at as u64, records))
}

fn apply_record(content: &mut LogContent, body: &[u8], record_bytes: u64) -> Result<(), String> {
    let mut r = Reader::new(body);
    let decoded = (|| -> Result<_, DecodeError> {
        let kind = r.u8()?;
        let change = match kind {
            KIND_VOTE => Decoded::Vote(codec::vote(&mut r)?),
            KIND_ENTRY => Decoded::Entry(codec::entry(&mut r)?),
            KIND_TRUNCATE_AFTER => Decoded::TruncateAfter(codec::optional_log_id(&mut r)?),
            KIND_PURGE => Decoded::Purge(codec::log_id(&mut r)?),
            KIND_COMMITTED => Decoded::Committed(codec::optional_log_id(&mut r)?),
            other => return Err(DecodeError(format!("record kind {other}"))),
        };
        r.finish()?;
        Ok(change)
    })()
    .map_err(|DecodeError(e)| e)?;
    match &decoded {
        Decoded::Vote(v) => content.apply(Change::Vote(v), record_bytes),
        Decoded::Entry(e) => content.apply(Change::Entry(e), record_bytes),
        Decoded::TruncateAfter(id) => content.apply(Change::TruncateAfter(id.as_ref()), record_bytes),
        Decoded::Purge(id) => content.apply(Change::Purge(id), record_bytes),
        Decoded::Committed(id) => content.apply(Change::Committed(id.as_ref()), record_bytes),
    }
}

enum Decoded {
    Vote(Vote),
    Entry(Entry),
    TruncateAfter(Option<LogId>),
    Purge(LogId),
    Committed(Option<LogId>),
}

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

fn clone_change<'a>(change: &Change<'a>) -> Change<'a> {
    match change {
        Change::Vote(v) => Change::Vote(v),
        Change::Entry(e) => Change::Entry(e),
        Change::TruncateAfter(id) => Change::TruncateAfter(*id),
        Change::Purge(id) => Change::Purge(id),
        Change::Committed(id) => Change::Committed(*id),
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

/// Creates `dir` and its missing parents, each made durable in its parent.
pub(crate) async fn create_dir_all(dir: &Path) -> Result<(), QuorumStoreError> {
    if platform::Directory::open(dir).await.is_ok() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::codec::tests::{batch_of, log_id_of, membership_of, sample_entries};
    use openraft::EntryPayload;

    fn file_of(changes: &[Change<'_>]) -> Vec<u8> {
        let mut out = header().to_vec();
        for c in changes {
            frame(clone_change(c), &mut out);
        }
        out
    }

    fn vote(term: u64) -> Vote {
        Vote { leader_id: super::super::types::LeaderId { term, voted_for: 1 }, committed: false }
    }

    #[test]
    fn records_replay_to_the_same_content_and_compaction_keeps_it() {
        let entries = sample_entries();
        let v = vote(3);
        let mut changes: Vec<Change<'_>> = vec![Change::Vote(&v)];
        changes.extend(entries[..4].iter().map(Change::Entry));
        let purge = log_id_of(1, 1);
        let after = log_id_of(1, 2);
        changes.push(Change::Purge(&purge));
        changes.push(Change::TruncateAfter(Some(&after)));
        changes.push(Change::Committed(Some(&after)));
        let bytes = file_of(&changes);
        let (content, valid, records) = parse(&bytes, Path::new("log")).unwrap();
        assert_eq!((valid, records), (bytes.len() as u64, changes.len() as u64));
        assert_eq!(content.vote, Some(v));
        assert_eq!(content.entries.keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(
            (content.last_purged, content.committed, content.last_log_id()),
            (Some(purge), Some(after), Some(after))
        );
        let compacted = content.encode();
        assert!(compacted.len() < bytes.len());
        let (again, _, _) = parse(&compacted, Path::new("log")).unwrap();
        assert_eq!(again, content);
    }

    #[test]
    fn a_torn_tail_is_cut_and_damage_before_the_end_refused() {
        let mut entries = sample_entries();
        entries.truncate(4);
        let changes: Vec<Change<'_>> = entries.iter().map(Change::Entry).collect();
        let bytes = file_of(&changes);
        let path = Path::new("log");
        let whole = parse(&bytes, path).unwrap();
        for cut in HEADER_BYTES..bytes.len() {
            let (content, valid, _) = parse(&bytes[..cut], path).unwrap();
            assert!(valid <= cut as u64 && content.entries.len() < entries.len(), "cut at {cut}");
            // What survives is a prefix of the log.
            assert!(content.entries.keys().zip(whole.0.entries.keys()).all(|(a, b)| a == b));
        }
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(parse(&zeros, path).unwrap().1, bytes.len() as u64, "a zero tail is no record");
        let mut flipped = bytes.clone();
        flipped[HEADER_BYTES + FRAME_HEADER_BYTES + 3] ^= 1;
        assert!(matches!(parse(&flipped, path), Err(QuorumStoreError::Damaged { .. })), "damage in the first record");
        let mut last = bytes.clone();
        let n = last.len();
        last[n - 1] ^= 1;
        assert_eq!(
            parse(&last, path).unwrap().0.entries.len(),
            entries.len() - 1,
            "damage in the last is a torn write"
        );
        let mut gap = file_of(&changes[..1]);
        frame(clone_change(&changes[2]), &mut gap);
        assert!(matches!(parse(&gap, path), Err(QuorumStoreError::Damaged { .. })), "a hole in the entries");
    }

    #[test]
    fn entries_must_continue_the_log() {
        let mut content = LogContent::default();
        let e = |i| Entry { log_id: log_id_of(1, i), payload: EntryPayload::Normal(batch_of(1, 1)) };
        content.apply(Change::Entry(&e(5)), 0).unwrap();
        assert!(content.apply(Change::Entry(&e(7)), 0).is_err());
        content.apply(Change::Purge(&log_id_of(1, 9)), 0).unwrap();
        assert!(content.entries.is_empty());
        assert!(content.apply(Change::Entry(&e(6)), 0).is_err());
        content.apply(Change::Entry(&e(10)), 0).unwrap();
        let m = Entry { log_id: log_id_of(2, 11), payload: EntryPayload::Membership(membership_of(&[1])) };
        content.apply(Change::Entry(&m), 0).unwrap();
        assert_eq!(content.last_log_id(), Some(log_id_of(2, 11)));
    }
}
