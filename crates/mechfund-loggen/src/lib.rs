//! mechfund-loggen: a seeded generator of realistic DDC-format event logs, for benchmarks and
//! tests.
//!
//! The generator drives the core itself: it keeps a [`State`], draws a [`Command`] (donations,
//! member counts, system donations, deletion toggles, power gifts when eligible), asks
//! [`decide()`] for the events, writes each with [`Event::to_json_line`] and folds it with
//! [`State::apply`]. So every line is one mechfund (and DDC) would write, derived level-ups
//! included, and [`mechfund_core::replay_bytes`] of the log ends in the generator's own state.
//!
//! Deletion toggles target one of the last [`Config::deletion_window`] events and the window is
//! re-folded after each toggle (see the `history` module), which keeps the generator's state
//! equal to replay's. The level-ups and bonuses written between a deleted event and its
//! deletion stay in the log and replay reports them as `superseded`, as in real DDC logs.
//!
//! What a log looks like (default [`Config`], mech `main`, default rules):
//! - commands: 66% donations, 25% member counts, 5% system donations, 4% deletion toggles (one
//!   in five restores an earlier deletion), a power gift whenever the mech has run out of power
//!   (the first one is DDC's `startup_gift_v1`); level-ups and exact-hit bonuses as `decide`
//!   derives them. A log has exactly [`Config::events`] lines.
//! - donations: round amounts or $0.10–$20 mostly, 3% up to $500, 0.3% up to $5,000; a quarter
//!   of those that come within $25 of the goal hit it exactly; 5% without a donor, 8% from donors
//!   with non-ASCII names, 5% without a channel; 16-hex-digit `donation_id`/`idempotency_key`.
//! - member counts start between 300 and 3,000 and random-walk; 40% of donations carry one.
//! - time: 85% of gaps are seconds to 5 minutes, 13.5% up to 3 hours, 1.4% up to 3 days, 0.1%
//!   up to a week, 1 in 20,000 is 30 days (about 34 minutes on average, so 1M events span
//!   ~65 years: far more than a real guild, but only the mix matters for speed).
//! - lines average ~225 bytes (DDC's own sample logs: ~195), so 1M events are ~225 MB.
//! - with default goals the mech reaches level 11 within a few hundred events (as DDC's small
//!   communities do); after that donations add power only. Raise [`Rules::level_base_costs`] in
//!   the config to keep level-ups coming.
//!
//! It is **not** part of the product: nothing in the server or the dashboard uses it. Same
//! seed, same log, byte for byte, on every machine (its PRNG is a hand-written SplitMix64).

mod history;
mod rng;

use std::collections::VecDeque;
use std::io::{self, Write};

use mechfund_core::decide::DeletionTarget;
use mechfund_core::display::power_at;
use mechfund_core::parse::Val;
use mechfund_core::rules::MAX_LEVEL;
use mechfund_core::state::{Effects, RecordedGoal, record_goal};
use mechfund_core::{Cents, Command, Event, EventBody, MemberSource, Rules, Stamp, State, Timestamp, decide};

use crate::history::{Entry, History};
pub use crate::rng::Rng;

/// Changes whenever the same config and seed would produce a different log, so caches of
/// generated logs (like `cargo xtask bench`'s) know to regenerate.
pub const GENERATOR_VERSION: u32 = 1;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of lines (events, derived ones included) to write; the log has exactly this many.
    pub events: u64,
    /// The seed: the same seed and config give the same log.
    pub seed: u64,
    /// The mech every event belongs to.
    pub mech_id: String,
    /// The time of the first event.
    pub start: Timestamp,
    /// The rules `decide` and `apply` run under (replay the log with the same rules).
    pub rules: Rules,
    /// How many recent events a deletion toggle may target.
    pub deletion_window: usize,
}

impl Config {
    /// `events` lines for mech `main` under the default rules, starting 2025-07-02 like DDC's
    /// sample logs.
    #[must_use]
    pub fn new(events: u64, seed: u64) -> Config {
        Config {
            events,
            seed,
            mech_id: "main".to_owned(),
            // 2025-07-02T16:39:49.156493+00:00
            start: Timestamp(1_751_474_389_156_493),
            rules: Rules::default(),
            deletion_window: 1000,
        }
    }
}

