//! Idempotent producers against the real log: retries answered with their original offsets,
//! gaps and stale epochs refused, and, after a crash at any point (an injected failure of any
//! disk operation, a torn tail, or a plain stop with unwritten batches), the producer state
//! rebuilt from the snapshot plus the log equals the state rebuilt from the whole log and the
//! state a model derives from the batches that survived.

use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ringtail_log::batch::build;
use ringtail_log::producer::ProducerStates;
use ringtail_log::producer::SequenceError;
use ringtail_log::{BatchHeader, Faults, Flusher, LogConfig, LogError, PartitionLog};

use crate::common::*;

/// What the test's producers believe.
#[derive(Clone, Copy, Default)]
struct Producer {
    epoch: i16,
    next_seq: i32,
}

/// A batch the log accepted: its bytes as sent, offsets and header.
#[derive(Clone)]
struct Sent {
    bytes: Bytes,
    base: u64,
    last: u64,
    header: BatchHeader,
}

fn idempotent(tag: u64, count: usize, producer_id: i64, epoch: i16, seq: i32) -> Bytes {
    let mut b = batch(tag, count, 300, tag as i64).to_vec();
    build::set_producer(&mut b, producer_id, epoch, seq);
    Bytes::from(b)
}

fn header(b: &[u8]) -> BatchHeader {
    BatchHeader::parse(b).unwrap()
}

fn config() -> LogConfig {
    LogConfig { segment_bytes_max: 16 << 10, preallocate_bytes: 8 << 10, batch_bytes_max: 8 << 10, ..small_config() }
}

/// The state a model derives from the accepted batches that are still in `[start, end)`.
fn model_state(sent: &[Sent], start: u64, end: u64) -> ProducerStates {
    let mut s = ProducerStates::default();
    for b in sent.iter().filter(|b| b.last < end) {
        s.record(&b.header, b.base, b.last, 0);
    }
    s.truncate_below(start);
    s
}

/// Opens a copy of `dir` without its producer snapshot: the state from the whole log.
async fn full_replay(dir: &Path, scratch_name: &str) -> ProducerStates {
    let copy = scratch(scratch_name);
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "producer.snapshot" && e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
        }
    }
    let log = open(&copy, &config(), &flusher()).await;
    assert_eq!(log.recovery_report().producer_snapshot, None);
    let states = log.producer_states();
    drop_and_wait(log).await;
    states
}

