//! The metadata image: the cluster's topics, partitions and configs as the records applied
//! so far made them. Every broker holds one, built by applying the same ordered records, and
//! every shard reads an immutable snapshot of it (`Arc<MetadataImage>`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::record::{Endpoint, MetadataRecord};
use crate::ids::{LeaderEpoch, NodeId, PartitionId, TopicId};

/// One partition as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    /// Nodes holding a replica, the preferred leader first.
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub leader: Option<NodeId>,
    pub leader_epoch: LeaderEpoch,
    /// Bumped by every change of the partition's leader, ISR or replicas (Kafka's partition epoch).
    pub partition_epoch: i32,
    /// While a reassignment moves the partition (Kafka's adding and removing replicas): the
    /// replicas being added, and those to be removed once the added ones are in sync; both
    /// among `replicas`, and empty otherwise.
    pub adding: Vec<NodeId>,
    pub removing: Vec<NodeId>,
}

impl PartitionImage {
    /// The state as node `me` acts on it: without the leadership the image gives it when it may
    /// not lead ([`MetadataImage::may_lead`]).
    pub fn as_acted_on(&self, me: NodeId, may_lead: bool) -> PartitionImage {
        let mut p = self.clone();
        if p.leader == Some(me) && !may_lead {
            p.leader = None;
        }
        p
    }
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    /// The offset of its registration record: a request carrying another is stale.
    pub epoch: i64,
    pub incarnation: [u8; 16],
    pub listeners: Vec<Endpoint>,
    pub rack: Option<String>,
    /// A fenced broker leads nothing and is offered no new replicas.
    pub fenced: bool,
    /// This registration's process asked for a controlled shutdown: fenced for good.
    pub shutting_down: bool,
    /// Its replicas whose storage failed, as it last reported them: never elected, never
    /// joining an ISR, until reported rebuilt.
    pub offline_replicas: BTreeSet<PartitionId>,
}

impl BrokerImage {
    /// Whether this broker's replica of `partition` may lead or be in sync: the broker is
    /// unfenced and the replica not damaged.
    pub fn may_hold(&self, partition: PartitionId) -> bool {
        !self.fenced && !self.offline_replicas.contains(&partition)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub id: TopicId,
    pub name: Arc<str>,
    /// By partition index.
    pub partitions: Vec<PartitionImage>,
    /// Topic-level overrides of the broker defaults.
    pub configs: BTreeMap<String, String>,
}

/// The cluster's metadata after the records up to `applied` (none: `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Offset of the last record applied.
    pub applied: Option<u64>,
    topics: BTreeMap<Arc<str>, Arc<TopicImage>>,
    names: HashMap<TopicId, Arc<str>>,
    /// Dynamic broker configs: per node, and cluster-wide under `None`.
    broker_configs: BTreeMap<Option<NodeId>, BTreeMap<String, String>>,
    /// Consumer groups' configs, by group id.
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Finalized feature levels (KIP-584), by feature name.
    features: BTreeMap<String, i16>,
    /// Registered brokers, by node.
    brokers: BTreeMap<NodeId, BrokerImage>,
    /// The cluster's id, once a quorum recorded it (a single node keeps its id in `meta.properties`).
    cluster_id: Option<Arc<str>>,
    /// Producer ids below this are reserved (a cluster's brokers take blocks from here).
    producer_ids_end: i64,
}

/// What a record changed, for listeners that act on it (open or delete logs, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    TopicCreated(TopicId),
    PartitionCreated(PartitionId),
    ConfigChanged(TopicId),
    /// The topic as it was, with its partitions.
    TopicDeleted(Arc<TopicImage>),
    /// A dynamic config of this node (`Some`) or of every node (`None`).
    BrokerConfigChanged(Option<NodeId>),
    /// A consumer group's config.
    GroupConfigChanged(String),
    FeatureLevel,
    /// The quorum recorded the cluster's id, or reserved producer ids: nothing a broker acts on.
    ClusterCreated,
    /// A broker registered, was fenced or unfenced, or left.
    BrokerChanged(NodeId),
    /// A partition's leader, ISR or epochs changed.
    PartitionChanged(PartitionId),
    /// A partition's replica set changed.
    ReplicasChanged(PartitionId),
}

