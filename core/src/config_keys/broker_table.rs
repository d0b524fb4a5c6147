//! The table of the broker's own configs under Kafka's names: read-only, each with where its
//! value comes from in the broker's settings.

use super::types::{ConfigType, Valid};
use crate::config::BrokerConfig;

/// One broker config DescribeConfigs reports.
pub struct BrokerKey {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Its static value, from the broker's settings (`None`: not set).
    pub value: fn(&BrokerConfig) -> Option<String>,
    pub doc: &'static str,
}

fn some(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// The broker's own configs under Kafka's names, where Ringtail has the concept. These are
/// read-only (set by flags, the TOML file or the environment); the broker-level defaults of
/// topic configs (`log.retention.ms`, ...) come from `TOPIC_KEYS` and may be changed
/// dynamically.
pub const BROKER_KEYS: &[BrokerKey] = &[
    BrokerKey { name: "node.id", ty: ConfigType::Int, value: |c| some(c.node_id), doc: "This node's id (--node-id)." },
    BrokerKey {
        name: "broker.id",
        ty: ConfigType::Int,
        value: |c| some(c.node_id),
        doc: "The broker id: the node id.",
    },
    BrokerKey {
        name: "process.roles",
        ty: ConfigType::List,
        value: |_| some("broker,controller"),
        doc: "The roles of this node: a single node is broker and controller.",
    },
    BrokerKey {
        name: "listeners",
        ty: ConfigType::String,
        value: |c| Some(format!("PLAINTEXT://{}", c.listen)),
        doc: "The address Kafka clients connect to (--listen).",
    },
    BrokerKey {
        name: "advertised.listeners",
        ty: ConfigType::String,
        value: |c| Some(format!("PLAINTEXT://{}:{}", c.advertised_host, c.advertised_port)),
        doc: "The address clients are told to use (--advertised-listener).",
    },
    BrokerKey {
        name: "listener.security.protocol.map",
        ty: ConfigType::String,
        value: |_| some("PLAINTEXT:PLAINTEXT"),
        doc: "Listener names to security protocols: plaintext only (security is not built yet).",
    },
    BrokerKey {
        name: "inter.broker.listener.name",
        ty: ConfigType::String,
        value: |_| some("PLAINTEXT"),
        doc: "The listener brokers use to reach each other.",
    },
    BrokerKey {
        name: "log.dirs",
        ty: ConfigType::String,
        value: |c| some(c.data_dir.display()),
        doc: "The directory holding the log data (--data-dir); Ringtail uses one.",
    },
    BrokerKey { name: "log.dir", ty: ConfigType::String, value: |c| some(c.data_dir.display()), doc: "See log.dirs." },
    BrokerKey {
        name: "num.partitions",
        ty: ConfigType::Int,
        value: |c| some(c.default_partitions),
        doc: "Partitions of a topic created without a count (--default-partitions).",
    },
    BrokerKey {
        name: "replica.lag.time.max.ms",
        ty: ConfigType::Long,
        value: |c| some(c.cluster.replica_lag_time_max.as_millis() as i64),
        doc: "A follower not caught up with its leader for this long leaves the in-sync replicas (--replica-lag-time-max-ms).",
    },
    BrokerKey {
        name: "default.replication.factor",
        ty: ConfigType::Int,
        value: |c| some(c.cluster.default_replication_factor),
        doc: "Replicas of a topic created without a replication factor.",
    },
    BrokerKey {
        name: "auto.create.topics.enable",
        ty: ConfigType::Boolean,
        value: |c| some(c.auto_create_topics),
        doc: "Create a topic on first use in Metadata and Produce (--auto-create-topics).",
    },
    BrokerKey {
        name: "delete.topic.enable",
        ty: ConfigType::Boolean,
        value: |_| some(true),
        doc: "Topics may be deleted.",
    },
    BrokerKey {
        name: "offsets.topic.num.partitions",
        ty: ConfigType::Int,
        value: |c| some(c.offsets_topic_partitions),
        doc: "Partitions of __consumer_offsets, fixed at its creation (--offsets-topic-partitions).",
    },
    BrokerKey {
        name: "offsets.topic.replication.factor",
        ty: ConfigType::Short,
        value: |c| some(if c.cluster.is_single_node() { 1 } else { c.cluster.offsets_topic_replication_factor }),
        doc: "Replicas of __consumer_offsets in a cluster (--offsets-topic-replication-factor); a single node keeps one.",
    },
    BrokerKey {
        name: "group.initial.rebalance.delay.ms",
        ty: ConfigType::Int,
        value: |c| some(c.groups.initial_rebalance_delay_ms),
        doc: "How long a new group waits for more members before its first rebalance completes.",
    },
    BrokerKey {
        name: "group.min.session.timeout.ms",
        ty: ConfigType::Int,
        value: |c| some(c.groups.session_timeout_ms_min),
        doc: "The shortest session timeout a group member may ask for.",
    },
    BrokerKey {
        name: "group.max.session.timeout.ms",
        ty: ConfigType::Int,
        value: |c| some(c.groups.session_timeout_ms_max),
        doc: "The longest session timeout a group member may ask for.",
    },
    BrokerKey {
        name: "producer.id.expiration.ms",
        ty: ConfigType::Int,
        value: |c| some(c.log.producer_id_expiration_ms),
        doc: "How long an idempotent producer's state is kept after its last write.",
    },
    BrokerKey {
        name: "socket.request.max.bytes",
        ty: ConfigType::Int,
        value: |c| some(c.request_bytes_max),
        doc: "The largest request accepted (--request-bytes-max).",
    },
    BrokerKey {
        name: "queued.max.request.bytes",
        ty: ConfigType::Long,
        value: |c| some(c.queued_max_request_bytes),
        doc: "Bytes of requests being read or handled, for the whole broker.",
    },
    BrokerKey {
        name: "max.connections",
        ty: ConfigType::Int,
        value: |c| some(c.connection_caps.total.map_or(i32::MAX as i64, |n| n as i64)),
        doc: "Client connections open at once in the whole broker.",
    },
    BrokerKey {
        name: "max.connections.per.ip",
        ty: ConfigType::Int,
        value: |c| some(c.connection_caps.per_ip.map_or(i32::MAX as i64, |n| n as i64)),
        doc: "Client connections open at once from one IP address.",
    },
    BrokerKey {
        name: "max.connections.per.ip.overrides",
        ty: ConfigType::String,
        value: |c| {
            let mut pairs: Vec<String> =
                c.connection_caps.per_ip_overrides.iter().map(|(ip, n)| format!("{ip}:{n}")).collect();
            pairs.sort();
            some(pairs.join(","))
        },
        doc: "Per-address exceptions to max.connections.per.ip.",
    },
    BrokerKey {
        name: "connections.max.idle.ms",
        ty: ConfigType::Long,
        value: |c| some(c.connections_max_idle.as_millis()),
        doc: "Close a connection idle for this long.",
    },
    BrokerKey {
        name: "fetch.max.bytes",
        ty: ConfigType::Int,
        value: |c| some(c.fetch_max_bytes),
        doc: "The largest Fetch response built, whatever the client asks.",
    },
    BrokerKey {
        name: "log.cleaner.enable",
        ty: ConfigType::Boolean,
        value: |_| some(false),
        doc: "The log cleaner (compaction) runs: not built yet.",
    },
];

/// A broker config that may be changed dynamically (IncrementalAlterConfigs on one broker, or
/// on all of them as the cluster-wide default) and is not the default of a topic config.
pub struct DynamicBrokerKey {
    pub name: &'static str,
    pub ty: ConfigType,
    pub valid: Valid,
    pub default: &'static str,
    pub doc: &'static str,
}

/// Kafka's Long.MAX_VALUE: no throttle.
const UNTHROTTLED: &str = "9223372036854775807";

/// The dynamic broker configs Ringtail acts on.
pub const DYNAMIC_BROKER_KEYS: &[DynamicBrokerKey] = &[
    DynamicBrokerKey {
        name: "leader.replication.throttled.rate",
        ty: ConfigType::Long,
        valid: Valid::Range(0, i64::MAX),
        default: UNTHROTTLED,
        doc: "Bytes per second this broker sends, as leader, to followers outside the ISR of the replicas its \
              topics' leader.replication.throttled.replicas name (a reassignment's new replicas): in-sync \
              replication is never throttled.",
    },
    DynamicBrokerKey {
        name: "follower.replication.throttled.rate",
        ty: ConfigType::Long,
        valid: Valid::Range(0, i64::MAX),
        default: UNTHROTTLED,
        doc: "Bytes per second this broker fetches, as a follower outside the ISR, for the replicas its topics' \
              follower.replication.throttled.replicas name.",
    },
];
