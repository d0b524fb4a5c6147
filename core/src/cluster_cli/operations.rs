//! `ringtail cluster brokers / reassignments / rebalance / drain / elect / unregister / voters`:
//! cluster operations driven over the Kafka protocol as any admin client would (Metadata,
//! DescribeCluster, AlterPartitionReassignments, ListPartitionReassignments, ElectLeaders,
//! UnregisterBroker, DescribeQuorum, AddRaftVoter, RemoveRaftVoter), so they work against any
//! broker of the cluster and need no access to the controllers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ringtail_net::client::cluster::{
    DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest, QuorumPartition,
};
use ringtail_net::client::cluster_ops::{
    AddRaftVoterRequest, AlterPartitionReassignmentsRequest, ElectLeadersRequest, ElectTopicPartitions,
    ListPartitionReassignmentsRequest, ReassignablePartition, ReassignableTopic, RemoveRaftVoterRequest,
    UnregisterBrokerRequest, ELECTION_PREFERRED, ELECTION_UNCLEAN,
};
use ringtail_net::client::metadata::MetadataRequest;
use serde::Serialize;

use super::plan::{self, Layout, Move, PartitionLayout};
use crate::group_cli::Client;

/// Kafka's PREFERRED_LEADER_NOT_AVAILABLE: the preferred replica is not in sync yet.
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
/// Kafka's ELECTION_NOT_NEEDED.
const ELECTION_NOT_NEEDED: i16 = 84;
/// How often progress is polled.
const POLL: Duration = Duration::from_millis(500);
/// Rounds of plan, move, wait a rebalance makes at most (one is the rule; later rounds pick up
/// what changed meanwhile).
const REBALANCE_ROUNDS: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct BrokerRow {
    pub node_id: i32,
    pub endpoint: String,
    pub rack: Option<String>,
    pub fenced: bool,
    pub replicas: usize,
    pub leaders: usize,
    pub preferred_leaders: usize,
}

/// The cluster as a plan sees it, and per broker what it holds.
pub struct Described {
    pub layout: Layout,
    pub brokers: Vec<BrokerRow>,
}

/// DescribeCluster with fenced brokers.
pub fn describe_cluster(client: &mut Client) -> Result<DescribeClusterResponse> {
    let cluster = client.call(
        2,
        &DescribeClusterRequest {
            include_cluster_authorized_operations: false,
            endpoint_type: 1,
            include_fenced_brokers: true,
        },
    )?;
    if cluster.error_code != 0 {
        bail!("DescribeCluster failed with error {}: {:?}", cluster.error_code, cluster.error_message);
    }
    Ok(cluster)
}

/// DescribeQuorum: the metadata quorum's one partition.
pub fn describe_quorum(client: &mut Client) -> Result<QuorumPartition> {
    let quorum =
        client.call(2, &DescribeQuorumRequest { topics: vec![("__cluster_metadata".to_string(), vec![0])] })?;
    let Some(partition) = quorum.topics.into_iter().next().and_then(|t| t.partitions.into_iter().next()) else {
        bail!("DescribeQuorum answered no partition");
    };
    if partition.error_code != 0 {
        bail!(
            "the controller quorum cannot be described now (error {}): {}",
            partition.error_code,
            partition.error_message.as_deref().unwrap_or("")
        );
    }
    Ok(partition)
}

