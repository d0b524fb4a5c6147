//! `ringtail iotune`: measures the data disk in bounded time (O_DIRECT sequential write and
//! read bandwidth at several block sizes and queue depths, 4 KiB write + fdatasync latency)
//! and writes `io-properties.toml`, which `ringtail serve` reads to size its write buffers
//! and flush concurrency.
//!
//! Queue depth N is N threads issuing `pwrite`/`pread` on one O_DIRECT file at offsets taken
//! from a shared counter, so the disk sees N requests in flight, as fio's `--iodepth=N` does.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The properties file in the data directory.
pub const PROPERTIES_FILE_NAME: &str = "io-properties.toml";
/// Version of the properties file format; bumped when a field changes meaning.
pub const PROPERTIES_VERSION: u32 = 1;
/// Block sizes measured.
pub const BLOCK_SIZES_BYTES: [u64; 3] = [64 * 1024, 256 * 1024, 1024 * 1024];
/// Queue depths measured.
pub const QUEUE_DEPTHS: [u64; 2] = [1, 4];
/// Size of the bandwidth test file; sequential runs wrap around it.
pub const TEST_FILE_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;
/// Size of each write in the fdatasync latency test.
pub const SYNC_WRITE_BYTES: u64 = 4096;
/// The fdatasync latency test stops after this many samples even if time remains.
pub const SYNC_SAMPLES_MAX: usize = 200_000;
/// O_DIRECT buffer and offset alignment (covers 512 and 4096 byte logical blocks).
pub const ALIGNMENT_BYTES: usize = 4096;
/// Shortest and longest run accepted for `--seconds`.
pub const SECONDS_MIN: u64 = 2;
/// See [`SECONDS_MIN`].
pub const SECONDS_MAX: u64 = 600;

const _: () = assert!(TEST_FILE_BYTES_DEFAULT / (1024 * 1024) * (1024 * 1024) == TEST_FILE_BYTES_DEFAULT);
const _: () = assert!(SYNC_WRITE_BYTES as usize / ALIGNMENT_BYTES * ALIGNMENT_BYTES == SYNC_WRITE_BYTES as usize);

/// Options of `ringtail iotune`.
#[derive(Debug, Clone)]
pub struct IotuneOptions {
    /// Directory on the data disk; the test files and `io-properties.toml` go here.
    pub data_dir: PathBuf,
    /// Total time budget, in seconds (about 20 is enough on an SSD).
    pub seconds: u64,
}

/// One bandwidth measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Size of each request.
    pub block_bytes: u64,
    /// Requests kept in flight.
    pub queue_depth: u64,
    /// Bytes transferred per second (decimal: 1 GB/s = 1e9).
    pub bytes_per_s: u64,
}

/// The contents of `io-properties.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoProperties {
    /// Format version, [`PROPERTIES_VERSION`].
    pub version: u32,
    /// When it was measured, seconds since the Unix epoch.
    pub measured_unix_s: u64,
    /// How long the measurement took.
    pub duration_ms: u64,
    /// Best sequential write bandwidth seen.
    pub write_bytes_per_s_max: u64,
    /// Best sequential read bandwidth seen.
    pub read_bytes_per_s_max: u64,
    /// Smallest write size that reaches 90% of `write_bytes_per_s_max`: the broker's flush
    /// buffers need be no larger.
    pub write_block_bytes: u64,
    /// Smallest queue depth at which `write_block_bytes` reaches 90% of its best bandwidth:
    /// how many flushes the broker keeps in flight per disk.
    pub flush_concurrency: u64,
    /// Median latency of a 4 KiB O_DIRECT write followed by fdatasync.
    pub fdatasync_p50_us: u64,
    /// 99th percentile of the same.
    pub fdatasync_p99_us: u64,
    /// Samples behind the fdatasync percentiles.
    pub fdatasync_samples: u64,
    /// Every sequential write measurement.
    pub write: Vec<Measurement>,
    /// Every sequential read measurement.
    pub read: Vec<Measurement>,
}

