//! The Kafka API layer, on top: decode a request frame, do the work through the broker layer
//! (on this shard, or on the owner shards of the partitions it names), map domain errors to
//! Kafka error codes (`crate::errors`), and encode the response as chunks to send in order.
//! One module per group of APIs.

mod admin;
mod common;
mod configs;
mod consumer_groups;
mod fetch;
mod groups;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod produce;
mod reassignments;
mod topics;
mod voters;

use std::rc::Rc;

use bytes::Bytes;
use ringtail_net::error_code;
use ringtail_net::header::{decode_frame, write_response_header, ApiKey};
use ringtail_net::messages::api_versions::{
    ApiVersionsRequest, ApiVersionsResponse, FinalizedFeature, SupportedFeature,
};
use ringtail_net::{Chunk, Writer};
use ringtail_replication::metadata::features::FEATURES;

use crate::broker::Broker;

/// What to do after a request.
pub enum Outcome {
    /// The response's chunks: in memory, or file ranges sent without a copy (Fetch).
    Respond(Vec<Chunk>),
    /// Produce with acks=0 gets no response.
    Silent,
    /// The request cannot be answered in Kafka's terms; close the connection.
    Close(String),
}

/// `client_host` is the peer's address in Kafka's form (`/127.0.0.1`).
pub async fn handle_request(broker: &Rc<Broker>, frame: Bytes, client_host: &str) -> Outcome {
    let frame_bytes = frame.len();
    let (header, mut body) = match decode_frame(frame) {
        Ok(x) => x,
        Err(e) => return Outcome::Close(format!("unreadable request header: {e}")),
    };
    let Some(key) = ApiKey::from_i16(header.api_key) else {
        return Outcome::Close(format!("unknown API key {}", header.api_key));
    };
    let version = header.api_version;
    if !key.supports(version) {
        if key == ApiKey::ApiVersions {
            // Kafka's rule: answer in v0 with UNSUPPORTED_VERSION and the versions we do speak.
            let mut w = Writer::new();
            write_response_header(&mut w, key, 0, header.correlation_id);
            api_versions(broker, error_code::UNSUPPORTED_VERSION).encode(&mut w, 0);
            return Outcome::Respond(vec![Chunk::Mem(w.buf.freeze())]);
        }
        let (lo, hi) = key.versions();
        return Outcome::Close(format!("{key:?} v{version} is not supported (v{lo} to v{hi} are)"));
    }
    let mut w = Writer::new();
    write_response_header(&mut w, key, version, header.correlation_id);
    let client = groups::Client { client_id: header.client_id.as_deref().unwrap_or(""), host: client_host };
    let result = match key {
        ApiKey::ApiVersions => ApiVersionsRequest::decode(&mut body, version).map(|_| {
            api_versions(broker, error_code::NONE).encode(&mut w, version);
            Some(vec![w.buf.freeze()])
        }),
        ApiKey::Metadata => metadata::metadata(broker, &mut body, version, w).await,
        ApiKey::Produce => produce::produce(broker, &mut body, version, w, frame_bytes).await,
        ApiKey::Fetch => {
            return match fetch::fetch(broker, &mut body, version, w).await {
                Ok(Some(chunks)) => Outcome::Respond(chunks),
                Ok(None) => Outcome::Silent,
                Err(e) => Outcome::Close(format!("malformed {key:?} v{version} request: {e}")),
            };
        }
        ApiKey::ListOffsets => list_offsets::list_offsets(broker, &mut body, version, w).await,
        ApiKey::CreateTopics => topics::create_topics(broker, &mut body, version, w).await,
        ApiKey::DeleteTopics => topics::delete_topics(broker, &mut body, version, w).await,
        ApiKey::CreatePartitions => topics::create_partitions(broker, &mut body, version, w).await,
        ApiKey::DescribeConfigs => configs::describe_configs(broker, &mut body, version, w).await,
        ApiKey::AlterConfigs => configs::alter_configs(broker, &mut body, version, w).await,
        ApiKey::IncrementalAlterConfigs => configs::incremental_alter_configs(broker, &mut body, version, w).await,
        ApiKey::DescribeCluster => metadata::describe_cluster(broker, &mut body, version, w),
        ApiKey::DescribeQuorum => metadata::describe_quorum(broker, &mut body, version, w).await,
        ApiKey::FindCoordinator => groups::find_coordinator(broker, &mut body, version, w).await,
        ApiKey::JoinGroup => groups::join_group(broker, &mut body, version, w, &client).await,
        ApiKey::SyncGroup => groups::sync_group(broker, &mut body, version, w).await,
        ApiKey::Heartbeat => groups::heartbeat(broker, &mut body, version, w).await,
        ApiKey::LeaveGroup => groups::leave_group(broker, &mut body, version, w).await,
        ApiKey::OffsetCommit => groups::offset_commit(broker, &mut body, version, w).await,
        ApiKey::OffsetFetch => groups::offset_fetch(broker, &mut body, version, w).await,
        ApiKey::OffsetDelete => groups::offset_delete(broker, &mut body, version, w).await,
        ApiKey::DescribeGroups => groups::describe_groups(broker, &mut body, version, w).await,
        ApiKey::ListGroups => groups::list_groups(broker, &mut body, version, w).await,
        ApiKey::DeleteGroups => groups::delete_groups(broker, &mut body, version, w).await,
        ApiKey::ConsumerGroupHeartbeat => {
            consumer_groups::consumer_group_heartbeat(broker, &mut body, version, w, &client).await
        }
        ApiKey::ConsumerGroupDescribe => consumer_groups::consumer_group_describe(broker, &mut body, version, w).await,
        ApiKey::InitProducerId => init_producer_id::init_producer_id(broker, &mut body, version, w).await,
        ApiKey::DeleteRecords => admin::delete_records(broker, &mut body, version, w).await,
        ApiKey::OffsetForLeaderEpoch => list_offsets::offset_for_leader_epoch(broker, &mut body, version, w).await,
        ApiKey::AlterPartitionReassignments => {
            reassignments::alter_partition_reassignments(broker, &mut body, version, w).await
        }
        ApiKey::ListPartitionReassignments => {
            reassignments::list_partition_reassignments(broker, &mut body, version, w).await
        }
        ApiKey::ElectLeaders => reassignments::elect_leaders(broker, &mut body, version, w).await,
        ApiKey::UnregisterBroker => reassignments::unregister_broker(broker, &mut body, version, w).await,
        ApiKey::AddRaftVoter => voters::add_raft_voter(broker, &mut body, version, w).await,
        ApiKey::RemoveRaftVoter => voters::remove_raft_voter(broker, &mut body, version, w).await,
        ApiKey::DescribeLogDirs => admin::describe_log_dirs(broker, &mut body, version, w).await,
        ApiKey::AlterReplicaLogDirs => admin::alter_replica_log_dirs(broker, &mut body, version, w),
        ApiKey::DescribeTopicPartitions => admin::describe_topic_partitions(broker, &mut body, version, w),
        ApiKey::DescribeProducers => admin::describe_producers(broker, &mut body, version, w).await,
        ApiKey::DescribeClientQuotas => admin::describe_client_quotas(&mut body, version, w),
        ApiKey::DescribeAcls => admin::describe_acls(&mut body, version, w),
        ApiKey::CreateAcls => admin::create_acls(&mut body, version, w),
        ApiKey::DeleteAcls => admin::delete_acls(&mut body, version, w),
    };
    match result {
        Ok(Some(chunks)) => Outcome::Respond(chunks.into_iter().map(Chunk::Mem).collect()),
        Ok(None) => Outcome::Silent,
        Err(e) => Outcome::Close(format!("malformed {key:?} v{version} request: {e}")),
    }
}

/// Every API with its versions, the features this release supports and the levels the
/// cluster's metadata finalized (its epoch is the metadata offset they were read at, as in
/// KRaft).
fn api_versions(broker: &Broker, error_code: i16) -> ApiVersionsResponse {
    let view = broker.view();
    let mut response = ApiVersionsResponse::supported(error_code);
    response.supported_features = FEATURES
        .iter()
        .map(|f| SupportedFeature { name: f.name.to_string(), min_version: f.min_level, max_version: f.max_level })
        .collect();
    response.finalized_features = view
        .image
        .features()
        .iter()
        .map(|(name, &level)| FinalizedFeature {
            name: name.clone(),
            max_version_level: level,
            min_version_level: level,
        })
        .collect();
    response.finalized_features_epoch = view.image.applied.map_or(-1, |offset| offset as i64);
    response
}
