//! What a follower's log does: appends batches as their leader wrote them, keeps the
//! leader-epoch cache (persisted, recovered after a crash, epoch 0 for data written before it
//! existed), and answers where an epoch ends.

use bytes::Bytes;

use crate::common::*;
use ringtail_log::epochs::{UNDEFINED_EPOCH, UNDEFINED_OFFSET};
use ringtail_log::{LogError, PartitionLog};

/// Everything a log holds from `from` on, as the bytes a fetch returns.
pub(crate) async fn read_all(log: &PartitionLog, from: u64) -> Bytes {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1 << 20, u64::MAX).await.unwrap();
        assert!(read.next_offset > offset, "the read made progress");
        read.chunks.iter().for_each(|c| out.extend_from_slice(c));
        offset = read.next_offset;
    }
    Bytes::from(out)
}

#[test]
fn leader_epochs_are_kept_across_a_crash_and_answer_end_offsets() {
    run(|| async {
        let dir = scratch("epochs-crash");
        let config = small_config();
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        // Epoch 1 writes offsets 0..20, epoch 3 writes 20..40, epoch 4 writes 40..60.
        for (i, epoch) in (0..30u64).map(|i| (i, [1, 3, 4][i as usize / 10])) {
            log.append(batch(i, 2, 300, i as i64), epoch, 0).unwrap();
        }
        log.flush(true, 0).await.unwrap();
        assert_eq!(log.leader_epochs(), vec![(1, 0), (3, 20), (4, 40)]);
        assert_eq!(log.leader_epoch_end_offset(3), (3, 40));
        assert_eq!(log.leader_epoch_end_offset(2), (1, 20));
        assert_eq!(log.leader_epoch_end_offset(4), (4, 60));
        assert_eq!(log.leader_epoch_end_offset(9), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
        // A batch of epoch 6 is queued but never written: the crash loses it, and its entry.
        log.append(batch(99, 2, 300, 99), 6, 0).unwrap();
        drop_and_wait(log).await;
        let log = open(&dir, &config, &flusher).await;
        let end = log.log_end_offset();
        assert!(end == 60 || end == 62, "the unflushed batch may or may not have reached the disk");
        let expected = if end == 62 { vec![(1, 0), (3, 20), (4, 40), (6, 60)] } else { vec![(1, 0), (3, 20), (4, 40)] };
        assert_eq!(log.leader_epochs(), expected);
        // Retention and DeleteRecords move the first entry up with the log start.
        log.advance_log_start_offset(25).await.unwrap();
        assert_eq!(log.leader_epochs()[0], (3, 25));
        log.flush(true, 0).await.unwrap();
        log.close(0).await.unwrap();
        drop_and_wait(log).await;
        let log = open(&dir, &config, &flusher).await;
        assert_eq!(log.leader_epochs()[0], (3, 25));
    });
}

#[test]
fn a_log_from_before_epochs_reads_as_epoch_zero() {
    run(|| async {
        let dir = scratch("epochs-upgrade");
        let config = small_config();
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        for i in 0..10u64 {
            log.append(batch(i, 1, 100, i as i64), 0, 0).unwrap();
        }
        log.flush(true, 0).await.unwrap();
        log.close(0).await.unwrap();
        drop_and_wait(log).await;
        // The previous release wrote no epoch file.
        std::fs::remove_file(dir.join("leader-epochs")).unwrap();
        let log = open(&dir, &config, &flusher).await;
        assert_eq!(log.leader_epochs(), vec![(0, 0)]);
        assert_eq!(log.leader_epoch_end_offset(0), (0, 10));
        // The new epoch of the next leader follows it, and the file is written again.
        log.append(batch(10, 1, 100, 10), 2, 0).unwrap();
        log.flush(true, 0).await.unwrap();
        assert!(dir.join("leader-epochs").exists());
        assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 10)]);
        // A damaged file keeps the partition offline rather than guessing.
        log.close(0).await.unwrap();
        drop_and_wait(log).await;
        std::fs::write(dir.join("leader-epochs"), b"garbage").unwrap();
        let refused = PartitionLog::open(&dir, config, &flusher).await.expect_err("refused");
        assert!(matches!(refused, LogError::Corrupt { .. }), "{refused}");
    });
}

