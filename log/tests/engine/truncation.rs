//! A follower's truncation and the log's other state writes, where they meet other work: an
//! error part way takes the log offline, a cut below the log start empties the log, appends
//! wait, reads never see a file being shortened, waits learn of every cut, and the leader-epoch
//! and high-watermark files never describe data they should not.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future::zip;
use ringtail_log::batch::build;
use ringtail_log::{
    decode_state_file, Durability, Faults, Flusher, IoOp, LogConfig, LogError, PartitionLog, StateFileKind,
};

use crate::common::*;
use crate::follower::read_all;

/// Appends are never written unless the test flushes: nothing runs in the background.
fn quiet_config() -> LogConfig {
    LogConfig {
        durability: Durability::Async,
        flush_bytes_min: usize::MAX,
        fsync_interval_ms: 1 << 40,
        ..small_config()
    }
}

/// A flusher whose operations fail as `fail` says while `armed` is set.
fn armed_flusher(
    armed: Rc<Cell<bool>>,
    no_space: bool,
    fail: impl Fn(IoOp, &std::path::Path) -> bool + 'static,
) -> Rc<Flusher> {
    let decide = move |op, path: &std::path::Path| armed.get() && fail(op, path);
    let faults = if no_space { Faults::no_space(decide) } else { Faults::new(decide) };
    Flusher::new(faults, Duration::from_millis(5))
}

fn file_named(path: &std::path::Path, name: &str) -> bool {
    path.file_name().is_some_and(|n| n.to_str().is_some_and(|n| n.starts_with(name)))
}

fn extension_is(path: &std::path::Path, extension: &str) -> bool {
    path.extension().is_some_and(|e| e == extension)
}

/// Appends `count` one-record batches tagged from `tag` under `epoch`, recording them in the model.
fn append_batches(log: &PartitionLog, model: &mut Model, tag: u64, count: u64, epoch: i32) {
    for i in tag..tag + count {
        let b = batch(i, 1, 150, i as i64);
        let info = log.append(b.clone(), epoch, 0).unwrap();
        model.push(&b, info.base_offset, 1, epoch);
    }
}

/// The epoch entries the stored batches of a log imply.
async fn epochs_of_batches(log: &PartitionLog) -> Vec<(i32, u64)> {
    let all = read_all(log, log.log_start_offset()).await;
    let batches = ringtail_log::batch::validate_records(&all, 1 << 20, ringtail_log::Origin::Log).unwrap_or_default();
    let mut epochs: Vec<(i32, u64)> = Vec::new();
    for (h, _) in batches {
        if epochs.last().is_none_or(|&(e, _)| e < h.partition_leader_epoch) {
            epochs.push((h.partition_leader_epoch, h.base_offset as u64));
        }
    }
    epochs
}

#[test]
fn an_error_after_the_first_change_takes_the_log_offline() {
    run(|| async {
        let dir = scratch("truncate-error-part-way");
        let config = quiet_config();
        let armed = Rc::new(Cell::new(false));
        // No space for the index files of the shortened segment: the state file was written and
        // segments deleted already.
        let flusher = armed_flusher(armed.clone(), true, |op, path| op == IoOp::Write && extension_is(path, "index"));
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        append_batches(&log, &mut model, 0, 600, 1);
        log.flush(true, 0).await.unwrap();
        assert!(log.segment_count() > 2);
        armed.set(true);
        let e = log.truncate_to(100).await.expect_err("no space for the index");
        armed.set(false);
        assert!(e.is_fatal(), "{e}");
        assert!(log.failed().is_some(), "the files are cut part way: the log is offline");
        assert!(log.append(batch(9, 1, 10, 0), 1, 0).is_err());
        assert!(log.read(0, 1 << 20, u64::MAX).await.is_err());
        drop_and_wait(log).await;
        // The next start finds a prefix of the old log at least as long as the cut.
        let log = open(&dir, &config, &flusher).await;
        assert!(log.log_end_offset() >= 100, "end {}", log.log_end_offset());
        model.truncate(log.log_end_offset());
        assert_matches(&log, &model, &mut Rng(1)).await;
    });
}

