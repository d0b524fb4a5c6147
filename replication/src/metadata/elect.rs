//! Leader elections asked for by an operator (Kafka's ElectLeaders), pure like the rest of the
//! decide step: a preferred election makes a partition's first replica its leader again when
//! it is in sync and its broker may lead; an unclean one gives a leaderless partition a leader,
//! an in-sync replica if one may lead, else any live replica (alone in the new ISR, losing what
//! only the ISR had: only when asked for).

use super::image::{MetadataImage, PartitionImage};
use super::record::MetadataRecord;
use super::ControllerError;
use crate::ids::{LeaderEpoch, NodeId, PartitionId};

/// Whether `node`'s replica of `partition` may lead: its broker is registered, unfenced, not
/// shutting down, and the replica not damaged.
fn may_lead(image: &MetadataImage, node: NodeId, partition: PartitionId) -> bool {
    image.brokers().get(&node).is_some_and(|b| b.may_hold(partition) && !b.shutting_down)
}

/// The records of one election, or why there is none.
pub fn elect(
    image: &MetadataImage,
    partition: PartitionId,
    unclean: bool,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let p =
        image.partition(partition).ok_or_else(|| ControllerError::UnknownTopic(format!("partition {partition}")))?;
    let (leader, isr) =
        if unclean { unclean_leader(image, partition, p)? } else { preferred_leader(image, partition, p)? };
    Ok(vec![MetadataRecord::PartitionChanged {
        partition,
        isr,
        leader: Some(leader),
        leader_epoch: LeaderEpoch(p.leader_epoch.0 + 1),
        partition_epoch: p.partition_epoch + 1,
    }])
}

fn preferred_leader(
    image: &MetadataImage,
    partition: PartitionId,
    p: &PartitionImage,
) -> Result<(NodeId, Vec<NodeId>), ControllerError> {
    let preferred = *p.replicas.first().expect("a partition has replicas");
    if p.leader == Some(preferred) {
        return Err(ControllerError::ElectionNotNeeded(format!(
            "{partition}: its preferred replica {preferred} leads"
        )));
    }
    if !p.isr.contains(&preferred) || !may_lead(image, preferred, partition) {
        return Err(ControllerError::PreferredLeaderNotAvailable(format!(
            "{partition}: its preferred replica {preferred} is not in sync or its broker may not lead now"
        )));
    }
    Ok((preferred, p.isr.clone()))
}

fn unclean_leader(
    image: &MetadataImage,
    partition: PartitionId,
    p: &PartitionImage,
) -> Result<(NodeId, Vec<NodeId>), ControllerError> {
    if let Some(leader) = p.leader {
        return Err(ControllerError::ElectionNotNeeded(format!("{partition}: replica {leader} leads")));
    }
    if let Some(n) = p.replicas.iter().copied().find(|n| p.isr.contains(n) && may_lead(image, *n, partition)) {
        return Ok((n, p.isr.clone()));
    }
    match p.replicas.iter().copied().find(|n| may_lead(image, *n, partition)) {
        Some(n) => Ok((n, vec![n])),
        None => Err(ControllerError::EligibleLeadersNotAvailable(format!(
            "{partition}: no replica's broker is live, unfenced and undamaged"
        ))),
    }
}

