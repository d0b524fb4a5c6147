//! The server, the top layer: the broker's start-up (identity, metadata and placement read
//! before any shard runs) and shutdown, each shard's run loop (its acceptor with the
//! connection caps, retention and group timers, the inbox of messages from other shards),
//! client connections, and the admin HTTP endpoint.

pub mod admin_http;
pub mod connection;
mod controller_only;
mod legacy;
mod scrub;
mod send;

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpListener;
use glommio::LocalExecutorBuilder;

use ringtail_replication::identity::{self, Identity};
use ringtail_replication::metadata::controller::{self as decide, ClusterView, NewTopic, OFFSETS_TOPIC};
use ringtail_replication::metadata::record::check_records;
use ringtail_replication::metadata::store::{self, MetadataLog, BROKER_COPY_DIR};
use ringtail_replication::metadata::{MetadataImage, MetadataRecord};
use ringtail_replication::quorum::limits::ENTRY_BYTES_MAX;
use ringtail_replication::{NodeId, ShardId, TopicId};

use crate::broker::cluster::{self, ClusterLink};
use crate::broker::controller::{apply_records, local_partitions, Controller};
use crate::broker::replication;
use crate::broker::{Broker, ShardMsg};
use crate::config::BrokerConfig;
use crate::config_keys::topic_log_config;
use crate::limits::{CONNECTIONS_PER_SHARD_MAX, INBOX_MESSAGES_MAX, SHUTDOWN_GRACE};
use crate::runtime::mailbox::{mailboxes, Inbox, Outbox};
use crate::runtime::placement::{Placement, PLACEMENT_FILE};
use crate::runtime::routing::{BrokerEndpoint, NodeView};
use crate::runtime::Shard;
use connection::{serve_connection, ConnectionCounts, Refusal};

/// Reads (or, for a new data directory, creates) the node's identity, metadata image and shard
/// placement. Runs on the main thread before any shard starts; a data directory of the release
/// before the metadata records (`topics.toml`) is migrated first.
fn load_node(config: &BrokerConfig) -> anyhow::Result<NodeView> {
    if !config.cluster.is_single_node() {
        unreachable!("a cluster node loads with load_cluster_node");
    }
    let dir = &config.data_dir;
    if dir.join(BROKER_COPY_DIR).join(store::CHECKPOINT_FILE).exists() {
        anyhow::bail!(
            "the data directory {} belongs to a node of a cluster; start it with its cluster flags \
             (--node-id, --controller-quorum-voters, ...)",
            dir.display()
        );
    }
    let node = NodeId(config.node_id);
    let configured = config.cluster.cluster_id.as_deref();
    let identity = match identity::read(dir)? {
        Some(recorded) => {
            identity::check(dir, &recorded, node, configured)?;
            recorded
        }
        None => {
            let cluster_id = match (legacy::read(dir)?, configured) {
                (Some(old), Some(c)) if old.cluster_id != c => {
                    return Err(identity::IdentityError::ClusterMismatch {
                        dir: dir.clone(),
                        recorded: old.cluster_id,
                        configured: c.to_string(),
                    }
                    .into())
                }
                (Some(old), _) => old.cluster_id,
                (None, Some(c)) => c.to_string(),
                (None, None) => TopicId::random().to_hex(),
            };
            let identity = Identity { cluster_id, node_id: node };
            identity::write(dir, &identity)?;
            identity
        }
    };
    match (store::exists(dir), legacy::read(dir)?) {
        (false, Some(old)) => legacy::migrate(dir, node, old)?,
        (false, None) => store::write_checkpoint(dir, &MetadataImage::default())?,
        // A crash came after the migration's checkpoint and before the old file's rename.
        (true, Some(_)) => legacy::retire(dir)?,
        (true, None) => {}
    }
    // On a full file system the checkpoint waits for the next start: the records replay.
    let loaded = store::load(dir)?;
    match store::write_checkpoint(dir, &loaded.image) {
        Err(e) if e.is_no_space() => {
            tracing::warn!(error = %e, "no space to checkpoint the metadata log; it is replayed");
            if loaded.torn_bytes > 0 {
                store::cut_torn_tail(dir, loaded.torn_bytes)?;
            }
        }
        other => other?,
    }
    if loaded.torn_bytes > 0 {
        tracing::warn!(
            bytes = loaded.torn_bytes,
            "cut a torn last record from the metadata log (it was never applied)"
        );
    }
    let mut image = loaded.image;
    let mut placement = load_placement(dir);
    if image.topic(OFFSETS_TOPIC).is_none() {
        create_offsets_topic(config, &mut image, &mut placement)?;
    }
    finalize_features(config, &mut image, &mut placement)?;
    fit_placement(config, &image, &mut placement)?;
    tracing::info!(
        cluster_id = %identity.cluster_id,
        node = %node,
        topics = image.topic_count(),
        records_replayed = loaded.replayed,
        "metadata loaded"
    );
    Ok(node_view(config, &identity.cluster_id, image, placement))
}