/// A record that does not fit the image: the record stream is damaged or out of order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata record {offset} does not apply: {reason}")]
pub struct ApplyError {
    pub offset: u64,
    pub reason: String,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<TopicImage>> {
        self.names.get(&id).and_then(|n| self.topics.get(n))
    }

    /// One partition's state, if its topic and index exist.
    pub fn partition(&self, id: PartitionId) -> Option<&PartitionImage> {
        self.topic_by_id(id.topic).and_then(|t| usize::try_from(id.index).ok().and_then(|i| t.partitions.get(i)))
    }

    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topics.values()
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Partitions with a replica on each node.
    pub fn replicas_per_node(&self) -> HashMap<NodeId, usize> {
        let mut load = HashMap::new();
        for p in self.topics.values().flat_map(|t| &t.partitions) {
            for n in &p.replicas {
                *load.entry(*n).or_insert(0) += 1;
            }
        }
        load
    }

    /// Applies the record at `offset` (offsets only go up), returning what changed. A record
    /// that does not fit leaves the image as it was.
    pub fn apply(&mut self, offset: u64, record: &MetadataRecord) -> Result<Change, ApplyError> {
        let fail = |reason: String| ApplyError { offset, reason };
        if self.applied.is_some_and(|a| offset <= a) {
            return Err(fail(format!("offsets go up; {} was applied already", self.applied.unwrap_or(0))));
        }
        let change = match record {
            MetadataRecord::TopicCreated { topic_id, name, configs } => {
                if self.topics.contains_key(name.as_str()) || self.names.contains_key(topic_id) {
                    return Err(fail(format!("topic `{name}` ({topic_id}) exists already")));
                }
                let name: Arc<str> = Arc::from(name.as_str());
                let topic = TopicImage {
                    id: *topic_id,
                    name: name.clone(),
                    partitions: Vec::new(),
                    configs: configs.iter().cloned().collect(),
                };
                self.names.insert(*topic_id, name.clone());
                self.topics.insert(name, Arc::new(topic));
                Change::TopicCreated(*topic_id)
            }
            MetadataRecord::PartitionCreated { partition, replicas, isr, leader, leader_epoch } => {
                let topic =
                    self.topic_mut(partition.topic).ok_or_else(|| fail(format!("no topic {}", partition.topic)))?;
                if partition.index != topic.partitions.len() as i32 {
                    return Err(fail(format!(
                        "partition {} of `{}` comes after {} partitions",
                        partition.index,
                        topic.name,
                        topic.partitions.len()
                    )));
                }
                topic.partitions.push(PartitionImage {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: 0,
                    adding: Vec::new(),
                    removing: Vec::new(),
                });
                Change::PartitionCreated(*partition)
            }
            MetadataRecord::ConfigChanged { topic_id, name, value } => {
                let topic = self.topic_mut(*topic_id).ok_or_else(|| fail(format!("no topic {topic_id}")))?;
                match value {
                    Some(v) => topic.configs.insert(name.clone(), v.clone()),
                    None => topic.configs.remove(name),
                };
                Change::ConfigChanged(*topic_id)
            }
            MetadataRecord::TopicDeleted { topic_id } => {
                let name = self.names.remove(topic_id).ok_or_else(|| fail(format!("no topic {topic_id}")))?;
                let topic = self.topics.remove(&name).expect("names and topics agree");
                Change::TopicDeleted(topic)
            }
            MetadataRecord::BrokerConfigChanged { node, name, value } => {
                let configs = self.broker_configs.entry(*node).or_default();
                match value {
                    Some(v) => configs.insert(name.clone(), v.clone()),
                    None => configs.remove(name),
                };
                if configs.is_empty() {
                    self.broker_configs.remove(node);
                }
                Change::BrokerConfigChanged(*node)
            }
            MetadataRecord::GroupConfigChanged { group, name, value } => {
                let configs = self.group_configs.entry(group.clone()).or_default();
                match value {
                    Some(v) => configs.insert(name.clone(), v.clone()),
                    None => configs.remove(name),
                };
                if configs.is_empty() {
                    self.group_configs.remove(group);
                }
                Change::GroupConfigChanged(group.clone())
            }
            MetadataRecord::ClusterCreated { cluster_id } => {
                if let Some(old) = &self.cluster_id {
                    return Err(fail(format!("the cluster id is {old} already; a record sets it to {cluster_id}")));
                }
                self.cluster_id = Some(Arc::from(cluster_id.as_str()));
                Change::ClusterCreated
            }
            MetadataRecord::ProducerIdsReserved { node, end } => {
                if *end <= self.producer_ids_end {
                    return Err(fail(format!(
                        "producer ids up to {end} for broker {node}, but ids up to {} are reserved already",
                        self.producer_ids_end
                    )));
                }
                self.producer_ids_end = *end;
                Change::ClusterCreated
            }
            MetadataRecord::FeatureLevel { name, level } => {
                if *level < 0 {
                    return Err(fail(format!("feature `{name}` at level {level}")));
                }
                if *level == 0 {
                    self.features.remove(name);
                } else {
                    self.features.insert(name.clone(), *level);
                }
                Change::FeatureLevel
            }
            MetadataRecord::BrokerRegistered { node, broker_epoch, incarnation, listeners, rack, fenced } => {
                if let Some(old) = self.brokers.get(node) {
                    if *broker_epoch <= old.epoch {
                        return Err(fail(format!(
                            "broker {node} registers at epoch {broker_epoch}, not above its epoch {}",
                            old.epoch
                        )));
                    }
                }
                let broker = BrokerImage {
                    epoch: *broker_epoch,
                    incarnation: *incarnation,
                    listeners: listeners.clone(),
                    rack: rack.clone(),
                    fenced: *fenced,
                    shutting_down: false,
                    offline_replicas: BTreeSet::new(),
                };
                self.brokers.insert(*node, broker);
                Change::BrokerChanged(*node)
            }
            MetadataRecord::BrokerFenced { node, broker_epoch }
            | MetadataRecord::BrokerUnfenced { node, broker_epoch }
            | MetadataRecord::BrokerUnregistered { node, broker_epoch }
            | MetadataRecord::BrokerShuttingDown { node, broker_epoch } => {
                let broker = self.brokers.get_mut(node).ok_or_else(|| fail(format!("no broker {node}")))?;
                if broker.epoch != *broker_epoch {
                    return Err(fail(format!(
                        "broker {node} has epoch {}, the record names {broker_epoch}",
                        broker.epoch
                    )));
                }
                match record {
                    MetadataRecord::BrokerFenced { .. } => broker.fenced = true,
                    MetadataRecord::BrokerUnfenced { .. } if broker.shutting_down => {
                        return Err(fail(format!("broker {node} is shutting down: it is not unfenced again")));
                    }
                    MetadataRecord::BrokerUnfenced { .. } => broker.fenced = false,
                    MetadataRecord::BrokerShuttingDown { .. } => broker.shutting_down = true,
                    _ => {
                        self.brokers.remove(node);
                    }
                }
                Change::BrokerChanged(*node)
            }
            MetadataRecord::ReplicasOffline { node, broker_epoch, partitions } => {
                let broker = self.brokers.get_mut(node).ok_or_else(|| fail(format!("no broker {node}")))?;
                if broker.epoch != *broker_epoch {
                    return Err(fail(format!(
                        "broker {node} has epoch {}, the record names {broker_epoch}",
                        broker.epoch
                    )));
                }
                broker.offline_replicas = partitions.iter().copied().collect();
                Change::BrokerChanged(*node)
            }
            MetadataRecord::PartitionReplicasChanged { partition, replicas, adding, removing, partition_epoch } => {
                let p = self.partition_to_change(*partition, *partition_epoch).map_err(fail)?;
                let mut sorted = replicas.clone();
                sorted.sort_unstable();
                if replicas.is_empty() || sorted.windows(2).any(|w| w[0] == w[1]) {
                    return Err(fail(format!("partition {partition}: replicas {replicas:?} (empty, or a node twice)")));
                }
                if let Some(n) = p.isr.iter().chain(p.leader.iter()).find(|n| !replicas.contains(n)) {
                    return Err(fail(format!("partition {partition}: in-sync node {n} would hold no replica")));
                }
                let stray = adding.iter().chain(removing).find(|n| !replicas.contains(n));
                if stray.is_some() || adding.iter().any(|n| removing.contains(n)) {
                    return Err(fail(format!(
                        "partition {partition}: adding {adding:?} and removing {removing:?} must be distinct replicas"
                    )));
                }
                p.replicas = replicas.clone();
                p.adding = adding.clone();
                p.removing = removing.clone();
                p.partition_epoch = *partition_epoch;
                Change::ReplicasChanged(*partition)
            }
            MetadataRecord::PartitionChanged { partition, isr, leader, leader_epoch, partition_epoch } => {
                let p = self.partition_to_change(*partition, *partition_epoch).map_err(fail)?;
                let epoch_ok = match *leader == p.leader {
                    true => *leader_epoch >= p.leader_epoch,
                    false => *leader_epoch > p.leader_epoch,
                };
                if !epoch_ok {
                    return Err(fail(format!(
                        "partition {partition}: leader epoch {} after {} (a new leader needs a higher one)",
                        leader_epoch.0, p.leader_epoch.0
                    )));
                }
                if let Some(n) = isr.iter().find(|n| !p.replicas.contains(n)) {
                    return Err(fail(format!("partition {partition}: in-sync node {n} holds no replica")));
                }
                if leader.is_some_and(|l| !isr.contains(&l)) {
                    return Err(fail(format!("partition {partition}: the leader is not in sync")));
                }
                p.isr = isr.clone();
                p.leader = *leader;
                p.leader_epoch = *leader_epoch;
                p.partition_epoch = *partition_epoch;
                Change::PartitionChanged(*partition)
            }
        };
        self.applied = Some(offset);
        Ok(change)
    }

