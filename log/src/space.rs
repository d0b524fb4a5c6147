//! Free space on the file system of a data directory: readings, the low and high watermarks,
//! and which writes may still take space.
//!
//! Three levels, from the most free space down:
//! - below the **low watermark** appends to data topics are refused (retriably); they are
//!   accepted again once free space is back above the **high watermark** (hysteresis, so a
//!   broker at the edge does not flap);
//! - internal topics (`__consumer_offsets`) go on down to half of the low watermark, so
//!   committed offsets keep working while user topics are refused;
//! - no segment grows into the last quarter of the low watermark: that space is kept for
//!   what needs no new data space to be honest (state checkpoints, index files, the metadata
//!   log, the files recovery writes at start-up).
//!
//! Readings come from `statvfs` (the space an unprivileged process may use: a broker running
//! as root may use the file system's root reserve beyond it, which only adds margin). The
//! call reads in-memory counters of the file system and does no I/O, so a shard may make it:
//! the shard's space task every second, and every preallocation before it takes space.

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::LogError;

/// Free space below which data appends are refused, in bytes (the larger of this and
/// [`DISK_FREE_LOW_PERCENT_DEFAULT`] applies).
pub const DISK_FREE_LOW_BYTES_DEFAULT: u64 = 1 << 30;
pub const DISK_FREE_LOW_PERCENT_DEFAULT: u8 = 2;
/// Free space above which refused appends are accepted again.
pub const DISK_FREE_HIGH_BYTES_DEFAULT: u64 = 2 << 30;
pub const DISK_FREE_HIGH_PERCENT_DEFAULT: u8 = 4;

/// The watermarks of a data directory, each a size and a percentage of the file system; the
/// larger of the two applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceConfig {
    pub low_bytes: u64,
    pub low_percent: u8,
    pub high_bytes: u64,
    pub high_percent: u8,
}

impl Default for SpaceConfig {
    fn default() -> Self {
        SpaceConfig {
            low_bytes: DISK_FREE_LOW_BYTES_DEFAULT,
            low_percent: DISK_FREE_LOW_PERCENT_DEFAULT,
            high_bytes: DISK_FREE_HIGH_BYTES_DEFAULT,
            high_percent: DISK_FREE_HIGH_PERCENT_DEFAULT,
        }
    }
}

impl SpaceConfig {
    /// Checks the relations between the settings; says which to change.
    pub fn validate(&self) -> Result<(), LogError> {
        let fail = |reason: String| Err(LogError::Config { reason });
        if self.low_percent > 50 || self.high_percent > 50 {
            return fail(format!(
                "disk free-space percentages must be at most 50 (low {}, high {})",
                self.low_percent, self.high_percent
            ));
        }
        if self.high_bytes < self.low_bytes || self.high_percent < self.low_percent {
            return fail(format!(
                "the high free-space watermark ({} bytes, {}%) must not be below the low one ({} bytes, {}%)",
                self.high_bytes, self.high_percent, self.low_bytes, self.low_percent
            ));
        }
        Ok(())
    }

    /// The watermarks in bytes on a file system of `total_bytes`.
    pub fn watermarks(&self, total_bytes: u64) -> Watermarks {
        let percent = |p: u8| total_bytes / 100 * u64::from(p);
        let low_bytes = self.low_bytes.max(percent(self.low_percent));
        let high_bytes = self.high_bytes.max(percent(self.high_percent)).max(low_bytes);
        Watermarks { low_bytes, high_bytes }
    }
}

/// The watermarks of one file system, in bytes of free space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Watermarks {
    pub low_bytes: u64,
    pub high_bytes: u64,
}

impl Watermarks {
    /// Internal topics append down to this much free space.
    pub fn reserve_bytes(&self) -> u64 {
        self.low_bytes / 2
    }

    /// No segment grows below this much free space; the rest is kept for state files.
    pub fn floor_bytes(&self) -> u64 {
        self.low_bytes / 4
    }
}

/// Whose append asks for space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpacePriority {
    /// A user topic: refused below the low watermark.
    #[default]
    Data,
    /// An internal topic (`__consumer_offsets`): goes on down to the reserve.
    Internal,
}

/// Size and free space of a file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsUsage {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

