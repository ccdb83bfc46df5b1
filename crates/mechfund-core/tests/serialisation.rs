//! Events mechfund writes are DDC-style lines, byte for byte (spec §2.3): compact separators,
//! envelope `seq, ts, type, mech_id, payload`, payload keys in the order of the §2.3 table,
//! non-ASCII as lowercase `\u` escapes (UTF-16 surrogate pairs above U+FFFF), `ts` in UTC as
//! Python's `isoformat()` (fraction omitted when zero, else six digits).
//!
//! Every expected line is written by hand (and is what Python's
//! `json.dumps(obj, separators=(",", ":"))` prints for the same object). The tests also check
//! that reading a written line gives what `Event::record` says replay sees, and that every line
//! of DDC's sample logs is a well-formed event.

use mechfund_core::{Event, EventBody, Line, Timestamp, parse_line};

#[track_caller]
fn event(seq: u64, ts: &str, mech: &str, body: EventBody) -> Event {
    Event { seq, ts: Timestamp::parse(ts).expect("a valid test timestamp"), mech_id: mech.to_owned(), body }
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

/// Each event with the line DDC would write for it.
fn cases() -> Vec<(Event, &'static str)> {
    vec![
        // Non-ASCII donor (ë is U+00EB; 🚀 is U+1F680 = surrogates D83D DE80), zero fraction.
        (
            event(
                1,
                "2025-01-17T14:38:48+00:00",
                "main",
                EventBody::DonationAdded {
                    units: 500,
                    donor: some("Zoë 🚀"),
                    channel_id: some("999999999999999999"),
                    donation_id: some("0045055adba42960"),
                    idempotency_key: some("d8adff0f35b3d8c7"),
                },
            ),
            r#"{"seq":1,"ts":"2025-01-17T14:38:48+00:00","type":"DonationAdded","mech_id":"main","payload":{"units":500,"donor":"Zo\u00eb \ud83d\ude80","channel_id":"999999999999999999","donation_id":"0045055adba42960","idempotency_key":"d8adff0f35b3d8c7"}}"#,
        ),
        // Nulls for everything optional, a ts with a fraction.
        (
            event(
                7,
                "2025-05-23T19:21:01.551454+00:00",
                "main",
                EventBody::DonationAdded {
                    units: 100,
                    donor: None,
                    channel_id: None,
                    donation_id: None,
                    idempotency_key: None,
                },
            ),
            r#"{"seq":7,"ts":"2025-05-23T19:21:01.551454+00:00","type":"DonationAdded","mech_id":"main","payload":{"units":100,"donor":null,"channel_id":null,"donation_id":null,"idempotency_key":null}}"#,
        ),
        (
            event(
                3,
                "2025-07-02T18:46:33.219457+00:00",
                "main",
                EventBody::SystemDonationAdded {
                    power_units: 500,
                    event_name: "Monthly Motor Maintenance".to_owned(),
                    description: some("Community milestone"),
                    idempotency_key: some("253528f3694b7885"),
                },
            ),
            r#"{"seq":3,"ts":"2025-07-02T18:46:33.219457+00:00","type":"SystemDonationAdded","mech_id":"main","payload":{"power_units":500,"event_name":"Monthly Motor Maintenance","description":"Community milestone","idempotency_key":"253528f3694b7885"}}"#,
        ),
        (
            event(
                43,
                "2025-07-05T08:34:08.390348+00:00",
                "main",
                EventBody::SystemDonationAdded {
                    power_units: 2500,
                    event_name: "Fête".to_owned(),
                    description: None,
                    idempotency_key: None,
                },
            ),
            r#"{"seq":43,"ts":"2025-07-05T08:34:08.390348+00:00","type":"SystemDonationAdded","mech_id":"main","payload":{"power_units":2500,"event_name":"F\u00eate","description":null,"idempotency_key":null}}"#,
        ),
        (
            event(2, "2025-07-02T16:39:49.157417+00:00", "main", EventBody::MemberCountUpdated { member_count: 136 }),
            r#"{"seq":2,"ts":"2025-07-02T16:39:49.157417+00:00","type":"MemberCountUpdated","mech_id":"main","payload":{"member_count":136}}"#,
        ),
        // DDC itself wrote campaign_id first; we write the §2.3 table's order.
        (
            event(
                1,
                "2025-07-02T16:39:49.156493+00:00",
                "main",
                EventBody::PowerGiftGranted { power_units: 300, campaign_id: "startup_gift_v1".to_owned() },
            ),
            r#"{"seq":1,"ts":"2025-07-02T16:39:49.156493+00:00","type":"PowerGiftGranted","mech_id":"main","payload":{"power_units":300,"campaign_id":"startup_gift_v1"}}"#,
        ),
        (
            event(
                24,
                "2025-07-04T02:29:23.600562+00:00",
                "main",
                EventBody::DonationDeleted {
                    deleted_seq: 10,
                    reason: some("admin_deletion"),
                    donor: some("Discord:exact"),
                    units: Some(690),
                    original_type: some("DonationAdded"),
                },
            ),
            r#"{"seq":24,"ts":"2025-07-04T02:29:23.600562+00:00","type":"DonationDeleted","mech_id":"main","payload":{"deleted_seq":10,"reason":"admin_deletion","donor":"Discord:exact","units":690,"original_type":"DonationAdded"}}"#,
        ),
        (
            event(
                25,
                "2025-07-04T02:29:23+00:00",
                "main",
                EventBody::DonationDeleted {
                    deleted_seq: 11,
                    reason: None,
                    donor: None,
                    units: None,
                    original_type: None,
                },
            ),
            r#"{"seq":25,"ts":"2025-07-04T02:29:23+00:00","type":"DonationDeleted","mech_id":"main","payload":{"deleted_seq":11,"reason":null,"donor":null,"units":null,"original_type":null}}"#,
        ),
        // goal(2, 136) = 1500 + (136 - 10) * 10 = 2760, the level-2 goal DDC recorded.
        (
            event(
                11,
                "2025-07-03T11:30:10.611211+00:00",
                "main",
                EventBody::LevelUpCommitted {
                    from_level: 1,
                    to_level: 2,
                    old_goal_requirement: 1000,
                    exact_hit: true,
                    new_goal_requirement: 2760,
                    member_count: 136,
                },
            ),
            r#"{"seq":11,"ts":"2025-07-03T11:30:10.611211+00:00","type":"LevelUpCommitted","mech_id":"main","payload":{"from_level":1,"to_level":2,"old_goal_requirement":1000,"exact_hit":true,"new_goal_requirement":2760,"member_count":136}}"#,
        ),
        (
            event(
                90,
                "2025-07-09T00:00:00.000001+00:00",
                "main",
                EventBody::LevelUpCommitted {
                    from_level: 10,
                    to_level: 11,
                    old_goal_requirement: 10000,
                    exact_hit: false,
                    new_goal_requirement: 0,
                    member_count: 0,
                },
            ),
            r#"{"seq":90,"ts":"2025-07-09T00:00:00.000001+00:00","type":"LevelUpCommitted","mech_id":"main","payload":{"from_level":10,"to_level":11,"old_goal_requirement":10000,"exact_hit":false,"new_goal_requirement":0,"member_count":0}}"#,
        ),
        (
            event(
                12,
                "2025-07-03T11:30:10.611113+00:00",
                "main",
                EventBody::ExactHitBonusGranted {
                    power_units: 100,
                    from_level: 1,
                    to_level: 2,
                    reason: "exact_level_up".to_owned(),
                },
            ),
            r#"{"seq":12,"ts":"2025-07-03T11:30:10.611113+00:00","type":"ExactHitBonusGranted","mech_id":"main","payload":{"power_units":100,"from_level":1,"to_level":2,"reason":"exact_level_up"}}"#,
        ),
        // Python's ensure_ascii: `"` and `\` escaped, `/` not, \n and \t short, other controls
        // and DEL (U+007F) as \u00XX, lowercase hex; a non-ASCII mech id escaped too.
        (
            event(
                5,
                "2025-01-17T14:38:48.5+00:00",
                "méch",
                EventBody::DonationAdded {
                    units: 1_000_000,
                    donor: some("q\"b\\s/d\u{7f}\u{1}\n\t€"),
                    channel_id: None,
                    donation_id: None,
                    idempotency_key: None,
                },
            ),
            r#"{"seq":5,"ts":"2025-01-17T14:38:48.500000+00:00","type":"DonationAdded","mech_id":"m\u00e9ch","payload":{"units":1000000,"donor":"q\"b\\s/d\u007f\u0001\n\t\u20ac","channel_id":null,"donation_id":null,"idempotency_key":null}}"#,
        ),
        // A ts given with another offset is written in UTC.
        (
            event(6, "2025-01-17T16:38:48.828173+02:00", "main", EventBody::MemberCountUpdated { member_count: 0 }),
            r#"{"seq":6,"ts":"2025-01-17T14:38:48.828173+00:00","type":"MemberCountUpdated","mech_id":"main","payload":{"member_count":0}}"#,
        ),
        (
            event(
                9_007_199_254_740_993,
                "2024-12-31T23:59:59.999999-00:30",
                "main",
                EventBody::MemberCountUpdated { member_count: 100_000 },
            ),
            r#"{"seq":9007199254740993,"ts":"2025-01-01T00:29:59.999999+00:00","type":"MemberCountUpdated","mech_id":"main","payload":{"member_count":100000}}"#,
        ),
    ]
}

#[test]
fn events_are_written_as_ddc_writes_them() {
    for (event, expected) in cases() {
        assert_eq!(event.to_json_line(), expected, "{event:?}");
    }
}

#[test]
fn every_event_type_is_covered() {
    let mut kinds: Vec<String> = cases().iter().map(|(e, _)| e.body.kind().name().to_owned()).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "DonationAdded",
            "DonationDeleted",
            "ExactHitBonusGranted",
            "LevelUpCommitted",
            "MemberCountUpdated",
            "PowerGiftGranted",
            "SystemDonationAdded",
        ]
    );
}

#[test]
fn written_lines_read_back_as_the_record_replay_sees() {
    for (event, _) in cases() {
        let line = event.to_json_line();
        assert_eq!(parse_line(line.as_bytes(), &event.mech_id), Line::Mine(event.record()), "{line}");
        assert_eq!(parse_line(line.as_bytes(), "someone-else"), Line::Other);
    }
}

fn check_sample(name: &str, text: &str, expected_events: usize) {
    let mut mine = 0;
    for (i, line) in text.lines().enumerate() {
        match parse_line(line.as_bytes(), "main") {
            Line::Mine(_) => mine += 1,
            other => panic!("{name} line {}: {other:?}: {line}", i + 1),
        }
    }
    assert_eq!(mine, expected_events, "{name}");
}

#[test]
fn every_line_of_the_ddc_samples_is_a_well_formed_event() {
    check_sample("ddc-small.jsonl", include_str!("../../../tests/samples/ddc-small.jsonl"), 120);
    check_sample("ddc-mixed-1500.jsonl", include_str!("../../../tests/samples/ddc-mixed-1500.jsonl"), 1500);
}
