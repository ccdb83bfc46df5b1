//! Given/when/then tests for `decide` (spec §2.6), every expected value worked by hand from
//! spec §2.1–2.6 with the default rules.
//!
//! `given` builds the state the way the server does at start-up: by replaying the log
//! (`replay_bytes` over the events' `to_json_line()`s, or over raw DDC lines). `then` checks the
//! emitted events (bodies, seqs counting up from `Stamp::next_seq`, `ts == now`, the mech), and
//! that applying them live gives the same state as replaying the log with them appended.

use mechfund_core::decide::{Channel, DeletionTarget, Member, MemberSource, count_members};
use mechfund_core::state::Effects;
use mechfund_core::{
    AmountError, Cents, Command, DiagnosticKind, DomainError, Event, EventBody, Kind, ReplayOptions, Rules, Stamp,
    State, Timestamp, replay_bytes,
};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The test framework
// ---------------------------------------------------------------------------------------------

/// The default `now` when the given log has no clock.
const T0: &str = "2025-01-17T14:38:48+00:00";

#[track_caller]
fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("a valid test timestamp")
}

/// A log and the state replay derives from it.
#[derive(Debug)]
struct Given {
    rules: Rules,
    mech: String,
    lines: Vec<String>,
    state: State,
}

/// A command to decide on top of a [`Given`], at a [`Stamp`].
#[derive(Debug)]
struct When {
    given: Given,
    command: Command,
    stamp: Stamp,
}

/// The events `decide` emitted and the state after them (replay of the extended log).
#[derive(Debug)]
struct Outcome {
    events: Vec<Event>,
    state: State,
}

#[track_caller]
fn replay_state(mech: &str, lines: &[String], rules: &Rules) -> State {
    let text = lines.join("\n");
    let options = ReplayOptions { mech: mech.to_owned(), ..ReplayOptions::default() };
    let result = replay_bytes(text.as_bytes(), rules, options).expect("lenient replay never fails");
    let bad: Vec<_> = result.diagnostics.iter().filter(|d| d.kind == DiagnosticKind::BadLine).collect();
    assert!(bad.is_empty(), "the given log has bad lines: {bad:?}");
    result.state
}

/// The state of mech `main` after `events`.
#[track_caller]
fn given(events: Vec<Event>) -> Given {
    given_lines(events.iter().map(Event::to_json_line))
}

/// The state of mech `main` after raw log lines (e.g. DDC's own).
#[track_caller]
fn given_lines<S: Into<String>>(lines: impl IntoIterator<Item = S>) -> Given {
    given_mech("main", lines)
}

#[track_caller]
fn given_mech<S: Into<String>>(mech: &str, lines: impl IntoIterator<Item = S>) -> Given {
    let rules = Rules::default();
    let lines: Vec<String> = lines.into_iter().map(Into::into).collect();
    let state = replay_state(mech, &lines, &rules);
    Given { rules, mech: mech.to_owned(), lines, state }
}

impl Given {
    /// Decides `command` at the next seq after the log, at the log's clock (or [`T0`]).
    fn when(self, command: Command) -> When {
        let now = self.state.clock.unwrap_or_else(|| ts(T0));
        let next_seq = self.state.last_event_seq + 1;
        When { given: self, command, stamp: Stamp { next_seq, now } }
    }

    /// What the server would look up about `seq` before a deletion toggle: its type, donor and
    /// amount, read from the log's JSON.
    fn target(&self, seq: u64) -> Option<DeletionTarget> {
        self.lines.iter().find_map(|line| {
            let v: Value = serde_json::from_str(line).ok()?;
            if v["seq"].as_u64() != Some(seq) || v["mech_id"].as_str() != Some(self.mech.as_str()) {
                return None;
            }
            let p = &v["payload"];
            Some(DeletionTarget {
                kind: Kind::from_name(v["type"].as_str()?),
                donor: p["donor"].as_str().map(str::to_owned),
                units: p["units"].as_i64().or_else(|| p["power_units"].as_i64()),
            })
        })
    }

    /// A deletion toggle of `seq`, with the target looked up in the log.
    fn when_toggle(self, seq: u64, reason: &str) -> When {
        let target = self.target(seq);
        self.when(Command::ToggleDonationDeletion { seq, reason: reason.to_owned(), target })
    }
}

impl When {
    /// Decides at another time.
    #[track_caller]
    fn at(mut self, now: &str) -> When {
        self.stamp.now = ts(now);
        self
    }

    /// Decides with another first seq (seqs are global across mechs).
    fn next_seq(mut self, next_seq: u64) -> When {
        self.stamp.next_seq = next_seq;
        self
    }

