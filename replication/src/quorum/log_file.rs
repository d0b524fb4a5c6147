//! The quorum log file's format: its header, its framed records (one per change: vote, entry,
//! truncation, purge, committed id), the content they replay to, and the parse that tells a
//! torn last write (cut) from damage (refused). `storage.rs` writes and recovers the file.
//!
//! Layout: an 8-byte header (`RTQL`, version u16, zero u16), then records: length u32 (of what
//! follows the CRC), CRC-32C u32 (of what follows it), kind u8, body. Bodies use `codec.rs`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::codec::{self, DecodeError, Reader};
use super::limits::ENTRY_BYTES_MAX;
use super::types::{Entry, LogId, Vote};

pub const LOG_FILE: &str = "log";
pub(super) const LOG_MAGIC: &[u8; 4] = b"RTQL";
pub(super) const LOG_VERSION: u16 = 1;
pub(super) const HEADER_BYTES: usize = 8;
/// Length and CRC.
pub(super) const FRAME_HEADER_BYTES: usize = 8;
/// The largest record body: an entry and its kind byte.
pub(super) const FRAME_BODY_BYTES_MAX: usize = ENTRY_BYTES_MAX + 1;

const KIND_VOTE: u8 = 1;
const KIND_ENTRY: u8 = 2;
const KIND_TRUNCATE_AFTER: u8 = 3;
const KIND_PURGE: u8 = 4;
const KIND_COMMITTED: u8 = 5;

/// Why the quorum's files could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum QuorumStoreError {
    #[error("I/O error while {op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("{path} is damaged at byte {position}: {reason}; restore this controller's quorum directory from another controller or a backup")]
    Damaged { path: PathBuf, position: u64, reason: String },
    #[error("{path} is {bytes} bytes, more than the {max} a quorum log may be; it is not a quorum log, or its compaction failed")]
    TooLarge { path: PathBuf, bytes: u64, max: u64 },
}

