//! Commands and `decide` (spec §2.6): validate a request against the state and turn it into
//! the events to append. Nothing here changes state; [`State::apply`] does that.

use std::collections::BTreeSet;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::display::power_at;
use crate::event::{Event, EventBody};
use crate::money::{AmountError, Cents};
use crate::parse::Kind;
use crate::rules::{MAX_DONATION, MAX_LEVEL, MAX_SYSTEM_DONATION, Rules};
use crate::state::{Effects, State};
use crate::time::Timestamp;

/// A member of a status channel, as the bot sees it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Member {
    /// Discord user id.
    pub id: String,
    /// Bots do not count.
    #[serde(default)]
    pub bot: bool,
    /// System users do not count.
    #[serde(default)]
    pub system: bool,
}

/// A status channel and the members the bot could read from it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Channel {
    /// Channel id (for warnings).
    pub id: String,
    /// Whether the bot could read the member list.
    #[serde(default = "yes")]
    pub accessible: bool,
    /// Its members.
    #[serde(default)]
    pub members: Vec<Member>,
}

fn yes() -> bool {
    true
}

/// Where a member count comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberSource {
    /// A count the caller already has.
    Count(i64),
    /// Status channels to count unique members across (seed "Member Count Tracking").
    Channels {
        /// The status channels.
        channels: Vec<Channel>,
        /// The guild's member count, the fallback when no channel can be read.
        guild_member_count: Option<i64>,
    },
}

/// The outcome of counting members across channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberTally {
    /// The count to record, or `None` to keep the last known sample.
    pub count: Option<i64>,
    /// Channels skipped because they could not be read.
    pub skipped_channels: Vec<String>,
}

/// Counts unique human members across the accessible channels; falls back to the guild's count
/// when none can be read, else to nothing (keep the last sample). Clamped to the member cap.
#[must_use]
pub fn count_members(channels: &[Channel], guild_member_count: Option<i64>, rules: &Rules) -> MemberTally {
    let mut unique = BTreeSet::new();
    let mut skipped_channels = Vec::new();
    let mut readable = 0;
    for channel in channels {
        if !channel.accessible {
            skipped_channels.push(channel.id.clone());
            continue;
        }
        readable += 1;
        unique.extend(channel.members.iter().filter(|m| !m.bot && !m.system).map(|m| m.id.as_str()));
    }
    let count = if readable > 0 { Some(i64::try_from(unique.len()).unwrap_or(i64::MAX)) } else { guild_member_count };
    MemberTally { count: count.map(|c| rules.clamp_members(c)), skipped_channels }
}

/// What the caller looked up about the target of a deletion toggle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletionTarget {
    /// Its type.
    pub kind: Kind,
    /// Its donor, copied into the `DonationDeleted` for readers of the log.
    pub donor: Option<String>,
    /// Its amount in cents.
    pub units: Option<i64>,
}

/// A request to change a mech.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A normal donation.
    AddDonation {
        /// How much.
        amount: Cents,
        /// Who gave it (optional, as in DDC).
        donor: Option<String>,
        /// Where it was given.
        channel_id: Option<String>,
        /// Unique id of the donation.
        donation_id: Option<String>,
        /// The key that makes retries safe.
        idempotency_key: Option<String>,
        /// A fresh member count, frozen into the goal if this donation levels up.
        member_count: Option<i64>,
    },
    /// A system donation (power only).
    AddSystemDonation {
        /// How much.
        amount: Cents,
        /// What it celebrates.
        event_name: String,
        /// Details.
        description: Option<String>,
        /// The key that makes retries safe.
        idempotency_key: Option<String>,
    },
    /// A new member-count sample.
    UpdateMemberCount(MemberSource),
    /// A one-off power gift for an offline mech.
    GrantPowerGift {
        /// The campaign (each grants at most once per mech).
        campaign_id: String,
    },
    /// Delete (or restore) an earlier donation, system donation or gift.
    ToggleDonationDeletion {
        /// The event to toggle.
        seq: u64,
        /// Why.
        reason: String,
        /// What the caller found at `seq` (`None`: nothing).
        target: Option<DeletionTarget>,
    },
}

