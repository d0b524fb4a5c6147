//! Behaviour of one log: offsets, reads from cache and disk, rolling, timestamps, retention.

use crate::common::*;
use ringtail_log::{BatchError, Durability, LogConfig, LogError};

#[test]
fn appends_get_offsets_and_read_back_byte_for_byte() {
    run(|| async {
        let dir = scratch("roundtrip");
        let config = small_config();
        let flusher = flusher();
        let task = flusher.spawn();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        for i in 0..50u64 {
            let b = batch(i, 3, 600, 1_000 + i as i64);
            let info = log.append(b.clone(), 7, 0).unwrap();
            assert_eq!(info.base_offset, i * 3);
            assert_eq!(info.last_offset, i * 3 + 2);
            model.push(&b, info.base_offset, 3, 7);
        }
        // Readable before it is durable (from the cache), then durable after the group commit.
        let mut rng = Rng(1);
        assert_matches(&log, &model, &mut rng).await;
        log.wait_durable(149).await.unwrap();
        assert_eq!(log.durable_offset(), 150);
        assert!(log.segment_count() > 1, "64 KiB segments roll");
        // The cache holds 16 KiB, so most of this comes from disk.
        assert_matches(&log, &model, &mut rng).await;
        // A read inside a batch returns the whole batch.
        let got = log.read(4, 1, u64::MAX).await.unwrap();
        assert_eq!(got.chunks.concat(), model.batches[1].2);
        assert_eq!(got.next_offset, 6);
        // Reads stop before max_offset, at the end, and refuse offsets outside the log.
        assert!(log.read(3, 1 << 20, 3).await.unwrap().chunks.is_empty());
        assert!(log.read(150, 1 << 20, u64::MAX).await.unwrap().chunks.is_empty());
        let e = log.read(151, 1 << 20, u64::MAX).await.unwrap_err();
        assert!(matches!(e, LogError::OffsetOutOfRange { .. }), "{e}");
        flusher.stop();
        task.await;
        log.close(0).await.unwrap();
        let log = open(&dir, &config, &flusher).await;
        let report = log.recovery_report();
        assert!(report.clean_shutdown, "{report:?}");
        assert_eq!(report.segments_scanned, 0, "{report:?}");
        assert_matches(&log, &model, &mut rng).await;
        // Appends continue after the last offset.
        let b = batch(99, 1, 10, 5);
        assert_eq!(log.append(b, 8, 0).unwrap().base_offset, 150);
        log.flush(true, 0).await.unwrap();
        assert_eq!(log.durable_offset(), 151);
    });
}

#[test]
fn bad_batches_are_refused_and_change_nothing() {
    run(|| async {
        let dir = scratch("refuse");
        let flusher = flusher();
        let log = open(&dir, &small_config(), &flusher).await;
        let good = batch(1, 2, 10, 0);
        let mut corrupt = good.to_vec();
        let n = corrupt.len();
        corrupt[n - 1] ^= 1;
        let mut two = good.to_vec();
        two.extend_from_slice(&corrupt);
        let kind = |e: &LogError| match e {
            LogError::Batch(BatchError::CrcMismatch { .. } | BatchError::Truncated { .. }) => "corrupt",
            LogError::Batch(BatchError::TooLarge { .. }) => "too large",
            LogError::Batch(BatchError::Invalid { .. }) => "invalid",
            _ => "other",
        };
        for (records, expected) in [
            (corrupt.clone(), "corrupt"),
            (two, "corrupt"),
            (batch(2, 1, 40 << 10, 0).to_vec(), "too large"),
            (Vec::new(), "invalid"),
        ] {
            let e = log.append(records.into(), 0, 0).unwrap_err();
            assert_eq!(kind(&e), expected, "{e}");
            assert_eq!(log.log_end_offset(), 0);
        }
        log.append(good, 0, 0).unwrap();
        assert_eq!(log.log_end_offset(), 2);
    });
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    run(|| async {
        let dir = scratch("timestamps");
        let flusher = flusher();
        let log = open(&dir, &small_config(), &flusher).await;
        // Batch i holds 4 records with timestamps 1000*i + 0..4.
        for i in 0..100u64 {
            log.append(batch(i, 4, 100, 1000 * i as i64), 0, 0).unwrap();
        }
        log.flush(true, 0).await.unwrap();
        for (ts, expected) in [
            (0, Some((0, 0))),
            (2, Some((2, 2))),
            (4, Some((4, 1000))),
            (50_003, Some((203, 50_003))),
            (99_003, Some((399, 99_003))),
            (99_004, None),
        ] {
            assert_eq!(log.offset_for_timestamp(ts).await.unwrap(), expected, "timestamp {ts}");
        }
    });
}

