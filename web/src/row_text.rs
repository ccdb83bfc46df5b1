//! The free-text fields of an event line the table shows (`payload.donor`, `event_name`,
//! `reason`), which replay does not read: a direct walk over the line's JSON for the common
//! case, serde_json for anything it cannot be sure of.
//!
//! The walk runs only on lines the core parsed as events, so the line is valid JSON; it only
//! has to find the members, not validate. It hands a line to serde_json whenever the answer
//! depends on more than finding them: an escape in a key or in a text it returns, a key seen
//! twice, a payload that is not an object, a text that is not UTF-8. A property test checks
//! that both give the same texts. Serde reads a million donors several times slower.

use std::borrow::Cow;

use serde::Deserialize;

/// An event's free texts, as the table reads them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Texts<'a> {
    pub donor: Option<Cow<'a, str>>,
    pub event_name: Option<Cow<'a, str>>,
    pub reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct SerdeTexts<'a> {
    #[serde(borrow, default)]
    payload: SerdeFields<'a>,
}

#[derive(Deserialize, Default)]
struct SerdeFields<'a> {
    #[serde(borrow, default)]
    donor: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
}

/// The texts of `line`, an event line the core parsed (valid JSON); none where a field is
/// missing, or when serde_json would not read them (a field of another type).
#[must_use]
pub fn texts(line: &[u8]) -> Texts<'_> {
    walk(line).unwrap_or_else(|| by_serde(line))
}

/// The reference: what serde_json reads.
#[must_use]
pub fn by_serde(line: &[u8]) -> Texts<'_> {
    let SerdeFields { donor, event_name, reason } =
        serde_json::from_slice::<SerdeTexts<'_>>(line).unwrap_or_default().payload;
    Texts { donor, event_name, reason }
}

/// A cursor over valid JSON.
struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Walk<'a> {
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string's raw body (the cursor on its opening quote), and whether it has an escape.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let start = self.at;
        let mut escaped = false;
        loop {
            let i = self.at + memchr::memchr2(b'"', b'\\', self.bytes.get(self.at..)?)?;
            if self.bytes[i] == b'\\' {
                escaped = true;
                self.at = i + 2;
            } else {
                self.at = i + 1;
                return Some((&self.bytes[start..i], escaped));
            }
        }
    }

    /// A key without escapes and its colon.
    fn key(&mut self) -> Option<&'a [u8]> {
        let (key, escaped) = self.string()?;
        self.eat(b':')?;
        (!escaped).then_some(key)
    }

    /// Skips one value.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            self.at += 1;
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            self.at += 1;
                            if depth == 0 {
                                return Some(());
                            }
                        }
                        _ => self.at += 1,
                    }
                }
            }
            _ => {
                while !matches!(self.bytes.get(self.at)?, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    /// After a member: true at the object's end, false before the next member.
    fn next(&mut self) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(false)
            }
            b'}' => {
                self.at += 1;
                Some(true)
            }
            _ => None,
        }
    }

    /// The members of an object (the cursor on `{`), each handed to `member` with the cursor on
    /// its value, which `member` must consume.
    fn object(&mut self, mut member: impl FnMut(&mut Walk<'a>, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            member(self, key)?;
            if self.next()? {
                return Some(());
            }
        }
    }
}

/// What a text field holds, as serde reads it.
enum Field<'a> {
    Text(&'a str),
    Null,
    /// Another type: serde fails, and reads no texts at all.
    Other,
}

