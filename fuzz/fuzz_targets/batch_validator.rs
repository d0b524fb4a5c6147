//! Fuzz target for the record batch validator: `validate_batch`, `validate_records` and
//! `record_timestamps` must never panic, and what they accept must hold up when checked again.
//!
//! Input layout:
//! - byte 0, flags: bit 0 selects `Origin::Log` (else `Origin::Client`); bit 1 sets
//!   `batch_bytes_max` to `usize::MAX`, as segment recovery does (else bytes 1..5 give it);
//!   bit 2 rewrites the CRC of every batch the input declares before validating it.
//! - bytes 1..5: `batch_bytes_max` as a big-endian u32.
//! - the rest: the bytes handed to the validator, a Kafka `RECORDS` field.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringtail_log::batch::{
    build, record_timestamps, validate_batch, validate_records, BATCH_HEADER_BYTES, BATCH_LENGTH_MIN,
    LOG_OVERHEAD_BYTES,
};
use ringtail_log::{BatchError, BatchHeader, Compression, Origin};

const ORIGIN_LOG_FLAG: u8 = 0x01;
const UNLIMITED_FLAG: u8 = 0x02;
const RESEAL_FLAG: u8 = 0x04;

/// Byte offset of the CRC in the batch header; the CRC covers everything after it.
const CRC_AT: usize = 17;
/// Attribute bit that says every record carries the batch's maxTimestamp (LogAppendTime).
const TIMESTAMP_TYPE_BIT: i16 = 0x08;

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, b1, b2, b3, b4], records)) = data.split_first_chunk::<5>() else { return };
    let origin = if flags & ORIGIN_LOG_FLAG != 0 { Origin::Log } else { Origin::Client };
    let batch_bytes_max =
        if flags & UNLIMITED_FLAG != 0 { usize::MAX } else { u32::from_be_bytes([b1, b2, b3, b4]) as usize };

    // A random CRC-32C almost never matches, so without help the fuzzer would spend its time
    // in front of the CRC check and never reach the field checks behind it.
    let mut resealed;
    let records = if flags & RESEAL_FLAG != 0 {
        resealed = records.to_vec();
        reseal_chain(&mut resealed);
        &resealed[..]
    } else {
        records
    };

    match validate_batch(records, batch_bytes_max, origin) {
        Ok(header) => check_accepted(records, &header, batch_bytes_max, origin),
        Err(error) => check_refused(records, &error, batch_bytes_max),
    }

    if let Ok(batches) = validate_records(records, batch_bytes_max, origin) {
        assert!(!batches.is_empty(), "validate_records accepted a request without batches");
        let mut at = 0;
        for (header, range) in &batches {
            // The batches must tile the field exactly: no gap, no overlap, no trailing bytes.
            assert_eq!(range.start, at, "batch ranges are not contiguous");
            assert_eq!(range.len(), header.size(), "batch range and header size disagree");
            at = range.end;
            let alone = &records[range.clone()];
            assert_eq!(validate_batch(alone, batch_bytes_max, origin).as_ref(), Ok(header));
            check_accepted(alone, header, batch_bytes_max, origin);
        }
        assert_eq!(at, records.len(), "validate_records left bytes unaccounted for");
    }
});

/// Checks the invariants of a batch that `validate_batch(buf, ..)` accepted with `header`.
fn check_accepted(buf: &[u8], header: &BatchHeader, batch_bytes_max: usize, origin: Origin) {
    let size = header.size();
    assert!(size >= BATCH_HEADER_BYTES, "accepted batch of {size} bytes is shorter than its header");
    assert!(size <= buf.len(), "accepted batch of {size} bytes runs past the {} bytes given", buf.len());
    assert!(size <= batch_bytes_max, "accepted batch of {size} bytes is over the {batch_bytes_max} byte limit");
    assert_eq!(BatchHeader::parse(buf).as_ref(), Ok(header), "validated header differs from the parsed one");

    // Validation depends on nothing but the batch's own bytes, so it gives the same answer on
    // the same slice and on the batch cut out of it.
    assert_eq!(validate_batch(buf, batch_bytes_max, origin).as_ref(), Ok(header));
    assert_eq!(validate_batch(&buf[..size], batch_bytes_max, origin).as_ref(), Ok(header));
    // The rules for data read back from the log are a relaxation of the rules for producers.
    if origin == Origin::Client {
        assert_eq!(validate_batch(buf, batch_bytes_max, Origin::Log).as_ref(), Ok(header));
    }

    // Recompute the CRC over a copy; `reseal` writes CRC-32C of bytes 21..size into bytes 17..21.
    let mut copy = buf[..size].to_vec();
    build::reseal(&mut copy);
    let crc = u32::from_be_bytes([copy[CRC_AT], copy[CRC_AT + 1], copy[CRC_AT + 2], copy[CRC_AT + 3]]);
    assert_eq!(crc, header.crc, "accepted batch whose CRC does not match its bytes");

    let timestamps = record_timestamps(buf, header);
    assert_eq!(timestamps, record_timestamps(&buf[..size], header), "record_timestamps read past the batch");
    if header.compression() != Compression::None {
        assert_eq!(timestamps, None, "record_timestamps parsed the records of a compressed batch");
    }
    if let Some(records) = timestamps {
        assert_eq!(records.len(), header.record_count as usize, "record_timestamps lost or invented records");
        if header.attributes & TIMESTAMP_TYPE_BIT != 0 {
            assert!(
                records.iter().all(|&(_, t)| t == header.max_timestamp),
                "a LogAppendTime batch must report maxTimestamp for every record"
            );
        }
    }
}

/// Checks that a refusal describes the input it refused.
fn check_refused(buf: &[u8], error: &BatchError, batch_bytes_max: usize) {
    match *error {
        BatchError::Truncated { available, needed } => {
            assert_eq!(available, buf.len(), "Truncated reports the wrong byte count");
            assert!(needed > available, "Truncated although {needed} bytes were needed and {available} present");
        }
        BatchError::TooLarge { size, max } => {
            assert_eq!(max, batch_bytes_max, "TooLarge reports the wrong limit");
            assert!(size > max, "TooLarge although {size} bytes are within the {max} byte limit");
        }
        BatchError::LengthTooSmall { length } => assert!(length < BATCH_LENGTH_MIN),
        BatchError::UnsupportedMagic { magic } => assert_ne!(magic, 2),
        BatchError::CrcMismatch { expected, actual } => assert_ne!(expected, actual),
        BatchError::InvalidTimestamp { base_timestamp, max_timestamp } => assert!(max_timestamp < base_timestamp),
        BatchError::TimestampOutOfRange { .. } => panic!("validation does not read the clock"),
        BatchError::Decompression { .. } => panic!("validation does not decompress"),
        BatchError::Invalid { .. } => {}
    }
}

/// Rewrites the CRC of each batch `validate_records` would visit, so that the fuzzer's other
/// mutations get tested instead of being stopped by the checksum. A batch declared longer than
/// the input gets the CRC of the bytes present.
fn reseal_chain(buf: &mut [u8]) {
    let mut at = 0;
    while let Ok(header) = BatchHeader::parse(&buf[at..]) {
        if header.batch_length < BATCH_LENGTH_MIN {
            break;
        }
        let end = at.saturating_add(header.batch_length as usize + LOG_OVERHEAD_BYTES).min(buf.len());
        build::reseal(&mut buf[at..end]);
        at = end;
    }
}