/// Counts of what was generated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lines written.
    pub lines: u64,
    /// Bytes written, newlines included.
    pub bytes: u64,
    /// `DonationAdded` lines.
    pub donations: u64,
    /// `MemberCountUpdated` lines.
    pub member_counts: u64,
    /// `SystemDonationAdded` lines.
    pub system_donations: u64,
    /// `PowerGiftGranted` lines.
    pub gifts: u64,
    /// `DonationDeleted` lines that deleted their target.
    pub deletions: u64,
    /// `DonationDeleted` lines that restored their target.
    pub restores: u64,
    /// `LevelUpCommitted` lines.
    pub level_ups: u64,
    /// `ExactHitBonusGranted` lines.
    pub exact_hits: u64,
    /// Seq of the first event at level 11, if reached.
    pub max_level_at_seq: Option<u64>,
}

/// The generator: an iterator over log lines (without newlines).
#[derive(Debug)]
pub struct Generator {
    config: Config,
    rng: Rng,
    state: State,
    history: History,
    goals: [Option<RecordedGoal>; 10],
    now: Timestamp,
    next_seq: u64,
    members: i64,
    next_campaign: u32,
    pending: VecDeque<String>,
    stats: Stats,
}

/// A generator for `config` (see [`Generator`]).
#[must_use]
pub fn generate(config: Config) -> Generator {
    Generator::new(config)
}