/// Why a command was refused. No event is produced.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DomainError {
    /// The amount text is not an exact decimal number of dollars.
    #[error("{field}: {source}")]
    Amount {
        /// Which field.
        field: &'static str,
        /// Why.
        source: AmountError,
    },
    /// The amount is outside the allowed range.
    #[error("{field}: {amount} is outside the allowed range {min}..={max}")]
    AmountOutOfRange {
        /// Which field.
        field: &'static str,
        /// The amount given.
        amount: Cents,
        /// Smallest allowed.
        min: Cents,
        /// Largest allowed.
        max: Cents,
    },
    /// A required text is empty.
    #[error("{field}: must not be empty")]
    EmptyText {
        /// Which field.
        field: &'static str,
    },
    /// A text is longer than allowed.
    #[error("{field}: {len} characters is more than the {max} allowed")]
    TextTooLong {
        /// Which field.
        field: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A text contains a control character.
    #[error("{field}: control characters are not allowed")]
    ControlCharacter {
        /// Which field.
        field: &'static str,
    },
    /// A member count below zero.
    #[error("member_count: {0} is negative; a member count is 0 or more")]
    NegativeMemberCount(i64),
    /// The mech still has power; gifts are for offline mechs.
    #[error("power gift not eligible: the mech still has {0} of power")]
    GiftPowerRemaining(Cents),
    /// The campaign has already granted a gift to this mech.
    #[error("power gift not eligible: campaign \"{0}\" was already used for this mech")]
    GiftCampaignUsed(String),
    /// No event has this seq in the mech.
    #[error("seq {0} does not exist in this mech")]
    UnknownSeq(u64),
    /// Only donations, system donations and gifts can be deleted.
    #[error("seq {seq} is a {kind}; only donations, system donations and gifts can be deleted")]
    NotDeletable {
        /// The seq.
        seq: u64,
        /// Its type.
        kind: String,
    },
}

/// Where and when new events go: the next free seq and the server's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Seq of the first new event; the following ones count up from it.
    pub next_seq: u64,
    /// The time of the new events.
    pub now: Timestamp,
}

/// Checks a text field (spec §2.1): length in characters and no control characters.
///
/// # Errors
/// [`DomainError::EmptyText`], [`DomainError::TextTooLong`] or [`DomainError::ControlCharacter`].
pub fn check_text(field: &'static str, text: &str, min: usize, max: usize) -> Result<(), DomainError> {
    let len = text.chars().count();
    if len < min {
        return Err(DomainError::EmptyText { field });
    }
    if len > max {
        return Err(DomainError::TextTooLong { field, len, max });
    }
    if text.chars().any(char::is_control) {
        return Err(DomainError::ControlCharacter { field });
    }
    Ok(())
}

fn check_optional(field: &'static str, text: Option<&String>, max: usize) -> Result<(), DomainError> {
    text.map_or(Ok(()), |t| check_text(field, t, 1, max))
}

fn check_amount(field: &'static str, amount: Cents, max: i64) -> Result<i64, DomainError> {
    if (1..=max).contains(&amount.get()) {
        Ok(amount.get())
    } else {
        Err(DomainError::AmountOutOfRange { field, amount, min: Cents(1), max: Cents(max) })
    }
}

/// The power of a gift for `campaign_id` on `mech_id`, as DDC computes it: 100, 200 or 300 cents.
#[must_use]
pub fn gift_units(mech_id: &str, campaign_id: &str) -> i64 {
    let digest = Sha256::digest(format!("{mech_id}|{campaign_id}").as_bytes());
    let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    (i64::from(first) % 3 + 1) * 100
}

/// Turns a command into the events to append, or says why it is refused.
///
/// A donation that levels up is followed by its derived `LevelUpCommitted` (and
/// `ExactHitBonusGranted`) events; if it carries a member count, a `MemberCountUpdated` comes
/// first so the new goal is priced with it.
///
/// # Errors
/// A [`DomainError`] for invalid input or an ineligible request.
pub fn decide(state: &State, command: &Command, rules: &Rules, at: Stamp) -> Result<Vec<Event>, DomainError> {
    let mut bodies = Vec::new();
    match command {
        Command::AddDonation { amount, donor, channel_id, donation_id, idempotency_key, member_count } => {
            let donation = Donation {
                amount: *amount,
                donor: donor.as_ref(),
                channel_id: channel_id.as_ref(),
                donation_id: donation_id.as_ref(),
                idempotency_key: idempotency_key.as_ref(),
                member_count: *member_count,
            };
            return decide_donation(state, &donation, rules, at);
        }
        Command::AddSystemDonation { amount, event_name, description, idempotency_key } => {
            let power_units = check_amount("amount", *amount, MAX_SYSTEM_DONATION)?;
            check_text("event_name", event_name, 1, 100)?;
            if let Some(d) = description {
                check_text("description", d, 0, 500)?;
            }
            check_optional("idempotency_key", idempotency_key.as_ref(), 100)?;
            bodies.push(EventBody::SystemDonationAdded {
                power_units,
                event_name: event_name.clone(),
                description: description.clone(),
                idempotency_key: idempotency_key.clone(),
            });
        }
        Command::UpdateMemberCount(source) => {
            let count = match source {
                MemberSource::Count(count) if *count < 0 => {
                    return Err(DomainError::NegativeMemberCount(*count));
                }
                MemberSource::Count(count) => Some(rules.clamp_members(*count)),
                MemberSource::Channels { channels, guild_member_count } => {
                    if let Some(count) = guild_member_count.filter(|c| *c < 0) {
                        return Err(DomainError::NegativeMemberCount(count));
                    }
                    count_members(channels, *guild_member_count, rules).count
                }
            };
            bodies.extend(count.map(|member_count| EventBody::MemberCountUpdated { member_count }));
        }
        Command::GrantPowerGift { campaign_id } => {
            check_text("campaign_id", campaign_id, 1, 100)?;
            if state.used_campaigns.contains(campaign_id) {
                return Err(DomainError::GiftCampaignUsed(campaign_id.clone()));
            }
            let power = power_at(state, rules, at.now);
            if power != 0 {
                return Err(DomainError::GiftPowerRemaining(Cents(power)));
            }
            bodies.push(EventBody::PowerGiftGranted {
                power_units: gift_units(&state.mech_id, campaign_id),
                campaign_id: campaign_id.clone(),
            });
        }
        Command::ToggleDonationDeletion { seq, reason, target } => {
            check_text("reason", reason, 1, 500)?;
            let target = target.as_ref().ok_or(DomainError::UnknownSeq(*seq))?;
            if !target.kind.is_deletable() {
                return Err(DomainError::NotDeletable { seq: *seq, kind: target.kind.name().to_owned() });
            }
            bodies.push(EventBody::DonationDeleted {
                deleted_seq: *seq,
                reason: Some(reason.clone()),
                donor: target.donor.clone(),
                units: target.units,
                original_type: Some(target.kind.name().to_owned()),
            });
        }
    }
    Ok(with_derived(state, bodies, rules, at))
}

