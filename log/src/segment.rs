//! Segment files on disk: listing, loading with indexes, recovery scans and cold reads.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use crate::batch::{self, BatchHeader, Origin, BATCH_HEADER_BYTES, BATCH_LENGTH_MIN, STORED_BATCH_BYTES_MAX};
use crate::checkpoint;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::fault::{Faults, IoOp};
use crate::index::{OffsetIndex, TimeIndex};
use crate::partition::{BatchBytes, Segment};
use crate::platform::{self, BufferedFile, Directory, DmaFile, OpenOptions};

/// Largest single read issued for a cold fetch, whatever the fetch's byte budget.
const READ_BYTES_MAX: usize = 8 << 20;

/// What is in a partition directory.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Base offsets of `.log` files, ascending.
    pub segments: Vec<u64>,
    /// Leftover `*.tmp` files of interrupted checkpoint writes.
    pub temporary: Vec<PathBuf>,
    /// Index files with their segment's base offset; those without a segment are removed.
    pub indexes: Vec<(u64, PathBuf)>,
}

/// `<dir>/<base offset, 20 digits>.<extension>`: the name of a segment's files.
pub(crate) fn segment_path(dir: &Path, base_offset: u64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
}

/// Creates the partition directory if needed and makes its entry in the parent durable.
pub(crate) async fn create_dir(dir: &Path, faults: &Faults) -> Result<(), LogError> {
    faults.check(IoOp::Create, dir)?;
    let d = Directory::create(dir).await.map_err(|e| LogError::io_taking_space("creating directory", dir, e))?;
    d.close().await.map_err(|e| LogError::io("closing directory", dir, e))?;
    match dir.parent() {
        Some(parent) if parent.as_os_str().is_empty() => checkpoint::sync_dir(Path::new("."), faults).await,
        Some(parent) => checkpoint::sync_dir(parent, faults).await,
        None => Ok(()),
    }
}

thread_local! {
    static PRIMED_DEVICES: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// The name of a probe file starts with this.
const PROBE_PREFIX: &str = ".direct-io-probe-";

/// On a full file system there is no room for a probe: any file with data will do (the data
/// directory always holds `meta.properties`; partition directories hold segments), but never
/// another shard's probe, which it removes when done. With none, priming waits for the next open.
async fn prime_with_existing(dir: &Path, device: u64) -> Result<(), LogError> {
    let mut candidates = Vec::new();
    let entries = platform::list_dir(dir).map_err(|e| LogError::io("listing", dir, e))?;
    for (path, len, is_file) in entries {
        // Another shard's probe may be removed under us at any moment: never a candidate.
        let probe = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PROBE_PREFIX));
        if is_file && len > 0 && !probe {
            candidates.push(path);
        }
    }
    let Some(existing) = candidates.first() else { return Ok(()) };
    let dma = DmaFile::open(existing).await.map_err(|e| LogError::io("opening", existing, e))?;
    dma.close().await.map_err(|e| LogError::io("closing", existing, e))?;
    PRIMED_DEVICES.with(|p| p.borrow_mut().insert(device));
    Ok(())
}

