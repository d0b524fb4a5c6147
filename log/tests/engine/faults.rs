//! Injected I/O errors: every failure is a clean, fatal error (no panic), waiters see it, and
//! whatever was acknowledged as durable survives a restart.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use crate::common::*;
use ringtail_log::{Faults, Flusher, IoOp, PartitionLog};

#[test]
fn injected_io_errors_are_fatal_and_lose_nothing_acknowledged() {
    for op in [IoOp::Write, IoOp::Sync, IoOp::Create, IoOp::Truncate, IoOp::Rename, IoOp::Read] {
        for after in [0u64, 3, 17] {
            run(move || async move {
                let dir = scratch(&format!("faults-{op:?}-{after}"));
                let config = small_config();
                let count = Rc::new(Cell::new(0u64));
                let armed = Rc::new(Cell::new(false));
                let (c, a) = (count.clone(), armed.clone());
                let faults = Faults::new(move |o, _| {
                    if !a.get() || o != op {
                        return false;
                    }
                    c.set(c.get() + 1);
                    c.get() > after
                });
                let flusher = Flusher::new(faults, Duration::from_millis(5));
                let task = flusher.spawn();
                let log = PartitionLog::open(dir.clone(), config, &flusher).await.unwrap();
                armed.set(true);
                let mut model = Model::default();
                let mut acknowledged = 0u64;
                let mut failure = None;
                for i in 0..200u64 {
                    let b = batch(i, 2, 700, i as i64);
                    let info = match log.append(b.clone(), 0, 0) {
                        Ok(info) => info,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    };
                    model.push(&b, info.base_offset, 2, 0);
                    let waited = log.wait_durable(info.last_offset).await;
                    if let Err(e) = waited {
                        failure = Some(e);
                        break;
                    }
                    acknowledged = info.last_offset + 1;
                    if i % 20 == 19 {
                        if let Err(e) = log.read(0, 1 << 20, u64::MAX).await {
                            failure = Some(e);
                            break;
                        }
                        if let Err(e) = log.advance_log_start_offset(0).await {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                if let Some(e) = &failure {
                    assert!(e.is_fatal(), "{op:?}: {e}");
                    assert!(log.append(batch(0, 1, 1, 0), 0, 0).is_err(), "a failed log takes no more appends");
                }
                if count.get() > after {
                    assert!(failure.is_some() || op == IoOp::Read, "{op:?} after {after}: the fault went unnoticed");
                }
                flusher.stop();
                task.await;
                drop_and_wait(log).await;
                // Restart without faults: every acknowledged batch is there.
                let clean = flusher_plain();
                let log = open(&dir, &config, &clean).await;
                assert!(log.log_end_offset() >= acknowledged, "{op:?} after {after}: lost acknowledged data");
                model.truncate(log.log_end_offset());
                assert_matches(&log, &model, &mut Rng(9)).await;
            });
        }
    }
}

fn flusher_plain() -> Rc<Flusher> {
    flusher()
}
