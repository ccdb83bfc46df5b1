//! The reducer: each [`Action`] applied to the [`Model`], with no I/O (a live commit is applied
//! through `Analysis::extend`, which is pure too). An action that changes nothing returns the
//! same `Rc`, so Yew does not render again.

use std::rc::Rc;

use mechfund_core::state::LevelUp;
use yew::Reducible;

use super::action::Action;
use super::model::{MAX_MISMATCH_RELOADS, Model, Phase};
use crate::analysis::Extension;
use crate::live::Commit;
use crate::replay_job::Progress;

impl Reducible for Model {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let current = |g: u64| g == self.generation;
        let next = match action {
            Action::Start { generation, what, live } => Model {
                phase: Phase::Loading { what, progress: Progress { phase: "Reading", fraction: 0.0 } },
                generation,
                live,
                ..(*self).clone()
            },
            Action::Progress { generation, progress } if current(generation) => match &self.phase {
                Phase::Loading { what, .. } => {
                    Model { phase: Phase::Loading { what: what.clone(), progress }, ..(*self).clone() }
                }
                _ => return self,
            },
            Action::Loaded { generation, log, analysis, mech } if current(generation) => Model {
                phase: Phase::Idle,
                log: Some(log),
                analysis: Some(analysis),
                mech,
                shown: generation,
                ..(*self).clone()
            },
            Action::Failed { generation, message } if current(generation) => {
                Model { phase: Phase::Failed(message), ..(*self).clone() }
            }
            Action::Idle { generation } if current(generation) => {
                Model { phase: Phase::Idle, shown: generation, ..(*self).clone() }
            }
            Action::Rules(rules) => Model { rules, ..(*self).clone() },
            Action::Now(now) => Model { now, ..(*self).clone() },
            Action::Server => Model { server: true, ..(*self).clone() },
            Action::Live { shown, commit } if self.takes_stream_of(shown) => return self.apply_commit(commit),
            _ => return self, // a stale load
        };
        Rc::new(next)
    }
}

impl Model {
    /// Applies a commit of the stream to the load on screen: its lines extend the analysis (and
    /// announce level-ups); a deletion, a first event in a store that was empty, or a replay
    /// the server's mark disagrees with asks for a reload instead.
    fn apply_commit(self: Rc<Self>, commit: Commit) -> Rc<Self> {
        let Some(analysis) = &self.analysis else {
            if commit.lines.is_empty() && commit.mark.is_none_or(|mark| mark.last_event_seq == 0) {
                return self;
            }
            // The store was empty when loaded: load it now that it has events.
            return Rc::new(Model { reloads: self.reloads + 1, ..(*self).clone() });
        };
        let next = match analysis.extend(&self.mech, &commit.lines, &self.rules, self.now.as_ref()) {
            Extension::Same => None,
            Extension::Rewrite => return Rc::new(Model { reloads: self.reloads + 1, ..(*self).clone() }),
            Extension::Next(next, level_ups) => {
                let number = self.announcement.as_ref().map_or(1, |(n, _)| n + 1);
                let announcement = announcement(&level_ups).map(|text| (number, text));
                Some(Model {
                    analysis: Some(Rc::from(next)),
                    announcement: announcement.or_else(|| self.announcement.clone()),
                    ..(*self).clone()
                })
            }
        };
        let state = &next.as_ref().and_then(|m| m.analysis.as_deref()).unwrap_or(analysis).result.state;
        let next = match commit.mark {
            // The server's log is not where this replay is (a restore took it back, say):
            // load it again, but not forever if the two keep disagreeing.
            Some(mark) if !mark.matches(state) => {
                if self.mismatch_reloads >= MAX_MISMATCH_RELOADS {
                    return self;
                }
                let model = next.unwrap_or_else(|| (*self).clone());
                Model { reloads: self.reloads + 1, mismatch_reloads: self.mismatch_reloads + 1, ..model }
            }
            Some(_) if self.mismatch_reloads > 0 => {
                Model { mismatch_reloads: 0, ..next.unwrap_or_else(|| (*self).clone()) }
            }
            _ => match next {
                Some(model) => model,
                None => return self,
            },
        };
        Rc::new(next)
    }
}

/// What the page announces for the level-ups of one commit (none: nothing).
fn announcement(level_ups: &[LevelUp]) -> Option<String> {
    let (first, last) = (level_ups.first()?, level_ups.last()?);
    let levels = if level_ups.len() > 1 {
        format!("levels {}–{}", first.to_level, last.to_level)
    } else {
        format!("level {}", last.to_level)
    };
    let exact = if last.exact_hit { " Exact hit: bonus power!" } else { "" };
    Some(format!("Level up! The mech reached {levels}.{exact}"))
}