    /// Expects exactly these events, in this order.
    #[track_caller]
    fn then(self, expected: Vec<EventBody>) -> Outcome {
        let When { given, command, stamp } = self;
        let events = match mechfund_core::decide(&given.state, &command, &given.rules, stamp) {
            Ok(events) => events,
            Err(e) => panic!("expected events, got the error {e:?} ({e}) for {command:?}"),
        };
        let bodies: Vec<EventBody> = events.iter().map(|e| e.body.clone()).collect();
        assert_eq!(bodies, expected, "events emitted for {command:?}");
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event.seq, stamp.next_seq + i as u64, "seqs count up from Stamp::next_seq: {events:#?}");
            assert_eq!(event.ts, stamp.now, "every event is stamped `now`");
            assert_eq!(event.mech_id, given.mech, "events belong to the given mech");
        }
        let mut lines = given.lines.clone();
        lines.extend(events.iter().map(Event::to_json_line));
        let replayed = replay_state(&given.mech, &lines, &given.rules);
        let deletes = bodies.iter().any(|b| matches!(b, EventBody::DonationDeleted { .. }));
        if !deletes {
            // The live path (apply each written event) must equal replay (spec §2.4).
            let mut live = given.state.clone();
            let mut effects = Effects::default();
            for event in &events {
                live.apply(&event.record(), &given.rules, &mut effects);
            }
            assert_eq!(live, replayed, "live state differs from the replay of the log");
        }
        Outcome { events, state: replayed }
    }

    /// Expects exactly this error (and therefore no event).
    #[track_caller]
    fn then_err(self, expected: DomainError) {
        let result = mechfund_core::decide(&self.given.state, &self.command, &self.given.rules, self.stamp);
        assert_eq!(result, Err(expected), "decision for {:?}", self.command);
    }
}

/// The contract's state fields that the tests check by hand.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    level: u8,
    evo: i64,
    power: i64,
    goal: i64,
    goal_members: i64,
    sample: i64,
    total: i64,
}

