//! A fast path for lines in DDC's canonical layout.
//!
//! DDC (and mechfund) write every line the same way: compact, keys in a fixed order, flat
//! payloads. For such lines a direct scan finds the same members serde would, several times
//! faster. The scan accepts only what serde_json certainly accepts the same way; anything else
//! (whitespace, another key order, floats, nesting, an escape in a key or in a string replay
//! reads, a lone surrogate, invalid UTF-8) returns `None` and goes through serde_json, so both
//! paths classify every line the same way (a property test checks this).
//!
//! Strings are scanned eight bytes at a time for the bytes that need a look (`"`, `\`, control
//! characters, non-ASCII), so the common string (ASCII, no escapes) costs a few operations per
//! eight bytes. Non-ASCII text is checked as UTF-8 string by string: the line as a whole never is.

use std::borrow::Cow;

use super::{JsonKind, PayloadField, PayloadKey, RawLine, Shallow};
use crate::parse::Payload;

/// Each byte of a word set to `b`.
const fn splat(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

const LOW_BITS: u64 = splat(0x01);
const HIGH_BITS: u64 = splat(0x80);

/// The high bit of each byte of `w` that is `"`, `\`, below 0x20 or above 0x7f. Exact for the
/// lowest such byte (a borrow only carries into bytes above a flagged one), which is all the
/// scan uses.
fn special_bytes(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(LOW_BITS) & !v;
    let quote = zero(w ^ splat(b'"'));
    let backslash = zero(w ^ splat(b'\\'));
    let control = w.wrapping_sub(splat(0x20)) & !w;
    (quote | backslash | control | w) & HIGH_BITS
}

fn is_special(b: u8) -> bool {
    matches!(b, b'"' | b'\\') || !(0x20..0x80).contains(&b)
}

/// The index of the first special byte of `bytes` at or after `from`.
fn next_special(bytes: &[u8], mut from: usize) -> Option<usize> {
    while let Some(word) = bytes.get(from..from + 8) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let flagged = special_bytes(u64::from_le_bytes(eight));
        if flagged != 0 {
            return Some(from + (flagged.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    bytes.get(from..)?.iter().position(|&b| is_special(b)).map(|i| from + i)
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |n, &d| Some(n * 16 + char::from(d).to_digit(16)?))
}

/// Where the escape starting at `at` (a backslash) ends, if serde_json certainly decodes it: a
/// simple escape, a `\u` escape of a character outside the surrogates, or a surrogate pair.
fn escape_end(bytes: &[u8], at: usize) -> Option<usize> {
    match *bytes.get(at + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(at + 2),
        b'u' => match hex4(bytes, at + 2)? {
            0xD800..=0xDBFF => {
                (bytes.get(at + 6..at + 8)? == b"\\u").then_some(())?;
                (0xDC00..=0xDFFF).contains(&hex4(bytes, at + 8)?).then_some(at + 12)
            }
            0xDC00..=0xDFFF => None,
            _ => Some(at + 6),
        },
        _ => None,
    }
}

/// A string's body, once its closing quote was found: valid UTF-8.
struct Body<'a> {
    bytes: &'a [u8],
    /// Where it starts in the line.
    start: usize,
    /// It holds an escape: the text is not the bytes.
    escaped: bool,
}

impl<'a> Body<'a> {
    /// The bytes of a string without escapes.
    fn plain(&self) -> Option<&'a [u8]> {
        (!self.escaped).then_some(self.bytes)
    }

    /// The text of a string without escapes.
    fn text(&self) -> Option<&'a str> {
        std::str::from_utf8(self.plain()?).ok()
    }
}

