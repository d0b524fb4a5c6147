//! Our byte encoding of openraft's types (log ids, votes, entries, memberships, snapshot
//! meta), shared by the log file (`storage.rs`) and the RPC frames (`wire.rs`). Big-endian,
//! explicit, versioned by the files and frames that carry it; not serde, whose output openraft
//! does not promise to keep. Every count and length is checked against the bytes left and a
//! limit before anything is allocated, and a decoder must use its input whole.

use std::collections::{BTreeMap, BTreeSet};

use openraft::EntryPayload;

use super::limits::{CONFIGS_PER_MEMBERSHIP_MAX, ENTRY_BYTES_MAX, NODES_PER_MEMBERSHIP_MAX, RECORDS_PER_BATCH_MAX};
use super::types::{
    CommittedLeaderId, ControllerNode, Entry, LeaderId, LogId, Membership, RecordBatch, SnapshotMeta, StoredMembership,
    Vote,
};
use crate::metadata::record::RecordDecodeError;
use crate::metadata::MetadataRecord;

/// Bytes that are not what the encoder writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

const PAYLOAD_BLANK: u8 = 0;
const PAYLOAD_NORMAL: u8 = 1;
const PAYLOAD_MEMBERSHIP: u8 = 2;

/// Reads fields off a byte slice, every read bounded by what is left.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError(format!("{n} bytes left after the value"))),
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError(format!("{n} bytes wanted at byte {}, {} left", self.at, self.remaining())));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError(format!("boolean byte {other}"))),
        }
    }

    /// A count of items each at least `item_bytes_min` long, at most `max`: a count the bytes
    /// left cannot hold is refused before anything is allocated for it.
    pub fn count(&mut self, max: usize, item_bytes_min: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError(format!("{n} items; at most {max}")));
        }
        if n.saturating_mul(item_bytes_min) > self.remaining() {
            return Err(DecodeError(format!("{n} items do not fit in the {} bytes left", self.remaining())));
        }
        Ok(n)
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.u16()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("a string is not UTF-8".into()))
    }

    /// A length-prefixed (u32) byte string of at most `max` bytes.
    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError(format!("{n} bytes; at most {max}")));
        }
        self.take(n)
    }
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    put_u32(out, u32::try_from(n).expect("counts are bounded far below u32::MAX"));
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    assert!(s.len() <= u16::MAX as usize, "a string of {} bytes", s.len());
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A length-prefixed (u32) byte string.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_count(out, bytes.len());
    out.extend_from_slice(bytes);
}

pub fn put_log_id(out: &mut Vec<u8>, id: &LogId) {
    put_u64(out, id.leader_id.term);
    put_u64(out, id.index);
}

pub fn log_id(r: &mut Reader<'_>) -> Result<LogId, DecodeError> {
    let term = r.u64()?;
    let index = r.u64()?;
    Ok(LogId { leader_id: CommittedLeaderId::new(term), index })
}

pub fn put_optional_log_id(out: &mut Vec<u8>, id: Option<&LogId>) {
    match id {
        Some(id) => {
            out.push(1);
            put_log_id(out, id);
        }
        None => out.push(0),
    }
}

pub fn optional_log_id(r: &mut Reader<'_>) -> Result<Option<LogId>, DecodeError> {
    match r.bool()? {
        true => Ok(Some(log_id(r)?)),
        false => Ok(None),
    }
}

pub fn put_vote(out: &mut Vec<u8>, vote: &Vote) {
    put_u64(out, vote.leader_id.term);
    put_u64(out, vote.leader_id.voted_for);
    out.push(u8::from(vote.committed));
}

pub fn vote(r: &mut Reader<'_>) -> Result<Vote, DecodeError> {
    let term = r.u64()?;
    let voted_for = r.u64()?;
    let committed = r.bool()?;
    Ok(Vote { leader_id: LeaderId { term, voted_for }, committed })
}

fn put_node(out: &mut Vec<u8>, node: &ControllerNode) {
    put_str(out, &node.address);
    match &node.rack {
        Some(rack) => {
            out.push(1);
            put_str(out, rack);
        }
        None => out.push(0),
    }
}

