//! Limits and budgets of the storage engine that clients can make a shard use, unit last.
//! Relations between them are checked at compile time.

use crate::config::CACHE_BYTES_MAX_DEFAULT;

/// Default cache budget of a shard's logs together (the batches of every partition of the
/// shard, beyond those not yet written); quiet partitions' caches are emptied past it.
pub const CACHE_BUDGET_BYTES_DEFAULT: u64 = 256 << 20;
/// A shard's caches together hold at least one partition's full cache.
const _: () = assert!(CACHE_BUDGET_BYTES_DEFAULT >= CACHE_BYTES_MAX_DEFAULT as u64);

/// Idempotent producers remembered per partition; a new one past this makes the partition
/// forget the producer it heard from least recently (counted), never refuse the new one.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;
