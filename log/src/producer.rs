//! Idempotent producers: for each producer id that wrote to a partition, its epoch and the
//! sequence ranges and offsets of its last five batches. A retried batch is recognised and
//! answered with its original offsets; a gap in the sequence or an older epoch is refused.
//!
//! The rules are Kafka's (`ProducerStateManager`/`ProducerAppendInfo`):
//! - an unknown producer id may start at any sequence (its state may have expired or been
//!   removed with the log it described);
//! - within an epoch, a batch must start right after the last one (sequences wrap from
//!   `i32::MAX` to 0), unless it repeats one of the last five batches exactly: a duplicate;
//! - a newer epoch starts at sequence 0 and forgets the batches of the old one;
//! - an older epoch is fenced.
//!
//! The state is a function of the log: replaying the batches of the log from its start, or from
//! a snapshot taken at some offset, gives the same state (see [`ProducerStates::same_as`]).
//! Snapshots are rkyv archives inside a checkpoint frame; the layout is in `log/FORMAT.md`.

use std::collections::HashMap;

use crate::limits::PRODUCERS_PER_PARTITION_MAX;

use rkyv::rancor;

use crate::batch::BatchHeader;

/// Batches remembered per producer: Kafka's limit, and librdkafka's and the Java client's
/// `max.in.flight.requests.per.connection` ceiling with idempotence.
pub const BATCHES_KEPT: usize = 5;

/// Where one batch of a producer landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: u64,
    pub last_offset: u64,
    pub max_timestamp: i64,
}

/// One producer id's state in one partition.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; at most [`BATCHES_KEPT`], never empty.
    pub batches: Vec<BatchMeta>,
    /// Broker time of the last append, or of the recovery that found it, for expiry. Broker
    /// time rather than the batch's timestamp (Kafka's choice), so producers whose clocks lag or
    /// that replay old data do not lose deduplication at once.
    pub last_seen_ms: i64,
}

/// What a batch from a client is, against the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not idempotent, or next in sequence: append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets, append nothing.
    Duplicate(BatchMeta),
}

/// Why an idempotent batch was refused. The log is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error(
        "producer {producer_id} sent epoch {epoch}, older than its current epoch {current}: another producer \
         took over this producer id (fenced)"
    )]
    StaleEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("producer {producer_id} epoch {epoch}: batch starts at sequence {first_seq}, expected {expected}")]
    OutOfOrder { producer_id: i64, epoch: i16, first_seq: i32, expected: i32 },
    #[error("producer {producer_id} moved to epoch {epoch} (from {current}): its first batch must start at sequence 0, not {first_seq}")]
    NewEpochNotAtZero { producer_id: i64, epoch: i16, current: i16, first_seq: i32 },
}

