//! The bodies of the answers that are not errors (those are [`super::error`]), with their
//! OpenAPI schemas, and the JSON answers built from them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mechfund_core::{Now, Rules, State, display};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, json_body};
use super::openapi::{DisplaySchema, GoalPartsSchema, NewEventSchema, RemainingSchema, StateSchema};

/// The answer of the health checks.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The answer of `GET …/state`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateResponse<'a> {
    /// The state after the mech's last event.
    #[schema(value_type = StateSchema)]
    pub state: &'a mechfund_core::State,
    /// What to display at `now`.
    #[schema(value_type = DisplaySchema)]
    pub display: mechfund_core::Display,
}

/// The answer of `GET …/whatif`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhatIfResponse {
    /// The member count asked for.
    pub members: i64,
    /// The goal of each level 1..=10 at that count.
    #[schema(value_type = Vec<GoalPartsSchema>)]
    pub table: Vec<mechfund_core::rules::GoalParts>,
    /// What reaching each later level costs from the current state.
    #[schema(value_type = Vec<RemainingSchema>)]
    pub remaining: Vec<mechfund_core::whatif::Remaining>,
}

/// The answer of `POST …/import`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResponse<'a> {
    /// Events stored.
    pub imported: u64,
    /// Seq of the first imported event.
    pub first_seq: u64,
    /// Seq of the last imported event.
    pub last_seq: u64,
    /// The mech's state after them.
    #[schema(value_type = StateSchema)]
    pub state: &'a mechfund_core::State,
}

/// The body of a successful write: the new events (full objects, in the log's key order) and the
/// mech's state after them.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteResponse<'a> {
    /// The events written, in seq order: the request's own, then any level-up it caused.
    #[schema(value_type = Vec<NewEventSchema>)]
    pub events: &'a [mechfund_core::Event],
    /// The mech's state after them.
    #[schema(value_type = StateSchema)]
    pub state: &'a State,
}

/// `{"state","display"}` of a mech, as `GET …/state` answers (and, without `now`, the event
/// stream's `state` messages carry).
pub fn state_json(state: &State, rules: &Rules, now: Option<&Now>) -> String {
    serde_json::to_string(&StateResponse { state, display: display(state, rules, now) }).unwrap_or_default()
}

/// A JSON body that is already text, with `status`.
pub fn json_response(status: StatusCode, body: String) -> Response {
    (status, json_body(body)).into_response()
}

/// `value` as JSON with 200.
///
/// # Errors
/// 500 if it cannot be serialised (it always can: strings, numbers and maps).
pub fn ok_json(value: &impl serde::Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_string(value).map_err(|_| ApiError::internal())?;
    Ok(json_response(StatusCode::OK, body))
}
