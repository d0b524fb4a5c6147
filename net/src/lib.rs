//! `ringtail-net`: the Kafka wire protocol. Framing, request headers, request decoders and
//! response encoders for the APIs Ringtail serves (`messages`), and request encoders and
//! response decoders for what Ringtail's own clients send (`client`), with every count and
//! length bounded by the bytes actually received. Knows nothing of storage.

pub mod chunk;
pub mod client;
pub mod codec;
pub mod error_code;
pub mod header;
pub mod messages;

pub use chunk::{Chunk, FileChunk};
pub use codec::{DecodeError, Reader, Writer};
pub use header::{ApiKey, RequestHeader};