pub fn describe(client: &mut Client) -> Result<Described> {
    let cluster = describe_cluster(client)?;
    let metadata = client.call(12, &MetadataRequest { topics: None, ..MetadataRequest::default() })?;
    let mut layout = Layout::default();
    let mut leaders = BTreeMap::new();
    for b in cluster.brokers.iter().filter(|b| !b.is_fenced) {
        layout.brokers.insert(b.broker_id, b.rack.clone());
    }
    for t in &metadata.topics {
        let Some(name) = &t.name else { continue };
        for p in &t.partitions {
            layout.partitions.push(PartitionLayout {
                topic: name.clone(),
                partition: p.partition_index,
                replicas: p.replica_nodes.clone(),
                isr: p.isr_nodes.clone(),
            });
            leaders.insert((name.clone(), p.partition_index), p.leader_id);
        }
    }
    layout.partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let mut brokers: Vec<BrokerRow> = cluster
        .brokers
        .iter()
        .map(|b| BrokerRow {
            node_id: b.broker_id,
            endpoint: format!("{}:{}", b.host, b.port),
            rack: b.rack.clone(),
            fenced: b.is_fenced,
            replicas: layout.partitions.iter().filter(|p| p.replicas.contains(&b.broker_id)).count(),
            leaders: leaders.values().filter(|l| **l == b.broker_id).count(),
            preferred_leaders: layout.partitions.iter().filter(|p| p.replicas.first() == Some(&b.broker_id)).count(),
        })
        .collect();
    brokers.sort_by_key(|b| b.node_id);
    Ok(Described { layout, brokers })
}

