//! Config APIs: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs, for topics and
//! brokers, on the table of Kafka's config keys (`crate::config_keys`). Changes are decided by
//! the controller and recorded as metadata records, then applied live by every shard.

use std::rc::Rc;

use ringtail_net::error_code;
use ringtail_net::messages::alter_configs::{AlterConfigsRequest, AlterConfigsResourceResponse, AlterConfigsResponse};
use ringtail_net::messages::describe_configs::{
    DescribeConfigsRequest, DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
    DescribeConfigsSynonym,
};
use ringtail_net::messages::incremental_alter_configs::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use ringtail_net::{Reader, Writer};
use ringtail_replication::metadata::controller::{ConfigAlteration, ConfigOp, ConfigResource};
use ringtail_replication::NodeId;

use super::common::{single, Handled};
use super::topics::error_of;
use crate::broker::controller::service::submit;
use crate::broker::controller::ControllerRequest;
use crate::broker::Broker;
use crate::config_keys::{self, Sourced, TOPIC_KEYS};

/// Kafka's resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;
/// A consumer group (KIP-848).
pub const RESOURCE_GROUP: i8 = 32;
/// DescribeConfigs' config type INT.
const CONFIG_TYPE_INT: i8 = 3;

/// A broker resource's name: this node's id, or empty for the cluster-wide defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerName {
    This,
    AllBrokers,
}

/// Reads a broker resource name; the error says why it is not this broker's.
pub fn broker_name(broker: &Broker, name: &str) -> Result<BrokerName, String> {
    if name.is_empty() {
        return Ok(BrokerName::AllBrokers);
    }
    match name.parse::<i32>() {
        Ok(id) if id == broker.node.0 => Ok(BrokerName::This),
        Ok(id) => Err(format!("broker {id} is not this broker ({}): send the request to broker {id}", broker.node.0)),
        Err(_) => Err(format!("broker resource name `{name}` is not a broker id")),
    }
}

/// One config entry as DescribeConfigs reports it, from its values at each level.
fn entry(
    name: &str,
    chain: Vec<Sourced>,
    read_only: bool,
    config_type: i8,
    doc: String,
    req: &DescribeConfigsRequest,
) -> DescribeConfigsResourceResult {
    let first = chain.first().cloned();
    DescribeConfigsResourceResult {
        name: name.to_string(),
        value: first.as_ref().and_then(|s| s.value.clone()),
        read_only,
        is_default: first.as_ref().is_none_or(|s| s.source == config_keys::Source::Default),
        config_source: first.map_or(config_keys::Source::Default as i8, |s| s.source as i8),
        is_sensitive: false,
        synonyms: if req.include_synonyms {
            chain
                .into_iter()
                .map(|s| DescribeConfigsSynonym { name: s.name, value: s.value, source: s.source as i8 })
                .collect()
        } else {
            Vec::new()
        },
        config_type,
        documentation: req.include_documentation.then_some(doc),
    }
}

