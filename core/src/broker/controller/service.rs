//! The controller service's work on the shards: requests submitted to shard 0, decided,
//! made durable and applied (records to open or delete replicas on their owner shards, then
//! the new view published to every shard).

use std::rc::Rc;
use std::sync::Arc;

use ringtail_replication::metadata::controller::{self as decide, ClusterView, NewTopic};
use ringtail_replication::metadata::{ControllerError, MetadataRecord};
use ringtail_replication::ShardId;

use super::{apply_records, outcome, ControllerReply, ControllerRequest, TopicOutcome};
use crate::broker::{Broker, ShardMsg};
use crate::config_keys::{topic_log_config, TableRules};
use crate::runtime::placement::PLACEMENT_FILE;
use crate::runtime::routing::NodeView;

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
            let _ = tx.send_async(decide_and_apply(&controller, request).await).await;
        })
        .detach();
    } else {
        broker.send(ShardId(0), ShardMsg::Controller { request, reply: tx }).await;
    }
    rx.recv_async().await.unwrap_or_default()
}

/// Decides a request, makes its records durable and applies them.
pub async fn decide_and_apply(broker: &Rc<Broker>, request: ControllerRequest) -> ControllerReply {
    let Some(controller) = &broker.controller else { return Vec::new() };
    let _permit = controller.lock.acquire_permit(1).await.expect("the controller lock is never closed");
    let view = broker.view();
    let cluster = cluster_view(broker);
    let log_defaults = broker.config.log;
    let validate = move |pairs: &[(String, String)]| topic_log_config(&log_defaults, pairs).map(|_| ());
    // New partitions need space for their directories and first segments: a node below its
    // low free-space watermark takes none (it would have to leave them offline).
    let adds_partitions =
        matches!(request, ControllerRequest::CreateTopics { .. } | ControllerRequest::CreatePartitions { .. });
    let space = broker.flusher.space();
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
        ControllerRequest::AlterConfigs { alterations, validate_only } => {
            let rules = TableRules { config: &broker.config, image: &view.image, node: broker.node };
            let d = decide::alter_configs(&view.image, &alterations, &rules);
            let outcomes = d.outcomes.into_iter().map(|(name, r)| outcome(name, r)).collect();
            (outcomes, d.records, validate_only)
        }
    };
    if validate_only || records.is_empty() {
        return outcomes;
    }
    if adds_partitions && space.is_low() {
        let w = space.watermarks();
        let reason = format!(
            "the broker's data directory has {} bytes free, below the low watermark of {} bytes: new partitions \
             are refused until {} bytes are free (delete topics, lower retention, or add disk)",
            space.free_bytes(),
            w.low_bytes,
            w.high_bytes
        );
        return refuse_all(outcomes, &reason);
    }
    // Durable first: a change exists once its records are in the metadata log.
    let first = match controller.log.append(&records).await {
        Ok(first) => first,
        // Nothing was written: the change is refused, retriably, and the broker goes on.
        Err(e) if e.is_no_space() => {
            tracing::warn!(error = %e, "a metadata change was refused: no space for the metadata log");
            let reason = format!("no space on the data directory's file system for the metadata log: {e}");
            return refuse_all(outcomes, &reason);
        }
        Err(e) => fail_stop("cannot write the metadata log", &e),
    };
    apply(broker, first, &records).await;
    outcomes
}

/// Every outcome that would have succeeded fails for lack of space instead; nothing changes.
fn refuse_all(outcomes: Vec<TopicOutcome>, reason: &str) -> Vec<TopicOutcome> {
    outcomes
        .into_iter()
        .map(|o| match o.result {
            Ok(()) => outcome(o.name, Err(ControllerError::NoSpace(reason.to_string()))),
            Err(_) => o,
        })
        .collect()
}

/// The metadata log is the node's truth about its topics: once it cannot be written (or a
/// record cannot be applied), going on could acknowledge a change that is not there.
fn fail_stop(what: &str, error: &dyn std::fmt::Display) -> ! {
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
        broker.send(owner, ShardMsg::OpenReplicas { topic, indexes, reply: tx }).await;
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
            broker.send(owner, ShardMsg::DeleteReplicas { topic: topic.clone(), reply: tx }).await;
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
