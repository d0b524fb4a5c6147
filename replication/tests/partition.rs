//! The partition layer on a real log: the high watermark is the in-sync replicas' minimum, an
//! acks=all append and a parked fetch wait for it, and leadership decides who may append.

mod common;

use common::run;

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ringtail_log::batch::build;
use ringtail_log::{Durability, Faults, Flusher, LogConfig, LogError, PartitionLog};
use ringtail_replication::metadata::PartitionImage;
use ringtail_replication::{
    Acks, FollowerFetch, Isolation, LeaderEpoch, NodeId, OffsetSpec, Partition, PartitionError, PartitionId, Role,
    TopicId,
};

const LOCAL: NodeId = NodeId(1);
const FOLLOWER: NodeId = NodeId(2);

fn scratch(name: &str) -> PathBuf {
    common::scratch("ringtail-replication-tests", name)
}

fn records(n: usize) -> Bytes {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    Bytes::from(build::batch(&refs, 1_000))
}

async fn partition(dir: PathBuf, durability: Durability, isr: Vec<NodeId>) -> (Rc<Partition>, Rc<Flusher>) {
    let flusher = Flusher::new(Faults::default(), Duration::from_millis(2));
    let config = LogConfig { durability, ..LogConfig::default() };
    let log = PartitionLog::open(dir.join("t-0"), config, &flusher).await.expect("open log");
    let id = PartitionId { topic: TopicId([3; 16]), index: 0 };
    let p = Partition::new(id, Rc::from("t"), LOCAL, log, &state(Some(LOCAL), 0, isr, 0));
    (p, flusher)
}

/// The partition's state as the metadata gives it: replicas LOCAL and FOLLOWER.
fn state(leader: Option<NodeId>, leader_epoch: i32, isr: Vec<NodeId>, partition_epoch: i32) -> PartitionImage {
    PartitionImage {
        replicas: vec![LOCAL, FOLLOWER],
        isr,
        leader,
        leader_epoch: LeaderEpoch(leader_epoch),
        partition_epoch,
        adding: Vec::new(),
        removing: Vec::new(),
    }
}

#[test]
fn the_high_watermark_waits_for_every_in_sync_replica() {
    let dir = scratch("isr-minimum");
    run(move || async move {
        let (p, flusher) = partition(dir, Durability::Sync, vec![LOCAL, FOLLOWER]).await;
        let task = flusher.spawn();
        assert_eq!(p.role(), Role::Leader);
        let appended = p.append_as_leader(records(3), Acks::All, 0).expect("append");
        assert_eq!((appended.info.base_offset, appended.info.last_offset), (0, 2));
        let partition = p.clone();
        let acked = glommio::spawn_local(async move { partition.wait_acked(appended.wait).await });
        let parked = glommio::spawn_local(p.wait_for_data(0));
        // Durable here, but the follower has nothing: not committed, not visible.
        p.log().wait_durable(2).await.expect("durable");
        glommio::timer::sleep(Duration::from_millis(20)).await;
        assert_eq!(p.high_watermark(), 0);
        assert!(p.read(0, 1 << 20, Isolation::HighWatermark).await.unwrap().chunks.is_empty());
        assert_eq!(p.read(0, 1 << 20, Isolation::LogEnd).await.unwrap().next_offset, 3);
        let latest = p.offset_for(OffsetSpec::Latest).await.unwrap().expect("latest");
        assert_eq!((latest.offset, latest.timestamp, latest.leader_epoch), (0, -1, p.leader_epoch().0));
        // The follower catches up to 2 of 3: the high watermark follows the minimum.
        p.update_follower(FOLLOWER, 2, 0);
        assert_eq!(p.high_watermark(), 2);
        parked.await;
        p.update_follower(FOLLOWER, 3, 0);
        assert_eq!(p.high_watermark(), 3);
        acked.await.expect("acks=all acknowledged once every in-sync replica has the batch");
        assert_eq!(p.read(0, 1 << 20, Isolation::HighWatermark).await.unwrap().next_offset, 3);
        // It never moves back, even if a follower reports less (it was truncated, or is stale).
        p.update_follower(FOLLOWER, 1, 0);
        assert_eq!(p.high_watermark(), 3);
        flusher.stop();
        task.await;
    });
}

