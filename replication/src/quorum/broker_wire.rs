//! The brokers' RPC frames on the controller listener: a metadata change proposed to the
//! active controller, a broker's heartbeat (which registers it too), and a fetch of the
//! committed metadata from any controller. Same framing as the quorum's own frames (`wire.rs`:
//! version u8, kind u8, body) with kinds from 16 up, so one listener serves both; same rules:
//! every decoder bounded and total.
//!
//! **A proposal carries the metadata offset it was decided at** (`expected`: the last offset of
//! the image the broker decided on, or none for an empty image). The active controller appends
//! it only if its own image is at exactly that offset once everything committed before is
//! applied, so a change decided on a stale image is never written: the broker catches up and
//! decides again. Decisions stay the pure functions over an image they were on a single node.

use bytes::Bytes;

use super::codec::{self, DecodeError, Reader};
use super::limits::{RECORDS_PER_BATCH_MAX, RPC_FRAME_BYTES_MAX, SNAPSHOT_BYTES_MAX};
use crate::ids::NodeId;
use crate::ids::{LeaderEpoch, PartitionId, TopicId};
use crate::limits::{LISTENERS_PER_BROKER_MAX, OFFLINE_REPLICAS_PER_BROKER_MAX, RECORD_BYTES_MAX};
use crate::metadata::isr::{IsrDecided, IsrProposal, IsrRefusal};
use crate::metadata::{Endpoint, MetadataRecord};

const VERSION: u8 = 1;
/// The first kind of a broker frame; the quorum's own kinds are below it.
pub const FIRST_KIND: u8 = 16;
const KIND_PROPOSE: u8 = 16;
const KIND_HEARTBEAT: u8 = 17;
const KIND_FETCH: u8 = 18;
const KIND_DESCRIBE: u8 = 19;
const KIND_ALTER_PARTITION: u8 = 20;
const KIND_ADD_VOTER: u8 = 21;
const KIND_REMOVE_VOTER: u8 = 22;
const KIND_VOTER_REFUSED: u8 = 36;
const KIND_NOT_LEADER: u8 = 32;
const KIND_STALE: u8 = 33;
const KIND_REFUSED: u8 = 34;
const KIND_UNAVAILABLE: u8 = 35;
/// Messages are cut to this many bytes.
const MESSAGE_BYTES_MAX: usize = 1024;

const FETCH_UP_TO_DATE: u8 = 0;
const FETCH_RECORDS: u8 = 1;
const FETCH_IMAGE: u8 = 2;

/// A broker's heartbeat: who it is (registering it when the controller does not know this
/// process yet), how far it has applied the metadata, and whether it is shutting down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub node: NodeId,
    /// Random per process start: a new incarnation is a new registration.
    pub incarnation: [u8; 16],
    pub listeners: Vec<Endpoint>,
    pub rack: Option<String>,
    /// The last metadata offset the broker has applied.
    pub applied: Option<u64>,
    pub shutting_down: bool,
    /// The cluster id the broker's data directory records, if any: the controllers refuse a
    /// broker of another cluster.
    pub cluster_id: Option<String>,
    /// Its replicas whose storage failed (at most `OFFLINE_REPLICAS_PER_BROKER_MAX`), so that
    /// they leave their ISRs and lead nothing until rebuilt.
    pub offline: Vec<PartitionId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerRequest {
    Propose {
        expected: Option<u64>,
        records: Vec<MetadataRecord>,
    },
    Heartbeat(Heartbeat),
    /// The committed metadata from offset `from` on, waiting up to `wait_ms` for some.
    Fetch {
        from: u64,
        wait_ms: u32,
    },
    /// The quorum as this controller sees it (DescribeQuorum).
    Describe,
    /// A leader's proposed ISRs (Kafka's AlterPartition), decided by the active controller.
    AlterPartition {
        node: NodeId,
        broker_epoch: i64,
        proposals: Vec<IsrProposal>,
    },
    /// KIP-853's AddRaftVoter: the controller `id`, reached at `address`, joins the voters once
    /// it has caught up with the quorum's log.
    AddVoter {
        id: u64,
        address: String,
    },
    /// KIP-853's RemoveRaftVoter.
    RemoveVoter {
        id: u64,
    },
}

