//! Kafka's config keys as Ringtail serves them: every topic config of Kafka 4.1 (its type,
//! valid values, broker synonyms, documentation, and what Ringtail does with it: enforced,
//! stored for a feature still to come, accepted without effect, or refused) and the broker
//! configs DescribeConfigs reports. CreateTopics, DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs and every partition's log settings read these tables; the README's
//! topic-config table is walked by an end-to-end test against them.
//!
//! A topic's effective value comes from, in order: the topic's own config, the node's dynamic
//! broker config, the cluster-wide dynamic broker config (both metadata records, changed with
//! AlterConfigs on a broker resource), the broker's static setting (flags, TOML file,
//! environment), and Kafka's (or Ringtail's) default.

mod broker_table;
mod topic_table;
mod types;

use std::collections::BTreeMap;

use ringtail_log::{Compression, Durability, LogConfig};
use ringtail_replication::metadata::controller::{AlterableKey, ConfigResource, ConfigRules};
use ringtail_replication::metadata::{ControllerError, MetadataImage};
use ringtail_replication::NodeId;

use crate::config::BrokerConfig;
pub use broker_table::{BrokerKey, DynamicBrokerKey, BROKER_KEYS, DYNAMIC_BROKER_KEYS};
pub use topic_table::TOPIC_KEYS;
pub use types::{ConfigType, TopicKey};

/// A topic config by name.
pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

/// The topic config a broker config is the default of (its first synonym).
pub fn topic_key_of_broker_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.synonyms.first() == Some(&name))
}

/// Checks one topic config value: a known key, a valid value, not one Ringtail refuses.
pub fn check_topic_value(name: &str, value: &str) -> Result<&'static TopicKey, String> {
    let key = topic_key(name).ok_or_else(|| format!("unknown topic config `{name}`"))?;
    key.valid.check(name, value)?;
    if let Some((refuse, why)) = key.refused {
        if refuse(value) {
            return Err(why.to_string());
        }
    }
    Ok(key)
}

/// Sets a log setting from an (already checked) topic config; keys without one are ignored.
fn set_log(c: &mut LogConfig, name: &str, value: &str) -> Result<(), String> {
    let number = || value.trim().parse::<i64>().map_err(|_| format!("{name}={value}: not a number"));
    let positive = |n: i64| u64::try_from(n).map_err(|_| format!("{name} must not be negative"));
    match name {
        "retention.ms" => c.retention_age_ms_max = u64::try_from(number()?).ok(),
        "retention.bytes" => c.retention_bytes_max = u64::try_from(number()?).ok(),
        "segment.bytes" => c.segment_bytes_max = positive(number()?)?,
        "segment.ms" => c.segment_age_ms_max = positive(number()?)?,
        "max.message.bytes" => c.batch_bytes_max = positive(number()?)? as usize,
        "index.interval.bytes" => c.index_interval_bytes = positive(number()?)?,
        "message.timestamp.before.max.ms" => c.timestamp_before_max_ms = positive(number()?)?,
        "message.timestamp.after.max.ms" => c.timestamp_after_max_ms = positive(number()?)?,
        "message.timestamp.type" => c.log_append_time = value.trim().eq_ignore_ascii_case("LogAppendTime"),
        "ringtail.durability" => {
            c.durability = crate::config::parse_durability(value.trim())
                .ok_or_else(|| format!("ringtail.durability={value}: use sync or async"))?
        }
        _ => {}
    }
    Ok(())
}

/// The value a log setting gives a topic config, for keys backed by one.
fn log_value(c: &LogConfig, name: &str) -> Option<String> {
    let optional = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
    Some(match name {
        "retention.ms" => optional(c.retention_age_ms_max),
        "retention.bytes" => optional(c.retention_bytes_max),
        "segment.bytes" => c.segment_bytes_max.to_string(),
        "segment.ms" => c.segment_age_ms_max.to_string(),
        "max.message.bytes" => c.batch_bytes_max.to_string(),
        "index.interval.bytes" => c.index_interval_bytes.to_string(),
        "message.timestamp.before.max.ms" => c.timestamp_before_max_ms.to_string(),
        "message.timestamp.after.max.ms" => c.timestamp_after_max_ms.to_string(),
        "message.timestamp.type" => if c.log_append_time { "LogAppendTime" } else { "CreateTime" }.to_string(),
        "ringtail.durability" => if c.durability == Durability::Sync { "sync" } else { "async" }.to_string(),
        _ => return None,
    })
}

