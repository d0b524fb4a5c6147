//! Metadata records: the changes a controller decides and every broker applies, in order
//! (KRaft's TopicRecord, PartitionRecord, ConfigRecord, RemoveTopicRecord and
//! FeatureLevelRecord). Their byte
//! layout is in `log/FORMAT.md` ("Cluster metadata").

use crate::ids::{LeaderEpoch, NodeId, PartitionId, TopicId};
use crate::limits::{
    CONFIGS_PER_RECORD_MAX, LISTENERS_PER_BROKER_MAX, NODES_PER_RECORD_LIST_MAX, OFFLINE_REPLICAS_PER_BROKER_MAX,
    RECORD_BYTES_MAX,
};

/// Where a broker accepts clients: a listener's name, host and port (KRaft's BrokerEndpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A topic exists from here on, with these configs (its partitions follow as
    /// `PartitionCreated` records).
    TopicCreated { topic_id: TopicId, name: String, configs: Vec<(String, String)> },
    /// A partition of an existing topic (at creation, or added later), with the nodes
    /// holding its replicas and its first leader.
    PartitionCreated {
        partition: PartitionId,
        replicas: Vec<NodeId>,
        isr: Vec<NodeId>,
        leader: Option<NodeId>,
        leader_epoch: LeaderEpoch,
    },
    /// A topic config set (`Some`) or removed, going back to the broker default (`None`).
    ConfigChanged { topic_id: TopicId, name: String, value: Option<String> },
    /// The topic and all its partitions are gone.
    TopicDeleted { topic_id: TopicId },
    /// A broker config set (`Some`) or removed (`None`), for one node or, with `node` `None`,
    /// as the cluster-wide default (Kafka's broker resource with an empty name).
    BrokerConfigChanged { node: Option<NodeId>, name: String, value: Option<String> },
    /// A consumer group's config (KIP-848's group resource) set (`Some`) or removed (`None`).
    GroupConfigChanged { group: String, name: String, value: Option<String> },
    /// A feature finalized at `level` for the cluster (level 0 removes it).
    FeatureLevel { name: String, level: i16 },
    /// A broker registered (KRaft's RegisterBrokerRecord): its epoch is this record's offset,
    /// `incarnation` is new at every process start; a broker registers fenced and is unfenced
    /// once it has caught up with the metadata log. A new registration replaces an older one.
    BrokerRegistered {
        node: NodeId,
        broker_epoch: i64,
        incarnation: [u8; 16],
        listeners: Vec<Endpoint>,
        rack: Option<String>,
        fenced: bool,
    },
    /// The broker missed its session timeout or is shutting down: it leads nothing (FenceBrokerRecord).
    BrokerFenced { node: NodeId, broker_epoch: i64 },
    /// The broker is alive and caught up: it may lead again (UnfenceBrokerRecord).
    BrokerUnfenced { node: NodeId, broker_epoch: i64 },
    /// The broker left the cluster (UnregisterBrokerRecord).
    BrokerUnregistered { node: NodeId, broker_epoch: i64 },
    /// The broker's process (this registration) asked for a controlled shutdown (KRaft's
    /// BrokerRegistrationChangeRecord with InControlledShutdown): it is fenced with it and
    /// never unfenced again; only a new registration (a new process) may lead. A record, not
    /// the active controller's memory, so a controller taking over knows it too.
    BrokerShuttingDown { node: NodeId, broker_epoch: i64 },
    /// The replicas this broker registration reports damaged (its storage failed: a log that
    /// cannot be opened, or read or written), the whole set, sorted (Kafka's offline log
    /// directories, per partition here). They are not elected and do not join an ISR until the
    /// broker reports them rebuilt; a new registration starts with none.
    ReplicasOffline { node: NodeId, broker_epoch: i64, partitions: Vec<PartitionId> },
    /// A partition's leader, in-sync replicas or epochs changed (KRaft's PartitionChangeRecord,
    /// with the whole new state): the leader epoch rises whenever the leader changes, the
    /// partition epoch with every change.
    PartitionChanged {
        partition: PartitionId,
        isr: Vec<NodeId>,
        leader: Option<NodeId>,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
    },
    /// A partition's replica set changed (KRaft's PartitionChangeRecord with replicas, adding
    /// and removing replicas): the ISR and the leader stay, and stay among the replicas; a
    /// replica added starts out of the ISR and joins it once caught up, as any follower. While a
    /// reassignment is under way `adding` and `removing` name the replicas it adds and will
    /// remove (both empty otherwise). The partition epoch rises.
    PartitionReplicasChanged {
        partition: PartitionId,
        replicas: Vec<NodeId>,
        adding: Vec<NodeId>,
        removing: Vec<NodeId>,
        partition_epoch: i32,
    },
    /// The cluster's id, written once, first, by the controller that forms the quorum; every
    /// node adopts it and one whose data directory holds another refuses to go on.
    ClusterCreated { cluster_id: String },
    /// Producer ids below `end` are reserved, the block up to it by broker `node` (KRaft's
    /// ProducerIdsRecord): the next block starts at `end`.
    ProducerIdsReserved { node: NodeId, end: i64 },
}

