//! Shard placement: which shard of this node owns each local replica. Node-local (another node
//! places its replicas on its own shards), recorded in `<data>/shard-placement` rather than
//! recomputed, so that it survives a change in the shard count: only replicas of shards that
//! no longer exist move. Losing the file loses nothing but balance: it is rebuilt.

use std::collections::HashMap;

use ringtail_replication::{PartitionId, ShardId, TopicId};

pub const PLACEMENT_FILE: &str = "shard-placement";
const HEADER: &str = "# ringtail shard placement v1: topic id, partition, shard";

/// What is wrong with a placement file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the shard placement file is damaged: {0}")]
pub struct PlacementDamaged(pub String);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    shards: HashMap<PartitionId, ShardId>,
}

impl Placement {
    pub fn shard(&self, id: PartitionId) -> Option<ShardId> {
        self.shards.get(&id).copied()
    }

    /// Puts a replica on a given shard (as an older release placed it).
    pub fn assign(&mut self, id: PartitionId, shard: ShardId) {
        self.shards.insert(id, shard);
    }

    /// Replicas owned by each of `shards` shards.
    pub fn load(&self, shards: usize) -> Vec<usize> {
        let mut load = vec![0; shards];
        for s in self.shards.values() {
            if s.0 < shards {
                load[s.0] += 1;
            }
        }
        load
    }

    /// Places each replica not yet placed on the least loaded shard. True if any was placed.
    pub fn place(&mut self, ids: impl IntoIterator<Item = PartitionId>, shards: usize) -> bool {
        let mut load = self.load(shards);
        let mut changed = false;
        for id in ids {
            if self.shards.contains_key(&id) {
                continue;
            }
            let (shard, _) = load.iter().enumerate().min_by_key(|&(i, l)| (*l, i)).expect("at least one shard");
            load[shard] += 1;
            self.shards.insert(id, ShardId(shard));
            changed = true;
        }
        changed
    }

    /// Forgets every replica not in `keep` and re-places those of shards that no longer exist
    /// (the broker restarted with fewer shards). True if anything changed.
    pub fn fit(&mut self, keep: &[PartitionId], shards: usize) -> bool {
        let before = self.shards.len();
        let wanted: std::collections::HashSet<&PartitionId> = keep.iter().collect();
        self.shards.retain(|id, s| wanted.contains(id) && s.0 < shards);
        let removed = self.shards.len() != before;
        self.place(keep.iter().copied(), shards) || removed
    }

    /// Forgets one replica (moved off this node). True if it was placed.
    pub fn remove(&mut self, id: PartitionId) -> bool {
        self.shards.remove(&id).is_some()
    }

    pub fn remove_topic(&mut self, topic: TopicId) {
        self.shards.retain(|id, _| id.topic != topic);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut rows: Vec<(&PartitionId, &ShardId)> = self.shards.iter().collect();
        rows.sort();
        let mut out = String::with_capacity(16 + rows.len() * 44);
        out.push_str(HEADER);
        out.push('\n');
        for (id, shard) in rows {
            out.push_str(&format!("{} {} {}\n", id.topic, id.index, shard.0));
        }
        out.into_bytes()
    }

    /// Reads the file; a damaged line is an error (the caller rebuilds the placement).
    pub fn decode(bytes: &[u8]) -> Result<Placement, PlacementDamaged> {
        let text = std::str::from_utf8(bytes).map_err(|_| PlacementDamaged("the file is not UTF-8".into()))?;
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(PlacementDamaged("its first line is not the header".into()));
        }
        let mut shards = HashMap::new();
        for line in lines {
            let fields: Vec<&str> = line.split(' ').collect();
            let parsed = match fields.as_slice() {
                [topic, index, shard] => TopicId::from_hex(topic)
                    .zip(index.parse::<i32>().ok())
                    .zip(shard.parse::<usize>().ok())
                    .map(|((topic, index), shard)| (PartitionId { topic, index }, ShardId(shard))),
                _ => None,
            };
            let (id, shard) = parsed.ok_or_else(|| PlacementDamaged(format!("the line `{line}`")))?;
            shards.insert(id, shard);
        }
        Ok(Placement { shards })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: u8, index: i32) -> PartitionId {
        PartitionId { topic: TopicId([t; 16]), index }
    }

    #[test]
    fn placement_balances_survives_fewer_shards_and_round_trips() {
        let mut p = Placement::default();
        assert!(p.place((0..5).map(|i| id(1, i)), 2));
        assert_eq!(p.load(2), vec![3, 2]);
        assert!(!p.place([id(1, 0)], 2), "placed already");
        p.place([id(2, 0)], 2);
        assert_eq!(p.shard(id(2, 0)), Some(ShardId(1)));
        let keep: Vec<PartitionId> = (0..5).map(|i| id(1, i)).collect();
        assert!(p.fit(&keep, 1));
        assert_eq!(p.load(1), vec![5]);
        assert_eq!(p.shard(id(2, 0)), None, "not in the image any more");
        assert_eq!(Placement::decode(&p.encode()).unwrap(), p);
        assert!(Placement::decode(b"garbage").is_err());
        p.remove_topic(TopicId([1; 16]));
        assert_eq!(p.load(1), vec![0]);
    }
}
