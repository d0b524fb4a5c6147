//! The leader-epoch cache (Kafka's `leader-epoch-checkpoint`): which leader epoch wrote which
//! offsets, as (epoch, start offset) entries, both strictly ascending. A follower asks its
//! leader where its last epoch ends (OffsetForLeaderEpoch) to find where its log diverges.
//! Persisted in `leader-epochs` (a checkpoint frame, `log/FORMAT.md`) before any batch of a new
//! epoch is written, so after a crash the file covers every durable batch; entries past the
//! recovered log end are dropped at open.

/// Kafka's "no epoch" and "no offset" in OffsetForLeaderEpoch answers.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_OFFSET: i64 = -1;

/// The most entries kept: one per leadership change of this partition that still has data.
/// Past it the oldest are merged (their offsets read as the next kept epoch's), which only
/// makes a diverging follower truncate a little more.
pub const LEADER_EPOCHS_MAX: usize = 4096;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochs {
    entries: Vec<(i32, u64)>,
}

impl LeaderEpochs {
    /// A log with data written before epochs were recorded: it all reads as epoch 0.
    pub fn from_start(log_start_offset: u64) -> LeaderEpochs {
        LeaderEpochs { entries: vec![(0, log_start_offset)] }
    }

    pub fn entries(&self) -> &[(i32, u64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` wrote a batch at `offset`. Returns true if that opened a new entry
    /// (the cache must be persisted before the batch is written). A batch of an older epoch
    /// than the latest (a stale leader's) changes nothing here; the caller refuses it.
    pub fn assign(&mut self, epoch: i32, offset: u64) -> bool {
        match self.entries.last() {
            Some(&(latest, start)) if epoch <= latest => {
                debug_assert!(offset >= start, "offsets only go up");
                false
            }
            _ => {
                debug_assert!(self.entries.last().is_none_or(|&(_, start)| offset >= start));
                if self.entries.len() == LEADER_EPOCHS_MAX {
                    self.entries.remove(0);
                }
                self.entries.push((epoch, offset));
                true
            }
        }
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested` and the offset where
    /// it ends (the next epoch's start, or `log_end_offset` for the latest); for an epoch below
    /// the first, `requested` and the first start; undefined for an unknown or later epoch.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: u64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        let Some(&(latest, _)) = self.entries.last() else { return undefined };
        if requested == UNDEFINED_EPOCH {
            return undefined;
        }
        if requested == latest {
            return (latest, log_end_offset as i64);
        }
        let higher = self.entries.iter().position(|&(e, _)| e > requested);
        let Some(higher) = higher else { return undefined };
        let end = self.entries[higher].1 as i64;
        match higher.checked_sub(1) {
            Some(floor) => (self.entries[floor].0, end),
            None => (requested, end),
        }
    }

    /// `end_offset_for` as a leader answers it: its own epoch counts from `leader.1` (where it
    /// took over) even before it wrote a batch, as Kafka assigns a new leader's epoch in the
    /// cache when it takes over; a consumer whose position carries that epoch is answered
    /// with the log end, not an undefined epoch that would reset it.
    pub fn end_offset_for_leader(&self, requested: i32, log_end_offset: u64, leader: (i32, u64)) -> (i32, i64) {
        match self.entries.last() {
            Some(&(latest, _)) if latest >= leader.0 => self.end_offset_for(requested, log_end_offset),
            _ => {
                let mut with_leader = self.clone();
                with_leader.assign(leader.0, leader.1);
                with_leader.end_offset_for(requested, log_end_offset)
            }
        }
    }

    /// The epoch that wrote `offset`: the latest entry starting at or below it.
    pub fn epoch_at(&self, offset: u64) -> Option<i32> {
        let at_or_below = self.entries.partition_point(|&(_, start)| start <= offset);
        at_or_below.checked_sub(1).map(|i| self.entries[i].0)
    }

    /// Drops the entries that start at or after `offset` (the log was cut there).
    pub fn truncate_from_end(&mut self, offset: u64) {
        self.entries.retain(|&(_, start)| start < offset);
    }

    /// Moves the first entry up to `log_start_offset`, dropping those wholly below it.
    pub fn truncate_from_start(&mut self, log_start_offset: u64) {
        let below = self.entries.iter().take_while(|&&(_, start)| start <= log_start_offset).count();
        if below > 0 {
            self.entries.drain(..below - 1);
            self.entries[0].1 = log_start_offset;
        }
    }

    /// The payload of the checkpoint file: a u32 count, then (i32 epoch, u64 start) pairs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.entries.len() * 12);
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for &(epoch, start) in &self.entries {
            out.extend_from_slice(&epoch.to_be_bytes());
            out.extend_from_slice(&start.to_be_bytes());
        }
        out
    }

