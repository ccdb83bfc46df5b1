//! What a UI shows at a given moment (spec §2.5, DDC's `compute_ui_state`).

use serde::Serialize;

use crate::rules::{MAX_LEVEL, Rules};
use crate::state::{State, decay};
use crate::time::{Timestamp, TimestampError};

/// A moment to display the state at, with the text it was given as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Now {
    /// The instant.
    pub ts: Timestamp,
    /// How to print it.
    pub text: String,
}

impl Now {
    /// Reads an RFC 3339 timestamp, keeping its text.
    ///
    /// # Errors
    /// If the text is not a valid RFC 3339 timestamp.
    pub fn parse(text: &str) -> Result<Now, TimestampError> {
        Ok(Now { ts: Timestamp::parse(text)?, text: text.to_owned() })
    }

    /// A moment from epoch milliseconds, printed in UTC.
    #[must_use]
    pub fn from_millis(millis: i64) -> Now {
        let ts = Timestamp::from_millis(millis);
        Now { ts, text: ts.to_string() }
    }
}

/// The display state of the contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Display {
    /// The moment displayed (`null` when the mech has no events and no `now` was given).
    pub now: Option<String>,
    /// Power decayed to `now`.
    pub power_now: i64,
    /// Goal + 100 (100 at level 11).
    pub power_max: i64,
    /// `power_now` as a percentage of `power_max`, at most 99 below level 11.
    pub power_percent: i64,
    /// Evolution toward the goal, 0..=100.
    pub evo_percent: i64,
    /// No power left.
    pub is_offline: bool,
    /// Evolution has reached the goal below level 11.
    pub can_level_up: bool,
    /// DDC's difficulty bin, 1..=21.
    pub difficulty_bin: u8,
    /// The community tier name.
    pub tier: &'static str,
}

/// DDC's 21 lower bounds of the difficulty bins.
pub const BIN_LOWER_BOUNDS: [i64; 21] =
    [0, 25, 50, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 7500, 10000];

/// The difficulty bin (1-based) of a member count.
#[must_use]
pub fn difficulty_bin(members: i64) -> u8 {
    let below = BIN_LOWER_BOUNDS.partition_point(|&bound| bound <= members);
    u8::try_from(below.max(1)).unwrap_or(21)
}

/// The tier name of a difficulty bin.
#[must_use]
pub fn tier(bin: u8) -> &'static str {
    match bin {
        0 | 1 => "Tiny Community",
        2 => "Small Community",
        3 => "Medium Community",
        4 | 5 => "Large Community",
        6..=10 => "Huge Community",
        _ => "Massive Community",
    }
}

/// Power decayed from the state's clock to `now` (a `now` before the clock counts as the clock).
#[must_use]
pub fn power_at(state: &State, rules: &Rules, now: Timestamp) -> i64 {
    match state.clock {
        Some(clock) => {
            let elapsed = now.micros().saturating_sub(clock.micros()).max(0);
            decay(state.power_acc, state.decay_remainder, elapsed, rules.decay_per_day.at(state.level)).0
        }
        None => state.power_acc,
    }
}

/// The display state at `now` (default: the last event's time).
#[must_use]
pub fn display(state: &State, rules: &Rules, now: Option<&Now>) -> Display {
    let effective = match (now, state.clock) {
        (Some(now), Some(clock)) if now.ts < clock => None,
        (now, _) => now,
    };
    let (power_now, shown) = match effective {
        Some(now) => (power_at(state, rules, now.ts), Some(now.text.clone())),
        None => (state.power_acc, state.last_event_ts.map(|ts| ts.to_string())),
    };
    let goal = state.goal_requirement;
    let power_max = goal.saturating_add(100);
    let max_level = state.level >= MAX_LEVEL;
    let power_cap = if max_level { 100 } else { 99 };
    let power_percent = (i128::from(power_now) * 100 / i128::from(power_max)).min(power_cap);
    let evo_percent = if goal == 0 { 100 } else { (i128::from(state.evo_acc) * 100 / i128::from(goal)).min(100) };
    let bin = difficulty_bin(state.last_user_count_sample);
    Display {
        now: shown,
        power_now,
        power_max,
        power_percent: i64::try_from(power_percent).unwrap_or(0),
        evo_percent: i64::try_from(evo_percent).unwrap_or(0),
        is_offline: power_now == 0,
        can_level_up: !max_level && state.evo_acc >= goal,
        difficulty_bin: bin,
        tier: tier(bin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_ddc_lower_bounds() {
        assert_eq!(difficulty_bin(0), 1);
        assert_eq!(difficulty_bin(24), 1);
        assert_eq!(difficulty_bin(25), 2);
        assert_eq!(difficulty_bin(999), 10);
        assert_eq!(difficulty_bin(1000), 11);
        assert_eq!(difficulty_bin(100_000), 21);
        assert_eq!(tier(difficulty_bin(150)), "Large Community");
        assert_eq!(tier(difficulty_bin(1000)), "Massive Community");
    }
}