/// Reads the size and the free space (for unprivileged processes) of the file system holding `path`.
pub fn fs_usage(path: &Path) -> io::Result<FsUsage> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to writable memory
    // of the size statvfs fills; the result is read only when the call succeeded.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialized the structure.
    let stat = unsafe { stat.assume_init() };
    // statvfs counts are u64 on the 64-bit Linux targets Ringtail runs on.
    let fragment = stat.f_frsize;
    Ok(FsUsage {
        total_bytes: stat.f_blocks.saturating_mul(fragment),
        free_bytes: stat.f_bavail.saturating_mul(fragment),
    })
}

/// How the free space changed at a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceChange {
    /// Free space fell below the low watermark: data appends are refused from now on.
    BelowLow,
    /// Free space rose above the high watermark: data appends are accepted again.
    AboveHigh,
}

type Probe = dyn Fn() -> io::Result<FsUsage>;

/// The free space of one data directory as one shard sees it. Owned by that shard (`!Send`),
/// shared by its flusher and every log it opens; shards read the same file system each on
/// their own, so their views differ by at most a reading's age. Preallocations in flight are
/// counted across shards (`in_flight`), since a reading cannot see them yet.
pub struct DiskSpace {
    /// `None`: no limit (tests, tools that open logs).
    probe: Option<Box<Probe>>,
    config: SpaceConfig,
    usage: Cell<FsUsage>,
    watermarks: Cell<Watermarks>,
    /// Bytes this shard's preallocations took since the last reading, once done.
    taken_since_reading: Cell<u64>,
    /// Bytes of preallocations started and not yet done, on every shard watching this file system.
    in_flight: Arc<AtomicU64>,
    low: Cell<bool>,
    /// Appends refused for space, since start.
    refused: Cell<u64>,
}

impl std::fmt::Debug for DiskSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskSpace")
            .field("usage", &self.usage.get())
            .field("watermarks", &self.watermarks.get())
            .field("low", &self.low.get())
            .finish_non_exhaustive()
    }
}

impl DiskSpace {
    /// Never refuses anything.
    pub fn unlimited() -> DiskSpace {
        DiskSpace {
            probe: None,
            config: SpaceConfig { low_bytes: 0, low_percent: 0, high_bytes: 0, high_percent: 0 },
            usage: Cell::new(FsUsage { total_bytes: u64::MAX, free_bytes: u64::MAX }),
            watermarks: Cell::new(Watermarks::default()),
            taken_since_reading: Cell::new(0),
            in_flight: Arc::new(AtomicU64::new(0)),
            low: Cell::new(false),
            refused: Cell::new(0),
        }
    }

    /// Watches the file system of `dir`; takes a first reading. Every shard watching the same
    /// directory passes the same `in_flight` counter.
    pub fn watch(dir: &Path, config: SpaceConfig, in_flight: Arc<AtomicU64>) -> Result<DiskSpace, LogError> {
        let dir = dir.to_path_buf();
        let space = Self::with_probe(config, move || fs_usage(&dir))?;
        Ok(DiskSpace { in_flight, ..space })
    }

    /// Watches what `probe` reports (tests give a file system of their own making).
    pub fn with_probe(
        config: SpaceConfig,
        probe: impl Fn() -> io::Result<FsUsage> + 'static,
    ) -> Result<DiskSpace, LogError> {
        config.validate()?;
        let space = DiskSpace { probe: Some(Box::new(probe)), config, ..DiskSpace::unlimited() };
        space.refresh().map_err(|e| LogError::io("reading the free space of", "the data directory", e))?;
        Ok(space)
    }

    /// Reads the file system again. Returns the change of state it caused, if any.
    pub fn refresh(&self) -> io::Result<Option<SpaceChange>> {
        let Some(probe) = &self.probe else { return Ok(None) };
        let usage = probe()?;
        self.usage.set(usage);
        self.watermarks.set(self.config.watermarks(usage.total_bytes));
        self.taken_since_reading.set(0);
        Ok(self.update())
    }

    /// Applies the hysteresis to the current estimate of free space.
    fn update(&self) -> Option<SpaceChange> {
        let (free, w) = (self.free_bytes(), self.watermarks.get());
        match self.low.get() {
            false if free < w.low_bytes => {
                self.low.set(true);
                Some(SpaceChange::BelowLow)
            }
            true if free >= w.high_bytes => {
                self.low.set(false);
                Some(SpaceChange::AboveHigh)
            }
            _ => None,
        }
    }

    /// Free bytes as of the last reading, less what this shard took since and what every shard
    /// is taking now.
    pub fn free_bytes(&self) -> u64 {
        let taken = self.taken_since_reading.get().saturating_add(self.in_flight.load(Ordering::Relaxed));
        self.usage.get().free_bytes.saturating_sub(taken)
    }

