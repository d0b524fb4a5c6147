//! The quorum's RPC frames between controllers: AppendEntries, Vote, PreVote and a full
//! snapshot, and their responses, in our own explicit encoding (`codec.rs`), not serde's.
//! A frame is what a [`Transport`](super::network::Transport) carries whole; the transport
//! delimits frames, and refuses one longer than `RPC_FRAME_BYTES_MAX` before reading it.
//!
//! Request: version u8, kind u8, the sender's cluster id (a flag byte, then a u16-length
//! string when its metadata holds one), body. Response: version u8, kind u8 (the request's, or
//! `KIND_FAILED` with a message: the receiver could not serve it), body. Every decoder is
//! bounded and total: any byte string decodes to a value or an error, never a panic (a fuzz
//! target's contract).

use bytes::Bytes;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};

use super::codec::{self, DecodeError, Reader};
use super::limits::{ENTRIES_PER_REQUEST_MAX, RPC_FRAME_BYTES_MAX, SNAPSHOT_BYTES_MAX};
use super::types::{QuorumTypes, Snapshot, Vote};

const VERSION: u8 = 1;
const KIND_APPEND_ENTRIES: u8 = 1;
const KIND_VOTE: u8 = 2;
const KIND_PRE_VOTE: u8 = 3;
const KIND_FULL_SNAPSHOT: u8 = 4;
const KIND_FAILED: u8 = 255;
/// A failure's message is cut to this many bytes.
const FAILURE_BYTES_MAX: usize = 1024;

const APPEND_SUCCESS: u8 = 0;
const APPEND_PARTIAL_SUCCESS: u8 = 1;
const APPEND_CONFLICT: u8 = 2;
const APPEND_HIGHER_VOTE: u8 = 3;

/// A request from one controller to another.
#[derive(Debug, Clone)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<QuorumTypes>),
    Vote(VoteRequest<QuorumTypes>),
    PreVote(VoteRequest<QuorumTypes>),
    FullSnapshot { vote: Vote, snapshot: Snapshot },
}

/// The answer to a [`Request`].
#[derive(Debug, Clone)]
pub enum Response {
    AppendEntries(AppendEntriesResponse<QuorumTypes>),
    Vote(VoteResponse<QuorumTypes>),
    PreVote(VoteResponse<QuorumTypes>),
    Snapshot(SnapshotResponse<QuorumTypes>),
    /// The receiver could not serve the request (its Raft stopped, or the request did not
    /// decode).
    Failed(String),
}

/// A cluster id a request frame carries is at most this long.
const CLUSTER_ID_BYTES_MAX: usize = 255;

/// A request from a sender that knows no cluster id yet.
pub fn encode_request(request: &Request) -> Vec<u8> {
    encode_request_from(request, None)
}

/// A request stamped with the sender's cluster id (KRaft's RPCs carry it too): a controller
/// of another cluster refuses it, so a voter list naming the wrong hosts cannot join two
/// quorums or disturb the other's elections.
pub fn encode_request_from(request: &Request, cluster_id: Option<&str>) -> Vec<u8> {
    let mut out = vec![VERSION];
    let cluster_id = cluster_id.filter(|c| c.len() <= CLUSTER_ID_BYTES_MAX);
    let put_cluster = |out: &mut Vec<u8>| match cluster_id {
        Some(c) => {
            out.push(1);
            codec::put_str(out, c);
        }
        None => out.push(0),
    };
    match request {
        Request::AppendEntries(rpc) => {
            out.push(KIND_APPEND_ENTRIES);
            put_cluster(&mut out);
            codec::put_vote(&mut out, &rpc.vote);
            codec::put_optional_log_id(&mut out, rpc.prev_log_id.as_ref());
            codec::put_optional_log_id(&mut out, rpc.leader_commit.as_ref());
            assert!(rpc.entries.len() <= ENTRIES_PER_REQUEST_MAX, "{} entries in one request", rpc.entries.len());
            codec::put_u32(&mut out, rpc.entries.len() as u32);
            rpc.entries.iter().for_each(|e| codec::put_entry(&mut out, e));
        }
        Request::Vote(rpc) | Request::PreVote(rpc) => {
            out.push(if matches!(request, Request::Vote(_)) { KIND_VOTE } else { KIND_PRE_VOTE });
            put_cluster(&mut out);
            put_vote_request(&mut out, rpc);
        }
        Request::FullSnapshot { vote, snapshot } => {
            out.push(KIND_FULL_SNAPSHOT);
            put_cluster(&mut out);
            codec::put_vote(&mut out, vote);
            codec::put_snapshot_meta(&mut out, &snapshot.meta);
            codec::put_bytes(&mut out, &snapshot.snapshot);
        }
    }
    assert!(out.len() <= RPC_FRAME_BYTES_MAX, "a request frame of {} bytes", out.len());
    out
}

