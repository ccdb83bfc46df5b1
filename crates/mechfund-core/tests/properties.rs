//! Property tests of the decide/apply/replay triangle (spec §2.4, §2.6).
//!
//! A generator produces command sequences with time gaps (0 s to 30 days), donations (small,
//! huge, exactly hitting the goal, crossing several goals, carrying member counts), system
//! donations, member counts (also at level 1 before any donation), power gifts, deletion
//! toggles (deletions and restores of the same seq), invalid toggles, and other mechs' events
//! (seqs are global). A model runs them the way the server does: `decide` on the live state,
//! `State::apply` of each written event's `record()`, and after a `DonationDeleted` the live
//! state is rebuilt by replaying the log so far.
//!
//! After every step: (a) the live state equals the replay of the log, (b) the total equals the
//! non-deleted donations, (c) below level 11 evo < goal, (d) nothing is negative, (g) replay has
//! no diagnostics but `superseded` / `recorded_goal_differs`. Before every step with a time gap,
//! (e) decay over the gap equals decay over the same gap split by many clock-moving events, and
//! the spec §2.4.5 formula. (f) replay never panics on arbitrary or mutated input.
//!
//! The interesting cases are counted, printed, and each must be hit at least once.

use std::cell::RefCell;
use std::collections::BTreeMap;

use mechfund_core::decide::{DeletionTarget, MemberSource};
use mechfund_core::display::power_at;
use mechfund_core::state::Effects;
use mechfund_core::{
    Cents, Command, DiagnosticKind, DomainError, Event, EventBody, Now, ReplayOptions, ReplayResult, Rules, Stamp,
    State, Timestamp, decide, replay_bytes,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const SECOND: i64 = 1_000_000;
const HOUR: i64 = 3600 * SECOND;
const DAY: i64 = 86_400_000_000;
const POWER_CAP: i64 = 10_000_000;
const CAMPAIGNS: [&str; 4] = ["startup_gift_v1", "spring_2025", "c1", "winter"];

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// A donation of a random amount, maybe with a member count.
    Donate {
        cents: i64,
        members: Option<i64>,
    },
    /// A donation of exactly what the current goal still needs.
    DonateExact,
    /// A donation crossing `levels` goals (predicted from the live state), plus `extra`.
    DonateMulti {
        levels: u8,
        extra: i64,
        members: Option<i64>,
    },
    System {
        cents: i64,
    },
    Members {
        count: i64,
    },
    Gift {
        campaign: usize,
    },
    /// Toggle one of the deletable events (picked modulo their number).
    Toggle {
        pick: usize,
    },
    /// Toggle the last toggled seq again (a restore, or a second deletion).
    Retoggle,
    /// Toggle an unknown seq or a non-deletable event: refused.
    ToggleInvalid {
        pick: usize,
    },
    /// Another mech's donation: takes a seq, invisible to `main`.
    OtherMech {
        cents: i64,
    },
}

#[derive(Clone, Debug)]
struct Step {
    gap_us: i64,
    seq_skip: u64,
    /// Where to cut the gap for the split-decay check (fractions of u32::MAX).
    splits: Vec<u32>,
    op: Op,
}

fn member_count() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 0i64..300,
        2 => 300i64..5_000,
        1 => 90_000i64..200_000,
    ]
}

fn cents() -> impl Strategy<Value = i64> {
    prop_oneof![
        5 => 1i64..2_000,
        3 => 2_000i64..20_000,
        1 => 20_000i64..=1_000_000,
    ]
}

fn gap() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => Just(0i64),
        3 => 1i64..HOUR,
        2 => HOUR..DAY,
        2 => DAY..=30 * DAY,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (cents(), proptest::option::weighted(0.3, member_count()))
            .prop_map(|(cents, members)| Op::Donate { cents, members }),
        3 => Just(Op::DonateExact),
        2 => (
            2u8..5,
            prop_oneof![Just(0i64), 1i64..3_000],
            proptest::option::weighted(0.2, member_count()),
        )
            .prop_map(|(levels, extra, members)| Op::DonateMulti { levels, extra, members }),
        2 => (1i64..=100_000).prop_map(|cents| Op::System { cents }),
        3 => member_count().prop_map(|count| Op::Members { count }),
        2 => (0..CAMPAIGNS.len()).prop_map(|campaign| Op::Gift { campaign }),
        3 => any::<usize>().prop_map(|pick| Op::Toggle { pick }),
        2 => Just(Op::Retoggle),
        1 => any::<usize>().prop_map(|pick| Op::ToggleInvalid { pick }),
        1 => (1i64..5_000).prop_map(|cents| Op::OtherMech { cents }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (gap(), prop_oneof![9 => Just(0u64), 1 => 1u64..4], proptest::collection::vec(any::<u32>(), 1..24), op())
        .prop_map(|(gap_us, seq_skip, splits, op)| Step { gap_us, seq_skip, splits, op })
}

