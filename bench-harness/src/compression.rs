//! The message payloads that give the record-batch codecs (`ringtail_log::Compression`, shared
//! with the broker) something realistic to compress.

use serde::{Deserialize, Serialize};

pub use ringtail_log::Compression;

/// A codec by its name in workload files (`none`, `gzip`, `snappy`, `lz4`, `zstd`), for serde.
pub mod codec_name {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use super::Compression;

    pub fn serialize<S: Serializer>(c: &Compression, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Compression, D::Error> {
        let name = String::deserialize(d)?;
        Compression::parse(&name).ok_or_else(|| {
            D::Error::custom(format!("unknown compression `{name}`: use none, gzip, snappy, lz4 or zstd"))
        })
    }
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
            c.compress(&records, None, &mut out).unwrap();
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
                c.compress(r, None, &mut out).unwrap();
                assert!(out.len() as f64 > 0.95 * r.len() as f64, "{c:?}");
            }
            assert_eq!(Compression::from_attribute(c.attribute()), Some(c));
            assert_eq!(Compression::parse(c.name()), Some(c));
        }
    }
}
