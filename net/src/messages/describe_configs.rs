//! DescribeConfigs (key 32), versions 0-4: the configs of topics and brokers, with their sources
//! and synonyms.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeConfigsRequest {
    pub resources: Vec<DescribeConfigsResource>,
    /// False below version 1, which lacks the field.
    pub include_synonyms: bool,
    /// False below version 3, which lacks the field.
    pub include_documentation: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeConfigsResource {
    /// 2 for a topic, 4 for a broker, 8 for a broker logger.
    pub resource_type: i8,
    pub resource_name: String,
    /// The keys to describe, or `None` for all of them.
    pub configuration_keys: Option<Vec<String>>,
}

impl DescribeConfigsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DescribeConfigs.is_flexible(version);
        let resources = r.array(flexible, "resources", |r| {
            let resource_type = r.i8()?;
            let resource_name = r.string(flexible)?;
            let configuration_keys = r.nullable_array(flexible, "configuration keys", |r| r.string(flexible))?;
            r.tagged_fields(flexible)?;
            Ok(DescribeConfigsResource { resource_type, resource_name, configuration_keys })
        })?;
        let include_synonyms = if version >= 1 { r.bool()? } else { false };
        let include_documentation = if version >= 3 { r.bool()? } else { false };
        r.tagged_fields(flexible)?;
        Ok(DescribeConfigsRequest { resources, include_synonyms, include_documentation })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeConfigsResponse {
    pub throttle_time_ms: i32,
    pub results: Vec<DescribeConfigsResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeConfigsResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub resource_type: i8,
    pub resource_name: String,
    pub configs: Vec<DescribeConfigsResourceResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeConfigsResourceResult {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    /// Sent in version 0 only; later versions send `config_source` instead.
    pub is_default: bool,
    /// Sent from version 1.
    pub config_source: i8,
    pub is_sensitive: bool,
    /// Sent from version 1.
    pub synonyms: Vec<DescribeConfigsSynonym>,
    /// Sent from version 3.
    pub config_type: i8,
    /// Sent from version 3.
    pub documentation: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeConfigsSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
}

impl DescribeConfigsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DescribeConfigs.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.results.len());
        for result in &self.results {
            w.i16(result.error_code);
            w.nullable_string(flexible, result.error_message.as_deref());
            w.i8(result.resource_type);
            w.string(flexible, &result.resource_name);
            w.array_len(flexible, result.configs.len());
            for config in &result.configs {
                config.encode(w, version, flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

impl DescribeConfigsResourceResult {
    fn encode(&self, w: &mut Writer, version: i16, flexible: bool) {
        w.string(flexible, &self.name);
        w.nullable_string(flexible, self.value.as_deref());
        w.bool(self.read_only);
        if version == 0 {
            w.bool(self.is_default);
        } else {
            w.i8(self.config_source);
        }
        w.bool(self.is_sensitive);
        if version >= 1 {
            w.array_len(flexible, self.synonyms.len());
            for synonym in &self.synonyms {
                w.string(flexible, &synonym.name);
                w.nullable_string(flexible, synonym.value.as_deref());
                w.i8(synonym.source);
                w.no_tagged_fields(flexible);
            }
        }
        if version >= 3 {
            w.i8(self.config_type);
            w.nullable_string(flexible, self.documentation.as_deref());
        }
        w.no_tagged_fields(flexible);
    }
}
