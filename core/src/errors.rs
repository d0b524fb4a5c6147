//! The one table from Ringtail's domain errors to Kafka error codes. The other layers return
//! what went wrong in their own terms (a refused batch, a fenced epoch, a topic that exists
//! already, a member of an older generation); the Kafka API handlers turn them into codes here
//! and nowhere else.

use ringtail_log::producer::SequenceError;
use ringtail_log::{BatchError, LogError};
use ringtail_net::error_code as code;
use ringtail_replication::metadata::ControllerError;
use ringtail_replication::PartitionError;

use crate::broker::group::error::GroupError;
use crate::runtime::routing::Route;
use crate::runtime::table::ServeError;

pub fn batch_error(e: &BatchError) -> i16 {
    match e {
        BatchError::Truncated { .. }
        | BatchError::LengthTooSmall { .. }
        | BatchError::CrcMismatch { .. }
        | BatchError::Decompression { .. } => code::CORRUPT_MESSAGE,
        BatchError::UnsupportedMagic { .. } => code::UNSUPPORTED_FOR_MESSAGE_FORMAT,
        BatchError::TooLarge { .. } => code::MESSAGE_TOO_LARGE,
        BatchError::InvalidTimestamp { .. } | BatchError::TimestampOutOfRange { .. } => code::INVALID_TIMESTAMP,
        BatchError::Invalid { .. } => code::INVALID_RECORD,
    }
}

pub fn sequence_error(e: &SequenceError) -> i16 {
    match e {
        SequenceError::StaleEpoch { .. } => code::INVALID_PRODUCER_EPOCH,
        SequenceError::OutOfOrder { .. } | SequenceError::NewEpochNotAtZero { .. } => {
            code::OUT_OF_ORDER_SEQUENCE_NUMBER
        }
    }
}

pub fn log_error(e: &LogError) -> i16 {
    match e {
        LogError::Batch(e) => batch_error(e),
        LogError::Sequence(e) => sequence_error(e),
        LogError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
        LogError::Io { .. } | LogError::Corrupt { .. } | LogError::Config { .. } => code::KAFKA_STORAGE_ERROR,
        // Retriable in every client (the Java client's KafkaStorageException is an
        // InvalidMetadataException; librdkafka and kafka-python retry it): producers keep
        // their batches and retry until space is freed or their delivery timeout ends.
        LogError::NoSpace { .. } => code::KAFKA_STORAGE_ERROR,
        // A follower's own fetch result; no client request produces it.
        LogError::NotContinuing { .. } => code::UNKNOWN_SERVER_ERROR,
        // A produce meets it when this replica lost its leadership and cut its log to the new
        // leader's: its wait on a batch that was cut, or an append while the cut is made. Kafka
        // answers NOT_LEADER_OR_FOLLOWER there, which clients retry at the new leader with the
        // same sequence. A code a client takes as permanent (UNKNOWN_SERVER_ERROR) makes an
        // idempotent librdkafka producer bump its epoch and renumber every batch it is
        // retrying: one of them the new leader already holds (answered NOT_LEADER_OR_FOLLOWER
        // or timed out here, or written to too few replicas) is then stored twice.
        LogError::Truncated { .. } => code::NOT_LEADER_OR_FOLLOWER,
    }
}

pub fn partition_error(e: &PartitionError) -> i16 {
    match e {
        PartitionError::NotLeader { .. } => code::NOT_LEADER_OR_FOLLOWER,
        PartitionError::FencedLeaderEpoch { .. } => code::FENCED_LEADER_EPOCH,
        PartitionError::UnknownLeaderEpoch { .. } => code::UNKNOWN_LEADER_EPOCH,
        PartitionError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
        PartitionError::NotReplica { .. } | PartitionError::NotFollower => code::NOT_LEADER_OR_FOLLOWER,
        PartitionError::NotEnoughReplicas { .. } => code::NOT_ENOUGH_REPLICAS,
        PartitionError::NotEnoughReplicasAfterAppend { .. } => code::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        PartitionError::OffsetNotAvailable => code::OFFSET_NOT_AVAILABLE,
        PartitionError::Log(e) => log_error(e),
    }
}

