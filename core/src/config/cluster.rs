//! Cluster settings: the node's roles, the controller quorum's voters and this node's controller
//! listener, its rack, the cluster id, and the quorum's and brokers' timings. Kafka's names where
//! Kafka has one (`process.roles`, `controller.quorum.voters`, `broker.rack`,
//! `controller.quorum.election.timeout.ms`, `broker.session.timeout.ms`,
//! `broker.heartbeat.interval.ms`).
//!
//! With none of them set, a node is a single broker that is its own one-voter quorum.

use std::net::SocketAddr;
use std::time::Duration;

/// A setting that cannot be used, and why (the broker's configuration reports it by name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct Invalid {
    pub setting: &'static str,
    pub message: String,
}

/// What a node does: serve clients (broker), vote in the metadata quorum (controller), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

impl ProcessRoles {
    pub const BOTH: ProcessRoles = ProcessRoles { broker: true, controller: true };

    /// `broker`, `controller`, or both separated by a comma, in any order.
    pub fn parse(text: &str) -> Result<ProcessRoles, String> {
        let mut roles = ProcessRoles { broker: false, controller: false };
        for role in text.split(',').map(str::trim) {
            let seen = match role {
                "broker" => std::mem::replace(&mut roles.broker, true),
                "controller" => std::mem::replace(&mut roles.controller, true),
                "" => return Err(format!("`{text}` has an empty role; give `broker`, `controller` or both")),
                other => return Err(format!("`{other}` is neither `broker` nor `controller`")),
            };
            if seen {
                return Err(format!("`{role}` is given twice in `{text}`"));
            }
        }
        Ok(roles)
    }

    pub fn describe(&self) -> &'static str {
        match (self.broker, self.controller) {
            (true, true) => "broker,controller",
            (true, false) => "broker",
            (false, true) => "controller",
            (false, false) => "none",
        }
    }
}

/// One voter of the controller quorum, as `--controller-quorum-voters` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn address(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }
}

/// Voters a quorum may list. Kafka sets no bound; a quorum beyond this many only slows commits.
pub const VOTERS_MAX: usize = 15;

/// Parses `1@host:port,2@host:port,...` (Kafka's `controller.quorum.voters`).
pub fn parse_voters(text: &str) -> Result<Vec<Voter>, String> {
    let mut voters: Vec<Voter> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, address) = entry.split_once('@').ok_or_else(|| format!("`{entry}` is not id@host:port"))?;
        let node_id: i32 = id
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("node id `{id}` in `{entry}` is not a number from 0 to 2147483647"))?;
        let (host, port) =
            address.rsplit_once(':').ok_or_else(|| format!("`{address}` in `{entry}` is not host:port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port `{port}` in `{entry}` is not a number from 1 to 65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{entry}` has no host"));
        }
        if voters.iter().any(|v| v.node_id == node_id) {
            return Err(format!("node id {node_id} is listed twice"));
        }
        if let Some(v) = voters.iter().find(|v| v.host == host && v.port == port) {
            return Err(format!("nodes {} and {node_id} have the same address {}", v.node_id, v.address()));
        }
        voters.push(Voter { node_id, host: host.to_string(), port });
    }
    if voters.is_empty() {
        return Err("no voter is listed; give id@host:port for each controller".into());
    }
    if voters.len() > VOTERS_MAX {
        return Err(format!("{} voters are listed; at most {VOTERS_MAX}", voters.len()));
    }
    Ok(voters)
}

/// A cluster id as Kafka's tools make them (22 characters of URL-safe base64) or any name of
/// 1 to 64 letters, digits, `-` and `_`.
pub fn check_cluster_id(id: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match ok {
        true => Ok(()),
        false => Err(format!("`{id}` is not 1 to 64 letters, digits, `-` or `_`")),
    }
}