#[test]
fn an_error_before_the_first_change_leaves_the_log_as_it_was() {
    run(|| async {
        let dir = scratch("truncate-error-first-write");
        let config = quiet_config();
        let armed = Rc::new(Cell::new(false));
        let flusher =
            armed_flusher(armed.clone(), true, |op, path| op == IoOp::Write && file_named(path, "partition.state"));
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        let idempotent = |tag: u64, seq: i32| {
            let mut b = batch(tag, 2, 150, tag as i64).to_vec();
            build::set_producer(&mut b, 7, 0, seq);
            Bytes::from(b)
        };
        for i in 0..40u64 {
            let b = idempotent(i, 2 * i as i32);
            let info = log.append(b.clone(), 1, 0).unwrap();
            model.push(&b, info.base_offset, 2, 1);
        }
        log.flush(true, 0).await.unwrap();
        // Not yet written: a truncation into written data would take it back too.
        let unwritten = idempotent(40, 80);
        let info = log.append(unwritten.clone(), 1, 0).unwrap();
        model.push(&unwritten, info.base_offset, 2, 1);
        let end = log.log_end_offset();
        armed.set(true);
        let e = log.truncate_to(30).await.expect_err("no space for the state file");
        armed.set(false);
        assert!(e.is_no_space(), "{e}");
        assert!(log.failed().is_none(), "nothing changed: the log goes on");
        assert_eq!(log.log_end_offset(), end, "nothing was cut");
        assert_matches(&log, &model, &mut Rng(2)).await;
        // The producer state still matches the log: the retry is the batch that is there.
        let retried = log.append(unwritten, 1, 0).unwrap();
        assert!(retried.duplicate);
        assert_eq!(retried.base_offset, info.base_offset);
        // Once there is room the truncation goes through.
        assert_eq!(log.truncate_to(30).await.unwrap(), 30);
        model.truncate(30);
        assert_matches(&log, &model, &mut Rng(3)).await;
    });
}

#[test]
fn a_cut_whose_index_entry_lies_below_the_log_start_is_found() {
    run(|| async {
        let dir = scratch("truncate-entry-below-start");
        let config = quiet_config();
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        append_batches(&log, &mut model, 0, 60, 1);
        log.flush(true, 0).await.unwrap();
        // The first offset index entry is some batches in: cuts before it start from offset 0.
        log.advance_log_start_offset(2).await.unwrap();
        model.log_start_offset = 2;
        assert_eq!(log.truncate_to(4).await.unwrap(), 4);
        model.truncate(4);
        assert_matches(&log, &model, &mut Rng(4)).await;
        drop_and_wait(log).await;
        let log = open(&dir, &config, &flusher).await;
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 4));
        assert_matches(&log, &model, &mut Rng(5)).await;
    });
}

#[test]
fn a_cut_below_the_log_start_empties_the_log_and_starts_it_there() {
    run(|| async {
        let dir = scratch("truncate-below-start");
        let config = quiet_config();
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        // Batches of five records: 0..=4, 5..=9, ...
        for i in 0..200u64 {
            log.append(batch(i, 5, 100, i as i64), 3, 0).unwrap();
        }
        log.flush(true, 0).await.unwrap();
        log.append(batch(200, 5, 100, 200), 4, 0).unwrap();
        // DeleteRecords inside the batch 505..=509.
        log.advance_log_start_offset(507).await.unwrap();
        // The batch holding offset 508 starts below the log start: the log empties, starting at 505.
        assert_eq!(log.truncate_to(508).await.unwrap(), 505);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (505, 505));
        assert!(log.leader_epochs().is_empty());
        assert_eq!(log.producer_count(), 0);
        assert_eq!(log.unflushed_bytes(), 0);
        assert_eq!(log.cache_bytes(), 0);
        assert!(log.read(505, 1 << 20, u64::MAX).await.unwrap().chunks.is_empty());
        // The leader's batch at 505 follows on.
        let next = Bytes::from(stored(&batch(900, 5, 100, 900), 505, 6));
        log.append_replicated(next.clone(), 0).unwrap();
        log.flush(true, 0).await.unwrap();
        drop_and_wait(log).await;
        let log = open(&dir, &config, &flusher).await;
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (505, 510));
        assert_eq!(read_all(&log, 505).await, next);
        assert_eq!(log.leader_epochs(), vec![(6, 505)]);
        // An offset below the log start asked for: the log starts again there.
        assert_eq!(log.truncate_to(100).await.unwrap(), 100);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
        drop_and_wait(log).await;
        let log = open(&dir, &config, &flusher).await;
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
        assert_eq!(log.segment_count(), 0);
        assert!(log.leader_epochs().is_empty());
    });
}

