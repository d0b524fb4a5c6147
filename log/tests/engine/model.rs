//! Random operations against the log and an in-memory model, with restarts, crashes (dropping
//! the log without closing it), rolls, retention and DeleteRecords. Prints its seed.

use crate::common::*;
use ringtail_log::LogConfig;

#[test]
fn random_operations_match_the_model() {
    let mut rng = Rng::from_env("random_operations_match_the_model");
    let seed = rng.next();
    run(move || async move {
        let mut rng = Rng(seed | 1);
        let dir = scratch("model");
        let config = LogConfig { retention_bytes_max: Some(300 << 10), ..small_config() };
        let flusher = flusher();
        let mut log = open(&dir, &config, &flusher).await;
        let mut model = Model::default();
        let mut tag = 0u64;
        let trace = std::env::var("RINGTAIL_TRACE").is_ok();
        for step in 0..600 {
            let op = rng.range(0, 100);
            if trace {
                println!(
                    "step {step}: op {op} start {} end {} durable {} segments {}",
                    log.log_start_offset(),
                    log.log_end_offset(),
                    log.durable_offset(),
                    log.segment_count()
                );
            }
            match op {
                0..=59 => {
                    let batches = rng.range(1, 4);
                    let mut records = Vec::new();
                    let mut counts: Vec<(bytes::Bytes, u64)> = Vec::new();
                    for _ in 0..batches {
                        let count = rng.range(1, 6);
                        let b = batch(tag, count as usize, rng.range(1, 2000) as usize, step as i64);
                        tag += 1;
                        counts.push((b.clone(), count));
                        records.extend_from_slice(&b);
                    }
                    let epoch = rng.range(0, 3) as i32;
                    let info = log.append(records.into(), epoch, step as i64).unwrap();
                    let mut offset = info.base_offset;
                    for (b, count) in counts {
                        model.push(&b, offset, count, epoch);
                        offset += count;
                    }
                    assert_eq!(offset, info.last_offset + 1);
                }
                60..=74 => log.flush(rng.range(0, 2) == 0, step as i64).await.unwrap(),
                75..=84 => {
                    let offset = rng.range(model.log_start_offset, model.end() + 1);
                    let got = log.read(offset, rng.range(1, 50_000) as usize, u64::MAX).await.unwrap();
                    if offset < model.end() {
                        let first = model.batches.iter().find(|b| b.1 >= offset).unwrap();
                        assert_eq!(
                            &got.chunks.concat()[..first.2.len()],
                            &first.2[..],
                            "step {step}: read at {offset}"
                        );
                    } else {
                        assert!(got.chunks.is_empty());
                    }
                }
                85..=88 => {
                    log.enforce_retention(step as i64).await.unwrap();
                    model.log_start_offset = log.log_start_offset();
                }
                89..=90 => {
                    let offset = rng.range(model.log_start_offset, model.end() + 1);
                    log.advance_log_start_offset(offset).await.unwrap();
                    model.log_start_offset = offset;
                }
                91..=94 => {
                    log.close(step as i64).await.unwrap();
                    log = open(&dir, &config, &flusher).await;
                    assert!(log.recovery_report().clean_shutdown);
                }
                _ => {
                    // Crash: what was durable must survive; what was written may; nothing else.
                    let durable = log.durable_offset();
                    drop_and_wait(log).await;
                    log = open(&dir, &config, &flusher).await;
                    let end = log.log_end_offset();
                    assert!(end >= durable, "step {step}: lost durable data: end {end} < durable {durable}");
                    model.truncate(end);
                    if end <= model.log_start_offset {
                        // DeleteRecords went past the data that survived: the log is empty at its start.
                        assert_eq!(end, model.log_start_offset, "step {step}");
                        model.batches.clear();
                    } else {
                        let boundary = model.batches.last().is_none_or(|b| b.1 + 1 == end);
                        assert!(boundary, "step {step}: recovered end {end} is not a batch boundary");
                    }
                }
            }
            assert_eq!(log.log_start_offset(), model.log_start_offset, "step {step}");
        }
        assert_matches(&log, &model, &mut rng).await;
    });
}
