//! `ringtail iotune`: measures the data disk in bounded time (O_DIRECT sequential write and
//! read bandwidth at several block sizes and queue depths, 4 KiB write + fdatasync latency)
//! and writes `io-properties.toml`, which `ringtail serve` reads to size its write buffers
//! and flush concurrency.
//!
//! The method is fio's, so that a person can check every figure with fio (the summary prints
//! the commands, [`fio_commands`]):
//! - A test file of [`TEST_FILE_BYTES_DEFAULT`] is preallocated and written once, front to back,
//!   in 1 MiB writes (on a slow disk it is cut to what a sixth of the budget could write).
//! - Queue depth N is N threads, each issuing `pwrite`/`pread` in turn through its own 1/N of
//!   the file from that part's start, wrapping at its end: fio's `--ioengine=psync
//!   --numjobs=N --size=FILE/N --offset_increment=FILE/N --group_reporting`.
//! - Each of the 12 points (write, then read; 64 KiB, 256 KiB, 1 MiB; queue depth 1, 4) gets an
//!   eighteenth of the budget (`--seconds 90`: 5 s): a fifth of it is warm-up that is not
//!   counted (fio's `--ramp_time`), the rest the measured window (`--runtime`, `--time_based`).
//! - Then 4 KiB O_DIRECT writes, each followed by fdatasync, append to a fresh preallocated
//!   64 MiB file (wrapping at its end) for a sixth of the budget: fio's `--fdatasync=1`.
//!
//! The whole run takes at most the budget (fill up to a sixth, points two thirds, fdatasync
//! a sixth) plus file creation and removal.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The properties file in the data directory.
pub const PROPERTIES_FILE_NAME: &str = "io-properties.toml";
/// Version of the properties file format; bumped when a field changes meaning.
pub const PROPERTIES_VERSION: u32 = 1;
/// Block sizes measured.
pub const BLOCK_SIZES_BYTES: [u64; 3] = [64 * 1024, 256 * 1024, 1024 * 1024];
/// Queue depths measured.
pub const QUEUE_DEPTHS: [u64; 2] = [1, 4];
/// Size of the bandwidth test file; each thread's sequential run wraps around its part of it.
pub const TEST_FILE_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;
/// Size of the fdatasync test file; the appends wrap around it.
pub const SYNC_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Share of each point's time spent warming up, not counted: 1 / `RAMP_SHARE_DIVISOR`.
pub const RAMP_SHARE_DIVISOR: u32 = 5;
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

/// The test file is split into one part per thread, each a whole number of the largest blocks.
const TEST_FILE_GRAIN_BYTES: u64 = 1024 * 1024 * 4;

// Every part of the file (FILE / N for each queue depth N) holds whole blocks of every size:
// block sizes divide the largest, queue depths divide the deepest, and the grain is their product.
const _: () = {
    let block_max = BLOCK_SIZES_BYTES[BLOCK_SIZES_BYTES.len() - 1];
    let depth_max = QUEUE_DEPTHS[QUEUE_DEPTHS.len() - 1];
    let mut i = 0;
    while i < BLOCK_SIZES_BYTES.len() {
        assert!(
            BLOCK_SIZES_BYTES[i].is_multiple_of(ALIGNMENT_BYTES as u64)
                && block_max.is_multiple_of(BLOCK_SIZES_BYTES[i])
        );
        i += 1;
    }
    let mut j = 0;
    while j < QUEUE_DEPTHS.len() {
        assert!(QUEUE_DEPTHS[j] > 0 && depth_max.is_multiple_of(QUEUE_DEPTHS[j]));
        j += 1;
    }
    assert!(TEST_FILE_GRAIN_BYTES == block_max * depth_max);
};
const _: () = assert!(TEST_FILE_BYTES_DEFAULT.is_multiple_of(TEST_FILE_GRAIN_BYTES));
const _: () = assert!(SYNC_FILE_BYTES.is_multiple_of(SYNC_WRITE_BYTES));
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
    /// Median of the fdatasync call alone, without the write before it (fio's `sync` line).
    #[serde(default)]
    pub fdatasync_call_p50_us: u64,
    /// 99th percentile of the same.
    #[serde(default)]
    pub fdatasync_call_p99_us: u64,
    /// Size of the bandwidth test file actually used (smaller than the default on a slow disk).
    #[serde(default)]
    pub test_file_bytes: u64,
    /// Warm-up of each bandwidth point, not counted.
    #[serde(default)]
    pub ramp_ms: u64,
    /// Measured window of each bandwidth point, after its warm-up.
    #[serde(default)]
    pub window_ms: u64,
    /// Length of the fdatasync test.
    #[serde(default)]
    pub sync_test_ms: u64,
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
        // Pseudo-random bytes (xorshift64, fixed seed), as fio writes by default: storage that
        // compresses, deduplicates or skips zeroes would make a pattern look faster than the
        // broker's (often already compressed) record batches.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let storage: Vec<u8> = (0..len + ALIGNMENT_BYTES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect();
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

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Write => "write",
            Direction::Read => "read",
        }
    }
}

