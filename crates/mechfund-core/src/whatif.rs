//! The goal what-if calculator (spec §2.7): goals for a hypothetical member count, the cost
//! of reaching each level from the current state, where the goal stops growing, and previews.

use serde::Serialize;

use crate::decide::{DomainError, Donation, Stamp, decide_donation};
use crate::event::Event;
use crate::money::Cents;
use crate::rules::{GoalParts, MAX_LEVEL, Rules};
use crate::state::{Effects, State};

/// The goal table for levels 1..=10 at `members` members.
#[must_use]
pub fn goal_table(members: i64, rules: &Rules) -> Vec<GoalParts> {
    (1..MAX_LEVEL).map(|level| rules.goal_parts(level, members)).collect()
}

/// What it costs, in normal donations, to reach a level from the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Remaining {
    /// The level to reach (current level + 1 ..= 11).
    pub level: u8,
    /// Cents still to donate.
    pub cost: i64,
}

/// The cost of reaching each later level (up to 11) if the community had `members` members when
/// those levels are priced. The current level keeps its frozen goal; goals recorded in the log
/// override the formula, as in replay.
#[must_use]
pub fn remaining_costs(state: &State, members: i64, rules: &Rules) -> Vec<Remaining> {
    let mut out = Vec::new();
    if state.level >= MAX_LEVEL {
        return out;
    }
    let mut cost = (state.goal_requirement - state.evo_acc).max(0);
    out.push(Remaining { level: state.level + 1, cost });
    for level in state.level + 1..MAX_LEVEL {
        let goal = state.recorded_goal(level).unwrap_or_else(|| rules.goal(level, members));
        cost = cost.saturating_add(goal);
        out.push(Remaining { level: level + 1, cost });
    }
    out
}

/// Member counts where a level's goal stops changing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Saturation {
    /// The level.
    pub level: u8,
    /// Up to this many members the goal is the base cost.
    pub freebie_members: i64,
    /// From this many members on, more members no longer raise the goal (a cap is reached).
    pub saturates_at: i64,
}

/// For each level 1..=10, the freebie threshold and the member count at which caps stop the goal
/// from growing (the member cap, the dynamic cap or the goal cap, whichever comes first).
#[must_use]
pub fn saturation(rules: &Rules) -> Vec<Saturation> {
    (1..MAX_LEVEL)
        .map(|level| {
            let top = rules.goal(level, rules.member_cap);
            // The goal never decreases with members: find the first count reaching the top.
            let (mut lo, mut hi) = (0, rules.member_cap);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if rules.goal(level, mid) >= top { hi = mid } else { lo = mid + 1 }
            }
            Saturation { level, freebie_members: rules.freebie_members.min(rules.member_cap), saturates_at: lo }
        })
        .collect()
}

/// The events and state a donation would produce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Preview {
    /// The events that would be appended.
    pub events: Vec<Event>,
    /// The state after them.
    pub state: State,
}

/// Previews a donation of `amount` at `at.now`, optionally with a fresh member count.
///
/// # Errors
/// The [`DomainError`] the donation itself would get.
pub fn preview_donation(
    state: &State,
    amount: Cents,
    member_count: Option<i64>,
    rules: &Rules,
    at: Stamp,
) -> Result<Preview, DomainError> {
    let donation =
        Donation { amount, donor: None, channel_id: None, donation_id: None, idempotency_key: None, member_count };
    let events = decide_donation(state, &donation, rules, at)?;
    let mut next = state.clone();
    let mut effects = Effects::default();
    for event in &events {
        next.apply(&event.record(), rules, &mut effects);
    }
    Ok(Preview { events, state: next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_points_follow_the_caps() {
        let rules = Rules::default();
        let s = saturation(&rules);
        // Level 1: 1000 + (m-10)*10 reaches max_goal 1_000_000 at m = 99_910.
        assert_eq!(s[0], Saturation { level: 1, freebie_members: 10, saturates_at: 99_910 });
        // Level 10: 10_000 + (m-10)*10 reaches 1_000_000 at m = 99_010.
        assert_eq!(s[9].saturates_at, 99_010);
    }
}
