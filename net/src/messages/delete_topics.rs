//! DeleteTopics (key 20), versions 0-6: delete topics by name, or from version 6 by name or id.

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteTopicsRequest {
    /// The topics by name or id; version 6 and later only.
    pub topics: Vec<DeleteTopicState>,
    /// The topics by name; versions 0-5 only.
    pub topic_names: Vec<String>,
    pub timeout_ms: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteTopicState {
    /// Null when the topic is named by id.
    pub name: Option<String>,
    pub topic_id: [u8; 16],
}

impl DeleteTopicsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DeleteTopics.is_flexible(version);
        let mut req = DeleteTopicsRequest::default();
        if version >= 6 {
            req.topics = r.array(flexible, "topics", |r| {
                let name = r.nullable_string(flexible)?;
                let topic_id = r.uuid()?;
                r.tagged_fields(flexible)?;
                Ok(DeleteTopicState { name, topic_id })
            })?;
        } else {
            req.topic_names = r.array(flexible, "topic names", |r| r.string(flexible))?;
        }
        req.timeout_ms = r.i32()?;
        r.tagged_fields(flexible)?;
        Ok(req)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteTopicsResponse {
    pub throttle_time_ms: i32,
    pub responses: Vec<DeletableTopicResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletableTopicResult {
    /// Null is only valid from version 6 (a topic deleted by an id that is not known); older
    /// versions write an empty name instead, since their clients refuse a null one.
    pub name: Option<String>,
    pub topic_id: [u8; 16],
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl DeleteTopicsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DeleteTopics.is_flexible(version);
        if version >= 1 {
            w.i32(self.throttle_time_ms);
        }
        w.array_len(flexible, self.responses.len());
        for result in &self.responses {
            if version >= 6 {
                w.nullable_string(flexible, result.name.as_deref());
                w.uuid(&result.topic_id);
            } else {
                debug_assert!(result.name.is_some(), "DeleteTopics v{version} cannot carry a null topic name");
                w.string(flexible, result.name.as_deref().unwrap_or_default());
            }
            w.i16(result.error_code);
            if version >= 5 {
                w.nullable_string(flexible, result.error_message.as_deref());
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