/// A controller, as a hint of where the active one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHint {
    pub id: u64,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchBody {
    /// Nothing after `from` is committed yet.
    UpToDate,
    /// Records from offset `first`, in order.
    Records { first: u64, records: Vec<MetadataRecord> },
    /// `from` is behind what this controller keeps: its whole image, as a metadata checkpoint.
    Image(Bytes),
}

/// One voter's or learner's progress, as the active controller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    pub id: u64,
    /// The last log index it holds (the leader's own, or what it has acknowledged).
    pub log_end: Option<u64>,
    /// Milliseconds since it was last heard from (the leader: 0); `None` if never.
    pub last_heard_ms: Option<u64>,
    pub voter: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumState {
    pub leader: Option<u64>,
    pub term: u64,
    /// The highest committed log index.
    pub committed: Option<u64>,
    /// The last applied metadata offset.
    pub metadata_offset: Option<u64>,
    pub replicas: Vec<ReplicaState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerResponse {
    /// The change is committed: its records have offsets `first..=last`.
    Proposed {
        first: u64,
        last: u64,
    },
    Heartbeat {
        broker_epoch: i64,
        fenced: bool,
    },
    Fetched {
        leader: Option<LeaderHint>,
        applied: Option<u64>,
        body: FetchBody,
    },
    Described(QuorumState),
    /// Each proposal's outcome, in the request's order.
    PartitionsAltered(Vec<Result<IsrDecided, IsrRefusal>>),
    /// This controller is not the active one; the hint names it when known.
    NotLeader(Option<LeaderHint>),
    /// The proposal was decided at another offset than the controller's: catch up to `applied`
    /// and decide again.
    Stale {
        applied: Option<u64>,
    },
    /// Refused for good (the request is wrong, or the broker may not do this).
    Refused(String),
    /// A voter change refused with Kafka's error code (DUPLICATE_VOTER, VOTER_NOT_FOUND, ...).
    VoterRefused {
        code: i16,
        message: String,
    },
    /// Not possible now (no majority, a write timed out): retriable.
    Unavailable(String),
}

fn put_optional_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.push(1);
            codec::put_u64(out, v);
        }
        None => out.push(0),
    }
}

fn optional_u64(r: &mut Reader<'_>) -> Result<Option<u64>, DecodeError> {
    Ok(match r.bool()? {
        true => Some(r.u64()?),
        false => None,
    })
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(MESSAGE_BYTES_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    codec::put_bytes(out, &s.as_bytes()[..end]);
}

fn string(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let bytes = r.bytes(MESSAGE_BYTES_MAX)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("a string is not UTF-8".into()))
}

fn put_optional_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

fn optional_string(r: &mut Reader<'_>) -> Result<Option<String>, DecodeError> {
    Ok(match r.bool()? {
        true => Some(string(r)?),
        false => None,
    })
}

fn put_records(out: &mut Vec<u8>, records: &[MetadataRecord]) {
    codec::put_u32(out, records.len() as u32);
    let mut body = Vec::new();
    for record in records {
        body.clear();
        record.encode(&mut body);
        codec::put_bytes(out, &body);
    }
}

fn records(r: &mut Reader<'_>) -> Result<Vec<MetadataRecord>, DecodeError> {
    // A record is at least a length and a kind.
    let n = r.count(RECORDS_PER_BATCH_MAX, 4 + 1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let body = r.bytes(RECORD_BYTES_MAX)?;
        out.push(MetadataRecord::decode(body).map_err(|e| DecodeError(e.0))?);
    }
    Ok(out)
}

fn put_hint(out: &mut Vec<u8>, hint: Option<&LeaderHint>) {
    match hint {
        Some(h) => {
            out.push(1);
            codec::put_u64(out, h.id);
            put_str(out, &h.address);
        }
        None => out.push(0),
    }
}

fn hint(r: &mut Reader<'_>) -> Result<Option<LeaderHint>, DecodeError> {
    Ok(match r.bool()? {
        true => Some(LeaderHint { id: r.u64()?, address: string(r)? }),
        false => None,
    })
}

/// True when a frame is a broker frame (else the quorum's own).
pub fn is_broker_frame(frame: &[u8]) -> bool {
    frame.len() >= 2 && frame[1] >= FIRST_KIND
}