#[test]
fn retention_deletes_whole_sealed_segments_and_moves_the_start() {
    run(|| async {
        let dir = scratch("retention");
        let config =
            LogConfig { retention_bytes_max: Some(150 << 10), retention_age_ms_max: Some(60_000), ..small_config() };
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        for i in 0..400u64 {
            let b = batch(i, 2, 500, 1_000_000 + i as i64);
            let info = log.append(b.clone(), 0, 0).unwrap();
            model.push(&b, info.base_offset, 2, 0);
        }
        log.flush(true, 0).await.unwrap();
        let before = log.segment_count();
        let size = log.size_bytes();
        assert!(size > 300 << 10);
        // By size: the log shrinks to at most the limit plus one segment.
        let deleted = log.enforce_retention(1_000_000).await.unwrap();
        assert!(deleted > 0);
        assert_eq!(log.segment_count(), before - deleted);
        assert!(log.size_bytes() >= 150 << 10 && log.size_bytes() < (150 << 10) + (64 << 10), "{}", log.size_bytes());
        let start = log.log_start_offset();
        assert!(start > 0);
        assert!(matches!(log.read(start - 1, 100, u64::MAX).await, Err(LogError::OffsetOutOfRange { .. })));
        assert!(!log.read(start, 100, u64::MAX).await.unwrap().chunks.is_empty());
        // By time: everything sealed is older than a minute at t = 2_000_000; the active segment stays.
        log.enforce_retention(2_000_000).await.unwrap();
        assert_eq!(log.segment_count(), 1);
        // DeleteRecords moves the start inside a segment; reads below it fail.
        let end = log.log_end_offset();
        log.advance_log_start_offset(end - 3).await.unwrap();
        assert_eq!(log.log_start_offset(), end - 3);
        assert!(log.read(end - 4, 100, u64::MAX).await.is_err());
        assert!(log.advance_log_start_offset(end + 1).await.is_err());
        // The start survives a restart.
        log.close(0).await.unwrap();
        let log = open(&dir, &config, &flusher).await;
        assert_eq!(log.log_start_offset(), end - 3);
        assert_eq!(log.log_end_offset(), end);
        model.log_start_offset = end - 3;
        assert_matches(&log, &model, &mut Rng(3)).await;
    });
}

#[test]
fn async_durability_acknowledges_before_the_disk_and_writes_soon_after() {
    run(|| async {
        let dir = scratch("async");
        let config = LogConfig { durability: Durability::Async, fsync_interval_ms: 20, ..small_config() };
        let flusher = flusher();
        let task = flusher.spawn();
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        let mut last = 0;
        for i in 0..20u64 {
            let b = batch(i, 1, 100, 0);
            let info = log.append(b.clone(), 0, 0).unwrap();
            model.push(&b, info.base_offset, 1, 0);
            last = info.last_offset;
        }
        assert_eq!(log.durable_offset(), 0, "nothing is synced at append time");
        log.wait_written(last).await.unwrap();
        log.wait_durable(last).await.unwrap();
        assert_matches(&log, &model, &mut Rng(5)).await;
        flusher.stop();
        task.await;
    });
}

