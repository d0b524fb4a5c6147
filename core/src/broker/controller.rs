//! The controller service, on shard 0: decides metadata changes (validation and placement,
//! pure, in `ringtail_replication::metadata::controller`), makes the records durable in the
//! metadata log, then applies them. Applying is a listener over the ordered records that any
//! broker can run: it updates the image, places this node's new replicas on its shards, opens
//! or deletes their logs on the owner shards, and publishes the new view to every shard.

use std::rc::Rc;
use std::sync::Arc;

use ringtail_replication::metadata::controller::{self as decide, ClusterView, NewTopic};
use ringtail_replication::metadata::store::MetadataLog;
use ringtail_replication::metadata::{Change, ControllerError, MetadataImage, MetadataRecord, TopicImage};
use ringtail_replication::{PartitionId, ShardId, TopicId};

use super::{Broker, ShardMsg};
use crate::config::topic_log_config;
use crate::runtime::placement::{Placement, PLACEMENT_FILE};
use crate::runtime::routing::NodeView;

/// The controller's state, on shard 0. Requests are serialized by `lock`.
pub struct Controller {
    log: MetadataLog,
    lock: glommio::sync::Semaphore,
}

impl Controller {
    pub fn new(log: MetadataLog) -> Controller {
        Controller { log, lock: glommio::sync::Semaphore::new(1) }
    }
}

pub enum ControllerRequest {
    CreateTopics { topics: Vec<NewTopic>, validate_only: bool },
    DeleteTopics { names: Vec<String> },
    CreatePartitions { topics: Vec<(String, i32)>, validate_only: bool },
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

/// What the controller knows of the cluster beyond the image: a single node, today.
fn cluster_view(broker: &Broker) -> ClusterView {
    let config = &broker.config;
    ClusterView {
        nodes: vec![broker.node],
        default_partitions: config.default_partitions,
        default_replication_factor: 1,
        replicas_per_node_max: config.partitions_per_shard_max.saturating_mul(config.shards),
        replicas_per_node_max_source: format!(
            "--partitions-per-shard-max {} times {} shards",
            config.partitions_per_shard_max, config.shards
        ),
    }
}

/// Sends a request to the controller (shard 0) and waits for its answer.
pub async fn submit(broker: &Rc<Broker>, request: ControllerRequest) -> ControllerReply {
    let (tx, rx) = flume::bounded(1);
    if broker.controller.is_some() {
        // A task of its own: if the requesting connection goes away, its task is cancelled,
        // and a metadata change must never stop halfway (records written, logs not opened).
        let controller = broker.clone();
        glommio::spawn_local(async move {
            let _ = tx.send_async(handle(&controller, request).await).await;
        })
        .detach();
    } else {
        broker.send(ShardId(0), ShardMsg::Controller { request, reply: tx }).await;
    }
    rx.recv_async().await.unwrap_or_default()
}

/// Decides a request, makes its records durable and applies them.
pub async fn handle(broker: &Rc<Broker>, request: ControllerRequest) -> ControllerReply {
    let Some(controller) = &broker.controller else { return Vec::new() };
    let _permit = controller.lock.acquire_permit(1).await.expect("the controller lock is never closed");
    let view = broker.view();
    let cluster = cluster_view(broker);
    let log_defaults = broker.config.log.clone();
    let validate =
        move |pairs: &[(String, String)]| topic_log_config(&log_defaults, pairs).map(|_| ()).map_err(|e| e.0);
    let (outcomes, records, validate_only) = match request {
        ControllerRequest::CreateTopics { topics, validate_only } => {
            let d = decide::create_topics(&view.image, &cluster, &topics, &validate);
            let outcomes = d
                .outcomes
                .into_iter()
                .map(|(name, r)| match r {
                    Ok(created) => TopicOutcome {
                        name,
                        result: Ok(()),
                        partitions: created.partitions,
                        replication_factor: created.replication_factor,
                        topic_id: created.topic_id,
                    },
                    Err(e) => outcome(name, Err(e)),
                })
                .collect();
            (outcomes, d.records, validate_only)
        }
        ControllerRequest::DeleteTopics { names } => {
            let d = decide::delete_topics(&view.image, &names);
            let outcomes = d
                .outcomes
                .into_iter()
                .map(|(name, r)| match r {
                    Ok(topic_id) => TopicOutcome { topic_id, ..outcome(name, Ok(())) },
                    Err(e) => outcome(name, Err(e)),
                })
                .collect();
            (outcomes, d.records, false)
        }
        ControllerRequest::CreatePartitions { topics, validate_only } => {
            let d = decide::create_partitions(&view.image, &cluster, &topics);
            let outcomes = d
                .outcomes
                .into_iter()
                .map(|(name, r)| match r {
                    Ok(partitions) => TopicOutcome { partitions, ..outcome(name, Ok(())) },
                    Err(e) => outcome(name, Err(e)),
                })
                .collect();
            (outcomes, d.records, validate_only)
        }
    };
    if validate_only || records.is_empty() {
        return outcomes;
    }
    // Durable first: a change exists once its records are in the metadata log.
    let first = match controller.log.append(&records).await {
        Ok(first) => first,
        Err(e) => fail_stop("cannot write the metadata log", &e),
    };
    apply(broker, first, &records).await;
    outcomes
}

/// The metadata log is the node's truth about its topics: once it cannot be written (or a
/// record cannot be applied), going on could acknowledge a change that is not there.
fn fail_stop(what: &str, error: &dyn std::fmt::Display) -> ! {
    tracing::error!(%error, "{what}; stopping the broker");
    crate::logging::flush(std::time::Duration::from_secs(2));
    std::process::exit(70);
}

/// What applying records means for this node: its new replicas by owner shard, and the topics
/// whose replicas go.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NodeEffects {
    /// (topic, owner shard, partition indexes) to open.
    pub open: Vec<(TopicId, ShardId, Vec<i32>)>,
    /// Deleted topics, as they were.
    pub delete: Vec<Arc<TopicImage>>,
    /// The placement changed and must be written.
    pub placement_changed: bool,
}

