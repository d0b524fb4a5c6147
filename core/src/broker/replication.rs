//! Replication on a broker: each shard fetches its follower replicas from their leaders
//! (Kafka's replica fetchers: one task and one connection per (shard, leader node), so a broker
//! pair has at most `--shards` fetch connections each way), and proposes the ISR changes of the
//! partitions it leads to the active controller (Kafka's AlterPartition).
//!
//! A follower fetches with Kafka's Fetch, as a Kafka follower does (topic ids, its replica id
//! and broker epoch, the current leader epoch and the epoch of its last batch), appends what it
//! gets as the leader wrote it, and, under `sync` durability, waits until that is on disk
//! before its next fetch: the next fetch's offset is what the leader counts as the follower's,
//! so the high watermark, and with it every acks=all acknowledgement, only passes what every
//! in-sync replica has made durable. A log that diverged is cut where the leader says
//! (DivergingEpoch); one behind the leader's log start is started again there.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use ringtail_net::client;
use ringtail_net::client::fetch::{FetchPartition, FetchRequest, FetchResponse, FetchTopic, FetchedPartition};
use ringtail_net::error_code;
use ringtail_replication::follower::{self, Applied, FetchOutcome, Fetched};
use ringtail_replication::metadata::isr::IsrProposal;
use ringtail_replication::quorum::broker_wire::{BrokerRequest, BrokerResponse};
use ringtail_replication::{NodeId, Partition, PartitionError, PartitionId, Role, ShardId, TopicId};

use super::Broker;
use crate::limits::{REPLICA_FETCH_PARTITION_BYTES_MAX, REPLICA_FETCH_RESPONSE_BYTES_MAX};
use crate::runtime::throttle;

/// The Fetch version followers speak: the first with `ReplicaState` (replica id and broker epoch).
const FETCH_VERSION: i16 = 15;
/// How long a follower's fetch waits at the leader for new data (Kafka's replica.fetch.wait.max.ms).
const FETCH_WAIT_MS: i32 = 500;
/// A fetch not answered within this long (beyond its wait) closes the connection.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a fetcher whose partitions are all held back by a follower-side throttle waits
/// for its budget to refill.
const THROTTLE_PAUSE: Duration = Duration::from_millis(100);
/// Pause after a failed connection or an error that only the metadata can clear.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// How often a shard looks for leaders it has no fetcher for.
const FETCHERS_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// How often a shard looks at its leaders' ISRs.
const ISR_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// How often a shard saves its replicas' high watermarks (Kafka's
/// replica.high.watermark.checkpoint.interval.ms).
const HIGH_WATERMARK_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
/// How long an AlterPartition may take at the controller.
const ALTER_PARTITION_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs this shard's replica fetchers until shutdown: one per leader node its follower replicas
/// fetch from, started when the first such replica appears and ended when none is left.
pub async fn run_fetchers(broker: Rc<Broker>) {
    // Dropping a task cancels it: fetchers end with this task (cancelled at shutdown).
    let mut running: HashMap<NodeId, glommio::Task<()>> = HashMap::new();
    let finished: Rc<RefCell<Vec<NodeId>>> = Rc::default();
    while !broker.is_shutting_down() {
        let mut leaders: Vec<NodeId> = broker
            .partitions
            .all()
            .iter()
            .filter_map(|p| match p.role() {
                Role::Follower { leader: Some(l) } if l != broker.node => Some(l),
                _ => None,
            })
            .collect();
        leaders.sort_unstable();
        leaders.dedup();
        for leader in finished.borrow_mut().drain(..) {
            running.remove(&leader);
        }
        for leader in leaders {
            if running.contains_key(&leader) {
                continue;
            }
            let (broker, finished) = (broker.clone(), finished.clone());
            let task = glommio::spawn_local(async move {
                fetch_from(broker, leader).await;
                finished.borrow_mut().push(leader);
            });
            running.insert(leader, task);
        }
        futures_lite::future::or(broker.shutdown_begun(), glommio::timer::sleep(FETCHERS_CHECK_INTERVAL)).await;
    }
}

/// One connection to a leader, one request at a time.
struct LeaderConnection {
    stream: TcpStream,
    correlation_id: i32,
}

