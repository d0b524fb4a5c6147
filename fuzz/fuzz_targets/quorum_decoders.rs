//! Fuzz target for the controller quorum's decoders: its RPC frames (what arrives on the
//! controller listener, and the answers a controller reads), its snapshots (sent whole to a
//! follower), and the metadata records inside both. Whatever the bytes, a decoder returns a
//! value or an error: it never panics, and every count is bounded by the bytes left. A frame
//! that decodes encodes back to a frame that decodes to the same value.
//!
//! Brokers' frames on the same listener (`broker_wire`) too.
//!
//! Input layout: byte 0 picks the decoder (request, response, snapshot, metadata record,
//! broker request, broker response), the rest is its input.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ringtail_replication::metadata::MetadataRecord;
use ringtail_replication::quorum::broker_wire;
use ringtail_replication::quorum::state_machine::decode_snapshot;
use ringtail_replication::quorum::wire::{decode_request, decode_response, encode_request, encode_response};

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else { return };
    match which % 6 {
        0 => {
            if let Ok(request) = decode_request(input) {
                let again = encode_request(&request);
                assert!(decode_request(&again).is_ok(), "a decoded request encodes to one that decodes");
            }
        }
        1 => {
            if let Ok(response) = decode_response(input) {
                let again = encode_response(&response);
                assert!(decode_response(&again).is_ok(), "a decoded response encodes to one that decodes");
            }
        }
        2 => {
            let _ = decode_snapshot(input, Path::new("fuzz"));
        }
        3 => {
            if let Ok(request) = broker_wire::decode_request(input) {
                let again = broker_wire::encode_request(&request);
                assert_eq!(broker_wire::decode_request(&again).as_ref(), Ok(&request));
            }
        }
        4 => {
            if let Ok(response) = broker_wire::decode_response(input) {
                let again = broker_wire::encode_response(&response);
                assert_eq!(broker_wire::decode_response(&again).as_ref(), Ok(&response));
            }
        }
        _ => {
            if let Ok(record) = MetadataRecord::decode(input) {
                let mut again = Vec::new();
                record.encode(&mut again);
                assert_eq!(MetadataRecord::decode(&again).as_ref(), Ok(&record));
            }
        }
    }
});