/// Places this node's replicas missing from the placement (new, or of shards that no longer
/// exist) and saves it; without space it is decided again next time (it decides only balance).
fn fit_placement(config: &BrokerConfig, image: &MetadataImage, placement: &mut Placement) -> anyhow::Result<()> {
    if placement.fit(&local_partitions(image, NodeId(config.node_id)), config.shards) {
        tracing::info!(shards = config.shards, "placed partitions on shards (new, or of shards that no longer exist)");
        match store::write_atomic_blocking(&config.data_dir, PLACEMENT_FILE, &placement.encode()) {
            Err(e) if e.is_no_space() => tracing::warn!(error = %e, "no space to save the shard placement"),
            other => other?,
        }
    }
    Ok(())
}

/// The node's first view: its metadata, placement and how clients reach it.
fn node_view(config: &BrokerConfig, cluster_id: &str, image: MetadataImage, placement: Placement) -> NodeView {
    let node = NodeId(config.node_id);
    let me = BrokerEndpoint {
        node,
        host: config.advertised_host.clone(),
        port: config.advertised_port,
        rack: config.cluster.rack.clone(),
        fenced: false,
    };
    NodeView {
        node,
        cluster_id: Arc::from(cluster_id),
        image: Arc::new(image),
        placement: Arc::new(placement),
        me: Arc::new(me),
        incarnation: (!config.cluster.is_single_node()).then(|| {
            let mut incarnation = [0u8; 16];
            incarnation[..8].copy_from_slice(&ringtail_log::platform::random_u64().to_be_bytes());
            incarnation[8..].copy_from_slice(&ringtail_log::platform::random_u64().to_be_bytes());
            incarnation
        }),
    }
}

