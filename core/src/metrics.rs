//! Metrics: each shard counts in plain cells (it owns them: no locks, no atomics on the data
//! path); a scrape asks every shard for a copy (`ShardSnapshot`, one message per shard) and
//! encodes the copies in the OpenMetrics text format with `prometheus-client`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use ringtail_log::stats::{HistogramSnapshot, LatencyHistogram};
use ringtail_net::header::ApiKey;

/// API keys are below this; requests with others are counted as key -1.
const API_KEYS: usize = 64;

#[derive(Debug, Default)]
struct ApiCounters {
    requests: Cell<u64>,
    errors: Cell<u64>,
    latency: LatencyHistogram,
}

/// Bytes and records into and out of one topic's partitions on one shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TopicCounters {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
}

/// One shard's metrics. Recording is on unless the broker runs with `--metrics false`.
#[derive(Debug)]
pub struct ShardMetrics {
    enabled: bool,
    apis: Vec<ApiCounters>,
    other_api: ApiCounters,
    topics: RefCell<HashMap<String, TopicCounters>>,
    pub cross_shard_messages: Cell<u64>,
    /// Produce partitions waiting until their batches are durable (or written).
    pub produce_waiting: Cell<i64>,
    /// Fetches parked until data arrives.
    pub fetch_parked: Cell<i64>,
    /// Connections closed for stalling mid-request, and for idling.
    pub closed_read_timeout: Cell<u64>,
    pub closed_idle: Cell<u64>,
    /// Responses written, and the `sendmsg` calls that wrote them (one each when the socket
    /// had room).
    pub responses_written: Cell<u64>,
    pub response_sends: Cell<u64>,
    /// Cold reads answered as file ranges (sent without a copy), and their bytes.
    pub zero_copy_reads: Cell<u64>,
    pub zero_copy_read_bytes: Cell<u64>,
    /// The scrubber: bytes verified, segments verified whole, damage found.
    pub scrub_bytes: Cell<u64>,
    pub scrub_segments: Cell<u64>,
    pub scrub_damage: Cell<u64>,
    /// Connections refused at accept, by the cap that refused them.
    pub refused_max_connections: Cell<u64>,
    pub refused_max_connections_per_ip: Cell<u64>,
    /// Produce records copied out of their request frame so the cache does not pin the frame.
    pub pinning_copies: Cell<u64>,
    pub pinning_copy_bytes: Cell<u64>,
    /// Produce records rewritten in their topic's compression.type: bytes received, bytes stored.
    pub recompressed_in_bytes: Cell<u64>,
    pub recompressed_out_bytes: Cell<u64>,
    /// Record bytes this shard's leaders sent to followers, and its followers appended.
    pub replication_bytes_out: Cell<u64>,
    pub replication_bytes_in: Cell<u64>,
    pub isr_shrinks: Cell<u64>,
    pub isr_expands: Cell<u64>,
    /// Damaged replicas deleted and fetched again from their leader.
    pub replicas_rebuilt: Cell<u64>,
}

impl ShardMetrics {
    pub fn new(enabled: bool) -> Self {
        ShardMetrics {
            enabled,
            apis: (0..API_KEYS).map(|_| ApiCounters::default()).collect(),
            other_api: ApiCounters::default(),
            topics: RefCell::new(HashMap::new()),
            cross_shard_messages: Cell::new(0),
            produce_waiting: Cell::new(0),
            fetch_parked: Cell::new(0),
            closed_read_timeout: Cell::new(0),
            closed_idle: Cell::new(0),
            responses_written: Cell::new(0),
            response_sends: Cell::new(0),
            zero_copy_reads: Cell::new(0),
            zero_copy_read_bytes: Cell::new(0),
            scrub_bytes: Cell::new(0),
            scrub_segments: Cell::new(0),
            scrub_damage: Cell::new(0),
            refused_max_connections: Cell::new(0),
            refused_max_connections_per_ip: Cell::new(0),
            pinning_copies: Cell::new(0),
            pinning_copy_bytes: Cell::new(0),
            recompressed_in_bytes: Cell::new(0),
            replication_bytes_out: Cell::new(0),
            replication_bytes_in: Cell::new(0),
            isr_shrinks: Cell::new(0),
            isr_expands: Cell::new(0),
            replicas_rebuilt: Cell::new(0),
            recompressed_out_bytes: Cell::new(0),
        }
    }

