//! The broker layer: each shard's broker context ([`Broker`]): the shard runtime below it
//! plus the services that run on the shard: the controller (shard 0), the group coordinator
//! of the `__consumer_offsets` partitions it owns, producer ids (shard 0), and the messages
//! shards send each other to reach partitions and services they do not own.

pub mod cluster;
pub mod controller;
pub mod data;
pub mod group;
pub mod producer_ids;
pub mod replication;
pub mod serve;
pub mod snapshot;

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use ringtail_replication::ShardId;

use crate::runtime::mailbox::{Class, Classified, Inbox, Outbox};
use crate::runtime::routing::NodeView;
use crate::runtime::Shard;
use data::{FetchItem, FetchResult, FetchWait, OffsetsItem, OffsetsResult, ProduceItem, ProduceResult};

/// Work to run on another shard: it builds its future there, so the future need not be `Send`.
pub type Job = Box<dyn FnOnce(Rc<Broker>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// Work one shard asks of another. Replies travel on one-message channels.
pub enum ShardMsg {
    /// Run a job on the target shard (group coordination and other owner-bound work).
    Run(Job),
    Produce {
        acks: ringtail_replication::Acks,
        /// How long acks=all may wait for the in-sync replicas (the request's timeout_ms).
        timeout: std::time::Duration,
        items: Vec<ProduceItem>,
        reply: flume::Sender<Vec<ProduceResult>>,
    },
    /// Reads for a fetch, up to `budget` bytes in all (the request's max_bytes). With `wait`,
    /// a read that finds nothing parks on the partitions until data arrives, the wait ends or
    /// the requester cancels, then reads again: one round trip per owner shard.
    Fetch {
        items: Vec<FetchItem>,
        budget: usize,
        wait: Option<FetchWait>,
        reply: flume::Sender<Vec<FetchResult>>,
    },
    ListOffsets {
        items: Vec<OffsetsItem>,
        reply: flume::Sender<Vec<OffsetsResult>>,
    },
    /// Open (creating if needed) this shard's replicas of some partitions of a topic.
    OpenReplicas {
        topic: Arc<ringtail_replication::metadata::TopicImage>,
        indexes: Vec<i32>,
        reply: flume::Sender<Result<(), ringtail_log::LogError>>,
    },
    /// Close and delete this shard's replicas of a deleted topic.
    DeleteReplicas {
        topic: Arc<ringtail_replication::metadata::TopicImage>,
        reply: flume::Sender<()>,
    },
    /// Metadata work done by the controller (shard 0).
    Controller {
        request: controller::ControllerRequest,
        reply: flume::Sender<controller::ControllerReply>,
    },
    /// A new routing view; the reply says it is in place.
    View(Arc<NodeView>, flume::Sender<()>),
    /// Shutdown, phase one: stop accepting, answer parked fetches, and reply once no request
    /// of this shard is in progress (or the grace period ends). The inbox keeps being served,
    /// because other shards' requests in progress may still need this shard.
    Drain {
        reply: flume::Sender<()>,
    },
    /// Shutdown, phase two (after every shard drained): close the logs and stop.
    Close,
}

impl Classified for ShardMsg {
    fn class(&self) -> Class {
        match self {
            ShardMsg::Produce { .. } | ShardMsg::ListOffsets { .. } => Class::Data,
            // A fetch may park: it must not hold a Data handler while it waits.
            ShardMsg::Fetch { wait: None, .. } => Class::Data,
            ShardMsg::Fetch { wait: Some(_), .. } | ShardMsg::Run(_) => Class::Parked,
            ShardMsg::OpenReplicas { .. }
            | ShardMsg::DeleteReplicas { .. }
            | ShardMsg::Controller { .. }
            | ShardMsg::View(..)
            | ShardMsg::Drain { .. }
            | ShardMsg::Close => Class::Control,
        }
    }
}

/// One shard's broker context: its runtime (reached through `Deref`) and the services on it.
///
/// Owned by its shard's executor (`!Send`); other shards reach it only by [`ShardMsg`].
pub struct Broker {
    /// The shard runtime below (shared with the services that run on it).
    pub shard: Rc<Shard>,
    /// This shard's queues to every shard (itself included).
    pub outbox: Outbox<ShardMsg>,
    /// This shard's own queues, for their depth.
    pub inbox: Inbox<ShardMsg>,
    /// The controller, on shard 0 only.
    pub controller: Option<controller::Controller>,
    /// The group coordinator for the `__consumer_offsets` partitions this shard owns.
    pub coordinator: group::Coordinator,
    /// Producer id allocation, on shard 0 only.
    pub producer_ids: Option<producer_ids::ProducerIds>,
}

impl Deref for Broker {
    type Target = Shard;

    fn deref(&self) -> &Shard {
        &self.shard
    }
}

impl Broker {
    pub fn new(
        shard: Rc<Shard>,
        (outbox, inbox): (Outbox<ShardMsg>, Inbox<ShardMsg>),
        controller: Option<controller::Controller>,
        producer_ids_start: i64,
    ) -> Rc<Broker> {
        let coordinator = group::Coordinator::new(shard.clone(), shard.config.groups);
        let producer_ids = (shard.id == ShardId(0))
            .then(|| producer_ids::ProducerIds::new(shard.config.data_dir.clone(), producer_ids_start));
        Rc::new(Broker { shard, outbox, inbox, controller, coordinator, producer_ids })
    }

    /// Opens the replicas this shard owns and loads the groups of its offsets partitions, at
    /// start-up.
    pub async fn open_owned(self: &Rc<Self>) -> Result<(), ringtail_log::LogError> {
        let view = self.view();
        for topic in view.image.topics() {
            let owned: Vec<i32> = (0..topic.partitions.len() as i32)
                .filter(|&index| {
                    let id = ringtail_replication::PartitionId { topic: topic.id, index };
                    view.placement.shard(id) == Some(self.id)
                })
                .collect();
            if !owned.is_empty() {
                self.open_replicas(topic, &owned).await?;
            }
        }
        self.coordinator.load().await.map_err(|e| match e {
            ringtail_replication::PartitionError::Log(e) => e,
            other => ringtail_log::LogError::Config { reason: other.to_string() },
        })
    }

    /// Sends `msg` to shard `shard` (this one too: its own queue to itself), which serves it
    /// (`serve`). A full queue makes the sender wait.
    pub async fn send(&self, shard: ShardId, msg: ShardMsg) {
        if shard != self.id {
            self.metrics.cross_shard();
        }
        // A full inbox makes the sender wait: backpressure, not unbounded memory.
        if self.outbox.send(shard.0, msg).await.is_err() {
            tracing::debug!(%shard, "shard inbox closed; the broker is stopping");
        }
    }

    /// Runs `job` on shard `target` (here, if it is this shard) and returns its result, or
    /// `None` if that shard stopped first.
    pub async fn on_shard<R, F, Fut>(self: &Rc<Self>, target: ShardId, job: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Broker>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let (tx, rx) = flume::bounded(1);
        let job: Job = Box::new(move |broker| {
            Box::pin(async move {
                let result = job(broker).await;
                let _ = tx.send_async(result).await;
            })
        });
        self.send(target, ShardMsg::Run(job)).await;
        rx.recv_async().await.ok()
    }
}
