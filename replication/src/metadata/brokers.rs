//! The controller's decisions about brokers, pure like the rest of the decide step: a
//! registration (KRaft's BrokerRegistration), a heartbeat (unfence once caught up; fence for a
//! controlled shutdown), a session that expired (fence), an unregistration. Each returns the
//! records to append; applied in order to the image it was given, every one of them applies.
//!
//! Leadership follows: a fenced broker leads nothing (each partition it led gets the next
//! unfenced in-sync replica, or no leader, and a higher leader epoch) and leaves the ISR of
//! every partition where others remain in sync; a partition whose only in-sync replica was
//! fenced keeps it in its ISR and has no leader until that broker returns (no unclean
//! election). An unfenced broker takes the leadership of leaderless partitions it is in sync
//! for. Sessions (when each broker was last heard from) are the active controller's memory,
//! not records, as in KRaft.

use std::collections::BTreeSet;

use super::image::{MetadataImage, PartitionImage};
use super::record::{Endpoint, MetadataRecord};
use crate::ids::{LeaderEpoch, NodeId, PartitionId};
use crate::limits::OFFLINE_REPLICAS_PER_BROKER_MAX;

/// Why a broker request is refused (Kafka's codes in the Kafka layer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// STALE_BROKER_EPOCH: the broker registered again since (or never did with this epoch).
    #[error("broker {node} sent epoch {sent}; its registration has epoch {current:?}")]
    StaleEpoch { node: NodeId, sent: i64, current: Option<i64> },
    /// DUPLICATE_BROKER_REGISTRATION: another live process holds this node id.
    #[error("node id {node} is registered by another live process; stop it or use another --node-id")]
    Duplicate { node: NodeId },
}

/// A broker's registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub node: NodeId,
    pub incarnation: [u8; 16],
    pub listeners: Vec<Endpoint>,
    pub rack: Option<String>,
}

/// Registers a broker, fenced, with epoch `broker_epoch` (the offset its record will get).
/// A registration of the same incarnation (a retry) or of a node whose session ended replaces
/// the old one; another live incarnation is refused. Partitions the old registration led lose
/// it: the new one leads once unfenced.
pub fn register(
    image: &MetadataImage,
    registration: &Registration,
    broker_epoch: i64,
    old_session_alive: bool,
) -> Result<Vec<MetadataRecord>, BrokerError> {
    let node = registration.node;
    if let Some(old) = image.brokers().get(&node) {
        if old.incarnation != registration.incarnation && old_session_alive {
            return Err(BrokerError::Duplicate { node });
        }
    }
    let mut records = vec![MetadataRecord::BrokerRegistered {
        node,
        broker_epoch,
        incarnation: registration.incarnation,
        listeners: registration.listeners.clone(),
        rack: registration.rack.clone(),
        fenced: true,
    }];
    if image.brokers().get(&node).is_some_and(|b| !b.fenced) {
        records.extend(leadership_without(image, node, |_| true));
    }
    Ok(records)
}

