//! The controller service, on shard 0: decides metadata changes (validation and placement,
//! pure, in `ringtail_replication::metadata::controller`), makes the records durable in the
//! metadata log, then applies them. Applying is a listener over the ordered records that any
//! broker can run: it updates the image, places this node's new replicas on its shards, opens
//! or deletes their logs on the owner shards, and publishes the new view to every shard.
//!
//! This module holds the controller's state, its requests and the pure part of applying
//! (`apply_records`); `service` runs them on the shards.

pub mod service;

use std::sync::Arc;

use ringtail_replication::metadata::store::MetadataLog;
use ringtail_replication::metadata::{
    ApplyError, Change, ControllerError, MetadataImage, MetadataRecord, NewTopic, TopicImage,
};
use ringtail_replication::{NodeId, PartitionId, ShardId, TopicId};

use crate::runtime::placement::Placement;

/// The controller's state, on shard 0. Requests are serialized by `lock`.
pub struct Controller {
    pub(super) writer: Writer,
    pub(super) lock: glommio::sync::Semaphore,
}

/// Where decided records go.
pub enum Writer {
    /// A single node: its own metadata log; applied here at once.
    Local(MetadataLog),
    /// A cluster: proposed to the active controller; applied when the broker follows them.
    Cluster(std::rc::Rc<super::cluster::link::ClusterLink>),
}

impl Controller {
    pub fn new(log: MetadataLog) -> Controller {
        Controller { writer: Writer::Local(log), lock: glommio::sync::Semaphore::new(1) }
    }

    pub fn cluster(link: std::rc::Rc<super::cluster::link::ClusterLink>) -> Controller {
        Controller { writer: Writer::Cluster(link), lock: glommio::sync::Semaphore::new(1) }
    }

    /// This node's link to its cluster's controllers, if it is in a cluster.
    pub fn link(&self) -> Option<&std::rc::Rc<super::cluster::link::ClusterLink>> {
        match &self.writer {
            Writer::Cluster(link) => Some(link),
            Writer::Local(_) => None,
        }
    }
}

#[derive(Clone)]
pub enum ControllerRequest {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    CreatePartitions {
        topics: Vec<(String, i32)>,
        validate_only: bool,
    },
    /// Every partition of `topic` below `factor` replicas gets more (the outcome's
    /// `partitions` is how many were raised).
    RaiseReplicationFactor {
        topic: String,
        factor: i16,
    },
    /// AlterPartitionReassignments: each (topic, partition) to its target replicas, or `None`
    /// to cancel; the outcomes are named by topic, with the partition index in `partitions`.
    AlterReassignments {
        partitions: Vec<(String, i32, Option<Vec<NodeId>>)>,
        allow_factor_change: bool,
    },
    /// ElectLeaders: the (topic, partition)s, or `None` for every partition; the outcomes are
    /// named by topic, with the partition index in `partitions`.
    ElectLeaders {
        partitions: Option<Vec<(String, i32)>>,
        unclean: bool,
    },
    /// UnregisterBroker: one outcome, named after the broker.
    UnregisterBroker {
        node: NodeId,
    },
    /// AlterConfigs and IncrementalAlterConfigs; the outcomes are named by resource.
    AlterConfigs {
        alterations: Vec<ringtail_replication::metadata::controller::ConfigAlteration>,
        validate_only: bool,
    },
}

/// Outcome for one topic of a request.
#[derive(Debug, Clone)]
pub struct TopicOutcome {
    pub name: String,
    pub result: Result<(), ControllerError>,
    pub partitions: i32,
    pub replication_factor: i16,
    pub topic_id: TopicId,
}

pub type ControllerReply = Vec<TopicOutcome>;

fn outcome(name: String, result: Result<(), ControllerError>) -> TopicOutcome {
    TopicOutcome { name, result, partitions: -1, replication_factor: -1, topic_id: TopicId::default() }
}

/// What applying records means for this node: its new replicas by owner shard, and the topics
/// whose replicas go.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NodeEffects {
    /// (topic, owner shard, partition indexes) to open.
    pub open: Vec<(TopicId, ShardId, Vec<i32>)>,
    /// Deleted topics, as they were.
    pub delete: Vec<Arc<TopicImage>>,
    /// Replicas moved off this node by a reassignment, with the shard that owned them.
    pub remove: Vec<(PartitionId, ShardId)>,
    /// The placement changed and must be written.
    pub placement_changed: bool,
    /// Topics whose configs changed: their local replicas take the new ones.
    pub reconfigure: Vec<TopicId>,
    /// A broker config of this node changed (or a cluster-wide one): every local replica takes
    /// the new defaults.
    pub reconfigure_all: bool,
}