    /// Reads a payload written by `encode`, checking its order.
    pub fn decode(payload: &[u8]) -> Result<LeaderEpochs, String> {
        let count = payload.get(..4).ok_or("leader epochs: no count")?;
        let count = u32::from_be_bytes(count.try_into().expect("4 bytes")) as usize;
        if count > LEADER_EPOCHS_MAX || payload.len() != 4 + count * 12 {
            return Err(format!("leader epochs: {count} entries in {} bytes", payload.len()));
        }
        let entries: Vec<(i32, u64)> = payload[4..]
            .chunks_exact(12)
            .map(|c| {
                let epoch = i32::from_be_bytes(c[..4].try_into().expect("4 bytes"));
                (epoch, u64::from_be_bytes(c[4..].try_into().expect("8 bytes")))
            })
            .collect();
        let ordered = entries.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        if !ordered || entries.iter().any(|&(e, _)| e < 0) {
            return Err("leader epochs: entries out of order".into());
        }
        Ok(LeaderEpochs { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(entries: &[(i32, u64)]) -> LeaderEpochs {
        LeaderEpochs { entries: entries.to_vec() }
    }

    #[test]
    fn end_offsets_answer_as_kafka_does() {
        let e = epochs(&[(1, 0), (3, 100), (4, 250)]);
        let log_end = 300;
        for (requested, expected) in [
            (4, (4, 300)),
            (3, (3, 250)),
            (2, (1, 100)),
            (1, (1, 100)),
            (0, (0, 0)),
            (5, (UNDEFINED_EPOCH, UNDEFINED_OFFSET)),
            (UNDEFINED_EPOCH, (UNDEFINED_EPOCH, UNDEFINED_OFFSET)),
        ] {
            assert_eq!(e.end_offset_for(requested, log_end), expected, "epoch {requested}");
        }
        assert_eq!(LeaderEpochs::default().end_offset_for(1, 0), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
    }

    #[test]
    fn a_leader_answers_for_its_epoch_before_writing_in_it() {
        let e = epochs(&[(1, 0), (3, 100)]);
        // Leader at epoch 5 since offset 250, nothing written in it yet.
        for (requested, expected) in [(5, (5, 300)), (4, (3, 250)), (3, (3, 250)), (1, (1, 100)), (6, (-1, -1))] {
            assert_eq!(e.end_offset_for_leader(requested, 300, (5, 250)), expected, "epoch {requested}");
        }
        // Once it wrote, the cache answers alone.
        assert_eq!(e.end_offset_for_leader(3, 300, (3, 100)), (3, 300));
        assert_eq!(LeaderEpochs::default().end_offset_for_leader(0, 0, (0, 0)), (0, 0));
    }

    #[test]
    fn epoch_at_finds_the_writer_of_an_offset() {
        let e = epochs(&[(1, 10), (3, 100)]);
        assert_eq!(e.epoch_at(5), None);
        assert_eq!(e.epoch_at(10), Some(1));
        assert_eq!(e.epoch_at(99), Some(1));
        assert_eq!(e.epoch_at(100), Some(3));
        assert_eq!(e.epoch_at(1000), Some(3));
    }

    #[test]
    fn assign_opens_entries_only_for_newer_epochs() {
        let mut e = LeaderEpochs::default();
        assert!(e.assign(0, 0));
        assert!(!e.assign(0, 5));
        assert!(e.assign(2, 9));
        assert!(!e.assign(1, 12), "a stale epoch opens nothing");
        assert_eq!(e.entries(), &[(0, 0), (2, 9)]);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut e = epochs(&[(1, 0), (3, 100), (4, 250)]);
        e.truncate_from_end(250);
        assert_eq!(e.entries(), &[(1, 0), (3, 100)]);
        e.truncate_from_start(120);
        assert_eq!(e.entries(), &[(3, 120)]);
        let mut e = epochs(&[(1, 0), (3, 100)]);
        e.truncate_from_start(100);
        assert_eq!(e.entries(), &[(3, 100)]);
        e.truncate_from_end(100);
        assert!(e.entries().is_empty());
    }

    #[test]
    fn the_payload_round_trips_and_damage_is_refused() {
        let e = epochs(&[(0, 0), (7, 42)]);
        assert_eq!(LeaderEpochs::decode(&e.encode()), Ok(e.clone()));
        let bytes = e.encode();
        for cut in 0..bytes.len() {
            assert!(LeaderEpochs::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(LeaderEpochs::decode(&epochs(&[(7, 0), (3, 1)]).encode()).is_err());
    }
}