/// A cluster node's start: its identity (the cluster id from `--cluster-id`, its record, or,
/// for the node that forms the quorum, a new one; other nodes adopt the quorum's), its copy of
/// the committed metadata, its shard placement; and, on the node that forms the quorum, the
/// quorum's first change (with a single node's metadata when its data directory was one).
fn load_cluster_node(config: &BrokerConfig) -> anyhow::Result<(NodeView, Option<Vec<MetadataRecord>>)> {
    let dir = &config.data_dir;
    let node = NodeId(config.node_id);
    let configured = config.cluster.cluster_id.as_deref();
    let image = cluster::load_copy(dir)?;
    // A data directory of the release before the metadata records (`topics.toml`) is first
    // migrated to a single node's metadata, which then joins the cluster like any.
    if image.cluster_id().is_none() && !store::exists(dir) {
        if let Some(old) = legacy::read(dir)? {
            if identity::read(dir)?.is_none() {
                identity::write(dir, &Identity { cluster_id: old.cluster_id.clone(), node_id: node })?;
            }
            legacy::migrate(dir, node, old)?;
        }
    }
    let recorded = identity::read(dir)?;
    if let Some(r) = &recorded {
        identity::check(dir, r, node, configured)?;
    }
    // A single node's metadata, never yet part of a cluster.
    let single_node = match store::exists(dir) && image.cluster_id().is_none() {
        true => Some(store::load(dir)?.image),
        false => None,
    };
    let initializer = cluster::is_initializer(config);
    if single_node.is_some() && !initializer {
        let lowest = config.cluster.voters.iter().map(|v| v.node_id).min().unwrap_or_default();
        anyhow::bail!(
            "the data directory {} holds a single node's topics; it joins a cluster only as the node that forms \
             the quorum (the lowest voter, node {lowest}): start it with --node-id {lowest}, or use an empty \
             data directory for node {node}",
            dir.display()
        );
    }
    // The id this node records: its own record, the one given, or the quorum's once seen (the
    // copy holds it). The node that forms the quorum proposes a new one but records only what
    // the quorum then holds, so a wiped node rejoins its old cluster.
    let cluster_id = match (&recorded, configured, image.cluster_id()) {
        (Some(r), _, _) => r.cluster_id.clone(),
        (None, Some(c), _) => c.to_string(),
        (None, None, Some(theirs)) => theirs.to_string(),
        (None, None, None) => String::new(),
    };
    if recorded.is_none() && !cluster_id.is_empty() {
        identity::write(dir, &Identity { cluster_id: cluster_id.clone(), node_id: node })?;
    }
    if let Some(theirs) = image.cluster_id().filter(|c| *c != cluster_id) {
        return Err(identity::IdentityError::ClusterMismatch {
            dir: dir.clone(),
            recorded: cluster_id,
            configured: theirs.to_string(),
        }
        .into());
    }
    let first = match initializer && image.cluster_id().is_none() {
        true => {
            let candidate = match cluster_id.is_empty() {
                true => TopicId::random().to_hex(),
                false => cluster_id.clone(),
            };
            let records =
                cluster::first_records(&candidate, single_node.as_ref(), crate::broker::producer_ids::load(dir)?);
            if let Err(reason) = check_records(&records, ENTRY_BYTES_MAX - 64) {
                anyhow::bail!(
                    "the single node's metadata in {} cannot become the cluster's first change: {reason}; this \
                     release moves at most {} bytes of metadata records into a new cluster",
                    dir.display(),
                    ENTRY_BYTES_MAX - 64
                );
            }
            Some(records)
        }
        false => None,
    };
    if single_node.is_some() {
        tracing::info!("this single node's topics become the cluster's first metadata when the quorum forms");
    }
    if image.cluster_id().is_some() {
        set_aside_stray_partitions(dir, &image, node)?;
    }
    let mut placement = load_placement(dir);
    fit_placement(config, &image, &mut placement)?;
    tracing::info!(
        cluster_id = %cluster_id,
        node = %node,
        roles = config.cluster.roles.describe(),
        topics = image.topic_count(),
        metadata_offset = ?image.applied,
        "cluster metadata loaded"
    );
    Ok((node_view(config, &cluster_id, image, placement), first))
}

/// Partition directories (`<topic>-<index>`) of replicas the metadata no longer gives this
/// node: a deletion applied to the metadata copy whose directories a crash left behind. They
/// are renamed `<dir>-stray` (Kafka's suffix for the same thing), never opened, so a later
/// topic of the same name starts empty; an operator may delete them. Blocking: start-up only.
fn set_aside_stray_partitions(dir: &Path, image: &MetadataImage, node: NodeId) -> anyhow::Result<()> {
    let mine: std::collections::HashSet<(String, i32)> = image
        .topics()
        .flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.replicas.contains(&node))
                .map(|(i, _)| (t.name.to_string(), i as i32))
                .collect::<Vec<_>>()
        })
        .collect();
    let entries = std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("cannot list {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let Some((topic, index)) = name.rsplit_once('-') else { continue };
        let Ok(index) = index.parse::<i32>() else { continue };
        if decide::validate_topic_name(topic).is_err() || mine.contains(&(topic.to_string(), index)) {
            continue;
        }
        // Only what holds a partition's files.
        let holds_log = std::fs::read_dir(entry.path())?.flatten().any(|f| {
            let n = f.file_name().to_string_lossy().to_string();
            n.ends_with(".log") || n == "partition.state"
        });
        if !holds_log {
            continue;
        }
        let stray = dir.join(format!("{name}-stray"));
        std::fs::rename(entry.path(), &stray)
            .map_err(|e| anyhow::anyhow!("cannot set aside {}: {e}", entry.path().display()))?;
        tracing::warn!(
            dir = %stray.display(),
            "set aside a partition directory the metadata no longer gives this node (its topic was deleted while \
             the deletion was being carried out); delete it when it is not needed"
        );
    }
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| anyhow::anyhow!("cannot sync {}: {e}", dir.display()))?;
    Ok(())
}

