//! The controller's decide step: a request to change the metadata is validated against the
//! current image and turned into the records that carry it out (topic ids, partition
//! placement on nodes, configs). Pure: no I/O, no clock; the caller appends the records to
//! the metadata log and applies them.

use std::collections::{BTreeMap, HashMap};

use super::image::MetadataImage;
use super::record::MetadataRecord;
use crate::ids::{LeaderEpoch, NodeId, PartitionId, TopicId};

pub use crate::limits::{PARTITIONS_PER_TOPIC_MAX, TOPICS_CREATED_PER_REQUEST_MAX, TOPIC_NAME_BYTES_MAX};
/// The topic holding consumer groups' offsets (Kafka's name).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Topics only the brokers write.
pub fn is_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC
}

/// Checks a topic's configs as a whole (the broker knows which it takes); the error says why.
pub type ConfigCheck<'a> = dyn Fn(&[(String, String)]) -> Result<(), String> + 'a;

/// Why the controller refused a change; the text tells the user what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("{0}")]
    InvalidTopicName(String),
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    #[error(
        "`{0}` is internal: it holds consumer groups' offsets, and its partition count decides their coordinators"
    )]
    InternalTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    /// A broker's cap would be passed.
    #[error("{0}")]
    PolicyViolation(String),
    /// The request as a whole is refused.
    #[error("{0}")]
    InvalidRequest(String),
    /// The metadata log could not take the change for lack of space; nothing changed.
    #[error("{0}")]
    NoSpace(String),
    /// ELECTION_NOT_NEEDED: the partition has the leader the election would give it.
    #[error("{0}")]
    ElectionNotNeeded(String),
    /// PREFERRED_LEADER_NOT_AVAILABLE: the preferred replica is out of sync or may not lead.
    #[error("{0}")]
    PreferredLeaderNotAvailable(String),
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE: no replica may lead.
    #[error("{0}")]
    EligibleLeadersNotAvailable(String),
    /// BROKER_ID_NOT_REGISTERED: UnregisterBroker of a node the cluster does not know.
    #[error("broker {0} is not registered")]
    BrokerIdNotRegistered(i32),
    /// NO_REASSIGNMENT_IN_PROGRESS: a cancel for a partition not being reassigned.
    #[error("no reassignment of {0} is in progress")]
    NoReassignmentInProgress(String),
    /// The controller quorum could not take the change now (no active controller, no
    /// majority, a write that timed out): retriable.
    #[error("{0}")]
    Unavailable(String),
}

/// What the controller knows of the cluster beyond the image.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// Brokers that may take new replicas.
    pub nodes: Vec<NodeId>,
    /// Partitions of a topic created without a count.
    pub default_partitions: i32,
    /// Replicas per partition of a topic created without a replication factor.
    pub default_replication_factor: i16,
    /// Partition replicas a broker may hold.
    pub replicas_per_node_max: usize,
    /// Where that cap comes from, for the error message.
    pub replicas_per_node_max_source: String,
    /// The largest replication factor this build serves, and why, when it is below the number
    /// of brokers.
    pub replication_factor_max: Option<(i16, String)>,
    /// Each node's rack (`broker.rack`), for the nodes that have one.
    pub racks: HashMap<NodeId, String>,
}

/// A topic to create (CreateTopics, or auto-creation).
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 asks for the default.
    pub partitions: i32,
    /// -1 asks for the default.
    pub replication_factor: i16,
    pub configs: Vec<(String, Option<String>)>,
    /// Explicit replica lists by partition (node ids); empty means the controller places them.
    pub assignments: Vec<Vec<i32>>,
}

/// A topic the decision creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub topic_id: TopicId,
    pub partitions: i32,
    pub replication_factor: i16,
}

/// The per-item outcomes of a request (in request order) and the records that carry out
/// the accepted ones.
#[derive(Debug)]
pub struct Decision<T> {
    pub outcomes: Vec<(String, Result<T, ControllerError>)>,
    pub records: Vec<MetadataRecord>,
}

