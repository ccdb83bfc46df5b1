//! The mech's state and the fold step `apply` (spec §2.4.5–2.4.6).
//!
//! [`State::apply`] is the single place where an event changes the state: replay calls it for
//! every event it keeps, and the server calls it for every event it writes, so the live path and
//! the replay of the exported log cannot drift apart.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::parse::{Kind, Record, TsText, Val};
use crate::rules::{MAX_LEVEL, MAX_REPLAYED_DONATION, MAX_SYSTEM_DONATION, POWER_CAP, Rules};
use crate::time::{MICROS_PER_DAY, Timestamp};

/// A goal recorded by a `LevelUpCommitted`: the goal and the seq that recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedGoal {
    /// Seq of the recording event; the highest seq wins.
    pub seq: u64,
    /// The goal in cents.
    pub goal: i64,
}

/// A goal known from outside the log: DDC's snapshot of the mech (spec §2.8). It prices
/// `level` when that level is entered by an event at or before `seq` (the snapshot is not older
/// than the level-up), unless the log records a goal for the level at a higher seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownGoal {
    /// The level it is the goal of (1..=10).
    pub level: u8,
    /// The goal in cents.
    pub goal: i64,
    /// The last seq the snapshot had seen.
    pub seq: u64,
}

/// The keys of the contract's `state` object (spec §3.1), in order.
pub const STATE_FIELDS: [&str; 10] = [
    "mech_id",
    "level",
    "evo_acc",
    "power_acc",
    "goal_requirement",
    "goal_member_count",
    "last_user_count_sample",
    "cumulative_donations_cents",
    "last_event_seq",
    "last_event_ts",
];

/// Everything the fold carries. The first ten fields are the contract's `state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct State {
    /// Which mech.
    pub mech_id: String,
    /// 1..=11.
    pub level: u8,
    /// Evolution toward the current goal.
    pub evo_acc: i64,
    /// Power (decays over time).
    pub power_acc: i64,
    /// The goal of the current level (0 at level 11).
    pub goal_requirement: i64,
    /// The member count the current goal was priced with.
    pub goal_member_count: i64,
    /// The latest member-count sample.
    pub last_user_count_sample: i64,
    /// Total of normal and system donations.
    pub cumulative_donations_cents: i64,
    /// Highest seq among the mech's well-formed events.
    pub last_event_seq: u64,
    /// The `ts` (as written) of the event that last advanced the clock.
    pub last_event_ts: Option<TsText>,
    /// The decay clock; `None` before the first clock-moving event.
    #[serde(skip)]
    pub clock: Option<Timestamp>,
    /// Decay not yet taken, in cent-microseconds (< one day's worth).
    #[serde(skip)]
    pub decay_remainder: i64,
    /// Whether a `DonationAdded` has taken effect (ends level-1 re-pricing).
    #[serde(skip)]
    pub donation_applied: bool,
    /// Goals recorded by `LevelUpCommitted` events, for levels 1..=10 (index 0 is level 1).
    #[serde(skip)]
    pub recorded_goals: [Option<RecordedGoal>; 10],
    /// The goal DDC's snapshot gives for its level, if replay was given one.
    #[serde(skip)]
    pub known_goal: Option<KnownGoal>,
    /// Gift campaigns already granted (or granted and deleted) for this mech.
    #[serde(skip)]
    pub used_campaigns: BTreeSet<String>,
}

/// A level-up derived while applying a donation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LevelUp {
    /// Seq of the donation that caused it.
    pub seq: u64,
    /// `ts` of that donation.
    pub ts: String,
    /// Level before.
    pub from_level: u8,
    /// Level after.
    pub to_level: u8,
    /// Whether the donation hit the goal exactly (a bonus was granted).
    pub exact_hit: bool,
    /// The goal that was reached.
    pub old_goal: i64,
    /// The goal of the new level (0 at 11).
    pub new_goal: i64,
    /// The member sample the new goal was priced with.
    pub member_count: i64,
    /// Bonus power granted (0 unless exact).
    #[serde(skip)]
    pub bonus: i64,
}

/// Something replay reports about an applied event (the caller adds line and seq).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// The event's `ts` is before the clock.
    TsBackwards {
        /// The clock it fell behind.
        clock: Timestamp,
    },
    /// A required payload field is missing, mistyped or out of range.
    InvalidPayload(String),
    /// The type is not one replay knows.
    UnknownType(String),
    /// A level was entered with a recorded goal that differs from the formula.
    RecordedGoalDiffers {
        /// The level entered.
        level: u8,
        /// The goal the log recorded (used).
        recorded: i64,
        /// The goal the rules give.
        formula: i64,
        /// The goal came from DDC's snapshot rather than a `LevelUpCommitted`.
        from_snapshot: bool,
    },
}

/// What applying one event produced besides the new state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Level-ups, in order.
    pub level_ups: Vec<LevelUp>,
    /// Things to report.
    pub notes: Vec<Note>,
}

