//! The ACL APIs, versions 1-3: DescribeAcls (key 29) lists the ACLs matching a filter, CreateAcls
//! (key 30) adds ACLs, DeleteAcls (key 31) removes the ACLs matching each of several filters.
//! Version 2 is the first flexible one in all three.
//!
//! The codes, as Kafka numbers them. Resource type: 1 any, 2 topic, 3 group, 4 cluster,
//! 5 transactional id, 6 delegation token, 7 user. Pattern type: 1 any, 2 match, 3 literal,
//! 4 prefixed. Operation: 1 any, 2 all, 3 read, 4 write, 5 create, 6 delete, 7 alter,
//! 8 describe, 9 cluster action, 10 describe configs, 11 alter configs, 12 idempotent write,
//! 13 create tokens, 14 describe tokens (Kafka's `AclOperation` has the full list). Permission
//! type: 1 any, 2 deny, 3 allow. "Any" and "match" appear only in filters; 0 is "unknown".

use crate::codec::{DecodeError, Reader, Writer};
use crate::header::ApiKey;

/// Kafka's default pattern type, `LITERAL`.
const PATTERN_TYPE_LITERAL: i8 = 3;

/// Which ACLs a DescribeAcls or DeleteAcls request is about: Kafka's `DescribeAclsRequest` and
/// `DeleteAclsFilter`, which have the same fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type_filter: i8,
    /// `None` matches any resource name.
    pub resource_name_filter: Option<String>,
    pub pattern_type_filter: i8,
    /// `None` matches any principal.
    pub principal_filter: Option<String>,
    /// `None` matches any host.
    pub host_filter: Option<String>,
    pub operation: i8,
    pub permission_type: i8,
}

impl Default for AclFilter {
    fn default() -> Self {
        AclFilter {
            resource_type_filter: 0,
            resource_name_filter: None,
            pattern_type_filter: PATTERN_TYPE_LITERAL,
            principal_filter: None,
            host_filter: None,
            operation: 0,
            permission_type: 0,
        }
    }
}

impl AclFilter {
    /// The fields, without the tagged fields that end the structure in DeleteAcls.
    fn decode(r: &mut Reader, flexible: bool) -> Result<Self, DecodeError> {
        Ok(AclFilter {
            resource_type_filter: r.i8()?,
            resource_name_filter: r.nullable_string(flexible)?,
            pattern_type_filter: r.i8()?,
            principal_filter: r.nullable_string(flexible)?,
            host_filter: r.nullable_string(flexible)?,
            operation: r.i8()?,
            permission_type: r.i8()?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeAclsRequest {
    pub filter: AclFilter,
}

impl DescribeAclsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DescribeAcls.is_flexible(version);
        let filter = AclFilter::decode(r, flexible)?;
        r.tagged_fields(flexible)?;
        Ok(DescribeAclsRequest { filter })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeAclsResponse {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
    pub resources: Vec<DescribeAclsResource>,
}

/// A resource with the ACLs on it that matched the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeAclsResource {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub acls: Vec<AclDescription>,
}

impl Default for DescribeAclsResource {
    fn default() -> Self {
        DescribeAclsResource {
            resource_type: 0,
            resource_name: String::new(),
            pattern_type: PATTERN_TYPE_LITERAL,
            acls: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclDescription {
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

impl DescribeAclsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DescribeAcls.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.i16(self.error_code);
        w.nullable_string(flexible, self.error_message.as_deref());
        w.array_len(flexible, self.resources.len());
        for resource in &self.resources {
            w.i8(resource.resource_type);
            w.string(flexible, &resource.resource_name);
            w.i8(resource.pattern_type);
            w.array_len(flexible, resource.acls.len());
            for acl in &resource.acls {
                w.string(flexible, &acl.principal);
                w.string(flexible, &acl.host);
                w.i8(acl.operation);
                w.i8(acl.permission_type);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateAclsRequest {
    pub creations: Vec<AclCreation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclCreation {
    pub resource_type: i8,
    pub resource_name: String,
    pub resource_pattern_type: i8,
    /// "User:alice", say.
    pub principal: String,
    /// "*" for every host.
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

impl Default for AclCreation {
    fn default() -> Self {
        AclCreation {
            resource_type: 0,
            resource_name: String::new(),
            resource_pattern_type: PATTERN_TYPE_LITERAL,
            principal: String::new(),
            host: String::new(),
            operation: 0,
            permission_type: 0,
        }
    }
}

impl CreateAclsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::CreateAcls.is_flexible(version);
        let creations = r.array(flexible, "creations", |r| {
            let creation = AclCreation {
                resource_type: r.i8()?,
                resource_name: r.string(flexible)?,
                resource_pattern_type: r.i8()?,
                principal: r.string(flexible)?,
                host: r.string(flexible)?,
                operation: r.i8()?,
                permission_type: r.i8()?,
            };
            r.tagged_fields(flexible)?;
            Ok(creation)
        })?;
        r.tagged_fields(flexible)?;
        Ok(CreateAclsRequest { creations })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateAclsResponse {
    pub throttle_time_ms: i32,
    /// One per creation, in the request's order.
    pub results: Vec<AclCreationResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclCreationResult {
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl CreateAclsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::CreateAcls.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.results.len());
        for result in &self.results {
            w.i16(result.error_code);
            w.nullable_string(flexible, result.error_message.as_deref());
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteAclsRequest {
    pub filters: Vec<AclFilter>,
}

impl DeleteAclsRequest {
    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {
        let flexible = ApiKey::DeleteAcls.is_flexible(version);
        let filters = r.array(flexible, "filters", |r| {
            let filter = AclFilter::decode(r, flexible)?;
            r.tagged_fields(flexible)?;
            Ok(filter)
        })?;
        r.tagged_fields(flexible)?;
        Ok(DeleteAclsRequest { filters })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteAclsResponse {
    pub throttle_time_ms: i32,
    /// One per filter, in the request's order.
    pub filter_results: Vec<DeleteAclsFilterResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteAclsFilterResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub matching_acls: Vec<DeleteAclsMatchingAcl>,
}

/// An ACL the filter matched, and whether deleting it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteAclsMatchingAcl {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

impl Default for DeleteAclsMatchingAcl {
    fn default() -> Self {
        DeleteAclsMatchingAcl {
            error_code: 0,
            error_message: None,
            resource_type: 0,
            resource_name: String::new(),
            pattern_type: PATTERN_TYPE_LITERAL,
            principal: String::new(),
            host: String::new(),
            operation: 0,
            permission_type: 0,
        }
    }
}

impl DeleteAclsResponse {
    pub fn encode(&self, w: &mut Writer, version: i16) {
        let flexible = ApiKey::DeleteAcls.is_flexible(version);
        w.i32(self.throttle_time_ms);
        w.array_len(flexible, self.filter_results.len());
        for result in &self.filter_results {
            w.i16(result.error_code);
            w.nullable_string(flexible, result.error_message.as_deref());
            w.array_len(flexible, result.matching_acls.len());
            for acl in &result.matching_acls {
                w.i16(acl.error_code);
                w.nullable_string(flexible, acl.error_message.as_deref());
                w.i8(acl.resource_type);
                w.string(flexible, &acl.resource_name);
                w.i8(acl.pattern_type);
                w.string(flexible, &acl.principal);
                w.string(flexible, &acl.host);
                w.i8(acl.operation);
                w.i8(acl.permission_type);
                w.no_tagged_fields(flexible);
            }
            w.no_tagged_fields(flexible);
        }
        w.no_tagged_fields(flexible);
    }
}
