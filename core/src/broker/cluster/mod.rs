//! A node of a cluster, on shard 0: its controller (a voter of the quorum, serving the
//! controller listener) and its broker's link to the controllers: heartbeats (which register
//! the broker and keep its session), the committed metadata followed and applied, and
//! metadata changes proposed to the active controller.
//!
//! A broker keeps a copy of the committed metadata it applied (`cluster-metadata/broker/`,
//! checkpoint and records like a single node's metadata log), so it restarts with its
//! partitions even while no controller answers, and follows on from there.

pub mod link;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpListener;
use ringtail_replication::identity::{Identity, IdentityError, META_PROPERTIES_FILE};
use ringtail_replication::metadata::store::{self, MetadataLog, BROKER_COPY_DIR, CHECKPOINT_FILE, RECORDS_FILE};
use ringtail_replication::metadata::{MetadataImage, MetadataRecord};
use ringtail_replication::quorum::broker_client::BrokerClient;
use ringtail_replication::quorum::broker_wire::{BrokerRequest, BrokerResponse, FetchBody};
use ringtail_replication::quorum::tcp::{serve_controller, ListenerTimeouts, TcpTransport};
use ringtail_replication::quorum::{self, ControllerNode, ControllerService, QuorumConfig, ServiceTimings, QUORUM_DIR};
use ringtail_replication::{NodeId, PartitionId, ShardId};

pub use self::link::ClusterLink;
use self::link::{CALL_TIMEOUT, CONNECT_TIMEOUT};
use super::controller::service::{apply, apply_image, fail_stop};
use super::producer_ids::{ProducerIdError, BLOCK};
use super::Broker;
use crate::config::BrokerConfig;
use crate::runtime::routing::NodeView;

/// How long a fetch waits at the controller for new records.
const FETCH_WAIT_MS: u32 = 500;
/// A refused registration is said again after this long at the earliest.
const REFUSAL_SAID_EVERY: Duration = Duration::from_secs(10);
/// Pause after a failed call before the next one.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The node that forms the quorum: the lowest voter id.
pub fn is_initializer(config: &BrokerConfig) -> bool {
    let lowest = config.cluster.voters.iter().map(|v| v.node_id).min();
    config.cluster.roles.controller && lowest == Some(config.node_id)
}

/// The broker's copy of the metadata at start-up: created empty for a new node, else loaded
/// and checkpointed (a torn last append cut). Blocking: start-up only.
pub fn load_copy(data_dir: &Path) -> anyhow::Result<MetadataImage> {
    let dir = data_dir.join(BROKER_COPY_DIR);
    if !dir.join(CHECKPOINT_FILE).exists() {
        store::write_checkpoint_in(&dir, &MetadataImage::default())?;
    }
    let loaded = store::load_in(&dir)?;
    match store::write_checkpoint_in(&dir, &loaded.image) {
        Err(e) if e.is_no_space() => {
            tracing::warn!(error = %e, "no space to checkpoint the broker's metadata copy; it is replayed");
            if loaded.torn_bytes > 0 {
                store::cut_torn_tail_in(&dir, loaded.torn_bytes)?;
            }
        }
        other => other?,
    }
    Ok(loaded.image)
}

/// The quorum's timings from the node's settings.
fn quorum_config(config: &BrokerConfig) -> QuorumConfig {
    let election = config.cluster.election_timeout.as_millis() as u64;
    QuorumConfig {
        election_timeout_min_ms: election,
        election_timeout_max_ms: election * 2,
        heartbeat_interval_ms: config.cluster.heartbeat_interval.as_millis() as u64,
        ..QuorumConfig::default()
    }
}

/// What the quorum's first change holds, decided by the node that forms it: the cluster id,
/// then (for a single node's data directory becoming the cluster's first node) its metadata,
/// then the bootstrap feature levels it lacks.
pub fn first_records(
    cluster_id: &str,
    single_node: Option<&MetadataImage>,
    producer_ids_end: i64,
) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::ClusterCreated { cluster_id: cluster_id.to_string() }];
    let mut scratch = MetadataImage::default();
    if let Some(image) = single_node {
        // Registrations are a live cluster's, never carried over.
        records.extend(image.to_records().into_iter().filter(|r| {
            !matches!(
                r,
                MetadataRecord::ClusterCreated { .. }
                    | MetadataRecord::BrokerRegistered { .. }
                    | MetadataRecord::BrokerFenced { .. }
                    | MetadataRecord::BrokerUnfenced { .. }
                    | MetadataRecord::BrokerShuttingDown { .. }
                    | MetadataRecord::ReplicasOffline { .. }
            )
        }));
    }
    for (i, r) in records.iter().enumerate() {
        // The records of one image always apply to an empty one.
        let _ = scratch.apply(i as u64, r);
    }
    records.extend(ringtail_replication::metadata::features::bootstrap_records(&scratch));
    // Ids a single node handed out are never handed out again.
    if producer_ids_end > scratch.producer_ids_end() {
        records.push(MetadataRecord::ProducerIdsReserved { node: NodeId(-1), end: producer_ids_end });
    }
    records
}