fn put_vote_request(out: &mut Vec<u8>, rpc: &VoteRequest<QuorumTypes>) {
    codec::put_vote(out, &rpc.vote);
    codec::put_optional_log_id(out, rpc.last_log_id.as_ref());
    out.push(u8::from(rpc.leadership_transfer));
}

fn vote_request(r: &mut Reader<'_>) -> Result<VoteRequest<QuorumTypes>, DecodeError> {
    let vote = codec::vote(r)?;
    let last_log_id = codec::optional_log_id(r)?;
    let leadership_transfer = r.bool()?;
    Ok(VoteRequest { vote, last_log_id, leadership_transfer })
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

pub fn decode_request(frame: &[u8]) -> Result<Request, DecodeError> {
    decode_request_from(frame).map(|(request, _)| request)
}

/// A request and the sender's cluster id, if it sent one.
pub fn decode_request_from(frame: &[u8]) -> Result<(Request, Option<String>), DecodeError> {
    let mut r = Reader::new(frame);
    let kind = header(&mut r, frame)?;
    let cluster_id = match r.u8()? {
        0 => None,
        1 => {
            let c = r.string()?;
            if c.len() > CLUSTER_ID_BYTES_MAX {
                return Err(DecodeError(format!("a cluster id of {} bytes", c.len())));
            }
            Some(c)
        }
        other => return Err(DecodeError(format!("cluster id flag {other}"))),
    };
    let request = match kind {
        KIND_APPEND_ENTRIES => {
            let vote = codec::vote(&mut r)?;
            let prev_log_id = codec::optional_log_id(&mut r)?;
            let leader_commit = codec::optional_log_id(&mut r)?;
            // An entry is at least a log id and a payload kind.
            let n = r.count(ENTRIES_PER_REQUEST_MAX, 17)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(codec::entry(&mut r)?);
            }
            Request::AppendEntries(AppendEntriesRequest { vote, prev_log_id, entries, leader_commit })
        }
        KIND_VOTE => Request::Vote(vote_request(&mut r)?),
        KIND_PRE_VOTE => Request::PreVote(vote_request(&mut r)?),
        KIND_FULL_SNAPSHOT => {
            let vote = codec::vote(&mut r)?;
            let meta = codec::snapshot_meta(&mut r)?;
            let data = Bytes::copy_from_slice(r.bytes(SNAPSHOT_BYTES_MAX)?);
            Request::FullSnapshot { vote, snapshot: Snapshot { meta, snapshot: data } }
        }
        other => return Err(DecodeError(format!("request kind {other}"))),
    };
    r.finish()?;
    Ok((request, cluster_id))
}

pub fn encode_response(response: &Response) -> Vec<u8> {
    let mut out = vec![VERSION];
    match response {
        Response::AppendEntries(resp) => {
            out.push(KIND_APPEND_ENTRIES);
            match resp {
                AppendEntriesResponse::Success => out.push(APPEND_SUCCESS),
                AppendEntriesResponse::PartialSuccess(id) => {
                    out.push(APPEND_PARTIAL_SUCCESS);
                    codec::put_optional_log_id(&mut out, id.as_ref());
                }
                AppendEntriesResponse::Conflict => out.push(APPEND_CONFLICT),
                AppendEntriesResponse::HigherVote(v) => {
                    out.push(APPEND_HIGHER_VOTE);
                    codec::put_vote(&mut out, v);
                }
            }
        }
        Response::Vote(resp) | Response::PreVote(resp) => {
            out.push(if matches!(response, Response::Vote(_)) { KIND_VOTE } else { KIND_PRE_VOTE });
            codec::put_vote(&mut out, &resp.vote);
            out.push(u8::from(resp.vote_granted));
            codec::put_optional_log_id(&mut out, resp.last_log_id.as_ref());
        }
        Response::Snapshot(resp) => {
            out.push(KIND_FULL_SNAPSHOT);
            codec::put_vote(&mut out, &resp.vote);
        }
        Response::Failed(message) => {
            out.push(KIND_FAILED);
            let mut end = message.len().min(FAILURE_BYTES_MAX);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            codec::put_bytes(&mut out, &message.as_bytes()[..end]);
        }
    }
    out
}