/// Applies records (from `first`, in order) to an image and this node's placement: no I/O.
pub fn apply_records(
    image: &mut MetadataImage,
    placement: &mut Placement,
    node: ringtail_replication::NodeId,
    shards: usize,
    first: u64,
    records: &[MetadataRecord],
) -> Result<NodeEffects, ringtail_replication::metadata::ApplyError> {
    let mut effects = NodeEffects::default();
    for (i, record) in records.iter().enumerate() {
        match image.apply(first + i as u64, record)? {
            Change::PartitionCreated(id) => {
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
                effects.delete.push(topic);
            }
            // A config change reaches a log when it is next opened (live changes: issue 16's
            // AlterConfigs); a new topic has no replicas until its partitions come.
            Change::ConfigChanged(_) | Change::TopicCreated(_) => {}
        }
    }
    Ok(effects)
}

/// The apply listener: carries out durable records on this node.
pub async fn apply(broker: &Rc<Broker>, first: u64, records: &[MetadataRecord]) {
    let view = broker.view();
    let mut image = (*view.image).clone();
    let mut placement = (*view.placement).clone();
    let effects = match apply_records(&mut image, &mut placement, broker.node, broker.config.shards, first, records) {
        Ok(effects) => effects,
        Err(e) => fail_stop("a metadata record does not apply", &e),
    };
    if effects.placement_changed {
        if let Err(e) =
            ringtail_log::write_file_atomic(&broker.config.data_dir, PLACEMENT_FILE, placement.encode()).await
        {
            fail_stop("cannot write the shard placement", &e);
        }
    }
    let image = Arc::new(image);
    // Replicas open before any shard can route to them.
    for (topic_id, owner, indexes) in effects.open {
        let topic = image.topic_by_id(topic_id).expect("applied").clone();
        let (tx, rx) = flume::bounded(1);
        broker.dispatch(owner, ShardMsg::OpenReplicas { topic, indexes, reply: tx }).await;
        match rx.recv_async().await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => fail_stop("cannot open new partitions", &e),
            Err(_) => fail_stop("cannot open new partitions", &"the owner shard stopped"),
        }
    }
    publish(broker, Arc::new(NodeView { image, placement: Arc::new(placement), ..(*view).clone() })).await;
    // Replicas of deleted topics go once no shard routes to them.
    for topic in effects.delete {
        for owner in (0..broker.config.shards).map(ShardId) {
            let (tx, rx) = flume::bounded(1);
            broker.dispatch(owner, ShardMsg::DeleteReplicas { topic: topic.clone(), reply: tx }).await;
            let _ = rx.recv_async().await;
        }
    }
}

/// Hands the new view to every shard and waits until each has it.
async fn publish(broker: &Rc<Broker>, view: Arc<NodeView>) {
    broker.set_view(view.clone());
    for owner in (0..broker.config.shards).map(ShardId).filter(|&s| s != broker.id) {
        let (tx, rx) = flume::bounded(1);
        broker.send(owner, ShardMsg::View(view.clone(), tx)).await;
        let _ = rx.recv_async().await;
    }
}

/// Makes sure the topics exist, creating missing ones with the default partition count when
/// auto-creation is on. Returns the topics whose creation was refused, with the error.
pub async fn ensure_topics(broker: &Rc<Broker>, names: &[String]) -> Vec<(String, ControllerError)> {
    let view = broker.view();
    let missing: Vec<NewTopic> = names
        .iter()
        .filter(|n| view.image.topic(n).is_none() && decide::validate_topic_name(n).is_ok())
        .map(|n| NewTopic {
            name: n.clone(),
            partitions: -1,
            replication_factor: -1,
            configs: Vec::new(),
            assignments: Vec::new(),
        })
        .collect();
    if missing.is_empty() || !broker.config.auto_create_topics {
        return Vec::new();
    }
    let mut refused = Vec::new();
    for o in submit(broker, ControllerRequest::CreateTopics { topics: missing, validate_only: false }).await {
        match o.result {
            Ok(()) => tracing::info!(topic = %o.name, partitions = o.partitions, "auto-created topic"),
            // Another request created it first.
            Err(ControllerError::TopicExists(_)) => {}
            Err(e) => refused.push((o.name, e)),
        }
    }
    refused
}

/// The partitions of the image with a replica on `node`.
pub fn local_partitions(image: &MetadataImage, node: ringtail_replication::NodeId) -> Vec<PartitionId> {
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
    use ringtail_replication::metadata::controller::create_topics;
    use ringtail_replication::NodeId;

    fn view(nodes: &[i32]) -> ClusterView {
        ClusterView {
            nodes: nodes.iter().map(|&n| NodeId(n)).collect(),
            default_partitions: 1,
            default_replication_factor: 1,
            replicas_per_node_max: 100,
            replicas_per_node_max_source: "test".into(),
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
