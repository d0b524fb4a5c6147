//! `ringtail group list` and `ringtail group describe GROUP`: consumer groups of a running
//! broker, asked over the Kafka protocol like any client would (blocking I/O: this is a
//! command-line tool, not a shard). Requests are encoded and responses decoded by the client
//! half of `ringtail-net`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use ringtail_net::client::consumer_protocol::ConsumerProtocolAssignment;
use ringtail_net::client::groups::{
    ConsumerGroupDescribeRequest, DescribeGroupsRequest, DescribedTopicPartitions, FindCoordinatorRequest,
    ListGroupsRequest, OffsetFetchRequest, OffsetFetchRequestGroup,
};
use ringtail_net::client::list_offsets::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use ringtail_net::client::{self, ClientRequest};
use ringtail_net::Reader;
use serde::Serialize;

/// Largest response accepted from the broker.
const RESPONSE_BYTES_MAX: usize = 64 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// Lists the consumer groups with their state.
    List {
        /// Broker to ask (host:port).
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows a group's members, their assignments, committed offsets and lag.
    Describe {
        group: String,
        /// Broker to ask (host:port).
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) struct Client {
    address: String,
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    /// Connects to the first broker of `bootstrap` (host:port, or several separated by commas,
    /// as Kafka's tools take them) that answers.
    pub(crate) fn connect(bootstrap: &str) -> Result<Client> {
        let mut last = None;
        for address in bootstrap.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match TcpStream::connect(address) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(IO_TIMEOUT))?;
                    stream.set_write_timeout(Some(IO_TIMEOUT))?;
                    return Ok(Client { address: address.to_string(), stream, correlation_id: 0 });
                }
                Err(e) => {
                    last = Some(anyhow::Error::new(e).context(format!("cannot connect to the broker at {address}")))
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no broker address given (host:port)")))
    }

    pub(crate) fn call<Q: ClientRequest>(&mut self, version: i16, request: &Q) -> Result<Q::Response> {
        let api = Q::API;
        self.correlation_id += 1;
        let frame = client::request_frame(request, version, self.correlation_id, Some("ringtail-group"));
        self.stream.write_all(&frame).with_context(|| format!("sending {api:?} to {}", self.address))?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .with_context(|| format!("reading the {api:?} response from {}", self.address))?;
        let size = u32::from_be_bytes(size) as usize;
        if size > RESPONSE_BYTES_MAX {
            bail!("{api:?} response of {size} bytes is larger than {RESPONSE_BYTES_MAX}");
        }
        let mut buf = vec![0u8; size];
        self.stream.read_exact(&mut buf)?;
        let (correlation_id, response) = client::decode_response::<Q>(Bytes::from(buf), version)
            .with_context(|| format!("decoding the {api:?} v{version} response from {}", self.address))?;
        if correlation_id != self.correlation_id {
            bail!("{api:?} response has correlation id {correlation_id} instead of {}", self.correlation_id);
        }
        Ok(response)
    }
}

#[derive(Debug, Serialize)]
struct ListedGroup {
    group: String,
    state: String,
    protocol_type: String,
    /// "classic" or "consumer" (KIP-848).
    group_type: String,
}

#[derive(Debug, Serialize)]
struct Assigned {
    topic: String,
    partitions: Vec<i32>,
}

#[derive(Debug, Serialize)]
struct MemberView {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    assignment: Vec<Assigned>,
    /// Consumer-protocol groups: the member's epoch and target assignment.
    member_epoch: Option<i32>,
    target_assignment: Option<Vec<Assigned>>,
}

#[derive(Debug, Serialize)]
struct OffsetView {
    topic: String,
    partition: i32,
    /// -1 when the group has not committed this (assigned) partition.
    committed: i64,
    log_end: i64,
    /// `log_end - committed`; null without a committed offset.
    lag: Option<i64>,
    metadata: Option<String>,
    member_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct GroupView {
    group: String,
    /// "classic" or "consumer" (KIP-848).
    group_type: String,
    /// Consumer-protocol groups: the group epoch and the target assignment's epoch.
    group_epoch: Option<i32>,
    assignment_epoch: Option<i32>,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberView>,
    offsets: Vec<OffsetView>,
}

pub fn run(command: GroupCommand) -> Result<()> {
    match command {
        GroupCommand::List { bootstrap, json } => {
            let groups = list(&bootstrap)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&groups)?);
            } else {
                let rows: Vec<Vec<String>> =
                    groups.into_iter().map(|g| vec![g.group, g.group_type, g.state, g.protocol_type]).collect();
                print_table(&["GROUP", "TYPE", "STATE", "PROTOCOL-TYPE"], &rows);
            }
        }
        GroupCommand::Describe { group, bootstrap, json } => {
            let view = describe(&bootstrap, &group)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_group(&view);
            }
        }
    }
    Ok(())
}

