//! Request and response headers, API keys, and the versions this broker speaks.

use bytes::Bytes;

use crate::codec::{DecodeError, Reader, Writer};

/// The APIs Ringtail implements, with Kafka's key numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ApiKey {
    Produce = 0,
    Fetch = 1,
    ListOffsets = 2,
    Metadata = 3,
    OffsetCommit = 8,
    OffsetFetch = 9,
    FindCoordinator = 10,
    JoinGroup = 11,
    Heartbeat = 12,
    LeaveGroup = 13,
    SyncGroup = 14,
    DescribeGroups = 15,
    ListGroups = 16,
    ApiVersions = 18,
    CreateTopics = 19,
    DeleteTopics = 20,
    DeleteRecords = 21,
    InitProducerId = 22,
    OffsetForLeaderEpoch = 23,
    DescribeAcls = 29,
    CreateAcls = 30,
    DeleteAcls = 31,
    DescribeConfigs = 32,
    AlterConfigs = 33,
    AlterReplicaLogDirs = 34,
    DescribeLogDirs = 35,
    CreatePartitions = 37,
    DeleteGroups = 42,
    ElectLeaders = 43,
    IncrementalAlterConfigs = 44,
    AlterPartitionReassignments = 45,
    ListPartitionReassignments = 46,
    OffsetDelete = 47,
    DescribeClientQuotas = 48,
    DescribeQuorum = 55,
    DescribeCluster = 60,
    DescribeProducers = 61,
    UnregisterBroker = 64,
    ConsumerGroupHeartbeat = 68,
    ConsumerGroupDescribe = 69,
    DescribeTopicPartitions = 75,
    AddRaftVoter = 80,
    RemoveRaftVoter = 81,
}

/// The "first flexible version" of an API that has none.
const NEVER_FLEXIBLE: i16 = i16::MAX;

/// Supported versions per API: (key, lowest, highest, first flexible version).
///
/// The highest versions are Kafka 4.1's (the `kafka-protocol` 0.18 oracle checks each).
/// Produce is advertised from v0 although v0-v2 (message formats 0 and 1) are refused when
/// used: librdkafka turns compression off when a broker does not list Produce v0. Versions
/// Kafka 4 removed (OffsetCommit v0-1, OffsetFetch v0, ...) are kept: they are small, and the
/// tests check them against Kafka's older schemas.
const VERSIONS: &[(ApiKey, i16, i16, i16)] = &[
    (ApiKey::Produce, 0, 13, 9),
    (ApiKey::Fetch, 4, 18, 12),
    (ApiKey::ListOffsets, 1, 10, 6),
    (ApiKey::Metadata, 0, 13, 9),
    (ApiKey::OffsetCommit, 0, 9, 8),
    (ApiKey::OffsetFetch, 0, 9, 6),
    (ApiKey::FindCoordinator, 0, 6, 3),
    (ApiKey::JoinGroup, 0, 9, 6),
    (ApiKey::Heartbeat, 0, 4, 4),
    (ApiKey::LeaveGroup, 0, 5, 4),
    (ApiKey::SyncGroup, 0, 5, 4),
    (ApiKey::DescribeGroups, 0, 6, 5),
    (ApiKey::ListGroups, 0, 5, 3),
    (ApiKey::ApiVersions, 0, 4, 3),
    (ApiKey::CreateTopics, 0, 7, 5),
    (ApiKey::DeleteTopics, 0, 6, 4),
    (ApiKey::DeleteRecords, 0, 2, 2),
    (ApiKey::InitProducerId, 0, 5, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4, 4),
    (ApiKey::DescribeAcls, 1, 3, 2),
    (ApiKey::CreateAcls, 1, 3, 2),
    (ApiKey::DeleteAcls, 1, 3, 2),
    (ApiKey::DescribeConfigs, 0, 4, 4),
    (ApiKey::AlterConfigs, 0, 2, 2),
    (ApiKey::AlterReplicaLogDirs, 1, 2, 2),
    (ApiKey::DescribeLogDirs, 1, 4, 2),
    (ApiKey::CreatePartitions, 0, 3, 2),
    (ApiKey::DeleteGroups, 0, 2, 2),
    (ApiKey::ElectLeaders, 0, 2, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1, 1),
    (ApiKey::AlterPartitionReassignments, 0, 1, 0),
    (ApiKey::ListPartitionReassignments, 0, 0, 0),
    (ApiKey::OffsetDelete, 0, 0, NEVER_FLEXIBLE),
    (ApiKey::DescribeClientQuotas, 0, 1, 1),
    (ApiKey::DescribeQuorum, 0, 2, 0),
    (ApiKey::DescribeCluster, 0, 2, 0),
    (ApiKey::DescribeProducers, 0, 0, 0),
    (ApiKey::UnregisterBroker, 0, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1, 0),
    (ApiKey::ConsumerGroupDescribe, 0, 1, 0),
    (ApiKey::DescribeTopicPartitions, 0, 0, 0),
    (ApiKey::AddRaftVoter, 0, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0, 0),
];