#[test]
fn appends_wait_for_a_truncation_and_nothing_stays_owed_to_the_files() {
    run(|| async {
        let dir = scratch("truncate-pauses-appends");
        let config = quiet_config();
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        append_batches(&log, &mut model, 0, 300, 1);
        log.flush(true, 0).await.unwrap();
        append_batches(&log, &mut model, 300, 20, 1);
        let done = Cell::new(false);
        let refused = RefCell::new(Vec::new());
        let (cut, ()) = zip(
            async {
                let cut = log.truncate_to(100).await;
                done.set(true);
                cut
            },
            async {
                while !done.get() {
                    match log.append(batch(999, 1, 150, 0), 1, 0) {
                        Ok(info) => panic!("appended at {} during a truncation", info.base_offset),
                        Err(e) => refused.borrow_mut().push(e),
                    }
                    // A pause, not a busy loop: each poll of the truncation's pending I/O
                    // registers its waker again.
                    glommio::timer::sleep(Duration::from_micros(100)).await;
                }
            },
        )
        .await;
        assert_eq!(cut.unwrap(), 100);
        assert!(!refused.borrow().is_empty(), "the truncation waited for I/O");
        for e in refused.borrow().iter() {
            assert!(matches!(e, LogError::Truncated { .. }), "{e}");
        }
        assert_eq!(log.log_end_offset(), 100);
        assert_eq!(log.unflushed_bytes(), 0);
        // Appends go on after it.
        model.truncate(100);
        append_batches(&log, &mut model, 1000, 5, 1);
        log.flush(true, 0).await.unwrap();
        assert_eq!(log.unflushed_bytes(), 0);
        assert_matches(&log, &model, &mut Rng(6)).await;
    });
}

#[test]
fn reads_during_a_truncation_never_run_into_the_shortened_file() {
    run(|| async {
        let dir = scratch("truncate-concurrent-reads");
        // Nothing cached: reads go to the files.
        let config = LogConfig { cache_bytes_max: 0, ..quiet_config() };
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        append_batches(&log, &mut model, 0, 300, 1);
        log.flush(true, 0).await.unwrap();
        assert!(!log.is_cached(150));
        let done = Cell::new(false);
        let reads = Cell::new(0);
        let (cut, ()) = zip(
            async {
                let cut = log.truncate_to(160).await;
                done.set(true);
                cut
            },
            async {
                while !done.get() {
                    // A batch before the cut, in the segment being shortened: always there.
                    let read = log.read(150, 8 << 10, u64::MAX).await.expect("a read below the cut");
                    assert_eq!(read.chunks.concat()[..model.batches[150].2.len()], model.batches[150].2[..]);
                    reads.set(reads.get() + 1);
                }
            },
        )
        .await;
        assert_eq!(cut.unwrap(), 160);
        assert!(reads.get() > 1);
        assert!(log.failed().is_none(), "{:?}", log.failed());
        model.truncate(160);
        assert_matches(&log, &model, &mut Rng(7)).await;
    });
}