/// Checks a topic name against Kafka's rules; the message says what to change.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let bad = |m: String| Err(ControllerError::InvalidTopicName(m));
    if name.is_empty() {
        return bad("topic name is empty".into());
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return bad(format!("topic name is {} bytes long; the limit is {TOPIC_NAME_BYTES_MAX}", name.len()));
    }
    if name == "." || name == ".." {
        return bad(format!("topic name `{name}` is reserved"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return bad(format!("topic name `{name}` contains {c:?}; use only [a-zA-Z0-9._-]"));
    }
    Ok(())
}

/// Records of a decision in progress, applied to a scratch image as they are made so that
/// later items of the same request see earlier ones (a name taken, the load placed).
struct Draft {
    image: MetadataImage,
    next_offset: u64,
    records: Vec<MetadataRecord>,
}

impl Draft {
    fn new(image: &MetadataImage) -> Draft {
        Draft { image: image.clone(), next_offset: image.applied.map_or(0, |a| a + 1), records: Vec::new() }
    }

    fn push(&mut self, record: MetadataRecord) {
        self.image.apply(self.next_offset, &record).expect("the controller decides only records that apply");
        self.next_offset += 1;
        self.records.push(record);
    }
}

/// Replica lists for `count` new partitions with `replication_factor` replicas each: every
/// partition goes to the least loaded nodes (partition replicas held), its leader first, so
/// replicas and leaders spread evenly. With racks, a partition's replicas go to distinct racks
/// while there are racks it does not use yet, and among equally loaded nodes the one whose rack
/// holds the fewest of these new replicas comes first. Refused if a node would pass its cap.
fn place(
    draft: &Draft,
    view: &ClusterView,
    count: usize,
    replication_factor: usize,
) -> Result<Vec<Vec<NodeId>>, ControllerError> {
    let held = draft.image.replicas_per_node();
    let mut load: Vec<(usize, NodeId)> = view.nodes.iter().map(|n| (held.get(n).copied().unwrap_or(0), *n)).collect();
    let rack_of = |n: &NodeId| view.racks.get(n).map(String::as_str);
    let racks: std::collections::BTreeSet<&str> = view.nodes.iter().filter_map(&rack_of).collect();
    // New replicas per rack, and new leaders per node and per rack, for the tie-breaks.
    let mut rack_load: HashMap<&str, usize> = HashMap::new();
    let mut leads: HashMap<NodeId, usize> = HashMap::new();
    let mut rack_leads: HashMap<&str, usize> = HashMap::new();
    let count_of = |m: &HashMap<&str, usize>, r: Option<&str>| r.map_or(0, |r| m.get(r).copied().unwrap_or(0));
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut chosen: Vec<NodeId> = Vec::with_capacity(replication_factor);
        for k in 0..replication_factor {
            let used: std::collections::BTreeSet<&str> = chosen.iter().filter_map(&rack_of).collect();
            let fresh_rack_left = racks.iter().any(|r| !used.contains(r));
            let best = load
                .iter()
                .enumerate()
                .filter(|(_, (_, n))| !chosen.contains(n))
                .min_by_key(|(_, (l, n))| {
                    let rack = rack_of(n);
                    let reused = fresh_rack_left && rack.is_some_and(|r| used.contains(r));
                    // The leader (first replica): the node leading fewest of these partitions
                    // (leaders spread evenly, as Kafka's round robin does), then the least
                    // loaded, on the rack leading fewest; the others: the least loaded, on the
                    // rack holding fewest.
                    match k {
                        0 => (reused, leads.get(n).copied().unwrap_or(0), *l, count_of(&rack_leads, rack), *n),
                        _ => (reused, 0, *l, count_of(&rack_load, rack), *n),
                    }
                })
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            let node = load[i].1;
            load[i].0 += 1;
            if let Some(r) = rack_of(&node) {
                *rack_load.entry(r).or_default() += 1;
                if k == 0 {
                    *rack_leads.entry(r).or_default() += 1;
                }
            }
            if k == 0 {
                *leads.entry(node).or_default() += 1;
            }
            chosen.push(node);
        }
        out.push(chosen);
    }
    check_caps(&load.into_iter().map(|(l, n)| (n, l)).collect(), view, count)?;
    Ok(out)
}

fn check_caps(load: &HashMap<NodeId, usize>, view: &ClusterView, count: usize) -> Result<(), ControllerError> {
    let mut over: Vec<(&NodeId, &usize)> = load.iter().filter(|(_, &l)| l > view.replicas_per_node_max).collect();
    over.sort();
    match over.first() {
        None => Ok(()),
        Some((node, held)) => Err(ControllerError::PolicyViolation(format!(
            "{count} more partitions would give broker {node} {held} partition replicas; it takes at most {} ({})",
            view.replicas_per_node_max, view.replicas_per_node_max_source
        ))),
    }
}

/// A replication factor below 1, or above what this build serves, is refused.
fn check_factor(factor: i16, view: &ClusterView) -> Result<(), ControllerError> {
    if factor < 1 {
        return Err(ControllerError::InvalidReplicationFactor(format!("replication factor {factor}; at least 1")));
    }
    match &view.replication_factor_max {
        Some((max, why)) if factor > *max => Err(ControllerError::InvalidReplicationFactor(format!(
            "replication factor {factor}, but at most {max}: {why}"
        ))),
        _ => Ok(()),
    }
}

/// Checks explicit replica lists: one per partition, all of one length, distinct known nodes.
fn check_assignments(assignments: &[Vec<i32>], view: &ClusterView) -> Result<Vec<Vec<NodeId>>, ControllerError> {
    let bad = |m: String| Err(ControllerError::InvalidReplicaAssignment(m));
    let known: Vec<i32> = view.nodes.iter().map(|n| n.0).collect();
    let width = assignments.first().map_or(0, Vec::len);
    for (p, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() || replicas.len() != width {
            return bad(format!(
                "partition {p} lists {} replicas; every partition needs the same number, at least 1",
                replicas.len()
            ));
        }
        if let Some(n) = replicas.iter().find(|n| !known.contains(n)) {
            return bad(format!("partition {p} names broker {n}, which is not in the cluster {known:?}"));
        }
        if (1..replicas.len()).any(|i| replicas[..i].contains(&replicas[i])) {
            return bad(format!("partition {p} names a broker twice: {replicas:?}"));
        }
    }
    Ok(assignments.iter().map(|a| a.iter().map(|&n| NodeId(n)).collect()).collect())
}

fn partition_records(topic: TopicId, first_index: i32, placement: Vec<Vec<NodeId>>) -> Vec<MetadataRecord> {
    placement
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| MetadataRecord::PartitionCreated {
            partition: PartitionId { topic, index: first_index + i as i32 },
            isr: replicas.clone(),
            leader: replicas.first().copied(),
            replicas,
            leader_epoch: LeaderEpoch(0),
        })
        .collect()
}

