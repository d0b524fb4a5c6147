//! Sparse per-segment indexes: offset -> file position, and timestamp -> offset.
//!
//! Both live in memory (an entry per `index_interval_bytes` of log, so about 0.3% of the data)
//! and are written to `.index` / `.timeindex` files when a segment is sealed. Entry formats are
//! in `log/FORMAT.md`.

/// Bytes of one offset index entry: relative offset u32, position u32.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of one time index entry: timestamp i64, relative offset u32.
pub const TIME_ENTRY_BYTES: usize = 12;

/// Why an index file was not usable; the segment is then re-indexed from its data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("index file length {length} is not a multiple of the {entry} byte entry")]
    PartialEntry { length: usize, entry: usize },
    #[error("index entry {entry} is out of order")]
    OutOfOrder { entry: usize },
    #[error("index entry {entry} points past the end of the segment")]
    PastEnd { entry: usize },
}

/// Maps the base offset of some batches (relative to the segment's base) to their file position.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some(&(o, p)) = self.entries.last() {
            assert!(relative_offset > o && position > p, "offset index entries must increase");
        }
        self.entries.push((relative_offset, position));
    }

    /// Position of the last indexed batch whose base offset is at most `relative_offset`:
    /// the place to start scanning for that offset.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        self.lookup_entry(relative_offset).1
    }

    /// The entry `lookup` uses: (relative offset, position) of the last indexed batch based at
    /// or below `relative_offset`, or (0, 0), the segment's first batch.
    pub fn lookup_entry(&self, relative_offset: u32) -> (u32, u32) {
        let i = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        if i == 0 {
            (0, 0)
        } else {
            self.entries[i - 1]
        }
    }

    /// (relative offset, position) of the last indexed batch starting at or before byte
    /// `position`, or (0, 0), the segment's first batch.
    pub fn lookup_position(&self, position: u32) -> (u32, u32) {
        let i = self.entries.partition_point(|&(_, p)| p <= position);
        if i == 0 {
            (0, 0)
        } else {
            self.entries[i - 1]
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps the first `len` entries (a tail taken back).
    pub fn truncate(&mut self, len: usize) {
        self.entries.truncate(len);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for &(o, p) in &self.entries {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Decodes and checks an index file of a segment of `segment_bytes` bytes.
    pub fn decode(bytes: &[u8], segment_bytes: u64) -> Result<Self, IndexError> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES) {
            return Err(IndexError::PartialEntry { length: bytes.len(), entry: OFFSET_ENTRY_BYTES });
        }
        let mut index = OffsetIndex::default();
        for (entry, chunk) in bytes.chunks_exact(OFFSET_ENTRY_BYTES).enumerate() {
            let o = u32::from_be_bytes(chunk[0..4].try_into().expect("4 bytes"));
            let p = u32::from_be_bytes(chunk[4..8].try_into().expect("4 bytes"));
            if let Some(&(lo, lp)) = index.entries.last() {
                if o <= lo || p <= lp {
                    return Err(IndexError::OutOfOrder { entry });
                }
            }
            if u64::from(p) >= segment_bytes {
                return Err(IndexError::PastEnd { entry });
            }
            index.entries.push((o, p));
        }
        Ok(index)
    }
}

/// Maps the largest timestamp seen so far in a segment to the relative offset of the batch
/// that carried it. Timestamps in the index only increase.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Adds an entry if `timestamp` is above the last one.
    pub fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(&(t, o)) if timestamp <= t || relative_offset <= o => {}
            _ => self.entries.push((timestamp, relative_offset)),
        }
    }

    /// Relative offset of a batch at or before the first batch whose max timestamp is at
    /// least `timestamp`: every batch before it has a smaller max timestamp.
    pub fn lookup(&self, timestamp: i64) -> u32 {
        let i = self.entries.partition_point(|&(t, _)| t < timestamp);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps the first `len` entries (a tail taken back).
    pub fn truncate(&mut self, len: usize) {
        self.entries.truncate(len);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for &(t, o) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    /// Decodes and checks a time index file of a segment spanning `offset_span` offsets.
    pub fn decode(bytes: &[u8], offset_span: u64) -> Result<Self, IndexError> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_BYTES) {
            return Err(IndexError::PartialEntry { length: bytes.len(), entry: TIME_ENTRY_BYTES });
        }
        let mut index = TimeIndex::default();
        for (entry, chunk) in bytes.chunks_exact(TIME_ENTRY_BYTES).enumerate() {
            let t = i64::from_be_bytes(chunk[0..8].try_into().expect("8 bytes"));
            let o = u32::from_be_bytes(chunk[8..12].try_into().expect("4 bytes"));
            if let Some(&(lt, lo)) = index.entries.last() {
                if t <= lt || o <= lo {
                    return Err(IndexError::OutOfOrder { entry });
                }
            }
            if u64::from(o) >= offset_span {
                return Err(IndexError::PastEnd { entry });
            }
            index.entries.push((t, o));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_the_scan_start() {
        let mut i = OffsetIndex::default();
        assert_eq!(i.lookup(5), 0);
        i.push(10, 4096);
        i.push(20, 8192);
        for (target, expected) in [(0, 0), (9, 0), (10, 4096), (19, 4096), (20, 8192), (1000, 8192)] {
            assert_eq!(i.lookup(target), expected, "lookup({target})");
        }
        let decoded = OffsetIndex::decode(&i.encode(), 10_000).unwrap();
        assert_eq!(decoded, i);
    }

    #[test]
    fn bad_offset_index_files_are_refused() {
        let mut i = OffsetIndex::default();
        i.push(1, 100);
        i.push(2, 200);
        let bytes = i.encode();
        assert_eq!(OffsetIndex::decode(&bytes[..9], 1000), Err(IndexError::PartialEntry { length: 9, entry: 8 }));
        assert_eq!(OffsetIndex::decode(&bytes, 150), Err(IndexError::PastEnd { entry: 1 }));
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert_eq!(OffsetIndex::decode(&swapped, 1000), Err(IndexError::OutOfOrder { entry: 1 }));
    }

    #[test]
    fn time_lookup_starts_before_the_first_match() {
        let mut t = TimeIndex::default();
        t.maybe_push(100, 0);
        t.maybe_push(90, 3); // not above the last timestamp: ignored
        t.maybe_push(200, 5);
        t.maybe_push(300, 9);
        for (target, expected) in [(50, 0), (100, 0), (150, 0), (200, 0), (201, 5), (300, 5), (301, 9)] {
            assert_eq!(t.lookup(target), expected, "lookup({target})");
        }
        assert_eq!(TimeIndex::decode(&t.encode(), 10).unwrap(), t);
        assert_eq!(TimeIndex::decode(&t.encode(), 9), Err(IndexError::PastEnd { entry: 2 }));
    }
}
