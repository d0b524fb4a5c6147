//! Identifiers of the cluster's parts as newtypes, so that a node id is never passed where a
//! shard index is meant, and a partition is a small `Copy` key (topic id and index) rather
//! than a `(String, i32)` allocated per lookup.

use std::fmt;

/// A broker of the cluster (Kafka's `node.id` / `broker.id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub i32);

/// A shard of one node: an index into that node's executors. Never leaves the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub usize);

/// A partition leader's epoch: bumped by the controller at every leader change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LeaderEpoch(pub i32);

/// A topic's id (Kafka's 128-bit topic UUID), stable for the topic's life; a topic deleted
/// and created again under the same name gets a new one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TopicId(pub [u8; 16]);

/// One partition of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId {
    pub topic: TopicId,
    pub index: i32,
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TopicId {
    /// 32 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 32 hex digits; anything else is `None`.
    pub fn from_hex(text: &str) -> Option<TopicId> {
        if text.len() != 32 || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(TopicId(out))
    }

    /// A fresh random id (Kafka never hands out the all-zero id, which means "no id").
    pub fn random() -> TopicId {
        loop {
            let id = TopicId(random_bytes());
            if id != TopicId::default() {
                return id;
            }
        }
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({})", self.to_hex())
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.topic, self.index)
    }
}

/// 128 random bits as 32 hex digits.
pub fn random_hex() -> String {
    TopicId(random_bytes()).to_hex()
}

/// 128 random bits from the standard library's randomly keyed hasher and the clock (no
/// cryptographic strength is needed: ids only have to differ).
pub fn random_bytes() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 16];
    for half in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_round_trip_through_hex() {
        let id = TopicId::random();
        assert_eq!(TopicId::from_hex(&id.to_hex()), Some(id));
        assert_ne!(TopicId::random(), id);
        for bad in ["", "xyz", &"g".repeat(32), &"a".repeat(31), &"é".repeat(16)] {
            assert_eq!(TopicId::from_hex(bad), None, "{bad}");
        }
    }
}