#[test]
fn leadership_decides_who_appends_and_stale_epochs_are_ignored() {
    let dir = scratch("leadership");
    run(move || async move {
        let (p, flusher) = partition(dir, Durability::Async, vec![LOCAL]).await;
        let task = flusher.spawn();
        let first = p.append_as_leader(records(1), Acks::Leader, 0).expect("append as leader");
        p.wait_acked(first.wait).await.expect("acks=1 under async durability answers at once");
        assert_eq!(p.high_watermark(), 1, "async durability: the log end, with this node the whole ISR");

        p.apply_state(&state(Some(FOLLOWER), 1, vec![FOLLOWER], 1), 0);
        assert_eq!(p.role(), Role::Follower { leader: Some(FOLLOWER) });
        match p.append_as_leader(records(1), Acks::Leader, 0) {
            Err(PartitionError::NotLeader { leader, epoch }) => {
                assert_eq!((leader, epoch), (Some(FOLLOWER), LeaderEpoch(1)))
            }
            other => panic!("a follower appended: {:?}", other.map(|a| a.info)),
        }
        // A change from an older epoch arrives late: ignored.
        p.apply_state(&state(Some(LOCAL), 0, vec![LOCAL], 2), 0);
        assert_eq!(p.leader_epoch(), LeaderEpoch(1));
        assert!(p.append_as_leader(records(1), Acks::Leader, 0).is_err());
        // Leadership comes back at a newer epoch: appends are stamped with it.
        p.apply_state(&state(Some(LOCAL), 2, vec![LOCAL], 3), 0);
        let again = p.append_as_leader(records(1), Acks::Leader, 0).expect("leader again");
        assert_eq!(again.info.base_offset, 1);
        p.wait_acked(again.wait).await.expect("acknowledged");
        let read = p.read(1, 1 << 20, Isolation::HighWatermark).await.unwrap();
        let batch: Vec<u8> = read.chunks.concat();
        let header = ringtail_log::BatchHeader::parse(&batch).expect("a batch");
        assert_eq!(header.partition_leader_epoch, 2);
        match p.read(99, 1, Isolation::HighWatermark).await {
            Err(PartitionError::OffsetOutOfRange { offset: 99, log_end_offset: 2, .. }) => {}
            other => panic!("read past the end: {:?}", other.map(|r| r.next_offset)),
        }
        flusher.stop();
        task.await;
    });
}

