//! Producer ids for InitProducerId: handed out by shard 0, never twice, not even across crashes.
//!
//! Ids are reserved in blocks, as Kafka's controller does: the file `producer-ids` records the
//! end of the block in use, and is rewritten (atomically and durably) before the first id of
//! the next block is handed out. After a restart allocation starts at the recorded end, so ids
//! of a block that was not used up are skipped, never reused. Layout in `log/FORMAT.md`.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use std::future::Future;

use ringtail_log::StateFileKind;

pub const FILE: &str = "producer-ids";
/// Ids reserved by one write of the file.
pub const BLOCK: i64 = 1000;

/// The end of the reserved block, in the log crate's state-file frame (kind 4).
pub fn encode(end: i64) -> Vec<u8> {
    ringtail_log::encode_state_file(StateFileKind::ProducerIdBlock, &end.to_be_bytes())
}

pub fn decode(bytes: &[u8]) -> Result<i64, ProducerIdFileDamaged> {
    let payload =
        ringtail_log::decode_state_file(StateFileKind::ProducerIdBlock, bytes).map_err(ProducerIdFileDamaged)?;
    let end = i64::from_be_bytes(
        payload
            .try_into()
            .map_err(|_| ProducerIdFileDamaged(format!("payload of {} bytes, expected 8", payload.len())))?,
    );
    if end < 0 {
        return Err(ProducerIdFileDamaged(format!("negative block end {end}")));
    }
    Ok(end)
}

/// What is wrong with the `producer-ids` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProducerIdFileDamaged(pub String);

/// Reads where allocation resumes, at start-up (main thread, before the shards run).
pub fn load(data_dir: &Path) -> anyhow::Result<i64> {
    let path = data_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => decode(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{} is damaged ({e}). Producer ids must never be reused: restore the file, or write one \
                 past every id in use (see log/FORMAT.md)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// The allocator, on shard 0.
pub struct ProducerIds {
    dir: PathBuf,
    next: Cell<i64>,
    /// Ids below this are reserved on disk.
    end: Cell<i64>,
    /// One block write at a time.
    lock: glommio::sync::Semaphore,
    /// Set after a failed write: the disk cannot be trusted, nothing more is handed out.
    failed: Cell<bool>,
}

/// Why no producer id can be handed out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProducerIdError {
    #[error("the producer id allocator is closed")]
    Closed,
    #[error("an earlier write of the producer id file failed; restart the broker")]
    EarlierWriteFailed,
    #[error("producer ids are exhausted")]
    Exhausted,
    #[error("cannot reserve a block of producer ids: {0}")]
    Write(ringtail_log::LogError),
    #[error("the controller quorum cannot reserve a block of producer ids now: {0}")]
    Quorum(String),
}

impl ProducerIds {
    pub fn new(dir: PathBuf, start: i64) -> Self {
        ProducerIds {
            dir,
            next: Cell::new(start),
            end: Cell::new(start),
            lock: glommio::sync::Semaphore::new(1),
            failed: Cell::new(false),
        }
    }

    /// A producer id never handed out before (in the whole cluster), or why none can be. A
    /// cluster's broker passes `reserve`, which reserves a block through the controller quorum
    /// and returns its first id; a single node reserves blocks in its `producer-ids` file.
    pub async fn allocate<F, Fut>(&self, reserve: Option<F>) -> Result<i64, ProducerIdError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<i64, ProducerIdError>>,
    {
        let _permit = self.lock.acquire_permit(1).await.map_err(|_| ProducerIdError::Closed)?;
        if self.failed.get() {
            return Err(ProducerIdError::EarlierWriteFailed);
        }
        if let Some(reserve) = reserve {
            if self.next.get() >= self.end.get() {
                let start = reserve().await?;
                self.next.set(start);
                self.end.set(start + BLOCK);
            }
        } else if self.next.get() >= self.end.get() {
            let end = self.next.get().checked_add(BLOCK).ok_or(ProducerIdError::Exhausted)?;
            if let Err(e) = ringtail_log::write_file_atomic(&self.dir, FILE, encode(end)).await {
                self.failed.set(true);
                return Err(ProducerIdError::Write(e));
            }
            self.end.set(end);
        }
        let id = self.next.get();
        self.next.set(id + 1);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_and_damage() {
        let bytes = encode(12_000);
        assert_eq!(decode(&bytes), Ok(12_000));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad).is_err(), "flip at {i}");
        }
        assert!(decode(&bytes[..10]).is_err());
    }
}
