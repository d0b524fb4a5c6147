//! Broker configuration: command-line flags, a TOML file, and `RINGTAIL_*` environment
//! variables, in that order of precedence, over embedded defaults.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ringtail_log::{Durability, LogConfig};

use serde::Deserialize;

use crate::limits;

pub mod cluster;

pub use cluster::ClusterConfig;

/// `ringtail serve` options. Every option can also come from the TOML file given with
/// `--config` (same names, with `_` for `-`) or from the environment (`RINGTAIL_` + upper case).
#[derive(Debug, Clone, Args, Default)]
pub struct ServeArgs {
    /// Address to accept Kafka clients on (default 127.0.0.1:9092).
    #[arg(long, env = "RINGTAIL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// host:port clients are told to connect to (defaults to the listen address).
    #[arg(long, env = "RINGTAIL_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,
    /// Directory for topic data and broker state (default ./ringtail-data).
    #[arg(long, env = "RINGTAIL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Number of shards (one per core); defaults to the cores available.
    #[arg(long, env = "RINGTAIL_SHARDS")]
    pub shards: Option<usize>,
    /// TOML configuration file.
    #[arg(long, env = "RINGTAIL_CONFIG")]
    pub config: Option<PathBuf>,
    /// This broker's node id (default 0).
    #[arg(long, env = "RINGTAIL_NODE_ID")]
    pub node_id: Option<i32>,
    /// Create topics on first use in Metadata and Produce requests (default true).
    #[arg(long, env = "RINGTAIL_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of an auto-created topic, or of CreateTopics asking for the default (-1);
    /// default 4.
    #[arg(long, env = "RINGTAIL_DEFAULT_PARTITIONS")]
    pub default_partitions: Option<i32>,
    /// When a write is acknowledged: `sync` (after fdatasync; the default) or `async` (once
    /// queued; written within 10 ms and fdatasynced every second). Topics may override it with
    /// the config `ringtail.durability`.
    #[arg(long, env = "RINGTAIL_DURABILITY")]
    pub durability: Option<String>,
    /// Largest request accepted, in bytes (default 104857600).
    #[arg(long, env = "RINGTAIL_REQUEST_BYTES_MAX")]
    pub request_bytes_max: Option<usize>,
    /// Log level filter, e.g. `info` (the default) or `ringtail=debug`; RUST_LOG, when set,
    /// takes precedence.
    #[arg(long, env = "RINGTAIL_LOG")]
    pub log: Option<String>,
    /// Partitions of the internal `__consumer_offsets` topic, fixed when it is first created;
    /// a group's coordinator is the owner of partition hash(group) % this (default 16).
    #[arg(long, env = "RINGTAIL_OFFSETS_TOPIC_PARTITIONS")]
    pub offsets_topic_partitions: Option<i32>,
    /// How long a new consumer group waits for more members before its first rebalance
    /// completes, in ms (default 3000, as in Kafka).
    #[arg(long, env = "RINGTAIL_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    pub group_initial_rebalance_delay_ms: Option<i32>,
    /// Shortest session timeout a group member may ask for, in ms (default 6000).
    #[arg(long, env = "RINGTAIL_GROUP_SESSION_TIMEOUT_MS_MIN")]
    pub group_session_timeout_ms_min: Option<i32>,
    /// Longest session timeout a group member may ask for, in ms (default 1800000).
    #[arg(long, env = "RINGTAIL_GROUP_SESSION_TIMEOUT_MS_MAX")]
    pub group_session_timeout_ms_max: Option<i32>,
    /// Session timeout of consumer-protocol group members (KIP-848), in ms (default 45000, as
    /// Kafka's group.consumer.session.timeout.ms).
    #[arg(long, env = "RINGTAIL_GROUP_CONSUMER_SESSION_TIMEOUT_MS")]
    pub group_consumer_session_timeout_ms: Option<i32>,
    /// How often consumer-protocol group members heartbeat, in ms (default 5000, as Kafka's
    /// group.consumer.heartbeat.interval.ms); below the session timeout.
    #[arg(long, env = "RINGTAIL_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS")]
    pub group_consumer_heartbeat_interval_ms: Option<i32>,
    /// Server-side assignors consumer-protocol groups may use, comma-separated; the first is
    /// the default, a member may ask for another (default "uniform,range", as Kafka's
    /// group.consumer.assignors).
    #[arg(long, env = "RINGTAIL_GROUP_CONSUMER_ASSIGNORS")]
    pub group_consumer_assignors: Option<String>,
    /// Forget an idempotent producer's sequence numbers in a partition after it has not
    /// written there for this long, in ms (default 86400000, a day, as Kafka's
    /// producer.id.expiration.ms). A retry arriving later is appended again.
    #[arg(long, env = "RINGTAIL_PRODUCER_ID_EXPIRATION_MS")]
    pub producer_id_expiration_ms: Option<u64>,
    /// Address of the admin HTTP endpoint (/metrics, /health, /ready), or `none`
    /// (default 127.0.0.1:9644).
    #[arg(long, env = "RINGTAIL_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// Record metrics (default true); `false` only to measure what recording costs.
    #[arg(long, env = "RINGTAIL_METRICS")]
    pub metrics: Option<bool>,
    /// Bytes of requests being read or handled, for the whole broker, split equally over its
    /// shards (Kafka's queued.max.request.bytes). A spent budget stops reading sockets; one
    /// connection holds at most 1/8 of its shard's part, which must be at least
    /// --request-bytes-max (default 838860800 times the shard count).
    #[arg(long, env = "RINGTAIL_QUEUED_MAX_REQUEST_BYTES")]
    pub queued_max_request_bytes: Option<usize>,
    /// Close a connection that stalls in the middle of a request for this long, in ms
    /// (default 30000).
    #[arg(long, env = "RINGTAIL_REQUEST_READ_TIMEOUT_MS")]
    pub request_read_timeout_ms: Option<u64>,
    /// Close a connection with no request in progress that sends nothing for this long, in ms
    /// (Kafka's connections.max.idle.ms; default 600000).
    #[arg(long, env = "RINGTAIL_CONNECTIONS_MAX_IDLE_MS")]
    pub connections_max_idle_ms: Option<u64>,
    /// Client connections open at once in the whole broker; the newest over the cap is closed
    /// (Kafka's max.connections; default unlimited).
    #[arg(long, env = "RINGTAIL_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Client connections open at once from one IP address (Kafka's max.connections.per.ip;
    /// default unlimited).
    #[arg(long, env = "RINGTAIL_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Per-address exceptions to --max-connections-per-ip, as `ip:count,ip:count`
    /// (Kafka's max.connections.per.ip.overrides).
    #[arg(long, env = "RINGTAIL_MAX_CONNECTIONS_PER_IP_OVERRIDES")]
    pub max_connections_per_ip_overrides: Option<String>,
    /// Largest Fetch response built, in bytes, whatever the client asks (Kafka's
    /// fetch.max.bytes; default 57671680); it is exceeded by at most one batch.
    #[arg(long, env = "RINGTAIL_FETCH_MAX_BYTES")]
    pub fetch_max_bytes: Option<usize>,
    /// Bytes of recent batches one shard keeps cached over all its partitions, for reads at the
    /// tail without the disk; past it the partitions holding the most give back their oldest
    /// written batches (default 268435456, at least 8388608).
    #[arg(long, env = "RINGTAIL_CACHE_BUDGET_BYTES")]
    pub cache_budget_bytes: Option<u64>,
    /// Bytes per second the background scrubber reads to verify sealed segments (every batch's
    /// length, CRC and offset), for the whole broker, split over its shards; a damaged batch
    /// takes its partition offline as a read finding it would. 0 turns it off (default 33554432)
    #[arg(long, env = "RINGTAIL_SCRUB_BYTES_PER_SECOND")]
    pub scrub_bytes_per_second: Option<u64>,
    /// Send cold reads of verified sealed segments from the file to the socket without a copy
    /// (io_uring splice through a pipe); off, or on a kernel without it, they are read into
    /// memory and sent from there (default true)
    #[arg(long, env = "RINGTAIL_ZERO_COPY_READS")]
    pub zero_copy_reads: Option<bool>,
    /// Partitions one consumer group may hold committed offsets for; a commit for more gets
    /// INVALID_COMMIT_OFFSET_SIZE (default 100000).
    #[arg(long, env = "RINGTAIL_OFFSETS_PER_GROUP_MAX")]
    pub offsets_per_group_max: Option<usize>,
    /// Partitions one shard may own; topic creations and partition growth past it are refused
    /// with POLICY_VIOLATION (default 5000).
    #[arg(long, env = "RINGTAIL_PARTITIONS_PER_SHARD_MAX")]
    pub partitions_per_shard_max: Option<usize>,
    /// Log line format: `text` (the default; colour only on a terminal) or `json` (one object
    /// per line, for log shippers).
    #[arg(long, env = "RINGTAIL_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Low free-space watermark of the data directory's file system, in bytes: below it (or
    /// below --disk-free-low-percent, whichever is larger) produce to user topics is refused
    /// with the retriable KAFKA_STORAGE_ERROR, retention runs at once, and `__consumer_offsets`
    /// goes on down to half of it (default 1073741824).
    #[arg(long, env = "RINGTAIL_DISK_FREE_LOW_BYTES")]
    pub disk_free_low_bytes: Option<u64>,
    /// Low free-space watermark as a percentage of the file system (default 2).
    #[arg(long, env = "RINGTAIL_DISK_FREE_LOW_PERCENT")]
    pub disk_free_low_percent: Option<u8>,
    /// High free-space watermark, in bytes: refused writes are accepted again once this much
    /// (and --disk-free-high-percent) is free (default 2147483648).
    #[arg(long, env = "RINGTAIL_DISK_FREE_HIGH_BYTES")]
    pub disk_free_high_bytes: Option<u64>,
    /// High free-space watermark as a percentage of the file system (default 4).
    #[arg(long, env = "RINGTAIL_DISK_FREE_HIGH_PERCENT")]
    pub disk_free_high_percent: Option<u8>,
    /// This node's roles: `broker`, `controller`, or `broker,controller` (the default; Kafka's
    /// process.roles). A controller is a voter of the metadata quorum; a controller-only node
    /// serves no Kafka clients.
    #[arg(long, env = "RINGTAIL_PROCESS_ROLES")]
    pub process_roles: Option<String>,
    /// The metadata quorum's voters, `id@host:port,...` (Kafka's controller.quorum.voters),
    /// used when the cluster is first formed; without it the node is a one-node cluster.
    #[arg(long, env = "RINGTAIL_CONTROLLER_QUORUM_VOTERS")]
    pub controller_quorum_voters: Option<String>,
    /// ip:port this node's controller binds (defaults to its entry in
    /// --controller-quorum-voters).
    #[arg(long, env = "RINGTAIL_CONTROLLER_LISTEN")]
    pub controller_listen: Option<String>,
    /// This broker's rack or zone (Kafka's broker.rack); replicas are spread over racks.
    #[arg(long, env = "RINGTAIL_RACK")]
    pub rack: Option<String>,
    /// The cluster id to form or join (otherwise the first controller generates one and the
    /// other nodes take it from the quorum); a data directory of another cluster is refused.
    #[arg(long, env = "RINGTAIL_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// A controller that hears no quorum leader for this long starts an election, in ms
    /// (Kafka's controller.quorum.election.timeout.ms; default 1000).
    #[arg(long, env = "RINGTAIL_CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS")]
    pub controller_quorum_election_timeout_ms: Option<u64>,
    /// How often the quorum leader tells the other controllers it is alive, in ms; at most
    /// half the election timeout (default 100).
    #[arg(long, env = "RINGTAIL_CONTROLLER_QUORUM_HEARTBEAT_INTERVAL_MS")]
    pub controller_quorum_heartbeat_interval_ms: Option<u64>,
    /// A broker that sends the controller no heartbeat for this long is fenced, in ms (Kafka's
    /// broker.session.timeout.ms; default 9000).
    #[arg(long, env = "RINGTAIL_BROKER_SESSION_TIMEOUT_MS")]
    pub broker_session_timeout_ms: Option<u64>,
    /// How often a broker sends the controller its heartbeat, in ms (Kafka's
    /// broker.heartbeat.interval.ms; default 2000).
    #[arg(long, env = "RINGTAIL_BROKER_HEARTBEAT_INTERVAL_MS")]
    pub broker_heartbeat_interval_ms: Option<u64>,
    /// A follower that has not caught up with its leader for this long leaves the in-sync
    /// replicas, in ms (Kafka's replica.lag.time.max.ms; default 30000).
    #[arg(long, env = "RINGTAIL_REPLICA_LAG_TIME_MAX_MS")]
    pub replica_lag_time_max_ms: Option<u64>,
    /// Replicas of a topic created without a replication factor, auto-created topics included
    /// (Kafka's default.replication.factor; default 1).
    #[arg(long, env = "RINGTAIL_DEFAULT_REPLICATION_FACTOR")]
    pub default_replication_factor: Option<i16>,
    /// Replicas of each `__consumer_offsets` partition in a cluster (Kafka's
    /// offsets.topic.replication.factor; default 3): consumer groups wait until this many brokers
    /// are live. A single node keeps one.
    #[arg(long, env = "RINGTAIL_OFFSETS_TOPIC_REPLICATION_FACTOR")]
    pub offsets_topic_replication_factor: Option<i16>,
    /// The active controller gives partitions back to their preferred replicas when a broker's
    /// leadership is imbalanced (Kafka's auto.leader.rebalance.enable; default true).
    #[arg(long, env = "RINGTAIL_AUTO_LEADER_REBALANCE_ENABLE")]
    pub auto_leader_rebalance_enable: Option<bool>,
    /// A broker is imbalanced when more than this percentage of the partitions it is preferred
    /// for are led elsewhere (Kafka's leader.imbalance.per.broker.percentage; default 10).
    #[arg(long, env = "RINGTAIL_LEADER_IMBALANCE_PER_BROKER_PERCENTAGE")]
    pub leader_imbalance_per_broker_percentage: Option<u32>,
    /// How often the active controller checks leader imbalance, in seconds (Kafka's
    /// leader.imbalance.check.interval.seconds; default 300).
    #[arg(long, env = "RINGTAIL_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS")]
    pub leader_imbalance_check_interval_seconds: Option<u64>,
    /// Where consumers read (Kafka's replica.selector.class, KIP-392): `leader` (the default,
    /// as in Kafka) or `rack-aware` (Kafka's
    /// org.apache.kafka.common.replica.RackAwareReplicaSelector, also accepted): a consumer
    /// that sets client.rack is sent to an in-sync replica on a broker of its rack.
    #[arg(long, env = "RINGTAIL_REPLICA_SELECTOR_CLASS")]
    pub replica_selector_class: Option<String>,
}

