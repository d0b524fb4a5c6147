//! Copies of a shard's metrics for the scraping thread: counters of the runtime and the
//! services, partitions' offsets and sizes.

use super::Broker;
use crate::metrics::{PartitionSnapshot, ShardSnapshot};

/// Copies a shard's metrics (on the shard's own thread).
pub fn take(shard: &Broker) -> ShardSnapshot {
    let m = &shard.metrics;
    let now = ringtail_log::now_ms();
    let apis = m.api_rows();
    let topics = m.topic_rows();
    let mut partitions: Vec<PartitionSnapshot> = shard
        .partitions
        .all()
        .iter()
        .map(|p| {
            let log = p.log();
            PartitionSnapshot {
                topic: p.topic().to_string(),
                partition: p.id().index,
                segments: log.segment_count() as u64,
                size_bytes: log.size_bytes(),
                log_start_offset: log.log_start_offset(),
                log_end_offset: log.log_end_offset(),
                high_watermark: p.high_watermark(),
                producers: log.producer_count() as u64,
                offline: log.failed().is_some(),
                leader: p.role() == ringtail_replication::Role::Leader,
                replicas: p.replicas().len() as u64,
                in_sync: p.isr().len() as u64,
                followers: p.follower_lag(now).into_iter().map(|(n, offsets, ms)| (n.0, offsets, ms)).collect(),
            }
        })
        .collect();
    partitions.extend(shard.partitions.offline().into_iter().map(|(topic, partition)| PartitionSnapshot {
        topic: topic.to_string(),
        partition,
        segments: 0,
        size_bytes: 0,
        log_start_offset: 0,
        log_end_offset: 0,
        high_watermark: 0,
        producers: 0,
        offline: true,
        leader: false,
        replicas: 0,
        in_sync: 0,
        followers: Vec::new(),
    }));
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let stats = shard.flusher.stats();
    let splice = shard.splicer.as_ref().map(|s| s.stats()).unwrap_or_default();
    let (committed, committed_omitted) =
        shard.coordinator.groups.borrow().all_committed(crate::limits::METRICS_GROUP_SERIES_MAX);
    ShardSnapshot {
        shard: shard.id.0,
        apis,
        topics,
        partitions,
        connections: shard.connections.get() as u64,
        requests_in_flight: shard.in_flight.get() as u64,
        produce_waiting: m.produce_waiting.get(),
        fetch_parked: m.fetch_parked.get(),
        inbox_depth: shard.inbox.depth() as u64,
        cross_shard_messages: m.cross_shard_messages.get(),
        flush_latency: stats.flush_latency.snapshot(),
        fdatasync_latency: stats.fdatasync_latency.snapshot(),
        cache_hits: stats.cache_hits.get(),
        cache_misses: stats.cache_misses.get(),
        committed,
        committed_omitted,
        budgets: shard.budgets(),
        closed_read_timeout: m.closed_read_timeout.get(),
        responses_written: m.responses_written.get(),
        response_sends: m.response_sends.get(),
        zero_copy_reads: m.zero_copy_reads.get(),
        zero_copy_read_bytes: m.zero_copy_read_bytes.get(),
        zero_copy_sends: splice.sends,
        zero_copy_send_bytes: splice.bytes,
        zero_copy_send_failures: splice.failed,
        scrub_bytes: m.scrub_bytes.get(),
        scrub_segments: m.scrub_segments.get(),
        scrub_damage: m.scrub_damage.get(),
        closed_idle: m.closed_idle.get(),
        refused_max_connections: m.refused_max_connections.get(),
        refused_max_connections_per_ip: m.refused_max_connections_per_ip.get(),
        producers_evicted: stats.producers_evicted.get(),
        pinning_copies: m.pinning_copies.get(),
        pinning_copy_bytes: m.pinning_copy_bytes.get(),
        recompressed_in_bytes: m.recompressed_in_bytes.get(),
        recompressed_out_bytes: m.recompressed_out_bytes.get(),
        isr_shrinks: m.isr_shrinks.get(),
        replicas_rebuilt: m.replicas_rebuilt.get(),
        isr_expands: m.isr_expands.get(),
        replication_bytes_out: m.replication_bytes_out.get(),
        replication_bytes_in: m.replication_bytes_in.get(),
        disk: disk(shard),
    }
}

fn disk(shard: &Broker) -> crate::metrics::DiskSnapshot {
    let space = shard.flusher.space();
    let watermarks = space.watermarks();
    crate::metrics::DiskSnapshot {
        total_bytes: space.total_bytes(),
        free_bytes: space.free_bytes(),
        low_watermark_bytes: watermarks.low_bytes,
        high_watermark_bytes: watermarks.high_bytes,
        writes_refused: space.is_low(),
        appends_refused: space.refused(),
        flushes_out_of_space: shard.flusher.stats().flushes_out_of_space.get(),
    }
}
