//! Kafka wire primitives with limits: every length and count read from the wire is checked
//! against the bytes that remain before anything is allocated, so no frame can make the process
//! allocate more than the frame itself.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Elements reserved up front when decoding an array.
const ARRAY_PREALLOCATE_MAX: usize = 64;

/// Why a request (or, in the client half, a response) could not be decoded. The connection that
/// sent it is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message is truncated: {needed} more bytes needed, {remaining} left")]
    Truncated { needed: usize, remaining: usize },
    #[error("{what} count {count} exceeds the {remaining} bytes left in the message")]
    CountTooLarge { what: &'static str, count: u64, remaining: usize },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: &'static str },
    #[error("{what} is not valid UTF-8")]
    Utf8 { what: &'static str },
}

/// Reads Kafka primitives from a request or response body. Byte fields come out as `Bytes`
/// slices of the frame, without copying.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated { needed: n, remaining: self.buf.len() });
        }
        Ok(())
    }

    pub fn i8(&mut self) -> Result<i8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_i8())
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.i8()? != 0)
    }

    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    pub fn uuid(&mut self) -> Result<[u8; 16], DecodeError> {
        self.need(16)?;
        let mut id = [0u8; 16];
        self.buf.copy_to_slice(&mut id);
        Ok(id)
    }

    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_f64())
    }

    /// Unsigned varint (at most 5 bytes, 32 bits).
    pub fn uvarint(&mut self) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.i8()? as u8;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == 4 && b > 0x0f {
                    break;
                }
                return Ok(value);
            }
        }
        Err(DecodeError::Invalid { what: "varint", reason: "longer than 32 bits" })
    }

    fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// A length-prefixed byte field: `None` when null. Compact (flexible versions): uvarint of
    /// length + 1; otherwise an i32 (`bytes`) or i16 (`string`) length.
    fn sized(&mut self, flexible: bool, wide: bool, what: &'static str) -> Result<Option<Bytes>, DecodeError> {
        let length: i64 = if flexible {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        if length < 0 {
            if length == -1 {
                return Ok(None);
            }
            return Err(DecodeError::Invalid { what, reason: "negative length" });
        }
        if length as u64 > self.buf.len() as u64 {
            return Err(DecodeError::CountTooLarge { what, count: length as u64, remaining: self.buf.len() });
        }
        self.take(length as usize).map(Some)
    }

    pub fn nullable_string(&mut self, flexible: bool) -> Result<Option<String>, DecodeError> {
        match self.sized(flexible, false, "string")? {
            None => Ok(None),
            Some(b) => String::from_utf8(b.to_vec()).map(Some).map_err(|_| DecodeError::Utf8 { what: "string" }),
        }
    }

    pub fn string(&mut self, flexible: bool) -> Result<String, DecodeError> {
        self.nullable_string(flexible)?
            .ok_or(DecodeError::Invalid { what: "string", reason: "null where a value is required" })
    }

    pub fn nullable_bytes(&mut self, flexible: bool) -> Result<Option<Bytes>, DecodeError> {
        self.sized(flexible, true, "bytes")
    }

    pub fn bytes(&mut self, flexible: bool) -> Result<Bytes, DecodeError> {
        Ok(self.nullable_bytes(flexible)?.unwrap_or_default())
    }

    /// An array count, `None` when null. Every element takes at least one byte, so a count above
    /// the bytes left is refused before any allocation.
    pub fn nullable_array_len(&mut self, flexible: bool, what: &'static str) -> Result<Option<usize>, DecodeError> {
        let count: i64 = if flexible { i64::from(self.uvarint()?) - 1 } else { i64::from(self.i32()?) };
        if count < 0 {
            if count == -1 {
                return Ok(None);
            }
            return Err(DecodeError::Invalid { what, reason: "negative array length" });
        }
        if count as u64 > self.buf.len() as u64 {
            return Err(DecodeError::CountTooLarge { what, count: count as u64, remaining: self.buf.len() });
        }
        Ok(Some(count as usize))
    }

    pub fn array_len(&mut self, flexible: bool, what: &'static str) -> Result<usize, DecodeError> {
        Ok(self.nullable_array_len(flexible, what)?.unwrap_or(0))
    }

    /// Reads an array of `element`s; a null array reads as empty.
    pub fn array<T>(
        &mut self,
        flexible: bool,
        what: &'static str,
        element: impl FnMut(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        Ok(self.nullable_array(flexible, what, element)?.unwrap_or_default())
    }

    /// Reads an array of `element`s, `None` when null.
    pub fn nullable_array<T>(
        &mut self,
        flexible: bool,
        what: &'static str,
        mut element: impl FnMut(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        let Some(n) = self.nullable_array_len(flexible, what)? else {
            return Ok(None);
        };
        // The count is bounded by the bytes left, but an element in memory can be far larger than
        // its wire form: reserve modestly and let the vector grow as elements really decode.
        let mut out = Vec::with_capacity(n.min(ARRAY_PREALLOCATE_MAX));
        for _ in 0..n {
            out.push(element(self)?);
        }
        Ok(Some(out))
    }

    /// A nullable struct, `None` when null: an i8 marker, -1 for null or 1 followed by the
    /// struct. Kafka writes only those two markers; any other is refused rather than guessed at.
    pub fn nullable_struct<T>(
        &mut self,
        what: &'static str,
        fields: impl FnOnce(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.i8()? {
            -1 => Ok(None),
            1 => fields(self).map(Some),
            _ => Err(DecodeError::Invalid { what, reason: "nullable struct marker is neither -1 nor 1" }),
        }
    }

    /// Skips the tagged fields of a flexible structure; does nothing otherwise.
    pub fn tagged_fields(&mut self, flexible: bool) -> Result<(), DecodeError> {
        self.tagged_fields_with(flexible, |_, _| Ok(()))
    }

    /// Tagged fields, handing each one's tag and a reader over its bytes to `field`, which reads
    /// the tags it knows and ignores the others (Kafka's rule for unknown tags).
    pub fn tagged_fields_with(
        &mut self,
        flexible: bool,
        mut field: impl FnMut(u32, &mut Reader) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        if !flexible {
            return Ok(());
        }
        let count = self.uvarint()?;
        if count as usize > self.buf.len() {
            return Err(DecodeError::CountTooLarge {
                what: "tagged fields",
                count: count.into(),
                remaining: self.buf.len(),
            });
        }
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let mut value = Reader::new(self.take(size)?);
            field(tag, &mut value)?;
        }
        Ok(())
    }

    /// The rest of the buffer.
    pub fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }
}

/// Writes Kafka primitives into a response (or, in the client half, a request) buffer.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: BytesMut,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: BytesMut::with_capacity(256) }
    }

    pub fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.put_i8(v as i8);
    }

    pub fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    pub fn uuid(&mut self, v: &[u8; 16]) {
        self.buf.put_slice(v);
    }

    pub fn f64(&mut self, v: f64) {
        self.buf.put_f64(v);
    }

    pub fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    fn length(&mut self, flexible: bool, wide: bool, length: Option<usize>) {
        match (flexible, length) {
            (true, None) => self.uvarint(0),
            (true, Some(n)) => self.uvarint(n as u32 + 1),
            (false, None) if wide => self.i32(-1),
            (false, None) => self.i16(-1),
            (false, Some(n)) if wide => self.i32(n as i32),
            (false, Some(n)) => self.i16(n as i16),
        }
    }

    pub fn nullable_string(&mut self, flexible: bool, v: Option<&str>) {
        self.length(flexible, false, v.map(str::len));
        if let Some(s) = v {
            self.buf.put_slice(s.as_bytes());
        }
    }

    pub fn string(&mut self, flexible: bool, v: &str) {
        self.nullable_string(flexible, Some(v));
    }

    /// The length prefix of a byte field whose bytes the caller sends separately (records).
    pub fn bytes_length(&mut self, flexible: bool, length: Option<usize>) {
        self.length(flexible, true, length);
    }

    pub fn nullable_bytes(&mut self, flexible: bool, v: Option<&[u8]>) {
        self.length(flexible, true, v.map(<[u8]>::len));
        if let Some(b) = v {
            self.buf.put_slice(b);
        }
    }

    pub fn bytes(&mut self, flexible: bool, v: &[u8]) {
        self.nullable_bytes(flexible, Some(v));
    }

    pub fn nullable_array_len(&mut self, flexible: bool, n: Option<usize>) {
        match (flexible, n) {
            (true, None) => self.uvarint(0),
            (true, Some(n)) => self.uvarint(n as u32 + 1),
            (false, None) => self.i32(-1),
            (false, Some(n)) => self.i32(n as i32),
        }
    }

    pub fn array_len(&mut self, flexible: bool, n: usize) {
        self.nullable_array_len(flexible, Some(n));
    }

    /// An array of int32 (broker ids, replica lists).
    pub fn i32_array(&mut self, flexible: bool, v: &[i32]) {
        self.array_len(flexible, v.len());
        for x in v {
            self.i32(*x);
        }
    }

    /// A nullable array of int32 (eligible leader replicas).
    pub fn nullable_i32_array(&mut self, flexible: bool, v: Option<&[i32]>) {
        self.nullable_array_len(flexible, v.map(<[i32]>::len));
        for x in v.unwrap_or_default() {
            self.i32(*x);
        }
    }

    /// A nullable struct: -1 for null, or 1 followed by what `fields` writes.
    pub fn nullable_struct<T>(&mut self, v: Option<&T>, fields: impl FnOnce(&mut Writer, &T)) {
        match v {
            None => self.i8(-1),
            Some(v) => {
                self.i8(1);
                fields(self, v);
            }
        }
    }

    /// Tagged fields are written only when they differ from their defaults; we write none.
    pub fn no_tagged_fields(&mut self, flexible: bool) {
        if flexible {
            self.uvarint(0);
        }
    }

    /// The tagged fields of a flexible structure: each (tag, encoded value), tags ascending.
    pub fn tagged_fields(&mut self, fields: &[(u32, Bytes)]) {
        debug_assert!(fields.windows(2).all(|pair| pair[0].0 < pair[1].0), "tags must ascend");
        self.uvarint(fields.len() as u32);
        for (tag, value) in fields {
            self.uvarint(*tag);
            self.uvarint(value.len() as u32);
            self.buf.extend_from_slice(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_structs() {
        let mut w = Writer::new();
        w.nullable_struct(Some(&("orders", 7)), |w, (name, index)| {
            w.string(true, name);
            w.i32(*index);
        });
        w.nullable_struct(None::<&(&str, i32)>, |_, _| unreachable!("a null struct has no fields"));
        let mut bytes = w.buf.to_vec();
        assert_eq!((bytes[0], bytes[bytes.len() - 1]), (1, 0xff));
        let mut r = Reader::new(Bytes::from(bytes.clone()));
        let cursor = |r: &mut Reader| Ok((r.string(true)?, r.i32()?));
        assert_eq!(r.nullable_struct("cursor", cursor).unwrap(), Some(("orders".to_owned(), 7)));
        assert_eq!(r.nullable_struct("cursor", cursor).unwrap(), None);
        assert_eq!(r.remaining(), 0);
        // Only -1 and 1 are markers; a struct cut short is truncated.
        bytes[0] = 0;
        let e = Reader::new(Bytes::from(bytes)).nullable_struct("cursor", cursor).unwrap_err();
        assert!(matches!(e, DecodeError::Invalid { what: "cursor", .. }), "{e}");
        let e = Reader::new(Bytes::from_static(&[1, 3, b'a', b'b', 0])).nullable_struct("cursor", cursor).unwrap_err();
        assert!(matches!(e, DecodeError::Truncated { .. }), "{e}");
    }

    #[test]
    fn hostile_counts_are_refused_before_allocating() {
        for flexible in [false, true] {
            let mut w = Writer::new();
            if flexible {
                w.uvarint(u32::MAX);
            } else {
                w.i32(i32::MAX);
            }
            w.i32(0);
            let mut r = Reader::new(w.buf.freeze());
            let e = r.array(flexible, "topics", |r| r.i32()).unwrap_err();
            assert!(matches!(e, DecodeError::CountTooLarge { what: "topics", .. }), "{e}");
        }
        let mut r = Reader::new(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 1, 2]));
        assert!(matches!(r.nullable_bytes(false), Err(DecodeError::CountTooLarge { .. })));
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
        assert!(r.uvarint().is_err());
    }

    #[test]
    fn round_trips() {
        for flexible in [false, true] {
            let mut w = Writer::new();
            w.string(flexible, "topic-a");
            w.nullable_string(flexible, None);
            w.nullable_bytes(flexible, Some(b"xyz"));
            w.nullable_bytes(flexible, None);
            w.bytes(flexible, b"");
            w.array_len(flexible, 2);
            w.i32(7);
            w.i32(8);
            w.i32_array(flexible, &[-1, 9]);
            w.nullable_array_len(flexible, None);
            w.nullable_i32_array(flexible, Some(&[4]));
            w.nullable_i32_array(flexible, None);
            w.no_tagged_fields(flexible);
            w.uvarint(300);
            w.f64(-2.5);
            let mut r = Reader::new(w.buf.freeze());
            assert_eq!(r.string(flexible).unwrap(), "topic-a");
            assert_eq!(r.nullable_string(flexible).unwrap(), None);
            assert_eq!(r.nullable_bytes(flexible).unwrap().unwrap(), &b"xyz"[..]);
            assert_eq!(r.nullable_bytes(flexible).unwrap(), None);
            assert_eq!(r.nullable_bytes(flexible).unwrap().unwrap(), &b""[..]);
            assert_eq!(r.array(flexible, "a", |r| r.i32()).unwrap(), vec![7, 8]);
            assert_eq!(r.nullable_array(flexible, "b", Reader::i32).unwrap(), Some(vec![-1, 9]));
            assert_eq!(r.nullable_array(flexible, "c", Reader::i32).unwrap(), None);
            assert_eq!(r.nullable_array(flexible, "d", Reader::i32).unwrap(), Some(vec![4]));
            assert_eq!(r.nullable_array(flexible, "e", Reader::i32).unwrap(), None);
            r.tagged_fields(flexible).unwrap();
            assert_eq!(r.uvarint().unwrap(), 300);
            assert_eq!(r.f64().unwrap(), -2.5);
            assert_eq!(r.remaining(), 0);
        }
    }
}