pub fn encode_request(request: &BrokerRequest) -> Vec<u8> {
    let mut out = vec![VERSION];
    match request {
        BrokerRequest::Propose { expected, records } => {
            out.push(KIND_PROPOSE);
            put_optional_u64(&mut out, *expected);
            put_records(&mut out, records);
        }
        BrokerRequest::Heartbeat(h) => {
            out.push(KIND_HEARTBEAT);
            out.extend_from_slice(&h.node.0.to_be_bytes());
            out.extend_from_slice(&h.incarnation);
            codec::put_u32(&mut out, h.listeners.len() as u32);
            for l in &h.listeners {
                put_str(&mut out, &l.name);
                put_str(&mut out, &l.host);
                out.extend_from_slice(&l.port.to_be_bytes());
            }
            put_optional_str(&mut out, h.rack.as_deref());
            put_optional_u64(&mut out, h.applied);
            out.push(u8::from(h.shutting_down));
            put_optional_str(&mut out, h.cluster_id.as_deref());
            codec::put_u32(&mut out, h.offline.len() as u32);
            for p in &h.offline {
                put_partition(&mut out, *p);
            }
        }
        BrokerRequest::Fetch { from, wait_ms } => {
            out.push(KIND_FETCH);
            codec::put_u64(&mut out, *from);
            codec::put_u32(&mut out, *wait_ms);
        }
        BrokerRequest::Describe => out.push(KIND_DESCRIBE),
        BrokerRequest::AlterPartition { node, broker_epoch, proposals } => {
            out.push(KIND_ALTER_PARTITION);
            out.extend_from_slice(&node.0.to_be_bytes());
            codec::put_u64(&mut out, *broker_epoch as u64);
            codec::put_u32(&mut out, proposals.len() as u32);
            for p in proposals {
                put_partition(&mut out, p.partition);
                out.extend_from_slice(&p.leader_epoch.0.to_be_bytes());
                out.extend_from_slice(&p.partition_epoch.to_be_bytes());
                put_nodes(&mut out, &p.isr);
            }
        }
        BrokerRequest::AddVoter { id, address } => {
            out.push(KIND_ADD_VOTER);
            codec::put_u64(&mut out, *id);
            put_str(&mut out, address);
        }
        BrokerRequest::RemoveVoter { id } => {
            out.push(KIND_REMOVE_VOTER);
            codec::put_u64(&mut out, *id);
        }
    }
    out
}

/// Partitions one AlterPartition names at most.
const ISR_PROPOSALS_MAX: usize = 65_536;
/// Nodes an ISR names at most.
const ISR_NODES_MAX: usize = 1024;

fn put_partition(out: &mut Vec<u8>, p: PartitionId) {
    out.extend_from_slice(&p.topic.0);
    out.extend_from_slice(&p.index.to_be_bytes());
}

fn partition(r: &mut Reader<'_>) -> Result<PartitionId, DecodeError> {
    let topic: [u8; 16] = r.take(16)?.try_into().expect("16 bytes");
    Ok(PartitionId { topic: TopicId(topic), index: r.u32()? as i32 })
}

fn put_nodes(out: &mut Vec<u8>, nodes: &[NodeId]) {
    codec::put_u32(out, nodes.len() as u32);
    for n in nodes {
        out.extend_from_slice(&n.0.to_be_bytes());
    }
}

fn nodes(r: &mut Reader<'_>) -> Result<Vec<NodeId>, DecodeError> {
    let n = r.count(ISR_NODES_MAX, 4)?;
    (0..n).map(|_| Ok(NodeId(r.u32()? as i32))).collect()
}

const REFUSAL_UNKNOWN: u8 = 1;
const REFUSAL_NOT_LEADER: u8 = 2;
const REFUSAL_FENCED_EPOCH: u8 = 3;
const REFUSAL_UPDATE_VERSION: u8 = 4;
const REFUSAL_INELIGIBLE: u8 = 5;
const REFUSAL_INVALID: u8 = 6;
const REFUSAL_STALE_BROKER: u8 = 7;