/// Applies records (from `first`, in order) to an image and this node's placement: no I/O.
pub fn apply_records(
    image: &mut MetadataImage,
    placement: &mut Placement,
    node: NodeId,
    shards: usize,
    first: u64,
    records: &[MetadataRecord],
) -> Result<NodeEffects, ApplyError> {
    let mut effects = NodeEffects::default();
    for (i, record) in records.iter().enumerate() {
        match image.apply(first + i as u64, record)? {
            // A replica moved off this node goes; one added here opens like a new partition's.
            Change::ReplicasChanged(id) if placement.shard(id).is_some() => {
                let replicas =
                    &image.topic_by_id(id.topic).expect("just applied").partitions[id.index as usize].replicas;
                if !replicas.contains(&node) {
                    let shard = placement.shard(id).expect("placed");
                    placement.remove(id);
                    effects.placement_changed = true;
                    effects.open.iter_mut().for_each(|(t, _, indexes)| {
                        if *t == id.topic {
                            indexes.retain(|i| *i != id.index)
                        }
                    });
                    effects.open.retain(|(_, _, indexes)| !indexes.is_empty());
                    effects.remove.push((id, shard));
                }
            }
            Change::PartitionCreated(id) | Change::ReplicasChanged(id) => {
                let replicas =
                    &image.topic_by_id(id.topic).expect("just applied").partitions[id.index as usize].replicas;
                if !replicas.contains(&node) {
                    continue;
                }
                placement.place([id], shards);
                effects.placement_changed = true;
                let shard = placement.shard(id).expect("just placed");
                match effects.open.iter_mut().find(|(t, s, _)| *t == id.topic && *s == shard) {
                    Some((_, _, indexes)) => indexes.push(id.index),
                    None => effects.open.push((id.topic, shard, vec![id.index])),
                }
            }
            Change::TopicDeleted(topic) => {
                placement.remove_topic(topic.id);
                effects.placement_changed = true;
                // Created and deleted in the same records (a broker catching up): never opened.
                effects.open.retain(|(t, _, _)| *t != topic.id);
                effects.delete.push(topic);
            }
            Change::ConfigChanged(id) => effects.reconfigure.push(id),
            Change::BrokerConfigChanged(changed) => effects.reconfigure_all |= changed.is_none_or(|n| n == node),
            // A new topic has no replicas until its partitions come. Leadership changes reach
            // the local replicas with the new view (`Shard::set_view`); broker registrations
            // change what the metadata describes, not this node's replicas.
            // Group configs are read from the view at each heartbeat.
            Change::TopicCreated(_)
            | Change::GroupConfigChanged(_)
            | Change::FeatureLevel
            | Change::ClusterCreated
            | Change::BrokerChanged(_)
            | Change::PartitionChanged(_) => {}
        }
    }
    Ok(effects)
}

/// What moving this node from image `old` to image `new` (far ahead: a controller's image)
/// means for it: replicas to open and topics to delete, like [`apply_records`] would have
/// found record by record.
pub fn diff_images(
    old: &MetadataImage,
    new: &MetadataImage,
    placement: &mut Placement,
    node: NodeId,
    shards: usize,
) -> NodeEffects {
    let mut effects = NodeEffects::default();
    for t in old.topics() {
        if new.topic_by_id(t.id).is_none() {
            placement.remove_topic(t.id);
            effects.placement_changed = true;
            effects.delete.push(t.clone());
        }
    }
    for t in new.topics() {
        let before = old.topic_by_id(t.id);
        for (i, p) in t.partitions.iter().enumerate() {
            let had = before.and_then(|b| b.partitions.get(i)).is_some_and(|b| b.replicas.contains(&node));
            let id = PartitionId { topic: t.id, index: i as i32 };
            if had && !p.replicas.contains(&node) {
                if let Some(shard) = placement.shard(id) {
                    placement.remove(id);
                    effects.placement_changed = true;
                    effects.remove.push((id, shard));
                }
                continue;
            }
            if had || !p.replicas.contains(&node) {
                continue;
            }
            placement.place([id], shards);
            effects.placement_changed = true;
            let shard = placement.shard(id).expect("just placed");
            match effects.open.iter_mut().find(|(topic, s, _)| *topic == t.id && *s == shard) {
                Some((_, _, indexes)) => indexes.push(id.index),
                None => effects.open.push((t.id, shard, vec![id.index])),
            }
        }
    }
    effects
}