pub async fn describe_configs(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = DescribeConfigsRequest::decode(body, version)?;
    let view = broker.view();
    let image = &view.image;
    let node = broker.node;
    let mut results = Vec::with_capacity(req.resources.len());
    for r in &req.resources {
        let mut result = DescribeConfigsResult {
            error_code: 0,
            error_message: None,
            resource_type: r.resource_type,
            resource_name: r.resource_name.clone(),
            configs: Vec::new(),
        };
        let wanted = |name: &str| r.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| k == name));
        match r.resource_type {
            RESOURCE_TOPIC => match image.topic(&r.resource_name) {
                Some(topic) => {
                    for key in TOPIC_KEYS.iter().filter(|k| wanted(k.name)) {
                        let chain =
                            config_keys::topic_value_chain(key, Some(&topic.configs), &broker.config, image, node);
                        result.configs.push(entry(key.name, chain, false, key.ty.code(), key.documentation(), &req));
                    }
                }
                None => {
                    result.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                    result.error_message = Some(format!("topic `{}` does not exist", r.resource_name));
                }
            },
            RESOURCE_BROKER => match broker_name(broker, &r.resource_name) {
                Ok(which) => {
                    for name in config_keys::broker_config_names().filter(|n| wanted(n)) {
                        let (chain, read_only, ty, doc) = broker_entry(broker, name, which, image, node);
                        if which == BrokerName::AllBrokers && chain.is_empty() {
                            // The cluster-wide resource lists only the defaults set dynamically.
                            continue;
                        }
                        result.configs.push(entry(name, chain, read_only, ty, doc, &req));
                    }
                }
                Err(message) => {
                    result.error_code = error_code::INVALID_REQUEST;
                    result.error_message = Some(message);
                }
            },
            RESOURCE_BROKER_LOGGER => {
                result.error_code = error_code::INVALID_REQUEST;
                result.error_message =
                    Some("broker loggers are set with --log (or RUST_LOG) at start-up, not described here".into());
            }
            RESOURCE_GROUP if r.resource_name.is_empty() => {
                result.error_code = error_code::INVALID_REQUEST;
                result.error_message = Some("a group config needs a group id".into());
            }
            RESOURCE_GROUP => {
                for (name, doc) in config_keys::GROUP_KEYS.iter().filter(|(n, _)| wanted(n)) {
                    let chain = config_keys::group_value_chain(name, &broker.config, image, &r.resource_name);
                    result.configs.push(entry(name, chain, false, CONFIG_TYPE_INT, doc.to_string(), &req));
                }
            }
            other => {
                result.error_code = error_code::INVALID_REQUEST;
                result.error_message =
                    Some(format!("resource type {other} has no configs here; use 2 (topic), 4 (broker) or 32 (group)"));
            }
        }
        results.push(result);
    }
    DescribeConfigsResponse { throttle_time_ms: 0, results }.encode(&mut w, version);
    single(w)
}

/// A broker config's values (this node's, or with `AllBrokers` only the cluster-wide dynamic
/// one), whether it is read-only, its type and documentation.
fn broker_entry(
    broker: &Broker,
    name: &str,
    which: BrokerName,
    image: &ringtail_replication::metadata::MetadataImage,
    node: NodeId,
) -> (Vec<Sourced>, bool, i8, String) {
    let chain = config_keys::broker_value_chain_of(name, &broker.config, image, node);
    let chain = match which {
        BrokerName::This => chain,
        BrokerName::AllBrokers => {
            chain.into_iter().filter(|s| s.source == config_keys::Source::DynamicDefaultBroker).collect()
        }
    };
    if let Some(key) = config_keys::dynamic_broker_key(name) {
        return (chain, false, key.ty.code(), key.doc.to_string());
    }
    match config_keys::topic_key_of_broker_key(name) {
        Some(key) => (chain, false, key.ty.code(), key.documentation()),
        None => {
            let key = config_keys::broker_key(name).expect("every reported name is in a table");
            (chain, true, key.ty.code(), key.doc.to_string())
        }
    }
}

/// The resource an alteration names, or the error code and message refusing it.
fn config_resource(broker: &Broker, resource_type: i8, name: &str) -> Result<ConfigResource, (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => Ok(ConfigResource::Topic(name.to_string())),
        RESOURCE_BROKER => match broker_name(broker, name) {
            Ok(BrokerName::This) => Ok(ConfigResource::Broker(Some(broker.node))),
            Ok(BrokerName::AllBrokers) => Ok(ConfigResource::Broker(None)),
            Err(message) => Err((error_code::INVALID_REQUEST, message)),
        },
        RESOURCE_BROKER_LOGGER => Err((
            error_code::INVALID_REQUEST,
            "broker loggers are set with --log (or RUST_LOG) at start-up, not changed here".into(),
        )),
        RESOURCE_GROUP => Ok(ConfigResource::Group(name.to_string())),
        other => Err((
            error_code::INVALID_REQUEST,
            format!("resource type {other} has no configs here; use 2 (topic), 4 (broker) or 32 (group)"),
        )),
    }
}