const KIND_TOPIC_CREATED: u8 = 1;
const KIND_PARTITION_CREATED: u8 = 2;
const KIND_CONFIG_CHANGED: u8 = 3;
const KIND_TOPIC_DELETED: u8 = 4;
const KIND_BROKER_CONFIG_CHANGED: u8 = 5;
const KIND_FEATURE_LEVEL: u8 = 6;
const KIND_BROKER_REGISTERED: u8 = 7;
const KIND_BROKER_FENCED: u8 = 8;
const KIND_BROKER_UNFENCED: u8 = 9;
const KIND_BROKER_UNREGISTERED: u8 = 10;
const KIND_PARTITION_CHANGED: u8 = 11;
const KIND_CLUSTER_CREATED: u8 = 12;
const KIND_PRODUCER_IDS_RESERVED: u8 = 13;
const KIND_BROKER_SHUTTING_DOWN: u8 = 14;
const KIND_REPLICAS_OFFLINE: u8 = 15;
const KIND_PARTITION_REPLICAS_CHANGED: u8 = 16;
const KIND_GROUP_CONFIG_CHANGED: u8 = 17;
/// `leader` when there is none, and `node` of a cluster-wide broker config.
const NO_LEADER: i32 = -1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata record damaged: {0}")]
pub struct RecordDecodeError(pub String);