/// A topic's log settings: `base` (the broker's log defaults) overridden by the topic's
/// configs, each checked against the table; the error names the config and what to use.
pub fn topic_log_config(base: &LogConfig, configs: &[(String, String)]) -> Result<LogConfig, String> {
    let mut c = *base;
    for (name, value) in configs {
        check_topic_value(name, value)?;
        set_log(&mut c, name, value)?;
    }
    if c.segment_bytes_max < c.batch_bytes_max as u64 {
        c.segment_bytes_max = c.batch_bytes_max as u64;
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// The log defaults of this node: the static settings, then the cluster-wide dynamic broker
/// configs, then this node's (more specific wins, as in Kafka). Dynamic values were checked
/// when they were set.
pub fn log_defaults(config: &BrokerConfig, image: &MetadataImage, node: NodeId) -> LogConfig {
    let mut c = config.log;
    for configs in [image.broker_configs(None), image.broker_configs(Some(node))].into_iter().flatten() {
        for (name, value) in configs {
            if let Some(key) = topic_key_of_broker_key(name) {
                if let Err(e) = set_log(&mut c, key.name, value) {
                    tracing::warn!(config = %name, %value, error = %e, "dynamic broker config not applied");
                }
            }
        }
    }
    c
}

/// Where a config's value comes from (Kafka's DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Topic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
    /// Kafka's GROUP_CONFIG.
    Group = 8,
}

/// One value of a config and where it comes from; a config's synonyms are these in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    pub name: String,
    pub value: Option<String>,
    pub source: Source,
}

/// The values a topic config has at each level, most specific first: the topic's own, this
/// node's dynamic one, the cluster-wide dynamic one, then the static setting and the default.
/// The first is the value in force.
pub fn topic_value_chain(
    key: &TopicKey,
    topic_configs: Option<&BTreeMap<String, String>>,
    config: &BrokerConfig,
    image: &MetadataImage,
    node: NodeId,
) -> Vec<Sourced> {
    let mut chain = Vec::new();
    if let Some(v) = topic_configs.and_then(|c| c.get(key.name)) {
        chain.push(Sourced { name: key.name.to_string(), value: Some(v.clone()), source: Source::Topic });
    }
    chain.extend(broker_value_chain(key, config, image, node));
    chain
}

/// The broker-level values of a topic config's default (its first synonym): this node's dynamic
/// one, the cluster-wide one, then the static setting (when set) and the default.
fn broker_value_chain(key: &TopicKey, config: &BrokerConfig, image: &MetadataImage, node: NodeId) -> Vec<Sourced> {
    let mut chain = Vec::new();
    let Some(&broker_name) = key.synonyms.first() else {
        chain.push(Sourced {
            name: key.name.to_string(),
            value: Some(key.default.to_string()),
            source: Source::Default,
        });
        return chain;
    };
    for (configs, source) in [
        (image.broker_configs(Some(node)), Source::DynamicBroker),
        (image.broker_configs(None), Source::DynamicDefaultBroker),
    ] {
        if let Some(v) = configs.and_then(|c| c.get(broker_name)) {
            chain.push(Sourced { name: broker_name.to_string(), value: Some(v.clone()), source });
        }
    }
    // A static setting that differs from the built-in default was set; the default always
    // comes last, as in Kafka's synonym lists.
    let default = log_value(&LogConfig::default(), key.name).unwrap_or_else(|| key.default.to_string());
    if let Some(v) = log_value(&config.log, key.name).filter(|v| *v != default) {
        chain.push(Sourced { name: broker_name.to_string(), value: Some(v), source: Source::StaticBroker });
    }
    chain.push(Sourced { name: broker_name.to_string(), value: Some(default), source: Source::Default });
    chain
}