fn node(r: &mut Reader<'_>) -> Result<ControllerNode, DecodeError> {
    let address = r.string()?;
    let rack = match r.bool()? {
        true => Some(r.string()?),
        false => None,
    };
    Ok(ControllerNode { address, rack })
}

pub fn put_membership(out: &mut Vec<u8>, m: &Membership) {
    let configs = m.get_joint_config();
    put_count(out, configs.len());
    for config in configs {
        put_count(out, config.len());
        config.iter().for_each(|id| put_u64(out, *id));
    }
    let nodes: Vec<_> = m.nodes().collect();
    put_count(out, nodes.len());
    for (id, n) in nodes {
        put_u64(out, *id);
        put_node(out, n);
    }
}

pub fn membership(r: &mut Reader<'_>) -> Result<Membership, DecodeError> {
    let config_count = r.count(CONFIGS_PER_MEMBERSHIP_MAX, 4)?;
    let mut configs = Vec::with_capacity(config_count);
    for _ in 0..config_count {
        let n = r.count(NODES_PER_MEMBERSHIP_MAX, 8)?;
        let mut voters = BTreeSet::new();
        for _ in 0..n {
            voters.insert(r.u64()?);
        }
        configs.push(voters);
    }
    let node_count = r.count(NODES_PER_MEMBERSHIP_MAX, 8 + 2 + 1)?;
    let mut nodes = BTreeMap::new();
    for _ in 0..node_count {
        let id = r.u64()?;
        if nodes.insert(id, node(r)?).is_some() {
            return Err(DecodeError(format!("node {id} listed twice")));
        }
    }
    Membership::new(configs, nodes).map_err(|e| DecodeError(format!("membership: {e}")))
}

pub fn put_stored_membership(out: &mut Vec<u8>, m: &StoredMembership) {
    put_optional_log_id(out, m.log_id().as_ref());
    put_membership(out, m.membership());
}

pub fn stored_membership(r: &mut Reader<'_>) -> Result<StoredMembership, DecodeError> {
    let log_id = optional_log_id(r)?;
    Ok(StoredMembership::new(log_id, membership(r)?))
}

pub fn put_snapshot_meta(out: &mut Vec<u8>, meta: &SnapshotMeta) {
    put_optional_log_id(out, meta.last_log_id.as_ref());
    put_stored_membership(out, &meta.last_membership);
}

pub fn snapshot_meta(r: &mut Reader<'_>) -> Result<SnapshotMeta, DecodeError> {
    let last_log_id = optional_log_id(r)?;
    let last_membership = stored_membership(r)?;
    Ok(SnapshotMeta { last_log_id, last_membership })
}

/// An entry: its log id, then its payload (blank, a record batch, or a membership).
pub fn put_entry(out: &mut Vec<u8>, entry: &Entry) {
    put_log_id(out, &entry.log_id);
    match &entry.payload {
        EntryPayload::Blank => out.push(PAYLOAD_BLANK),
        EntryPayload::Normal(batch) => {
            out.push(PAYLOAD_NORMAL);
            put_count(out, batch.0.len());
            let mut body = Vec::new();
            for record in &batch.0 {
                body.clear();
                record.encode(&mut body);
                put_bytes(out, &body);
            }
        }
        EntryPayload::Membership(m) => {
            out.push(PAYLOAD_MEMBERSHIP);
            put_membership(out, m);
        }
    }
}

