//! The shard runtime, the bottom layer of the broker: one glommio executor pinned to one core
//! and what belongs to it alone: the partition table (this node's replicas the shard owns),
//! the routing view (metadata image and shard placement), the flusher, the shutdown state,
//! the budgets and counters of its connections. Layers above (services, Kafka handlers) reach
//! partitions through it; it knows nothing of them.

pub mod mailbox;
pub mod placement;
pub mod read_budget;
pub mod routing;
pub mod splice;
pub mod table;
pub mod throttle;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use ringtail_log::{Faults, Flusher, LogError, PartitionLog};
use ringtail_replication::metadata::TopicImage;
use ringtail_replication::{NodeId, Partition, PartitionId, ShardId};

use crate::config::BrokerConfig;
use crate::config_keys::topic_log_config;
use crate::metrics::ShardMetrics;
use routing::{NodeView, Route};
use table::PartitionTable;

/// How often async-durability logs are written out.
const FLUSH_TICK: Duration = Duration::from_millis(10);

/// The environment variable of the read fault point: every read of a segment file (`.log`)
/// whose path contains its value fails with an injected I/O error. For tests of what a bad
/// sector does; a broker started without it injects nothing.
pub const FAULT_READ_EIO_ENV: &str = "RINGTAIL_FAULT_READ_EIO";

fn fault_point_from_env() -> Faults {
    match std::env::var(FAULT_READ_EIO_ENV) {
        Ok(needle) if !needle.is_empty() => Faults::new(move |op, path| {
            op == ringtail_log::IoOp::Read
                && path.extension().is_some_and(|e| e == "log")
                && path.to_string_lossy().contains(needle.as_str())
        }),
        _ => Faults::default(),
    }
}

/// A partition's directory: `<data>/<topic>-<index>` (log/FORMAT.md).
pub fn partition_dir(data_dir: &std::path::Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// One limiter per kind of log line a client can cause.
#[derive(Debug, Default)]
pub struct LogLimits {
    /// A connection refused at accept or closed by the broker.
    pub connections: crate::logging::LineLimiter,
    /// A produce request refused.
    pub produce_refused: crate::logging::LineLimiter,
}

/// One shard's runtime. Owned by its executor thread (`!Send`); never shared.
pub struct Shard {
    pub id: ShardId,
    pub node: NodeId,
    pub config: Arc<BrokerConfig>,
    view: RefCell<Arc<NodeView>>,
    pub partitions: PartitionTable,
    pub flusher: Rc<Flusher>,
    shutting_down: Cell<bool>,
    /// Tasks to wake when shutdown begins (parked fetches), by registration id.
    shutdown_wakers: RefCell<Vec<(u64, Waker)>>,
    next_waker_id: Cell<u64>,
    /// Requests being handled on this shard's connections.
    pub in_flight: Cell<usize>,
    /// The same, by API key (to say what is stuck at shutdown).
    pub in_flight_apis: RefCell<std::collections::BTreeMap<i16, usize>>,
    /// Client connections open on this shard.
    pub connections: Cell<usize>,
    /// Retention should run at the next housekeeping tick (configs changed).
    pub retention_due: Cell<bool>,
    /// Rate limits of the log lines clients can cause on this shard.
    pub log_limits: LogLimits,
    /// Bytes of requests being read or handled on this shard's connections
    /// (`--queued-max-request-bytes` / shards). Charged before a frame is allocated.
    pub request_budget: Rc<glommio::sync::Semaphore>,
    /// Bytes of cold reads held until their responses are written.
    pub read_budget: Arc<read_budget::ReadBudget>,
    /// This shard's share of the replication throttles (leader and follower side).
    pub leader_throttle: throttle::Bucket,
    pub follower_throttle: throttle::Bucket,
    /// The ring that sends cold reads from file to socket without a copy (`None`: zero-copy
    /// reads are off).
    pub splicer: Option<Rc<splice::Splicer>>,
    pub metrics: ShardMetrics,
}

/// A replication throttle in force on a shard: its share of the rate and the view it applies to.
pub struct ActiveThrottle<'a> {
    node: NodeId,
    view: Arc<NodeView>,
    rate: u64,
    replicas_key: &'static str,
    bucket: &'a throttle::Bucket,
}