/// Reads `<dir>/io-properties.toml`; `None` if it is missing, unreadable, or of another version.
pub fn read_properties(dir: &Path) -> Option<IoProperties> {
    let text = fs::read_to_string(dir.join(PROPERTIES_FILE_NAME)).ok()?;
    let properties: IoProperties = toml::from_str(&text).ok()?;
    (properties.version == PROPERTIES_VERSION).then_some(properties)
}

/// Writes `<dir>/io-properties.toml` atomically (temporary file, fsync, rename).
pub fn write_properties(dir: &Path, properties: &IoProperties) -> Result<PathBuf, Error> {
    let body = toml::to_string(properties).map_err(|e| Error::Invalid(format!("encoding io properties: {e}")))?;
    let text = format!(
        "# Written by `ringtail iotune`; read by `ringtail serve` to size write buffers and flush concurrency.\n\
         # Bandwidths are bytes per second, latencies microseconds. Re-run `ringtail iotune` after changing disks.\n{body}"
    );
    let path = dir.join(PROPERTIES_FILE_NAME);
    let temporary = dir.join(format!("{PROPERTIES_FILE_NAME}.tmp"));
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what: "writing", path, source }
    };
    let file = File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all_at(text.as_bytes(), 0).map_err(io_error(&temporary))?;
    file.sync_all().map_err(io_error(&temporary))?;
    fs::rename(&temporary, &path).map_err(io_error(&path))?;
    Ok(path)
}

