//! Per-log configuration and its limits.

use crate::error::LogError;

/// Direct I/O alignment assumed for every data file: offsets and lengths of writes are
/// multiples of it. 4 KiB covers every block device in use today.
pub const BLOCK_BYTES: u64 = 4096;

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after the batch is on disk (written and fdatasynced), as Redpanda does.
    Sync,
    /// Acknowledge once the batch is queued for writing; written on the shard flusher's next
    /// tick (or sooner once `flush_bytes_min` bytes wait) and fdatasynced every
    /// `fsync_interval_ms`, as Kafka does.
    Async,
}

/// Largest batch a topic accepts by default (Kafka's `max.message.bytes` default).
pub const BATCH_BYTES_MAX_DEFAULT: usize = 1_048_588;

/// Kafka 4's default of message.timestamp.after.max.ms: an hour ahead of the broker's clock.
pub const TIMESTAMP_AFTER_MAX_MS_DEFAULT: u64 = 3_600_000;

/// Recent batches one partition keeps cached by default, beyond those not yet written: no cap
/// of its own, the shard's cache budget decides (`Flusher::enforce_cache_budget`). Tests and
/// the simulation set small caps to send reads to disk.
pub const CACHE_BYTES_MAX_DEFAULT: usize = usize::MAX;

/// Configuration of one partition log. Defaults match Kafka's topic defaults where Kafka has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when the next batch would make the active one larger (segment.bytes).
    pub segment_bytes_max: u64,
    /// Roll to a new segment when the active one's first append is this old (segment.ms).
    pub segment_age_ms_max: u64,
    /// Segment files grow by fallocate in steps of this many bytes.
    pub preallocate_bytes: u64,
    /// Bytes of log between two offset index entries (index.interval.bytes).
    pub index_interval_bytes: u64,
    /// Largest batch accepted (max.message.bytes).
    pub batch_bytes_max: usize,
    /// Delete sealed segments whose newest timestamp is older than this (retention.ms); `None` keeps them.
    pub retention_age_ms_max: Option<u64>,
    /// Delete the oldest sealed segments while the log is larger than this (retention.bytes).
    pub retention_bytes_max: Option<u64>,
    pub durability: Durability,
    /// Recent batches kept in memory for tail reads, beyond those not yet written.
    pub cache_bytes_max: usize,
    /// Bytes read from disk at a time when serving cold reads and scanning.
    pub read_chunk_bytes: usize,
    /// Async durability: write out queued batches early once this many bytes wait.
    pub flush_bytes_min: usize,
    /// Async durability: fdatasync written batches at least this often.
    pub fsync_interval_ms: u64,
    /// Forget an idempotent producer's state after it has not written for this long
    /// (producer.id.expiration.ms); a retry arriving later is no longer recognised.
    pub producer_id_expiration_ms: u64,
    /// Whose appends these are when free space runs low: user data is refused first.
    pub space_priority: crate::space::SpacePriority,
    /// A client's batch whose first timestamp is further behind the clock than this is refused
    /// (message.timestamp.before.max.ms).
    pub timestamp_before_max_ms: u64,
    /// A client's batch whose largest timestamp is further ahead of the clock than this is
    /// refused (message.timestamp.after.max.ms).
    pub timestamp_after_max_ms: u64,
    /// Stamp every batch with the broker's clock (message.timestamp.type=LogAppendTime)
    /// instead of keeping the producer's timestamps (CreateTime).
    pub log_append_time: bool,
    /// Reads of verified sealed segments below the cache are returned as file ranges, for the
    /// caller to send without a copy, instead of being read into memory. Broker-wide.
    pub zero_copy_reads: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_age_ms_max: 7 * 24 * 3600 * 1000,
            preallocate_bytes: 32 << 20,
            index_interval_bytes: 4096,
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            retention_age_ms_max: Some(14 * 24 * 3600 * 1000),
            retention_bytes_max: None,
            durability: Durability::Sync,
            cache_bytes_max: CACHE_BYTES_MAX_DEFAULT,
            read_chunk_bytes: 256 << 10,
            flush_bytes_min: 1 << 20,
            fsync_interval_ms: 1000,
            producer_id_expiration_ms: 24 * 3600 * 1000,
            space_priority: crate::space::SpacePriority::Data,
            timestamp_before_max_ms: i64::MAX as u64,
            timestamp_after_max_ms: TIMESTAMP_AFTER_MAX_MS_DEFAULT,
            log_append_time: false,
            zero_copy_reads: false,
        }
    }
}

/// Positions in a segment are stored as u32 in the offset index.
const SEGMENT_BYTES_LIMIT: u64 = u32::MAX as u64;

impl LogConfig {
    /// Checks the relations between limits; says which setting to change.
    pub fn validate(&self) -> Result<(), LogError> {
        let fail = |reason: String| Err(LogError::Config { reason });
        if self.segment_bytes_max < BLOCK_BYTES || self.segment_bytes_max > SEGMENT_BYTES_LIMIT {
            return fail(format!(
                "segment_bytes_max {} must be between {BLOCK_BYTES} and {SEGMENT_BYTES_LIMIT}",
                self.segment_bytes_max
            ));
        }
        if self.batch_bytes_max as u64 > self.segment_bytes_max {
            return fail(format!(
                "batch_bytes_max {} must not exceed segment_bytes_max {}",
                self.batch_bytes_max, self.segment_bytes_max
            ));
        }
        if self.preallocate_bytes == 0 || !self.preallocate_bytes.is_multiple_of(BLOCK_BYTES) {
            return fail(format!(
                "preallocate_bytes {} must be a positive multiple of {BLOCK_BYTES}",
                self.preallocate_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return fail("index_interval_bytes must be positive".into());
        }
        if self.read_chunk_bytes < BLOCK_BYTES as usize {
            return fail(format!("read_chunk_bytes {} must be at least {BLOCK_BYTES}", self.read_chunk_bytes));
        }
        if self.segment_age_ms_max == 0 || self.fsync_interval_ms == 0 {
            return fail("segment_age_ms_max and fsync_interval_ms must be positive".into());
        }
        Ok(())
    }
}

pub(crate) fn align_down(v: u64) -> u64 {
    v & !(BLOCK_BYTES - 1)
}

pub(crate) fn align_up(v: u64) -> u64 {
    align_down(v + BLOCK_BYTES - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_relations_are_named() {
        LogConfig::default().validate().unwrap();
        let c = LogConfig { batch_bytes_max: 10 << 20, segment_bytes_max: 1 << 20, ..LogConfig::default() };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("batch_bytes_max"), "{e}");
        let c = LogConfig { segment_bytes_max: 8 << 30, ..LogConfig::default() };
        assert!(c.validate().is_err());
    }
}