/// How a run of `--seconds` is spent; every part follows the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Longest time the fill of the test file may take.
    pub fill: Duration,
    /// Warm-up of each bandwidth point, not counted.
    pub ramp: Duration,
    /// Measured window of each bandwidth point.
    pub window: Duration,
    /// Length of the fdatasync test.
    pub sync_test: Duration,
}

impl Plan {
    /// Bandwidth points per run: both directions, every block size and queue depth.
    pub const POINTS: u32 = 2 * BLOCK_SIZES_BYTES.len() as u32 * QUEUE_DEPTHS.len() as u32;

    /// Fill up to a sixth of `seconds`, the points two thirds, the fdatasync test a sixth,
    /// each rounded down to whole milliseconds so that fio can be given the same times.
    pub fn for_budget(seconds: u64) -> Plan {
        let total_ms = seconds * 1000;
        let point_ms = total_ms * 2 / 3 / u64::from(Plan::POINTS);
        let ramp_ms = point_ms / u64::from(RAMP_SHARE_DIVISOR);
        Plan {
            fill: Duration::from_millis(total_ms / 6),
            ramp: Duration::from_millis(ramp_ms),
            window: Duration::from_millis(point_ms - ramp_ms),
            sync_test: Duration::from_millis(total_ms / 6),
        }
    }
}

/// Sequential transfers of `block_bytes` by `queue_depth` threads, thread `t` going through
/// bytes `[t * part, (t + 1) * part)` of `file` (`part = file_bytes / queue_depth`) from the
/// start and wrapping at the end, as fio's `--numjobs` with `--offset_increment` does. Stops
/// issuing when `ramp + window` has passed or when `limit_bytes` per thread have been moved;
/// counts what completes after `ramp`. Returns (bytes counted, time counted).
#[allow(clippy::too_many_arguments)]
fn sequential(
    file: &File,
    direction: Direction,
    block_bytes: u64,
    queue_depth: u64,
    file_bytes: u64,
    ramp: Duration,
    window: Duration,
    limit_bytes: u64,
) -> io::Result<(u64, Duration)> {
    let part_bytes = file_bytes / queue_depth;
    assert!(
        part_bytes > 0 && part_bytes.is_multiple_of(block_bytes),
        "part {part_bytes} is not whole blocks of {block_bytes}"
    );
    let start = Instant::now();
    let counted_from = start + ramp;
    let deadline = counted_from + window;
    let results: Vec<io::Result<(u64, Instant)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..queue_depth)
            .map(|thread| {
                scope.spawn(move || -> io::Result<(u64, Instant)> {
                    let mut buffer = AlignedBuffer::new(block_bytes as usize);
                    let part_start = thread * part_bytes;
                    let mut position = 0;
                    let mut counted = 0;
                    let mut now = Instant::now();
                    while now < deadline && position < limit_bytes {
                        let offset = part_start + position % part_bytes;
                        match direction {
                            Direction::Write => file.write_all_at(buffer.bytes(), offset)?,
                            Direction::Read => file.read_exact_at(buffer.bytes_mut(), offset)?,
                        }
                        position += block_bytes;
                        now = Instant::now();
                        if now >= counted_from {
                            counted += block_bytes;
                        }
                    }
                    Ok((counted, now))
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err(io::Error::other("worker panicked")))).collect()
    });
    let mut total = 0;
    let mut ended = counted_from;
    for r in results {
        let (counted, finished) = r?;
        total += counted;
        ended = ended.max(finished);
    }
    Ok((total, ended.saturating_duration_since(counted_from)))
}

fn rate(bytes: u64, elapsed: Duration) -> u64 {
    (bytes as f64 / elapsed.as_secs_f64().max(1e-9)) as u64
}