fn list(bootstrap: &str) -> Result<Vec<ListedGroup>> {
    let mut client = Client::connect(bootstrap)?;
    let response = client.call(5, &ListGroupsRequest::default())?;
    if response.error_code != 0 {
        bail!("ListGroups failed with Kafka error {}", response.error_code);
    }
    let mut groups: Vec<ListedGroup> = response
        .groups
        .into_iter()
        .map(|g| ListedGroup {
            group: g.group_id,
            state: g.group_state,
            protocol_type: g.protocol_type,
            group_type: g.group_type,
        })
        .collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(groups)
}

/// The coordinator of `group`, as FindCoordinator names it.
fn coordinator(bootstrap: &str, group: &str) -> Result<String> {
    let mut client = Client::connect(bootstrap)?;
    let request = FindCoordinatorRequest { key_type: 0, coordinator_keys: vec![group.to_string()] };
    let response = client.call(3, &request)?;
    let found =
        response.coordinators.into_iter().next().ok_or_else(|| anyhow!("FindCoordinator returned no coordinator"))?;
    if found.error_code != 0 {
        bail!(
            "FindCoordinator for group `{group}` failed with Kafka error {}: {}",
            found.error_code,
            found.error_message.unwrap_or_default()
        );
    }
    Ok(format!("{}:{}", found.host, found.port))
}

/// Topic names and partitions of a ConsumerGroupDescribe assignment.
fn named(topics: Vec<DescribedTopicPartitions>) -> Vec<Assigned> {
    topics.into_iter().map(|t| Assigned { topic: t.topic_name, partitions: t.partitions }).collect()
}

/// The group's kind, state and members: ConsumerGroupDescribe for a consumer-protocol group,
/// DescribeGroups for a classic one.
fn describe_members(client: &mut Client, group: &str) -> Result<(GroupView, Vec<MemberView>)> {
    let request =
        ConsumerGroupDescribeRequest { group_ids: vec![group.to_string()], include_authorized_operations: false };
    let response = client.call(1, &request)?;
    let found = response.groups.into_iter().next().ok_or_else(|| anyhow!("ConsumerGroupDescribe returned no group"))?;
    if found.error_code == 0 {
        let view = GroupView {
            group: group.to_string(),
            group_type: "consumer".into(),
            group_epoch: Some(found.group_epoch),
            assignment_epoch: Some(found.assignment_epoch),
            state: found.group_state,
            protocol_type: "consumer".into(),
            protocol: found.assignor_name,
            members: Vec::new(),
            offsets: Vec::new(),
        };
        let members = found
            .members
            .into_iter()
            .map(|m| MemberView {
                member_id: m.member_id,
                group_instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                assignment: named(m.assignment),
                member_epoch: Some(m.member_epoch),
                target_assignment: Some(named(m.target_assignment)),
            })
            .collect();
        return Ok((view, members));
    }
    // GROUP_ID_NOT_FOUND: a classic group, or none.
    if found.error_code != 69 {
        bail!(
            "ConsumerGroupDescribe for `{group}` failed with Kafka error {}: {}",
            found.error_code,
            found.error_message.unwrap_or_default()
        );
    }
    let request = DescribeGroupsRequest { groups: vec![group.to_string()], include_authorized_operations: false };
    let response = client.call(5, &request)?;
    let described = response.groups.into_iter().next().ok_or_else(|| anyhow!("DescribeGroups returned no group"))?;
    if described.error_code != 0 {
        bail!("DescribeGroups for `{group}` failed with Kafka error {}", described.error_code);
    }
    let view = GroupView {
        group: group.to_string(),
        group_type: "classic".into(),
        group_epoch: None,
        assignment_epoch: None,
        state: described.group_state,
        protocol_type: described.protocol_type,
        protocol: described.protocol_data,
        members: Vec::new(),
        offsets: Vec::new(),
    };
    let members = described
        .members
        .into_iter()
        .map(|m| MemberView {
            member_id: m.member_id,
            group_instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            assignment: parse_assignment(m.member_assignment),
            member_epoch: None,
            target_assignment: None,
        })
        .collect();
    Ok((view, members))
}