#[test]
fn large_flushes_split_into_chunks_read_back_intact() {
    large_flush((1 << 20, 8));
    // A shape `ringtail iotune` may choose: small chunks, few in flight.
    large_flush((64 << 10, 2));
}

fn large_flush(shape: (usize, usize)) {
    run(move || async move {
        let dir = scratch("chunks");
        let config = LogConfig { segment_bytes_max: 8 << 20, preallocate_bytes: 1 << 20, ..small_config() };
        let flusher = flusher();
        flusher.set_write_shape(shape.0, shape.1);
        assert_eq!(flusher.write_shape(), shape);
        let log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        // About 5 MiB in one flush: several 1 MiB write chunks, batches straddling chunk edges.
        for i in 0..170u64 {
            let b = batch(i, 1, 30_000 + i as usize, 0);
            let info = log.append(b.clone(), 0, 0).unwrap();
            model.push(&b, info.base_offset, 1, 0);
        }
        log.flush(true, 0).await.unwrap();
        assert_eq!(log.durable_offset(), 170);
        assert_matches(&log, &model, &mut Rng(11)).await;
        log.close(0).await.unwrap();
        let log = open(&dir, &config, &flusher).await;
        assert_matches(&log, &model, &mut Rng(12)).await;
    });
}

#[test]
fn compressed_batches_claiming_absurd_record_counts_are_refused() {
    run(|| async {
        let dir = scratch("huge-spans");
        let flusher = flusher();
        let log = open(&dir, &small_config(), &flusher).await;
        // A "gzip" batch claiming `count` records: the broker cannot count them without
        // decompressing. 2^31 - 1 records in ~100 bytes would burn 2^31 offsets (and a segment
        // every two batches); a claim a real codec could make is accepted.
        let claiming = |count: i32| {
            let mut b = batch(0, 1, 100, 0).to_vec();
            b[22] = 0x01;
            b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
            b[57..61].copy_from_slice(&count.to_be_bytes());
            ringtail_log::batch::build::reseal(&mut b);
            bytes::Bytes::from(b)
        };
        let e = log.append(claiming(i32::MAX), 0, 0).unwrap_err();
        assert!(matches!(e, LogError::Batch(BatchError::Invalid { .. })), "{e}");
        assert_eq!(log.log_end_offset(), 0);
        let info = log.append(claiming(50_000), 0, 0).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 49_999));
        log.flush(true, 0).await.unwrap();
        log.close(0).await.unwrap();
        let log = open(&dir, &small_config(), &flusher).await;
        assert_eq!(log.log_end_offset(), 50_000);
        let got = log.read(25_000, 1 << 20, u64::MAX).await.unwrap();
        assert_eq!(got.chunks.len(), 1);
    });
}

#[test]
fn a_damaged_state_file_stops_the_open_and_stray_files_are_left_alone() {
    run(|| async {
        let dir = scratch("state");
        let flusher = flusher();
        let log = open(&dir, &small_config(), &flusher).await;
        log.append(batch(0, 1, 10, 0), 0, 0).unwrap();
        log.close(0).await.unwrap();
        std::fs::write(dir.join("99999999999999999999.log"), b"not ours").unwrap();
        std::fs::write(dir.join("00000000000000000077.index"), b"orphan").unwrap();
        let log = open(&dir, &small_config(), &flusher).await;
        assert_eq!(log.log_end_offset(), 1);
        assert!(dir.join("99999999999999999999.log").exists());
        assert!(!dir.join("00000000000000000077.index").exists(), "orphan index files are removed");
        log.close(0).await.unwrap();
        let state = dir.join("partition.state");
        let mut bytes = std::fs::read(&state).unwrap();
        bytes[14] ^= 1;
        std::fs::write(&state, &bytes).unwrap();
        let e = ringtail_log::PartitionLog::open(&dir, small_config(), &flusher).await.unwrap_err();
        assert!(e.is_fatal() && e.to_string().contains("partition.state"), "{e}");
    });
}

