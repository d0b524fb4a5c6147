//! The quorum's state machine: committed record batches applied, in log order, to a
//! [`MetadataImage`], with the last applied log id and membership; and its snapshots.
//!
//! A record that does not apply to the image is skipped and counted, never a panic, and takes
//! no metadata offset: every replica skips the same records of the same log, so images and
//! offsets agree everywhere.
//!
//! **Snapshots** are the image encoded as a metadata checkpoint (`store::encode_checkpoint`)
//! with the snapshot meta before it, in one file, `snapshot`: `RTQS`, version u16, the meta
//! (`codec.rs`), the checkpoint as a u32-length-prefixed byte string, CRC-32C of all before it.
//! Building one and installing one both write the file atomically (temporary file, fdatasync,
//! rename, directory fsync) before anything acts on it; at open the state machine starts from
//! it, and openraft replays the log from there to the committed id the log saved.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use futures_lite::StreamExt;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use ringtail_log::platform::{self, BufferedFile, OpenOptions};

use super::broker_wire::FetchBody;
use super::codec::{self, Reader};
use super::limits::SNAPSHOT_BYTES_MAX;
use super::storage::{create_dir_all, QuorumStoreError};
use super::types::{BatchApplied, LogId, QuorumTypes, RecordBatch, Snapshot, SnapshotMeta, StoredMembership};
use crate::metadata::store::{decode_checkpoint, encode_checkpoint};
use crate::metadata::{MetadataImage, MetadataRecord};
use std::collections::VecDeque;

pub const SNAPSHOT_FILE: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"RTQS";
const SNAPSHOT_VERSION: u16 = 1;
/// Entries applied between yields to the executor, so a long catch-up never starves the
/// shard's other tasks (heartbeats among them).
const ENTRIES_PER_YIELD: usize = 64;

/// The state machine's state. Owned by the executor thread of the node's `Raft` (`!Send`).
#[derive(Debug, Default)]
pub struct Applied {
    pub image: MetadataImage,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Records skipped since this process opened the state machine (they did not apply).
    pub skipped_records: u64,
    /// The snapshot on disk, as sent to a follower.
    snapshot: Option<Snapshot>,
    /// The last applied records with their offsets (at most `RECENT_RECORDS_MAX`), served to
    /// brokers following the metadata; one further behind gets the whole image.
    recent: VecDeque<(u64, MetadataRecord)>,
    /// The image encoded for brokers far behind, as of its applied offset: encoded once per
    /// offset however many brokers ask.
    encoded: Option<(Option<u64>, Bytes)>,
}

/// Applied records kept for brokers following the metadata.
pub const RECENT_RECORDS_MAX: usize = 16_384;
/// Bytes of records (encoded) one fetch returns at most; a fetch returns at least one record.
pub const FETCH_RECORD_BYTES_MAX: usize = 4 << 20;

/// The quorum's state machine (openraft's `RaftStateMachine`); clones share one state.
#[derive(Clone)]
pub struct StateMachine {
    dir: PathBuf,
    state: Rc<RefCell<Applied>>,
    writes: Rc<SnapshotWrites>,
}

/// Snapshot files are written one at a time, and never replaced by an older one: openraft
/// builds snapshots in a task of their own, so a build and an install (or two builds) can
/// overlap. Found by the deterministic simulation: two writes racing for the one temporary
/// file failed the second (the node stopped), and a build finishing after an install would
/// have left the older snapshot on disk behind a log purged past it.
struct SnapshotWrites {
    lock: platform::Semaphore,
    /// The last log id of the snapshot on disk.
    on_disk: std::cell::Cell<Option<LogId>>,
}

/// Encodes a snapshot file's bytes.
pub fn encode_snapshot(meta: &SnapshotMeta, image: &MetadataImage) -> Bytes {
    let mut out = Vec::new();
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    codec::put_snapshot_meta(&mut out, meta);
    codec::put_bytes(&mut out, &encode_checkpoint(image));
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    assert!(out.len() <= SNAPSHOT_BYTES_MAX, "a snapshot of {} bytes; raise SNAPSHOT_BYTES_MAX", out.len());
    Bytes::from(out)
}