fn describe(bootstrap: &str, group: &str) -> Result<GroupView> {
    let mut client = Client::connect(&coordinator(bootstrap, group)?)?;
    let (mut view, members) = describe_members(&mut client, group)?;
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &members {
        for a in &m.assignment {
            for p in &a.partitions {
                owner.insert((a.topic.clone(), *p), m.member_id.clone());
            }
        }
    }
    let request = OffsetFetchRequest {
        groups: vec![OffsetFetchRequestGroup {
            group_id: group.to_string(),
            member_id: None,
            member_epoch: -1,
            topics: None,
        }],
        require_stable: false,
    };
    let fetched = client.call(7, &request)?;
    let fetched = fetched.groups.into_iter().next().ok_or_else(|| anyhow!("OffsetFetch returned no group"))?;
    if fetched.error_code != 0 {
        bail!("OffsetFetch for `{group}` failed with Kafka error {}", fetched.error_code);
    }
    let mut committed: BTreeMap<(String, i32), (i64, Option<String>)> = BTreeMap::new();
    for t in fetched.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                committed.insert((t.name.clone(), p.partition_index), (p.committed_offset, p.metadata));
            }
        }
    }
    let mut partitions: Vec<(String, i32)> = committed.keys().cloned().collect();
    partitions.extend(owner.keys().cloned());
    partitions.sort();
    partitions.dedup();
    // A single node leads every partition: the log ends come from the bootstrap broker.
    let log_ends = log_ends(bootstrap, &partitions)?;
    let offsets = partitions
        .into_iter()
        .map(|tp| {
            let (offset, metadata) = committed.get(&tp).cloned().unwrap_or((-1, None));
            let log_end = log_ends.get(&tp).copied().unwrap_or(-1);
            OffsetView {
                lag: (offset >= 0 && log_end >= 0).then(|| (log_end - offset).max(0)),
                member_id: owner.get(&tp).cloned(),
                topic: tp.0,
                partition: tp.1,
                committed: offset,
                log_end,
                metadata,
            }
        })
        .collect();
    view.members = members;
    view.offsets = offsets;
    Ok(view)
}

/// The high watermark of each partition (ListOffsets, latest).
fn log_ends(bootstrap: &str, partitions: &[(String, i32)]) -> Result<BTreeMap<(String, i32), i64>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let topics = by_topic
        .into_iter()
        .map(|(t, ps)| ListOffsetsTopic {
            name: t.to_string(),
            partitions: ps
                .into_iter()
                .map(|p| ListOffsetsPartition { partition_index: p, current_leader_epoch: -1, timestamp: -1 })
                .collect(),
        })
        .collect();
    let request = ListOffsetsRequest { replica_id: -1, isolation_level: 0, topics, timeout_ms: 0 };
    let mut client = Client::connect(bootstrap)?;
    let response = client.call(6, &request)?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code == 0 {
                out.insert((t.name.clone(), p.partition_index), p.offset);
            }
        }
    }
    Ok(out)
}

/// A consumer-protocol assignment (version, then topics with partitions); empty if the group
/// uses another protocol.
fn parse_assignment(bytes: Bytes) -> Vec<Assigned> {
    match ConsumerProtocolAssignment::decode(&mut Reader::new(bytes)) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .map(|tp| Assigned { topic: tp.topic, partitions: tp.partitions })
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn print_group(view: &GroupView) {
    if view.state == "Dead" && view.members.is_empty() && view.offsets.is_empty() {
        println!("group {} does not exist (no members, no committed offsets)", view.group);
        return;
    }
    match (view.group_epoch, view.assignment_epoch) {
        (Some(epoch), Some(assignment_epoch)) => println!(
            "group {}: {} (consumer protocol, {} members, group epoch {epoch}, assignment epoch {assignment_epoch}, \
             assignor `{}`)",
            view.group,
            view.state,
            view.members.len(),
            view.protocol
        ),
        _ => println!(
            "group {}: {} (classic protocol, {} members, protocol type `{}`, assignor `{}`)",
            view.group,
            view.state,
            view.members.len(),
            view.protocol_type,
            view.protocol
        ),
    }
    if !view.members.is_empty() {
        println!();
        let text =
            |a: &[Assigned]| a.iter().map(|a| format!("{}:{:?}", a.topic, a.partitions)).collect::<Vec<_>>().join(" ");
        let rows: Vec<Vec<String>> = view
            .members
            .iter()
            .map(|m| {
                let mut row = vec![
                    m.member_id.clone(),
                    m.group_instance_id.clone().unwrap_or_else(|| "-".into()),
                    m.client_id.clone(),
                    m.client_host.clone(),
                ];
                if let Some(epoch) = m.member_epoch {
                    row.push(epoch.to_string());
                }
                row.push(text(&m.assignment));
                if let Some(target) = &m.target_assignment {
                    row.push(text(target));
                }
                row
            })
            .collect();
        if view.group_epoch.is_some() {
            print_table(&["MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "EPOCH", "ASSIGNMENT", "TARGET"], &rows);
        } else {
            print_table(&["MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"], &rows);
        }
    }
    if !view.offsets.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = view
            .offsets
            .iter()
            .map(|o| {
                vec![
                    o.topic.clone(),
                    o.partition.to_string(),
                    if o.committed < 0 { "-".into() } else { o.committed.to_string() },
                    o.log_end.to_string(),
                    o.lag.map_or_else(|| "-".into(), |l| l.to_string()),
                    o.member_id.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        print_table(&["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "MEMBER-ID"], &rows);
    }
}
