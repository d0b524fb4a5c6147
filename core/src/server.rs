//! The broker's start-up and shutdown, and each shard's run loop: its acceptor (connection
//! caps), retention and group timers, and the inbox of messages from other shards.

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::BrokerConfig;
use crate::connection::{serve_connection, ConnectionCounts, Refusal};
use crate::group::OFFSETS_TOPIC;
use crate::limits::{CONNECTIONS_PER_SHARD_MAX, INBOX_MESSAGES_MAX, SHUTDOWN_GRACE};
use crate::mailbox::{mailboxes, Inbox, Outbox};
use crate::metadata::{random_id, Metadata, Topic, METADATA_FILE};
use crate::shard::{Shard, ShardMsg};

/// Loads (or creates) the topic metadata. Runs on the main thread before any shard starts.
fn load_metadata(config: &BrokerConfig) -> anyhow::Result<Metadata> {
    let path = config.data_dir.join(METADATA_FILE);
    let mut md = match std::fs::read(&path) {
        Ok(bytes) => Metadata::decode(&bytes).map_err(|e| {
            anyhow::anyhow!("{} is damaged ({e}); restore it from a backup or fix it by hand", path.display())
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Metadata { cluster_id: random_id(), ..Metadata::default() }
        }
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    if !md.topics.contains_key(OFFSETS_TOPIC) {
        // Created before any shard starts, so every group has a coordinator from the first request.
        let placement = md.place(config.shards, config.offsets_topic_partitions as usize);
        let configs = crate::group::offsets_topic_configs().into_iter().collect();
        md.topics.insert(OFFSETS_TOPIC.to_string(), Topic { id: random_id(), shards: placement, configs });
        tracing::info!(partitions = config.offsets_topic_partitions, "created {OFFSETS_TOPIC}");
    }
    if md.fit_to_shards(config.shards) {
        tracing::info!(shards = config.shards, "re-placed partitions of shards that no longer exist");
    }
    write_now(&config.data_dir, &md)?;
    Ok(md)
}

/// Writes the metadata file atomically from the main thread (start-up only).
fn write_now(dir: &Path, md: &Metadata) -> anyhow::Result<()> {
    let tmp = dir.join(format!("{METADATA_FILE}.tmp"));
    std::fs::write(&tmp, md.encode())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(METADATA_FILE))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Runs the broker until SIGTERM or SIGINT, then shuts down cleanly.
pub fn serve(mut config: BrokerConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", config.data_dir.display()))?;
    // glommio cannot create directories under a relative path (EBADF): work with an absolute one.
    config.data_dir = std::fs::canonicalize(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot resolve data directory {}: {e}", config.data_dir.display()))?;
    let metadata = Arc::new(load_metadata(&config)?);
    let producer_ids_start = crate::producer_ids::load(&config.data_dir)?;
    if let Ok(needle) = std::env::var(crate::shard::FAULT_READ_EIO_ENV) {
        tracing::warn!(%needle, "fault point active: reads of segment files whose path contains this fail");
    }
    let config = Arc::new(config);
    let connection_counts = ConnectionCounts::new(config.connection_caps.clone());
    let (mut outboxes, inboxes) = mailboxes::<ShardMsg>(config.shards, INBOX_MESSAGES_MAX);
    // The last outbox is this thread's and the admin endpoint's.
    let external = outboxes.pop().expect("one outbox per shard and one more");
    let readiness = crate::admin_http::Readiness::new(config.shards);
    if let Some(listen) = config.admin_listen {
        // Before the shards recover their logs, so /ready can say they are still recovering.
        crate::admin_http::spawn(listen, external.clone(), readiness.clone())?;
    }
    // Shards go on the CPUs this process may run on (taskset, cgroup cpusets), in order.
    let cpus: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect::<Vec<usize>>())
        .filter(|ids| !ids.is_empty())
        .unwrap_or_else(|| (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect());
    let mut threads = Vec::new();
    for (id, (outbox, inbox)) in outboxes.into_iter().zip(inboxes).enumerate() {
        let shared = BrokerShared {
            config: config.clone(),
            mailbox: (outbox, inbox),
            metadata: metadata.clone(),
            producer_ids_start,
            readiness: readiness.clone(),
            connection_counts: connection_counts.clone(),
        };
        let builder = LocalExecutorBuilder::new(Placement::Fixed(cpus[id % cpus.len()])).name(&format!("shard-{id}"));
        let handle = builder
            .spawn(move || async move {
                let result = run_shard(id, shared).await;
                if let Err(e) = &result {
                    // A shard that cannot run leaves its partitions unserved: stop the broker.
                    tracing::error!(shard = id, error = %e, "shard failed; stopping the broker");
                    crate::logging::flush(std::time::Duration::from_secs(2));
                    std::process::exit(1);
                }
                result
            })
            .map_err(|e| anyhow::anyhow!("cannot start shard {id}: {e}"))?;
        threads.push(handle);
    }
    tracing::info!(listen = %config.listen, shards = config.shards, data_dir = %config.data_dir.display(), "ringtail is serving");
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
    if let Some(signal) = signals.forever().next() {
        tracing::info!(signal, "stopping: finishing requests in progress and flushing");
    }
    readiness.stopping();
    // Two phases, so that no shard closes while another still needs it for a request in
    // progress: every shard drains (still serving its inbox), then every shard closes its logs.
    let (drained_tx, drained_rx) = flume::bounded(config.shards);
    for id in 0..config.shards {
        let _ = external.send_blocking(id, ShardMsg::Drain { reply: drained_tx.clone() }, SHUTDOWN_GRACE);
    }
    drop(drained_tx);
    for _ in 0..config.shards {
        if drained_rx.recv_timeout(SHUTDOWN_GRACE + Duration::from_secs(5)).is_err() {
            tracing::warn!("a shard did not drain in time; closing anyway");
            break;
        }
    }
    for id in 0..config.shards {
        let _ = external.send_blocking(id, ShardMsg::Close, SHUTDOWN_GRACE);
    }
    let mut failed = false;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "shard failed");
                failed = true;
            }
            Err(_) => failed = true,
        }
    }
    if failed {
        anyhow::bail!("a shard failed; see the log above");
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// What every shard is started with: broker-wide state shared by all shards.
struct BrokerShared {
    config: Arc<BrokerConfig>,
    mailbox: (Outbox<ShardMsg>, Inbox<ShardMsg>),
    metadata: Arc<Metadata>,
    producer_ids_start: i64,
    readiness: Arc<crate::admin_http::Readiness>,
    connection_counts: Arc<ConnectionCounts>,
}

async fn run_shard(id: usize, shared: BrokerShared) -> Result<(), String> {
    let BrokerShared { config, mailbox, metadata, producer_ids_start, readiness, connection_counts } = shared;
    let inbox = mailbox.1.clone();
    let shard = Shard::new(id, config.clone(), mailbox, metadata, producer_ids_start);
    ringtail_log::prime_direct_io(&config.data_dir).await.map_err(|e| e.to_string())?;
    shard.open_owned().await.map_err(|e| format!("shard {id}: {e}"))?;
    let flusher_task = shard.flusher.spawn();
    let listener = TcpListener::bind(config.listen).map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    readiness.shard_ready();
    let acceptor = glommio::spawn_local(accept_connections(shard.clone(), listener, connection_counts));
    let retention = {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_secs(60)).await;
                let logs: Vec<_> = shard.logs.borrow().values().cloned().collect();
                for log in logs {
                    if let Err(e) = log.enforce_retention(ringtail_log::now_ms()).await {
                        tracing::error!(error = %e, dir = %log.dir().display(), "retention failed");
                    }
                    let expired = log.expire_producers(ringtail_log::now_ms());
                    if expired > 0 {
                        tracing::debug!(expired, dir = %log.dir().display(), "expired idle producer ids");
                    }
                }
            }
        })
    };
    let group_timers = glommio::spawn_local(crate::group::run_timers(shard.clone()));
    let mut acceptor = Some(acceptor);
    let mut retention = Some(retention);
    let mut group_timers = Some(group_timers);
    // Shutdown messages go to this loop; everything else is handled as it arrives.
    let (control_tx, control_rx) = glommio::channels::local_channel::new_bounded(2);
    let control_tx = Rc::new(control_tx);
    let pumps = {
        let shard = shard.clone();
        inbox.serve(move |msg: ShardMsg| {
            let (shard, control_tx) = (shard.clone(), control_tx.clone());
            async move {
                match msg {
                    ShardMsg::Drain { .. } | ShardMsg::Close => {
                        let _ = control_tx.send(msg).await;
                    }
                    msg => shard.handle(msg).await,
                }
            }
        })
    };
    while let Some(msg) = control_rx.recv().await {
        match msg {
            ShardMsg::Close => break,
            ShardMsg::Drain { reply } => {
                shard.begin_shutdown();
                if let Some(task) = acceptor.take() {
                    task.cancel().await;
                }
                if let Some(task) = retention.take() {
                    task.cancel().await;
                }
                if let Some(task) = group_timers.take() {
                    task.cancel().await;
                }
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
                    while shard.in_flight.get() > 0 && std::time::Instant::now() < deadline {
                        glommio::timer::sleep(Duration::from_millis(2)).await;
                    }
                    if shard.in_flight.get() > 0 {
                        let apis: Vec<(i16, usize)> = shard
                            .in_flight_apis
                            .borrow()
                            .iter()
                            .filter(|(_, n)| **n > 0)
                            .map(|(k, n)| (*k, *n))
                            .collect();
                        tracing::warn!(
                            shard = shard.id,
                            ?apis,
                            "requests still in progress after the shutdown grace period"
                        );
                    }
                    let _ = reply.send_async(()).await;
                })
                .detach();
            }
            _ => unreachable!("only shutdown messages come to the run loop"),
        }
    }
    drop(pumps);
    shard.close_logs().await;
    shard.flusher.stop();
    flusher_task.await;
    Ok(())
}

/// Accepts client connections on this shard's listener until cancelled. The newest connection
/// over a cap is closed at once, with a (rate-limited) log line and a count in `/metrics`.
async fn accept_connections(shard: Rc<Shard>, listener: TcpListener, counts: Arc<ConnectionCounts>) {
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let peer = stream.peer_addr().ok();
        let Some(peer) = peer else { continue };
        let admitted = match shard.connections.get() >= CONNECTIONS_PER_SHARD_MAX {
            true => Err(Refusal::MaxConnections),
            false => counts.admit(peer.ip()),
        };
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                shard.metrics.connection_refused(refusal);
                if shard.log_limits.connections.allow() {
                    tracing::info!(%peer, ?refusal, "refusing a connection: a connection cap is reached");
                }
                drop(stream);
                continue;
            }
        };
        let shard = shard.clone();
        shard.connections.set(shard.connections.get() + 1);
        glommio::spawn_local(async move {
            let _admitted = admitted;
            serve_connection(shard.clone(), stream).await;
            shard.connections.set(shard.connections.get() - 1);
        })
        .detach();
    }
}
