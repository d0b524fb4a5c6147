//! `ringtail-core`: the broker: shards pinned to cores, partition ownership, cross-shard routing, request handlers and the `ringtail` binary. Not built yet (issue: thread-per-core Kafka broker).
