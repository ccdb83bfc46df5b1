//! The OpenAPI 3 document served at `GET /api/v1/openapi.json`, generated with utoipa.
//!
//! The paths come from the `#[utoipa::path]` annotations of the handlers in [`super::read`] and [`super::write`],
//! registered through ONE route table (utoipa-axum's `routes!`) that feeds both the router and
//! the document, so a route cannot exist without its entry or the other way round. Request and
//! response bodies derive `ToSchema` on the types the handlers decode and serialise.
//!
//! `mechfund-core` stays free of utoipa (its dependencies stay few: docs/architecture.md), so
//! the shapes it serialises itself (state, display, events, rules, goal rows) are described here
//! by schema-only mirrors; the tests at the bottom validate real serialised core values against
//! them, so they cannot drift unnoticed.
//! This module also holds the reusable error responses, one type per status, and the parameters
//! every write shares.

#![allow(dead_code, reason = "schema-only types: described, never constructed")]

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Schema};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

use super::error::ErrorBody;

/// The document's fixed parts; the paths are added by the route table in [`super::router::api`].
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "mechfund",
        description = "The mech donation server (spec §3.3). Money is integer cents; amounts in \
                       requests are dollars. Writes need `Authorization: Bearer <token>`; reads are \
                       public unless the server runs with `--private`.",
    ),
    modifiers(&BearerScheme),
    components(schemas(ErrorBody)),
    tags(
        (name = "reads", description = "Public unless the server runs with `--private`"),
        (name = "writes", description = "Need the bearer token; rate limited per token and per donor"),
        (name = "meta", description = "Health and this document; always public"),
    ),
)]
pub struct ApiDoc;

/// `{mech}` of a write that may create the mech.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NewMechPath {
    /// The mech id (1 to 64 of `A-Z a-z 0-9 . _ -`, not `.` or `..`); created by its first event
    #[param(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$", example = "main")]
    mech: String,
}

/// `{mech}` of any other write.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MechPath {
    /// The mech id (1 to 64 of `A-Z a-z 0-9 . _ -`, not `.` or `..`)
    #[param(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$", example = "main")]
    mech: String,
}

/// The optional `Idempotency-Key` header of every write.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// A retry with the same key and body answers the first response; another body 409
    #[param(rename = "Idempotency-Key", required = false, min_length = 1, max_length = 100, pattern = r"^[!-~]+$")]
    key: String,
}

/// The `bearer` security scheme the write operations name.
#[derive(Debug)]
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin token (`MECHFUND_ADMIN_TOKEN` or DATA/admin-token)"))
                    .build(),
            ),
        );
    }
}

/// With `--private`, reads need the token too: their "optional" security becomes required.
pub fn make_private(doc: &mut Document) {
    for item in doc.paths.paths.values_mut() {
        if let Some(get) = item.get.as_mut()
            && let Some(security) = get.security.as_mut()
            && security.len() > 1
        {
            security.retain(|s| *s != utoipa::openapi::security::SecurityRequirement::default());
        }
    }
}

/// An amount of dollars: a decimal string (`"5.00"`) or a JSON number (`5`, `5.5`), read from its
/// literal text, never through floating point; 0.01 up to `max_dollars`, at most 2 decimals.
fn amount_schema(max_dollars: u32) -> RefOr<Schema> {
    let digits = max_dollars.to_string().len();
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    let string = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(r"^[0-9]{{1,{digits}}}(\.[0-9]{{1,2}})?$")))
        .examples([serde_json::json!("5.00")]);
    let number = ObjectBuilder::new()
        .schema_type(Type::Number)
        .exclusive_minimum(Some(0))
        .maximum(Some(max_dollars))
        .multiple_of(Some(0.01))
        .examples([serde_json::json!(5)]);
    OneOfBuilder::new()
        .item(string)
        .item(number)
        .description(Some(format!(
            "Dollars, 0.01 to {max_dollars}: a decimal string like \"5.00\" or a JSON number; sub-cent amounts are 422"
        )))
        .into()
}

/// The `amount` of a donation (at most `MAX_DONATION`).
pub fn donation_amount_schema() -> RefOr<Schema> {
    amount_schema(dollars(mechfund_core::rules::MAX_DONATION))
}

/// The `amount` of a system donation (at most `MAX_SYSTEM_DONATION`).
pub fn system_amount_schema() -> RefOr<Schema> {
    amount_schema(dollars(mechfund_core::rules::MAX_SYSTEM_DONATION))
}

