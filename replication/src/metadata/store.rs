//! The node's metadata log on disk: an append-only file of framed records and a checkpoint of
//! the image at some offset (`log/FORMAT.md`, "Cluster metadata"). A single node is its own
//! controller and writes here; the quorum issue replaces this file with a Raft log.
//!
//! Loading runs once at start-up, before any shard exists, on the main thread (plain blocking
//! I/O is fine there); appends run on the controller's shard through io_uring.

use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, OpenOptions};

use super::image::{ApplyError, MetadataImage};
use super::record::{MetadataRecord, RecordDecodeError};
use crate::limits::RECORD_BYTES_MAX;

/// The directory, under the data directory.
pub const METADATA_DIR: &str = "cluster-metadata";
pub const RECORDS_FILE: &str = "records";
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// Under the data directory: a cluster broker's copy of the committed metadata it applied
/// (checkpoint and records, as a single node's), so it restarts with its partitions even while
/// no controller answers.
pub const BROKER_COPY_DIR: &str = "cluster-metadata/broker";
const CHECKPOINT_MAGIC: &[u8; 4] = b"RTMC";
const CHECKPOINT_VERSION: u16 = 1;
/// body length, CRC-32C, offset.
const FRAME_HEADER_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("I/O error while {op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("{path} is damaged at byte {position}: {reason}; restore the data directory from a backup")]
    Damaged { path: PathBuf, position: u64, reason: String },
    #[error("{path}: {source}")]
    Apply { path: PathBuf, source: ApplyError },
}

impl StoreError {
    /// The file system had no space (or quota) for a write: nothing was written past what
    /// the store counts as written, so the change can be tried again.
    /// Never for an fdatasync: after a failed one the record may be in the file though the
    /// change was refused, and the kernel may have dropped dirty pages.
    pub fn is_no_space(&self) -> bool {
        matches!(self, StoreError::Io { op, source, .. }
            if *op != "syncing" && matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded))
    }
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

/// One record framed for the records file: body length, CRC-32C of offset and body, offset,
/// body.
pub fn frame(offset: u64, record: &MetadataRecord, out: &mut Vec<u8>) {
    let mut body = Vec::new();
    record.encode(&mut body);
    let mut crc = crc32c::crc32c(&offset.to_be_bytes());
    crc = crc32c::crc32c_append(crc, &body);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&body);
}

/// What reading the frames of a records file found.
#[derive(Debug)]
pub struct Frames {
    pub records: Vec<(u64, MetadataRecord)>,
    /// Bytes of whole, valid frames; anything after is a torn last append.
    pub valid_bytes: u64,
}

/// Reads frames until the end. A damaged frame that reaches the end of the file is the torn
/// last append (never acknowledged: appends are synced before they count) and ends the
/// records; damage with more bytes after it is refused.
pub fn read_frames(bytes: &[u8], path: &Path) -> Result<Frames, StoreError> {
    let mut at = 0usize;
    let mut records = Vec::new();
    while at < bytes.len() {
        let damaged = |reason: String| StoreError::Damaged { path: path.to_path_buf(), position: at as u64, reason };
        let rest = &bytes[at..];
        if rest.len() < FRAME_HEADER_BYTES {
            break;
        }
        let length = u32::from_be_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let end = FRAME_HEADER_BYTES + length;
        if length > RECORD_BYTES_MAX || end > rest.len() {
            if length <= RECORD_BYTES_MAX || rest.iter().all(|&b| b == 0) {
                break;
            }
            return Err(damaged(format!("a record of {length} bytes")));
        }
        let crc = u32::from_be_bytes(rest[4..8].try_into().expect("4 bytes"));
        if crc32c::crc32c(&rest[8..end]) != crc {
            if end == rest.len() {
                break;
            }
            return Err(damaged("a record fails its checksum and more follow".into()));
        }
        let offset = u64::from_be_bytes(rest[8..16].try_into().expect("8 bytes"));
        let record = MetadataRecord::decode(&rest[FRAME_HEADER_BYTES..end])
            .map_err(|RecordDecodeError(reason)| damaged(reason))?;
        records.push((offset, record));
        at += end;
    }
    Ok(Frames { records, valid_bytes: at as u64 })
}