    pub fn recompressed(&self, in_bytes: usize, out_bytes: usize) {
        self.recompressed_in_bytes.set(self.recompressed_in_bytes.get() + in_bytes as u64);
        self.recompressed_out_bytes.set(self.recompressed_out_bytes.get() + out_bytes as u64);
    }

    pub fn pinning_copy(&self, bytes: usize) {
        self.pinning_copies.set(self.pinning_copies.get() + 1);
        self.pinning_copy_bytes.set(self.pinning_copy_bytes.get() + bytes as u64);
    }

    /// Counted even with `--metrics false`: these are what an operator under attack looks at.
    pub fn connection_refused(&self, refusal: Refusal) {
        let cell = match refusal {
            Refusal::MaxConnections => &self.refused_max_connections,
            Refusal::MaxConnectionsPerIp => &self.refused_max_connections_per_ip,
        };
        cell.set(cell.get() + 1);
    }

    pub fn response_written(&self, sends: usize) {
        self.responses_written.set(self.responses_written.get() + 1);
        self.response_sends.set(self.response_sends.get() + sends as u64);
    }

    pub fn zero_copy_read(&self, bytes: usize) {
        self.zero_copy_reads.set(self.zero_copy_reads.get() + 1);
        self.zero_copy_read_bytes.set(self.zero_copy_read_bytes.get() + bytes as u64);
    }

    pub fn scrubbed(&self, bytes: u64, segment_verified: bool) {
        self.scrub_bytes.set(self.scrub_bytes.get() + bytes);
        self.scrub_segments.set(self.scrub_segments.get() + u64::from(segment_verified));
    }

    pub fn scrub_found_damage(&self) {
        self.scrub_damage.set(self.scrub_damage.get() + 1);
    }

    pub fn connection_closed(&self, read_timeout: bool) {
        let cell = if read_timeout { &self.closed_read_timeout } else { &self.closed_idle };
        cell.set(cell.get() + 1);
    }

    fn api(&self, key: i16) -> &ApiCounters {
        usize::try_from(key).ok().and_then(|k| self.apis.get(k)).unwrap_or(&self.other_api)
    }

    /// A request handled, how long it took, and whether it was refused or answered with an error.
    pub fn request(&self, key: i16, elapsed: Duration, error: bool) {
        if !self.enabled {
            return;
        }
        let a = self.api(key);
        a.requests.set(a.requests.get() + 1);
        if error {
            a.errors.set(a.errors.get() + 1);
        }
        a.latency.observe(elapsed);
    }

    /// A request answered with an error code (counted in addition to `request`).
    pub fn error(&self, key: ApiKey) {
        if self.enabled {
            let a = self.api(key as i16);
            a.errors.set(a.errors.get() + 1);
        }
    }

    /// (api key, requests, errors, latency) of every API with requests; -1 for the others.
    pub fn api_rows(&self) -> Vec<ApiRow> {
        let mut rows = Vec::new();
        for (key, a) in self.apis.iter().enumerate() {
            if a.requests.get() > 0 || a.errors.get() > 0 {
                rows.push((key as i16, a.requests.get(), a.errors.get(), a.latency.snapshot()));
            }
        }
        if self.other_api.requests.get() > 0 {
            let a = &self.other_api;
            rows.push((-1, a.requests.get(), a.errors.get(), a.latency.snapshot()));
        }
        rows
    }

    /// Every topic's counters, by name.
    pub fn topic_rows(&self) -> Vec<(String, TopicCounters)> {
        let mut rows: Vec<(String, TopicCounters)> =
            self.topics.borrow().iter().map(|(t, c)| (t.clone(), *c)).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    pub fn topic(&self, topic: &str, update: impl FnOnce(&mut TopicCounters)) {
        if !self.enabled {
            return;
        }
        let mut topics = self.topics.borrow_mut();
        match topics.get_mut(topic) {
            Some(c) => update(c),
            None => update(topics.entry(topic.to_string()).or_default()),
        }
    }

    pub fn forget_topic(&self, topic: &str) {
        self.topics.borrow_mut().remove(topic);
    }

    pub fn cross_shard(&self) {
        if self.enabled {
            self.cross_shard_messages.set(self.cross_shard_messages.get() + 1);
        }
    }

    pub fn add(cell: &Cell<i64>, delta: i64) {
        cell.set(cell.get() + delta);
    }
}

/// Counts a gauge up now and down when dropped.
pub struct GaugeGuard<'a>(&'a Cell<i64>, i64);