pub fn serve_error(e: &ServeError) -> i16 {
    match e {
        ServeError::Partition(e) => partition_error(e),
        ServeError::Offline(_) => code::KAFKA_STORAGE_ERROR,
        ServeError::NotHere => code::UNKNOWN_TOPIC_OR_PARTITION,
        // The owner shard is stopping (a graceful shutdown, after leadership moved away): a
        // code clients retry elsewhere with the same sequence. UNKNOWN_SERVER_ERROR would make an
        // idempotent librdkafka producer bump its epoch and store retried batches twice.
        ServeError::ShardStopped => code::NOT_LEADER_OR_FOLLOWER,
        ServeError::TimedOut => code::REQUEST_TIMED_OUT,
    }
}

/// The code for a partition this node does not serve: led elsewhere, or without a leader.
pub fn not_local(route: &Route) -> i16 {
    match route {
        Route::Local(_) => code::NONE,
        Route::Remote { .. } => code::NOT_LEADER_OR_FOLLOWER,
        Route::Offline => code::LEADER_NOT_AVAILABLE,
    }
}

pub fn controller_error(e: &ControllerError) -> i16 {
    match e {
        ControllerError::InvalidTopicName(_) | ControllerError::InternalTopic(_) => code::INVALID_TOPIC_EXCEPTION,
        ControllerError::TopicExists(_) => code::TOPIC_ALREADY_EXISTS,
        ControllerError::UnknownTopic(_) => code::UNKNOWN_TOPIC_OR_PARTITION,
        ControllerError::InvalidPartitions(_) => code::INVALID_PARTITIONS,
        ControllerError::InvalidReplicationFactor(_) => code::INVALID_REPLICATION_FACTOR,
        ControllerError::InvalidReplicaAssignment(_) => code::INVALID_REPLICA_ASSIGNMENT,
        ControllerError::InvalidConfig(_) => code::INVALID_CONFIG,
        ControllerError::PolicyViolation(_) => code::POLICY_VIOLATION,
        ControllerError::InvalidRequest(_) => code::INVALID_REQUEST,
        ControllerError::NoReassignmentInProgress(_) => code::NO_REASSIGNMENT_IN_PROGRESS,
        ControllerError::ElectionNotNeeded(_) => code::ELECTION_NOT_NEEDED,
        ControllerError::PreferredLeaderNotAvailable(_) => code::PREFERRED_LEADER_NOT_AVAILABLE,
        ControllerError::EligibleLeadersNotAvailable(_) => code::ELIGIBLE_LEADERS_NOT_AVAILABLE,
        ControllerError::NoSpace(_) => code::KAFKA_STORAGE_ERROR,
        // Retriable in every client; the message names the cause.
        ControllerError::BrokerIdNotRegistered(_) => code::BROKER_ID_NOT_REGISTERED,
        ControllerError::Unavailable(_) => code::REQUEST_TIMED_OUT,
    }
}