/// Validates one new topic against the draft so far and returns its records.
fn decide_topic(
    draft: &Draft,
    view: &ClusterView,
    t: &NewTopic,
    validate_configs: &ConfigCheck<'_>,
) -> Result<(CreatedTopic, Vec<MetadataRecord>), ControllerError> {
    validate_topic_name(&t.name)?;
    if draft.image.topic(&t.name).is_some() {
        return Err(ControllerError::TopicExists(t.name.clone()));
    }
    let count = match (t.assignments.is_empty(), t.partitions) {
        (true, -1) => view.default_partitions,
        (true, n) => n,
        (false, _) => t.assignments.len() as i32,
    };
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&count) {
        return Err(ControllerError::InvalidPartitions(format!(
            "{count} partitions; use 1 to {PARTITIONS_PER_TOPIC_MAX}"
        )));
    }
    let nodes = view.nodes.len();
    let placement = if t.assignments.is_empty() {
        let factor = if t.replication_factor == -1 { view.default_replication_factor } else { t.replication_factor };
        check_factor(factor, view)?;
        if factor as usize > nodes {
            return Err(ControllerError::InvalidReplicationFactor(format!(
                "replication factor {factor} but this cluster has {nodes} {}broker{}",
                if nodes > 1 { "unfenced " } else { "" },
                if nodes == 1 { "" } else { "s" }
            )));
        }
        None
    } else {
        let explicit = check_assignments(&t.assignments, view)?;
        check_factor(explicit[0].len() as i16, view)?;
        Some(explicit)
    };
    let mut configs = BTreeMap::new();
    for (k, v) in &t.configs {
        let v = v.as_ref().ok_or_else(|| ControllerError::InvalidConfig(format!("config `{k}` has no value")))?;
        configs.insert(k.clone(), v.clone());
    }
    let pairs: Vec<(String, String)> = configs.into_iter().collect();
    validate_configs(&pairs).map_err(ControllerError::InvalidConfig)?;
    let placement = match placement {
        Some(explicit) => {
            let mut load = draft.image.replicas_per_node();
            explicit.iter().flatten().for_each(|n| *load.entry(*n).or_insert(0) += 1);
            check_caps(&load, view, explicit.len())?;
            explicit
        }
        None => {
            let factor =
                if t.replication_factor == -1 { view.default_replication_factor } else { t.replication_factor };
            place(draft, view, count as usize, factor as usize)?
        }
    };
    let topic_id = loop {
        let id = TopicId::random();
        if draft.image.topic_by_id(id).is_none() {
            break id;
        }
    };
    let replication_factor = placement[0].len() as i16;
    let mut records = vec![MetadataRecord::TopicCreated { topic_id, name: t.name.clone(), configs: pairs }];
    records.extend(partition_records(topic_id, 0, placement));
    Ok((CreatedTopic { topic_id, partitions: count, replication_factor }, records))
}

/// CreateTopics: each topic is decided on its own; a refused one does not stop the others.
pub fn create_topics(
    image: &MetadataImage,
    view: &ClusterView,
    topics: &[NewTopic],
    validate_configs: &ConfigCheck<'_>,
) -> Decision<CreatedTopic> {
    if topics.len() > TOPICS_CREATED_PER_REQUEST_MAX {
        let message = format!(
            "{} topics in one request; create at most {TOPICS_CREATED_PER_REQUEST_MAX} at a time",
            topics.len()
        );
        let outcomes =
            topics.iter().map(|t| (t.name.clone(), Err(ControllerError::InvalidRequest(message.clone())))).collect();
        return Decision { outcomes, records: Vec::new() };
    }
    let mut draft = Draft::new(image);
    let mut outcomes = Vec::with_capacity(topics.len());
    for t in topics {
        match decide_topic(&draft, view, t, validate_configs) {
            Ok((created, records)) => {
                records.into_iter().for_each(|r| draft.push(r));
                outcomes.push((t.name.clone(), Ok(created)));
            }
            Err(e) => outcomes.push((t.name.clone(), Err(e))),
        }
    }
    Decision { outcomes, records: draft.records }
}

/// DeleteTopics by name. Internal topics cannot be deleted.
pub fn delete_topics(image: &MetadataImage, names: &[String]) -> Decision<TopicId> {
    let mut draft = Draft::new(image);
    let mut outcomes = Vec::with_capacity(names.len());
    for name in names {
        let outcome = if is_internal(name) {
            Err(ControllerError::InternalTopic(name.clone()))
        } else {
            match draft.image.topic(name).map(|t| t.id) {
                Some(topic_id) => {
                    draft.push(MetadataRecord::TopicDeleted { topic_id });
                    Ok(topic_id)
                }
                None => Err(ControllerError::UnknownTopic(name.clone())),
            }
        };
        outcomes.push((name.clone(), outcome));
    }
    Decision { outcomes, records: draft.records }
}

/// CreatePartitions: grows each topic to `count` partitions, placed like new topics' (with
/// the topic's replication factor).
pub fn create_partitions(image: &MetadataImage, view: &ClusterView, topics: &[(String, i32)]) -> Decision<i32> {
    let mut draft = Draft::new(image);
    let mut outcomes = Vec::with_capacity(topics.len());
    for (name, count) in topics {
        let outcome = (|| {
            if is_internal(name) {
                return Err(ControllerError::InternalTopic(name.clone()));
            }
            let topic = draft.image.topic(name).ok_or_else(|| ControllerError::UnknownTopic(name.clone()))?;
            let current = topic.partitions.len() as i32;
            if *count <= current || *count > PARTITIONS_PER_TOPIC_MAX {
                return Err(ControllerError::InvalidPartitions(format!(
                    "topic `{name}` has {current} partitions; ask for more, up to {PARTITIONS_PER_TOPIC_MAX}"
                )));
            }
            let factor = topic.partitions.first().map_or(1, |p| p.replicas.len());
            let topic_id = topic.id;
            let placement = place(&draft, view, (count - current) as usize, factor)?;
            Ok(partition_records(topic_id, current, placement))
        })();
        match outcome {
            Ok(records) => {
                records.into_iter().for_each(|r| draft.push(r));
                outcomes.push((name.clone(), Ok(*count)));
            }
            Err(e) => outcomes.push((name.clone(), Err(e))),
        }
    }
    Decision { outcomes, records: draft.records }
}

