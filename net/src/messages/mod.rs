//! Request decoders and response encoders, one module per API, for the versions in
//! `header::VERSIONS`. Decoders use `codec::Reader`, which refuses hostile counts; encoders
//! write no tagged fields.

pub mod api_versions;
pub mod fetch;
pub mod produce;