pub fn group_error(e: &GroupError) -> i16 {
    match e {
        GroupError::UnknownMemberId => code::UNKNOWN_MEMBER_ID,
        GroupError::FencedInstanceId => code::FENCED_INSTANCE_ID,
        GroupError::RebalanceInProgress => code::REBALANCE_IN_PROGRESS,
        GroupError::IllegalGeneration => code::ILLEGAL_GENERATION,
        GroupError::CoordinatorNotAvailable => code::COORDINATOR_NOT_AVAILABLE,
        GroupError::CoordinatorLoadInProgress => code::COORDINATOR_LOAD_IN_PROGRESS,
        GroupError::InvalidGroupId => code::INVALID_GROUP_ID,
        GroupError::InconsistentGroupProtocol => code::INCONSISTENT_GROUP_PROTOCOL,
        GroupError::NotCoordinator => code::NOT_COORDINATOR,
        GroupError::NonEmptyGroup => code::NON_EMPTY_GROUP,
        GroupError::GroupIdNotFound => code::GROUP_ID_NOT_FOUND,
        GroupError::MemberIdRequired => code::MEMBER_ID_REQUIRED,
        GroupError::InvalidSessionTimeout { .. } => code::INVALID_SESSION_TIMEOUT,
        GroupError::GroupMaxSizeReached { .. } => code::GROUP_MAX_SIZE_REACHED,
        GroupError::OffsetMetadataTooLarge { .. } => code::OFFSET_METADATA_TOO_LARGE,
        GroupError::InvalidCommitOffsetSize { .. } => code::INVALID_COMMIT_OFFSET_SIZE,
        GroupError::GroupSubscribedToTopic => code::GROUP_SUBSCRIBED_TO_TOPIC,
        GroupError::UnknownServerError => code::UNKNOWN_SERVER_ERROR,
        GroupError::FencedMemberEpoch => code::FENCED_MEMBER_EPOCH,
        GroupError::StaleMemberEpoch => code::STALE_MEMBER_EPOCH,
        GroupError::UnreleasedInstanceId => code::UNRELEASED_INSTANCE_ID,
        GroupError::UnsupportedAssignor(_) => code::UNSUPPORTED_ASSIGNOR,
        GroupError::InvalidRegularExpression(_) => code::INVALID_REGULAR_EXPRESSION,
        GroupError::InvalidRequest(_) => code::INVALID_REQUEST,
        GroupError::WrongGroupType(_) => code::GROUP_ID_NOT_FOUND,
        GroupError::OffsetsPartition(e) => partition_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringtail_replication::{LeaderEpoch, NodeId};

    /// Kafka's numbers, checked against the protocol's own table (kafka-protocol's ResponseError).
    #[test]
    fn codes_are_kafkas() {
        use kafka_protocol::ResponseError as K;
        let check = |ours: i16, theirs: K| assert_eq!(ours, theirs.code(), "{theirs:?}");
        check(
            partition_error(&PartitionError::NotLeader { leader: Some(NodeId(2)), epoch: LeaderEpoch(1) }),
            K::NotLeaderOrFollower,
        );
        check(
            partition_error(&PartitionError::FencedLeaderEpoch { requested: LeaderEpoch(1), current: LeaderEpoch(2) }),
            K::FencedLeaderEpoch,
        );
        check(
            partition_error(&PartitionError::UnknownLeaderEpoch { requested: LeaderEpoch(3), current: LeaderEpoch(2) }),
            K::UnknownLeaderEpoch,
        );
        check(batch_error(&BatchError::TooLarge { size: 2, max: 1 }), K::MessageTooLarge);
        check(batch_error(&BatchError::CrcMismatch { expected: 1, actual: 2 }), K::CorruptMessage);
        check(batch_error(&BatchError::InvalidTimestamp { base_timestamp: 2, max_timestamp: 1 }), K::InvalidTimestamp);
        let far =
            BatchError::TimestampOutOfRange { timestamp: 0, now_ms: 9, distance_ms: 9, direction: "before", max_ms: 1 };
        check(batch_error(&far), K::InvalidTimestamp);
        check(batch_error(&BatchError::UnsupportedMagic { magic: 1 }), K::UnsupportedForMessageFormat);
        check(
            sequence_error(&SequenceError::StaleEpoch { producer_id: 1, epoch: 0, current: 1 }),
            K::InvalidProducerEpoch,
        );
        check(
            sequence_error(&SequenceError::OutOfOrder { producer_id: 1, epoch: 0, first_seq: 5, expected: 0 }),
            K::OutOfOrderSequenceNumber,
        );
        check(serve_error(&ServeError::NotHere), K::UnknownTopicOrPartition);
        check(serve_error(&ServeError::ShardStopped), K::NotLeaderOrFollower);
        // A produce whose batch a truncation took back: retried at the new leader, not failed.
        check(partition_error(&PartitionError::Log(LogError::Truncated { offset: 7 })), K::NotLeaderOrFollower);
        check(controller_error(&ControllerError::TopicExists("t".into())), K::TopicAlreadyExists);
        check(controller_error(&ControllerError::PolicyViolation(String::new())), K::PolicyViolation);
        check(controller_error(&ControllerError::InvalidReplicaAssignment(String::new())), K::InvalidReplicaAssignment);
        check(controller_error(&ControllerError::InvalidRequest(String::new())), K::InvalidRequest);
        check(controller_error(&ControllerError::NoReassignmentInProgress(String::new())), K::NoReassignmentInProgress);
        check(controller_error(&ControllerError::ElectionNotNeeded(String::new())), K::ElectionNotNeeded);
        check(controller_error(&ControllerError::BrokerIdNotRegistered(4)), K::BrokerIdNotRegistered);
        check(
            controller_error(&ControllerError::PreferredLeaderNotAvailable(String::new())),
            K::PreferredLeaderNotAvailable,
        );
        check(
            controller_error(&ControllerError::EligibleLeadersNotAvailable(String::new())),
            K::EligibleLeadersNotAvailable,
        );
        check(group_error(&GroupError::UnknownMemberId), K::UnknownMemberId);
        check(group_error(&GroupError::FencedInstanceId), K::FencedInstanceId);
        check(group_error(&GroupError::FencedMemberEpoch), K::FencedMemberEpoch);
        check(group_error(&GroupError::StaleMemberEpoch), K::StaleMemberEpoch);
        check(group_error(&GroupError::UnreleasedInstanceId), K::UnreleasedInstanceId);
        check(group_error(&GroupError::UnsupportedAssignor(String::new())), K::UnsupportedAssignor);
        check(group_error(&GroupError::InvalidRegularExpression(String::new())), K::InvalidRegularExpression);
        check(group_error(&GroupError::RebalanceInProgress), K::RebalanceInProgress);
        check(group_error(&GroupError::IllegalGeneration), K::IllegalGeneration);
        check(group_error(&GroupError::CoordinatorNotAvailable), K::CoordinatorNotAvailable);
        check(group_error(&GroupError::CoordinatorLoadInProgress), K::CoordinatorLoadInProgress);
        check(group_error(&GroupError::NotCoordinator), K::NotCoordinator);
        check(group_error(&GroupError::InconsistentGroupProtocol), K::InconsistentGroupProtocol);
        check(group_error(&GroupError::MemberIdRequired), K::MemberIdRequired);
        check(group_error(&GroupError::NonEmptyGroup), K::NonEmptyGroup);
        check(group_error(&GroupError::GroupIdNotFound), K::GroupIdNotFound);
        check(
            group_error(&GroupError::InvalidSessionTimeout { session_timeout_ms: 10, min_ms: 6_000, max_ms: 300_000 }),
            K::InvalidSessionTimeout,
        );
        check(group_error(&GroupError::GroupMaxSizeReached { members_max: 1000 }), K::GroupMaxSizeReached);
        check(
            group_error(&GroupError::OffsetMetadataTooLarge { bytes: 4097, bytes_max: 4096 }),
            K::OffsetMetadataTooLarge,
        );
        check(group_error(&GroupError::InvalidCommitOffsetSize { offsets_max: 100 }), K::InvalidCommitOffsetSize);
        check(group_error(&GroupError::GroupSubscribedToTopic), K::GroupSubscribedToTopic);
        check(
            group_error(&GroupError::OffsetsPartition(PartitionError::NotLeader {
                leader: None,
                epoch: LeaderEpoch(1),
            })),
            K::NotLeaderOrFollower,
        );
    }
}
