//! A full file system: ENOSPC while writing takes back the unacknowledged batches (sync) or
//! keeps them queued (async) without failing the log, the producer state forgets what was
//! taken back, and the free-space watermarks refuse data appends before the disk is full.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ringtail_log::batch::build;
use ringtail_log::space::{FsUsage, SpaceConfig};
use ringtail_log::{DiskSpace, Durability, Faults, Flusher, IoOp, LogConfig, LogError, SpacePriority};

use crate::common::*;

/// A flusher whose segment writes fail with ENOSPC while `full` is set.
fn full_disk(full: Rc<Cell<bool>>) -> Rc<Flusher> {
    let faults = Faults::no_space(move |op, path| {
        full.get() && op == IoOp::Write && path.extension().is_some_and(|e| e == "log")
    });
    Flusher::new(faults, Duration::from_millis(5))
}

fn idempotent(tag: u64, producer_id: i64, seq: i32) -> Bytes {
    let mut b = batch(tag, 2, 300, tag as i64).to_vec();
    build::set_producer(&mut b, producer_id, 0, seq);
    Bytes::from(b)
}

#[test]
fn no_space_takes_back_unwritten_batches_and_the_log_goes_on() {
    run(|| async {
        let dir = scratch("space-sync");
        let config = small_config();
        let full = Rc::new(Cell::new(false));
        let flusher = full_disk(full.clone());
        let task = flusher.spawn();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        // Enough to cross segments, so the taken-back tail may start a new one.
        for i in 0..120u64 {
            let b = batch(i, 2, 900, i as i64);
            let info = log.append(b.clone(), 0, 0).unwrap();
            model.push(&b, info.base_offset, 2, 0);
            log.wait_durable(info.last_offset).await.unwrap();
        }
        let acknowledged = log.log_end_offset();
        let idle = idempotent(500, 7, 0);
        let info = log.append(idle.clone(), 0, 0).unwrap();
        model.push(&idle, info.base_offset, 2, 0);
        log.wait_durable(info.last_offset).await.unwrap();
        let acknowledged_with_producer = log.log_end_offset();
        assert_eq!(acknowledged_with_producer, acknowledged + 2);

        full.set(true);
        // glommio runs a spawned flush at once, up to its first wait: the first append's flush
        // may have failed and be rebuilding the producer state when the second comes.
        let lost = log.append(batch(900, 3, 900, 900), 0, 0).unwrap();
        let next = idempotent(501, 7, 2);
        let mut errors = vec![log.wait_durable_since(lost.last_offset, lost.tail_epoch).await.unwrap_err()];
        match log.append(next.clone(), 0, 0) {
            Ok(info) => errors.push(log.wait_durable_since(info.last_offset, info.tail_epoch).await.unwrap_err()),
            Err(e) => errors.push(e),
        }
        for e in &errors {
            assert!(matches!(e, LogError::NoSpace { .. }), "{e}");
            assert!(!e.is_fatal());
        }
        assert!(log.failed().is_none(), "no space is not a storage failure");
        assert_eq!(log.log_end_offset(), acknowledged_with_producer, "the unwritten tail is taken back");
        // Acknowledged data reads back while the disk is full.
        assert_matches(&log, &model, &mut Rng(3)).await;

        full.set(false);
        // The producer's retry is appended (not answered as a duplicate of a batch that is gone),
        // at the offset the taken-back batch had.
        let retried = log.append(next.clone(), 0, 0).unwrap();
        assert!(!retried.duplicate, "the producer state forgot the taken-back batch");
        assert_eq!(retried.base_offset, acknowledged_with_producer);
        model.push(&next, retried.base_offset, 2, 0);
        log.wait_durable(retried.last_offset).await.unwrap();
        // And its next retry is a duplicate again.
        assert!(log.append(next.clone(), 0, 0).unwrap().duplicate);
        for i in 0..30u64 {
            let b = batch(1000 + i, 2, 900, i as i64);
            let info = log.append(b.clone(), 0, 0).unwrap();
            model.push(&b, info.base_offset, 2, 0);
            log.wait_durable(info.last_offset).await.unwrap();
        }
        assert_matches(&log, &model, &mut Rng(4)).await;
        flusher.stop();
        task.await;
        drop_and_wait(log).await;
        // Nothing taken back comes back after a restart; everything acknowledged does.
        let log = open(&dir, &config, &flusher_fresh()).await;
        assert_eq!(log.log_end_offset(), model.end());
        assert_matches(&log, &model, &mut Rng(5)).await;
    });
}