/// One round of random producing; returns early (a "crash") when the log fails.
async fn produce_round(
    log: &PartitionLog,
    rng: &mut Rng,
    producers: &mut HashMap<i64, Producer>,
    sent: &mut Vec<Sent>,
) {
    let ops = rng.range(40, 400);
    for op in 0..ops {
        let id = rng.range(1, 5) as i64;
        let p = producers.entry(id).or_default();
        let tag = rng.next() % 1_000_000;
        let choice = rng.range(0, 100);
        let result = if choice < 60 {
            // The next batch in sequence.
            let count = rng.range(1, 6) as usize;
            let b = idempotent(tag, count, id, p.epoch, p.next_seq);
            match log.append(b.clone(), 0, 0) {
                Ok(info) => {
                    assert!(!info.duplicate);
                    p.next_seq += count as i32;
                    sent.push(Sent { header: header(&b), bytes: b, base: info.base_offset, last: info.last_offset });
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else if choice < 75 {
            // A retry of one of this producer's recent batches: a duplicate if it is one of the
            // last five the state holds, refused otherwise.
            let mine: Vec<&Sent> = sent.iter().filter(|s| s.header.producer_id == id).collect();
            let back = 1 + rng.range(0, 7) as usize;
            if log.producer_states().get(id).is_none() || back > mine.len() {
                // Unknown producers may start anywhere: a retry would be appended anew.
                continue;
            }
            let original = mine[mine.len() - back].clone();
            let same_epoch =
                mine[mine.len() - back..].iter().all(|s| s.header.producer_epoch == original.header.producer_epoch);
            let expect_duplicate = back <= 5 && same_epoch && original.last >= log.log_start_offset();
            match log.append(original.bytes.clone(), 0, 0) {
                Ok(info) => {
                    assert!(expect_duplicate, "a retry {back} batches back was accepted");
                    assert!(info.duplicate, "a retry was appended again");
                    assert_eq!((info.base_offset, info.last_offset), (original.base, original.last));
                    Ok(())
                }
                Err(e) if !e.is_fatal() => {
                    assert!(!expect_duplicate, "a retry {back} batches back was refused: {e}");
                    assert!(matches!(e, LogError::Sequence(_)), "{e}");
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else if choice < 82 {
            // A gap.
            let b = idempotent(tag, 1, id, p.epoch, p.next_seq + 1 + rng.range(0, 3) as i32);
            let known = log.producer_states().get(id).is_some();
            match log.append(b.clone(), 0, 0) {
                Ok(info) => {
                    assert!(!known, "a gap was accepted from a known producer");
                    p.next_seq = header(&b).base_sequence + 1;
                    sent.push(Sent { header: header(&b), bytes: b, base: info.base_offset, last: info.last_offset });
                    Ok(())
                }
                Err(e) if !e.is_fatal() => {
                    assert!(matches!(e, LogError::Sequence(SequenceError::OutOfOrder { .. })), "{e}");
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else if choice < 86 {
            // A new epoch, starting at 0; then the old epoch is fenced.
            p.epoch += 1;
            p.next_seq = 0;
            let b = idempotent(tag, 1, id, p.epoch, 0);
            match log.append(b.clone(), 0, 0) {
                Ok(info) => {
                    p.next_seq = 1;
                    sent.push(Sent { header: header(&b), bytes: b, base: info.base_offset, last: info.last_offset });
                    let stale = idempotent(tag, 1, id, p.epoch - 1, 0);
                    let e = log.append(stale, 0, 0).expect_err("a stale epoch was accepted");
                    if e.is_fatal() {
                        return;
                    }
                    assert!(matches!(e, LogError::Sequence(SequenceError::StaleEpoch { .. })), "{e}");
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else if choice < 92 {
            // A plain batch, no producer id.
            log.append(batch(tag, 2, 300, 0), 0, 0).map(|_| ())
        } else if choice < 98 {
            log.flush(true, 0).await
        } else {
            // Delete the oldest records.
            let durable = log.durable_offset();
            let start = log.log_start_offset();
            if durable > start {
                log.advance_log_start_offset(rng.range(start, durable + 1)).await.map(|_| ())
            } else {
                Ok(())
            }
        };
        if let Err(e) = result {
            assert!(e.is_fatal(), "op {op}: {e}");
            return;
        }
    }
}

#[test]
fn producer_state_survives_crashes_at_any_point() {
    run(|| async {
        let mut rng = Rng::from_env("producer_state_survives_crashes_at_any_point");
        let dir = scratch("producers-crash");
        let mut producers: HashMap<i64, Producer> = HashMap::new();
        let mut sent: Vec<Sent> = Vec::new();
        let mut snapshots_used = 0;
        for round in 0..40 {
            // How this round ends: 0 a stop with batches possibly unwritten, 1 a failed disk
            // operation (the n-th of any kind), 2 a stop and a torn tail.
            let ending = rng.range(0, 3);
            let fail_after = rng.range(0, 60);
            let count = Rc::new(Cell::new(0u64));
            let c = count.clone();
            let faults = if ending == 1 {
                Faults::new(move |_, _| {
                    c.set(c.get() + 1);
                    c.get() > fail_after
                })
            } else {
                Faults::default()
            };
            let faulty = Flusher::new(faults, Duration::from_millis(5));
            let task = faulty.spawn();
            let log = match PartitionLog::open(dir.clone(), config(), &faulty).await {
                Ok(log) => log,
                Err(e) => {
                    assert!(e.is_fatal(), "round {round}: {e}");
                    faulty.stop();
                    task.await;
                    continue;
                }
            };
            produce_round(&log, &mut rng, &mut producers, &mut sent).await;
            faulty.stop();
            task.await;
            drop_and_wait(log).await;
            if ending == 2 {
                let mut segments: Vec<_> = std::fs::read_dir(&dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .collect();
                segments.sort();
                if let Some(last) = segments.last() {
                    let len = std::fs::metadata(last).unwrap().len();
                    if len > 0 {
                        let f = std::fs::OpenOptions::new().write(true).open(last).unwrap();
                        f.set_len(rng.range(0, len)).unwrap();
                    }
                }
            }
            // Recover without faults and compare the three states.
            let log = open(&dir, &config(), &flusher()).await;
            let (start, end) = (log.log_start_offset(), log.log_end_offset());
            let recovered = log.producer_states();
            if log.recovery_report().producer_snapshot.is_some() {
                snapshots_used += 1;
            }
            let report = log.recovery_report();
            drop_and_wait(log).await;
            let replayed = full_replay(&dir, "producers-crash-copy").await;
            assert!(recovered.same_as(&replayed), "round {round}: snapshot + log != whole log ({report:?})");
            // Batches acknowledged or not, what survived is a prefix of what was accepted.
            sent.retain(|s| s.last < end && s.last >= start);
            let model = model_state(&sent, start, end);
            assert!(recovered.same_as(&model), "round {round}: recovered state != model ({report:?})");
            // The producers carry on from what the log kept.
            for (id, p) in producers.iter_mut() {
                if let Some(e) = recovered.get(*id) {
                    let last = e.batches.last().unwrap();
                    p.epoch = e.epoch;
                    p.next_seq = last.last_seq + 1;
                }
            }
        }
        assert!(snapshots_used > 0, "no recovery used a snapshot");
    });
}

#[test]
fn retries_after_a_restart_get_their_original_offsets() {
    run(|| async {
        let dir = scratch("producers-restart");
        let log = open(&dir, &config(), &flusher()).await;
        let mut sent = Vec::new();
        for i in 0..200u64 {
            let b = idempotent(i, 3, 42, 0, (i * 3) as i32);
            let info = log.append(b.clone(), 0, 0).unwrap();
            sent.push((b, info.base_offset));
        }
        log.flush(true, 0).await.unwrap();
        drop_and_wait(log).await;
        // Unclean: recovery replays from the last snapshot (taken at a segment roll).
        let log = open(&dir, &config(), &flusher()).await;
        let report = log.recovery_report();
        assert!(report.producer_snapshot.is_some_and(|at| at > 0), "{report:?}");
        assert!(report.producer_batches_replayed < 200, "{report:?}");
        for (b, base) in &sent[195..] {
            let info = log.append(b.clone(), 0, 0).unwrap();
            assert!(info.duplicate);
            assert_eq!(info.base_offset, *base);
        }
        let e = log.append(sent[190].0.clone(), 0, 0).unwrap_err();
        assert!(matches!(e, LogError::Sequence(SequenceError::OutOfOrder { .. })), "{e}");
        let next = idempotent(999, 1, 42, 0, 600);
        assert!(!log.append(next, 0, 0).unwrap().duplicate);
        // Clean: the snapshot written at close covers everything; nothing is replayed.
        log.close(0).await.unwrap();
        drop_and_wait(log).await;
        let log = open(&dir, &config(), &flusher()).await;
        let report = log.recovery_report();
        assert_eq!(report.producer_snapshot, Some(log.log_end_offset()), "{report:?}");
        assert_eq!(report.producer_batches_replayed, 0);
        assert!(log.append(sent[199].0.clone(), 0, 0).unwrap().duplicate);
        // A damaged snapshot is ignored with a reason and the state rebuilt from the log.
        drop_and_wait(log).await;
        let snapshot = dir.join("producer.snapshot");
        let mut bytes = std::fs::read(&snapshot).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&snapshot, bytes).unwrap();
        let log = open(&dir, &config(), &flusher()).await;
        let report = log.recovery_report();
        assert!(report.producer_snapshot_ignored.is_some(), "{report:?}");
        assert!(log.append(sent[199].0.clone(), 0, 0).unwrap().duplicate);
        // Expiry forgets idle producers: a later retry is then appended again.
        assert_eq!(log.expire_producers(ringtail_log::now_ms() + 25 * 3600 * 1000), 1);
        assert!(!log.append(sent[199].0.clone(), 0, 0).unwrap().duplicate);
    });
}