fn steps(max: usize) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(), 1..max)
}

// ---------------------------------------------------------------------------------------------
// Hit counters
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Hits(BTreeMap<&'static str, u64>);

impl Hits {
    fn bump(&mut self, what: &'static str) {
        *self.0.entry(what).or_default() += 1;
    }

    fn add(&mut self, other: &Hits) {
        for (k, v) in &other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }

    fn get(&self, what: &str) -> u64 {
        self.0.get(what).copied().unwrap_or(0)
    }
}

const EXACT_HIT: &str = "exact hits";
const MULTI_LEVEL_UP: &str = "multi-level-ups (one donation)";
const DELETION: &str = "deletions";
const RESTORE: &str = "restores (second toggle)";
const LONG_GAP: &str = "gaps > 1 day";
const LEVEL_11: &str = "level 11 reached";
const AT_LEVEL_11: &str = "donations at level 11";
const SYSTEM: &str = "system donations";
const GIFT_GRANTED: &str = "gifts granted";
const GIFT_REFUSED: &str = "gifts refused";
const LEVEL_1_SAMPLE: &str = "member counts at level 1 before any donation";
const FREEZE: &str = "donations recording a member count before a level-up";
const SPLIT_DECAY: &str = "split-decay checks";
const DECAYED_TO_ZERO: &str = "gaps decaying power to 0";
const INVALID_TOGGLE: &str = "refused toggles";
const OTHER_MECH: &str = "other-mech lines";
const SUPERSEDED: &str = "replays with superseded";
const GOAL_DIFFERS: &str = "replays with recorded_goal_differs";

// ---------------------------------------------------------------------------------------------
// The model: the server's live path
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Model {
    rules: Rules,
    /// The whole log, every mech.
    lines: Vec<String>,
    /// `main`'s events.
    main: Vec<Event>,
    live: State,
    now: Timestamp,
    next_seq: u64,
    last_toggled: Option<u64>,
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

fn donation(cents: i64, members: Option<i64>) -> Command {
    Command::AddDonation {
        amount: Cents(cents),
        donor: Some("Discord:prop".to_owned()),
        channel_id: None,
        donation_id: None,
        idempotency_key: None,
        member_count: members,
    }
}

/// What decide must answer, when the model knows better than "some events".
#[derive(Debug)]
enum Expect {
    Events,
    Gift { used: bool, power: i64 },
    Refused(DomainError),
}

impl Model {
    fn new() -> Model {
        let rules = Rules::default();
        let live = State::initial("main", &rules, Default::default());
        Model {
            rules,
            lines: Vec::new(),
            main: Vec::new(),
            live,
            now: Timestamp::parse("2025-01-01T00:00:00Z").unwrap_or(Timestamp(0)),
            next_seq: 1,
            last_toggled: None,
        }
    }

    fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }

    fn replay(&self, now: Option<Now>) -> ReplayResult {
        let options = ReplayOptions { now, ..ReplayOptions::default() };
        match replay_bytes(self.text().as_bytes(), &self.rules, options) {
            Ok(result) => result,
            Err(e) => panic!("lenient replay failed: {e}"),
        }
    }

    /// How often each seq of `main` has been toggled.
    fn toggles(&self) -> BTreeMap<u64, u32> {
        let mut toggles = BTreeMap::new();
        for e in &self.main {
            if let EventBody::DonationDeleted { deleted_seq, .. } = e.body {
                *toggles.entry(deleted_seq).or_default() += 1;
            }
        }
        toggles
    }

    fn deletable(&self) -> Vec<u64> {
        self.main.iter().filter(|e| e.body.kind().is_deletable()).map(|e| e.seq).collect()
    }

    /// What the server looks up before a toggle.
    fn target(&self, seq: u64) -> Option<DeletionTarget> {
        let e = self.main.iter().find(|e| e.seq == seq)?;
        let (donor, units) = match &e.body {
            EventBody::DonationAdded { units, donor, .. } => (donor.clone(), Some(*units)),
            EventBody::SystemDonationAdded { power_units, .. } | EventBody::PowerGiftGranted { power_units, .. } => {
                (None, Some(*power_units))
            }
            _ => (None, None),
        };
        Some(DeletionTarget { kind: e.body.kind(), donor, units })
    }

    fn toggle(&self, seq: u64) -> Command {
        let deleted = self.toggles().get(&seq).is_some_and(|n| n % 2 == 1);
        Command::ToggleDonationDeletion {
            seq,
            reason: if deleted { "admin_restore" } else { "admin_deletion" }.to_owned(),
            target: self.target(seq),
        }
    }

    /// The goal the live state would give `level` on entering it.
    fn goal_of(&self, level: u8) -> i64 {
        self.live.recorded_goal(level).unwrap_or_else(|| self.rules.goal(level, self.live.last_user_count_sample))
    }

    fn command(&self, op: &Op) -> (Command, Expect) {
        let live = &self.live;
        match op {
            Op::Donate { cents, members } => (donation(*cents, *members), Expect::Events),
            Op::DonateExact => {
                let amount = if live.level < 11 { live.goal_requirement - live.evo_acc } else { 100 };
                (donation(amount, None), Expect::Events)
            }
            Op::DonateMulti { levels, extra, members } => {
                let mut amount = *extra;
                if live.level < 11 {
                    amount += live.goal_requirement - live.evo_acc;
                    for level in live.level + 1..(live.level + levels).min(11) {
                        amount += self.goal_of(level);
                    }
                }
                (donation(amount.clamp(1, 1_000_000), *members), Expect::Events)
            }
            Op::System { cents } => (
                Command::AddSystemDonation {
                    amount: Cents(*cents),
                    event_name: "Monthly Motor Maintenance".to_owned(),
                    description: None,
                    idempotency_key: None,
                },
                Expect::Events,
            ),
            Op::Members { count } => (Command::UpdateMemberCount(MemberSource::Count(*count)), Expect::Events),
            Op::Gift { campaign } => {
                let campaign = CAMPAIGNS[*campaign];
                let used = self.main.iter().any(
                    |e| matches!(&e.body, EventBody::PowerGiftGranted { campaign_id, .. } if campaign_id == campaign),
                );
                // spec §2.5: power decayed from the clock to `now`, as the display shows it.
                let now = Now::parse(&self.now.to_string()).ok();
                let power = self.replay(now).display.power_now;
                (Command::GrantPowerGift { campaign_id: campaign.to_owned() }, Expect::Gift { used, power })
            }
            Op::Toggle { pick } => {
                let deletable = self.deletable();
                if deletable.is_empty() {
                    let seq = self.next_seq + 1000;
                    (self.toggle(seq), Expect::Refused(DomainError::UnknownSeq(seq)))
                } else {
                    (self.toggle(deletable[pick % deletable.len()]), Expect::Events)
                }
            }
            Op::Retoggle => match self.last_toggled.or_else(|| self.deletable().last().copied()) {
                Some(seq) => (self.toggle(seq), Expect::Events),
                None => (self.toggle(self.next_seq), Expect::Refused(DomainError::UnknownSeq(self.next_seq))),
            },
            Op::ToggleInvalid { pick } => {
                let others: Vec<&Event> = self.main.iter().filter(|e| !e.body.kind().is_deletable()).collect();
                if pick % 2 == 0 || others.is_empty() {
                    // A seq main does not have: a future one.
                    let seq = self.next_seq + (*pick % 1000) as u64;
                    (self.toggle(seq), Expect::Refused(DomainError::UnknownSeq(seq)))
                } else {
                    let e = others[pick / 2 % others.len()];
                    (
                        self.toggle(e.seq),
                        Expect::Refused(DomainError::NotDeletable {
                            seq: e.seq,
                            kind: e.body.kind().name().to_owned(),
                        }),
                    )
                }
            }
            Op::OtherMech { .. } => unreachable!("handled by the caller"),
        }
    }

    /// (e): decay over the gap from the clock to `now`, at once, split, and by the formula.
    fn check_split_decay(&self, splits: &[u32], hits: &mut Hits) -> Result<(), TestCaseError> {
        let Some(clock) = self.live.clock else {
            return Ok(());
        };
        let gap = self.now.micros() - clock.micros();
        if gap <= 0 {
            return Ok(());
        }
        hits.bump(SPLIT_DECAY);
        let sample = self.live.last_user_count_sample;
        let event = |seq: u64, at: Timestamp| Event {
            seq,
            ts: at,
            mech_id: "main".to_owned(),
            body: EventBody::MemberCountUpdated { member_count: sample },
        };
        let mut effects = Effects::default();
        let mut once = self.live.clone();
        once.apply(&event(self.next_seq, self.now).record(), &self.rules, &mut effects);

        let mut cuts: Vec<i64> = splits
            .iter()
            .map(|&f| {
                let offset = i128::from(gap) * i128::from(f) / i128::from(u32::MAX);
                clock.micros() + i64::try_from(offset).unwrap_or(gap)
            })
            .collect();
        cuts.sort_unstable();
        let mut split = self.live.clone();
        for (i, cut) in cuts.iter().enumerate() {
            split.apply(&event(self.next_seq + i as u64, Timestamp(*cut)).record(), &self.rules, &mut effects);
        }
        split.apply(&event(self.next_seq + cuts.len() as u64, self.now).record(), &self.rules, &mut effects);

        // spec §2.4.5 by hand: n = elapsed * rate + remainder; power -= n / day.
        let rate = i128::from(self.rules.decay_per_day.at(self.live.level));
        let n = i128::from(gap) * rate + i128::from(self.live.decay_remainder);
        let lost = n / i128::from(DAY);
        let power = (i128::from(self.live.power_acc) - lost).max(0);
        let expected = (i64::try_from(power).unwrap_or(-1), i64::try_from(n % i128::from(DAY)).unwrap_or(-1));
        if expected.0 == 0 && self.live.power_acc > 0 {
            hits.bump(DECAYED_TO_ZERO);
        }
        let at_once = (once.power_acc, once.decay_remainder);
        let in_pieces = (split.power_acc, split.decay_remainder);
        prop_assert_eq!(at_once, expected, "one event after a gap of {} us", gap);
        prop_assert_eq!(in_pieces, expected, "the same gap of {} us cut at {:?}", gap, cuts);
        prop_assert_eq!(power_at(&self.live, &self.rules, self.now), expected.0, "power_at after a gap of {} us", gap);
        Ok(())
    }

    fn run(&mut self, step: &Step, hits: &mut Hits, check: bool) -> Result<(), TestCaseError> {
        self.now = Timestamp(self.now.micros() + step.gap_us);
        self.next_seq += step.seq_skip;
        if step.gap_us > DAY {
            hits.bump(LONG_GAP);
        }
        if check {
            self.check_split_decay(&step.splits, hits)?;
        }
        if let Op::OtherMech { cents } = step.op {
            let event = Event {
                seq: self.next_seq,
                ts: self.now,
                mech_id: "other".to_owned(),
                body: EventBody::DonationAdded {
                    units: cents,
                    donor: None,
                    channel_id: None,
                    donation_id: None,
                    idempotency_key: None,
                },
            };
            self.lines.push(event.to_json_line());
            self.next_seq += 1;
            hits.bump(OTHER_MECH);
            return if check { self.check(hits) } else { Ok(()) };
        }
        let (command, expect) = self.command(&step.op);
        let stamp = Stamp { next_seq: self.next_seq, now: self.now };
        let before = self.live.clone();
        let result = decide(&self.live, &command, &self.rules, stamp);
        match (&expect, result) {
            (Expect::Refused(expected), Err(e)) => {
                prop_assert_eq!(&e, expected);
                hits.bump(INVALID_TOGGLE);
            }
            (Expect::Refused(expected), Ok(events)) => {
                return Err(fail(format!("{command:?} should be refused with {expected:?}, got {events:?}")));
            }
            (Expect::Gift { used, power }, Err(e)) => {
                let allowed_used = DomainError::GiftCampaignUsed(match &command {
                    Command::GrantPowerGift { campaign_id } => campaign_id.clone(),
                    _ => String::new(),
                });
                let allowed_power = DomainError::GiftPowerRemaining(Cents(*power));
                let ok = (*used && e == allowed_used) || (*power > 0 && e == allowed_power);
                prop_assert!(ok, "gift refused with {:?}, but used={} power_now={}", e, used, power);
                hits.bump(GIFT_REFUSED);
            }
            (Expect::Gift { used, power }, Ok(events)) => {
                prop_assert!(
                    !*used && *power == 0,
                    "gift granted ({:?}) although used={} power_now={}",
                    events,
                    used,
                    power
                );
                hits.bump(GIFT_GRANTED);
                self.commit(&before, &command, events, hits)?;
            }
            (Expect::Events, Err(e)) => {
                return Err(fail(format!("{command:?} was refused: {e:?} ({e})")));
            }
            (Expect::Events, Ok(events)) => self.commit(&before, &command, events, hits)?,
        }
        if check { self.check(hits) } else { Ok(()) }
    }

    /// Writes the events and applies them as the server does.
    fn commit(
        &mut self,
        before: &State,
        command: &Command,
        events: Vec<Event>,
        hits: &mut Hits,
    ) -> Result<(), TestCaseError> {
        prop_assert!(!events.is_empty() || matches!(command, Command::UpdateMemberCount(_)));
        let mut rebuild = false;
        let mut level_ups = 0;
        let mut toggles = self.toggles();
        for (i, event) in events.iter().enumerate() {
            prop_assert_eq!(event.seq, self.next_seq + i as u64, "seqs count up");
            prop_assert_eq!(event.ts, self.now, "events are stamped now");
            prop_assert_eq!(&event.mech_id, "main");
            match &event.body {
                EventBody::LevelUpCommitted { exact_hit, to_level, .. } => {
                    level_ups += 1;
                    if *exact_hit {
                        hits.bump(EXACT_HIT);
                    }
                    if *to_level == 11 {
                        hits.bump(LEVEL_11);
                    }
                }
                EventBody::DonationDeleted { deleted_seq, .. } => {
                    let count = toggles.entry(*deleted_seq).or_default();
                    *count += 1;
                    hits.bump(if *count % 2 == 1 { DELETION } else { RESTORE });
                    self.last_toggled = Some(*deleted_seq);
                    rebuild = true;
                }
                EventBody::MemberCountUpdated { .. } => {
                    if matches!(command, Command::AddDonation { .. }) {
                        hits.bump(FREEZE);
                    }
                    if before.level == 1 && !before.donation_applied {
                        hits.bump(LEVEL_1_SAMPLE);
                    }
                }
                EventBody::SystemDonationAdded { .. } => hits.bump(SYSTEM),
                EventBody::DonationAdded { .. } if before.level == 11 => hits.bump(AT_LEVEL_11),
                _ => {}
            }
        }
        if level_ups >= 2 {
            hits.bump(MULTI_LEVEL_UP);
        }
        let mut effects = Effects::default();
        for event in &events {
            self.live.apply(&event.record(), &self.rules, &mut effects);
            self.lines.push(event.to_json_line());
        }
        self.next_seq += events.len() as u64;
        self.main.extend(events);
        if rebuild {
            // The server rebuilds the live state after a deletion toggle.
            self.live = self.replay(None).state;
        }
        Ok(())
    }

    /// Properties (a), (b), (c), (d), (g) after a step.
    fn check(&self, hits: &mut Hits) -> Result<(), TestCaseError> {
        let replayed = self.replay(None);
        // (a) The live state is the replay of the log, all of it.
        prop_assert_eq!(&replayed.state, &self.live, "live state != replay of the log");
        // (g) Only history rewritten by deletions, or goals recorded under other member counts.
        let mut superseded = false;
        let mut differs = false;
        for d in &replayed.diagnostics {
            match d.kind {
                DiagnosticKind::Superseded => superseded = true,
                DiagnosticKind::RecordedGoalDiffers => differs = true,
                DiagnosticKind::NoEvents if self.main.is_empty() => {}
                _ => return Err(fail(format!("unexpected diagnostic {d:?}"))),
            }
        }
        if superseded {
            hits.bump(SUPERSEDED);
        }
        if differs {
            hits.bump(GOAL_DIFFERS);
        }
        let s = &self.live;
        // (b) The total is the non-deleted donations and system donations.
        let toggles = self.toggles();
        let total: i64 = self
            .main
            .iter()
            .filter(|e| toggles.get(&e.seq).is_none_or(|n| n % 2 == 0))
            .map(|e| match e.body {
                EventBody::DonationAdded { units, .. } => units,
                EventBody::SystemDonationAdded { power_units, .. } => power_units,
                _ => 0,
            })
            .sum();
        prop_assert_eq!(s.cumulative_donations_cents, total, "total donated");
        // (c) Below level 11 the goal is never reached (the loop levels up); at 11 it is 0.
        prop_assert!((1..=11).contains(&s.level), "level {}", s.level);
        if s.level < 11 {
            prop_assert!(
                s.evo_acc < s.goal_requirement,
                "level {}: evo {} >= goal {}",
                s.level,
                s.evo_acc,
                s.goal_requirement
            );
        } else {
            prop_assert_eq!(s.goal_requirement, 0);
        }
        // (d) Nothing is negative; power stays under its cap.
        sane(s).map_err(fail)?;
        Ok(())
    }
}

/// (d) for any state replay produces.
fn sane(s: &State) -> Result<(), String> {
    let values = [
        ("evo_acc", s.evo_acc),
        ("power_acc", s.power_acc),
        ("goal_requirement", s.goal_requirement),
        ("goal_member_count", s.goal_member_count),
        ("last_user_count_sample", s.last_user_count_sample),
        ("cumulative_donations_cents", s.cumulative_donations_cents),
        ("decay_remainder", s.decay_remainder),
    ];
    for (name, value) in values {
        if value < 0 {
            return Err(format!("{name} is negative: {s:?}"));
        }
    }
    if !(1..=11).contains(&s.level) {
        return Err(format!("level out of range: {s:?}"));
    }
    if s.power_acc > POWER_CAP {
        return Err(format!("power above the cap: {s:?}"));
    }
    Ok(())
}

fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, ..Config::default() }
}

