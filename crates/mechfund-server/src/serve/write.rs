//! The write handlers of `/api/v1` (spec §3.3): each decodes its request with the extractors of
//! [`super::extract`] into a validated [`Op`], hands it to the writer ([`super::writer`], which
//! runs the core's `decide`, appends and applies) and answers with what the writer returns.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mechfund_core::decide::{Channel, Member};
use mechfund_core::{Cents, DomainError, MemberSource};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{ImportBody, JsonWrite, MechSeq, NewMech, Sent};
use super::openapi::{
    Conflict, IdempotencyKey, Internal, Invalid, Malformed, MechPath, NewMechPath, NotFound, RateLimited, ReadOnly,
    TooLarge, Unauthorized, Unavailable, donation_amount_schema, system_amount_schema,
};
use super::responses::{ImportResponse, WriteResponse, json_response};
use super::state::AppState;
use super::writer::{Op, WriteRequest};

/// An amount of dollars, from a decimal string or the literal text of a JSON number (never f64).
fn parse_amount(raw: &RawValue) -> Result<Cents, ApiError> {
    let text = raw.get().trim();
    let literal: Cow<'_, str> = if text.starts_with('"') {
        Cow::Owned(serde_json::from_str::<String>(text).map_err(|e| ApiError::invalid(format!("amount: {e}")))?)
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Cow::Borrowed(text)
    } else {
        return Err(ApiError::invalid("amount: must be a decimal string like \"5.00\" or a number of dollars"));
    };
    Cents::parse_dollars(&literal).map_err(|source| DomainError::Amount { field: "amount", source }.into())
}

/// Hands a write to the writer and answers with what it returns: the stored answer of an earlier
/// request with the same `Idempotency-Key`, the new events, or the error.
async fn submit(app: &AppState, mech: String, op: Op, sent: &Sent) -> Response {
    if let (Some(limiter), Op::Donation { donor: Some(donor), .. }) = (&app.rate_limiter, &op)
        && let Err(limited) = limiter.check(&format!("donor:{mech}\n{donor}"))
    {
        return limited.into_response();
    }
    let idempotency = match sent.idempotency() {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let (reply, answer) = oneshot::channel();
    let request = WriteRequest { mech, op, idempotency, reply };
    if app.writer.send(request).await.is_err() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the server is shutting down")
            .into_response();
    }
    match answer.await {
        Ok(Ok(stored)) => {
            json_response(StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED), stored.body)
        }
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the writer stopped").into_response(),
    }
}

/// A donation by a member.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DonationBody {
    #[schema(schema_with = donation_amount_schema)]
    amount: Box<RawValue>,
    /// Who donated (also keys the per-donor rate limit).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    donor: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    channel_id: Option<String>,
    /// The payment's id, for the record.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    donation_id: Option<String>,
    /// The member count now, recorded first if it changes the goal.
    #[serde(default)]
    #[schema(minimum = 0)]
    member_count: Option<i64>,
}

