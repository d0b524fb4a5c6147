//! An in-memory disk with the crash semantics a log must survive.
//!
//! Every file has what the page cache shows (`data`) and what is on the platter (`durable`),
//! with the operations in between (`pending`: writes and size changes since its last
//! fdatasync). Names work the same way: creates, renames and removes are durable once their
//! directory is synced, and a crash keeps a prefix of the unsynced ones (a journaling file
//! system commits metadata in order). On a crash each file keeps its durable bytes plus a
//! random subset of its pending operations (disks reorder unsynced writes), the last write
//! kept may be torn at a sector boundary, and everything unsynced is otherwise lost. Strictly
//! POSIX: an fdatasync of a new file does not make its name durable; only its directory's sync
//! does.
//!
//! Every operation takes virtual time (a random latency) and can fail with a configured
//! probability: EIO for reads, writes and syncs, ENOSPC for operations that take space.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use super::executor::{sleep, with_rng};

/// Alignment of direct-I/O writes (and of their buffers' lengths).
const DIRECT_ALIGN: u64 = 4096;
/// Granularity of a torn write.
const SECTOR: usize = 512;

/// How often operations fail, and how long they take.
#[derive(Debug, Clone, Copy)]
pub struct DiskFaults {
    /// Probability that a read, write, sync, truncate, create, rename or remove fails.
    pub fail: f64,
    /// Probability that an operation taking space fails with ENOSPC (instead of EIO) when it fails.
    pub no_space_share: f64,
    /// Probability that a pending write survives a crash.
    pub keep_unsynced: f64,
    /// Probability that the last pending write kept by a crash is torn.
    pub tear: f64,
    /// Latency of an operation, microseconds, uniform in this range.
    pub latency_us: (u64, u64),
    /// Extra latency of an fdatasync, microseconds.
    pub sync_latency_us: (u64, u64),
}

impl Default for DiskFaults {
    fn default() -> Self {
        DiskFaults {
            fail: 0.0,
            no_space_share: 0.3,
            keep_unsynced: 0.5,
            tear: 0.3,
            latency_us: (5, 200),
            sync_latency_us: (50, 2000),
        }
    }
}