/// The codec a topic's batches are stored in (its compression.type) and the level to compress
/// at, or `None` for `producer`: batches keep the producer's codec, untouched (the zero-copy
/// path). Recompression happens in the Kafka layer, off the shard thread.
pub fn topic_compression(
    config: &BrokerConfig,
    image: &MetadataImage,
    node: NodeId,
    topic_configs: &BTreeMap<String, String>,
) -> Option<(Compression, Option<i32>)> {
    let value = |name: &str| {
        let key = topic_key(name)?;
        topic_value_chain(key, Some(topic_configs), config, image, node).into_iter().next()?.value
    };
    let codec = match value("compression.type")?.trim().to_ascii_lowercase().as_str() {
        "producer" => return None,
        "uncompressed" => Compression::None,
        other => Compression::parse(other)?,
    };
    let level = match codec {
        Compression::Gzip => value("compression.gzip.level"),
        Compression::Zstd => value("compression.zstd.level"),
        _ => None,
    };
    Some((codec, level.and_then(|l| l.trim().parse().ok()).filter(|&l| l != -1)))
}

/// A broker's own config by name.
pub fn broker_key(name: &str) -> Option<&'static BrokerKey> {
    BROKER_KEYS.iter().find(|k| k.name == name)
}

/// A dynamic broker config (not a topic default) by name.
pub fn dynamic_broker_key(name: &str) -> Option<&'static DynamicBrokerKey> {
    DYNAMIC_BROKER_KEYS.iter().find(|k| k.name == name)
}

/// The broker-level values of a broker config, most specific first (the first is in force):
/// for a topic config's default, its dynamic values then the static one; for the broker's own
/// configs, the static value.
pub fn broker_value_chain_of(name: &str, config: &BrokerConfig, image: &MetadataImage, node: NodeId) -> Vec<Sourced> {
    if let Some(key) = topic_key_of_broker_key(name) {
        return broker_value_chain(key, config, image, node);
    }
    if let Some(key) = dynamic_broker_key(name) {
        let mut chain = Vec::new();
        for (configs, source) in [
            (image.broker_configs(Some(node)), Source::DynamicBroker),
            (image.broker_configs(None), Source::DynamicDefaultBroker),
        ] {
            if let Some(v) = configs.and_then(|c| c.get(name)) {
                chain.push(Sourced { name: name.to_string(), value: Some(v.clone()), source });
            }
        }
        chain.push(Sourced { name: name.to_string(), value: Some(key.default.to_string()), source: Source::Default });
        return chain;
    }
    match broker_key(name) {
        Some(key) => vec![Sourced { name: name.to_string(), value: (key.value)(config), source: Source::StaticBroker }],
        None => Vec::new(),
    }
}

/// Every broker config name DescribeConfigs reports: the broker's own, then the topic
/// configs' broker-level defaults.
pub fn broker_config_names() -> impl Iterator<Item = &'static str> {
    BROKER_KEYS
        .iter()
        .map(|k| k.name)
        .chain(DYNAMIC_BROKER_KEYS.iter().map(|k| k.name))
        .chain(TOPIC_KEYS.iter().filter_map(|k| k.synonyms.first().copied()))
}

/// The configs of a consumer group (KIP-848's group resource), each overriding a broker
/// setting: Kafka's `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms`.
pub const GROUP_KEYS: [(&str, &str); 2] = [
    (
        "consumer.session.timeout.ms",
        "The timeout to detect client failures of this group's members (consumer protocol).",
    ),
    ("consumer.heartbeat.interval.ms", "The heartbeat interval given to this group's members (consumer protocol)."),
];

/// The broker's value of a group config: its flag (or default).
fn group_broker_value(key: &str, config: &BrokerConfig) -> Option<i32> {
    match key {
        "consumer.session.timeout.ms" => Some(config.groups.consumer_session_timeout_ms),
        "consumer.heartbeat.interval.ms" => Some(config.groups.consumer_heartbeat_interval_ms),
        _ => None,
    }
}

/// A group config's values, most specific first: the group's own, then the broker's.
pub fn group_value_chain(key: &str, config: &BrokerConfig, image: &MetadataImage, group: &str) -> Vec<Sourced> {
    let mut chain = Vec::new();
    if let Some(v) = image.group_configs(group).and_then(|c| c.get(key)) {
        chain.push(Sourced { name: key.to_string(), value: Some(v.clone()), source: Source::Group });
    }
    if let Some(v) = group_broker_value(key, config) {
        let broker_key = format!("group.{key}");
        chain.push(Sourced { name: broker_key, value: Some(v.to_string()), source: Source::StaticBroker });
    }
    chain
}

