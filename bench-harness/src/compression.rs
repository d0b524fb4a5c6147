//! The record-batch codecs of the Kafka protocol (attributes bits 0-2), for the producer's
//! batches and the consumer's walk, and the message payloads that give them something
//! realistic to compress.
//!
//! Formats, as Kafka clients write them: gzip is a gzip member (RFC 1952); snappy is a raw
//! snappy block as librdkafka writes it (the xerial framing the Java client writes is read
//! too); lz4 is an LZ4 frame (independent blocks, no content size or checksums, as Kafka's
//! `KafkaLZ4BlockOutputStream` writes); zstd is a zstd frame.

use std::io::{Read, Write};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    /// The codec's id in the batch attributes.
    pub fn attribute(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    pub fn from_attribute(bits: i16) -> Option<Compression> {
        Compression::ALL.into_iter().find(|c| c.attribute() == bits & 0x07)
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    pub fn parse(name: &str) -> Option<Compression> {
        Compression::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Appends `records` compressed to `out`. The levels are the clients' defaults (gzip 6,
    /// lz4 fast, zstd 3).
    pub fn compress(self, records: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match self {
            Compression::None => out.extend_from_slice(records),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
                e.write_all(records)?;
                e.finish()?;
            }
            Compression::Snappy => {
                let start = out.len();
                out.resize(start + snap::raw::max_compress_len(records.len()), 0);
                let n = snap::raw::Encoder::new().compress(records, &mut out[start..])?;
                out.truncate(start + n);
            }
            Compression::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent);
                let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
                e.write_all(records)?;
                e.finish().map_err(|e| anyhow!("lz4: {e}"))?;
            }
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, 3)?;
                e.write_all(records)?;
                e.finish()?;
            }
        }
        Ok(())
    }

    /// The records of a compressed batch, decompressed; at most `limit` bytes (a hostile or
    /// corrupt batch does not get to allocate without bound).
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let bounded = |r: &mut dyn Read, out: &mut Vec<u8>| -> Result<()> {
            r.take(limit as u64 + 1).read_to_end(out)?;
            if out.len() > limit {
                bail!("decompresses to more than {limit} bytes");
            }
            Ok(())
        };
        match self {
            Compression::None => out.extend_from_slice(data),
            Compression::Gzip => bounded(&mut flate2::read::MultiGzDecoder::new(data), &mut out)?,
            Compression::Snappy => return snappy_decompress(data, limit),
            Compression::Lz4 => bounded(&mut lz4_flex::frame::FrameDecoder::new(data), &mut out)?,
            Compression::Zstd => bounded(&mut zstd::stream::read::Decoder::new(data)?, &mut out)?,
        }
        Ok(out)
    }
}

/// The header of snappy-java's stream format ("xerial"), which the Java client writes.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<()> {
        let n = snap::raw::decompress_len(block)?;
        if out.len() + n > limit {
            bail!("decompresses to more than {limit} bytes");
        }
        let start = out.len();
        out.resize(start + n, 0);
        let got = snap::raw::Decoder::new().decompress(block, &mut out[start..])?;
        out.truncate(start + got);
        Ok(())
    };
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        raw(data, &mut out)?;
        return Ok(out);
    }
    // Magic, version and compatible version (16 bytes), then (length, block) pairs.
    let mut at = 16usize;
    while at < data.len() {
        let len = data.get(at..at + 4).context("snappy (xerial): truncated block length")?;
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        at += 4;
        let block = data.get(at..at + len).context("snappy (xerial): truncated block")?;
        raw(block, &mut out)?;
        at += len;
    }
    Ok(out)
}

/// What each message's value carries after the 24-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Payload {
    /// Log lines (timestamps, levels, ids, paths, numbers): compresses about as application
    /// logs do. Each message is a different window of the text, so batches do not repeat.
    Text,
    /// Random bytes: what compression cannot shrink.
    Random,
}

impl Payload {
    pub const ALL: [Payload; 2] = [Payload::Text, Payload::Random];