#[derive(Debug, Clone)]
enum DataOp {
    Write { pos: u64, bytes: Rc<[u8]> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<DataOp>,
}

fn apply(target: &mut Vec<u8>, op: &DataOp) {
    match op {
        DataOp::Write { pos, bytes } => {
            let end = *pos as usize + bytes.len();
            if target.len() < end {
                target.resize(end, 0);
            }
            target[*pos as usize..end].copy_from_slice(bytes);
        }
        DataOp::SetLen(len) => target.resize(*len as usize, 0),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

#[derive(Debug, Clone)]
enum NameOp {
    Create(PathBuf, Entry),
    Remove(PathBuf),
    Rename(PathBuf, PathBuf),
}

impl NameOp {
    fn touches(&self, dir: &Path) -> bool {
        let parent = |p: &PathBuf| p.parent() == Some(dir);
        match self {
            NameOp::Create(p, _) | NameOp::Remove(p) => parent(p),
            NameOp::Rename(a, b) => parent(a) || parent(b),
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, Entry>) {
        match self {
            NameOp::Create(p, e) => {
                names.insert(p.clone(), *e);
            }
            NameOp::Remove(p) => {
                names.remove(p);
            }
            NameOp::Rename(a, b) => {
                if let Some(e) = names.remove(a) {
                    names.insert(b.clone(), e);
                }
            }
        }
    }
}

/// The simulated disk of the current thread.
#[derive(Debug, Default)]
pub struct SimDisk {
    inodes: HashMap<u64, Inode>,
    names: BTreeMap<PathBuf, Entry>,
    durable_names: BTreeMap<PathBuf, Entry>,
    pending_names: Vec<NameOp>,
    next_inode: u64,
    /// Bumped by every crash: handles opened before it fail.
    generation: u64,
    /// Per directory crashed alone (`crash_under`), the crash count then: handles under it
    /// opened before fail too.
    crashed_dirs: BTreeMap<PathBuf, u64>,
    crashes: u64,
    pub faults: DiskFaults,
    /// Operations failed so far (for the harness's report).
    pub failures: u64,
}

thread_local! {
    static DISK: RefCell<SimDisk> = RefCell::new(SimDisk::default());
}

/// Runs `f` on this thread's disk.
pub fn with_disk<T>(f: impl FnOnce(&mut SimDisk) -> T) -> T {
    DISK.with(|d| f(&mut d.borrow_mut()))
}

pub(crate) fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

fn stale() -> io::Error {
    io::Error::from_raw_os_error(libc::EBADF)
}

impl SimDisk {
    /// A fresh, empty disk with `faults` (replaces this thread's disk).
    pub fn reset(faults: DiskFaults) {
        with_disk(|d| {
            *d = SimDisk { faults, ..SimDisk::default() };
            d.names.insert(PathBuf::from("/"), Entry::Dir);
            d.durable_names.insert(PathBuf::from("/"), Entry::Dir);
        });
    }

    /// Creates a directory and its parents, durably (the harness's setup, as an operator
    /// prepares a data directory).
    pub fn mkdir_durable(path: &Path) {
        with_disk(|d| {
            let mut at = Some(path);
            let mut missing = Vec::new();
            while let Some(p) = at.filter(|p| !p.as_os_str().is_empty()) {
                if !d.names.contains_key(p) {
                    missing.push(p.to_path_buf());
                }
                at = p.parent();
            }
            for p in missing.into_iter().rev() {
                d.names.insert(p.clone(), Entry::Dir);
                d.durable_names.insert(p, Entry::Dir);
            }
        });
    }

    /// Changes how operations fail from now on.
    pub fn reset_faults(faults: DiskFaults) {
        with_disk(|d| d.faults = faults);
    }

    /// Operations failed on purpose so far.
    pub fn failures() -> u64 {
        with_disk(|d| d.failures)
    }

    /// The machine loses power: every file keeps its durable bytes and a random part of what
    /// was not synced (the last write kept possibly torn); names keep a random prefix of their
    /// unsynced changes. Handles opened before fail afterwards.
    pub fn crash() {
        with_disk(|d| {
            let kept = with_rng(|r| r.below(d.pending_names.len() as u64 + 1)) as usize;
            let mut names = std::mem::take(&mut d.durable_names);
            for op in &d.pending_names[..kept] {
                op.apply(&mut names);
            }
            d.pending_names.clear();
            d.durable_names = names.clone();
            d.names = names;
            let faults = d.faults;
            let mut inodes: Vec<u64> = d.inodes.keys().copied().collect();
            inodes.sort_unstable();
            for ino in inodes {
                let inode = d.inodes.get_mut(&ino).expect("listed");
                crash_inode(inode, &faults);
            }
            let live: std::collections::HashSet<u64> =
                d.names.values().filter_map(|e| if let Entry::File(i) = e { Some(*i) } else { None }).collect();
            d.inodes.retain(|i, _| live.contains(i));
            d.generation += 1;
        });
    }

    /// One machine loses power: only what lies under `dir` (that node's data directory) is
    /// affected, as [`SimDisk::crash`] does to everything: its unsynced name changes keep a
    /// random prefix, its files their durable bytes and a random part of the rest. Its handles
    /// must be dropped with its tasks (`Sim::kill_group`).
    pub fn crash_under(dir: &Path) {
        with_disk(|d| {
            d.crashes += 1;
            d.crashed_dirs.insert(dir.to_path_buf(), d.crashes);
            let under = |p: &PathBuf| p.starts_with(dir);
            let touches = |op: &NameOp| match op {
                NameOp::Create(p, _) | NameOp::Remove(p) => under(p),
                NameOp::Rename(a, b) => under(a) || under(b),
            };
            let (mine, others): (Vec<NameOp>, Vec<NameOp>) = d.pending_names.drain(..).partition(|op| touches(op));
            d.pending_names = others;
            let kept = with_rng(|r| r.below(mine.len() as u64 + 1)) as usize;
            for op in &mine[..kept] {
                op.apply(&mut d.durable_names);
            }
            let affected: std::collections::BTreeSet<u64> = d
                .names
                .iter()
                .chain(d.durable_names.iter())
                .filter(|(p, _)| under(p))
                .filter_map(|(_, e)| if let Entry::File(i) = e { Some(*i) } else { None })
                .collect();
            d.names.retain(|p, _| !under(p));
            let durable: Vec<(PathBuf, Entry)> =
                d.durable_names.iter().filter(|(p, _)| under(p)).map(|(p, e)| (p.clone(), *e)).collect();
            d.names.extend(durable);
            let faults = d.faults;
            for ino in affected {
                let Some(inode) = d.inodes.get_mut(&ino) else { continue };
                if std::env::var_os("SIM_DEBUG").is_some() {
                    let ops: Vec<String> = inode
                        .pending
                        .iter()
                        .map(|op| match op {
                            DataOp::Write { pos, bytes } => format!("W{pos}+{}", bytes.len()),
                            DataOp::SetLen(l) => format!("L{l}"),
                        })
                        .collect();
                    eprintln!(
                        "crash inode {ino}: durable {} data {} pending {ops:?}",
                        inode.durable.len(),
                        inode.data.len()
                    );
                }
                crash_inode(inode, &faults);
                if std::env::var_os("SIM_DEBUG").is_some() {
                    eprintln!("  after: {}", inode.data.len());
                }
            }
        });
    }

    /// Everything under `dir` (not `dir` itself) is removed, durably: a replica's files deleted
    /// and the directory synced, as a broker does before it fetches a damaged replica again.
    pub fn remove_under(dir: &Path) {
        with_disk(|d| {
            let under = |p: &PathBuf| p.starts_with(dir) && p.as_path() != dir;
            d.pending_names.retain(|op| match op {
                NameOp::Create(p, _) | NameOp::Remove(p) => !under(p),
                NameOp::Rename(a, b) => !under(a) && !under(b),
            });
            // The files' inodes stay while handles to them may (as on Linux); the next crash
            // drops them.
            d.names.retain(|p, _| !under(p));
            d.durable_names.retain(|p, _| !under(p));
        });
    }

    /// A file's current bytes (for the harness's reports).
    pub fn read_file(path: &Path) -> Option<Vec<u8>> {
        with_disk(|d| match d.names.get(path) {
            Some(Entry::File(i)) => Some(d.inodes[i].data.clone()),
            _ => None,
        })
    }

    /// Every file and its current bytes (for the harness's checks and reports).
    pub fn files() -> Vec<(PathBuf, usize)> {
        with_disk(|d| {
            d.names
                .iter()
                .filter_map(|(p, e)| match e {
                    Entry::File(i) => Some((p.clone(), d.inodes[i].data.len())),
                    Entry::Dir => None,
                })
                .collect()
        })
    }

    pub(crate) fn list(&self, dir: &Path) -> io::Result<Vec<(PathBuf, u64, bool)>> {
        if self.names.get(dir) != Some(&Entry::Dir) {
            return Err(not_found());
        }
        Ok(self
            .names
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, e)| match e {
                Entry::File(i) => (p.clone(), self.inodes[i].data.len() as u64, true),
                Entry::Dir => (p.clone(), 0, false),
            })
            .collect())
    }

    pub(crate) fn len_of(&self, path: &Path) -> io::Result<u64> {
        match self.names.get(path) {
            Some(Entry::File(i)) => Ok(self.inodes[i].data.len() as u64),
            Some(Entry::Dir) => Ok(0),
            None => Err(not_found()),
        }
    }

    pub(crate) fn is_dir(&self, path: &Path) -> bool {
        self.names.get(path) == Some(&Entry::Dir)
    }

    fn name_op(&mut self, op: NameOp) {
        op.apply(&mut self.names);
        self.pending_names.push(op);
    }

    fn parent_exists(&self, path: &Path) -> bool {
        match path.parent() {
            Some(p) if p.as_os_str().is_empty() => true,
            Some(p) => self.is_dir(p),
            None => true,
        }
    }

    /// Strictly POSIX: only the name changes of entries in `dir` become durable.
    fn sync_dir(&mut self, dir: &Path) {
        let (synced, rest): (Vec<NameOp>, Vec<NameOp>) =
            std::mem::take(&mut self.pending_names).into_iter().partition(|op| op.touches(dir));
        for op in &synced {
            op.apply(&mut self.durable_names);
        }
        self.pending_names = rest;
    }

    fn inode(&mut self, handle: &Handle) -> io::Result<&mut Inode> {
        if handle.generation != self.generation {
            return Err(stale());
        }
        if self.crashed_dirs.iter().any(|(dir, at)| handle.path.starts_with(dir) && *at > handle.opened_at) {
            return Err(stale());
        }
        self.inodes.get_mut(&handle.inode).ok_or_else(stale)
    }
}

/// A file through a power loss: its durable bytes, and each unsynced operation kept or lost at
/// random (disks reorder writes), the last write kept possibly torn at a sector.
fn crash_inode(inode: &mut Inode, faults: &DiskFaults) {
    let pending = std::mem::take(&mut inode.pending);
    let keep: Vec<bool> = with_rng(|r| pending.iter().map(|_| r.chance(faults.keep_unsynced)).collect());
    let last_write =
        pending.iter().enumerate().rev().find(|(i, op)| keep[*i] && matches!(op, DataOp::Write { .. })).map(|(i, _)| i);
    for (i, op) in pending.iter().enumerate() {
        if !keep[i] {
            continue;
        }
        match op {
            DataOp::Write { pos, bytes } if Some(i) == last_write && with_rng(|r| r.chance(faults.tear)) => {
                let sectors = bytes.len().div_ceil(SECTOR) as u64;
                let n = (with_rng(|r| r.below(sectors)) as usize * SECTOR).min(bytes.len());
                let torn = DataOp::Write { pos: *pos, bytes: Rc::from(&bytes[..n]) };
                apply(&mut inode.durable, &torn);
            }
            op => apply(&mut inode.durable, op),
        }
    }
    inode.data = inode.durable.clone();
}

/// Waits an operation's latency, then decides whether it fails.
async fn operation(takes_space: bool, sync: bool) -> io::Result<()> {
    let faults = with_disk(|d| d.faults);
    let mut micros = with_rng(|r| r.between(faults.latency_us.0, faults.latency_us.1));
    if sync {
        micros += with_rng(|r| r.between(faults.sync_latency_us.0, faults.sync_latency_us.1));
    }
    sleep(Duration::from_micros(micros)).await;
    if with_rng(|r| r.chance(faults.fail)) {
        with_disk(|d| d.failures += 1);
        let no_space = takes_space && with_rng(|r| r.chance(faults.no_space_share));
        return Err(io::Error::from_raw_os_error(if no_space { libc::ENOSPC } else { libc::EIO }));
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Handle {
    inode: u64,
    generation: u64,
    /// The crash count when it was opened.
    opened_at: u64,
    path: PathBuf,
}

/// Bytes read: the page cache's view of the range (shorter at the end of the file).
#[derive(Debug)]
pub struct ReadResult(Vec<u8>);

impl Deref for ReadResult {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A buffer for direct-I/O writes.
#[derive(Debug)]
pub struct DmaBuffer(Vec<u8>);

impl DmaBuffer {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// Options for opening a file, glommio's builder.
#[derive(Debug, Default, Clone)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    create: bool,
    truncate: bool,
}

impl OpenOptions {
    pub fn new() -> Self {
        OpenOptions::default()
    }

    pub fn read(mut self, v: bool) -> Self {
        self.read = v;
        self
    }

    pub fn write(mut self, v: bool) -> Self {
        self.write = v;
        self
    }

    pub fn create(mut self, v: bool) -> Self {
        self.create = v;
        self
    }

    pub fn truncate(mut self, v: bool) -> Self {
        self.truncate = v;
        self
    }

    async fn open(&self, path: &Path) -> io::Result<Handle> {
        operation(self.create, false).await?;
        with_disk(|d| {
            let inode = match d.names.get(path) {
                Some(Entry::File(i)) => *i,
                Some(Entry::Dir) => return Err(io::Error::from_raw_os_error(libc::EISDIR)),
                None if self.create && d.parent_exists(path) => {
                    let i = d.next_inode;
                    d.next_inode += 1;
                    d.inodes.insert(i, Inode::default());
                    d.name_op(NameOp::Create(path.to_path_buf(), Entry::File(i)));
                    i
                }
                None => return Err(not_found()),
            };
            let handle = Handle { inode, generation: d.generation, opened_at: d.crashes, path: path.to_path_buf() };
            if self.truncate {
                let node = d.inode(&handle)?;
                node.data.clear();
                node.pending.push(DataOp::SetLen(0));
            }
            Ok(handle)
        })
    }

    pub async fn dma_open(&self, path: impl AsRef<Path>) -> io::Result<DmaFile> {
        Ok(DmaFile { handle: self.open(path.as_ref()).await? })
    }

    pub async fn buffered_open(&self, path: impl AsRef<Path>) -> io::Result<BufferedFile> {
        Ok(BufferedFile { handle: self.open(path.as_ref()).await? })
    }
}

async fn read_at(handle: &Handle, pos: u64, len: usize) -> io::Result<ReadResult> {
    operation(false, false).await?;
    with_disk(|d| {
        let node = d.inode(handle)?;
        let start = (pos as usize).min(node.data.len());
        let end = (pos as usize).saturating_add(len).min(node.data.len());
        Ok(ReadResult(node.data[start..end].to_vec()))
    })
}

fn debug_failure(what: &str, path: &Path, e: io::Error) -> io::Error {
    if std::env::var_os("SIM_DEBUG").is_some() {
        eprintln!("{:?} injected: {what} {} failed: {e}", super::executor::now_nanos(), path.display());
    }
    e
}

async fn write_at(handle: &Handle, pos: u64, bytes: &[u8]) -> io::Result<usize> {
    operation(true, false)
        .await
        .map_err(|e| debug_failure(&format!("write at {pos}+{}", bytes.len()), &handle.path, e))?;
    with_disk(|d| {
        let node = d.inode(handle)?;
        let op = DataOp::Write { pos, bytes: Rc::from(bytes) };
        apply(&mut node.data, &op);
        node.pending.push(op);
        Ok(bytes.len())
    })
}

async fn set_len(handle: &Handle, len: u64, takes_space: bool) -> io::Result<()> {
    operation(takes_space, false).await?;
    with_disk(|d| {
        let node = d.inode(handle)?;
        let op = DataOp::SetLen(len);
        apply(&mut node.data, &op);
        node.pending.push(op);
        Ok(())
    })
}

async fn fdatasync(handle: &Handle) -> io::Result<()> {
    operation(false, true).await.map_err(|e| debug_failure("fdatasync", &handle.path, e))?;
    with_disk(|d| {
        let node = d.inode(handle)?;
        for op in std::mem::take(&mut node.pending) {
            apply(&mut node.durable, &op);
        }
        debug_assert_eq!(node.durable, node.data);
        Ok(())
    })
}

async fn file_size(handle: &Handle) -> io::Result<u64> {
    with_disk(|d| Ok(d.inode(handle)?.data.len() as u64))
}

/// A segment file opened for direct I/O.
#[derive(Debug)]
pub struct DmaFile {
    handle: Handle,
}

impl DmaFile {
    pub async fn open(path: impl AsRef<Path>) -> io::Result<DmaFile> {
        OpenOptions::new().read(true).dma_open(path).await
    }

    pub fn alloc_dma_buffer(&self, size: usize) -> DmaBuffer {
        DmaBuffer(vec![0; size])
    }

    pub async fn write_rc_at(&self, buf: Rc<DmaBuffer>, pos: u64) -> io::Result<usize> {
        if !pos.is_multiple_of(DIRECT_ALIGN) || !(buf.len() as u64).is_multiple_of(DIRECT_ALIGN) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        write_at(&self.handle, pos, buf.as_bytes()).await
    }

    pub async fn read_at(&self, pos: u64, len: usize) -> io::Result<ReadResult> {
        read_at(&self.handle, pos, len).await
    }

    pub async fn fdatasync(&self) -> io::Result<()> {
        fdatasync(&self.handle).await
    }

    pub async fn truncate(&self, len: u64) -> io::Result<()> {
        set_len(&self.handle, len, false).await
    }

    /// Grows the file to `size` with zeros (`keep_size` false: the size changes, as the log asks).
    pub async fn pre_allocate(&self, size: u64, keep_size: bool) -> io::Result<()> {
        assert!(!keep_size, "the simulated disk models preallocation that changes the size");
        let current = file_size(&self.handle).await?;
        if size <= current {
            return Ok(());
        }
        set_len(&self.handle, size, true).await
    }

    pub async fn file_size(&self) -> io::Result<u64> {
        file_size(&self.handle).await
    }

    pub async fn close(self) -> io::Result<()> {
        Ok(())
    }

    pub fn path(&self) -> Option<&Path> {
        Some(&self.handle.path)
    }
}

/// A small file through the page cache.
#[derive(Debug)]
pub struct BufferedFile {
    handle: Handle,
}

impl BufferedFile {
    pub async fn open(path: impl AsRef<Path>) -> io::Result<BufferedFile> {
        OpenOptions::new().read(true).buffered_open(path).await
    }

    pub async fn read_at(&self, pos: u64, len: usize) -> io::Result<ReadResult> {
        read_at(&self.handle, pos, len).await
    }

    pub async fn write_at(&self, bytes: Vec<u8>, pos: u64) -> io::Result<usize> {
        write_at(&self.handle, pos, &bytes).await
    }

    pub async fn fdatasync(&self) -> io::Result<()> {
        fdatasync(&self.handle).await
    }

    pub async fn file_size(&self) -> io::Result<u64> {
        file_size(&self.handle).await
    }

    pub async fn close(self) -> io::Result<()> {
        Ok(())
    }
}

/// A directory handle, for creating directories and making their entries durable.
#[derive(Debug)]
pub struct Directory {
    path: PathBuf,
    generation: u64,
}

impl Directory {
    /// Creates the directory (succeeds if it exists); its parent must exist, as with glommio.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<Directory> {
        let path = path.as_ref().to_path_buf();
        operation(true, false).await?;
        with_disk(|d| {
            if !d.names.contains_key(&path) {
                if !d.parent_exists(&path) {
                    return Err(not_found());
                }
                d.name_op(NameOp::Create(path.clone(), Entry::Dir));
            }
            match d.names.get(&path) {
                Some(Entry::Dir) => Ok(Directory { path: path.clone(), generation: d.generation }),
                _ => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            }
        })
    }

    pub async fn open(path: impl AsRef<Path>) -> io::Result<Directory> {
        let path = path.as_ref().to_path_buf();
        operation(false, false).await?;
        with_disk(|d| match d.is_dir(&path) {
            true => Ok(Directory { path: path.clone(), generation: d.generation }),
            false => Err(not_found()),
        })
    }

    /// Makes the directory's entries durable (only its own, as POSIX promises).
    pub async fn sync(&self) -> io::Result<()> {
        operation(false, true).await?;
        with_disk(|d| {
            if d.generation != self.generation {
                return Err(stale());
            }
            d.sync_dir(&self.path);
            Ok(())
        })
    }

    pub async fn close(self) -> io::Result<()> {
        Ok(())
    }
}

/// Removes a file (its open handles keep working, as on Linux).
pub async fn remove(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    operation(false, false).await?;
    with_disk(|d| match d.names.get(&path) {
        Some(Entry::File(_)) => {
            d.name_op(NameOp::Remove(path));
            Ok(())
        }
        Some(Entry::Dir) => Err(io::Error::from_raw_os_error(libc::EISDIR)),
        None => Err(not_found()),
    })
}

/// Renames a file over another, atomically.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref().to_path_buf(), to.as_ref().to_path_buf());
    operation(false, false).await?;
    with_disk(|d| match d.names.get(&from) {
        Some(Entry::File(_)) if d.parent_exists(&to) => {
            d.name_op(NameOp::Rename(from, to));
            Ok(())
        }
        Some(_) => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        None => Err(not_found()),
    })
}