/// Decodes and checks a snapshot (from the file or a leader): framing, checksum, meta, and
/// the image, whose records must all apply.
pub fn decode_snapshot(bytes: &[u8], source: &Path) -> Result<(SnapshotMeta, MetadataImage), QuorumStoreError> {
    let damaged = |position: usize, reason: String| QuorumStoreError::Damaged {
        path: source.to_path_buf(),
        position: position as u64,
        reason,
    };
    if bytes.len() > SNAPSHOT_BYTES_MAX {
        return Err(damaged(0, format!("{} bytes; a snapshot has at most {SNAPSHOT_BYTES_MAX}", bytes.len())));
    }
    if bytes.len() < 10 || &bytes[0..4] != SNAPSHOT_MAGIC {
        return Err(damaged(0, "not a quorum snapshot".into()));
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(content) != u32::from_be_bytes(crc.try_into().expect("4 bytes")) {
        return Err(damaged(content.len(), "checksum mismatch".into()));
    }
    let version = u16::from_be_bytes([content[4], content[5]]);
    if version != SNAPSHOT_VERSION {
        return Err(damaged(4, format!("version {version}; this build reads {SNAPSHOT_VERSION}")));
    }
    let mut r = Reader::new(&content[6..]);
    let meta = codec::snapshot_meta(&mut r).map_err(|e| damaged(6, e.0))?;
    let checkpoint = r.bytes(SNAPSHOT_BYTES_MAX).map_err(|e| damaged(6, e.0))?;
    r.finish().map_err(|e| damaged(6, e.0))?;
    let image = decode_checkpoint(checkpoint, source).map_err(|e| damaged(6, e.to_string()))?;
    Ok((meta, image))
}

impl StateMachine {
    /// Opens the state machine of the quorum directory `dir`: the snapshot if there is one,
    /// else an empty image.
    pub async fn open(dir: &Path) -> Result<StateMachine, QuorumStoreError> {
        create_dir_all(dir).await?;
        let path = dir.join(SNAPSHOT_FILE);
        let _ = platform::remove(dir.join(format!("{SNAPSHOT_FILE}.tmp"))).await;
        let mut applied = Applied::default();
        if let Some(bytes) = read_snapshot_file(&path).await? {
            let (meta, image) = decode_snapshot(&bytes, &path)?;
            applied.image = image;
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
            applied.snapshot = Some(Snapshot { meta, snapshot: bytes });
        }
        let on_disk = std::cell::Cell::new(applied.snapshot.as_ref().and_then(|s| s.meta.last_log_id));
        let writes = Rc::new(SnapshotWrites { lock: platform::Semaphore::new(1), on_disk });
        Ok(StateMachine { dir: dir.to_path_buf(), state: Rc::new(RefCell::new(applied)), writes })
    }

    /// The state (the image, what was applied). Never hold the borrow across an await.
    pub fn state(&self) -> std::cell::Ref<'_, Applied> {
        self.state.borrow()
    }

    /// The committed metadata from offset `from` on, for a broker following it: nothing if it
    /// is up to date, records while this state machine keeps them, else the whole image.
    pub fn fetch(&self, from: u64) -> FetchBody {
        let s = self.state.borrow();
        if s.image.applied.is_none_or(|a| from > a) {
            return FetchBody::UpToDate;
        }
        match s.recent.front() {
            Some(&(oldest, _)) if oldest <= from => {
                let skip = (from - oldest) as usize;
                let mut bytes = 0;
                let mut body = Vec::new();
                let mut records = Vec::new();
                for (_, record) in s.recent.iter().skip(skip) {
                    body.clear();
                    record.encode(&mut body);
                    bytes += body.len() + 4;
                    if !records.is_empty() && bytes > FETCH_RECORD_BYTES_MAX {
                        break;
                    }
                    records.push(record.clone());
                }
                FetchBody::Records { first: from, records }
            }
            _ => {
                drop(s);
                FetchBody::Image(self.encoded_image())
            }
        }
    }

    /// The image as a checkpoint, encoded once per applied offset.
    fn encoded_image(&self) -> Bytes {
        let mut s = self.state.borrow_mut();
        let applied = s.image.applied;
        match &s.encoded {
            Some((at, bytes)) if *at == applied => bytes.clone(),
            _ => {
                let bytes = Bytes::from(encode_checkpoint(&s.image));
                s.encoded = Some((applied, bytes.clone()));
                bytes
            }
        }
    }

    /// Writes a snapshot file, unless one at least as new is on disk already.
    async fn write_snapshot(&self, last_log_id: Option<LogId>, bytes: &Bytes) -> Result<(), io::Error> {
        let _one = self.writes.lock.acquire_permit(1).await.map_err(|e| io::Error::other(format!("{e:?}")))?;
        if self.writes.on_disk.get().is_some_and(|on_disk| Some(on_disk) >= last_log_id) {
            return Ok(());
        }
        ringtail_log::write_file_atomic(&self.dir, SNAPSHOT_FILE, bytes.to_vec()).await.map_err(io::Error::other)?;
        self.writes.on_disk.set(last_log_id);
        Ok(())
    }
}

