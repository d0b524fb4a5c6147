//! Record batches (magic 2) built straight into one buffer per batch, and the consumer's walk
//! over fetched batches. Every message's value starts with a 24-byte header: the time it was
//! due to be sent (ns since the run's epoch), the producer, and the producer's sequence number.

use bytes::{BufMut, Bytes, BytesMut};

use crate::compression::Compression;

pub const PAYLOAD_HEADER_BYTES: usize = 24;
use ringtail_log::batch::{BatchHeader, BATCH_HEADER_BYTES};

fn put_varint(out: &mut BytesMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn varint_len(value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// A batch being filled for one partition.
pub struct BatchBuilder {
    buf: BytesMut,
    count: i32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    /// When each message was due to be sent, ns since the run's epoch.
    pub due_ns: Vec<u64>,
    /// When the first message was added (ns since the epoch), for linger.
    pub opened_ns: u64,
    /// A magic 0 message set for brokers older than Kafka 0.10 (`legacy.rs`).
    legacy: bool,
    compression: Compression,
}

impl BatchBuilder {
    /// `compression` must be `None` for a legacy (magic 0) message set.
    pub fn new(capacity: usize, now_ns: u64, legacy: bool, compression: Compression) -> Self {
        debug_assert!(!legacy || compression == Compression::None);
        let mut buf = BytesMut::with_capacity(capacity + BATCH_HEADER_BYTES + 64);
        if !legacy {
            buf.put_bytes(0, BATCH_HEADER_BYTES);
        }
        BatchBuilder {
            buf,
            count: 0,
            base_timestamp_ms: 0,
            max_timestamp_ms: 0,
            due_ns: Vec::new(),
            opened_ns: now_ns,
            legacy,
            compression,
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Adds a message whose value is the 24-byte header followed by `filler`.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        header: [u8; PAYLOAD_HEADER_BYTES],
        filler: &[u8],
        timestamp_ms: i64,
        due_ns: u64,
    ) {
        if self.legacy {
            crate::legacy::push_message(&mut self.buf, i64::from(self.count), key, &header, filler);
            self.count += 1;
            self.due_ns.push(due_ns);
            return;
        }
        if self.count == 0 {
            self.base_timestamp_ms = timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        let value_len = PAYLOAD_HEADER_BYTES + filler.len();
        let key_field = key.map_or(1, |k| varint_len(k.len() as i64) + k.len());
        let timestamp_delta = timestamp_ms - self.base_timestamp_ms;
        let body = 1
            + varint_len(timestamp_delta)
            + varint_len(i64::from(self.count))
            + key_field
            + varint_len(value_len as i64)
            + value_len
            + 1;
        put_varint(&mut self.buf, body as i64);
        self.buf.put_u8(0);
        put_varint(&mut self.buf, timestamp_delta);
        put_varint(&mut self.buf, i64::from(self.count));
        match key {
            Some(k) => {
                put_varint(&mut self.buf, k.len() as i64);
                self.buf.put_slice(k);
            }
            None => put_varint(&mut self.buf, -1),
        }
        put_varint(&mut self.buf, value_len as i64);
        self.buf.put_slice(&header);
        self.buf.put_slice(filler);
        put_varint(&mut self.buf, 0);
        self.count += 1;
        self.due_ns.push(due_ns);
    }

    /// Compresses the records (if a codec is set), fills in the header and CRC-32C: the batch
    /// as sent.
    pub fn finish(mut self) -> anyhow::Result<(Bytes, Vec<u64>)> {
        if self.legacy {
            return Ok((self.buf.freeze(), self.due_ns));
        }
        if self.compression == Compression::None {
            let mut buf = std::mem::take(&mut self.buf);
            self.fill_header(&mut buf);
            return Ok((buf.freeze(), self.due_ns));
        }
        // The compressed records go into a new buffer after a copy of the (unfilled) header.
        let mut out = Vec::with_capacity(self.buf.len() / 2 + BATCH_HEADER_BYTES);
        out.extend_from_slice(&self.buf[..BATCH_HEADER_BYTES]);
        self.compression.compress(&self.buf[BATCH_HEADER_BYTES..], None, &mut out)?;
        self.fill_header(&mut out);
        Ok((Bytes::from(out), self.due_ns))
    }

    /// Fills in the header of `batch` (this builder's batch, records already in their final
    /// form) and its CRC-32C.
    fn fill_header(&self, batch: &mut [u8]) {
        let length = (batch.len() - 12) as i32;
        let count = self.count;
        let h = &mut batch[..BATCH_HEADER_BYTES];
        h[8..12].copy_from_slice(&length.to_be_bytes());
        h[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        h[16] = 2;
        h[21..23].copy_from_slice(&self.compression.attribute().to_be_bytes());
        h[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        h[27..35].copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        h[35..43].copy_from_slice(&self.max_timestamp_ms.to_be_bytes());
        h[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        h[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        h[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        h[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

pub fn payload_header(due_ns: u64, producer: u32, sequence: u64) -> [u8; PAYLOAD_HEADER_BYTES] {
    let mut h = [0u8; PAYLOAD_HEADER_BYTES];
    h[0..8].copy_from_slice(&due_ns.to_be_bytes());
    h[8..12].copy_from_slice(&producer.to_be_bytes());
    h[16..24].copy_from_slice(&sequence.to_be_bytes());
    h
}

fn read_varint(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*at)?;
        *at += 1;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

/// What a fetch returned for one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub records: u64,
    pub bytes: u64,
    /// One past the last offset returned.
    pub next_offset: Option<i64>,
}

/// Calls `on_message(due_ns)` for each of the `count` records in `records` (a batch's records,
/// decompressed) whose value carries our header.
fn walk_records(records: &[u8], count: i32, on_message: &mut impl FnMut(u64)) {
    let mut p = 0usize;
    for _ in 0..count {
        let Some(len) = read_varint(records, &mut p) else { break };
        let end = p + len.max(0) as usize;
        let mut q = p + 1;
        let fields = (|| {
            read_varint(records, &mut q)?;
            read_varint(records, &mut q)?;
            let key_len = read_varint(records, &mut q)?;
            q += key_len.max(0) as usize;
            let value_len = read_varint(records, &mut q)?;
            (value_len >= 8).then_some(())?;
            records.get(q..q + 8).map(|v| u64::from_be_bytes(v.try_into().expect("8 bytes")))
        })();
        if let Some(due) = fields {
            on_message(due);
        }
        p = end;
    }
}

/// Largest decompressed batch the consumer accepts.
const MAX_DECOMPRESSED: usize = 256 << 20;

/// Walks the whole batches in `records`, calling `on_message(due_ns)` for each message that
/// carries our header; compressed batches are decompressed (as a consumer must). A batch that
/// does not decompress is an error.
pub fn walk(records: &[u8], mut on_message: impl FnMut(u64)) -> anyhow::Result<Fetched> {
    let mut out = Fetched::default();
    let mut at = 0usize;
    while records.len() - at >= BATCH_HEADER_BYTES {
        let b = &records[at..];
        let h = BatchHeader::parse(b).expect("the loop leaves at least a header");
        let size = h.size();
        if h.batch_length < 49 || size > b.len() {
            break; // a partial batch at the end of the response
        }
        let (base_offset, count) = (h.base_offset, h.record_count);
        if h.magic != 2 {
            anyhow::bail!(
                "batch at offset {base_offset}: magic {} (this consumer reads record batches, magic 2)",
                h.magic
            );
        }
        out.bytes += size as u64;
        out.next_offset = Some(base_offset + i64::from(h.last_offset_delta) + 1);
        if !h.is_control() {
            out.records += count.max(0) as u64;
            let body = &b[BATCH_HEADER_BYTES..size];
            match Compression::from_attribute(h.attributes) {
                Some(Compression::None) => walk_records(body, count, &mut on_message),
                Some(codec) => {
                    let records = codec
                        .decompress(body, MAX_DECOMPRESSED)
                        .map_err(|e| anyhow::anyhow!("batch at offset {base_offset} ({}): {e:#}", codec.name()))?;
                    walk_records(&records, count, &mut on_message);
                }
                None => anyhow::bail!("batch at offset {base_offset}: unknown codec {}", h.attributes & 0x07),
            }
        }
        at += size;
    }
    Ok(out)
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), for keyed partitioning.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes(c.try_into().expect("4 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for a key.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batches_parse_back_with_their_send_times() {
        let filler = vec![b'x'; 1000];
        let mut b = BatchBuilder::new(1 << 16, 0, false, Compression::None);
        for i in 0..10u64 {
            let key = (i % 3 == 0).then(|| i.to_be_bytes());
            b.push(
                key.as_ref().map(|k| &k[..]),
                payload_header(1000 + i, 7, i),
                &filler,
                1_700_000_000_000 + i as i64,
                1000 + i,
            );
        }
        assert_eq!(b.count(), 10);
        let (bytes, due) = b.finish().unwrap();
        assert_eq!(due, (1000..1010).collect::<Vec<u64>>());
        // The CRC covers attributes to the end.
        let crc = u32::from_be_bytes(bytes[17..21].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&bytes[21..]));
        let mut seen = Vec::new();
        let mut two = bytes.to_vec();
        two.extend_from_slice(&bytes);
        two.extend_from_slice(&bytes[..100]); // a partial batch is ignored
        let f = walk(&two, |d| seen.push(d)).unwrap();
        assert_eq!(f.records, 20);
        assert_eq!(f.bytes, 2 * bytes.len() as u64);
        assert_eq!(seen.len(), 20);
        assert_eq!(&seen[..10], &(1000..1010).collect::<Vec<u64>>()[..]);
    }

    #[test]
    fn compressed_batches_carry_their_codec_and_walk_back() {
        let pool = crate::compression::PayloadPool::new(crate::compression::Payload::Text, 1000, 1);
        for codec in Compression::ALL {
            let mut b = BatchBuilder::new(1 << 20, 0, false, codec);
            let mut plain = BatchBuilder::new(1 << 20, 0, false, Compression::None);
            for i in 0..300u64 {
                let filler = pool.slice(i * 7919, 1000);
                b.push(None, payload_header(5000 + i, 1, i), filler, 1_700_000_000_000, 5000 + i);
                plain.push(None, payload_header(5000 + i, 1, i), filler, 1_700_000_000_000, 5000 + i);
            }
            let (bytes, _) = b.finish().unwrap();
            let (plain, _) = plain.finish().unwrap();
            assert_eq!(i16::from_be_bytes([bytes[21], bytes[22]]), codec.attribute());
            assert_eq!(u32::from_be_bytes(bytes[17..21].try_into().unwrap()), crc32c::crc32c(&bytes[21..]));
            assert_eq!(i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize, bytes.len() - 12);
            if codec != Compression::None {
                assert!(bytes.len() < plain.len() / 2, "{codec:?}: {} of {}", bytes.len(), plain.len());
                // The header is the uncompressed batch's but for length, attributes and CRC.
                assert_eq!(bytes[23..61], plain[23..61]);
            }
            let mut seen = Vec::new();
            let f = walk(&bytes, |d| seen.push(d)).unwrap();
            assert_eq!((f.records, f.next_offset), (300, Some(300)), "{codec:?}");
            assert_eq!(seen, (5000..5300).collect::<Vec<u64>>(), "{codec:?}");
            if codec != Compression::None {
                // A damaged compressed batch is an error, not a silent miscount.
                let mut bad = bytes.to_vec();
                let mid = 61 + (bad.len() - 61) / 2;
                bad.truncate(mid);
                let len = (bad.len() - 12) as i32;
                bad[8..12].copy_from_slice(&len.to_be_bytes());
                assert!(walk(&bad, |_| ()).is_err(), "{codec:?}");
            }
        }
    }

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
        assert_eq!(murmur2(b"abc"), 479470107);
    }
}
