//! The controller: topic creation, deletion and partition growth. Runs on shard 0, which owns
//! the metadata; it persists each change, has the owner shards open or delete the logs, then
//! broadcasts the new metadata to every shard before answering.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use ringtail_net::error_code;

use crate::limits::TOPICS_CREATED_PER_REQUEST_MAX;
use crate::metadata::{random_id, validate_topic_name, Metadata, Topic, METADATA_FILE, PARTITIONS_MAX};
use crate::shard::{log_config, Shard, ShardMsg};

/// State the controller keeps beside the metadata it owns.
pub struct Controller {
    pub metadata: Metadata,
}

impl Controller {
    pub fn new(metadata: Metadata) -> Self {
        Controller { metadata }
    }
}

#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 asks for the broker default.
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, Option<String>)>,
    /// Explicit replica assignments, which a single node can only honour if they name it alone.
    pub assignments: Vec<Vec<i32>>,
}

pub enum AdminRequest {
    CreateTopics { topics: Vec<NewTopic>, validate_only: bool },
    DeleteTopics { names: Vec<String> },
    CreatePartitions { topics: Vec<(String, i32)>, validate_only: bool },
}

/// Outcome for one topic of an admin request.
#[derive(Debug, Clone, Default)]
pub struct TopicOutcome {
    pub name: String,
    pub error_code: i16,
    pub error_message: Option<String>,
    pub partitions: i32,
    pub topic_id: [u8; 16],
}

pub type AdminReply = Vec<TopicOutcome>;

fn failed(name: &str, code: i16, message: impl Into<String>) -> TopicOutcome {
    TopicOutcome {
        name: name.to_string(),
        error_code: code,
        error_message: Some(message.into()),
        ..TopicOutcome::default()
    }
}

/// Owner shards for `count` new partitions, unless a shard would then own more than `cap`.
fn place_within_cap(next: &Metadata, shards: usize, count: usize, cap: usize) -> Result<Vec<usize>, String> {
    let placement = next.place(shards, count);
    let mut load = next.load_per_shard(shards);
    placement.iter().for_each(|&s| load[s] += 1);
    match load.iter().enumerate().find(|(_, &n)| n > cap) {
        None => Ok(placement),
        Some((s, n)) => Err(format!(
            "{count} more partitions would give shard {s} {n} partitions; the cap is {cap} per shard \
             (--partitions-per-shard-max) and {shards} shards"
        )),
    }
}

fn internal_message(name: &str) -> String {
    format!(
        "`{name}` is internal: it holds consumer groups' offsets, and its partition count decides their coordinators"
    )
}

/// Sends an admin request to the controller (shard 0) and waits for its answer.
pub async fn submit(shard: &Rc<Shard>, request: AdminRequest) -> AdminReply {
    let (tx, rx) = flume::bounded(1);
    if shard.id == 0 {
        // A task of its own: if the requesting connection goes away, its task is cancelled,
        // and an admin change must never stop halfway (metadata written, logs not opened).
        let controller = shard.clone();
        glommio::spawn_local(async move {
            let _ = tx.send_async(handle(&controller, request).await).await;
        })
        .detach();
    } else {
        shard.send(0, ShardMsg::Admin { request, reply: tx }).await;
    }
    rx.recv_async().await.unwrap_or_default()
}