struct Scan<'a> {
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

    /// A string serde_json certainly accepts: no control characters, escapes it decodes, valid
    /// UTF-8. The opening quote is next.
    fn string(&mut self) -> Option<Body<'a>> {
        self.literal(b"\"")?;
        let start = self.at;
        let (mut from, mut escaped, mut ascii) = (start, false, true);
        loop {
            let at = next_special(self.bytes, from)?;
            match self.bytes[at] {
                b'"' => {
                    self.at = at + 1;
                    let bytes = &self.bytes[start..at];
                    if !ascii {
                        std::str::from_utf8(bytes).ok()?;
                    }
                    return Some(Body { bytes, start, escaped });
                }
                b'\\' => {
                    escaped = true;
                    from = escape_end(self.bytes, at)?;
                }
                0x80.. => {
                    ascii = false;
                    from = at + 1;
                }
                _ => return None,
            }
        }
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

    /// A scalar member value as replay sees it; `None` for what serde must judge.
    fn value(&mut self, key: PayloadKey) -> Option<Shallow<'a>> {
        Some(match self.peek()? {
            b'"' => {
                let body = self.string()?;
                match key {
                    // The only string replay reads: escapes and all, serde decodes it.
                    PayloadKey::CampaignId => Shallow::Str(Cow::Borrowed(body.text()?)),
                    _ => Shallow::Other(JsonKind::String),
                }
            }
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
            let key = PayloadKey::of(self.string()?.plain()?);
            self.literal(b":")?;
            payload.set(key, &self.value(key)?);
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

    /// A top-level string member without escapes: where its text is in the line.
    fn plain(&mut self) -> Option<std::ops::Range<usize>> {
        let body = self.string()?;
        body.plain().map(|bytes| body.start..body.start + bytes.len())
    }
}

/// The members of a canonical line, or `None` if the line must go through serde_json.
pub(crate) fn raw_line(bytes: &[u8]) -> Option<RawLine<'_>> {
    let mut s = Scan { bytes, at: 0 };
    s.literal(b"{\"seq\":")?;
    let seq = Shallow::Int(s.integer()?);
    s.literal(b",\"ts\":")?;
    let ts = s.plain()?;
    s.literal(b",\"type\":")?;
    let kind = s.plain()?;
    s.literal(b",\"mech_id\":")?;
    let mech_id = s.plain()?;
    // The three are valid UTF-8 each, and so is what lies between them (ASCII): one check gives
    // the text of all three.
    let first = ts.start;
    let text = std::str::from_utf8(bytes.get(first..mech_id.end)?).ok()?;
    let member = |range: std::ops::Range<usize>| {
        text.get(range.start - first..range.end - first).map(|t| Shallow::Str(Cow::Borrowed(t)))
    };
    let (ts, kind, mech_id) = (member(ts)?, member(kind)?, member(mech_id)?);
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

#[cfg(test)]
mod tests {
    use super::{escape_end, next_special, raw_line, special_bytes};

    #[test]
    fn lines_with_escaped_or_non_ascii_donors_stay_on_the_fast_path() {
        for donor in [r"Zo\u00eb", r"\ud83d\ude80 \\o/", "Zoë 🚀", r#"say \"hi\""#] {
            let line = format!(
                r#"{{"seq":1,"ts":"2025-01-01T00:00:00+00:00","type":"DonationAdded","mech_id":"main","payload":{{"units":5,"donor":"{donor}"}}}}"#
            );
            assert!(raw_line(line.as_bytes()).is_some(), "{line}");
        }
        let gift = r#"{"seq":1,"ts":"2025-01-01T00:00:00+00:00","type":"PowerGiftGranted","mech_id":"main","payload":{"campaign_id":"spring\u00e9"}}"#;
        assert!(raw_line(gift.as_bytes()).is_none(), "a string replay reads, with an escape, is serde's");
    }

    #[test]
    fn the_first_special_byte_is_found_in_and_after_whole_words() {
        assert_eq!(next_special(b"abcdefgh\"", 0), Some(8));
        assert_eq!(next_special(b"ab\"d\\fgh", 0), Some(2));
        assert_eq!(next_special(b"abcdefghijk\\", 0), Some(11));
        assert_eq!(next_special(b"abc\x1fefgh", 0), Some(3));
        assert_eq!(next_special("abcdéf\"".as_bytes(), 0), Some(4));
        assert_eq!(next_special(b"abcdefghij", 0), None);
        assert_eq!(next_special(b"\"bcdefghij\"", 1), Some(10));
        // A byte just under a flagged one never hides it, and bytes above never come first.
        assert_eq!(special_bytes(u64::from_le_bytes(*b"\x00\"aaaaaa")).trailing_zeros() / 8, 0);
        assert_eq!(special_bytes(u64::from_le_bytes(*b"a!#[]~ \x7f")), 0);
    }

    #[test]
    fn only_escapes_serde_decodes_are_taken() {
        assert_eq!(escape_end(br#"\n"#, 0), Some(2));
        assert_eq!(escape_end(br#"\/"#, 0), Some(2));
        assert_eq!(escape_end(br#"\u00e9x"#, 0), Some(6));
        assert_eq!(escape_end(br#"\uD83D\uDE80"#, 0), Some(12));
        assert_eq!(escape_end(br#"\ud83d\ude80"#, 0), Some(12));
        assert_eq!(escape_end(br#"\uD83Dx"#, 0), None, "a lone leading surrogate");
        assert_eq!(escape_end(br#"\uDE80"#, 0), None, "a lone trailing surrogate");
        assert_eq!(escape_end(br#"\uD83D\u0041"#, 0), None, "a leading surrogate before a non-surrogate");
        assert_eq!(escape_end(br#"\u12G4"#, 0), None);
        assert_eq!(escape_end(br#"\u12"#, 0), None);
        assert_eq!(escape_end(br#"\x"#, 0), None);
        assert_eq!(escape_end(br#"\"#, 0), None);
    }
}