#[test]
fn a_wait_learns_of_a_cut_below_an_earlier_rollback() {
    run(|| async {
        let dir = scratch("truncate-wait-lowest-rollback");
        let config = quiet_config();
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        append_batches(&log, &mut model, 0, 20, 1);
        log.flush(true, 0).await.unwrap();
        append_batches(&log, &mut model, 20, 10, 1);
        log.flush(false, 0).await.unwrap();
        // Offset 25 is written, not yet durable.
        let wait = log.wait_durable(25);
        append_batches(&log, &mut model, 30, 10, 1);
        // Two cuts since the wait began: the first (of unwritten batches) spares offset 25,
        // the second takes it.
        assert_eq!(log.truncate_to(32).await.unwrap(), 32);
        assert_eq!(log.truncate_to(22).await.unwrap(), 22);
        // The log grows past 25 again, with other batches, and they become durable.
        model.truncate(22);
        append_batches(&log, &mut model, 100, 10, 1);
        log.flush(true, 0).await.unwrap();
        let waited = wait.await;
        assert!(matches!(waited, Err(LogError::Truncated { offset: 22 })), "{waited:?}");
    });
}

#[test]
fn a_flush_writes_no_batch_of_an_epoch_the_epoch_file_does_not_name() {
    run(|| async {
        let dir = scratch("flush-epochs-with-batches");
        let config = quiet_config();
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        append_batches(&log, &mut model, 0, 10, 1);
        log.flush(true, 0).await.unwrap();
        append_batches(&log, &mut model, 10, 1, 2);
        // A batch of epoch 3 arrives while the flush writes the epoch file naming epoch 2.
        let (flushed, ()) = zip(log.flush(true, 0), async { append_batches(&log, &mut model, 11, 1, 3) }).await;
        flushed.unwrap();
        drop_and_wait(log).await;
        let log = open(&dir, &config, &flusher).await;
        assert!(log.log_end_offset() >= 11);
        assert_eq!(log.leader_epochs(), epochs_of_batches(&log).await);
    });
}

#[test]
fn a_rollback_rewrites_the_epoch_file_that_named_what_it_took_back() {
    run(|| async {
        let dir = scratch("rollback-epochs");
        // Sync durability: batches that find no space are taken back.
        let config = small_config();
        let full = Rc::new(Cell::new(false));
        let flusher = armed_flusher(full.clone(), true, |op, path| op == IoOp::Write && extension_is(path, "log"));
        let log = open(&dir, &config, &flusher).await;
        for i in 0..10u64 {
            let info = log.append(batch(i, 1, 150, i as i64), 1, 0).unwrap();
            log.wait_durable(info.last_offset).await.unwrap();
        }
        full.set(true);
        // Its flush writes the epoch file naming epoch 5, then finds no room for the batch.
        let lost = log.append(batch(10, 1, 150, 10), 5, 0).unwrap();
        let e = log.wait_durable_since(lost.last_offset, lost.tail_epoch).await.unwrap_err();
        assert!(e.is_no_space(), "{e}");
        full.set(false);
        assert_eq!(log.leader_epochs(), vec![(1, 0)]);
        // Appends wait while the producer state is rebuilt after the rollback.
        let info = loop {
            match log.append(batch(11, 1, 150, 11), 1, 0) {
                Err(e) if e.is_no_space() => glommio::timer::sleep(Duration::from_millis(1)).await,
                other => break other.unwrap(),
            }
        };
        assert_eq!(info.base_offset, 10);
        log.wait_durable(info.last_offset).await.unwrap();
        drop_and_wait(log).await;
        let log = open(&dir, &config, &flusher).await;
        assert_eq!(log.log_end_offset(), 11);
        assert_eq!(log.leader_epochs(), vec![(1, 0)], "offset 10 was written in epoch 1");
    });
}