/// Runs an admin request on the controller. Requests are serialized by `admin_lock`.
pub async fn handle(shard: &Rc<Shard>, request: AdminRequest) -> AdminReply {
    let _permit = shard.admin_lock.acquire_permit(1).await.expect("the admin lock is never closed");
    let Some(controller) = &shard.controller else {
        return Vec::new();
    };
    let mut next = controller.borrow().metadata.clone();
    let shards = shard.config.shards;
    let mut outcomes = Vec::new();
    let mut opened: Vec<(String, Vec<(usize, i32)>)> = Vec::new();
    let mut deleted: Vec<String> = Vec::new();
    let apply;
    match request {
        AdminRequest::CreateTopics { topics, validate_only } => {
            apply = !validate_only;
            if topics.len() > TOPICS_CREATED_PER_REQUEST_MAX {
                let message = format!(
                    "{} topics in one request; create at most {TOPICS_CREATED_PER_REQUEST_MAX} at a time",
                    topics.len()
                );
                return topics.iter().map(|t| failed(&t.name, error_code::INVALID_REQUEST, message.clone())).collect();
            }
            for t in topics {
                if let Err(message) = validate_topic_name(&t.name) {
                    outcomes.push(failed(&t.name, error_code::INVALID_TOPIC_EXCEPTION, message));
                    continue;
                }
                if next.topics.contains_key(&t.name) {
                    outcomes.push(failed(
                        &t.name,
                        error_code::TOPIC_ALREADY_EXISTS,
                        format!("topic `{}` already exists", t.name),
                    ));
                    continue;
                }
                let count = if t.partitions == -1 && t.assignments.is_empty() {
                    shard.config.default_partitions
                } else if !t.assignments.is_empty() {
                    t.assignments.len() as i32
                } else {
                    t.partitions
                };
                if !(1..=PARTITIONS_MAX).contains(&count) {
                    outcomes.push(failed(
                        &t.name,
                        error_code::INVALID_PARTITIONS,
                        format!("{count} partitions; use 1 to {PARTITIONS_MAX}"),
                    ));
                    continue;
                }
                if t.replication_factor != -1 && t.replication_factor != 1 {
                    outcomes.push(failed(
                        &t.name,
                        error_code::INVALID_REPLICATION_FACTOR,
                        format!("replication factor {} but this cluster has 1 broker", t.replication_factor),
                    ));
                    continue;
                }
                if t.assignments.iter().any(|a| a.as_slice() != [shard.config.node_id]) {
                    outcomes.push(failed(
                        &t.name,
                        error_code::INVALID_REPLICA_ASSIGNMENT,
                        format!("replicas must be [{}], the only broker", shard.config.node_id),
                    ));
                    continue;
                }
                let mut configs = BTreeMap::new();
                let mut bad = None;
                for (k, v) in &t.configs {
                    match v {
                        Some(v) => {
                            configs.insert(k.clone(), v.clone());
                        }
                        None => bad = Some(format!("config `{k}` has no value")),
                    }
                }
                let pairs: Vec<(String, String)> = configs.clone().into_iter().collect();
                if let Some(message) = bad.or_else(|| log_config(&shard.config.log, &pairs).err()) {
                    outcomes.push(failed(&t.name, error_code::INVALID_CONFIG, message));
                    continue;
                }
                let placement =
                    match place_within_cap(&next, shards, count as usize, shard.config.partitions_per_shard_max) {
                        Ok(placement) => placement,
                        Err(message) => {
                            outcomes.push(failed(&t.name, error_code::POLICY_VIOLATION, message));
                            continue;
                        }
                    };
                let topic = Topic { id: random_id(), shards: placement.clone(), configs };
                outcomes.push(TopicOutcome {
                    name: t.name.clone(),
                    error_code: 0,
                    error_message: None,
                    partitions: count,
                    topic_id: topic.id_bytes(),
                });
                opened.push((t.name.clone(), placement.into_iter().enumerate().map(|(p, s)| (s, p as i32)).collect()));
                next.topics.insert(t.name, topic);
            }
        }
        AdminRequest::DeleteTopics { names } => {
            apply = true;
            for name in names {
                if crate::group::api::is_internal(&name) {
                    outcomes.push(failed(&name, error_code::INVALID_TOPIC_EXCEPTION, internal_message(&name)));
                    continue;
                }
                match next.topics.remove(&name) {
                    Some(t) => {
                        outcomes.push(TopicOutcome {
                            name: name.clone(),
                            topic_id: t.id_bytes(),
                            ..TopicOutcome::default()
                        });
                        deleted.push(name);
                    }
                    None => outcomes.push(failed(
                        &name,
                        error_code::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("topic `{name}` does not exist"),
                    )),
                }
            }
        }
        AdminRequest::CreatePartitions { topics, validate_only } => {
            apply = !validate_only;
            for (name, count) in topics {
                if crate::group::api::is_internal(&name) {
                    outcomes.push(failed(&name, error_code::INVALID_TOPIC_EXCEPTION, internal_message(&name)));
                    continue;
                }
                let Some(current) = next.topics.get(&name).map(|t| t.shards.len() as i32) else {
                    outcomes.push(failed(
                        &name,
                        error_code::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("topic `{name}` does not exist"),
                    ));
                    continue;
                };
                if count <= current || count > PARTITIONS_MAX {
                    outcomes.push(failed(
                        &name,
                        error_code::INVALID_PARTITIONS,
                        format!("topic `{name}` has {current} partitions; ask for more, up to {PARTITIONS_MAX}"),
                    ));
                    continue;
                }
                let cap = shard.config.partitions_per_shard_max;
                let added = match place_within_cap(&next, shards, (count - current) as usize, cap) {
                    Ok(added) => added,
                    Err(message) => {
                        outcomes.push(failed(&name, error_code::POLICY_VIOLATION, message));
                        continue;
                    }
                };
                let topic = next.topics.get_mut(&name).expect("checked above");
                topic.shards.extend(&added);
                opened.push((
                    name.clone(),
                    added.into_iter().enumerate().map(|(i, s)| (s, current + i as i32)).collect(),
                ));
                outcomes.push(TopicOutcome { name, partitions: count, ..TopicOutcome::default() });
            }
        }
    }
    if !apply || (opened.is_empty() && deleted.is_empty()) {
        return outcomes;
    }
    // Persist first: a topic exists once its metadata is durable.
    if let Err(e) = ringtail_log::write_file_atomic(&shard.config.data_dir, METADATA_FILE, next.encode()).await {
        tracing::error!(error = %e, "cannot persist topic metadata; stopping the broker");
        crate::logging::flush(std::time::Duration::from_secs(2));
        std::process::exit(70);
    }
    for (name, parts) in &opened {
        let configs: Vec<(String, String)> = next.topics[name].configs.clone().into_iter().collect();
        for owner in 0..shards {
            let partitions: Vec<i32> = parts.iter().filter(|(s, _)| *s == owner).map(|(_, p)| *p).collect();
            if partitions.is_empty() {
                continue;
            }
            let result = if owner == shard.id {
                shard.open_partitions(name, &partitions, &configs).await
            } else {
                let (tx, rx) = flume::bounded(1);
                shard
                    .send(
                        owner,
                        ShardMsg::OpenPartitions {
                            topic: name.clone(),
                            partitions,
                            configs: configs.clone(),
                            reply: tx,
                        },
                    )
                    .await;
                rx.recv_async().await.unwrap_or_else(|_| Err("shard stopped".into()))
            };
            if let Err(message) = result {
                tracing::error!(topic = %name, %message, "cannot open new partitions; stopping the broker");
                crate::logging::flush(std::time::Duration::from_secs(2));
                std::process::exit(70);
            }
        }
    }
    controller.borrow_mut().metadata = next.clone();
    broadcast(shard, Arc::new(next)).await;
    for name in deleted {
        for owner in 0..shards {
            if owner == shard.id {
                shard.delete_partitions_local(&name).await;
            } else {
                let (tx, rx) = flume::bounded(1);
                shard.send(owner, ShardMsg::DeletePartitions { topic: name.clone(), reply: tx }).await;
                let _ = rx.recv_async().await;
            }
        }
    }
    outcomes
}

