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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analysis;
    use crate::analysis::fixtures::{analysis_of, line, live_log};
    use crate::live::Mark;
    use crate::state::model::{Bytes, Log};

    /// Line `seq` of mech main, DDC style.
    fn start(generation: u64, live: bool) -> Action {
        Action::Start { generation, what: "events.jsonl".to_owned(), live }
    }

    fn loaded(generation: u64, analysis: Rc<Analysis>) -> Action {
        let log = Rc::new(Log { name: "events.jsonl".to_owned(), bytes: Bytes::Here(Vec::new()) });
        Action::Loaded { generation, log, analysis, mech: "main".to_owned() }
    }

    /// The server's log of main, loaded as load 1 with `lines`.
    fn live_load(lines: &[String]) -> Rc<Model> {
        Rc::new(Model::default()).reduce(start(1, true)).reduce(loaded(1, Rc::new(analysis_of(lines))))
    }

    fn commit(shown: u64, lines: &[String], mark: Option<(u64, i64)>) -> Action {
        let mark = mark
            .map(|(last_event_seq, cumulative_donations_cents)| Mark { last_event_seq, cumulative_donations_cents });
        Action::Live { shown, commit: Commit { lines: lines.to_vec(), mark } }
    }

    fn up(to_level: u8, exact_hit: bool) -> LevelUp {
        LevelUp {
            seq: 1,
            ts: String::new(),
            from_level: to_level - 1,
            to_level,
            exact_hit,
            old_goal: 0,
            new_goal: 0,
            member_count: 0,
            bonus: 0,
        }
    }

    #[test]
    fn a_load_starts_reports_progress_and_shows_its_result() {
        let model = Rc::new(Model::default()).reduce(start(1, false));
        assert_eq!(model.generation, 1);
        assert_eq!(model.loading(), Some(("events.jsonl".to_owned(), Progress { phase: "Reading", fraction: 0.0 })));
        let halfway = Progress { phase: "Replaying", fraction: 0.5 };
        let model = model.reduce(Action::Progress { generation: 1, progress: halfway });
        assert_eq!(model.loading(), Some(("events.jsonl".to_owned(), halfway)));
        let analysis = Rc::new(analysis_of(&live_log()));
        let model = model.reduce(loaded(1, Rc::clone(&analysis)));
        assert_eq!(model.phase, Phase::Idle);
        assert_eq!(model.loading(), None);
        assert!(model.analysis.as_ref().is_some_and(|a| Rc::ptr_eq(a, &analysis)));
        assert_eq!(model.shown, 1);
        assert_eq!((model.last_event_seq(), model.state().level), (7, 2));
        // Progress of a load that already finished changes nothing.
        let after = Rc::clone(&model).reduce(Action::Progress { generation: 1, progress: halfway });
        assert!(Rc::ptr_eq(&after, &model));
    }

    #[test]
    fn a_newer_load_wins_over_an_older_one() {
        let model = Rc::new(Model::default()).reduce(start(1, false)).reduce(start(2, false));
        for stale in [
            loaded(1, Rc::new(analysis_of(&live_log()))),
            Action::Failed { generation: 1, message: "old".to_owned() },
            Action::Idle { generation: 1 },
            Action::Progress { generation: 1, progress: Progress { phase: "Replaying", fraction: 0.9 } },
        ] {
            let after = Rc::clone(&model).reduce(stale);
            assert!(Rc::ptr_eq(&after, &model), "a stale action changed the model");
        }
        let failed = Rc::clone(&model).reduce(Action::Failed { generation: 2, message: "no such file".to_owned() });
        assert_eq!(failed.failure().as_deref(), Some("no such file"));
        assert_eq!(failed.shown, 0);
        let quiet = model.reduce(Action::Idle { generation: 2 });
        assert_eq!((quiet.phase.clone(), quiet.shown, quiet.failure()), (Phase::Idle, 2, None));
    }

    #[test]
    fn the_forms_show_for_the_server_log_of_a_server() {
        let model = Rc::new(Model::default()).reduce(Action::Server);
        assert!(model.server && !model.manages(), "a file on screen is not the server's log");
        let live = model.reduce(start(1, true));
        assert!(live.manages());
        assert!(!live.follows_stream(), "no stream while the load runs");
        let shown = live.reduce(Action::Idle { generation: 1 });
        assert!(shown.follows_stream());
        assert_eq!(shown.state().level, 1, "the initial state before any event");
    }

    #[test]
    fn streamed_lines_extend_the_load_and_announce_level_ups() {
        let lines = live_log();
        let model = live_load(&lines[..3]);
        assert_eq!((model.state().level, model.last_event_seq()), (1, 3));
        // Line 3 again (a resumed stream repeats it) counts once.
        let model = model.reduce(commit(1, &lines[2..], Some((7, 1450))));
        assert_eq!((model.state().level, model.state().evo_acc, model.last_event_seq()), (2, 250, 7));
        assert_eq!(model.state().cumulative_donations_cents, 1450);
        let text = "Level up! The mech reached level 2. Exact hit: bonus power!";
        assert_eq!(model.announcement, Some((1, text.to_owned())));
        assert_eq!((model.reloads, model.mismatch_reloads), (0, 0));
        // Nothing new, and the server agrees: no change, no render.
        let same = Rc::clone(&model).reduce(commit(1, &lines, Some((7, 1450))));
        assert!(Rc::ptr_eq(&same, &model));
        // 250 + 1400 = 1650 passes the level-2 goal of 1600 (not exactly): the second
        // announcement gets the next number, so it is read out again.
        let big = line(8, "DonationAdded", "{\"units\":1400,\"donor\":\"cy\"}");
        let model = model.reduce(commit(1, &[big], None));
        assert_eq!(model.state().level, 3);
        assert_eq!(model.announcement, Some((2, "Level up! The mech reached level 3.".to_owned())));
        // A member count levels nothing up: the last announcement stays.
        let members = line(9, "MemberCountUpdated", "{\"member_count\":30}");
        let model = model.reduce(commit(1, &[members], None));
        assert_eq!((model.last_event_seq(), model.announcement.as_ref().map(|a| a.0)), (9, Some(2)));
    }

    #[test]
    fn lines_of_another_load_are_dropped() {
        let lines = live_log();
        let model = live_load(&lines[..3]);
        let stale = Rc::clone(&model).reduce(commit(0, &lines, None));
        assert!(Rc::ptr_eq(&stale, &model), "lines for a load no longer shown");
        let newer = model.reduce(start(2, true));
        let after = Rc::clone(&newer).reduce(commit(1, &lines, None));
        assert!(Rc::ptr_eq(&after, &newer), "lines for a load a newer one replaces");
        let early = Rc::clone(&newer).reduce(commit(2, &lines, None));
        assert!(Rc::ptr_eq(&early, &newer), "lines for a load still running");
        let file =
            Rc::new(Model::default()).reduce(start(1, false)).reduce(loaded(1, Rc::new(analysis_of(&lines[..3]))));
        let after = Rc::clone(&file).reduce(commit(1, &lines, None));
        assert!(Rc::ptr_eq(&after, &file), "a file's load does not follow the stream");
    }

    #[test]
    fn a_deletion_or_a_first_event_asks_for_a_reload() {
        let lines = live_log();
        let model = live_load(&lines);
        let deletion = line(8, "DonationDeleted", "{\"deleted_seq\":7,\"reason\":\"typo\"}");
        let after = Rc::clone(&model).reduce(commit(1, &[deletion], None));
        assert_eq!(after.reloads, 1);
        assert!(Rc::ptr_eq(after.analysis.as_ref().expect("kept"), model.analysis.as_ref().expect("loaded")));

        // The store was empty when loaded (a quiet load: nothing on screen).
        let empty = Rc::new(Model::default()).reduce(start(1, true)).reduce(Action::Idle { generation: 1 });
        for nothing in [commit(1, &[], None), commit(1, &[], Some((0, 0)))] {
            let after = Rc::clone(&empty).reduce(nothing);
            assert!(Rc::ptr_eq(&after, &empty), "an empty store stays empty");
        }
        let first = empty.reduce(commit(1, &lines[..1], Some((1, 0))));
        assert_eq!(first.reloads, 1);
        assert!(first.analysis.is_none());
    }

    #[test]
    fn a_disagreeing_server_reloads_three_times_in_a_row_at_most() {
        let mut model = live_load(&live_log());
        for n in 1..=3u32 {
            model = model.reduce(commit(1, &[], Some((7, 9_999))));
            assert_eq!((model.reloads, model.mismatch_reloads), (u64::from(n), n));
        }
        let fourth = Rc::clone(&model).reduce(commit(1, &[], Some((7, 9_999))));
        assert!(Rc::ptr_eq(&fourth, &model), "a lasting disagreement stops reloading");
        // Agreeing again resets the count, without a reload.
        let agreed = model.reduce(commit(1, &[], Some((7, 1450))));
        assert_eq!((agreed.reloads, agreed.mismatch_reloads), (3, 0));
        let again = agreed.reduce(commit(1, &[], Some((6, 1450))));
        assert_eq!((again.reloads, again.mismatch_reloads), (4, 1));
    }

    #[test]
    fn announcements_name_the_levels_reached() {
        assert_eq!(announcement(&[]), None);
        assert_eq!(announcement(&[up(2, false)]).as_deref(), Some("Level up! The mech reached level 2."));
        assert_eq!(
            announcement(&[up(2, false), up(3, false), up(4, true)]).as_deref(),
            Some("Level up! The mech reached levels 2–4. Exact hit: bonus power!")
        );
    }
}