impl Outcome {
    #[track_caller]
    fn state_is(&self, expected: Summary) -> &Outcome {
        let s = &self.state;
        let actual = Summary {
            level: s.level,
            evo: s.evo_acc,
            power: s.power_acc,
            goal: s.goal_requirement,
            goal_members: s.goal_member_count,
            sample: s.last_user_count_sample,
            total: s.cumulative_donations_cents,
        };
        assert_eq!(actual, expected, "state after {:#?}", self.events);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Builders for events and commands
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn ev(seq: u64, at: &str, body: EventBody) -> Event {
    Event { seq, ts: ts(at), mech_id: "main".to_owned(), body }
}

fn donated(units: i64) -> EventBody {
    EventBody::DonationAdded { units, donor: None, channel_id: None, donation_id: None, idempotency_key: None }
}

fn donated_by(units: i64, donor: &str) -> EventBody {
    EventBody::DonationAdded {
        units,
        donor: Some(donor.to_owned()),
        channel_id: None,
        donation_id: None,
        idempotency_key: None,
    }
}

fn system_donated(units: i64, event_name: &str, description: Option<&str>) -> EventBody {
    EventBody::SystemDonationAdded {
        power_units: units,
        event_name: event_name.to_owned(),
        description: description.map(str::to_owned),
        idempotency_key: None,
    }
}

fn members_counted(member_count: i64) -> EventBody {
    EventBody::MemberCountUpdated { member_count }
}

fn gifted(power_units: i64, campaign: &str) -> EventBody {
    EventBody::PowerGiftGranted { power_units, campaign_id: campaign.to_owned() }
}

fn leveled(from: u8, to: u8, old_goal: i64, exact: bool, new_goal: i64, members: i64) -> EventBody {
    EventBody::LevelUpCommitted {
        from_level: from,
        to_level: to,
        old_goal_requirement: old_goal,
        exact_hit: exact,
        new_goal_requirement: new_goal,
        member_count: members,
    }
}

/// DDC's exact-hit bonus (spec §2.1 `exact_hit_bonus` 100; the reason as in DDC's logs).
fn bonus(from: u8, to: u8) -> EventBody {
    EventBody::ExactHitBonusGranted {
        power_units: 100,
        from_level: from,
        to_level: to,
        reason: "exact_level_up".to_owned(),
    }
}

fn deleted(seq: u64, reason: &str, donor: Option<&str>, units: i64, kind: &str) -> EventBody {
    EventBody::DonationDeleted {
        deleted_seq: seq,
        reason: Some(reason.to_owned()),
        donor: donor.map(str::to_owned),
        units: Some(units),
        original_type: Some(kind.to_owned()),
    }
}

fn donate(cents: i64) -> Command {
    Command::AddDonation {
        amount: Cents(cents),
        donor: None,
        channel_id: None,
        donation_id: None,
        idempotency_key: None,
        member_count: None,
    }
}

fn donate_with_members(cents: i64, members: i64) -> Command {
    Command::AddDonation {
        amount: Cents(cents),
        donor: None,
        channel_id: None,
        donation_id: None,
        idempotency_key: None,
        member_count: Some(members),
    }
}

fn donate_by(cents: i64, donor: &str) -> Command {
    Command::AddDonation {
        amount: Cents(cents),
        donor: Some(donor.to_owned()),
        channel_id: None,
        donation_id: None,
        idempotency_key: None,
        member_count: None,
    }
}

fn system_donate(cents: i64, event_name: &str, description: Option<&str>) -> Command {
    Command::AddSystemDonation {
        amount: Cents(cents),
        event_name: event_name.to_owned(),
        description: description.map(str::to_owned),
        idempotency_key: None,
    }
}

fn count(n: i64) -> Command {
    Command::UpdateMemberCount(MemberSource::Count(n))
}

fn gift(campaign: &str) -> Command {
    Command::GrantPowerGift { campaign_id: campaign.to_owned() }
}

fn human(id: &str) -> Member {
    Member { id: id.to_owned(), bot: false, system: false }
}

fn bot(id: &str) -> Member {
    Member { id: id.to_owned(), bot: true, system: false }
}

fn system_user(id: &str) -> Member {
    Member { id: id.to_owned(), bot: false, system: true }
}

fn channel(id: &str, accessible: bool, members: Vec<Member>) -> Channel {
    Channel { id: id.to_owned(), accessible, members }
}

fn channels(channels: Vec<Channel>, guild_member_count: Option<i64>) -> Command {
    Command::UpdateMemberCount(MemberSource::Channels { channels, guild_member_count })
}

fn out_of_range(amount: i64, max: i64) -> DomainError {
    DomainError::AmountOutOfRange { field: "amount", amount: Cents(amount), min: Cents(1), max: Cents(max) }
}

/// Default goals at 0 members (spec §2.1 base costs, §2.2): level -> goal.
const GOALS_AT_0: [i64; 10] = [1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 10000];

// ---------------------------------------------------------------------------------------------
// AddDonation
// ---------------------------------------------------------------------------------------------

#[test]
fn donation_below_the_goal_records_only_the_donation() {
    given(vec![])
        .when(Command::AddDonation {
            amount: Cents(500),
            donor: Some("Discord:alice".to_owned()),
            channel_id: Some("999999999999999999".to_owned()),
            donation_id: Some("0045055adba42960".to_owned()),
            idempotency_key: Some("d8adff0f35b3d8c7".to_owned()),
            member_count: None,
        })
        .then(vec![EventBody::DonationAdded {
            units: 500,
            donor: Some("Discord:alice".to_owned()),
            channel_id: Some("999999999999999999".to_owned()),
            donation_id: Some("0045055adba42960".to_owned()),
            idempotency_key: Some("d8adff0f35b3d8c7".to_owned()),
        }])
        .state_is(Summary { level: 1, evo: 500, power: 500, goal: 1000, goal_members: 0, sample: 0, total: 500 });
}

#[test]
fn events_take_their_seqs_and_time_from_the_stamp() {
    // 400 + 600 hits 1000 exactly: three events, numbered 42, 43, 44, all at `now`.
    let outcome = given(vec![ev(1, T0, donated(400))])
        .when(donate(600))
        .next_seq(42)
        .at("2025-01-17T15:00:00.123456+00:00")
        .then(vec![donated(600), leveled(1, 2, 1000, true, 1500, 0), bonus(1, 2)]);
    let seqs: Vec<u64> = outcome.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [42, 43, 44]);
    // 21m12.123456s of decay at 100/day on 400 is floor(1272.123456 * 100 / 86400) = 1 cent,
    // but the level-up replaces power with carry + bonus = 0 + 100.
    outcome.state_is(Summary { level: 2, evo: 0, power: 100, goal: 1500, goal_members: 0, sample: 0, total: 1000 });
}

#[test]
fn donation_that_passes_the_goal_levels_up_with_the_carry() {
    // 600 + 700 = 1300 >= 1000: level 2, evo and power = carry 300, goal(2, 0) = 1500.
    given(vec![ev(1, T0, donated(600))])
        .when(donate(700))
        .then(vec![donated(700), leveled(1, 2, 1000, false, 1500, 0)])
        .state_is(Summary { level: 2, evo: 300, power: 300, goal: 1500, goal_members: 0, sample: 0, total: 1300 });
}

#[test]
fn exact_hit_grants_the_bonus_event() {
    // 400 + 600 == 1000: exact, carry 0, power 0 + 100.
    given(vec![ev(1, T0, donated(400))])
        .when(donate(600))
        .then(vec![donated(600), leveled(1, 2, 1000, true, 1500, 0), bonus(1, 2)])
        .state_is(Summary { level: 2, evo: 0, power: 100, goal: 1500, goal_members: 0, sample: 0, total: 1000 });
}

#[test]
fn one_donation_can_level_up_several_times() {
    // 3000: 1->2 (carry 2000), 2000 >= 1500: 2->3 (carry 500), 500 < 2000.
    given(vec![])
        .when(donate(3000))
        .then(vec![donated(3000), leveled(1, 2, 1000, false, 1500, 0), leveled(2, 3, 1500, false, 2000, 0)])
        .state_is(Summary { level: 3, evo: 500, power: 500, goal: 2000, goal_members: 0, sample: 0, total: 3000 });
}

#[test]
fn multi_level_up_ending_on_an_exact_hit() {
    // 2500: 1->2 carry 1500 == goal(2) 1500: 2->3 exact, carry 0, power 100.
    given(vec![])
        .when(donate(2500))
        .then(vec![donated(2500), leveled(1, 2, 1000, false, 1500, 0), leveled(2, 3, 1500, true, 2000, 0), bonus(2, 3)])
        .state_is(Summary { level: 3, evo: 0, power: 100, goal: 2000, goal_members: 0, sample: 0, total: 2500 });
}

/// The ten level-ups of a donation of `GOALS_AT_0.sum() + carry` at 0 members.
fn all_level_ups(final_exact: bool) -> Vec<EventBody> {
    let mut events = Vec::new();
    for (i, goal) in GOALS_AT_0.iter().enumerate() {
        let from = i as u8 + 1;
        let new_goal = GOALS_AT_0.get(i + 1).copied().unwrap_or(0);
        let exact = final_exact && from == 10;
        events.push(leveled(from, from + 1, *goal, exact, new_goal, 0));
        if exact {
            events.push(bonus(10, 11));
        }
    }
    events
}

#[test]
fn one_donation_can_reach_level_11_and_keeps_the_carry() {
    // The ten goals at 0 members sum to 37000; 40000 reaches level 11 with carry 3000, which
    // stays in evo (as DDC) and is the power; the level-11 goal is 0.
    assert_eq!(GOALS_AT_0.iter().sum::<i64>(), 37_000);
    let mut expected = vec![donated(40_000)];
    expected.extend(all_level_ups(false));
    given(vec![]).when(donate(40_000)).then(expected).state_is(Summary {
        level: 11,
        evo: 3000,
        power: 3000,
        goal: 0,
        goal_members: 0,
        sample: 0,
        total: 40_000,
    });
}

#[test]
fn reaching_level_11_exactly_grants_the_bonus() {
    let mut expected = vec![donated(37_000)];
    expected.extend(all_level_ups(true));
    given(vec![]).when(donate(37_000)).then(expected).state_is(Summary {
        level: 11,
        evo: 0,
        power: 100,
        goal: 0,
        goal_members: 0,
        sample: 0,
        total: 37_000,
    });
}

#[test]
fn donation_at_level_11_only_adds_power_and_total() {
    // At level 11 there is no level-up, so even a fresh member count emits no
    // MemberCountUpdated; evo keeps its carry of 3000, power 3000 + 500.
    given(vec![ev(1, T0, donated(40_000))])
        .when(donate_with_members(500, 50))
        .then(vec![donated(500)])
        .state_is(Summary { level: 11, evo: 3000, power: 3500, goal: 0, goal_members: 0, sample: 0, total: 40_500 });
}

#[test]
fn donation_with_a_member_count_that_levels_up_records_the_count_first() {
    // At level 1 after a donation the goal is frozen at 1000; 400 + 700 levels up, and the new
    // level is priced with the fresh count: goal(2, 50) = 1500 + (50 - 10) * 10 = 1900.
    let outcome = given(vec![ev(1, T0, donated(400))]).when(donate_with_members(700, 50)).then(vec![
        members_counted(50),
        donated(700),
        leveled(1, 2, 1000, false, 1900, 50),
    ]);
    outcome.state_is(Summary { level: 2, evo: 100, power: 100, goal: 1900, goal_members: 50, sample: 50, total: 1100 });
    assert_eq!(outcome.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3, 4]);
}