#[test]
fn log_append_time_stamps_batches_that_read_back_valid_after_a_restart() {
    run(|| async {
        let dir = scratch("log-append-time");
        let config = LogConfig { log_append_time: true, ..small_config() };
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        // Producer timestamps far from the clock are not refused: they are replaced.
        let info = log.append(batch(1, 3, 100, 5), 0, 70_000_000).unwrap();
        assert_eq!((info.max_timestamp, info.log_append_time_ms), (70_000_000, 70_000_000));
        log.append(batch(2, 2, 100, 6), 0, 70_000_005).unwrap();
        log.flush(true, 0).await.unwrap();
        // Every record of a LogAppendTime batch has its timestamp: the first one is found.
        assert_eq!(log.offset_of_max_timestamp().await.unwrap(), Some((3, 70_000_005)));
        assert_eq!(log.offset_for_timestamp(70_000_001).await.unwrap(), Some((3, 70_000_005)));
        log.close(0).await.unwrap();
        drop_and_wait(log).await;
        // Read back from disk, CRC-checked: the rewritten headers are valid batches.
        let log = open(&dir, &config, &flusher).await;
        let read = log.read(0, 1 << 20, u64::MAX).await.unwrap();
        let bytes: Vec<u8> = read.chunks.concat();
        let batches = ringtail_log::batch::validate_records(&bytes, 1 << 20, ringtail_log::Origin::Log).unwrap();
        let stamps: Vec<(i64, bool)> =
            batches.iter().map(|(h, _)| (h.max_timestamp, h.attributes & 0x08 != 0)).collect();
        assert_eq!(stamps, vec![(70_000_000, true), (70_000_005, true)]);
    });
}

#[test]
fn create_time_outside_the_bounds_is_refused_and_max_timestamp_is_found() {
    run(|| async {
        let dir = scratch("timestamp-bounds");
        let config = LogConfig { timestamp_before_max_ms: 1_000, timestamp_after_max_ms: 2_000, ..small_config() };
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        let now = 1_000_000;
        for (timestamp, ok) in [(now - 1_001, false), (now - 1_000, true), (now + 2_000, true), (now + 2_001, false)] {
            let result = log.append(batch(timestamp as u64, 1, 10, timestamp), 0, now);
            match result {
                Ok(_) => assert!(ok, "timestamp {timestamp} accepted"),
                Err(LogError::Batch(BatchError::TimestampOutOfRange { .. })) => assert!(!ok, "{timestamp} refused"),
                Err(e) => panic!("{e}"),
            }
        }
        // Two records were appended: the newest timestamp is at offset 1.
        assert_eq!(log.offset_of_max_timestamp().await.unwrap(), Some((1, now + 2_000)));
    });
}

#[test]
fn the_shard_cache_budget_is_shared_by_busy_logs_newest_batches_kept() {
    run(|| async {
        let config = LogConfig { cache_bytes_max: usize::MAX, ..small_config() };
        let flusher = flusher();
        flusher.set_cache_budget(128 << 10);
        let (a_dir, b_dir) = (scratch("cache-share-a"), scratch("cache-share-b"));
        let a = open(&a_dir, &config, &flusher).await;
        let b = open(&b_dir, &config, &flusher).await;
        // 40 batches of about 4 KiB each per log: 320 KiB in all, 2.5 times the budget.
        for i in 0..40u64 {
            for log in [&a, &b] {
                log.append(batch(i, 1, 4000, 1_000), 1, 0).unwrap();
                log.flush(true, 0).await.unwrap();
            }
        }
        let total = a.cache_bytes() + b.cache_bytes();
        assert!(total <= 128 << 10, "over the budget: {total}");
        // Each busy log keeps about half of the 7/8 target, not one log all and the other none.
        for log in [&a, &b] {
            assert!(log.cache_bytes() >= 40 << 10, "a log kept {} bytes", log.cache_bytes());
            assert!(log.is_cached(39), "the newest batch left the cache");
            assert!(!log.is_cached(0), "the oldest batch is still cached");
        }
        // Reads below the cache come from disk, byte for byte the same.
        let cold = a.read(0, 1, u64::MAX).await.unwrap();
        assert_eq!(cold.next_offset, 1);
        for log in [a, b] {
            log.close(0).await.unwrap();
        }
    });
}