impl LeaderConnection {
    async fn connect(address: &str) -> std::io::Result<LeaderConnection> {
        let addr = match address.parse::<std::net::SocketAddr>() {
            Ok(addr) => addr,
            // A name is resolved on the blocking thread: resolving may wait on the network.
            Err(_) => {
                let name = address.to_string();
                glommio::executor()
                    .spawn_blocking(move || {
                        std::net::ToSocketAddrs::to_socket_addrs(&name)
                            .and_then(|mut a| a.next().ok_or_else(|| std::io::Error::other("the name has no address")))
                    })
                    .await?
            }
        };
        let stream = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(LeaderConnection { stream, correlation_id: 0 })
    }

    async fn fetch(&mut self, request: &FetchRequest, client_id: &str) -> std::io::Result<FetchResponse> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = client::request_frame(request, FETCH_VERSION, self.correlation_id, Some(client_id));
        self.stream.write_all(&frame).await?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await?;
        let size = u32::from_be_bytes(size) as usize;
        // The response is bounded by the request's max_bytes (soft by one batch) plus its framing.
        if !(4..=REPLICA_FETCH_RESPONSE_BYTES_MAX * 2).contains(&size) {
            return Err(std::io::Error::other(format!("a fetch response of {size} bytes")));
        }
        let mut buf = vec![0u8; size];
        self.stream.read_exact(&mut buf).await?;
        let (correlation_id, response) =
            client::decode_response::<FetchRequest>(Bytes::from(buf), FETCH_VERSION).map_err(std::io::Error::other)?;
        if correlation_id != self.correlation_id {
            return Err(std::io::Error::other(format!(
                "correlation id {correlation_id}, expected {}",
                self.correlation_id
            )));
        }
        Ok(response)
    }
}

/// The follower replicas of this shard that `leader` leads, with the leader epoch each is at.
fn followed(broker: &Broker, leader: NodeId) -> Vec<Rc<Partition>> {
    broker.partitions.all().into_iter().filter(|p| p.role() == Role::Follower { leader: Some(leader) }).collect()
}

/// Fetches this shard's replicas led by `leader` until there are none (or shutdown).
async fn fetch_from(broker: Rc<Broker>, leader: NodeId) {
    let client_id = format!("ringtail-replica-{}-shard-{}", broker.node, broker.id.0);
    let mut connection: Option<LeaderConnection> = None;
    let mut said_unreachable = false;
    while !broker.is_shutting_down() {
        let mut partitions = followed(&broker, leader);
        if partitions.is_empty() {
            return;
        }
        // Replicas outside the ISR under a follower-side throttle are fetched while it has
        // budget left, each for at most that much; left out of the fetch otherwise.
        let follower_throttle = broker.throttle(throttle::Side::Follower);
        let throttled: HashMap<PartitionId, usize> = match &follower_throttle {
            Some(t) => partitions.iter().filter_map(|p| Some((p.id(), t.budget(p, broker.node)?))).collect(),
            None => HashMap::new(),
        };
        if throttled.values().any(|b| *b == 0) {
            partitions.retain(|p| !throttled.contains_key(&p.id()));
            if partitions.is_empty() {
                glommio::timer::sleep(THROTTLE_PAUSE).await;
                continue;
            }
        }
        let view = broker.view();
        let Some(endpoint) = view.endpoint(leader) else {
            glommio::timer::sleep(RETRY_PAUSE).await;
            continue;
        };
        if connection.is_none() {
            match LeaderConnection::connect(&format!("{}:{}", endpoint.host, endpoint.port)).await {
                Ok(c) => {
                    connection = Some(c);
                    said_unreachable = false;
                }
                Err(e) => {
                    if !std::mem::replace(&mut said_unreachable, true) {
                        tracing::warn!(%leader, error = %e, "cannot reach a partition leader to replicate from; retrying");
                    }
                    glommio::timer::sleep(RETRY_PAUSE).await;
                    continue;
                }
            }
        }
        let broker_epoch = view.image.brokers().get(&broker.node).map_or(-1, |b| b.epoch);
        let (request, sent) = fetch_request(broker.node, broker_epoch, &partitions, &throttled);
        let conn = connection.as_mut().expect("connected above");
        let limit = FETCH_TIMEOUT + Duration::from_millis(FETCH_WAIT_MS as u64);
        let answer = futures_lite::future::or(conn.fetch(&request, &client_id), async {
            glommio::timer::sleep(limit).await;
            Err(std::io::Error::other(format!("no answer within {} ms", limit.as_millis())))
        })
        .await;
        let response = match answer {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%leader, error = %e, "replica fetch failed; reconnecting");
                connection = None;
                glommio::timer::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        let (pause, throttled_bytes) = apply_response(&broker, response, sent, &throttled).await;
        if let Some(t) = &follower_throttle {
            t.take(throttled_bytes);
        }
        if let Pause::Yes = pause {
            glommio::timer::sleep(RETRY_PAUSE).await;
        }
    }
}

