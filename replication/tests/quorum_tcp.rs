//! The quorum over real sockets: three controllers in one process, each with its controller
//! listener on 127.0.0.1 and a `TcpTransport` to the others, elect a leader and replicate; with
//! one of them stopped (listener and `Raft`), the other two go on, and it catches up when it
//! returns on the same address.

mod common;

use common::run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpListener;
use ringtail_replication::ids::TopicId;
use ringtail_replication::metadata::MetadataRecord;
use ringtail_replication::quorum::tcp::{serve_quorum, ListenerTimeouts, TcpTransport};
use ringtail_replication::quorum::{initialize, start_node, ControllerNode, QuorumConfig, QuorumNode, RecordBatch};

fn scratch(name: &str) -> PathBuf {
    common::scratch("ringtail-quorum-tcp", name)
}

fn config() -> QuorumConfig {
    QuorumConfig {
        cluster_name: "tcp".into(),
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        heartbeat_interval_ms: 100,
        install_snapshot_timeout_ms: 4000,
        snapshot_every_entries: 20,
        entries_kept_behind_snapshot: 5,
    }
}

const TIMEOUTS: ListenerTimeouts = ListenerTimeouts { stall: Duration::from_secs(5), idle: Duration::from_secs(60) };

fn batch(n: u64) -> RecordBatch {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    RecordBatch(vec![MetadataRecord::TopicCreated { topic_id: TopicId(id), name: format!("t{n}"), configs: vec![] }])
}

struct Running {
    node: QuorumNode,
    _listener: glommio::Task<()>,
}

async fn start(id: u64, dir: &Path, listener: TcpListener) -> Running {
    let transport = Rc::new(TcpTransport::new(Duration::from_millis(500), Duration::from_secs(5), Default::default()));
    let node = start_node(id, &dir.join(id.to_string()), &config(), transport).await.expect("start node");
    let served = glommio::spawn_local(serve_quorum(listener, node.raft.clone(), TIMEOUTS));
    Running { node, _listener: served }
}

async fn write(nodes: &BTreeMap<u64, Running>, n: u64) {
    for _ in 0..300 {
        for r in nodes.values() {
            if r.node.metrics().state.is_leader() {
                if let Ok(done) = r.node.raft.client_write(batch(n)).await {
                    assert_eq!(done.data.applied, 1);
                    return;
                }
            }
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    panic!("batch {n} was never written");
}

async fn converge(nodes: &BTreeMap<u64, Running>, topics: usize) {
    for _ in 0..500 {
        if nodes.values().all(|r| r.node.state_machine.state().image.topic_count() == topics) {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    let counts: Vec<usize> = nodes.values().map(|r| r.node.state_machine.state().image.topic_count()).collect();
    panic!("not converged on {topics} topics: {counts:?}");
}

#[test]
fn three_controllers_over_tcp_replicate_survive_one_down_and_catch_it_up() {
    let dir = scratch("three");
    run(move || async move {
        let listeners: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
        let addresses: Vec<String> = listeners.iter().map(|l| l.local_addr().expect("addr").to_string()).collect();
        let voters: BTreeMap<u64, ControllerNode> =
            (1..=3u64).map(|id| (id, ControllerNode::new(addresses[id as usize - 1].clone()))).collect();
        let mut nodes = BTreeMap::new();
        for (id, listener) in (1..=3u64).zip(listeners) {
            nodes.insert(id, start(id, &dir, listener).await);
        }
        initialize(&nodes[&1].node.raft, voters).await.expect("initialize");
        for n in 0..30 {
            write(&nodes, n).await;
        }
        converge(&nodes, 30).await;

        // One controller stops (its listener closes with it): the other two go on.
        let down = 2u64;
        let stopped = nodes.remove(&down).expect("node 2");
        stopped.node.raft.shutdown().await.expect("shutdown");
        drop(stopped);
        for n in 30..60 {
            write(&nodes, n).await;
        }
        converge(&nodes, 60).await;

        // It returns on the same address and catches up (through a snapshot: the log was purged).
        let listener = TcpListener::bind(addresses[down as usize - 1].as_str()).expect("rebind");
        nodes.insert(down, start(down, &dir, listener).await);
        converge(&nodes, 60).await;
        for r in nodes.values() {
            r.node.raft.shutdown().await.expect("shutdown");
        }
    });
}
