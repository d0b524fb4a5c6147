//! A three-controller quorum in one process on glommio, its RPC frames carried by an in-memory
//! transport (a map of node id to `Raft`, each frame served by `quorum::serve`): it elects a
//! leader, replicates record batches to three equal state machines (through snapshots and
//! purges), and a leader restarted from its directory keeps its log.

mod common;

use common::run;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use ringtail_log::platform;
use ringtail_replication::ids::TopicId;
use ringtail_replication::metadata::{MetadataImage, MetadataRecord};
use ringtail_replication::quorum::{
    initialize, serve, start_node, ControllerNode, QuorumConfig, QuorumNode, RecordBatch, Transport, TransportError,
};

fn scratch(name: &str) -> PathBuf {
    common::scratch("ringtail-quorum-cluster", name)
}

/// Routes frames to the nodes registered with it; a node not registered is unreachable.
#[derive(Default)]
struct Router {
    nodes: RefCell<BTreeMap<u64, QuorumNode>>,
}

impl Transport for Router {
    fn send(
        &self,
        target: u64,
        _node: &ControllerNode,
        request: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> {
        let node = self.nodes.borrow().get(&target).cloned();
        async move {
            let node =
                node.ok_or_else(|| TransportError::Unreachable(io::Error::other(format!("node {target} is down"))))?;
            let cluster_id = node.state_machine.state().image.cluster_id().map(str::to_string);
            Ok(serve(&node.raft, cluster_id.as_deref(), &request).await)
        }
    }
}

fn config() -> QuorumConfig {
    QuorumConfig {
        cluster_name: "test".into(),
        election_timeout_min_ms: 150,
        election_timeout_max_ms: 300,
        heartbeat_interval_ms: 50,
        install_snapshot_timeout_ms: 2000,
        // Snapshots and purges happen during the test.
        snapshot_every_entries: 40,
        entries_kept_behind_snapshot: 10,
    }
}

fn voters() -> BTreeMap<u64, ControllerNode> {
    (1..=3).map(|id| (id, ControllerNode::new(format!("127.0.0.1:{}", 19090 + id)))).collect()
}

/// Three topics per batch, named after the batch.
fn batch(n: u64) -> RecordBatch {
    RecordBatch(
        (0..3u64)
            .map(|i| {
                let mut id = [0u8; 16];
                id[0..8].copy_from_slice(&n.to_be_bytes());
                id[8..16].copy_from_slice(&i.to_be_bytes());
                MetadataRecord::TopicCreated { topic_id: TopicId(id), name: format!("t{n}-{i}"), configs: Vec::new() }
            })
            .collect(),
    )
}

async fn start(id: u64, dir: &Path, router: &Rc<Router>) -> QuorumNode {
    let node = start_node(id, &dir.join(id.to_string()), &config(), router.clone()).await.expect("start node");
    router.nodes.borrow_mut().insert(id, node.clone());
    node
}

/// Starts controllers 1, 2 and 3 and forms the quorum through the first.
async fn form(dir: &Path, router: &Rc<Router>) -> Vec<QuorumNode> {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(id, dir, router).await);
    }
    initialize(&nodes[0].raft, voters()).await.expect("initialize");
    nodes
}

async fn leader_of(router: &Router) -> u64 {
    let any = router.nodes.borrow().values().next().expect("a node").raft.clone();
    let metrics = any
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.current_leader.is_some(), "a leader is elected")
        .await
        .expect("a leader within 10 s");
    metrics.current_leader.expect("a leader")
}

/// Writes `batch(n)` through the leader, retrying while leadership settles.
async fn write(router: &Router, n: u64) {
    let done = write_batch(router, batch(n)).await;
    assert_eq!((done.applied, done.skipped), (3, 0), "batch {n}");
}

/// Writes `records` through the leader, retrying while leadership settles.
async fn write_batch(router: &Router, records: RecordBatch) -> ringtail_replication::quorum::BatchApplied {
    for _ in 0..200 {
        let leader = leader_of(router).await;
        let raft = router.nodes.borrow().get(&leader).map(|node| node.raft.clone());
        if let Some(raft) = raft {
            match raft.client_write(records.clone()).await {
                Ok(done) => {
                    assert_eq!(done.data.log_index, done.log_id.index);
                    return done.data;
                }
                Err(e) if e.forward_to_leader().is_some() => {}
                Err(e) => panic!("{records:?}: {e}"),
            }
        }
        platform::sleep(Duration::from_millis(20)).await;
    }
    panic!("{records:?} was never written");
}