fn put_isr_outcome(out: &mut Vec<u8>, outcome: &Result<IsrDecided, IsrRefusal>) {
    match outcome {
        Ok(d) => {
            out.push(0);
            out.extend_from_slice(&d.leader_epoch.0.to_be_bytes());
            out.extend_from_slice(&d.partition_epoch.to_be_bytes());
            put_nodes(out, &d.isr);
        }
        Err(IsrRefusal::UnknownPartition) => out.push(REFUSAL_UNKNOWN),
        Err(IsrRefusal::NotLeader) => out.push(REFUSAL_NOT_LEADER),
        Err(IsrRefusal::FencedLeaderEpoch { sent, current }) => {
            out.push(REFUSAL_FENCED_EPOCH);
            out.extend_from_slice(&sent.to_be_bytes());
            out.extend_from_slice(&current.to_be_bytes());
        }
        Err(IsrRefusal::InvalidUpdateVersion { sent, current }) => {
            out.push(REFUSAL_UPDATE_VERSION);
            out.extend_from_slice(&sent.to_be_bytes());
            out.extend_from_slice(&current.to_be_bytes());
        }
        Err(IsrRefusal::IneligibleReplica(n)) => {
            out.push(REFUSAL_INELIGIBLE);
            out.extend_from_slice(&n.0.to_be_bytes());
        }
        Err(IsrRefusal::Invalid(m)) => {
            out.push(REFUSAL_INVALID);
            put_str(out, m);
        }
        Err(IsrRefusal::StaleBrokerEpoch { sent, current }) => {
            out.push(REFUSAL_STALE_BROKER);
            codec::put_u64(out, *sent as u64);
            put_optional_u64(out, current.map(|c| c as u64));
        }
    }
}

fn isr_outcome(r: &mut Reader<'_>) -> Result<Result<IsrDecided, IsrRefusal>, DecodeError> {
    let i32_of = |r: &mut Reader<'_>| -> Result<i32, DecodeError> { Ok(r.u32()? as i32) };
    Ok(match r.u8()? {
        0 => Ok(IsrDecided { leader_epoch: LeaderEpoch(i32_of(r)?), partition_epoch: i32_of(r)?, isr: nodes(r)? }),
        REFUSAL_UNKNOWN => Err(IsrRefusal::UnknownPartition),
        REFUSAL_NOT_LEADER => Err(IsrRefusal::NotLeader),
        REFUSAL_FENCED_EPOCH => Err(IsrRefusal::FencedLeaderEpoch { sent: i32_of(r)?, current: i32_of(r)? }),
        REFUSAL_UPDATE_VERSION => Err(IsrRefusal::InvalidUpdateVersion { sent: i32_of(r)?, current: i32_of(r)? }),
        REFUSAL_INELIGIBLE => Err(IsrRefusal::IneligibleReplica(NodeId(i32_of(r)?))),
        REFUSAL_INVALID => Err(IsrRefusal::Invalid(string(r)?)),
        REFUSAL_STALE_BROKER => {
            Err(IsrRefusal::StaleBrokerEpoch { sent: r.u64()? as i64, current: optional_u64(r)?.map(|c| c as i64) })
        }
        other => return Err(DecodeError(format!("AlterPartition outcome kind {other}"))),
    })
}

fn header(r: &mut Reader<'_>, frame: &[u8]) -> Result<u8, DecodeError> {
    if frame.len() > RPC_FRAME_BYTES_MAX {
        return Err(DecodeError(format!("a frame of {} bytes; at most {RPC_FRAME_BYTES_MAX}", frame.len())));
    }
    match r.u8()? {
        VERSION => r.u8(),
        other => Err(DecodeError(format!("frame version {other}; this build speaks {VERSION}"))),
    }
}