#[test]
fn epochs_are_fenced_and_end_offsets_come_from_the_log() {
    let dir = scratch("epoch-end-offsets");
    run(move || async move {
        let (p, flusher) = partition(dir, Durability::Async, vec![LOCAL]).await;
        let task = flusher.spawn();
        let first = p.append_as_leader(records(3), Acks::Leader, 0).expect("append at epoch 0");
        p.wait_acked(first.wait).await.expect("acknowledged");
        p.apply_state(&state(Some(LOCAL), 2, vec![LOCAL], 1), 0);
        let second = p.append_as_leader(records(2), Acks::Leader, 0).expect("append at epoch 2");
        p.wait_acked(second.wait).await.expect("acknowledged");
        assert_eq!(p.end_offset_for_epoch(0, -1).unwrap(), (0, 3));
        assert_eq!(p.end_offset_for_epoch(1, 2).unwrap(), (0, 3));
        assert_eq!(p.end_offset_for_epoch(2, 2).unwrap(), (2, 5));
        assert!(matches!(p.end_offset_for_epoch(2, 1), Err(PartitionError::FencedLeaderEpoch { .. })));
        assert!(matches!(p.end_offset_for_epoch(2, 3), Err(PartitionError::UnknownLeaderEpoch { .. })));
        // ListOffsets names the epoch of the answer: the writer's, the current one for latest.
        let earliest = p.offset_for(OffsetSpec::Earliest).await.unwrap().expect("earliest");
        assert_eq!((earliest.offset, earliest.leader_epoch), (0, 0));
        // A consumer whose last batch was of epoch 0 but reads past where it ended here diverged.
        assert_eq!(p.consumer_fetch(3, 0, 2).unwrap(), FollowerFetch::Read);
        assert_eq!(p.consumer_fetch(4, 0, 2).unwrap(), FollowerFetch::Diverging { epoch: 0, end_offset: 3 });
        assert_eq!(p.consumer_fetch(4, 1, -1).unwrap(), FollowerFetch::Diverging { epoch: 0, end_offset: 3 });
        assert!(matches!(p.consumer_fetch(4, 2, 1), Err(PartitionError::FencedLeaderEpoch { .. })));
        // A new leader answers for its own epoch before it writes in it, from where it took over.
        p.apply_state(&state(Some(LOCAL), 4, vec![LOCAL], 2), 0);
        assert_eq!(p.end_offset_for_epoch(4, 4).unwrap(), (4, 5));
        assert_eq!(p.end_offset_for_epoch(3, 4).unwrap(), (2, 5));
        assert_eq!(p.end_offset_for_epoch(5, -1).unwrap(), (-1, -1));
        let latest = p.offset_for(OffsetSpec::Latest).await.unwrap().expect("latest");
        assert_eq!((latest.offset, latest.leader_epoch), (5, 4));
        p.apply_state(&state(Some(FOLLOWER), 5, vec![FOLLOWER], 3), 0);
        assert!(matches!(p.end_offset_for_epoch(2, -1), Err(PartitionError::NotLeader { .. })));
        drop(task);
    });
}

#[test]
fn followers_leave_the_isr_when_they_lag_and_join_once_caught_up() {
    let dir = scratch("isr-changes");
    run(move || async move {
        let (p, flusher) = partition(dir, Durability::Async, vec![LOCAL, FOLLOWER]).await;
        let task = flusher.spawn();
        p.apply_state(&state(Some(LOCAL), 1, vec![LOCAL, FOLLOWER], 1), 1_000);
        let appended = p.append_as_leader(records(4), Acks::Leader, 0).expect("append");
        p.wait_acked(appended.wait).await.unwrap();
        // Within replica.lag.time.max.ms of becoming leader: nothing to change.
        assert_eq!(p.isr_proposal(1_500, 1_000, |_| true), None);
        // The follower fetched once at 0 (behind), and not again: past the lag it leaves.
        p.update_follower(FOLLOWER, 0, 1_600);
        assert_eq!(p.isr_proposal(1_900, 1_000, |_| true), None);
        let shrink = p.isr_proposal(2_100, 1_000, |_| true).expect("the lagging follower leaves");
        assert_eq!((shrink.isr.clone(), shrink.partition_epoch, shrink.leader_epoch), (vec![LOCAL], 1, LeaderEpoch(1)));
        p.isr_proposed(&shrink, 2_100);
        assert_eq!(p.isr_proposal(2_200, 1_000, |_| true), None, "one change with the controller at a time");
        let decided = ringtail_replication::metadata::isr::IsrDecided {
            leader_epoch: LeaderEpoch(1),
            partition_epoch: 2,
            isr: vec![LOCAL],
        };
        p.isr_answered(&shrink, Some(&decided));
        assert_eq!(p.isr(), vec![LOCAL]);
        assert_eq!(p.high_watermark(), 4, "the ISR is this node alone: its log end under async durability");
        // The follower catches up to the high watermark: it joins, and while the change is
        // pending the high watermark waits for it too (the maximal ISR).
        p.update_follower(FOLLOWER, 4, 2_300);
        assert_eq!(p.isr_proposal(2_300, 1_000, |_| false), None, "not while its broker is fenced");
        let grow = p.isr_proposal(2_300, 1_000, |_| true).expect("a caught-up follower joins");
        assert_eq!(grow.isr, vec![LOCAL, FOLLOWER]);
        p.isr_proposed(&grow, 2_300);
        let more = p.append_as_leader(records(2), Acks::Leader, 0).expect("append");
        p.wait_acked(more.wait).await.unwrap();
        assert_eq!(p.high_watermark(), 4, "held back by the joining follower");
        p.isr_answered(&grow, None);
        assert_eq!(p.high_watermark(), 6, "refused: the ISR is this node again");
        flusher.stop();
        task.await;
    });
}