async fn read_snapshot_file(path: &Path) -> Result<Option<Bytes>, QuorumStoreError> {
    let io = |op| {
        let path = path.to_path_buf();
        move |e| QuorumStoreError::Io { op, path, source: platform::io_error(e) }
    };
    let file: BufferedFile = match OpenOptions::new().read(true).buffered_open(path).await {
        Ok(f) => f,
        Err(e) => {
            let e = platform::io_error(e);
            return match e.kind() {
                io::ErrorKind::NotFound => Ok(None),
                _ => Err(QuorumStoreError::Io { op: "opening", path: path.to_path_buf(), source: e }),
            };
        }
    };
    let size = file.file_size().await.map_err(io("sizing"))?;
    if size > SNAPSHOT_BYTES_MAX as u64 {
        return Err(QuorumStoreError::TooLarge {
            path: path.to_path_buf(),
            bytes: size,
            max: SNAPSHOT_BYTES_MAX as u64,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    while (bytes.len() as u64) < size {
        let chunk = file.read_at(bytes.len() as u64, size as usize - bytes.len()).await.map_err(io("reading"))?;
        if chunk.is_empty() {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    let _ = file.close().await;
    Ok(Some(Bytes::from(bytes)))
}

/// Applies one batch to `image`: each record at the next metadata offset, or skipped.
fn apply_batch(
    image: &mut MetadataImage,
    log_index: u64,
    batch: &RecordBatch,
    mut applied: impl FnMut(u64, &MetadataRecord),
) -> BatchApplied {
    let mut out = BatchApplied { log_index, ..BatchApplied::default() };
    for record in &batch.0 {
        let offset = image.applied.map_or(0, |a| a + 1);
        match image.apply(offset, record) {
            Ok(_) => {
                applied(offset, record);
                out.base_offset.get_or_insert(offset);
                out.applied += 1;
            }
            Err(_) => out.skipped += 1,
        }
    }
    out
}

impl RaftSnapshotBuilder<QuorumTypes> for StateMachine {
    type SnapshotData = Bytes;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (meta, bytes) = {
            let s = self.state.borrow();
            let meta = SnapshotMeta { last_log_id: s.last_applied, last_membership: s.membership.clone() };
            let bytes = encode_snapshot(&meta, &s.image);
            (meta, bytes)
        };
        self.write_snapshot(meta.last_log_id, &bytes).await?;
        let snapshot = Snapshot { meta, snapshot: bytes };
        let mut s = self.state.borrow_mut();
        // An install that finished while this was written is newer: keep it.
        if s.snapshot.as_ref().is_none_or(|cur| cur.meta.last_log_id <= snapshot.meta.last_log_id) {
            s.snapshot = Some(snapshot.clone());
        }
        Ok(snapshot)
    }
}

impl RaftStateMachine<QuorumTypes> for StateMachine {
    type SnapshotData = Bytes;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let s = self.state.borrow();
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures_lite::Stream<Item = Result<EntryResponder<QuorumTypes>, io::Error>> + Unpin + OptionalSend,
    {
        let mut count = 0;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let response = {
                let mut s = self.state.borrow_mut();
                let index = entry.log_id.index;
                let response = match &entry.payload {
                    EntryPayload::Blank => BatchApplied { log_index: index, ..BatchApplied::default() },
                    EntryPayload::Normal(batch) => {
                        let s = &mut *s;
                        let recent = &mut s.recent;
                        apply_batch(&mut s.image, index, batch, |offset, record| {
                            if recent.len() == RECENT_RECORDS_MAX {
                                recent.pop_front();
                            }
                            recent.push_back((offset, record.clone()));
                        })
                    }
                    EntryPayload::Membership(m) => {
                        s.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        BatchApplied { log_index: index, ..BatchApplied::default() }
                    }
                };
                s.skipped_records += u64::from(response.skipped);
                s.last_applied = Some(entry.log_id);
                response
            };
            if let Some(r) = responder {
                r.send(response);
            }
            count += 1;
            if count % ENTRIES_PER_YIELD == 0 {
                futures_lite::future::yield_now().await;
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Bytes) -> Result<(), io::Error> {
        let (decoded_meta, image) = decode_snapshot(&snapshot, Path::new("a snapshot from the leader"))?;
        if &decoded_meta != meta {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the snapshot's bytes disagree with its meta"));
        }
        self.write_snapshot(meta.last_log_id, &snapshot).await?;
        let mut s = self.state.borrow_mut();
        s.image = image;
        s.recent.clear();
        s.last_applied = meta.last_log_id;
        s.membership = meta.last_membership.clone();
        s.snapshot = Some(Snapshot { meta: meta.clone(), snapshot });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.state.borrow().snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::codec::tests::{batch_of, log_id_of, membership_of};

    #[test]
    fn snapshots_round_trip_and_damage_is_refused() {
        let mut image = MetadataImage::default();
        apply_batch(&mut image, 1, &batch_of(1, 3), |_, _| {});
        let meta = SnapshotMeta {
            last_log_id: Some(log_id_of(2, 9)),
            last_membership: StoredMembership::new(Some(log_id_of(1, 1)), membership_of(&[1, 2, 3])),
        };
        let bytes = encode_snapshot(&meta, &image);
        let (m, i) = decode_snapshot(&bytes, Path::new("s")).unwrap();
        assert_eq!((m, i), (meta, image));
        for at in [0, 5, 12, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.to_vec();
            bad[at] ^= 1;
            assert!(decode_snapshot(&bad, Path::new("s")).is_err(), "flip at {at}");
        }
        assert!(decode_snapshot(&bytes[..bytes.len() - 1], Path::new("s")).is_err());
    }

    #[test]
    fn records_that_do_not_apply_are_skipped_and_take_no_offset() {
        let mut image = MetadataImage::default();
        let first = apply_batch(&mut image, 1, &batch_of(1, 2), |_, _| {});
        assert_eq!(first, BatchApplied { log_index: 1, base_offset: Some(0), applied: 2, skipped: 0 });
        // The same topic ids and names again: nothing applies.
        let again = apply_batch(&mut image, 2, &batch_of(1, 2), |_, _| {});
        assert_eq!(again, BatchApplied { log_index: 2, base_offset: None, applied: 0, skipped: 2 });
        let next = apply_batch(&mut image, 3, &batch_of(2, 1), |_, _| {});
        assert_eq!((next.base_offset, image.applied), (Some(2), Some(2)));
    }
}