/// The TOML file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    advertised_listener: Option<String>,
    data_dir: Option<PathBuf>,
    shards: Option<usize>,
    node_id: Option<i32>,
    auto_create_topics: Option<bool>,
    default_partitions: Option<i32>,
    durability: Option<String>,
    request_bytes_max: Option<usize>,
    log: Option<String>,
    offsets_topic_partitions: Option<i32>,
    group_initial_rebalance_delay_ms: Option<i32>,
    group_session_timeout_ms_min: Option<i32>,
    group_session_timeout_ms_max: Option<i32>,
    group_consumer_session_timeout_ms: Option<i32>,
    group_consumer_heartbeat_interval_ms: Option<i32>,
    group_consumer_assignors: Option<String>,
    producer_id_expiration_ms: Option<u64>,
    admin_listen: Option<String>,
    metrics: Option<bool>,
    queued_max_request_bytes: Option<usize>,
    request_read_timeout_ms: Option<u64>,
    connections_max_idle_ms: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_connections_per_ip_overrides: Option<String>,
    fetch_max_bytes: Option<usize>,
    log_format: Option<String>,
    partitions_per_shard_max: Option<usize>,
    cache_budget_bytes: Option<u64>,
    scrub_bytes_per_second: Option<u64>,
    zero_copy_reads: Option<bool>,
    offsets_per_group_max: Option<usize>,
    disk_free_low_bytes: Option<u64>,
    disk_free_low_percent: Option<u8>,
    disk_free_high_bytes: Option<u64>,
    disk_free_high_percent: Option<u8>,
    process_roles: Option<String>,
    controller_quorum_voters: Option<String>,
    controller_listen: Option<String>,
    rack: Option<String>,
    cluster_id: Option<String>,
    controller_quorum_election_timeout_ms: Option<u64>,
    controller_quorum_heartbeat_interval_ms: Option<u64>,
    broker_session_timeout_ms: Option<u64>,
    broker_heartbeat_interval_ms: Option<u64>,
    replica_lag_time_max_ms: Option<u64>,
    default_replication_factor: Option<i16>,
    offsets_topic_replication_factor: Option<i16>,
    auto_leader_rebalance_enable: Option<bool>,
    leader_imbalance_per_broker_percentage: Option<u32>,
    leader_imbalance_check_interval_seconds: Option<u64>,
    replica_selector_class: Option<String>,
}

