//! Limits of the controller quorum, with their units last. Every count and size read from the
//! quorum's files or from a peer is checked against one of these before anything is allocated.

/// One Raft entry (a batch of metadata records) as framed in the log file or on the wire. A
/// proposal larger than this is refused before it reaches openraft ([`RecordBatch::check`]).
///
/// [`RecordBatch::check`]: super::types::RecordBatch::check
pub const ENTRY_BYTES_MAX: usize = 8 << 20;
/// Entries a leader sends in one AppendEntries (openraft's `max_payload_entries`): with
/// entries of at most `ENTRY_BYTES_MAX`, a request always fits one frame.
pub const ENTRIES_PER_APPEND_MAX: usize = 16;
/// Records in one entry's batch.
pub const RECORDS_PER_BATCH_MAX: usize = 1 << 20;
/// Nodes a membership names (voters and learners).
pub const NODES_PER_MEMBERSHIP_MAX: usize = 1024;
/// Voter sets in a membership: one, or two during a joint change.
pub const CONFIGS_PER_MEMBERSHIP_MAX: usize = 2;
/// A snapshot: the metadata image encoded as a checkpoint, plus its meta.
pub const SNAPSHOT_BYTES_MAX: usize = 256 << 20;
/// Entries in one AppendEntries request.
pub const ENTRIES_PER_REQUEST_MAX: usize = 1 << 16;
/// One RPC frame, request or response: a full snapshot and its envelope.
pub const RPC_FRAME_BYTES_MAX: usize = SNAPSHOT_BYTES_MAX + (1 << 20);
/// The log file read at open (compaction keeps it near the unpurged entries).
pub const LOG_FILE_BYTES_MAX: u64 = 4 << 30;
/// Bytes read from the log file at a time during recovery.
pub const LOG_READ_CHUNK_BYTES: usize = 1 << 20;
/// Dead bytes (purged entries, superseded votes, truncated entries) the log file may hold
/// before a compaction rewrites it, beyond as many as it holds live ones.
pub const LOG_DEAD_BYTES_MIN: u64 = 1 << 20;

/// Largest frame on the controller listener: one RPC frame.
pub const PEER_FRAME_BYTES_MAX: usize = RPC_FRAME_BYTES_MAX;
/// Bytes of controller-listener requests being read or handled at once; past it sockets wait.
/// Two frames: a snapshot being installed and the rest of the quorum's traffic.
pub const PEER_BYTES_BUDGET: usize = 2 * PEER_FRAME_BYTES_MAX;
/// Connections a controller listener holds at once: the other controllers and every broker,
/// with room for reconnects (a broker's old connection lingers until its timeout).
pub const PEER_CONNECTIONS_MAX: usize = 4096;
/// Requests one controller-listener connection may have in progress.
pub const PEER_IN_FLIGHT_MAX: usize = 64;

const _: () = assert!(PEER_BYTES_BUDGET >= PEER_FRAME_BYTES_MAX);
const _: () = assert!(ENTRY_BYTES_MAX <= RPC_FRAME_BYTES_MAX);
// An entry's framing on the wire (log id, kind, counts) is far below 1 KiB per entry.
const _: () = assert!(ENTRIES_PER_APPEND_MAX * (ENTRY_BYTES_MAX + 1024) + 4096 <= RPC_FRAME_BYTES_MAX);
const _: () = assert!(ENTRIES_PER_APPEND_MAX <= ENTRIES_PER_REQUEST_MAX);
const _: () = assert!(SNAPSHOT_BYTES_MAX < RPC_FRAME_BYTES_MAX);
const _: () = assert!(ENTRY_BYTES_MAX as u64 <= LOG_FILE_BYTES_MAX);
const _: () = assert!(ENTRY_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(RPC_FRAME_BYTES_MAX <= u32::MAX as usize);
