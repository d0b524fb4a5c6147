//! Routing: where a partition is served from. A node's view of the cluster (the metadata
//! image and this node's shard placement) says whether a partition is local on shard S,
//! led by another node N at epoch E, or offline. Published to every shard as one immutable
//! snapshot after each metadata change.

use std::sync::Arc;

use ringtail_replication::metadata::MetadataImage;
use ringtail_replication::{LeaderEpoch, NodeId, PartitionId, ShardId};

use super::placement::Placement;

/// Where a partition is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// This node leads it; shard S owns the replica.
    Local(ShardId),
    /// Another node leads it.
    Remote { leader: NodeId, leader_epoch: LeaderEpoch },
    /// No leader, or this node leads it but holds no replica of it.
    Offline,
}

/// What a node knows of the cluster, as one snapshot.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub node: NodeId,
    pub cluster_id: Arc<str>,
    pub image: Arc<MetadataImage>,
    pub placement: Arc<Placement>,
}

impl NodeView {
    /// The route of a partition, or `None` if the topic or partition does not exist.
    pub fn route(&self, topic: &str, index: i32) -> Option<(PartitionId, Route)> {
        let t = self.image.topic(topic)?;
        let p = t.partitions.get(usize::try_from(index).ok()?)?;
        let id = PartitionId { topic: t.id, index };
        let route = match p.leader {
            Some(leader) if leader == self.node => match self.placement.shard(id) {
                Some(shard) => Route::Local(shard),
                None => Route::Offline,
            },
            Some(leader) => Route::Remote { leader, leader_epoch: p.leader_epoch },
            None => Route::Offline,
        };
        Some((id, route))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringtail_replication::metadata::MetadataRecord;
    use ringtail_replication::TopicId;

    #[test]
    fn routes_say_local_remote_or_offline() {
        let topic = TopicId([1; 16]);
        let mut image = MetadataImage::default();
        image
            .apply(0, &MetadataRecord::TopicCreated { topic_id: topic, name: "t".into(), configs: Vec::new() })
            .unwrap();
        for (index, leader) in [Some(1), Some(2), None, Some(1)].into_iter().enumerate() {
            let record = MetadataRecord::PartitionCreated {
                partition: PartitionId { topic, index: index as i32 },
                replicas: vec![NodeId(1), NodeId(2)],
                isr: vec![NodeId(1), NodeId(2)],
                leader: leader.map(NodeId),
                leader_epoch: LeaderEpoch(3),
            };
            image.apply(index as u64 + 1, &record).unwrap();
        }
        let mut placement = Placement::default();
        placement.place([PartitionId { topic, index: 0 }], 2);
        let view = NodeView {
            node: NodeId(1),
            cluster_id: Arc::from("c"),
            image: Arc::new(image),
            placement: Arc::new(placement),
        };
        let route = |i| view.route("t", i).map(|(_, r)| r);
        assert_eq!(route(0), Some(Route::Local(ShardId(0))));
        assert_eq!(route(1), Some(Route::Remote { leader: NodeId(2), leader_epoch: LeaderEpoch(3) }));
        assert_eq!(route(2), Some(Route::Offline), "no leader");
        assert_eq!(route(3), Some(Route::Offline), "led here but not placed on a shard");
        assert_eq!(route(4), None);
        assert_eq!(route(-1), None);
        assert!(view.route("other", 0).is_none());
    }
}