impl From<QuorumStoreError> for io::Error {
    fn from(e: QuorumStoreError) -> io::Error {
        match e {
            QuorumStoreError::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

pub(super) fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> QuorumStoreError {
    let path = path.to_path_buf();
    move |source| QuorumStoreError::Io { op, path, source }
}

/// One change, as a record of the file.
pub(super) enum Change<'a> {
    Vote(&'a Vote),
    Entry(&'a Entry),
    TruncateAfter(Option<&'a LogId>),
    Purge(&'a LogId),
    Committed(Option<&'a LogId>),
}

/// Appends `change` as one framed record.
pub(super) fn frame(change: Change<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    match change {
        Change::Vote(v) => {
            out.push(KIND_VOTE);
            codec::put_vote(out, v);
        }
        Change::Entry(e) => {
            out.push(KIND_ENTRY);
            codec::put_entry(out, e);
        }
        Change::TruncateAfter(id) => {
            out.push(KIND_TRUNCATE_AFTER);
            codec::put_optional_log_id(out, id);
        }
        Change::Purge(id) => {
            out.push(KIND_PURGE);
            codec::put_log_id(out, id);
        }
        Change::Committed(id) => {
            out.push(KIND_COMMITTED);
            codec::put_optional_log_id(out, id);
        }
    }
    let body = start + FRAME_HEADER_BYTES;
    let length = out.len() - body;
    assert!(length <= FRAME_BODY_BYTES_MAX, "a quorum log record of {length} bytes");
    let crc = crc32c::crc32c(&out[body..]);
    out[start..start + 4].copy_from_slice(&(length as u32).to_be_bytes());
    out[start + 4..body].copy_from_slice(&crc.to_be_bytes());
}

/// The log as the records so far made it; in memory from open on.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct LogContent {
    pub(super) vote: Option<Vote>,
    pub(super) committed: Option<LogId>,
    pub(super) last_purged: Option<LogId>,
    /// Unpurged entries by index, with the bytes of their records.
    pub(super) entries: BTreeMap<u64, (Entry, u64)>,
    /// The bytes of the entries' records.
    entry_bytes: u64,
    /// Bytes of the records a compaction would write: the header, and the records of the
    /// vote, the committed id, the purge point and the entries.
    pub(super) live_bytes: u64,
}

pub(super) fn header() -> [u8; HEADER_BYTES] {
    let mut h = [0; HEADER_BYTES];
    h[0..4].copy_from_slice(LOG_MAGIC);
    h[4..6].copy_from_slice(&LOG_VERSION.to_be_bytes());
    h
}

/// The bytes of `change`'s record.
pub(super) fn framed_len(change: Change<'_>) -> u64 {
    let mut out = Vec::new();
    frame(change, &mut out);
    out.len() as u64
}

impl LogContent {
    pub(super) fn last_log_id(&self) -> Option<LogId> {
        self.entries.values().next_back().map(|(e, _)| e.log_id).or(self.last_purged)
    }

    /// Refuses entries that do not continue the log (the no-hole rule).
    fn check_continues(&self, index: u64) -> Result<(), String> {
        let last = match (self.entries.keys().next_back(), &self.last_purged) {
            (Some(last), _) => *last,
            (None, Some(purged)) => purged.index,
            (None, None) => return Ok(()),
        };
        match last.checked_add(1) {
            Some(expected) if expected == index => Ok(()),
            _ => Err(format!("entry {index} does not follow entry {last}")),
        }
    }

    /// Applies `change`, whose record is `record_bytes` long.
    pub(super) fn apply(&mut self, change: Change<'_>, record_bytes: u64) -> Result<(), String> {
        match change {
            Change::Vote(v) => self.vote = Some(*v),
            Change::Committed(id) => self.committed = id.copied(),
            Change::Entry(e) => {
                self.check_continues(e.log_id.index)?;
                self.entries.insert(e.log_id.index, (e.clone(), record_bytes));
                self.entry_bytes += record_bytes;
            }
            Change::TruncateAfter(id) => {
                let from = id.map_or(0, |id| id.index + 1);
                let cut = self.entries.split_off(&from);
                self.entry_bytes -= cut.values().map(|(_, b)| b).sum::<u64>();
            }
            Change::Purge(id) => {
                if self.last_purged.is_some_and(|p| p.index > id.index) {
                    return Err(format!("purge to {} after a purge to {:?}", id.index, self.last_purged));
                }
                let kept = self.entries.split_off(&(id.index + 1));
                self.entry_bytes -= self.entries.values().map(|(_, b)| b).sum::<u64>();
                self.entries = kept;
                self.last_purged = Some(*id);
            }
        }
        self.live_bytes = self.count_live_bytes();
        Ok(())
    }

    fn count_live_bytes(&self) -> u64 {
        let mut bytes = HEADER_BYTES as u64 + framed_len(Change::Committed(self.committed.as_ref()));
        bytes += self.vote.as_ref().map_or(0, |v| framed_len(Change::Vote(v)));
        bytes += self.last_purged.as_ref().map_or(0, |p| framed_len(Change::Purge(p)));
        bytes + self.entry_bytes
    }

    /// The whole file a compaction writes.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.live_bytes as usize);
        out.extend_from_slice(&header());
        if let Some(v) = &self.vote {
            frame(Change::Vote(v), &mut out);
        }
        if let Some(p) = &self.last_purged {
            frame(Change::Purge(p), &mut out);
        }
        for (e, _) in self.entries.values() {
            frame(Change::Entry(e), &mut out);
        }
        frame(Change::Committed(self.committed.as_ref()), &mut out);
        debug_assert_eq!(out.len() as u64, self.live_bytes);
        out
    }
}

/// What reading the log file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecovery {
    /// Records read.
    pub records: u64,
    /// Bytes of a torn last write, cut.
    pub torn_bytes: u64,
}

/// Parses a log file. Returns the content and the bytes of whole, valid records; anything
/// after them is a torn last write.
pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<(LogContent, u64, u64), QuorumStoreError> {
    let damaged = |position: usize, reason: String| QuorumStoreError::Damaged {
        path: path.to_path_buf(),
        position: position as u64,
        reason,
    };
    let mut content = LogContent::default();
    if bytes.len() < HEADER_BYTES || bytes.iter().all(|&b| b == 0) {
        if bytes.iter().all(|&b| b == 0) || header().starts_with(bytes) {
            // A new log, or its first write torn.
            content.live_bytes = content.count_live_bytes();
            return Ok((content, 0, 0));
        }
        return Err(damaged(0, "not a quorum log (too short for its header)".into()));
    }
    if &bytes[0..4] != LOG_MAGIC {
        return Err(damaged(0, "not a quorum log (bad magic)".into()));
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != LOG_VERSION {
        return Err(damaged(4, format!("version {version}; this build reads {LOG_VERSION}")));
    }
    let mut at = HEADER_BYTES;
    let mut records = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn_from_here = rest.len() < FRAME_HEADER_BYTES || rest.iter().all(|&b| b == 0);
        if torn_from_here {
            break;
        }
        let length = u32::from_be_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        if length > FRAME_BODY_BYTES_MAX {
            return Err(damaged(at, format!("a record of {length} bytes")));
        }
        let end = FRAME_HEADER_BYTES + length;
        if end > rest.len() {
            // Cut by the end of the file: the torn last write.
            break;
        }
        let crc = u32::from_be_bytes(rest[4..8].try_into().expect("4 bytes"));
        if crc32c::crc32c(&rest[FRAME_HEADER_BYTES..end]) != crc {
            if rest[end..].iter().all(|&b| b == 0) {
                break;
            }
            return Err(damaged(at, "a record fails its checksum and whole records follow".into()));
        }
        let body = &rest[FRAME_HEADER_BYTES..end];
        apply_record(&mut content, body, end as u64).map_err(|reason| damaged(at, reason))?;
        records += 1;
        at += end;
    }
    content.live_bytes = content.count_live_bytes();
    Ok((content, at as u64, records))
}

fn apply_record(content: &mut LogContent, body: &[u8], record_bytes: u64) -> Result<(), String> {
    let mut r = Reader::new(body);
    let decoded = (|| -> Result<_, DecodeError> {
        let kind = r.u8()?;
        let change = match kind {
            KIND_VOTE => Decoded::Vote(codec::vote(&mut r)?),
            KIND_ENTRY => Decoded::Entry(codec::entry(&mut r)?),
            KIND_TRUNCATE_AFTER => Decoded::TruncateAfter(codec::optional_log_id(&mut r)?),
            KIND_PURGE => Decoded::Purge(codec::log_id(&mut r)?),
            KIND_COMMITTED => Decoded::Committed(codec::optional_log_id(&mut r)?),
            other => return Err(DecodeError(format!("record kind {other}"))),
        };
        r.finish()?;
        Ok(change)
    })()
    .map_err(|DecodeError(e)| e)?;
    match &decoded {
        Decoded::Vote(v) => content.apply(Change::Vote(v), record_bytes),
        Decoded::Entry(e) => content.apply(Change::Entry(e), record_bytes),
        Decoded::TruncateAfter(id) => content.apply(Change::TruncateAfter(id.as_ref()), record_bytes),
        Decoded::Purge(id) => content.apply(Change::Purge(id), record_bytes),
        Decoded::Committed(id) => content.apply(Change::Committed(id.as_ref()), record_bytes),
    }
}

enum Decoded {
    Vote(Vote),
    Entry(Entry),
    TruncateAfter(Option<LogId>),
    Purge(LogId),
    Committed(Option<LogId>),
}

pub(super) fn clone_change<'a>(change: &Change<'a>) -> Change<'a> {
    match change {
        Change::Vote(v) => Change::Vote(v),
        Change::Entry(e) => Change::Entry(e),
        Change::TruncateAfter(id) => Change::TruncateAfter(*id),
        Change::Purge(id) => Change::Purge(id),
        Change::Committed(id) => Change::Committed(*id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::codec::tests::{batch_of, log_id_of, membership_of, sample_entries};
    use openraft::EntryPayload;

    fn file_of(changes: &[Change<'_>]) -> Vec<u8> {
        let mut out = header().to_vec();
        for c in changes {
            frame(clone_change(c), &mut out);
        }
        out
    }

    fn vote(term: u64) -> Vote {
        Vote { leader_id: super::super::types::LeaderId { term, voted_for: 1 }, committed: false }
    }

    #[test]
    fn records_replay_to_the_same_content_and_compaction_keeps_it() {
        let entries = sample_entries();
        let v = vote(3);
        let mut changes: Vec<Change<'_>> = vec![Change::Vote(&v)];
        changes.extend(entries[..4].iter().map(Change::Entry));
        let purge = log_id_of(1, 1);
        let after = log_id_of(1, 2);
        changes.push(Change::Purge(&purge));
        changes.push(Change::TruncateAfter(Some(&after)));
        changes.push(Change::Committed(Some(&after)));
        let bytes = file_of(&changes);
        let (content, valid, records) = parse(&bytes, Path::new("log")).unwrap();
        assert_eq!((valid, records), (bytes.len() as u64, changes.len() as u64));
        assert_eq!(content.vote, Some(v));
        assert_eq!(content.entries.keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(
            (content.last_purged, content.committed, content.last_log_id()),
            (Some(purge), Some(after), Some(after))
        );
        let compacted = content.encode();
        assert!(compacted.len() < bytes.len());
        let (again, _, _) = parse(&compacted, Path::new("log")).unwrap();
        assert_eq!(again, content);
    }

    #[test]
    fn a_torn_tail_is_cut_and_damage_before_the_end_refused() {
        let mut entries = sample_entries();
        entries.truncate(4);
        let changes: Vec<Change<'_>> = entries.iter().map(Change::Entry).collect();
        let bytes = file_of(&changes);
        let path = Path::new("log");
        let whole = parse(&bytes, path).unwrap();
        for cut in HEADER_BYTES..bytes.len() {
            let (content, valid, _) = parse(&bytes[..cut], path).unwrap();
            assert!(valid <= cut as u64 && content.entries.len() < entries.len(), "cut at {cut}");
            // What survives is a prefix of the log.
            assert!(content.entries.keys().zip(whole.0.entries.keys()).all(|(a, b)| a == b));
        }
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(parse(&zeros, path).unwrap().1, bytes.len() as u64, "a zero tail is no record");
        let mut flipped = bytes.clone();
        flipped[HEADER_BYTES + FRAME_HEADER_BYTES + 3] ^= 1;
        assert!(matches!(parse(&flipped, path), Err(QuorumStoreError::Damaged { .. })), "damage in the first record");
        let mut last = bytes.clone();
        let n = last.len();
        last[n - 1] ^= 1;
        assert_eq!(
            parse(&last, path).unwrap().0.entries.len(),
            entries.len() - 1,
            "damage in the last is a torn write"
        );
        let mut gap = file_of(&changes[..1]);
        frame(clone_change(&changes[2]), &mut gap);
        assert!(matches!(parse(&gap, path), Err(QuorumStoreError::Damaged { .. })), "a hole in the entries");
    }

    #[test]
    fn entries_must_continue_the_log() {
        let mut content = LogContent::default();
        let e = |i| Entry { log_id: log_id_of(1, i), payload: EntryPayload::Normal(batch_of(1, 1)) };
        content.apply(Change::Entry(&e(5)), 0).unwrap();
        assert!(content.apply(Change::Entry(&e(7)), 0).is_err());
        content.apply(Change::Purge(&log_id_of(1, 9)), 0).unwrap();
        assert!(content.entries.is_empty());
        assert!(content.apply(Change::Entry(&e(6)), 0).is_err());
        content.apply(Change::Entry(&e(10)), 0).unwrap();
        let m = Entry { log_id: log_id_of(2, 11), payload: EntryPayload::Membership(membership_of(&[1])) };
        content.apply(Change::Entry(&m), 0).unwrap();
        assert_eq!(content.last_log_id(), Some(log_id_of(2, 11)));
    }
}