impl<'a> GaugeGuard<'a> {
    pub fn new(cell: &'a Cell<i64>, n: i64) -> Self {
        ShardMetrics::add(cell, n);
        GaugeGuard(cell, n)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        ShardMetrics::add(self.0, -self.1);
    }
}

/// One partition's state at scrape time.
#[derive(Debug, Clone)]
pub struct PartitionSnapshot {
    pub topic: String,
    pub partition: i32,
    pub segments: u64,
    pub size_bytes: u64,
    pub log_start_offset: u64,
    pub log_end_offset: u64,
    pub high_watermark: u64,
    pub producers: u64,
    /// The partition's log stopped after a storage error.
    pub offline: bool,
    /// This node leads it.
    pub leader: bool,
    /// Nodes holding a replica, and the in-sync ones (as this replica knows them).
    pub replicas: u64,
    pub in_sync: u64,
    /// As leader: each follower's lag, (node, offsets behind the log end, ms since caught up).
    pub followers: Vec<(i32, u64, i64)>,
}

/// Which cap refused a connection (the label of `ringtail_connections_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerIp,
}

/// A copy of one shard's metrics, sent to the scraping thread.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    pub shard: usize,
    /// (api key, requests, errors, latency) of every API with requests.
    pub apis: Vec<ApiRow>,
    pub topics: Vec<(String, TopicCounters)>,
    pub partitions: Vec<PartitionSnapshot>,
    pub connections: u64,
    pub requests_in_flight: u64,
    pub produce_waiting: i64,
    pub fetch_parked: i64,
    pub inbox_depth: u64,
    pub cross_shard_messages: u64,
    pub flush_latency: HistogramSnapshot,
    pub fdatasync_latency: HistogramSnapshot,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Committed offsets of the groups this shard coordinates: (group, topic, partition, offset).
    pub committed: Vec<(String, String, i32, i64)>,
    /// Committed offsets left out of the scrape (past `METRICS_GROUP_SERIES_MAX`).
    pub committed_omitted: u64,
    /// Idempotent producers forgotten at a partition's producer cap.
    pub producers_evicted: u64,
    /// (budget name, limit, used) of every per-shard budget.
    pub budgets: Vec<(&'static str, u64, u64)>,
    pub closed_read_timeout: u64,
    pub closed_idle: u64,
    pub responses_written: u64,
    pub response_sends: u64,
    pub zero_copy_reads: u64,
    pub zero_copy_read_bytes: u64,
    /// File ranges the shard's splice ring sent, their bytes, and the sends that failed.
    pub zero_copy_sends: u64,
    pub zero_copy_send_bytes: u64,
    pub zero_copy_send_failures: u64,
    pub scrub_bytes: u64,
    pub scrub_segments: u64,
    pub scrub_damage: u64,
    pub refused_max_connections: u64,
    pub refused_max_connections_per_ip: u64,
    pub pinning_copies: u64,
    pub pinning_copy_bytes: u64,
    pub recompressed_in_bytes: u64,
    pub recompressed_out_bytes: u64,
    /// ISR changes the controller took for this shard's leaders: fewer replicas, more replicas.
    pub isr_shrinks: u64,
    pub isr_expands: u64,
    /// Damaged replicas rebuilt from their leader.
    pub replicas_rebuilt: u64,
    /// Record bytes sent to followers, and appended as follower.
    pub replication_bytes_out: u64,
    pub replication_bytes_in: u64,
    pub disk: DiskSnapshot,
}

/// The data directory's free space as one shard last read it.
#[derive(Debug, Clone, Default)]
pub struct DiskSnapshot {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub low_watermark_bytes: u64,
    pub high_watermark_bytes: u64,
    /// Produce to user topics refused (below the low watermark, not yet back above the high one).
    pub writes_refused: bool,
    /// Appends refused for space since start.
    pub appends_refused: u64,
    /// Flushes that found no space.
    pub flushes_out_of_space: u64,
}

fn api_name(key: i16) -> String {
    ApiKey::from_i16(key).map_or_else(|| "unknown".to_string(), |k| format!("{k:?}"))
}

type Labels = Vec<(String, String)>;
/// (api key, requests, errors, latency).
pub type ApiRow = (i16, u64, u64, HistogramSnapshot);

