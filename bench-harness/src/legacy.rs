//! The protocol of brokers older than Kafka 0.10 (no ApiVersions): Produce v1 and Fetch v1
//! with magic 0 message sets, encoded by hand (the client half of `ringtail-net` speaks Produce
//! from v3 and Fetch from v4, as Kafka 4 does). Used automatically when a broker does not answer
//! ApiVersions, so the harness can also drive the Apache Kafka 0.9 that the npm registry carries.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::batch::PAYLOAD_HEADER_BYTES;

fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    for (i, entry) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *entry = c;
    }
    table
}

/// CRC-32 (IEEE), as magic 0 and 1 messages carry.
pub fn crc32(data: &[u8]) -> u32 {
    thread_local! {
        static TABLE: [u32; 256] = crc32_table();
    }
    TABLE.with(|t| {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c = t[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
        c ^ 0xFFFF_FFFF
    })
}

/// Appends one magic 0 message (offset `relative`) to a message set.
pub fn push_message(
    out: &mut BytesMut,
    relative: i64,
    key: Option<&[u8]>,
    header: &[u8; PAYLOAD_HEADER_BYTES],
    filler: &[u8],
) {
    let key_len = key.map_or(0, <[u8]>::len);
    let value_len = PAYLOAD_HEADER_BYTES + filler.len();
    // crc, magic, attributes, key length, key, value length, value
    let size = 4 + 1 + 1 + 4 + key_len + 4 + value_len;
    out.put_i64(relative);
    out.put_i32(size as i32);
    let crc_at = out.len();
    out.put_u32(0);
    out.put_u8(0);
    out.put_u8(0);
    match key {
        Some(k) => {
            out.put_i32(k.len() as i32);
            out.put_slice(k);
        }
        None => out.put_i32(-1),
    }
    out.put_i32(value_len as i32);
    out.put_slice(header);
    out.put_slice(filler);
    let crc = crc32(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
}

fn put_string(out: &mut BytesMut, s: &str) {
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

/// Produce v1 request body: acks, timeout, then per topic the message set of each partition.
pub fn produce_v1(acks: i16, timeout_ms: i32, topics: &[(String, Vec<(i32, Bytes)>)]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(acks);
    out.put_i32(timeout_ms);
    out.put_i32(topics.len() as i32);
    for (topic, partitions) in topics {
        put_string(&mut out, topic);
        out.put_i32(partitions.len() as i32);
        for (p, set) in partitions {
            out.put_i32(*p);
            out.put_i32(set.len() as i32);
            out.put_slice(set);
        }
    }
    out.freeze()
}

fn take_string(b: &mut Bytes) -> anyhow::Result<String> {
    anyhow::ensure!(b.remaining() >= 2, "short response");
    let n = b.get_i16();
    anyhow::ensure!(n >= 0 && b.remaining() >= n as usize, "short response");
    Ok(String::from_utf8_lossy(&b.split_to(n as usize)).into_owned())
}

fn count(b: &mut Bytes) -> anyhow::Result<usize> {
    anyhow::ensure!(b.remaining() >= 4, "short response");
    let n = b.get_i32();
    anyhow::ensure!((0..1_000_000).contains(&n), "implausible count {n}");
    Ok(n as usize)
}

/// Produce v1 response: (topic, partition, error code) per partition.
pub fn produce_v1_response(mut b: Bytes) -> anyhow::Result<Vec<(String, i32, i16)>> {
    let mut out = Vec::new();
    for _ in 0..count(&mut b)? {
        let topic = take_string(&mut b)?;
        for _ in 0..count(&mut b)? {
            anyhow::ensure!(b.remaining() >= 14, "short response");
            let (partition, error) = (b.get_i32(), b.get_i16());
            b.advance(8);
            out.push((topic.clone(), partition, error));
        }
    }
    Ok(out)
}

/// Fetch v1 request body.
pub fn fetch_v1(
    max_wait_ms: i32,
    min_bytes: i32,
    partition_max_bytes: i32,
    topics: &[(String, Vec<(i32, i64)>)],
) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(-1);
    out.put_i32(max_wait_ms);
    out.put_i32(min_bytes);
    out.put_i32(topics.len() as i32);
    for (topic, partitions) in topics {
        put_string(&mut out, topic);
        out.put_i32(partitions.len() as i32);
        for (p, offset) in partitions {
            out.put_i32(*p);
            out.put_i64(*offset);
            out.put_i32(partition_max_bytes);
        }
    }
    out.freeze()
}

/// Fetch v1 response: (topic, partition, error code, message set) per partition.
pub fn fetch_v1_response(mut b: Bytes) -> anyhow::Result<Vec<(String, i32, i16, Bytes)>> {
    anyhow::ensure!(b.remaining() >= 4, "short response");
    b.advance(4); // throttle time
    let mut out = Vec::new();
    for _ in 0..count(&mut b)? {
        let topic = take_string(&mut b)?;
        for _ in 0..count(&mut b)? {
            anyhow::ensure!(b.remaining() >= 18, "short response");
            let (partition, error) = (b.get_i32(), b.get_i16());
            b.advance(8);
            let size = b.get_i32();
            anyhow::ensure!(size >= 0 && b.remaining() >= size as usize, "short response");
            out.push((topic.clone(), partition, error, b.split_to(size as usize)));
        }
    }
    Ok(out)
}

/// Walks a magic 0/1 message set: messages, their bytes, the next offset, and each message's
/// due time. A partial message at the end is skipped; compressed wrappers are counted as one.
pub fn walk(set: &[u8], mut on_message: impl FnMut(u64)) -> crate::batch::Fetched {
    let mut out = crate::batch::Fetched::default();
    let mut at = 0usize;
    while set.len() - at >= 12 {
        let offset = i64::from_be_bytes(set[at..at + 8].try_into().expect("8 bytes"));
        let size = i32::from_be_bytes(set[at + 8..at + 12].try_into().expect("4 bytes"));
        let end = at + 12 + size.max(0) as usize;
        if size < 14 || end > set.len() {
            break;
        }
        let m = &set[at + 12..end];
        let magic = m[4];
        let mut p = 6 + if magic >= 1 { 8 } else { 0 };
        let key_len = m.get(p..p + 4).map_or(-1, |b| i32::from_be_bytes(b.try_into().expect("4 bytes")));
        p += 4 + key_len.max(0) as usize;
        if m[5] & 0x07 == 0 {
            if let Some(v) = m.get(p + 4..p + 12) {
                on_message(u64::from_be_bytes(v.try_into().expect("8 bytes")));
            }
        }
        out.records += 1;
        out.bytes += (end - at) as u64;
        out.next_offset = Some(offset + 1);
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::payload_header;

    #[test]
    fn crc32_check_value_and_message_sets_walk_back() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let mut set = BytesMut::new();
        for i in 0..5u64 {
            push_message(&mut set, i as i64, (i % 2 == 0).then_some(&b"k"[..]), &payload_header(100 + i, 1, i), b"abc");
        }
        // The stored form (offsets assigned by the broker) walks the same.
        let mut seen = Vec::new();
        let f = walk(&set, |d| seen.push(d));
        assert_eq!((f.records, f.next_offset), (5, Some(5)));
        assert_eq!(seen, vec![100, 101, 102, 103, 104]);
        // The CRC covers magic to the end of the value.
        let size = i32::from_be_bytes(set[8..12].try_into().unwrap()) as usize;
        let crc = u32::from_be_bytes(set[12..16].try_into().unwrap());
        assert_eq!(crc, crc32(&set[16..12 + size]));
        let body = produce_v1(-1, 1000, &[("t".into(), vec![(0, set.freeze())])]);
        assert_eq!(&body[..6], &[0xff, 0xff, 0, 0, 0x03, 0xe8]);
    }
}