#[test]
fn a_follower_appends_the_leaders_batches_byte_for_byte() {
    run(|| async {
        let config = small_config();
        let flusher = flusher();
        let leader = open(&scratch("follower-leader"), &config, &flusher).await;
        for i in 0..40u64 {
            leader.append(batch(i, 3, 200, i as i64), if i < 20 { 1 } else { 2 }, 0).unwrap();
        }
        leader.flush(true, 0).await.unwrap();
        let follower = open(&scratch("follower-follower"), &config, &flusher).await;
        // Fetched in two pieces, as a follower's fetches would return them.
        let all = read_all(&leader, 0).await;
        let half = read_all(&leader, 60).await;
        let first = all.slice(..all.len() - half.len());
        let info = follower.append_replicated(first, 0).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 59));
        follower.append_replicated(half.clone(), 0).unwrap();
        follower.flush(true, 0).await.unwrap();
        assert_eq!(read_all(&follower, 0).await, all, "the follower stores the leader's bytes");
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        assert_eq!(follower.producer_count(), leader.producer_count());
        // Batches that do not continue the log are refused, and change nothing.
        let refused = |r: Result<_, LogError>| matches!(r, Err(LogError::NotContinuing { .. }));
        assert!(refused(follower.append_replicated(half.clone(), 0)), "a repeat of the tail");
        assert!(refused(follower.append_replicated(all.slice(..), 0)), "from offset 0 again");
        let stale = {
            let mut b = stored(&batch(77, 1, 10, 77), 120, 1);
            b[12..16].copy_from_slice(&1i32.to_be_bytes());
            Bytes::from(b)
        };
        assert!(refused(follower.append_replicated(stale, 0)), "an older leader epoch");
        let gap = Bytes::from(stored(&batch(78, 1, 10, 78), 121, 2));
        assert!(refused(follower.append_replicated(gap, 0)), "a gap");
        assert_eq!(follower.log_end_offset(), 120);
        let next = Bytes::from(stored(&batch(79, 1, 10, 79), 120, 5));
        follower.append_replicated(next, 0).unwrap();
        assert_eq!(follower.leader_epochs().last(), Some(&(5, 120)));
        // A corrupt batch is refused by its CRC.
        let mut corrupt = stored(&batch(80, 1, 10, 80), 121, 5);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(follower.append_replicated(Bytes::from(corrupt), 0).is_err());
    });
}

/// The leader's stored batches, each as (base offset, next offset, bytes).
async fn leader_batches(log: &PartitionLog) -> Vec<(u64, u64, Bytes)> {
    let all = read_all(log, 0).await;
    let batches = ringtail_log::batch::validate_records(&all, 1 << 20, ringtail_log::Origin::Log).unwrap();
    batches
        .into_iter()
        .map(|(h, range)| (h.base_offset as u64, h.base_offset as u64 + h.offset_count(), all.slice(range)))
        .collect()
}

/// A leader's log with epochs 1, 2, 4 and batches of 1-3 records.
async fn reference_leader(
    config: &ringtail_log::LogConfig,
    flusher: &std::rc::Rc<ringtail_log::Flusher>,
) -> Vec<(u64, u64, Bytes)> {
    let leader = open(&scratch("truncate-leader"), config, flusher).await;
    for i in 0..150u64 {
        let epoch = [1, 2, 4][(i / 50) as usize];
        leader.append(batch(i, 1 + (i % 3) as usize, 150 + (i % 7) as usize * 40, i as i64), epoch, 0).unwrap();
    }
    leader.flush(true, 0).await.unwrap();
    leader_batches(&leader).await
}

/// Appends the leader's batches from the follower's end, `count` of them at most.
fn catch_up(follower: &PartitionLog, leader: &[(u64, u64, Bytes)], count: usize) {
    let end = follower.log_end_offset();
    if leader.last().is_some_and(|b| b.1 == end) {
        return;
    }
    let from = leader.iter().position(|b| b.0 == end).expect("the follower ends at a leader batch boundary");
    for (_, _, bytes) in leader.iter().skip(from).take(count) {
        follower.append_replicated(bytes.clone(), 0).unwrap();
    }
}

/// The follower holds exactly the leader's batches below its end, and the leader's epochs.
async fn assert_prefix(follower: &PartitionLog, leader: &[(u64, u64, Bytes)], seed: u64) {
    let end = follower.log_end_offset();
    let expected: Vec<u8> = leader.iter().take_while(|b| b.1 <= end).flat_map(|b| b.2.to_vec()).collect();
    assert_eq!(read_all(follower, 0).await.to_vec(), expected, "seed {seed}: the follower is not a prefix at {end}");
    let mut epochs = Vec::new();
    for b in leader.iter().take_while(|b| b.1 <= end) {
        let epoch = i32::from_be_bytes(b.2[12..16].try_into().unwrap());
        if epochs.last().is_none_or(|&(e, _)| e < epoch) {
            epochs.push((epoch, b.0));
        }
    }
    assert_eq!(follower.leader_epochs(), epochs, "seed {seed}: epochs at end {end}");
}

