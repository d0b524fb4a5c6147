//! Limits and budgets of the storage engine that clients can make a shard use, unit last.
//! Relations between them are checked at compile time.

/// Default cache budget of a shard's logs together (the batches of every partition of the
/// shard, beyond those not yet written); quiet partitions' caches are emptied past it.
pub const CACHE_BUDGET_BYTES_DEFAULT: u64 = 256 << 20;
/// The smallest cache budget a shard may be given (a few of its busiest partitions' tails).
pub const CACHE_BUDGET_BYTES_MIN: u64 = 8 << 20;
const _: () = assert!(CACHE_BUDGET_BYTES_DEFAULT >= CACHE_BUDGET_BYTES_MIN);

/// Idempotent producers remembered per partition; a new one past this makes the partition
/// forget the producer it heard from least recently (counted), never refuse the new one.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;
