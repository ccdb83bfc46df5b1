//! mechfund-wasm: `mechfund-core` for the browser.
//!
//! Two things, both thin: the JS API of spec §3.4 (`replayLog`, `goalFor`, `goalTable`,
//! `previewDonation`, `defaultRules`), which only converts between JS values and the core's
//! types, and the `<mechfund-progress>` custom element ([`element`]). The package's entry module
//! `mechfund-progress.js` (`js/`, copied into the package by `cargo xtask wasm`) defines the
//! element before it instantiates the wasm, so a page whose CSP forbids WebAssembly shows why;
//! `init()` of `mechfund_wasm.js` alone still defines it once the wasm runs. No domain logic
//! lives here.
//!
//! Every JS value crossing in is checked and refused with a JS `Error` that names the field (or
//! the log line, with a `line` property) — never a panic, never a silent default.

use mechfund_core::ddc::Snapshot;
use mechfund_core::decide::Stamp;
use mechfund_core::state::STATE_FIELDS;
use mechfund_core::whatif::{goal_table, preview_donation};
use mechfund_core::{Cents, Now, ReplayOptions, Rules, State, Timestamp, replay_bytes};
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;

pub mod element;

/// The allocator: talc instead of the default dlmalloc, smaller (the package's size budget) and
/// faster.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Rules in the JSON form of spec §2.1; every key optional. */
export interface Rules {
  level_base_costs?: number[];
  freebie_members?: number;
  cost_per_member?: number;
  member_cap?: number;
  dynamic_cap?: number;
  max_goal?: number;
  difficulty?: { mode: "dynamic" } | { mode: "static"; multiplier_percent: number };
  decay_per_day?: number | { default?: number; levels?: Record<string, number> };
  exact_hit_bonus?: number;
}
/** `now`: an RFC 3339 string or epoch milliseconds. */
export type Instant = string | number;
export interface DdcSnapshot { level: number; evo_acc: number; power_acc: number; goal_requirement: number; last_event_seq: number; last_user_count_sample?: number; cumulative_donations_cents?: number; difficulty_bin?: number; [key: string]: unknown }
export interface ReplayOptions { mech?: string; rules?: Rules; now?: Instant; strict?: boolean; timeline?: boolean; ddc_snapshot?: DdcSnapshot }
export interface MechState {
  mech_id: string; level: number; evo_acc: number; power_acc: number; goal_requirement: number;
  goal_member_count: number; last_user_count_sample: number; cumulative_donations_cents: number;
  last_event_seq: number; last_event_ts: string | null;
}
export interface Display {
  now: string | null; power_now: number; power_max: number; power_percent: number; evo_percent: number;
  is_offline: boolean; can_level_up: boolean; difficulty_bin: number; tier: string;
}
export type DiagnosticKind = "bad_line" | "duplicate_seq" | "ts_backwards" | "invalid_payload" | "unknown_type"
  | "bad_delete_target" | "recorded_goal_differs" | "levelup_missing" | "levelup_extra" | "levelup_mismatch"
  | "superseded" | "no_events" | "bonus_deletion" | "ddc_snapshot_differs";
export interface Diagnostic { kind: DiagnosticKind; severity: "info" | "warning"; line?: number; seq?: number; message: string }
export interface LevelUp {
  seq: number; ts: string; from_level: number; to_level: number; exact_hit: boolean;
  old_goal: number; new_goal: number; member_count: number;
}
export interface TimelinePoint {
  seq: number; ts: string; level: number; evo_acc: number; power_acc: number; goal_requirement: number;
  cumulative_donations_cents: number; member_count: number;
}
export interface ReplayResult {
  state: MechState; display: Display; diagnostics: Diagnostic[]; level_ups: LevelUp[]; timeline?: TimelinePoint[];
}
export interface GoalRow { level: number; base: number; dynamic: number; goal: number }
export interface MechEvent { seq: number; ts: string; type: string; mech_id: string; payload: Record<string, unknown> }
export interface PreviewOptions { members?: number; rules?: Rules; now?: Instant }
export interface Preview { events: MechEvent[]; state: MechState }
/** A replay error: `line` is set when strict replay stopped at a bad line. */
export interface MechfundError extends Error { line?: number }
"#;