/// The resolved configuration of a broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub listen: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
    pub data_dir: PathBuf,
    pub shards: usize,
    pub node_id: i32,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub request_bytes_max: usize,
    pub log_filter: String,
    pub log_format: crate::logging::LogFormat,
    /// Defaults for every partition log; topic configs override some of them.
    pub log: LogConfig,
    /// Flush write chunk size and chunk writes in flight, from `io-properties.toml` written by
    /// `ringtail iotune` in the data directory; the log's defaults without it.
    pub write_shape: Option<(usize, usize)>,
    /// Partitions of `__consumer_offsets` when it is created.
    pub offsets_topic_partitions: i32,
    pub groups: GroupConfig,
    /// The admin HTTP endpoint, if any.
    pub admin_listen: Option<SocketAddr>,
    pub metrics: bool,
    /// Bytes of requests being read or handled, whole broker (split over the shards).
    pub queued_max_request_bytes: usize,
    pub request_read_timeout: Duration,
    pub connections_max_idle: Duration,
    pub connection_caps: ConnectionCaps,
    pub fetch_max_bytes: usize,
    pub partitions_per_shard_max: usize,
    /// The batch cache budget of one shard.
    pub cache_budget_bytes: u64,
    /// What the scrubber reads per second, whole broker (0: off).
    pub scrub_bytes_per_second: u64,
    /// Free-space watermarks of the data directory.
    pub disk_space: ringtail_log::SpaceConfig,
    /// Roles, quorum, rack, cluster id and timings; a single node without cluster flags.
    pub cluster: ClusterConfig,
}

