//! ApiVersions (key 18), versions 0-4, with the supported and finalized features (KIP-584) in
//! the response's tagged fields from version 3. Version 4 is version 3 on the wire (a client
//! sending it accepts an UNSUPPORTED_VERSION answer in v0).

use bytes::Bytes;

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

/// A feature this broker can run at, from `min_version` to `max_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedFeature {
    pub name: String,
    pub min_version: i16,
    pub max_version: i16,
}

/// A feature's level finalized for the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedFeature {
    pub name: String,
    pub max_version_level: i16,
    pub min_version_level: i16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiVersionsResponse {
    pub error_code: i16,
    pub api_keys: Vec<ApiVersion>,
    pub throttle_time_ms: i32,
    /// Tagged, version 3 on; written only when not empty.
    pub supported_features: Vec<SupportedFeature>,
    /// The metadata offset at which the finalized features were read; -1 for none.
    pub finalized_features_epoch: i64,
    pub finalized_features: Vec<FinalizedFeature>,
}

impl ApiVersionsResponse {
    /// Every API this broker supports.
    pub fn supported(error_code: i16) -> Self {
        let api_keys = ApiKey::all()
            .map(|(key, min_version, max_version)| ApiVersion { api_key: key as i16, min_version, max_version })
            .collect();
        ApiVersionsResponse {
            error_code,
            api_keys,
            throttle_time_ms: 0,
            supported_features: Vec::new(),
            finalized_features_epoch: -1,
            finalized_features: Vec::new(),
        }
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
        if flexible && !self.supported_features.is_empty() {
            w.tagged_fields(&self.feature_fields(version));
        } else {
            w.no_tagged_fields(flexible);
        }
    }

    /// Tags 0 (SupportedFeatures), 1 (FinalizedFeaturesEpoch) and 2 (FinalizedFeatures).
    /// Below version 4, as Kafka does, features whose lowest level is 0 are left out: older
    /// clients take a minimum of 0 for a malformed range.
    fn feature_fields(&self, version: i16) -> [(u32, Bytes); 3] {
        let listed: Vec<&SupportedFeature> =
            self.supported_features.iter().filter(|f| version >= 4 || f.min_version > 0).collect();
        let mut supported = Writer::new();
        supported.array_len(true, listed.len());
        for f in listed {
            supported.string(true, &f.name);
            supported.i16(f.min_version);
            supported.i16(f.max_version);
            supported.no_tagged_fields(true);
        }
        let mut epoch = Writer::new();
        epoch.i64(self.finalized_features_epoch);
        let mut finalized = Writer::new();
        finalized.array_len(true, self.finalized_features.len());
        for f in &self.finalized_features {
            finalized.string(true, &f.name);
            finalized.i16(f.max_version_level);
            finalized.i16(f.min_version_level);
            finalized.no_tagged_fields(true);
        }
        [(0, supported.buf.freeze()), (1, epoch.buf.freeze()), (2, finalized.buf.freeze())]
    }
}