/// The shard placement file; a damaged or missing one is rebuilt (it decides only balance).
fn load_placement(dir: &Path) -> Placement {
    match std::fs::read(dir.join(PLACEMENT_FILE)) {
        Ok(bytes) => Placement::decode(&bytes).unwrap_or_else(|reason| {
            tracing::warn!(%reason, "the shard placement file is damaged; placing partitions again");
            Placement::default()
        }),
        Err(_) => Placement::default(),
    }
}

/// Creates `__consumer_offsets` before any shard starts, so every group has a coordinator from
/// the first request: decided like any topic, checkpointed at once.
fn create_offsets_topic(
    config: &BrokerConfig,
    image: &mut MetadataImage,
    placement: &mut Placement,
) -> anyhow::Result<()> {
    let node = NodeId(config.node_id);
    let cluster = ClusterView {
        nodes: vec![node],
        default_partitions: config.offsets_topic_partitions,
        default_replication_factor: 1,
        replicas_per_node_max: usize::MAX,
        replicas_per_node_max_source: String::new(),
        replication_factor_max: None,
        racks: std::collections::HashMap::new(),
    };
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: config.offsets_topic_partitions,
        replication_factor: -1,
        configs: crate::broker::group::offsets_topic_configs().into_iter().map(|(k, v)| (k, Some(v))).collect(),
        assignments: Vec::new(),
    };
    let validate = |pairs: &[(String, String)]| topic_log_config(&config.log, pairs).map(|_| ());
    let d = decide::create_topics(image, &cluster, &[topic], &validate);
    if let Some((_, Err(e))) = d.outcomes.first() {
        anyhow::bail!("cannot create {OFFSETS_TOPIC}: {e}");
    }
    let first = image.applied.map_or(0, |a| a + 1);
    apply_records(image, placement, node, config.shards, first, &d.records)?;
    store::write_checkpoint(&config.data_dir, image)?;
    tracing::info!(partitions = config.offsets_topic_partitions, "created {OFFSETS_TOPIC}");
    Ok(())
}

/// Records the bootstrap level of every feature the metadata has no level for: at a new
/// cluster's first start, and once for a data directory of a release before features.
fn finalize_features(
    config: &BrokerConfig,
    image: &mut MetadataImage,
    placement: &mut Placement,
) -> anyhow::Result<()> {
    let records = ringtail_replication::metadata::features::bootstrap_records(image);
    if records.is_empty() {
        return Ok(());
    }
    let first = image.applied.map_or(0, |a| a + 1);
    apply_records(image, placement, NodeId(config.node_id), config.shards, first, &records)?;
    store::write_checkpoint(&config.data_dir, image)?;
    for record in &records {
        tracing::info!(?record, "finalized a feature level");
    }
    Ok(())
}

