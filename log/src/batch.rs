//! Kafka record batch (magic 2) header parsing and validation, without decompressing.
//!
//! Layout (all integers big-endian), see `log/FORMAT.md`:
//! baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12, magic i8 @16,
//! crc u32 @17 (CRC-32C of bytes 21..end), attributes i16 @21, lastOffsetDelta i32 @23,
//! baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51,
//! baseSequence i32 @53, recordCount i32 @57, records @61.

use crate::error::BatchError;

/// Bytes before the records of a batch.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes not counted by `batchLength`: baseOffset and batchLength themselves.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The smallest legal `batchLength`.
pub const BATCH_LENGTH_MIN: i32 = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;
/// Size limit applied to batches read back from our own files: whatever fits a batchLength.
pub const STORED_BATCH_BYTES_MAX: usize = i32::MAX as usize + LOG_OVERHEAD_BYTES;
/// The smallest encoding of one record (every field a one-byte varint, no key, value or headers).
const RECORD_BYTES_MIN: usize = 7;
/// Most records a client batch may claim per byte of (compressed) records.
const COMPRESSED_RECORDS_PER_BYTE_MAX: usize = 1024;
/// Kafka's "no timestamp" (`RecordBatch.NO_TIMESTAMP`).
pub const NO_TIMESTAMP: i64 = -1;

pub(crate) const BASE_OFFSET_AT: usize = 0;
pub(crate) const LENGTH_AT: usize = 8;
pub(crate) const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const MAX_TIMESTAMP_AT: usize = 35;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;
const KNOWN_ATTRIBUTES: i16 =
    COMPRESSION_MASK | TIMESTAMP_TYPE_BIT | TRANSACTIONAL_BIT | CONTROL_BIT | DELETE_HORIZON_BIT;

/// Who wrote the batch being validated: clients are held to the strict rules of a producer,
/// data read back from our own log only to the rules every stored batch obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Client,
    Log,
}

pub use crate::compression::Compression;

/// The fixed 61-byte header of a record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Parses the header fields. Checks nothing but that 61 bytes are present.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated { available: buf.len(), needed: BATCH_HEADER_BYTES });
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_AT),
            batch_length: be_i32(buf, LENGTH_AT),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: u32::from_be_bytes(buf[CRC_AT..CRC_AT + 4].try_into().expect("4 bytes")),
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        })
    }

    /// Total bytes of the batch, header included. Only meaningful once `batch_length` was checked;
    /// a negative length counts as zero.
    pub fn size(&self) -> usize {
        self.batch_length.max(0) as usize + LOG_OVERHEAD_BYTES
    }

    /// Offsets in the batch, from base to last inclusive.
    pub fn offset_count(&self) -> u64 {
        self.last_offset_delta as u64 + 1
    }

    pub fn compression(&self) -> Compression {
        match self.attributes & COMPRESSION_MASK {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            _ => Compression::Zstd,
        }
    }

    /// The header as a LogAppendTime topic stores it: timestamp type bit set, maxTimestamp
    /// `now_ms` (`log_append_time_header` writes the same into the bytes, and the CRC this
    /// copy keeps from before).
    pub fn with_log_append_time(mut self, now_ms: i64) -> BatchHeader {
        self.attributes |= TIMESTAMP_TYPE_BIT;
        self.max_timestamp = now_ms;
        self
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Validates the batch at the start of `buf` and returns its header. `buf` may hold more bytes
/// after the batch. Nothing is decompressed: the checks are length, magic, CRC-32C, attributes,
/// record count against lastOffsetDelta and size, timestamps and producer fields.
pub fn validate_batch(buf: &[u8], batch_bytes_max: usize, origin: Origin) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.magic != 2 {
        return Err(BatchError::UnsupportedMagic { magic: header.magic });
    }
    if header.batch_length < BATCH_LENGTH_MIN {
        return Err(BatchError::LengthTooSmall { length: header.batch_length });
    }
    let size = header.size();
    if size > batch_bytes_max {
        return Err(BatchError::TooLarge { size, max: batch_bytes_max });
    }
    if size > buf.len() {
        return Err(BatchError::Truncated { available: buf.len(), needed: size });
    }
    let actual = crc32c::crc32c(&buf[ATTRIBUTES_AT..size]);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch { expected: header.crc, actual });
    }
    check_fields(&header, origin)?;
    Ok(header)
}