impl ActiveThrottle<'_> {
    /// The bytes a replication read of `partition` for `replica` may take now, when it is
    /// throttled: the topic's throttled-replicas list names this broker's replica and `replica`
    /// is outside the ISR. `None`: not throttled.
    pub fn budget(&self, partition: &ringtail_replication::Partition, replica: NodeId) -> Option<usize> {
        let id = partition.id();
        let topic = self.view.image.topic_by_id(id.topic)?;
        if !throttle::names(&topic.configs, self.replicas_key, id.index, self.node)
            || partition.isr().contains(&replica)
        {
            return None;
        }
        Some(self.bucket.available(self.rate, std::time::Instant::now()))
    }

    /// `bytes` were sent or received for throttled replicas.
    pub fn take(&self, bytes: usize) {
        self.bucket.take(bytes);
    }
}

impl Shard {
    /// `space_in_flight` counts preallocations in flight on the data directory, shared by every
    /// shard of the broker.
    pub fn new(
        id: ShardId,
        config: Arc<BrokerConfig>,
        view: Arc<NodeView>,
        space_in_flight: Arc<std::sync::atomic::AtomicU64>,
        splicer: Option<Rc<splice::Splicer>>,
    ) -> Shard {
        let flusher = Flusher::new(fault_point_from_env(), FLUSH_TICK);
        if let Some((write_bytes, writes_in_flight)) = config.write_shape {
            flusher.set_write_shape(write_bytes, writes_in_flight);
        }
        flusher.stats().enabled.set(config.metrics);
        flusher.set_cache_budget(config.cache_budget_bytes);
        match ringtail_log::DiskSpace::watch(&config.data_dir, config.disk_space, space_in_flight) {
            Ok(space) => flusher.set_space(Rc::new(space)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the data directory's free space; writes are not held back by it")
            }
        }
        Shard {
            id,
            node: NodeId(config.node_id),
            metrics: ShardMetrics::new(config.metrics),
            request_budget: Rc::new(glommio::sync::Semaphore::new(config.request_budget_per_shard() as u64)),
            read_budget: read_budget::ReadBudget::new(crate::limits::READ_BUDGET_BYTES_PER_SHARD),
            leader_throttle: throttle::Bucket::default(),
            follower_throttle: throttle::Bucket::default(),
            splicer,
            config,
            view: RefCell::new(view),
            partitions: PartitionTable::default(),
            flusher,
            shutting_down: Cell::new(false),
            shutdown_wakers: RefCell::new(Vec::new()),
            next_waker_id: Cell::new(0),
            in_flight: Cell::new(0),
            in_flight_apis: RefCell::new(std::collections::BTreeMap::new()),
            connections: Cell::new(0),
            retention_due: Cell::new(false),
            log_limits: LogLimits::default(),
        }
    }

    /// The routing view: metadata image and shard placement, as last published to this shard.
    pub fn view(&self) -> Arc<NodeView> {
        self.view.borrow().clone()
    }

    /// Takes a new view; the shard's replicas whose configs changed with it (their topic's, or
    /// the broker-level defaults) take the new ones at once, and retention runs soon after.
    pub fn set_view(&self, view: Arc<NodeView>) {
        let old = std::mem::replace(&mut *self.view.borrow_mut(), view.clone());
        let defaults_changed = [None, Some(self.node)]
            .into_iter()
            .any(|node| old.image.broker_configs(node) != view.image.broker_configs(node));
        let mut changed = 0;
        for partition in self.partitions.all() {
            let id = partition.id();
            let (Some(before), Some(after)) = (old.image.topic_by_id(id.topic), view.image.topic_by_id(id.topic))
            else {
                continue;
            };
            // A new leader, epoch, replicas or ISR (a PartitionChanged record) reaches the replica.
            let (was, now) = (before.partitions.get(id.index as usize), after.partitions.get(id.index as usize));
            if let (Some(was), Some(now)) = (was, now) {
                if was != now || old.may_lead() != view.may_lead() {
                    partition.apply_state(&now.as_acted_on(self.node, view.may_lead()), ringtail_log::now_ms());
                }
            }
            if !defaults_changed && before.configs == after.configs {
                continue;
            }
            partition.set_min_insync(self.min_insync(after));
            match self.topic_log_config(after).and_then(|c| partition.log().reconfigure(c).map_err(|e| e.to_string())) {
                Ok(()) => changed += 1,
                Err(e) => {
                    tracing::warn!(topic = %after.name, partition = id.index, error = %e, "new configs not applied")
                }
            }
        }
        if changed > 0 {
            self.retention_due.set(true);
            tracing::info!(shard = self.id.0, partitions = changed, "applied changed configs");
        }
    }