/// The resolved cluster settings of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub roles: ProcessRoles,
    /// The quorum's voters; empty for a single node that is its own one-voter quorum.
    pub voters: Vec<Voter>,
    /// Where this node's controller accepts the quorum's and brokers' requests (controllers only).
    pub controller_listen: Option<SocketAddr>,
    pub rack: Option<String>,
    /// The cluster id to create or join; otherwise the lowest voter generates one when it
    /// initializes the quorum, and other nodes take it from the quorum.
    pub cluster_id: Option<String>,
    /// A follower that hears no leader for this long (randomized up to twice it) starts an
    /// election (controller.quorum.election.timeout.ms).
    pub election_timeout: Duration,
    /// How often a quorum leader tells its followers it is alive.
    pub heartbeat_interval: Duration,
    /// A broker that sends no heartbeat for this long is fenced (broker.session.timeout.ms).
    pub broker_session_timeout: Duration,
    /// How often a broker sends its heartbeat (broker.heartbeat.interval.ms).
    pub broker_heartbeat_interval: Duration,
    /// A follower that has not caught up with its leader for this long leaves the ISR
    /// (replica.lag.time.max.ms).
    pub replica_lag_time_max: Duration,
    /// Replicas of a topic created without a replication factor (default.replication.factor).
    pub default_replication_factor: i16,
    /// Replicas of each `__consumer_offsets` partition (offsets.topic.replication.factor): the
    /// topic is created once this many brokers are live.
    pub offsets_topic_replication_factor: i16,
    /// Automatic preferred-leader balancing: how often the active controller checks, and the
    /// imbalance percentage past which it acts; `None` when disabled.
    pub leader_balance: Option<(Duration, u32)>,
    /// Consumers with a rack are sent to an in-sync replica in it (replica.selector.class).
    pub rack_aware_reads: bool,
}

impl ClusterConfig {
    /// True when the node runs alone, as before clusters existed.
    pub fn is_single_node(&self) -> bool {
        self.voters.is_empty()
    }
}

/// The cluster settings as given, before checking.
#[derive(Debug, Default, Clone)]
pub struct ClusterSettings {
    pub node_id: Option<i32>,
    pub process_roles: Option<String>,
    pub controller_listen: Option<String>,
    pub controller_quorum_voters: Option<String>,
    pub rack: Option<String>,
    pub cluster_id: Option<String>,
    pub election_timeout_ms: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
    pub broker_session_timeout_ms: Option<u64>,
    pub broker_heartbeat_interval_ms: Option<u64>,
    pub replica_lag_time_max_ms: Option<u64>,
    pub default_replication_factor: Option<i16>,
    pub offsets_topic_replication_factor: Option<i16>,
    pub auto_leader_rebalance_enable: Option<bool>,
    pub leader_imbalance_per_broker_percentage: Option<u32>,
    pub leader_imbalance_check_interval_seconds: Option<u64>,
    pub replica_selector_class: Option<String>,
}

/// Kafka's default offsets.topic.replication.factor.
pub const OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT: i16 = 3;

/// Kafka's leader.imbalance.per.broker.percentage.
pub const LEADER_IMBALANCE_PERCENTAGE_DEFAULT: u32 = 10;
/// Kafka's leader.imbalance.check.interval.seconds.
pub const LEADER_IMBALANCE_CHECK_SECONDS_DEFAULT: u64 = 300;
pub const REPLICA_LAG_TIME_MAX_MS_DEFAULT: u64 = 30_000;

pub const ELECTION_TIMEOUT_MS_DEFAULT: u64 = 1000;
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 100;
pub const BROKER_SESSION_TIMEOUT_MS_DEFAULT: u64 = 9000;
pub const BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 2000;

fn invalid(setting: &'static str, message: String) -> Invalid {
    Invalid { setting, message }
}