    /// The dynamic broker configs of `node`, or the cluster-wide ones for `None`.
    pub fn broker_configs(&self, node: Option<NodeId>) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(&node)
    }

    /// A consumer group's configs, if any are set.
    pub fn group_configs(&self, group: &str) -> Option<&BTreeMap<String, String>> {
        self.group_configs.get(group)
    }

    /// How many groups have configs set.
    pub fn groups_with_configs(&self) -> usize {
        self.group_configs.len()
    }

    /// Whether the process of `node` with `incarnation` may act as leader: the image holds its
    /// registration, unfenced. A restarted broker's copy still names it leader of what its old
    /// process led; until its new registration is applied (which moves that leadership away)
    /// it leads nothing, or it could serve as leader a log that lost unsynced writes to a crash.
    pub fn may_lead(&self, node: NodeId, incarnation: &[u8; 16]) -> bool {
        self.brokers.get(&node).is_some_and(|b| b.incarnation == *incarnation && !b.fenced)
    }

    /// Registered brokers, by node.
    pub fn brokers(&self) -> &BTreeMap<NodeId, BrokerImage> {
        &self.brokers
    }

    /// Finalized feature levels, by name; a feature not listed is at level 0.
    pub fn features(&self) -> &BTreeMap<String, i16> {
        &self.features
    }

    fn topic_mut(&mut self, id: TopicId) -> Option<&mut TopicImage> {
        let name = self.names.get(&id)?;
        self.topics.get_mut(name).map(Arc::make_mut)
    }

    /// The partition a change record names, if it exists and `partition_epoch` is above its own
    /// (every change raises it); else why not.
    fn partition_to_change(
        &mut self,
        partition: PartitionId,
        partition_epoch: i32,
    ) -> Result<&mut PartitionImage, String> {
        let topic = self.topic_mut(partition.topic).ok_or_else(|| format!("no topic {}", partition.topic))?;
        let p = usize::try_from(partition.index)
            .ok()
            .and_then(|i| topic.partitions.get_mut(i))
            .ok_or_else(|| format!("no partition {partition}"))?;
        if partition_epoch <= p.partition_epoch {
            return Err(format!("partition {partition} epoch {partition_epoch} is not above {}", p.partition_epoch));
        }
        Ok(p)
    }

    /// Producer ids below this are reserved.
    pub fn producer_ids_end(&self) -> i64 {
        self.producer_ids_end
    }

    /// The cluster id a quorum recorded.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// The records that rebuild this image from nothing (a checkpoint's contents).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out: Vec<MetadataRecord> =
            self.cluster_id.iter().map(|id| MetadataRecord::ClusterCreated { cluster_id: id.to_string() }).collect();
        out.extend(
            self.features
                .iter()
                .map(|(name, level)| MetadataRecord::FeatureLevel { name: name.clone(), level: *level }),
        );
        if self.producer_ids_end > 0 {
            out.push(MetadataRecord::ProducerIdsReserved { node: NodeId(-1), end: self.producer_ids_end });
        }
        for (node, configs) in &self.broker_configs {
            out.extend(configs.iter().map(|(name, value)| MetadataRecord::BrokerConfigChanged {
                node: *node,
                name: name.clone(),
                value: Some(value.clone()),
            }));
        }
        for (group, configs) in &self.group_configs {
            out.extend(configs.iter().map(|(name, value)| MetadataRecord::GroupConfigChanged {
                group: group.clone(),
                name: name.clone(),
                value: Some(value.clone()),
            }));
        }
        for (node, b) in &self.brokers {
            out.push(MetadataRecord::BrokerRegistered {
                node: *node,
                broker_epoch: b.epoch,
                incarnation: b.incarnation,
                listeners: b.listeners.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
            });
            if b.shutting_down {
                out.push(MetadataRecord::BrokerShuttingDown { node: *node, broker_epoch: b.epoch });
            }
            if !b.offline_replicas.is_empty() {
                out.push(MetadataRecord::ReplicasOffline {
                    node: *node,
                    broker_epoch: b.epoch,
                    partitions: b.offline_replicas.iter().copied().collect(),
                });
            }
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::TopicCreated {
                topic_id: t.id,
                name: t.name.to_string(),
                configs: t.configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            });
            for (index, p) in t.partitions.iter().enumerate() {
                out.push(MetadataRecord::PartitionCreated {
                    partition: PartitionId { topic: t.id, index: index as i32 },
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                });
                // A partition being reassigned names its adding and removing replicas (its
                // leader and ISR are in its `PartitionCreated`).
                if !p.adding.is_empty() || !p.removing.is_empty() {
                    out.push(MetadataRecord::PartitionReplicasChanged {
                        partition: PartitionId { topic: t.id, index: index as i32 },
                        replicas: p.replicas.clone(),
                        adding: p.adding.clone(),
                        removing: p.removing.clone(),
                        partition_epoch: p.partition_epoch,
                    });
                } else if p.partition_epoch > 0 {
                    out.push(MetadataRecord::PartitionChanged {
                        partition: PartitionId { topic: t.id, index: index as i32 },
                        isr: p.isr.clone(),
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        partition_epoch: p.partition_epoch,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(id: u8, name: &str) -> MetadataRecord {
        MetadataRecord::TopicCreated { topic_id: TopicId([id; 16]), name: name.into(), configs: Vec::new() }
    }

    fn partition(id: u8, index: i32) -> MetadataRecord {
        MetadataRecord::PartitionCreated {
            partition: PartitionId { topic: TopicId([id; 16]), index },
            replicas: vec![NodeId(1)],
            isr: vec![NodeId(1)],
            leader: Some(NodeId(1)),
            leader_epoch: LeaderEpoch(0),
        }
    }

    /// Applies `records` from offset 0 and returns the image, or the first error.
    fn replay(records: &[MetadataRecord]) -> Result<MetadataImage, ApplyError> {
        let mut image = MetadataImage::default();
        for (offset, r) in records.iter().enumerate() {
            image.apply(offset as u64, r)?;
        }
        Ok(image)
    }

    #[test]
    fn each_record_kind_changes_the_image() {
        let mut image = replay(&[created(1, "a"), partition(1, 0), partition(1, 1)]).unwrap();
        let a = image.topic("a").unwrap();
        assert_eq!(a.partitions.len(), 2);
        assert_eq!(image.topic_by_id(TopicId([1; 16])).unwrap().name.as_ref(), "a");
        assert_eq!(image.replicas_per_node()[&NodeId(1)], 2);

        let set = MetadataRecord::ConfigChanged {
            topic_id: TopicId([1; 16]),
            name: "retention.ms".into(),
            value: Some("5".into()),
        };
        assert_eq!(image.apply(3, &set), Ok(Change::ConfigChanged(TopicId([1; 16]))));
        assert_eq!(image.topic("a").unwrap().configs["retention.ms"], "5");
        let unset =
            MetadataRecord::ConfigChanged { topic_id: TopicId([1; 16]), name: "retention.ms".into(), value: None };
        image.apply(4, &unset).unwrap();
        assert!(image.topic("a").unwrap().configs.is_empty());

        let Ok(Change::TopicDeleted(gone)) =
            image.apply(5, &MetadataRecord::TopicDeleted { topic_id: TopicId([1; 16]) })
        else {
            panic!("delete did not apply")
        };
        assert_eq!(gone.partitions.len(), 2);
        assert!(image.topic("a").is_none() && image.topic_by_id(TopicId([1; 16])).is_none());
        assert_eq!(image.applied, Some(5));
    }

    #[test]
    fn records_that_do_not_fit_are_refused_and_change_nothing() {
        for bad in [
            vec![partition(1, 0)],
            vec![created(1, "a"), partition(1, 1)],
            vec![created(1, "a"), created(1, "b")],
            vec![created(1, "a"), created(2, "a")],
            vec![MetadataRecord::TopicDeleted { topic_id: TopicId([1; 16]) }],
        ] {
            let good = replay(&bad[..bad.len() - 1]).unwrap();
            let mut image = good.clone();
            assert!(image.apply(bad.len() as u64, bad.last().unwrap()).is_err(), "{bad:?}");
            assert_eq!(image, good);
        }
        let mut image = replay(&[created(1, "a")]).unwrap();
        assert!(image.apply(0, &created(2, "b")).is_err(), "an offset applied twice");
    }

    #[test]
    fn broker_configs_and_features_apply() {
        let set = |node: Option<i32>, value: Option<&str>| MetadataRecord::BrokerConfigChanged {
            node: node.map(NodeId),
            name: "log.retention.ms".into(),
            value: value.map(String::from),
        };
        let mut image = replay(&[set(None, Some("100")), set(Some(2), Some("200"))]).unwrap();
        assert_eq!(image.broker_configs(None).unwrap()["log.retention.ms"], "100");
        assert_eq!(image.broker_configs(Some(NodeId(2))).unwrap()["log.retention.ms"], "200");
        assert_eq!(image.apply(2, &set(Some(2), None)), Ok(Change::BrokerConfigChanged(Some(NodeId(2)))));
        assert!(image.broker_configs(Some(NodeId(2))).is_none());
        let level = |level| MetadataRecord::FeatureLevel { name: "metadata.version".into(), level };
        image.apply(3, &level(27)).unwrap();
        assert_eq!(image.features()["metadata.version"], 27);
        assert!(image.apply(4, &level(-1)).is_err());
        image.apply(5, &level(0)).unwrap();
        assert!(image.features().is_empty());
    }

    #[test]
    fn an_image_rebuilds_from_its_records() {
        let set =
            MetadataRecord::BrokerConfigChanged { node: None, name: "num.partitions".into(), value: Some("3".into()) };
        let level = MetadataRecord::FeatureLevel { name: "metadata.version".into(), level: 27 };
        // Partition a-1 is being reassigned from node 1 to node 2; b-0 was raised to two replicas.
        let changed = |id: u8, index: i32, replicas: &[i32], adding: &[i32], removing: &[i32], epoch: i32| {
            let nodes = |ns: &[i32]| ns.iter().map(|n| NodeId(*n)).collect::<Vec<_>>();
            MetadataRecord::PartitionReplicasChanged {
                partition: PartitionId { topic: TopicId([id; 16]), index },
                replicas: nodes(replicas),
                adding: nodes(adding),
                removing: nodes(removing),
                partition_epoch: epoch,
            }
        };
        let image = replay(&[
            created(1, "a"),
            partition(1, 0),
            created(2, "b"),
            partition(2, 0),
            partition(1, 1),
            set,
            level,
            changed(1, 1, &[2, 1], &[2], &[1], 1),
            changed(2, 0, &[1, 3], &[], &[], 1),
        ])
        .unwrap();
        assert_eq!(image.topic("a").unwrap().partitions[1].adding, vec![NodeId(2)]);
        // Replicas that would leave out the ISR, or adding and removing overlapping, do not apply.
        let mut bad = image.clone();
        assert!(bad.apply(99, &changed(1, 0, &[2], &[], &[], 1)).is_err());
        assert!(bad.apply(99, &changed(1, 0, &[1, 2], &[2], &[2], 1)).is_err());
        let mut again = replay(&image.to_records()).unwrap();
        again.applied = image.applied;
        assert_eq!(again, image);
    }
}
