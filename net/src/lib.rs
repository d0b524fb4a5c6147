//! `ringtail-net`: the Kafka wire protocol: framing, codecs, connection loop and request limits. Not built yet (issue: thread-per-core Kafka broker).