/// What a follower's fetch asked of each partition: the replica, its leader epoch and the
/// fetch offset then.
type Asked = HashMap<PartitionId, (Rc<Partition>, i32, i64)>;

/// A follower's fetch of `partitions`, and what was asked of each (by topic id and index);
/// throttled ones ask for at most their budget.
fn fetch_request(
    node: NodeId,
    broker_epoch: i64,
    partitions: &[Rc<Partition>],
    throttled: &HashMap<PartitionId, usize>,
) -> (FetchRequest, Asked) {
    let mut topics: BTreeMap<TopicId, Vec<FetchPartition>> = BTreeMap::new();
    let mut sent = HashMap::new();
    for p in partitions {
        let id = p.id();
        let epoch = p.leader_epoch().0;
        let offset = p.log_end_offset() as i64;
        topics.entry(id.topic).or_default().push(FetchPartition {
            partition: id.index,
            current_leader_epoch: epoch,
            fetch_offset: offset,
            last_fetched_epoch: p.last_fetched_epoch(),
            log_start_offset: p.log_start_offset() as i64,
            partition_max_bytes: throttled
                .get(&id)
                .map_or(REPLICA_FETCH_PARTITION_BYTES_MAX, |b| (*b).clamp(1, REPLICA_FETCH_PARTITION_BYTES_MAX))
                as i32,
        });
        sent.insert(id, (p.clone(), epoch, offset));
    }
    let request = FetchRequest {
        replica_id: node.0,
        replica_epoch: broker_epoch,
        cluster_id: None,
        max_wait_ms: FETCH_WAIT_MS,
        min_bytes: 1,
        max_bytes: REPLICA_FETCH_RESPONSE_BYTES_MAX as i32,
        isolation_level: 0,
        session_id: 0,
        session_epoch: -1,
        topics: topics
            .into_iter()
            .map(|(topic, partitions)| FetchTopic { name: String::new(), topic_id: topic.0, partitions })
            .collect(),
        forgotten_topics: Vec::new(),
        rack_id: String::new(),
    };
    (request, sent)
}

enum Pause {
    Yes,
    No,
}

/// Takes a leader's answer: batches appended, diverged logs cut, high watermarks and log starts
/// followed. Under sync durability it returns once what was appended is durable, so the next
/// fetch reports only durable offsets. A replica whose leader epoch changed since the request
/// ignores its part (the data may be the old leader's).
/// Also the bytes received for `throttled` replicas.
async fn apply_response(
    broker: &Broker,
    response: FetchResponse,
    sent: Asked,
    throttled: &HashMap<PartitionId, usize>,
) -> (Pause, usize) {
    let now = ringtail_log::now_ms();
    let mut pause = Pause::No;
    let mut throttled_bytes = 0;
    let mut durable_waits = Vec::new();
    for topic in response.topics {
        for part in topic.partitions {
            let id = PartitionId { topic: TopicId(topic.topic_id), index: part.partition_index };
            let Some((p, epoch, offset)) = sent.get(&id) else { continue };
            if p.leader_epoch().0 != *epoch || p.role() == Role::Leader {
                continue;
            }
            if throttled.contains_key(&id) {
                throttled_bytes += part.records.as_ref().map_or(0, |r| r.len());
            }
            match apply_partition(broker, p, *offset, part, now).await {
                Ok(Some(wait)) => durable_waits.push((p.clone(), wait)),
                Ok(None) => {}
                Err(Some(e)) => {
                    broker.storage_failed(p, &e);
                    if !e.is_storage_failure() {
                        tracing::debug!(topic = %p.topic(), partition = id.index, error = %e, "replica fetch not applied");
                    }
                    pause = Pause::Yes;
                }
                Err(None) => pause = Pause::Yes,
            }
        }
    }
    for (p, wait) in durable_waits {
        if let Err(e) = wait.await {
            broker.storage_failed(&p, &PartitionError::Log(e));
        }
    }
    (pause, throttled_bytes)
}