impl ApiKey {
    pub fn from_i16(key: i16) -> Option<ApiKey> {
        VERSIONS.iter().map(|v| v.0).find(|k| *k as i16 == key)
    }

    fn entry(self) -> &'static (ApiKey, i16, i16, i16) {
        VERSIONS.iter().find(|v| v.0 == self).expect("every ApiKey has a VERSIONS entry")
    }

    /// Lowest and highest supported version.
    pub fn versions(self) -> (i16, i16) {
        let e = self.entry();
        (e.1, e.2)
    }

    pub fn supports(self, version: i16) -> bool {
        let (lo, hi) = self.versions();
        (lo..=hi).contains(&version)
    }

    /// Whether `version` uses the flexible (compact, tagged) encoding.
    pub fn is_flexible(self, version: i16) -> bool {
        version >= self.entry().3
    }

    /// All supported APIs with their version ranges, for ApiVersions.
    pub fn all() -> impl Iterator<Item = (ApiKey, i16, i16)> {
        VERSIONS.iter().map(|v| (v.0, v.1, v.2))
    }
}

/// A request header. `api_key` is kept raw so unknown keys can still be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

impl RequestHeader {
    /// Decodes the header at the start of a request frame. Header v2 (flexible requests) adds
    /// tagged fields; `client_id` is a classic nullable string in every version.
    pub fn decode(r: &mut Reader) -> Result<RequestHeader, DecodeError> {
        let api_key = r.i16()?;
        let api_version = r.i16()?;
        let correlation_id = r.i32()?;
        let client_id = r.nullable_string(false)?;
        let header = RequestHeader { api_key, api_version, correlation_id, client_id };
        if let Some(key) = ApiKey::from_i16(api_key) {
            // ApiVersions requests at versions we do not know are read as v0 and answered in v0.
            if key.supports(api_version) && key.is_flexible(api_version) {
                r.tagged_fields(true)?;
            }
        }
        Ok(header)
    }
}

/// Writes a response header: v1 (with tagged fields) for flexible versions, except that
/// ApiVersions responses always use v0 so any client can read the versions it may use.
pub fn write_response_header(w: &mut Writer, key: ApiKey, version: i16, correlation_id: i32) {
    w.i32(correlation_id);
    if key != ApiKey::ApiVersions && key.is_flexible(version) {
        w.no_tagged_fields(true);
    }
}

/// Splits a frame (without its length prefix) into header and body.
pub fn decode_frame(frame: Bytes) -> Result<(RequestHeader, Reader), DecodeError> {
    let mut r = Reader::new(frame);
    let header = RequestHeader::decode(&mut r)?;
    Ok((header, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_table_is_consistent() {
        for (key, lo, hi) in ApiKey::all() {
            assert!(lo <= hi, "{key:?}");
            assert_eq!(ApiKey::from_i16(key as i16), Some(key));
        }
        assert!(ApiKey::Produce.supports(0));
        assert!(!ApiKey::Fetch.supports(3));
        assert!(ApiKey::Metadata.is_flexible(9) && !ApiKey::Metadata.is_flexible(8));
        assert!(!ApiKey::OffsetDelete.is_flexible(0));
        assert_eq!(ApiKey::from_i16(9999), None);
    }
}