    pub fn name(self) -> &'static str {
        match self {
            Payload::Text => "text",
            Payload::Random => "random",
        }
    }

    pub fn parse(name: &str) -> Option<Payload> {
        Payload::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A pool of payload bytes; each message takes `len` bytes of it at a random position.
pub struct PayloadPool {
    bytes: Vec<u8>,
}

impl PayloadPool {
    /// A pool of 64 MiB, or twice the message if that is more: large enough that the windows
    /// in one batch rarely overlap, which a codec with a long window (zstd) would exploit.
    pub fn new(kind: Payload, message_len: usize, seed: u64) -> PayloadPool {
        PayloadPool::with_size(kind, (64 << 20).max(2 * message_len), seed)
    }

    fn with_size(kind: Payload, size: usize, seed: u64) -> PayloadPool {
        let mut rng = seed | 1;
        let mut next = move || {
            // xorshift64*
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let mut bytes = Vec::with_capacity(size + 256);
        match kind {
            Payload::Random => {
                while bytes.len() < size {
                    bytes.extend_from_slice(&next().to_le_bytes());
                }
            }
            Payload::Text => {
                const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "DEBUG"];
                const SERVICES: [&str; 6] = ["api-gateway", "orders", "billing", "search", "auth", "inventory"];
                const PATHS: [&str; 8] = [
                    "/v1/orders",
                    "/v1/orders/{id}",
                    "/v1/cart",
                    "/v2/search",
                    "/v1/users/{id}/profile",
                    "/health",
                    "/v1/payments",
                    "/v1/inventory/items",
                ];
                const MESSAGES: [&str; 6] = [
                    "request completed",
                    "cache miss, loading from store",
                    "retrying upstream call",
                    "slow query",
                    "session refreshed",
                    "rate limit close to threshold",
                ];
                let mut t = 1_795_000_000_000u64;
                while bytes.len() < size {
                    t += next() % 50;
                    let r = next();
                    let line = format!(
                        "{}.{:03} {} {} trace={:016x} user={} method={} path={} status={} bytes={} latency_ms={} msg=\"{}\"\n",
                        t / 1000,
                        t % 1000,
                        LEVELS[(r % 4) as usize],
                        SERVICES[(r >> 8) as usize % 6],
                        next(),
                        (r >> 16) % 100_000,
                        if (r >> 40) & 3 == 0 { "POST" } else { "GET" },
                        PATHS[(r >> 20) as usize % 8],
                        [200, 200, 200, 201, 204, 304, 404, 500][(r >> 24) as usize % 8],
                        (r >> 28) % 65_536,
                        (r >> 44) % 900 + 1,
                        MESSAGES[(r >> 52) as usize % 6],
                    );
                    bytes.extend_from_slice(line.as_bytes());
                }
            }
        }
        PayloadPool { bytes }
    }

    /// `len` bytes starting at a position chosen by `r`.
    pub fn slice(&self, r: u64, len: usize) -> &[u8] {
        let start = (r % (self.bytes.len() - len + 1) as u64) as usize;
        &self.bytes[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips_and_text_compresses() {
        let pool = PayloadPool::with_size(Payload::Text, 4 << 20, 7);
        let random = PayloadPool::with_size(Payload::Random, 4 << 20, 7);
        let mut records = Vec::new();
        for i in 0..200u64 {
            records.extend_from_slice(pool.slice(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1000));
        }
        for c in Compression::ALL {
            let mut out = b"prefix".to_vec();
            c.compress(&records, &mut out).unwrap();
            assert_eq!(&out[..6], b"prefix");
            let back = c.decompress(&out[6..], 1 << 20).unwrap();
            assert_eq!(back, records, "{c:?}");
            if c != Compression::None {
                // Log-like text shrinks, but not absurdly (each message is different text).
                let ratio = records.len() as f64 / (out.len() - 6) as f64;
                assert!((1.5..12.0).contains(&ratio), "{c:?}: ratio {ratio}");
                // A limit below the size is refused, not allocated.
                assert!(c.decompress(&out[6..], 1000).is_err(), "{c:?}");
                // Random bytes do not shrink.
                let r = random.slice(3, 100_000);
                let mut out = Vec::new();
                c.compress(r, &mut out).unwrap();
                assert!(out.len() as f64 > 0.95 * r.len() as f64, "{c:?}");
            }
            assert_eq!(Compression::from_attribute(c.attribute()), Some(c));
            assert_eq!(Compression::parse(c.name()), Some(c));
        }
    }

    #[test]
    fn snappy_reads_the_java_clients_xerial_framing() {
        let records = b"hello hello hello hello xerial".repeat(10);
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        for half in records.chunks(records.len() / 2 + 1) {
            let block = snap::raw::Encoder::new().compress_vec(half).unwrap();
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        assert_eq!(Compression::Snappy.decompress(&framed, 1 << 20).unwrap(), records);
        assert!(Compression::Snappy.decompress(&framed[..framed.len() - 3], 1 << 20).is_err());
    }
}
