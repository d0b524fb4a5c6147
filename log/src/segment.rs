//! Segment files on disk: listing, loading with indexes, recovery scans and cold reads.

use std::cell::RefCell;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::{BufferedFile, DmaFile, OpenOptions};

use crate::batch::{self, BatchHeader, Origin, BATCH_HEADER_BYTES, BATCH_LENGTH_MIN};
use crate::checkpoint;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::fault::{Faults, IoOp};
use crate::index::{OffsetIndex, TimeIndex};
use crate::partition::{BatchBytes, Segment};

/// Largest single read issued for a cold fetch, whatever the fetch's byte budget.
const READ_BYTES_MAX: usize = 8 << 20;

/// What is in a partition directory.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Base offsets of `.log` files, ascending.
    pub segments: Vec<u64>,
    /// Leftover `*.tmp` files of interrupted checkpoint writes.
    pub temporary: Vec<PathBuf>,
}

fn segment_path(dir: &Path, base_offset: u64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
}

pub(crate) async fn create_dir(dir: &Path, faults: &Faults) -> Result<(), LogError> {
    faults.check(IoOp::Create, dir)?;
    let d = glommio::io::Directory::create(dir).await.map_err(|e| LogError::io("creating directory", dir, e))?;
    d.close().await.map_err(|e| LogError::io("closing directory", dir, e))
}

thread_local! {
    static PRIMED_DEVICES: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// glommio decides once per thread and device whether the device supports polled I/O, by
/// reading the first block of the first file opened for direct I/O. If that file is empty the
/// read succeeds vacuously, polling is wrongly enabled, and every later read fails with
/// EOPNOTSUPP. So before any segment file is opened, probe with a file that has data.
pub async fn prime_direct_io(dir: &Path) -> Result<(), LogError> {
    let device = std::fs::metadata(dir).map_err(|e| LogError::io("inspecting", dir, e))?.dev();
    if PRIMED_DEVICES.with(|p| p.borrow().contains(&device)) {
        return Ok(());
    }
    let probe = dir.join(".direct-io-probe");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(&probe)
        .await
        .map_err(|e| LogError::io("creating", &probe, e))?;
    file.write_at(vec![0xA5; 4096], 0).await.map_err(|e| LogError::io("writing", &probe, e))?;
    file.fdatasync().await.map_err(|e| LogError::io("syncing", &probe, e))?;
    file.close().await.map_err(|e| LogError::io("closing", &probe, e))?;
    let dma = DmaFile::open(&probe).await.map_err(|e| LogError::io("opening", &probe, e))?;
    dma.close().await.map_err(|e| LogError::io("closing", &probe, e))?;
    glommio::io::remove(&probe).await.map_err(|e| LogError::io("removing", &probe, e))?;
    PRIMED_DEVICES.with(|p| p.borrow_mut().insert(device));
    Ok(())
}

/// Lists the directory. Runs once when a partition is opened, before it takes traffic.
pub(crate) fn list_dir(dir: &Path) -> Result<Listing, LogError> {
    let mut listing = Listing::default();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("listing", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            listing.temporary.push(entry.path());
        } else if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                listing.segments.push(stem.parse().expect("20 digits fit in u64"));
            }
        }
    }
    listing.segments.sort_unstable();
    Ok(listing)
}

pub(crate) fn file_len(path: &Path) -> Result<u64, LogError> {
    Ok(std::fs::metadata(path).map_err(|e| LogError::io("inspecting", path, e))?.len())
}

async fn open_segment(path: &Path, faults: &Faults) -> Result<Rc<DmaFile>, LogError> {
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
/// are missing or inconsistent (the caller then scans the segment).
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
    // Check the tail: from the last indexed batch to the end of the file every batch must be
    // valid and contiguous and the last must end at `next_offset`. This catches truncated and
    // torn sealed segments without reading them whole.
    let tail_start = u64::from(offset_index.lookup(u32::MAX));
    let tail_len = (size - tail_start) as usize;
    faults.check(IoOp::Read, &path)?;
    let tail = file.read_at(tail_start, tail_len).await.map_err(|e| LogError::io("reading", &path, e))?;
    let mut at = 0usize;
    let mut expected_next = None;
    while at < tail.len() {
        match batch::validate_batch(&tail[at..], usize::MAX, Origin::Log) {
            Ok(h) if expected_next.is_none_or(|n| n == h.base_offset as u64) => {
                expected_next = Some(h.base_offset as u64 + h.offset_count());
                at += h.size();
            }
            _ => return Ok(None),
        }
    }
    if tail.len() != tail_len || expected_next != Some(next_offset) {
        return Ok(None);
    }
    let mut s = Segment::new(base);
    s.max_timestamp = time_index.last().map_or(-1, |(t, _)| t);
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
            match batch::validate_batch(rest, config.segment_bytes_max as usize, Origin::Log) {
                Ok(h) if h.base_offset as u64 == segment.next_offset => {
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

/// Reads whole batches from `[position, limit)` of a segment file for a fetch at `offset`,
/// verifying each one's CRC so a corrupt batch is never served.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn read_disk(
    file: &DmaFile,
    path: &Path,
    mut position: u64,
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
            batch::validate_batch(whole, config.segment_bytes_max as usize, Origin::Log)
                .map_err(|e| corrupt(position + at as u64, e.to_string()))?;
            let last_offset = header.base_offset as u64 + header.offset_count() - 1;
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