pub fn decode_request(frame: &[u8]) -> Result<BrokerRequest, DecodeError> {
    let mut r = Reader::new(frame);
    let request = match header(&mut r, frame)? {
        KIND_PROPOSE => BrokerRequest::Propose { expected: optional_u64(&mut r)?, records: records(&mut r)? },
        KIND_HEARTBEAT => {
            let node = NodeId(r.u32()? as i32);
            let incarnation: [u8; 16] = r.take(16)?.try_into().expect("16 bytes");
            // A listener is at least two lengths and a port.
            let n = r.count(LISTENERS_PER_BROKER_MAX, 4 + 4 + 2)?;
            let mut listeners = Vec::with_capacity(n);
            for _ in 0..n {
                let name = string(&mut r)?;
                let host = string(&mut r)?;
                let port = r.u16()?;
                listeners.push(Endpoint { name, host, port });
            }
            let rack = optional_string(&mut r)?;
            let applied = optional_u64(&mut r)?;
            let shutting_down = r.bool()?;
            let cluster_id = optional_string(&mut r)?;
            let n = r.count(OFFLINE_REPLICAS_PER_BROKER_MAX, 20)?;
            let mut offline = Vec::with_capacity(n);
            for _ in 0..n {
                offline.push(partition(&mut r)?);
            }
            BrokerRequest::Heartbeat(Heartbeat {
                node,
                incarnation,
                listeners,
                rack,
                applied,
                shutting_down,
                cluster_id,
                offline,
            })
        }
        KIND_FETCH => BrokerRequest::Fetch { from: r.u64()?, wait_ms: r.u32()? },
        KIND_DESCRIBE => BrokerRequest::Describe,
        KIND_ALTER_PARTITION => {
            let node = NodeId(r.u32()? as i32);
            let broker_epoch = r.u64()? as i64;
            // A proposal is at least a partition, two epochs and a count.
            let n = r.count(ISR_PROPOSALS_MAX, 20 + 4 + 4 + 4)?;
            let mut proposals = Vec::with_capacity(n);
            for _ in 0..n {
                proposals.push(IsrProposal {
                    partition: partition(&mut r)?,
                    leader_epoch: LeaderEpoch(r.u32()? as i32),
                    partition_epoch: r.u32()? as i32,
                    isr: nodes(&mut r)?,
                });
            }
            BrokerRequest::AlterPartition { node, broker_epoch, proposals }
        }
        KIND_ADD_VOTER => BrokerRequest::AddVoter { id: r.u64()?, address: string(&mut r)? },
        KIND_REMOVE_VOTER => BrokerRequest::RemoveVoter { id: r.u64()? },
        other => return Err(DecodeError(format!("broker request kind {other}"))),
    };
    r.finish()?;
    Ok(request)
}

pub fn encode_response(response: &BrokerResponse) -> Vec<u8> {
    let mut out = vec![VERSION];
    match response {
        BrokerResponse::Proposed { first, last } => {
            out.push(KIND_PROPOSE);
            codec::put_u64(&mut out, *first);
            codec::put_u64(&mut out, *last);
        }
        BrokerResponse::Heartbeat { broker_epoch, fenced } => {
            out.push(KIND_HEARTBEAT);
            codec::put_u64(&mut out, *broker_epoch as u64);
            out.push(u8::from(*fenced));
        }
        BrokerResponse::Fetched { leader, applied, body } => {
            out.push(KIND_FETCH);
            put_hint(&mut out, leader.as_ref());
            put_optional_u64(&mut out, *applied);
            match body {
                FetchBody::UpToDate => out.push(FETCH_UP_TO_DATE),
                FetchBody::Records { first, records } => {
                    out.push(FETCH_RECORDS);
                    codec::put_u64(&mut out, *first);
                    put_records(&mut out, records);
                }
                FetchBody::Image(bytes) => {
                    out.push(FETCH_IMAGE);
                    codec::put_bytes(&mut out, bytes);
                }
            }
        }
        BrokerResponse::Described(q) => {
            out.push(KIND_DESCRIBE);
            put_optional_u64(&mut out, q.leader);
            codec::put_u64(&mut out, q.term);
            put_optional_u64(&mut out, q.committed);
            put_optional_u64(&mut out, q.metadata_offset);
            codec::put_u32(&mut out, q.replicas.len() as u32);
            for s in &q.replicas {
                codec::put_u64(&mut out, s.id);
                put_optional_u64(&mut out, s.log_end);
                put_optional_u64(&mut out, s.last_heard_ms);
                out.push(u8::from(s.voter));
            }
        }
        BrokerResponse::PartitionsAltered(outcomes) => {
            out.push(KIND_ALTER_PARTITION);
            codec::put_u32(&mut out, outcomes.len() as u32);
            for o in outcomes {
                put_isr_outcome(&mut out, o);
            }
        }
        BrokerResponse::NotLeader(h) => {
            out.push(KIND_NOT_LEADER);
            put_hint(&mut out, h.as_ref());
        }
        BrokerResponse::Stale { applied } => {
            out.push(KIND_STALE);
            put_optional_u64(&mut out, *applied);
        }
        BrokerResponse::Refused(m) => {
            out.push(KIND_REFUSED);
            put_str(&mut out, m);
        }
        BrokerResponse::Unavailable(m) => {
            out.push(KIND_UNAVAILABLE);
            put_str(&mut out, m);
        }
        BrokerResponse::VoterRefused { code, message } => {
            out.push(KIND_VOTER_REFUSED);
            out.extend_from_slice(&code.to_be_bytes());
            put_str(&mut out, message);
        }
    }
    out
}