#[test]
fn a_high_watermark_saved_during_a_truncation_is_never_past_the_log_end() {
    run(|| async {
        let dir = scratch("high-watermark-during-truncation");
        let config = quiet_config();
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        append_batches(&log, &mut model, 0, 300, 1);
        log.flush(true, 0).await.unwrap();
        let (cut, saved) = zip(log.truncate_to(100), log.save_high_watermark(250)).await;
        assert_eq!(cut.unwrap(), 100);
        let on_disk = std::fs::read(dir.join("high-watermark")).ok().map(|bytes| {
            let payload = decode_state_file(StateFileKind::HighWatermark, &bytes).unwrap();
            u64::from_be_bytes(payload.try_into().unwrap())
        });
        match saved {
            Ok(()) => assert!(on_disk.is_some_and(|hw| hw <= log.log_end_offset()), "{on_disk:?}"),
            Err(e) => {
                assert!(matches!(e, LogError::OffsetOutOfRange { .. }), "{e}");
                assert_eq!(on_disk, None);
            }
        }
    });
}

#[test]
fn replicated_batches_without_a_leader_epoch_are_refused() {
    run(|| async {
        let dir = scratch("replicated-negative-epoch");
        let config = quiet_config();
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        // Not even as the first epoch of the log: the epoch file could not be read back.
        let first = Bytes::from(stored(&batch(0, 1, 10, 0), 0, -1));
        let e = log.append_replicated(first, 0).unwrap_err();
        assert!(matches!(e, LogError::Batch(ringtail_log::BatchError::Invalid { .. })), "{e}");
        let mut mixed = stored(&batch(0, 1, 10, 0), 0, 2);
        mixed.extend(stored(&batch(1, 1, 10, 1), 1, -1));
        assert!(log.append_replicated(Bytes::from(mixed), 0).is_err());
        assert_eq!(log.log_end_offset(), 0, "nothing appended");
        assert!(log.leader_epochs().is_empty());
        log.flush(true, 0).await.unwrap();
        drop_and_wait(log).await;
        open(&dir, &config, &flusher).await;
    });
}

/// A truncation below the log start stopped at each of its file operations in turn, then a
/// crash: the log reopens either empty at the cut or with its old start and a prefix of its old
/// batches, never with a record below the old start.
#[test]
fn a_full_truncation_stopped_anywhere_never_brings_back_deleted_records() {
    for fail_at in 1..40u64 {
        let completed = run(move || async move {
            let dir = scratch(&format!("truncate-fully-crash-{fail_at}"));
            let config = quiet_config();
            let armed = Rc::new(Cell::new(false));
            let seen = Rc::new(Cell::new(0u64));
            let counter = seen.clone();
            let flusher = armed_flusher(armed.clone(), false, move |op, _| {
                let changing = matches!(op, IoOp::Write | IoOp::Rename | IoOp::Remove | IoOp::Sync);
                changing && {
                    counter.set(counter.get() + 1);
                    counter.get() == fail_at
                }
            });
            let log = open(&dir, &config, &flusher).await;
            let mut model = Model::default();
            append_batches(&log, &mut model, 0, 700, 1);
            log.flush(true, 0).await.unwrap();
            append_batches(&log, &mut model, 700, 5, 2);
            log.advance_log_start_offset(350).await.unwrap();
            model.log_start_offset = 350;
            armed.set(true);
            let truncated = log.truncate_to(200).await;
            armed.set(false);
            match &truncated {
                Ok(cut) => assert_eq!(*cut, 200),
                Err(e) => {
                    assert!(e.is_fatal() || e.is_no_space(), "stop at {fail_at}: {e}");
                    assert!(log.failed().is_some() || log.log_end_offset() == model.end(), "stop at {fail_at}");
                }
            }
            drop_and_wait(log).await;
            let log = open(&dir, &config, &flusher).await;
            let (start, end) = (log.log_start_offset(), log.log_end_offset());
            if start == 200 {
                assert_eq!(end, 200, "stop at {fail_at}: a completed truncation leaves an empty log");
            } else {
                assert_eq!(start, 350, "stop at {fail_at}: the old start stands until the log is empty");
                model.truncate(end);
                if end > start {
                    assert_matches(&log, &model, &mut Rng(fail_at)).await;
                }
            }
            truncated.is_ok()
        });
        if completed {
            println!("completed once the fault came after {} file operations", fail_at - 1);
            return;
        }
    }
    panic!("the truncation never completed within the faults tried");
}