/// Caps on client connections (Kafka's max.connections, max.connections.per.ip and overrides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionCaps {
    pub total: Option<usize>,
    pub per_ip: Option<usize>,
    pub per_ip_overrides: HashMap<IpAddr, usize>,
}

impl ConnectionCaps {
    /// The cap for connections from `ip`, if any.
    pub fn for_ip(&self, ip: IpAddr) -> Option<usize> {
        self.per_ip_overrides.get(&ip).copied().or(self.per_ip)
    }

    /// Whether connections must be counted per address at all.
    pub fn per_ip_counted(&self) -> bool {
        self.per_ip.is_some() || !self.per_ip_overrides.is_empty()
    }
}

/// Parses `ip:count,ip:count` (IPv6 addresses in brackets or bare: the count follows the last colon).
fn parse_ip_overrides(text: &str) -> Result<HashMap<IpAddr, usize>, String> {
    let mut map = HashMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (ip, count) = entry.rsplit_once(':').ok_or_else(|| format!("`{entry}` is not ip:count"))?;
        let ip: IpAddr = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("`{ip}` in `{entry}` is not an IP address"))?;
        let count = count.parse().map_err(|_| format!("count `{count}` in `{entry}` is not a number"))?;
        map.insert(ip, count);
    }
    Ok(map)
}

impl BrokerConfig {
    /// The request budget of one shard.
    pub fn request_budget_per_shard(&self) -> usize {
        self.queued_max_request_bytes / self.shards
    }