/// Runs the broker until SIGTERM or SIGINT, then shuts down cleanly.
pub fn serve(mut config: BrokerConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", config.data_dir.display()))?;
    // glommio cannot create directories under a relative path (EBADF): work with an absolute one.
    config.data_dir = std::fs::canonicalize(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot resolve data directory {}: {e}", config.data_dir.display()))?;
    if !config.cluster.roles.broker {
        return controller_only::serve(config);
    }
    let (view, first_records) = match config.cluster.is_single_node() {
        true => (load_node(&config)?, None),
        false => load_cluster_node(&config)?,
    };
    let view = Arc::new(view);
    let mut first_records = first_records;
    let producer_ids_start = crate::broker::producer_ids::load(&config.data_dir)?;
    if let Ok(needle) = std::env::var(crate::runtime::FAULT_READ_EIO_ENV) {
        tracing::warn!(%needle, "fault point active: reads of segment files whose path contains this fail");
    }
    let config = Arc::new(config);
    let connection_counts = ConnectionCounts::new(config.connection_caps.clone());
    let (mut outboxes, inboxes) = mailboxes::<ShardMsg>(config.shards, INBOX_MESSAGES_MAX);
    // The last outbox is this thread's and the admin endpoint's.
    let external = outboxes.pop().expect("one outbox per shard and one more");
    let readiness = admin_http::Readiness::new(config.shards);
    let space_in_flight = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Some(listen) = config.admin_listen {
        // Before the shards recover their logs, so /ready can say they are still recovering.
        admin_http::spawn(listen, external.clone(), readiness.clone())?;
    }
    // Shards go on the CPUs this process may run on (taskset, cgroup cpusets), in order.
    let cpus: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect::<Vec<usize>>())
        .filter(|ids| !ids.is_empty())
        .unwrap_or_else(|| (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect());
    let mut threads = Vec::new();
    for (id, (outbox, inbox)) in outboxes.into_iter().zip(inboxes).enumerate() {
        let shared = BrokerShared {
            config: config.clone(),
            mailbox: (outbox, inbox),
            view: view.clone(),
            producer_ids_start,
            readiness: readiness.clone(),
            connection_counts: connection_counts.clone(),
            space_in_flight: space_in_flight.clone(),
            first_records: if id == 0 { first_records.take() } else { None },
        };
        let builder =
            LocalExecutorBuilder::new(glommio::Placement::Fixed(cpus[id % cpus.len()])).name(&format!("shard-{id}"));
        let handle = builder
            .spawn(move || async move {
                let result = run_shard(id, shared).await;
                if let Err(e) = &result {
                    // A shard that cannot run leaves its partitions unserved: stop the broker.
                    tracing::error!(shard = id, error = %e, "shard failed; stopping the broker");
                    crate::logging::flush(std::time::Duration::from_secs(2));
                    std::process::exit(1);
                }
                result
            })
            .map_err(|e| anyhow::anyhow!("cannot start shard {id}: {e}"))?;
        threads.push(handle);
    }
    tracing::info!(listen = %config.listen, shards = config.shards, data_dir = %config.data_dir.display(), "ringtail is serving");
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
    if let Some(signal) = signals.forever().next() {
        tracing::info!(signal, "stopping: finishing requests in progress and flushing");
    }
    readiness.stopping();
    // Two phases, so that no shard closes while another still needs it for a request in
    // progress: every shard drains (still serving its inbox), then every shard closes its logs.
    let (drained_tx, drained_rx) = flume::bounded(config.shards);
    for id in 0..config.shards {
        let _ = external.send_blocking(id, ShardMsg::Drain { reply: drained_tx.clone() }, SHUTDOWN_GRACE);
    }
    drop(drained_tx);
    for _ in 0..config.shards {
        if drained_rx.recv_timeout(SHUTDOWN_GRACE + Duration::from_secs(5)).is_err() {
            tracing::warn!("a shard did not drain in time; closing anyway");
            break;
        }
    }
    for id in 0..config.shards {
        let _ = external.send_blocking(id, ShardMsg::Close, SHUTDOWN_GRACE);
    }
    let mut failed = false;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "shard failed");
                failed = true;
            }
            Err(_) => failed = true,
        }
    }
    if failed {
        anyhow::bail!("a shard failed; see the log above");
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// What every shard is started with: broker-wide state shared by all shards.
struct BrokerShared {
    config: Arc<BrokerConfig>,
    mailbox: (Outbox<ShardMsg>, Inbox<ShardMsg>),
    view: Arc<NodeView>,
    producer_ids_start: i64,
    readiness: Arc<admin_http::Readiness>,
    connection_counts: Arc<ConnectionCounts>,
    /// Preallocations in flight on the data directory, over every shard.
    space_in_flight: Arc<std::sync::atomic::AtomicU64>,
    /// The quorum's first change, for the controller of the node that forms it (shard 0).
    first_records: Option<Vec<MetadataRecord>>,
}

/// Why a shard could not start; the broker stops.
#[derive(Debug, thiserror::Error)]
enum ShardStartError {
    #[error("cannot open the metadata log: {0}")]
    MetadataLog(#[from] ringtail_replication::metadata::store::StoreError),
    #[error("cannot open the data directory for direct I/O: {0}")]
    DirectIo(ringtail_log::LogError),
    #[error("cannot open its partitions: {0}")]
    Open(ringtail_log::LogError),
    #[error("cannot set up its ring for zero-copy reads ({0}); --zero-copy-reads false turns them off")]
    Splice(std::io::Error),
    #[error("{0}")]
    Controller(anyhow::Error),
    #[error("cannot listen on {address}: {source}")]
    Listen { address: std::net::SocketAddr, source: glommio::GlommioError<()> },
}

async fn run_shard(id: usize, shared: BrokerShared) -> Result<(), ShardStartError> {
    let BrokerShared {
        config,
        mailbox,
        view,
        producer_ids_start,
        readiness,
        connection_counts,
        space_in_flight,
        first_records,
    } = shared;
    let inbox = mailbox.1.clone();
    // A cluster node's controller (if it is a voter) runs on shard 0 beside its link to the
    // controllers; its tasks live as long as this.
    let mut controller_tasks = Vec::new();
    let controller = match (id, config.cluster.is_single_node()) {
        (0, true) => Some(Controller::new(MetadataLog::open(&config.data_dir, view.image.applied).await?)),
        (0, false) => {
            let copy = MetadataLog::open_in(&config.data_dir.join(BROKER_COPY_DIR), view.image.applied).await?;
            if config.cluster.roles.controller {
                // The service lives in its tasks (the listener, the session checks).
                let (_service, tasks) =
                    cluster::start_controller(&config, first_records).await.map_err(ShardStartError::Controller)?;
                controller_tasks = tasks;
            }
            Some(Controller::cluster(Rc::new(ClusterLink::new(
                &config,
                copy,
                view.incarnation.expect("a cluster node has an incarnation"),
            ))))
        }
        _ => None,
    };
    let splicer = match config.log.zero_copy_reads {
        true => Some(crate::runtime::splice::Splicer::start(id).map_err(ShardStartError::Splice)?),
        false => None,
    };
    let runtime = Rc::new(Shard::new(ShardId(id), config.clone(), view, space_in_flight, splicer));
    let shard = Broker::new(runtime, mailbox, controller, producer_ids_start);
    ringtail_log::prime_direct_io(&config.data_dir).await.map_err(ShardStartError::DirectIo)?;
    shard.open_owned().await.map_err(ShardStartError::Open)?;
    let flusher_task = shard.flusher.spawn();
    let listener = TcpListener::bind(config.listen)
        .map_err(|source| ShardStartError::Listen { address: config.listen, source })?;
    readiness.shard_ready();
    let acceptor = glommio::spawn_local(accept_connections(shard.clone(), listener, connection_counts));
    let retention = {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            futures_lite::future::zip(housekeeping(shard.clone()), scrub::scrub(shard)).await;
        })
    };
    let group_timers = {
        let shard = shard.clone();
        glommio::spawn_local(async move { shard.coordinator.run_timers().await })
    };
    // A cluster broker follows the committed metadata and keeps its session.
    let link = shard.controller.as_ref().and_then(|c| c.link()).cloned();
    let mut follower = None;
    let mut heartbeats = None;
    if let Some(link) = &link {
        follower = Some(glommio::spawn_local(cluster::follow(shard.clone(), link.clone())));
        heartbeats = Some(glommio::spawn_local(cluster::heartbeats(shard.clone(), link.clone())));
    }
    // Every shard of a cluster node fetches its follower replicas and keeps its leaders' ISRs.
    let mut replication_tasks = Vec::new();
    if !config.cluster.is_single_node() {
        replication_tasks.push(glommio::spawn_local(replication::run_fetchers(shard.clone())));
        replication_tasks.push(glommio::spawn_local(replication::maintain_isr(shard.clone())));
    }
    let mut acceptor = Some(acceptor);
    let mut retention = Some(retention);
    let mut group_timers = Some(group_timers);
    // Shutdown messages go to this loop; everything else is handled as it arrives.
    let (control_tx, control_rx) = glommio::channels::local_channel::new_bounded(2);
    let control_tx = Rc::new(control_tx);
    let pumps = {
        let shard = shard.clone();
        inbox.serve(move |msg: ShardMsg| {
            let (shard, control_tx) = (shard.clone(), control_tx.clone());
            async move {
                match msg {
                    ShardMsg::Drain { .. } | ShardMsg::Close => {
                        let _ = control_tx.send(msg).await;
                    }
                    msg => shard.serve_message(msg).await,
                }
            }
        })
    };
    while let Some(msg) = control_rx.recv().await {
        match msg {
            ShardMsg::Close => break,
            ShardMsg::Drain { reply } => {
                if let Some(link) = &link {
                    // Leadership moves away first: clients see retriable errors, then go elsewhere.
                    cluster::controlled_shutdown(&shard, link, CONTROLLED_SHUTDOWN_WAIT).await;
                    if let Some(task) = heartbeats.take() {
                        task.cancel().await;
                    }
                    // Records already in the broker's copy are carried out before the follower stops.
                    if let Some(task) = follower.take() {
                        cluster::stop_following(link, task).await;
                    }
                }
                shard.begin_shutdown();
                for task in replication_tasks.drain(..) {
                    task.cancel().await;
                }
                if let Some(task) = acceptor.take() {
                    task.cancel().await;
                }
                if let Some(task) = retention.take() {
                    task.cancel().await;
                }
                if let Some(task) = group_timers.take() {
                    task.cancel().await;
                }
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
                    while shard.in_flight.get() > 0 && std::time::Instant::now() < deadline {
                        glommio::timer::sleep(Duration::from_millis(2)).await;
                    }
                    if shard.in_flight.get() > 0 {
                        let apis: Vec<(i16, usize)> = shard
                            .in_flight_apis
                            .borrow()
                            .iter()
                            .filter(|(_, n)| **n > 0)
                            .map(|(k, n)| (*k, *n))
                            .collect();
                        tracing::warn!(
                            shard = %shard.id,
                            ?apis,
                            "requests still in progress after the shutdown grace period"
                        );
                    }
                    let _ = reply.send_async(()).await;
                })
                .detach();
            }
            _ => unreachable!("only shutdown messages come to the run loop"),
        }
    }
    drop(pumps);
    drop(controller_tasks);
    shard.close_logs().await;
    shard.flusher.stop();
    flusher_task.await;
    Ok(())
}