/// Gives `<mechfund-progress>` its implementation when the module is initialised.
///
/// No panic hook: nothing here panics on any input, and the package is built with panics as
/// immediate aborts (the size budget), where a hook would never run.
#[wasm_bindgen(start)]
pub fn start() {
    element::define();
}

/// A JS `Error` with `message`.
pub(crate) fn js_error(message: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&message.to_string()).into()
}

/// Converts a Rust value to plain JS objects (maps as objects, `None` as `null`).
///
/// Through JSON text and `JSON.parse`: the core already carries serde_json's serializer, so this
/// costs no extra code in the package (the size budget), and the browser's parser is fast.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    parse_js(serde_json::to_string(value))
}

/// The second half of [`to_js`], once for every type.
fn parse_js(text: serde_json::Result<String>) -> Result<JsValue, JsValue> {
    js_sys::JSON::parse(&text.map_err(js_error)?)
}

/// `items` separated by ", ", for messages (`[&str]::join` costs the package ~1 KB).
pub(crate) fn comma_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut list = String::new();
    for item in items {
        if !list.is_empty() {
            list.push_str(", ");
        }
        list.push_str(item);
    }
    list
}

/// `value` as compact JSON for a message (`Value`'s `Display` would link a second serializer).
fn json_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Parses JSON text. Through `from_slice`, the reader the core parses event lines with: one
/// copy of serde_json's parser in the package instead of two (the size budget).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    serde_json::from_slice(text.as_bytes())
}

/// A JS value as JSON, via `JSON.stringify`, so integers stay integers and floats stay floats.
fn to_json(value: &JsValue, what: &str) -> Result<Value, JsValue> {
    let text = js_sys::JSON::stringify(value).map_err(|_| js_error(format!("{what}: cannot be read as JSON")))?;
    let text = text.as_string().ok_or_else(|| js_error(format!("{what}: cannot be read as JSON")))?;
    parse_json(&text).map_err(|e| js_error(format!("{what}: {e}")))
}

/// How JS would print `value` (kept out of Rust's float formatting, which costs package size).
fn show(value: &JsValue) -> String {
    if let Some(n) = value.as_f64() {
        return js_sys::Number::from(n).to_string_with_radix(10).map(String::from).unwrap_or_default();
    }
    js_sys::JSON::stringify(value).ok().and_then(|s| s.as_string()).unwrap_or_else(|| "undefined".to_owned())
}

fn is_absent(value: &JsValue) -> bool {
    value.is_undefined() || value.is_null()
}

/// The options object as JSON, refusing keys it does not know.
fn options_object(value: &JsValue, what: &str, known: &[&str]) -> Result<serde_json::Map<String, Value>, JsValue> {
    if is_absent(value) {
        return Ok(serde_json::Map::new());
    }
    if !value.is_object() || js_sys::Array::is_array(value) {
        return Err(js_error(format!("{what}: expected an object like {{{}}}", comma_list(known.iter().copied()))));
    }
    let Value::Object(map) = to_json(value, what)? else {
        return Err(js_error(format!("{what}: expected an object")));
    };
    if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(js_error(format!("{what}.{key}: unknown option (known: {})", comma_list(known.iter().copied()))));
    }
    Ok(map)
}

/// Rules from a JS object (or `undefined` for the defaults).
pub(crate) fn rules_from(value: Option<&Value>) -> Result<Rules, JsValue> {
    match value {
        None | Some(Value::Null) => Ok(Rules::default()),
        Some(rules) => Rules::from_value(rules).map_err(js_error),
    }
}

fn rules_arg(value: &JsValue) -> Result<Rules, JsValue> {
    if is_absent(value) { Ok(Rules::default()) } else { rules_from(Some(&to_json(value, "rules")?)) }
}

