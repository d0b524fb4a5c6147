//! Partition reassignment (Kafka's KIP-455, as KRaft's controller carries it out), pure like
//! the rest of the decide step. A reassignment to a target replica set grows the partition to
//! the union of its original replicas and the target (the target first, so its first replica is
//! the preferred leader), naming the replicas it adds and those it will remove; the added ones
//! fetch and join the ISR as any follower; once every target replica is in the ISR it completes
//! in one decision: the replicas become the target, the removed ones leave the ISR, and if the
//! leader was one of them a target replica in the ISR leads. A reassignment that only removes
//! replicas completes at once; cancelling goes back to the original replicas (the set; their
//! order is the move's, target first, as in Kafka). A reassignment
//! never takes the last in-sync replicas away: one that would is refused.

use super::image::{MetadataImage, PartitionImage};
use super::record::MetadataRecord;
use super::ControllerError;
use crate::ids::{LeaderEpoch, NodeId, PartitionId};

/// The replicas a reassignment under way moves to: its replicas less those being removed.
pub fn target(p: &PartitionImage) -> Vec<NodeId> {
    p.replicas.iter().copied().filter(|n| !p.removing.contains(n)).collect()
}

/// The replicas before the reassignment under way (all of them when there is none).
pub fn original(p: &PartitionImage) -> Vec<NodeId> {
    p.replicas.iter().copied().filter(|n| !p.adding.contains(n)).collect()
}

pub fn is_reassigning(p: &PartitionImage) -> bool {
    !p.adding.is_empty() || !p.removing.is_empty()
}

/// Starts (or replaces) the reassignment of `partition` to `target`, or with `None` cancels the
/// one under way: the records, which may complete it at once. `allow_factor_change` false (KIP-860)
/// refuses a target with another number of replicas than the original.
pub fn alter(
    image: &MetadataImage,
    partition: PartitionId,
    target: Option<&[NodeId]>,
    allow_factor_change: bool,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let p =
        image.partition(partition).ok_or_else(|| ControllerError::UnknownTopic(format!("partition {partition}")))?;
    let original = original(p);
    let target: Vec<NodeId> = match target {
        None if !is_reassigning(p) => return Err(ControllerError::NoReassignmentInProgress(partition.to_string())),
        None => original.clone(),
        Some(t) => {
            check_target(image, partition, t)?;
            if !allow_factor_change && t.len() != original.len() {
                return Err(ControllerError::InvalidReplicationFactor(format!(
                    "partition {partition} has {} replicas and the reassignment names {}, but the request does not \
                     allow changing the replication factor",
                    original.len(),
                    t.len()
                )));
            }
            t.to_vec()
        }
    };
    if !is_reassigning(p) && target == p.replicas {
        return Ok(Vec::new());
    }
    let mut replicas = target.clone();
    replicas.extend(original.iter().copied().filter(|n| !target.contains(n)));
    let adding: Vec<NodeId> = target.iter().copied().filter(|n| !original.contains(n)).collect();
    let removing: Vec<NodeId> = original.iter().copied().filter(|n| !target.contains(n)).collect();
    // Replicas a replaced or cancelled reassignment had added leave first (their ISR place and
    // any leadership), never the last in-sync ones.
    let mut state = p.clone();
    let mut records = Vec::new();
    let dropped: Vec<NodeId> = p.replicas.iter().copied().filter(|n| !replicas.contains(n)).collect();
    if !dropped.is_empty() {
        let isr: Vec<NodeId> = state.isr.iter().copied().filter(|n| !dropped.contains(n)).collect();
        if isr.is_empty() {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "partition {partition}: the replicas this would drop ({dropped:?}) are its only in-sync ones"
            )));
        }
        change_leader_and_isr(image, partition, &mut state, isr, &replicas, &mut records);
    }
    state.replicas = replicas;
    state.adding = adding;
    state.removing = removing;
    state.partition_epoch += 1;
    records.push(replicas_record(partition, &state));
    records.extend(completion(image, partition, &state));
    Ok(records)
}

/// The records that complete a reassignment once every target replica of `p` is in its ISR
/// (none otherwise, or when none is under way).
pub fn completion(image: &MetadataImage, partition: PartitionId, p: &PartitionImage) -> Vec<MetadataRecord> {
    let target = target(p);
    if !is_reassigning(p) || !target.iter().all(|n| p.isr.contains(n)) {
        return Vec::new();
    }
    let mut state = p.clone();
    let mut records = Vec::new();
    let isr: Vec<NodeId> = state.isr.iter().copied().filter(|n| target.contains(n)).collect();
    change_leader_and_isr(image, partition, &mut state, isr, &target, &mut records);
    state.replicas = target;
    state.adding.clear();
    state.removing.clear();
    state.partition_epoch += 1;
    records.push(replicas_record(partition, &state));
    records
}

