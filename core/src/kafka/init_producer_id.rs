//! InitProducerId: producer ids for idempotence, from the allocator on shard 0.

use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::header::ApiKey;
use ringtail_net::messages::init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};
use ringtail_net::{Reader, Writer};
use ringtail_replication::ShardId;

use super::common::{single, Handled};
use crate::broker::cluster;
use crate::broker::producer_ids::ProducerIdError;
use crate::broker::Broker;

/// Hands out a new producer id at epoch 0 for idempotence. As in Kafka, a producer without a
/// transactional id that sends its current id and epoch (v3+, to bump the epoch after an
/// error) gets a new id. Transactional ids are refused until transactions exist.
pub async fn init_producer_id(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = InitProducerIdRequest::decode(body, version)?;
    let mut resp = InitProducerIdResponse { throttle_time_ms: 0, error_code: 0, producer_id: -1, producer_epoch: -1 };
    if req.transactional_id.is_some() {
        resp.error_code = error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    } else {
        let allocated = broker
            .on_shard(ShardId(0), |b| async move {
                let link = b.controller.as_ref().and_then(|c| c.link()).cloned();
                let reserve = link.as_ref().map(|link| {
                    let b = b.clone();
                    move || async move { cluster::reserve_producer_ids(&b, link).await }
                });
                match &b.producer_ids {
                    Some(ids) => ids.allocate(reserve).await,
                    None => Err(ProducerIdError::Closed),
                }
            })
            .await;
        match allocated {
            Some(Ok(id)) => {
                resp.producer_id = id;
                resp.producer_epoch = 0;
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot allocate a producer id");
                resp.error_code = error_code::COORDINATOR_NOT_AVAILABLE;
            }
            None => resp.error_code = error_code::COORDINATOR_NOT_AVAILABLE,
        }
    }
    if resp.error_code != 0 {
        broker.metrics.error(ApiKey::InitProducerId);
    }
    resp.encode(&mut w, version);
    single(w)
}