/// Replicas a quorum description lists: voters and learners.
const REPLICAS_MAX: usize = 1024;

pub fn decode_response(frame: &[u8]) -> Result<BrokerResponse, DecodeError> {
    let mut r = Reader::new(frame);
    let response = match header(&mut r, frame)? {
        KIND_PROPOSE => BrokerResponse::Proposed { first: r.u64()?, last: r.u64()? },
        KIND_HEARTBEAT => BrokerResponse::Heartbeat { broker_epoch: r.u64()? as i64, fenced: r.bool()? },
        KIND_FETCH => {
            let leader = hint(&mut r)?;
            let applied = optional_u64(&mut r)?;
            let body = match r.u8()? {
                FETCH_UP_TO_DATE => FetchBody::UpToDate,
                FETCH_RECORDS => FetchBody::Records { first: r.u64()?, records: records(&mut r)? },
                FETCH_IMAGE => FetchBody::Image(Bytes::copy_from_slice(r.bytes(SNAPSHOT_BYTES_MAX)?)),
                other => return Err(DecodeError(format!("fetch body kind {other}"))),
            };
            BrokerResponse::Fetched { leader, applied, body }
        }
        KIND_DESCRIBE => {
            let leader = optional_u64(&mut r)?;
            let term = r.u64()?;
            let committed = optional_u64(&mut r)?;
            let metadata_offset = optional_u64(&mut r)?;
            let n = r.count(REPLICAS_MAX, 8 + 1 + 1 + 1)?;
            let mut replicas = Vec::with_capacity(n);
            for _ in 0..n {
                replicas.push(ReplicaState {
                    id: r.u64()?,
                    log_end: optional_u64(&mut r)?,
                    last_heard_ms: optional_u64(&mut r)?,
                    voter: r.bool()?,
                });
            }
            BrokerResponse::Described(QuorumState { leader, term, committed, metadata_offset, replicas })
        }
        KIND_ALTER_PARTITION => {
            let n = r.count(ISR_PROPOSALS_MAX, 1)?;
            let mut outcomes = Vec::with_capacity(n);
            for _ in 0..n {
                outcomes.push(isr_outcome(&mut r)?);
            }
            BrokerResponse::PartitionsAltered(outcomes)
        }
        KIND_NOT_LEADER => BrokerResponse::NotLeader(hint(&mut r)?),
        KIND_STALE => BrokerResponse::Stale { applied: optional_u64(&mut r)? },
        KIND_REFUSED => BrokerResponse::Refused(string(&mut r)?),
        KIND_UNAVAILABLE => BrokerResponse::Unavailable(string(&mut r)?),
        KIND_VOTER_REFUSED => BrokerResponse::VoterRefused { code: r.u16()? as i16, message: string(&mut r)? },
        other => return Err(DecodeError(format!("broker response kind {other}"))),
    };
    r.finish()?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<MetadataRecord> {
        vec![
            MetadataRecord::TopicCreated {
                topic_id: TopicId([3; 16]),
                name: "t".into(),
                configs: vec![("retention.ms".into(), "1".into())],
            },
            MetadataRecord::PartitionChanged {
                partition: PartitionId { topic: TopicId([3; 16]), index: 2 },
                isr: vec![NodeId(1)],
                leader: Some(NodeId(1)),
                leader_epoch: crate::ids::LeaderEpoch(4),
                partition_epoch: 9,
            },
        ]
    }

    pub(crate) fn requests() -> Vec<BrokerRequest> {
        vec![
            BrokerRequest::Propose { expected: Some(41), records: records() },
            BrokerRequest::Propose { expected: None, records: Vec::new() },
            BrokerRequest::Heartbeat(Heartbeat {
                node: NodeId(3),
                incarnation: [7; 16],
                listeners: vec![Endpoint { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 }],
                rack: Some("r1".into()),
                applied: Some(12),
                shutting_down: true,
                cluster_id: Some("c1".into()),
                offline: vec![PartitionId { topic: TopicId([5; 16]), index: 2 }],
            }),
            BrokerRequest::Fetch { from: 17, wait_ms: 500 },
            BrokerRequest::Describe,
            BrokerRequest::AlterPartition {
                node: NodeId(2),
                broker_epoch: 77,
                proposals: vec![IsrProposal {
                    partition: PartitionId { topic: TopicId([5; 16]), index: 3 },
                    leader_epoch: LeaderEpoch(6),
                    partition_epoch: 11,
                    isr: vec![NodeId(2), NodeId(1)],
                }],
            },
            BrokerRequest::AddVoter { id: 4, address: "127.0.0.1:9493".into() },
            BrokerRequest::RemoveVoter { id: 3 },
        ]
    }

    pub(crate) fn responses() -> Vec<BrokerResponse> {
        let hint = Some(LeaderHint { id: 2, address: "127.0.0.1:9093".into() });
        vec![
            BrokerResponse::Proposed { first: 4, last: 9 },
            BrokerResponse::PartitionsAltered(vec![
                Ok(IsrDecided { leader_epoch: LeaderEpoch(6), partition_epoch: 12, isr: vec![NodeId(1), NodeId(2)] }),
                Err(IsrRefusal::UnknownPartition),
                Err(IsrRefusal::NotLeader),
                Err(IsrRefusal::FencedLeaderEpoch { sent: 1, current: 2 }),
                Err(IsrRefusal::InvalidUpdateVersion { sent: 3, current: 4 }),
                Err(IsrRefusal::IneligibleReplica(NodeId(9))),
                Err(IsrRefusal::Invalid("twice".into())),
                Err(IsrRefusal::StaleBrokerEpoch { sent: 5, current: None }),
                Err(IsrRefusal::StaleBrokerEpoch { sent: 5, current: Some(8) }),
            ]),
            BrokerResponse::Heartbeat { broker_epoch: 33, fenced: false },
            BrokerResponse::Fetched { leader: hint.clone(), applied: Some(9), body: FetchBody::UpToDate },
            BrokerResponse::Fetched {
                leader: None,
                applied: None,
                body: FetchBody::Records { first: 3, records: records() },
            },
            BrokerResponse::Fetched {
                leader: None,
                applied: Some(1),
                body: FetchBody::Image(Bytes::from_static(b"img")),
            },
            BrokerResponse::Described(QuorumState {
                leader: Some(1),
                term: 4,
                committed: Some(30),
                metadata_offset: Some(28),
                replicas: vec![
                    ReplicaState { id: 1, log_end: Some(30), last_heard_ms: Some(0), voter: true },
                    ReplicaState { id: 2, log_end: None, last_heard_ms: None, voter: false },
                ],
            }),
            BrokerResponse::NotLeader(hint),
            BrokerResponse::NotLeader(None),
            BrokerResponse::Stale { applied: Some(5) },
            BrokerResponse::Refused("no".into()),
            BrokerResponse::Unavailable("no majority".into()),
            BrokerResponse::VoterRefused { code: 126, message: "4 votes already".into() },
        ]
    }

    #[test]
    fn every_frame_round_trips_and_every_cut_is_refused() {
        for request in requests() {
            let frame = encode_request(&request);
            assert!(is_broker_frame(&frame));
            assert_eq!(decode_request(&frame).unwrap(), request);
            for cut in 0..frame.len() {
                assert!(decode_request(&frame[..cut]).is_err(), "{request:?} cut at {cut}");
            }
            let mut longer = frame.clone();
            longer.push(0);
            assert!(decode_request(&longer).is_err());
        }
        for response in responses() {
            let frame = encode_response(&response);
            assert_eq!(decode_response(&frame).unwrap(), response);
            for cut in 0..frame.len() {
                assert!(decode_response(&frame[..cut]).is_err(), "{response:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn hostile_frames_never_panic() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let frames: Vec<Vec<u8>> =
            requests().iter().map(encode_request).chain(responses().iter().map(encode_response)).collect();
        for _ in 0..20_000 {
            let mut frame = frames[(next() % frames.len() as u64) as usize].clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % frame.len() as u64) as usize;
                frame[at] = next() as u8;
            }
            let _ = decode_request(&frame);
            let _ = decode_response(&frame);
        }
        // Huge counts are refused before anything is allocated.
        let mut frame = vec![VERSION, KIND_PROPOSE, 0];
        frame.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_request(&frame).is_err());
    }
}
