//! The controller service's work on the shards: requests submitted to shard 0, decided,
//! made durable and applied (records to open or delete replicas on their owner shards, then
//! the new view published to every shard).

use std::rc::Rc;
use std::sync::Arc;

use std::time::Duration;

use ringtail_replication::metadata::controller::{self as decide, ClusterView, NewTopic};
use ringtail_replication::metadata::record::check_records;
use ringtail_replication::metadata::{ControllerError, MetadataImage, MetadataRecord};
use ringtail_replication::quorum::broker_wire::{BrokerRequest, BrokerResponse, FetchBody};
use ringtail_replication::ShardId;

use super::{
    apply_records, diff_images, outcome, ControllerReply, ControllerRequest, NodeEffects, TopicOutcome, Writer,
};
use crate::broker::{Broker, ShardMsg};
use crate::config_keys::{topic_log_config, TableRules};
use crate::runtime::placement::{Placement, PLACEMENT_FILE};
use crate::runtime::routing::NodeView;

/// What the controller knows of the cluster beyond the image: a single node, or the
/// unfenced brokers a cluster's metadata lists (each with this node's cap).
pub fn cluster_view(broker: &Broker, image: &MetadataImage) -> ClusterView {
    let config = &broker.config;
    let in_cluster = broker.controller.as_ref().and_then(|c| c.link()).is_some();
    ClusterView {
        nodes: match in_cluster {
            true => super::super::cluster::link::unfenced_brokers(image),
            false => vec![broker.node],
        },
        default_partitions: config.default_partitions,
        default_replication_factor: config.cluster.default_replication_factor,
        replicas_per_node_max: config.partitions_per_shard_max.saturating_mul(config.shards),
        replicas_per_node_max_source: format!(
            "--partitions-per-shard-max {} times {} shards",
            config.partitions_per_shard_max, config.shards
        ),
        racks: image.brokers().iter().filter_map(|(n, b)| Some((*n, b.rack.clone()?))).collect(),
        // A cluster replicates up to its unfenced brokers (checked by the decide step); a single
        // node holds one replica of everything.
        replication_factor_max: None,
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
            let _ = tx.send_async(decide_and_apply(&controller, request).await).await;
        })
        .detach();
    } else {
        broker.send(ShardId(0), ShardMsg::Controller { request, reply: tx }).await;
    }
    rx.recv_async().await.unwrap_or_default()
}

/// Decides a request, makes its records durable and applies them. In a cluster the records
/// are proposed to the active controller at the metadata offset they were decided on; one
/// decided on an older image than the controller's is decided again once this broker has
/// caught up.
pub async fn decide_and_apply(broker: &Rc<Broker>, request: ControllerRequest) -> ControllerReply {
    let Some(controller) = &broker.controller else { return Vec::new() };
    let _permit = controller.lock.acquire_permit(1).await.expect("the controller lock is never closed");
    let link = match &controller.writer {
        Writer::Local(_) => return decide_and_apply_local(broker, controller, request).await,
        Writer::Cluster(link) => link.clone(),
    };
    let mut last_reason = String::new();
    let adds_partitions = matches!(
        request,
        ControllerRequest::CreateTopics { .. }
            | ControllerRequest::CreatePartitions { .. }
            | ControllerRequest::RaiseReplicationFactor { .. }
            | ControllerRequest::AlterReassignments { .. }
    );
    // While no controller can take it (an election in progress), the change waits a little.
    let started = std::time::Instant::now();
    let mut attempts = 0;
    while attempts < PROPOSE_ATTEMPTS {
        attempts += 1;
        let view = broker.view();
        let (outcomes, records, validate_only) = decide(broker, &view, request.clone());
        if adds_partitions && super::super::cluster::link::unfenced_brokers(&view.image).is_empty() {
            // The first seconds of a cluster: retriable, not a wrong replication factor.
            let reason = "no broker has registered with the controllers yet".to_string();
            return refuse_all(outcomes, |_| ControllerError::Unavailable(unavailable(&reason)));
        }
        if validate_only || records.is_empty() {
            return outcomes;
        }
        if let Err(reason) = check_records(&records, PROPOSAL_BYTES_MAX) {
            return refuse_all(outcomes, |_| ControllerError::InvalidRequest(reason.clone()));
        }
        let proposal = BrokerRequest::Propose { expected: view.image.applied, records: records.clone() };
        match link.client.call_leader(&proposal, 4).await {
            BrokerResponse::Proposed { last, .. } => {
                // Answer once this broker applied the change, so the client's next request here
                // sees it.
                if !wait_applied(broker, Some(last), APPLY_WAIT).await {
                    tracing::debug!(last, "a committed change is not applied here yet");
                }
                return outcomes;
            }
            BrokerResponse::Stale { applied } => {
                // An earlier attempt whose answer was lost may have committed these very records.
                if let Some(last) = committed_as_proposed(&link, view.image.applied, &records).await {
                    wait_applied(broker, Some(last), APPLY_WAIT).await;
                    return outcomes;
                }
                last_reason = format!("the metadata changed while the request was decided (now at {applied:?})");
                wait_applied(broker, applied, APPLY_WAIT).await;
            }
            BrokerResponse::Refused(reason) => {
                return refuse_all(outcomes, |_| ControllerError::InvalidRequest(reason.clone()));
            }
            BrokerResponse::Unavailable(reason) => {
                if started.elapsed() >= UNAVAILABLE_WAIT {
                    return refuse_all(outcomes, |_| ControllerError::Unavailable(unavailable(&reason)));
                }
                attempts -= 1;
                glommio::timer::sleep(UNAVAILABLE_PAUSE).await;
            }
            other => last_reason = format!("the controller answered {other:?}"),
        }
    }
    let view = broker.view();
    let (outcomes, _, _) = decide(broker, &view, request);
    refuse_all(outcomes, |_| ControllerError::Unavailable(unavailable(&last_reason)))
}