fn shard_label(shard: usize) -> Labels {
    vec![("shard".into(), shard.to_string())]
}

/// Encodes a set of shard snapshots (the prometheus-client `Collector` of one scrape).
#[derive(Debug)]
struct Snapshots(Vec<ShardSnapshot>);

fn counters(e: &mut DescriptorEncoder, name: &str, help: &str, rows: Vec<(Labels, u64)>) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauges(e: &mut DescriptorEncoder, name: &str, help: &str, rows: Vec<(Labels, i64)>) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histograms(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: Vec<(Labels, &HistogramSnapshot)>,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count(), &h.buckets(), None)?;
    }
    Ok(())
}

impl Collector for Snapshots {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let per_api = |f: &dyn Fn(&ApiRow) -> u64| -> Vec<(Labels, u64)> {
            s.iter()
                .flat_map(|snap| {
                    snap.apis.iter().map(move |a| {
                        let mut l = shard_label(snap.shard);
                        l.push(("api".into(), api_name(a.0)));
                        (l, f(a))
                    })
                })
                .collect()
        };
        counters(&mut e, "ringtail_requests", "Requests handled, by shard and API.", per_api(&|a| a.1))?;
        counters(
            &mut e,
            "ringtail_request_errors",
            "Requests refused (connection closed) or answered with an error code, by shard and API.",
            per_api(&|a| a.2),
        )?;
        let latency: Vec<(Labels, &HistogramSnapshot)> = s
            .iter()
            .flat_map(|snap| {
                snap.apis.iter().map(move |a| {
                    let mut l = shard_label(snap.shard);
                    l.push(("api".into(), api_name(a.0)));
                    (l, &a.3)
                })
            })
            .collect();
        histograms(
            &mut e,
            "ringtail_request_latency_seconds",
            "Time from a request's arrival to its response being ready, by shard and API.",
            latency,
        )?;
        let per_topic = |f: &dyn Fn(&TopicCounters) -> u64| -> Vec<(Labels, u64)> {
            s.iter()
                .flat_map(|snap| {
                    snap.topics.iter().map(move |(topic, c)| {
                        let mut l = shard_label(snap.shard);
                        l.push(("topic".into(), topic.clone()));
                        (l, f(c))
                    })
                })
                .collect()
        };
        counters(
            &mut e,
            "ringtail_topic_bytes_in",
            "Record batch bytes appended, by owner shard and topic.",
            per_topic(&|c| c.bytes_in),
        )?;
        counters(
            &mut e,
            "ringtail_topic_records_in",
            "Records appended, by owner shard and topic.",
            per_topic(&|c| c.records_in),
        )?;
        counters(
            &mut e,
            "ringtail_topic_bytes_out",
            "Record batch bytes returned by fetches, by owner shard and topic.",
            per_topic(&|c| c.bytes_out),
        )?;
        counters(
            &mut e,
            "ringtail_topic_records_out",
            "Offsets returned by fetches (from the fetch position to the end of the last batch), by owner shard and topic.",
            per_topic(&|c| c.records_out),
        )?;
        let per_shard = |f: &dyn Fn(&ShardSnapshot) -> i64| -> Vec<(Labels, i64)> {
            s.iter().map(|snap| (shard_label(snap.shard), f(snap))).collect()
        };
        let per_shard_u = |f: &dyn Fn(&ShardSnapshot) -> u64| -> Vec<(Labels, u64)> {
            s.iter().map(|snap| (shard_label(snap.shard), f(snap))).collect()
        };
        gauges(&mut e, "ringtail_connections", "Client connections open.", per_shard(&|x| x.connections as i64))?;
        gauges(
            &mut e,
            "ringtail_requests_in_flight",
            "Requests being handled.",
            per_shard(&|x| x.requests_in_flight as i64),
        )?;
        gauges(
            &mut e,
            "ringtail_produce_queue_depth",
            "Partitions of produce requests waiting until their batches are durable (or written, under async durability).",
            per_shard(&|x| x.produce_waiting),
        )?;
        gauges(
            &mut e,
            "ringtail_fetch_queue_depth",
            "Fetch requests parked until data arrives.",
            per_shard(&|x| x.fetch_parked),
        )?;
        gauges(
            &mut e,
            "ringtail_shard_inbox_depth",
            "Messages from other shards waiting in this shard's inbox.",
            per_shard(&|x| x.inbox_depth as i64),
        )?;
        counters(
            &mut e,
            "ringtail_cross_shard_messages",
            "Messages this shard sent to other shards.",
            per_shard_u(&|x| x.cross_shard_messages),
        )?;
        histograms(
            &mut e,
            "ringtail_flush_latency_seconds",
            "One group commit of one log: write and, under sync durability, fdatasync.",
            s.iter().map(|x| (shard_label(x.shard), &x.flush_latency)).collect(),
        )?;
        histograms(
            &mut e,
            "ringtail_fdatasync_latency_seconds",
            "One fdatasync of a segment file.",
            s.iter().map(|x| (shard_label(x.shard), &x.fdatasync_latency)).collect(),
        )?;
        counters(
            &mut e,
            "ringtail_batch_cache_hits",
            "Reads served from the batch cache.",
            per_shard_u(&|x| x.cache_hits),
        )?;
        counters(&mut e, "ringtail_batch_cache_misses", "Reads served from disk.", per_shard_u(&|x| x.cache_misses))?;
        let partitions: Vec<&PartitionSnapshot> = s.iter().flat_map(|x| x.partitions.iter()).collect();
        let per_partition = |f: &dyn Fn(&PartitionSnapshot) -> u64| -> Vec<(Labels, i64)> {
            partitions
                .iter()
                .map(|p| {
                    let l = vec![("topic".into(), p.topic.clone()), ("partition".into(), p.partition.to_string())];
                    (l, f(p) as i64)
                })
                .collect()
        };
        gauges(&mut e, "ringtail_partition_segments", "Segment files of a partition.", per_partition(&|p| p.segments))?;
        gauges(
            &mut e,
            "ringtail_partition_size_bytes",
            "Bytes of log held in a partition's segments.",
            per_partition(&|p| p.size_bytes),
        )?;
        gauges(
            &mut e,
            "ringtail_partition_log_start_offset",
            "First offset readable.",
            per_partition(&|p| p.log_start_offset),
        )?;
        gauges(
            &mut e,
            "ringtail_partition_log_end_offset",
            "One past the last offset appended.",
            per_partition(&|p| p.log_end_offset),
        )?;
        gauges(
            &mut e,
            "ringtail_partition_high_watermark",
            "One past the last offset visible to consumers.",
            per_partition(&|p| p.high_watermark),
        )?;
        gauges(
            &mut e,
            "ringtail_partition_idempotent_producers",
            "Producer ids with state in a partition.",
            per_partition(&|p| p.producers),
        )?;
        gauges(
            &mut e,
            "ringtail_partition_offline",
            "1 when the partition's log stopped after a storage error (reads and writes answer KAFKA_STORAGE_ERROR).",
            per_partition(&|p| u64::from(p.offline)),
        )?;
        gauges(
            &mut e,
            "ringtail_partition_replicas",
            "Nodes holding a replica of the partition.",
            per_partition(&|p| p.replicas),
        )?;
        gauges(
            &mut e,
            "ringtail_partition_in_sync_replicas",
            "In-sync replicas of the partition, as this node's replica knows them.",
            per_partition(&|p| p.in_sync),
        )?;
        gauges(
            &mut e,
            "ringtail_partition_under_replicated",
            "1 when this node leads the partition and fewer replicas are in sync than hold it (Kafka's UnderReplicatedPartitions, per partition).",
            per_partition(&|p| u64::from(p.leader && p.in_sync < p.replicas)),
        )?;
        let per_follower = |f: &dyn Fn(&(i32, u64, i64)) -> i64| -> Vec<(Labels, i64)> {
            partitions
                .iter()
                .flat_map(|p| {
                    p.followers.iter().map(move |x| {
                        let l = vec![
                            ("topic".into(), p.topic.clone()),
                            ("partition".into(), p.partition.to_string()),
                            ("follower".into(), x.0.to_string()),
                        ];
                        (l, f(x))
                    })
                })
                .collect()
        };
        gauges(
            &mut e,
            "ringtail_follower_lag_offsets",
            "As leader: offsets a follower is behind the log end (by its last fetch).",
            per_follower(&|x| x.1 as i64),
        )?;
        gauges(
            &mut e,
            "ringtail_follower_lag_ms",
            "As leader: milliseconds since a follower was last caught up with the log end.",
            per_follower(&|x| x.2),
        )?;
        let under: Vec<(Labels, i64)> = s
            .iter()
            .map(|snap| {
                let n = snap.partitions.iter().filter(|p| p.leader && p.in_sync < p.replicas).count();
                (shard_label(snap.shard), n as i64)
            })
            .collect();
        gauges(
            &mut e,
            "ringtail_under_replicated_partitions",
            "Partitions this shard leads with fewer in-sync replicas than replicas.",
            under,
        )?;
        counters(
            &mut e,
            "ringtail_isr_shrinks",
            "ISR changes the controller took that removed replicas, for partitions this shard leads.",
            per_shard_u(&|x| x.isr_shrinks),
        )?;
        counters(
            &mut e,
            "ringtail_isr_expands",
            "ISR changes the controller took that added replicas, for partitions this shard leads.",
            per_shard_u(&|x| x.isr_expands),
        )?;
        counters(
            &mut e,
            "ringtail_replicas_rebuilt",
            "Damaged replicas (storage failed) this shard deleted and fetched again from their leader.",
            per_shard_u(&|x| x.replicas_rebuilt),
        )?;
        counters(
            &mut e,
            "ringtail_replication_bytes_out",
            "Record bytes this shard's leaders sent to followers.",
            per_shard_u(&|x| x.replication_bytes_out),
        )?;
        counters(
            &mut e,
            "ringtail_replication_bytes_in",
            "Record bytes this shard's followers appended from their leaders.",
            per_shard_u(&|x| x.replication_bytes_in),
        )?;
        let budget_rows = |f: &dyn Fn(u64, u64) -> u64| -> Vec<(Labels, i64)> {
            s.iter()
                .flat_map(|snap| {
                    snap.budgets.iter().map(move |(name, limit, used)| {
                        let mut l = shard_label(snap.shard);
                        l.push(("budget".into(), name.to_string()));
                        (l, f(*limit, *used) as i64)
                    })
                })
                .collect()
        };
        gauges(
            &mut e,
            "ringtail_budget_limit_bytes",
            "A per-shard budget of memory clients can make the broker hold, by shard and budget.",
            budget_rows(&|limit, _| limit),
        )?;
        gauges(
            &mut e,
            "ringtail_budget_used_bytes",
            "Bytes charged to a per-shard budget now, by shard and budget.",
            budget_rows(&|_, used| used),
        )?;
        let with_reason = |reason: &str, f: &dyn Fn(&ShardSnapshot) -> u64| -> Vec<(Labels, u64)> {
            s.iter()
                .map(|snap| {
                    let mut l = shard_label(snap.shard);
                    l.push(("reason".into(), reason.to_string()));
                    (l, f(snap))
                })
                .collect()
        };
        let mut closed = with_reason("read_timeout", &|x| x.closed_read_timeout);
        closed.extend(with_reason("idle", &|x| x.closed_idle));
        counters(
            &mut e,
            "ringtail_connections_closed",
            "Connections the broker closed: stalled mid-request (read_timeout) or idle.",
            closed,
        )?;
        counters(
            &mut e,
            "ringtail_responses_written",
            "Responses written to clients.",
            per_shard_u(&|x| x.responses_written),
        )?;
        counters(
            &mut e,
            "ringtail_response_sends",
            "Vectored sends (sendmsg) that wrote responses, size and every chunk of one response in one call while the socket has room: equal to ringtail_responses_written_total when none had to wait.",
            per_shard_u(&|x| x.response_sends),
        )?;
        counters(
            &mut e,
            "ringtail_zero_copy_reads",
            "Cold reads answered as a range of a verified segment file, to be sent from the file without a copy (counted on the shard owning the partition).",
            per_shard_u(&|x| x.zero_copy_reads),
        )?;
        counters(
            &mut e,
            "ringtail_zero_copy_read_bytes",
            "Bytes of the cold reads answered as file ranges.",
            per_shard_u(&|x| x.zero_copy_read_bytes),
        )?;
        counters(
            &mut e,
            "ringtail_zero_copy_sends",
            "File ranges sent from the file to a client's socket through the shard's splice ring (counted on the connection's shard).",
            per_shard_u(&|x| x.zero_copy_sends),
        )?;
        counters(
            &mut e,
            "ringtail_zero_copy_send_bytes",
            "Bytes sent from files through the splice rings.",
            per_shard_u(&|x| x.zero_copy_send_bytes),
        )?;
        counters(
            &mut e,
            "ringtail_zero_copy_send_failures",
            "File-range sends that failed (the client stopped reading for the write timeout, the connection closed, or the file was cut under the send); each closes its connection.",
            per_shard_u(&|x| x.zero_copy_send_failures),
        )?;
        counters(
            &mut e,
            "ringtail_scrub_bytes",
            "Bytes of sealed segments the scrubber read and verified (length, CRC and offset of every batch).",
            per_shard_u(&|x| x.scrub_bytes),
        )?;
        counters(
            &mut e,
            "ringtail_scrub_segments_verified",
            "Sealed segments the scrubber verified whole (again after each restart).",
            per_shard_u(&|x| x.scrub_segments),
        )?;
        counters(
            &mut e,
            "ringtail_scrub_damage_found",
            "Partitions the scrubber found damaged and took offline.",
            per_shard_u(&|x| x.scrub_damage),
        )?;
        let mut refused = with_reason("max_connections", &|x| x.refused_max_connections);
        refused.extend(with_reason("max_connections_per_ip", &|x| x.refused_max_connections_per_ip));
        counters(
            &mut e,
            "ringtail_connections_refused",
            "Connections refused at accept, by the cap reached.",
            refused,
        )?;
        counters(
            &mut e,
            "ringtail_produce_pinning_copies",
            "Produce records copied out of a request frame more than twice their size, so the batch cache does not keep the frame alive.",
            per_shard_u(&|x| x.pinning_copies),
        )?;
        counters(
            &mut e,
            "ringtail_produce_pinning_copy_bytes",
            "Bytes copied out of request frames for the same reason.",
            per_shard_u(&|x| x.pinning_copy_bytes),
        )?;
        counters(
            &mut e,
            "ringtail_produce_recompressed_in_bytes",
            "Produce records rewritten in their topic's compression.type: bytes as received.",
            per_shard_u(&|x| x.recompressed_in_bytes),
        )?;
        counters(
            &mut e,
            "ringtail_produce_recompressed_out_bytes",
            "The same records as stored, after recompression.",
            per_shard_u(&|x| x.recompressed_out_bytes),
        )?;
        gauges(
            &mut e,
            "ringtail_consumer_group_series_omitted",
            "Committed offsets of the groups a shard coordinates left out of this scrape (at most 10000 series per shard).",
            per_shard(&|x| x.committed_omitted as i64),
        )?;
        gauges(
            &mut e,
            "ringtail_disk_total_bytes",
            "Size of the data directory's file system.",
            per_shard(&|x| x.disk.total_bytes as i64),
        )?;
        gauges(
            &mut e,
            "ringtail_disk_free_bytes",
            "Free space of the data directory's file system (for unprivileged processes), as last read.",
            per_shard(&|x| x.disk.free_bytes as i64),
        )?;
        gauges(
            &mut e,
            "ringtail_disk_free_low_watermark_bytes",
            "Below this much free space produce to user topics is refused.",
            per_shard(&|x| x.disk.low_watermark_bytes as i64),
        )?;
        gauges(
            &mut e,
            "ringtail_disk_free_high_watermark_bytes",
            "Refused writes are accepted again once this much space is free.",
            per_shard(&|x| x.disk.high_watermark_bytes as i64),
        )?;
        gauges(
            &mut e,
            "ringtail_disk_writes_refused",
            "1 while produce to user topics is refused for lack of free space.",
            per_shard(&|x| i64::from(x.disk.writes_refused)),
        )?;
        counters(
            &mut e,
            "ringtail_disk_appends_refused",
            "Appends refused for lack of free space (answered with the retriable KAFKA_STORAGE_ERROR).",
            per_shard_u(&|x| x.disk.appends_refused),
        )?;
        counters(
            &mut e,
            "ringtail_disk_flushes_out_of_space",
            "Flushes that found no space on the file system (their unacknowledged batches were taken back, or kept queued).",
            per_shard_u(&|x| x.disk.flushes_out_of_space),
        )?;
        counters(
            &mut e,
            "ringtail_producers_evicted",
            "Idempotent producers a partition forgot because it reached its cap (10000), least recently heard from first.",
            per_shard_u(&|x| x.producers_evicted),
        )?;
        counters(
            &mut e,
            "ringtail_log_lines_dropped",
            "Log lines dropped because the log writer was behind (stderr slow or full).",
            vec![(Vec::new(), crate::logging::dropped_lines())],
        )?;
        counters(
            &mut e,
            "ringtail_log_lines_suppressed",
            "Log lines left out by the per-shard rate limits of lines clients can cause.",
            vec![(Vec::new(), crate::logging::suppressed_lines())],
        )?;
        let high_watermarks: HashMap<(&str, i32), u64> =
            partitions.iter().map(|p| ((p.topic.as_str(), p.partition), p.high_watermark)).collect();
        let committed: Vec<&(String, String, i32, i64)> = s.iter().flat_map(|x| x.committed.iter()).collect();
        let group_labels = |(g, t, p, _): &(String, String, i32, i64)| -> Labels {
            vec![("group".into(), g.clone()), ("topic".into(), t.clone()), ("partition".into(), p.to_string())]
        };
        gauges(
            &mut e,
            "ringtail_consumer_group_committed_offset",
            "A group's committed offset of a partition.",
            committed.iter().map(|c| (group_labels(c), c.3)).collect(),
        )?;
        gauges(
            &mut e,
            "ringtail_consumer_group_lag",
            "High watermark minus the committed offset (0 when the commit is past it).",
            committed
                .iter()
                .filter_map(|c| {
                    let hw = *high_watermarks.get(&(c.1.as_str(), c.2))?;
                    Some((group_labels(c), (hw as i64 - c.3).max(0)))
                })
                .collect(),
        )?;
        Ok(())
    }
}

