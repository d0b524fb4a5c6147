//! Cluster metadata of a single node: the cluster id and the topics with their partitions'
//! owner shards and configs. Owned and changed by shard 0; every shard reads an immutable
//! snapshot (`Arc<Metadata>`) that shard 0 broadcasts after each change.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use serde::{Deserialize, Serialize};

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Partitions per topic.
pub const PARTITIONS_MAX: i32 = 10_000;
pub const METADATA_FILE: &str = "topics.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Metadata {
    pub cluster_id: String,
    pub topics: BTreeMap<String, Topic>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Topic {
    /// 32 hex digits.
    pub id: String,
    /// Owner shard of each partition, by partition index. Recorded, not recomputed, so that
    /// placement survives a change in the shard count (partitions of missing shards are
    /// re-placed at start-up).
    pub shards: Vec<usize>,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    pub fn id_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = self.id.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0);
        }
        out
    }
}

/// 128 random bits as 32 hex digits.
pub fn random_id() -> String {
    let mut out = String::with_capacity(32);
    for _ in 0..2 {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Checks a topic name against Kafka's rules; the message says what to change.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!("topic name is {} bytes long; the limit is {TOPIC_NAME_BYTES_MAX}", name.len()));
    }
    if name == "." || name == ".." {
        return Err(format!("topic name `{name}` is reserved"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("topic name `{name}` contains {c:?}; use only [a-zA-Z0-9._-]"));
    }
    Ok(())
}

impl Metadata {
    /// Partitions owned by each of `shards` shards.
    pub fn load_per_shard(&self, shards: usize) -> Vec<usize> {
        let mut load = vec![0; shards];
        for t in self.topics.values() {
            for &s in &t.shards {
                if s < shards {
                    load[s] += 1;
                }
            }
        }
        load
    }

    /// Picks owner shards for `count` new partitions: each goes to the least loaded shard.
    pub fn place(&self, shards: usize, count: usize) -> Vec<usize> {
        let mut load = self.load_per_shard(shards);
        (0..count)
            .map(|_| {
                let (shard, _) = load.iter().enumerate().min_by_key(|&(i, l)| (*l, i)).expect("at least one shard");
                load[shard] += 1;
                shard
            })
            .collect()
    }

    /// Re-places partitions whose shard no longer exists (the broker restarted with fewer shards).
    pub fn fit_to_shards(&mut self, shards: usize) -> bool {
        let mut changed = false;
        let names: Vec<String> = self.topics.keys().cloned().collect();
        for name in names {
            let orphans: Vec<usize> =
                self.topics[&name].shards.iter().enumerate().filter(|(_, &s)| s >= shards).map(|(i, _)| i).collect();
            for i in orphans {
                let s = self.place(shards, 1)[0];
                if let Some(t) = self.topics.get_mut(&name) {
                    t.shards[i] = s;
                }
                changed = true;
            }
        }
        changed
    }

    pub fn encode(&self) -> Vec<u8> {
        toml::to_string(self).expect("metadata always serializes").into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Metadata, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        for ok in ["a", "topic-1", "x.y_z", &"a".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "ü", &"a".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placement_balances_and_survives_fewer_shards() {
        let mut m = Metadata::default();
        let shards = m.place(2, 5);
        assert_eq!(shards, vec![0, 1, 0, 1, 0]);
        m.topics.insert("t".into(), Topic { id: random_id(), shards, configs: BTreeMap::new() });
        assert_eq!(m.place(2, 1), vec![1]);
        assert!(m.fit_to_shards(1));
        assert!(m.topics["t"].shards.iter().all(|&s| s == 0));
        let again = Metadata::decode(&m.encode()).unwrap();
        assert_eq!(again, m);
        assert_eq!(random_id().len(), 32);
        assert_ne!(random_id(), random_id());
    }
}
