//! The background scrubber: each shard verifies its partitions' sealed segments from disk
//! (`PartitionLog::scrub`: every batch's length, CRC and offset), at its share of
//! `--scrub-bytes-per-second`, partition after partition. Damage found takes that partition
//! offline as a read finding it would (KAFKA_STORAGE_ERROR to clients; in a cluster the replica
//! is reported damaged, leaves the ISR and is rebuilt from its leader). Verification is kept in
//! memory: after a restart every sealed segment is verified again.

use std::rc::Rc;

use crate::broker::Broker;
use crate::limits::{SCRUB_INTERVAL, SCRUB_STEP_BYTES_MAX};

pub(super) async fn scrub(shard: Rc<Broker>) {
    let per_shard = shard.config.scrub_bytes_per_second / shard.config.shards.max(1) as u64;
    if per_shard == 0 {
        return;
    }
    let per_tick = (per_shard as f64 * SCRUB_INTERVAL.as_secs_f64()).max(1.0) as u64;
    // Bytes the scrubber may still read: refilled each tick, at most one tick's worth saved.
    let mut allowance = 0u64;
    let mut next = 0usize;
    loop {
        glommio::timer::sleep(SCRUB_INTERVAL).await;
        allowance = (allowance + per_tick).min(2 * per_tick);
        let partitions = shard.partitions.all();
        let mut idle = 0;
        while allowance > 0 && idle < partitions.len() {
            let partition = &partitions[next % partitions.len()];
            if partition.log().failed().is_some() {
                // Offline already (by a read, a write, or an earlier step): nothing to verify.
                idle += 1;
                next += 1;
                continue;
            }
            let step = (allowance as usize).min(SCRUB_STEP_BYTES_MAX);
            match partition.log().scrub(step).await {
                Ok(done) if done.pending => {
                    allowance = allowance.saturating_sub(done.bytes.max(1));
                    shard.metrics.scrubbed(done.bytes, done.segment_verified);
                    idle = 0;
                    if done.bytes == 0 {
                        next += 1;
                    }
                }
                Ok(_) => {
                    idle += 1;
                    next += 1;
                }
                Err(e) => {
                    shard.metrics.scrub_found_damage();
                    shard.storage_failed(partition, &e.into());
                    next += 1;
                }
            }
        }
    }
}
