//! A fast path for lines in DDC's canonical layout.
//!
//! DDC (and mechfund) write every line the same way: compact, keys in a fixed order, flat
//! payloads. For such lines a direct scan finds the same members serde would, several times
//! faster. Anything else — whitespace, escapes, invalid UTF-8, floats, nesting, another key order —
//! returns `None` and goes through serde_json, so both paths classify every line the same way (a
//! property test checks this).

use std::borrow::Cow;

use super::{JsonKind, PayloadField, PayloadKey, RawLine, Shallow};
use crate::parse::Payload;

struct Scan<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn literal(&mut self, text: &[u8]) -> Option<()> {
        let end = self.at + text.len();
        (self.bytes.get(self.at..end)? == text).then(|| self.at = end)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// A string without escapes or control characters; the opening quote is next.
    fn string(&mut self) -> Option<&'a str> {
        self.literal(b"\"")?;
        let start = self.at;
        let len = memchr::memchr2(b'"', b'\\', &self.bytes[start..])?;
        let body = &self.bytes[start..start + len];
        // Raw control characters are not allowed in JSON strings (serde refuses them too).
        // A branch-free fold, so it vectorises.
        if body.iter().fold(false, |seen, &b| seen | (b < 0x20)) {
            return None;
        }
        self.at = start + len;
        self.literal(b"\"")?;
        self.text.get(start..start + len)
    }

    /// A JSON integer (no fraction or exponent) that fits in `i64`.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let start = self.at;
        let mut value: i64 = 0;
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            value = value.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        if negative { Some(value) } else { value.checked_neg() }
    }

    fn value(&mut self) -> Option<Shallow<'a>> {
        Some(match self.peek()? {
            b'"' => Shallow::Str(Cow::Borrowed(self.string()?)),
            b'-' | b'0'..=b'9' => Shallow::Int(self.integer()?),
            b'n' => self.literal(b"null").map(|()| Shallow::Other(JsonKind::Null))?,
            b't' => self.literal(b"true").map(|()| Shallow::Bool(true))?,
            b'f' => self.literal(b"false").map(|()| Shallow::Bool(false))?,
            _ => return None,
        })
    }

    fn payload(&mut self) -> Option<Payload> {
        self.literal(b"{")?;
        let mut payload = Payload::default();
        if self.literal(b"}").is_some() {
            return Some(payload);
        }
        loop {
            let key = PayloadKey::of(self.string()?);
            self.literal(b":")?;
            payload.set(key, &self.value()?);
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(payload);
                }
                _ => return None,
            }
        }
    }
}

/// The members of a canonical line, or `None` if the line must go through serde_json.
pub(crate) fn raw_line(bytes: &[u8]) -> Option<RawLine<'_>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut s = Scan { text, bytes, at: 0 };
    s.literal(b"{\"seq\":")?;
    let seq = Shallow::Int(s.integer()?);
    s.literal(b",\"ts\":")?;
    let ts = Shallow::Str(Cow::Borrowed(s.string()?));
    s.literal(b",\"type\":")?;
    let kind = Shallow::Str(Cow::Borrowed(s.string()?));
    s.literal(b",\"mech_id\":")?;
    let mech_id = Shallow::Str(Cow::Borrowed(s.string()?));
    let payload =
        if s.literal(b",\"payload\":").is_some() { PayloadField::Object(s.payload()?) } else { PayloadField::Absent };
    s.literal(b"}")?;
    (s.at == bytes.len()).then_some(RawLine {
        seq: Some(seq),
        ts: Some(ts),
        kind: Some(kind),
        mech_id: Some(mech_id),
        payload,
    })
}