/// One resource of an alteration request: its type, its name, and its changes (or the error
/// code and message refusing them already).
type Asked = (i8, String, Result<Vec<(String, ConfigOp)>, (i16, String)>);

/// Sends the alterations of both config APIs to the controller and fills in `responses`:
/// `asked` holds each resource's type, name and changes (or why it was refused already).
async fn alter(
    broker: &Rc<Broker>,
    asked: Vec<Asked>,
    replace: bool,
    validate_only: bool,
) -> Vec<AlterConfigsResourceResponse> {
    let mut responses = Vec::with_capacity(asked.len());
    let mut alterations = Vec::new();
    let mut slots = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (resource_type, resource_name, ops) in asked {
        let mut response = AlterConfigsResourceResponse {
            error_code: 0,
            error_message: None,
            resource_type,
            resource_name: resource_name.clone(),
        };
        let resource = if seen.insert((resource_type, resource_name.clone())) {
            config_resource(broker, resource_type, &resource_name)
        } else {
            Err((error_code::INVALID_REQUEST, format!("resource `{resource_name}` appears twice in the request")))
        };
        match resource.and_then(|resource| ops.map(|ops| ConfigAlteration { resource, ops, replace })) {
            Ok(alteration) => {
                slots.push(responses.len());
                alterations.push(alteration);
            }
            Err((code, message)) => {
                response.error_code = code;
                response.error_message = Some(message);
            }
        }
        responses.push(response);
    }
    if !alterations.is_empty() {
        let outcomes = submit(broker, ControllerRequest::AlterConfigs { alterations, validate_only }).await;
        for (i, slot) in slots.into_iter().enumerate() {
            let (code, message) = match outcomes.get(i) {
                Some(o) => error_of(&o.result),
                None => (error_code::UNKNOWN_SERVER_ERROR, Some("the controller stopped; retry".to_string())),
            };
            responses[slot].error_code = code;
            responses[slot].error_message = message;
        }
    }
    responses
}

/// AlterConfigs (legacy): each resource's configs are replaced as a whole.
pub async fn alter_configs(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = AlterConfigsRequest::decode(body, version)?;
    let asked = req
        .resources
        .into_iter()
        .map(|r| {
            let ops =
                r.configs.into_iter().map(|c| (c.name, c.value.map_or(ConfigOp::Delete, ConfigOp::Set))).collect();
            (r.resource_type, r.resource_name, Ok(ops))
        })
        .collect();
    let responses = alter(broker, asked, true, req.validate_only).await;
    AlterConfigsResponse { throttle_time_ms: 0, responses }.encode(&mut w, version);
    single(w)
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT per key.
pub async fn incremental_alter_configs(broker: &Rc<Broker>, body: &mut Reader, version: i16, mut w: Writer) -> Handled {
    let req = IncrementalAlterConfigsRequest::decode(body, version)?;
    let asked = req
        .resources
        .into_iter()
        .map(|r| {
            let ops = r
                .configs
                .into_iter()
                .map(|c| {
                    let op = match (c.config_operation, c.value) {
                        (0, Some(v)) => ConfigOp::Set(v),
                        (1, _) => ConfigOp::Delete,
                        (2, Some(v)) => ConfigOp::Append(v),
                        (3, Some(v)) => ConfigOp::Subtract(v),
                        (0 | 2 | 3, None) => {
                            return Err((error_code::INVALID_REQUEST, format!("config `{}` has no value", c.name)))
                        }
                        (other, _) => {
                            return Err((
                                error_code::INVALID_REQUEST,
                                format!(
                                "config operation {other} on `{}`: use 0 (SET), 1 (DELETE), 2 (APPEND) or 3 (SUBTRACT)",
                                c.name
                            ),
                            ))
                        }
                    };
                    Ok((c.name, op))
                })
                .collect::<Result<Vec<_>, _>>();
            (r.resource_type, r.resource_name, ops)
        })
        .collect();
    let responses = alter(broker, asked, false, req.validate_only).await;
    IncrementalAlterConfigsResponse { throttle_time_ms: 0, responses }.encode(&mut w, version);
    single(w)
}