/// A checkpoint: the image at `applied` as the records that rebuild it.
pub fn encode_checkpoint(image: &MetadataImage) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(CHECKPOINT_MAGIC);
    out.extend_from_slice(&CHECKPOINT_VERSION.to_be_bytes());
    out.extend_from_slice(&image.applied.map_or(u64::MAX, |a| a).to_be_bytes());
    for (i, record) in image.to_records().iter().enumerate() {
        frame(i as u64, record, &mut out);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

pub fn decode_checkpoint(bytes: &[u8], path: &Path) -> Result<MetadataImage, StoreError> {
    let damaged = |position: usize, reason: &str| StoreError::Damaged {
        path: path.to_path_buf(),
        position: position as u64,
        reason: reason.to_string(),
    };
    if bytes.len() < 18 || &bytes[0..4] != CHECKPOINT_MAGIC {
        return Err(damaged(0, "not a metadata checkpoint"));
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(content) != u32::from_be_bytes(crc.try_into().expect("4 bytes")) {
        return Err(damaged(bytes.len() - 4, "checksum mismatch"));
    }
    let version = u16::from_be_bytes(content[4..6].try_into().expect("2 bytes"));
    if version != CHECKPOINT_VERSION {
        return Err(damaged(4, &format!("version {version}; this build reads {CHECKPOINT_VERSION}")));
    }
    let applied = u64::from_be_bytes(content[6..14].try_into().expect("8 bytes"));
    let frames = read_frames(&content[14..], path)?;
    if frames.valid_bytes as usize != content.len() - 14 {
        return Err(damaged(14 + frames.valid_bytes as usize, "a record is cut short"));
    }
    let mut image = MetadataImage::default();
    for (offset, record) in &frames.records {
        image.apply(*offset, record).map_err(|source| StoreError::Apply { path: path.to_path_buf(), source })?;
    }
    image.applied = (applied != u64::MAX).then_some(applied);
    Ok(image)
}

/// What start-up found in the metadata directory.
#[derive(Debug)]
pub struct Loaded {
    pub image: MetadataImage,
    /// Records applied from the records file (after the checkpoint).
    pub replayed: usize,
    /// Bytes of a torn last append cut from the records file.
    pub torn_bytes: u64,
}

/// True when the directory holds metadata written by this format.
pub fn exists(data_dir: &Path) -> bool {
    data_dir.join(METADATA_DIR).join(CHECKPOINT_FILE).exists()
}

/// Loads the image: the checkpoint, then the records after it. Reads only (a torn last append
/// is left in the file). Blocking.
pub fn load(data_dir: &Path) -> Result<Loaded, StoreError> {
    load_in(&data_dir.join(METADATA_DIR))
}

/// [`load`] of a metadata directory given itself (a broker of a cluster keeps its copy of the
/// quorum's metadata in one of its own, [`BROKER_COPY_DIR`]).
pub fn load_in(dir: &Path) -> Result<Loaded, StoreError> {
    let checkpoint_path = dir.join(CHECKPOINT_FILE);
    let mut image = match std::fs::read(&checkpoint_path) {
        Ok(bytes) => decode_checkpoint(&bytes, &checkpoint_path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => MetadataImage::default(),
        Err(e) => return Err(io_error("reading", &checkpoint_path)(e)),
    };
    let records_path = dir.join(RECORDS_FILE);
    let bytes = match std::fs::read(&records_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error("reading", &records_path)(e)),
    };
    let frames = read_frames(&bytes, &records_path)?;
    let mut replayed = 0;
    for (offset, record) in &frames.records {
        if image.applied.is_some_and(|a| *offset <= a) {
            // Already in the checkpoint: a crash came between writing it and emptying this file.
            continue;
        }
        let expected = image.applied.map_or(0, |a| a + 1);
        if *offset != expected {
            return Err(StoreError::Damaged {
                path: records_path.clone(),
                position: 0,
                reason: format!("record offset {offset} where {expected} was next"),
            });
        }
        image.apply(*offset, record).map_err(|source| StoreError::Apply { path: records_path.clone(), source })?;
        replayed += 1;
    }
    let torn_bytes = bytes.len() as u64 - frames.valid_bytes;
    Ok(Loaded { image, replayed, torn_bytes })
}

/// Loads the image, writes a new checkpoint of it and empties the records file, so every
/// start begins from one checkpoint (and a torn last append is gone). Blocking: start-up only.
pub fn load_and_checkpoint(data_dir: &Path) -> Result<Loaded, StoreError> {
    let loaded = load(data_dir)?;
    write_checkpoint(data_dir, &loaded.image)?;
    Ok(loaded)
}

/// Cuts `torn_bytes` off the end of the records file (what `load` found after the last whole
/// record), so that appends go right after it and never leave a torn record between records,
/// where the next load would stop. Needs no space. Blocking: start-up only.
pub fn cut_torn_tail(data_dir: &Path, torn_bytes: u64) -> Result<(), StoreError> {
    cut_torn_tail_in(&data_dir.join(METADATA_DIR), torn_bytes)
}

pub fn cut_torn_tail_in(dir: &Path, torn_bytes: u64) -> Result<(), StoreError> {
    let path = dir.join(RECORDS_FILE);
    let file = std::fs::OpenOptions::new().write(true).open(&path).map_err(io_error("opening", &path))?;
    let size = file.metadata().map_err(io_error("sizing", &path))?.len();
    file.set_len(size - torn_bytes.min(size)).map_err(io_error("truncating", &path))?;
    file.sync_all().map_err(io_error("syncing", &path))
}

/// Writes the checkpoint of `image` and then an empty records file, each atomically and
/// durably. Blocking: start-up only.
pub fn write_checkpoint(data_dir: &Path, image: &MetadataImage) -> Result<(), StoreError> {
    write_checkpoint_in(&data_dir.join(METADATA_DIR), image)
}

pub fn write_checkpoint_in(dir: &Path, image: &MetadataImage) -> Result<(), StoreError> {
    let dir = dir.to_path_buf();
    std::fs::create_dir_all(&dir).map_err(io_error("creating", &dir))?;
    write_atomic_blocking(&dir, CHECKPOINT_FILE, &encode_checkpoint(image))?;
    write_atomic_blocking(&dir, RECORDS_FILE, &[])
}

/// Writes `dir/name` through a temporary file, fsync, rename and a directory fsync.
pub fn write_atomic_blocking(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    if let Err(e) = std::fs::write(&tmp, bytes) {
        // A partial temporary file holds space the next attempt needs.
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error("writing", &tmp)(e));
    }
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io_error("syncing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_error("renaming", &tmp))?;
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io_error("syncing", dir))
}

/// The records file, open for appends on the controller's shard.
///
/// Owned by the controller's shard (`!Send`); appends are serialized by the controller.
pub struct MetadataLog {
    path: PathBuf,
    file: BufferedFile,
    end: Cell<u64>,
    next_offset: Cell<u64>,
}

impl MetadataLog {
    /// Opens the records file that `load_and_checkpoint` left (empty), for records after
    /// `applied`.
    pub async fn open(data_dir: &Path, applied: Option<u64>) -> Result<MetadataLog, StoreError> {
        MetadataLog::open_in(&data_dir.join(METADATA_DIR), applied).await
    }

    /// [`MetadataLog::open`] of a metadata directory given itself.
    pub async fn open_in(dir: &Path, applied: Option<u64>) -> Result<MetadataLog, StoreError> {
        let path = dir.join(RECORDS_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(&path)
            .await
            .map_err(|e| StoreError::Io { op: "opening", path: path.clone(), source: e.into() })?;
        // Start-up empties the file, or cuts a torn tail off it (`cut_torn_tail`).
        let end = file.file_size().await.map_err(|e| StoreError::Io {
            op: "sizing",
            path: path.clone(),
            source: e.into(),
        })?;
        Ok(MetadataLog { path, file, end: Cell::new(end), next_offset: Cell::new(applied.map_or(0, |a| a + 1)) })
    }

    /// Appends records and makes them durable; returns the offset of the first. Nothing may
    /// act on a record before this returns.
    pub async fn append(&self, records: &[MetadataRecord]) -> Result<u64, StoreError> {
        let first = self.next_offset.get();
        let mut bytes = Vec::new();
        for (i, r) in records.iter().enumerate() {
            frame(first + i as u64, r, &mut bytes);
        }
        let length = bytes.len();
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |e: glommio::GlommioError<()>| StoreError::Io { op, path, source: e.into() }
        };
        let written = self.file.write_at(bytes, self.end.get()).await.map_err(io("writing", &self.path))?;
        if written != length {
            // A short write is the file system running out of space: the next append writes
            // over the partial record (and recovery cuts it, as a torn one, after a crash).
            return Err(StoreError::Io {
                op: "writing",
                path: self.path.clone(),
                source: io::Error::new(io::ErrorKind::StorageFull, "short write: the file system is full"),
            });
        }
        self.file.fdatasync().await.map_err(io("syncing", &self.path))?;
        self.end.set(self.end.get() + length as u64);
        self.next_offset.set(first + records.len() as u64);
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TopicId;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ringtail-replication-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn created(id: u8, name: &str) -> MetadataRecord {
        MetadataRecord::TopicCreated { topic_id: TopicId([id; 16]), name: name.into(), configs: Vec::new() }
    }

    fn file_of(records: &[(u64, MetadataRecord)]) -> Vec<u8> {
        let mut out = Vec::new();
        records.iter().for_each(|(o, r)| frame(*o, r, &mut out));
        out
    }

    #[test]
    fn a_torn_last_frame_is_cut_and_damage_before_the_end_refused() {
        let records = vec![(0, created(1, "a")), (1, created(2, "b"))];
        let bytes = file_of(&records);
        let path = Path::new("records");
        let whole = read_frames(&bytes, path).unwrap();
        assert_eq!(whole.records, records);
        for cut in 1..bytes.len() {
            let frames = read_frames(&bytes[..cut], path).unwrap();
            assert!(frames.records.len() < 2 && frames.valid_bytes <= cut as u64, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[FRAME_HEADER_BYTES + 2] ^= 1;
        assert!(matches!(read_frames(&flipped, path), Err(StoreError::Damaged { .. })), "damage in the first of two");
        let mut last = bytes.clone();
        let n = last.len();
        last[n - 1] ^= 1;
        assert_eq!(read_frames(&last, path).unwrap().records.len(), 1, "damage in the last is a torn append");
    }

    #[test]
    fn a_torn_tail_is_cut_so_later_records_are_read() {
        let data = scratch("cut-torn");
        write_checkpoint(&data, &MetadataImage::default()).unwrap();
        let mut bytes = file_of(&[(0, created(1, "a"))]);
        let mut torn = Vec::new();
        frame(1, &created(2, "b"), &mut torn);
        bytes.extend_from_slice(&torn[..torn.len() - 3]);
        let path = data.join(METADATA_DIR).join(RECORDS_FILE);
        std::fs::write(&path, &bytes).unwrap();
        let loaded = load(&data).unwrap();
        assert_eq!(loaded.torn_bytes, (torn.len() - 3) as u64);
        cut_torn_tail(&data, loaded.torn_bytes).unwrap();
        // A record appended now (as the metadata log does, at the end) is read at the next load.
        let mut file = std::fs::read(&path).unwrap();
        frame(1, &created(3, "c"), &mut file);
        std::fs::write(&path, &file).unwrap();
        let again = load(&data).unwrap();
        assert_eq!((again.replayed, again.torn_bytes), (2, 0));
        assert!(again.image.topic("c").is_some());
    }

    #[test]
    fn start_up_replays_records_after_the_checkpoint_and_checkpoints_again() {
        let data = scratch("replay");
        let mut image = MetadataImage::default();
        image.apply(0, &created(1, "a")).unwrap();
        write_checkpoint(&data, &image).unwrap();
        // Records 0 (already in the checkpoint) and 1, then half of record 2.
        let mut bytes = file_of(&[(0, created(1, "a")), (1, created(2, "b"))]);
        let mut torn = Vec::new();
        frame(2, &created(3, "c"), &mut torn);
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        std::fs::write(data.join(METADATA_DIR).join(RECORDS_FILE), &bytes).unwrap();
        let loaded = load_and_checkpoint(&data).unwrap();
        assert_eq!((loaded.replayed, loaded.torn_bytes), (1, (torn.len() / 2) as u64));
        assert_eq!(loaded.image.applied, Some(1));
        assert!(loaded.image.topic("b").is_some() && loaded.image.topic("c").is_none());
        assert_eq!(std::fs::metadata(data.join(METADATA_DIR).join(RECORDS_FILE)).unwrap().len(), 0);
        let again = load_and_checkpoint(&data).unwrap();
        assert_eq!((again.image, again.replayed), (loaded.image, 0));
        // A gap in offsets is damage.
        std::fs::write(data.join(METADATA_DIR).join(RECORDS_FILE), file_of(&[(5, created(9, "z"))])).unwrap();
        assert!(matches!(load_and_checkpoint(&data), Err(StoreError::Damaged { .. })));
        let _ = std::fs::remove_dir_all(&data);
    }

    #[test]
    fn appends_are_read_back_at_the_next_start() {
        let data = scratch("append");
        write_checkpoint(&data, &MetadataImage::default()).unwrap();
        let path = data.clone();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let log = MetadataLog::open(&path, None).await.unwrap();
                assert_eq!(log.append(&[created(1, "a")]).await.unwrap(), 0);
                assert_eq!(log.append(&[created(2, "b"), created(3, "c")]).await.unwrap(), 1);
            })
            .unwrap()
            .join()
            .unwrap();
        let loaded = load_and_checkpoint(&data).unwrap();
        assert_eq!((loaded.replayed, loaded.image.applied, loaded.image.topic_count()), (3, Some(2), 3));
        let _ = std::fs::remove_dir_all(&data);
    }
}