fn check_fields(h: &BatchHeader, origin: Origin) -> Result<(), BatchError> {
    let invalid = |reason| Err(BatchError::Invalid { reason });
    if h.attributes & !KNOWN_ATTRIBUTES != 0 {
        return invalid("unknown bits set in the batch attributes");
    }
    if h.attributes & COMPRESSION_MASK > 4 {
        return invalid("unknown compression codec in the batch attributes");
    }
    if h.record_count < 0 || h.last_offset_delta < 0 {
        return invalid("negative record count or lastOffsetDelta");
    }
    if h.record_count == 0 && !h.is_control() {
        return invalid("batch holds no records");
    }
    match origin {
        // A producer numbers its records 0..count-1.
        Origin::Client if h.last_offset_delta != h.record_count - 1 => {
            return invalid("lastOffsetDelta does not match the record count");
        }
        // Compaction may remove records and keep lastOffsetDelta, never the other way round.
        Origin::Log if h.last_offset_delta < h.record_count - 1 => {
            return invalid("lastOffsetDelta is below the record count");
        }
        _ => {}
    }
    let records_bytes = h.size() - BATCH_HEADER_BYTES;
    if h.compression() == Compression::None
        && (h.record_count as usize).saturating_mul(RECORD_BYTES_MIN) > records_bytes
    {
        return invalid("record count exceeds what the batch bytes can hold");
    }
    // Compressed records are not counted (that would mean decompressing), but no codec packs
    // more than about a thousand minimal records into one byte; a claim beyond that would only
    // burn offsets (2^31 per batch) and segments.
    if origin == Origin::Client
        && (h.record_count as usize) > records_bytes.saturating_add(1).saturating_mul(COMPRESSED_RECORDS_PER_BYTE_MAX)
    {
        return invalid("record count is implausible for the compressed size of the batch");
    }
    if h.max_timestamp < h.base_timestamp {
        return Err(BatchError::InvalidTimestamp { base_timestamp: h.base_timestamp, max_timestamp: h.max_timestamp });
    }
    if h.producer_id < -1 {
        return invalid("producerId below -1");
    }
    if h.producer_id == -1 {
        if h.is_transactional() {
            return invalid("transactional batch without a producerId");
        }
    } else if h.producer_epoch < 0 || h.base_sequence < 0 {
        return invalid("idempotent batch with a negative producerEpoch or baseSequence");
    }
    if origin == Origin::Client && h.is_control() {
        return invalid("control batches are written by the broker, not by clients");
    }
    if origin == Origin::Client && h.is_transactional() {
        return invalid("transactional batches need a transaction, and transactions are not supported yet");
    }
    Ok(())
}

/// Splits `records` (a Kafka `RECORDS` field: zero or more whole batches) into validated batches.
/// Returns each batch's header and byte range. Either every batch is valid or an error is returned.
pub fn validate_records(
    records: &[u8],
    batch_bytes_max: usize,
    origin: Origin,
) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, BatchError> {
    let mut batches = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let header = validate_batch(&records[at..], batch_bytes_max, origin)?;
        let end = at + header.size();
        batches.push((header, at..end));
        at = end;
    }
    if batches.is_empty() {
        return Err(BatchError::Invalid { reason: "the request holds no record batch" });
    }
    Ok(batches)
}

