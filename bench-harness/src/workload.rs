//! Workloads: what to run, as flags or a TOML file, and presets mirroring the OpenMessaging
//! Benchmark's Kafka workloads.

use serde::{Deserialize, Serialize};

/// How messages are keyed (and so partitioned), as in OMB's `keyDistributor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keys {
    /// No key; each producer fills one partition's batch, then moves to the next (the sticky
    /// partitioning of current Kafka clients).
    None,
    /// A random 8-byte key per message, partitioned by murmur2 as the Java client does.
    Random,
    /// Keys cycle through one per partition, so consecutive messages go to consecutive partitions.
    RoundRobin,
}

pub use crate::compression::{Compression, Payload};

/// Default bound of an unlimited producer's lead over the consumers, in MB: well inside a
/// broker's tail cache (Ringtail's is 256 MiB per shard), so consumers that keep up read the
/// tail, and a few seconds of it at most at the rates this machine reaches.
pub const BACKLOG_MAX_MB_DEFAULT: u64 = 64;

/// One benchmark workload. Every field has a default; a TOML file may give any subset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Workload {
    pub name: String,
    pub topics: u32,
    pub partitions_per_topic: u32,
    pub message_size: usize,
    /// Producers, each with its own connection (split over the cores given).
    pub producers: u32,
    /// Consumers, each with its own connection, sharing the partitions; 0 for none.
    pub consumers: u32,
    /// Messages per second over all producers; 0 is as fast as the broker takes them.
    pub producer_rate: u64,
    /// A partition's batch is sent when it holds this many bytes...
    pub batch_bytes: usize,
    /// ...or its first message is this old.
    pub linger_ms: u64,
    /// Produce requests a producer keeps in flight.
    pub max_in_flight: u32,
    /// -1 (all), 1 or 0.
    pub acks: i16,
    /// The producer's batch codec: none, gzip, snappy, lz4 or zstd.
    #[serde(with = "crate::compression::codec_name")]
    pub compression: Compression,
    /// What the message values hold after their 24-byte header: text (log lines) or random.
    pub payload: Payload,
    pub keys: Keys,
    pub duration_s: u64,
    pub warmup_s: u64,
    /// With `producer_rate` 0 and consumers: producers pause while more than this many MB are
    /// acknowledged but not yet consumed, so the publish rate settles at what the consumers
    /// sustain (OpenMessaging's maximum sustainable rate); 0 never pauses them.
    pub backlog_max_mb: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            name: "custom".into(),
            topics: 1,
            partitions_per_topic: 16,
            message_size: 1024,
            producers: 1,
            consumers: 1,
            producer_rate: 0,
            batch_bytes: 1 << 20,
            linger_ms: 1,
            max_in_flight: 5,
            acks: -1,
            compression: Compression::None,
            payload: Payload::Text,
            keys: Keys::None,
            duration_s: 60,
            warmup_s: 10,
            backlog_max_mb: BACKLOG_MAX_MB_DEFAULT,
        }
    }
}

/// The presets: OMB's Kafka workloads (`workloads/*.yaml` in the OpenMessaging Benchmark), with
/// its Kafka driver's producer settings (batch 1 MiB, linger 1 ms, acks all).
pub fn presets() -> Vec<(Workload, &'static str)> {
    let base = Workload::default();
    vec![
        (
            Workload {
                name: "1-topic-100-partitions-1kb".into(),
                partitions_per_topic: 100,
                producer_rate: 50_000,
                ..base.clone()
            },
            "OMB's simple workload: 1 topic, 100 partitions, 1 KiB, 50,000 msg/s",
        ),
        (
            Workload { name: "max-rate-1-topic-16-partitions-1kb".into(), ..base.clone() },
            "throughput: 1 topic, 16 partitions, 1 KiB, as fast as the broker goes",
        ),
        (
            Workload { name: "max-rate-1-topic-100-partitions-1kb".into(), partitions_per_topic: 100, ..base.clone() },
            "throughput: 1 topic, 100 partitions, 1 KiB, as fast as the broker goes",
        ),
        (
            Workload { name: "max-rate-1-topic-16-partitions-100b".into(), message_size: 100, ..base.clone() },
            "throughput of small messages: 1 topic, 16 partitions, 100 B",
        ),
        (
            Workload {
                name: "latency-1-topic-16-partitions-1kb-10k".into(),
                producer_rate: 10_000,
                linger_ms: 0,
                ..base.clone()
            },
            "latency: 1 topic, 16 partitions, 1 KiB, 10,000 msg/s, no linger",
        ),
        (
            Workload {
                name: "latency-1-topic-16-partitions-1kb-100k".into(),
                producer_rate: 100_000,
                linger_ms: 1,
                ..base.clone()
            },
            "latency under load: 1 topic, 16 partitions, 1 KiB, 100,000 msg/s (100 MB/s)",
        ),
        (
            Workload {
                name: "smoke".into(),
                partitions_per_topic: 4,
                producer_rate: 2_000,
                duration_s: 3,
                warmup_s: 1,
                ..base
            },
            "a few seconds at 2,000 msg/s, to check a setup",
        ),
    ]
}

pub fn preset(name: &str) -> Option<Workload> {
    presets().into_iter().map(|(w, _)| w).find(|w| w.name == name)
}

impl Workload {
    pub fn from_toml(text: &str) -> anyhow::Result<Workload> {
        let w: Workload = toml::from_str(text)?;
        w.validate()?;
        Ok(w)
    }

    /// Checks the values; the message names the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(anyhow::anyhow!("workload: {what}")) };
        check(self.topics >= 1 && self.topics <= 10_000, "topics must be 1..=10000")?;
        check((1..=10_000).contains(&self.partitions_per_topic), "partitions-per-topic must be 1..=10000")?;
        check(
            (crate::batch::PAYLOAD_HEADER_BYTES..=16 << 20).contains(&self.message_size),
            "message-size must be 24..=16777216 bytes (the first 24 carry the send time and sequence)",
        )?;
        check((1..=1024).contains(&self.producers), "producers must be 1..=1024")?;
        check(self.consumers <= 1024, "consumers must be at most 1024")?;
        check(self.batch_bytes >= self.message_size.min(1 << 20), "batch-bytes must hold a message")?;
        check(self.batch_bytes <= 64 << 20, "batch-bytes must be at most 64 MiB")?;
        check((1..=64).contains(&self.max_in_flight), "max-in-flight must be 1..=64")?;
        check((-1..=1).contains(&self.acks), "acks must be all (-1), 1 or 0")?;
        check(self.duration_s >= 1, "duration-s must be at least 1")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_toml_round_trips() {
        for (w, _) in presets() {
            w.validate().unwrap();
            let text = toml::to_string(&w).unwrap();
            assert_eq!(Workload::from_toml(&text).unwrap(), w);
        }
        let w = Workload::from_toml("partitions-per-topic = 3\nkeys = \"random\"\nacks = 1\ncompression = \"zstd\"\n")
            .unwrap();
        assert_eq!((w.partitions_per_topic, w.keys, w.acks, w.message_size), (3, Keys::Random, 1, 1024));
        assert_eq!((w.compression, w.payload), (Compression::Zstd, Payload::Text));
        assert!(Workload::from_toml("compression = \"brotli\"").is_err());
        assert!(Workload::from_toml("partitions = 3").is_err());
        assert!(Workload::from_toml("acks = 2").is_err());
    }
}
