//! The client half of the Kafka wire: request encoders and bounded response decoders for the
//! APIs Ringtail's own clients speak (`ringtail group`, `ringtail-bench`, and followers fetching
//! from their leaders), the request header and framing, and the versions each API is spoken at.
//!
//! `messages/` holds the other direction of the same APIs (request decoders, response encoders).
//! Where a message's struct there has the shape a client needs, the missing direction is added
//! to it here, in an `impl` block of this module, so each message has one type; each module
//! re-exports the types it extends. Types of their own exist only where the server's would lose
//! what a client reads (a Fetch response's records as one slice of the frame, its aborted
//! transactions).
//!
//! Response decoders follow the rules of the request decoders: every count and length goes
//! through `Reader`'s bounds, byte fields are `Bytes` slices of the frame, and unknown tagged
//! fields are skipped. Versions are this module's own (`ClientApi`), independent of what the
//! broker serves and advertises (`header::ApiKey`).

pub mod api_versions;
pub mod cluster;
pub mod cluster_ops;
pub mod consumer_protocol;
pub mod create_topics;
pub mod fetch;
pub mod groups;
pub mod init_producer_id;
pub mod leader_hints;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
mod versions;

use bytes::Bytes;

pub use versions::ClientApi;

use crate::codec::{DecodeError, Reader, Writer};

/// A request a client sends: the API it belongs to, its encoder, and the decoder of the response
/// that answers it. Implemented by every request of this module.
pub trait ClientRequest {
    const API: ClientApi;
    type Response;

    /// Writes the request body (after the header) at `version`.
    fn encode_request(&self, w: &mut Writer, version: i16);

    /// Reads the response body (after the header) at `version`.
    fn decode_response(r: &mut Reader, version: i16) -> Result<Self::Response, DecodeError>;
}

/// Implements `ClientRequest` with the inherent `encode` of the request and `decode` of the
/// response.
macro_rules! client_request {
    ($request:ty, $api:expr, $response:ty) => {
        impl $crate::client::ClientRequest for $request {
            const API: $crate::client::ClientApi = $api;
            type Response = $response;

            fn encode_request(&self, w: &mut $crate::codec::Writer, version: i16) {
                <$request>::encode(self, w, version)
            }

            fn decode_response(
                r: &mut $crate::codec::Reader,
                version: i16,
            ) -> Result<$response, $crate::codec::DecodeError> {
                <$response>::decode(r, version)
            }
        }
    };
}
pub(crate) use client_request;

/// Largest request frame a client writes (Kafka's `max.request.size` is far below it): the size
/// prefix is an i32.
const REQUEST_FRAME_BYTES_MAX: usize = i32::MAX as usize;

/// Writes a request header: version 1 (API key, version, correlation id, client id) or, for a
/// flexible version, version 2 (the same with tagged fields, none written). The client id is a
/// classic nullable string in both.
pub fn write_request_header(
    w: &mut Writer,
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    flexible: bool,
) {
    w.i16(api_key);
    w.i16(api_version);
    w.i32(correlation_id);
    w.nullable_string(false, client_id);
    w.no_tagged_fields(flexible);
}

/// A whole request frame: the size prefix, the header, then what `body` writes.
pub fn request_frame_with(
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    flexible: bool,
    body: impl FnOnce(&mut Writer),
) -> Bytes {
    let mut w = Writer::new();
    w.i32(0); // The size, filled in below.
    write_request_header(&mut w, api_key, api_version, correlation_id, client_id, flexible);
    body(&mut w);
    let size = w.buf.len() - 4;
    assert!(size <= REQUEST_FRAME_BYTES_MAX, "a request frame of {size} bytes cannot be sent");
    w.buf[0..4].copy_from_slice(&(size as u32).to_be_bytes());
    w.buf.freeze()
}

/// The frame of `request` at `version`, which must be one of its API's versions.
pub fn request_frame<Q: ClientRequest>(
    request: &Q,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> Bytes {
    let api = Q::API;
    assert!(api.supports(version), "{api:?} v{version} is not a version this client speaks");
    request_frame_with(api.key(), version, correlation_id, client_id, api.is_flexible(version), |w| {
        request.encode_request(w, version)
    })
}

/// Reads the response header of `api` at `version` from a response frame (without its size
/// prefix): the correlation id, and a reader over the body.
pub fn read_response_header(frame: Bytes, api: ClientApi, version: i16) -> Result<(i32, Reader), DecodeError> {
    let mut r = Reader::new(frame);
    let correlation_id = r.i32()?;
    r.tagged_fields(api.response_header_has_tagged_fields(version))?;
    Ok((correlation_id, r))
}

/// Decodes the response to a `Q` sent at `version` from its frame (without the size prefix):
/// the correlation id and the response, which must take every byte of the frame.
pub fn decode_response<Q: ClientRequest>(frame: Bytes, version: i16) -> Result<(i32, Q::Response), DecodeError> {
    let (correlation_id, mut r) = read_response_header(frame, Q::API, version)?;
    let response = Q::decode_response(&mut r, version)?;
    if r.remaining() != 0 {
        return Err(DecodeError::Invalid { what: "response", reason: "bytes left over after the response" });
    }
    Ok((correlation_id, response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::metadata::MetadataRequest;
    use crate::header::decode_frame;

    #[test]
    fn request_frames_carry_their_header() {
        let request = MetadataRequest { topics: None, allow_auto_topic_creation: true, ..MetadataRequest::default() };
        for (version, flexible) in [(8, false), (12, true)] {
            let frame = request_frame(&request, version, 77, Some("ringtail-test"));
            let size = u32::from_be_bytes(frame[0..4].try_into().unwrap()) as usize;
            assert_eq!(size, frame.len() - 4);
            let (header, mut body) = decode_frame(frame.slice(4..)).unwrap();
            assert_eq!((header.api_key, header.api_version, header.correlation_id), (3, version, 77));
            assert_eq!(header.client_id.as_deref(), Some("ringtail-test"));
            let decoded = MetadataRequest::decode(&mut body, version).unwrap();
            assert_eq!((decoded, body.remaining()), (request.clone(), 0), "v{version} flexible {flexible}");
        }
    }

    #[test]
    fn responses_must_take_the_whole_frame() {
        use crate::messages::init_producer_id::InitProducerIdRequest;
        let mut w = Writer::new();
        w.i32(5); // correlation id
        w.no_tagged_fields(true); // response header v1
        w.i32(0);
        w.i16(0);
        w.i64(4000);
        w.i16(1);
        w.no_tagged_fields(true);
        let frame = w.buf.freeze();
        let (correlation_id, response) = decode_response::<InitProducerIdRequest>(frame.clone(), 2).unwrap();
        assert_eq!((correlation_id, response.producer_id, response.producer_epoch), (5, 4000, 1));
        let longer = Bytes::from([&frame[..], &[0]].concat());
        let e = decode_response::<InitProducerIdRequest>(longer, 2).unwrap_err();
        assert!(matches!(e, DecodeError::Invalid { what: "response", .. }), "{e}");
    }
}
