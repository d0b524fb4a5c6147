//! Every limit and budget of the broker crate in one place, unit last. Relations between them
//! are checked at compile time; relations involving settings are checked when the
//! configuration is resolved (`config.rs`).

use std::time::Duration;

/// Largest request frame accepted by default (Kafka's `socket.request.max.bytes`).
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 100 << 20;
/// A connection may hold at most 1/this of its shard's request budget, so that while stalled
/// or greedy connections hold the rest, other clients' requests still complete.
pub const CONNECTION_SHARE_DIVISOR: usize = 8;
/// Default request budget of one shard (`--queued-max-request-bytes` is this times the shard
/// count): enough for one connection to send a request of the default maximum size.
pub const QUEUED_MAX_REQUEST_BYTES_PER_SHARD_DEFAULT: usize = REQUEST_BYTES_MAX_DEFAULT * CONNECTION_SHARE_DIVISOR;
const _: () =
    assert!(QUEUED_MAX_REQUEST_BYTES_PER_SHARD_DEFAULT / CONNECTION_SHARE_DIVISOR >= REQUEST_BYTES_MAX_DEFAULT);
const _: () = assert!(QUEUED_MAX_REQUEST_BYTES_PER_SHARD_DEFAULT >= REQUEST_BYTES_MAX_DEFAULT);

/// A connection stalled in the middle of a request is closed after this (default).
pub const REQUEST_READ_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// A connection with nothing in progress and nothing read is closed after this (Kafka's
/// `connections.max.idle.ms` default, 10 minutes).
pub const CONNECTIONS_MAX_IDLE_MS_DEFAULT: u64 = 600_000;

/// Largest Fetch response the broker builds (Kafka's `fetch.max.bytes` default, 55 MiB); a
/// response exceeds it by at most one batch, so that a consumer always progresses.
pub const FETCH_MAX_BYTES_DEFAULT: usize = 55 << 20;
/// A fetch must always be able to return one batch of the largest size a topic accepts.
const _: () = assert!(FETCH_MAX_BYTES_DEFAULT >= ringtail_log::BATCH_BYTES_MAX_DEFAULT);
/// Bytes of cold reads (batches read from disk) one shard holds at once until their responses
/// are written; a fetch waits for room. It must fit the largest response and the largest batch.
pub const READ_BUDGET_BYTES_PER_SHARD: u64 = 128 << 20;
const _: () = assert!(READ_BUDGET_BYTES_PER_SHARD >= FETCH_MAX_BYTES_DEFAULT as u64);
const _: () = assert!(READ_BUDGET_BYTES_PER_SHARD >= ringtail_log::BATCH_BYTES_MAX_DEFAULT as u64);
/// Longest a fetch may wait for data, whatever the client asks.
pub const FETCH_WAIT_MS_MAX: i32 = 30_000;

/// Requests of one connection handled at once; the reader stops reading beyond this. Many
/// produce requests waiting for the same group commit is the common case under `sync`
/// durability: a low cap here queues them in the client instead (measured: p50 at 100 MB/s
/// went from 138 ms with 32 to 16 ms with 256).
pub const IN_FLIGHT_PER_CONNECTION_MAX: usize = 256;
/// Open client connections per shard, whatever `--max-connections` says; more are closed at once.
pub const CONNECTIONS_PER_SHARD_MAX: usize = 10_000;
/// Messages waiting in one cross-shard queue (one per source, destination and class); senders
/// wait when it is full.
pub const INBOX_MESSAGES_MAX: usize = 256;
/// Handlers of one cross-shard queue running at once, by class: produce/fetch work, parked
/// work (long polls, group joins: bounded in turn by connections and their requests in
/// flight), control. A queue whose handlers are all busy is not read: backpressure.
pub const CROSS_SHARD_DATA_HANDLERS_MAX: u64 = 256;
pub const CROSS_SHARD_PARKED_HANDLERS_MAX: u64 = 4096;
pub const CROSS_SHARD_CONTROL_HANDLERS_MAX: u64 = 16;

/// Requests slower than this are logged at debug level.
pub const SLOW_REQUEST: Duration = Duration::from_millis(5);
/// How long shutdown waits for requests in progress.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Log lines waiting for the writer thread; more are dropped (and counted), so a shard never
/// waits for stderr.
pub const LOG_LINES_QUEUED_MAX: usize = 4096;
/// Lines a second of each kind a client can cause (connection refused or closed, produce
/// refused), per shard; the rest are counted.
pub const LOG_LINES_PER_SECOND_MAX: u32 = 20;

/// Committed-offset series (group, topic, partition) one shard puts in a metrics scrape; the
/// rest are counted, so a scrape never builds an unbounded list on a shard thread.
pub const METRICS_GROUP_SERIES_MAX: usize = 10_000;
/// Partitions one shard may own by default (`--partitions-per-shard-max`); creations past it
/// are refused with POLICY_VIOLATION.
pub const PARTITIONS_PER_SHARD_MAX_DEFAULT: usize = 5000;

/// Partitions one DescribeTopicPartitions response lists at most, whatever the client asks
/// (Kafka's max.request.partition.size.limit default); the cursor pages through the rest.
pub const DESCRIBE_TOPIC_PARTITIONS_MAX: usize = 2000;

/// The most bytes one batch's records may decompress to when the broker recompresses it for a
/// topic's compression.type; a batch past it is refused (a decompression bomb gets no further).
/// Batches are recompressed one at a time on each shard's blocking thread, so this bounds the
/// decompressed records recompression holds per shard at once; what the rewritten records take
/// is bounded per request (below).
pub const RECOMPRESS_RECORDS_BYTES_MAX: usize = 64 << 20;
/// A batch that would fit its topic uncompressed is never refused for decompressing too far.
const _: () = assert!(RECOMPRESS_RECORDS_BYTES_MAX >= ringtail_log::BATCH_BYTES_MAX_DEFAULT);
/// What the rewritten records of one produce request may take in all, per byte of its frame
/// (at least one batch of the largest size its topics take): a request past it is refused, so
/// that many small batches, each within the limits above, cannot decompress without bound
/// while the request budget holds only their frame. Text that producers compress tenfold or
/// more still fits when an uncompressed topic stores it.
pub const RECOMPRESSED_BYTES_PER_FRAME_BYTE_MAX: usize = 16;
/// Codecs' framing grows incompressible records a little: a request's records always fit again.
const _: () = assert!(RECOMPRESSED_BYTES_PER_FRAME_BYTE_MAX >= 2);

/// A follower asks its leader for at most this many bytes of one partition per fetch (Kafka's
/// replica.fetch.max.bytes), and this many in all (replica.fetch.response.max.bytes): a shard
/// holds at most one response per leader node it follows.
pub const REPLICA_FETCH_PARTITION_BYTES_MAX: usize = 1 << 20;
pub const REPLICA_FETCH_RESPONSE_BYTES_MAX: usize = 10 << 20;

/// What the background scrubber reads per second by default, whole broker (about 3% of this
/// machine's sequential read rate): a terabyte of sealed segments is verified in about 9 hours.
pub const SCRUB_BYTES_PER_SECOND_DEFAULT: u64 = 32 << 20;
/// The scrubber wakes this often and reads its share of the rate each time, in steps of at
/// most `SCRUB_STEP_BYTES_MAX` (so one partition's step never holds much memory or disk time).
pub const SCRUB_INTERVAL: Duration = Duration::from_millis(100);
pub const SCRUB_STEP_BYTES_MAX: usize = 4 << 20;