pub fn decode_response(frame: &[u8]) -> Result<Response, DecodeError> {
    let mut r = Reader::new(frame);
    let response = match header(&mut r, frame)? {
        KIND_APPEND_ENTRIES => Response::AppendEntries(match r.u8()? {
            APPEND_SUCCESS => AppendEntriesResponse::Success,
            APPEND_PARTIAL_SUCCESS => AppendEntriesResponse::PartialSuccess(codec::optional_log_id(&mut r)?),
            APPEND_CONFLICT => AppendEntriesResponse::Conflict,
            APPEND_HIGHER_VOTE => AppendEntriesResponse::HigherVote(codec::vote(&mut r)?),
            other => return Err(DecodeError(format!("append-entries outcome {other}"))),
        }),
        kind @ (KIND_VOTE | KIND_PRE_VOTE) => {
            let vote = codec::vote(&mut r)?;
            let vote_granted = r.bool()?;
            let last_log_id = codec::optional_log_id(&mut r)?;
            let resp = VoteResponse { vote, vote_granted, last_log_id };
            if kind == KIND_VOTE {
                Response::Vote(resp)
            } else {
                Response::PreVote(resp)
            }
        }
        KIND_FULL_SNAPSHOT => Response::Snapshot(SnapshotResponse { vote: codec::vote(&mut r)? }),
        KIND_FAILED => {
            let message = r.bytes(FAILURE_BYTES_MAX)?;
            Response::Failed(String::from_utf8_lossy(message).into_owned())
        }
        other => return Err(DecodeError(format!("response kind {other}"))),
    };
    r.finish()?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::codec::tests::{log_id_of, membership_of, sample_entries};
    use crate::quorum::types::{LeaderId, SnapshotMeta, StoredMembership};

    fn vote() -> Vote {
        Vote { leader_id: LeaderId { term: 4, voted_for: 2 }, committed: true }
    }

    fn requests() -> Vec<Request> {
        let rpc = VoteRequest { vote: vote(), last_log_id: Some(log_id_of(3, 9)), leadership_transfer: true };
        vec![
            Request::AppendEntries(AppendEntriesRequest {
                vote: vote(),
                prev_log_id: Some(log_id_of(1, 0)),
                entries: sample_entries(),
                leader_commit: None,
            }),
            Request::AppendEntries(AppendEntriesRequest {
                vote: vote(),
                prev_log_id: None,
                entries: Vec::new(),
                leader_commit: Some(log_id_of(4, 4)),
            }),
            Request::Vote(rpc.clone()),
            Request::PreVote(VoteRequest { last_log_id: None, ..rpc }),
            Request::FullSnapshot {
                vote: vote(),
                snapshot: Snapshot {
                    meta: SnapshotMeta {
                        last_log_id: Some(log_id_of(4, 100)),
                        last_membership: StoredMembership::new(Some(log_id_of(1, 1)), membership_of(&[1, 2, 3])),
                    },
                    snapshot: Bytes::from_static(b"image bytes"),
                },
            },
        ]
    }

    fn responses() -> Vec<Response> {
        let v = VoteResponse { vote: vote(), vote_granted: true, last_log_id: Some(log_id_of(2, 2)) };
        vec![
            Response::AppendEntries(AppendEntriesResponse::Success),
            Response::AppendEntries(AppendEntriesResponse::PartialSuccess(Some(log_id_of(2, 7)))),
            Response::AppendEntries(AppendEntriesResponse::PartialSuccess(None)),
            Response::AppendEntries(AppendEntriesResponse::Conflict),
            Response::AppendEntries(AppendEntriesResponse::HigherVote(vote())),
            Response::Vote(v.clone()),
            Response::PreVote(VoteResponse { vote_granted: false, last_log_id: None, ..v }),
            Response::Snapshot(SnapshotResponse { vote: vote() }),
            Response::Failed("the node stopped".into()),
        ]
    }

    /// Round trip (compared through the encoding: openraft's request types lack `PartialEq`),
    /// and every cut and trailing byte refused.
    #[test]
    fn every_frame_round_trips_and_every_cut_is_refused() {
        for request in requests() {
            for cluster in [None, Some("3c4052e364b8761ac34f519f38f4a0c0")] {
                let frame = encode_request_from(&request, cluster);
                let (decoded, sender) = decode_request_from(&frame).unwrap();
                assert_eq!(sender.as_deref(), cluster);
                assert_eq!(encode_request_from(&decoded, cluster), frame);
                for cut in 0..frame.len() {
                    assert!(decode_request(&frame[..cut]).is_err(), "{request:?} cut at {cut}");
                }
                let mut longer = frame.clone();
                longer.push(0);
                assert!(decode_request(&longer).is_err());
            }
        }
        for response in responses() {
            let frame = encode_response(&response);
            assert_eq!(encode_response(&decode_response(&frame).unwrap()), frame);
            for cut in 0..frame.len() {
                assert!(decode_response(&frame[..cut]).is_err(), "{response:?} cut at {cut}");
            }
        }
    }

    /// A cheap stand-in for the fuzz target: flipped bytes and random frames decode or fail,
    /// never panic.
    #[test]
    fn hostile_frames_never_panic() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let frames: Vec<Vec<u8>> = requests()
            .iter()
            .map(encode_request)
            .chain(requests().iter().map(|r| encode_request_from(r, Some("a-cluster"))))
            .chain(responses().iter().map(encode_response))
            .collect();
        for _ in 0..20_000 {
            let mut frame = frames[(next() % frames.len() as u64) as usize].clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % frame.len() as u64) as usize;
                frame[at] = next() as u8;
            }
            let _ = decode_request(&frame);
            let _ = decode_response(&frame);
        }
    }
}
