//! Why the group coordinator refused a request, in the group protocol's own terms; the Kafka
//! handlers turn these into error codes through `crate::errors::group_error`.

use ringtail_replication::PartitionError;

/// A refusal of the group coordinator: one variant per failure its answers report.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
    #[error("the coordinator knows no such member of the group (its session expired, or it left); join again")]
    UnknownMemberId,
    #[error(
        "another member joined with this group.instance.id and replaced this one; give each member its own \
         group.instance.id"
    )]
    FencedInstanceId,
    #[error("the group is rebalancing; join the group again")]
    RebalanceInProgress,
    #[error("the generation id is not the group's current generation; join the group again")]
    IllegalGeneration,
    #[error(
        "the group's coordinator is not available (no __consumer_offsets partition led here, or too many groups on \
         its shard); find the coordinator and retry"
    )]
    CoordinatorNotAvailable,
    #[error("the group's coordinator is loading its groups (it has just become the leader of their partition); retry")]
    CoordinatorLoadInProgress,
    #[error("the group id is empty; set group.id")]
    InvalidGroupId,
    #[error(
        "the protocol type or protocols do not match the group's (or none, or too many, were given); offer a \
         protocol every member supports"
    )]
    InconsistentGroupProtocol,
    #[error("this broker is no longer the group's coordinator; find the coordinator again")]
    NotCoordinator,
    #[error("the group still has members; stop them before deleting the group or its offsets")]
    NonEmptyGroup,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("a new member must join again with the member id it was given (KIP-394)")]
    MemberIdRequired,
    #[error(
        "session timeout {session_timeout_ms} ms is outside the broker's range [{min_ms}, {max_ms}] ms; set \
         session.timeout.ms within it"
    )]
    InvalidSessionTimeout { session_timeout_ms: i32, min_ms: i32, max_ms: i32 },
    #[error("the group has its maximum of {members_max} members (group.max.size); use another group")]
    GroupMaxSizeReached { members_max: usize },
    #[error("offset metadata of {bytes} bytes exceeds the limit of {bytes_max} bytes (offset.metadata.max.bytes)")]
    OffsetMetadataTooLarge { bytes: usize, bytes_max: usize },
    #[error(
        "the group has committed offsets for {offsets_max} partitions, its limit; delete offsets it no longer needs"
    )]
    InvalidCommitOffsetSize { offsets_max: usize },
    #[error("the group's members subscribe to this topic; its offsets can be deleted once they stop")]
    GroupSubscribedToTopic,
    #[error("the member epoch is not the member's current one; drop the partitions and join again")]
    FencedMemberEpoch,
    #[error("the member epoch is behind the member's current one; retry with the epoch of the last heartbeat")]
    StaleMemberEpoch,
    #[error("another member still uses this group.instance.id; it must leave first")]
    UnreleasedInstanceId,
    #[error("unknown server assignor {0:?}; this broker has uniform and range")]
    UnsupportedAssignor(String),
    #[error("invalid regular expression: {0}")]
    InvalidRegularExpression(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the group {0}")]
    WrongGroupType(String),
    #[error("the offset commit was neither stored nor refused; commit again")]
    UnknownServerError,
    #[error("writing to the group's __consumer_offsets partition failed: {0}")]
    OffsetsPartition(PartitionError),
}