/// The offset of the last of `records` if they are committed right after `expected`.
async fn committed_as_proposed(
    link: &super::super::cluster::link::ClusterLink,
    expected: Option<u64>,
    records: &[MetadataRecord],
) -> Option<u64> {
    let from = expected.map_or(0, |e| e + 1);
    // The active controller answered `Stale`: it holds whatever was committed after `expected`.
    match link.client.call_leader(&BrokerRequest::Fetch { from, wait_ms: 0 }, 2).await {
        BrokerResponse::Fetched { body: FetchBody::Records { first, records: committed }, .. }
            if first == from && committed.len() >= records.len() && committed[..records.len()] == *records =>
        {
            Some(from + records.len() as u64 - 1)
        }
        _ => None,
    }
}

/// The message of a change the controller quorum could not take now.
fn unavailable(reason: &str) -> String {
    format!("the controller quorum cannot take metadata changes now ({reason}); retry")
}

/// Attempts at a proposal that keeps finding the metadata changed under it.
const PROPOSE_ATTEMPTS: usize = 5;
/// How long a change waits for a controller that can take it (an election after the active
/// controller was lost takes one to two election timeouts) before it is refused as retriable;
/// below the 30 s clients give an admin request.
const UNAVAILABLE_WAIT: Duration = Duration::from_secs(10);
/// Pause between tries while no controller can take the change.
const UNAVAILABLE_PAUSE: Duration = Duration::from_millis(250);
/// How long a broker waits to apply a change it proposed (or to catch up) before answering.
const APPLY_WAIT: Duration = Duration::from_secs(5);
/// One metadata change at most: one quorum entry, its framing aside.
const PROPOSAL_BYTES_MAX: usize = ringtail_replication::quorum::limits::ENTRY_BYTES_MAX - 64;

