//! The data directory of the release before the metadata records: topics, their ids, owner
//! shards and configs in `topics.toml`. Read once, at the first start of this release, and
//! turned into a metadata checkpoint (every topic as the records that create it, all replicas
//! on this node) and a shard placement file; the old file is then renamed
//! `topics.toml.migrated`, so that a second start never reads it again.

use std::collections::BTreeMap;
use std::path::Path;

use ringtail_replication::metadata::store;
use ringtail_replication::metadata::{MetadataImage, MetadataRecord};
use ringtail_replication::{LeaderEpoch, NodeId, PartitionId, ShardId, TopicId};
use serde::Deserialize;

use crate::runtime::placement::{Placement, PLACEMENT_FILE};

pub const LEGACY_METADATA_FILE: &str = "topics.toml";
const MIGRATED_SUFFIX: &str = ".migrated";

#[derive(Debug, Deserialize)]
pub struct LegacyMetadata {
    pub cluster_id: String,
    #[serde(default)]
    pub topics: BTreeMap<String, LegacyTopic>,
}

#[derive(Debug, Deserialize)]
pub struct LegacyTopic {
    /// 32 hex digits.
    pub id: String,
    /// Owner shard of each partition, by partition index.
    pub shards: Vec<usize>,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// The old metadata file, if the directory still has one.
pub fn read(dir: &Path) -> anyhow::Result<Option<LegacyMetadata>> {
    let path = dir.join(LEGACY_METADATA_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(|e| {
            anyhow::anyhow!("{} is damaged ({e}); restore it from a backup or fix it by hand", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// The records that create the old topics on `node`, and their shard placement.
pub fn to_records(old: &LegacyMetadata, node: NodeId) -> anyhow::Result<(Vec<MetadataRecord>, Placement)> {
    let mut records = Vec::new();
    let mut placement = Placement::default();
    for (name, topic) in &old.topics {
        let topic_id = TopicId::from_hex(&topic.id)
            .ok_or_else(|| anyhow::anyhow!("topic `{name}` has the id `{}`, not 32 hex digits", topic.id))?;
        records.push(MetadataRecord::TopicCreated {
            topic_id,
            name: name.clone(),
            configs: topic.configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        });
        for (index, &shard) in topic.shards.iter().enumerate() {
            let partition = PartitionId { topic: topic_id, index: index as i32 };
            records.push(MetadataRecord::PartitionCreated {
                partition,
                replicas: vec![node],
                isr: vec![node],
                leader: Some(node),
                leader_epoch: LeaderEpoch(0),
            });
            placement.assign(partition, ShardId(shard));
        }
    }
    Ok((records, placement))
}

/// Writes the checkpoint and the placement of the old topics, then renames the old file.
pub fn migrate(dir: &Path, node: NodeId, old: LegacyMetadata) -> anyhow::Result<()> {
    let (records, placement) = to_records(&old, node)?;
    let mut image = MetadataImage::default();
    for (offset, record) in records.iter().enumerate() {
        image.apply(offset as u64, record)?;
    }
    store::write_atomic_blocking(dir, PLACEMENT_FILE, &placement.encode())?;
    store::write_checkpoint(dir, &image)?;
    tracing::info!(
        topics = image.topic_count(),
        "migrated the topic metadata of the previous release into the metadata log"
    );
    retire(dir)
}

/// Renames the old file once its topics are in the metadata log, so no start reads it again.
pub fn retire(dir: &Path) -> anyhow::Result<()> {
    let from = dir.join(LEGACY_METADATA_FILE);
    let to = dir.join(format!("{LEGACY_METADATA_FILE}{MIGRATED_SUFFIX}"));
    std::fs::rename(&from, &to)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    tracing::info!("kept the previous release's {} as {}", from.display(), to.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_topics_become_records_with_their_ids_configs_and_shards() {
        let text = r#"
cluster_id = "0123456789abcdef0123456789abcdef"
[topics.orders]
id = "00112233445566778899aabbccddeeff"
shards = [0, 1, 0]
[topics.orders.configs]
"retention.ms" = "604800000"
"#;
        let old: LegacyMetadata = toml::from_str(text).unwrap();
        let (records, placement) = to_records(&old, NodeId(0)).unwrap();
        assert_eq!(records.len(), 4);
        let id = TopicId::from_hex("00112233445566778899aabbccddeeff").unwrap();
        assert_eq!(
            records[0],
            MetadataRecord::TopicCreated {
                topic_id: id,
                name: "orders".into(),
                configs: vec![("retention.ms".into(), "604800000".into())]
            }
        );
        assert_eq!(placement.shard(PartitionId { topic: id, index: 1 }), Some(ShardId(1)));
        assert_eq!(placement.load(2), vec![2, 1]);
        let bad: LegacyMetadata =
            toml::from_str("cluster_id = \"c\"\n[topics.t]\nid = \"zz\"\nshards = [0]\n").unwrap();
        assert!(to_records(&bad, NodeId(0)).is_err());
    }
}