#[test]
fn a_follower_fetch_is_checked_and_a_diverged_log_is_told_where() {
    let dir = scratch("follower-fetch");
    run(move || async move {
        let (p, flusher) = partition(dir, Durability::Async, vec![LOCAL, FOLLOWER]).await;
        let task = flusher.spawn();
        // Epoch 0 writes 0..3, epoch 2 writes 3..5.
        let a = p.append_as_leader(records(3), Acks::Leader, 0).unwrap();
        p.wait_acked(a.wait).await.unwrap();
        p.apply_state(&state(Some(LOCAL), 2, vec![LOCAL, FOLLOWER], 1), 0);
        let b = p.append_as_leader(records(2), Acks::Leader, 0).unwrap();
        p.wait_acked(b.wait).await.unwrap();
        assert_eq!(p.follower_fetch(FOLLOWER, 3, 0, 2, 0).unwrap(), FollowerFetch::Read);
        assert_eq!(p.high_watermark(), 3);
        // The follower wrote epoch 1 up to 4 under a leader that lost it: epoch 0 ends at 3 here.
        assert_eq!(
            p.follower_fetch(FOLLOWER, 4, 1, 2, 0).unwrap(),
            FollowerFetch::Diverging { epoch: 0, end_offset: 3 }
        );
        // It has epoch 0 up to 4, past where epoch 0 ends here.
        assert_eq!(
            p.follower_fetch(FOLLOWER, 4, 0, 2, 0).unwrap(),
            FollowerFetch::Diverging { epoch: 0, end_offset: 3 }
        );
        assert!(matches!(p.follower_fetch(FOLLOWER, 9, -1, 2, 0), Err(PartitionError::OffsetOutOfRange { .. })));
        assert!(matches!(p.follower_fetch(FOLLOWER, 5, 2, 1, 0), Err(PartitionError::FencedLeaderEpoch { .. })));
        assert!(matches!(p.follower_fetch(NodeId(9), 5, 2, 2, 0), Err(PartitionError::NotReplica { .. })));
        assert_eq!(p.follower_fetch(FOLLOWER, 5, 2, 2, 0).unwrap(), FollowerFetch::Read);
        assert_eq!(p.high_watermark(), 5);
        assert_eq!(p.last_fetched_epoch(), 2);
        flusher.stop();
        task.await;
    });
}

/// Leadership moves while an acks=all produce waits, and the new leader lacks the batch: this
/// replica cuts its log to the new leader's, and the wait ends with the cut (the broker answers
/// it as NOT_LEADER_OR_FOLLOWER, so the producer retries at the new leader).
#[test]
fn an_acknowledgement_waited_on_a_batch_cut_by_a_truncation_ends_with_the_cut() {
    let dir = scratch("cut-under-a-wait");
    run(move || async move {
        let (p, flusher) = partition(dir, Durability::Sync, vec![LOCAL, FOLLOWER]).await;
        let task = flusher.spawn();
        let committed = p.append_as_leader(records(2), Acks::All, 0).unwrap();
        p.log().wait_durable(1).await.unwrap();
        p.update_follower(FOLLOWER, 2, 0);
        p.wait_acked(committed.wait).await.expect("on both replicas");
        // Durable here only, its wait not begun yet (as a request's second partition, whose wait
        // begins when the first one's ends).
        let cut = p.append_as_leader(records(2), Acks::All, 0).unwrap();
        p.log().wait_durable(3).await.unwrap();
        // The follower leads at epoch 1 with 0..2: this replica's epoch 0 ends there.
        p.apply_state(&state(Some(FOLLOWER), 1, vec![FOLLOWER, LOCAL], 1), 0);
        assert_eq!(p.truncate_diverged(0, 2).await.unwrap(), 2);
        match p.wait_acked(cut.wait).await {
            Err(PartitionError::Log(LogError::Truncated { offset: 2 })) => {}
            other => panic!("a batch cut from the log: {other:?}"),
        }
        flusher.stop();
        task.await;
    });
}

