//! `ringtail-net`: the Kafka wire protocol. Framing, request headers, request decoders and
//! response encoders for the APIs Ringtail serves, with every count and length bounded by the
//! bytes actually received. Knows nothing of storage.

pub mod codec;
pub mod error_code;
pub mod header;
pub mod messages;

pub use codec::{DecodeError, Reader, Writer};
pub use header::{ApiKey, RequestHeader};
