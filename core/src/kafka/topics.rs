//! Topic administration: CreateTopics, DeleteTopics and CreatePartitions (decided and applied
//! by the controller).

use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::messages::create_partitions::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use ringtail_net::messages::create_topics::{CreatableTopicResult, CreateTopicsRequest, CreateTopicsResponse};
use ringtail_net::messages::delete_topics::{DeletableTopicResult, DeleteTopicsRequest, DeleteTopicsResponse};
use ringtail_net::{Reader, Writer};
use ringtail_replication::metadata::{ControllerError, NewTopic};
use ringtail_replication::TopicId;

use super::common::{single, Handled};
use crate::broker::controller::service::submit;
use crate::broker::controller::ControllerRequest;
use crate::broker::Broker;
use crate::errors;

/// A topic's error code and message in the response.
pub(super) fn error_of(result: &Result<(), ControllerError>) -> (i16, Option<String>) {
    match result {
        Ok(()) => (error_code::NONE, None),
        Err(e) => (errors::controller_error(e), Some(e.to_string())),
    }
}

pub async fn create_topics(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = CreateTopicsRequest::decode(body, version)?;
    let topics = req
        .topics
        .into_iter()
        .map(|t| NewTopic {
            name: t.name,
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            configs: t.configs.into_iter().map(|c| (c.name, c.value)).collect(),
            assignments: t.assignments.into_iter().map(|a| a.broker_ids).collect(),
        })
        .collect();
    let outcomes = submit(broker, ControllerRequest::CreateTopics { topics, validate_only: req.validate_only }).await;
    let resp = CreateTopicsResponse {
        throttle_time_ms: 0,
        topics: outcomes
            .into_iter()
            .map(|o| {
                let (error_code, error_message) = error_of(&o.result);
                CreatableTopicResult {
                    name: o.name,
                    topic_id: o.topic_id.0,
                    error_code,
                    error_message,
                    num_partitions: o.partitions,
                    replication_factor: o.replication_factor,
                    configs: None,
                }
            })
            .collect(),
    };
    resp.encode(&mut w, version);
    single(w)
}

pub async fn delete_topics(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DeleteTopicsRequest::decode(body, version)?;
    let view = broker.view();
    let mut names = req.topic_names;
    for t in req.topics {
        match t.name {
            Some(n) => names.push(n),
            None => {
                if let Some(topic) = view.image.topic_by_id(TopicId(t.topic_id)) {
                    names.push(topic.name.to_string());
                }
            }
        }
    }
    let outcomes = submit(broker, ControllerRequest::DeleteTopics { names }).await;
    let resp = DeleteTopicsResponse {
        throttle_time_ms: 0,
        responses: outcomes
            .into_iter()
            .map(|o| {
                let (error_code, error_message) = error_of(&o.result);
                DeletableTopicResult { name: Some(o.name), topic_id: o.topic_id.0, error_code, error_message }
            })
            .collect(),
    };
    resp.encode(&mut w, version);
    single(w)
}

pub async fn create_partitions(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = CreatePartitionsRequest::decode(body, version)?;
    let topics = req.topics.into_iter().map(|t| (t.name, t.count)).collect();
    let outcomes =
        submit(broker, ControllerRequest::CreatePartitions { topics, validate_only: req.validate_only }).await;
    let resp = CreatePartitionsResponse {
        throttle_time_ms: 0,
        results: outcomes
            .into_iter()
            .map(|o| {
                let (error_code, error_message) = error_of(&o.result);
                CreatePartitionsTopicResult { name: o.name, error_code, error_message }
            })
            .collect(),
    };
    resp.encode(&mut w, version);
    single(w)
}