    /// The most request bytes one connection may hold.
    pub fn request_bytes_per_connection_max(&self) -> usize {
        self.request_budget_per_shard() / limits::CONNECTION_SHARE_DIVISOR
    }
}

/// Why the configuration is unusable; says which setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{setting}: {message}")]
    Invalid { setting: &'static str, message: String },
}

pub fn parse_durability(value: &str) -> Option<Durability> {
    match value {
        "sync" => Some(Durability::Sync),
        "async" => Some(Durability::Async),
        _ => None,
    }
}

impl BrokerConfig {
    pub fn resolve(args: ServeArgs) -> Result<BrokerConfig, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })?
            }
            None => FileConfig::default(),
        };
        let listen = args.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9092)));
        let advertised = args.advertised_listener.or(file.advertised_listener).unwrap_or_else(|| listen.to_string());
        let (host, port) = advertised.rsplit_once(':').ok_or_else(|| ConfigError::Invalid {
            setting: "advertised-listener",
            message: format!("`{advertised}` is not host:port"),
        })?;
        let advertised_port = port.parse().map_err(|_| ConfigError::Invalid {
            setting: "advertised-listener",
            message: format!("port `{port}` is not a number from 1 to 65535"),
        })?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = args.shards.or(file.shards).unwrap_or(cores);
        if shards == 0 || shards > 1024 {
            return Err(ConfigError::Invalid {
                setting: "shards",
                message: format!("{shards} is not between 1 and 1024"),
            });
        }
        let default_partitions = args.default_partitions.or(file.default_partitions).unwrap_or(4);
        if !(1..=10_000).contains(&default_partitions) {
            return Err(ConfigError::Invalid {
                setting: "default-partitions",
                message: format!("{default_partitions} is not between 1 and 10000"),
            });
        }
        let durability_name = args.durability.or(file.durability).unwrap_or_else(|| "sync".into());
        let durability = parse_durability(&durability_name).ok_or_else(|| ConfigError::Invalid {
            setting: "durability",
            message: format!("`{durability_name}` is neither `sync` nor `async`"),
        })?;
        let request_bytes_max =
            args.request_bytes_max.or(file.request_bytes_max).unwrap_or(limits::REQUEST_BYTES_MAX_DEFAULT);
        if !(1024..=1 << 30).contains(&request_bytes_max) {
            return Err(ConfigError::Invalid {
                setting: "request-bytes-max",
                message: format!("{request_bytes_max} is not between 1 KiB and 1 GiB"),
            });
        }
        let offsets_topic_partitions = args.offsets_topic_partitions.or(file.offsets_topic_partitions).unwrap_or(16);
        if !(1..=1000).contains(&offsets_topic_partitions) {
            return Err(ConfigError::Invalid {
                setting: "offsets-topic-partitions",
                message: format!("{offsets_topic_partitions} is not between 1 and 1000"),
            });
        }
        let groups = GroupConfig {
            initial_rebalance_delay_ms: args
                .group_initial_rebalance_delay_ms
                .or(file.group_initial_rebalance_delay_ms)
                .unwrap_or(3000),
            session_timeout_ms_min: args
                .group_session_timeout_ms_min
                .or(file.group_session_timeout_ms_min)
                .unwrap_or(6000),
            session_timeout_ms_max: args
                .group_session_timeout_ms_max
                .or(file.group_session_timeout_ms_max)
                .unwrap_or(1_800_000),
            consumer_session_timeout_ms: args
                .group_consumer_session_timeout_ms
                .or(file.group_consumer_session_timeout_ms)
                .unwrap_or(45_000),
            consumer_heartbeat_interval_ms: args
                .group_consumer_heartbeat_interval_ms
                .or(file.group_consumer_heartbeat_interval_ms)
                .unwrap_or(5000),
            consumer_assignors: ConsumerAssignors::parse(
                args.group_consumer_assignors
                    .as_deref()
                    .or(file.group_consumer_assignors.as_deref())
                    .unwrap_or("uniform,range"),
            )
            .map_err(|message| ConfigError::Invalid { setting: "group-consumer-assignors", message })?,
            offsets_per_group_max: args
                .offsets_per_group_max
                .or(file.offsets_per_group_max)
                .unwrap_or(OFFSETS_PER_GROUP_MAX_DEFAULT)
                .max(1),
        };
        if !(0..=300_000).contains(&groups.initial_rebalance_delay_ms) {
            return Err(ConfigError::Invalid {
                setting: "group-initial-rebalance-delay-ms",
                message: format!("{} is not between 0 and 300000", groups.initial_rebalance_delay_ms),
            });
        }
        if groups.session_timeout_ms_min < 1 || groups.session_timeout_ms_min > groups.session_timeout_ms_max {
            return Err(ConfigError::Invalid {
                setting: "group-session-timeout-ms-min",
                message: format!(
                    "{} must be at least 1 and at most group-session-timeout-ms-max ({})",
                    groups.session_timeout_ms_min, groups.session_timeout_ms_max
                ),
            });
        }
        if groups.consumer_heartbeat_interval_ms < 1
            || groups.consumer_heartbeat_interval_ms >= groups.consumer_session_timeout_ms
        {
            return Err(ConfigError::Invalid {
                setting: "group-consumer-heartbeat-interval-ms",
                message: format!(
                    "{} must be at least 1 and below group-consumer-session-timeout-ms ({})",
                    groups.consumer_heartbeat_interval_ms, groups.consumer_session_timeout_ms
                ),
            });
        }
        let producer_id_expiration_ms =
            args.producer_id_expiration_ms.or(file.producer_id_expiration_ms).unwrap_or(24 * 3600 * 1000);
        if producer_id_expiration_ms < 1000 {
            return Err(ConfigError::Invalid {
                setting: "producer-id-expiration-ms",
                message: format!("{producer_id_expiration_ms} is below 1000"),
            });
        }
        let admin_name = args.admin_listen.or(file.admin_listen).unwrap_or_else(|| "127.0.0.1:9644".into());
        let admin_listen = match admin_name.as_str() {
            "none" => None,
            name => Some(name.parse::<SocketAddr>().map_err(|_| ConfigError::Invalid {
                setting: "admin-listen",
                message: format!("`{name}` is neither ip:port nor `none`"),
            })?),
        };
        let queued_max_request_bytes = args
            .queued_max_request_bytes
            .or(file.queued_max_request_bytes)
            .unwrap_or(limits::QUEUED_MAX_REQUEST_BYTES_PER_SHARD_DEFAULT.saturating_mul(shards));
        let share = queued_max_request_bytes / shards / limits::CONNECTION_SHARE_DIVISOR;
        if share < request_bytes_max {
            return Err(ConfigError::Invalid {
                setting: "queued-max-request-bytes",
                message: format!(
                    "{queued_max_request_bytes} over {shards} shards lets one connection hold {share} bytes (1/{} of a \
                     shard's part), less than request-bytes-max ({request_bytes_max}); raise it to at least {} or \
                     lower request-bytes-max",
                    limits::CONNECTION_SHARE_DIVISOR,
                    request_bytes_max * limits::CONNECTION_SHARE_DIVISOR * shards
                ),
            });
        }
        let request_read_timeout_ms = args
            .request_read_timeout_ms
            .or(file.request_read_timeout_ms)
            .unwrap_or(limits::REQUEST_READ_TIMEOUT_MS_DEFAULT);
        let connections_max_idle_ms = args
            .connections_max_idle_ms
            .or(file.connections_max_idle_ms)
            .unwrap_or(limits::CONNECTIONS_MAX_IDLE_MS_DEFAULT);
        for (setting, ms) in
            [("request-read-timeout-ms", request_read_timeout_ms), ("connections-max-idle-ms", connections_max_idle_ms)]
        {
            if !(100..=7 * 24 * 3600 * 1000).contains(&ms) {
                return Err(ConfigError::Invalid {
                    setting,
                    message: format!("{ms} is not between 100 ms and a week"),
                });
            }
        }
        let overrides = args.max_connections_per_ip_overrides.or(file.max_connections_per_ip_overrides);
        let connection_caps = ConnectionCaps {
            total: args.max_connections.or(file.max_connections),
            per_ip: args.max_connections_per_ip.or(file.max_connections_per_ip),
            per_ip_overrides: parse_ip_overrides(overrides.as_deref().unwrap_or(""))
                .map_err(|message| ConfigError::Invalid { setting: "max-connections-per-ip-overrides", message })?,
        };
        let fetch_max_bytes = args.fetch_max_bytes.or(file.fetch_max_bytes).unwrap_or(limits::FETCH_MAX_BYTES_DEFAULT);
        if !(1024..=1 << 30).contains(&fetch_max_bytes) {
            return Err(ConfigError::Invalid {
                setting: "fetch-max-bytes",
                message: format!("{fetch_max_bytes} is not between 1 KiB and 1 GiB"),
            });
        }
        let log_format_name = args.log_format.or(file.log_format).unwrap_or_else(|| "text".into());
        let log_format = crate::logging::LogFormat::parse(&log_format_name).ok_or_else(|| ConfigError::Invalid {
            setting: "log-format",
            message: format!("`{log_format_name}` is neither `text` nor `json`"),
        })?;
        let partitions_per_shard_max = args
            .partitions_per_shard_max
            .or(file.partitions_per_shard_max)
            .unwrap_or(limits::PARTITIONS_PER_SHARD_MAX_DEFAULT);
        if partitions_per_shard_max == 0 {
            return Err(ConfigError::Invalid { setting: "partitions-per-shard-max", message: "0 is below 1".into() });
        }
        let cache_budget_bytes =
            args.cache_budget_bytes.or(file.cache_budget_bytes).unwrap_or(ringtail_log::CACHE_BUDGET_BYTES_DEFAULT);
        if cache_budget_bytes < ringtail_log::CACHE_BUDGET_BYTES_MIN {
            return Err(ConfigError::Invalid {
                setting: "cache-budget-bytes",
                message: format!(
                    "{cache_budget_bytes} is below the smallest cache budget ({} bytes)",
                    ringtail_log::CACHE_BUDGET_BYTES_MIN
                ),
            });
        }
        let space_defaults = ringtail_log::SpaceConfig::default();
        let disk_space = ringtail_log::SpaceConfig {
            low_bytes: args.disk_free_low_bytes.or(file.disk_free_low_bytes).unwrap_or(space_defaults.low_bytes),
            low_percent: args
                .disk_free_low_percent
                .or(file.disk_free_low_percent)
                .unwrap_or(space_defaults.low_percent),
            high_bytes: args.disk_free_high_bytes.or(file.disk_free_high_bytes).unwrap_or(space_defaults.high_bytes),
            high_percent: args
                .disk_free_high_percent
                .or(file.disk_free_high_percent)
                .unwrap_or(space_defaults.high_percent),
        };
        disk_space.validate().map_err(|e| ConfigError::Invalid {
            setting: "disk-free-*",
            message: e.to_string().trim_start_matches("invalid log configuration: ").to_string(),
        })?;
        let node_id = args.node_id.or(file.node_id);
        let cluster = cluster::ClusterSettings {
            node_id,
            process_roles: args.process_roles.or(file.process_roles),
            controller_listen: args.controller_listen.or(file.controller_listen),
            controller_quorum_voters: args.controller_quorum_voters.or(file.controller_quorum_voters),
            rack: args.rack.or(file.rack),
            cluster_id: args.cluster_id.or(file.cluster_id),
            election_timeout_ms: args
                .controller_quorum_election_timeout_ms
                .or(file.controller_quorum_election_timeout_ms),
            heartbeat_interval_ms: args
                .controller_quorum_heartbeat_interval_ms
                .or(file.controller_quorum_heartbeat_interval_ms),
            broker_session_timeout_ms: args.broker_session_timeout_ms.or(file.broker_session_timeout_ms),
            broker_heartbeat_interval_ms: args.broker_heartbeat_interval_ms.or(file.broker_heartbeat_interval_ms),
            replica_lag_time_max_ms: args.replica_lag_time_max_ms.or(file.replica_lag_time_max_ms),
            default_replication_factor: args.default_replication_factor.or(file.default_replication_factor),
            offsets_topic_replication_factor: args
                .offsets_topic_replication_factor
                .or(file.offsets_topic_replication_factor),
            auto_leader_rebalance_enable: args.auto_leader_rebalance_enable.or(file.auto_leader_rebalance_enable),
            leader_imbalance_per_broker_percentage: args
                .leader_imbalance_per_broker_percentage
                .or(file.leader_imbalance_per_broker_percentage),
            leader_imbalance_check_interval_seconds: args
                .leader_imbalance_check_interval_seconds
                .or(file.leader_imbalance_check_interval_seconds),
            replica_selector_class: args.replica_selector_class.or(file.replica_selector_class),
        }
        .resolve()
        .map_err(|e| ConfigError::Invalid { setting: e.setting, message: e.message })?;
        let scrub_bytes_per_second = args
            .scrub_bytes_per_second
            .or(file.scrub_bytes_per_second)
            .unwrap_or(limits::SCRUB_BYTES_PER_SECOND_DEFAULT);
        Ok(BrokerConfig {
            cluster,
            listen,
            disk_space,
            cache_budget_bytes,
            scrub_bytes_per_second,
            partitions_per_shard_max,
            log_format,
            advertised_host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            advertised_port,
            data_dir: args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("ringtail-data")),
            shards,
            node_id: node_id.unwrap_or(0),
            auto_create_topics: args.auto_create_topics.or(file.auto_create_topics).unwrap_or(true),
            default_partitions,
            request_bytes_max,
            log_filter: args.log.or(file.log).unwrap_or_else(|| "info,openraft=error".into()),
            log: LogConfig {
                durability,
                producer_id_expiration_ms,
                zero_copy_reads: args.zero_copy_reads.or(file.zero_copy_reads).unwrap_or(true),
                ..LogConfig::default()
            },
            write_shape: None,
            offsets_topic_partitions,
            groups,
            admin_listen,
            metrics: args.metrics.or(file.metrics).unwrap_or(true),
            queued_max_request_bytes,
            request_read_timeout: Duration::from_millis(request_read_timeout_ms),
            connections_max_idle: Duration::from_millis(connections_max_idle_ms),
            connection_caps,
            fetch_max_bytes,
        })
    }
}