/// glommio decides once per thread and device whether the device supports polled I/O, by
/// reading the first block of the first file opened for direct I/O. If that file is empty the
/// read succeeds vacuously, polling is wrongly enabled, and every later read fails with
/// EOPNOTSUPP. So before any segment file is opened, probe with a file that has data.
pub async fn prime_direct_io(dir: &Path) -> Result<(), LogError> {
    let device = platform::device_of(dir).map_err(|e| LogError::io("inspecting", dir, e))?;
    if PRIMED_DEVICES.with(|p| p.borrow().contains(&device)) {
        return Ok(());
    }
    // One probe file per executor thread: shards prime the same directory at the same time.
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join(format!("{PROBE_PREFIX}{}-{n}", std::process::id()));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(&probe)
        .await
        .map_err(|e| LogError::io_taking_space("creating", &probe, e));
    let file = match file {
        Err(e) if e.is_no_space() => return prime_with_existing(dir, device).await,
        other => other?,
    };
    if let Err(e) = file.write_at(vec![0xA5; 4096], 0).await {
        let e = LogError::io_taking_space("writing", &probe, e);
        let _ = file.close().await;
        let _ = platform::remove(&probe).await;
        return if e.is_no_space() { prime_with_existing(dir, device).await } else { Err(e) };
    }
    file.fdatasync().await.map_err(|e| LogError::io("syncing", &probe, e))?;
    file.close().await.map_err(|e| LogError::io("closing", &probe, e))?;
    let dma = DmaFile::open(&probe).await.map_err(|e| LogError::io("opening", &probe, e))?;
    dma.close().await.map_err(|e| LogError::io("closing", &probe, e))?;
    platform::remove(&probe).await.map_err(|e| LogError::io("removing", &probe, e))?;
    PRIMED_DEVICES.with(|p| p.borrow_mut().insert(device));
    Ok(())
}

/// A base offset from a file name stem: exactly 20 ASCII digits that fit a u64.
fn parse_base(stem: &str) -> Option<u64> {
    if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
        stem.parse().ok()
    } else {
        None
    }
}

/// Lists the directory. Runs once when a partition is opened, before it takes traffic.
pub(crate) fn list_dir(dir: &Path) -> Result<Listing, LogError> {
    let mut listing = Listing::default();
    let entries = platform::list_dir(dir).map_err(|e| LogError::io("listing", dir, e))?;
    for (path, _, _) in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if name.ends_with(".tmp") {
            listing.temporary.push(path.clone());
        } else if let Some(stem) = name.strip_suffix(".log") {
            // Anything else (including 20 digits beyond u64) is not ours and is left alone.
            if let Some(base) = parse_base(stem) {
                listing.segments.push(base);
            }
        } else if let Some(stem) = name.strip_suffix(".index").or_else(|| name.strip_suffix(".timeindex")) {
            if let Some(base) = parse_base(stem) {
                listing.indexes.push((base, path.clone()));
            }
        }
    }
    listing.segments.sort_unstable();
    Ok(listing)
}

pub(crate) fn file_len(path: &Path) -> Result<u64, LogError> {
    platform::file_len(path).map_err(|e| LogError::io("inspecting", path, e))
}

pub(crate) async fn open_segment(path: &Path, faults: &Faults) -> Result<Rc<DmaFile>, LogError> {
    faults.check(IoOp::Read, path)?;
    let f =
        OpenOptions::new().read(true).write(true).dma_open(path).await.map_err(|e| LogError::io("opening", path, e))?;
    Ok(Rc::new(f))
}

async fn read_small(path: &Path) -> Option<Vec<u8>> {
    let file = BufferedFile::open(path).await.ok()?;
    let size = file.file_size().await.ok()?;
    let bytes = file.read_at(0, size as usize).await.ok()?.to_vec();
    file.close().await.ok()?;
    Some(bytes)
}

/// Loads a sealed segment that ends at `next_offset` from its index files, or `None` if they
/// are missing or inconsistent (the caller then scans the segment). The batches after the last
/// index entry are read and checked too, even after a clean shutdown: a segment file that lost
/// its end while the broker was down must not claim offsets it no longer holds.
pub(crate) async fn load_indexed(
    dir: &Path,
    base: u64,
    next_offset: u64,
    faults: &Faults,
) -> Result<Option<Segment>, LogError> {
    let path = segment_path(dir, base, "log");
    let file = open_segment(&path, faults).await?;
    let size = file.file_size().await.map_err(|e| LogError::io("sizing", &path, e))?;
    if next_offset <= base || size < BATCH_HEADER_BYTES as u64 {
        return Ok(None);
    }
    let Some(index) = read_small(&segment_path(dir, base, "index")).await else { return Ok(None) };
    let Some(time_index) = read_small(&segment_path(dir, base, "timeindex")).await else { return Ok(None) };
    let (Ok(offset_index), Ok(time_index)) =
        (OffsetIndex::decode(&index, size), TimeIndex::decode(&time_index, next_offset - base))
    else {
        return Ok(None);
    };
    // Every non-empty segment has at least one time index entry: its largest timestamp.
    let Some((max_timestamp, max_timestamp_relative)) = time_index.last() else { return Ok(None) };
    if !tail_is_sound(&file, &path, &offset_index, base, size, next_offset, faults).await? {
        return Ok(None);
    }
    let mut s = Segment::new(base);
    s.max_timestamp = max_timestamp;
    s.max_timestamp_relative = max_timestamp_relative;
    s.file = Some(file);
    s.size = size;
    s.flushed = size;
    s.synced = size;
    s.allocated = size;
    s.next_offset = next_offset;
    s.offset_index = offset_index;
    s.time_index = time_index;
    s.sealed = true;
    s.finalized = true;
    Ok(Some(s))
}