/// A heartbeat: the broker's epoch must be its registration's. A fenced broker that has caught
/// up with the metadata log is unfenced (and leads the leaderless partitions it is in sync
/// for); a broker shutting down is fenced so its leadership moves first (controlled shutdown).
pub fn heartbeat(
    image: &MetadataImage,
    node: NodeId,
    broker_epoch: i64,
    caught_up: bool,
    shutting_down: bool,
    offline: &[PartitionId],
) -> Result<Vec<MetadataRecord>, BrokerError> {
    let broker = check_epoch(image, node, broker_epoch)?;
    let mut records = Vec::new();
    // Damaged replicas, as the broker reports them: recorded when the set changes; a replica
    // newly damaged leaves its ISR (unless it is the last) and its leadership moves.
    let reported: BTreeSet<PartitionId> = offline.iter().copied().take(OFFLINE_REPLICAS_PER_BROKER_MAX).collect();
    if reported != broker.offline_replicas {
        records.push(MetadataRecord::ReplicasOffline {
            node,
            broker_epoch,
            partitions: reported.iter().copied().collect(),
        });
        if !(shutting_down || broker.shutting_down) {
            let newly: BTreeSet<PartitionId> = reported.difference(&broker.offline_replicas).copied().collect();
            records.extend(leadership_without(image, node, |id| newly.contains(&id)));
        }
    }
    if shutting_down || broker.shutting_down {
        // Recorded once: whichever controller is active later, this process is never
        // unfenced again (a heartbeat it sent before asking may be decided after).
        if !broker.shutting_down {
            records.push(MetadataRecord::BrokerShuttingDown { node, broker_epoch });
        }
        records.extend(fence(image, node));
        return Ok(records);
    }
    if broker.fenced && caught_up {
        records.push(MetadataRecord::BrokerUnfenced { node, broker_epoch });
        records.extend(leadership_to(image, node, &reported));
    }
    Ok(records)
}

/// The broker's session expired, or it shuts down: fence it and move its leadership away.
/// Nothing if it is unknown or fenced already.
pub fn fence(image: &MetadataImage, node: NodeId) -> Vec<MetadataRecord> {
    let Some(broker) = image.brokers().get(&node).filter(|b| !b.fenced) else { return Vec::new() };
    let mut records = vec![MetadataRecord::BrokerFenced { node, broker_epoch: broker.epoch }];
    records.extend(leadership_without(image, node, |_| true));
    records
}

/// The broker leaves the cluster (it must be fenced first: its leadership has moved).
pub fn unregister(image: &MetadataImage, node: NodeId, broker_epoch: i64) -> Result<Vec<MetadataRecord>, BrokerError> {
    let broker = check_epoch(image, node, broker_epoch)?;
    let mut records = Vec::new();
    if !broker.fenced {
        records.extend(fence(image, node));
    }
    records.push(MetadataRecord::BrokerUnregistered { node, broker_epoch });
    Ok(records)
}

fn check_epoch(
    image: &MetadataImage,
    node: NodeId,
    broker_epoch: i64,
) -> Result<&super::image::BrokerImage, BrokerError> {
    match image.brokers().get(&node) {
        Some(b) if b.epoch == broker_epoch => Ok(b),
        other => Err(BrokerError::StaleEpoch { node, sent: broker_epoch, current: other.map(|b| b.epoch) }),
    }
}

/// Whether `node`'s replica of `partition` may lead or be in sync: its broker is unfenced and
/// the replica not reported damaged.
fn eligible(image: &MetadataImage, node: NodeId, partition: PartitionId) -> bool {
    image.brokers().get(&node).is_some_and(|b| b.may_hold(partition))
}

fn partitions(image: &MetadataImage) -> impl Iterator<Item = (PartitionId, &PartitionImage)> {
    image.topics().flat_map(|t| {
        t.partitions.iter().enumerate().map(move |(i, p)| (PartitionId { topic: t.id, index: i as i32 }, p))
    })
}

fn changed(partition: PartitionId, p: &PartitionImage, isr: Vec<NodeId>, leader: Option<NodeId>) -> MetadataRecord {
    let leader_epoch = if leader == p.leader { p.leader_epoch } else { LeaderEpoch(p.leader_epoch.0 + 1) };
    MetadataRecord::PartitionChanged { partition, isr, leader, leader_epoch, partition_epoch: p.partition_epoch + 1 }
}