/// Records a donation (dollars); the answer holds any level-up it caused.
#[utoipa::path(post, path = "/mechs/{mech}/donations", tag = "writes", operation_id = "add_donation",
    request_body(content = DonationBody, content_type = "application/json"),
    security(("bearer" = [])),
    params(NewMechPath, IdempotencyKey),
    responses(
        (status = 201, description = "The new events and the state after them", body = WriteResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
pub(super) async fn post_donation(
    State(app): State<AppState>,
    NewMech(mech): NewMech,
    JsonWrite { body, sent }: JsonWrite<DonationBody>,
) -> Result<Response, ApiError> {
    let op = Op::Donation {
        amount: parse_amount(&body.amount)?,
        donor: body.donor,
        channel_id: body.channel_id,
        donation_id: body.donation_id,
        member_count: body.member_count,
    };
    Ok(submit(&app, mech, op, &sent).await)
}

/// A donation by the system (power only, no evolution).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SystemDonationBody {
    #[schema(schema_with = system_amount_schema)]
    amount: Box<RawValue>,
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    event_name: String,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    description: Option<String>,
}

/// Records a system donation (power only).
#[utoipa::path(post, path = "/mechs/{mech}/system-donations", tag = "writes", operation_id = "add_system_donation",
    request_body(content = SystemDonationBody, content_type = "application/json"),
    security(("bearer" = [])),
    params(NewMechPath, IdempotencyKey),
    responses(
        (status = 201, description = "The new events and the state after them", body = WriteResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
pub(super) async fn post_system_donation(
    State(app): State<AppState>,
    NewMech(mech): NewMech,
    JsonWrite { body, sent }: JsonWrite<SystemDonationBody>,
) -> Result<Response, ApiError> {
    let amount = parse_amount(&body.amount)?;
    let op = Op::SystemDonation { amount, event_name: body.event_name, description: body.description };
    Ok(submit(&app, mech, op, &sent).await)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MemberDto {
    id: String,
    #[serde(default)]
    bot: bool,
    #[serde(default)]
    system: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChannelDto {
    id: String,
    #[serde(default = "yes")]
    accessible: bool,
    #[serde(default)]
    members: Vec<MemberDto>,
}

fn yes() -> bool {
    true
}

/// `POST …/member-count` as the handler decodes it: both forms' fields, so that a body mixing
/// them, or giving neither, gets a message that says so ([`member_source`]) rather than serde's
/// "did not match any variant". Documented as [`MemberCountForms`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MemberCountBody {
    #[serde(default)]
    member_count: Option<i64>,
    #[serde(default)]
    channels: Option<Vec<ChannelDto>>,
    #[serde(default)]
    guild_member_count: Option<i64>,
}

pub(super) fn member_source(body: MemberCountBody) -> Result<Op, ApiError> {
    let source = match (body.member_count, body.channels) {
        (Some(count), None) if body.guild_member_count.is_none() => MemberSource::Count(count),
        (None, Some(channels)) => MemberSource::Channels {
            channels: channels
                .into_iter()
                .map(|c| Channel {
                    id: c.id,
                    accessible: c.accessible,
                    members: c.members.into_iter().map(|m| Member { id: m.id, bot: m.bot, system: m.system }).collect(),
                })
                .collect(),
            guild_member_count: body.guild_member_count,
        },
        _ => {
            return Err(ApiError::invalid(
                "give either \"member_count\" or \"channels\" (with an optional \"guild_member_count\")",
            ));
        }
    };
    Ok(Op::MemberCount(source))
}

// `POST …/member-count` as documented; `openapi.rs` tests that the handler accepts the same bodies.
/// A member-count sample: either `member_count`, or `channels` (with an optional
/// `guild_member_count`).
#[derive(ToSchema)]
#[serde(untagged)]
#[schema(as = MemberCountBody)]
#[allow(dead_code, reason = "documentation only: the handler decodes MemberCountBody")]
pub(super) enum MemberCountForms {
    Count(MemberCountGiven),
    Channels(MemberCountChannels),
}

/// A member count taken elsewhere.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "documentation only: the handler decodes MemberCountBody")]
pub(super) struct MemberCountGiven {
    /// The count.
    #[schema(minimum = 0)]
    member_count: i64,
}

/// Channels whose human members are counted, each member once.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "documentation only: the handler decodes MemberCountBody")]
pub(super) struct MemberCountChannels {
    /// The channels with their members (ids unique across channels count once).
    channels: Vec<ChannelDto>,
    /// The guild's count, used when no channel is accessible.
    #[schema(minimum = 0)]
    guild_member_count: Option<i64>,
}

/// Records a member-count sample: a count, or the channels' members counted uniquely.
#[utoipa::path(post, path = "/mechs/{mech}/member-count", tag = "writes", operation_id = "update_member_count",
    request_body(content = MemberCountForms, content_type = "application/json"),
    security(("bearer" = [])),
    params(NewMechPath, IdempotencyKey),
    responses(
        (status = 201, description = "The new events and the state after them", body = WriteResponse),
        (status = 200, description = "No count could be taken (no channel readable, no guild count): nothing recorded", body = WriteResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
pub(super) async fn post_member_count(
    State(app): State<AppState>,
    NewMech(mech): NewMech,
    JsonWrite { body, sent }: JsonWrite<MemberCountBody>,
) -> Result<Response, ApiError> {
    let op = member_source(body)?;
    Ok(submit(&app, mech, op, &sent).await)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PowerGiftBody {
    /// Each campaign grants once per mech.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    campaign_id: String,
}

/// Grants a campaign's power gift (once per campaign, only when the mech is offline).
#[utoipa::path(post, path = "/mechs/{mech}/power-gifts", tag = "writes", operation_id = "grant_power_gift",
    request_body(content = PowerGiftBody, content_type = "application/json"),
    security(("bearer" = [])),
    params(NewMechPath, IdempotencyKey),
    responses(
        (status = 201, description = "The new events and the state after them", body = WriteResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
pub(super) async fn post_power_gift(
    State(app): State<AppState>,
    NewMech(mech): NewMech,
    JsonWrite { body, sent }: JsonWrite<PowerGiftBody>,
) -> Result<Response, ApiError> {
    let op = Op::PowerGift { campaign_id: body.campaign_id };
    Ok(submit(&app, mech, op, &sent).await)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ToggleBody {
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    reason: String,
}

/// Deletes a donation, or restores a deleted one (toggles).
#[utoipa::path(post, path = "/mechs/{mech}/donations/{seq}/toggle-deletion", tag = "writes",
    operation_id = "toggle_donation_deletion",
    request_body(content = ToggleBody, content_type = "application/json"),
    security(("bearer" = [])),
    params(MechPath, ("seq" = u64, Path, description = "The seq of the donation"), IdempotencyKey),
    responses(
        (status = 201, description = "The deletion event and the state after it", body = WriteResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
pub(super) async fn post_toggle_deletion(
    State(app): State<AppState>,
    MechSeq { mech, seq }: MechSeq,
    JsonWrite { body, sent }: JsonWrite<ToggleBody>,
) -> Response {
    submit(&app, mech, Op::ToggleDeletion { seq, reason: body.reason }, &sent).await
}

/// `POST …/import`: the body is a DDC `events.jsonl` (every line of mech `{mech}`), imported into
/// a mech that has no events yet, all or nothing (spec §3.3; `mechfund import` over HTTP).
#[utoipa::path(post, path = "/mechs/{mech}/import", tag = "writes", operation_id = "import_events",
    request_body(content = String, content_type = "text/plain",
        description = "A DDC events.jsonl: one JSON event of this mech per line, seqs strictly increasing \
            (any Content-Type is accepted, e.g. application/x-ndjson)"),
    security(("bearer" = [])),
    params(MechPath, IdempotencyKey),
    responses(
        (status = 201, description = "Every line stored; the mech's state after them", body = ImportResponse),
        Malformed, Unauthorized, ReadOnly, NotFound, Conflict, TooLarge, Invalid, RateLimited, Internal, Unavailable,
    ),
)]
pub(super) async fn post_import(
    State(app): State<AppState>,
    NewMech(mech): NewMech,
    ImportBody(sent): ImportBody,
) -> Response {
    submit(&app, mech, Op::Import { lines: sent.bytes.clone() }, &sent).await
}