/// One partition's part of a leader's answer, through the replication layer's follower step.
/// `Ok(Some(wait))`: batches appended that must be durable before the next fetch; `Err(None)`:
/// nothing to do until the metadata changes.
async fn apply_partition(
    broker: &Broker,
    p: &Rc<Partition>,
    fetch_offset: i64,
    part: FetchedPartition,
    now: i64,
) -> Result<Option<ringtail_log::DurableWait>, Option<PartitionError>> {
    let outcome = match part.error_code {
        error_code::NONE => FetchOutcome::Ok,
        error_code::OFFSET_OUT_OF_RANGE => FetchOutcome::OffsetOutOfRange,
        _ => FetchOutcome::Retry,
    };
    let (start, end) = (p.log_start_offset(), p.log_end_offset());
    let fetched = Fetched {
        outcome,
        high_watermark: part.high_watermark,
        log_start_offset: part.log_start_offset,
        diverging: part.diverging_epoch.map(|d| (d.epoch, d.end_offset)),
        records: part.records,
    };
    let diverged = fetched.diverging;
    match follower::apply_fetched(p, fetch_offset, fetched, now).await.map_err(Some)? {
        Applied::Appended { bytes, durable } => {
            broker.metrics.replication_bytes_in.set(broker.metrics.replication_bytes_in.get() + bytes as u64);
            Ok(durable)
        }
        Applied::Nothing => {
            if (p.log_start_offset(), p.log_end_offset()) != (start, end) {
                tracing::info!(
                    topic = %p.topic(), partition = p.id().index, ?diverged, from = ?(start, end),
                    to = ?(p.log_start_offset(), p.log_end_offset()),
                    "the follower's log was cut to its leader's"
                );
            }
            Ok(None)
        }
        Applied::Retry => Err(None),
    }
}

/// Proposes this shard's leaders' ISR changes to the active controller (through shard 0's link)
/// and saves high watermarks that moved, until shutdown. A single node (no link) only saves.
pub async fn maintain_isr(broker: Rc<Broker>) {
    let lag_max_ms = broker.config.cluster.replica_lag_time_max.as_millis() as i64;
    let mut last_checkpoint = std::time::Instant::now();
    while !broker.is_shutting_down() {
        futures_lite::future::or(broker.shutdown_begun(), glommio::timer::sleep(ISR_CHECK_INTERVAL)).await;
        if broker.is_shutting_down() {
            return;
        }
        rebuild_damaged(&broker).await;
        let now = ringtail_log::now_ms();
        let partitions = broker.partitions.all();
        let view = broker.view();
        let eligible = |node: NodeId| view.image.brokers().get(&node).is_some_and(|b| !b.fenced && !b.shutting_down);
        let proposals: Vec<(Rc<Partition>, IsrProposal)> = partitions
            .iter()
            .filter_map(|p| p.isr_proposal(now, lag_max_ms, eligible).map(|q| (p.clone(), q)))
            .collect();
        if !proposals.is_empty() {
            propose(&broker, proposals, now).await;
        }
        if last_checkpoint.elapsed() >= HIGH_WATERMARK_CHECKPOINT_INTERVAL {
            last_checkpoint = std::time::Instant::now();
            for p in partitions.iter().filter(|p| p.replicas().len() > 1) {
                if let Err(e) = p.checkpoint_high_watermark().await {
                    broker.storage_failed(p, &e);
                }
            }
        }
    }
}

