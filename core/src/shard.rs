//! A shard: one glommio executor pinned to one core, owning a set of partitions (their logs and
//! everything about them), accepting connections on its own `SO_REUSEPORT` listener, and
//! serving requests for other shards' partitions by messages over bounded channels.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use ringtail_log::{Durability, Faults, Flusher, LogConfig, LogError, PartitionLog};
use ringtail_net::error_code;

use crate::config::{parse_durability, BrokerConfig};
use crate::limits::UNFLUSHED_BYTES_MAX;
use crate::mailbox::{Class, Classified, Inbox, Outbox};
use crate::metadata::Metadata;

/// How often async-durability logs are written out.
const FLUSH_TICK: Duration = Duration::from_millis(10);

/// A partition: topic name and index.
pub type TopicPartition = (String, i32);

/// One partition's part of a produce request.
#[derive(Debug)]
pub struct ProduceItem {
    pub topic: String,
    pub partition: i32,
    pub records: Bytes,
}

#[derive(Debug, Clone)]
pub struct ProduceResult {
    pub error_code: i16,
    pub base_offset: i64,
    pub log_start_offset: i64,
    /// Why the batch was refused, for the response's error message.
    pub error_message: Option<String>,
}

/// One partition's part of a fetch request.
#[derive(Debug, Clone)]
pub struct FetchItem {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: usize,
}

#[derive(Debug, Clone, Default)]
pub struct FetchResult {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Vec<Bytes>,
    pub bytes: usize,
}

/// Offsets of a partition for ListOffsets.
#[derive(Debug, Clone, Copy)]
pub struct OffsetsResult {
    pub error_code: i16,
    pub offset: i64,
    pub timestamp: i64,
}

/// Work to run on another shard: it builds its future there, so the future need not be `Send`.
pub type Job = Box<dyn FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// Work one shard asks of another. Replies travel on one-message channels.
pub enum ShardMsg {
    /// Run a job on the target shard (group coordination and other owner-bound work).
    Run(Job),
    Produce {
        acks: i16,
        items: Vec<ProduceItem>,
        reply: flume::Sender<Vec<ProduceResult>>,
    },
    /// Reads for a fetch, up to `budget` bytes in all (the request's max_bytes).
    Fetch {
        items: Vec<FetchItem>,
        budget: usize,
        reply: flume::Sender<Vec<FetchResult>>,
    },
    /// Completes when any of the partitions has data past its offset, or after `wait`.
    WaitForData {
        items: Vec<(TopicPartition, i64)>,
        wait: Duration,
        reply: flume::Sender<()>,
    },
    ListOffsets {
        items: Vec<(TopicPartition, i64)>,
        reply: flume::Sender<Vec<OffsetsResult>>,
    },
    /// Open (creating if needed) logs of partitions this shard now owns.
    OpenPartitions {
        topic: String,
        partitions: Vec<i32>,
        configs: Vec<(String, String)>,
        reply: flume::Sender<Result<(), String>>,
    },
    /// Close and delete the logs of a deleted topic.
    DeletePartitions {
        topic: String,
        reply: flume::Sender<()>,
    },
    /// Admin work done by the controller (shard 0).
    Admin {
        request: crate::admin::AdminRequest,
        reply: flume::Sender<crate::admin::AdminReply>,
    },
    /// A new metadata snapshot; the reply says it is in place.
    Metadata(Arc<Metadata>, flume::Sender<()>),
    /// Shutdown, phase one: stop accepting, answer parked fetches, and reply once no request
    /// of this shard is in progress (or the grace period ends). The inbox keeps being served,
    /// because other shards' requests in progress may still need this shard.
    Drain {
        reply: flume::Sender<()>,
    },
    /// Shutdown, phase two (after every shard drained): close the logs and stop.
    Close,
}