/// Partitions one group may hold committed offsets for by default; a commit for more is
/// refused with INVALID_COMMIT_OFFSET_SIZE (the group's existing offsets can still be updated).
pub const OFFSETS_PER_GROUP_MAX_DEFAULT: usize = 100_000;

/// Limits and timeouts of the group coordinator.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    pub session_timeout_ms_min: i32,
    pub session_timeout_ms_max: i32,
    pub initial_rebalance_delay_ms: i32,
    /// Consumer-protocol groups (KIP-848): members' session timeout and heartbeat interval.
    pub consumer_session_timeout_ms: i32,
    pub consumer_heartbeat_interval_ms: i32,
    /// The server-side assignors groups may use; the first is the default.
    pub consumer_assignors: ConsumerAssignors,
    /// Partitions one group may hold committed offsets for.
    pub offsets_per_group_max: usize,
}

/// The server-side assignors this broker has (`core/src/broker/group/consumer/assignor.rs`).
pub const CONSUMER_ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// The assignors consumer-protocol groups may use, in order (the first is the default): a
/// small copyable list of names from `CONSUMER_ASSIGNORS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerAssignors {
    names: [&'static str; CONSUMER_ASSIGNORS.len()],
    len: usize,
}

impl Default for ConsumerAssignors {
    fn default() -> Self {
        Self::const_default()
    }
}

