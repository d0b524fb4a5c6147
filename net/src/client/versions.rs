//! The APIs Ringtail's clients speak and the versions they speak them at, kept apart from the
//! broker's table (`header::VERSIONS`): a client may speak fewer versions of an API than the
//! broker serves, and nothing here is
//! advertised in ApiVersions.

/// An API a client of this crate sends, with Kafka's key number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ClientApi {
    Produce = 0,
    Fetch = 1,
    ListOffsets = 2,
    Metadata = 3,
    OffsetFetch = 9,
    FindCoordinator = 10,
    DescribeGroups = 15,
    ListGroups = 16,
    ApiVersions = 18,
    CreateTopics = 19,
    InitProducerId = 22,
    OffsetForLeaderEpoch = 23,
    ElectLeaders = 43,
    AlterPartitionReassignments = 45,
    ListPartitionReassignments = 46,
    DescribeQuorum = 55,
    DescribeCluster = 60,
    UnregisterBroker = 64,
    ConsumerGroupDescribe = 69,
    AddRaftVoter = 80,
    RemoveRaftVoter = 81,
}

/// Versions per API: (API, lowest, highest, first flexible version).
///
/// The lowest versions are the oldest Kafka 4.1 still serves, except where a client of ours
/// talks to older brokers: `ringtail-bench` negotiates Metadata and CreateTopics from version 0.
/// Fetch stops at version 15, the first with the follower's `ReplicaState`; ListOffsets v0
/// (several offsets per partition) and OffsetFetch v0 (ZooKeeper offsets) are not spoken.
const CLIENT_VERSIONS: &[(ClientApi, i16, i16, i16)] = &[
    (ClientApi::Produce, 3, 13, 9),
    (ClientApi::Fetch, 4, 15, 12),
    (ClientApi::ListOffsets, 1, 10, 6),
    (ClientApi::Metadata, 0, 13, 9),
    (ClientApi::OffsetFetch, 1, 9, 6),
    (ClientApi::FindCoordinator, 0, 6, 3),
    (ClientApi::DescribeGroups, 0, 6, 5),
    (ClientApi::ListGroups, 0, 5, 3),
    (ClientApi::ApiVersions, 0, 4, 3),
    (ClientApi::CreateTopics, 0, 7, 5),
    (ClientApi::InitProducerId, 0, 5, 2),
    (ClientApi::OffsetForLeaderEpoch, 2, 4, 4),
    (ClientApi::ElectLeaders, 0, 2, 2),
    (ClientApi::AlterPartitionReassignments, 0, 1, 0),
    (ClientApi::ListPartitionReassignments, 0, 0, 0),
    (ClientApi::DescribeQuorum, 0, 2, 0),
    (ClientApi::DescribeCluster, 0, 2, 0),
    (ClientApi::UnregisterBroker, 0, 0, 0),
    (ClientApi::ConsumerGroupDescribe, 0, 1, 0),
    (ClientApi::AddRaftVoter, 0, 0, 0),
    (ClientApi::RemoveRaftVoter, 0, 0, 0),
];

impl ClientApi {
    /// Kafka's key number.
    pub fn key(self) -> i16 {
        self as i16
    }

    fn entry(self) -> &'static (ClientApi, i16, i16, i16) {
        CLIENT_VERSIONS.iter().find(|v| v.0 == self).expect("every ClientApi has a CLIENT_VERSIONS entry")
    }

    /// Lowest and highest version spoken.
    pub fn versions(self) -> (i16, i16) {
        let e = self.entry();
        (e.1, e.2)
    }

    pub fn supports(self, version: i16) -> bool {
        let (lo, hi) = self.versions();
        (lo..=hi).contains(&version)
    }

    /// Whether `version` uses the flexible (compact, tagged) encoding; its request header is
    /// then version 2.
    pub fn is_flexible(self, version: i16) -> bool {
        version >= self.entry().3
    }

    /// Whether the response header carries tagged fields (header version 1): in flexible
    /// versions, except ApiVersions, whose responses use header version 0 so that any client
    /// can read them.
    pub fn response_header_has_tagged_fields(self, version: i16) -> bool {
        self != ClientApi::ApiVersions && self.is_flexible(version)
    }

    /// The highest version both this client and a broker speaking `broker_min..=broker_max`
    /// know, at most `wanted_max`; `None` when there is none.
    pub fn negotiate(self, broker_min: i16, broker_max: i16, wanted_max: i16) -> Option<i16> {
        let (lo, hi) = self.versions();
        let version = hi.min(broker_max).min(wanted_max);
        (version >= lo.max(broker_min)).then_some(version)
    }

    /// Every API a client speaks.
    pub fn all() -> impl Iterator<Item = ClientApi> {
        CLIENT_VERSIONS.iter().map(|v| v.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::ApiKey;

    #[test]
    fn version_table_is_consistent() {
        for api in ClientApi::all() {
            let (lo, hi) = api.versions();
            assert!(lo <= hi, "{api:?}");
            // Where the broker serves the API too, both tables agree on which versions are
            // flexible: that is Kafka's schema, not a choice.
            if let Some(key) = ApiKey::from_i16(api.key()) {
                for v in lo..=hi {
                    assert_eq!(api.is_flexible(v), key.is_flexible(v), "{api:?} v{v}");
                }
            }
        }
        assert!(!ClientApi::ApiVersions.response_header_has_tagged_fields(3));
        assert!(ClientApi::Metadata.response_header_has_tagged_fields(9));
        assert!(!ClientApi::Metadata.response_header_has_tagged_fields(8));
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(ClientApi::Fetch.negotiate(4, 18, i16::MAX), Some(15));
        assert_eq!(ClientApi::Fetch.negotiate(4, 18, 12), Some(12));
        assert_eq!(ClientApi::Fetch.negotiate(0, 3, 12), None);
        assert_eq!(ClientApi::Produce.negotiate(0, 2, 9), None);
        assert_eq!(ClientApi::Metadata.negotiate(0, 0, 9), Some(0));
    }
}