/// From the last indexed batch to the end of the file every batch must be valid and contiguous,
/// and the last must end at `next_offset`. Catches truncated and torn sealed segments without
/// reading them whole.
async fn tail_is_sound(
    file: &DmaFile,
    path: &Path,
    offset_index: &OffsetIndex,
    base: u64,
    size: u64,
    next_offset: u64,
    faults: &Faults,
) -> Result<bool, LogError> {
    let (relative, tail_start) = offset_index.lookup_entry(u32::MAX);
    let tail_start = u64::from(tail_start);
    let tail_len = (size - tail_start) as usize;
    faults.check(IoOp::Read, path)?;
    let tail = file.read_at(tail_start, tail_len).await.map_err(|e| LogError::io("reading", path, e))?;
    let mut at = 0usize;
    let mut expected_next = base + u64::from(relative);
    while at < tail.len() {
        match batch::validate_batch(&tail[at..], STORED_BATCH_BYTES_MAX, Origin::Log) {
            Ok(h) if h.base_offset as u64 == expected_next => {
                expected_next += h.offset_count();
                at += h.size();
            }
            _ => return Ok(false),
        }
    }
    Ok(tail.len() == tail_len && expected_next == next_offset)
}

pub(crate) struct ScanOutcome {
    pub segment: Segment,
    pub file_len: u64,
    /// The scan stopped at bytes that are neither a valid batch nor zero padding.
    pub torn: bool,
}

/// Reads a segment batch by batch from the start, checking every length, CRC and offset, and
/// rebuilds its indexes. Stops at the first batch that fails; the segment ends there.
pub(crate) async fn scan(dir: &Path, base: u64, config: &LogConfig, faults: &Faults) -> Result<ScanOutcome, LogError> {
    let path = segment_path(dir, base, "log");
    let file = open_segment(&path, faults).await?;
    let file_len = file.file_size().await.map_err(|e| LogError::io("sizing", &path, e))?;
    let mut segment = Segment::new(base);
    let mut pos = 0u64;
    let mut want = config.read_chunk_bytes;
    let mut torn = false;
    'scan: while pos < file_len {
        let len = want.min((file_len - pos) as usize);
        faults.check(IoOp::Read, &path)?;
        let chunk = file.read_at(pos, len).await.map_err(|e| LogError::io("reading", &path, e))?;
        let mut at = 0usize;
        let mut grow = None;
        while at < chunk.len() {
            let rest = &chunk[at..];
            match batch::validate_batch(rest, STORED_BATCH_BYTES_MAX, Origin::Log) {
                Ok(h) if h.base_offset as u64 == segment.next_offset && segment.fits_offsets(h.offset_count()) => {
                    let size = h.size() as u64;
                    segment.index_batch(
                        h.base_offset as u64,
                        h.base_offset as u64 + h.offset_count() - 1,
                        h.max_timestamp,
                        size,
                        config.index_interval_bytes,
                    );
                    at += h.size();
                }
                Ok(_) => {
                    // A valid batch with the wrong offset is stale data, not part of this log.
                    torn = true;
                    break 'scan;
                }
                Err(crate::error::BatchError::Truncated { needed, .. })
                    if chunk.len() == len && pos + (at + needed) as u64 <= file_len =>
                {
                    // The batch continues past this chunk: read again from its start.
                    grow = Some(needed);
                    break;
                }
                Err(_) => {
                    torn = !rest.iter().take(BATCH_HEADER_BYTES).all(|&b| b == 0);
                    break 'scan;
                }
            }
        }
        if at == 0 && grow.is_none_or(|n| n <= len) {
            break;
        }
        pos += at as u64;
        want = grow.map_or(config.read_chunk_bytes, |n| n.max(config.read_chunk_bytes));
    }
    segment.file = Some(file);
    segment.flushed = segment.size;
    segment.synced = segment.size;
    segment.allocated = file_len;
    Ok(ScanOutcome { segment, file_len, torn })
}

