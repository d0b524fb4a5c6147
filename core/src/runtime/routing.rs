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

/// A broker as clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub node: NodeId,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// The listener clients use, by Kafka's default name.
pub const CLIENT_LISTENER: &str = "PLAINTEXT";

/// What a node knows of the cluster, as one snapshot.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub node: NodeId,
    pub cluster_id: Arc<str>,
    pub image: Arc<MetadataImage>,
    pub placement: Arc<Placement>,
    /// This node as clients reach it (its advertised listener and rack).
    pub me: Arc<BrokerEndpoint>,
    /// A cluster node's process incarnation (random per start, in its registration); `None` for a
    /// single node.
    pub incarnation: Option<[u8; 16]>,
}

impl NodeView {
    /// The brokers the metadata describes (fenced ones flagged), by node id; a node whose
    /// metadata has no registrations (a single node) describes itself.
    pub fn brokers(&self) -> Vec<BrokerEndpoint> {
        let registered = self.image.brokers();
        if registered.is_empty() {
            return vec![(*self.me).clone()];
        }
        registered
            .iter()
            .filter_map(|(node, b)| {
                let l = b.listeners.iter().find(|l| l.name == CLIENT_LISTENER).or(b.listeners.first())?;
                Some(BrokerEndpoint {
                    node: *node,
                    host: l.host.clone(),
                    port: l.port,
                    rack: b.rack.clone(),
                    fenced: b.fenced,
                })
            })
            .collect()
    }

    /// Where clients reach `node`, if the metadata says.
    pub fn endpoint(&self, node: NodeId) -> Option<BrokerEndpoint> {
        match node == self.node {
            true => Some((*self.me).clone()),
            false => self.brokers().into_iter().find(|b| b.node == node),
        }
    }

    /// The brokers that serve clients now: unfenced.
    pub fn live_brokers(&self) -> Vec<BrokerEndpoint> {
        self.brokers().into_iter().filter(|b| !b.fenced).collect()
    }
    /// Whether this process may lead the partitions the image gives it: always alone; in a
    /// cluster once its registration is applied and unfenced ([`MetadataImage::may_lead`]).
    pub fn may_lead(&self) -> bool {
        self.incarnation.is_none_or(|i| self.image.may_lead(self.node, &i))
    }

    /// The route of a partition, or `None` if the topic or partition does not exist.
    pub fn route(&self, topic: &str, index: i32) -> Option<(PartitionId, Route)> {
        let t = self.image.topic(topic)?;
        let p = t.partitions.get(usize::try_from(index).ok()?)?;
        let id = PartitionId { topic: t.id, index };
        let route = match p.leader {
            Some(leader) if leader == self.node => match self.placement.shard(id) {
                Some(shard) if self.may_lead() => Route::Local(shard),
                _ => Route::Offline,
            },
            Some(leader) => Route::Remote { leader, leader_epoch: p.leader_epoch },
            None => Route::Offline,
        };
        Some((id, route))
    }
}

impl NodeView {
    /// The shard holding this node's replica of a partition, led here or not (a debugging
    /// read), or `Offline` without one here; `None` if the partition does not exist.
    pub fn route_any_replica(&self, topic: &str, index: i32) -> Option<(PartitionId, Route)> {
        let t = self.image.topic(topic)?;
        let p = t.partitions.get(usize::try_from(index).ok()?)?;
        let id = PartitionId { topic: t.id, index };
        let route = match (p.replicas.contains(&self.node), self.placement.shard(id)) {
            (true, Some(shard)) => Route::Local(shard),
            _ => Route::Offline,
        };
        Some((id, route))
    }
}