/// Measures the disk under `dir` within about `seconds`, using a test file of `file_bytes`
/// (a positive multiple of 4 MiB, so that each of 4 threads has whole 1 MiB blocks). Removes
/// its test files; does not write the properties file.
pub fn measure(dir: &Path, seconds: u64, file_bytes: u64) -> Result<IoProperties, Error> {
    if file_bytes == 0 || !file_bytes.is_multiple_of(TEST_FILE_GRAIN_BYTES) {
        return Err(Error::Invalid(format!(
            "test file size {file_bytes} must be a positive multiple of {TEST_FILE_GRAIN_BYTES}"
        )));
    }
    let started = Instant::now();
    let data_path = dir.join(".ringtail-iotune-data.tmp");
    let sync_path = dir.join(".ringtail-iotune-sync.tmp");
    // Leftovers of an interrupted run would hand the fdatasync test written blocks, not fresh ones.
    let _ = fs::remove_file(&data_path);
    let _ = fs::remove_file(&sync_path);
    let result = measure_files(&data_path, &sync_path, Plan::for_budget(seconds), file_bytes, started);
    let _ = fs::remove_file(&data_path);
    let _ = fs::remove_file(&sync_path);
    result
}

fn measure_files(
    data_path: &Path,
    sync_path: &Path,
    plan: Plan,
    file_bytes: u64,
    started: Instant,
) -> Result<IoProperties, Error> {
    let io_error = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    let file = open_direct(data_path, true).map_err(io_error("opening with O_DIRECT", data_path))?;
    preallocate(&file, file_bytes).map_err(io_error("preallocating", data_path))?;

    // Write the file once so that reads hit written blocks and writes overwrite them, as
    // fio's separate fill job does; on a slow disk, cut the file to what the fill reached.
    let block_max = BLOCK_SIZES_BYTES[BLOCK_SIZES_BYTES.len() - 1];
    // Progress on stderr (the summary goes to stdout): a run takes as long as its budget.
    eprintln!(
        "iotune: writing the {} MiB test file (at most {:.1} s)",
        file_bytes / (1024 * 1024),
        plan.fill.as_secs_f64()
    );
    let (filled, _) =
        sequential(&file, Direction::Write, block_max, 1, file_bytes, Duration::ZERO, plan.fill, file_bytes)
            .map_err(io_error("writing", data_path))?;
    let file_bytes = (filled / TEST_FILE_GRAIN_BYTES * TEST_FILE_GRAIN_BYTES).max(TEST_FILE_GRAIN_BYTES);
    file.sync_data().map_err(io_error("syncing", data_path))?;

    let mut write = Vec::new();
    let mut read = Vec::new();
    for direction in [Direction::Write, Direction::Read] {
        for block_bytes in BLOCK_SIZES_BYTES {
            for queue_depth in QUEUE_DEPTHS {
                eprintln!(
                    "iotune: sequential {} {} KiB qd{queue_depth} ({:.1} s + {:.1} s)",
                    direction.name(),
                    block_bytes / 1024,
                    plan.ramp.as_secs_f64(),
                    plan.window.as_secs_f64()
                );
                let (bytes, elapsed) = sequential(
                    &file,
                    direction,
                    block_bytes,
                    queue_depth,
                    file_bytes,
                    plan.ramp,
                    plan.window,
                    u64::MAX,
                )
                .map_err(io_error(if direction == Direction::Write { "writing" } else { "reading" }, data_path))?;
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

    eprintln!("iotune: 4 KiB write + fdatasync ({:.1} s)", plan.sync_test.as_secs_f64());
    let samples = sync_latencies(sync_path, plan.sync_test).map_err(io_error("write + fdatasync", sync_path))?;
    let percentile = |sorted: &[u64], p: usize| {
        sorted.get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0)
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
        fdatasync_p50_us: percentile(&samples.write_and_sync_us, 50),
        fdatasync_p99_us: percentile(&samples.write_and_sync_us, 99),
        fdatasync_samples: samples.write_and_sync_us.len() as u64,
        fdatasync_call_p50_us: percentile(&samples.sync_us, 50),
        fdatasync_call_p99_us: percentile(&samples.sync_us, 99),
        test_file_bytes: file_bytes,
        ramp_ms: plan.ramp.as_millis() as u64,
        window_ms: plan.window.as_millis() as u64,
        sync_test_ms: plan.sync_test.as_millis() as u64,
        write,
        read,
    })
}

/// Latencies of the fdatasync test in microseconds, each list sorted.
struct SyncSamples {
    /// The 4 KiB write and the fdatasync after it.
    write_and_sync_us: Vec<u64>,
    /// The fdatasync call alone.
    sync_us: Vec<u64>,
}

/// Appends 4 KiB with O_DIRECT and calls fdatasync, on a fresh preallocated file as a log
/// segment would be, for `budget` (wrapping at the end of the file, as fio's `--time_based` does).
fn sync_latencies(path: &Path, budget: Duration) -> io::Result<SyncSamples> {
    let file = open_direct(path, true)?;
    preallocate(&file, SYNC_FILE_BYTES)?;
    let buffer = AlignedBuffer::new(SYNC_WRITE_BYTES as usize);
    let deadline = Instant::now() + budget;
    let mut samples = SyncSamples { write_and_sync_us: Vec::new(), sync_us: Vec::new() };
    let mut offset = 0;
    while Instant::now() < deadline && samples.write_and_sync_us.len() < SYNC_SAMPLES_MAX {
        let start = Instant::now();
        file.write_all_at(buffer.bytes(), offset)?;
        let written = Instant::now();
        file.sync_data()?;
        let synced = Instant::now();
        samples.write_and_sync_us.push(synced.duration_since(start).as_micros() as u64);
        samples.sync_us.push(synced.duration_since(written).as_micros() as u64);
        offset = (offset + SYNC_WRITE_BYTES) % SYNC_FILE_BYTES;
    }
    samples.write_and_sync_us.sort_unstable();
    samples.sync_us.sort_unstable();
    Ok(samples)
}

/// The fio command lines that repeat the measurement in `properties` on files in `dir`, one
/// per line, in the order to run them: remove the files, fill the test file, the 12 bandwidth
/// points (compare fio's group `bw=` in MB/s), and the fdatasync test (compare fio's `sync`
/// percentiles with `fdatasync_call_*`, and its `clat` plus `sync` with the write + fdatasync
/// figures). fio's `k` and `m` are 1024 and 1024 * 1024 unless `--kb_base` says otherwise.
pub fn fio_commands(properties: &IoProperties, dir: &Path) -> Vec<String> {
    let data = dir.join("iotune-fio-data.tmp");
    let sync = dir.join("iotune-fio-sync.tmp");
    let (data, sync) = (data.display(), sync.display());
    let file_mib = properties.test_file_bytes / (1024 * 1024);
    let common = "--ioengine=psync --direct=1 --fallocate=posix";
    let mut commands = vec![
        format!("rm -f {data} {sync}"),
        format!("fio --name=fill --filename={data} {common} --rw=write --bs=1m --size={file_mib}m"),
    ];
    let points = properties
        .write
        .iter()
        .map(|m| (Direction::Write, m))
        .chain(properties.read.iter().map(|m| (Direction::Read, m)));
    for (direction, m) in points {
        let name = direction.name();
        let part_mib = file_mib / m.queue_depth;
        commands.push(format!(
            "fio --name={name}-{block}k-qd{depth} --filename={data} {common} --rw={name} --bs={block}k \
             --numjobs={depth} --size={part_mib}m --offset_increment={part_mib}m --group_reporting \
             --ramp_time={ramp}ms --runtime={window}ms --time_based",
            block = m.block_bytes / 1024,
            depth = m.queue_depth,
            ramp = properties.ramp_ms,
            window = properties.window_ms,
        ));
    }
    commands.push(format!(
        "fio --name=fdatasync --filename={sync} {common} --rw=write --bs={}k --size={}m --fdatasync=1 \
         --runtime={}ms --time_based",
        SYNC_WRITE_BYTES / 1024,
        SYNC_FILE_BYTES / (1024 * 1024),
        properties.sync_test_ms,
    ));
    commands.push(format!("rm -f {data} {sync}"));
    commands
}

/// Human-readable summary of a measurement.
pub fn render(properties: &IoProperties) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let mut out = format!(
        "O_DIRECT sequential, {} MiB file, each point {:.2} s warm-up + {:.2} s measured; \
         queue depth N = N threads, each through its own 1/N of the file\n",
        properties.test_file_bytes / (1024 * 1024),
        properties.ramp_ms as f64 / 1000.0,
        properties.window_ms as f64 / 1000.0,
    );
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
        "4 KiB write + fdatasync: p50 {} us, p99 {} us; fdatasync alone: p50 {} us, p99 {} us \
         ({} samples in {:.1} s)\n\
         write buffer {} KiB, flush concurrency {}, measured in {:.1} s\n",
        properties.fdatasync_p50_us,
        properties.fdatasync_p99_us,
        properties.fdatasync_call_p50_us,
        properties.fdatasync_call_p99_us,
        properties.fdatasync_samples,
        properties.sync_test_ms as f64 / 1000.0,
        properties.write_block_bytes / 1024,
        properties.flush_concurrency,
        properties.duration_ms as f64 / 1000.0
    ));
    out
}