/// The partitions of the image with a replica on `node`.
pub fn local_partitions(image: &MetadataImage, node: NodeId) -> Vec<PartitionId> {
    image
        .topics()
        .flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.replicas.contains(&node))
                .map(move |(i, _)| PartitionId { topic: t.id, index: i as i32 })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringtail_replication::metadata::controller::{self as decide, create_topics, ClusterView};

    fn view(nodes: &[i32]) -> ClusterView {
        ClusterView {
            nodes: nodes.iter().map(|&n| NodeId(n)).collect(),
            default_partitions: 1,
            default_replication_factor: 1,
            replicas_per_node_max: 100,
            replicas_per_node_max_source: "test".into(),
            replication_factor_max: None,
            racks: std::collections::HashMap::new(),
        }
    }

    fn topic(name: &str, partitions: i32, factor: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: factor,
            configs: Vec::new(),
            assignments: Vec::new(),
        }
    }

    #[test]
    fn the_listener_opens_local_replicas_on_the_least_loaded_shards_and_deletes_topics() {
        let mut image = MetadataImage::default();
        let mut placement = Placement::default();
        let d = create_topics(&image, &view(&[1]), &[topic("a", 3, 1), topic("b", 1, 1)], &|_| Ok(()));
        let effects = apply_records(&mut image, &mut placement, NodeId(1), 2, 0, &d.records).unwrap();
        let a = image.topic("a").unwrap().id;
        let b = image.topic("b").unwrap().id;
        assert_eq!(effects.open, vec![(a, ShardId(0), vec![0, 2]), (a, ShardId(1), vec![1]), (b, ShardId(1), vec![0])]);
        assert!(effects.placement_changed && effects.delete.is_empty());
        assert_eq!(placement.load(2), vec![2, 2]);

        let d = decide::delete_topics(&image, &["a".to_string()]);
        let next = image.applied.unwrap() + 1;
        let effects = apply_records(&mut image, &mut placement, NodeId(1), 2, next, &d.records).unwrap();
        assert_eq!(effects.delete.len(), 1);
        assert_eq!(effects.delete[0].name.as_ref(), "a");
        assert_eq!(placement.load(2), vec![0, 1]);
        assert!(image.topic("a").is_none());
    }

    #[test]
    fn a_replica_added_to_an_existing_partition_is_opened_on_its_new_node_only() {
        let mut image = MetadataImage::default();
        let mut placement = Placement::default();
        let d = create_topics(&image, &view(&[1]), &[topic("a", 2, 1)], &|_| Ok(()));
        // Node 2's view: nothing of its own yet.
        let effects = apply_records(&mut image, &mut placement, NodeId(2), 1, 0, &d.records).unwrap();
        assert!(effects.open.is_empty());
        let raised = decide::raise_replication_factor(&image, &view(&[1, 2]), "a", 2);
        let next = image.applied.unwrap() + 1;
        let effects = apply_records(&mut image, &mut placement, NodeId(2), 1, next, &raised.records).unwrap();
        let a = image.topic("a").unwrap().id;
        assert_eq!(effects.open, vec![(a, ShardId(0), vec![0, 1])]);
        // Node 1 held them from their creation: nothing to open again.
        let (mut image1, mut placement1) = (MetadataImage::default(), Placement::default());
        apply_records(&mut image1, &mut placement1, NodeId(1), 1, 0, &d.records).unwrap();
        let effects = apply_records(&mut image1, &mut placement1, NodeId(1), 1, next, &raised.records).unwrap();
        assert!(effects.open.is_empty(), "{effects:?}");
    }

    #[test]
    fn a_replica_moved_off_this_node_is_removed_by_records_and_by_a_far_ahead_image() {
        let mut image = MetadataImage::default();
        let mut placement = Placement::default();
        // Brokers 1 and 2 registered (a reassignment names registered brokers only).
        let registered: Vec<MetadataRecord> = (1..=2)
            .map(|n| MetadataRecord::BrokerRegistered {
                node: NodeId(n),
                broker_epoch: n as i64 - 1,
                incarnation: [n as u8; 16],
                listeners: Vec::new(),
                rack: None,
                fenced: false,
            })
            .collect();
        apply_records(&mut image, &mut placement, NodeId(1), 1, 0, &registered).unwrap();
        let d = create_topics(&image, &view(&[1, 2]), &[topic("a", 1, 2)], &|_| Ok(()));
        let effects = apply_records(&mut image, &mut placement, NodeId(1), 1, 2, &d.records).unwrap();
        assert_eq!(effects.open.len(), 1);
        let id = PartitionId { topic: image.topic("a").unwrap().id, index: 0 };
        let before = image.clone();
        // Moved to node 2 alone: a removal-only reassignment completes in one decision.
        let moved = decide::alter_reassignments(&image, &[("a".into(), 0, Some(vec![NodeId(2)]))], true);
        let next = image.applied.unwrap() + 1;
        let effects = apply_records(&mut image, &mut placement, NodeId(1), 1, next, &moved.records).unwrap();
        assert_eq!(effects.remove, vec![(id, ShardId(0))]);
        assert!(effects.open.is_empty() && placement.shard(id).is_none());
        // A node far behind gets the same from the image.
        let mut behind = Placement::default();
        behind.place([id], 1);
        let effects = diff_images(&before, &image, &mut behind, NodeId(1), 1);
        assert_eq!(effects.remove, vec![(id, ShardId(0))]);
    }

    #[test]
    fn a_topic_created_and_deleted_in_one_go_is_never_opened_and_a_new_one_of_its_name_is() {
        let mut image = MetadataImage::default();
        let mut placement = Placement::default();
        let mut scratch = MetadataImage::default();
        let created = create_topics(&scratch, &view(&[1]), &[topic("a", 2, 1)], &|_| Ok(()));
        let mut records = created.records.clone();
        for (i, r) in created.records.iter().enumerate() {
            scratch.apply(i as u64, r).unwrap();
        }
        records.extend(decide::delete_topics(&scratch, &["a".to_string()]).records);
        let n = records.len() as u64;
        for (i, r) in records[created.records.len()..].iter().enumerate() {
            scratch.apply(created.records.len() as u64 + i as u64, r).unwrap();
        }
        let again = create_topics(&scratch, &view(&[1]), &[topic("a", 1, 1)], &|_| Ok(()));
        records.extend(again.records.clone());
        let effects = apply_records(&mut image, &mut placement, NodeId(1), 2, 0, &records).unwrap();
        let new_id = image.topic("a").unwrap().id;
        assert_eq!(effects.open.len(), 1, "{effects:?}");
        assert_eq!(effects.open[0].0, new_id);
        assert_eq!(effects.delete.len(), 1);
        assert_ne!(effects.delete[0].id, new_id);
        assert_eq!(image.applied, Some(n + again.records.len() as u64 - 1));
    }

    #[test]
    fn an_image_far_ahead_opens_what_records_would_have_and_deletes_what_is_gone() {
        let mut old = MetadataImage::default();
        let mut placement = Placement::default();
        let d = create_topics(&old, &view(&[1, 2]), &[topic("gone", 2, 1), topic("kept", 2, 1)], &|_| Ok(()));
        apply_records(&mut old, &mut placement, NodeId(1), 1, 0, &d.records).unwrap();
        let mut new = old.clone();
        let next = new.applied.unwrap() + 1;
        let del = decide::delete_topics(&new, &["gone".to_string()]);
        new.apply(next, &del.records[0]).unwrap();
        let add = create_topics(&new, &view(&[1]), &[topic("fresh", 3, 1)], &|_| Ok(()));
        for (i, r) in add.records.iter().enumerate() {
            new.apply(next + 1 + i as u64, r).unwrap();
        }
        let effects = diff_images(&old, &new, &mut placement, NodeId(1), 1);
        assert_eq!(effects.delete.iter().map(|t| t.name.to_string()).collect::<Vec<_>>(), vec!["gone"]);
        let fresh = new.topic("fresh").unwrap().id;
        assert_eq!(effects.open, vec![(fresh, ShardId(0), vec![0, 1, 2])]);
        assert_eq!(local_partitions(&new, NodeId(1)).len(), 3 + 1);
    }

    #[test]
    fn the_listener_ignores_replicas_of_other_nodes() {
        let mut image = MetadataImage::default();
        let mut placement = Placement::default();
        let d = create_topics(&image, &view(&[1, 2, 3]), &[topic("t", 3, 1)], &|_| Ok(()));
        let effects = apply_records(&mut image, &mut placement, NodeId(2), 1, 0, &d.records).unwrap();
        assert_eq!(effects.open.iter().map(|(_, _, i)| i.len()).sum::<usize>(), 1, "one of three partitions is here");
        assert_eq!(local_partitions(&image, NodeId(2)).len(), 1);
        let bad = [MetadataRecord::TopicDeleted { topic_id: TopicId([9; 16]) }];
        assert!(apply_records(&mut image, &mut placement, NodeId(2), 1, 99, &bad).is_err());
    }
}
