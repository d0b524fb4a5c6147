//! The partition layer on a real log: the high watermark is the in-sync replicas' minimum, an
//! acks=all append and a parked fetch wait for it, and leadership decides who may append.

mod common;

use common::run;

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ringtail_log::batch::build;
use ringtail_log::{Durability, Faults, Flusher, LogConfig, PartitionLog};
use ringtail_replication::{
    Acks, Isolation, LeaderEpoch, NodeId, OffsetSpec, Partition, PartitionError, PartitionId, Role, TopicId,
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
    let p = Partition::new(id, Rc::from("t"), LOCAL, log, Some(LOCAL), LeaderEpoch(0), isr);
    (p, flusher)
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
        assert_eq!(p.offset_for(OffsetSpec::Latest).await.unwrap(), Some((0, -1)));
        // The follower catches up to 2 of 3: the high watermark follows the minimum.
        p.update_follower(FOLLOWER, 2);
        assert_eq!(p.high_watermark(), 2);
        parked.await;
        p.update_follower(FOLLOWER, 3);
        assert_eq!(p.high_watermark(), 3);
        acked.await.expect("acks=all acknowledged once every in-sync replica has the batch");
        assert_eq!(p.read(0, 1 << 20, Isolation::HighWatermark).await.unwrap().next_offset, 3);
        // It never moves back, even if a follower reports less (it was truncated, or is stale).
        p.update_follower(FOLLOWER, 1);
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

        p.apply_leadership(Some(FOLLOWER), LeaderEpoch(1), vec![FOLLOWER]);
        assert_eq!(p.role(), Role::Follower { leader: Some(FOLLOWER) });
        match p.append_as_leader(records(1), Acks::Leader, 0) {
            Err(PartitionError::NotLeader { leader, epoch }) => {
                assert_eq!((leader, epoch), (Some(FOLLOWER), LeaderEpoch(1)))
            }
            other => panic!("a follower appended: {:?}", other.map(|a| a.info)),
        }
        // A change from an older epoch arrives late: ignored.
        p.apply_leadership(Some(LOCAL), LeaderEpoch(0), vec![LOCAL]);
        assert_eq!(p.leader_epoch(), LeaderEpoch(1));
        assert!(p.append_as_leader(records(1), Acks::Leader, 0).is_err());
        // Leadership comes back at a newer epoch: appends are stamped with it.
        p.apply_leadership(Some(LOCAL), LeaderEpoch(2), vec![LOCAL]);
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
        p.apply_leadership(Some(LOCAL), LeaderEpoch(2), vec![LOCAL]);
        let second = p.append_as_leader(records(2), Acks::Leader, 0).expect("append at epoch 2");
        p.wait_acked(second.wait).await.expect("acknowledged");
        assert_eq!(p.end_offset_for_epoch(0, -1).unwrap(), (0, 3));
        assert_eq!(p.end_offset_for_epoch(1, 2).unwrap(), (0, 3));
        assert_eq!(p.end_offset_for_epoch(2, 2).unwrap(), (2, 5));
        assert!(matches!(p.end_offset_for_epoch(2, 1), Err(PartitionError::FencedLeaderEpoch { .. })));
        assert!(matches!(p.end_offset_for_epoch(2, 3), Err(PartitionError::UnknownLeaderEpoch { .. })));
        p.apply_leadership(Some(FOLLOWER), LeaderEpoch(3), vec![FOLLOWER]);
        assert!(matches!(p.end_offset_for_epoch(2, -1), Err(PartitionError::NotLeader { .. })));
        drop(task);
    });
}
