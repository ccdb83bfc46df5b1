//! Replay from a checkpoint is replay of the whole log (issue 16): the states
//! `replay_bytes_with_checkpoints` keeps, resumed with `replay_bytes_after` over the lines after
//! them, give the state a replay of the whole log gives, however the log grew since they were
//! kept, as long as no deletion of an event up to the checkpoint was added (the store drops
//! those checkpoints). A level-up recorded since that gives a level the checkpoint went through
//! another goal makes the checkpoint refuse (`None`), never give a wrong state.

use mechfund_core::{ReplayOptions, Rules, replay_bytes, replay_bytes_after, replay_bytes_with_checkpoints};
use proptest::prelude::*;

/// One event of a store's log (seqs are given in order when the log is written).
#[derive(Clone, Debug)]
enum Event {
    Donation(u32),
    System(u32),
    Members(u32),
    Gift,
    /// Deletes (or restores) the event this many seqs back.
    Toggle(u64),
    LevelUp {
        from: u8,
        old_goal: u32,
        new_goal: u32,
    },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        8 => (1u32..3_000).prop_map(Event::Donation),
        1 => (1u32..2_000).prop_map(Event::System),
        2 => (0u32..400).prop_map(Event::Members),
        1 => Just(Event::Gift),
        2 => (1u64..12).prop_map(Event::Toggle),
        1 => (1u8..10, 300u32..4_000, 300u32..4_000).prop_map(|(from, old_goal, new_goal)| Event::LevelUp {
            from,
            old_goal,
            new_goal
        }),
    ]
}