    /// A topic's log settings on this node: the broker's log defaults (static, then dynamic)
    /// overridden by the topic's configs.
    pub fn topic_log_config(&self, topic: &TopicImage) -> Result<ringtail_log::LogConfig, String> {
        let view = self.view();
        let defaults = crate::config_keys::log_defaults(&self.config, &view.image, self.node);
        let pairs: Vec<(String, String)> = topic.configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        topic_log_config(&defaults, &pairs)
    }

    /// A topic's min.insync.replicas: its own config, else the cluster's or this node's dynamic
    /// broker default, else 1 (Kafka's default).
    pub fn min_insync(&self, topic: &TopicImage) -> usize {
        const KEY: &str = "min.insync.replicas";
        let view = self.view();
        let value = topic.configs.get(KEY).cloned().or_else(|| {
            [Some(self.node), None]
                .into_iter()
                .find_map(|node| view.image.broker_configs(node).and_then(|c| c.get(KEY).cloned()))
        });
        value.and_then(|v| v.parse::<usize>().ok()).unwrap_or(1).max(1)
    }

    /// The replication throttle of `side` when one is set on this broker (its rate read once
    /// per fetch, not per partition); `None`: nothing is throttled.
    pub fn throttle(&self, side: throttle::Side) -> Option<ActiveThrottle<'_>> {
        let view = self.view();
        let (rate_key, replicas_key) = side.keys();
        let rate = throttle::rate(&view.image, self.node, rate_key)? / self.config.shards.max(1) as u64;
        let bucket = match side {
            throttle::Side::Leader => &self.leader_throttle,
            throttle::Side::Follower => &self.follower_throttle,
        };
        Some(ActiveThrottle { node: self.node, view, rate, replicas_key, bucket })
    }

    /// Where a partition is served from, or `None` if the topic or partition does not exist.
    pub fn route(&self, topic: &str, index: i32) -> Option<(PartitionId, Route)> {
        self.view.borrow().route(topic, index)
    }

    /// Where this node's replica of a partition is, whoever leads it.
    pub fn route_any_replica(&self, topic: &str, index: i32) -> Option<(PartitionId, Route)> {
        self.view.borrow().route_any_replica(topic, index)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// Opens (creating if needed) this shard's replicas of `indexes` of a topic, as the image
    /// describes them. A replica whose storage fails to open stays offline; the others open.
    pub async fn open_replicas(&self, topic: &TopicImage, indexes: &[i32]) -> Result<(), LogError> {
        let mut config = self.topic_log_config(topic).map_err(|reason| LogError::Config { reason })?;
        if ringtail_replication::metadata::controller::is_internal(&topic.name) {
            config.space_priority = ringtail_log::SpacePriority::Internal;
        }
        let name: Rc<str> = Rc::from(topic.name.as_ref());
        for (i, &index) in indexes.iter().enumerate() {
            if self.shutting_down.get() {
                // The partition is in the metadata already: the next start opens (creates) the
                // rest. Opening thousands of partitions must not hold up a shutdown.
                tracing::info!(topic = %name, left = indexes.len() - i, "stopping: leaving partitions to open at the next start");
                break;
            }
            let id = PartitionId { topic: topic.id, index };
            if self.partitions.get(id).is_some() {
                continue;
            }
            let dir = partition_dir(&self.config.data_dir, &name, index);
            let log = match PartitionLog::open(dir, config, &self.flusher).await {
                Ok(log) => log,
                // Without space for a new partition's directory the partition waits for a restart
                // like a damaged one: existing partitions open without new space.
                Err(e) if e.is_fatal() || e.is_no_space() => {
                    // One damaged partition must not keep the others from serving.
                    tracing::error!(topic = %name, partition = index, error = %e, "cannot open partition; it stays offline");
                    self.partitions.set_offline(id, name.clone(), e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let report = log.recovery_report();
            if let Some(reason) = &report.no_space {
                tracing::warn!(topic = %name, partition = index, reason, "recovered without space for some index or state files; they are written later");
            }
            if !report.clean_shutdown && (report.segments_scanned > 0 || report.bytes_truncated > 0) {
                tracing::warn!(topic = %name, partition = index, ?report, "recovered partition after an unclean shutdown");
            }
            if let Some(reason) = &report.producer_snapshot_ignored {
                tracing::warn!(topic = %name, partition = index, reason, "producer snapshot not used; rebuilt the producer state from the log");
            }
            let view = self.view();
            let state = topic.partitions[index as usize].as_acted_on(self.node, view.may_lead());
            let partition = Partition::new(id, name.clone(), self.node, log, &state);
            partition.set_min_insync(self.min_insync(topic));
            self.partitions.insert(partition);
        }
        Ok(())
    }

    /// A storage error (an I/O error, corrupt data read back) has stopped one partition's log:
    /// it answers KAFKA_STORAGE_ERROR from now on, every other partition keeps serving, and the
    /// broker stays up. Logged once per partition, naming the file; `/metrics` shows the
    /// partition offline. Errors that are the client's (a bad batch, an offset out of range)
    /// pass through here unlogged.
    pub fn storage_failed(&self, partition: &Partition, error: &ringtail_replication::PartitionError) {
        if !error.is_storage_failure() {
            return;
        }
        if self.partitions.report_once(partition.id()) {
            tracing::error!(
                partition = %partition.log().dir().display(),
                %error,
                "partition offline after a storage error: it answers KAFKA_STORAGE_ERROR until the broker restarts \
                 or, in a cluster, it is out of the ISR and rebuilt from its leader; other partitions are not affected"
            );
        }
    }

    /// Every per-shard budget: (name, limit, used), in bytes.
    pub fn budgets(&self) -> Vec<(&'static str, u64, u64)> {
        let limit = self.config.request_budget_per_shard() as u64;
        let cache = (self.flusher.cache_budget(), self.flusher.stats().cache_bytes.get());
        vec![
            ("request", limit, limit - self.request_budget.available().min(limit)),
            ("cache", cache.0, cache.1),
            ("read", self.read_budget.limit(), self.read_budget.used()),
        ]
    }

    /// Starts shutdown on this shard: no new connections or requests, parked fetches answered.
    pub fn begin_shutdown(&self) {
        self.shutting_down.set(true);
        let wakers = std::mem::take(&mut *self.shutdown_wakers.borrow_mut());
        wakers.into_iter().for_each(|(_, w)| w.wake());
    }

    /// Completes once shutdown has begun. Its registration goes away when it is dropped, so
    /// fetches that time out leave nothing behind.
    pub fn shutdown_begun(&self) -> ShutdownBegun<'_> {
        ShutdownBegun { shard: self, id: None }
    }

    /// Closes every log: final flush, sealed segments, clean-shutdown markers.
    pub async fn close_logs(&self) {
        for partition in self.partitions.drain() {
            if let Err(e) = partition.log().close(ringtail_log::now_ms()).await {
                tracing::error!(topic = %partition.topic(), partition = partition.id().index, error = %e, "closing a partition log failed");
            }
        }
    }
}

/// Future of [`Shard::shutdown_begun`].
pub struct ShutdownBegun<'a> {
    shard: &'a Shard,
    id: Option<u64>,
}

impl Future for ShutdownBegun<'_> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.shard.shutting_down.get() {
            return Poll::Ready(());
        }
        let mut wakers = self.shard.shutdown_wakers.borrow_mut();
        match self.id.and_then(|id| wakers.iter_mut().find(|(i, _)| *i == id)) {
            Some((_, w)) => w.clone_from(cx.waker()),
            None => {
                let id = self.shard.next_waker_id.get() + 1;
                self.shard.next_waker_id.set(id);
                wakers.push((id, cx.waker().clone()));
                drop(wakers);
                self.id = Some(id);
            }
        }
        Poll::Pending
    }
}

impl Drop for ShutdownBegun<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            if let Ok(mut wakers) = self.shard.shutdown_wakers.try_borrow_mut() {
                wakers.retain(|(i, _)| *i != id);
            }
        }
    }
}
