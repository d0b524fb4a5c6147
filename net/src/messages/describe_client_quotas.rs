//! DescribeClientQuotas (key 48), versions 0-1: the quotas (produce and fetch byte rates,
//! request percentage...) set on users, client ids and IPs that match a filter.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeClientQuotasRequest {
    /// The filter: an entity matches when it matches every component.
    pub components: Vec<ComponentData>,
    /// Whether to leave out entities that have entity types the components do not name.
    pub strict: bool,
}

/// One component of the filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentData {
    /// "user", "client-id" or "ip".
    pub entity_type: String,
    /// 0: the entity named by `match`; 1: the default entity; 2: any entity but the default.
    pub match_type: i8,
    /// The name to match, `None` when the match type needs none.
    pub r#match: Option<String>,
}

impl DescribeClientQuotasRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DescribeClientQuotas.is_flexible(version);
        let components = r.array(flexible, "components", |r| {
            let entity_type = r.string(flexible)?;
            let match_type = r.i8()?;
            let r#match = r.nullable_string(flexible)?;
            r.tagged_fields(flexible)?;
            Ok(ComponentData { entity_type, match_type, r#match })
        })?;
        let strict = r.bool()?;
        r.tagged_fields(flexible)?;
        Ok(DescribeClientQuotasRequest { components, strict })
    }
}

/// Not `Eq`: quota values are floating point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DescribeClientQuotasResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
    /// `None` only with an error.
    pub entries: Option<Vec<EntryData>>,
}

/// An entity and its quotas.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntryData {
    /// The entity, one element per entity type: a user, a client id of a user, and so on.
    pub entity: Vec<EntityData>,
    pub values: Vec<ValueData>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityData {
    pub entity_type: String,
    /// `None` for the default entity of the type.
    pub entity_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueData {
    /// The quota's config key, e.g. "producer_byte_rate".
    pub key: String,
    pub value: f64,
}

impl DescribeClientQuotasResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DescribeClientQuotas.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.nullable_string(flexible, self.error_message.as_deref());
        w.nullable_array_len(flexible, self.entries.as_ref().map(Vec::len));
        for entry in self.entries.iter().flatten() {
            w.array_len(flexible, entry.entity.len());
            for entity in &entry.entity {
                w.string(flexible, &entity.entity_type);
                w.nullable_string(flexible, entity.entity_name.as_deref());
                w.no_tagged_fields(flexible);
            }
            w.array_len(flexible, entry.values.len());
            for value in &entry.values {
                w.string(flexible, &value.key);
                w.f64(value.value);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