impl Classified for ShardMsg {
    fn class(&self) -> Class {
        match self {
            ShardMsg::Produce { .. } | ShardMsg::Fetch { .. } | ShardMsg::ListOffsets { .. } => Class::Data,
            ShardMsg::WaitForData { .. } | ShardMsg::Run(_) => Class::Parked,
            ShardMsg::OpenPartitions { .. }
            | ShardMsg::DeletePartitions { .. }
            | ShardMsg::Admin { .. }
            | ShardMsg::Metadata(..)
            | ShardMsg::Drain { .. }
            | ShardMsg::Close => Class::Control,
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

/// The state of one shard. Owned by its executor thread; never shared.
pub struct Shard {
    pub id: usize,
    pub config: Arc<BrokerConfig>,
    /// This shard's queues to every shard (itself included).
    pub outbox: Outbox<ShardMsg>,
    /// This shard's own queues, for their depth.
    pub inbox: Inbox<ShardMsg>,
    pub metadata: RefCell<Arc<Metadata>>,
    pub logs: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    pub flusher: Rc<Flusher>,
    pub shutting_down: Cell<bool>,
    /// Requests being handled on this shard's connections.
    pub in_flight: Cell<usize>,
    /// The same, by API key (to say what is stuck at shutdown).
    pub in_flight_apis: RefCell<std::collections::BTreeMap<i16, usize>>,
    /// Client connections open on this shard.
    pub connections: Cell<usize>,
    /// Rate limits of the log lines clients can cause on this shard.
    pub log_limits: LogLimits,
    /// Partitions that could not be opened (an I/O error or corrupt state at start-up).
    pub offline: RefCell<HashMap<TopicPartition, LogError>>,
    /// Partitions whose storage error was logged (once each).
    offline_reported: RefCell<std::collections::HashSet<PathBuf>>,
    /// Bytes of requests being read or handled on this shard's connections
    /// (`--queued-max-request-bytes` / shards). Charged before a frame is allocated.
    pub request_budget: Rc<glommio::sync::Semaphore>,
    /// Bytes of cold reads held until their responses are written.
    pub read_budget: Arc<crate::read_budget::ReadBudget>,
    /// Tasks to wake when shutdown begins (parked fetches), by registration id.
    shutdown_wakers: RefCell<Vec<(u64, Waker)>>,
    next_waker_id: Cell<u64>,
    /// The controller's state, on shard 0 only.
    pub controller: Option<RefCell<crate::admin::Controller>>,
    /// Serializes admin requests on the controller.
    pub admin_lock: glommio::sync::Semaphore,
    /// The group coordinator for the `__consumer_offsets` partitions this shard owns.
    pub coordinator: crate::group::Coordinator,
    /// Producer id allocation, on shard 0 only.
    pub producer_ids: Option<crate::producer_ids::ProducerIds>,
    pub metrics: crate::metrics::ShardMetrics,
}

/// One limiter per kind of log line a client can cause.
#[derive(Debug, Default)]
pub struct LogLimits {
    /// A connection refused at accept or closed by the broker.
    pub connections: crate::logging::LineLimiter,
    /// A produce request refused.
    pub produce_refused: crate::logging::LineLimiter,
}

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

pub fn partition_dir(data_dir: &std::path::Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// The log configuration of a topic: broker defaults overridden by the topic's configs.
pub fn log_config(base: &LogConfig, configs: &[(String, String)]) -> Result<LogConfig, String> {
    let mut c = base.clone();
    for (name, value) in configs {
        let number = || value.parse::<i64>().map_err(|_| format!("config {name}={value}: not a number"));
        match name.as_str() {
            "retention.ms" => c.retention_age_ms_max = u64::try_from(number()?).ok(),
            "retention.bytes" => c.retention_bytes_max = u64::try_from(number()?).ok(),
            "segment.bytes" => {
                c.segment_bytes_max = u64::try_from(number()?).map_err(|_| format!("{name} must be positive"))?
            }
            "segment.ms" => {
                c.segment_age_ms_max = u64::try_from(number()?).map_err(|_| format!("{name} must be positive"))?
            }
            "max.message.bytes" => {
                c.batch_bytes_max = usize::try_from(number()?).map_err(|_| format!("{name} must be positive"))?
            }
            "cleanup.policy" if value == "delete" => {}
            "cleanup.policy" => return Err(format!("cleanup.policy={value} is not supported yet; use delete")),
            "ringtail.durability" => {
                c.durability =
                    parse_durability(value).ok_or_else(|| format!("ringtail.durability={value}: use sync or async"))?
            }
            other => return Err(format!("unknown topic config `{other}`")),
        }
    }
    if c.segment_bytes_max < c.batch_bytes_max as u64 {
        c.segment_bytes_max = c.batch_bytes_max as u64;
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

impl Shard {
    pub fn new(
        id: usize,
        config: Arc<BrokerConfig>,
        (outbox, inbox): (Outbox<ShardMsg>, Inbox<ShardMsg>),
        metadata: Arc<Metadata>,
        producer_ids_start: i64,
    ) -> Rc<Shard> {
        let controller = (id == 0).then(|| RefCell::new(crate::admin::Controller::new(metadata.as_ref().clone())));
        let flusher = Flusher::new(fault_point_from_env(), FLUSH_TICK);
        let config_groups = config.groups;
        let producer_ids =
            (id == 0).then(|| crate::producer_ids::ProducerIds::new(config.data_dir.clone(), producer_ids_start));
        if let Some((write_bytes, writes_in_flight)) = config.write_shape {
            flusher.set_write_shape(write_bytes, writes_in_flight);
        }
        flusher.stats().enabled.set(config.metrics);
        flusher.set_cache_budget(config.cache_budget_bytes);
        let metrics = crate::metrics::ShardMetrics::new(config.metrics);
        let request_budget = Rc::new(glommio::sync::Semaphore::new(config.request_budget_per_shard() as u64));
        Rc::new(Shard {
            id,
            config,
            outbox,
            inbox,
            metadata: RefCell::new(metadata),
            logs: RefCell::new(HashMap::new()),
            flusher,
            shutting_down: Cell::new(false),
            in_flight: Cell::new(0),
            in_flight_apis: RefCell::new(std::collections::BTreeMap::new()),
            connections: Cell::new(0),
            log_limits: LogLimits::default(),
            offline: RefCell::new(HashMap::new()),
            offline_reported: RefCell::new(std::collections::HashSet::new()),
            request_budget,
            read_budget: crate::read_budget::ReadBudget::new(crate::limits::READ_BUDGET_BYTES_PER_SHARD),
            shutdown_wakers: RefCell::new(Vec::new()),
            next_waker_id: Cell::new(0),
            controller,
            admin_lock: glommio::sync::Semaphore::new(1),
            coordinator: crate::group::Coordinator::new(config_groups),
            producer_ids,
            metrics,
        })
    }

    pub fn metadata(&self) -> Arc<Metadata> {
        self.metadata.borrow().clone()
    }

    /// Owner shard of a partition, or `None` if the topic or partition does not exist.
    pub fn owner(&self, topic: &str, partition: i32) -> Option<usize> {
        let md = self.metadata.borrow();
        let t = md.topics.get(topic)?;
        usize::try_from(partition).ok().and_then(|p| t.shards.get(p).copied())
    }

    pub async fn send(&self, shard: usize, msg: ShardMsg) {
        self.metrics.cross_shard();
        // A full inbox makes the sender wait: backpressure, not unbounded memory.
        if self.outbox.send(shard, msg).await.is_err() {
            tracing::debug!(shard, "shard inbox closed; the broker is stopping");
        }
    }

    /// Opens the logs of the partitions this shard owns, at start-up.
    pub async fn open_owned(self: &Rc<Self>) -> Result<(), LogError> {
        let md = self.metadata();
        for (name, topic) in &md.topics {
            let owned: Vec<i32> =
                topic.shards.iter().enumerate().filter(|(_, &s)| s == self.id).map(|(p, _)| p as i32).collect();
            if owned.is_empty() {
                continue;
            }
            let configs: Vec<(String, String)> = topic.configs.clone().into_iter().collect();
            self.open_partitions(name, &owned, &configs).await.map_err(|reason| LogError::Config { reason })?;
        }
        crate::group::load(self).await
    }

    /// Runs `job` on shard `target` (here, if it is this shard) and returns its result, or
    /// `None` if that shard stopped first.
    pub async fn on_shard<R, F, Fut>(self: &Rc<Self>, target: usize, job: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let (tx, rx) = flume::bounded(1);
        let job: Job = Box::new(move |shard| {
            Box::pin(async move {
                let result = job(shard).await;
                let _ = tx.send_async(result).await;
            })
        });
        if target == self.id {
            glommio::spawn_local(job(self.clone())).detach();
        } else {
            self.send(target, ShardMsg::Run(job)).await;
        }
        rx.recv_async().await.ok()
    }

    pub async fn open_partitions(
        &self,
        topic: &str,
        partitions: &[i32],
        configs: &[(String, String)],
    ) -> Result<(), String> {
        let config = log_config(&self.config.log, configs)?;
        for (i, &p) in partitions.iter().enumerate() {
            if self.shutting_down.get() {
                // The topic is in topics.toml already: the next start opens (creates) the rest.
                // Opening thousands of partitions must not hold up a shutdown.
                tracing::info!(
                    topic,
                    left = partitions.len() - i,
                    "stopping: leaving partitions to open at the next start"
                );
                break;
            }
            if self.logs.borrow().contains_key(&(topic.to_string(), p)) {
                continue;
            }
            let dir = partition_dir(&self.config.data_dir, topic, p);
            let log = match PartitionLog::open(dir, config.clone(), &self.flusher).await {
                Ok(log) => log,
                Err(e) if e.is_fatal() => {
                    // One damaged partition must not keep the others from serving.
                    tracing::error!(topic, partition = p, error = %e, "cannot open partition; it stays offline");
                    self.offline.borrow_mut().insert((topic.to_string(), p), e);
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            let report = log.recovery_report();
            if !report.clean_shutdown && (report.segments_scanned > 0 || report.bytes_truncated > 0) {
                tracing::warn!(topic, partition = p, ?report, "recovered partition after an unclean shutdown");
            }
            if let Some(reason) = &report.producer_snapshot_ignored {
                tracing::warn!(
                    topic,
                    partition = p,
                    reason,
                    "producer snapshot not used; rebuilt the producer state from the log"
                );
            }
            self.logs.borrow_mut().insert((topic.to_string(), p), log);
        }
        Ok(())
    }

    pub fn log(&self, topic: &str, partition: i32) -> Option<Rc<PartitionLog>> {
        self.logs.borrow().get(&(topic.to_string(), partition)).cloned()
    }

    /// The error for a partition this shard has no open log of: offline after a storage error
    /// at start-up, or unknown.
    fn no_log_error(&self, topic: &str, partition: i32) -> i16 {
        match self.offline.borrow().contains_key(&(topic.to_string(), partition)) {
            true => error_code::KAFKA_STORAGE_ERROR,
            false => error_code::UNKNOWN_TOPIC_OR_PARTITION,
        }
    }

    /// A storage error (an I/O error, corrupt data read back) has stopped one partition's log:
    /// it answers KAFKA_STORAGE_ERROR from now on, every other partition keeps serving, and the
    /// broker stays up. Logged once per partition, naming the file; `/metrics` shows the
    /// partition offline. Errors that are the client's (a bad batch, an offset out of range)
    /// pass through here unlogged.
    pub fn storage_failed(&self, log: &PartitionLog, error: &LogError) {
        if !error.is_fatal() {
            return;
        }
        if self.offline_reported.borrow_mut().insert(log.dir().to_path_buf()) {
            tracing::error!(
                partition = %log.dir().display(),
                %error,
                "partition offline after a storage error: it answers KAFKA_STORAGE_ERROR until the broker restarts; \
                 other partitions are not affected"
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

    /// Offsets visible to consumers: durable ones under sync durability, all under async.
    pub fn high_watermark(log: &PartitionLog) -> u64 {
        match log.config().durability {
            Durability::Sync => log.durable_offset(),
            Durability::Async => log.log_end_offset(),
        }
    }

    pub async fn produce_local(&self, acks: i16, items: Vec<ProduceItem>) -> Vec<ProduceResult> {
        let now = ringtail_log::now_ms();
        let mut results = Vec::with_capacity(items.len());
        let mut waits = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let Some(log) = self.log(&item.topic, item.partition) else {
                results.push(ProduceResult {
                    error_code: self.no_log_error(&item.topic, item.partition),
                    base_offset: -1,
                    log_start_offset: -1,
                    error_message: None,
                });
                continue;
            };
            let bytes = item.records.len() as u64;
            match log.append(item.records, 0, now) {
                Ok(info) => {
                    if !info.duplicate {
                        self.metrics.topic(&item.topic, |c| {
                            c.bytes_in += bytes;
                            c.records_in += info.last_offset - info.base_offset + 1;
                        });
                    }
                    results.push(ProduceResult {
                        error_code: error_code::NONE,
                        base_offset: info.base_offset as i64,
                        log_start_offset: info.log_start_offset as i64,
                        error_message: None,
                    });
                    if acks != 0 && log.config().durability == Durability::Sync {
                        waits.push((i, log.clone(), log.wait_durable(info.last_offset)));
                    } else if log.unflushed_bytes() > UNFLUSHED_BYTES_MAX {
                        // acks=0 and async durability answer before the write; past this much
                        // unwritten data the producer waits for the disk (backpressure).
                        waits.push((i, log.clone(), log.wait_written(info.last_offset)));
                    }
                }
                Err(e) => {
                    self.storage_failed(&log, &e);
                    tracing::debug!(topic = item.topic, partition = item.partition, error = %e, "produce refused");
                    results.push(ProduceResult {
                        error_code: e.kafka_error_code(),
                        base_offset: -1,
                        log_start_offset: -1,
                        error_message: Some(e.to_string()),
                    });
                }
            }
        }
        // Every append is queued before the first wait, so one group commit covers them all.
        let _waiting = crate::metrics::GaugeGuard::new(&self.metrics.produce_waiting, waits.len() as i64);
        for (i, log, wait) in waits {
            if let Err(e) = wait.await {
                self.storage_failed(&log, &e);
                results[i].error_code = e.kafka_error_code();
            }
        }
        results
    }

    /// Reads the partitions in order until `budget` bytes are read; later partitions then get
    /// no records (as in Kafka, the response fills in request order). No partition reads past
    /// the budget, except that the first partition with data returns at least one batch.
    pub async fn fetch_local(&self, items: Vec<FetchItem>, mut budget: usize) -> Vec<FetchResult> {
        let mut results = Vec::with_capacity(items.len());
        let mut first = true;
        for item in items {
            let Some(log) = self.log(&item.topic, item.partition) else {
                results.push(FetchResult {
                    error_code: self.no_log_error(&item.topic, item.partition),
                    high_watermark: -1,
                    log_start_offset: -1,
                    ..FetchResult::default()
                });
                continue;
            };
            let high_watermark = Self::high_watermark(&log);
            let mut result = FetchResult {
                high_watermark: high_watermark as i64,
                log_start_offset: log.log_start_offset() as i64,
                ..FetchResult::default()
            };
            if item.offset < 0 || item.offset as u64 > log.log_end_offset() {
                result.error_code = error_code::OFFSET_OUT_OF_RANGE;
            } else if item.offset as u64 >= high_watermark || (budget == 0 && !first) {
                // Between the high watermark and the log end: nothing visible yet, no error.
            } else {
                // Never more than the response's budget, whatever the partition's own limit; the
                // log returns at least one batch, so the first partition with data always
                // progresses (Kafka's rule: a response exceeds its limit by one batch at most).
                let max_bytes = item.max_bytes.min(budget).max(1);
                // A cold read is charged to the shard's read budget until its response is
                // written. The first partition with data waits for room; later ones are left
                // empty while the budget is spent, as if the response were full.
                let mut charge = None;
                if !log.is_cached(item.offset as u64) {
                    charge = match first {
                        true => Some(self.read_budget.charge(max_bytes as u64).await),
                        false => self.read_budget.try_charge(max_bytes as u64),
                    };
                    if charge.is_none() {
                        results.push(result);
                        continue;
                    }
                }
                match log.read(item.offset as u64, max_bytes, high_watermark).await {
                    Ok(mut read) => {
                        if let Some(mut charge) = charge {
                            charge.resize(read.bytes as u64);
                            if let Some(last) = read.chunks.pop() {
                                read.chunks.push(charge.attach(last));
                            }
                        }
                        self.metrics.topic(&item.topic, |c| {
                            c.bytes_out += read.bytes as u64;
                            c.records_out += read.next_offset.saturating_sub(item.offset as u64);
                        });
                        first &= read.bytes == 0;
                        budget = budget.saturating_sub(read.bytes);
                        result.bytes = read.bytes;
                        result.records = read.chunks;
                    }
                    Err(e) => {
                        self.storage_failed(&log, &e);
                        result.error_code = e.kafka_error_code();
                    }
                }
            }
            results.push(result);
        }
        results
    }

    /// Waits until one of the partitions has data visible past its offset, or `wait` passes.
    pub async fn wait_for_data_local(&self, items: Vec<(TopicPartition, i64)>, wait: Duration) {
        let _parked = crate::metrics::GaugeGuard::new(&self.metrics.fetch_parked, 1);
        let mut waits = Vec::new();
        for ((topic, partition), offset) in items {
            let Some(log) = self.log(&topic, partition) else { continue };
            let offset = offset.max(0) as u64;
            if Self::high_watermark(&log) > offset {
                return;
            }
            waits.push(match log.config().durability {
                Durability::Sync => log.wait_durable(offset),
                Durability::Async => log.wait_appended(offset),
            });
        }
        if waits.is_empty() {
            glommio::timer::sleep(wait).await;
            return;
        }
        let any = futures_lite::future::poll_fn(move |cx| {
            for w in waits.iter_mut() {
                if std::pin::Pin::new(w).poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        });
        let stopping = futures_lite::future::or(self.shutdown_begun(), glommio::timer::sleep(wait));
        futures_lite::future::or(any, stopping).await;
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

    pub async fn list_offsets_local(&self, items: Vec<(TopicPartition, i64)>) -> Vec<OffsetsResult> {
        let mut results = Vec::with_capacity(items.len());
        for ((topic, partition), timestamp) in items {
            let Some(log) = self.log(&topic, partition) else {
                results.push(OffsetsResult {
                    error_code: self.no_log_error(&topic, partition),
                    offset: -1,
                    timestamp: -1,
                });
                continue;
            };
            let result = match timestamp {
                -1 => OffsetsResult { error_code: 0, offset: Self::high_watermark(&log) as i64, timestamp: -1 },
                -2 => OffsetsResult { error_code: 0, offset: log.log_start_offset() as i64, timestamp: -1 },
                t if t < 0 => OffsetsResult { error_code: error_code::INVALID_REQUEST, offset: -1, timestamp: -1 },
                t => match log.offset_for_timestamp(t).await {
                    Ok(Some((o, ts))) if o < Self::high_watermark(&log) => {
                        OffsetsResult { error_code: 0, offset: o as i64, timestamp: ts }
                    }
                    Ok(_) => OffsetsResult { error_code: 0, offset: -1, timestamp: -1 },
                    Err(e) => {
                        self.storage_failed(&log, &e);
                        OffsetsResult { error_code: e.kafka_error_code(), offset: -1, timestamp: -1 }
                    }
                },
            };
            results.push(result);
        }
        results
    }

    pub async fn delete_partitions_local(&self, topic: &str) {
        self.metrics.forget_topic(topic);
        let victims: Vec<(i32, Rc<PartitionLog>)> = {
            let mut logs = self.logs.borrow_mut();
            let keys: Vec<TopicPartition> = logs.keys().filter(|(t, _)| t == topic).cloned().collect();
            keys.into_iter().filter_map(|k| logs.remove(&k).map(|l| (k.1, l))).collect()
        };
        for (partition, log) in victims {
            let _ = log.close(ringtail_log::now_ms()).await;
            let dir = partition_dir(&self.config.data_dir, topic, partition);
            // Removing a directory tree is blocking work: a helper thread does it, off the shard.
            let (tx, rx) = flume::bounded(1);
            std::thread::spawn(move || {
                let result = std::fs::remove_dir_all(&dir);
                let _ = tx.send((dir, result));
            });
            if let Ok((dir, Err(e))) = rx.recv_async().await {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted partition's directory");
            }
        }
    }

    /// Serves one message from another shard.
    pub async fn handle(self: &Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Run(job) => job(self.clone()).await,
            ShardMsg::Produce { acks, items, reply } => {
                let _ = reply.send_async(self.produce_local(acks, items).await).await;
            }
            ShardMsg::Fetch { items, budget, reply } => {
                let _ = reply.send_async(self.fetch_local(items, budget).await).await;
            }
            ShardMsg::WaitForData { items, wait, reply } => {
                self.wait_for_data_local(items, wait).await;
                let _ = reply.send_async(()).await;
            }
            ShardMsg::ListOffsets { items, reply } => {
                let _ = reply.send_async(self.list_offsets_local(items).await).await;
            }
            ShardMsg::OpenPartitions { topic, partitions, configs, reply } => {
                let _ = reply.send_async(self.open_partitions(&topic, &partitions, &configs).await).await;
            }
            ShardMsg::DeletePartitions { topic, reply } => {
                self.delete_partitions_local(&topic).await;
                let _ = reply.send_async(()).await;
            }
            ShardMsg::Admin { request, reply } => {
                let answer = crate::admin::handle(self, request).await;
                let _ = reply.send_async(answer).await;
            }
            ShardMsg::Metadata(md, ack) => {
                *self.metadata.borrow_mut() = md;
                let _ = ack.send_async(()).await;
            }
            ShardMsg::Drain { .. } | ShardMsg::Close => {
                unreachable!("the shard run loop handles shutdown messages itself")
            }
        }
    }

    /// Closes every log: final flush, sealed segments, clean-shutdown markers.
    pub async fn close_logs(&self) {
        let logs: Vec<(TopicPartition, Rc<PartitionLog>)> = self.logs.borrow_mut().drain().collect();
        for ((topic, partition), log) in logs {
            if let Err(e) = log.close(ringtail_log::now_ms()).await {
                tracing::error!(topic, partition, error = %e, "closing a partition log failed");
            }
        }
    }
}