impl MetadataRecord {
    /// The record's body: kind, then its fields, big-endian.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            MetadataRecord::TopicCreated { topic_id, name, configs } => {
                out.push(KIND_TOPIC_CREATED);
                out.extend_from_slice(&topic_id.0);
                put_str(out, name);
                out.extend_from_slice(&(configs.len() as u32).to_be_bytes());
                for (k, v) in configs {
                    put_str(out, k);
                    put_str(out, v);
                }
            }
            MetadataRecord::PartitionCreated { partition, replicas, isr, leader, leader_epoch } => {
                out.push(KIND_PARTITION_CREATED);
                out.extend_from_slice(&partition.topic.0);
                out.extend_from_slice(&partition.index.to_be_bytes());
                put_nodes(out, replicas);
                put_nodes(out, isr);
                out.extend_from_slice(&leader.map_or(NO_LEADER, |n| n.0).to_be_bytes());
                out.extend_from_slice(&leader_epoch.0.to_be_bytes());
            }
            MetadataRecord::ConfigChanged { topic_id, name, value } => {
                out.push(KIND_CONFIG_CHANGED);
                out.extend_from_slice(&topic_id.0);
                put_str(out, name);
                put_optional_str(out, value.as_deref());
            }
            MetadataRecord::BrokerConfigChanged { node, name, value } => {
                out.push(KIND_BROKER_CONFIG_CHANGED);
                out.extend_from_slice(&node.map_or(NO_LEADER, |n| n.0).to_be_bytes());
                put_str(out, name);
                put_optional_str(out, value.as_deref());
            }
            MetadataRecord::GroupConfigChanged { group, name, value } => {
                out.push(KIND_GROUP_CONFIG_CHANGED);
                put_str(out, group);
                put_str(out, name);
                put_optional_str(out, value.as_deref());
            }
            MetadataRecord::FeatureLevel { name, level } => {
                out.push(KIND_FEATURE_LEVEL);
                put_str(out, name);
                out.extend_from_slice(&level.to_be_bytes());
            }
            MetadataRecord::TopicDeleted { topic_id } => {
                out.push(KIND_TOPIC_DELETED);
                out.extend_from_slice(&topic_id.0);
            }
            MetadataRecord::BrokerRegistered { node, broker_epoch, incarnation, listeners, rack, fenced } => {
                out.push(KIND_BROKER_REGISTERED);
                out.extend_from_slice(&node.0.to_be_bytes());
                out.extend_from_slice(&broker_epoch.to_be_bytes());
                out.extend_from_slice(incarnation);
                out.extend_from_slice(&(listeners.len() as u32).to_be_bytes());
                for l in listeners {
                    put_str(out, &l.name);
                    put_str(out, &l.host);
                    out.extend_from_slice(&l.port.to_be_bytes());
                }
                put_optional_str(out, rack.as_deref());
                out.push(u8::from(*fenced));
            }
            MetadataRecord::BrokerFenced { node, broker_epoch } => {
                out.push(KIND_BROKER_FENCED);
                out.extend_from_slice(&node.0.to_be_bytes());
                out.extend_from_slice(&broker_epoch.to_be_bytes());
            }
            MetadataRecord::BrokerUnfenced { node, broker_epoch } => {
                out.push(KIND_BROKER_UNFENCED);
                out.extend_from_slice(&node.0.to_be_bytes());
                out.extend_from_slice(&broker_epoch.to_be_bytes());
            }
            MetadataRecord::BrokerUnregistered { node, broker_epoch } => {
                out.push(KIND_BROKER_UNREGISTERED);
                out.extend_from_slice(&node.0.to_be_bytes());
                out.extend_from_slice(&broker_epoch.to_be_bytes());
            }
            MetadataRecord::BrokerShuttingDown { node, broker_epoch } => {
                out.push(KIND_BROKER_SHUTTING_DOWN);
                out.extend_from_slice(&node.0.to_be_bytes());
                out.extend_from_slice(&broker_epoch.to_be_bytes());
            }
            MetadataRecord::ReplicasOffline { node, broker_epoch, partitions } => {
                out.push(KIND_REPLICAS_OFFLINE);
                out.extend_from_slice(&node.0.to_be_bytes());
                out.extend_from_slice(&broker_epoch.to_be_bytes());
                out.extend_from_slice(&(partitions.len() as u32).to_be_bytes());
                for p in partitions {
                    out.extend_from_slice(&p.topic.0);
                    out.extend_from_slice(&p.index.to_be_bytes());
                }
            }
            MetadataRecord::PartitionReplicasChanged { partition, replicas, adding, removing, partition_epoch } => {
                out.push(KIND_PARTITION_REPLICAS_CHANGED);
                out.extend_from_slice(&partition.topic.0);
                out.extend_from_slice(&partition.index.to_be_bytes());
                put_nodes(out, replicas);
                put_nodes(out, adding);
                put_nodes(out, removing);
                out.extend_from_slice(&partition_epoch.to_be_bytes());
            }
            MetadataRecord::PartitionChanged { partition, isr, leader, leader_epoch, partition_epoch } => {
                out.push(KIND_PARTITION_CHANGED);
                out.extend_from_slice(&partition.topic.0);
                out.extend_from_slice(&partition.index.to_be_bytes());
                put_nodes(out, isr);
                out.extend_from_slice(&leader.map_or(NO_LEADER, |n| n.0).to_be_bytes());
                out.extend_from_slice(&leader_epoch.0.to_be_bytes());
                out.extend_from_slice(&partition_epoch.to_be_bytes());
            }
            MetadataRecord::ClusterCreated { cluster_id } => {
                out.push(KIND_CLUSTER_CREATED);
                put_str(out, cluster_id);
            }
            MetadataRecord::ProducerIdsReserved { node, end } => {
                out.push(KIND_PRODUCER_IDS_RESERVED);
                out.extend_from_slice(&node.0.to_be_bytes());
                out.extend_from_slice(&end.to_be_bytes());
            }
        }
    }

    /// Decodes a record body written by [`MetadataRecord::encode`]; every length is checked
    /// against the bytes left, and the whole body must be used.
    pub fn decode(body: &[u8]) -> Result<MetadataRecord, RecordDecodeError> {
        let mut r = Cursor { bytes: body, at: 0 };
        let record = match r.u8()? {
            KIND_TOPIC_CREATED => {
                let topic_id = r.topic_id()?;
                let name = r.string()?;
                let count = r.count(CONFIGS_PER_RECORD_MAX)?;
                let mut configs = Vec::with_capacity(count);
                for _ in 0..count {
                    configs.push((r.string()?, r.string()?));
                }
                MetadataRecord::TopicCreated { topic_id, name, configs }
            }
            KIND_PARTITION_CREATED => {
                let topic = r.topic_id()?;
                let index = r.i32()?;
                let replicas = r.nodes()?;
                let isr = r.nodes()?;
                let leader = match r.i32()? {
                    NO_LEADER => None,
                    n => Some(NodeId(n)),
                };
                let leader_epoch = LeaderEpoch(r.i32()?);
                MetadataRecord::PartitionCreated {
                    partition: PartitionId { topic, index },
                    replicas,
                    isr,
                    leader,
                    leader_epoch,
                }
            }
            KIND_CONFIG_CHANGED => {
                let topic_id = r.topic_id()?;
                let name = r.string()?;
                let value = r.optional_string()?;
                MetadataRecord::ConfigChanged { topic_id, name, value }
            }
            KIND_BROKER_CONFIG_CHANGED => {
                let node = match r.i32()? {
                    NO_LEADER => None,
                    n => Some(NodeId(n)),
                };
                let name = r.string()?;
                let value = r.optional_string()?;
                MetadataRecord::BrokerConfigChanged { node, name, value }
            }
            KIND_GROUP_CONFIG_CHANGED => {
                let group = r.string()?;
                let name = r.string()?;
                let value = r.optional_string()?;
                MetadataRecord::GroupConfigChanged { group, name, value }
            }
            KIND_FEATURE_LEVEL => {
                let name = r.string()?;
                let level = i16::from_be_bytes(r.take(2)?.try_into().expect("2 bytes"));
                MetadataRecord::FeatureLevel { name, level }
            }
            KIND_TOPIC_DELETED => MetadataRecord::TopicDeleted { topic_id: r.topic_id()? },
            KIND_CLUSTER_CREATED => MetadataRecord::ClusterCreated { cluster_id: r.string()? },
            KIND_PRODUCER_IDS_RESERVED => MetadataRecord::ProducerIdsReserved { node: NodeId(r.i32()?), end: r.i64()? },
            KIND_BROKER_REGISTERED => {
                let node = NodeId(r.i32()?);
                let broker_epoch = r.i64()?;
                let incarnation: [u8; 16] = r.take(16)?.try_into().expect("16 bytes");
                let count = r.count(LISTENERS_PER_BROKER_MAX)?;
                let mut listeners = Vec::with_capacity(count);
                for _ in 0..count {
                    let (name, host) = (r.string()?, r.string()?);
                    let port = u16::from_be_bytes(r.take(2)?.try_into().expect("2 bytes"));
                    listeners.push(Endpoint { name, host, port });
                }
                let rack = r.optional_string()?;
                let fenced = match r.u8()? {
                    0 => false,
                    1 => true,
                    other => return Err(RecordDecodeError(format!("fenced flag {other}"))),
                };
                MetadataRecord::BrokerRegistered { node, broker_epoch, incarnation, listeners, rack, fenced }
            }
            KIND_BROKER_FENCED => MetadataRecord::BrokerFenced { node: NodeId(r.i32()?), broker_epoch: r.i64()? },
            KIND_BROKER_UNFENCED => MetadataRecord::BrokerUnfenced { node: NodeId(r.i32()?), broker_epoch: r.i64()? },
            KIND_BROKER_UNREGISTERED => {
                MetadataRecord::BrokerUnregistered { node: NodeId(r.i32()?), broker_epoch: r.i64()? }
            }
            KIND_BROKER_SHUTTING_DOWN => {
                MetadataRecord::BrokerShuttingDown { node: NodeId(r.i32()?), broker_epoch: r.i64()? }
            }
            KIND_REPLICAS_OFFLINE => {
                let node = NodeId(r.i32()?);
                let broker_epoch = r.i64()?;
                let n = r.count(OFFLINE_REPLICAS_PER_BROKER_MAX)?;
                let partitions = (0..n)
                    .map(|_| Ok(PartitionId { topic: r.topic_id()?, index: r.i32()? }))
                    .collect::<Result<_, _>>()?;
                MetadataRecord::ReplicasOffline { node, broker_epoch, partitions }
            }
            KIND_PARTITION_REPLICAS_CHANGED => {
                let partition = PartitionId { topic: r.topic_id()?, index: r.i32()? };
                let (replicas, adding, removing) = (r.nodes()?, r.nodes()?, r.nodes()?);
                MetadataRecord::PartitionReplicasChanged {
                    partition,
                    replicas,
                    adding,
                    removing,
                    partition_epoch: r.i32()?,
                }
            }
            KIND_PARTITION_CHANGED => {
                let topic = r.topic_id()?;
                let index = r.i32()?;
                let isr = r.nodes()?;
                let leader = match r.i32()? {
                    NO_LEADER => None,
                    n => Some(NodeId(n)),
                };
                let leader_epoch = LeaderEpoch(r.i32()?);
                let partition_epoch = r.i32()?;
                MetadataRecord::PartitionChanged {
                    partition: PartitionId { topic, index },
                    isr,
                    leader,
                    leader_epoch,
                    partition_epoch,
                }
            }
            other => return Err(RecordDecodeError(format!("unknown record kind {other}"))),
        };
        if r.at != body.len() {
            return Err(RecordDecodeError(format!("{} bytes left after the record", body.len() - r.at)));
        }
        Ok(record)
    }
}