#[test]
fn the_scrubber_verifies_sealed_segments_and_a_flipped_byte_takes_the_log_offline() {
    run(|| async {
        let dir = scratch("scrub");
        let config = small_config();
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        for i in 0..300u64 {
            log.append(batch(i, 2, 500, 1_000), 1, 0).unwrap();
            if i % 20 == 19 {
                log.flush(true, 0).await.unwrap();
            }
        }
        log.flush(true, 0).await.unwrap();
        let sealed = log.verified();
        assert!(sealed.len() >= 2, "64 KiB segments should have rolled: {sealed:?}");
        assert!(sealed.iter().all(|(_, verified, _)| *verified == 0));
        // Steps of 16 KiB until everything sealed is verified.
        let (mut bytes, mut segments, mut steps) = (0, 0, 0);
        loop {
            let step = log.scrub(16 << 10).await.unwrap();
            if !step.pending {
                break;
            }
            assert!(step.bytes <= (16 << 10) + (32 << 10), "a step reads about its allowance: {step:?}");
            bytes += step.bytes;
            segments += u64::from(step.segment_verified);
            steps += 1;
        }
        let sealed = log.verified();
        assert!(sealed.iter().all(|(_, verified, size)| verified == size), "{sealed:?}");
        assert_eq!(bytes, sealed.iter().map(|(_, _, size)| size).sum::<u64>());
        assert_eq!(segments, sealed.len() as u64);
        assert!(steps > sealed.len(), "a segment takes several 16 KiB steps");
        log.close(0).await.unwrap();
        drop(log);
        // A byte flipped in the middle of the second sealed segment, then a fresh start: the
        // scrubber finds it without any read asking for it, and the log is offline.
        let (base, _, size) = sealed[1];
        let path = dir.join(format!("{base:020}.log"));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(size / 2) as usize] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        let log = open(&dir, &config, &flusher).await;
        let error = loop {
            match log.scrub(16 << 10).await {
                Ok(step) => assert!(step.pending, "the damage was not found"),
                Err(e) => break e,
            }
        };
        assert!(matches!(error, LogError::Corrupt { .. }), "{error}");
        assert!(log.failed().is_some(), "the log should be offline");
        assert!(log.read(0, 1, u64::MAX).await.is_err());
    });
}

/// The bytes of a read: its chunks, or its file range read back from the descriptor.
fn read_bytes(read: &ringtail_log::ReadBatches) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    match &read.file {
        Some(range) => {
            let file = std::fs::File::from(range.fd.try_clone().unwrap());
            let mut bytes = vec![0u8; range.len];
            file.read_exact_at(&mut bytes, range.position).unwrap();
            bytes
        }
        None => read.chunks.iter().flat_map(|c| c.iter().copied()).collect(),
    }
}

