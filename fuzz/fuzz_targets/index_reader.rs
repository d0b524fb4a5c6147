//! Fuzz target for the segment index readers: `OffsetIndex::decode` and `TimeIndex::decode` must
//! never panic, and an index they accept must re-encode to the same file and answer lookups with
//! entries it holds.
//!
//! Input layout:
//! - bytes 0..8: the decode bound as a big-endian u64, used as `segment_bytes` for the offset
//!   index and as `offset_span` for the time index.
//! - bytes 8..12: a relative offset to look up in the offset index, big-endian u32.
//! - bytes 12..20: a timestamp to look up in the time index, big-endian i64.
//! - the rest: the index file, handed to both decoders (a length that is a multiple of 24 is a
//!   whole number of entries for both).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringtail_log::index::{IndexError, OffsetIndex, TimeIndex, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};

const PARAMETER_BYTES: usize = 20;

fuzz_target!(|data: &[u8]| {
    let Some((parameters, file)) = data.split_first_chunk::<PARAMETER_BYTES>() else { return };
    let bound = u64::from_be_bytes(parameters[0..8].try_into().expect("8 bytes"));
    let offset_target = u32::from_be_bytes(parameters[8..12].try_into().expect("4 bytes"));
    let time_target = i64::from_be_bytes(parameters[12..20].try_into().expect("8 bytes"));

    check_offset_index(file, bound, offset_target);
    check_time_index(file, bound, time_target);
});

fn check_offset_index(file: &[u8], segment_bytes: u64, target: u32) {
    let entries: Vec<(u32, u32)> = file
        .chunks_exact(OFFSET_ENTRY_BYTES)
        .map(|c| {
            (
                u32::from_be_bytes(c[0..4].try_into().expect("4 bytes")),
                u32::from_be_bytes(c[4..8].try_into().expect("4 bytes")),
            )
        })
        .collect();
    let index = match OffsetIndex::decode(file, segment_bytes) {
        Ok(index) => index,
        Err(error) => {
            return check_refused(file, &error, OFFSET_ENTRY_BYTES, |prefix| {
                OffsetIndex::decode(prefix, segment_bytes).map(drop)
            })
        }
    };
    assert_eq!(index.encode(), file, "decoded offset index does not re-encode to its file");
    assert_eq!(index.len(), entries.len());
    // A larger segment can only make more positions legal.
    assert_eq!(OffsetIndex::decode(file, u64::MAX).as_ref(), Ok(&index));

    let lookup = |relative_offset: u32| {
        let position = index.lookup(relative_offset);
        // Readers start scanning at the entry's position assuming its batch is based at the
        // entry's offset, so the two must come from the same entry and never lie past the target.
        let (entry_offset, entry_position) = index.lookup_entry(relative_offset);
        assert_eq!(entry_position, position, "lookup and lookup_entry({relative_offset}) disagree");
        assert!(
            entry_offset <= relative_offset,
            "lookup_entry({relative_offset}) returned an entry based after the target"
        );
        assert!(
            (entry_offset, entry_position) == (0, 0) || entries.binary_search(&(entry_offset, entry_position)).is_ok(),
            "lookup_entry({relative_offset}) = ({entry_offset}, {entry_position}) is not an entry of the index"
        );
        assert!(
            position == 0 || u64::from(position) < segment_bytes,
            "lookup({relative_offset}) = {position} is past the end of a {segment_bytes} byte segment"
        );
        position
    };
    // The model: the position of the last entry at or below the target, else the segment start.
    let model =
        |relative_offset: u32| entries.iter().rev().find(|&&(o, _)| o <= relative_offset).map_or(0, |&(_, p)| p);
    for t in [target, 0, u32::MAX] {
        assert_eq!(lookup(t), model(t), "offset lookup({t}) disagrees with a linear scan");
    }
    // Offsets strictly increase, so each entry is found at its own offset, and just below it
    // the previous entry (or the segment start) is.
    for (k, &(o, p)) in entries.iter().enumerate() {
        assert_eq!(lookup(o), p, "offset lookup of indexed offset {o} missed its entry");
        if let Some(below) = o.checked_sub(1) {
            let previous = if k == 0 { 0 } else { entries[k - 1].1 };
            assert_eq!(lookup(below), previous, "offset lookup({below}) did not stop before entry {k}");
        }
    }
}

fn check_time_index(file: &[u8], offset_span: u64, target: i64) {
    let entries: Vec<(i64, u32)> = file
        .chunks_exact(TIME_ENTRY_BYTES)
        .map(|c| {
            (
                i64::from_be_bytes(c[0..8].try_into().expect("8 bytes")),
                u32::from_be_bytes(c[8..12].try_into().expect("4 bytes")),
            )
        })
        .collect();
    let index = match TimeIndex::decode(file, offset_span) {
        Ok(index) => index,
        Err(error) => {
            return check_refused(file, &error, TIME_ENTRY_BYTES, |prefix| {
                TimeIndex::decode(prefix, offset_span).map(drop)
            })
        }
    };
    assert_eq!(index.encode(), file, "decoded time index does not re-encode to its file");
    assert_eq!(index.last(), entries.last().copied());
    assert_eq!(TimeIndex::decode(file, u64::MAX).as_ref(), Ok(&index));

    let lookup = |timestamp: i64| {
        let relative_offset = index.lookup(timestamp);
        assert!(
            relative_offset == 0 || u64::from(relative_offset) < offset_span,
            "lookup({timestamp}) = {relative_offset} is outside a segment of {offset_span} offsets"
        );
        relative_offset
    };
    // The model: the offset of the last entry strictly below the target, else the segment start.
    let model = |timestamp: i64| entries.iter().rev().find(|&&(t, _)| t < timestamp).map_or(0, |&(_, o)| o);
    for t in [target, i64::MIN, i64::MAX, 0, -1] {
        assert_eq!(lookup(t), model(t), "time lookup({t}) disagrees with a linear scan");
    }
    // Timestamps strictly increase, so an entry's own timestamp stops the search just before it
    // and the next timestamp up includes it.
    for (k, &(t, o)) in entries.iter().enumerate() {
        let previous = if k == 0 { 0 } else { entries[k - 1].1 };
        assert_eq!(lookup(t), previous, "time lookup of indexed timestamp {t} did not stop before entry {k}");
        if let Some(above) = t.checked_add(1) {
            assert_eq!(lookup(above), o, "time lookup({above}) missed entry {k}");
        }
    }
}

/// Checks that a refused index file was refused for a reason it has: a partial entry only when
/// the length is not whole entries, and otherwise at an entry that exists, with every entry
/// before it acceptable.
fn check_refused(
    file: &[u8],
    error: &IndexError,
    entry_bytes: usize,
    decode: impl Fn(&[u8]) -> Result<(), IndexError>,
) {
    let whole = file.len().is_multiple_of(entry_bytes);
    match *error {
        IndexError::PartialEntry { length, entry } => {
            assert!(!whole, "PartialEntry for a file of whole entries");
            assert_eq!((length, entry), (file.len(), entry_bytes));
        }
        IndexError::OutOfOrder { entry } | IndexError::PastEnd { entry } => {
            assert!(whole, "{error:?} for a file with a partial entry");
            assert!(entry < file.len() / entry_bytes, "{error:?} names an entry the file does not have");
            assert!(matches!(error, IndexError::PastEnd { .. }) || entry > 0, "the first entry cannot be out of order");
            assert_eq!(decode(&file[..entry * entry_bytes]), Ok(()), "{error:?} was not the first bad entry");
        }
    }
}