/// A heap buffer whose usable part starts at an [`ALIGNMENT_BYTES`] boundary, without unsafe.
struct AlignedBuffer {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuffer {
    fn new(len: usize) -> AlignedBuffer {
        // A non-zero pattern, so storage that compresses or skips zeroes measures real transfers.
        let storage: Vec<u8> = (0..len + ALIGNMENT_BYTES).map(|i| (i % 251) as u8 | 1).collect();
        let start = storage.as_ptr().align_offset(ALIGNMENT_BYTES);
        assert!(start < ALIGNMENT_BYTES);
        AlignedBuffer { storage, start, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

fn open_direct(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(create).custom_flags(libc::O_DIRECT).open(path)
}

/// Reserves `len` bytes of disk for `file`, as fio does before a write job.
fn preallocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the descriptor belongs to `file`, which is open for writing and outlives the call;
    // posix_fallocate takes no pointers.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Creates, writes (4 KiB, O_DIRECT) and removes a probe file in `dir` or its nearest existing ancestor.
pub fn probe_o_direct(dir: &Path) -> io::Result<()> {
    let mut existing = dir;
    while !existing.is_dir() {
        existing = existing.parent().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    }
    let path = existing.join(format!(".ringtail-o-direct-probe-{}", std::process::id()));
    let result =
        open_direct(&path, true).and_then(|file| file.write_all_at(AlignedBuffer::new(ALIGNMENT_BYTES).bytes(), 0));
    let _ = fs::remove_file(&path);
    result
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Write,
    Read,
}

/// Sequential transfers of `block_bytes` by `queue_depth` threads over the first `file_bytes`
/// of `file` until `budget` is spent or `limit_bytes` are moved; returns (bytes, elapsed).
fn sequential(
    file: &File,
    direction: Direction,
    block_bytes: u64,
    queue_depth: u64,
    file_bytes: u64,
    budget: Duration,
    limit_bytes: u64,
) -> io::Result<(u64, Duration)> {
    let next = AtomicU64::new(0);
    let start = Instant::now();
    let deadline = start + budget;
    let results: Vec<io::Result<u64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..queue_depth)
            .map(|_| {
                let next = &next;
                scope.spawn(move || -> io::Result<u64> {
                    let mut buffer = AlignedBuffer::new(block_bytes as usize);
                    let mut moved = 0;
                    while Instant::now() < deadline {
                        let position = next.fetch_add(block_bytes, Ordering::Relaxed);
                        if position >= limit_bytes {
                            break;
                        }
                        let offset = position % file_bytes;
                        match direction {
                            Direction::Write => file.write_all_at(buffer.bytes(), offset)?,
                            Direction::Read => file.read_exact_at(buffer.bytes_mut(), offset)?,
                        }
                        moved += block_bytes;
                    }
                    Ok(moved)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err(io::Error::other("worker panicked")))).collect()
    });
    let elapsed = start.elapsed();
    let mut total = 0;
    for r in results {
        total += r?;
    }
    Ok((total, elapsed))
}

fn rate(bytes: u64, elapsed: Duration) -> u64 {
    (bytes as f64 / elapsed.as_secs_f64().max(1e-9)) as u64
}

/// Measures the disk under `dir` within about `seconds`, using a test file of `file_bytes`
/// (a multiple of 1 MiB). Removes its test files; does not write the properties file.
pub fn measure(dir: &Path, seconds: u64, file_bytes: u64) -> Result<IoProperties, Error> {
    let block_max = *BLOCK_SIZES_BYTES.iter().max().unwrap_or(&(1024 * 1024));
    if file_bytes == 0 || file_bytes / block_max * block_max != file_bytes {
        return Err(Error::Invalid(format!("test file size {file_bytes} must be a positive multiple of {block_max}")));
    }
    let started = Instant::now();
    let total = Duration::from_secs(seconds);
    let data_path = dir.join(".ringtail-iotune-data.tmp");
    let sync_path = dir.join(".ringtail-iotune-sync.tmp");
    let result = measure_files(&data_path, &sync_path, total, file_bytes, started);
    let _ = fs::remove_file(&data_path);
    let _ = fs::remove_file(&sync_path);
    result
}

fn measure_files(
    data_path: &Path,
    sync_path: &Path,
    total: Duration,
    file_bytes: u64,
    started: Instant,
) -> Result<IoProperties, Error> {
    let io_error = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    let file = open_direct(data_path, true).map_err(io_error("opening with O_DIRECT", data_path))?;
    preallocate(&file, file_bytes).map_err(io_error("preallocating", data_path))?;

    // Fill the file so reads hit written blocks; on a slow disk, shrink the file to what a
    // fifth of the budget could write.
    let block_max = BLOCK_SIZES_BYTES[BLOCK_SIZES_BYTES.len() - 1];
    let (filled, _) = sequential(&file, Direction::Write, block_max, 4, file_bytes, total / 5, file_bytes)
        .map_err(io_error("writing", data_path))?;
    let file_bytes = (filled / block_max * block_max).max(block_max);
    file.sync_data().map_err(io_error("syncing", data_path))?;

    let runs = (BLOCK_SIZES_BYTES.len() * QUEUE_DEPTHS.len() * 2) as u32;
    let slot = total * 2 / 3 / runs;
    let mut write = Vec::new();
    let mut read = Vec::new();
    for direction in [Direction::Write, Direction::Read] {
        for block_bytes in BLOCK_SIZES_BYTES {
            for queue_depth in QUEUE_DEPTHS {
                let (bytes, elapsed) =
                    sequential(&file, direction, block_bytes, queue_depth, file_bytes, slot, u64::MAX).map_err(
                        io_error(if direction == Direction::Write { "writing" } else { "reading" }, data_path),
                    )?;
                let m = Measurement { block_bytes, queue_depth, bytes_per_s: rate(bytes, elapsed) };
                if direction == Direction::Write {
                    write.push(m)
                } else {
                    read.push(m)
                }
            }
        }
    }
    drop(file);

    let sync_budget = total.saturating_sub(started.elapsed()).max(total / 10);
    let latencies = sync_latencies(sync_path, sync_budget).map_err(io_error("write + fdatasync", sync_path))?;
    let percentile = |p: usize| {
        latencies.get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1))).copied().unwrap_or(0)
    };