/// `now` from an RFC 3339 string or epoch milliseconds.
pub(crate) fn now_from(value: Option<&Value>, what: &str) -> Result<Option<Now>, JsValue> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Now::parse(text).map(Some).map_err(|e| js_error(format!("{what}: {e}"))),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(ms) => Ok(Some(Now::from_millis(ms))),
            None => Err(js_error(format!("{what}: {n} is not a whole number of epoch milliseconds"))),
        },
        Some(other) => Err(js_error(format!(
            "{what}: expected an RFC 3339 string or epoch milliseconds, found {}",
            json_text(other)
        ))),
    }
}

fn bool_option(map: &serde_json::Map<String, Value>, key: &str) -> Result<bool, JsValue> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(js_error(format!("options.{key}: expected true or false, found {}", json_text(other)))),
    }
}

/// `options.ddc_snapshot`: DDC's snapshot object, or nothing.
fn snapshot_from(value: Option<&Value>) -> Result<Option<Snapshot>, JsValue> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => Snapshot::from_json("options.ddc_snapshot", &json_text(value))
            .map(Some)
            .map_err(|e| js_error(format!("{}.{}", e.file, e.message))),
    }
}

/// A JS number that must be a whole number.
fn integer_arg(value: &JsValue, what: &str) -> Result<i64, JsValue> {
    let n = value.as_f64().ok_or_else(|| js_error(format!("{what}: expected a number, found {}", show(value))))?;
    let max = 9_007_199_254_740_991.0;
    if n.fract() != 0.0 || !n.is_finite() || n.abs() > max {
        return Err(js_error(format!("{what}: {} is not a whole number", show(value))));
    }
    #[allow(clippy::cast_possible_truncation, reason = "checked above: a safe integer")]
    Ok(n as i64)
}

#[wasm_bindgen]
extern "C" {
    /// The browser's `TextEncoder`: its `encodeInto` takes a JS string as it is.
    type TextEncoder;
    #[wasm_bindgen(constructor)]
    fn new() -> TextEncoder;
    /// Writes `source` as UTF-8 into `destination` (a view of wasm memory, no copy) as far as
    /// whole characters fit.
    #[wasm_bindgen(method, js_name = encodeInto)]
    fn encode_into(this: &TextEncoder, source: &js_sys::JsString, destination: &mut [u8]) -> EncodeIntoResult;

    /// What `encodeInto` did: UTF-16 code units read, bytes written.
    type EncodeIntoResult;
    #[wasm_bindgen(method, getter)]
    fn read(this: &EncodeIntoResult) -> u32;
    #[wasm_bindgen(method, getter)]
    fn written(this: &EncodeIntoResult) -> u32;
}

/// `text` as UTF-8 (lone surrogates become U+FFFD), or an `Error` naming `what` when it is no
/// string.
///
/// wasm-bindgen's own conversion of a `&str` argument copies an ASCII string into wasm memory
/// one character at a time in JS: 50-120 ms for a 22 MB log in V8, most of `replayLog`'s time.
/// `TextEncoder.encodeInto` does the same in 3-5 ms.
pub(crate) fn utf8_of(text: &JsValue, what: &str) -> Result<Vec<u8>, JsValue> {
    let Some(text) = text.dyn_ref::<js_sys::JsString>() else {
        return Err(js_error(format!("{what}: expected a string, found {}", show(text))));
    };
    let encoder = TextEncoder::new();
    // One byte per UTF-16 code unit is room for ASCII; the rest is encoded again with room for
    // three bytes per unit, the most one takes (a surrogate pair: two units, four bytes).
    let units = text.length();
    let mut out = vec![0; units as usize];
    let done = encoder.encode_into(text, &mut out);
    let (read, mut written) = (done.read(), done.written() as usize);
    if read < units {
        let rest = text.slice(read, units);
        out.resize(written + rest.length() as usize * 3, 0);
        written += encoder.encode_into(&rest, &mut out[written..]).written() as usize;
    }
    out.truncate(written);
    Ok(out)
}