#[test]
fn live_state_equals_replay_and_invariants_hold() {
    let hits = RefCell::new(Hits::default());
    let mut runner = TestRunner::new(config(256));
    let result = runner.run(&steps(60), |steps| {
        let mut local = Hits::default();
        let mut model = Model::new();
        // (a) holds before anything happened, too.
        prop_assert_eq!(&model.replay(None).state, &model.live);
        for step in &steps {
            model.run(step, &mut local, true)?;
        }
        hits.borrow_mut().add(&local);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let hits = hits.into_inner();
    eprintln!("hits over 256 generated command sequences:");
    for (what, n) in &hits.0 {
        eprintln!("  {what:<55} {n}");
    }
    let required = [
        EXACT_HIT,
        MULTI_LEVEL_UP,
        DELETION,
        RESTORE,
        LONG_GAP,
        LEVEL_11,
        AT_LEVEL_11,
        SYSTEM,
        GIFT_GRANTED,
        GIFT_REFUSED,
        LEVEL_1_SAMPLE,
        FREEZE,
        SPLIT_DECAY,
        DECAYED_TO_ZERO,
        INVALID_TOGGLE,
        OTHER_MECH,
        SUPERSEDED,
    ];
    for what in required {
        assert!(hits.get(what) > 0, "the generators never produced: {what}");
    }
}

// ---------------------------------------------------------------------------------------------
// (f) Replay never panics
// ---------------------------------------------------------------------------------------------

/// Replays `bytes` every way a caller can, checking the result is a sane state.
fn replay_every_way(bytes: &[u8]) -> Result<(), TestCaseError> {
    let rules = Rules::default();
    for mech in ["main", "other"] {
        let lenient = ReplayOptions {
            mech: mech.to_owned(),
            strict: false,
            timeline: true,
            now: Now::parse("2025-03-01T00:00:00Z").ok(),
            ddc_snapshot: None,
        };
        match replay_bytes(bytes, &rules, lenient) {
            Ok(result) => sane(&result.state).map_err(fail)?,
            Err(e) => return Err(fail(format!("lenient replay failed: {e}"))),
        }
        let strict = ReplayOptions { mech: mech.to_owned(), strict: true, ..ReplayOptions::default() };
        if let Ok(result) = replay_bytes(bytes, &rules, strict) {
            sane(&result.state).map_err(fail)?;
        }
    }
    Ok(())
}

fn fragment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\n",
        "\r\n",
        " ",
        "\"",
        "null",
        "true",
        "false",
        "0",
        "1",
        "-1",
        "7",
        "1.5",
        "1e400",
        "-0",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "\"seq\":",
        "\"ts\":",
        "\"type\":",
        "\"mech_id\":",
        "\"payload\":",
        "\"2025-01-01T00:00:00Z\"",
        "\"2025-01-01T00:00:00.123456+05:30\"",
        "\"2025-02-30T00:00:00Z\"",
        "\"1969-12-31T23:59:59.999999-23:59\"",
        "\"9999-12-31T23:59:59Z\"",
        "\"0000-01-01T00:00:00Z\"",
        "\"main\"",
        "\"other\"",
        "\"DonationAdded\"",
        "\"SystemDonationAdded\"",
        "\"MemberCountUpdated\"",
        "\"PowerGiftGranted\"",
        "\"DonationDeleted\"",
        "\"LevelUpCommitted\"",
        "\"ExactHitBonusGranted\"",
        "\"Ping\"",
        "\"units\":",
        "\"power_units\":",
        "\"member_count\":",
        "\"deleted_seq\":",
        "\"from_level\":",
        "\"to_level\":",
        "\"old_goal_requirement\":",
        "\"new_goal_requirement\":",
        "\"exact_hit\":",
        "\"campaign_id\":",
        "\"\\ud800\"",
        "\"\\u00e9\"",
        "\u{e9}",
        "\u{1f680}",
        "\u{0}",
    ])
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, bits: u8 },
    Truncate { at: usize },
    DeleteLine { at: usize },
    DuplicateLine { at: usize },
    SwapLines { a: usize, b: usize },
    Insert { at: usize, text: &'static str },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        2 => any::<usize>().prop_map(|at| Mutation::DeleteLine { at }),
        2 => any::<usize>().prop_map(|at| Mutation::DuplicateLine { at }),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        2 => (any::<usize>(), fragment()).prop_map(|(at, text)| Mutation::Insert { at, text }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    match *m {
        Mutation::Flip { at, bits } => {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] ^= bits;
            }
            return;
        }
        Mutation::Truncate { at } => {
            bytes.truncate(at % (bytes.len() + 1));
            return;
        }
        Mutation::Insert { at, text } => {
            let i = at % (bytes.len() + 1);
            bytes.splice(i..i, text.bytes());
            return;
        }
        Mutation::DeleteLine { at } => {
            lines.remove(at % lines.len());
        }
        Mutation::DuplicateLine { at } => {
            let i = at % lines.len();
            lines.insert(i, lines[i].clone());
        }
        Mutation::SwapLines { a, b } => {
            let n = lines.len();
            lines.swap(a % n, b % n);
        }
    }
    *bytes = lines.join(&b'\n');
}

