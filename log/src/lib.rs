//! `ringtail-log`: Ringtail's storage engine. Segmented, append-only logs of Kafka record
//! batches (magic 2) stored byte for byte as received, written with O_DIRECT through io_uring
//! (glommio) in per-shard group commits, read back without copying cached data, recovered
//! after crashes, and trimmed by retention. Knows nothing of the network.

pub mod batch;
mod checkpoint;
pub mod compression;
mod config;
pub mod epochs;
mod error;
mod fault;
mod flusher;
pub mod index;
mod limits;
mod partition;
pub mod platform;
pub mod producer;
mod segment;
pub mod space;
pub mod stats;

pub use batch::{BatchHeader, Compression, Origin};
pub use config::{Durability, LogConfig, BATCH_BYTES_MAX_DEFAULT, BLOCK_BYTES, CACHE_BYTES_MAX_DEFAULT};
pub use error::{BatchError, LogError};
pub use fault::{Faults, IoOp};
pub use flusher::{now_ms, Flusher};
pub use limits::{CACHE_BUDGET_BYTES_DEFAULT, CACHE_BUDGET_BYTES_MIN, PRODUCERS_PER_PARTITION_MAX};
pub use partition::{
    AppendInfo, DurableWait, FileRange, PartitionLog, ReadBatches, RecoveryReport, ScrubStep, WRITES_IN_FLIGHT_DEFAULT,
    WRITE_BYTES_DEFAULT,
};
pub use segment::prime_direct_io;
pub use space::{DiskSpace, SpaceConfig, SpacePriority};

/// The framing of state files (magic, version, kind, length, CRC-32C), for other crates' files.
pub use checkpoint::{decode as decode_state_file, encode as encode_state_file, Kind as StateFileKind};

/// Writes `dir/name` atomically and durably (temporary file, fdatasync, rename, directory
/// fsync), without blocking the executor. For small state files of other crates.
pub async fn write_file_atomic(dir: &std::path::Path, name: &str, bytes: Vec<u8>) -> Result<(), LogError> {
    checkpoint::write_atomic(dir, name, bytes, &Faults::default()).await
}
#[doc(hidden)]
pub use segment::write_state_for_tests;