/// Whether a partition's topic allows electing a replica outside the ISR when no in-sync one is
/// live (`unclean.leader.election.enable`, false by default as in Kafka: it loses what only the
/// ISR had).
fn unclean_allowed(image: &MetadataImage, partition: PartitionId) -> bool {
    const KEY: &str = "unclean.leader.election.enable";
    let topic = image.topic_by_id(partition.topic).and_then(|t| t.configs.get(KEY).cloned());
    let broker = || [None].into_iter().find_map(|n| image.broker_configs(n).and_then(|c| c.get(KEY).cloned()));
    topic.or_else(broker).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `node` leads none of the partitions `which` selects and leaves their ISRs where it shares
/// them with others.
fn leadership_without(image: &MetadataImage, node: NodeId, which: impl Fn(PartitionId) -> bool) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for (id, p) in partitions(image) {
        if (!p.isr.contains(&node) && p.leader != Some(node)) || !which(id) {
            continue;
        }
        let others: Vec<NodeId> = p.isr.iter().copied().filter(|n| *n != node).collect();
        // The last in-sync replica stays in the ISR: electing another would lose data.
        let mut isr = if others.is_empty() { p.isr.clone() } else { others };
        let mut leader = match p.leader {
            Some(l) if l != node => Some(l),
            _ => isr.iter().copied().find(|n| *n != node && eligible(image, *n, id)),
        };
        if leader.is_none() && unclean_allowed(image, id) {
            // Unclean election, when the topic asks for it: a live replica outside the ISR leads
            // with what it has, alone in the new ISR.
            if let Some(n) = p.replicas.iter().copied().find(|n| *n != node && eligible(image, *n, id)) {
                leader = Some(n);
                isr = vec![n];
            }
        }
        if isr != p.isr || leader != p.leader {
            records.push(changed(id, p, isr, leader));
        }
    }
    records
}

