//! ApiVersions (key 18), versions 0-3.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiVersionsRequest {
    pub client_software_name: Option<String>,
    pub client_software_version: Option<String>,
}

impl ApiVersionsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::ApiVersions.is_flexible(version);
        let mut req = ApiVersionsRequest::default();
        if version >= 3 {
            req.client_software_name = Some(r.string(flexible)?);
            req.client_software_version = Some(r.string(flexible)?);
        }
        r.tagged_fields(flexible)?;
        Ok(req)
    }
}

/// One supported API: key, lowest and highest version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion {
    pub api_key: i16,
    pub min_version: i16,
    pub max_version: i16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiVersionsResponse {
    pub error_code: i16,
    pub api_keys: Vec<ApiVersion>,
    pub throttle_time_ms: i32,
}

impl ApiVersionsResponse {
    /// Every API this broker supports.
    pub fn supported(error_code: i16) -> Self {
        let api_keys = ApiKey::all()
            .map(|(key, min_version, max_version)| ApiVersion { api_key: key as i16, min_version, max_version })
            .collect();
        ApiVersionsResponse { error_code, api_keys, throttle_time_ms: 0 }
    }

    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::ApiVersions.is_flexible(version);
        w.i16(self.error_code);
        w.array_len(flexible, self.api_keys.len());
        for k in &self.api_keys {
            w.i16(k.api_key);
            w.i16(k.min_version);
            w.i16(k.max_version);
            w.no_tagged_fields(flexible);
        }
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.no_tagged_fields(flexible);
    }
}