/// Rebuilds this shard's damaged replicas (storage failed; the heartbeat reports them) once
/// the controller has taken them out of their ISR and another replica leads: the replica's
/// files are deleted and it starts empty, as a follower, fetching everything from the leader
/// (Kafka's rebuild of a replica on a failed log directory). The last in-sync replica is never
/// rebuilt: it stays offline rather than lose what only it holds.
async fn rebuild_damaged(broker: &Rc<Broker>) {
    let damaged = broker.partitions.damaged();
    if damaged.is_empty() {
        return;
    }
    let view = broker.view();
    for id in damaged {
        let (Some(topic), Some(state)) = (view.image.topic_by_id(id.topic), view.image.partition(id)) else { continue };
        let me = broker.node;
        let out_of_isr = state.replicas.contains(&me) && !state.isr.contains(&me);
        let led_elsewhere = state.leader.is_some_and(|l| l != me);
        if !(out_of_isr && led_elsewhere) {
            continue;
        }
        let dir = crate::runtime::partition_dir(&broker.config.data_dir, &topic.name, id.index);
        tracing::warn!(
            topic = %topic.name, partition = id.index, leader = ?state.leader,
            "rebuilding a damaged replica: deleting its files and fetching it again from the leader"
        );
        if let Err(e) = broker.drop_replica(id, dir.clone()).await {
            tracing::error!(
                dir = %dir.display(), error = %e,
                "cannot delete a damaged replica's files; it stays offline and is tried again at the next check"
            );
            let error = ringtail_log::LogError::Io { op: "remove", path: dir, source: std::sync::Arc::new(e) };
            broker.partitions.set_offline(id, Rc::from(topic.name.as_ref()), error);
            continue;
        }
        if let Err(e) = broker.open_replicas(topic, &[id.index]).await {
            tracing::error!(topic = %topic.name, partition = id.index, error = %e, "cannot open a rebuilt replica");
        }
        broker.metrics.replicas_rebuilt.set(broker.metrics.replicas_rebuilt.get() + 1);
    }
}

async fn propose(broker: &Rc<Broker>, proposals: Vec<(Rc<Partition>, IsrProposal)>, now: i64) {
    let view = broker.view();
    let Some(broker_epoch) = view.image.brokers().get(&broker.node).map(|b| b.epoch) else { return };
    for (p, q) in &proposals {
        p.isr_proposed(q, now);
    }
    let request = BrokerRequest::AlterPartition {
        node: broker.node,
        broker_epoch,
        proposals: proposals.iter().map(|(_, q)| q.clone()).collect(),
    };
    let answer = broker
        .on_shard(ShardId(0), move |b| async move {
            match b.controller.as_ref().and_then(|c| c.link()) {
                Some(link) => link.client.call_leader_within(&request, 2, ALTER_PARTITION_TIMEOUT).await,
                None => BrokerResponse::Refused("this node is not in a cluster".into()),
            }
        })
        .await;
    let outcomes = match answer {
        Some(BrokerResponse::PartitionsAltered(outcomes)) if outcomes.len() == proposals.len() => outcomes,
        other => {
            tracing::debug!(?other, "ISR changes not taken by the controller; proposing again");
            for (p, q) in &proposals {
                p.isr_answered(q, None);
            }
            return;
        }
    };
    for ((p, q), outcome) in proposals.iter().zip(outcomes) {
        if let Ok(decided) = &outcome {
            let counter = match decided.isr.len() < p.isr().len() {
                true => &broker.metrics.isr_shrinks,
                false => &broker.metrics.isr_expands,
            };
            counter.set(counter.get() + 1);
        }
        match &outcome {
            Ok(decided) => tracing::info!(
                topic = %p.topic(), partition = q.partition.index, isr = ?decided.isr, partition_epoch = decided.partition_epoch,
                "in-sync replicas changed"
            ),
            Err(refusal) => tracing::info!(
                topic = %p.topic(), partition = q.partition.index, proposed = ?q.isr, %refusal,
                "the controller refused an ISR change"
            ),
        }
        p.isr_answered(q, outcome.as_ref().ok());
    }
}