/// Raises the replication factor of every partition of topic `name` below `factor`: each gets
/// replicas on the least loaded brokers it has none on (on racks it does not use yet, while
/// there are such), appended after its current ones, so its leader and ISR stay; the new ones
/// catch up and join the ISR as any follower. `__consumer_offsets` created with fewer replicas
/// than `offsets.topic.replication.factor` (a single node's, grown into a cluster) is raised
/// this way. Refused while fewer brokers than `factor` may take replicas. The outcome is the
/// number of partitions raised (0: nothing to do).
pub fn raise_replication_factor(image: &MetadataImage, view: &ClusterView, name: &str, factor: i16) -> Decision<i32> {
    let mut draft = Draft::new(image);
    let outcome = (|| {
        check_factor(factor, view)?;
        let topic = draft.image.topic(name).cloned().ok_or_else(|| ControllerError::UnknownTopic(name.to_string()))?;
        let factor = factor as usize;
        if view.nodes.len() < factor {
            return Err(ControllerError::InvalidReplicationFactor(format!(
                "replication factor {factor} for `{name}`, but only {} brokers may take replicas",
                view.nodes.len()
            )));
        }
        let rack_of = |n: &NodeId| view.racks.get(n).cloned();
        let mut raised = 0;
        for (index, p) in topic.partitions.iter().enumerate() {
            if p.replicas.len() >= factor {
                continue;
            }
            let held = draft.image.replicas_per_node();
            let mut replicas = p.replicas.clone();
            while replicas.len() < factor {
                let used: std::collections::BTreeSet<String> = replicas.iter().filter_map(&rack_of).collect();
                let next = view
                    .nodes
                    .iter()
                    .filter(|n| !replicas.contains(n))
                    .min_by_key(|n| {
                        (rack_of(n).is_some_and(|r| used.contains(&r)), held.get(n).copied().unwrap_or(0), **n)
                    })
                    .copied();
                let Some(next) = next else { break };
                replicas.push(next);
            }
            let mut load = held.clone();
            for n in &replicas[p.replicas.len()..] {
                *load.entry(*n).or_default() += 1;
            }
            check_caps(&load, view, 1)?;
            draft.push(MetadataRecord::PartitionReplicasChanged {
                partition: PartitionId { topic: topic.id, index: index as i32 },
                replicas,
                adding: Vec::new(),
                removing: Vec::new(),
                partition_epoch: p.partition_epoch + 1,
            });
            raised += 1;
        }
        Ok(raised)
    })();
    match outcome {
        Ok(raised) => Decision { outcomes: vec![(name.to_string(), Ok(raised))], records: draft.records },
        Err(e) => Decision { outcomes: vec![(name.to_string(), Err(e))], records: Vec::new() },
    }
}

/// AlterPartitionReassignments: each (topic, partition) moved to its target replicas, or with
/// `None` its reassignment cancelled (`reassign::alter`), in request order, each decided on the
/// image as the earlier ones left it.
pub fn alter_reassignments(
    image: &MetadataImage,
    partitions: &[(String, i32, Option<Vec<NodeId>>)],
    allow_factor_change: bool,
) -> Decision<()> {
    let mut draft = Draft::new(image);
    let mut outcomes = Vec::with_capacity(partitions.len());
    for (name, index, target) in partitions {
        let outcome = match draft.image.topic(name) {
            None => Err(ControllerError::UnknownTopic(name.clone())),
            Some(topic) => {
                let id = PartitionId { topic: topic.id, index: *index };
                super::reassign::alter(&draft.image, id, target.as_deref(), allow_factor_change)
            }
        };
        match outcome {
            Ok(records) => {
                records.into_iter().for_each(|r| draft.push(r));
                outcomes.push((name.clone(), Ok(())));
            }
            Err(e) => outcomes.push((name.clone(), Err(e))),
        }
    }
    Decision { outcomes, records: draft.records }
}

/// UnregisterBroker: a broker taken out of service leaves the registrations. Refused while it
/// runs (unfenced: it would register again at its next heartbeat) and while any partition still
/// has a replica on it (drain it first: unregistering would leave those replicas unreachable).
pub fn unregister_broker(image: &MetadataImage, node: NodeId) -> Decision<()> {
    let name = format!("broker {node}");
    let outcome = match image.brokers().get(&node) {
        None => Err(ControllerError::BrokerIdNotRegistered(node.0)),
        Some(b) if !b.fenced => Err(ControllerError::InvalidRequest(format!(
            "broker {node} is running: stop it first (and move its replicas off it before: `ringtail cluster drain {node}`)"
        ))),
        Some(b) => {
            let held = image.topics().flat_map(|t| &t.partitions).filter(|p| p.replicas.contains(&node)).count();
            match held {
                0 => super::brokers::unregister(image, node, b.epoch)
                    .map_err(|e| ControllerError::InvalidRequest(e.to_string())),
                held => Err(ControllerError::InvalidRequest(format!(
                    "broker {node} still holds {held} partition replicas: move them off it first \
                     (`ringtail cluster drain {node}`), or they would be left on a broker that is gone"
                ))),
            }
        }
    };
    match outcome {
        Ok(records) => Decision { outcomes: vec![(name, Ok(()))], records },
        Err(e) => Decision { outcomes: vec![(name, Err(e))], records: Vec::new() },
    }
}

/// ElectLeaders' outcome per (topic, partition), and the records of the elections made.
#[derive(Debug)]
pub struct Elections {
    pub outcomes: Vec<(String, i32, Result<(), ControllerError>)>,
    pub records: Vec<MetadataRecord>,
}

/// ElectLeaders: a preferred (or, with `unclean`, an unclean) election for each (topic,
/// partition), or with `None` for every partition, where the outcomes leave out those that
/// need none (as Kafka answers an election of every partition).
pub fn elect_leaders(image: &MetadataImage, partitions: Option<&[(String, i32)]>, unclean: bool) -> Elections {
    let mut draft = Draft::new(image);
    let mut outcomes = Vec::new();
    let every: Vec<(String, i32)>;
    let asked = match partitions {
        Some(p) => p,
        None => {
            every = image
                .topics()
                .flat_map(|t| (0..t.partitions.len() as i32).map(move |i| (t.name.to_string(), i)))
                .collect();
            &every
        }
    };
    for (name, index) in asked {
        let outcome = match draft.image.topic(name) {
            None => Err(ControllerError::UnknownTopic(name.clone())),
            Some(topic) => super::elect::elect(&draft.image, PartitionId { topic: topic.id, index: *index }, unclean),
        };
        match outcome {
            Ok(records) => {
                records.into_iter().for_each(|r| draft.push(r));
                outcomes.push((name.clone(), *index, Ok(())));
            }
            Err(ControllerError::ElectionNotNeeded(_)) if partitions.is_none() => {}
            Err(e) => outcomes.push((name.clone(), *index, Err(e))),
        }
    }
    Elections { outcomes, records: draft.records }
}

