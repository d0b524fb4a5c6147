//! Topic administration: CreateTopics, DeleteTopics and CreatePartitions (decided and applied
//! by the controller), and DescribeConfigs.

use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::messages::create_partitions::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use ringtail_net::messages::create_topics::{CreatableTopicResult, CreateTopicsRequest, CreateTopicsResponse};
use ringtail_net::messages::delete_topics::{DeletableTopicResult, DeleteTopicsRequest, DeleteTopicsResponse};
use ringtail_net::messages::describe_configs::{
    DescribeConfigsRequest, DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
};
use ringtail_net::{Reader, Writer};
use ringtail_replication::metadata::{ControllerError, NewTopic};
use ringtail_replication::TopicId;

use super::common::{single, Handled};
use crate::broker::controller::service::submit;
use crate::broker::controller::ControllerRequest;
use crate::broker::Broker;
use crate::errors;

/// A topic's error code and message in the response.
fn error_of(result: &Result<(), ControllerError>) -> (i16, Option<String>) {
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

/// Kafka's config types (DescribeConfigs v3+).
const CONFIG_TYPE_STRING: i8 = 2;
const CONFIG_TYPE_INT: i8 = 3;
const CONFIG_TYPE_LONG: i8 = 5;
const CONFIG_TYPE_LIST: i8 = 7;
/// Kafka's config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

pub async fn describe_configs(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DescribeConfigsRequest::decode(body, version)?;
    let view = broker.view();
    let base = &broker.config.log;
    let durability = |d: ringtail_log::Durability| if d == ringtail_log::Durability::Sync { "sync" } else { "async" };
    let defaults: Vec<(&str, String, i8)> = vec![
        ("cleanup.policy", "delete".into(), CONFIG_TYPE_LIST),
        ("retention.ms", base.retention_age_ms_max.map_or(-1, |v| v as i64).to_string(), CONFIG_TYPE_LONG),
        ("retention.bytes", base.retention_bytes_max.map_or(-1, |v| v as i64).to_string(), CONFIG_TYPE_LONG),
        ("segment.bytes", base.segment_bytes_max.to_string(), CONFIG_TYPE_INT),
        ("segment.ms", base.segment_age_ms_max.to_string(), CONFIG_TYPE_LONG),
        ("max.message.bytes", base.batch_bytes_max.to_string(), CONFIG_TYPE_INT),
        ("ringtail.durability", durability(base.durability).into(), CONFIG_TYPE_STRING),
    ];
    let mut results = Vec::new();
    for r in req.resources {
        let mut result = DescribeConfigsResult {
            error_code: 0,
            error_message: None,
            resource_type: r.resource_type,
            resource_name: r.resource_name.clone(),
            configs: Vec::new(),
        };
        let overrides = match r.resource_type {
            RESOURCE_TOPIC => match view.image.topic(&r.resource_name) {
                Some(t) => Some(t.configs.clone()),
                None => {
                    result.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                    result.error_message = Some(format!("topic `{}` does not exist", r.resource_name));
                    None
                }
            },
            RESOURCE_BROKER => Some(Default::default()),
            _ => {
                result.error_code = error_code::INVALID_REQUEST;
                result.error_message = Some(format!("resource type {} is not supported", r.resource_type));
                None
            }
        };
        if let Some(overrides) = overrides {
            for (name, default, config_type) in &defaults {
                if r.configuration_keys.as_ref().is_some_and(|keys| !keys.iter().any(|k| k == name)) {
                    continue;
                }
                let set = overrides.get(*name);
                result.configs.push(DescribeConfigsResourceResult {
                    name: name.to_string(),
                    value: Some(set.cloned().unwrap_or_else(|| default.clone())),
                    read_only: r.resource_type == RESOURCE_BROKER,
                    is_default: set.is_none(),
                    config_source: if set.is_some() { SOURCE_TOPIC } else { SOURCE_DEFAULT },
                    is_sensitive: false,
                    synonyms: Vec::new(),
                    config_type: *config_type,
                    documentation: None,
                });
            }
        }
        results.push(result);
    }
    let resp = DescribeConfigsResponse { throttle_time_ms: 0, results };
    resp.encode(&mut w, version);
    single(w)
}