/// Sets the ISR to `isr` and, if the leader is not among `allowed`, elects the first replica of
/// `allowed` in that ISR whose broker may lead; a `PartitionChanged` if anything changed.
fn change_leader_and_isr(
    image: &MetadataImage,
    partition: PartitionId,
    state: &mut PartitionImage,
    isr: Vec<NodeId>,
    allowed: &[NodeId],
    records: &mut Vec<MetadataRecord>,
) {
    let may_lead = |n: &NodeId| image.brokers().get(n).is_some_and(|b| b.may_hold(partition));
    let leader = match state.leader {
        Some(l) if allowed.contains(&l) => Some(l),
        _ => allowed.iter().copied().find(|n| isr.contains(n) && may_lead(n)),
    };
    if isr == state.isr && leader == state.leader {
        return;
    }
    if leader != state.leader {
        state.leader_epoch = LeaderEpoch(state.leader_epoch.0 + 1);
    }
    state.isr = isr;
    state.leader = leader;
    state.partition_epoch += 1;
    records.push(MetadataRecord::PartitionChanged {
        partition,
        isr: state.isr.clone(),
        leader: state.leader,
        leader_epoch: state.leader_epoch,
        partition_epoch: state.partition_epoch,
    });
}

fn replicas_record(partition: PartitionId, state: &PartitionImage) -> MetadataRecord {
    MetadataRecord::PartitionReplicasChanged {
        partition,
        replicas: state.replicas.clone(),
        adding: state.adding.clone(),
        removing: state.removing.clone(),
        partition_epoch: state.partition_epoch,
    }
}