/// Starts this node's controller on the current shard: its Raft from the quorum directory, the
/// controller listener, the session checks, and, on the node that forms a new quorum, the
/// quorum's membership and first change. The tasks live as long as the returned handles.
pub async fn start_controller(
    config: &BrokerConfig,
    first: Option<Vec<MetadataRecord>>,
) -> anyhow::Result<(Rc<ControllerService>, Vec<glommio::Task<()>>)> {
    let listen = config.cluster.controller_listen.expect("a controller has a listener (checked at start-up)");
    let given = config.cluster.voters.iter().map(|v| (v.node_id as u64, v.address())).collect();
    let transport = Rc::new(TcpTransport::new(CONNECT_TIMEOUT, Duration::from_secs(30), given));
    let id = config.node_id as u64;
    let node = quorum::start_node(id, &config.data_dir.join(QUORUM_DIR), &quorum_config(config), transport.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the controller: {e}"))?;
    let timings =
        ServiceTimings { session_timeout: config.cluster.broker_session_timeout, ..ServiceTimings::default() };
    let service = ControllerService::new(id, node.clone(), timings);
    let listener = TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let timeouts = ListenerTimeouts { stall: Duration::from_secs(10), idle: Duration::from_secs(300) };
    let restart = Restart { id, dir: config.data_dir.join(QUORUM_DIR), config: quorum_config(config), transport };
    let mut tasks = vec![
        glommio::spawn_local(supervise(service.clone(), restart)),
        glommio::spawn_local(serve_controller(listener, service.clone(), timeouts)),
        glommio::spawn_local(service.clone().run_sessions()),
    ];
    if let Some((interval, percentage)) = config.cluster.leader_balance {
        tasks.push(glommio::spawn_local(service.clone().run_leader_balance(interval, percentage)));
    }
    if let Some(first) = first {
        let voters: BTreeMap<u64, ControllerNode> =
            config.cluster.voters.iter().map(|v| (v.node_id as u64, ControllerNode::new(v.address()))).collect();
        match quorum::initialize(&node.raft, voters).await {
            Ok(()) => tracing::info!(voters = config.cluster.voters.len(), "formed the controller quorum"),
            Err(e) => tracing::info!(error = %e, "the controller quorum was formed already"),
        }
        let client = BrokerClient::new(
            config.cluster.voters.iter().map(|v| (v.node_id as u64, v.address())).collect(),
            CONNECT_TIMEOUT,
            CALL_TIMEOUT,
        );
        tasks.push(glommio::spawn_local(async move { write_first(&client, first).await }));
    }
    tracing::info!(%listen, node = id, "controller listening");
    Ok((service, tasks))
}

/// What restarting a controller's Raft takes.
struct Restart {
    id: u64,
    dir: std::path::PathBuf,
    config: QuorumConfig,
    transport: Rc<TcpTransport>,
}

/// How often the supervisor looks at the Raft's state.
const SUPERVISE_INTERVAL: Duration = Duration::from_millis(500);
/// The first pause before a stopped Raft is started again; doubled after each stop, up to the
/// maximum, so a full disk costs a retry now and then rather than a busy loop.
const RESTART_PAUSE_MIN: Duration = Duration::from_secs(1);
const RESTART_PAUSE_MAX: Duration = Duration::from_secs(30);

/// Watches the controller's Raft and starts it again from its directory when it stopped on an
/// error (a failed write or fdatasync of the quorum log, a full disk): openraft stops a node
/// whose storage failed, and the node's log on disk stays what was made durable, so a new
/// node from the same directory rejoins as a restarted process would. The broker beside it
/// keeps serving throughout; the other controllers carry the quorum meanwhile.
async fn supervise(service: Rc<ControllerService>, restart: Restart) {
    let mut pause = RESTART_PAUSE_MIN;
    let mut healthy_since = std::time::Instant::now();
    loop {
        glommio::timer::sleep(SUPERVISE_INTERVAL).await;
        let metrics = service.node().metrics();
        let Err(fatal) = metrics.running_state else {
            // A node that ran a while without stopping starts the backoff over.
            if healthy_since.elapsed() > RESTART_PAUSE_MAX * 2 {
                pause = RESTART_PAUSE_MIN;
            }
            continue;
        };
        tracing::error!(error = %fatal, pause_ms = pause.as_millis() as u64, "the controller's Raft stopped; starting it again from its directory");
        glommio::timer::sleep(pause).await;
        pause = (pause * 2).min(RESTART_PAUSE_MAX);
        let old = service.node();
        let _ = old.raft.shutdown().await;
        drop(old);
        match quorum::start_node(restart.id, &restart.dir, &restart.config, restart.transport.clone()).await {
            Ok(node) => {
                service.replace_node(node);
                healthy_since = std::time::Instant::now();
                tracing::info!("the controller's Raft is running again");
            }
            Err(e) => tracing::error!(error = %e, "the controller's Raft could not be started again; retrying"),
        }
    }
}

/// Writes the quorum's first change through whichever controller is active, decided on the
/// empty metadata; done once the metadata holds a cluster id (this change, or one written
/// before a restart).
async fn write_first(client: &BrokerClient, first: Vec<MetadataRecord>) {
    let request = BrokerRequest::Propose { expected: None, records: first };
    loop {
        match client.call_leader(&request, 3).await {
            BrokerResponse::Proposed { last, .. } => {
                tracing::info!(last_offset = last, "wrote the cluster's first metadata");
                return;
            }
            // The metadata is not empty: the first change is there already.
            BrokerResponse::Stale { .. } => return,
            BrokerResponse::Refused(reason) => {
                // Checked at start-up; a refusal here is a bug, and the cluster cannot form.
                tracing::error!(%reason, "the cluster's first metadata was refused");
                return;
            }
            _ => glommio::timer::sleep(RETRY_PAUSE).await,
        }
    }
}

/// Sends heartbeats to the active controller until shutdown: the first registers this broker;
/// the answers say its epoch and whether it is fenced.
pub async fn heartbeats(broker: Rc<Broker>, link: Rc<ClusterLink>) {
    let mut said: Option<(String, std::time::Instant)> = None;
    loop {
        let request = link.heartbeat_request(&broker.view(), damaged_replicas(&broker).await);
        match link.client.call_leader_within(&request, 3, link.heartbeat_timeout).await {
            BrokerResponse::Heartbeat { broker_epoch, fenced } => {
                if link.broker_epoch.replace(Some(broker_epoch)) != Some(broker_epoch) {
                    tracing::info!(broker_epoch, controller = ?link.client.leader(), "registered with the controller");
                }
                if link.fenced.replace(fenced) != fenced {
                    match fenced {
                        true => tracing::info!("this broker is fenced: it leads nothing until it is unfenced"),
                        false => tracing::info!("this broker is unfenced: it may lead partitions"),
                    }
                }
            }
            BrokerResponse::Refused(reason) => {
                // Said when it changes, and every 10 s while it lasts (a restart within the old
                // process's session is refused until that session ends).
                let now = std::time::Instant::now();
                if said.as_ref().is_none_or(|(r, at)| *r != reason || now.duration_since(*at) >= REFUSAL_SAID_EVERY) {
                    tracing::warn!(%reason, "the controller refused this broker's registration; retrying");
                    said = Some((reason, now));
                }
            }
            other => tracing::debug!(?other, "heartbeat not answered"),
        }
        // Unfenced as soon as caught up, then at the configured pace.
        let pause = if link.fenced.get() { Duration::from_millis(100) } else { link.heartbeat_interval };
        glommio::timer::sleep(pause).await;
    }
}

/// This broker's damaged replicas (storage failed), asked of every shard; at most
/// `OFFLINE_REPLICAS_PER_BROKER_MAX`, the controller's limit.
async fn damaged_replicas(broker: &Rc<Broker>) -> Vec<PartitionId> {
    let mut all = Vec::new();
    for shard in (0..broker.config.shards).map(ShardId) {
        if let Some(ids) = broker.on_shard(shard, |b| async move { b.partitions.damaged() }).await {
            all.extend(ids);
        }
    }
    all.sort_unstable();
    all.truncate(ringtail_replication::limits::OFFLINE_REPLICAS_PER_BROKER_MAX);
    all
}

/// Controlled shutdown: asks the active controller to fence this broker (moving its
/// leadership away) and waits at most `limit` in all for it.
pub async fn controlled_shutdown(broker: &Rc<Broker>, link: &ClusterLink, limit: Duration) {
    link.shutting_down.set(true);
    let fenced = async {
        loop {
            let request = link.heartbeat_request(&broker.view(), damaged_replicas(broker).await);
            match link.client.call_leader_within(&request, 2, link.heartbeat_timeout).await {
                BrokerResponse::Heartbeat { fenced: true, .. } => return,
                _ => glommio::timer::sleep(Duration::from_millis(100)).await,
            }
        }
    };
    match glommio::timer::timeout(limit, async {
        fenced.await;
        Ok(())
    })
    .await
    {
        Ok(()) => tracing::info!("fenced for shutdown: leadership moved away"),
        Err(_) => tracing::warn!("shutting down without the controller's fence (no controller answered in time)"),
    }
}

/// Follows the committed metadata from the controllers and applies it, until
/// `stop_following` (checked between applies, so that records written to the copy are always
/// carried out).
pub async fn follow(broker: Rc<Broker>, link: Rc<ClusterLink>) {
    let mut no_space = NoSpace::default();
    while !link.stop_following.get() {
        let view = broker.view();
        let from = view.image.applied.map_or(0, |a| a + 1);
        // A long poll: answered within its wait by a live controller; a stopped one costs the wait
        // and a heartbeat's timeout before the next voter is asked.
        let timeout = Duration::from_millis(FETCH_WAIT_MS as u64) + link.heartbeat_timeout;
        let response = link.client.call_any(&BrokerRequest::Fetch { from, wait_ms: FETCH_WAIT_MS }, timeout).await;
        match response {
            BrokerResponse::Fetched { body: FetchBody::Records { first, records }, .. } => {
                if first != from || records.is_empty() {
                    glommio::timer::sleep(RETRY_PAUSE).await;
                    continue;
                }
                let _applying = Applying::new(&link.applying);
                let copy = link.copy.borrow().clone();
                match copy.append(&records).await {
                    Ok(at) if at == first => {}
                    Ok(at) => fail_stop(
                        "the broker's metadata copy is out of step",
                        &format!("records for offset {first} were written at {at}"),
                    ),
                    // A full disk: nothing was carried out; the same records are fetched again
                    // until there is space (the broker serves what it has meanwhile).
                    Err(e) if e.is_no_space() => {
                        no_space.observe(&e);
                        glommio::timer::sleep(NO_SPACE_PAUSE).await;
                        continue;
                    }
                    Err(e) => fail_stop("cannot write the broker's metadata copy", &e),
                }
                no_space.over();
                apply(&broker, first, &records).await;
                adopt_cluster_id(&broker).await;
            }
            BrokerResponse::Fetched { body: FetchBody::Image(bytes), .. } => {
                let image = match store::decode_checkpoint(&bytes, Path::new("the controller's image")) {
                    Ok(image) => image,
                    Err(e) => {
                        tracing::warn!(error = %e, "a controller sent a damaged metadata image");
                        glommio::timer::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                };
                if image.applied.is_none_or(|a| view.image.applied.is_some_and(|mine| a <= mine)) {
                    glommio::timer::sleep(RETRY_PAUSE).await;
                    continue;
                }
                let _applying = Applying::new(&link.applying);
                if let Err(e) = reset_copy(&link, bytes.to_vec(), image.applied).await {
                    no_space.observe(&e);
                    glommio::timer::sleep(NO_SPACE_PAUSE).await;
                    continue;
                }
                no_space.over();
                tracing::info!(offset = ?image.applied, "caught up with the metadata from the controller's image");
                apply_image(&broker, image).await;
                adopt_cluster_id(&broker).await;
            }
            BrokerResponse::Fetched { body: FetchBody::UpToDate, .. } => {}
            other => {
                tracing::debug!(?other, "metadata fetch not answered");
                glommio::timer::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Marks the follower busy with records it must carry out, while alive.
struct Applying<'a>(&'a Cell<bool>);

impl<'a> Applying<'a> {
    fn new(flag: &'a Cell<bool>) -> Applying<'a> {
        flag.set(true);
        Applying(flag)
    }
}

impl Drop for Applying<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Stops the follower at shutdown: at once while it waits for the controllers, after the apply
/// in progress otherwise (a crash there is covered by the start-up load of the copy).
pub async fn stop_following(link: &ClusterLink, task: glommio::Task<()>) {
    link.stop_following.set(true);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while link.applying.get() && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    task.cancel().await;
}

/// Replaces the broker's metadata copy with an image (checkpoint, empty records). A full disk
/// before the checkpoint is replaced leaves the copy as it was: the error, to try again later.
async fn reset_copy(
    link: &ClusterLink,
    checkpoint: Vec<u8>,
    applied: Option<u64>,
) -> Result<(), ringtail_log::LogError> {
    match ringtail_log::write_file_atomic(&link.copy_dir, CHECKPOINT_FILE, checkpoint).await {
        Err(e) if e.is_no_space() => return Err(e),
        Err(e) => fail_stop("cannot write the broker's metadata copy", &e),
        Ok(()) => {}
    }
    if let Err(e) = ringtail_log::write_file_atomic(&link.copy_dir, RECORDS_FILE, Vec::new()).await {
        fail_stop("cannot write the broker's metadata copy", &e);
    }
    match MetadataLog::open_in(&link.copy_dir, applied).await {
        Ok(log) => *link.copy.borrow_mut() = Rc::new(log),
        Err(e) => fail_stop("cannot open the broker's metadata copy", &e),
    }
    Ok(())
}

/// Pause before fetching again when the metadata copy could not be written for lack of space.
const NO_SPACE_PAUSE: Duration = Duration::from_secs(1);

/// Says once per episode that the metadata copy is held back by a full disk, and when it ends.
#[derive(Default)]
struct NoSpace(bool);

impl NoSpace {
    fn observe(&mut self, error: &dyn std::fmt::Display) {
        if !std::mem::replace(&mut self.0, true) {
            tracing::warn!(%error, "no space for the broker's metadata copy: metadata changes wait here until there is");
        }
    }

    fn over(&mut self) {
        if std::mem::replace(&mut self.0, false) {
            tracing::info!("the broker's metadata copy is written again");
        }
    }
}

/// Records the cluster id the quorum holds in `meta.properties` the first time it is seen;
/// a data directory of another cluster stops the broker.
async fn adopt_cluster_id(broker: &Rc<Broker>) {
    let view = broker.view();
    let Some(id) = view.image.cluster_id() else { return };
    if view.cluster_id.as_ref() == id {
        return;
    }
    record_cluster_id(&broker.config.data_dir, view.node, &view.cluster_id, id).await;
    let view = Arc::new(NodeView { cluster_id: Arc::from(id), ..(*view).clone() });
    super::controller::service::publish(broker, view).await;
}

/// Records `committed`, the cluster id the quorum holds, in `meta.properties` in place of
/// `recorded` (empty: none yet); a node of another cluster stops with a message.
pub async fn record_cluster_id(data_dir: &Path, node: NodeId, recorded: &str, committed: &str) {
    if !recorded.is_empty() {
        let e = IdentityError::ClusterMismatch {
            dir: data_dir.to_path_buf(),
            recorded: recorded.to_string(),
            configured: committed.to_string(),
        };
        fail_stop("this node belongs to another cluster than its controllers", &e);
    }
    let identity = Identity { cluster_id: committed.to_string(), node_id: node };
    if let Err(e) =
        ringtail_log::write_file_atomic(data_dir, META_PROPERTIES_FILE, identity.encode().into_bytes()).await
    {
        fail_stop("cannot record the cluster id", &e);
    }
    tracing::info!(cluster_id = %committed, "joined the cluster");
}

/// Reserves the next block of the cluster's producer ids through the active controller; its
/// first id. Decided on this broker's metadata like any change (a block from the reserved end).
pub async fn reserve_producer_ids(broker: &Broker, link: &ClusterLink) -> Result<i64, ProducerIdError> {
    let mut reason = String::new();
    for _ in 0..5 {
        let view = broker.view();
        let start = view.image.producer_ids_end();
        let end = start.checked_add(BLOCK).ok_or(ProducerIdError::Exhausted)?;
        let records = vec![MetadataRecord::ProducerIdsReserved { node: broker.node, end }];
        match link.client.call_leader(&BrokerRequest::Propose { expected: view.image.applied, records }, 4).await {
            BrokerResponse::Proposed { .. } => return Ok(start),
            BrokerResponse::Stale { applied } => {
                super::controller::service::wait_applied(broker, applied, Duration::from_secs(5)).await;
            }
            other => reason = format!("{other:?}"),
        }
    }
    Err(ProducerIdError::Quorum(reason))
}