/// Writes a log of `events` lines for `seed` (default config) to `writer`, one line per event,
/// each ending with `\n`.
///
/// # Errors
/// The writer's errors.
pub fn write_log<W: Write>(writer: W, events: u64, seed: u64) -> io::Result<Stats> {
    let mut out = io::BufWriter::with_capacity(1 << 20, writer);
    let mut generator = Generator::new(Config::new(events, seed));
    for line in generator.by_ref() {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(generator.stats().clone())
}

/// The whole log as one string (for in-memory benchmarks and tests).
#[must_use]
pub fn log_text(events: u64, seed: u64) -> String {
    let mut text = String::new();
    for line in generate(Config::new(events, seed)) {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

impl Generator {
    /// A generator for `config`.
    #[must_use]
    pub fn new(config: Config) -> Generator {
        let mut rng = Rng::new(config.seed);
        let state = State::initial(&config.mech_id, &config.rules, [None; 10]);
        let history = History::new(state.clone(), config.deletion_window);
        let members = rng.range(300, 3000);
        Generator {
            now: config.start,
            config,
            rng,
            state,
            history,
            goals: [None; 10],
            next_seq: 1,
            members,
            next_campaign: 0,
            pending: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// The live state after the lines produced so far: what replaying them gives.
    #[must_use]
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The rules in use.
    #[must_use]
    pub fn rules(&self) -> &Rules {
        &self.config.rules
    }

    /// Counts of what was produced so far.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn remaining(&self) -> u64 {
        self.config.events.saturating_sub(self.stats.lines)
    }

    /// Advances the clock, draws one command and appends its events to `pending`.
    fn step(&mut self) {
        self.now = Timestamp(self.now.micros() + gap_micros(&mut self.rng));
        let command = self.draw_command();
        let rules = &self.config.rules;
        let stamp = Stamp { next_seq: self.next_seq, now: self.now };
        let events = match decide(&self.state, &command, rules, stamp) {
            Ok(events) if events.len() as u64 <= self.remaining() => events,
            // Too many lines for what is left (a level-up near the end), or refused (should
            // not happen: the commands are drawn valid): write a member count instead.
            _ => {
                let command = Command::UpdateMemberCount(MemberSource::Count(self.members));
                decide(&self.state, &command, rules, stamp).unwrap_or_default()
            }
        };
        for event in events {
            self.write(event);
        }
    }

    fn write(&mut self, event: Event) {
        let line = event.to_json_line();
        self.stats.lines += 1;
        self.stats.bytes += line.len() as u64 + 1;
        self.pending.push_back(line);
        self.next_seq = event.seq + 1;
        let record = event.record();
        let target = |donor: &Option<String>, units: i64| {
            Some(DeletionTarget { kind: event.body.kind(), donor: donor.clone(), units: Some(units) })
        };
        let target = match &event.body {
            EventBody::DonationDeleted { deleted_seq, .. } => {
                self.toggle(*deleted_seq);
                self.state.last_event_seq = event.seq;
                return;
            }
            EventBody::DonationAdded { units, donor, .. } => {
                self.stats.donations += 1;
                target(donor, *units)
            }
            EventBody::SystemDonationAdded { power_units, .. } => {
                self.stats.system_donations += 1;
                target(&None, *power_units)
            }
            EventBody::PowerGiftGranted { power_units, .. } => {
                self.stats.gifts += 1;
                target(&None, *power_units)
            }
            EventBody::MemberCountUpdated { .. } => {
                self.stats.member_counts += 1;
                None
            }
            EventBody::LevelUpCommitted {
                from_level, to_level, old_goal_requirement, new_goal_requirement, ..
            } => {
                self.stats.level_ups += 1;
                if *to_level == MAX_LEVEL && self.stats.max_level_at_seq.is_none() {
                    self.stats.max_level_at_seq = Some(event.seq);
                }
                let level = |l: &u8| Val::Int(i64::from(*l));
                let goal = |g: &i64| Val::Int(*g);
                let goals = &mut self.goals;
                record_goal(goals, level(from_level), goal(old_goal_requirement), event.seq);
                record_goal(goals, level(to_level), goal(new_goal_requirement), event.seq);
                None
            }
            EventBody::ExactHitBonusGranted { .. } => {
                self.stats.exact_hits += 1;
                None
            }
        };
        let rules = &self.config.rules;
        self.state.apply(&record, rules, &mut Effects::default());
        self.history.push(Entry { record, target, deleted: false }, rules, &self.goals);
    }

    /// Applies a deletion toggle of `seq` by re-folding the window without the deleted events.
    fn toggle(&mut self, seq: u64) {
        let Some(index) = self.history.recent().iter().position(|e| e.record.seq == seq) else {
            return;
        };
        let restoring = self.history.recent()[index].deleted;
        if restoring {
            self.stats.restores += 1;
        } else {
            self.stats.deletions += 1;
        }
        self.state = self.history.toggle(index, &self.config.rules, &self.goals);
    }

    fn draw_command(&mut self) -> Command {
        let rules = &self.config.rules;
        // A mech with no power left gets a gift, as DDC's startup and comeback campaigns do.
        if power_at(&self.state, rules, self.now) == 0 && self.rng.chance(0.5) {
            let campaign_id = match self.next_campaign {
                0 => "startup_gift_v1".to_owned(),
                n => format!("comeback_gift_{n}"),
            };
            self.next_campaign += 1;
            return Command::GrantPowerGift { campaign_id };
        }
        // The bot reports the member count first, as DDC does at startup.
        let roll = if self.stats.member_counts == 0 { 70 } else { self.rng.below(100) };
        match roll {
            0..66 => self.donation(),
            66..91 => {
                self.walk_members();
                Command::UpdateMemberCount(MemberSource::Count(self.members))
            }
            91..96 => self.system_donation(),
            _ => self.deletion().unwrap_or(Command::UpdateMemberCount(MemberSource::Count(self.members))),
        }
    }

    /// Member counts drift like a community: often the same count again, small steps, now and
    /// then a surge or an exodus of a few percent.
    fn walk_members(&mut self) {
        let r = &mut self.rng;
        if r.chance(0.4) {
            return;
        }
        let step = if r.chance(0.01) { self.members * r.range(-5, 5) / 100 } else { r.range(-4, 4) };
        self.members = (self.members + step).clamp(1, 250_000);
    }

    fn donation(&mut self) -> Command {
        let r = &mut self.rng;
        let s = &self.state;
        let gap = s.goal_requirement - s.evo_acc;
        // Someone tops the goal off exactly (DDC's "Discord:exact" donor does it on purpose).
        let amount =
            if s.level < MAX_LEVEL && (1..=2500).contains(&gap) && r.chance(0.25) { gap } else { donation_cents(r) };
        let donor = match r.unit() {
            u if u < 0.05 => None,
            u if u < 0.13 => Some(*r.pick(INTERNATIONAL_DONORS)),
            _ => Some(*r.pick(DONORS)),
        }
        .map(str::to_owned);
        let channel_id = (!r.chance(0.05)).then(|| (*r.skewed(CHANNELS)).to_owned());
        let donation_id = Some(r.hex16());
        let idempotency_key = Some(r.hex16());
        let member_count = r.chance(0.4).then_some(self.members);
        Command::AddDonation { amount: Cents(amount), donor, channel_id, donation_id, idempotency_key, member_count }
    }

    fn system_donation(&mut self) -> Command {
        let r = &mut self.rng;
        let (event_name, description) = *r.skewed(SYSTEM_EVENTS);
        let description = (!r.chance(0.3)).then(|| description.to_owned());
        Command::AddSystemDonation {
            amount: Cents(r.log_uniform(50, 5000)),
            event_name: event_name.to_owned(),
            description,
            idempotency_key: Some(r.hex16()),
        }
    }

    /// Toggles a recent deletable event (mostly recent ones); one in five restores a deleted one.
    fn deletion(&mut self) -> Option<Command> {
        let recent = self.history.recent();
        let restore = self.rng.chance(0.2);
        let index = if restore {
            let deleted: Vec<usize> = (0..recent.len()).filter(|&i| recent[i].deleted).collect();
            *deleted.get(self.rng.below(deleted.len() as u64) as usize)?
        } else {
            (0..8).find_map(|_| {
                let back = (self.rng.unit().powi(2) * recent.len() as f64) as usize;
                let i = recent.len().checked_sub(back + 1)?;
                (recent[i].target.is_some() && !recent[i].deleted).then_some(i)
            })?
        };
        let entry = &recent[index];
        let reasons = if restore { RESTORE_REASONS } else { DELETE_REASONS };
        Some(Command::ToggleDonationDeletion {
            seq: entry.record.seq,
            reason: (*self.rng.skewed(reasons)).to_owned(),
            target: entry.target.clone(),
        })
    }
}

impl Iterator for Generator {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            if self.remaining() == 0 {
                return None;
            }
            self.step();
        }
    }
}

/// Time to the next command: mostly seconds to minutes, sometimes hours, rarely days, very
/// rarely a 30-day silence (which drains the mech's power).
fn gap_micros(r: &mut Rng) -> i64 {
    const MIN: i64 = 60;
    const HOUR: i64 = 3600;
    const DAY: i64 = 86_400;
    let u = r.unit();
    let secs = if u < 0.85 {
        r.log_uniform(1, 5 * MIN)
    } else if u < 0.985 {
        r.log_uniform(5 * MIN, 3 * HOUR)
    } else if u < 0.99895 {
        r.log_uniform(3 * HOUR, 3 * DAY)
    } else if u < 0.99995 {
        r.log_uniform(3 * DAY, 7 * DAY)
    } else {
        30 * DAY
    };
    secs * 1_000_000 + r.range(0, 999_999)
}

/// A donation in cents: round amounts or $0.10–$20 mostly, sometimes up to $500, rarely $5,000.
fn donation_cents(r: &mut Rng) -> i64 {
    let u = r.unit();
    if u < 0.45 {
        *r.skewed(&[500, 100, 1000, 200, 300, 2000, 1500, 2500, 50])
    } else if u < 0.965 {
        r.log_uniform(10, 2000)
    } else if u < 0.997 {
        r.log_uniform(2000, 50_000)
    } else {
        r.log_uniform(50_000, 500_000)
    }
}

/// Donor names as DDC records them: "Discord:" + display name, a few from the web UI and Ko-fi.
const DONORS: &[&str] = &[
    "Discord:alice",
    "Discord:container_captain",
    "Discord:MechPilot_42",
    "Discord:erin.the.engineer",
    "Discord:xX_GearGrinder_Xx",
    "Discord:frank",
    "Discord:the_docker_whisperer",
    "Discord:NightOwl#7731",
    "Discord:exact",
    "Discord:bob_builds_bots",
    "Web UI: Anonymous supporter",
    "Discord:ivan_the_terrible_admin",
    "Discord:grace.hopper.fan",
    "Ko-fi:Max Mustermann",
    "Discord:heidi_hosts_homelabs",
    "Discord:mallory (not malicious)",
    "Discord:trent_the_trusted_third_party",
    "Discord:walter",
    "Discord:SelfHostedSamantha",
    "Discord:Captain Container (Mod)",
    "Discord:raspberry_pi_rancher",
    "Discord:kubernetes_kevin",
    "Discord:judy.on.call",
    "Discord:uptime_enthusiast_99",
];

/// Donors whose names are not ASCII (written as `\u` escapes, as Python's `json.dumps` does).
/// One donation in twelve comes from them: DDC's own sample logs have none, but international
/// communities do, and escapes take the parser off its fastest path.
const INTERNATIONAL_DONORS: &[&str] = &[
    "Discord:Zoë",
    "Discord:José Álvarez",
    "Discord:Jürgen Müller",
    "Discord:Łukasz Wiśniewski",
    "Discord:Søren",
    "Discord:Ayşe Yılmaz",
    "Discord:Анна Каренина",
    "Discord:李雷",
    "Discord:さくら🌸",
    "Discord:Renée Côté",
    "Discord:Δημήτρης",
    "Discord:김민준",
    "Discord:Nguyễn Văn An",
];

/// Status channels: Discord snowflakes (18–19 digits).
const CHANNELS: &[&str] = &["1187245512345678901", "999999999999999999", "1093452389012345678", "1234567890123456789"];

const SYSTEM_EVENTS: &[(&str, &str)] = &[
    ("Monthly Motor Maintenance", "Community milestone"),
    ("Bot Birthday", "Another year of keeping the containers running smoothly"),
    ("Server Anniversary", "Thanks to everyone who joined the server this year"),
    ("Community Event Reward", "Winner of the weekend game night tournament"),
    ("Uptime Streak", "30 days without a single unplanned container restart"),
    ("Partner Sponsorship", "Sponsored power boost from our partner server"),
];

const DELETE_REASONS: &[&str] = &[
    "Duplicate donation (webhook retried)",
    "Test donation by an admin",
    "Refunded via Ko-fi at the donor's request",
    "Entered with the wrong amount, re-entered below",
    "Chargeback reported by the payment provider",
];

const RESTORE_REASONS: &[&str] = &["Restored: the refund was cancelled", "Restored: deleted by mistake"];

#[cfg(test)]
mod tests {
    use super::*;
    use mechfund_core::{DiagnosticKind, ReplayOptions, replay_bytes};

    #[test]
    fn same_seed_same_log_and_exact_length() {
        let a = log_text(3000, 42);
        assert_eq!(a, log_text(3000, 42));
        assert_ne!(a, log_text(3000, 43));
        assert_eq!(a.lines().count(), 3000);
        assert_eq!(log_text(0, 1), "");
        assert_eq!(log_text(1, 1).lines().count(), 1);
    }

    /// Replays the generated log and checks it ends in the generator's own state, with no
    /// diagnostics beyond the information deletions leave behind.
    #[track_caller]
    fn replay_agrees(config: Config) -> Stats {
        let mut generator = generate(config);
        let text: String = generator.by_ref().map(|l| l + "\n").collect();
        let result = replay_bytes(text.as_bytes(), generator.rules(), ReplayOptions::default()).unwrap();
        let key = |s: &State| {
            (
                s.level,
                s.evo_acc,
                s.power_acc,
                s.goal_requirement,
                s.goal_member_count,
                s.last_user_count_sample,
                s.cumulative_donations_cents,
                s.last_event_seq,
                format!("{:?}", s.last_event_ts),
                s.decay_remainder,
            )
        };
        assert_eq!(key(generator.state()), key(&result.state));
        let unexpected: Vec<_> = result
            .diagnostics
            .iter()
            .filter(|d| {
                // Both are information about history rewritten by deletions, as in DDC's logs.
                !matches!(d.kind, DiagnosticKind::Superseded | DiagnosticKind::RecordedGoalDiffers)
            })
            .collect();
        assert!(unexpected.is_empty(), "{unexpected:#?}");
        generator.stats().clone()
    }

    #[test]
    fn replay_ends_in_the_generators_state() {
        for seed in [7, 8] {
            replay_agrees(Config::new(10_000, seed));
        }
    }

    #[test]
    fn replay_agrees_while_deletions_rewrite_level_ups() {
        // Goals 300x the defaults keep the mech below level 11 for most of the log, so deletions
        // keep undoing level-ups and exact hits that the log has already recorded.
        let mut config = Config::new(20_000, 3);
        config.rules.level_base_costs = config.rules.level_base_costs.map(|c| c * 300);
        config.rules.max_goal = 10_000_000;
        let stats = replay_agrees(config);
        assert!(stats.level_ups >= 10 && stats.exact_hits >= 3, "{stats:?}");
        assert!(stats.max_level_at_seq.is_none_or(|seq| seq > 8000), "{stats:?}");
    }

    #[test]
    fn the_mix_looks_like_ddc() {
        let mut generator = generate(Config::new(30_000, 1));
        let text: String = generator.by_ref().map(|l| l + "\n").collect();
        let s = generator.stats().clone();
        assert_eq!(s.lines, 30_000);
        assert_eq!(s.bytes, text.len() as u64);
        let share = |n: u64| n as f64 / s.lines as f64;
        assert!((0.55..0.68).contains(&share(s.donations)), "{s:?}");
        assert!((0.22..0.32).contains(&share(s.member_counts)), "{s:?}");
        assert!((0.04..0.07).contains(&share(s.system_donations)), "{s:?}");
        assert!((0.02..0.05).contains(&share(s.deletions + s.restores)), "{s:?}");
        assert!(s.restores > 0 && s.gifts > 0 && s.exact_hits > 0, "{s:?}");
        assert!(s.level_ups >= 10, "{s:?}");
        let average = s.bytes as f64 / s.lines as f64;
        assert!((215.0..245.0).contains(&average), "average line {average}");
        assert!(text.contains("\"donor\":null") && text.contains("\"channel_id\":null"));
        assert!(text.contains("Zo\\u00eb"), "non-ASCII donors are escaped");
        assert!(text.is_ascii());
    }
}