/// How long a cluster broker waits for the controller to fence it at shutdown.
const CONTROLLED_SHUTDOWN_WAIT: Duration = Duration::from_secs(4);

/// Retention runs this often; and this often while free space is below the low watermark.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
const RETENTION_INTERVAL_LOW_SPACE: Duration = Duration::from_secs(5);
/// The data directory's free space is read this often (and before every preallocation).
const SPACE_READ_INTERVAL: Duration = Duration::from_secs(1);

/// The shard's timers: free-space readings every second, retention every minute (at once when
/// free space falls below the low watermark, then every few seconds while it stays there).
async fn housekeeping(shard: Rc<Broker>) {
    let space = shard.flusher.space();
    let mut last_retention = std::time::Instant::now();
    let mut news = SpaceNews::default();
    loop {
        glommio::timer::sleep(SPACE_READ_INTERVAL).await;
        if let Err(e) = space.refresh() {
            if shard.log_limits.connections.allow() {
                tracing::warn!(error = %e, "cannot read the data directory's free space");
            }
        }
        let low = space.is_low();
        let (free_bytes, w) = (space.free_bytes(), space.watermarks());
        let out_of_space = shard.flusher.stats().flushes_out_of_space.get();
        match news.observe(low, out_of_space, std::time::Instant::now()) {
            Some(Said::BelowLow) => tracing::warn!(
                shard = %shard.id,
                free_bytes,
                low_watermark_bytes = w.low_bytes,
                high_watermark_bytes = w.high_bytes,
                "free space on the data directory's file system is below the low watermark: produce to user \
                 topics is refused (KAFKA_STORAGE_ERROR, retriable) until it is back above the high watermark; \
                 reads, offset commits and deletions go on, retention runs now"
            ),
            Some(Said::RanOut) => tracing::warn!(
                shard = %shard.id,
                free_bytes,
                "the data directory's file system ran out of space while writing: unacknowledged batches were \
                 failed (KAFKA_STORAGE_ERROR, retriable) or, under async durability, kept queued; nothing \
                 acknowledged is lost, and writes are tried again once space is free"
            ),
            Some(Said::Recovered) => tracing::info!(
                shard = %shard.id,
                free_bytes,
                high_watermark_bytes = w.high_bytes,
                "free space is back: produce is accepted again"
            ),
            None => {}
        }
        let interval = if low { RETENTION_INTERVAL_LOW_SPACE } else { RETENTION_INTERVAL };
        if news.entered_low || shard.retention_due.take() || last_retention.elapsed() >= interval {
            last_retention = std::time::Instant::now();
            enforce_retention(&shard).await;
        }
    }
}