/// The fields of [`Command::AddDonation`], borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Donation<'a> {
    pub amount: Cents,
    pub donor: Option<&'a String>,
    pub channel_id: Option<&'a String>,
    pub donation_id: Option<&'a String>,
    pub idempotency_key: Option<&'a String>,
    pub member_count: Option<i64>,
}

/// [`decide`] for a donation alone (previews use it without linking every other command).
///
/// # Errors
/// A [`DomainError`] for invalid input.
pub fn decide_donation(
    state: &State,
    donation: &Donation<'_>,
    rules: &Rules,
    at: Stamp,
) -> Result<Vec<Event>, DomainError> {
    let mut bodies = Vec::new();
    let units = check_amount("amount", donation.amount, MAX_DONATION)?;
    check_optional("donor", donation.donor, 100)?;
    check_optional("channel_id", donation.channel_id, 100)?;
    check_optional("donation_id", donation.donation_id, 100)?;
    check_optional("idempotency_key", donation.idempotency_key, 100)?;
    if let Some(count) = donation.member_count {
        if count < 0 {
            return Err(DomainError::NegativeMemberCount(count));
        }
        // The count is frozen into the next goal if the donation levels up, with the count
        // applied first or without it: at level 1 before any donation the count also
        // re-prices the current goal, which can decide whether it levels up at all.
        let sample = EventBody::MemberCountUpdated { member_count: rules.clamp_members(count) };
        let levels_up = |s: &State| s.level < MAX_LEVEL && s.evo_acc.saturating_add(units) >= s.goal_requirement;
        let mut counted = state.clone();
        let event = Event { seq: at.next_seq, ts: at.now, mech_id: state.mech_id.clone(), body: sample.clone() };
        counted.apply(&event.record(), rules, &mut Effects::default());
        if levels_up(state) || levels_up(&counted) {
            bodies.push(sample);
        }
    }
    bodies.push(EventBody::DonationAdded {
        units,
        donor: donation.donor.cloned(),
        channel_id: donation.channel_id.cloned(),
        donation_id: donation.donation_id.cloned(),
        idempotency_key: donation.idempotency_key.cloned(),
    });
    Ok(with_derived(state, bodies, rules, at))
}

/// Stamps `bodies` and appends the level-ups they derive (found by applying them to a copy).
fn with_derived(state: &State, bodies: Vec<EventBody>, rules: &Rules, at: Stamp) -> Vec<Event> {
    let mut scratch = state.clone();
    let mut effects = Effects::default();
    let mut events = Vec::with_capacity(bodies.len());
    let mut seq = at.next_seq;
    let mut stamp = |body: EventBody, events: &mut Vec<Event>| {
        events.push(Event { seq, ts: at.now, mech_id: state.mech_id.clone(), body });
        seq += 1;
    };
    for body in bodies {
        let deletes = matches!(body, EventBody::DonationDeleted { .. });
        stamp(body, &mut events);
        if deletes {
            continue;
        }
        let Some(event) = events.last() else { continue };
        effects.clear();
        scratch.apply(&event.record(), rules, &mut effects);
        for up in &effects.level_ups {
            stamp(
                EventBody::LevelUpCommitted {
                    from_level: up.from_level,
                    to_level: up.to_level,
                    old_goal_requirement: up.old_goal,
                    exact_hit: up.exact_hit,
                    new_goal_requirement: up.new_goal,
                    member_count: up.member_count,
                },
                &mut events,
            );
            if up.exact_hit {
                stamp(
                    EventBody::ExactHitBonusGranted {
                        power_units: up.bonus,
                        from_level: up.from_level,
                        to_level: up.to_level,
                        reason: "exact_level_up".to_owned(),
                    },
                    &mut events,
                );
            }
        }
    }
    events
}