impl ClusterSettings {
    pub fn resolve(self) -> Result<ClusterConfig, Invalid> {
        let roles = match &self.process_roles {
            Some(text) => ProcessRoles::parse(text).map_err(|m| invalid("process-roles", m))?,
            None => ProcessRoles::BOTH,
        };
        let voters = match &self.controller_quorum_voters {
            Some(text) => parse_voters(text).map_err(|m| invalid("controller-quorum-voters", m))?,
            None => Vec::new(),
        };
        let controller_listen = match &self.controller_listen {
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid("controller-listen", format!("`{text}` is not ip:port (a literal address to bind)"))
            })?),
            None => None,
        };
        let ms = |setting: &'static str, value: Option<u64>, default: u64, range: std::ops::RangeInclusive<u64>| {
            let v = value.unwrap_or(default);
            match range.contains(&v) {
                true => Ok(Duration::from_millis(v)),
                false => Err(invalid(setting, format!("{v} is not between {} and {} ms", range.start(), range.end()))),
            }
        };
        let election_timeout = ms(
            "controller-quorum-election-timeout-ms",
            self.election_timeout_ms,
            ELECTION_TIMEOUT_MS_DEFAULT,
            50..=60_000,
        )?;
        let heartbeat_interval = ms(
            "controller-quorum-heartbeat-interval-ms",
            self.heartbeat_interval_ms,
            HEARTBEAT_INTERVAL_MS_DEFAULT,
            10..=30_000,
        )?;
        if heartbeat_interval * 2 > election_timeout {
            return Err(invalid(
                "controller-quorum-heartbeat-interval-ms",
                format!(
                    "{} ms is more than half the election timeout ({} ms): followers would start elections \
                     between heartbeats",
                    heartbeat_interval.as_millis(),
                    election_timeout.as_millis()
                ),
            ));
        }
        let broker_session_timeout = ms(
            "broker-session-timeout-ms",
            self.broker_session_timeout_ms,
            BROKER_SESSION_TIMEOUT_MS_DEFAULT,
            100..=600_000,
        )?;
        let broker_heartbeat_interval = ms(
            "broker-heartbeat-interval-ms",
            self.broker_heartbeat_interval_ms,
            BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT,
            10..=300_000,
        )?;
        if broker_heartbeat_interval * 2 > broker_session_timeout {
            return Err(invalid(
                "broker-heartbeat-interval-ms",
                format!(
                    "{} ms is more than half the session timeout ({} ms): a live broker would be fenced",
                    broker_heartbeat_interval.as_millis(),
                    broker_session_timeout.as_millis()
                ),
            ));
        }
        let replica_lag_time_max = ms(
            "replica-lag-time-max-ms",
            self.replica_lag_time_max_ms,
            REPLICA_LAG_TIME_MAX_MS_DEFAULT,
            100..=3_600_000,
        )?;
        let default_replication_factor = self.default_replication_factor.unwrap_or(1);
        if !(1..=i16::MAX).contains(&default_replication_factor) {
            return Err(invalid(
                "default-replication-factor",
                format!("{default_replication_factor} is not a replication factor (at least 1)"),
            ));
        }
        let offsets_topic_replication_factor =
            self.offsets_topic_replication_factor.unwrap_or(OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT);
        if offsets_topic_replication_factor < 1 {
            return Err(invalid(
                "offsets-topic-replication-factor",
                format!("{offsets_topic_replication_factor} is not a replication factor (at least 1)"),
            ));
        }
        let percentage = self.leader_imbalance_per_broker_percentage.unwrap_or(LEADER_IMBALANCE_PERCENTAGE_DEFAULT);
        if percentage > 100 {
            return Err(invalid(
                "leader-imbalance-per-broker-percentage",
                format!("{percentage} is not a percentage (0 to 100)"),
            ));
        }
        let check = self.leader_imbalance_check_interval_seconds.unwrap_or(LEADER_IMBALANCE_CHECK_SECONDS_DEFAULT);
        if !(1..=86_400).contains(&check) {
            return Err(invalid(
                "leader-imbalance-check-interval-seconds",
                format!("{check} is not between 1 and 86400 seconds"),
            ));
        }
        let leader_balance =
            self.auto_leader_rebalance_enable.unwrap_or(true).then_some((Duration::from_secs(check), percentage));
        let rack_aware_reads = match self.replica_selector_class.as_deref() {
            None | Some("" | "leader" | "org.apache.kafka.common.replica.LeaderSelector") => false,
            Some("rack-aware" | "org.apache.kafka.common.replica.RackAwareReplicaSelector") => true,
            Some(other) => {
                return Err(invalid(
                    "replica-selector-class",
                    format!("`{other}` is not a replica selector: `leader` or `rack-aware`"),
                ))
            }
        };
        if let Some(rack) = &self.rack {
            let ok = (1..=255).contains(&rack.len()) && rack.chars().all(|c| !c.is_control());
            if !ok {
                return Err(invalid("rack", format!("`{rack}` is not 1 to 255 printable characters")));
            }
        }
        if let Some(id) = &self.cluster_id {
            check_cluster_id(id).map_err(|m| invalid("cluster-id", m))?;
        }
        let config = ClusterConfig {
            roles,
            voters,
            controller_listen,
            rack: self.rack.clone(),
            cluster_id: self.cluster_id.clone(),
            election_timeout,
            heartbeat_interval,
            broker_session_timeout,
            broker_heartbeat_interval,
            replica_lag_time_max,
            default_replication_factor,
            offsets_topic_replication_factor,
            leader_balance,
            rack_aware_reads,
        };
        self.check_membership(config)
    }

    /// The node's place in the quorum must agree with the voter list.
    fn check_membership(&self, mut config: ClusterConfig) -> Result<ClusterConfig, Invalid> {
        if config.voters.is_empty() {
            if config.roles != ProcessRoles::BOTH {
                return Err(invalid(
                    "process-roles",
                    format!(
                        "`{}` needs a quorum to belong to: give --controller-quorum-voters (a node without it is \
                         both broker and controller of a one-node cluster)",
                        config.roles.describe()
                    ),
                ));
            }
            if config.controller_listen.is_some() {
                return Err(invalid(
                    "controller-listen",
                    "a single node (no --controller-quorum-voters) has no controller listener".into(),
                ));
            }
            return Ok(config);
        }
        let Some(node_id) = self.node_id else {
            return Err(invalid(
                "node-id",
                "a node of a cluster needs its --node-id (the id it has in --controller-quorum-voters, if it is a \
                 controller)"
                    .into(),
            ));
        };
        let mine = config.voters.iter().find(|v| v.node_id == node_id).cloned();
        match (config.roles.controller, mine) {
            // A controller joining a running quorum (KIP-853): it follows the quorum from its
            // own listener until AddRaftVoter makes it a voter.
            (true, None) if config.controller_listen.is_some() => Ok(config),
            (true, None) => Err(invalid(
                "controller-quorum-voters",
                format!(
                    "node {node_id} has the controller role but is not among the voters; add {node_id}@host:port, \
                     start it with --process-roles broker, or give it --controller-listen to join the running quorum \
                     as a new voter (`ringtail cluster voters add`)"
                ),
            )),
            (false, Some(_)) => Err(invalid(
                "process-roles",
                format!("node {node_id} is a voter in --controller-quorum-voters, so it needs the controller role"),
            )),
            (false, None) => match config.controller_listen {
                Some(_) => Err(invalid("controller-listen", "a broker-only node has no controller listener".into())),
                None => Ok(config),
            },
            (true, Some(voter)) => {
                // A listener apart from the voter entry is how peers reach it through a NAT or
                // a proxy (as Kafka's listeners and controller.quorum.voters may differ).
                let listen = match config.controller_listen {
                    Some(listen) => listen,
                    // The voter's own address, when it is a literal one.
                    None => voter.address().parse::<SocketAddr>().map_err(|_| {
                        invalid(
                            "controller-listen",
                            format!("{} is not an ip:port to bind: give --controller-listen", voter.address()),
                        )
                    })?,
                };
                config.controller_listen = Some(listen);
                Ok(config)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(node: Option<i32>, roles: Option<&str>, voters: Option<&str>) -> ClusterSettings {
        ClusterSettings {
            node_id: node,
            process_roles: roles.map(String::from),
            controller_quorum_voters: voters.map(String::from),
            ..ClusterSettings::default()
        }
    }

    fn error(s: ClusterSettings) -> String {
        s.resolve().expect_err("refused").to_string()
    }

    #[test]
    fn no_flags_is_a_single_node() {
        let c = ClusterSettings::default().resolve().expect("valid");
        assert!(c.is_single_node());
        assert_eq!(c.roles, ProcessRoles::BOTH);
        assert_eq!(c.election_timeout, Duration::from_millis(ELECTION_TIMEOUT_MS_DEFAULT));
        assert_eq!(c.broker_session_timeout, Duration::from_secs(9));
        assert_eq!(c.leader_balance, Some((Duration::from_secs(300), 10)), "Kafka's defaults");
    }

    #[test]
    fn leader_balancing_settings_are_checked() {
        let off = ClusterSettings { auto_leader_rebalance_enable: Some(false), ..Default::default() };
        assert_eq!(off.resolve().expect("valid").leader_balance, None);
        let s = ClusterSettings { leader_imbalance_per_broker_percentage: Some(101), ..Default::default() };
        assert!(error(s).contains("percentage"));
        let s = ClusterSettings { leader_imbalance_check_interval_seconds: Some(0), ..Default::default() };
        assert!(error(s).contains("between 1 and 86400"));
        let s = ClusterSettings { leader_imbalance_check_interval_seconds: Some(2), ..Default::default() };
        assert_eq!(s.resolve().expect("valid").leader_balance, Some((Duration::from_secs(2), 10)));
    }

    #[test]
    fn replica_selectors_are_kafkas_two() {
        assert!(!ClusterSettings::default().resolve().expect("valid").rack_aware_reads);
        for name in ["rack-aware", "org.apache.kafka.common.replica.RackAwareReplicaSelector"] {
            let s = ClusterSettings { replica_selector_class: Some(name.into()), ..Default::default() };
            assert!(s.resolve().expect("valid").rack_aware_reads);
        }
        let s = ClusterSettings { replica_selector_class: Some("nearest".into()), ..Default::default() };
        assert!(error(s).contains("not a replica selector"));
    }

    #[test]
    fn roles_parse_in_any_order_and_refuse_the_rest() {
        assert_eq!(ProcessRoles::parse("controller, broker"), Ok(ProcessRoles::BOTH));
        assert_eq!(ProcessRoles::parse("broker"), Ok(ProcessRoles { broker: true, controller: false }));
        assert!(ProcessRoles::parse("broker,broker").unwrap_err().contains("twice"));
        assert!(ProcessRoles::parse("leader").unwrap_err().contains("neither"));
        assert!(ProcessRoles::parse("").is_err());
    }

    #[test]
    fn voters_parse_with_ids_and_addresses_checked() {
        let v = parse_voters("1@127.0.0.1:9093, 2@[::1]:9094,3@ctl-3.example:9095").expect("valid");
        assert_eq!(v.len(), 3);
        assert_eq!(v[1], Voter { node_id: 2, host: "::1".into(), port: 9094 });
        assert_eq!(v[1].address(), "[::1]:9094");
        assert!(parse_voters("1@a:1,1@b:2").unwrap_err().contains("twice"));
        assert!(parse_voters("1@a:1,2@a:1").unwrap_err().contains("same address"));
        assert!(parse_voters("x@a:1").unwrap_err().contains("node id"));
        assert!(parse_voters("-1@a:1").unwrap_err().contains("node id"));
        assert!(parse_voters("1@a:0").unwrap_err().contains("port"));
        assert!(parse_voters("1@a").unwrap_err().contains("host:port"));
        assert!(parse_voters("127.0.0.1:9093").unwrap_err().contains("id@host:port"));
        assert!(parse_voters("").unwrap_err().contains("no voter"));
        let many: Vec<String> = (0..16).map(|i| format!("{i}@h:{}", 9000 + i)).collect();
        assert!(parse_voters(&many.join(",")).unwrap_err().contains("at most"));
    }

    #[test]
    fn a_controller_listens_where_the_voter_list_says() {
        let c = settings(Some(2), None, Some("1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095"))
            .resolve()
            .expect("valid");
        assert_eq!(c.controller_listen, Some("127.0.0.1:9094".parse().expect("addr")));
        let mut s = settings(Some(2), None, Some("1@127.0.0.1:9093,2@127.0.0.1:9094"));
        s.controller_listen = Some("0.0.0.0:9094".into());
        assert_eq!(s.resolve().expect("valid").controller_listen, Some("0.0.0.0:9094".parse().expect("addr")));
        let mut s = settings(Some(2), None, Some("1@127.0.0.1:9093,2@127.0.0.1:9094"));
        s.controller_listen = Some("127.0.0.1:9999".into());
        assert_eq!(s.resolve().expect("valid").controller_listen, Some("127.0.0.1:9999".parse().expect("addr")));
        assert!(error(settings(Some(2), None, Some("1@ctl-1:9093,2@ctl-2:9094"))).contains("--controller-listen"));
    }

    #[test]
    fn membership_must_agree_with_the_roles() {
        let voters = Some("1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095");
        assert!(error(settings(None, None, voters)).contains("--node-id"));
        assert!(error(settings(Some(4), None, voters)).contains("not among the voters"));
        let joining =
            ClusterSettings { controller_listen: Some("127.0.0.1:9493".into()), ..settings(Some(4), None, voters) };
        assert!(joining.resolve().is_ok(), "a controller joining the running quorum");
        assert!(error(settings(Some(1), Some("broker"), voters)).contains("needs the controller role"));
        let broker = settings(Some(4), Some("broker"), voters).resolve().expect("a broker-only node");
        assert_eq!(broker.controller_listen, None);
        assert!(!broker.is_single_node());
        assert!(error(settings(Some(1), Some("broker"), None)).contains("needs a quorum"));
        let single = ClusterSettings { controller_listen: Some("127.0.0.1:9093".into()), ..Default::default() };
        assert!(error(single).contains("single node"));
    }

    #[test]
    fn timings_are_checked_against_each_other() {
        let mut s =
            ClusterSettings { election_timeout_ms: Some(200), heartbeat_interval_ms: Some(150), ..Default::default() };
        assert!(error(s.clone()).contains("half the election timeout"));
        s.heartbeat_interval_ms = Some(50);
        assert!(s.resolve().is_ok());
        let s = ClusterSettings {
            broker_session_timeout_ms: Some(1000),
            broker_heartbeat_interval_ms: Some(800),
            ..Default::default()
        };
        assert!(error(s).contains("fenced"));
        let s = ClusterSettings { election_timeout_ms: Some(10), ..Default::default() };
        assert!(error(s).contains("between 50 and 60000"));
    }

    #[test]
    fn rack_and_cluster_id_are_checked() {
        let s = ClusterSettings { rack: Some(String::new()), ..Default::default() };
        assert!(error(s).contains("1 to 255"));
        let s = ClusterSettings { rack: Some("a\nb".into()), ..Default::default() };
        assert!(s.resolve().is_err());
        assert!(check_cluster_id("MkU3OEVBNTcwNTJENDM2Qk").is_ok());
        assert!(check_cluster_id("my cluster").is_err());
        assert!(check_cluster_id("").is_err());
    }
}