/// A group config in force (the group's own, else the broker's).
pub fn group_value(key: &str, config: &BrokerConfig, image: &MetadataImage, group: &str) -> i32 {
    image
        .group_configs(group)
        .and_then(|c| c.get(key))
        .and_then(|v| v.parse().ok())
        .or_else(|| group_broker_value(key, config))
        .unwrap_or(0)
}

/// The controller's rules for altering configs, from the tables: topic configs on topics,
/// their broker-level defaults on brokers; the broker's own configs are read-only.
pub struct TableRules<'a> {
    pub config: &'a BrokerConfig,
    pub image: &'a MetadataImage,
    pub node: NodeId,
}

impl ConfigRules for TableRules<'_> {
    fn alterable(&self, resource: &ConfigResource, key: &str) -> Result<AlterableKey, ControllerError> {
        if let ConfigResource::Group(_) = resource {
            return match group_broker_value(key, self.config) {
                Some(v) => Ok(AlterableKey { list: false, default: Some(v.to_string()) }),
                None => Err(ControllerError::InvalidConfig(format!(
                    "unknown group config `{key}`; groups have consumer.session.timeout.ms and \
                     consumer.heartbeat.interval.ms"
                ))),
            };
        }
        let (topic_key, default) = match resource {
            // A topic without the key has the broker-level value in force.
            ConfigResource::Topic(_) => {
                let topic_key = topic_key(key)
                    .ok_or_else(|| ControllerError::InvalidConfig(format!("unknown topic config `{key}`")))?;
                (topic_key, broker_value_chain(topic_key, self.config, self.image, self.node).into_iter().next())
            }
            // A broker without the dynamic key has the static value (or the default).
            ConfigResource::Broker(_) => match topic_key_of_broker_key(key) {
                Some(topic_key) => {
                    let chain = broker_value_chain(topic_key, self.config, self.image, self.node);
                    (topic_key, chain.into_iter().find(|s| matches!(s.source, Source::StaticBroker | Source::Default)))
                }
                None if dynamic_broker_key(key).is_some() => {
                    return Ok(AlterableKey { list: false, default: dynamic_broker_key(key).map(|k| k.default.into()) })
                }
                None if broker_key(key).is_some() => {
                    return Err(ControllerError::InvalidRequest(format!(
                        "broker config `{key}` cannot be changed dynamically: set it with the broker's flag, TOML \
                         file or environment, and restart"
                    )))
                }
                None => return Err(ControllerError::InvalidConfig(format!("unknown broker config `{key}`"))),
            },
            ConfigResource::Group(_) => unreachable!("answered above"),
        };
        Ok(AlterableKey { list: topic_key.ty == ConfigType::List, default: default.and_then(|s| s.value) })
    }

    fn check(&self, resource: &ConfigResource, configs: &BTreeMap<String, String>) -> Result<(), ControllerError> {
        let bad = ControllerError::InvalidConfig;
        match resource {
            ConfigResource::Topic(_) => {
                let defaults = log_defaults(self.config, self.image, self.node);
                let pairs: Vec<(String, String)> = configs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                topic_log_config(&defaults, &pairs).map(|_| ()).map_err(bad)
            }
            ConfigResource::Broker(_) => {
                for (name, value) in configs {
                    if let Some(key) = dynamic_broker_key(name) {
                        key.valid
                            .check(name, value)
                            .map_err(|e| ControllerError::InvalidRequest(format!("{name}: {e}")))?;
                        continue;
                    }
                    let key =
                        topic_key_of_broker_key(name).ok_or_else(|| bad(format!("unknown broker config `{name}`")))?;
                    // Kafka answers a bad broker config value with INVALID_REQUEST.
                    check_topic_value(key.name, value)
                        .map_err(|e| ControllerError::InvalidRequest(format!("{name}: {e}")))?;
                }
                Ok(())
            }
            ConfigResource::Group(_) => {
                let number = |key: &str| -> Result<i32, ControllerError> {
                    match configs.get(key) {
                        Some(v) => v.parse().map_err(|_| bad(format!("{key}: `{v}` is not a whole number of ms"))),
                        None => Ok(group_broker_value(key, self.config).unwrap_or(0)),
                    }
                };
                let session = number("consumer.session.timeout.ms")?;
                let heartbeat = number("consumer.heartbeat.interval.ms")?;
                let (min, max) = (self.config.groups.session_timeout_ms_min, self.config.groups.session_timeout_ms_max);
                if !(min..=max).contains(&session) {
                    return Err(bad(format!(
                        "consumer.session.timeout.ms {session} is outside the broker's range [{min}, {max}] \
                         (--group-session-timeout-ms-min/-max)"
                    )));
                }
                if heartbeat < 1 || heartbeat >= session {
                    return Err(bad(format!(
                        "consumer.heartbeat.interval.ms {heartbeat} must be at least 1 and below the session timeout \
                         ({session})"
                    )));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::types::Treatment;
    use super::*;

    /// The README's table of topic configs says what this table does, key by key.
    #[test]
    fn the_readme_table_is_this_table() {
        let readme = include_str!("../../../README.md");
        let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
        for key in TOPIC_KEYS {
            let row = rows
                .iter()
                .find(|r| r.starts_with(&format!("| `{}` |", key.name)))
                .unwrap_or_else(|| panic!("README lists no row for {}", key.name));
            let said = row.split('|').nth(3).expect("a Ringtail column").trim();
            let expected = match key.treatment {
                Treatment::Enforced => "enforced",
                Treatment::NoOp(_) => "accepted, no effect",
            };
            assert!(said.starts_with(expected), "{}: README says `{said}`, the table {expected}", key.name);
            assert_eq!(said.contains("refused"), key.refused.is_some(), "{}: README says `{said}`", key.name);
        }
    }

    #[test]
    fn every_key_is_named_once_and_its_default_is_valid() {
        let mut names = std::collections::HashSet::new();
        for key in TOPIC_KEYS {
            assert!(names.insert(key.name), "{} twice", key.name);
            if !key.default.is_empty() {
                assert_eq!(key.valid.check(key.name, key.default), Ok(()), "{}", key.name);
            }
            if let Some((refuse, _)) = key.refused {
                assert!(!refuse(key.default), "{}: the default is refused", key.name);
            }
        }
        let mut broker_names = std::collections::HashSet::new();
        for name in broker_config_names() {
            assert!(broker_names.insert(name), "broker config {name} twice");
        }
    }

    #[test]
    fn values_are_checked_against_the_table() {
        assert!(check_topic_value("retention.ms", "-1").is_ok());
        assert!(check_topic_value("retention.ms", "-2").unwrap_err().contains("from -1"));
        assert!(check_topic_value("retention.ms", "soon").unwrap_err().contains("whole number"));
        assert!(check_topic_value("retention.bytes", "-2").is_ok(), "any negative means no limit");
        assert!(check_topic_value("cleanup.policy", "delete").is_ok());
        assert!(check_topic_value("cleanup.policy", "compact,delete").unwrap_err().contains("compaction"));
        assert!(check_topic_value("cleanup.policy", "shred").unwrap_err().contains("not one of"));
        assert!(check_topic_value("colour", "red").unwrap_err().contains("unknown topic config"));
        assert!(check_topic_value("preallocate", "TRUE").is_ok());
        assert!(check_topic_value("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(check_topic_value("leader.replication.throttled.replicas", "0:1,1:2").is_ok());
        assert!(check_topic_value("leader.replication.throttled.replicas", "0-1").is_err());
    }

    #[test]
    fn topic_configs_override_the_log_defaults() {
        let base = LogConfig::default();
        let c = topic_log_config(
            &base,
            &[("retention.ms".into(), "-1".into()), ("segment.bytes".into(), "2097152".into())],
        )
        .unwrap();
        assert_eq!((c.retention_age_ms_max, c.segment_bytes_max), (None, 2_097_152));
        assert!(topic_log_config(&base, &[("segment.bytes".into(), "1000".into())]).is_err());
        // No-op keys are accepted and change nothing.
        assert_eq!(topic_log_config(&base, &[("flush.ms".into(), "10".into())]).unwrap(), base);
    }
}