/// Waits until this node's view has applied `offset` (at most `limit`); true if it has.
pub async fn wait_applied(broker: &Broker, offset: Option<u64>, limit: Duration) -> bool {
    let start = std::time::Instant::now();
    loop {
        let applied = broker.view().image.applied;
        if offset.is_none_or(|o| applied.is_some_and(|a| a >= o)) {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

/// A single node's path: decide, write the metadata log, apply.
async fn decide_and_apply_local(
    broker: &Rc<Broker>,
    controller: &super::Controller,
    request: ControllerRequest,
) -> ControllerReply {
    let Writer::Local(log) = &controller.writer else { unreachable!("a single node's controller") };
    let view = broker.view();
    // New partitions need space for their directories and first segments: a node below its
    // low free-space watermark takes none (it would have to leave them offline).
    let adds_partitions = matches!(
        request,
        ControllerRequest::CreateTopics { .. }
            | ControllerRequest::CreatePartitions { .. }
            | ControllerRequest::RaiseReplicationFactor { .. }
            | ControllerRequest::AlterReassignments { .. }
    );
    let (outcomes, records, validate_only) = decide(broker, &view, request);
    if validate_only || records.is_empty() {
        return outcomes;
    }
    if let Err(reason) = check_records(&records, usize::MAX) {
        return refuse_all(outcomes, |_| ControllerError::InvalidRequest(reason.clone()));
    }
    let space = broker.flusher.space();
    if adds_partitions && space.is_low() {
        let w = space.watermarks();
        let reason = format!(
            "the broker's data directory has {} bytes free, below the low watermark of {} bytes: new partitions \
             are refused until {} bytes are free (delete topics, lower retention, or add disk)",
            space.free_bytes(),
            w.low_bytes,
            w.high_bytes
        );
        return refuse_all(outcomes, |_| ControllerError::NoSpace(reason.clone()));
    }
    // Durable first: a change exists once its records are in the metadata log.
    let first = match log.append(&records).await {
        Ok(first) => first,
        // Nothing was written: the change is refused, retriably, and the broker goes on.
        Err(e) if e.is_no_space() => {
            tracing::warn!(error = %e, "a metadata change was refused: no space for the metadata log");
            let reason = format!("no space on the data directory's file system for the metadata log: {e}");
            return refuse_all(outcomes, |_| ControllerError::NoSpace(reason.clone()));
        }
        Err(e) => fail_stop("cannot write the metadata log", &e),
    };
    apply(broker, first, &records).await;
    outcomes
}

/// Decides a request on `view`'s image: the outcomes, the records, and whether only to validate.
fn decide(
    broker: &Rc<Broker>,
    view: &NodeView,
    request: ControllerRequest,
) -> (Vec<TopicOutcome>, Vec<MetadataRecord>, bool) {
    let cluster = cluster_view(broker, &view.image);
    let log_defaults = broker.config.log;
    let validate = move |pairs: &[(String, String)]| topic_log_config(&log_defaults, pairs).map(|_| ());
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
        ControllerRequest::RaiseReplicationFactor { topic, factor } => {
            let d = decide::raise_replication_factor(&view.image, &cluster, &topic, factor);
            let outcomes = d
                .outcomes
                .into_iter()
                .map(|(name, r)| match r {
                    Ok(partitions) => TopicOutcome { partitions, replication_factor: factor, ..outcome(name, Ok(())) },
                    Err(e) => outcome(name, Err(e)),
                })
                .collect();
            (outcomes, d.records, false)
        }
        ControllerRequest::AlterReassignments { partitions, allow_factor_change } => {
            let d = decide::alter_reassignments(&view.image, &partitions, allow_factor_change);
            let outcomes = d
                .outcomes
                .into_iter()
                .zip(&partitions)
                .map(|((name, r), (_, index, _))| TopicOutcome { partitions: *index, ..outcome(name, r) })
                .collect();
            (outcomes, d.records, false)
        }
        ControllerRequest::ElectLeaders { partitions, unclean } => {
            let d = decide::elect_leaders(&view.image, partitions.as_deref(), unclean);
            let outcomes = d
                .outcomes
                .into_iter()
                .map(|(name, index, r)| TopicOutcome { partitions: index, ..outcome(name, r) })
                .collect();
            (outcomes, d.records, false)
        }
        ControllerRequest::UnregisterBroker { node } => {
            let d = decide::unregister_broker(&view.image, node);
            (d.outcomes.into_iter().map(|(name, r)| outcome(name, r)).collect(), d.records, false)
        }
        ControllerRequest::AlterConfigs { alterations, validate_only } => {
            let rules = TableRules { config: &broker.config, image: &view.image, node: broker.node };
            let d = decide::alter_configs(&view.image, &alterations, &rules);
            let outcomes = d.outcomes.into_iter().map(|(name, r)| outcome(name, r)).collect();
            (outcomes, d.records, validate_only)
        }
    };
    (outcomes, records, validate_only)
}

/// Every outcome that would have succeeded fails with `error` instead; nothing changes.
fn refuse_all(outcomes: Vec<TopicOutcome>, error: impl Fn(&str) -> ControllerError) -> Vec<TopicOutcome> {
    outcomes
        .into_iter()
        .map(|o| match o.result {
            Ok(()) => {
                let e = error(&o.name);
                outcome(o.name, Err(e))
            }
            Err(_) => o,
        })
        .collect()
}

/// The metadata log is the node's truth about its topics: once it cannot be written (or a
/// record cannot be applied), going on could acknowledge a change that is not there.
pub fn fail_stop(what: &str, error: &dyn std::fmt::Display) -> ! {
    tracing::error!(%error, "{what}; stopping the broker");
    crate::logging::flush(std::time::Duration::from_secs(2));
    std::process::exit(70);
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
    carry_out(broker, Arc::new(image), placement, effects).await;
}

/// Moves this node to a controller's image far ahead of its own: what records would have done.
pub async fn apply_image(broker: &Rc<Broker>, image: MetadataImage) {
    let view = broker.view();
    let mut placement = (*view.placement).clone();
    let effects = diff_images(&view.image, &image, &mut placement, broker.node, broker.config.shards);
    carry_out(broker, Arc::new(image), placement, effects).await;
}

/// Writes the placement, deletes the replicas of deleted topics, opens new replicas, and
/// publishes the view. Deleted topics go first (a topic deleted and created again under its
/// name, as a broker catching up may apply in one go, has the same directories): a first view
/// routes to neither (the deleted topic is gone from the image, the new replicas are not
/// placed yet), then the old replicas are deleted, then the new ones open and the final view
/// routes to them. Nothing routes to a replica before it opens or after it is deleted.
async fn carry_out(broker: &Rc<Broker>, image: Arc<MetadataImage>, placement: Placement, effects: NodeEffects) {
    let view = broker.view();
    if effects.placement_changed {
        match ringtail_log::write_file_atomic(&broker.config.data_dir, PLACEMENT_FILE, placement.encode()).await {
            // The file only remembers which shard owns what; without it a start places the
            // replicas it misses again (the metadata, already durable, says which they are).
            Err(e) if e.is_no_space() => {
                tracing::warn!(error = %e, "no space to save the shard placement; the next start places again")
            }
            Err(e) => fail_stop("cannot write the shard placement", &e),
            Ok(()) => {}
        }
    }
    if !effects.delete.is_empty() {
        let mut interim = (*view.placement).clone();
        effects.delete.iter().for_each(|t| interim.remove_topic(t.id));
        let interim = Arc::new(NodeView { image: image.clone(), placement: Arc::new(interim), ..(*view).clone() });
        publish(broker, interim).await;
        delete_everywhere(broker, &effects.delete).await;
    }
    if !effects.remove.is_empty() {
        // Nothing routes to a moved replica before its files go.
        let mut interim = (*view.placement).clone();
        effects.remove.iter().for_each(|(id, _)| {
            interim.remove(*id);
        });
        let interim = Arc::new(NodeView { image: image.clone(), placement: Arc::new(interim), ..(*view).clone() });
        publish(broker, interim).await;
        for &(id, owner) in &effects.remove {
            let _ = broker.on_shard(owner, move |b| async move { b.remove_replica_local(id).await }).await;
        }
    }
    for (topic_id, owner, indexes) in effects.open {
        let topic = image.topic_by_id(topic_id).expect("a replica opened is of a topic in the image").clone();
        let (tx, rx) = flume::bounded(1);
        broker.send(owner, ShardMsg::OpenReplicas { topic, indexes, reply: tx }).await;
        match rx.recv_async().await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => fail_stop("cannot open new partitions", &e),
            Err(_) => fail_stop("cannot open new partitions", &"the owner shard stopped"),
        }
    }
    publish(broker, Arc::new(NodeView { image, placement: Arc::new(placement), ..(*view).clone() })).await;
}

/// Replicas of deleted topics go, on every shard.
async fn delete_everywhere(broker: &Rc<Broker>, topics: &[Arc<ringtail_replication::metadata::TopicImage>]) {
    for topic in topics {
        for owner in (0..broker.config.shards).map(ShardId) {
            let (tx, rx) = flume::bounded(1);
            broker.send(owner, ShardMsg::DeleteReplicas { topic: topic.clone(), reply: tx }).await;
            let _ = rx.recv_async().await;
        }
    }
}

/// Hands the new view to every shard and waits until each has it.
pub async fn publish(broker: &Rc<Broker>, view: Arc<NodeView>) {
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