/// Waits until every registered node applied the leader's last log entry; returns the images.
async fn converged(router: &Router) -> Vec<MetadataImage> {
    let leader = leader_of(router).await;
    let nodes: Vec<QuorumNode> = router.nodes.borrow().values().cloned().collect();
    let last = nodes
        .iter()
        .find(|n| n.metrics().id == leader)
        .map(|n| n.metrics().last_log_index)
        .expect("the leader is registered");
    for node in &nodes {
        node.raft
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(last, "caught up")
            .await
            .expect("every node applies the leader's log");
    }
    nodes.iter().map(|n| n.state_machine.state().image.clone()).collect()
}

#[test]
fn three_controllers_elect_a_leader_and_replicate_to_equal_images() {
    let dir = scratch("replicate");
    run(move || async move {
        let router = Rc::new(Router::default());
        let nodes = form(&dir, &router).await;
        let leader = leader_of(&router).await;
        assert!((1..=3).contains(&leader));
        for n in 0..100 {
            write(&router, n).await;
        }
        let images = converged(&router).await;
        assert_eq!(images[0].topic_count(), 300);
        assert!(images.iter().all(|i| *i == images[0]), "every state machine holds the same image");
        assert_eq!(images[0].applied, Some(299), "metadata offsets are dense over the applied records");
        for node in &nodes {
            let m = node.metrics();
            assert!(m.snapshot.is_some(), "node {} built or installed a snapshot", m.id);
            let voter_ids: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
            assert_eq!(voter_ids, BTreeSet::from([1, 2, 3]));
        }
        for node in nodes {
            node.raft.shutdown().await.expect("shutdown");
        }
    });
}

#[test]
fn a_restarted_leader_keeps_its_log_and_rejoins() {
    let dir = scratch("restart");
    run(move || async move {
        let router = Rc::new(Router::default());
        form(&dir, &router).await;
        for n in 0..30 {
            write(&router, n).await;
        }
        converged(&router).await;
        let leader = leader_of(&router).await;
        let old = router.nodes.borrow_mut().remove(&leader).expect("the leader");
        let before = old.metrics();
        old.raft.shutdown().await.expect("shutdown");
        drop(old);

        // Alone (not registered with the router), the restarted node has its log and vote.
        let node = start_node(leader, &dir.join(leader.to_string()), &config(), router.clone()).await.expect("restart");
        let after = node.metrics();
        assert_eq!(after.last_log_index, before.last_log_index, "the log survives the restart");
        assert!(after.vote.leader_id.term >= before.vote.leader_id.term);
        // It does not resume leading its old term (a leader that lost unflushed entries must
        // not, see `raft_config`): it learns what is committed from the quorum again, and
        // applies its own log up to there.
        router.nodes.borrow_mut().insert(leader, node.clone());
        node.raft
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(before.last_applied.map(|l| l.index), "replayed")
            .await
            .expect("the committed log is applied again");
        assert_eq!(node.state_machine.state().image.topic_count(), 90);

        for n in 30..40 {
            write(&router, n).await;
        }
        let images = converged(&router).await;
        assert_eq!(images.len(), 3);
        assert_eq!(images[0].topic_count(), 120);
        assert!(images.iter().all(|i| *i == images[0]));
        let nodes: Vec<QuorumNode> = router.nodes.borrow().values().cloned().collect();
        for node in nodes {
            node.raft.shutdown().await.expect("shutdown");
        }
    });
}

#[test]
fn a_controller_of_another_cluster_is_refused_once_the_cluster_has_an_id() {
    use openraft::raft::VoteRequest;
    use ringtail_replication::quorum::wire::{decode_response, encode_request_from, Request, Response};
    let dir = scratch("foreign");
    run(move || async move {
        let router = Rc::new(Router::default());
        let nodes = form(&dir, &router).await;
        write_batch(&router, RecordBatch(vec![MetadataRecord::ClusterCreated { cluster_id: "cluster-a".into() }]))
            .await;
        converged(&router).await;
        let leader = leader_of(&router).await;
        // A vote request as a node of another cluster would send it, and the same from this one.
        let vote = openraft::Vote::new(99, 7);
        let rpc = VoteRequest { vote, last_log_id: None, leadership_transfer: false };
        let follower = (1..=3).find(|&id| id != leader).expect("a follower");
        let node = router.nodes.borrow()[&follower].clone();
        let ask = |cluster: &'static str| {
            let node = node.clone();
            let frame = encode_request_from(&Request::PreVote(rpc.clone()), Some(cluster));
            async move {
                let mine = node.state_machine.state().image.cluster_id().map(str::to_string);
                decode_response(&serve(&node.raft, mine.as_deref(), &frame).await).expect("a response")
            }
        };
        match ask("cluster-b").await {
            Response::Failed(m) => assert!(m.contains("cluster cluster-a") && m.contains("cluster-b"), "{m}"),
            other => panic!("a foreign controller was answered: {other:?}"),
        }
        assert!(matches!(ask("cluster-a").await, Response::PreVote(_)));
        for node in nodes {
            node.raft.shutdown().await.expect("shutdown");
        }
    });
}
