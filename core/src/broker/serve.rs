//! Serving the messages shards send each other (and themselves): each goes to the layer that
//! does the work: the partitions' data operations, the controller, jobs for a service.

use std::rc::Rc;

use ringtail_replication::metadata::controller::OFFSETS_TOPIC;

use super::controller::service;
use super::{Broker, ShardMsg};

impl Broker {
    /// Serves one message from a shard's queue (this shard's own included).
    pub async fn serve_message(self: &Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Run(job) => job(self.clone()).await,
            ShardMsg::Produce { acks, timeout, items, reply } => {
                let _ = reply.send_async(self.produce_local(acks, items, timeout).await).await;
            }
            ShardMsg::Fetch { items, budget, wait, reply } => {
                let _ = reply.send_async(self.fetch_local(items, budget, wait).await).await;
            }
            ShardMsg::ListOffsets { items, reply } => {
                let _ = reply.send_async(self.list_offsets_local(items).await).await;
            }
            ShardMsg::OpenReplicas { topic, indexes, reply } => {
                let mut opened = self.open_replicas(&topic, &indexes).await;
                // A cluster's broker opens `__consumer_offsets` partitions as the metadata assigns
                // them: their groups load before the new view routes a group here.
                if opened.is_ok() && topic.name.as_ref() == OFFSETS_TOPIC {
                    if let Err(e) = self.coordinator.reconcile().await {
                        opened = Err(match e {
                            ringtail_replication::PartitionError::Log(e) => e,
                            other => ringtail_log::LogError::Config { reason: other.to_string() },
                        });
                    }
                }
                let _ = reply.send_async(opened).await;
            }
            ShardMsg::DeleteReplicas { topic, reply } => {
                self.delete_replicas_local(&topic).await;
                let _ = reply.send_async(()).await;
            }
            ShardMsg::Controller { request, reply } => {
                let answer = service::decide_and_apply(self, request).await;
                let _ = reply.send_async(answer).await;
            }
            ShardMsg::View(view, ack) => {
                self.set_view(view);
                let _ = ack.send_async(()).await;
            }
            ShardMsg::Drain { .. } | ShardMsg::Close => {
                unreachable!("the shard run loop handles shutdown messages itself")
            }
        }
    }
}
