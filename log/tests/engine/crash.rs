//! Crash tests: segment files truncated or corrupted at random byte positions recover to the
//! longest valid prefix (or, for damage found at open in durable segments, stay offline with
//! nothing deleted) and never serve a corrupt batch.

use std::path::{Path, PathBuf};

use crate::common::*;
use ringtail_log::{LogError, PartitionLog};

/// Builds a log of several sealed segments plus an active one, left as after a crash.
async fn crashed_log(dir: &Path) -> Model {
    let config = small_config();
    let flusher = flusher();
    let log = open(dir, &config, &flusher).await;
    let mut model = Model::default();
    for i in 0..120u64 {
        let b = batch(i, 2, 600, i as i64);
        let info = log.append(b.clone(), 1, 0).unwrap();
        model.push(&b, info.base_offset, 2, 1);
        if i % 10 == 9 {
            log.flush(true, 0).await.unwrap();
        }
    }
    log.flush(true, 0).await.unwrap();
    drop_and_wait(log).await;
    model
}

/// Every segment file of a log with its contents.
fn segment_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_str()?.to_owned();
            let base = name.strip_suffix(".log")?.parse().ok()?;
            Some((base, p))
        })
        .collect();
    v.sort();
    v
}

/// Index of the first batch that a damage at byte `position` of segment `base` breaks.
fn first_damaged(model: &Model, base: u64, position: u64) -> usize {
    let mut at = 0u64;
    for (i, b) in model.batches.iter().enumerate().filter(|(_, b)| b.0 >= base) {
        at += b.2.len() as u64;
        if at > position {
            return i;
        }
    }
    model.batches.len()
}

/// Reads the whole log; returns the batches read before the first error.
async fn read_all(log: &PartitionLog) -> (Vec<Vec<u8>>, Option<LogError>) {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        match log.read(offset, 1, u64::MAX).await {
            Ok(r) if !r.chunks.is_empty() => {
                out.push(r.chunks.concat());
                offset = r.next_offset;
            }
            Ok(_) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

#[test]
fn damaged_segments_recover_to_the_longest_valid_prefix() {
    let mut rng = Rng::from_env("damaged_segments_recover_to_the_longest_valid_prefix");
    let seed = rng.next();
    run(move || async move {
        let mut rng = Rng(seed | 1);
        let pristine = scratch("crash-pristine");
        let model = crashed_log(&pristine).await;
        let segs = segments(&pristine);
        assert!(segs.len() >= 3, "the test needs several segments");
        for trial in 0..40 {
            let dir = scratch("crash-trial");
            copy_dir(&pristine, &dir);
            let (base, pristine_path) = segs[rng.range(0, segs.len() as u64) as usize].clone();
            let path = dir.join(pristine_path.file_name().unwrap());
            let len = std::fs::metadata(&path).unwrap().len();
            let data_len: u64 = model
                .batches
                .iter()
                .filter(|b| b.0 >= base && segs.iter().find(|s| s.0 > base).is_none_or(|s| b.0 < s.0))
                .map(|b| b.2.len() as u64)
                .sum();
            let position = rng.range(0, data_len.min(len));
            let truncate = rng.range(0, 2) == 0;
            // Half the trials lose the recovery point, forcing a scan of every segment.
            let full_scan = rng.range(0, 2) == 0;
            if truncate {
                let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.set_len(position).unwrap();
            } else {
                let mut bytes = std::fs::read(&path).unwrap();
                // partitionLeaderEpoch (bytes 12..16 of a batch) lies outside the CRC, as in Kafka;
                // damage there is not detectable, so move the flip off it.
                let within = {
                    let mut at = 0u64;
                    let mut within = 0;
                    for b in model.batches.iter().filter(|b| b.0 >= base) {
                        if at + b.2.len() as u64 > position {
                            within = position - at;
                            break;
                        }
                        at += b.2.len() as u64;
                    }
                    within
                };
                let position = if (12..16).contains(&within) { position + 4 } else { position };
                bytes[position as usize] ^= 1 << rng.range(0, 8);
                std::fs::write(&path, &bytes).unwrap();
            }
            if full_scan {
                std::fs::remove_file(dir.join("partition.state")).unwrap();
            }
            let damaged = first_damaged(&model, base, position);
            let flusher = flusher();
            let before = segment_bytes(&dir);
            let log = match PartitionLog::open(&dir, small_config(), &flusher).await {
                Ok(log) => log,
                Err(e) => {
                    // Damage found while opening a segment below the recovery point (durable,
                    // acknowledged data) keeps the log offline and deletes nothing: cutting there
                    // would take every later segment with it.
                    let context = format!("trial {trial}: segment {base}, byte {position}, truncate {truncate}");
                    assert!(!full_scan, "{context}: a full scan may cut the log, not refuse it: {e}");
                    assert!(matches!(e, LogError::Corrupt { .. }), "{context}: {e}");
                    assert_eq!(segment_bytes(&dir), before, "{context}: files changed");
                    continue;
                }
            };
            let (read, error) = read_all(&log).await;
            let context = format!("trial {trial}: segment {base}, byte {position}, truncate {truncate}, full scan {full_scan}, report {:?}", log.recovery_report());
            // Everything served is exactly the model's prefix: never a corrupt batch.
            assert!(read.len() <= model.batches.len(), "{context}");
            for (i, got) in read.iter().enumerate() {
                assert_eq!(got, &model.batches[i].2, "{context}: batch {i}");
            }
            // Everything before the damage is still there.
            assert!(read.len() >= damaged, "{context}: only {} of the {damaged} undamaged batches read", read.len());
            if read.len() > damaged {
                // Served past the damage: only possible if the damage was undetectable, which the
                // test avoided.
                panic!("{context}: read {} batches past damage at batch {damaged}", read.len());
            }
            match error {
                // Damage below the recovery point is found when read, and stops the log.
                Some(e) => {
                    assert!(!full_scan, "{context}: a full scan left damage behind: {e}");
                    assert!(e.is_fatal(), "{context}: {e}");
                }
                None => assert_eq!(
                    log.log_end_offset(),
                    model.batches.get(damaged).map_or(model.end(), |b| b.0),
                    "{context}"
                ),
            }
        }
    });
}
