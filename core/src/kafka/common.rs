//! What every Kafka API handler shares: the handler result, a one-chunk response, and
//! scattering a request's partitions over their owner shards.

use std::rc::Rc;

use bytes::Bytes;
use ringtail_net::messages::leader_hints::{CurrentLeader, NodeEndpoint};
use ringtail_net::{DecodeError, Writer};
use ringtail_replication::{ShardId, TopicId};

use crate::broker::{Broker, Job, ShardMsg};
use crate::runtime::routing::Route;

pub type Handled = Result<Option<Vec<Bytes>>, DecodeError>;

/// A job for a shard's queue that answers on `reply`.
pub fn job<R: Send + 'static, Fut: std::future::Future<Output = R> + 'static>(
    reply: flume::Sender<R>,
    work: impl FnOnce(Rc<Broker>) -> Fut + Send + 'static,
) -> ShardMsg {
    let job: Job = Box::new(move |broker| {
        Box::pin(async move {
            let result = work(broker).await;
            let _ = reply.send_async(result).await;
        })
    });
    ShardMsg::Run(job)
}

/// Kafka's replica id of a debugging request (any replica answers, up to its log end).
pub const DEBUGGING_REPLICA_ID: i32 = -2;

pub fn single(w: Writer) -> Handled {
    Ok(Some(vec![w.buf.freeze()]))
}

/// KIP-951's hint for a partition led elsewhere: who leads it, at which epoch.
pub fn leader_hint(route: &Route) -> Option<CurrentLeader> {
    match route {
        Route::Remote { leader, leader_epoch } => {
            Some(CurrentLeader { leader_id: leader.0, leader_epoch: leader_epoch.0 })
        }
        _ => None,
    }
}

/// KIP-951's endpoints of the leaders named in hints: where a client finds each of them.
pub fn leader_endpoints(broker: &Broker, leaders: impl Iterator<Item = i32>) -> Vec<NodeEndpoint> {
    let view = broker.view();
    let mut nodes: Vec<i32> = leaders.collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
        .into_iter()
        .filter_map(|n| view.endpoint(ringtail_replication::NodeId(n)))
        .map(|e| NodeEndpoint { node_id: e.node.0, host: e.host, port: i32::from(e.port), rack: e.rack })
        .collect()
}

/// The name of the topic with this id (Produce and Fetch name topics by id from version 13),
/// or `None` when no topic has it: the answer is then UNKNOWN_TOPIC_ID.
pub fn topic_name_by_id(broker: &Broker, id: [u8; 16]) -> Option<String> {
    broker.view().image.topic_by_id(TopicId(id)).map(|t| t.name.to_string())
}

/// Sends each owner shard its items (this shard's too, through the same path) and returns the
/// results in the order of `items`; a shard that stops first leaves `missing`.
pub async fn scatter<I, R: Clone + 'static>(
    broker: &Rc<Broker>,
    items: Vec<(ShardId, I)>,
    missing: R,
    message: impl Fn(Vec<I>, flume::Sender<Vec<R>>) -> ShardMsg,
) -> Vec<R> {
    let count = items.len();
    let mut per_owner: Vec<(Vec<usize>, Vec<I>)> =
        (0..broker.config.shards).map(|_| (Vec::new(), Vec::new())).collect();
    for (i, (owner, item)) in items.into_iter().enumerate() {
        per_owner[owner.0].0.push(i);
        per_owner[owner.0].1.push(item);
    }
    let mut pending = Vec::new();
    for (owner, (positions, items)) in per_owner.into_iter().enumerate() {
        if items.is_empty() {
            continue;
        }
        let (tx, rx) = flume::bounded(1);
        broker.send(ShardId(owner), message(items, tx)).await;
        pending.push((positions, rx));
    }
    let mut results = vec![missing; count];
    for (positions, rx) in pending {
        if let Ok(replies) = rx.recv_async().await {
            for (p, r) in positions.into_iter().zip(replies) {
                results[p] = r;
            }
        }
    }
    results
}