/// Automatic preferred-leader balancing (Kafka's `auto.leader.rebalance.enable`): the
/// partitions to give back to their preferred replica. A broker is imbalanced when more than
/// `percentage` percent of the partitions it is preferred for are led by another replica
/// (Kafka's `leader.imbalance.per.broker.percentage`); each such partition whose preferred
/// replica is in sync and may lead is elected, unless it is being reassigned (a reassignment
/// chooses its own leader when it completes). A balanced broker's few strays stay where they
/// are, as in Kafka.
pub fn imbalanced(image: &MetadataImage, percentage: u32) -> Vec<PartitionId> {
    let mut preferred: std::collections::BTreeMap<NodeId, (usize, Vec<PartitionId>)> = Default::default();
    for topic in image.topics() {
        for (index, p) in topic.partitions.iter().enumerate() {
            let Some(&first) = p.replicas.first() else { continue };
            let entry = preferred.entry(first).or_default();
            entry.0 += 1;
            if p.leader != Some(first) {
                entry.1.push(PartitionId { topic: topic.id, index: index as i32 });
            }
        }
    }
    let mut elect = Vec::new();
    for (node, (total, strays)) in preferred {
        // More than `percentage` percent, in integers: strays / total > percentage / 100.
        if strays.len() * 100 <= total * percentage as usize {
            continue;
        }
        for partition in strays {
            let Some(p) = image.partition(partition) else { continue };
            let eligible = p.adding.is_empty()
                && p.removing.is_empty()
                && p.isr.contains(&node)
                && may_lead(image, node, partition);
            if eligible {
                elect.push(partition);
            }
        }
    }
    elect
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TopicId;

    const P0: PartitionId = PartitionId { topic: TopicId([4; 16]), index: 0 };

    fn n(ids: &[i32]) -> Vec<NodeId> {
        ids.iter().map(|i| NodeId(*i)).collect()
    }

    /// Brokers 1-3 registered (`fenced` listed), a partition on 1, 2, 3.
    fn image(fenced: &[i32], isr: &[i32], leader: Option<i32>) -> MetadataImage {
        let mut records = Vec::new();
        for node in 1..=3 {
            records.push(MetadataRecord::BrokerRegistered {
                node: NodeId(node),
                broker_epoch: node as i64 - 1,
                incarnation: [node as u8; 16],
                listeners: vec![],
                rack: None,
                fenced: fenced.contains(&node),
            });
        }
        records.push(MetadataRecord::TopicCreated { topic_id: P0.topic, name: "t".into(), configs: vec![] });
        records.push(MetadataRecord::PartitionCreated {
            partition: P0,
            replicas: n(&[1, 2, 3]),
            isr: n(isr),
            leader: leader.map(NodeId),
            leader_epoch: LeaderEpoch(3),
        });
        let mut image = MetadataImage::default();
        for (i, r) in records.iter().enumerate() {
            image.apply(i as u64, r).expect("applies");
        }
        image
    }

    #[test]
    fn the_preferred_replica_leads_again_when_it_is_in_sync_and_live() {
        let records = elect(&image(&[], &[1, 2, 3], Some(2)), P0, false).expect("elected");
        assert!(matches!(
            &records[0],
            MetadataRecord::PartitionChanged { leader: Some(NodeId(1)), leader_epoch: LeaderEpoch(4), .. }
        ));
        let not_needed = elect(&image(&[], &[1, 2, 3], Some(1)), P0, false);
        assert!(matches!(not_needed, Err(ControllerError::ElectionNotNeeded(_))));
        let out_of_sync = elect(&image(&[], &[2, 3], Some(2)), P0, false);
        assert!(matches!(out_of_sync, Err(ControllerError::PreferredLeaderNotAvailable(_))));
        let fenced = elect(&image(&[1], &[1, 2, 3], Some(2)), P0, false);
        assert!(matches!(fenced, Err(ControllerError::PreferredLeaderNotAvailable(_))));
    }

    #[test]
    fn an_unclean_election_prefers_the_isr_and_only_then_any_live_replica() {
        assert!(matches!(
            elect(&image(&[], &[1, 2, 3], Some(2)), P0, true),
            Err(ControllerError::ElectionNotNeeded(_))
        ));
        // The only in-sync replica's broker is fenced: a live one outside the ISR leads alone.
        let records = elect(&image(&[1], &[1], None), P0, true).expect("elected");
        assert!(
            matches!(&records[0], MetadataRecord::PartitionChanged { leader: Some(NodeId(2)), isr, .. } if *isr == n(&[2]))
        );
        // An in-sync replica that may lead is taken first, with the ISR kept.
        let records = elect(&image(&[1], &[1, 3], None), P0, true).expect("elected");
        assert!(
            matches!(&records[0], MetadataRecord::PartitionChanged { leader: Some(NodeId(3)), isr, .. } if *isr == n(&[1, 3]))
        );
        let none = elect(&image(&[1, 2, 3], &[1], None), P0, true);
        assert!(matches!(none, Err(ControllerError::EligibleLeadersNotAvailable(_))));
    }

    #[test]
    fn balancing_elects_a_brokers_strays_only_past_the_imbalance_percentage() {
        // Broker 1 is preferred for P0 only, which 2 leads: 100% imbalance.
        assert_eq!(imbalanced(&image(&[], &[1, 2, 3], Some(2)), 10), vec![P0]);
        assert!(imbalanced(&image(&[], &[1, 2, 3], Some(2)), 100).is_empty(), "100% is not more than 100%");
        assert!(imbalanced(&image(&[], &[1, 2, 3], Some(1)), 10).is_empty(), "balanced");
        assert!(imbalanced(&image(&[], &[2, 3], Some(2)), 10).is_empty(), "the preferred replica is not in sync");
        assert!(imbalanced(&image(&[1], &[1, 2, 3], Some(2)), 10).is_empty(), "its broker is fenced");
        // Ten partitions preferring broker 1, one led elsewhere: 10% is not more than 10%.
        let mut image = image(&[], &[1, 2, 3], Some(1));
        for (offset, index) in (100..).zip(1..10) {
            let partition = PartitionId { topic: P0.topic, index };
            let leader = if index == 9 { 2 } else { 1 };
            let r = MetadataRecord::PartitionCreated {
                partition,
                replicas: n(&[1, 2, 3]),
                isr: n(&[1, 2, 3]),
                leader: Some(NodeId(leader)),
                leader_epoch: LeaderEpoch(0),
            };
            image.apply(offset, &r).expect("applies");
        }
        assert!(imbalanced(&image, 10).is_empty());
        assert_eq!(imbalanced(&image, 9), vec![PartitionId { topic: P0.topic, index: 9 }]);
    }
}