/// Verifies the batches of `[position, limit)` of a sealed segment file, reading at most about
/// `max_bytes` (whole batches, at least one): each batch's length, CRC and base offset (which
/// must continue from `expected_base`), exactly as a read from disk checks them (it is one).
/// Returns where it stopped and the next expected base offset. Any failure is damage: the
/// range was written whole and synced.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn verify(
    file: &DmaFile,
    path: &Path,
    position: u64,
    expected_base: u64,
    limit: u64,
    max_bytes: usize,
    config: &LogConfig,
    faults: &Faults,
) -> Result<(u64, u64), LogError> {
    let batches =
        read_disk(file, path, position, expected_base, limit, expected_base, max_bytes, u64::MAX, config, faults)
            .await?;
    let read: u64 = batches.iter().map(|b| (b.header.len() + b.body.len()) as u64).sum();
    Ok((position + read, batches.last().map_or(expected_base, |b| b.last_offset + 1)))
}

/// Bytes read at a time while walking batch headers (one block holds several small batches'
/// headers).
const HEADER_READ_BYTES: usize = 4096;

/// A batch boundary of a segment file: its byte position and the base offset of the batch
/// starting there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Boundary {
    pub position: u64,
    pub base_offset: u64,
}

/// Walks the batch headers of `[from, limit)` of a sealed segment file, reading only headers,
/// until `stop(position, size, last_offset)` holds for a batch; returns that batch's boundary
/// (or `limit`'s, if none stops it). Lengths and base offsets are checked to follow on, as
/// every read checks them; the CRCs are not (the range was verified before, or is about to
/// be read whole).
pub(crate) async fn walk_headers(
    file: &DmaFile,
    path: &Path,
    from: Boundary,
    limit: u64,
    faults: &Faults,
    mut stop: impl FnMut(u64, u64, u64) -> bool,
) -> Result<Boundary, LogError> {
    let corrupt = |position: u64, reason: String| LogError::Corrupt { path: path.to_path_buf(), position, reason };
    let Boundary { mut position, base_offset: mut base } = from;
    // The block last read: where it starts and ends in the file.
    let mut block = None;
    let (mut block_at, mut block_end) = (0u64, 0u64);
    while position < limit {
        if position < block_at || position + BATCH_HEADER_BYTES as u64 > block_end {
            let len = HEADER_READ_BYTES.max(BATCH_HEADER_BYTES).min((limit - position) as usize);
            faults.check(IoOp::Read, path)?;
            let read = file.read_at(position, len).await.map_err(|e| LogError::io("reading", path, e))?;
            if read.len() < BATCH_HEADER_BYTES {
                return Err(corrupt(position, format!("file ends before the {limit} bytes written")));
            }
            (block_at, block_end) = (position, position + read.len() as u64);
            block = Some(read);
        }
        let bytes = block.as_ref().expect("read above");
        let at = block_at;
        let header =
            BatchHeader::parse(&bytes[(position - at) as usize..]).map_err(|e| corrupt(position, e.to_string()))?;
        let size = header.size() as u64;
        if header.batch_length < BATCH_LENGTH_MIN || position + size > limit {
            return Err(corrupt(
                position,
                format!("batch length {} runs past the end of the written data", header.batch_length),
            ));
        }
        if header.base_offset as u64 != base {
            return Err(corrupt(
                position,
                format!("batch base offset {} where {base} was expected", header.base_offset),
            ));
        }
        let last = base + header.offset_count() - 1;
        if stop(position, size, last) {
            return Ok(Boundary { position, base_offset: base });
        }
        position += size;
        base = last + 1;
    }
    Ok(Boundary { position, base_offset: base })
}

