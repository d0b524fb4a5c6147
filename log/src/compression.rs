//! The record-batch codecs of the Kafka protocol (attributes bits 0-2): the broker
//! recompresses batches for a topic's `compression.type`, and the bench harness builds and
//! walks compressed batches with them.
//!
//! Formats, as Kafka clients write them: gzip is a gzip member (RFC 1952); snappy is a raw
//! snappy block as librdkafka writes it (the xerial framing the Java client writes is read
//! too); lz4 is an LZ4 frame (independent blocks, no content size or checksums, as Kafka's
//! `KafkaLZ4BlockOutputStream` writes); zstd is a zstd frame. Decompression is bounded: a
//! hostile or corrupt batch does not get to allocate without limit.

use std::io::{Read, Write};

/// Why records could not be compressed or decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    #[error("{codec}: {reason}")]
    Codec { codec: &'static str, reason: String },
    #[error("the records decompress to more than {limit} bytes")]
    TooLarge { limit: usize },
}

fn codec_error(codec: &'static str) -> impl Fn(std::io::Error) -> CompressionError {
    move |e| CompressionError::Codec { codec, reason: e.to_string() }
}

/// A batch's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// Appends `records` compressed to `out`, at `level` (`None`: the clients' defaults, gzip
    /// 6, lz4 fast, zstd 3; snappy has no levels).
    pub fn compress(self, records: &[u8], level: Option<i32>, out: &mut Vec<u8>) -> Result<(), CompressionError> {
        match self {
            Compression::None => out.extend_from_slice(records),
            Compression::Gzip => {
                let level = level.filter(|l| (1..=9).contains(l)).unwrap_or(6) as u32;
                let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
                e.write_all(records).map_err(codec_error("gzip"))?;
                e.finish().map_err(codec_error("gzip"))?;
            }
            Compression::Snappy => {
                let start = out.len();
                out.resize(start + snap::raw::max_compress_len(records.len()), 0);
                let n = snap::raw::Encoder::new()
                    .compress(records, &mut out[start..])
                    .map_err(|e| CompressionError::Codec { codec: "snappy", reason: e.to_string() })?;
                out.truncate(start + n);
            }
            // lz4_flex has one level; Kafka's compression.lz4.level has no effect on it.
            Compression::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent);
                let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
                e.write_all(records).map_err(codec_error("lz4"))?;
                e.finish().map_err(|e| CompressionError::Codec { codec: "lz4", reason: e.to_string() })?;
            }
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, level.unwrap_or(3)).map_err(codec_error("zstd"))?;
                e.write_all(records).map_err(codec_error("zstd"))?;
                e.finish().map_err(codec_error("zstd"))?;
            }
        }
        Ok(())
    }

    /// The records of a compressed batch, decompressed; at most `limit` bytes.
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
        let mut out = Vec::new();
        let bounded = |codec: &'static str, r: &mut dyn Read, out: &mut Vec<u8>| -> Result<(), CompressionError> {
            r.take(limit as u64 + 1).read_to_end(out).map_err(codec_error(codec))?;
            if out.len() > limit {
                return Err(CompressionError::TooLarge { limit });
            }
            Ok(())
        };
        match self {
            Compression::None => out.extend_from_slice(data),
            Compression::Gzip => bounded("gzip", &mut flate2::read::MultiGzDecoder::new(data), &mut out)?,
            Compression::Snappy => return snappy_decompress(data, limit),
            Compression::Lz4 => bounded("lz4", &mut lz4_flex::frame::FrameDecoder::new(data), &mut out)?,
            Compression::Zstd => {
                let mut d = zstd::stream::read::Decoder::new(data).map_err(codec_error("zstd"))?;
                bounded("zstd", &mut d, &mut out)?
            }
        }
        Ok(out)
    }
}

/// The header of snappy-java's stream format ("xerial"), which the Java client writes.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let bad = |reason: String| CompressionError::Codec { codec: "snappy", reason };
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), CompressionError> {
        let n = snap::raw::decompress_len(block).map_err(|e| bad(e.to_string()))?;
        if out.len() + n > limit {
            return Err(CompressionError::TooLarge { limit });
        }
        let start = out.len();
        out.resize(start + n, 0);
        let got = snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|e| bad(e.to_string()))?;
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
        let len = data.get(at..at + 4).ok_or_else(|| bad("xerial: truncated block length".into()))?;
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        at += 4;
        let block = data.get(at..at.saturating_add(len)).ok_or_else(|| bad("xerial: truncated block".into()))?;
        raw(block, &mut out)?;
        at += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