impl Effects {
    /// Empties both lists, keeping their allocations.
    pub fn clear(&mut self) {
        self.level_ups.clear();
        self.notes.clear();
    }
}

/// Power after `elapsed_us` of decay at `rate` cents/day, carrying the sub-cent remainder.
/// Returns `(power, remainder)`.
#[must_use]
pub fn decay(power: i64, remainder: i64, elapsed_us: i64, rate: i64) -> (i64, i64) {
    let n = i128::from(elapsed_us.max(0)) * i128::from(rate) + i128::from(remainder);
    let day = i128::from(MICROS_PER_DAY);
    let lost = n / day;
    let power = (i128::from(power) - lost).max(0);
    (i64::try_from(power).unwrap_or(0), i64::try_from(n % day).unwrap_or(0))
}

/// Records a positive `goal` for `level` (1..=10) unless a higher seq already recorded one
/// ("highest seq wins", spec §2.4.4). Anything that is not a positive integer is ignored.
pub fn record_goal(goals: &mut [Option<RecordedGoal>; 10], level: Val, goal: Val, seq: u64) {
    let (Val::Int(level), Val::Int(goal)) = (level, goal) else {
        return;
    };
    let Some(slot) = usize::try_from(level - 1).ok().and_then(|i| goals.get_mut(i)) else {
        return;
    };
    if goal > 0 && slot.is_none_or(|r| r.seq <= seq) {
        *slot = Some(RecordedGoal { seq, goal });
    }
}

/// A goal as priced, with the formula's goal and the source when something overrode it.
struct Price {
    goal: i64,
    /// `(formula, from_snapshot)` when a recorded or known goal was used.
    overridden: Option<(i64, bool)>,
}

fn ranged(field: &str, value: Val, max: i64) -> Result<i64, String> {
    match value {
        Val::Int(n) if (1..=max).contains(&n) => Ok(n),
        Val::Int(n) => Err(format!("\"{field}\" is {n}, outside 1..={max} cents")),
        other => Err(format!("\"{field}\" must be an integer number of cents, found {}", other.describe())),
    }
}

fn add_power(power: i64, units: i64) -> i64 {
    power.saturating_add(units).min(POWER_CAP)
}

impl State {
    /// The state before any event: level 1, goal for 0 members (or the recorded level-1 goal).
    #[must_use]
    pub fn initial(mech_id: &str, rules: &Rules, recorded_goals: [Option<RecordedGoal>; 10]) -> State {
        State::initial_known(mech_id, rules, recorded_goals, None)
    }

    /// Like [`State::initial`], with a goal known from DDC's snapshot (spec §2.8).
    #[must_use]
    pub fn initial_known(
        mech_id: &str,
        rules: &Rules,
        recorded_goals: [Option<RecordedGoal>; 10],
        known_goal: Option<KnownGoal>,
    ) -> State {
        let mut state = State {
            mech_id: mech_id.to_owned(),
            level: 1,
            evo_acc: 0,
            power_acc: 0,
            goal_requirement: 0,
            goal_member_count: 0,
            last_user_count_sample: 0,
            cumulative_donations_cents: 0,
            last_event_seq: 0,
            last_event_ts: None,
            clock: None,
            decay_remainder: 0,
            donation_applied: false,
            recorded_goals,
            known_goal,
            used_campaigns: BTreeSet::new(),
        };
        state.goal_requirement = state.price(1, 0, rules, 0).goal;
        state
    }

    /// The goal for entering `level` with `members` at event `seq`: DDC's snapshot goal or the
    /// recorded goal, whichever is newer and applies, else the formula.
    fn price(&self, level: u8, members: i64, rules: &Rules, seq: u64) -> Price {
        if level >= MAX_LEVEL {
            return Price { goal: 0, overridden: None };
        }
        let formula = rules.goal(level, members);
        let recorded = level.checked_sub(1).and_then(|i| self.recorded_goals.get(usize::from(i)).copied().flatten());
        let known =
            self.known_goal.filter(|k| k.level == level && seq <= k.seq && recorded.is_none_or(|r| r.seq <= k.seq));
        match (known, recorded) {
            (Some(known), _) => Price { goal: known.goal, overridden: Some((formula, true)) },
            (None, Some(recorded)) => Price { goal: recorded.goal, overridden: Some((formula, false)) },
            (None, None) => Price { goal: formula, overridden: None },
        }
    }

    /// The goal recorded for `level` (1..=10) by the log, if any.
    #[must_use]
    pub fn recorded_goal(&self, level: u8) -> Option<i64> {
        let index = usize::from(level.checked_sub(1)?);
        self.recorded_goals.get(index).copied().flatten().map(|r| r.goal)
    }