/// The OpenMetrics text of a scrape.
pub fn encode(snapshots: Vec<ShardSnapshot>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshots(snapshots)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_gauges_histograms_and_lag() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_millis(3));
        let snap = ShardSnapshot {
            shard: 1,
            apis: vec![(0, 5, 1, h.snapshot())],
            topics: vec![("t".into(), TopicCounters { bytes_in: 10, records_in: 3, bytes_out: 0, records_out: 0 })],
            partitions: vec![PartitionSnapshot {
                topic: "t".into(),
                partition: 0,
                segments: 1,
                size_bytes: 10,
                log_start_offset: 0,
                log_end_offset: 3,
                high_watermark: 3,
                producers: 0,
                offline: true,
                leader: true,
                replicas: 3,
                in_sync: 2,
                followers: vec![(2, 5, 40)],
            }],
            committed: vec![("g".into(), "t".into(), 0, 1)],
            budgets: vec![("request", 100, 40)],
            closed_read_timeout: 2,
            refused_max_connections_per_ip: 3,
            ..ShardSnapshot::default()
        };
        let text = encode(vec![snap]);
        assert!(text.contains("ringtail_partition_offline{topic=\"t\",partition=\"0\"} 1"), "{text}");
        assert!(text.contains("ringtail_partition_under_replicated{topic=\"t\",partition=\"0\"} 1"), "{text}");
        assert!(text.contains("ringtail_follower_lag_offsets{topic=\"t\",partition=\"0\",follower=\"2\"} 5"), "{text}");
        assert!(text.contains("ringtail_under_replicated_partitions{shard=\"1\"} 1"), "{text}");
        assert!(text.contains("ringtail_budget_limit_bytes{shard=\"1\",budget=\"request\"} 100"), "{text}");
        assert!(text.contains("ringtail_budget_used_bytes{shard=\"1\",budget=\"request\"} 40"), "{text}");
        assert!(text.contains("ringtail_connections_closed_total{shard=\"1\",reason=\"read_timeout\"} 2"), "{text}");
        assert!(
            text.contains("ringtail_connections_refused_total{shard=\"1\",reason=\"max_connections_per_ip\"} 3"),
            "{text}"
        );
        assert!(text.contains("ringtail_requests_total{shard=\"1\",api=\"Produce\"} 5"), "{text}");
        assert!(text.contains("ringtail_request_errors_total{shard=\"1\",api=\"Produce\"} 1"), "{text}");
        assert!(text.contains("ringtail_topic_records_in_total{shard=\"1\",topic=\"t\"} 3"), "{text}");
        assert!(
            text.contains("ringtail_request_latency_seconds_bucket{le=\"0.005\",shard=\"1\",api=\"Produce\"} 1"),
            "{text}"
        );
        assert!(text.contains("ringtail_consumer_group_lag{group=\"g\",topic=\"t\",partition=\"0\"} 2"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