/// The texts by a direct walk, or `None` when serde_json must decide.
fn walk(line: &[u8]) -> Option<Texts<'_>> {
    let mut walk = Walk { bytes: line, at: 0 };
    let mut payloads = 0;
    let mut fields: [Option<Field<'_>>; 3] = [None, None, None];
    walk.object(|walk, key| {
        if key != b"payload" {
            return walk.skip();
        }
        payloads += 1;
        if payloads > 1 || walk.peek()? != b'{' {
            return None;
        }
        walk.object(|walk, key| {
            let slot = match key {
                b"donor" => 0,
                b"event_name" => 1,
                b"reason" => 2,
                _ => return walk.skip(),
            };
            if fields[slot].is_some() {
                return None;
            }
            fields[slot] = Some(match walk.peek()? {
                b'"' => {
                    let (text, escaped) = walk.string()?;
                    if escaped {
                        return None;
                    }
                    Field::Text(std::str::from_utf8(text).ok()?)
                }
                b'n' => {
                    walk.skip()?;
                    Field::Null
                }
                _ => {
                    walk.skip()?;
                    Field::Other
                }
            });
            Some(())
        })
    })?;
    if fields.iter().any(|f| matches!(f, Some(Field::Other))) {
        return Some(Texts::default());
    }
    let [donor, event_name, reason] = fields.map(|f| match f {
        Some(Field::Text(text)) => Some(Cow::Borrowed(text)),
        _ => None,
    });
    Some(Texts { donor, event_name, reason })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_serde_reads() {
        let lines: &[&str] = &[
            r#"{"seq":3,"ts":"2025-07-02T16:46:43Z","type":"DonationAdded","mech_id":"main","payload":{"units":101,"donor":"Discord:mallory (not malicious)","channel_id":"9"}}"#,
            r#"{"payload":{"donor":"a\"b"}}"#,
            r#"{"payload":{"donor":"caf\u00e9"}}"#,
            r#"{"payload":{"donor":"café ☕"}}"#,
            r#"{"payload":{"donor":null,"reason":"r"}}"#,
            r#"{"payload":{"donor":5,"reason":"r"}}"#,
            r#"{"payload":{"donor":"a","donor":"b"}}"#,
            r#"{"payload":{"donor":"a"},"payload":{"donor":"b"}}"#,
            r#"{"payload":null}"#,
            r#"{"payload":["a","b","c"]}"#,
            r#"{"payload":{}}"#,
            r#"{}"#,
            r#"{"x":{"payload":{"donor":"nested"}},"payload":{"event_name":"e"}}"#,
            r#"{"x":"{\"payload\":{\"donor\":\"in a string\"}}","payload":{"reason":"r"}}"#,
            r#"{"payload":{"d\u006fnor":"escaped key"}}"#,
            r#" { "payload" : { "donor" : "spaced" , "units" : [1, {"a": "}"}] } } "#,
            r#"{"payload":{"donor":"x","extra":{"donor":"inner"}}}"#,
            r#"{"payload":{"donor":"\\"}}"#,
            r#"{"payload":{"units":1.5e3,"donor":"after a float","ok":true,"no":false}}"#,
        ];
        for line in lines {
            assert_eq!(texts(line.as_bytes()), by_serde(line.as_bytes()), "{line}");
        }
        assert_eq!(texts(lines[0].as_bytes()).donor.as_deref(), Some("Discord:mallory (not malicious)"));
        let invalid = b"{\"payload\":{\"donor\":\"\xff\"}}";
        assert_eq!(texts(invalid), by_serde(invalid));
    }

    /// JSON scalars, mostly texts, escaped or not.
    fn leaf() -> impl Strategy<Value = String> {
        let text = prop_oneof![
            Just(String::new()),
            "[a-z ]{0,6}",
            Just("\\\"".to_owned()),
            Just("\\\\".to_owned()),
            Just("\\u00e9".to_owned()),
            Just("é☕".to_owned()),
            Just("{\\\"donor\\\":1}".to_owned()),
        ];
        prop_oneof![
            6 => text.prop_map(|t| format!("\"{t}\"")),
            2 => Just("null".to_owned()),
            1 => Just("12".to_owned()),
            1 => Just("-1.5e2".to_owned()),
            1 => Just("true".to_owned()),
        ]
    }

    /// JSON values with the keys and texts that matter, nested and escaped; mostly scalars.
    fn value() -> impl Strategy<Value = String> {
        let nested = leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key(), inner), 0..4).prop_map(|m| {
                    let members: Vec<String> = m.into_iter().map(|(k, v)| format!("\"{k}\" : {v}")).collect();
                    format!("{{ {} }}", members.join(","))
                }),
            ]
        });
        prop_oneof![5 => leaf(), 1 => nested]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("payload".to_owned()),
            Just("donor".to_owned()),
            Just("event_name".to_owned()),
            Just("reason".to_owned()),
            Just("d\\u006fnor".to_owned()),
            "[a-z]{1,3}",
        ]
    }

    proptest! {
        #[test]
        fn the_walk_and_serde_agree(
            members in prop::collection::vec((key(), value()), 0..4),
            payload in prop::collection::vec((key(), value()), 0..5),
            at in 0..5usize,
        ) {
            let object = |members: Vec<(String, String)>| {
                let members: Vec<String> = members.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            };
            let mut members = members;
            members.insert(at.min(members.len()), ("payload".to_owned(), object(payload)));
            let line = object(members);
            prop_assert!(serde_json::from_str::<serde_json::Value>(&line).is_ok(), "not JSON: {}", line);
            prop_assert_eq!(texts(line.as_bytes()), by_serde(line.as_bytes()), "{}", line);
        }
    }
}