    pub fn total_bytes(&self) -> u64 {
        self.usage.get().total_bytes
    }

    pub fn watermarks(&self) -> Watermarks {
        self.watermarks.get()
    }

    /// True while data appends are refused (below the low watermark, not yet back above the high one).
    pub fn is_low(&self) -> bool {
        self.low.get()
    }

    /// Appends refused for space since start.
    pub fn refused(&self) -> u64 {
        self.refused.get()
    }

    /// Whether appends of this priority may take space now.
    fn has_room(&self, priority: SpacePriority) -> bool {
        self.probe.is_none()
            || match priority {
                SpacePriority::Data => !self.low.get(),
                SpacePriority::Internal => self.free_bytes() >= self.watermarks.get().reserve_bytes(),
            }
    }

    /// Whether a log that found no space may try again to write what it keeps queued (already
    /// admitted, under async durability possibly acknowledged): the reading leaves room above
    /// what [`DiskSpace::take`] keeps for this priority, whatever the watermarks' hysteresis.
    pub fn may_retry(&self, priority: SpacePriority) -> bool {
        let w = self.watermarks.get();
        let limit = match priority {
            SpacePriority::Data => w.reserve_bytes(),
            SpacePriority::Internal => w.floor_bytes(),
        };
        self.probe.is_none() || self.free_bytes() > limit
    }

    /// May an append of this priority take space now? Counts a refusal.
    pub fn admit(&self, priority: SpacePriority) -> Result<(), LogError> {
        if self.has_room(priority) {
            return Ok(());
        }
        let w = self.watermarks.get();
        self.refused.set(self.refused.get() + 1);
        let why = match priority {
            SpacePriority::Data => format!(
                "below the low watermark of {} bytes; appends resume above the high watermark of {} bytes",
                w.low_bytes, w.high_bytes
            ),
            SpacePriority::Internal => {
                format!("below the reserve of {} bytes kept for internal topics", w.reserve_bytes())
            }
        };
        Err(LogError::NoSpace { free_bytes: self.free_bytes(), why })
    }

    /// Takes space for a preallocation, after a fresh reading: `wanted` bytes (a segment grows
    /// ahead of its data), or only `needed` (what the batches to write take) when the room is
    /// short, or nothing. Data preallocations never go below the internal topics' reserve,
    /// internal ones never below the floor kept for state files. Returns the bytes taken; the
    /// caller calls [`DiskSpace::settle`] with them once the preallocation is done.
    pub fn take(&self, priority: SpacePriority, wanted: u64, needed: u64) -> Result<u64, LogError> {
        if self.probe.is_none() {
            return Ok(wanted);
        }
        // A failed reading is no reason to stop writing: the last one stands, and a real lack
        // of space shows as ENOSPC from the preallocation itself.
        let _ = self.refresh();
        let w = self.watermarks.get();
        let (limit, kept_for) = match priority {
            SpacePriority::Data => (w.reserve_bytes(), "internal topics and state files"),
            SpacePriority::Internal => (w.floor_bytes(), "state files"),
        };
        let free = self.free_bytes();
        let Some(bytes) = [wanted, needed].into_iter().find(|&b| free >= b.saturating_add(limit)) else {
            self.low.set(true);
            return Err(LogError::NoSpace {
                free_bytes: free,
                why: format!(
                    "{needed} more bytes for a segment would leave less than the {limit} bytes kept for {kept_for}"
                ),
            });
        };
        self.in_flight.fetch_add(bytes, Ordering::Relaxed);
        self.update();
        Ok(bytes)
    }

    /// A preallocation of `bytes` from [`DiskSpace::take`] is done (`allocated`) or failed.
    pub fn settle(&self, bytes: u64, allocated: bool) {
        if self.probe.is_none() {
            return;
        }
        self.in_flight.fetch_sub(bytes, Ordering::Relaxed);
        if allocated {
            self.taken_since_reading.set(self.taken_since_reading.get() + bytes);
        }
    }

