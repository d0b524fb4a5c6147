//! What the clients were told, and the invariants the log must keep about it across crashes.

use std::collections::BTreeMap;

use bytes::Bytes;
use ringtail_log::BatchHeader;

/// One batch the producer sent: its producer id and first sequence identify it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub producer_id: i64,
    pub base_sequence: i32,
    pub records: u64,
    pub bytes: Bytes,
}

/// An acknowledgement the producer received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub base_offset: u64,
    /// Acknowledged as durable (sync durability): it must survive any crash.
    pub durable: bool,
}

/// Everything the harness knows about the partition, kept across crashes.
#[derive(Debug, Default)]
pub struct Model {
    /// (producer id, base sequence) -> acknowledgement.
    pub acked: BTreeMap<(i64, i32), (Acked, u64)>,
    /// The highest durable offset the log ever reported (everything below was fdatasynced).
    pub durable_seen: u64,
    /// The highest high watermark saved successfully.
    pub high_watermark_saved: Option<u64>,
    /// Leader epochs used so far, in order; each life leads with a new one.
    pub epochs: Vec<i32>,
    /// Batches cut by a truncation that completed: they must never come back.
    pub cut: BTreeMap<(i64, i32), u64>,
    pub acks: u64,
    pub duplicates_answered: u64,
    pub crashes: u64,
    pub clean_closes: u64,
    pub truncations: u64,
    pub offline: u64,
}

/// A batch read back from the log.
#[derive(Debug, Clone)]
pub struct Stored {
    pub header: BatchHeader,
}

impl Model {
    /// Records an acknowledgement; a batch acknowledged twice must get the same offset.
    pub fn ack(&mut self, sent: &Sent, acked: Acked, duplicate: bool) -> Result<(), String> {
        self.acks += 1;
        if duplicate {
            self.duplicates_answered += 1;
        }
        let key = (sent.producer_id, sent.base_sequence);
        match self.acked.get(&key) {
            Some((before, _)) if before.base_offset != acked.base_offset => Err(format!(
                "producer {} sequence {} acknowledged at offset {} and again at {}",
                sent.producer_id, sent.base_sequence, before.base_offset, acked.base_offset
            )),
            Some((before, n)) => {
                let merged = Acked { durable: before.durable || acked.durable, ..*before };
                let n = *n;
                self.acked.insert(key, (merged, n));
                Ok(())
            }
            None => {
                self.acked.insert(key, (acked, sent.records));
                Ok(())
            }
        }
    }

    /// After a crash: acknowledgements that were never durable and whose batches are gone are
    /// forgotten (those below the log start were removed by retention, not lost).
    pub fn forget_lost(&mut self, present: &std::collections::HashSet<(i64, i32)>, log_start: u64) {
        let durable_seen = self.durable_seen;
        self.acked.retain(|key, (a, n)| {
            a.durable || a.base_offset + *n <= durable_seen || a.base_offset + *n <= log_start || present.contains(key)
        });
    }

    /// A truncation to `end` is about to start: acknowledgements of batches past it are no
    /// longer owed (a follower cutting a diverged tail gives them up).
    pub fn truncating(&mut self, end: u64) {
        self.acked.retain(|_, (a, n)| a.base_offset + *n <= end);
        self.durable_seen = self.durable_seen.min(end);
    }

    /// A truncation completed: the batches it cut must never reappear.
    pub fn truncated(&mut self, cut: impl IntoIterator<Item = ((i64, i32), u64)>) {
        self.truncations += 1;
        self.cut.extend(cut);
    }

    /// Checks the whole log as read back: offsets contiguous from the log start, no batch of an
    /// idempotent producer twice, every owed acknowledged batch present at its offset, leader
    /// epochs increasing and matching the epoch cache.
    pub fn check_log(
        &self,
        log_start: u64,
        log_end: u64,
        batches: &[Stored],
        epochs: &[(i32, u64)],
    ) -> Result<(), String> {
        let mut next = None::<u64>;
        let mut seen: BTreeMap<(i64, i32), u64> = BTreeMap::new();
        for b in batches {
            let h = &b.header;
            let base = h.base_offset as u64;
            let last = base + h.offset_count() - 1;
            if let Some(n) = next {
                if base != n {
                    return Err(format!("offsets not contiguous: a batch at {base} follows one ending at {}", n - 1));
                }
            }
            if last < log_start {
                return Err(format!("batch {base}..={last} read below the log start {log_start}"));
            }
            next = Some(last + 1);
            if h.producer_id >= 0 {
                if let Some(other) = seen.insert((h.producer_id, h.base_sequence), base) {
                    return Err(format!(
                        "producer {} sequence {} stored twice, at {other} and {base}",
                        h.producer_id, h.base_sequence
                    ));
                }
            }
            // The epoch cache maps each offset to the epoch stamped in its batch.
            let cached = epochs.iter().rev().find(|(_, start)| *start <= base).map(|(e, _)| *e);
            if let Some(e) = cached {
                if e != h.partition_leader_epoch {
                    return Err(format!(
                        "batch at {base} carries leader epoch {} but the epoch cache says {e}",
                        h.partition_leader_epoch
                    ));
                }
            }
        }
        if let Some(n) = next {
            if n != log_end {
                return Err(format!("the batches read end at {n}, the log end is {log_end}"));
            }
        }
        for w in epochs.windows(2) {
            if w[1].0 <= w[0].0 || w[1].1 < w[0].1 {
                return Err(format!("leader epoch cache not increasing: {:?} then {:?}", w[0], w[1]));
            }
        }
        if let Some((e, _)) = epochs.last() {
            if !self.epochs.contains(e) {
                return Err(format!("leader epoch {e} in the cache was never used"));
            }
        }
        for (key, at) in &self.cut {
            if let Some(now) = seen.get(key) {
                return Err(format!(
                    "batch (producer {}, sequence {}) was truncated away at offset {at} and is back at {now}",
                    key.0, key.1
                ));
            }
        }
        for ((pid, seq), (acked, records)) in &self.acked {
            let owed = acked.durable || acked.base_offset + records <= self.durable_seen;
            if !owed || acked.base_offset + records <= log_start {
                continue;
            }
            match seen.get(&(*pid, *seq)) {
                Some(at) if *at == acked.base_offset => {}
                Some(at) => {
                    return Err(format!(
                        "acknowledged batch (producer {pid}, sequence {seq}) moved from offset {} to {at}",
                        acked.base_offset
                    ))
                }
                None => {
                    return Err(format!(
                        "acknowledged batch (producer {pid}, sequence {seq}) at offset {} is lost (log {log_start}..{log_end}, durable {})",
                        acked.base_offset,
                        if acked.durable { "acknowledged" } else { "reported" }
                    ))
                }
            }
        }
        Ok(())
    }
}
