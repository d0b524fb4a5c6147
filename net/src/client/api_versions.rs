//! ApiVersions (key 18), versions 0-4, from the client's side: which versions of each API a
//! broker speaks, and (version 3 on, tagged) its supported and finalized features.

use super::{client_request, ClientApi};
use crate::codec::{DecodeError, Reader, Writer};
use crate::error_code::UNSUPPORTED_VERSION;
pub use crate::messages::api_versions::{
    ApiVersion, ApiVersionsRequest, ApiVersionsResponse, FinalizedFeature, SupportedFeature,
};

client_request!(ApiVersionsRequest, ClientApi::ApiVersions, ApiVersionsResponse);

impl ApiVersionsRequest {
    /// From version 3 the client names its software; Kafka refuses an empty name, so both
    /// fields should be set (`None` is written as empty).
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ClientApi::ApiVersions.is_flexible(version);
        if version >= 3 {
            w.string(flexible, self.client_software_name.as_deref().unwrap_or_default());
            w.string(flexible, self.client_software_version.as_deref().unwrap_or_default());
        }
        w.no_tagged_fields(flexible);
    }
}

impl ApiVersionsResponse {
    /// A broker that does not speak the version asked for answers UNSUPPORTED_VERSION in
    /// version 0, so that any client can read the versions it may use; that answer is read as
    /// version 0 whatever `version` was.
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let error_code = r.i16()?;
        let version = if error_code == UNSUPPORTED_VERSION { 0 } else { version };
        let flexible = ClientApi::ApiVersions.is_flexible(version);
        let api_keys = r.array(flexible, "api keys", |r| {
            let api_key = r.i16()?;
            let min_version = r.i16()?;
            let max_version = r.i16()?;
            r.tagged_fields(flexible)?;
            Ok(ApiVersion { api_key, min_version, max_version })
        })?;
        let throttle_time_ms = if version >= 1 { r.i32()? } else { 0 };
        let mut response = ApiVersionsResponse {
            error_code,
            api_keys,
            throttle_time_ms,
            supported_features: Vec::new(),
            finalized_features_epoch: -1,
            finalized_features: Vec::new(),
        };
        // Tag 3, ZkMigrationReady, concerns ZooKeeper migrations only.
        r.tagged_fields_with(flexible, |tag, r| {
            match tag {
                0 => response.supported_features = r.array(true, "supported features", decode_supported)?,
                1 => response.finalized_features_epoch = r.i64()?,
                2 => response.finalized_features = r.array(true, "finalized features", decode_finalized)?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(response)
    }
}

fn decode_supported(r: &mut Reader) -> Result<SupportedFeature, DecodeError> {
    let name = r.string(true)?;
    let min_version = r.i16()?;
    let max_version = r.i16()?;
    r.tagged_fields(true)?;
    Ok(SupportedFeature { name, min_version, max_version })
}

fn decode_finalized(r: &mut Reader) -> Result<FinalizedFeature, DecodeError> {
    let name = r.string(true)?;
    let max_version_level = r.i16()?;
    let min_version_level = r.i16()?;
    r.tagged_fields(true)?;
    Ok(FinalizedFeature { name, max_version_level, min_version_level })
}
