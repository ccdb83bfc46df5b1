//! Talking to `mechfund serve` (when the dashboard is served by it): the admin token in
//! `sessionStorage`, idempotency keys, and authorised writes with the contract's error shape.
//!
//! The token only ever goes into an `Authorization` header: never into a URL, the console or
//! the page.

use gloo_storage::{SessionStorage, Storage};
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestInit, Response};

use crate::browser::describe;

/// `sessionStorage` key of the admin token (gone when the tab closes).
const TOKEN_KEY: &str = "mechfund.admin-token";

/// The API prefix, relative to the dashboard.
pub const API: &str = "api/v1";

/// Whether `sessionStorage` can be touched without an exception.
fn storage_available() -> bool {
    let Some(window) = web_sys::window() else { return false };
    js_sys::Reflect::get(&window, &"sessionStorage".into()).is_ok_and(|s| !s.is_null_or_undefined())
}

/// The token signed in with in this tab, if any.
#[must_use]
pub fn stored_token() -> Option<String> {
    if !storage_available() {
        return None;
    }
    SessionStorage::get::<String>(TOKEN_KEY).ok().filter(|t| !t.is_empty())
}

/// Keeps (or with `None` forgets) the token for this tab.
pub fn store_token(token: Option<&str>) {
    if !storage_available() {
        return;
    }
    match token {
        Some(token) => {
            let _ = SessionStorage::set(TOKEN_KEY, token);
        }
        None => SessionStorage::delete(TOKEN_KEY),
    }
}

/// A fresh idempotency key: 128 random bits from `crypto.getRandomValues`, as a UUID v4.
#[must_use]
pub fn new_key() -> String {
    let mut bytes = [0u8; 16];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        // No Web Crypto (very old browsers): time and Math.random are still unique enough per tab.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "mixing bits only")]
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = ((js_sys::Math::random() * 256.0) as u8) ^ ((js_sys::Date::now() as u64 >> (i % 8 * 8)) as u8);
        }
    }
    uuid_v4(bytes)
}

/// 16 random bytes as a UUID v4 (version and variant bits set).
fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    // Hex by hand, dashes after bytes 4, 6, 8 and 10 (no formatting machinery for 36 chars).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            key.push('-');
        }
        key.push(char::from(HEX[usize::from(b >> 4)]));
        key.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    key
}

/// Why a write failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 401: the token was refused.
    Unauthorized,
    /// The server answered with an error (`{"error":{"code","message"}}`).
    Api { status: u16, code: String, message: String },
    /// No answer (network, server down).
    Network(String),
}

impl Failure {
    /// The field the message concerns (`"amount: …"` -> `amount`), if it names one of `fields`.
    #[must_use]
    pub fn field<'a>(&self, fields: &[&'a str]) -> Option<&'a str> {
        let Failure::Api { message, .. } = self else { return None };
        field_of(message, fields)
    }

    /// What to show.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Failure::Unauthorized => {
                "The server refused the admin token. Sign in again with the token `mechfund serve` printed \
                 (it is in data/admin-token)."
                    .to_owned()
            }
            Failure::Api { status: 429, message, .. } => format!("Too many writes, try again in a moment ({message})."),
            Failure::Api { message, .. } => capitalise(message),
            Failure::Network(message) => {
                format!("The server did not answer ({message}). Check that mechfund serve is running, then try again.")
            }
        }
    }
}

/// The field a core or server message is about: the part before the first `": "`, if it is
/// one of `fields`.
#[must_use]
pub fn field_of<'a>(message: &str, fields: &[&'a str]) -> Option<&'a str> {
    let (head, _) = message.split_once(": ")?;
    fields.iter().copied().find(|f| *f == head)
}

/// "amount: must …" -> "Amount: must …". ASCII only: the messages are English, and
/// `char::to_uppercase` would link Unicode's case table (~6 KB of the gzipped dashboard).
fn capitalise(text: &str) -> String {
    let mut out = text.to_owned();
    if let Some(first) = out.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    out
}

/// POSTs `body` (JSON text) to `{API}/{path}` with the token and, if given, an idempotency key:
/// the response, whatever its status. One function for every write, so the request code is
/// linked once.
async fn send(path: &str, body: &str, token: &str, key: Option<&str>) -> Result<Response, Failure> {
    let network = |e: &wasm_bindgen::JsValue| Failure::Network(describe(e));
    let window = web_sys::window().ok_or_else(|| Failure::Network("no browser window".to_owned()))?;
    let headers = Headers::new().map_err(|e| network(&e))?;
    headers.set("Content-Type", "application/json").map_err(|e| network(&e))?;
    headers.set("Authorization", &format!("Bearer {token}")).map_err(|e| network(&e))?;
    if let Some(key) = key {
        headers.set("Idempotency-Key", key).map_err(|e| network(&e))?;
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&body.into());
    let url = format!("{API}/{path}");
    let response = JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await.map_err(|e| network(&e))?;
    response.dyn_into().map_err(|e| network(&e))
}

/// POSTs `body` (JSON) to `{API}/{path}` with the token and an idempotency key; the parsed 201
/// body on success.
///
/// # Errors
/// A [`Failure`]: 401, another error answer, or no answer.
pub async fn post(path: &str, body: &Value, token: &str, key: Option<&str>) -> Result<Value, Failure> {
    let response = send(path, &body.to_string(), token, key).await?;
    let status = response.status();
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise).await.ok().and_then(|t| t.as_string()).unwrap_or_default(),
        Err(_) => String::new(),
    };
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if response.ok() {
        return Ok(json);
    }
    if status == 401 {
        return Err(Failure::Unauthorized);
    }
    let error = &json["error"];
    Err(Failure::Api {
        status,
        code: error["code"].as_str().unwrap_or("error").to_owned(),
        message: error["message"]
            .as_str()
            .map_or_else(|| format!("HTTP {status} {}", response.status_text()), str::to_owned),
    })
}

/// Checks a token without writing anything: an authorised POST of a body that is not JSON is
/// a 400, an unauthorised one a 401.
///
/// # Errors
/// [`Failure::Unauthorized`] for a refused token, [`Failure::Network`] when nothing answers.
pub async fn check_token(mech: &str, token: &str) -> Result<(), Failure> {
    let path = format!("mechs/{}/member-count", encode(mech));
    let response = send(&path, "not json", token, None).await?;
    if response.status() == 401 { Err(Failure::Unauthorized) } else { Ok(()) }
}

/// A path segment, percent-encoded.
#[must_use]
pub fn encode(segment: &str) -> String {
    String::from(js_sys::encode_uri_component(segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_uuid_v4() {
        let key = uuid_v4([0xff; 16]);
        assert_eq!(key, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        let bytes: [u8; 16] = std::array::from_fn(|i| u8::try_from(i * 17).expect("small"));
        assert_eq!(uuid_v4(bytes), "00112233-4455-4677-8899-aabbccddeeff");
    }

    #[test]
    fn messages_name_their_field() {
        let fields = ["amount", "donor", "member_count"];
        assert_eq!(field_of("amount: 0.001 has more than two decimals", &fields), Some("amount"));
        assert_eq!(field_of("member_count: -1 is negative", &fields), Some("member_count"));
        assert_eq!(field_of("power gift not eligible: the mech still has $1.00", &fields), None);
        assert_eq!(field_of("no colon here", &fields), None);
        let failure = Failure::Api { status: 422, code: "invalid".into(), message: "donor: must not be empty".into() };
        assert_eq!(failure.field(&fields), Some("donor"));
        assert_eq!(failure.message(), "Donor: must not be empty");
        assert!(Failure::Unauthorized.message().contains("refused"));
    }
}