/// A log as the model writes it (no checks).
fn build_log(steps: &[Step]) -> Vec<u8> {
    let mut model = Model::new();
    let mut hits = Hits::default();
    for step in steps {
        // Generated commands are valid; a refusal here only means fewer lines.
        let _ = model.run(step, &mut hits, false);
    }
    model.text().into_bytes()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn replay_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048)
    ) {
        replay_every_way(&bytes)?;
    }

    #[test]
    fn replay_never_panics_on_json_like_text(
        parts in proptest::collection::vec(fragment(), 0..300)
    ) {
        replay_every_way(parts.concat().as_bytes())?;
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn replay_never_panics_on_mutated_logs(
        steps in steps(40),
        mutations in proptest::collection::vec(mutation(), 1..10),
    ) {
        let mut bytes = build_log(&steps);
        replay_every_way(&bytes)?;
        for m in &mutations {
            mutate(&mut bytes, m);
            replay_every_way(&bytes)?;
        }
    }
}

/// The split-decay property with gaps that are not at all round (sanity of the generator).
#[test]
fn split_points_are_inside_the_gap() {
    let mut model = Model::new();
    let mut hits = Hits::default();
    let donate = Step { gap_us: 0, seq_skip: 0, splits: vec![0], op: Op::Donate { cents: 500, members: None } };
    model.run(&donate, &mut hits, true).expect("a plain donation");
    let wait = Step {
        gap_us: 3 * DAY + 12_345,
        seq_skip: 0,
        splits: vec![0, 1, u32::MAX / 3, u32::MAX / 2, u32::MAX],
        op: Op::Members { count: 0 },
    };
    model.run(&wait, &mut hits, true).expect("a member count");
    // 500 - floor((3 days + 12345 us) * 100 / day) = 500 - 300 = 200.
    assert_eq!(model.live.power_acc, 200);
    assert_eq!(hits.get(SPLIT_DECAY), 1);
}

