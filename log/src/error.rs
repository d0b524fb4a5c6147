//! Errors at the boundary of `ringtail-log`. They say what went wrong in the log's terms; the
//! broker maps them to Kafka error codes (`core/src/errors.rs`).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a record batch was refused. Every variant is the sender's fault and leaves the log unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch is truncated: {available} bytes present, {needed} needed")]
    Truncated { available: usize, needed: usize },
    #[error("record batch length {length} is below the 49-byte minimum of a magic 2 batch")]
    LengthTooSmall { length: i32 },
    #[error("record batch magic {magic} is not supported; send magic 2 batches (Kafka 0.11 or later clients)")]
    UnsupportedMagic { magic: i8 },
    #[error("record batch CRC-32C mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes (max.message.bytes)")]
    TooLarge { size: usize, max: usize },
    #[error("record batch timestamps are inconsistent: maxTimestamp {max_timestamp} < baseTimestamp {base_timestamp}")]
    InvalidTimestamp { base_timestamp: i64, max_timestamp: i64 },
    #[error(
        "record timestamp {timestamp} is {distance_ms} ms {direction} the broker's clock ({now_ms}); the topic \
         accepts at most {max_ms} ms (message.timestamp.{direction}.max.ms)"
    )]
    TimestampOutOfRange { timestamp: i64, now_ms: i64, distance_ms: u64, direction: &'static str, max_ms: u64 },
    /// The records of a compressed batch could not be decompressed (or compressed again), or
    /// decompress to more than the broker takes.
    #[error("record batch cannot be recompressed: {reason}")]
    Decompression { reason: String },
    #[error("invalid record batch: {reason}")]
    Invalid { reason: &'static str },
}

/// Errors of a partition log.
///
/// `Io` and `Corrupt` are fatal to the log: it stops accepting work and every later call
/// returns the same error, because after a failed write or fdatasync the kernel may have
/// dropped dirty pages and nothing the log believes about its files can be trusted (and a
/// batch that fails its CRC when read back must not be served). Every file of a log is its
/// own, so the failure stays with that partition: the broker takes it offline and keeps
/// serving the others.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Sequence(#[from] crate::producer::SequenceError),
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: u64, log_start_offset: u64, log_end_offset: u64 },
    #[error("I/O error while {op} {path}: {source}; the partition is offline until the broker restarts")]
    Io { op: &'static str, path: PathBuf, source: Arc<io::Error> },
    #[error("corrupt log data in {path} at byte {position}: {reason}; the partition is offline")]
    Corrupt { path: PathBuf, position: u64, reason: String },
    #[error("invalid log configuration: {reason}")]
    Config { reason: String },
    /// No space for the write on the data directory's file system. Not fatal: nothing written
    /// was lost, the write (and those after it) can be tried again once space is freed.
    #[error(
        "no space for writes on the data directory's file system ({free_bytes} bytes free, {why}); writes \
         resume by themselves once space is freed: delete topics or records, lower retention, or add disk"
    )]
    NoSpace { free_bytes: u64, why: String },
    /// A leader's batches (a follower's append) do not continue this log: they start elsewhere
    /// than its end, leave a gap, or carry an older leader epoch than it has. Nothing was
    /// appended; the follower must find where its log and the leader's agree and truncate.
    #[error("replicated batches do not continue the log: {reason}")]
    NotContinuing { reason: String },
    /// The batch waited on was cut from the log (a follower truncated to its new leader's log).
    #[error("the log was truncated to offset {offset}; the batches from there on are gone")]
    Truncated { offset: u64 },
}

impl LogError {
    /// True when the log can no longer be used (the partition goes offline).
    pub fn is_fatal(&self) -> bool {
        matches!(self, LogError::Io { .. } | LogError::Corrupt { .. })
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        LogError::Io { op, path: path.into(), source: Arc::new(source.into()) }
    }

    /// Like [`LogError::io`], for an operation that takes space (creating a file, allocating,
    /// writing): running out of space (or quota) is [`LogError::NoSpace`], not fatal. Never for
    /// an fdatasync: after a failed one the kernel may have dropped dirty pages.
    pub(crate) fn io_taking_space(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        let source = source.into();
        // glommio keeps the error's kind but not always its number.
        let full = matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
            || matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
        match full {
            true => {
                let path = path.into();
                LogError::NoSpace { free_bytes: 0, why: format!("{op} {} failed: {source}", path.display()) }
            }
            _ => LogError::io(op, path, source),
        }
    }

    pub fn is_no_space(&self) -> bool {
        matches!(self, LogError::NoSpace { .. })
    }
}