/// Checks a client's CreateTime batch against the clock (Kafka's message.timestamp.before.max.ms
/// and after.max.ms): its first timestamp may be at most `before_max_ms` behind `now_ms`, its
/// largest at most `after_max_ms` ahead. Kafka checks every record; the header's two
/// timestamps cover the usual case (records in time order) without decompressing. A record
/// without a timestamp (`NO_TIMESTAMP`) is not checked, as in Kafka: when the first has none,
/// the largest stands for the oldest (if it is too old, so is every record with a timestamp).
pub fn check_timestamps(h: &BatchHeader, now_ms: i64, before_max_ms: u64, after_max_ms: u64) -> Result<(), BatchError> {
    let oldest = if h.base_timestamp != NO_TIMESTAMP { h.base_timestamp } else { h.max_timestamp };
    let behind = now_ms.saturating_sub(oldest);
    if oldest != NO_TIMESTAMP && behind > 0 && behind as u64 > before_max_ms {
        return Err(BatchError::TimestampOutOfRange {
            timestamp: oldest,
            now_ms,
            distance_ms: behind as u64,
            direction: "before",
            max_ms: before_max_ms,
        });
    }
    let ahead = h.max_timestamp.saturating_sub(now_ms);
    if h.max_timestamp != NO_TIMESTAMP && ahead > 0 && ahead as u64 > after_max_ms {
        return Err(BatchError::TimestampOutOfRange {
            timestamp: h.max_timestamp,
            now_ms,
            distance_ms: ahead as u64,
            direction: "after",
            max_ms: after_max_ms,
        });
    }
    Ok(())
}

/// What recompression may hold: each batch's records decompress to at most `records_bytes`,
/// each rewritten batch takes at most `batch_bytes` (the topic's max.message.bytes, as Kafka
/// checks it again after recompressing), and the rewritten records together at most
/// `output_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecompressLimits {
    pub batch_bytes: usize,
    pub records_bytes: usize,
    pub output_bytes: usize,
}