/// [`utf8_of`] as a `String`; `None` when `value` is no string.
pub(crate) fn string_of(value: &JsValue) -> Option<String> {
    utf8_of(value, "").ok().and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Replays an events.jsonl text and returns the replay result of spec §3.1.
///
/// `options = {mech?, rules?, now?, strict?, timeline?, ddc_snapshot?}` (`ddc_snapshot`: the
/// object of DDC's `progress/snapshots/{mech}.json`, spec §2.8). Throws an `Error` naming the bad
/// option, or (strict mode) the bad line, with its number in `error.line`.
#[wasm_bindgen(js_name = replayLog, unchecked_return_type = "ReplayResult")]
pub fn replay_log(
    #[wasm_bindgen(unchecked_param_type = "string")] text: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "ReplayOptions")] options: JsValue,
) -> Result<JsValue, JsValue> {
    let text = utf8_of(text, "text")?;
    let map = options_object(&options, "options", &["mech", "rules", "now", "strict", "timeline", "ddc_snapshot"])?;
    let mech = match map.get("mech") {
        None | Some(Value::Null) => "main".to_owned(),
        Some(Value::String(mech)) if !mech.is_empty() => mech.clone(),
        Some(other) => {
            return Err(js_error(format!("options.mech: expected a mech id string, found {}", json_text(other))));
        }
    };
    let rules = rules_from(map.get("rules"))?;
    let replay_options = ReplayOptions {
        mech,
        strict: bool_option(&map, "strict")?,
        timeline: bool_option(&map, "timeline")?,
        now: now_from(map.get("now"), "options.now")?,
        ddc_snapshot: snapshot_from(map.get("ddc_snapshot"))?,
    };
    match replay_bytes(&text, &rules, replay_options) {
        Ok(result) => to_js(&result),
        Err(strict) => {
            let error = js_sys::Error::new(&strict.to_string());
            js_sys::Reflect::set(&error, &JsValue::from_str("line"), &JsValue::from_f64(strict.line as f64))?;
            Err(error.into())
        }
    }
}

/// The goal of `level` (1..=11; 0 at 11) for `members` members, in cents.
#[wasm_bindgen(js_name = goalFor)]
pub fn goal_for(
    level: JsValue,
    members: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Rules | undefined")] rules: JsValue,
) -> Result<f64, JsValue> {
    let level = integer_arg(&level, "level")?;
    let level = u8::try_from(level)
        .ok()
        .filter(|l| (1..=11).contains(l))
        .ok_or_else(|| js_error(format!("level: {level} is not a level (1..11)")))?;
    let members = integer_arg(&members, "members")?;
    #[allow(clippy::cast_precision_loss, reason = "goals are at most 2^53")]
    Ok(rules_arg(&rules)?.goal(level, members) as f64)
}

/// The goal table `[{level, base, dynamic, goal}]` of levels 1..10 for `members` members.
#[wasm_bindgen(js_name = goalTable, unchecked_return_type = "GoalRow[]")]
pub fn goal_table_js(
    members: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Rules | undefined")] rules: JsValue,
) -> Result<JsValue, JsValue> {
    let members = integer_arg(&members, "members")?;
    to_js(&goal_table(members, &rules_arg(&rules)?))
}

/// The default rules, in their JSON form.
#[wasm_bindgen(js_name = defaultRules, unchecked_return_type = "Rules")]
pub fn default_rules() -> Result<JsValue, JsValue> {
    to_js(&Rules::default().to_value())
}

/// A whole, non-negative number field of the state object; `required` ones must be present.
fn state_number(map: &serde_json::Map<String, Value>, field: &str, required: bool) -> Result<i64, JsValue> {
    match map.get(field) {
        None | Some(Value::Null) if !required => Ok(0),
        None | Some(Value::Null) => Err(js_error(format!("state.{field}: missing"))),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if v >= 0 => Ok(v),
            _ => Err(js_error(format!("state.{field}: {n} is not a whole number of 0 or more"))),
        },
        Some(other) => Err(js_error(format!("state.{field}: expected a number, found {}", json_text(other)))),
    }
}

