//! DescribeCluster (key 60), versions 0-2: the cluster id, controller and brokers, for admin
//! clients. Every version is flexible.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeClusterRequest {
    pub include_cluster_authorized_operations: bool,
    /// 1 (brokers) below version 1, which lacks the field; 2 asks for controllers.
    pub endpoint_type: i8,
    /// Version 2+: list fenced brokers too (with `is_fenced`).
    pub include_fenced_brokers: bool,
}

impl DescribeClusterRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DescribeCluster.is_flexible(version);
        let include_cluster_authorized_operations = r.bool()?;
        let endpoint_type = if version >= 1 { r.i8()? } else { 1 };
        let include_fenced_brokers = if version >= 2 { r.bool()? } else { false };
        r.tagged_fields(flexible)?;
        Ok(DescribeClusterRequest { include_cluster_authorized_operations, endpoint_type, include_fenced_brokers })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeClusterResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
    /// Sent from version 1.
    pub endpoint_type: i8,
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<DescribeClusterBroker>,
    pub cluster_authorized_operations: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeClusterBroker {
    pub broker_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    /// Sent from version 2.
    pub is_fenced: bool,
}

impl DescribeClusterResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DescribeCluster.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.nullable_string(flexible, self.error_message.as_deref());
        if version >= 1 {
            w.i8(self.endpoint_type);
        }
        w.string(flexible, &self.cluster_id);
        w.i32(self.controller_id);
        w.array_len(flexible, self.brokers.len());
        for broker in &self.brokers {
            w.i32(broker.broker_id);
            w.string(flexible, &broker.host);
            w.i32(broker.port);
            w.nullable_string(flexible, broker.rack.as_deref());
            if version >= 2 {
                w.bool(broker.is_fenced);
            }
            w.no_tagged_fields(flexible);
        }
        w.i32(self.cluster_authorized_operations);
        w.no_tagged_fields(flexible);
    }
}