impl ConsumerAssignors {
    /// Every assignor, uniform first (Kafka's default).
    pub const fn const_default() -> Self {
        ConsumerAssignors { names: CONSUMER_ASSIGNORS, len: CONSUMER_ASSIGNORS.len() }
    }

    /// Comma-separated names, each one of `CONSUMER_ASSIGNORS`, at least one, none twice.
    pub fn parse(list: &str) -> Result<ConsumerAssignors, String> {
        let mut out = ConsumerAssignors { names: [""; CONSUMER_ASSIGNORS.len()], len: 0 };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some(known) = CONSUMER_ASSIGNORS.iter().find(|k| **k == name) else {
                return Err(format!("unknown assignor `{name}`; this broker has {}", CONSUMER_ASSIGNORS.join(", ")));
            };
            if out.contains(name) {
                return Err(format!("assignor `{name}` is listed twice"));
            }
            out.names[out.len] = known;
            out.len += 1;
        }
        if out.len == 0 {
            return Err("no assignor given; name at least one of uniform, range".into());
        }
        Ok(out)
    }

    pub fn default_name(&self) -> &'static str {
        self.names[0]
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names[..self.len].contains(&name)
    }

    pub fn names(&self) -> &[&'static str] {
        &self.names[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_assignors_are_known_names_the_first_the_default() {
        assert_eq!(ConsumerAssignors::parse("range, uniform").unwrap().default_name(), "range");
        assert_eq!(ConsumerAssignors::parse("uniform").unwrap().names(), ["uniform"]);
        assert!(!ConsumerAssignors::parse("uniform").unwrap().contains("range"));
        for bad in ["", "sticky", "uniform,uniform", " , "] {
            assert!(ConsumerAssignors::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ConsumerAssignors::default().names(), CONSUMER_ASSIGNORS);
    }

    #[test]
    fn defaults_and_bad_values() {
        let c = BrokerConfig::resolve(ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9092");
        assert_eq!((c.advertised_host.as_str(), c.advertised_port), ("127.0.0.1", 9092));
        assert_eq!(c.data_dir, PathBuf::from("ringtail-data"));
        let bad = ServeArgs { durability: Some("maybe".into()), ..ServeArgs::default() };
        assert!(BrokerConfig::resolve(bad).unwrap_err().to_string().contains("durability"));
        let bad = ServeArgs { advertised_listener: Some("nohost".into()), ..ServeArgs::default() };
        assert!(BrokerConfig::resolve(bad).is_err());
    }

    #[test]
    fn request_budget_must_let_a_connection_send_the_largest_request() {
        let args = |queued: usize, request: usize| ServeArgs {
            shards: Some(2),
            queued_max_request_bytes: Some(queued),
            request_bytes_max: Some(request),
            ..ServeArgs::default()
        };
        let c = BrokerConfig::resolve(args(256 << 20, 16 << 20)).unwrap();
        assert_eq!(c.request_budget_per_shard(), 128 << 20);
        assert_eq!(c.request_bytes_per_connection_max(), 16 << 20);
        let e = BrokerConfig::resolve(args((256 << 20) - 1, 16 << 20)).unwrap_err().to_string();
        assert!(e.contains("queued-max-request-bytes"), "{e}");
        assert!(e.contains("268435456"), "{e}");
        let c = BrokerConfig::resolve(ServeArgs { shards: Some(3), ..ServeArgs::default() }).unwrap();
        assert!(c.request_bytes_per_connection_max() >= c.request_bytes_max);
    }

    #[test]
    fn connection_caps_and_overrides() {
        let args = ServeArgs {
            max_connections_per_ip: Some(2),
            max_connections_per_ip_overrides: Some("127.0.0.1:5, [::1]:7".into()),
            ..ServeArgs::default()
        };
        let c = BrokerConfig::resolve(args).unwrap().connection_caps;
        assert_eq!(c.for_ip("127.0.0.1".parse().unwrap()), Some(5));
        assert_eq!(c.for_ip("::1".parse().unwrap()), Some(7));
        assert_eq!(c.for_ip("10.0.0.1".parse().unwrap()), Some(2));
        assert!(c.per_ip_counted());
        let bad = ServeArgs { max_connections_per_ip_overrides: Some("127.0.0.1".into()), ..ServeArgs::default() };
        assert!(BrokerConfig::resolve(bad).unwrap_err().to_string().contains("overrides"));
        let none = BrokerConfig::resolve(ServeArgs::default()).unwrap().connection_caps;
        assert!(!none.per_ip_counted());
        assert_eq!(none.total, None);
    }
}