/// Rebuilds a core [`State`] from the contract's state object.
///
/// The object does not carry the decay remainder (under one cent) or goals recorded in the log
/// for levels not reached yet; previews use the clock from `last_event_ts` and the formula.
pub(crate) fn state_from(value: &Value, rules: &Rules) -> Result<State, JsValue> {
    let Value::Object(map) = value else {
        return Err(js_error("state: expected the state object of a replay result"));
    };
    if let Some(key) = map.keys().find(|k| !STATE_FIELDS.contains(&k.as_str())) {
        return Err(js_error(format!("state.{key}: unknown field")));
    }
    let level = state_number(map, "level", true)?;
    let level = u8::try_from(level)
        .ok()
        .filter(|l| (1..=11).contains(l))
        .ok_or_else(|| js_error(format!("state.level: {level} is not a level (1..11)")))?;
    let mech_id = match map.get("mech_id") {
        None | Some(Value::Null) => "main".to_owned(),
        Some(Value::String(id)) => id.clone(),
        Some(other) => return Err(js_error(format!("state.mech_id: expected a string, found {}", json_text(other)))),
    };
    let last_event_ts = match map.get("last_event_ts") {
        None | Some(Value::Null) => None,
        Some(Value::String(ts)) => Some(ts.clone()),
        Some(other) => {
            return Err(js_error(format!("state.last_event_ts: expected a string, found {}", json_text(other))));
        }
    };
    let clock = match &last_event_ts {
        Some(ts) => Some(Timestamp::parse(ts).map_err(|e| js_error(format!("state.last_event_ts: {e}")))?),
        None => None,
    };
    let mut state = State::initial(&mech_id, rules, [None; 10]);
    state.level = level;
    state.evo_acc = state_number(map, "evo_acc", true)?;
    state.power_acc = state_number(map, "power_acc", true)?;
    state.goal_requirement = state_number(map, "goal_requirement", true)?;
    state.goal_member_count = state_number(map, "goal_member_count", false)?;
    state.last_user_count_sample = state_number(map, "last_user_count_sample", false)?;
    state.cumulative_donations_cents = state_number(map, "cumulative_donations_cents", false)?;
    state.last_event_seq = state_number(map, "last_event_seq", false)?.unsigned_abs();
    state.last_event_ts = last_event_ts.as_deref().and_then(mechfund_core::parse::TsText::new);
    state.clock = clock;
    // Only donations add evolution at level 1, and only donations level up.
    state.donation_applied = state.level > 1 || state.evo_acc > 0;
    Ok(state)
}

/// Previews a donation of `amountCents` on `state` (a replay result's `state`): the events it
/// would append and the state after them. `options = {members?, rules?, now?}`; `now` defaults
/// to the browser's clock.
#[wasm_bindgen(js_name = previewDonation, unchecked_return_type = "Preview")]
pub fn preview_donation_js(
    #[wasm_bindgen(unchecked_param_type = "MechState")] state: JsValue,
    amount_cents: JsValue,
    #[wasm_bindgen(unchecked_param_type = "PreviewOptions | undefined")] options: JsValue,
) -> Result<JsValue, JsValue> {
    let map = options_object(&options, "options", &["members", "rules", "now"])?;
    let rules = rules_from(map.get("rules"))?;
    if is_absent(&state) {
        return Err(js_error("state: expected the state object of a replay result"));
    }
    let state = state_from(&to_json(&state, "state")?, &rules)?;
    let amount = integer_arg(&amount_cents, "amountCents")?;
    let members = match map.get("members") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            Some(n.as_i64().ok_or_else(|| js_error(format!("options.members: {n} is not a whole number")))?)
        }
        Some(other) => return Err(js_error(format!("options.members: expected a number, found {}", json_text(other)))),
    };
    #[allow(clippy::cast_possible_truncation, reason = "Date.now() is a whole number of milliseconds")]
    let now = now_from(map.get("now"), "options.now")?
        .map_or_else(|| Timestamp::from_millis(js_sys::Date::now() as i64), |n| n.ts);
    let stamp = Stamp { next_seq: state.last_event_seq + 1, now };
    let preview = preview_donation(&state, Cents(amount), members, &rules, stamp).map_err(js_error)?;
    to_js(&preview)
}