/// Checks that records can be written: each decodes back to itself (the encoders write what
/// they are given, and a string past its u16 length or a count past its cap would not), none
/// exceeds `RECORD_BYTES_MAX`, and together (each with a 4-byte length) they take at most
/// `bytes_max`. Returns the bytes they take. Every change is checked before it is written.
pub fn check_records(records: &[MetadataRecord], bytes_max: usize) -> Result<usize, String> {
    let mut total = 0usize;
    let mut body = Vec::new();
    for record in records {
        body.clear();
        record.encode(&mut body);
        if body.len() > RECORD_BYTES_MAX {
            return Err(format!("a metadata record of {} bytes; one record is at most {RECORD_BYTES_MAX}", body.len()));
        }
        match MetadataRecord::decode(&body) {
            Ok(back) if back == *record => {}
            Ok(_) | Err(_) => {
                return Err("a metadata record has a field longer than its encoding allows (a name or value over \
                            65535 bytes, or too many entries)"
                    .to_string())
            }
        }
        total += body.len() + 4;
        if total > bytes_max {
            return Err(format!(
                "the change takes more than {bytes_max} bytes of metadata records: ask for fewer topics, partitions \
                 or configs per request"
            ));
        }
    }
    Ok(total)
}

/// A u16 length, then the bytes; a longer string is written wrongly and [`check_records`]
/// refuses it before anything is written.
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A marker byte (0 absent, 1 present), then the string when present.
fn put_optional_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(v) => {
            out.push(1);
            put_str(out, v);
        }
        None => out.push(0),
    }
}