/// Leaderless partitions `node` is in sync for get it as their leader; with unclean election
/// allowed, those it only holds a replica of too (alone in the new ISR). Never those whose
/// replica there is damaged (`offline`).
fn leadership_to(image: &MetadataImage, node: NodeId, offline: &BTreeSet<PartitionId>) -> Vec<MetadataRecord> {
    partitions(image)
        .filter(|(id, p)| p.leader.is_none() && p.replicas.contains(&node) && !offline.contains(id))
        .filter_map(|(id, p)| match p.isr.contains(&node) {
            true => Some(changed(id, p, p.isr.clone(), Some(node))),
            // No in-sync replica is live (else it would lead): an unclean election, if allowed.
            false if unclean_allowed(image, id) && !p.isr.iter().any(|n| eligible(image, *n, id)) => {
                Some(changed(id, p, vec![node], Some(node)))
            }
            false => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TopicId;

    fn registration(node: i32, incarnation: u8) -> Registration {
        Registration {
            node: NodeId(node),
            incarnation: [incarnation; 16],
            listeners: vec![Endpoint { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9000 + node as u16 }],
            rack: None,
        }
    }

    /// Applies records at the next offsets, asserting each applies.
    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            let offset = image.applied.map_or(0, |a| a + 1);
            image.apply(offset, r).unwrap_or_else(|e| panic!("{r:?}: {e}"));
        }
    }

    fn next_offset(image: &MetadataImage) -> i64 {
        image.applied.map_or(0, |a| a as i64 + 1)
    }

    /// Brokers 1..=3 registered and unfenced; a topic whose partitions have `replicas` each.
    fn cluster(replicas: &[&[i32]]) -> (MetadataImage, Vec<i64>) {
        let mut image = MetadataImage::default();
        let mut epochs = Vec::new();
        for node in 1..=3 {
            let epoch = next_offset(&image);
            let records = register(&image, &registration(node, 1), epoch, false).expect("registered");
            apply(&mut image, &records);
            epochs.push(epoch);
        }
        let topic = TopicId([5; 16]);
        apply(&mut image, &[MetadataRecord::TopicCreated { topic_id: topic, name: "t".into(), configs: vec![] }]);
        for (i, r) in replicas.iter().enumerate() {
            let nodes: Vec<NodeId> = r.iter().map(|n| NodeId(*n)).collect();
            apply(
                &mut image,
                &[MetadataRecord::PartitionCreated {
                    partition: PartitionId { topic, index: i as i32 },
                    replicas: nodes.clone(),
                    isr: nodes.clone(),
                    leader: None,
                    leader_epoch: LeaderEpoch(0),
                }],
            );
        }
        for (node, epoch) in (1..=3).zip(&epochs) {
            let records = heartbeat(&image, NodeId(node), *epoch, true, false, &[]).expect("heartbeat");
            apply(&mut image, &records);
        }
        (image, epochs)
    }

    fn partition(image: &MetadataImage, index: usize) -> PartitionImage {
        image.topic("t").expect("topic").partitions[index].clone()
    }

    #[test]
    fn a_broker_registers_fenced_and_is_unfenced_once_caught_up() {
        let mut image = MetadataImage::default();
        let records = register(&image, &registration(1, 1), 0, false).expect("ok");
        apply(&mut image, &records);
        assert!(image.brokers()[&NodeId(1)].fenced);
        assert!(heartbeat(&image, NodeId(1), 0, false, false, &[]).expect("ok").is_empty(), "not caught up yet");
        let records = heartbeat(&image, NodeId(1), 0, true, false, &[]).expect("ok");
        apply(&mut image, &records);
        assert!(!image.brokers()[&NodeId(1)].fenced);
        assert_eq!(
            heartbeat(&image, NodeId(1), 7, true, false, &[]),
            Err(BrokerError::StaleEpoch { node: NodeId(1), sent: 7, current: Some(0) })
        );
        assert!(matches!(heartbeat(&image, NodeId(9), 0, true, false, &[]), Err(BrokerError::StaleEpoch { .. })));
    }

    #[test]
    fn leaderless_partitions_get_leaders_when_their_replicas_unfence() {
        let (image, _) = cluster(&[&[1], &[2], &[3], &[1, 2]]);
        assert_eq!(partition(&image, 0).leader, Some(NodeId(1)));
        assert_eq!(partition(&image, 1).leader, Some(NodeId(2)));
        assert_eq!(partition(&image, 3).leader, Some(NodeId(1)));
        assert_eq!(partition(&image, 0).leader_epoch, LeaderEpoch(1));
    }

    #[test]
    fn fencing_moves_leadership_and_keeps_the_last_in_sync_replica() {
        let (mut image, epochs) = cluster(&[&[1], &[1, 2], &[2, 1]]);
        let before = partition(&image, 1);
        let records = fence(&image, NodeId(1));
        apply(&mut image, &records);
        assert!(image.brokers()[&NodeId(1)].fenced);
        // Its only replica is fenced: no leader, still in the ISR (no data lost by electing).
        let p0 = partition(&image, 0);
        assert_eq!((p0.leader, p0.isr.clone()), (None, vec![NodeId(1)]));
        // The other in-sync replica takes over at a higher epoch; node 1 leaves the ISR.
        let p1 = partition(&image, 1);
        assert_eq!((p1.leader, p1.isr.clone()), (Some(NodeId(2)), vec![NodeId(2)]));
        assert!(p1.leader_epoch > before.leader_epoch && p1.partition_epoch > before.partition_epoch);
        // A follower leaves the ISR, the leader stays at its epoch.
        let p2 = partition(&image, 2);
        assert_eq!((p2.leader, p2.isr.clone()), (Some(NodeId(2)), vec![NodeId(2)]));
        assert!(fence(&image, NodeId(1)).is_empty(), "fenced already");
        // It comes back (same registration): unfenced, it leads its leaderless partition again.
        let records = heartbeat(&image, NodeId(1), epochs[0], true, false, &[]).expect("ok");
        apply(&mut image, &records);
        let p0 = partition(&image, 0);
        assert_eq!(p0.leader, Some(NodeId(1)));
        assert_eq!(p0.leader_epoch, LeaderEpoch(3));
    }

    #[test]
    fn unclean_election_only_when_the_topic_allows_it() {
        let (mut image, epochs) = cluster(&[&[1, 2]]);
        // Node 2 falls out of the ISR, then node 1 (the last in-sync replica) is fenced.
        let p = partition(&image, 0);
        let shrink = MetadataRecord::PartitionChanged {
            partition: PartitionId { topic: TopicId([5; 16]), index: 0 },
            isr: vec![NodeId(1)],
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch + 1,
        };
        apply(&mut image, &[shrink]);
        let mut clean = image.clone();
        let records = fence(&clean, NodeId(1));
        apply(&mut clean, &records);
        let p = partition(&clean, 0);
        assert_eq!((p.leader, p.isr.clone()), (None, vec![NodeId(1)]), "offline rather than losing data");
        // With the topic's unclean.leader.election.enable, node 2 leads with what it has.
        let config = MetadataRecord::ConfigChanged {
            topic_id: TopicId([5; 16]),
            name: "unclean.leader.election.enable".into(),
            value: Some("true".into()),
        };
        apply(&mut image, &[config]);
        let mut unclean = image.clone();
        let records = fence(&unclean, NodeId(1));
        apply(&mut unclean, &records);
        let p = partition(&unclean, 0);
        assert_eq!((p.leader, p.isr.clone()), (Some(NodeId(2)), vec![NodeId(2)]));
        // Or, when node 2 was fenced too and comes back first, at its unfencing.
        for n in [2, 1] {
            let records = fence(&image, NodeId(n));
            apply(&mut image, &records);
        }
        assert_eq!(partition(&image, 0).leader, None);
        let records = heartbeat(&image, NodeId(2), epochs[1], true, false, &[]).expect("ok");
        apply(&mut image, &records);
        let p = partition(&image, 0);
        assert_eq!((p.leader, p.isr.clone()), (Some(NodeId(2)), vec![NodeId(2)]));
    }

    #[test]
    fn a_second_live_process_with_the_same_id_is_refused_and_a_restart_replaces_the_old() {
        let (mut image, _) = cluster(&[&[1]]);
        let epoch = next_offset(&image);
        assert_eq!(register(&image, &registration(1, 2), epoch, true), Err(BrokerError::Duplicate { node: NodeId(1) }));
        // The old session is over (a restart): the new incarnation registers, fenced, and the
        // partition it led has no leader until it is caught up.
        let records = register(&image, &registration(1, 2), epoch, false).expect("ok");
        apply(&mut image, &records);
        assert!(image.brokers()[&NodeId(1)].fenced);
        assert_eq!(partition(&image, 0).leader, None);
        let records = heartbeat(&image, NodeId(1), epoch, true, false, &[]).expect("ok");
        apply(&mut image, &records);
        assert_eq!(partition(&image, 0).leader, Some(NodeId(1)));
    }

    #[test]
    fn a_damaged_replica_leaves_its_isr_and_leadership_but_the_last_in_sync_one_stays() {
        // Partition 0 led by 1 with ISR [1, 2, 3]; partition 1 on node 1 alone.
        let (mut image, epochs) = cluster(&[&[1, 2, 3], &[1]]);
        let (p0, p1) =
            (PartitionId { topic: TopicId([5; 16]), index: 0 }, PartitionId { topic: TopicId([5; 16]), index: 1 });
        assert_eq!(partition(&image, 0).leader, Some(NodeId(1)));
        let before = partition(&image, 0).leader_epoch;
        let records = heartbeat(&image, NodeId(1), epochs[0], true, false, &[p1, p0]).expect("ok");
        apply(&mut image, &records);
        assert_eq!(image.brokers()[&NodeId(1)].offline_replicas, [p0, p1].into_iter().collect());
        let moved = partition(&image, 0);
        assert_eq!((moved.leader, moved.isr.clone()), (Some(NodeId(2)), vec![NodeId(2), NodeId(3)]));
        assert_eq!(moved.leader_epoch, LeaderEpoch(before.0 + 1));
        // The last in-sync replica stays in the ISR, leaderless: offline rather than lose data.
        let last = partition(&image, 1);
        assert_eq!((last.leader, last.isr.clone()), (None, vec![NodeId(1)]));
        // Reported again: nothing changes.
        assert!(heartbeat(&image, NodeId(1), epochs[0], true, false, &[p0, p1]).expect("ok").is_empty());
        // A damaged replica may not join an ISR.
        let proposal = super::super::isr::IsrProposal {
            partition: p0,
            leader_epoch: moved.leader_epoch,
            partition_epoch: moved.partition_epoch,
            isr: vec![NodeId(2), NodeId(3), NodeId(1)],
        };
        let outcome = |image: &MetadataImage| {
            super::super::isr::alter_isr(image, NodeId(2), epochs[1], std::slice::from_ref(&proposal)).1
        };
        assert!(outcome(&image)[0].is_err());
        // Rebuilt: reported no more, it may join again; the record survives a rebuild of the image.
        let mut rebuilt = MetadataImage::default();
        apply(&mut rebuilt, &image.to_records());
        assert_eq!(rebuilt.brokers(), image.brokers());
        let records = heartbeat(&image, NodeId(1), epochs[0], true, false, &[p1]).expect("ok");
        assert_eq!(records.len(), 1, "only the new set: {records:?}");
        apply(&mut image, &records);
        assert!(outcome(&image)[0].is_ok());
        // A restarted node does not take the leadership of a partition whose replica it reports
        // damaged when it unfences.
        let epoch = next_offset(&image);
        let records = register(&image, &registration(1, 2), epoch, false).expect("ok");
        apply(&mut image, &records);
        let records = heartbeat(&image, NodeId(1), epoch, true, false, &[p1]).expect("ok");
        apply(&mut image, &records);
        assert_eq!(partition(&image, 1).leader, None);
        let records = heartbeat(&image, NodeId(1), epoch, true, false, &[]).expect("ok");
        apply(&mut image, &records);
        assert!(image.brokers()[&NodeId(1)].offline_replicas.is_empty());
    }

    #[test]
    fn controlled_shutdown_fences_first_and_unregistering_follows() {
        // Node 2 was unfenced before node 3: it took the leaderless partition.
        let (mut image, epochs) = cluster(&[&[3, 2]]);
        assert_eq!(partition(&image, 0).leader, Some(NodeId(2)));
        let records = heartbeat(&image, NodeId(2), epochs[1], true, true, &[]).expect("ok");
        assert!(matches!(records[0], MetadataRecord::BrokerShuttingDown { .. }), "{records:?}");
        apply(&mut image, &records);
        assert_eq!(partition(&image, 0).leader, Some(NodeId(3)));
        // A heartbeat it sent before asking, decided after: it stays fenced, whichever
        // controller decides (the image says it is going), and the image rebuilds with that.
        assert!(heartbeat(&image, NodeId(2), epochs[1], true, false, &[]).expect("ok").is_empty());
        let mut rebuilt = MetadataImage::default();
        apply(&mut rebuilt, &image.to_records());
        assert!(heartbeat(&rebuilt, NodeId(2), epochs[1], true, false, &[]).expect("ok").is_empty());
        assert!(rebuilt.brokers()[&NodeId(2)].shutting_down && rebuilt.brokers()[&NodeId(2)].fenced);
        let records = unregister(&image, NodeId(2), epochs[1]).expect("ok");
        apply(&mut image, &records);
        assert!(!image.brokers().contains_key(&NodeId(2)));
        // Unregistering an unfenced broker fences it in the same decision.
        let records = unregister(&image, NodeId(3), epochs[2]).expect("ok");
        apply(&mut image, &records);
        assert_eq!(partition(&image, 0).leader, None);
        // The image rebuilds from its own records.
        let mut again = MetadataImage::default();
        apply(&mut again, &image.to_records());
        assert_eq!(again.topic("t"), image.topic("t"));
        assert_eq!(again.brokers(), image.brokers());
    }
}
