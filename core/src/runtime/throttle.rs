//! Replication throttles (Kafka's `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate` broker configs, with the topics'
//! `leader.replication.throttled.replicas` and `follower.replication.throttled.replicas`): as in
//! Kafka, only replicas outside the ISR are throttled (a reassignment's new replicas, a follower
//! catching up), so the traffic that acknowledges clients' writes never waits on a throttle.
//! The leader leaves a throttled replica's part of a fetch empty while its budget is spent; the
//! follower leaves the partition out of its fetch. Each shard holds its share of the broker's
//! rate (the rate divided by the shards) in a token bucket of half a second: enough to carry a
//! fetcher's round trip, small enough that a burst does not show in a rate measured over
//! seconds.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Instant;

use ringtail_replication::metadata::MetadataImage;
use ringtail_replication::NodeId;

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Which end of replication a throttle holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The leader, sending to followers outside the ISR.
    Leader,
    /// A follower outside the ISR, fetching.
    Follower,
}

impl Side {
    /// The broker config with the rate, and the topic config naming the throttled replicas.
    pub fn keys(self) -> (&'static str, &'static str) {
        match self {
            Side::Leader => (LEADER_RATE, LEADER_REPLICAS),
            Side::Follower => (FOLLOWER_RATE, FOLLOWER_REPLICAS),
        }
    }
}

/// The rate in force on `node` for `key` (its dynamic value, else the cluster-wide one), in
/// bytes per second; `None` when unset (Kafka's default, Long.MAX_VALUE: unthrottled).
pub fn rate(image: &MetadataImage, node: NodeId, key: &str) -> Option<u64> {
    [Some(node), None]
        .into_iter()
        .find_map(|n| image.broker_configs(n).and_then(|c| c.get(key)))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|r| (0..i64::MAX).contains(r))
        .map(|r| r as u64)
}

/// Whether a topic's throttled-replicas list (`*`, or `partition:broker` pairs) names this
/// broker's replica of partition `index`.
pub fn names(configs: &BTreeMap<String, String>, key: &str, index: i32, node: NodeId) -> bool {
    let Some(list) = configs.get(key) else { return false };
    let list = list.trim();
    list == "*"
        || list.split(',').any(|pair| {
            pair.split_once(':')
                .is_some_and(|(p, b)| p.trim().parse::<i32>() == Ok(index) && b.trim().parse::<i32>() == Ok(node.0))
        })
}

/// Seconds of its rate a bucket holds at most.
const BURST_SECONDS: f64 = 0.5;

/// A shard's share of a throttle: a token bucket holding at most `BURST_SECONDS` of its rate.
#[derive(Debug)]
pub struct Bucket {
    /// Bytes that may be sent now; negative after a read larger than what was left.
    tokens: Cell<f64>,
    refilled: Cell<Instant>,
}

impl Default for Bucket {
    fn default() -> Bucket {
        Bucket { tokens: Cell::new(0.0), refilled: Cell::new(Instant::now()) }
    }
}

impl Bucket {
    /// Bytes a throttled read may take now at `rate` bytes per second (0: none until the bucket
    /// refills).
    pub fn available(&self, rate: u64, now: Instant) -> usize {
        let elapsed = now.saturating_duration_since(self.refilled.get()).as_secs_f64();
        self.refilled.set(now);
        let tokens = (self.tokens.get() + elapsed * rate as f64).min(rate as f64 * BURST_SECONDS);
        self.tokens.set(tokens);
        tokens.max(0.0) as usize
    }

    /// `bytes` were sent (or received) for throttled replicas.
    pub fn take(&self, bytes: usize) {
        self.tokens.set(self.tokens.get() - bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lists_name_a_partition_on_a_broker_or_all() {
        let configs = |v: &str| BTreeMap::from([(LEADER_REPLICAS.to_string(), v.to_string())]);
        assert!(names(&configs("*"), LEADER_REPLICAS, 3, NodeId(1)));
        assert!(names(&configs("0:2, 3:1"), LEADER_REPLICAS, 3, NodeId(1)));
        assert!(!names(&configs("0:2,3:2"), LEADER_REPLICAS, 3, NodeId(1)));
        assert!(!names(&configs(""), LEADER_REPLICAS, 3, NodeId(1)));
        assert!(!names(&configs("*"), FOLLOWER_REPLICAS, 3, NodeId(1)));
    }

    #[test]
    fn a_bucket_lets_through_its_rate_over_time() {
        let bucket = Bucket::default();
        let start = Instant::now();
        let rate = 1_000_000;
        let mut sent = 0;
        // Reads of up to 64 KiB every 10 ms for 10 s, each as large as the bucket allows.
        for step in 1..=1000 {
            let now = start + Duration::from_millis(10 * step);
            let n = bucket.available(rate, now).min(65536);
            bucket.take(n);
            sent += n;
        }
        let expected = 10 * rate as usize;
        assert!(sent.abs_diff(expected) <= rate as usize / 100 + 65536, "sent {sent} of {expected}");
        // A read larger than what is left puts the bucket in debt: nothing until it is repaid.
        let later = start + Duration::from_secs(20);
        assert_eq!(bucket.available(rate, later), rate as usize / 2, "a full bucket holds half a second");
        bucket.take(3 * rate as usize);
        assert_eq!(bucket.available(rate, later + Duration::from_secs(2)), 0);
        assert!(bucket.available(rate, later + Duration::from_secs(3)) > 0);
    }
}