pub fn entry(r: &mut Reader<'_>) -> Result<Entry, DecodeError> {
    let log_id = log_id(r)?;
    let payload = match r.u8()? {
        PAYLOAD_BLANK => EntryPayload::Blank,
        PAYLOAD_NORMAL => {
            let n = r.count(RECORDS_PER_BATCH_MAX, 4 + 1)?;
            let mut records = Vec::with_capacity(n);
            for _ in 0..n {
                let body = r.bytes(ENTRY_BYTES_MAX)?;
                let record = MetadataRecord::decode(body).map_err(|RecordDecodeError(e)| DecodeError(e))?;
                records.push(record);
            }
            EntryPayload::Normal(RecordBatch(records))
        }
        PAYLOAD_MEMBERSHIP => EntryPayload::Membership(membership(r)?),
        other => return Err(DecodeError(format!("entry payload kind {other}"))),
    };
    Ok(Entry { log_id, payload })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ids::TopicId;

    pub(crate) fn log_id_of(term: u64, index: u64) -> LogId {
        LogId { leader_id: CommittedLeaderId::new(term), index }
    }

    pub(crate) fn membership_of(voters: &[u64]) -> Membership {
        let nodes: BTreeMap<u64, ControllerNode> =
            voters.iter().map(|id| (*id, ControllerNode::new(format!("controller-{id}:9093")))).collect();
        Membership::new(vec![voters.iter().copied().collect()], nodes).unwrap()
    }

    pub(crate) fn batch_of(tag: u8, records: usize) -> RecordBatch {
        RecordBatch(
            (0..records)
                .map(|i| MetadataRecord::TopicCreated {
                    topic_id: {
                        let mut id = [tag; 16];
                        id[1..9].copy_from_slice(&(i as u64).to_be_bytes());
                        TopicId(id)
                    },
                    name: format!("t-{tag}-{i}"),
                    configs: vec![("cleanup.policy".into(), "compact".into())],
                })
                .collect(),
        )
    }

    pub(crate) fn sample_entries() -> Vec<Entry> {
        let mut with_rack = membership_of(&[1, 2, 3]);
        with_rack = Membership::new(
            vec![[1, 2].into_iter().collect(), [2, 3].into_iter().collect()],
            with_rack
                .nodes()
                .map(|(id, n)| (*id, ControllerNode { rack: Some(format!("r{id}")), ..n.clone() }))
                .collect::<BTreeMap<_, _>>(),
        )
        .unwrap();
        vec![
            Entry { log_id: log_id_of(1, 1), payload: EntryPayload::Blank },
            Entry { log_id: log_id_of(1, 2), payload: EntryPayload::Normal(batch_of(7, 3)) },
            Entry { log_id: log_id_of(2, 3), payload: EntryPayload::Normal(RecordBatch::default()) },
            Entry { log_id: log_id_of(2, 4), payload: EntryPayload::Membership(membership_of(&[1, 2, 3])) },
            Entry { log_id: log_id_of(u64::MAX, u64::MAX), payload: EntryPayload::Membership(with_rack) },
        ]
    }

    #[test]
    fn entries_round_trip_and_every_cut_is_refused() {
        for e in sample_entries() {
            let mut bytes = Vec::new();
            put_entry(&mut bytes, &e);
            let mut r = Reader::new(&bytes);
            assert_eq!(entry(&mut r).unwrap(), e);
            r.finish().unwrap();
            for cut in 0..bytes.len() {
                let mut r = Reader::new(&bytes[..cut]);
                assert!(entry(&mut r).and_then(|_| r.finish()).is_err(), "{e:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn counts_beyond_the_bytes_left_are_refused_before_allocating() {
        let mut bytes = Vec::new();
        put_log_id(&mut bytes, &log_id_of(1, 1));
        bytes.push(PAYLOAD_NORMAL);
        put_u32(&mut bytes, RECORDS_PER_BATCH_MAX as u32);
        assert!(entry(&mut Reader::new(&bytes)).is_err());
        let mut m = Vec::new();
        put_u32(&mut m, 1);
        put_u32(&mut m, u32::MAX);
        assert!(membership(&mut Reader::new(&m)).is_err());
    }

    #[test]
    fn votes_and_snapshot_meta_round_trip() {
        let v = Vote { leader_id: LeaderId { term: 9, voted_for: 3 }, committed: true };
        let mut bytes = Vec::new();
        put_vote(&mut bytes, &v);
        assert_eq!(vote(&mut Reader::new(&bytes)).unwrap(), v);
        let meta = SnapshotMeta {
            last_log_id: Some(log_id_of(3, 40)),
            last_membership: StoredMembership::new(Some(log_id_of(2, 4)), membership_of(&[1, 2, 3])),
        };
        let mut bytes = Vec::new();
        put_snapshot_meta(&mut bytes, &meta);
        let mut r = Reader::new(&bytes);
        assert_eq!(snapshot_meta(&mut r).unwrap(), meta);
        r.finish().unwrap();
    }
}
