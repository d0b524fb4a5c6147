//! The controller's decision on a leader's request to change a partition's in-sync replicas
//! (Kafka's AlterPartition), pure like the rest of the decide step. The leader proposes the
//! whole new ISR with the leader epoch and partition epoch it holds; the controller takes it
//! only if both are still current, the sender still leads, and every replica joining is a live
//! (registered, unfenced, not shutting down) broker holding a replica. So an ISR is never
//! decided by a leader alone: a leader that lost its leadership, or decided on an old partition
//! state, is refused and learns the current state from the metadata.

use super::image::MetadataImage;
use super::record::MetadataRecord;
use crate::ids::{LeaderEpoch, NodeId, PartitionId};

/// One partition's proposed ISR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub partition: PartitionId,
    /// The leader epoch the leader holds.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch of the state the proposal was decided on.
    pub partition_epoch: i32,
    /// The whole new ISR, the leader included.
    pub isr: Vec<NodeId>,
}

/// Why a proposal was refused (Kafka's codes in the Kafka layer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsrRefusal {
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("no such partition")]
    UnknownPartition,
    /// NOT_LEADER_OR_FOLLOWER: the sender does not lead the partition.
    #[error("the sender does not lead the partition")]
    NotLeader,
    /// FENCED_LEADER_EPOCH: the leader epoch is not the partition's.
    #[error("leader epoch {sent}; the partition's is {current}")]
    FencedLeaderEpoch { sent: i32, current: i32 },
    /// INVALID_UPDATE_VERSION: decided on an older (or newer) partition state.
    #[error("partition epoch {sent}; the partition's is {current}")]
    InvalidUpdateVersion { sent: i32, current: i32 },
    /// INELIGIBLE_REPLICA: a replica joining is fenced, shutting down, damaged, or holds no replica.
    #[error("replica {0} may not join the ISR (no replica there, its broker is fenced or shutting down, or its replica is damaged)")]
    IneligibleReplica(NodeId),
    /// INVALID_REQUEST: the ISR leaves the leader out, or names a replica twice.
    #[error("{0}")]
    Invalid(String),
    /// STALE_BROKER_EPOCH: the sender registered again since (or never did with this epoch).
    #[error("broker epoch {sent}; the sender's registration has {current:?}")]
    StaleBrokerEpoch { sent: i64, current: Option<i64> },
}

/// The new state a taken proposal gave the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrDecided {
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    pub isr: Vec<NodeId>,
}

/// Decides each proposal of `node` (registered with `broker_epoch`): the records to write
/// (one `PartitionChanged` per proposal taken, each applying to `image` whatever the others
/// do, since a request names each partition once) and, per proposal in order, its outcome.
pub fn alter_isr(
    image: &MetadataImage,
    node: NodeId,
    broker_epoch: i64,
    proposals: &[IsrProposal],
) -> (Vec<MetadataRecord>, Vec<Result<IsrDecided, IsrRefusal>>) {
    let registered = image.brokers().get(&node).map(|b| b.epoch);
    if registered != Some(broker_epoch) {
        let refusal = IsrRefusal::StaleBrokerEpoch { sent: broker_epoch, current: registered };
        return (Vec::new(), proposals.iter().map(|_| Err(refusal.clone())).collect());
    }
    let mut records = Vec::new();
    let mut outcomes = Vec::with_capacity(proposals.len());
    for (i, proposal) in proposals.iter().enumerate() {
        if proposals[..i].iter().any(|p| p.partition == proposal.partition) {
            outcomes.push(Err(IsrRefusal::Invalid("the request names this partition twice".into())));
            continue;
        }
        let outcome = decide_one(image, node, proposal);
        if let Ok(decided) = &outcome {
            records.push(MetadataRecord::PartitionChanged {
                partition: proposal.partition,
                isr: decided.isr.clone(),
                leader: Some(node),
                leader_epoch: decided.leader_epoch,
                partition_epoch: decided.partition_epoch,
            });
            // A reassignment whose target replicas are now all in sync completes here (Kafka's
            // AlterPartition does the same); the leader learns it from the metadata.
            if let Some(mut state) = image.partition(proposal.partition).cloned() {
                state.isr = decided.isr.clone();
                state.partition_epoch = decided.partition_epoch;
                records.extend(super::reassign::completion(image, proposal.partition, &state));
            }
        }
        outcomes.push(outcome);
    }
    (records, outcomes)
}