/// A config resource: a topic, or broker configs (of one node, or with `None` the default of
/// every node: Kafka's broker resource with an empty name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    Broker(Option<NodeId>),
    /// A consumer group (KIP-848's group resource): it need not exist yet.
    Group(String),
}

/// Groups that may have configs set: one more is refused.
pub const GROUPS_WITH_CONFIGS_MAX: usize = 100_000;

impl ConfigResource {
    /// The resource's name as Kafka spells it (a node id, or empty for every broker).
    pub fn name(&self) -> String {
        match self {
            ConfigResource::Topic(name) => name.clone(),
            ConfigResource::Broker(node) => node.map_or(String::new(), |n| n.0.to_string()),
            ConfigResource::Group(group) => group.clone(),
        }
    }
}

/// One change to a config key: IncrementalAlterConfigs' operations (AlterConfigs only sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String),
    /// Back to the default.
    Delete,
    /// Adds items to a list config (its default when not set).
    Append(String),
    /// Removes items from a list config.
    Subtract(String),
}

/// The changes asked for one resource.
#[derive(Debug, Clone)]
pub struct ConfigAlteration {
    pub resource: ConfigResource,
    pub ops: Vec<(String, ConfigOp)>,
    /// AlterConfigs (legacy): the keys given are the resource's whole set; the others go back
    /// to their defaults.
    pub replace: bool,
}

/// What the broker knows of a config key that may be altered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterableKey {
    /// A LIST config (APPEND and SUBTRACT apply to it).
    pub list: bool,
    /// The value in force when the resource does not set it.
    pub default: Option<String>,
}

/// The broker's rules for config keys (its table of Kafka's keys).
pub trait ConfigRules {
    /// The key, or why it cannot be altered on this resource.
    fn alterable(&self, resource: &ConfigResource, key: &str) -> Result<AlterableKey, ControllerError>;
    /// Checks the configs the resource would have, as a whole.
    fn check(&self, resource: &ConfigResource, configs: &BTreeMap<String, String>) -> Result<(), ControllerError>;
}

/// AlterConfigs and IncrementalAlterConfigs: each resource is decided on its own (all its
/// changes or none); the records set or remove the keys that change.
pub fn alter_configs(image: &MetadataImage, alterations: &[ConfigAlteration], rules: &dyn ConfigRules) -> Decision<()> {
    let mut draft = Draft::new(image);
    let mut outcomes = Vec::with_capacity(alterations.len());
    for a in alterations {
        match alter_resource(&draft.image, a, rules) {
            Ok(records) => {
                records.into_iter().for_each(|r| draft.push(r));
                outcomes.push((a.resource.name(), Ok(())));
            }
            Err(e) => outcomes.push((a.resource.name(), Err(e))),
        }
    }
    Decision { outcomes, records: draft.records }
}