impl NodeView {
    /// KIP-392's rack-aware replica selector, on the leader: the in-sync replica a consumer in
    /// `rack` should read `partition` from, when it is another node's (its broker in that rack,
    /// unfenced, not shutting down, the replica not damaged). `None` keeps the consumer here: this
    /// node is in its rack, or no in-sync replica is. Among several, the first in replica order.
    pub fn preferred_read_replica(&self, partition: PartitionId, rack: &str) -> Option<NodeId> {
        let p = self.image.partition(partition)?;
        let brokers = self.image.brokers();
        let in_rack = |node: &NodeId| {
            brokers.get(node).is_some_and(|b| {
                b.rack.as_deref() == Some(rack) && !b.fenced && !b.shutting_down && b.may_hold(partition)
            })
        };
        if self.me.rack.as_deref() == Some(rack) {
            return None;
        }
        p.replicas.iter().copied().find(|n| *n != self.node && p.isr.contains(n) && in_rack(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringtail_replication::metadata::{Endpoint, MetadataRecord};
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
        let me = BrokerEndpoint { node: NodeId(1), host: "h".into(), port: 1, rack: None, fenced: false };
        let view = NodeView {
            node: NodeId(1),
            cluster_id: Arc::from("c"),
            image: Arc::new(image),
            placement: Arc::new(placement),
            me: Arc::new(me.clone()),
            incarnation: None,
        };
        assert_eq!(view.brokers(), vec![me.clone()], "no registrations: this node alone");
        // Registered brokers are described from their registrations, fenced ones flagged.
        let mut image = (*view.image).clone();
        for (i, (node, fenced)) in [(1, false), (2, false), (3, true)].into_iter().enumerate() {
            let listeners = vec![
                Endpoint { name: "INTERNAL".into(), host: "10.0.0.9".into(), port: 1 },
                Endpoint { name: CLIENT_LISTENER.into(), host: format!("b{node}"), port: 9000 + node as u16 },
            ];
            let record = MetadataRecord::BrokerRegistered {
                node: NodeId(node),
                broker_epoch: 100 + i as i64,
                incarnation: [node as u8; 16],
                listeners,
                rack: Some("r".into()),
                fenced,
            };
            image.apply(100 + i as u64, &record).unwrap();
        }
        let view = NodeView { image: Arc::new(image), ..view };
        let nodes = |b: Vec<BrokerEndpoint>| b.into_iter().map(|b| (b.node.0, b.host, b.port)).collect::<Vec<_>>();
        assert_eq!(nodes(view.live_brokers()), vec![(1, "b1".into(), 9001), (2, "b2".into(), 9002)]);
        assert_eq!(view.brokers().len(), 3);
        assert!(view.endpoint(NodeId(3)).is_some_and(|b| b.fenced));
        assert_eq!(view.endpoint(NodeId(1)), Some(me), "this node as it advertises itself");
        assert_eq!(view.endpoint(NodeId(7)), None);
        let route = |i| view.route("t", i).map(|(_, r)| r);
        assert_eq!(route(0), Some(Route::Local(ShardId(0))));
        assert_eq!(route(1), Some(Route::Remote { leader: NodeId(2), leader_epoch: LeaderEpoch(3) }));
        assert_eq!(route(2), Some(Route::Offline), "no leader");
        assert_eq!(route(3), Some(Route::Offline), "led here but not placed on a shard");
        assert_eq!(route(4), None);
        assert_eq!(route(-1), None);
        assert!(view.route("other", 0).is_none());
    }

    #[test]
    fn the_rack_aware_selector_sends_a_consumer_to_an_in_sync_replica_of_its_rack() {
        let topic = TopicId([2; 16]);
        let p0 = PartitionId { topic, index: 0 };
        let mut image = MetadataImage::default();
        let mut offset = 0;
        let mut apply = |image: &mut MetadataImage, r: MetadataRecord| {
            image.apply(offset, &r).unwrap();
            offset += 1;
        };
        for (node, rack, fenced) in [(1, "a", false), (2, "b", false), (3, "c", false), (4, "d", true)] {
            apply(
                &mut image,
                MetadataRecord::BrokerRegistered {
                    node: NodeId(node),
                    broker_epoch: node as i64,
                    incarnation: [node as u8; 16],
                    listeners: vec![],
                    rack: Some(rack.into()),
                    fenced,
                },
            );
        }
        apply(&mut image, MetadataRecord::TopicCreated { topic_id: topic, name: "t".into(), configs: vec![] });
        apply(
            &mut image,
            MetadataRecord::PartitionCreated {
                partition: p0,
                replicas: vec![NodeId(1), NodeId(2), NodeId(3), NodeId(4)],
                isr: vec![NodeId(1), NodeId(2), NodeId(4)],
                leader: Some(NodeId(1)),
                leader_epoch: LeaderEpoch(0),
            },
        );
        let me = BrokerEndpoint { node: NodeId(1), host: "h".into(), port: 1, rack: Some("a".into()), fenced: false };
        let view = NodeView {
            node: NodeId(1),
            cluster_id: Arc::from("c"),
            image: Arc::new(image),
            placement: Arc::new(Placement::default()),
            me: Arc::new(me),
            incarnation: None,
        };
        assert_eq!(view.preferred_read_replica(p0, "b"), Some(NodeId(2)));
        assert_eq!(view.preferred_read_replica(p0, "a"), None, "the leader is in the consumer's rack");
        assert_eq!(view.preferred_read_replica(p0, "c"), None, "3 is not in sync");
        assert_eq!(view.preferred_read_replica(p0, "d"), None, "4's broker is fenced");
        assert_eq!(view.preferred_read_replica(p0, "z"), None, "no replica in that rack");
    }
}
