//! Our codecs against Kafka's generated schemas (the `kafka-protocol` crate, test-only): for
//! every supported version, requests encoded by the oracle decode to the same fields with our
//! decoders, and responses we encode decode to the same fields with the oracle.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use ringtail_net::header::ApiKey;
use ringtail_net::messages::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use ringtail_net::{Reader, Writer};

/// Encodes `msg` with the oracle at `version`.
fn oracle_encode<M: Encodable>(msg: &M, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version).expect("oracle encodes");
    buf.freeze()
}

/// Decodes our encoding with the oracle, checking it consumed every byte.
fn oracle_decode<M: Decodable>(bytes: Bytes, version: i16) -> M {
    let mut b = bytes;
    let msg = M::decode(&mut b, version).expect("oracle decodes our encoding");
    assert!(b.is_empty(), "{} bytes left after the oracle decoded our encoding", b.len());
    msg
}

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (lo, hi) = key.versions();
    lo..=hi
}

#[test]
fn api_versions() {
    for v in versions(ApiKey::ApiVersions) {
        let req = kp::ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kcat"))
            .with_client_software_version(StrBytes::from_static_str("1.7.1"));
        let mut r = Reader::new(oracle_encode(&req, v));
        let ours = ApiVersionsRequest::decode(&mut r, v).unwrap();
        assert_eq!(r.remaining(), 0, "v{v}");
        if v >= 3 {
            assert_eq!(ours.client_software_name.as_deref(), Some("kcat"));
        }

        let resp = ApiVersionsResponse::supported(0);
        let mut w = Writer::new();
        resp.encode(&mut w, v);
        let theirs: kp::ApiVersionsResponse = oracle_decode(w.buf.freeze(), v);
        assert_eq!(theirs.error_code, 0);
        assert_eq!(theirs.api_keys.len(), resp.api_keys.len(), "v{v}");
        for (a, b) in theirs.api_keys.iter().zip(&resp.api_keys) {
            assert_eq!((a.api_key, a.min_version, a.max_version), (b.api_key, b.min_version, b.max_version));
        }
    }
}