/// The log's lines, seq 1 on, a few hours apart.
fn write(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let seq = i as u64 + 1;
            let (kind, payload) = match event {
                Event::Donation(units) => ("DonationAdded", format!(r#"{{"units":{units},"donor":"d{seq}"}}"#)),
                Event::System(units) => ("SystemDonationAdded", format!(r#"{{"power_units":{units}}}"#)),
                Event::Members(count) => ("MemberCountUpdated", format!(r#"{{"member_count":{count}}}"#)),
                Event::Gift => ("PowerGiftGranted", format!(r#"{{"power_units":100,"campaign_id":"c{}"}}"#, seq % 3)),
                Event::Toggle(back) => ("DonationDeleted", format!(r#"{{"deleted_seq":{}}}"#, seq.saturating_sub(*back).max(1))),
                Event::LevelUp { from, old_goal, new_goal } => (
                    "LevelUpCommitted",
                    format!(
                        r#"{{"from_level":{from},"to_level":{},"old_goal_requirement":{old_goal},"new_goal_requirement":{new_goal},"exact_hit":false}}"#,
                        from + 1
                    ),
                ),
            };
            let (day, hour) = (1 + seq / 24, seq % 24);
            format!(
                r#"{{"seq":{seq},"ts":"2025-01-{day:02}T{hour:02}:00:00+00:00","type":"{kind}","mech_id":"main","payload":{payload}}}"#
            )
        })
        .collect()
}

fn text(lines: &[String]) -> Vec<u8> {
    lines.iter().flat_map(|line| format!("{line}\n").into_bytes()).collect()
}

fn options() -> ReplayOptions {
    ReplayOptions::default()
}

/// The seqs the events of `events[from..]` delete or restore.
fn toggled(events: &[Event], from: usize) -> impl Iterator<Item = u64> + '_ {
    events.iter().enumerate().skip(from).filter_map(|(i, e)| match e {
        Event::Toggle(back) => Some((i as u64 + 1).saturating_sub(*back).max(1)),
        _ => None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn replay_from_any_checkpoint_is_replay_of_the_whole_log(
        events in prop::collection::vec(event(), 1..60),
        kept_at in any::<prop::sample::Index>(),
        every in 1u64..6,
    ) {
        let rules = Rules::default();
        let lines = write(&events);
        let whole = replay_bytes(&text(&lines), &rules, options()).unwrap();
        // The log when the checkpoints were kept: a prefix of today's.
        let then = kept_at.index(lines.len()) + 1;
        let (_, checkpoints) = replay_bytes_with_checkpoints(&text(&lines[..then]), &rules, options(), every).unwrap();
        prop_assert_eq!(checkpoints.len() as u64, then as u64 / every);
        // A deletion added since then drops the checkpoints at or after its target.
        let first_toggled = toggled(&events, then).min().unwrap_or(u64::MAX);
        let levels_since = events[then..].iter().any(|e| matches!(e, Event::LevelUp { .. }));
        for checkpoint in checkpoints.iter().filter(|c| c.last_event_seq < first_toggled) {
            let after = usize::try_from(checkpoint.last_event_seq).unwrap();
            let resumed = replay_bytes_after(checkpoint, &text(&lines[after..]), &rules, options(), every).unwrap();
            match resumed {
                Some((result, _)) => prop_assert_eq!(&result.state, &whole.state, "from seq {}", after),
                None => prop_assert!(levels_since, "refused from seq {} with no level-up recorded since", after),
            }
        }
    }

    /// The checkpoints kept while resuming are the ones a whole replay keeps after the same events.
    #[test]
    fn checkpoints_kept_while_resuming_are_the_whole_replays(
        events in prop::collection::vec(event(), 1..60),
        from in any::<prop::sample::Index>(),
        every in 1u64..6,
    ) {
        let rules = Rules::default();
        let lines = write(&events);
        let (_, all) = replay_bytes_with_checkpoints(&text(&lines), &rules, options(), every).unwrap();
        let Some(start) = all.get(from.index(all.len().max(1))) else { return Ok(()) };
        let after = usize::try_from(start.last_event_seq).unwrap();
        let (_, again) = replay_bytes_after(start, &text(&lines[after..]), &rules, options(), every).unwrap().unwrap();
        let later: Vec<_> = all.iter().filter(|c| c.last_event_seq > start.last_event_seq).collect();
        prop_assert_eq!(again.iter().collect::<Vec<_>>(), later);
    }
}

/// Worked by hand: $5, $3, then the $5 deleted. A checkpoint after the first donation is
/// dropped by the store (the deletion targets it); one kept after the second is not, and
/// resumes to $3 of cumulative donations.
#[test]
fn a_checkpoint_before_a_deleted_donation_is_not_one_the_store_keeps() {
    let rules = Rules::default();
    let lines = write(&[Event::Donation(500), Event::Donation(300), Event::Toggle(2)]);
    let (_, checkpoints) = replay_bytes_with_checkpoints(&text(&lines[..2]), &rules, options(), 1).unwrap();
    assert_eq!(checkpoints.iter().map(|c| c.cumulative_donations_cents).collect::<Vec<_>>(), vec![500, 800]);
    let whole = replay_bytes(&text(&lines), &rules, options()).unwrap();
    assert_eq!(whole.state.cumulative_donations_cents, 300);
    // Resuming from seq 1 would count the deleted $5: the store drops that checkpoint.
    let wrong = replay_bytes_after(&checkpoints[0], &text(&lines[1..]), &rules, options(), 1).unwrap().unwrap();
    assert_eq!(wrong.0.state.cumulative_donations_cents, 800);
}

/// A level-up recorded after the checkpoint that prices level 1 differently: refused.
#[test]
fn a_goal_recorded_since_for_a_level_the_checkpoint_went_through_is_refused() {
    let rules = Rules::default();
    let lines = write(&[Event::Donation(100), Event::LevelUp { from: 1, old_goal: 700, new_goal: 900 }]);
    let (_, checkpoints) = replay_bytes_with_checkpoints(&text(&lines[..1]), &rules, options(), 1).unwrap();
    assert_eq!(checkpoints[0].goal_requirement, 1000, "level 1 at the rules' goal ($10) when kept");
    assert!(replay_bytes_after(&checkpoints[0], &text(&lines[1..]), &rules, options(), 1).unwrap().is_none());
    // Kept after the level-up was recorded, it holds.
    let (_, checkpoints) = replay_bytes_with_checkpoints(&text(&lines), &rules, options(), 1).unwrap();
    assert_eq!(checkpoints[0].goal_requirement, 700);
    let resumed = replay_bytes_after(&checkpoints[0], &text(&lines[1..]), &rules, options(), 1).unwrap();
    assert_eq!(resumed.unwrap().0.state, replay_bytes(&text(&lines), &rules, options()).unwrap().state);
}
