//! The broker's runtime: glommio for files, tasks and timers; the kernel for listings and clocks.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use glommio::io::{remove, rename, BufferedFile, Directory, DmaBuffer, DmaFile, OpenOptions};
pub use glommio::sync::Semaphore;
pub use glommio::timer::sleep;
pub use glommio::{spawn_local, Task};
pub use std::time::Instant;

/// What a file operation returns.
pub type IoResult<T> = glommio::Result<T, ()>;

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_clock_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A random number (not for cryptography): SplitMix64 over a per-thread state seeded from the
/// clock and the thread, for randomized timeouts and jitter.
pub fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            let here = &t as *const u64 as u64;
            t ^ here.rotate_left(32) ^ u64::from(std::process::id())
        });
    }
    STATE.with(|s| {
        let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// The regular files and their sizes, and the other entries (size 0, `false`), of a directory.
/// Blocking: used only while a partition is opened, before it takes traffic.
pub fn list_dir(dir: &Path) -> io::Result<Vec<(PathBuf, u64, bool)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let (len, is_file) = match entry.metadata() {
            Ok(m) => (m.len(), m.is_file()),
            Err(_) => (0, false),
        };
        out.push((entry.path(), len, is_file));
    }
    Ok(out)
}

/// The file at `path` opened for buffered reads, as a descriptor of its own (for zero-copy
/// sends, which read through the page cache). Opened on the ring; the descriptor is a
/// duplicate, so it outlives glommio's file.
pub async fn open_for_splice(path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let file = BufferedFile::open(path).await.map_err(io::Error::from)?;
    // SAFETY: F_DUPFD_CLOEXEC on an open descriptor returns a new one that nothing else owns.
    let fd = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    let dup = match fd {
        -1 => Err(io::Error::last_os_error()),
        // SAFETY: `fd` is the new descriptor just returned, owned by nothing else.
        fd => Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }),
    };
    let _ = file.close().await;
    dup
}

/// Whether `fd` is the open file `file` (same device and inode).
pub fn same_file(fd: &std::os::fd::OwnedFd, file: &DmaFile) -> bool {
    use std::os::fd::AsRawFd;
    let identity = |raw: std::os::fd::RawFd| {
        // SAFETY: a zeroed stat is a valid value of the plain C struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat fills `st` for an open descriptor (or fails).
        (unsafe { libc::fstat(raw, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
    };
    let ours = identity(fd.as_raw_fd());
    ours.is_some() && ours == identity(file.as_raw_fd())
}

/// The size of a file.
pub fn file_len(path: &Path) -> io::Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

/// The device a path lives on.
pub fn device_of(path: &Path) -> io::Result<u64> {
    Ok(std::fs::metadata(path)?.dev())
}