#[test]
fn no_space_keeps_async_batches_queued_until_there_is_room() {
    run(|| async {
        let dir = scratch("space-async");
        let config = LogConfig { durability: Durability::Async, fsync_interval_ms: 20, ..small_config() };
        let full = Rc::new(Cell::new(true));
        let flusher = full_disk(full.clone());
        let task = flusher.spawn();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        for i in 0..40u64 {
            let b = batch(i, 2, 900, i as i64);
            let info = log.append(b.clone(), 0, 0).unwrap();
            model.push(&b, info.base_offset, 2, 0);
        }
        // Acknowledged under async durability: they may not be dropped. The flusher finds the
        // disk full at its next tick (polled: a loaded machine may run it late).
        for _ in 0..200 {
            if log.is_space_stalled() {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        assert!(log.is_space_stalled());
        assert!(log.failed().is_none());
        assert_eq!(log.log_end_offset(), model.end());
        assert_matches(&log, &model, &mut Rng(6)).await;
        full.set(false);
        log.wait_durable(model.end() - 1).await.unwrap();
        assert!(!log.is_space_stalled());
        flusher.stop();
        task.await;
        drop_and_wait(log).await;
        let log = open(&dir, &config, &flusher_fresh()).await;
        assert_matches(&log, &model, &mut Rng(7)).await;
    });
}

fn flusher_fresh() -> Rc<Flusher> {
    flusher()
}

#[test]
fn watermarks_refuse_data_before_internal_topics_and_resume_by_themselves() {
    run(|| async {
        let dir = scratch("space-watermarks");
        const MIB: u64 = 1 << 20;
        let free = Rc::new(Cell::new(500 * MIB));
        let f = free.clone();
        let config = SpaceConfig { low_bytes: 100 * MIB, low_percent: 0, high_bytes: 150 * MIB, high_percent: 0 };
        let space = DiskSpace::with_probe(config, move || Ok(FsUsage { total_bytes: 1000 * MIB, free_bytes: f.get() }))
            .unwrap();
        let flusher = flusher();
        flusher.set_space(Rc::new(space));
        let data = open(&dir.join("data"), &small_config(), &flusher).await;
        let internal_config = LogConfig { space_priority: SpacePriority::Internal, ..small_config() };
        let internal = open(&dir.join("internal"), &internal_config, &flusher).await;
        let info = data.append(batch(1, 1, 100, 1), 0, 0).unwrap();
        data.wait_durable(info.last_offset).await.unwrap();

        free.set(90 * MIB);
        flusher.space().refresh().unwrap();
        let e = data.append(batch(2, 1, 100, 2), 0, 0).unwrap_err();
        assert!(e.is_no_space() && !e.is_fatal(), "{e}");
        assert!(e.to_string().contains("low watermark"), "{e}");
        // Reads go on; internal topics append down to half the low watermark.
        assert_eq!(data.read(0, 1 << 20, u64::MAX).await.unwrap().next_offset, 1);
        let info = internal.append(batch(3, 1, 100, 3), 0, 0).unwrap();
        internal.wait_durable(info.last_offset).await.unwrap();
        free.set(40 * MIB);
        flusher.space().refresh().unwrap();
        assert!(internal.append(batch(4, 1, 100, 4), 0, 0).unwrap_err().is_no_space());
        // Between the watermarks data stays refused; above the high one it is accepted again.
        free.set(120 * MIB);
        flusher.space().refresh().unwrap();
        assert!(data.append(batch(5, 1, 100, 5), 0, 0).is_err());
        free.set(150 * MIB);
        flusher.space().refresh().unwrap();
        let info = data.append(batch(6, 1, 100, 6), 0, 0).unwrap();
        data.wait_durable(info.last_offset).await.unwrap();
        assert_eq!(flusher.space().refused(), 3);
    });
}

#[test]
fn a_segment_taken_back_leaves_no_file_behind() {
    run(|| async {
        let dir = scratch("space-segment-file");
        let config = small_config();
        // Writes fail (ENOSPC) for every segment but the first while `full` is set.
        let full = Rc::new(Cell::new(false));
        let f = full.clone();
        let faults = Faults::no_space(move |op, path| {
            f.get()
                && op == IoOp::Write
                && path.extension().is_some_and(|e| e == "log")
                && !path.ends_with("00000000000000000000.log")
        });
        let flusher = Flusher::new(faults, Duration::from_millis(5));
        let task = flusher.spawn();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        let mut tag = 0u64;
        let mut next_batch = || {
            tag += 1;
            batch(tag, 2, 900, tag as i64)
        };
        let size = next_batch().len() as u64;
        // Fill the first segment until exactly one more batch fits.
        while log.size_bytes() + 2 * size <= config.segment_bytes_max {
            let b = next_batch();
            let info = log.append(b.clone(), 0, 0).unwrap();
            model.push(&b, info.base_offset, 2, 0);
            log.wait_durable(info.last_offset).await.unwrap();
        }
        assert_eq!(log.segment_count(), 1);
        // One append of two batches: the first fits the segment, the second opens a new one,
        // whose file is created and then cannot be allocated.
        full.set(true);
        let (a, b) = (next_batch(), next_batch());
        let mut two = a.to_vec();
        two.extend_from_slice(&b);
        let info = log.append(Bytes::from(two), 0, 0).unwrap();
        let e = log.wait_durable_since(info.last_offset, info.tail_epoch).await.unwrap_err();
        assert!(e.is_no_space(), "{e}");
        assert_eq!(log.log_end_offset(), model.end());
        assert_eq!(log.segment_count(), 1, "the new segment is taken back");
        full.set(false);
        // Grow past where the taken-back segment began and past another roll. Appends are
        // refused (retriably) while the producer state is rebuilt after the rollback.
        for _ in 0..60 {
            let b = next_batch();
            let info = loop {
                match log.append(b.clone(), 0, 0) {
                    Err(e) if e.is_no_space() => glommio::timer::sleep(Duration::from_millis(1)).await,
                    other => break other.unwrap(),
                }
            };
            model.push(&b, info.base_offset, 2, 0);
            log.wait_durable(info.last_offset).await.unwrap();
        }
        assert!(log.segment_count() >= 3);
        flusher.stop();
        task.await;
        drop_and_wait(log).await;
        // An empty file left at the taken-back segment's base would be a hole in the offsets.
        let log = open(&dir, &config, &flusher_fresh()).await;
        assert_eq!(log.log_end_offset(), model.end());
        assert_matches(&log, &model, &mut Rng(8)).await;
    });
}