/// A target names each replica once, at least one, and only registered brokers.
fn check_target(image: &MetadataImage, partition: PartitionId, target: &[NodeId]) -> Result<(), ControllerError> {
    let bad = |why: String| Err(ControllerError::InvalidReplicaAssignment(format!("partition {partition}: {why}")));
    if target.is_empty() {
        return bad("the target names no replica".into());
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return bad(format!("the target names broker {} twice", w[0]));
    }
    if let Some(n) = target.iter().find(|n| !image.brokers().contains_key(n)) {
        return bad(format!("broker {n} is not registered"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TopicId;
    use crate::metadata::brokers::{self, Registration};

    const TOPIC: TopicId = TopicId([3; 16]);
    const P0: PartitionId = PartitionId { topic: TOPIC, index: 0 };

    fn n(ids: &[i32]) -> Vec<NodeId> {
        ids.iter().map(|i| NodeId(*i)).collect()
    }

    /// Brokers 1-4 registered and unfenced; one partition on 1, 2, 3 led by 1.
    fn image() -> MetadataImage {
        let mut image = MetadataImage::default();
        let mut offset = 0;
        let mut apply = |image: &mut MetadataImage, records: Vec<MetadataRecord>| {
            for r in records {
                image.apply(offset, &r).expect("applies");
                offset += 1;
            }
        };
        for node in 1..=4 {
            let registration =
                Registration { node: NodeId(node), incarnation: [node as u8; 16], listeners: vec![], rack: None };
            let epoch = image.applied.map_or(0, |a| a as i64 + 1);
            let records = brokers::register(&image, &registration, epoch, false).expect("registers");
            apply(&mut image, records);
            let records = vec![MetadataRecord::BrokerUnfenced { node: NodeId(node), broker_epoch: epoch }];
            apply(&mut image, records);
        }
        let records = vec![
            MetadataRecord::TopicCreated { topic_id: TOPIC, name: "t".into(), configs: vec![] },
            MetadataRecord::PartitionCreated {
                partition: P0,
                replicas: n(&[1, 2, 3]),
                isr: n(&[1, 2, 3]),
                leader: Some(NodeId(1)),
                leader_epoch: LeaderEpoch(0),
            },
        ];
        apply(&mut image, records);
        image
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            let next = image.applied.map_or(0, |a| a + 1);
            image.apply(next, r).expect("decided records apply");
        }
    }

    fn part(image: &MetadataImage) -> PartitionImage {
        image.topic("t").expect("topic").partitions[0].clone()
    }

    #[test]
    fn a_move_grows_the_replicas_then_completes_once_the_target_is_in_sync() {
        let mut image = image();
        let records = alter(&image, P0, Some(&n(&[4, 2, 3])), true).expect("starts");
        apply(&mut image, &records);
        let p = part(&image);
        assert_eq!((p.replicas.clone(), p.adding.clone(), p.removing.clone()), (n(&[4, 2, 3, 1]), n(&[4]), n(&[1])));
        assert_eq!((p.leader, p.isr.clone()), (Some(NodeId(1)), n(&[1, 2, 3])), "leader and ISR untouched");
        // Node 4 caught up: the ISR change completes it; the leader (1) was removed, so the first
        // target replica in sync leads.
        let mut joined = p.clone();
        joined.isr = n(&[1, 2, 3, 4]);
        joined.partition_epoch += 1;
        apply(
            &mut image,
            &[MetadataRecord::PartitionChanged {
                partition: P0,
                isr: joined.isr.clone(),
                leader: joined.leader,
                leader_epoch: joined.leader_epoch,
                partition_epoch: joined.partition_epoch,
            }],
        );
        let done = completion(&image, P0, &part(&image));
        apply(&mut image, &done);
        let p = part(&image);
        assert_eq!(p.replicas, n(&[4, 2, 3]));
        assert!(p.adding.is_empty() && p.removing.is_empty());
        assert_eq!((p.leader, p.isr.clone()), (Some(NodeId(4)), n(&[2, 3, 4])));
        assert_eq!(p.leader_epoch, LeaderEpoch(1));
        assert!(completion(&image, P0, &p).is_empty(), "nothing left to complete");
    }

    #[test]
    fn cancelling_goes_back_to_the_original_replicas_and_removal_only_completes_at_once() {
        let mut image = image();
        let records = alter(&image, P0, Some(&n(&[4, 2, 3])), true).unwrap();
        apply(&mut image, &records);
        let records = alter(&image, P0, None, true).expect("cancels");
        apply(&mut image, &records);
        let p = part(&image);
        // The original set (in the order of the move's replicas, as Kafka's revert gives it).
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (n(&[2, 3, 1]), n(&[1, 2, 3]), Some(NodeId(1))));
        assert!(p.adding.is_empty() && p.removing.is_empty());
        assert!(matches!(alter(&image, P0, None, true), Err(ControllerError::NoReassignmentInProgress(_))));
        // Removing a replica only: done in the same decision.
        let records = alter(&image, P0, Some(&n(&[2, 3])), true).unwrap();
        apply(&mut image, &records);
        let p = part(&image);
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (n(&[2, 3]), n(&[2, 3]), Some(NodeId(2))));
        // The same set again: nothing to do.
        assert!(alter(&image, P0, Some(&n(&[2, 3])), true).unwrap().is_empty());
    }

    #[test]
    fn bad_targets_are_refused() {
        let image = image();
        let refused = |t: &[i32], allow: bool| alter(&image, P0, Some(&n(t)), allow).unwrap_err();
        assert!(matches!(refused(&[], true), ControllerError::InvalidReplicaAssignment(_)));
        assert!(matches!(refused(&[1, 1], true), ControllerError::InvalidReplicaAssignment(_)));
        assert!(matches!(refused(&[1, 9], true), ControllerError::InvalidReplicaAssignment(_)));
        assert!(matches!(refused(&[1, 2], false), ControllerError::InvalidReplicationFactor(_)));
        let unknown = PartitionId { topic: TOPIC, index: 5 };
        assert!(matches!(alter(&image, unknown, None, true), Err(ControllerError::UnknownTopic(_))));
    }

    #[test]
    fn a_replaced_move_never_drops_the_only_in_sync_replicas() {
        let mut image = image();
        let records = alter(&image, P0, Some(&n(&[4])), true).unwrap();
        apply(&mut image, &records);
        // Only node 4 is in sync now (the others fell behind), still mid-move.
        let p = part(&image);
        apply(
            &mut image,
            &[MetadataRecord::PartitionChanged {
                partition: P0,
                isr: n(&[4]),
                leader: Some(NodeId(4)),
                leader_epoch: LeaderEpoch(p.leader_epoch.0 + 1),
                partition_epoch: p.partition_epoch + 1,
            }],
        );
        // Completion needs the target in sync: it is, so the move can complete...
        let p = part(&image);
        assert_eq!(completion(&image, P0, &p).len(), 1);
        // ...but cancelling would drop node 4, the only in-sync replica: refused.
        assert!(matches!(alter(&image, P0, None, true), Err(ControllerError::InvalidReplicaAssignment(_))));
    }
}