pub fn print_brokers(brokers: &[BrokerRow]) {
    println!(
        "{:>6}  {:<22} {:<10} {:<7} {:>8} {:>7} {:>9}",
        "NODE", "ENDPOINT", "RACK", "STATE", "REPLICAS", "LEADS", "PREFERRED"
    );
    for b in brokers {
        println!(
            "{:>6}  {:<22} {:<10} {:<7} {:>8} {:>7} {:>9}",
            b.node_id,
            b.endpoint,
            b.rack.as_deref().unwrap_or("-"),
            if b.fenced { "fenced" } else { "live" },
            b.replicas,
            b.leaders,
            b.preferred_leaders
        );
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Ongoing {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

pub fn reassignments(client: &mut Client) -> Result<Vec<Ongoing>> {
    let listed = client.call(0, &ListPartitionReassignmentsRequest { timeout_ms: 30_000, topics: None })?;
    if listed.error_code != 0 {
        bail!("ListPartitionReassignments failed with error {}: {:?}", listed.error_code, listed.error_message);
    }
    let mut out: Vec<Ongoing> = listed
        .topics
        .into_iter()
        .flat_map(|t| {
            t.partitions.into_iter().map(move |p| Ongoing {
                topic: t.name.clone(),
                partition: p.partition_index,
                replicas: p.replicas,
                adding: p.adding_replicas,
                removing: p.removing_replicas,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

pub fn print_reassignments(ongoing: &[Ongoing]) {
    if ongoing.is_empty() {
        println!("no reassignment in progress");
        return;
    }
    println!("{:<30} {:>9}  {:<16} {:<10} {:<10}", "TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING");
    for o in ongoing {
        println!(
            "{:<30} {:>9}  {:<16} {:<10} {:<10}",
            o.topic,
            o.partition,
            format!("{:?}", o.replicas),
            format!("{:?}", o.adding),
            format!("{:?}", o.removing)
        );
    }
}

pub fn print_moves(moves: &[Move]) {
    if moves.is_empty() {
        println!("nothing to move");
        return;
    }
    println!("{:<30} {:>9}  {:<16} {:<16}", "TOPIC", "PARTITION", "FROM", "TO");
    for m in moves {
        println!("{:<30} {:>9}  {:<16} {:<16}", m.topic, m.partition, format!("{:?}", m.from), format!("{:?}", m.to));
    }
}

/// Submits the moves (AlterPartitionReassignments, the replication factor kept); every
/// partition's refusal is an error naming it.
pub fn submit(client: &mut Client, moves: &[Move]) -> Result<()> {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for m in moves {
        let partition = ReassignablePartition { partition_index: m.partition, replicas: Some(m.to.clone()) };
        match topics.iter_mut().find(|t| t.name == m.topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(ReassignableTopic { name: m.topic.clone(), partitions: vec![partition] }),
        }
    }
    let request =
        AlterPartitionReassignmentsRequest { timeout_ms: 60_000, allow_replication_factor_change: false, topics };
    let answer = client.call(1, &request)?;
    if answer.error_code != 0 {
        bail!(
            "the reassignment was refused (error {}): {}",
            answer.error_code,
            answer.error_message.unwrap_or_default()
        );
    }
    let refused: Vec<String> = answer
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().filter(|p| p.error_code != 0).map(move |p| {
                format!(
                    "{}-{}: error {} {}",
                    t.name,
                    p.partition_index,
                    p.error_code,
                    p.error_message.as_deref().unwrap_or("")
                )
            })
        })
        .collect();
    if !refused.is_empty() {
        bail!("some moves were refused:\n  {}", refused.join("\n  "));
    }
    Ok(())
}

/// Waits until no reassignment is in progress, printing how many are left when it changes
/// (on stderr, so that `--json` output stays one document).
pub fn wait_moves(client: &mut Client, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = usize::MAX;
    loop {
        let ongoing = reassignments(client)?;
        if ongoing.len() != last {
            eprintln!("reassignments in progress: {}", ongoing.len());
            last = ongoing.len();
        }
        if ongoing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} reassignments still in progress after {} s (they go on; `ringtail cluster reassignments` lists \
                 them, and running this again resumes)",
                ongoing.len(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(POLL);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Election {
    pub topic: String,
    pub partition: i32,
    /// Kafka's error code; 0 when elected.
    pub error_code: i16,
    pub message: Option<String>,
}

/// ElectLeaders for `partitions` (all with `None`): the outcome of each partition named, or
/// for all partitions those that needed an election.
pub fn elect(client: &mut Client, partitions: Option<Vec<(String, i32)>>, unclean: bool) -> Result<Vec<Election>> {
    let topic_partitions = partitions.map(|ps| {
        let mut topics: Vec<ElectTopicPartitions> = Vec::new();
        for (topic, p) in ps {
            match topics.iter_mut().find(|t| t.topic == topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(ElectTopicPartitions { topic, partitions: vec![p] }),
            }
        }
        topics
    });
    let election_type = if unclean { ELECTION_UNCLEAN } else { ELECTION_PREFERRED };
    let answer = client.call(2, &ElectLeadersRequest { election_type, topic_partitions, timeout_ms: 30_000 })?;
    if answer.error_code != 0 {
        bail!("ElectLeaders failed with error {}", answer.error_code);
    }
    Ok(answer
        .replica_election_results
        .into_iter()
        .flat_map(|t| {
            t.partition_result.into_iter().map(move |p| Election {
                topic: t.topic.clone(),
                partition: p.partition_id,
                error_code: p.error_code,
                message: p.error_message,
            })
        })
        .collect())
}

pub fn print_elections(elections: &[Election]) {
    if elections.is_empty() {
        println!("every partition is led by its preferred replica");
    }
    for e in elections {
        match e.error_code {
            0 => println!("{}-{}: elected", e.topic, e.partition),
            ELECTION_NOT_NEEDED => println!("{}-{}: not needed", e.topic, e.partition),
            code => println!("{}-{}: error {code}: {}", e.topic, e.partition, e.message.as_deref().unwrap_or("")),
        }
    }
}

/// Preferred elections for every partition, again while a preferred replica is still joining
/// the ISR; the partitions that could not be given to their preferred replica.
fn elect_preferred(client: &mut Client, timeout: Duration) -> Result<Vec<Election>> {
    let deadline = Instant::now() + timeout;
    loop {
        let failed: Vec<Election> = elect(client, None, false)?
            .into_iter()
            .filter(|e| e.error_code != 0 && e.error_code != ELECTION_NOT_NEEDED)
            .collect();
        let waiting = failed.iter().all(|e| e.error_code == PREFERRED_LEADER_NOT_AVAILABLE);
        if failed.is_empty() || !waiting || Instant::now() > deadline {
            return Ok(failed);
        }
        std::thread::sleep(POLL);
    }
}

#[derive(Debug, Serialize)]
pub struct RebalanceReport {
    pub executed: bool,
    /// The moves planned (and, with `executed`, made), round by round.
    pub moves: Vec<Move>,
    /// Partitions whose preferred leader could not be elected afterwards.
    pub elections_failed: Vec<Election>,
    pub brokers: Vec<BrokerRow>,
}

/// `ringtail cluster rebalance`: prints the plan; with `execute`, first waits for reassignments
/// already under way (a rebalance stopped earlier), then moves, waits, and elects preferred
/// leaders, planning again until nothing is left.
pub fn rebalance(bootstrap: &str, execute: bool, json: bool, timeout: Duration) -> Result<RebalanceReport> {
    let mut client = Client::connect(bootstrap)?;
    let mut all_moves = Vec::new();
    if !execute {
        let described = describe(&mut client)?;
        let moves = plan::rebalance(&described.layout);
        if !json {
            print_moves(&moves);
            if !moves.is_empty() {
                println!("(a plan only: run with --execute to carry it out)");
            }
        }
        return Ok(RebalanceReport {
            executed: false,
            moves,
            elections_failed: Vec::new(),
            brokers: described.brokers,
        });
    }
    let under_way = reassignments(&mut client)?;
    if !under_way.is_empty() {
        eprintln!("{} reassignments are already in progress: waiting for them first", under_way.len());
        wait_moves(&mut client, timeout)?;
    }
    for round in 0..REBALANCE_ROUNDS {
        let described = describe(&mut client)?;
        let moves = plan::rebalance(&described.layout);
        if moves.is_empty() {
            break;
        }
        if !json {
            if round > 0 {
                println!("round {}:", round + 1);
            }
            print_moves(&moves);
        }
        submit(&mut client, &moves)?;
        wait_moves(&mut client, timeout)?;
        all_moves.extend(moves);
    }
    let elections_failed = elect_preferred(&mut client, Duration::from_secs(30))?;
    let brokers = describe(&mut client)?.brokers;
    if !json {
        if !elections_failed.is_empty() {
            print_elections(&elections_failed);
        }
        print_brokers(&brokers);
    }
    Ok(RebalanceReport { executed: true, moves: all_moves, elections_failed, brokers })
}

#[derive(Debug, Serialize)]
pub struct DrainReport {
    pub node_id: i32,
    pub moves: Vec<Move>,
    pub brokers: Vec<BrokerRow>,
}

/// `ringtail cluster drain NODE`: moves every replica (and so every leadership) off the broker
/// and waits until it holds none.
pub fn drain(bootstrap: &str, node: i32, json: bool, timeout: Duration) -> Result<DrainReport> {
    let mut client = Client::connect(bootstrap)?;
    let under_way = reassignments(&mut client)?;
    if !under_way.is_empty() {
        eprintln!("{} reassignments are already in progress: waiting for them first", under_way.len());
        wait_moves(&mut client, timeout)?;
    }
    let described = describe(&mut client)?;
    let moves = plan::drain(&described.layout, node).with_context(|| format!("cannot drain broker {node}"))?;
    if !json {
        print_moves(&moves);
    }
    if !moves.is_empty() {
        submit(&mut client, &moves)?;
        wait_moves(&mut client, timeout)?;
    }
    let described = describe(&mut client)?;
    let left = described.layout.partitions.iter().filter(|p| p.replicas.contains(&node)).count();
    if left > 0 {
        bail!("broker {node} still holds {left} replicas (a partition was created or moved onto it meanwhile): drain again");
    }
    if !json {
        println!(
            "broker {node} holds no replicas and leads nothing: stop it, then `ringtail cluster unregister {node}` removes \
             it from the cluster"
        );
    }
    Ok(DrainReport { node_id: node, moves, brokers: described.brokers })
}

pub fn unregister(bootstrap: &str, node: i32) -> Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let answer = client.call(0, &UnregisterBrokerRequest { broker_id: node })?;
    if answer.error_code != 0 {
        bail!(
            "broker {node} was not unregistered (error {}): {}",
            answer.error_code,
            answer.error_message.unwrap_or_default()
        );
    }
    Ok(())
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum VoterChange {
    /// Makes a running controller a voter once it has caught up with the quorum's log. Start it
    /// first with --process-roles controller (or broker,controller), the cluster's
    /// --controller-quorum-voters and its own --controller-listen.
    Add {
        /// The controller's node id.
        node: i32,
        /// Where the other controllers reach it (host:port of its --controller-listen).
        #[arg(long)]
        controller: String,
    },
    /// Takes a voter out of the quorum (it keeps running outside it; restarted with its old
    /// flags it stays out).
    Remove {
        /// The voter's node id.
        node: i32,
    },
}

#[derive(Debug, Serialize)]
pub struct Voters {
    pub leader: i32,
    pub epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumMember>,
    pub observers: Vec<QuorumMember>,
}

#[derive(Debug, Serialize)]
pub struct QuorumMember {
    pub node_id: i32,
    pub log_end: i64,
}

pub fn voters(bootstrap: &str) -> Result<Voters> {
    let p = describe_quorum(&mut Client::connect(bootstrap)?)?;
    let member = |r: &ringtail_net::client::cluster::ReplicaState| QuorumMember {
        node_id: r.replica_id,
        log_end: r.log_end_offset,
    };
    Ok(Voters {
        leader: p.leader_id,
        epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        voters: p.current_voters.iter().map(member).collect(),
        observers: p.observers.iter().map(member).collect(),
    })
}

pub fn print_voters(v: &Voters) {
    println!("active controller: {}  epoch: {}  high watermark: {}", v.leader, v.epoch, v.high_watermark);
    println!("{:>6}  {:<9} {:>8}", "NODE", "ROLE", "LOG END");
    for (role, members) in [("voter", &v.voters), ("observer", &v.observers)] {
        for m in members.iter() {
            println!("{:>6}  {:<9} {:>8}", m.node_id, role, m.log_end);
        }
    }
}

/// Kafka's REQUEST_TIMED_OUT: a new voter still catching up, or a change not yet committed.
const REQUEST_TIMED_OUT: i16 = 7;
/// Attempts of a voter change that timed out.
const VOTER_CHANGE_ATTEMPTS: usize = 10;

pub fn change_voters(bootstrap: &str, change: VoterChange) -> Result<()> {
    for attempt in 1..=VOTER_CHANGE_ATTEMPTS {
        match change_voters_once(bootstrap, &change) {
            Err(e) if attempt < VOTER_CHANGE_ATTEMPTS && e.downcast_ref::<TimedOut>().is_some() => {
                eprintln!("{e}; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            other => return other,
        }
    }
    unreachable!("the last attempt returns")
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TimedOut(String);

fn change_voters_once(bootstrap: &str, change: &VoterChange) -> Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let (what, answer) = match change.clone() {
        VoterChange::Add { node, controller } => {
            let (host, port) = controller
                .rsplit_once(':')
                .and_then(|(h, p)| {
                    Some((h.trim_start_matches('[').trim_end_matches(']').to_string(), p.parse::<u16>().ok()?))
                })
                .with_context(|| format!("--controller {controller} is not host:port"))?;
            let request = AddRaftVoterRequest {
                cluster_id: None,
                timeout_ms: 60_000,
                voter_id: node,
                voter_directory_id: [0; 16],
                listeners: vec![("CONTROLLER".into(), host, port)],
            };
            (format!("adding voter {node}"), client.call(0, &request)?)
        }
        VoterChange::Remove { node } => {
            let request = RemoveRaftVoterRequest { cluster_id: None, voter_id: node, voter_directory_id: [0; 16] };
            (format!("removing voter {node}"), client.call(0, &request)?)
        }
    };
    match answer.error_code {
        0 => Ok(()),
        REQUEST_TIMED_OUT => Err(TimedOut(format!("{what}: {}", answer.error_message.unwrap_or_default())).into()),
        code => bail!("{what} failed (error {code}): {}", answer.error_message.unwrap_or_default()),
    }
}
