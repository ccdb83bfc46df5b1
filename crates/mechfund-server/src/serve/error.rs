//! The one error type of the HTTP API: a status, a stable `code` and a message, answered as
//! `{"error":{"code","message"}}`. Domain errors map to 422 (409 for an ineligible gift, 404 for
//! an unknown seq); storage failures answer 500 without their details, which go to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mechfund_core::DomainError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error: `{"error":{"code","message"}}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody<'a> {
    /// The error.
    pub error: ErrorDetail<'a>,
}

/// The `error` of an [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail<'a> {
    /// A stable machine-readable code, e.g. `invalid_value`, `not_found`, `unauthorized`.
    pub code: &'a str,
    /// A human-readable explanation (names the field when one is at fault).
    pub message: &'a str,
}

/// An error answered to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// A human-readable explanation (names the field when one is at fault).
    pub message: String,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    /// 400: the body is not JSON (or not the JSON shape at all).
    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }

    /// 422: valid JSON with an invalid value.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message)
    }

    /// 404: no such mech, event or route.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503: the store cannot be reached now (PostgreSQL restarting); a retry may succeed.
    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the store cannot be reached just now; retry in a few seconds (with the same Idempotency-Key for a write)",
        )
    }

    /// 500: something failed on our side; the details are logged, not answered.
    pub fn internal() -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server could not complete the request")
    }

    /// The JSON body of the error.
    pub fn body(&self) -> String {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: &self.message } };
        // Two strings into a String: cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> ApiError {
        match e {
            DomainError::GiftPowerRemaining(_) | DomainError::GiftCampaignUsed(_) => {
                ApiError::new(StatusCode::CONFLICT, "gift_not_eligible", e.to_string())
            }
            DomainError::UnknownSeq(_) => ApiError::not_found(e.to_string()),
            _ => ApiError::invalid(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, json_body(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A body of already serialised JSON with its content type.
pub fn json_body(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
}