    /// A preallocation failed for lack of space although the reading allowed it (another
    /// process took the space): refuse data appends until a reading shows the high watermark.
    pub fn ran_out(&self) {
        if self.probe.is_some() {
            self.low.set(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    const MIB: u64 = 1 << 20;

    fn space(free: Rc<Cell<u64>>) -> DiskSpace {
        let config = SpaceConfig { low_bytes: 40 * MIB, low_percent: 0, high_bytes: 60 * MIB, high_percent: 0 };
        DiskSpace::with_probe(config, move || Ok(FsUsage { total_bytes: 200 * MIB, free_bytes: free.get() })).unwrap()
    }

    #[test]
    fn watermarks_take_the_larger_of_size_and_percentage() {
        let c = SpaceConfig { low_bytes: 10, low_percent: 5, high_bytes: 20, high_percent: 10 };
        assert_eq!(c.watermarks(1000), Watermarks { low_bytes: 50, high_bytes: 100 });
        assert_eq!(c.watermarks(100), Watermarks { low_bytes: 10, high_bytes: 20 });
        let bad = SpaceConfig { high_bytes: 5, ..c };
        assert!(bad.validate().unwrap_err().to_string().contains("must not be below"));
        assert!(SpaceConfig { low_percent: 60, ..c }.validate().is_err());
        SpaceConfig::default().validate().unwrap();
    }

    #[test]
    fn data_is_refused_below_low_and_accepted_again_above_high() {
        let free = Rc::new(Cell::new(100 * MIB));
        let s = space(free.clone());
        s.admit(SpacePriority::Data).unwrap();
        free.set(39 * MIB);
        assert_eq!(s.refresh().unwrap(), Some(SpaceChange::BelowLow));
        let e = s.admit(SpacePriority::Data).unwrap_err();
        assert!(!e.is_fatal());
        assert!(e.to_string().contains("low watermark"), "{e}");
        // Internal topics go on down to half the low watermark.
        s.admit(SpacePriority::Internal).unwrap();
        free.set(19 * MIB);
        s.refresh().unwrap();
        assert!(s.admit(SpacePriority::Internal).is_err());
        assert!(!s.may_retry(SpacePriority::Data) && s.may_retry(SpacePriority::Internal));
        // Between the watermarks the state holds.
        free.set(50 * MIB);
        assert_eq!(s.refresh().unwrap(), None);
        assert!(s.admit(SpacePriority::Data).is_err());
        // What was admitted before may still be written: there is room above the reserve.
        assert!(s.may_retry(SpacePriority::Data));
        free.set(60 * MIB);
        assert_eq!(s.refresh().unwrap(), Some(SpaceChange::AboveHigh));
        s.admit(SpacePriority::Data).unwrap();
        assert_eq!(s.refused(), 3);
    }

    #[test]
    fn preallocations_keep_the_reserve_and_floor_and_count_until_the_next_reading() {
        let free = Rc::new(Cell::new(45 * MIB));
        let s = space(free.clone());
        // Data keeps the 20 MiB reserve: the full step does not fit, what the batches need does.
        assert_eq!(s.take(SpacePriority::Data, 32 * MIB, MIB).unwrap(), MIB);
        s.settle(MIB, false);
        s.take(SpacePriority::Data, 32 * MIB, 30 * MIB).unwrap_err();
        // Internal topics go down to the 10 MiB floor.
        assert_eq!(s.take(SpacePriority::Internal, 30 * MIB, MIB).unwrap(), 30 * MIB);
        s.settle(30 * MIB, false);
        free.set(100 * MIB);
        assert_eq!(s.take(SpacePriority::Data, 32 * MIB, MIB).unwrap(), 32 * MIB);
        // While it is in flight a second one sees it, though the reading does not yet.
        assert_eq!(s.take(SpacePriority::Data, 32 * MIB, MIB).unwrap(), 32 * MIB);
        assert_eq!(s.free_bytes(), 36 * MIB);
        assert!(s.is_low(), "taking space below the low watermark refuses data appends");
        s.take(SpacePriority::Data, 32 * MIB, 17 * MIB).unwrap_err();
        // Done, they count until the next reading, which sees them.
        s.settle(32 * MIB, true);
        s.settle(32 * MIB, true);
        assert_eq!(s.free_bytes(), 36 * MIB);
        free.set(36 * MIB);
        s.refresh().unwrap();
        assert_eq!(s.free_bytes(), 36 * MIB);
    }

    #[test]
    fn the_real_file_system_reads() {
        let usage = fs_usage(Path::new("/")).unwrap();
        assert!(usage.total_bytes > 0 && usage.free_bytes <= usage.total_bytes);
        assert!(fs_usage(Path::new("/no/such/dir")).is_err());
        assert_eq!(DiskSpace::unlimited().take(SpacePriority::Data, u64::MAX, 1).unwrap(), u64::MAX);
    }
}