/// A client's batches rewritten in `target` (a topic's `compression.type`), or `None` when every
/// batch is in it already (the records then stay as received). Each batch is validated as a
/// client's first (at most `limits.batch_bytes`); its records are decompressed and compressed
/// again at `level`. The header keeps everything but the codec bits, the length and the CRC:
/// batch boundaries, offset deltas, timestamps and producer sequences are the producer's, so
/// idempotence and exactly-once hold through it. Memory: past any of `limits` it stops and
/// refuses the records, holding at most the output limit plus the batch being rewritten and
/// its decompressed records. CPU work: the broker runs it off its shard threads.
pub fn recompress_records(
    records: &[u8],
    target: Compression,
    level: Option<i32>,
    limits: RecompressLimits,
) -> Result<Option<Vec<u8>>, BatchError> {
    let batches = validate_records(records, limits.batch_bytes, Origin::Client)?;
    if batches.iter().all(|(h, _)| h.compression() == target) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len().min(limits.output_bytes));
    for (header, range) in batches {
        let batch = &records[range];
        if header.compression() == target {
            out.extend_from_slice(batch);
            check_output(out.len(), target, limits)?;
            continue;
        }
        let start = out.len();
        let body = &batch[BATCH_HEADER_BYTES..];
        let plain = match header.compression() {
            Compression::None => std::borrow::Cow::Borrowed(body),
            codec => std::borrow::Cow::Owned(
                codec
                    .decompress(body, limits.records_bytes)
                    .map_err(|e| BatchError::Decompression { reason: e.to_string() })?,
            ),
        };
        // Uncompressed, the rewritten batch's size is known before anything is copied.
        if target == Compression::None {
            let size = BATCH_HEADER_BYTES + plain.len();
            if size > limits.batch_bytes {
                return Err(BatchError::TooLarge { size, max: limits.batch_bytes });
            }
            check_output(start + size, target, limits)?;
        }
        out.extend_from_slice(&batch[..BATCH_HEADER_BYTES]);
        target.compress(&plain, level, &mut out).map_err(|e| BatchError::Decompression { reason: e.to_string() })?;
        drop(plain);
        let size = out.len() - start;
        if size > limits.batch_bytes {
            return Err(BatchError::TooLarge { size, max: limits.batch_bytes });
        }
        check_output(out.len(), target, limits)?;
        let rewritten = &mut out[start..];
        let length = i32::try_from(rewritten.len() - LOG_OVERHEAD_BYTES)
            .map_err(|_| BatchError::TooLarge { size: rewritten.len(), max: limits.batch_bytes })?;
        rewritten[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        let attributes = (header.attributes & !COMPRESSION_MASK) | target.attribute();
        rewritten[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&rewritten[ATTRIBUTES_AT..]);
        rewritten[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(Some(out))
}

/// Refuses rewritten records that take more than the output limit.
fn check_output(bytes: usize, target: Compression, limits: RecompressLimits) -> Result<(), BatchError> {
    if bytes <= limits.output_bytes {
        return Ok(());
    }
    Err(BatchError::Decompression {
        reason: format!(
            "the records take more than {} bytes rewritten as {}, the most the broker rewrites for one request; \
             send fewer batches per request, or compress them less",
            limits.output_bytes,
            target.name()
        ),
    })
}

/// The 61-byte header of a batch appended to a LogAppendTime topic: the timestamp type bit
/// set, maxTimestamp the broker's clock, and the CRC recomputed over the new header and the
/// unchanged records (`body`, the batch after its header), which are not copied.
pub fn log_append_time_header(header_bytes: &[u8], body: &[u8], now_ms: i64) -> [u8; BATCH_HEADER_BYTES] {
    let mut out = [0u8; BATCH_HEADER_BYTES];
    out.copy_from_slice(&header_bytes[..BATCH_HEADER_BYTES]);
    let attributes = be_i16(&out, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[ATTRIBUTES_AT..]), body);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Writes the broker-assigned fields into a batch header; both lie outside the CRC.
pub(crate) fn assign(header_bytes: &mut [u8], base_offset: u64, partition_leader_epoch: i32) {
    header_bytes[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&(base_offset as i64).to_be_bytes());
    header_bytes[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&partition_leader_epoch.to_be_bytes());
}

/// Offset delta and timestamp of each record of an uncompressed batch, in order, or `None`
/// if the batch is compressed or its records do not parse. Used to answer "first offset with a
/// timestamp at or after T" at record precision.
pub fn record_timestamps(batch: &[u8], header: &BatchHeader) -> Option<Vec<(u32, i64)>> {
    Some(records(batch, header)?.into_iter().map(|r| (r.offset_delta, r.timestamp)).collect())
}

/// One record of an uncompressed batch, borrowed from the batch bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset_delta: u32,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// The records of a validated, uncompressed batch with their offset deltas, timestamps, keys
/// and values (headers are skipped), or `None` if the batch is compressed or a record does not
/// parse. Used for timestamp lookups and to replay the broker's own internal topics.
pub fn records<'a>(batch: &'a [u8], header: &BatchHeader) -> Option<Vec<RecordView<'a>>> {
    if header.compression() != Compression::None
        || header.batch_length < BATCH_LENGTH_MIN
        || batch.len() < header.size()
    {
        return None;
    }
    let log_append_time = header.attributes & TIMESTAMP_TYPE_BIT != 0;
    let end = header.size();
    let mut out = Vec::with_capacity((header.record_count.max(0) as usize).min(end / RECORD_BYTES_MIN));
    let mut at = BATCH_HEADER_BYTES;
    for _ in 0..header.record_count {
        let (length, n) = read_varint(&batch[at..end])?;
        at += n;
        let record_end = at.checked_add(usize::try_from(length).ok()?)?;
        if record_end > end {
            return None;
        }
        let mut p = at + 1; // attributes
        let (timestamp_delta, n) = read_varint(batch.get(p..record_end)?)?;
        p += n;
        let (offset_delta, n) = read_varint(batch.get(p..record_end)?)?;
        p += n;
        let field = |p: &mut usize| -> Option<Option<&'a [u8]>> {
            let (length, n) = read_varint(batch.get(*p..record_end)?)?;
            *p += n;
            if length < 0 {
                return Some(None);
            }
            let field_end = p.checked_add(usize::try_from(length).ok()?)?;
            if field_end > record_end {
                return None;
            }
            let bytes = &batch[*p..field_end];
            *p = field_end;
            Some(Some(bytes))
        };
        let key = field(&mut p)?;
        let value = field(&mut p)?;
        out.push(RecordView {
            offset_delta: u32::try_from(offset_delta).ok()?,
            timestamp: if log_append_time {
                header.max_timestamp
            } else {
                header.base_timestamp.wrapping_add(timestamp_delta)
            },
            key,
            value,
        });
        at = record_end;
    }
    Some(out)
}

