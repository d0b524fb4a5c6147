//! AlterConfigs (key 33), versions 0-2: replace the whole set of dynamic configs of topics and
//! brokers. Configs left out of a resource return to their defaults; IncrementalAlterConfigs is
//! the API that changes one key at a time.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterConfigsRequest {
    pub resources: Vec<AlterConfigsResource>,
    /// Check the request without changing any config.
    pub validate_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterConfigsResource {
    /// 2 for a topic, 4 for a broker, 8 for a broker logger.
    pub resource_type: i8,
    /// The topic name, or the broker id in decimal ("" for the cluster-wide broker default).
    pub resource_name: String,
    pub configs: Vec<AlterableConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterableConfig {
    pub name: String,
    pub value: Option<String>,
}

impl AlterConfigsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::AlterConfigs.is_flexible(version);
        let resources = r.array(flexible, "resources", |r| {
            let resource_type = r.i8()?;
            let resource_name = r.string(flexible)?;
            let configs = r.array(flexible, "configs", |r| {
                let name = r.string(flexible)?;
                let value = r.nullable_string(flexible)?;
                r.tagged_fields(flexible)?;
                Ok(AlterableConfig { name, value })
            })?;
            r.tagged_fields(flexible)?;
            Ok(AlterConfigsResource { resource_type, resource_name, configs })
        })?;
        let validate_only = r.bool()?;
        r.tagged_fields(flexible)?;
        Ok(AlterConfigsRequest { resources, validate_only })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterConfigsResponse {
    pub throttle_time_ms: i32,
    pub responses: Vec<AlterConfigsResourceResponse>,
}

/// The outcome for one resource; IncrementalAlterConfigs answers with the same structure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterConfigsResourceResponse {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub resource_type: i8,
    pub resource_name: String,
}

impl AlterConfigsResourceResponse {
    pub(crate) fn encode(&self, w: &mut Writer, flexible: bool) {
        w.i16(self.error_code);
        w.nullable_string(flexible, self.error_message.as_deref());
        w.i8(self.resource_type);
        w.string(flexible, &self.resource_name);
        w.no_tagged_fields(flexible);
    }
}

impl AlterConfigsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::AlterConfigs.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.responses.len());
        for response in &self.responses {
            response.encode(w, flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