    let write_bytes_per_s_max = write.iter().map(|m| m.bytes_per_s).max().unwrap_or(0);
    let read_bytes_per_s_max = read.iter().map(|m| m.bytes_per_s).max().unwrap_or(0);
    let best_at =
        |block: u64| write.iter().filter(|m| m.block_bytes == block).map(|m| m.bytes_per_s).max().unwrap_or(0);
    let write_block_bytes = BLOCK_SIZES_BYTES
        .iter()
        .copied()
        .find(|&b| best_at(b) as f64 >= 0.9 * write_bytes_per_s_max as f64)
        .unwrap_or(block_max);
    let flush_concurrency = write
        .iter()
        .filter(|m| {
            m.block_bytes == write_block_bytes && m.bytes_per_s as f64 >= 0.9 * best_at(write_block_bytes) as f64
        })
        .map(|m| m.queue_depth)
        .min()
        .unwrap_or(1);
    Ok(IoProperties {
        version: PROPERTIES_VERSION,
        measured_unix_s: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        duration_ms: started.elapsed().as_millis() as u64,
        write_bytes_per_s_max,
        read_bytes_per_s_max,
        write_block_bytes,
        flush_concurrency,
        fdatasync_p50_us: percentile(50),
        fdatasync_p99_us: percentile(99),
        fdatasync_samples: latencies.len() as u64,
        write,
        read,
    })
}

/// Sorted latencies in microseconds of appending 4 KiB with O_DIRECT and calling fdatasync,
/// on a preallocated file as a log segment would be.
fn sync_latencies(path: &Path, budget: Duration) -> io::Result<Vec<u64>> {
    const SYNC_FILE_BYTES: u64 = 64 * 1024 * 1024;
    let file = open_direct(path, true)?;
    preallocate(&file, SYNC_FILE_BYTES)?;
    let buffer = AlignedBuffer::new(SYNC_WRITE_BYTES as usize);
    let deadline = Instant::now() + budget;
    let mut latencies = Vec::new();
    let mut offset = 0;
    while Instant::now() < deadline && latencies.len() < SYNC_SAMPLES_MAX {
        let start = Instant::now();
        file.write_all_at(buffer.bytes(), offset)?;
        file.sync_data()?;
        latencies.push(start.elapsed().as_micros() as u64);
        offset = (offset + SYNC_WRITE_BYTES) % SYNC_FILE_BYTES;
    }
    latencies.sort_unstable();
    Ok(latencies)
}

/// Human-readable summary of a measurement.
pub fn render(properties: &IoProperties) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let mut out = String::new();
    for (name, list) in [("write", &properties.write), ("read", &properties.read)] {
        for m in list {
            out.push_str(&format!(
                "sequential {name:<5} {:>5} KiB qd{}: {:>8.1} MB/s\n",
                m.block_bytes / 1024,
                m.queue_depth,
                mb(m.bytes_per_s)
            ));
        }
    }
    out.push_str(&format!(
        "4 KiB write + fdatasync: p50 {} us, p99 {} us ({} samples)\n\
         write buffer {} KiB, flush concurrency {}, measured in {:.1} s\n",
        properties.fdatasync_p50_us,
        properties.fdatasync_p99_us,
        properties.fdatasync_samples,
        properties.write_block_bytes / 1024,
        properties.flush_concurrency,
        properties.duration_ms as f64 / 1000.0
    ));
    out
}

/// `ringtail iotune`: measures the disk under `options.data_dir` (created if missing) in
/// about `options.seconds`, prints a summary, and writes `<data_dir>/io-properties.toml`.
pub fn iotune(options: IotuneOptions) -> Result<IoProperties, Error> {
    if !(SECONDS_MIN..=SECONDS_MAX).contains(&options.seconds) {
        return Err(Error::Invalid(format!(
            "--seconds {} is out of range; use {SECONDS_MIN} to {SECONDS_MAX}",
            options.seconds
        )));
    }
    fs::create_dir_all(&options.data_dir).map_err(|source| Error::Io {
        what: "creating",
        path: options.data_dir.clone(),
        source,
    })?;
    let properties = measure(&options.data_dir, options.seconds, TEST_FILE_BYTES_DEFAULT)?;
    let path = write_properties(&options.data_dir, &properties)?;
    print!("{}", render(&properties));
    println!("wrote {}", path.display());
    Ok(properties)
}