/// What a shard says about free space, decided from what it sees at each reading: once when
/// writes start being refused (below the low watermark, or a flush that ran out of space), and
/// once when they are accepted again. Running out with the watermarks at 0 repeats at every
/// retry, so that warning is said at most once a minute.
#[derive(Debug, Default)]
struct SpaceNews {
    was_low: bool,
    /// A warning was said and its recovery not yet.
    announced: bool,
    out_of_space_seen: u64,
    ran_out_said: Option<std::time::Instant>,
    /// Set by the last `observe`: free space just fell below the low watermark.
    entered_low: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    BelowLow,
    RanOut,
    Recovered,
}

/// A lack of space found by flushes is said again after this long at the earliest.
const RAN_OUT_SAID_INTERVAL: Duration = Duration::from_secs(60);

impl SpaceNews {
    fn observe(&mut self, low: bool, out_of_space: u64, now: std::time::Instant) -> Option<Said> {
        let ran_out = out_of_space > self.out_of_space_seen;
        self.out_of_space_seen = out_of_space;
        self.entered_low = low && !self.was_low;
        self.was_low = low;
        let said_lately = self.ran_out_said.is_some_and(|t| now.duration_since(t) < RAN_OUT_SAID_INTERVAL);
        if ran_out && !self.announced && !said_lately {
            self.announced = true;
            self.ran_out_said = Some(now);
            return Some(Said::RanOut);
        }
        if self.entered_low && !self.announced {
            self.announced = true;
            return Some(Said::BelowLow);
        }
        if !low && !ran_out && self.announced {
            self.announced = false;
            return Some(Said::Recovered);
        }
        None
    }
}