fn dollars(cents: i64) -> u32 {
    u32::try_from(cents / 100).unwrap_or(u32::MAX)
}

// ---- error responses, one type per status, combined per route ----

/// 400: the body is not JSON.
#[derive(Debug, IntoResponses)]
#[response(status = 400, description = "The body is not valid JSON (`malformed_json`)")]
pub struct Malformed(ErrorBody<'static>);

/// 401: no or a wrong bearer token.
#[derive(Debug, IntoResponses)]
#[response(
    status = 401,
    description = "No or a wrong bearer token (`unauthorized`); on reads only with `--private`",
    headers(("WWW-Authenticate" = String, description = "`Bearer`"))
)]
pub struct Unauthorized(ErrorBody<'static>);

/// 403: the server follows a DDC installation (`serve --ddc`) and takes no writes.
#[derive(Debug, IntoResponses)]
#[response(
    status = 403,
    description = "The server follows a DockerDiscordControl installation read-only (`read_only`): DDC owns the log"
)]
pub struct ReadOnly(ErrorBody<'static>);

/// 404: no such mech, event or path.
#[derive(Debug, IntoResponses)]
#[response(status = 404, description = "No such mech, event or path (`not_found`)")]
pub struct NotFound(ErrorBody<'static>);

/// 409: a conflict.
#[derive(Debug, IntoResponses)]
#[response(
    status = 409,
    description = "`idempotency_conflict` (the key was used for a different request) or `gift_not_eligible`"
)]
pub struct Conflict(ErrorBody<'static>);

/// 413: the body is too large.
#[derive(Debug, IntoResponses)]
#[response(status = 413, description = "The body is larger than 64 KiB (`payload_too_large`)")]
pub struct TooLarge(ErrorBody<'static>);

/// 422: valid JSON (or query) with an invalid value.
#[derive(Debug, IntoResponses)]
#[response(status = 422, description = "A value is invalid (`invalid_value`); the message names the field")]
pub struct Invalid(ErrorBody<'static>);

/// 429: rate limited.
#[derive(Debug, IntoResponses)]
#[response(
    status = 429,
    description = "Too many writes for this token or donor (`rate_limited`)",
    headers(("Retry-After" = u64, description = "Whole seconds to wait"))
)]
pub struct RateLimited(ErrorBody<'static>);

/// 500: a storage failure (details in the log).
#[derive(Debug, IntoResponses)]
#[response(status = 500, description = "A storage failure (`internal`); the details are logged, not answered")]
pub struct Internal(ErrorBody<'static>);

/// 503: shutting down.
#[derive(Debug, IntoResponses)]
#[response(status = 503, description = "The server is shutting down (`unavailable`)")]
pub struct Unavailable(ErrorBody<'static>);

/// 503: every export slot is streaming.
#[derive(Debug, IntoResponses)]
#[response(
    status = 503,
    description = "Every export slot is streaming (`busy`): retry after the seconds given",
    headers(("Retry-After" = u64, description = "Whole seconds to wait"))
)]
pub struct Busy(ErrorBody<'static>);

// ---- schema-only mirrors of what mechfund-core serialises ----

/// A mech's state after its last event (`mechfund_core::State`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = State)]
#[serde(deny_unknown_fields)]
pub struct StateSchema {
    mech_id: String,
    /// 1..=11.
    #[schema(minimum = 1, maximum = 11)]
    level: u8,
    /// Evolution toward the current goal, cents.
    evo_acc: i64,
    /// Power, cents (decays over time).
    power_acc: i64,
    /// The goal of the current level, cents (0 at level 11).
    goal_requirement: i64,
    /// The member count the current goal was priced with.
    goal_member_count: i64,
    /// The latest member-count sample.
    last_user_count_sample: i64,
    /// Total of normal and system donations, cents.
    cumulative_donations_cents: i64,
    /// Highest seq among the mech's events.
    last_event_seq: u64,
    /// The `ts` of the event that last advanced the clock.
    #[schema(required = true)]
    last_event_ts: Option<String>,
}

/// The display state (`mechfund_core::Display`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Display)]
#[serde(deny_unknown_fields)]
pub struct DisplaySchema {
    /// The moment displayed (`null` when the mech has no events and no `now` was given).
    #[schema(required = true)]
    now: Option<String>,
    power_now: i64,
    power_max: i64,
    power_percent: i64,
    evo_percent: i64,
    is_offline: bool,
    can_level_up: bool,
    #[schema(minimum = 1, maximum = 21)]
    difficulty_bin: u8,
    tier: String,
}

/// One row of a goal table (`mechfund_core::GoalParts`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = GoalParts)]
#[serde(deny_unknown_fields)]
pub struct GoalPartsSchema {
    level: u8,
    base: i64,
    dynamic: i64,
    goal: i64,
}

/// The cost of reaching a level (`mechfund_core::whatif::Remaining`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Remaining)]
#[serde(deny_unknown_fields)]
pub struct RemainingSchema {
    level: u8,
    cost: i64,
}

/// A stored event line, as imported or written (tolerant: imported DDC lines may carry more).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventSchema {
    seq: u64,
    ts: String,
    /// `DonationAdded`, `SystemDonationAdded`, `MemberCountUpdated`, `PowerGiftGranted`,
    /// `DonationDeleted`, `LevelUpCommitted`, `ExactHitBonusGranted`, …
    #[serde(rename = "type")]
    kind: String,
    mech_id: String,
    /// The fields of the `type`; see `NewEvent` for those the server writes.
    #[schema(value_type = Object)]
    payload: serde_json::Map<String, serde_json::Value>,
}

/// An event the server has just written (`mechfund_core::Event`): its payload by `type`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = NewEvent)]
pub struct NewEventSchema {
    seq: u64,
    /// RFC 3339, microseconds, UTC.
    ts: String,
    mech_id: String,
    #[serde(flatten)]
    body: EventBodySchema,
}

/// The `type` and `payload` of an event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EventBody)]
#[serde(tag = "type", content = "payload")]
pub enum EventBodySchema {
    DonationAdded(DonationAddedPayload),
    SystemDonationAdded(SystemDonationAddedPayload),
    MemberCountUpdated(MemberCountUpdatedPayload),
    PowerGiftGranted(PowerGiftGrantedPayload),
    DonationDeleted(DonationDeletedPayload),
    LevelUpCommitted(LevelUpCommittedPayload),
    ExactHitBonusGranted(ExactHitBonusGrantedPayload),
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DonationAddedPayload {
    units: i64,
    #[schema(required = true)]
    donor: Option<String>,
    #[schema(required = true)]
    channel_id: Option<String>,
    #[schema(required = true)]
    donation_id: Option<String>,
    #[schema(required = true)]
    idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemDonationAddedPayload {
    power_units: i64,
    event_name: String,
    #[schema(required = true)]
    description: Option<String>,
    #[schema(required = true)]
    idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberCountUpdatedPayload {
    member_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerGiftGrantedPayload {
    power_units: i64,
    campaign_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DonationDeletedPayload {
    deleted_seq: u64,
    #[schema(required = true)]
    reason: Option<String>,
    #[schema(required = true)]
    donor: Option<String>,
    #[schema(required = true)]
    units: Option<i64>,
    #[schema(required = true)]
    original_type: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelUpCommittedPayload {
    from_level: u8,
    to_level: u8,
    old_goal_requirement: i64,
    exact_hit: bool,
    new_goal_requirement: i64,
    member_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExactHitBonusGrantedPayload {
    power_units: i64,
    from_level: u8,
    to_level: u8,
    reason: String,
}

/// The rules in force (`Rules::to_value`, spec §2.1).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Rules)]
#[serde(deny_unknown_fields)]
pub struct RulesSchema {
    /// Base cost of levels 1..=10, cents.
    #[schema(min_items = 10, max_items = 10)]
    level_base_costs: Vec<i64>,
    freebie_members: i64,
    cost_per_member: i64,
    member_cap: i64,
    dynamic_cap: i64,
    max_goal: i64,
    difficulty: DifficultySchema,
    decay_per_day: DecaySchema,
    exact_hit_bonus: i64,
}

/// `{"mode":"dynamic"}` or `{"mode":"static","multiplier_percent":N}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Difficulty)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum DifficultySchema {
    Dynamic,
    Static { multiplier_percent: i64 },
}

/// Cents per day, or a default with per-level overrides.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Decay)]
#[serde(untagged)]
pub enum DecaySchema {
    Flat(i64),
    PerLevel(DecayPerLevel),
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecayPerLevel {
    default: i64,
    /// Level ("1".."11") -> cents per day.
    levels: std::collections::BTreeMap<String, i64>,
}

#[cfg(test)]
mod tests {
    //! The mirrors above against what the core really serialises: every shape validated by a
    //! small JSON Schema checker (types, required, no unknown keys, oneOf/allOf, bounds).

    use mechfund_core::rules::{DecayPerDay, Difficulty};
    use mechfund_core::state::Effects;
    use mechfund_core::whatif::{goal_table, remaining_costs};
    use mechfund_core::{Cents, Command, Event, EventBody, Now, Rules, Stamp, State, Timestamp, decide, display};
    use serde_json::{Value, json};

    use super::*;
    use crate::serve::write;

    #[derive(Debug, OpenApi)]
    #[openapi(components(schemas(
        StateSchema,
        DisplaySchema,
        GoalPartsSchema,
        RemainingSchema,
        EventSchema,
        NewEventSchema,
        RulesSchema,
        ErrorBody,
        write::MemberCountForms
    )))]
    struct Mirrors;

    fn components() -> Value {
        serde_json::to_value(Mirrors::openapi()).unwrap_or_default()["components"]["schemas"].clone()
    }

    /// Checks `value` against `schema`; returns what is wrong, empty when it conforms.
    fn check(schemas: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
        if let Some(name) = schema["$ref"].as_str() {
            let name = name.trim_start_matches("#/components/schemas/");
            return check(schemas, &schemas[name], value, at);
        }
        let mut errors = Vec::new();
        if let Some(all) = schema["allOf"].as_array() {
            for s in all {
                errors.extend(check(schemas, s, value, at));
            }
        }
        if let Some(one) = schema["oneOf"].as_array() {
            let matching = one.iter().filter(|s| check(schemas, s, value, at).is_empty()).count();
            if matching != 1 {
                errors.push(format!("{at}: {matching} oneOf alternatives match {value}"));
            }
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let type_ok = |t: &str| match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        };
        if !types.is_empty() && !types.iter().any(|t| type_ok(t)) {
            errors.push(format!("{at}: {value} is not {types:?}"));
            return errors;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            errors.push(format!("{at}: {value} not in {allowed:?}"));
        }
        if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), value.as_f64())
            && n < min
        {
            errors.push(format!("{at}: {n} < {min}"));
        }
        if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), value.as_f64())
            && n > max
        {
            errors.push(format!("{at}: {n} > {max}"));
        }
        if let Some(object) = value.as_object() {
            let properties = schema["properties"].as_object();
            for key in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !object.contains_key(key) {
                    errors.push(format!("{at}: missing \"{key}\""));
                }
            }
            for (key, v) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(s) => errors.extend(check(schemas, s, v, &format!("{at}.{key}"))),
                    None if schema["additionalProperties"] == json!(false) => {
                        errors.push(format!("{at}: unknown key \"{key}\""));
                    }
                    None => {
                        if let Some(s) = schema["additionalProperties"].as_object() {
                            errors.extend(check(schemas, &Value::Object(s.clone()), v, &format!("{at}.{key}")));
                        }
                    }
                }
            }
        }
        if let Some(items) = value.as_array() {
            for (i, item) in items.iter().enumerate() {
                errors.extend(check(schemas, &schema["items"], item, &format!("{at}[{i}]")));
            }
        }
        errors
    }

    #[track_caller]
    fn conforms(name: &str, value: &impl serde::Serialize) {
        let schemas = components();
        assert!(schemas[name].is_object(), "no schema {name}");
        let value = serde_json::to_value(value).unwrap_or_default();
        let errors = check(&schemas, &json!({"$ref": name}), &value, name);
        assert!(errors.is_empty(), "{name} drifted from the core's serialisation:\n{}", errors.join("\n"));
    }

    /// A mech after a donation that hit the goal exactly (donation, level-up and bonus events).
    fn busy_state(rules: &Rules) -> (State, Vec<Event>) {
        let mut state = State::initial("main", rules, [None; 10]);
        let command = Command::AddDonation {
            amount: Cents(state.goal_requirement),
            donor: Some("alice".into()),
            channel_id: None,
            donation_id: Some("d-1".into()),
            idempotency_key: None,
            member_count: None,
        };
        let stamp = Stamp { next_seq: 1, now: Timestamp(1_700_000_000_000_000) };
        let events = decide(&state, &command, rules, stamp).unwrap_or_default();
        let mut effects = Effects::default();
        for event in &events {
            effects.clear();
            state.apply(&event.record(), rules, &mut effects);
        }
        (state, events)
    }

    #[test]
    fn state_display_and_whatif_match_the_core() {
        let rules = Rules::default();
        let fresh = State::initial("main", &rules, [None; 10]);
        let (busy, _) = busy_state(&rules);
        assert!(busy.last_event_ts.is_some() && busy.level == 2, "{busy:?}");
        for state in [&fresh, &busy] {
            conforms("State", state);
            conforms("Display", &display(state, &rules, None));
            let now = Now::parse("2030-01-01T00:00:00+00:00").unwrap_or_else(|e| panic!("{e}"));
            conforms("Display", &display(state, &rules, Some(&now)));
            for members in [0, 5000, i64::MAX] {
                for row in goal_table(members, &rules) {
                    conforms("GoalParts", &row);
                }
                for row in remaining_costs(state, members, &rules) {
                    conforms("Remaining", &row);
                }
            }
        }
    }

    #[test]
    fn every_event_kind_matches_the_core() {
        let rules = Rules::default();
        let (_, mut events) = busy_state(&rules);
        let kinds: Vec<String> = events.iter().map(|e| e.body.kind().name().to_owned()).collect();
        assert_eq!(kinds, ["DonationAdded", "LevelUpCommitted", "ExactHitBonusGranted"]);
        let more = [
            EventBody::MemberCountUpdated { member_count: 40 },
            EventBody::SystemDonationAdded {
                power_units: 100,
                event_name: "raid".into(),
                description: None,
                idempotency_key: Some("k".into()),
            },
            EventBody::PowerGiftGranted { power_units: 200, campaign_id: "spring".into() },
            EventBody::DonationDeleted {
                deleted_seq: 2,
                reason: Some("refund".into()),
                donor: Some("alice".into()),
                units: Some(1000),
                original_type: Some("DonationAdded".into()),
            },
        ];
        for (i, body) in more.into_iter().enumerate() {
            events.push(Event {
                seq: 10 + i as u64,
                ts: Timestamp(1_700_000_000_000_000),
                mech_id: "main".into(),
                body,
            });
        }
        for event in &events {
            conforms("NewEvent", event);
            conforms("Event", event);
            // The stored line is the same object.
            let line: Value = serde_json::from_str(&event.to_json_line()).unwrap_or_default();
            conforms("NewEvent", &line);
        }
    }

    #[test]
    fn rules_match_the_core() {
        let mut rules = Rules::default();
        conforms("Rules", &rules.to_value());
        rules.difficulty = Difficulty::Static { multiplier_percent: 150 };
        rules.decay_per_day = DecayPerDay { default: 100, levels: [(3, 50), (11, 0)].into_iter().collect() };
        conforms("Rules", &rules.to_value());
    }

    #[test]
    fn errors_match_their_schema() {
        let error = crate::serve::error::ApiError::invalid("amount: too small");
        let body: Value = serde_json::from_str(&error.body()).unwrap_or_default();
        conforms("ErrorBody", &body);
        assert_eq!(body, json!({"error": {"code": "invalid_value", "message": "amount: too small"}}));
    }

    #[test]
    fn the_member_count_forms_accept_what_the_handler_accepts() {
        let schemas = components();
        let bodies = [
            (json!({"member_count": 40}), true),
            (json!({"channels": [{"id": "1", "members": [{"id": "a"}, {"id": "b", "bot": true}]}]}), true),
            (json!({"channels": [], "guild_member_count": 12}), true),
            (json!({"channels": [{"id": "1", "accessible": false}], "guild_member_count": null}), true),
            (json!({"member_count": 40, "channels": []}), false),
            (json!({"member_count": 40, "guild_member_count": 3}), false),
            (json!({"guild_member_count": 3}), false),
            (json!({"member_count": null}), false),
            (json!({"member_count": 40, "note": "x"}), false),
            (json!({}), false),
        ];
        for (body, valid) in bodies {
            let documented = check(&schemas, &json!({"$ref": "MemberCountBody"}), &body, "body").is_empty();
            let handled = serde_json::from_value::<write::MemberCountBody>(body.clone())
                .is_ok_and(|decoded| write::member_source(decoded).is_ok());
            assert_eq!((documented, handled), (valid, valid), "{body}");
        }
    }

    #[test]
    fn the_checker_catches_drift() {
        let schemas = components();
        let extra = json!({"power_units": 1, "campaign_id": "x", "bonus": 1});
        assert!(!check(&schemas, &json!({"$ref": "PowerGiftGrantedPayload"}), &extra, "p").is_empty());
        let missing = json!({"level": 1, "cost": "1"});
        assert!(!check(&schemas, &json!({"$ref": "Remaining"}), &missing, "r").is_empty());
    }
}