#[test]
fn acks_all_needs_min_insync_replicas() {
    let dir = scratch("min-insync");
    run(move || async move {
        let (p, flusher) = partition(dir, Durability::Async, vec![LOCAL]).await;
        let task = flusher.spawn();
        p.set_min_insync(2);
        match p.append_as_leader(records(1), Acks::All, 0) {
            Err(PartitionError::NotEnoughReplicas { isr: 1, min_insync: 2 }) => {}
            other => panic!("acks=all below min.insync.replicas: {:?}", other.map(|a| a.info)),
        }
        assert_eq!(p.log_end_offset(), 0, "refused before appending");
        let one = p.append_as_leader(records(1), Acks::Leader, 0).expect("acks=1 still works");
        p.wait_acked(one.wait).await.unwrap();
        // In sync when appended, the follower then leaves: committed, but the producer is told.
        p.apply_state(&state(Some(LOCAL), 0, vec![LOCAL, FOLLOWER], 1), 0);
        let all = p.append_as_leader(records(1), Acks::All, 0).expect("two in sync");
        let waiting = p.clone();
        let acked = glommio::spawn_local(async move { waiting.wait_acked(all.wait).await });
        glommio::timer::sleep(Duration::from_millis(10)).await;
        p.apply_state(&state(Some(LOCAL), 0, vec![LOCAL], 2), 0);
        match acked.await {
            Err(PartitionError::NotEnoughReplicasAfterAppend { isr: 1, min_insync: 2 }) => {}
            other => panic!("after the ISR shrank: {other:?}"),
        }
        flusher.stop();
        task.await;
    });
}

/// A leader that loses its leadership ends its acks=all waits unacknowledged: its batch is cut
/// when it follows the new leader, whose own batch then takes the same offsets. Waiting for the
/// high watermark alone acknowledged that lost batch once the new leader's high watermark
/// passed its offset.
#[test]
fn an_acknowledgement_is_not_given_for_a_batch_cut_after_leadership_moved() {
    let dir = scratch("no-ack-after-demotion");
    run(move || async move {
        let (p, flusher) = partition(dir, Durability::Sync, vec![LOCAL, FOLLOWER]).await;
        let task = flusher.spawn();
        let committed = p.append_as_leader(records(2), Acks::All, 0).unwrap();
        p.log().wait_durable(1).await.unwrap();
        p.update_follower(FOLLOWER, 2, 0);
        p.wait_acked(committed.wait).await.expect("on both replicas");
        let cut = p.append_as_leader(records(2), Acks::All, 0).unwrap();
        p.log().wait_durable(3).await.unwrap();
        let waiting = p.clone();
        let acked = glommio::spawn_local(async move { waiting.wait_acked(cut.wait).await });
        glommio::timer::sleep(Duration::from_millis(10)).await;
        p.apply_state(&state(Some(FOLLOWER), 1, vec![FOLLOWER, LOCAL], 1), 0);
        glommio::timer::sleep(Duration::from_millis(10)).await;
        assert_eq!(p.truncate_diverged(0, 2).await.unwrap(), 2);
        // The new leader's own batch at 2..=4 (epoch 1), then its high watermark 5.
        let mut other = records(3).to_vec();
        other[0..8].copy_from_slice(&2i64.to_be_bytes());
        other[12..16].copy_from_slice(&1i32.to_be_bytes());
        p.append_as_follower(Bytes::from(other), 0).unwrap();
        p.log().wait_durable(4).await.unwrap();
        p.follow_high_watermark(5);
        let result = futures_lite::future::or(async { Some(acked.await) }, async {
            glommio::timer::sleep(Duration::from_millis(500)).await;
            None
        })
        .await;
        match result {
            Some(Err(PartitionError::NotLeader { .. })) => {}
            other => panic!("the cut batch's wait ended with {other:?}, not NOT_LEADER"),
        }
        flusher.stop();
        task.await;
    });
}