/// The minimal sequence the generator found for property (g), kept as a fixed example.
///
/// seq 1 MemberCountUpdated 12 (level 1, no donation yet: goal(1, 12) = 1020); seq 2 a
/// donation of 1010 (< 1020, no level-up); seq 3 MemberCountUpdated 0 (goal frozen); seq 4
/// deletes seq 2 (the rebuilt state has no donation, so seq 3 re-priced level 1 to 1000);
/// seq 5 a donation of 1000 hits 1000 exactly (LevelUpCommitted 1->2 recording the level-1 goal
/// 1000 at seq 6, bonus at seq 7); seq 8 restores seq 2.
///
/// Replaying the whole log, the recorded level-1 goal 1000 (spec §2.4.4) now prices level 1
/// from the start, so the restored donation of 1010 at seq 2 levels up: replay derives a
/// LevelUpCommitted that the log does not record, a `levelup_missing` at S = 2 (its donation).
/// spec §2.4.7 supersedes it only if a later deletion toggled an event *below* S; the restore
/// toggled seq 2 itself, so it stays a warning and `mechfund verify` would fail a log the
/// server wrote by itself. Property (g) says such a log verifies clean.
#[test]
fn server_written_log_with_a_restored_donation_verifies_clean() {
    let step = |op: Op| Step { gap_us: 0, seq_skip: 0, splits: vec![0], op };
    let steps = [
        step(Op::Members { count: 12 }),
        step(Op::Donate { cents: 1010, members: None }),
        step(Op::Members { count: 0 }),
        step(Op::Toggle { pick: 0 }),
        step(Op::Donate { cents: 1000, members: None }),
        step(Op::Retoggle),
    ];
    let mut model = Model::new();
    let mut hits = Hits::default();
    for step in &steps[..5] {
        model.run(step, &mut hits, true).expect("properties hold so far");
    }
    assert_eq!(hits.get(DELETION), 1);
    assert_eq!(hits.get(EXACT_HIT), 1);
    // The restore: (a)-(d) hold, (g) is what fails.
    let result = model.run(&steps[5], &mut hits, false);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(hits.get(RESTORE), 1);
    let replayed = model.replay(None);
    // By hand (spec §2.4): recorded goals 1 -> 1000, 2 -> 1500 (seq 6). seq 1: goal 1000
    // (recorded), seq 2: 1010 >= 1000 -> level 2, carry 10, goal 1500 (recorded; the formula
    // gives 1500 + 2 * 10 = 1520), seq 3: sample 0, seq 5: evo 1010, power 1010.
    let s = &replayed.state;
    assert_eq!((s.level, s.evo_acc, s.power_acc, s.goal_requirement), (2, 1010, 1010, 1500));
    assert_eq!((s.goal_member_count, s.last_user_count_sample, s.cumulative_donations_cents), (12, 0, 2010));
    assert_eq!(&model.live, s, "live state after the restore is the replay");
    let warnings: Vec<_> = replayed
        .diagnostics
        .iter()
        .filter(|d| !matches!(d.kind, DiagnosticKind::Superseded | DiagnosticKind::RecordedGoalDiffers))
        .collect();
    assert!(warnings.is_empty(), "a log written by decide/apply replays with warnings: {warnings:#?}");
}