#[test]
fn member_count_carried_by_a_level_up_is_clamped_to_the_cap() {
    // 150_000 members clamp to member_cap 100_000; goal(2, 100_000) =
    // min(1500 + min(99_990 * 10, 1_000_000), max_goal 1_000_000) = 1_000_000.
    given(vec![ev(1, T0, donated(400))])
        .when(donate_with_members(600, 150_000))
        .then(vec![members_counted(100_000), donated(600), leveled(1, 2, 1000, true, 1_000_000, 100_000), bonus(1, 2)])
        .state_is(Summary {
            level: 2,
            evo: 0,
            power: 100,
            goal: 1_000_000,
            goal_members: 100_000,
            sample: 100_000,
            total: 1000,
        });
}

#[test]
fn donation_with_a_member_count_that_does_not_level_up_records_no_count() {
    given(vec![ev(1, T0, donated(400))])
        .when(donate_with_members(100, 50))
        .then(vec![donated(100)])
        .state_is(Summary { level: 1, evo: 500, power: 500, goal: 1000, goal_members: 0, sample: 0, total: 500 });
}

#[test]
fn donation_amount_limits() {
    // spec §2.1: a normal donation is 1..=1_000_000 cents.
    given(vec![]).when(donate(0)).then_err(out_of_range(0, 1_000_000));
    given(vec![]).when(donate(-500)).then_err(out_of_range(-500, 1_000_000));
    given(vec![]).when(donate(1_000_001)).then_err(out_of_range(1_000_001, 1_000_000));
    given(vec![]).when(donate(1)).then(vec![donated(1)]);
    // At level 11 the largest donation is one event.
    given(vec![ev(1, T0, donated(40_000))]).when(donate(1_000_000)).then(vec![donated(1_000_000)]);
}