/// Reads a zig-zag varint (Kafka's varint/varlong); returns the value and the bytes used.
fn read_varint(buf: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, &b) in buf.iter().take(10).enumerate() {
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), i + 1));
        }
    }
    None
}

/// Builds record batches: uncompressed, CreateTime, no producer id. Used by the broker for its
/// internal topics, and by tests, benchmarks and fuzzing.
pub mod build {
    use super::*;

    /// A record's key and value; `None` is null.
    pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    fn put_varint(out: &mut Vec<u8>, value: i64) {
        let mut v = ((value << 1) ^ (value >> 63)) as u64;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A batch of `values.len()` records with the given values, no keys, timestamps
    /// `base_timestamp + index`.
    pub fn batch(values: &[&[u8]], base_timestamp: i64) -> Vec<u8> {
        let records: Vec<KeyValue> = values.iter().map(|v| (None, Some(*v))).collect();
        keyed_batch(&records, base_timestamp, true)
    }

    /// A batch of records with the given keys and values (`None` is null: a tombstone value).
    /// Timestamps are `base_timestamp + index` when `spread_timestamps`, else all `base_timestamp`.
    pub fn keyed_batch(entries: &[KeyValue], base_timestamp: i64, spread_timestamps: bool) -> Vec<u8> {
        assert!(!entries.is_empty());
        let mut records = Vec::new();
        let mut body = Vec::new();
        for (i, (key, value)) in entries.iter().enumerate() {
            body.clear();
            body.push(0); // attributes
            put_varint(&mut body, if spread_timestamps { i as i64 } else { 0 }); // timestamp delta
            put_varint(&mut body, i as i64); // offset delta
            for field in [key, value] {
                match field {
                    Some(bytes) => {
                        put_varint(&mut body, bytes.len() as i64);
                        body.extend_from_slice(bytes);
                    }
                    None => put_varint(&mut body, -1),
                }
            }
            put_varint(&mut body, 0); // header count
            put_varint(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        let count = entries.len() as i32;
        let max_timestamp = if spread_timestamps { base_timestamp + count as i64 - 1 } else { base_timestamp };
        let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + records.len()) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.push(2);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&(count - 1).to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&(-1i64).to_be_bytes());
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&records);
        reseal(&mut out);
        out
    }

    /// Marks a built batch as sent by idempotent producer `producer_id` at `epoch`, its first
    /// record numbered `base_sequence`.
    pub fn set_producer(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
        batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
        batch[51..53].copy_from_slice(&epoch.to_be_bytes());
        batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
        reseal(batch);
    }

