//! Small state files written atomically: write a temporary file, fdatasync it, rename it over
//! the old one, fsync the directory. Layout in `log/FORMAT.md`.

use std::io;
use std::path::Path;

use crate::error::LogError;
use crate::fault::{Faults, IoOp};
use crate::platform::{self, BufferedFile, Directory, OpenOptions};

const MAGIC: &[u8; 4] = b"RTCK";
const VERSION: u16 = 1;
/// magic, version, kind, payload length.
const PREFIX_BYTES: usize = 12;
const CRC_BYTES: usize = 4;
/// Larger files are not checkpoints of ours.
const CHECKPOINT_BYTES_MAX: u64 = 1 << 20;

/// What a checkpoint file holds; the numbers are stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    PartitionState = 1,
    CleanShutdown = 2,
    /// An rkyv archive of a partition's idempotent producer state (`producer::ProducerStates`).
    ProducerSnapshot = 3,
    /// The broker's reserved block of producer ids (`core/src/producer_ids.rs`).
    ProducerIdBlock = 4,
    /// A partition's leader-epoch cache (`epochs::LeaderEpochs`).
    LeaderEpochs = 5,
    /// A partition's high watermark, as the replication layer last saved it.
    HighWatermark = 6,
}

/// The state a partition keeps beside its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartitionState {
    pub log_start_offset: u64,
    /// Every segment with a base offset below this is sealed, truncated to its length and
    /// indexed; recovery after a crash scans only from here.
    pub recovery_point: u64,
}

impl PartitionState {
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(16);
        payload.extend_from_slice(&self.log_start_offset.to_be_bytes());
        payload.extend_from_slice(&self.recovery_point.to_be_bytes());
        encode(Kind::PartitionState, &payload)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let payload = decode(Kind::PartitionState, bytes)?;
        if payload.len() != 16 {
            return Err(format!("partition state payload is {} bytes, expected 16", payload.len()));
        }
        Ok(PartitionState {
            log_start_offset: u64::from_be_bytes(payload[0..8].try_into().expect("8 bytes")),
            recovery_point: u64::from_be_bytes(payload[8..16].try_into().expect("8 bytes")),
        })
    }
}

/// Frames a payload: magic, version, kind, length, payload, CRC-32C of all before it.
pub fn encode(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_BYTES + payload.len() + CRC_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(kind as u16).to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Checks the framing and returns the payload.
pub fn decode(kind: Kind, bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < PREFIX_BYTES + CRC_BYTES {
        return Err(format!("{} bytes is too short for a checkpoint", bytes.len()));
    }
    if &bytes[0..4] != MAGIC {
        return Err("bad magic".into());
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(format!("version {version} is not supported (this build reads {VERSION})"));
    }
    let found = u16::from_be_bytes([bytes[6], bytes[7]]);
    if found != kind as u16 {
        return Err(format!("kind {found}, expected {}", kind as u16));
    }
    let length = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if bytes.len() != PREFIX_BYTES + length + CRC_BYTES {
        return Err(format!("length {length} does not match the file size {}", bytes.len()));
    }
    let (body, crc) = bytes.split_at(PREFIX_BYTES + length);
    let expected = u32::from_be_bytes(crc.try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != expected {
        return Err("CRC mismatch".into());
    }
    Ok(&body[PREFIX_BYTES..])
}

/// Reads a whole small file, or `None` if it does not exist.
pub(crate) async fn read_file(path: &Path, faults: &Faults) -> Result<Option<Vec<u8>>, LogError> {
    read_file_limited(path, faults, CHECKPOINT_BYTES_MAX).await
}

/// Reads a whole state file of at most `limit` bytes, or `None` if it does not exist.
pub(crate) async fn read_file_limited(path: &Path, faults: &Faults, limit: u64) -> Result<Option<Vec<u8>>, LogError> {
    faults.check(IoOp::Read, path)?;
    let file = match BufferedFile::open(path).await {
        Ok(f) => f,
        Err(e) => {
            let e = platform::io_error(e);
            if e.kind() == io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(LogError::io("opening", path, e));
        }
    };
    let size = file.file_size().await.map_err(|e| LogError::io("sizing", path, e))?;
    if size > limit {
        return Err(LogError::Corrupt {
            path: path.into(),
            position: 0,
            reason: format!("{size} bytes is too large for a state file"),
        });
    }
    let bytes = file.read_at(0, size as usize).await.map_err(|e| LogError::io("reading", path, e))?;
    let bytes = bytes.to_vec();
    file.close().await.map_err(|e| LogError::io("closing", path, e))?;
    Ok(Some(bytes))
}

/// Writes `bytes` to `dir/name` so that after a crash the file holds either the old or the
/// new contents, and the new contents are durable when this returns.
pub(crate) async fn write_atomic(dir: &Path, name: &str, bytes: Vec<u8>, faults: &Faults) -> Result<(), LogError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    if let Err(e) = write_durable(&tmp, bytes, faults).await {
        if e.is_no_space() {
            // A partial temporary file holds space the next attempt needs; removing takes none.
            let _ = platform::remove(&tmp).await;
        }
        return Err(e);
    }
    faults.check(IoOp::Rename, &path)?;
    platform::rename(&tmp, &path).await.map_err(|e| LogError::io("renaming", &tmp, e))?;
    sync_dir(dir, faults).await
}

/// Creates (or replaces) a file with `bytes` and fdatasyncs it. The caller syncs the directory.
pub(crate) async fn write_durable(path: &Path, bytes: Vec<u8>, faults: &Faults) -> Result<(), LogError> {
    faults.check(IoOp::Write, path)?;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(path)
        .await
        .map_err(|e| LogError::io_taking_space("creating", path, e))?;
    let length = bytes.len();
    if length > 0 {
        let written = file.write_at(bytes, 0).await.map_err(|e| LogError::io_taking_space("writing", path, e))?;
        if written != length {
            // A buffered write comes back short when the file system fills up.
            let full = io::Error::new(io::ErrorKind::StorageFull, "short write: the file system is full");
            return Err(LogError::io_taking_space("writing", path, full));
        }
    }
    faults.check(IoOp::Sync, path)?;
    file.fdatasync().await.map_err(|e| LogError::io("syncing", path, e))?;
    file.close().await.map_err(|e| LogError::io("closing", path, e))
}

/// Makes creations, renames and removals in `dir` durable.
pub(crate) async fn sync_dir(dir: &Path, faults: &Faults) -> Result<(), LogError> {
    faults.check(IoOp::Sync, dir)?;
    let d = Directory::open(dir).await.map_err(|e| LogError::io("opening directory", dir, e))?;
    d.sync().await.map_err(|e| LogError::io("syncing directory", dir, e))?;
    d.close().await.map_err(|e| LogError::io("closing directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_byte_is_caught() {
        let state = PartitionState { log_start_offset: 42, recovery_point: 4096 };
        let bytes = state.encode();
        assert_eq!(PartitionState::decode(&bytes), Ok(state));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(PartitionState::decode(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
        assert!(PartitionState::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(Kind::CleanShutdown, &bytes).is_err());
    }
}