async fn enforce_retention(shard: &Broker) {
    for partition in shard.partitions.all() {
        let log = partition.log();
        match log.enforce_retention(ringtail_log::now_ms()).await {
            Ok(_) => {}
            Err(e) if e.is_no_space() => {
                tracing::warn!(error = %e, dir = %log.dir().display(), "retention waits for space")
            }
            Err(e) => tracing::error!(error = %e, dir = %log.dir().display(), "retention failed"),
        }
        let expired = log.expire_producers(ringtail_log::now_ms());
        if expired > 0 {
            tracing::debug!(expired, dir = %log.dir().display(), "expired idle producer ids");
        }
    }
}

/// Accepts client connections on this shard's listener until cancelled. The newest connection
/// over a cap is closed at once, with a (rate-limited) log line and a count in `/metrics`.
async fn accept_connections(shard: Rc<Broker>, listener: TcpListener, counts: Arc<ConnectionCounts>) {
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let peer = stream.peer_addr().ok();
        let Some(peer) = peer else { continue };
        let admitted = match shard.connections.get() >= CONNECTIONS_PER_SHARD_MAX {
            true => Err(Refusal::MaxConnections),
            false => counts.admit(peer.ip()),
        };
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                shard.metrics.connection_refused(refusal);
                if shard.log_limits.connections.allow() {
                    tracing::info!(%peer, ?refusal, "refusing a connection: a connection cap is reached");
                }
                drop(stream);
                continue;
            }
        };
        let shard = shard.clone();
        shard.connections.set(shard.connections.get() + 1);
        glommio::spawn_local(async move {
            let _admitted = admitted;
            serve_connection(shard.clone(), stream).await;
            shard.connections.set(shard.connections.get() - 1);
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn space_news_says_each_episode_once_and_its_end() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut n = SpaceNews::default();
        assert_eq!(n.observe(false, 0, at(0)), None);
        assert_eq!(n.observe(true, 0, at(1)), Some(Said::BelowLow));
        assert!(n.entered_low);
        assert_eq!(n.observe(true, 0, at(2)), None);
        assert!(!n.entered_low);
        assert_eq!(n.observe(false, 0, at(3)), Some(Said::Recovered));
        // Watermarks at 0: each retry runs out again and the reading says all is well.
        assert_eq!(n.observe(false, 1, at(4)), Some(Said::RanOut));
        assert_eq!(n.observe(false, 1, at(5)), Some(Said::Recovered));
        assert_eq!(n.observe(false, 2, at(6)), None, "said at most once a minute");
        assert_eq!(n.observe(false, 2, at(7)), None);
        assert_eq!(n.observe(false, 3, at(70)), Some(Said::RanOut));
    }
}