/// Random appends from a leader, truncations (in unwritten, written and sealed data), flushes
/// and crashes, some of them in the middle of a truncation (an injected I/O error stops it at
/// a random file operation): the follower always recovers to a prefix of the leader's log,
/// with the leader's epochs, and its producer state matches what replaying it gives.
#[test]
fn truncation_model_with_crashes() {
    let mut rng = Rng::from_env("truncation_model_with_crashes");
    let seed = rng.0;
    run(move || async move {
        let config = small_config();
        let plain = flusher();
        let leader = reference_leader(&config, &plain).await;
        let dir = scratch("truncate-follower");
        for round in 0..12 {
            // Fail the n-th truncating file operation of this round, if any.
            let fail_at = if rng.range(0, 3) == 0 { Some(rng.range(1, 6)) } else { None };
            // Armed once the log is open: only truncations' file operations are counted.
            let armed = std::rc::Rc::new(std::cell::Cell::new(false));
            let seen = std::rc::Rc::new(std::cell::Cell::new(0u64));
            let (counter, armed_here) = (seen.clone(), armed.clone());
            let faults = ringtail_log::Faults::new(move |op, _| {
                let truncating = matches!(op, ringtail_log::IoOp::Truncate | ringtail_log::IoOp::Remove);
                armed_here.get() && truncating && {
                    counter.set(counter.get() + 1);
                    fail_at == Some(counter.get())
                }
            });
            let flusher = ringtail_log::Flusher::new(faults, std::time::Duration::from_millis(5));
            let follower = open(&dir, &config, &flusher).await;
            assert_prefix(&follower, &leader, seed).await;
            for _ in 0..rng.range(1, 6) {
                match rng.range(0, 4) {
                    0 | 1 => catch_up(&follower, &leader, rng.range(1, 40) as usize),
                    2 => {
                        let _ = follower.flush(true, 0).await;
                    }
                    _ => {
                        let end = follower.log_end_offset();
                        if end == 0 {
                            continue;
                        }
                        let offset = rng.range(0, end + 1);
                        armed.set(true);
                        let truncated = follower.truncate_to(offset).await;
                        armed.set(false);
                        match truncated {
                            Ok(cut) => {
                                assert!(cut <= offset, "seed {seed} round {round}: cut {cut} past {offset}");
                                assert_eq!(follower.log_end_offset(), cut);
                                assert_prefix(&follower, &leader, seed).await;
                            }
                            Err(e) => {
                                assert!(fail_at.is_some(), "seed {seed} round {round}: {e}");
                                break;
                            }
                        }
                    }
                }
            }
            // A crash: no close, whatever was in flight.
            drop_and_wait(follower).await;
        }
        let follower = open(&dir, &config, &plain).await;
        assert_prefix(&follower, &leader, seed).await;
        // The producer state is what replaying the follower's batches gives.
        let end = follower.log_end_offset();
        let producers: std::collections::HashSet<i64> = leader
            .iter()
            .take_while(|b| b.1 <= end)
            .map(|b| i64::from_be_bytes(b.2[43..51].try_into().unwrap()))
            .filter(|&id| id >= 0)
            .collect();
        assert_eq!(follower.producer_count(), producers.len(), "seed {seed}");
    });
}

#[test]
fn the_high_watermark_is_saved_and_comes_back_within_the_log() {
    run(|| async {
        let dir = scratch("high-watermark");
        let config = small_config();
        let flusher = flusher();
        let log = open(&dir, &config, &flusher).await;
        assert_eq!(log.recovery_report().high_watermark, None);
        for i in 0..20u64 {
            log.append(batch(i, 2, 100, i as i64), 0, 0).unwrap();
        }
        log.flush(true, 0).await.unwrap();
        assert!(log.save_high_watermark(41).await.is_err(), "past the log end");
        log.save_high_watermark(30).await.unwrap();
        drop_and_wait(log).await;
        let log = open(&dir, &config, &flusher).await;
        assert_eq!(log.recovery_report().high_watermark, Some(30));
        // A truncation below it: the saved value comes back cut to the log end.
        log.truncate_to(10).await.unwrap();
        log.close(0).await.unwrap();
        drop_and_wait(log).await;
        let log = open(&dir, &config, &flusher).await;
        assert_eq!(log.recovery_report().high_watermark, Some(10));
        drop_and_wait(log).await;
        std::fs::write(dir.join("high-watermark"), b"damaged").unwrap();
        let log = open(&dir, &config, &flusher).await;
        assert_eq!(log.recovery_report().high_watermark, None);
    });
}