    /// Moves the decay clock to `ts` (spec §2.4.5).
    fn advance_clock(&mut self, rec: &Record, rules: &Rules, effects: &mut Effects) {
        if let Some(clock) = self.clock {
            let elapsed = rec.ts.micros().saturating_sub(clock.micros());
            if elapsed < 0 {
                effects.notes.push(Note::TsBackwards { clock });
            }
            let rate = rules.decay_per_day.at(self.level);
            (self.power_acc, self.decay_remainder) = decay(self.power_acc, self.decay_remainder, elapsed, rate);
        }
        if self.clock.is_none_or(|clock| rec.ts >= clock) {
            self.clock = Some(rec.ts);
            self.last_event_ts = Some(rec.ts_text);
        }
    }

    /// Applies one event that replay keeps (not deleted, not a `DonationDeleted`).
    ///
    /// Derived events only update the recorded goals; every other event moves the decay clock
    /// first and then takes its effect. Level-ups and anything worth reporting go to `effects`.
    pub fn apply(&mut self, rec: &Record, rules: &Rules, effects: &mut Effects) {
        self.last_event_seq = self.last_event_seq.max(rec.seq);
        let p = &rec.payload;
        match &rec.kind {
            Kind::LevelUpCommitted => {
                record_goal(&mut self.recorded_goals, p.from_level, p.old_goal_requirement, rec.seq);
                record_goal(&mut self.recorded_goals, p.to_level, p.new_goal_requirement, rec.seq);
                return;
            }
            Kind::ExactHitBonusGranted | Kind::DonationDeleted => return,
            _ => {}
        }
        self.advance_clock(rec, rules, effects);
        let result = match &rec.kind {
            Kind::DonationAdded => {
                ranged("units", p.units, MAX_REPLAYED_DONATION).map(|units| self.donate(rec, units, rules, effects))
            }
            Kind::SystemDonationAdded => ranged("power_units", p.power_units, MAX_SYSTEM_DONATION).map(|units| {
                self.power_acc = add_power(self.power_acc, units);
                self.cumulative_donations_cents = self.cumulative_donations_cents.saturating_add(units);
            }),
            Kind::PowerGiftGranted => ranged("power_units", p.power_units, MAX_SYSTEM_DONATION).map(|units| {
                self.power_acc = add_power(self.power_acc, units);
                if let Some(campaign) = &p.campaign_id {
                    self.used_campaigns.insert(campaign.to_string());
                }
            }),
            Kind::MemberCountUpdated => match p.member_count {
                Val::Int(count) => {
                    self.sample_members(rec.seq, count, rules);
                    Ok(())
                }
                other => Err(format!("\"member_count\" must be an integer, found {}", other.describe())),
            },
            Kind::Unknown(name) => {
                effects.notes.push(Note::UnknownType(name.to_string()));
                Ok(())
            }
            Kind::LevelUpCommitted | Kind::ExactHitBonusGranted | Kind::DonationDeleted => Ok(()),
        };
        if let Err(message) = result {
            effects.notes.push(Note::InvalidPayload(message));
        }
    }

    fn sample_members(&mut self, seq: u64, count: i64, rules: &Rules) {
        self.last_user_count_sample = rules.clamp_members(count);
        if self.level == 1 && !self.donation_applied {
            self.goal_requirement = self.price(1, self.last_user_count_sample, rules, seq).goal;
            self.goal_member_count = self.last_user_count_sample;
        }
    }

    fn donate(&mut self, rec: &Record, units: i64, rules: &Rules, effects: &mut Effects) {
        self.donation_applied = true;
        self.cumulative_donations_cents = self.cumulative_donations_cents.saturating_add(units);
        self.power_acc = add_power(self.power_acc, units);
        if self.level >= MAX_LEVEL {
            return;
        }
        self.evo_acc += units;
        while self.level < MAX_LEVEL && self.evo_acc >= self.goal_requirement {
            let exact = self.evo_acc == self.goal_requirement;
            let carry = self.evo_acc - self.goal_requirement;
            let from_level = self.level;
            let old_goal = self.goal_requirement;
            let bonus = if exact { rules.exact_hit_bonus } else { 0 };
            self.level += 1;
            self.evo_acc = carry;
            self.power_acc = add_power(carry, bonus);
            let Price { goal, overridden } = self.price(self.level, self.last_user_count_sample, rules, rec.seq);
            if let Some((formula, from_snapshot)) = overridden.filter(|(f, _)| *f != goal) {
                effects.notes.push(Note::RecordedGoalDiffers {
                    level: self.level,
                    recorded: goal,
                    formula,
                    from_snapshot,
                });
            }
            self.goal_requirement = goal;
            self.goal_member_count = self.last_user_count_sample;
            effects.level_ups.push(LevelUp {
                seq: rec.seq,
                ts: rec.ts_text.as_str().to_owned(),
                from_level,
                to_level: self.level,
                exact_hit: exact,
                old_goal,
                new_goal: goal,
                member_count: self.last_user_count_sample,
                bonus,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_serialises_exactly_the_contract_fields() {
        let state = State::initial("main", &Rules::default(), [None; 10]);
        let value = serde_json::to_value(&state).expect("serialisable");
        let keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
        let mut want = STATE_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
    }
}