/// Reads whole batches from `[position, limit)` of a segment file for a fetch at `offset`,
/// verifying each one's CRC and offset so a corrupt batch is never served. `expected_base` is
/// the base offset of the batch at `position`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn read_disk(
    file: &DmaFile,
    path: &Path,
    mut position: u64,
    mut expected_base: u64,
    limit: u64,
    offset: u64,
    max_bytes: usize,
    max_offset: u64,
    config: &LogConfig,
    faults: &Faults,
) -> Result<Vec<BatchBytes>, LogError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut need = 0usize;
    let corrupt = |position: u64, reason: String| LogError::Corrupt { path: path.to_path_buf(), position, reason };
    while position < limit {
        let len = config
            .read_chunk_bytes
            .max(max_bytes.saturating_sub(bytes).min(READ_BYTES_MAX))
            .max(need)
            .min((limit - position) as usize);
        faults.check(IoOp::Read, path)?;
        let chunk = file.read_at(position, len).await.map_err(|e| LogError::io("reading", path, e))?;
        if chunk.len() < len {
            return Err(corrupt(position + chunk.len() as u64, format!("file ends before the {limit} bytes written")));
        }
        let mut at = 0usize;
        need = 0;
        while at < chunk.len() {
            let rest = &chunk[at..];
            if rest.len() < BATCH_HEADER_BYTES {
                need = BATCH_HEADER_BYTES;
                break;
            }
            let header = BatchHeader::parse(rest).map_err(|e| corrupt(position + at as u64, e.to_string()))?;
            if header.batch_length < BATCH_LENGTH_MIN || position + at as u64 + header.size() as u64 > limit {
                return Err(corrupt(
                    position + at as u64,
                    format!("batch length {} runs past the end of the written data", header.batch_length),
                ));
            }
            let size = header.size();
            if rest.len() < size {
                if !out.is_empty() && bytes + size > max_bytes {
                    return Ok(out);
                }
                need = size;
                break;
            }
            let whole = &rest[..size];
            batch::validate_batch(whole, STORED_BATCH_BYTES_MAX, Origin::Log)
                .map_err(|e| corrupt(position + at as u64, e.to_string()))?;
            // baseOffset lies outside the CRC: check it follows on, so a damaged one is never served.
            if header.base_offset as u64 != expected_base {
                let reason = format!("batch base offset {} where {expected_base} was expected", header.base_offset);
                return Err(corrupt(position + at as u64, reason));
            }
            let last_offset = expected_base + header.offset_count() - 1;
            expected_base = last_offset + 1;
            at += size;
            if last_offset < offset {
                continue;
            }
            if last_offset >= max_offset || (!out.is_empty() && bytes + size > max_bytes) {
                return Ok(out);
            }
            bytes += size;
            out.push(BatchBytes {
                base_offset: header.base_offset as u64,
                last_offset,
                max_timestamp: header.max_timestamp,
                header: Bytes::copy_from_slice(whole),
                body: Bytes::new(),
            });
            if bytes >= max_bytes {
                return Ok(out);
            }
        }
        position += at as u64;
    }
    Ok(out)
}

/// Writes the state checkpoint for tests that rewind a log's recovery point.
#[doc(hidden)]
pub async fn write_state_for_tests(dir: &Path, log_start_offset: u64, recovery_point: u64) -> Result<(), LogError> {
    let state = checkpoint::PartitionState { log_start_offset, recovery_point };
    checkpoint::write_atomic(dir, crate::partition::STATE_FILE, state.encode(), &Faults::default()).await
}