    /// Recomputes the CRC after a test edited fields covered by it.
    pub fn reseal(batch: &mut [u8]) {
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::build::{batch, reseal};
    use super::*;

    const MAX: usize = 1 << 20;
    const LIMITS: RecompressLimits = RecompressLimits { batch_bytes: MAX, records_bytes: MAX, output_bytes: 16 * MAX };

    fn check(edit: impl FnOnce(&mut Vec<u8>), expected: Result<(), BatchError>) {
        let mut b = batch(&[b"hello", b"world"], 1_000);
        edit(&mut b);
        let got = validate_batch(&b, MAX, Origin::Client).map(|_| ());
        assert_eq!(got, expected);
    }

    fn invalid(reason: &'static str) -> Result<(), BatchError> {
        Err(BatchError::Invalid { reason })
    }

    #[test]
    fn keyed_records_read_back() {
        let entries: Vec<super::build::KeyValue> =
            vec![(Some(b"k1"), Some(b"v1")), (Some(b"k2"), None), (None, Some(b""))];
        let b = super::build::keyed_batch(&entries, 5_000, false);
        let header = validate_batch(&b, MAX, Origin::Client).unwrap();
        let got = records(&b, &header).unwrap();
        assert_eq!(got.len(), 3);
        for (i, (r, (k, v))) in got.iter().zip(&entries).enumerate() {
            assert_eq!((r.offset_delta as usize, r.timestamp, r.key, r.value), (i, 5_000, *k, *v));
        }
        // A record whose value runs past its end does not parse.
        let mut cut = b.clone();
        let last = cut.len() - 2;
        cut[last] = 0x7e;
        assert_eq!(records(&cut, &header), None);
    }

    #[test]
    fn accepts_a_well_formed_batch() {
        let b = batch(&[b"hello", b"world"], 1_000);
        let h = validate_batch(&b, MAX, Origin::Client).unwrap();
        assert_eq!(h.record_count, 2);
        assert_eq!(h.size(), b.len());
        assert_eq!(h.max_timestamp, 1_001);
    }

    #[test]
    fn rejects_bad_batches_with_the_kafka_error() {
        check(|b| b.truncate(60), Err(BatchError::Truncated { available: 60, needed: 61 }));
        check(|b| b.pop().map(|_| ()).unwrap(), Err(BatchError::Truncated { available: 84, needed: 85 }));
        check(|b| b[16] = 1, Err(BatchError::UnsupportedMagic { magic: 1 }));
        check(|b| b[8..12].copy_from_slice(&48i32.to_be_bytes()), Err(BatchError::LengthTooSmall { length: 48 }));
        check(
            |b| {
                b[22] = 0x05;
                reseal(b)
            },
            invalid("unknown compression codec in the batch attributes"),
        );
        check(
            |b| {
                b[21] = 0x01;
                reseal(b)
            },
            invalid("unknown bits set in the batch attributes"),
        );
        check(
            |b| {
                b[23..27].copy_from_slice(&5i32.to_be_bytes());
                reseal(b)
            },
            invalid("lastOffsetDelta does not match the record count"),
        );
        check(
            |b| {
                b[57..61].copy_from_slice(&9i32.to_be_bytes());
                b[23..27].copy_from_slice(&8i32.to_be_bytes());
                reseal(b)
            },
            invalid("record count exceeds what the batch bytes can hold"),
        );
        check(
            |b| {
                b[35..43].copy_from_slice(&5i64.to_be_bytes());
                reseal(b)
            },
            Err(BatchError::InvalidTimestamp { base_timestamp: 1_000, max_timestamp: 5 }),
        );
        check(
            |b| {
                b[22] = 0x10;
                reseal(b)
            },
            invalid("transactional batch without a producerId"),
        );
        check(
            |b| {
                b[22] = 0x20;
                reseal(b)
            },
            invalid("control batches are written by the broker, not by clients"),
        );
        check(
            |b| {
                b[43..51].copy_from_slice(&7i64.to_be_bytes());
                reseal(b)
            },
            invalid("idempotent batch with a negative producerEpoch or baseSequence"),
        );
        check(
            |b| {
                b[43..51].copy_from_slice(&(-2i64).to_be_bytes());
                reseal(b)
            },
            invalid("producerId below -1"),
        );
    }

    #[test]
    fn crc_mismatch_reports_both_values() {
        let mut b = batch(&[b"x"], 0);
        let n = b.len() - 1;
        b[n] ^= 0xff;
        match validate_batch(&b, MAX, Origin::Client) {
            Err(BatchError::CrcMismatch { expected, actual }) => assert_ne!(expected, actual),
            other => panic!("expected a CRC mismatch, got {other:?}"),
        }
    }

    #[test]
    fn size_limit_is_message_too_large() {
        let b = batch(&[&[7u8; 1000]], 0);
        let e = validate_batch(&b, 500, Origin::Client).unwrap_err();
        assert_eq!(e, BatchError::TooLarge { size: b.len(), max: 500 });
    }

    #[test]
    fn records_split_into_batches_all_or_nothing() {
        let mut records = batch(&[b"a"], 0);
        records.extend(batch(&[b"b", b"c"], 5));
        let batches = validate_records(&records, MAX, Origin::Client).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].0.record_count, 2);
        assert_eq!(batches[1].1.end, records.len());
        records.push(0);
        assert!(matches!(validate_records(&records, MAX, Origin::Client), Err(BatchError::Truncated { .. })));
        assert!(validate_records(&[], MAX, Origin::Client).is_err());
    }

    #[test]
    fn record_timestamps_of_an_uncompressed_batch() {
        let b = batch(&[b"a", b"bb", b"ccc"], 500);
        let h = validate_batch(&b, MAX, Origin::Client).unwrap();
        assert_eq!(record_timestamps(&b, &h), Some(vec![(0, 500), (1, 501), (2, 502)]));
        assert_eq!(record_timestamps(&b[..b.len() - 1], &h), None);
    }

    #[test]
    fn assigned_fields_stay_outside_the_crc() {
        let mut b = batch(&[b"a", b"b"], 0);
        assign(&mut b, 1234, 7);
        let h = validate_batch(&b, MAX, Origin::Log).unwrap();
        assert_eq!((h.base_offset, h.partition_leader_epoch), (1234, 7));
    }

    #[test]
    fn recompression_keeps_everything_but_the_codec() {
        let values: Vec<Vec<u8>> =
            (0..200).map(|i| format!("value number {i} of a compressible batch").into_bytes()).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let mut plain = batch(&refs, 1_000);
        plain.extend(batch(&[b"second batch"], 2_000));
        let originals = validate_records(&plain, MAX, Origin::Client).unwrap();
        let zstd = recompress_records(&plain, Compression::Zstd, Some(5), LIMITS).unwrap().expect("rewritten");
        assert!(zstd.len() < plain.len());
        let rewritten = validate_records(&zstd, MAX, Origin::Client).unwrap();
        assert_eq!(rewritten.len(), 2, "batch boundaries are kept");
        for ((was, _), (now, range)) in originals.iter().zip(&rewritten) {
            assert_eq!(now.compression(), Compression::Zstd);
            let same = |h: &BatchHeader| {
                (h.last_offset_delta, h.base_timestamp, h.max_timestamp, h.producer_id, h.base_sequence, h.record_count)
            };
            assert_eq!(same(was), same(now));
            let body = Compression::Zstd.decompress(&zstd[range.start + BATCH_HEADER_BYTES..range.end], MAX).unwrap();
            let (_, plain_range) = &originals[rewritten.iter().position(|(h, _)| h == now).unwrap()];
            assert_eq!(body, plain[plain_range.start + BATCH_HEADER_BYTES..plain_range.end]);
        }
        // Already in the codec: left as received. Back to another codec, and to none.
        assert_eq!(recompress_records(&zstd, Compression::Zstd, None, LIMITS), Ok(None));
        let gzip = recompress_records(&zstd, Compression::Gzip, None, LIMITS).unwrap().unwrap();
        let none = recompress_records(&gzip, Compression::None, None, LIMITS).unwrap().unwrap();
        assert_eq!(none, plain);
        // A batch that decompresses past the limit is refused, not allocated.
        let refused =
            recompress_records(&zstd, Compression::Gzip, None, RecompressLimits { records_bytes: 100, ..LIMITS });
        assert!(matches!(refused, Err(BatchError::Decompression { .. })), "{refused:?}");
        // A corrupt batch is refused before anything is decompressed.
        let mut corrupt = zstd.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(matches!(
            recompress_records(&corrupt, Compression::Gzip, None, LIMITS),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    /// `count` zstd batches of 8 KiB of zeros each: a few dozen bytes on the wire apiece.
    fn zero_bombs(count: usize) -> Vec<u8> {
        let zeros = vec![0u8; 8 << 10];
        let mut records = Vec::new();
        for i in 0..count {
            let plain = batch(&[&zeros], i as i64);
            records.extend(recompress_records(&plain, Compression::Zstd, None, LIMITS).unwrap().unwrap());
        }
        records
    }

    #[test]
    fn recompression_holds_no_more_than_its_limits() {
        let bombs = zero_bombs(64);
        assert!(bombs.len() < 64 * 200, "{} bytes", bombs.len());
        // Within the limits, every batch is rewritten.
        let plain = recompress_records(&bombs, Compression::None, None, LIMITS).unwrap().unwrap();
        assert!(plain.len() > 64 * (8 << 10));
        // A rewritten batch is held to the topic's max.message.bytes, as Kafka checks it again.
        let small_batches = RecompressLimits { batch_bytes: 4 << 10, ..LIMITS };
        assert_eq!(
            recompress_records(&bombs, Compression::None, None, small_batches),
            Err(BatchError::TooLarge { size: batch(&[&[0u8; 8 << 10]], 0).len(), max: 4 << 10 })
        );
        // Many small batches that each stay within every per-batch limit stop at the output
        // limit, which the error names.
        let output = RecompressLimits { output_bytes: 100 << 10, ..LIMITS };
        match recompress_records(&bombs, Compression::None, None, output) {
            Err(BatchError::Decompression { reason }) => assert!(reason.contains("102400 bytes"), "{reason}"),
            other => panic!("expected the output limit, got {other:?}"),
        }
        match recompress_records(&bombs, Compression::Lz4, None, RecompressLimits { output_bytes: 1000, ..LIMITS }) {
            Err(BatchError::Decompression { reason }) => assert!(reason.contains("1000 bytes"), "{reason}"),
            other => panic!("expected the output limit, got {other:?}"),
        }
    }

    #[test]
    fn records_without_a_timestamp_are_not_held_to_the_clock() {
        let check = |base: i64, max: i64| {
            let mut b = batch(&[b"a"], base);
            b[35..43].copy_from_slice(&max.to_be_bytes());
            reseal(&mut b);
            let h = validate_batch(&b, MAX, Origin::Client).unwrap();
            check_timestamps(&h, 1_000_000, 1_000, 1_000).map_err(|e| match e {
                BatchError::TimestampOutOfRange { timestamp, direction, .. } => (timestamp, direction),
                other => panic!("{other}"),
            })
        };
        assert_eq!(check(NO_TIMESTAMP, NO_TIMESTAMP), Ok(()));
        assert_eq!(check(NO_TIMESTAMP, 999_500), Ok(()));
        assert_eq!(check(999_500, 1_000_500), Ok(()));
        // With the first record's timestamp missing, the largest must be recent enough.
        assert_eq!(check(NO_TIMESTAMP, 5), Err((5, "before")));
        assert_eq!(check(5, 999_999), Err((5, "before")));
        assert_eq!(check(NO_TIMESTAMP, 1_002_000), Err((1_002_000, "after")));
    }

    #[test]
    fn log_append_time_rewrites_the_header_and_its_crc() {
        let b = batch(&[b"a", b"bb"], 500);
        let patched = log_append_time_header(&b, &b[BATCH_HEADER_BYTES..], 9_999);
        let mut stamped = patched.to_vec();
        stamped.extend_from_slice(&b[BATCH_HEADER_BYTES..]);
        let h = validate_batch(&stamped, MAX, Origin::Client).unwrap();
        assert_eq!((h.max_timestamp, h.base_timestamp), (9_999, 500));
        let expected = validate_batch(&b, MAX, Origin::Client).unwrap().with_log_append_time(9_999);
        assert_eq!(h, BatchHeader { crc: h.crc, ..expected }, "all but the CRC, which needs the bytes");
        assert_eq!(record_timestamps(&stamped, &h), Some(vec![(0, 9_999), (1, 9_999)]));
    }
}