#[test]
fn verified_sealed_data_is_read_as_file_ranges_holding_the_same_batches_as_a_copying_read() {
    run(|| async {
        let dir = scratch("zero-copy");
        let config = LogConfig { zero_copy_reads: true, ..small_config() };
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        // Batches from under the index interval (1 KiB) to well over it.
        let mut rng = 7u64;
        for i in 0..400u64 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (count, len) = (1 + (rng >> 60) as usize, 20 + ((rng >> 33) % 2000) as usize);
            log.append(batch(i, count, len, 1_000), 1, 0).unwrap();
            if i % 25 == 24 {
                log.flush(true, 0).await.unwrap();
            }
        }
        log.flush(true, 0).await.unwrap();
        let end = log.log_end_offset();
        let sealed = log.verified();
        assert!(sealed.len() >= 3, "64 KiB segments should have rolled: {sealed:?}");
        // Not verified yet: copied.
        let first = log.read_to_send(0, 1 << 20, u64::MAX).await.unwrap();
        assert!(first.file.is_none() && first.bytes > 0);
        while log.scrub(1 << 20).await.unwrap().pending {}
        let sealed_end = sealed.last().map(|&(base, _, _)| base).unwrap();
        // Every offset, with limits of one byte (one batch), less than a batch, a few batches,
        // more than a segment; and a read bounded below the end of its segment (a high watermark).
        let limits = [1usize, 700, 5000, 100_000];
        let mut reads = Vec::new();
        for offset in 0..end {
            let max_bytes = limits[(offset % 4) as usize];
            let max_offset = if offset % 9 == 0 { offset + 3 } else { u64::MAX };
            let read = log.read_to_send(offset, max_bytes, max_offset).await.unwrap();
            reads.push((offset, max_bytes, max_offset, read.file.is_some(), read.next_offset, read_bytes(&read)));
        }
        // Readers that look at the bytes (`read`) always get them, whatever the path a fetch takes.
        for (offset, max_bytes, max_offset, _, next_offset, bytes) in reads.iter().step_by(7) {
            let read = log.read(*offset, *max_bytes, *max_offset).await.unwrap();
            assert!(read.file.is_none(), "offset {offset}: `read` returned a file range");
            assert_eq!(read.next_offset, *next_offset);
            assert!(read_bytes(&read) == *bytes);
        }
        let from_file = reads.iter().filter(|r| r.3).count();
        assert!(from_file > (sealed_end as usize) / 2, "{from_file} of {} reads were file ranges", reads.len());
        assert!(reads.iter().all(|r| r.4 <= r.2 || r.5.is_empty()), "a read never passes its bound");
        assert!(reads.iter().any(|r| !r.3 && r.2 != u64::MAX && r.0 < sealed_end), "bounded reads inside a segment");
        log.close(0).await.unwrap();
        drop(log);

        let copying = open(&dir, &LogConfig { zero_copy_reads: false, ..small_config() }, &flusher).await;
        for (offset, max_bytes, max_offset, _, next_offset, bytes) in &reads {
            let read = copying.read(*offset, *max_bytes, *max_offset).await.unwrap();
            assert!(read.file.is_none());
            assert_eq!(read.next_offset, *next_offset, "offset {offset} max_bytes {max_bytes}");
            assert!(read_bytes(&read) == *bytes, "offset {offset} max_bytes {max_bytes}: different bytes");
        }
        copying.close(0).await.unwrap();
    });
}

#[test]
fn a_truncation_into_a_verified_segment_shortens_what_is_read_from_the_file() {
    run(|| async {
        let dir = scratch("zero-copy-truncate");
        let config = LogConfig { zero_copy_reads: true, ..small_config() };
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        for i in 0..300u64 {
            log.append(batch(i, 2, 500, 1_000), 1, 0).unwrap();
        }
        log.flush(true, 0).await.unwrap();
        while log.scrub(1 << 20).await.unwrap().pending {}
        let sealed = log.verified();
        let (base, _, size) = sealed[0];
        assert!(sealed.iter().all(|(_, verified, size)| verified == size));
        // Cut the first segment in its middle (a diverged follower's truncation).
        let cut = base + 20;
        assert_eq!(log.truncate_to(cut).await.unwrap(), cut);
        let now = log.verified();
        assert!(now.iter().all(|(_, verified, size)| verified <= size), "{now:?}");
        assert!(now[0].2 < size);
        let read = log.read_to_send(0, 1 << 20, u64::MAX).await.unwrap();
        assert_eq!(read.next_offset, cut);
        assert_eq!(read_bytes(&read).len(), read.bytes);
        log.close(0).await.unwrap();
    });
}