fn alter_resource(
    image: &MetadataImage,
    a: &ConfigAlteration,
    rules: &dyn ConfigRules,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let current = match &a.resource {
        ConfigResource::Topic(name) => {
            image.topic(name).ok_or_else(|| ControllerError::UnknownTopic(name.clone()))?.configs.clone()
        }
        ConfigResource::Broker(node) => image.broker_configs(*node).cloned().unwrap_or_default(),
        ConfigResource::Group(group) => {
            if group.is_empty() {
                return Err(ControllerError::InvalidRequest("a group config needs a group id".into()));
            }
            image.group_configs(group).cloned().unwrap_or_default()
        }
    };
    if let ConfigResource::Group(group) = &a.resource {
        if current.is_empty() && image.groups_with_configs() >= GROUPS_WITH_CONFIGS_MAX {
            return Err(ControllerError::InvalidRequest(format!(
                "{GROUPS_WITH_CONFIGS_MAX} groups have configs already; group `{group}` cannot have any"
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some((key, _)) = a.ops.iter().find(|(k, _)| !seen.insert(k.as_str())) {
        return Err(ControllerError::InvalidRequest(format!("config `{key}` is changed twice in one request")));
    }
    let mut next = if a.replace { BTreeMap::new() } else { current.clone() };
    fn items(value: &str) -> impl Iterator<Item = String> + '_ {
        value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(String::from)
    }
    for (key, op) in &a.ops {
        let info = rules.alterable(&a.resource, key)?;
        let list = || -> Vec<String> {
            next.get(key).or(info.default.as_ref()).map(|v| items(v).collect()).unwrap_or_default()
        };
        match op {
            ConfigOp::Set(value) => {
                next.insert(key.clone(), value.clone());
            }
            ConfigOp::Delete => {
                next.remove(key);
            }
            ConfigOp::Append(_) | ConfigOp::Subtract(_) if !info.list => {
                return Err(ControllerError::InvalidConfig(format!(
                    "config `{key}` is not a list: APPEND and SUBTRACT apply to list configs only; use SET"
                )))
            }
            ConfigOp::Append(value) => {
                let mut all = list();
                for item in items(value) {
                    if !all.contains(&item) {
                        all.push(item);
                    }
                }
                next.insert(key.clone(), all.join(","));
            }
            ConfigOp::Subtract(value) => {
                let gone: Vec<String> = items(value).collect();
                let kept: Vec<String> = list().into_iter().filter(|item| !gone.contains(item)).collect();
                next.insert(key.clone(), kept.join(","));
            }
        }
    }
    rules.check(&a.resource, &next)?;
    let changed = current.keys().chain(next.keys()).filter(|k| current.get(*k) != next.get(*k));
    let changed: std::collections::BTreeSet<&String> = changed.collect();
    Ok(changed
        .into_iter()
        .map(|name| {
            let value = next.get(name).cloned();
            match &a.resource {
                ConfigResource::Topic(topic) => MetadataRecord::ConfigChanged {
                    topic_id: image.topic(topic).expect("checked above").id,
                    name: name.clone(),
                    value,
                },
                ConfigResource::Broker(node) => {
                    MetadataRecord::BrokerConfigChanged { node: *node, name: name.clone(), value }
                }
                ConfigResource::Group(group) => {
                    MetadataRecord::GroupConfigChanged { group: group.clone(), name: name.clone(), value }
                }
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(nodes: &[i32]) -> ClusterView {
        ClusterView {
            nodes: nodes.iter().map(|&n| NodeId(n)).collect(),
            default_partitions: 2,
            default_replication_factor: 1,
            replicas_per_node_max: 10,
            replicas_per_node_max_source: "test cap".into(),
            replication_factor_max: None,
            racks: HashMap::new(),
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

    fn configs_ok(pairs: &[(String, String)]) -> Result<(), String> {
        match pairs.iter().find(|(k, _)| k != "retention.ms") {
            Some((k, _)) => Err(format!("unknown topic config `{k}`")),
            None => Ok(()),
        }
    }

    /// Applies a decision's records after the image's last offset.
    fn commit<T>(image: &mut MetadataImage, decision: &Decision<T>) {
        for r in &decision.records {
            let next = image.applied.map_or(0, |a| a + 1);
            image.apply(next, r).unwrap();
        }
    }

    fn errors<T: std::fmt::Debug>(d: &Decision<T>) -> Vec<Option<String>> {
        d.outcomes.iter().map(|(_, o)| o.as_ref().err().map(|e| format!("{e:?}"))).collect()
    }

    #[test]
    fn a_broker_is_unregistered_only_once_stopped_and_empty() {
        let mut image = MetadataImage::default();
        for (i, (node, fenced)) in [(1, false), (2, false), (3, true), (4, true)].into_iter().enumerate() {
            let r = MetadataRecord::BrokerRegistered {
                node: NodeId(node),
                broker_epoch: i as i64,
                incarnation: [node as u8; 16],
                listeners: vec![],
                rack: None,
                fenced,
            };
            image.apply(i as u64, &r).unwrap();
        }
        let mut t = topic("orders", 1, 2);
        t.assignments = vec![vec![1, 3]];
        let d = create_topics(&image, &view(&[1, 2, 3]), &[t], &configs_ok);
        assert_eq!(errors(&d), vec![None]);
        commit(&mut image, &d);
        let refused = |node: i32| errors(&unregister_broker(&image, NodeId(node)))[0].clone().unwrap_or_default();
        assert!(refused(2).contains("is running"), "{}", refused(2));
        assert!(refused(3).contains("still holds 1 partition replicas"), "{}", refused(3));
        assert!(refused(9).contains("BrokerIdNotRegistered(9)"));
        let d = unregister_broker(&image, NodeId(4));
        assert_eq!(errors(&d), vec![None]);
        assert!(matches!(d.records[..], [MetadataRecord::BrokerUnregistered { node: NodeId(4), broker_epoch: 3 }]));
        commit(&mut image, &d);
        assert!(!image.brokers().contains_key(&NodeId(4)));
    }

    #[test]
    fn a_created_topic_is_one_topic_record_and_one_record_per_partition() {
        let mut image = MetadataImage::default();
        let mut t = topic("orders", 3, -1);
        t.configs = vec![("retention.ms".into(), Some("100".into()))];
        let d = create_topics(&image, &view(&[1]), &[t, topic("logs", -1, -1)], &configs_ok);
        assert_eq!(errors(&d), vec![None, None]);
        assert_eq!(d.records.len(), 2 + 3 + 2);
        let MetadataRecord::TopicCreated { configs, .. } = &d.records[0] else { panic!("{:?}", d.records[0]) };
        assert_eq!(configs, &vec![("retention.ms".to_string(), "100".to_string())]);
        commit(&mut image, &d);
        let orders = image.topic("orders").unwrap();
        assert_eq!(orders.partitions.len(), 3);
        assert!(orders.partitions.iter().all(|p| p.replicas == [NodeId(1)] && p.leader == Some(NodeId(1))));
        assert_eq!(image.topic("logs").unwrap().partitions.len(), 2, "the default partition count");
        assert_ne!(d.outcomes[0].1.as_ref().unwrap().topic_id, d.outcomes[1].1.as_ref().unwrap().topic_id);
    }

    #[test]
    fn creation_is_validated_topic_by_topic() {
        let mut image = MetadataImage::default();
        let d = create_topics(&image, &view(&[1]), &[topic("taken", 1, 1)], &configs_ok);
        commit(&mut image, &d);
        let mut bad_config = topic("c", 1, 1);
        bad_config.configs = vec![("colour".into(), Some("red".into()))];
        let mut no_value = topic("d", 1, 1);
        no_value.configs = vec![("retention.ms".into(), None)];
        let mut assigned_elsewhere = topic("e", -1, -1);
        assigned_elsewhere.assignments = vec![vec![2]];
        let mut assigned_twice = topic("f", -1, -1);
        assigned_twice.assignments = vec![vec![1, 1]];
        let cases = [
            (topic("a b", 1, 1), "InvalidTopicName"),
            (topic("taken", 1, 1), "TopicExists"),
            (topic("zero", 0, 1), "InvalidPartitions"),
            (topic("huge", PARTITIONS_PER_TOPIC_MAX + 1, 1), "InvalidPartitions"),
            (topic("rf", 1, 2), "InvalidReplicationFactor"),
            (topic("rf0", 1, 0), "InvalidReplicationFactor"),
            (bad_config, "InvalidConfig"),
            (no_value, "InvalidConfig"),
            (assigned_elsewhere, "InvalidReplicaAssignment"),
            (assigned_twice, "InvalidReplicaAssignment"),
            (topic("capped", 10, 1), "PolicyViolation"),
            (topic("fits", 9, 1), ""),
            (topic("fits", 1, 1), "TopicExists"),
        ];
        let topics: Vec<NewTopic> = cases.iter().map(|(t, _)| t.clone()).collect();
        let d = create_topics(&image, &view(&[1]), &topics, &configs_ok);
        for ((t, expected), (name, outcome)) in cases.iter().zip(&d.outcomes) {
            assert_eq!(&t.name, name);
            let got = outcome.as_ref().err().map_or(String::new(), |e| format!("{e:?}"));
            assert!(got.starts_with(expected), "{name}: expected {expected}, got {got}");
        }
        assert_eq!(d.records.len(), 1 + 9, "only `fits` is created");
        let too_many: Vec<NewTopic> =
            (0..=TOPICS_CREATED_PER_REQUEST_MAX).map(|i| topic(&format!("t{i}"), 1, 1)).collect();
        let d = create_topics(&MetadataImage::default(), &view(&[1]), &too_many, &configs_ok);
        assert!(d.records.is_empty());
        assert!(d.outcomes.iter().all(|(_, o)| matches!(o, Err(ControllerError::InvalidRequest(_)))));
    }

    #[test]
    fn placement_spreads_replicas_and_leaders_over_nodes() {
        let image = MetadataImage::default();
        let d = create_topics(&image, &view(&[1, 2, 3]), &[topic("t", 6, 2)], &configs_ok);
        let mut leaders = HashMap::new();
        let mut replicas = HashMap::new();
        for r in &d.records {
            if let MetadataRecord::PartitionCreated { replicas: rs, leader, isr, .. } = r {
                assert_eq!(rs.len(), 2);
                assert_ne!(rs[0], rs[1], "two replicas on one broker");
                assert_eq!(isr, rs);
                assert_eq!(*leader, Some(rs[0]));
                *leaders.entry(rs[0]).or_insert(0) += 1;
                rs.iter().for_each(|n| *replicas.entry(*n).or_insert(0) += 1);
            }
        }
        assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![4, 4, 4]);
        assert!(leaders.values().all(|&l| l == 2), "{leaders:?}");
        let d = create_topics(&image, &view(&[1, 2]), &[topic("t", 1, 3)], &configs_ok);
        assert!(matches!(d.outcomes[0].1, Err(ControllerError::InvalidReplicationFactor(_))));
    }

    #[test]
    fn a_replication_factor_is_raised_by_appending_replicas_on_the_least_loaded_brokers() {
        let mut image = MetadataImage::default();
        let d = create_topics(&image, &view(&[1]), &[topic("offsets", 4, 1)], &configs_ok);
        for (i, r) in d.records.iter().enumerate() {
            image.apply(i as u64, r).expect("applies");
        }
        let before = image.topic("offsets").expect("created").clone();
        let d = raise_replication_factor(&image, &view(&[1, 2, 3]), "offsets", 3);
        assert!(matches!(d.outcomes[0].1, Ok(4)), "{:?}", d.outcomes);
        let next = image.applied.map_or(0, |a| a + 1);
        for (i, r) in d.records.iter().enumerate() {
            image.apply(next + i as u64, r).expect("applies");
        }
        let after = image.topic("offsets").expect("kept");
        for (old, new) in before.partitions.iter().zip(&after.partitions) {
            assert_eq!(new.replicas.len(), 3);
            assert_eq!(new.replicas[0], old.replicas[0], "the current replica stays first");
            assert_eq!((new.leader, new.isr.clone()), (old.leader, old.isr.clone()), "leader and ISR stay");
            assert!(new.partition_epoch > old.partition_epoch);
        }
        assert_eq!(image.replicas_per_node().values().copied().collect::<Vec<_>>(), vec![4, 4, 4]);
        // Nothing left to raise; too few brokers is refused.
        let d = raise_replication_factor(&image, &view(&[1, 2, 3]), "offsets", 3);
        assert!(matches!(d.outcomes[0].1, Ok(0)) && d.records.is_empty());
        let d = raise_replication_factor(&image, &view(&[1, 2]), "offsets", 4);
        assert!(d.outcomes[0].1.is_err() && d.records.is_empty());
    }

    #[test]
    fn replicas_of_a_partition_go_to_distinct_racks_and_partitions_alternate_racks() {
        let image = MetadataImage::default();
        let mut v = view(&[1, 2, 3, 4]);
        v.racks =
            [(1, "a"), (2, "a"), (3, "b"), (4, "b")].into_iter().map(|(n, r)| (NodeId(n), r.to_string())).collect();
        let d = create_topics(&image, &v, &[topic("t", 8, 2)], &configs_ok);
        let mut leaders = HashMap::new();
        for r in &d.records {
            if let MetadataRecord::PartitionCreated { replicas: rs, .. } = r {
                let racks: Vec<&str> = rs.iter().map(|n| v.racks[n].as_str()).collect();
                assert_ne!(racks[0], racks[1], "{rs:?} on one rack");
                *leaders.entry(rs[0]).or_insert(0) += 1;
            }
        }
        assert_eq!(leaders.len(), 4, "{leaders:?}");
        assert!(leaders.values().all(|&l| l == 2), "{leaders:?}");
        // Replication factor 1: partitions alternate racks while brokers stay even.
        let d = create_topics(&image, &v, &[topic("u", 4, 1)], &configs_ok);
        let placed: Vec<&str> = d
            .records
            .iter()
            .filter_map(|r| match r {
                MetadataRecord::PartitionCreated { replicas, .. } => Some(v.racks[&replicas[0]].as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(placed, vec!["a", "b", "a", "b"]);
    }

    #[test]
    fn deletion_and_growth_yield_their_records() {
        let mut image = MetadataImage::default();
        let d = create_topics(&image, &view(&[1]), &[topic("t", 2, 1)], &configs_ok);
        commit(&mut image, &d);
        let names = vec!["t".to_string(), "missing".to_string(), OFFSETS_TOPIC.to_string()];
        let d = delete_topics(&image, &names);
        assert_eq!(d.records, vec![MetadataRecord::TopicDeleted { topic_id: image.topic("t").unwrap().id }]);
        assert!(matches!(d.outcomes[1].1, Err(ControllerError::UnknownTopic(_))));
        assert!(matches!(d.outcomes[2].1, Err(ControllerError::InternalTopic(_))));

        let grow = [("t".to_string(), 5), ("t".to_string(), 4), ("missing".to_string(), 3)];
        let d = create_partitions(&image, &view(&[1]), &grow);
        assert!(d.outcomes[0].1.is_ok());
        assert!(matches!(d.outcomes[1].1, Err(ControllerError::InvalidPartitions(_))), "5 are there already");
        assert!(matches!(d.outcomes[2].1, Err(ControllerError::UnknownTopic(_))));
        let indexes: Vec<i32> = d
            .records
            .iter()
            .map(|r| match r {
                MetadataRecord::PartitionCreated { partition, .. } => partition.index,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(indexes, vec![2, 3, 4]);
        let d = create_partitions(&image, &view(&[1]), &[("t".to_string(), 11)]);
        assert!(matches!(d.outcomes[0].1, Err(ControllerError::PolicyViolation(_))), "{:?}", d.outcomes);
    }

    /// Test rules: `retention.ms` (a number) and `cleanup.policy` (a list, default `delete`)
    /// on topics, `log.retention.ms` on brokers.
    struct Rules;

    impl ConfigRules for Rules {
        fn alterable(&self, resource: &ConfigResource, key: &str) -> Result<AlterableKey, ControllerError> {
            match (resource, key) {
                (ConfigResource::Topic(_), "retention.ms") | (ConfigResource::Broker(_), "log.retention.ms") => {
                    Ok(AlterableKey { list: false, default: None })
                }
                (ConfigResource::Topic(_), "cleanup.policy") => {
                    Ok(AlterableKey { list: true, default: Some("delete".into()) })
                }
                _ => Err(ControllerError::InvalidConfig(format!("unknown config `{key}`"))),
            }
        }

        fn check(&self, _: &ConfigResource, configs: &BTreeMap<String, String>) -> Result<(), ControllerError> {
            match configs.iter().find(|(k, v)| k.ends_with("retention.ms") && v.parse::<i64>().is_err()) {
                Some((k, v)) => Err(ControllerError::InvalidConfig(format!("{k}={v} is not a number"))),
                None => Ok(()),
            }
        }
    }

    fn alter(resource: ConfigResource, ops: &[(&str, ConfigOp)], replace: bool) -> ConfigAlteration {
        ConfigAlteration { resource, ops: ops.iter().map(|(k, op)| (k.to_string(), op.clone())).collect(), replace }
    }

    #[test]
    fn config_changes_are_validated_as_a_whole_and_skip_no_ops() {
        let mut image = MetadataImage::default();
        let d = create_topics(&image, &view(&[1]), &[topic("t", 1, 1)], &configs_ok);
        commit(&mut image, &d);
        let t = || ConfigResource::Topic("t".into());
        let set = alter(t(), &[("retention.ms", ConfigOp::Set("5".into()))], false);
        let d = alter_configs(&image, std::slice::from_ref(&set), &Rules);
        assert_eq!(d.records.len(), 1);
        commit(&mut image, &d);
        assert_eq!(image.topic("t").unwrap().configs["retention.ms"], "5");
        assert!(
            alter_configs(&image, std::slice::from_ref(&set), &Rules).records.is_empty(),
            "setting it again is a no-op"
        );

        let mixed = alter(t(), &[("retention.ms", ConfigOp::Delete), ("colour", ConfigOp::Set("red".into()))], false);
        let bad_value = alter(t(), &[("retention.ms", ConfigOp::Set("soon".into()))], false);
        let twice = alter(t(), &[("retention.ms", ConfigOp::Delete), ("retention.ms", ConfigOp::Delete)], false);
        let not_a_list = alter(t(), &[("retention.ms", ConfigOp::Append("1".into()))], false);
        let unknown = alter(ConfigResource::Topic("nope".into()), &[], false);
        let d = alter_configs(&image, &[mixed, bad_value, twice, not_a_list, unknown], &Rules);
        assert!(d.records.is_empty());
        let errors: Vec<String> = d.outcomes.iter().map(|(_, o)| format!("{:?}", o.as_ref().unwrap_err())).collect();
        assert!(errors[0].starts_with("InvalidConfig") && errors[1].starts_with("InvalidConfig"), "{errors:?}");
        assert!(errors[2].starts_with("InvalidRequest") && errors[3].starts_with("InvalidConfig"), "{errors:?}");
        assert!(errors[4].starts_with("UnknownTopic"), "{errors:?}");

        // A list starts from its default, items are not repeated, and subtracting empties it.
        let append = alter(t(), &[("cleanup.policy", ConfigOp::Append("compact,delete".into()))], false);
        let d = alter_configs(&image, &[append], &Rules);
        commit(&mut image, &d);
        assert_eq!(image.topic("t").unwrap().configs["cleanup.policy"], "delete,compact");
        let subtract = alter(t(), &[("cleanup.policy", ConfigOp::Subtract("delete".into()))], false);
        let d = alter_configs(&image, &[subtract], &Rules);
        commit(&mut image, &d);
        assert_eq!(image.topic("t").unwrap().configs["cleanup.policy"], "compact");

        // AlterConfigs replaces the whole set: what is not given goes back to its default.
        let replace = alter(t(), &[("retention.ms", ConfigOp::Set("7".into()))], true);
        let d = alter_configs(&image, &[replace], &Rules);
        assert_eq!(d.records.len(), 2, "{:?}", d.records);
        commit(&mut image, &d);
        let configs = &image.topic("t").unwrap().configs;
        assert_eq!(configs.len(), 1);
        assert_eq!(configs["retention.ms"], "7");

        // Broker configs, per node and for every node.
        let node =
            alter(ConfigResource::Broker(Some(NodeId(1))), &[("log.retention.ms", ConfigOp::Set("9".into()))], false);
        let all = alter(ConfigResource::Broker(None), &[("log.retention.ms", ConfigOp::Set("8".into()))], false);
        let d = alter_configs(&image, &[node, all], &Rules);
        assert_eq!(d.outcomes.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), vec!["1", ""]);
        commit(&mut image, &d);
        assert_eq!(image.broker_configs(Some(NodeId(1))).unwrap()["log.retention.ms"], "9");
        assert_eq!(image.broker_configs(None).unwrap()["log.retention.ms"], "8");
    }
}
