//! Broker configuration: command-line flags, a TOML file, and `RINGTAIL_*` environment
//! variables, in that order of precedence, over embedded defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use ringtail_log::{Durability, LogConfig};

use crate::group::state::GroupConfig;
use serde::Deserialize;

/// Largest request frame accepted (Kafka's socket.request.max.bytes).
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 100 << 20;

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
    producer_id_expiration_ms: Option<u64>,
    admin_listen: Option<String>,
    metrics: Option<bool>,
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
        let request_bytes_max = args.request_bytes_max.or(file.request_bytes_max).unwrap_or(REQUEST_BYTES_MAX_DEFAULT);
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
        Ok(BrokerConfig {
            listen,
            advertised_host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            advertised_port,
            data_dir: args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("ringtail-data")),
            shards,
            node_id: args.node_id.or(file.node_id).unwrap_or(0),
            auto_create_topics: args.auto_create_topics.or(file.auto_create_topics).unwrap_or(true),
            default_partitions,
            request_bytes_max,
            log_filter: args.log.or(file.log).unwrap_or_else(|| "info".into()),
            log: LogConfig { durability, producer_id_expiration_ms, ..LogConfig::default() },
            write_shape: None,
            offsets_topic_partitions,
            groups,
            admin_listen,
            metrics: args.metrics.or(file.metrics).unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
