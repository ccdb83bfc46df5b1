//! The generator's memory of recent events, so a deletion toggle can be folded exactly.
//!
//! Replay treats a deleted event as if it had never happened, from the start of the log. So
//! after a toggle the live state is not "the old state plus a `DonationDeleted`": it is the fold
//! of history without the target. Re-folding the whole log per toggle would be quadratic;
//! instead the generator only toggles events among the last `cap` it wrote (admins delete recent
//! mistakes), keeps the state *before* that window (`base`), and re-folds the window on a toggle.
//! Every fold is seeded with all goals recorded so far, as replay's first pass seeds its fold.

use std::collections::VecDeque;

use mechfund_core::decide::DeletionTarget;
use mechfund_core::state::{Effects, RecordedGoal};
use mechfund_core::{Kind, Record, Rules, State};

/// One written event other than a `DonationDeleted` (replay skips those entirely).
#[derive(Clone, Debug)]
pub struct Entry {
    /// What replay sees of it.
    pub record: Record,
    /// What a deletion toggle copies from it (`None` for events that cannot be deleted).
    pub target: Option<DeletionTarget>,
    /// Whether it is currently deleted (an odd number of toggles).
    pub deleted: bool,
}

/// The state before the window, and the window.
#[derive(Debug)]
pub struct History {
    base: State,
    recent: VecDeque<Entry>,
    cap: usize,
    effects: Effects,
}

impl History {
    /// An empty history starting from `initial`, keeping up to `cap` recent events.
    pub fn new(initial: State, cap: usize) -> History {
        History {
            base: initial,
            recent: VecDeque::with_capacity(cap + 1),
            cap: cap.max(1),
            effects: Effects::default(),
        }
    }

    /// Adds a written event; the oldest one leaves the window (folded into `base`) when full.
    pub fn push(&mut self, entry: Entry, rules: &Rules, goals: &[Option<RecordedGoal>; 10]) {
        self.recent.push_back(entry);
        while self.recent.len() > self.cap {
            if let Some(old) = self.recent.pop_front() {
                self.base.recorded_goals = *goals;
                settle(&mut self.base, &old, rules, &mut self.effects);
            }
        }
    }

    /// The recent events, oldest first.
    pub fn recent(&self) -> &VecDeque<Entry> {
        &self.recent
    }

    /// Flips the deletion of the entry at `index` and returns the state re-folded without the
    /// deleted entries.
    pub fn toggle(&mut self, index: usize, rules: &Rules, goals: &[Option<RecordedGoal>; 10]) -> State {
        if let Some(entry) = self.recent.get_mut(index) {
            entry.deleted = !entry.deleted;
        }
        let mut state = self.base.clone();
        state.recorded_goals = *goals;
        for entry in &self.recent {
            settle(&mut state, entry, rules, &mut self.effects);
        }
        state
    }
}

/// Folds one entry as replay's second pass does: a deleted gift still uses up its campaign.
fn settle(state: &mut State, entry: &Entry, rules: &Rules, effects: &mut Effects) {
    effects.clear();
    if !entry.deleted {
        state.apply(&entry.record, rules, effects);
    } else if entry.record.kind == Kind::PowerGiftGranted
        && let Some(campaign) = &entry.record.payload.campaign_id
    {
        state.used_campaigns.insert(campaign.to_string());
    }
}