fn put_nodes(out: &mut Vec<u8>, nodes: &[NodeId]) {
    out.extend_from_slice(&(nodes.len() as u32).to_be_bytes());
    for n in nodes {
        out.extend_from_slice(&n.0.to_be_bytes());
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordDecodeError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| RecordDecodeError(format!("{n} bytes wanted at byte {}", self.at)))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, RecordDecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i32(&mut self) -> Result<i32, RecordDecodeError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn i64(&mut self) -> Result<i64, RecordDecodeError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn count(&mut self, max: usize) -> Result<usize, RecordDecodeError> {
        let n = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        if n > max {
            return Err(RecordDecodeError(format!("{n} entries; at most {max}")));
        }
        Ok(n)
    }

    fn topic_id(&mut self) -> Result<TopicId, RecordDecodeError> {
        Ok(TopicId(self.take(16)?.try_into().expect("16 bytes")))
    }

    fn string(&mut self) -> Result<String, RecordDecodeError> {
        let n = u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordDecodeError("a string is not UTF-8".into()))
    }

    fn optional_string(&mut self) -> Result<Option<String>, RecordDecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            other => Err(RecordDecodeError(format!("optional value marker {other}"))),
        }
    }

    fn nodes(&mut self) -> Result<Vec<NodeId>, RecordDecodeError> {
        let n = self.count(NODES_PER_RECORD_LIST_MAX)?;
        (0..n).map(|_| self.i32().map(NodeId)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn samples() -> Vec<MetadataRecord> {
        let topic_id = TopicId([7; 16]);
        vec![
            MetadataRecord::TopicCreated {
                topic_id,
                name: "orders".into(),
                configs: vec![("retention.ms".into(), "1000".into())],
            },
            MetadataRecord::PartitionCreated {
                partition: PartitionId { topic: topic_id, index: 3 },
                replicas: vec![NodeId(1), NodeId(2)],
                isr: vec![NodeId(1)],
                leader: Some(NodeId(1)),
                leader_epoch: LeaderEpoch(4),
            },
            MetadataRecord::PartitionCreated {
                partition: PartitionId { topic: topic_id, index: 4 },
                replicas: vec![NodeId(2)],
                isr: vec![],
                leader: None,
                leader_epoch: LeaderEpoch(0),
            },
            MetadataRecord::ConfigChanged { topic_id, name: "segment.ms".into(), value: Some("60000".into()) },
            MetadataRecord::ConfigChanged { topic_id, name: "segment.ms".into(), value: None },
            MetadataRecord::TopicDeleted { topic_id },
            MetadataRecord::BrokerConfigChanged {
                node: Some(NodeId(2)),
                name: "log.retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::BrokerConfigChanged { node: None, name: "log.retention.ms".into(), value: None },
            MetadataRecord::GroupConfigChanged {
                group: "g".into(),
                name: "consumer.session.timeout.ms".into(),
                value: Some("30000".into()),
            },
            MetadataRecord::GroupConfigChanged {
                group: "g".into(),
                name: "consumer.session.timeout.ms".into(),
                value: None,
            },
            MetadataRecord::FeatureLevel { name: "metadata.version".into(), level: 27 },
            MetadataRecord::BrokerRegistered {
                node: NodeId(2),
                broker_epoch: 41,
                incarnation: [9; 16],
                listeners: vec![Endpoint { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 }],
                rack: Some("rack-a".into()),
                fenced: true,
            },
            MetadataRecord::BrokerRegistered {
                node: NodeId(3),
                broker_epoch: 42,
                incarnation: [1; 16],
                listeners: vec![],
                rack: None,
                fenced: false,
            },
            MetadataRecord::BrokerFenced { node: NodeId(2), broker_epoch: 41 },
            MetadataRecord::BrokerUnfenced { node: NodeId(2), broker_epoch: 41 },
            MetadataRecord::BrokerShuttingDown { node: NodeId(2), broker_epoch: 41 },
            MetadataRecord::BrokerUnregistered { node: NodeId(2), broker_epoch: 41 },
            MetadataRecord::ReplicasOffline {
                node: NodeId(3),
                broker_epoch: 42,
                partitions: vec![PartitionId { topic: topic_id, index: 0 }, PartitionId { topic: topic_id, index: 5 }],
            },
            MetadataRecord::ReplicasOffline { node: NodeId(3), broker_epoch: 42, partitions: vec![] },
            MetadataRecord::PartitionReplicasChanged {
                partition: PartitionId { topic: topic_id, index: 2 },
                replicas: vec![NodeId(1), NodeId(3), NodeId(2)],
                adding: vec![NodeId(3)],
                removing: vec![NodeId(1)],
                partition_epoch: 4,
            },
            MetadataRecord::PartitionChanged {
                partition: PartitionId { topic: topic_id, index: 3 },
                isr: vec![NodeId(1), NodeId(2)],
                leader: Some(NodeId(2)),
                leader_epoch: LeaderEpoch(5),
                partition_epoch: 7,
            },
            MetadataRecord::PartitionChanged {
                partition: PartitionId { topic: topic_id, index: 4 },
                isr: vec![],
                leader: None,
                leader_epoch: LeaderEpoch(1),
                partition_epoch: 1,
            },
        ]
    }

    #[test]
    fn every_kind_round_trips_and_every_cut_is_refused() {
        for record in samples() {
            let mut body = Vec::new();
            record.encode(&mut body);
            assert_eq!(MetadataRecord::decode(&body), Ok(record.clone()));
            for cut in 0..body.len() {
                assert!(MetadataRecord::decode(&body[..cut]).is_err(), "{record:?} cut at {cut}");
            }
            body.push(0);
            assert!(MetadataRecord::decode(&body).is_err(), "trailing byte accepted");
        }
        assert!(MetadataRecord::decode(&[99]).is_err());
    }
}
