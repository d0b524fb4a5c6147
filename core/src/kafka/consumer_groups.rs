//! Request handlers of the consumer group protocol (KIP-848): ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, run on the group's coordinator like the classic group APIs.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::messages::consumer_group_describe::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DescribedConsumerGroup, DescribedMember,
    DescribedTopicPartitions,
};
use ringtail_net::messages::consumer_group_heartbeat::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, TopicPartitions,
};
use ringtail_net::{Reader, Writer};
use ringtail_replication::TopicId;

use super::common::{single, Handled};
use super::groups::{on_coordinator, Client};
use crate::broker::group::consumer::assignor::Assignment;
use crate::broker::group::consumer::machine::{ConsumerGroup, Heartbeat};
use crate::broker::group::consumer::{self};
use crate::broker::group::error::GroupError;
use crate::broker::Broker;
use crate::errors;

fn assignment_wire(a: &Assignment) -> Vec<TopicPartitions> {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(id, ps)| TopicPartitions { topic_id: *id, partitions: ps.iter().copied().collect() })
        .collect()
}

pub async fn consumer_group_heartbeat(
    broker: &Rc<Broker>,
    body: &mut Reader,
    version: i16,
    mut w: Writer,
    client: &Client<'_>,
) -> Handled {
    let req = ConsumerGroupHeartbeatRequest::decode(body, version)?;
    // Version 0 members joining get their id from the coordinator; from version 1 the client
    // chooses it (KIP-1082).
    let member_id = if req.member_id.is_empty() && req.member_epoch == 0 && version == 0 {
        ringtail_replication::ids::random_hex()
    } else {
        req.member_id.clone()
    };
    let owned = req.topic_partitions.map(|topics| {
        let mut a: Assignment = BTreeMap::new();
        for t in topics {
            a.entry(t.topic_id).or_default().extend(t.partitions);
        }
        a
    });
    let hb = Heartbeat {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id,
        rack_id: req.rack_id,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topic_names: req.subscribed_topic_names,
        topic_regex: req.subscribed_topic_regex,
        server_assignor: req.server_assignor,
        owned,
        client_id: client.client_id.to_string(),
        client_host: client.host.to_string(),
    };
    let interval = crate::config_keys::group_value(
        "consumer.heartbeat.interval.ms",
        &broker.config,
        &broker.view().image,
        &req.group_id,
    );
    let group_id = req.group_id.clone();
    let answer = match consumer::validate(&group_id, &hb, version, &broker.config.groups.consumer_assignors) {
        Ok(()) => on_coordinator(broker, &req.group_id, move |s| async move {
            s.coordinator.consumer_heartbeat(&group_id, hb).await
        })
        .await
        .unwrap_or_else(Err),
        Err(e) => Err(e),
    };
    let resp = match answer {
        Ok(a) => ConsumerGroupHeartbeatResponse {
            throttle_time_ms: 0,
            error_code: error_code::NONE,
            error_message: None,
            member_id: Some(a.member_id),
            member_epoch: a.member_epoch,
            heartbeat_interval_ms: interval,
            assignment: a.assignment.as_ref().map(assignment_wire),
        },
        Err(e) => ConsumerGroupHeartbeatResponse {
            throttle_time_ms: 0,
            error_code: errors::group_error(&e),
            error_message: Some(e.to_string()),
            member_id: None,
            member_epoch: 0,
            heartbeat_interval_ms: 0,
            assignment: None,
        },
    };
    resp.encode(&mut w, version);
    single(w)
}

/// An assignment with topic names, as ConsumerGroupDescribe shows it.
fn described(a: &Assignment, broker: &Broker) -> Vec<DescribedTopicPartitions> {
    let view = broker.view();
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(id, ps)| DescribedTopicPartitions {
            topic_id: *id,
            topic_name: view.image.topic_by_id(TopicId(*id)).map(|t| t.name.to_string()).unwrap_or_default(),
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

fn describe_one(group_id: String, g: &ConsumerGroup, broker: &Broker) -> DescribedConsumerGroup {
    DescribedConsumerGroup {
        error_code: error_code::NONE,
        error_message: None,
        group_id,
        group_state: g.state().to_string(),
        group_epoch: g.epoch,
        assignment_epoch: g.assignment_epoch,
        assignor_name: g.assignor.clone(),
        members: g
            .members
            .values()
            .map(|m| {
                let mut assigned = m.assigned.clone();
                // Partitions being revoked are still the member's.
                for (t, ps) in &m.revoking {
                    assigned.entry(*t).or_insert_with(BTreeSet::new).extend(ps);
                }
                DescribedMember {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.topic_names.clone(),
                    subscribed_topic_regex: m.topic_regex.clone(),
                    assignment: described(&assigned, broker),
                    target_assignment: described(g.target.get(&m.member_id).unwrap_or(&Assignment::new()), broker),
                    member_type: 1,
                }
            })
            .collect(),
        authorized_operations: i32::MIN,
    }
}

pub async fn consumer_group_describe(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = ConsumerGroupDescribeRequest::decode(body, version)?;
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for group_id in req.group_ids {
        let failed = |e: GroupError, group_id: String| DescribedConsumerGroup {
            error_code: errors::group_error(&e),
            error_message: Some(e.to_string()),
            group_id,
            authorized_operations: i32::MIN,
            ..DescribedConsumerGroup::default()
        };
        if group_id.is_empty() {
            groups.push(failed(GroupError::InvalidGroupId, group_id));
            continue;
        }
        let id = group_id.clone();
        let found = on_coordinator(broker, &group_id, move |s| async move { s.coordinator.consumer_group(&id) }).await;
        groups.push(match found {
            Ok(Some(Ok(g))) => describe_one(group_id, &g, broker),
            Ok(Some(Err(()))) => {
                failed(GroupError::WrongGroupType(format!("{group_id} is not a consumer group")), group_id)
            }
            Ok(None) => failed(GroupError::GroupIdNotFound, group_id),
            Err(e) => failed(e, group_id),
        });
    }
    ConsumerGroupDescribeResponse { throttle_time_ms: 0, groups }.encode(&mut w, version);
    single(w)
}
