//! The quorum's storage on real files under glommio: openraft's storage conformance suite, and
//! ours: a torn tail is cut, damage before the end refused, a restart keeps the vote, the
//! entries and the snapshot, and purges keep the log file's size bounded.

mod common;

use common::run;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{IOFlushed, RaftLogStorage, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{EntryPayload, RaftLogReader, RaftSnapshotBuilder, StorageError};
use openraft_rt::Oneshot as _;
use ringtail_replication::ids::TopicId;
use ringtail_replication::metadata::MetadataRecord;
use ringtail_replication::quorum::limits::LOG_DEAD_BYTES_MIN;
use ringtail_replication::quorum::sync::Oneshot;
use ringtail_replication::quorum::types::{CommittedLeaderId, LeaderId};
use ringtail_replication::quorum::{
    open_storage, ControllerNode, Entry, LogId, LogStore, Membership, QuorumStoreError, QuorumTypes, RecordBatch,
    StateMachine, Vote,
};

fn scratch(name: &str) -> PathBuf {
    common::scratch("ringtail-quorum-storage", name)
}

struct Builder {
    base: PathBuf,
    next: AtomicU64,
}

impl StoreBuilder<QuorumTypes, LogStore, StateMachine> for Builder {
    async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError<QuorumTypes>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (log, sm) = open_storage(&self.base.join(n.to_string())).await.expect("open storage");
        Ok(((), log, sm))
    }
}

#[test]
fn storage_passes_openraft_storage_suite() {
    let base = scratch("suite");
    run(move || async move {
        Suite::test_all(Builder { base, next: AtomicU64::new(0) }).await.expect("openraft's storage suite");
    });
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId { leader_id: CommittedLeaderId::new(term), index }
}

fn batch(index: u64, records: usize, name_bytes: usize) -> RecordBatch {
    RecordBatch(
        (0..records)
            .map(|i| {
                let mut id = [0u8; 16];
                id[0..8].copy_from_slice(&index.to_be_bytes());
                id[8..16].copy_from_slice(&(i as u64).to_be_bytes());
                let mut name = format!("topic-{index}-{i}-");
                name.extend(std::iter::repeat_n('x', name_bytes));
                MetadataRecord::TopicCreated { topic_id: TopicId(id), name, configs: Vec::new() }
            })
            .collect(),
    )
}

fn entry(term: u64, index: u64) -> Entry {
    Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(batch(index, 2, 8)) }
}

fn membership() -> Membership {
    let nodes: BTreeMap<u64, ControllerNode> =
        (1..=3).map(|id| (id, ControllerNode::new(format!("127.0.0.1:{}", 9090 + id)))).collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).unwrap()
}

/// Appends and waits until the entries are durable.
async fn append(log: &mut LogStore, entries: Vec<Entry>) {
    let (tx, rx) = Oneshot::channel();
    log.append(entries, IOFlushed::signal(tx)).await.expect("append");
    rx.await.expect("flushed").expect("durable");
}

async fn entries_of(log: &mut LogStore) -> Vec<Entry> {
    log.try_get_log_entries(0..u64::MAX).await.unwrap()
}

#[test]
fn a_torn_tail_is_cut_at_open_and_appends_go_after_it() {
    let dir = scratch("torn");
    let d = dir.clone();
    let written = run(move || async move {
        let (mut log, _) = open_storage(&d).await.unwrap();
        log.save_vote(&Vote { leader_id: LeaderId { term: 2, voted_for: 1 }, committed: false }).await.unwrap();
        append(&mut log, (1..=5).map(|i| entry(2, i)).collect()).await;
        entries_of(&mut log).await
    });
    // Half of a sixth record, as a crash mid-write leaves it.
    let path = dir.join("log");
    let whole = std::fs::read(&path).unwrap();
    let mut torn = whole.clone();
    torn.extend_from_slice(&[0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 2, 0, 0]);
    std::fs::write(&path, &torn).unwrap();
    let d = dir.clone();
    run(move || async move {
        let (mut log, _) = open_storage(&d).await.unwrap();
        assert_eq!(log.recovery().torn_bytes, 11);
        assert_eq!(entries_of(&mut log).await, written);
        append(&mut log, vec![entry(2, 6)]).await;
    });
    assert!(!std::fs::read(&path).unwrap().ends_with(&[2, 0, 0]), "the torn bytes are gone");
    let d = dir.clone();
    run(move || async move {
        let (mut log, _) = open_storage(&d).await.unwrap();
        assert_eq!((log.recovery().torn_bytes, entries_of(&mut log).await.len()), (0, 6));
        let vote = log.read_vote().await.unwrap().unwrap();
        assert_eq!(vote.leader_id.term, 2);
    });
}