/// Hands the new metadata to every shard and waits until each has it.
async fn broadcast(shard: &Rc<Shard>, metadata: Arc<Metadata>) {
    *shard.metadata.borrow_mut() = metadata.clone();
    for owner in (0..shard.config.shards).filter(|&s| s != shard.id) {
        let (tx, rx) = flume::bounded(1);
        shard.send(owner, ShardMsg::Metadata(metadata.clone(), tx)).await;
        let _ = rx.recv_async().await;
    }
}

/// Makes sure the topics exist, creating missing ones with the default partition count when
/// auto-creation is on. Returns the topics whose creation was refused, with the error.
pub async fn ensure_topics(shard: &Rc<Shard>, names: &[String]) -> Vec<(String, i16)> {
    let md = shard.metadata();
    let missing: Vec<NewTopic> = names
        .iter()
        .filter(|n| !md.topics.contains_key(*n) && validate_topic_name(n).is_ok())
        .map(|n| NewTopic {
            name: n.clone(),
            partitions: -1,
            replication_factor: -1,
            configs: Vec::new(),
            assignments: Vec::new(),
        })
        .collect();
    if missing.is_empty() || !shard.config.auto_create_topics {
        return Vec::new();
    }
    let mut refused = Vec::new();
    for outcome in submit(shard, AdminRequest::CreateTopics { topics: missing, validate_only: false }).await {
        match outcome.error_code {
            0 => tracing::info!(topic = %outcome.name, partitions = outcome.partitions, "auto-created topic"),
            // Another request created it first.
            error_code::TOPIC_ALREADY_EXISTS => {}
            code => refused.push((outcome.name, code)),
        }
    }
    refused
}