#[test]
fn system_donation_adds_power_and_total_but_never_evolution() {
    given(vec![])
        .when(system_donate(2500, "Monthly Motor Maintenance", Some("Community milestone")))
        .then(vec![system_donated(2500, "Monthly Motor Maintenance", Some("Community milestone"))])
        .state_is(Summary { level: 1, evo: 0, power: 2500, goal: 1000, goal_members: 0, sample: 0, total: 2500 });
}

#[test]
fn system_donation_amount_limits() {
    // spec §2.1: a system donation is 1..=100_000 cents.
    given(vec![]).when(system_donate(100_001, "Launch", None)).then_err(out_of_range(100_001, 100_000));
    given(vec![]).when(system_donate(0, "Launch", None)).then_err(out_of_range(0, 100_000));
    given(vec![]).when(system_donate(100_000, "Launch", None)).then(vec![system_donated(100_000, "Launch", None)]);
}

// ---------------------------------------------------------------------------------------------
// Strings (spec §2.1: donor 1..=100 chars, event name 1..=100, description <= 500, no
// control characters; counted in characters, not bytes)
// ---------------------------------------------------------------------------------------------

const CONTROL: [&str; 6] = ["a\nb", "tab\there", "nul\u{0}", "del\u{7f}", "c1\u{85}", "\r"];

#[test]
fn donor_must_be_1_to_100_characters() {
    given(vec![]).when(donate_by(100, "")).then_err(DomainError::EmptyText { field: "donor" });
    given(vec![]).when(donate_by(100, &"a".repeat(101))).then_err(DomainError::TextTooLong {
        field: "donor",
        len: 101,
        max: 100,
    });
    // 100 'é' are 200 bytes but 100 characters: fine. 101 are one too many.
    let e100 = "é".repeat(100);
    given(vec![]).when(donate_by(100, &e100)).then(vec![donated_by(100, &e100)]);
    given(vec![]).when(donate_by(100, &"é".repeat(101))).then_err(DomainError::TextTooLong {
        field: "donor",
        len: 101,
        max: 100,
    });
    let rockets = "🚀".repeat(100);
    given(vec![]).when(donate_by(100, &rockets)).then(vec![donated_by(100, &rockets)]);
    let a100 = "a".repeat(100);
    given(vec![]).when(donate_by(100, &a100)).then(vec![donated_by(100, &a100)]);
    // No donor at all is fine (DDC writes null).
    given(vec![]).when(donate(100)).then(vec![donated(100)]);
}

#[test]
fn donor_must_not_contain_control_characters() {
    for text in CONTROL {
        given(vec![]).when(donate_by(100, text)).then_err(DomainError::ControlCharacter { field: "donor" });
    }
}

#[test]
fn event_name_must_be_1_to_100_characters_without_control_characters() {
    given(vec![]).when(system_donate(100, "", None)).then_err(DomainError::EmptyText { field: "event_name" });
    given(vec![]).when(system_donate(100, &"x".repeat(101), None)).then_err(DomainError::TextTooLong {
        field: "event_name",
        len: 101,
        max: 100,
    });
    let e100 = "é".repeat(100);
    given(vec![]).when(system_donate(100, &e100, None)).then(vec![system_donated(100, &e100, None)]);
    for text in CONTROL {
        given(vec![])
            .when(system_donate(100, text, None))
            .then_err(DomainError::ControlCharacter { field: "event_name" });
    }
}

#[test]
fn description_is_at_most_500_characters_without_control_characters() {
    given(vec![]).when(system_donate(100, "Launch", Some(&"d".repeat(501)))).then_err(DomainError::TextTooLong {
        field: "description",
        len: 501,
        max: 500,
    });
    let d500 = "ü".repeat(500);
    given(vec![]).when(system_donate(100, "Launch", Some(&d500))).then(vec![system_donated(
        100,
        "Launch",
        Some(&d500),
    )]);
    // "<= 500": an empty description is allowed.
    given(vec![]).when(system_donate(100, "Launch", Some(""))).then(vec![system_donated(100, "Launch", Some(""))]);
    for text in CONTROL {
        given(vec![])
            .when(system_donate(100, "Launch", Some(text)))
            .then_err(DomainError::ControlCharacter { field: "description" });
    }
}

// ---------------------------------------------------------------------------------------------
// Amounts as text (spec §2.6: parsed exactly, never truncated)
// ---------------------------------------------------------------------------------------------

