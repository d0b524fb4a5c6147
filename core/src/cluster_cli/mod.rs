//! `ringtail cluster`: a running cluster as its brokers describe it over the Kafka protocol,
//! like any admin client would, and the operations on it. `status` (DescribeCluster with fenced
//! brokers, DescribeQuorum, Metadata): the nodes with their roles, the active controller, fenced
//! brokers, how far each node has the metadata, and the partitions each broker leads. The
//! operations (`brokers`, `reassignments`, `rebalance`, `drain`, `elect`, `unregister`) are in
//! `operations.rs`, their plans in `plan.rs`.

mod operations;
pub mod plan;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use ringtail_net::client::cluster::ReplicaState;
use ringtail_net::client::metadata::MetadataRequest;
use serde::Serialize;

use crate::group_cli::Client;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Nodes, roles, the active controller, fenced brokers, metadata progress and partitions
    /// led per broker.
    Status {
        /// Broker to ask (host:port).
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Brokers with their racks, state, and the replicas, leaderships and preferred
    /// leaderships each holds.
    Brokers {
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        #[arg(long)]
        json: bool,
    },
    /// Partition reassignments in progress (ListPartitionReassignments).
    Reassignments {
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        #[arg(long)]
        json: bool,
    },
    /// Plans moves that even out replicas and preferred leaders over the live brokers (and
    /// racks); with --execute carries them out, waits, and elects preferred leaders. Stopped
    /// midway, running it again resumes.
    Rebalance {
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        /// Carry the plan out (without it, only print it).
        #[arg(long)]
        execute: bool,
        /// Give up waiting for the moves after this many seconds (they go on).
        #[arg(long, default_value_t = 3600)]
        timeout_s: u64,
        #[arg(long)]
        json: bool,
    },
    /// Moves every replica and leadership off a broker and waits until it holds none; refused,
    /// before anything moves, if a partition's last in-sync replica is on it.
    Drain {
        /// The broker's node id.
        node: i32,
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        #[arg(long, default_value_t = 3600)]
        timeout_s: u64,
        #[arg(long)]
        json: bool,
    },
    /// Elects leaders (ElectLeaders): the preferred replica of each partition named, or of every
    /// partition; with --unclean, a leader for leaderless partitions even outside the ISR
    /// (losing what only the ISR had).
    Elect {
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        /// Topic whose partitions to elect (all partitions of all topics without it).
        #[arg(long)]
        topic: Option<String>,
        /// Partitions of --topic (all of its partitions without it).
        #[arg(long, requires = "topic")]
        partition: Vec<i32>,
        #[arg(long)]
        unclean: bool,
        #[arg(long)]
        json: bool,
    },
    /// The controller quorum's voters and observers (DescribeQuorum); `add` and `remove`
    /// change the voters online (KIP-853's AddRaftVoter and RemoveRaftVoter).
    Voters {
        #[command(subcommand)]
        change: Option<operations::VoterChange>,
        #[arg(long, default_value = "127.0.0.1:9092", global = true)]
        bootstrap: String,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Removes a stopped broker that holds no replicas from the cluster (UnregisterBroker).
    Unregister {
        /// The broker's node id.
        node: i32,
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
    },
}

fn print_json(value: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[derive(Debug, Serialize)]
struct NodeStatus {
    node_id: i32,
    roles: Vec<&'static str>,
    /// Where clients reach it, if it is a registered broker.
    broker: Option<String>,
    rack: Option<String>,
    fenced: bool,
    /// A voter's end of the quorum log (the next index), or a broker's applied metadata offset
    /// plus one; -1 when unknown.
    log_end: i64,
    /// Milliseconds since the active controller last heard from it; -1 when never.
    last_heard_ms: i64,
    partitions_led: usize,
}

#[derive(Debug, Serialize)]
struct ClusterStatus {
    cluster_id: String,
    active_controller: Option<i32>,
    controller_epoch: i32,
    /// The quorum log's committed end.
    high_watermark: i64,
    nodes: Vec<NodeStatus>,
    /// Partitions with no leader now.
    offline_partitions: usize,
    /// Partitions with fewer in-sync replicas than replicas.
    under_replicated_partitions: usize,
}

pub fn run(command: ClusterCommand) -> Result<()> {
    match command {
        ClusterCommand::Status { bootstrap, json } => {
            let status = status(&bootstrap)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_table(&status);
            }
            Ok(())
        }
        ClusterCommand::Brokers { bootstrap, json } => {
            let described = operations::describe(&mut Client::connect(&bootstrap)?)?;
            if json {
                return print_json(&described.brokers);
            }
            operations::print_brokers(&described.brokers);
            Ok(())
        }
        ClusterCommand::Reassignments { bootstrap, json } => {
            let ongoing = operations::reassignments(&mut Client::connect(&bootstrap)?)?;
            if json {
                return print_json(&ongoing);
            }
            operations::print_reassignments(&ongoing);
            Ok(())
        }
        ClusterCommand::Rebalance { bootstrap, execute, timeout_s, json } => {
            let report = operations::rebalance(&bootstrap, execute, json, Duration::from_secs(timeout_s))?;
            if json {
                print_json(&report)?;
            }
            Ok(())
        }
        ClusterCommand::Drain { node, bootstrap, timeout_s, json } => {
            let report = operations::drain(&bootstrap, node, json, Duration::from_secs(timeout_s))?;
            if json {
                print_json(&report)?;
            }
            Ok(())
        }
        ClusterCommand::Elect { bootstrap, topic, partition, unclean, json } => {
            let mut client = Client::connect(&bootstrap)?;
            let partitions = match topic {
                None => None,
                Some(topic) if partition.is_empty() => {
                    let described = operations::describe(&mut client)?;
                    let all: Vec<(String, i32)> = described
                        .layout
                        .partitions
                        .iter()
                        .filter(|p| p.topic == topic)
                        .map(|p| (p.topic.clone(), p.partition))
                        .collect();
                    if all.is_empty() {
                        bail!("topic `{topic}` does not exist");
                    }
                    Some(all)
                }
                Some(topic) => Some(partition.into_iter().map(|p| (topic.clone(), p)).collect()),
            };
            let elections = operations::elect(&mut client, partitions, unclean)?;
            if json {
                print_json(&elections)?;
            } else {
                operations::print_elections(&elections);
            }
            match elections.iter().any(|e| e.error_code != 0 && e.error_code != 84) {
                true => bail!("some elections failed"),
                false => Ok(()),
            }
        }
        ClusterCommand::Voters { change, bootstrap, json } => {
            if let Some(change) = change {
                operations::change_voters(&bootstrap, change)?;
            }
            let voters = operations::voters(&bootstrap)?;
            if json {
                return print_json(&voters);
            }
            operations::print_voters(&voters);
            Ok(())
        }
        ClusterCommand::Unregister { node, bootstrap } => {
            operations::unregister(&bootstrap, node)?;
            println!("broker {node} is unregistered");
            Ok(())
        }
    }
}

fn status(bootstrap: &str) -> Result<ClusterStatus> {
    let mut client = Client::connect(bootstrap)?;
    let cluster = operations::describe_cluster(&mut client)?;
    let partition = operations::describe_quorum(&mut client)?;
    let metadata = client.call(12, &MetadataRequest { topics: None, ..MetadataRequest::default() })?;
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    let mut offline = 0;
    let mut under_replicated = 0;
    for topic in &metadata.topics {
        for p in &topic.partitions {
            if p.isr_nodes.len() < p.replica_nodes.len() {
                under_replicated += 1;
            }
            match p.leader_id {
                -1 => offline += 1,
                leader => *led.entry(leader).or_default() += 1,
            }
        }
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let heard = |r: &ReplicaState| if r.last_fetch_timestamp < 0 { -1 } else { (now - r.last_fetch_timestamp).max(0) };
    let mut nodes: BTreeMap<i32, NodeStatus> = BTreeMap::new();
    let blank = |node_id| NodeStatus {
        node_id,
        roles: Vec::new(),
        broker: None,
        rack: None,
        fenced: false,
        log_end: -1,
        last_heard_ms: -1,
        partitions_led: 0,
    };
    for b in &cluster.brokers {
        let n = nodes.entry(b.broker_id).or_insert_with(|| blank(b.broker_id));
        n.roles.push("broker");
        n.broker = Some(format!("{}:{}", b.host, b.port));
        n.rack = b.rack.clone();
        n.fenced = b.is_fenced;
        n.partitions_led = led.get(&b.broker_id).copied().unwrap_or(0);
    }
    for v in &partition.current_voters {
        let n = nodes.entry(v.replica_id).or_insert_with(|| blank(v.replica_id));
        n.roles.insert(0, "controller");
        n.log_end = v.log_end_offset;
        n.last_heard_ms = heard(v);
    }
    for o in &partition.observers {
        if let Some(n) = nodes.get_mut(&o.replica_id) {
            n.log_end = o.log_end_offset;
            n.last_heard_ms = heard(o);
        }
    }
    Ok(ClusterStatus {
        cluster_id: cluster.cluster_id,
        active_controller: (partition.leader_id >= 0).then_some(partition.leader_id),
        controller_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        nodes: nodes.into_values().collect(),
        offline_partitions: offline,
        under_replicated_partitions: under_replicated,
    })
}

fn print_table(s: &ClusterStatus) {
    let active = s.active_controller.map_or("none".to_string(), |c| c.to_string());
    println!(
        "cluster {}  active controller: {active} (epoch {})  quorum high watermark: {}  offline partitions: {}  \
         under-replicated partitions: {}",
        s.cluster_id, s.controller_epoch, s.high_watermark, s.offline_partitions, s.under_replicated_partitions
    );
    println!(
        "{:>6}  {:<20} {:<22} {:<8} {:<8} {:>8} {:>10} {:>6}",
        "NODE", "ROLES", "BROKER", "RACK", "STATE", "LOG END", "HEARD MS", "LEADS"
    );
    for n in &s.nodes {
        let state = match (n.fenced, n.broker.is_some()) {
            (true, _) => "fenced",
            (false, true) => "live",
            (false, false) => "-",
        };
        println!(
            "{:>6}  {:<20} {:<22} {:<8} {:<8} {:>8} {:>10} {:>6}",
            n.node_id,
            n.roles.join(","),
            n.broker.as_deref().unwrap_or("-"),
            n.rack.as_deref().unwrap_or("-"),
            state,
            n.log_end,
            n.last_heard_ms,
            n.partitions_led
        );
    }
}
