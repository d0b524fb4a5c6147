//! A controller-only node (`--process-roles controller`, Kafka's dedicated controllers): a voter
//! of the quorum that serves no Kafka clients and leads no partitions. It runs one executor
//! thread with its controller (the Raft node, the controller listener, the session checks),
//! the admin endpoint (`/ready` once the controller listens), and records the cluster id once
//! the committed metadata holds it.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::LocalExecutorBuilder;

use ringtail_replication::identity::{self, Identity};
use ringtail_replication::metadata::store;
use ringtail_replication::quorum::ControllerService;
use ringtail_replication::NodeId;

use super::admin_http;
use super::legacy;
use crate::broker::cluster;
use crate::broker::controller::service::fail_stop;
use crate::broker::ShardMsg;
use crate::config::BrokerConfig;
use crate::runtime::mailbox::mailboxes;

/// How often the node looks for the cluster id in the committed metadata, until it has it.
const ADOPT_INTERVAL: Duration = Duration::from_millis(200);

/// Runs a controller-only node until SIGTERM or SIGINT.
pub fn serve(config: BrokerConfig) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let dir = &data_dir;
    if store::exists(dir) || legacy::read(dir)?.is_some() || dir.join(store::BROKER_COPY_DIR).exists() {
        anyhow::bail!(
            "the data directory {} holds a broker's topics or metadata; a controller-only node (--process-roles \
             controller) leads no partitions: give it a data directory of its own, or start this one with \
             `broker,controller`",
            dir.display()
        );
    }
    let node = NodeId(config.node_id);
    let configured = config.cluster.cluster_id.as_deref();
    let recorded = identity::read(dir)?;
    if let Some(r) = &recorded {
        identity::check(dir, r, node, configured)?;
    }
    let cluster_id = match (&recorded, configured) {
        (Some(r), _) => r.cluster_id.clone(),
        (None, Some(c)) => {
            identity::write(dir, &Identity { cluster_id: c.to_string(), node_id: node })?;
            c.to_string()
        }
        (None, None) => String::new(),
    };
    // The node that forms the quorum proposes its first change; the quorum refuses it as stale
    // once one is committed (a restart).
    let first = cluster::is_initializer(&config).then(|| {
        let candidate = match cluster_id.is_empty() {
            true => ringtail_replication::TopicId::random().to_hex(),
            false => cluster_id.clone(),
        };
        cluster::first_records(&candidate, None, 0)
    });
    let (mut outboxes, _inboxes) = mailboxes::<ShardMsg>(0, 1);
    let readiness = admin_http::Readiness::new(1);
    if let Some(listen) = config.admin_listen {
        admin_http::spawn(listen, outboxes.pop().expect("the admin endpoint's outbox"), readiness.clone())?;
    }
    let cpu = core_affinity::get_core_ids().and_then(|ids| ids.first().map(|c| c.id)).unwrap_or(0);
    let (stop_tx, stop_rx) = flume::bounded::<()>(1);
    let config = Arc::new(config);
    let ready = readiness.clone();
    let thread = LocalExecutorBuilder::new(glommio::Placement::Fixed(cpu))
        .name("controller")
        .spawn(move || async move {
            let (service, tasks) = match cluster::start_controller(&config, first).await {
                Ok(started) => started,
                Err(e) => fail_stop("cannot start the controller", &e),
            };
            ready.shard_ready();
            let adopt = glommio::spawn_local(adopt_cluster_id(config.clone(), service.clone(), cluster_id));
            let _ = stop_rx.recv_async().await;
            adopt.cancel().await;
            drop(tasks);
            if let Err(e) = service.node().raft.shutdown().await {
                tracing::warn!(error = %e, "the controller's Raft did not stop cleanly");
            }
        })
        .map_err(|e| anyhow::anyhow!("cannot start the controller thread: {e}"))?;
    tracing::info!(node = %node, data_dir = %dir.display(), "ringtail is serving as a controller only");
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
    if let Some(signal) = signals.forever().next() {
        tracing::info!(signal, "stopping the controller");
    }
    readiness.stopping();
    let _ = stop_tx.send(());
    if thread.join().is_err() {
        anyhow::bail!("the controller thread failed; see the log above");
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Records the committed metadata's cluster id once it holds one (a fresh node adopting its
/// cluster's); a node of another cluster stops with a message.
async fn adopt_cluster_id(config: Arc<BrokerConfig>, service: Rc<ControllerService>, mut recorded: String) {
    loop {
        let committed = service.node().state_machine.state().image.cluster_id().map(str::to_string);
        if let Some(id) = committed {
            if id == recorded {
                return;
            }
            cluster::record_cluster_id(&config.data_dir, NodeId(config.node_id), &recorded, &id).await;
            recorded = id;
        }
        glommio::timer::sleep(ADOPT_INTERVAL).await;
    }
}