#[test]
fn amounts_are_parsed_exactly_from_decimal_strings() {
    assert_eq!(Cents::parse_dollars("5"), Ok(Cents(500)));
    assert_eq!(Cents::parse_dollars("5.5"), Ok(Cents(550)));
    assert_eq!(Cents::parse_dollars("5.50"), Ok(Cents(550)));
    let amount = Cents::parse_dollars("5.50").expect("exact");
    given(vec![])
        .when(Command::AddDonation {
            amount,
            donor: None,
            channel_id: None,
            donation_id: None,
            idempotency_key: None,
            member_count: None,
        })
        .then(vec![donated(550)]);
}

#[test]
fn inexact_or_malformed_amounts_are_amount_errors() {
    let cases = [
        ("5.555", AmountError::SubCent("5.555".to_owned())),
        ("-1", AmountError::Negative("-1".to_owned())),
        ("1e3", AmountError::Malformed("1e3".to_owned())),
        ("abc", AmountError::Malformed("abc".to_owned())),
    ];
    for (text, expected) in cases {
        let error = Cents::parse_dollars(text).expect_err(text);
        assert_eq!(error, expected, "{text}");
        // How the server surfaces it: a typed DomainError naming the field.
        let surfaced = DomainError::Amount { field: "amount", source: error };
        assert!(surfaced.to_string().starts_with("amount: "), "{surfaced} names the field");
        assert!(surfaced.to_string().contains(text), "{surfaced} quotes {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// UpdateMemberCount
// ---------------------------------------------------------------------------------------------

#[test]
fn member_count_at_level_1_before_any_donation_reprices_the_goal() {
    // Seed "Option 3": goal(1, 50) = 1000 + 40 * 10 = 1400.
    given(vec![]).when(count(50)).then(vec![members_counted(50)]).state_is(Summary {
        level: 1,
        evo: 0,
        power: 0,
        goal: 1400,
        goal_members: 50,
        sample: 50,
        total: 0,
    });
}

#[test]
fn member_count_after_a_donation_leaves_the_goal_frozen() {
    // Seed "Option B": the sample changes, the goal waits for the next level-up.
    given(vec![ev(1, T0, donated(100))]).when(count(50)).then(vec![members_counted(50)]).state_is(Summary {
        level: 1,
        evo: 100,
        power: 100,
        goal: 1000,
        goal_members: 0,
        sample: 50,
        total: 100,
    });
}

#[test]
fn negative_member_counts_are_refused() {
    given(vec![]).when(count(-1)).then_err(DomainError::NegativeMemberCount(-1));
    given(vec![]).when(donate_with_members(100, -5)).then_err(DomainError::NegativeMemberCount(-5));
    // Even when the donation would level up.
    given(vec![ev(1, T0, donated(900))])
        .when(donate_with_members(100, -5))
        .then_err(DomainError::NegativeMemberCount(-5));
    given(vec![]).when(count(0)).then(vec![members_counted(0)]);
}

#[test]
fn channel_members_are_counted_once_without_bots_system_users_or_unreadable_channels() {
    // u1, u2 in A; u2 again, u3 in B; bots and the system user never count; C cannot be read
    // (its u4 and u5 are not counted). Unique humans: u1, u2, u3.
    let source = vec![
        channel("A", true, vec![human("u1"), human("u2"), bot("b1")]),
        channel("B", true, vec![human("u2"), human("u3"), system_user("s1"), bot("b2")]),
        channel("C", false, vec![human("u4"), human("u5")]),
    ];
    let tally = count_members(&source, Some(999), &Rules::default());
    assert_eq!(tally.count, Some(3));
    assert_eq!(tally.skipped_channels, ["C"]);
    given(vec![]).when(channels(source, Some(999))).then(vec![members_counted(3)]).state_is(Summary {
        level: 1,
        evo: 0,
        power: 0,
        goal: 1000,
        goal_members: 3,
        sample: 3,
        total: 0,
    });
}

#[test]
fn readable_channels_with_only_bots_count_zero() {
    given(vec![ev(1, T0, members_counted(40))])
        .when(channels(vec![channel("A", true, vec![bot("b1"), system_user("s1")])], Some(500)))
        .then(vec![members_counted(0)]);
}

#[test]
fn no_readable_channel_falls_back_to_the_guild_count() {
    given(vec![])
        .when(channels(vec![channel("A", false, vec![human("u1")]), channel("B", false, vec![])], Some(42)))
        .then(vec![members_counted(42)]);
    // No channel at all: none could be read either.
    given(vec![]).when(channels(vec![], Some(7))).then(vec![members_counted(7)]);
    // The fallback is clamped to [0, member_cap] too.
    given(vec![])
        .when(channels(vec![channel("A", false, vec![human("u1")])], Some(250_000)))
        .then(vec![members_counted(100_000)]);
}

#[test]
fn no_readable_channel_and_no_guild_count_keeps_the_last_sample() {
    given(vec![ev(1, T0, members_counted(40))])
        .when(channels(vec![channel("A", false, vec![human("u1")])], None))
        .then(vec![])
        .state_is(Summary { level: 1, evo: 0, power: 0, goal: 1300, goal_members: 40, sample: 40, total: 0 });
    given(vec![]).when(channels(vec![], None)).then(vec![]);
}

// ---------------------------------------------------------------------------------------------
// GrantPowerGift. Amounts worked out with Python's hashlib:
//   sha256("main|startup_gift_v1")[:8] = cb2e49a3 -> 3409856931 % 3 = 2 -> 300
//   sha256("main|spring_2025")[:8]     = 00d940d1 ->   14237905 % 3 = 1 -> 200
//   sha256("main|c1")[:8]              = 8c20853d -> 2350941501 % 3 = 0 -> 100
//   sha256("alt|startup_gift_v1")[:8]  = 08d35041 ->  147017793 % 3 = 1 -> 200
// (DDC's own sample log records 300 for startup_gift_v1 on main.)
// ---------------------------------------------------------------------------------------------

#[test]
fn gift_amount_follows_ddc_hash() {
    assert_eq!(0xcb2e49a3_u32 % 3, 2);
    assert_eq!(0x00d940d1_u32 % 3, 1);
    assert_eq!(0x8c20853d_u32 % 3, 0);
    assert_eq!(0x08d35041_u32 % 3, 1);
    given(vec![]).when(gift("startup_gift_v1")).then(vec![gifted(300, "startup_gift_v1")]).state_is(Summary {
        level: 1,
        evo: 0,
        power: 300,
        goal: 1000,
        goal_members: 0,
        sample: 0,
        total: 0,
    });
    given(vec![]).when(gift("spring_2025")).then(vec![gifted(200, "spring_2025")]);
    given(vec![]).when(gift("c1")).then(vec![gifted(100, "c1")]);
    // The mech id is part of the hash.
    let outcome = given_mech("alt", Vec::<String>::new())
        .when(gift("startup_gift_v1"))
        .then(vec![gifted(200, "startup_gift_v1")]);
    assert_eq!(outcome.events[0].mech_id, "alt");
}

#[test]
fn gift_needs_power_decayed_to_zero_at_now() {
    // 100 cents of power decays at 100/day: 1 cent is left 1 us before a full day.
    let log = || given(vec![ev(1, T0, donated(100))]);
    log().when(gift("spring_2025")).then_err(DomainError::GiftPowerRemaining(Cents(100)));
    log()
        .when(gift("spring_2025"))
        .at("2025-01-18T14:38:47.999999+00:00")
        .then_err(DomainError::GiftPowerRemaining(Cents(1)));
    log()
        .when(gift("spring_2025"))
        .at("2025-01-18T14:38:48+00:00")
        .then(vec![gifted(200, "spring_2025")])
        .state_is(Summary { level: 1, evo: 100, power: 200, goal: 1000, goal_members: 0, sample: 0, total: 100 });
    // 150 cents: half a day more than 100 cents' worth.
    let log = || given(vec![ev(1, T0, donated(150))]);
    log().when(gift("c1")).at("2025-01-18T14:38:48+00:00").then_err(DomainError::GiftPowerRemaining(Cents(50)));
    log().when(gift("c1")).at("2025-01-19T02:38:48+00:00").then(vec![gifted(100, "c1")]);
}

#[test]
fn gift_campaign_is_used_once_per_mech() {
    // DDC's own first line: a startup gift of 300 at 2025-05-23T13:30:50.424239. Three days
    // later its power has decayed to 0, but the campaign is used.
    let ddc = r#"{"seq":1,"ts":"2025-05-23T13:30:50.424239+00:00","type":"PowerGiftGranted","mech_id":"main","payload":{"campaign_id":"startup_gift_v1","power_units":300}}"#;
    given_lines([ddc])
        .when(gift("startup_gift_v1"))
        .at("2025-05-26T13:30:50.424239+00:00")
        .then_err(DomainError::GiftCampaignUsed("startup_gift_v1".to_owned()));
    given_lines([ddc])
        .when(gift("spring_2025"))
        .at("2025-05-26T13:30:50.424239+00:00")
        .then(vec![gifted(200, "spring_2025")]);
}

#[test]
fn gift_campaign_stays_used_after_the_gift_is_deleted() {
    // The deleted gift gives no power (so power is 0), but the campaign was used.
    let log = vec![
        ev(1, T0, gifted(300, "startup_gift_v1")),
        ev(2, T0, deleted(1, "admin_deletion", None, 300, "PowerGiftGranted")),
    ];
    given(log).when(gift("startup_gift_v1")).then_err(DomainError::GiftCampaignUsed("startup_gift_v1".to_owned()));
}

#[test]
fn gift_campaign_of_another_mech_does_not_count() {
    let other = r#"{"seq":1,"ts":"2025-05-23T13:30:50.424239+00:00","type":"PowerGiftGranted","mech_id":"other","payload":{"campaign_id":"startup_gift_v1","power_units":300}}"#;
    given_lines([other]).when(gift("startup_gift_v1")).next_seq(2).then(vec![gifted(300, "startup_gift_v1")]);
}

// ---------------------------------------------------------------------------------------------
// ToggleDonationDeletion
// ---------------------------------------------------------------------------------------------

#[test]
fn deleting_a_donation_copies_its_details_into_the_payload() {
    given(vec![ev(1, T0, donated_by(690, "Discord:exact")), ev(2, T0, donated(100))])
        .when_toggle(1, "admin_deletion")
        .then(vec![deleted(1, "admin_deletion", Some("Discord:exact"), 690, "DonationAdded")])
        .state_is(Summary { level: 1, evo: 100, power: 100, goal: 1000, goal_members: 0, sample: 0, total: 100 });
}

#[test]
fn toggling_a_deleted_donation_again_restores_it() {
    given(vec![
        ev(1, T0, donated_by(690, "Discord:exact")),
        ev(2, T0, donated(100)),
        ev(3, T0, deleted(1, "admin_deletion", Some("Discord:exact"), 690, "DonationAdded")),
    ])
    .when_toggle(1, "admin_restore")
    .then(vec![deleted(1, "admin_restore", Some("Discord:exact"), 690, "DonationAdded")])
    .state_is(Summary { level: 1, evo: 790, power: 790, goal: 1000, goal_members: 0, sample: 0, total: 790 });
}

#[test]
fn system_donations_and_gifts_can_be_deleted() {
    given(vec![ev(1, T0, system_donated(2500, "Launch", None)), ev(2, T0, gifted(300, "startup_gift_v1"))])
        .when_toggle(1, "mistake")
        .then(vec![deleted(1, "mistake", None, 2500, "SystemDonationAdded")])
        .state_is(Summary { level: 1, evo: 0, power: 300, goal: 1000, goal_members: 0, sample: 0, total: 0 });
    given(vec![ev(1, T0, system_donated(2500, "Launch", None)), ev(2, T0, gifted(300, "startup_gift_v1"))])
        .when_toggle(2, "mistake")
        .then(vec![deleted(2, "mistake", None, 300, "PowerGiftGranted")])
        .state_is(Summary { level: 1, evo: 0, power: 2500, goal: 1000, goal_members: 0, sample: 0, total: 2500 });
}

#[test]
fn deleting_an_unknown_seq_is_refused() {
    given(vec![ev(1, T0, donated(100))]).when_toggle(99, "admin_deletion").then_err(DomainError::UnknownSeq(99));
    given(vec![]).when_toggle(1, "admin_deletion").then_err(DomainError::UnknownSeq(1));
}

#[test]
fn only_donations_system_donations_and_gifts_can_be_deleted() {
    let log = || {
        given(vec![
            ev(1, T0, members_counted(50)),
            ev(2, T0, donated(1400)),
            ev(3, T0, leveled(1, 2, 1400, true, 1900, 50)),
            ev(4, T0, bonus(1, 2)),
            ev(5, T0, deleted(2, "admin_deletion", None, 1400, "DonationAdded")),
        ])
    };
    for (seq, kind) in
        [(1, "MemberCountUpdated"), (3, "LevelUpCommitted"), (4, "ExactHitBonusGranted"), (5, "DonationDeleted")]
    {
        log().when_toggle(seq, "admin_deletion").then_err(DomainError::NotDeletable { seq, kind: kind.to_owned() });
    }
}

#[test]
fn a_fresh_count_at_level_1_repricing_keeps_a_donation_below_the_new_goal() {
    // Fresh mech, goal 1000 (0 members). 1000 with 50 members would level up at the old goal, so
    // the count is recorded first; before any donation it re-prices level 1 to
    // 1000 + (50 - 10) * 10 = 1400, and 1000 < 1400: no level-up.
    given(vec![])
        .when(donate_with_members(1000, 50))
        .then(vec![members_counted(50), donated(1000)])
        .state_is(Summary { level: 1, evo: 1000, power: 1000, goal: 1400, goal_members: 50, sample: 50, total: 1000 });
}

#[test]
fn a_fresh_count_at_level_1_repricing_can_make_a_donation_level_up() {
    // Sampled at 50 members before any donation: goal 1400. 1000 with a fresh count of 0 does
    // not reach 1400, but the count re-prices level 1 to 1000 first, so it is recorded and the
    // donation hits the goal exactly: level 2 priced at goal(2, 0) = 1500, bonus 100.
    given(vec![ev(1, T0, members_counted(50))])
        .when(donate_with_members(1000, 0))
        .then(vec![members_counted(0), donated(1000), leveled(1, 2, 1000, true, 1500, 0), bonus(1, 2)])
        .state_is(Summary { level: 2, evo: 0, power: 100, goal: 1500, goal_members: 0, sample: 0, total: 1000 });
}
