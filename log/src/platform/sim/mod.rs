//! The simulation's runtime: the same surface as `real`, on a single-threaded executor with
//! virtual time ([`executor`]), an in-memory disk with crash semantics ([`disk`]) and a
//! message network with faults ([`net`]), every choice drawn from one seeded generator
//! ([`rng`]), so a run is a function of its seed and replays exactly.
//!
//! Built only with the `sim` feature, by the `sim/` workspace.

pub mod disk;
pub mod executor;
pub mod net;
pub mod rng;

use std::path::{Path, PathBuf};

pub use disk::{
    remove, rename, BufferedFile, Directory, DiskFaults, DmaBuffer, DmaFile, OpenOptions, ReadResult, SimDisk,
};
pub use executor::{sleep, spawn_local, Instant, JoinHandle, RunEnd, Semaphore, SemaphorePermit, Sim, Task};
pub use net::{NetFaults, Network};

/// What a file operation returns.
pub type IoResult<T> = std::io::Result<T>;

/// A random number from the simulation's seed.
pub fn random_u64() -> u64 {
    executor::with_rng(|r| r.next_u64())
}

/// Virtual wall-clock milliseconds: a fixed start (2026-01-01) plus the virtual time elapsed.
pub fn wall_clock_ms() -> i64 {
    const START_MS: i64 = 1_767_225_600_000;
    START_MS + (executor::now_nanos() / 1_000_000) as i64
}

/// The entries of a directory of the simulated disk: path, size, and whether it is a file.
pub fn list_dir(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64, bool)>> {
    disk::with_disk(|d| d.list(dir))
}

/// The simulated disk has no descriptors to send from: zero-copy reads are never served (the
/// log's config leaves them off in the simulation, and this refuses them if asked).
pub async fn open_for_splice(_path: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Never: the simulated disk has no descriptors (see `open_for_splice`).
pub fn same_file(_fd: &std::os::fd::OwnedFd, _file: &DmaFile) -> bool {
    false
}

/// The size of a file on the simulated disk.
pub fn file_len(path: &Path) -> std::io::Result<u64> {
    disk::with_disk(|d| d.len_of(path))
}

/// Every path is on one simulated device.
pub fn device_of(path: &Path) -> std::io::Result<u64> {
    disk::with_disk(|d| d.len_of(path).map(|_| 1).or_else(|_| d.is_dir(path).then_some(1).ok_or_else(disk::not_found)))
}