fn decide_one(image: &MetadataImage, node: NodeId, proposal: &IsrProposal) -> Result<IsrDecided, IsrRefusal> {
    let p = image.partition(proposal.partition).ok_or(IsrRefusal::UnknownPartition)?;
    if p.leader != Some(node) {
        return Err(IsrRefusal::NotLeader);
    }
    if proposal.leader_epoch != p.leader_epoch {
        return Err(IsrRefusal::FencedLeaderEpoch { sent: proposal.leader_epoch.0, current: p.leader_epoch.0 });
    }
    if proposal.partition_epoch != p.partition_epoch {
        return Err(IsrRefusal::InvalidUpdateVersion { sent: proposal.partition_epoch, current: p.partition_epoch });
    }
    if !proposal.isr.contains(&node) {
        return Err(IsrRefusal::Invalid("the new ISR leaves the leader out".into()));
    }
    let mut sorted = proposal.isr.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(IsrRefusal::Invalid("the new ISR names a replica twice".into()));
    }
    for member in proposal.isr.iter().filter(|n| !p.isr.contains(n)) {
        let live = image.brokers().get(member).is_some_and(|b| b.may_hold(proposal.partition) && !b.shutting_down);
        if !p.replicas.contains(member) || !live {
            return Err(IsrRefusal::IneligibleReplica(*member));
        }
    }
    if proposal.isr.iter().any(|n| !p.replicas.contains(n)) {
        return Err(IsrRefusal::Invalid("the new ISR names a node without a replica".into()));
    }
    // The ISR keeps the replicas' order (the preferred leader first), whatever the proposal's.
    let isr: Vec<NodeId> = p.replicas.iter().copied().filter(|n| proposal.isr.contains(n)).collect();
    Ok(IsrDecided { leader_epoch: p.leader_epoch, partition_epoch: p.partition_epoch + 1, isr })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TopicId;

    const TOPIC: TopicId = TopicId([7; 16]);

    /// Brokers 1-3 registered (epochs 10, 11, 12; `fenced` listed), a partition on all three
    /// led by 1 at leader epoch 4, partition epoch 6, ISR {1, 2}.
    fn image(fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        let mut offset = 0;
        let mut apply = |image: &mut MetadataImage, r: MetadataRecord| {
            image.apply(offset, &r).unwrap();
            offset += 1;
        };
        for n in 1..=3 {
            apply(
                &mut image,
                MetadataRecord::BrokerRegistered {
                    node: NodeId(n),
                    broker_epoch: 9 + n as i64,
                    incarnation: [n as u8; 16],
                    listeners: Vec::new(),
                    rack: None,
                    fenced: true,
                },
            );
            if !fenced.contains(&n) {
                apply(&mut image, MetadataRecord::BrokerUnfenced { node: NodeId(n), broker_epoch: 9 + n as i64 });
            }
        }
        apply(&mut image, MetadataRecord::TopicCreated { topic_id: TOPIC, name: "t".into(), configs: Vec::new() });
        let partition = PartitionId { topic: TOPIC, index: 0 };
        apply(
            &mut image,
            MetadataRecord::PartitionCreated {
                partition,
                replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
                isr: vec![NodeId(1), NodeId(2)],
                leader: Some(NodeId(1)),
                leader_epoch: LeaderEpoch(4),
            },
        );
        for epoch in 1..=6 {
            apply(
                &mut image,
                MetadataRecord::PartitionChanged {
                    partition,
                    isr: vec![NodeId(1), NodeId(2)],
                    leader: Some(NodeId(1)),
                    leader_epoch: LeaderEpoch(4),
                    partition_epoch: epoch,
                },
            );
        }
        image
    }

    fn proposal(isr: &[i32], leader_epoch: i32, partition_epoch: i32) -> IsrProposal {
        IsrProposal {
            partition: PartitionId { topic: TOPIC, index: 0 },
            leader_epoch: LeaderEpoch(leader_epoch),
            partition_epoch,
            isr: isr.iter().map(|&n| NodeId(n)).collect(),
        }
    }

    #[test]
    fn a_current_proposal_is_taken_in_replica_order() {
        let image = image(&[]);
        let (records, outcomes) = alter_isr(&image, NodeId(1), 10, &[proposal(&[3, 2, 1], 4, 6)]);
        let decided = outcomes[0].clone().unwrap();
        assert_eq!(
            decided,
            IsrDecided { leader_epoch: LeaderEpoch(4), partition_epoch: 7, isr: vec![NodeId(1), NodeId(2), NodeId(3)] }
        );
        let mut applied = image.clone();
        applied.apply(100, &records[0]).unwrap();
        assert_eq!(applied.topic("t").unwrap().partitions[0].isr.len(), 3);
        // A shrink is taken as well.
        let (records, outcomes) = alter_isr(&image, NodeId(1), 10, &[proposal(&[1], 4, 6)]);
        assert!(outcomes[0].is_ok() && records.len() == 1);
    }

    #[test]
    fn stale_or_wrong_proposals_are_refused_with_their_reason() {
        let image = image(&[3]);
        let cases: Vec<(NodeId, i64, IsrProposal, &str)> = vec![
            (NodeId(2), 11, proposal(&[1, 2], 4, 6), "NotLeader"),
            (NodeId(1), 10, proposal(&[1, 2], 3, 6), "FencedLeaderEpoch"),
            (NodeId(1), 10, proposal(&[1, 2], 4, 5), "InvalidUpdateVersion"),
            (NodeId(1), 10, proposal(&[1, 2, 3], 4, 6), "IneligibleReplica"),
            (NodeId(1), 10, proposal(&[2], 4, 6), "Invalid"),
            (NodeId(1), 10, proposal(&[1, 2, 2], 4, 6), "Invalid"),
            (NodeId(1), 10, proposal(&[1, 9], 4, 6), "IneligibleReplica"),
            (NodeId(1), 99, proposal(&[1], 4, 6), "StaleBrokerEpoch"),
        ];
        for (node, epoch, p, expected) in cases {
            let (records, outcomes) = alter_isr(&image, node, epoch, std::slice::from_ref(&p));
            let refusal = outcomes[0].clone().unwrap_err();
            assert!(format!("{refusal:?}").starts_with(expected), "{p:?}: {refusal:?}");
            assert!(records.is_empty());
        }
        let mut unknown = proposal(&[1], 4, 6);
        unknown.partition.index = 5;
        let (_, outcomes) = alter_isr(&image, NodeId(1), 10, &[unknown]);
        assert_eq!(outcomes[0], Err(IsrRefusal::UnknownPartition));
        let (records, outcomes) = alter_isr(&image, NodeId(1), 10, &[proposal(&[1], 4, 6), proposal(&[1, 2], 4, 6)]);
        assert_eq!((records.len(), outcomes[1].is_err()), (1, true), "a partition named twice");
    }
}