#[test]
fn damage_before_the_end_is_refused_with_a_clear_error() {
    let dir = scratch("damaged");
    let d = dir.clone();
    run(move || async move {
        let (mut log, _) = open_storage(&d).await.unwrap();
        append(&mut log, (1..=5).map(|i| entry(1, i)).collect()).await;
    });
    let path = dir.join("log");
    let mut bytes = std::fs::read(&path).unwrap();
    // A byte inside the first entry's record (after the header, the empty log's committed
    // record and the first record's own header).
    bytes[8 + 10 + 8 + 20] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let d = dir.clone();
    let error = run(move || async move { open_storage(&d).await.err().map(|e| e.to_string()) });
    let error = error.expect("a damaged log must not open");
    assert!(error.contains("damaged at byte") && error.contains("restore"), "{error}");
    // Same for a damaged snapshot.
    std::fs::write(&path, &std::fs::read(&path).unwrap()[..8]).unwrap();
    std::fs::write(dir.join("snapshot"), b"RTQS\x00\x01not a snapshot").unwrap();
    let d = dir.clone();
    let refused = run(move || async move { matches!(open_storage(&d).await, Err(QuorumStoreError::Damaged { .. })) });
    assert!(refused);
}

#[test]
fn a_restart_keeps_the_vote_the_entries_the_committed_id_and_the_snapshot() {
    let dir = scratch("restart");
    let d = dir.clone();
    let (vote, entries, image) = run(move || async move {
        let (mut log, mut sm) = open_storage(&d).await.unwrap();
        let vote = Vote { leader_id: LeaderId { term: 3, voted_for: 2 }, committed: true };
        log.save_vote(&vote).await.unwrap();
        let mut entries = vec![Entry { log_id: log_id(3, 1), payload: EntryPayload::Membership(membership()) }];
        entries.extend((2..=20).map(|i| entry(3, i)));
        append(&mut log, entries.clone()).await;
        log.save_committed(Some(log_id(3, 20))).await.unwrap();
        let applied: Vec<_> = entries[..10].iter().cloned().map(|e| Ok((e, None))).collect();
        sm.apply(futures_lite::stream::iter(applied)).await.unwrap();
        let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(3, 10)));
        log.purge(log_id(3, 10)).await.unwrap();
        // A durable append after the purge makes the purge (and the committed id) durable.
        append(&mut log, vec![entry(3, 21)]).await;
        entries.push(entry(3, 21));
        let image = sm.state().image.clone();
        (vote, entries, image)
    });
    let d = dir.clone();
    run(move || async move {
        let (mut log, mut sm) = open_storage(&d).await.unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(vote));
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(3, 20)));
        assert_eq!(entries_of(&mut log).await, entries[10..].to_vec());
        let state = log.get_log_state().await.unwrap();
        assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(3, 10)), Some(log_id(3, 21))));
        let (applied, membership_state) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(3, 10)));
        assert_eq!(membership_state.membership(), &membership());
        assert_eq!(sm.state().image, image);
        assert_eq!(sm.state().image.topic_count(), 18);
        let snapshot = sm.get_current_snapshot().await.unwrap().expect("the snapshot survives");
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(3, 10)));
    });
}

#[test]
fn purges_keep_the_log_file_bounded_by_what_is_unpurged() {
    let dir = scratch("purge");
    let d = dir.clone();
    run(move || async move {
        let (mut log, _) = open_storage(&d).await.unwrap();
        let big = |i: u64| Entry { log_id: log_id(1, i), payload: EntryPayload::Normal(batch(i, 16, 1000)) };
        let mut max_file = 0;
        for round in 0..40u64 {
            let first = round * 10 + 1;
            append(&mut log, (first..first + 10).map(big).collect()).await;
            if round >= 2 {
                // Keep about 20 entries unpurged, as a snapshot every 10 would.
                log.purge(log_id(1, first - 11)).await.unwrap();
                append(&mut log, Vec::new()).await;
            }
            let (file, live) = log.file_bytes();
            let on_disk = std::fs::metadata(d.join("log")).unwrap().len();
            assert_eq!(file, on_disk);
            assert!(file <= 2 * live + LOG_DEAD_BYTES_MIN + 200_000, "round {round}: {file} bytes for {live} live");
            max_file = max_file.max(file);
        }
        assert_eq!(entries_of(&mut log).await.len(), 20);
        assert!(max_file < 8 * LOG_DEAD_BYTES_MIN, "{max_file} bytes at most");
    });
    let d = dir.clone();
    run(move || async move {
        let (mut log, _) = open_storage(&d).await.unwrap();
        let entries = entries_of(&mut log).await;
        assert_eq!(entries.first().map(|e| e.log_id.index), Some(381));
        assert_eq!(entries.len(), 20);
    });
}