/// The last sequence of a batch: Kafka's `incrementSequence`, wrapping past `i32::MAX` to 0.
pub fn last_sequence(h: &BatchHeader) -> i32 {
    let delta = h.last_offset_delta.max(0);
    if h.base_sequence > i32::MAX - delta {
        delta - (i32::MAX - h.base_sequence) - 1
    } else {
        h.base_sequence + delta
    }
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

/// The producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

/// The archived form: entries sorted by producer id, so equal states give equal bytes.
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Snapshot {
    /// The state covers exactly the batches below this offset.
    offset: u64,
    producers: Vec<(i64, ProducerEntry)>,
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Every producer with state here, by id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, entry)| (*id, entry))
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// The entries of the given producer ids only.
    pub fn subset(&self, ids: impl Iterator<Item = i64>) -> ProducerStates {
        let producers = ids.filter_map(|id| self.producers.get(&id).map(|e| (id, e.clone()))).collect();
        ProducerStates { producers }
    }

    /// Checks a client's batch against the state; changes nothing.
    pub fn check(&self, h: &BatchHeader) -> Result<Verdict, SequenceError> {
        if h.producer_id < 0 {
            return Ok(Verdict::Append);
        }
        let Some(e) = self.producers.get(&h.producer_id) else {
            return Ok(Verdict::Append);
        };
        let (producer_id, epoch, first_seq) = (h.producer_id, h.producer_epoch, h.base_sequence);
        if epoch < e.epoch {
            return Err(SequenceError::StaleEpoch { producer_id, epoch, current: e.epoch });
        }
        if epoch > e.epoch {
            if first_seq != 0 {
                return Err(SequenceError::NewEpochNotAtZero { producer_id, epoch, current: e.epoch, first_seq });
            }
            return Ok(Verdict::Append);
        }
        let last_seq = last_sequence(h);
        if let Some(b) = e.batches.iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq) {
            return Ok(Verdict::Duplicate(*b));
        }
        let expected = e.batches.last().map_or(first_seq, |b| next_sequence(b.last_seq));
        if first_seq != expected {
            return Err(SequenceError::OutOfOrder { producer_id, epoch, first_seq, expected });
        }
        Ok(Verdict::Append)
    }

    /// Records a batch appended at `base_offset..=last_offset` (from a client, after `check`,
    /// or replayed from the log). Returns whether a producer was forgotten to make room
    /// ([`PRODUCERS_PER_PARTITION_MAX`]): the one heard from least recently.
    pub fn record(&mut self, h: &BatchHeader, base_offset: u64, last_offset: u64, now_ms: i64) -> bool {
        if h.producer_id < 0 {
            return false;
        }
        let evicted =
            !self.producers.contains_key(&h.producer_id) && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX;
        if evicted {
            // Ties go to the lowest id, so replaying the same batches forgets the same producer.
            let oldest = self.producers.iter().min_by_key(|(id, e)| (e.last_seen_ms, **id)).map(|(id, _)| *id);
            if let Some(id) = oldest {
                self.producers.remove(&id);
            }
        }
        let meta = BatchMeta {
            first_seq: h.base_sequence,
            last_seq: last_sequence(h),
            base_offset,
            last_offset,
            max_timestamp: h.max_timestamp,
        };
        let e = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry {
            epoch: h.producer_epoch,
            batches: Vec::with_capacity(BATCHES_KEPT),
            last_seen_ms: now_ms,
        });
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        if e.batches.len() == BATCHES_KEPT {
            e.batches.remove(0);
        }
        e.batches.push(meta);
        e.last_seen_ms = e.last_seen_ms.max(now_ms);
        evicted
    }

    /// Forgets producers not seen for `idle_ms`. Returns how many.
    pub fn expire(&mut self, now_ms: i64, idle_ms: u64) -> usize {
        let before = self.producers.len();
        let idle = i64::try_from(idle_ms).unwrap_or(i64::MAX);
        self.producers.retain(|_, e| now_ms.saturating_sub(e.last_seen_ms) < idle);
        before - self.producers.len()
    }

    /// Forgets batches below the log start offset, and producers left with none: the state
    /// then equals what replaying the remaining log gives.
    pub fn truncate_below(&mut self, log_start_offset: u64) {
        self.producers.retain(|_, e| {
            e.batches.retain(|b| b.last_offset >= log_start_offset);
            !e.batches.is_empty()
        });
    }

    /// Forgets batches at or past `offset` (the log was cut there), and producers left with none.
    /// Used only where the whole state is rebuilt from the log anyway.
    fn truncate_from(&mut self, offset: u64) {
        self.producers.retain(|_, e| {
            e.batches.retain(|b| b.base_offset < offset);
            !e.batches.is_empty()
        });
    }

    /// Equal producer ids, epochs and batches; the idle clocks may differ.
    pub fn same_as(&self, other: &ProducerStates) -> bool {
        self.producers.len() == other.producers.len()
            && self
                .producers
                .iter()
                .all(|(id, e)| other.producers.get(id).is_some_and(|o| o.epoch == e.epoch && o.batches == e.batches))
    }

    /// The state as a snapshot at `offset`: an rkyv archive.
    pub fn encode_snapshot(&self, offset: u64) -> Vec<u8> {
        let mut producers: Vec<(i64, ProducerEntry)> = self.producers.iter().map(|(k, v)| (*k, v.clone())).collect();
        producers.sort_unstable_by_key(|(id, _)| *id);
        let snapshot = Snapshot { offset, producers };
        rkyv::to_bytes::<rancor::Error>(&snapshot).expect("archiving plain data into memory cannot fail").to_vec()
    }

    /// Reads a snapshot: its offset and state. Validates the archive, and that every entry obeys
    /// the invariants the code relies on.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<(u64, ProducerStates), String> {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        let snapshot = rkyv::from_bytes::<Snapshot, rancor::Error>(&aligned).map_err(|e| e.to_string())?;
        let mut producers = HashMap::with_capacity(snapshot.producers.len());
        for (id, e) in snapshot.producers {
            let sane = id >= 0
                && !e.batches.is_empty()
                && e.batches.len() <= BATCHES_KEPT
                && e.batches.iter().all(|b| b.base_offset <= b.last_offset && b.last_offset < snapshot.offset);
            if !sane || producers.insert(id, e).is_some() {
                return Err(format!("producer {id} has an impossible or repeated entry"));
            }
        }
        Ok((snapshot.offset, ProducerStates { producers }))
    }

    /// Prepares a snapshot's state for a log that was recovered to `[log_start, log_end)`.
    pub(crate) fn fit_to_log(&mut self, log_start: u64, log_end: u64) {
        self.truncate_below(log_start);
        self.truncate_from(log_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1,
            max_timestamp: 2,
            producer_id,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn sequences_duplicates_gaps_and_epochs() {
        let mut s = ProducerStates::default();
        let mut offset = 0;
        let mut append = |s: &mut ProducerStates, h: BatchHeader| {
            assert_eq!(s.check(&h), Ok(Verdict::Append));
            s.record(&h, offset, offset + h.offset_count() - 1, 0);
            offset += h.offset_count();
        };
        // A new producer may start anywhere.
        append(&mut s, header(7, 0, 10, 3));
        for i in 0..6 {
            append(&mut s, header(7, 0, 13 + 2 * i, 2));
        }
        // Only the last five batches are remembered: 13..=14 is forgotten, 15..=16 is not.
        assert_eq!(s.get(7).unwrap().batches.len(), BATCHES_KEPT);
        let dup = s.check(&header(7, 0, 23, 2)).unwrap();
        assert!(matches!(dup, Verdict::Duplicate(b) if b.first_seq == 23 && b.base_offset == 13));
        assert!(matches!(s.check(&header(7, 0, 13, 2)), Err(SequenceError::OutOfOrder { expected: 25, .. })));
        // Not the same range: not a duplicate.
        assert!(s.check(&header(7, 0, 23, 1)).is_err());
        assert!(matches!(s.check(&header(7, 0, 26, 1)), Err(SequenceError::OutOfOrder { .. })));
        assert!(matches!(s.check(&header(7, 1, 5, 1)), Err(SequenceError::NewEpochNotAtZero { .. })));
        append(&mut s, header(7, 1, 0, 1));
        assert_eq!(s.get(7).unwrap().batches.len(), 1);
        assert!(matches!(s.check(&header(7, 0, 1, 1)), Err(SequenceError::StaleEpoch { current: 1, .. })));
        assert_eq!(s.check(&header(-1, -1, -1, 1)), Ok(Verdict::Append));
        // Sequences wrap.
        append(&mut s, header(8, 0, i32::MAX - 1, 3));
        assert_eq!(s.get(8).unwrap().batches[0].last_seq, 0);
        assert_eq!(s.check(&header(8, 0, 1, 1)), Ok(Verdict::Append));
    }

    #[test]
    fn past_the_cap_the_least_recently_heard_producer_is_forgotten() {
        let mut s = ProducerStates::default();
        for id in 0..PRODUCERS_PER_PARTITION_MAX as i64 {
            assert!(!s.record(&header(id, 0, 0, 1), id as u64, id as u64, 1_000 + id));
        }
        // Producer 0 writes again, so producer 1 is now the least recently heard from.
        assert!(!s.record(&header(0, 0, 1, 1), 20_000, 20_000, 50_000));
        let newcomer = PRODUCERS_PER_PARTITION_MAX as i64;
        assert!(s.record(&header(newcomer, 0, 0, 1), 20_001, 20_001, 50_001));
        assert_eq!(s.len(), PRODUCERS_PER_PARTITION_MAX);
        assert!(s.get(1).is_none());
        assert!(s.get(0).is_some());
        assert!(s.get(newcomer).is_some());
    }

    #[test]
    fn snapshot_round_trip_expiry_and_truncation() {
        let mut s = ProducerStates::default();
        s.record(&header(1, 0, 0, 2), 0, 1, 100);
        s.record(&header(2, 3, 0, 1), 2, 2, 200);
        s.record(&header(1, 0, 2, 1), 3, 3, 300);
        let bytes = s.encode_snapshot(4);
        let (offset, back) = ProducerStates::decode_snapshot(&bytes).unwrap();
        assert_eq!((offset, &back), (4, &s));
        assert!(ProducerStates::decode_snapshot(&bytes[..bytes.len() - 3]).is_err());
        // A batch past the snapshot's offset cannot be.
        assert!(ProducerStates::decode_snapshot(&s.encode_snapshot(3)).is_err());
        let mut t = s.clone();
        t.truncate_below(2);
        assert_eq!(t.get(1).unwrap().batches.len(), 1);
        t.truncate_below(3);
        assert!(t.get(2).is_none());
        assert_eq!(s.clone().expire(350, 100), 1);
        assert_eq!(s.expire(1000, 100), 2);
    }
}