/// `ringtail iotune`: measures the disk under `options.data_dir` (created if missing) in
/// about `options.seconds`, prints a summary and the fio commands that repeat it
/// ([`fio_commands`]), and writes `<data_dir>/io-properties.toml`.
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
    println!(
        "the same measurement with fio (bandwidth: the group's bw= in MB/s; fdatasync: the `sync` \
         percentiles, and clat + sync for write + fdatasync):"
    );
    for command in fio_commands(&properties, &options.data_dir) {
        println!("  {command}");
    }
    Ok(properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_follows_the_budget() {
        #[track_caller]
        fn check(seconds: u64, expected_ms: [u64; 4]) {
            let plan = Plan::for_budget(seconds);
            let actual = [plan.fill, plan.ramp, plan.window, plan.sync_test].map(|d| d.as_millis() as u64);
            assert_eq!(actual, expected_ms, "--seconds {seconds}: fill, ramp, window, sync test");
            let points = (plan.ramp + plan.window) * Plan::POINTS;
            assert!(plan.fill + points + plan.sync_test <= Duration::from_secs(seconds));
        }
        check(2, [333, 22, 89, 333]);
        check(20, [3333, 222, 889, 3333]);
        check(60, [10000, 666, 2667, 10000]);
        check(90, [15000, 1000, 4000, 15000]);
        check(600, [100000, 6666, 26667, 100000]);
    }

    #[test]
    fn fio_commands_repeat_the_method() {
        let m = |block_bytes, queue_depth| Measurement { block_bytes, queue_depth, bytes_per_s: 1 };
        let properties = IoProperties {
            version: PROPERTIES_VERSION,
            measured_unix_s: 0,
            duration_ms: 0,
            write_bytes_per_s_max: 1,
            read_bytes_per_s_max: 1,
            write_block_bytes: 1024 * 1024,
            flush_concurrency: 1,
            fdatasync_p50_us: 1,
            fdatasync_p99_us: 1,
            fdatasync_samples: 1,
            fdatasync_call_p50_us: 1,
            fdatasync_call_p99_us: 1,
            test_file_bytes: 1024 * 1024 * 1024,
            ramp_ms: 1000,
            window_ms: 4000,
            sync_test_ms: 15000,
            write: vec![m(64 * 1024, 1), m(1024 * 1024, 4)],
            read: vec![m(256 * 1024, 4)],
        };
        let commands = fio_commands(&properties, Path::new("/d"));
        let expected = [
            "rm -f /d/iotune-fio-data.tmp /d/iotune-fio-sync.tmp",
            "fio --name=fill --filename=/d/iotune-fio-data.tmp --ioengine=psync --direct=1 --fallocate=posix \
             --rw=write --bs=1m --size=1024m",
            "fio --name=write-64k-qd1 --filename=/d/iotune-fio-data.tmp --ioengine=psync --direct=1 \
             --fallocate=posix --rw=write --bs=64k --numjobs=1 --size=1024m --offset_increment=1024m \
             --group_reporting --ramp_time=1000ms --runtime=4000ms --time_based",
            "fio --name=write-1024k-qd4 --filename=/d/iotune-fio-data.tmp --ioengine=psync --direct=1 \
             --fallocate=posix --rw=write --bs=1024k --numjobs=4 --size=256m --offset_increment=256m \
             --group_reporting --ramp_time=1000ms --runtime=4000ms --time_based",
            "fio --name=read-256k-qd4 --filename=/d/iotune-fio-data.tmp --ioengine=psync --direct=1 \
             --fallocate=posix --rw=read --bs=256k --numjobs=4 --size=256m --offset_increment=256m \
             --group_reporting --ramp_time=1000ms --runtime=4000ms --time_based",
            "fio --name=fdatasync --filename=/d/iotune-fio-sync.tmp --ioengine=psync --direct=1 --fallocate=posix \
             --rw=write --bs=4k --size=64m --fdatasync=1 --runtime=15000ms --time_based",
            "rm -f /d/iotune-fio-data.tmp /d/iotune-fio-sync.tmp",
        ];
        assert_eq!(commands, expected);
    }
}
