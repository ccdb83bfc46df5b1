//! The extractors of the API's handlers. Each one's rejection is an [`ApiError`], so a bad path,
//! query or body gets the contract's error shape whichever handler it reaches:
//!
//! - [`Mech`]: the `{mech}` of the path (404 when it cannot be read);
//! - [`NewMech`]: a `{mech}` a write may create: a valid mech id (422);
//! - [`MechSeq`]: `{mech}` and the `{seq}` of a donation (404 for a seq that is no number);
//! - [`Params`]: the query string, with typed getters (422 naming the parameter);
//! - [`JsonWrite`]: a write's JSON body (400 not JSON, 413 too large, 422 wrong fields) and
//!   [`Sent`], what an `Idempotency-Key` is checked against;
//! - [`ImportBody`]: the raw body of `POST …/import`, up to `--max-import-mib`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use mechfund_core::Now;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::state::AppState;
use super::writer::Idempotency;
use crate::store::{check_mech_id, hex};

/// Largest request body accepted (413 above), but for imports.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The `{mech}` of the path; not checked against the mech id rules (an unknown mech is a 404
/// where it is looked up).
#[derive(Debug)]
pub struct Mech(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Mech {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(mech) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::not_found(format!("bad path: {e}")))?;
        Ok(Mech(mech))
    }
}

/// The `{mech}` of a write's path: a mech id the store takes (422 with what one looks like).
#[derive(Debug)]
pub struct NewMech(pub String);

impl<S: Send + Sync> FromRequestParts<S> for NewMech {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Mech(mech) = Mech::from_request_parts(parts, state).await?;
        check_mech_id(&mech).map_err(ApiError::invalid)?;
        Ok(NewMech(mech))
    }
}

/// `{mech}` (a valid mech id) and `{seq}` of `POST …/donations/{seq}/toggle-deletion`.
#[derive(Debug)]
pub struct MechSeq {
    /// The mech.
    pub mech: String,
    /// The donation's seq.
    pub seq: u64,
}

impl<S: Send + Sync> FromRequestParts<S> for MechSeq {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((mech, seq)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::not_found(format!("bad path: {e}")))?;
        check_mech_id(&mech).map_err(ApiError::invalid)?;
        let seq = seq.parse().map_err(|_| ApiError::not_found(format!("no event with seq \"{seq}\"")))?;
        Ok(MechSeq { mech, seq })
    }
}

/// The query string's parameters.
#[derive(Debug)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(query) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(format!("bad query string: {e}")))?;
        Ok(Params(query))
    }
}

impl Params {
    /// The text of parameter `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Parameter `name` as an integer.
    ///
    /// # Errors
    /// 422 naming the parameter when it is not an integer.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|text| {
                text.parse::<i64>().map_err(|_| ApiError::invalid(format!("{name}: \"{text}\" is not an integer")))
            })
            .transpose()
    }

    /// Parameter `name` as a count: 0 or more, `default` when absent.
    ///
    /// # Errors
    /// 422 naming the parameter when it is not an integer or negative.
    pub fn count(&self, name: &str, default: u64) -> Result<u64, ApiError> {
        match self.int(name)? {
            Some(n) => u64::try_from(n).map_err(|_| ApiError::invalid(format!("{name}: must be 0 or more"))),
            None => Ok(default),
        }
    }

    /// `now`: the RFC 3339 time to display at.
    ///
    /// # Errors
    /// 422 with the parser's reason.
    pub fn now(&self) -> Result<Option<Now>, ApiError> {
        self.get("now").map(|text| Now::parse(text).map_err(|e| ApiError::invalid(format!("now: {e}")))).transpose()
    }
}

/// What a client sent with a write: its path, its `Idempotency-Key` and its body, which a retry
/// with the same key must repeat exactly.
#[derive(Debug)]
pub struct Sent {
    path: String,
    key: Option<HeaderValue>,
    /// The body as received.
    pub bytes: Bytes,
}

impl Sent {
    /// Reads the body of `request`, at most `limit` bytes.
    async fn read<S: Send + Sync>(request: Request, state: &S, limit: usize) -> Result<Sent, ApiError> {
        let path = request.uri().path().to_owned();
        let key = request.headers().get("idempotency-key").cloned();
        let bytes = read_body(Bytes::from_request(request, state).await, limit)?;
        Ok(Sent { path, key, bytes })
    }

    /// The `Idempotency-Key`, if any, with the hash of the request it came with.
    ///
    /// # Errors
    /// 422 when the key is not 1 to 100 visible ASCII characters.
    pub fn idempotency(&self) -> Result<Option<Idempotency>, ApiError> {
        let Some(value) = &self.key else { return Ok(None) };
        let key = value
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 100 && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| ApiError::invalid("Idempotency-Key: 1 to 100 visible ASCII characters"))?;
        let mut hash = Sha256::new();
        hash.update(b"POST\n");
        hash.update(self.path.as_bytes());
        hash.update(b"\n");
        hash.update(&self.bytes);
        Ok(Some(Idempotency { key: key.to_owned(), request_hash: hex(&hash.finalize()) }))
    }
}

/// A write's JSON body, decoded: syntax errors are 400, wrong types, missing or unknown fields
/// 422, a body above [`BODY_LIMIT`] 413.
#[derive(Debug)]
pub struct JsonWrite<T> {
    /// The decoded body.
    pub body: T,
    /// What was sent, for the idempotency check.
    pub sent: Sent,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonWrite<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let sent = Sent::read(request, state, BODY_LIMIT).await?;
        let body = match serde_json::from_slice::<T>(&sent.bytes) {
            Ok(value) => value,
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                return Err(ApiError::invalid(e.to_string()));
            }
            Err(e) => return Err(ApiError::malformed(format!("the body is not valid JSON: {e}"))),
        };
        Ok(JsonWrite { body, sent })
    }
}

/// The body of `POST …/import` as sent (a DDC `events.jsonl`), up to the server's import limit.
#[derive(Debug)]
pub struct ImportBody(pub Sent);

impl FromRequest<AppState> for ImportBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, ApiError> {
        Ok(ImportBody(Sent::read(request, app, app.import_limit).await?))
    }
}

/// The body, or 413 above `limit` (the route's body limit).
fn read_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(e.status(), "payload_too_large", format!("the body is larger than {limit} bytes"))
        } else {
            ApiError::malformed(format!("cannot read the body: {e}"))
        }
    })
}
