//! IncrementalAlterConfigs (key 44), versions 0-1: set, delete, append to or subtract from
//! single dynamic configs of topics and brokers, leaving the others as they are.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;
pub use crate::messages::alter_configs::AlterConfigsResourceResponse;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncrementalAlterConfigsRequest {
    pub resources: Vec<IncrementalAlterConfigsResource>,
    /// Check the request without changing any config.
    pub validate_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncrementalAlterConfigsResource {
    /// 2 for a topic, 4 for a broker, 8 for a broker logger.
    pub resource_type: i8,
    /// The topic name, or the broker id in decimal ("" for the cluster-wide broker default).
    pub resource_name: String,
    pub configs: Vec<IncrementalAlterableConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncrementalAlterableConfig {
    pub name: String,
    /// 0 set, 1 delete, 2 append to a list, 3 subtract from a list.
    pub config_operation: i8,
    pub value: Option<String>,
}

impl IncrementalAlterConfigsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::IncrementalAlterConfigs.is_flexible(version);
        let resources = r.array(flexible, "resources", |r| {
            let resource_type = r.i8()?;
            let resource_name = r.string(flexible)?;
            let configs = r.array(flexible, "configs", |r| {
                let name = r.string(flexible)?;
                let config_operation = r.i8()?;
                let value = r.nullable_string(flexible)?;
                r.tagged_fields(flexible)?;
                Ok(IncrementalAlterableConfig { name, config_operation, value })
            })?;
            r.tagged_fields(flexible)?;
            Ok(IncrementalAlterConfigsResource { resource_type, resource_name, configs })
        })?;
        let validate_only = r.bool()?;
        r.tagged_fields(flexible)?;
        Ok(IncrementalAlterConfigsRequest { resources, validate_only })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncrementalAlterConfigsResponse {
    pub throttle_time_ms: i32,
    pub responses: Vec<AlterConfigsResourceResponse>,
}

impl IncrementalAlterConfigsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::IncrementalAlterConfigs.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.responses.len());
        for response in &self.responses {
            response.encode(w, flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
