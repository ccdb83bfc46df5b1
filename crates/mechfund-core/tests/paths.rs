//! The fast paths agree with the reference paths, on arbitrary input:
//! - `parse_line` (canonical-line scanner + serde fallback) == `parse_line_reference` (serde only);
//! - `replay_bytes` (sparse first pass, checked, exact rescan when needed) == an exact replay
//!   driven line by line through `Replayer::new`.

use mechfund_core::parse::parse_line_reference;
use mechfund_core::replay::lines;
use mechfund_core::{ReplayOptions, ReplayResult, Replayer, Rules, SecondPass, StrictError, parse_line, replay_bytes};
use proptest::prelude::*;

fn exact_replay(bytes: &[u8], rules: &Rules, options: ReplayOptions) -> Result<ReplayResult, StrictError> {
    let mech = options.mech.clone();
    let mut replayer = Replayer::new(rules, options);
    for (n, line) in lines(bytes) {
        replayer.scan_line(n, &parse_line_reference(line, &mech))?;
    }
    match replayer.second_pass() {
        SecondPass::Stream => {
            for (n, line) in lines(bytes) {
                replayer.fold_line(n, &parse_line_reference(line, &mech))?;
            }
        }
        SecondPass::Buffer => {
            for (n, line) in lines(bytes) {
                replayer.buffer_line(n, parse_line_reference(line, &mech));
            }
        }
    }
    assert!(!replayer.needs_exact_rescan(), "an exact scan never needs a rescan");
    Ok(replayer.finish())
}

/// Lines that stress both paths: canonical ones, variations serde accepts but the scanner must
/// hand over (spaces, escapes, key order, floats, nesting, non-ASCII), and broken ones.
fn line() -> impl Strategy<Value = String> {
    let seq = prop_oneof![4 => 1u64..12, 1 => Just(0u64)];
    let ts = prop_oneof![
        Just("2025-01-01T00:00:00+00:00".to_owned()),
        Just("2025-01-01T06:00:00.5Z".to_owned()),
        Just("2025-01-02T00:00:00+02:00".to_owned()),
        Just("2025-01-03T00:00:00.123456+00:00".to_owned()),
        Just("2025-13-01T00:00:00Z".to_owned()),
        Just("2025-01-01T00:00:00".to_owned()),
    ];
    let kind = prop_oneof![
        Just("DonationAdded"),
        Just("SystemDonationAdded"),
        Just("MemberCountUpdated"),
        Just("PowerGiftGranted"),
        Just("DonationDeleted"),
        Just("LevelUpCommitted"),
        Just("ExactHitBonusGranted"),
        Just("Donation\\u0044eleted"),
        Just("LevelUp\\u0043ommitted"),
        Just("Ping"),
    ];
    let mech = prop_oneof![4 => Just("main"), 1 => Just("side"), 1 => Just("ma\\u0069n")];
    let value = prop_oneof![
        4 => (0i64..1600).prop_map(|n| n.to_string()),
        1 => Just("1000.0".to_owned()),
        1 => Just("1e3".to_owned()),
        1 => Just("\"500\"".to_owned()),
        1 => prop::sample::select(ESCAPED).prop_map(|body| format!("\"{body}\"")),
        1 => Just("null".to_owned()),
        1 => Just("true".to_owned()),
        1 => Just("-3".to_owned()),
        1 => Just("007".to_owned()),
        1 => Just("[1]".to_owned()),
        1 => Just("{\"a\":1}".to_owned()),
        1 => Just("99999999999999999999".to_owned()),
    ];
    let key = prop_oneof![
        Just("units"),
        Just("power_units"),
        Just("member_count"),
        Just("deleted_seq"),
        Just("from_level"),
        Just("to_level"),
        Just("old_goal_requirement"),
        Just("new_goal_requirement"),
        Just("exact_hit"),
        Just("campaign_id"),
        Just("donor"),
    ];
    let payload = prop::collection::vec((key, value), 0..4).prop_map(|members| {
        let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    });
    let canonical = (seq, ts, kind, mech, payload).prop_map(|(seq, ts, kind, mech, payload)| {
        format!("{{\"seq\":{seq},\"ts\":\"{ts}\",\"type\":\"{kind}\",\"mech_id\":\"{mech}\",\"payload\":{payload}}}")
    });
    let mutation = prop_oneof![
        6 => Just(0u8),
        1 => Just(1), // spaces after separators
        1 => Just(2), // other key order
        1 => Just(3), // truncated
        1 => Just(4), // a byte flipped
        1 => Just(5), // non-ASCII donor
        1 => Just(6), // trailing garbage
        1 => Just(7), // no payload
        2 => Just(8), // a donor string with escapes (some that serde refuses)
        1 => Just(9), // a campaign id with an escape
    ];
    (canonical, mutation, any::<prop::sample::Index>()).prop_map(|(line, mutation, at)| match mutation {
        1 => line.replace("\":", "\": ").replace(",\"", ", \""),
        2 => line.replacen("{\"seq\"", "{\"mech_id\":\"main\",\"seq\"", 1),
        3 => {
            let cut = (0..=at.index(line.len())).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
            line[..cut].to_owned()
        }
        4 => {
            let mut bytes = line.into_bytes();
            let i = at.index(bytes.len());
            bytes[i] ^= 0x55;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        5 => line.replacen("{\"", "{\"donor\":\"Zoë 🚀\",\"", 1),
        6 => format!("{line} x"),
        7 => line.split(",\"payload\"").next().map(|head| format!("{head}}}")).unwrap_or(line),
        8 => line.replacen(
            ",\"payload\":{",
            &format!(",\"payload\":{{\"donor\":\"{}\",", ESCAPED[at.index(ESCAPED.len())]),
            1,
        ),
        9 => line.replacen(",\"payload\":{", ",\"payload\":{\"campaign_id\":\"spring\\u00e9\",", 1),
        _ => line,
    })
}

/// String bodies with escapes: ones serde_json decodes, and ones it refuses.
const ESCAPED: &[&str] = &[
    r"Zo\u00eb",
    r"rocket \ud83d\ude80",
    r"ROCKET \uD83D\uDE80!",
    r#"quote \" and \\ and \/ \b\f\n\r\t"#,
    r"\u0000",
    r"lone \ud83d leading",
    r"lone \ude80 trailing",
    r"pair broken \ud83d\u0041",
    r"bad \x escape",
    r"short \u12",
    r"not hex \u12g4",
    "raw\ttab",
    "raw non-ASCII \u{e9}\u{1f680}",
    r"ends in a backslash \",
];

/// A canonical line whose donor is `donor`, byte for byte.
fn line_with_donor(donor: &[u8]) -> Vec<u8> {
    let mut line = br#"{"seq":7,"ts":"2025-01-01T00:00:00+00:00","type":"DonationAdded","mech_id":"main","payload":{"units":500,"donor":""#.to_vec();
    line.extend_from_slice(donor);
    line.extend_from_slice(br#"","channel_id":"12"}}"#);
    line
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn fast_and_reference_parsing_agree(line in line()) {
        for mech in ["main", "side"] {
            prop_assert_eq!(parse_line(line.as_bytes(), mech), parse_line_reference(line.as_bytes(), mech), "{}", line);
        }
    }

    /// One scan of a block gives the candidates and the line count the two separate ones do.
    #[test]
    fn candidates_count_the_lines_of_a_block(lines in prop::collection::vec(prop_oneof![4 => line(), 1 => Just(String::new())], 0..30), crlf: bool, unterminated: bool) {
        let newline = if crlf { "\r\n" } else { "\n" };
        let mut block = lines.join(newline);
        if !unterminated && !lines.is_empty() {
            block.push_str(newline);
        }
        let found = mechfund_core::replay::candidates(block.as_bytes());
        prop_assert_eq!(found.line_count, mechfund_core::replay::count_lines(block.as_bytes()));
        prop_assert_eq!(found.line_count, mechfund_core::replay::lines(block.as_bytes()).count() as u64);
        prop_assert_eq!(found.lines, mechfund_core::replay::candidate_lines(block.as_bytes()));
    }

    #[test]
    fn fast_and_reference_parsing_agree_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(parse_line(&bytes, "main"), parse_line_reference(&bytes, "main"));
    }

    /// Any bytes in a string replay skips: valid and invalid UTF-8, control characters, quotes
    /// and backslashes, across the eight-byte words the scanner reads.
    #[test]
    fn fast_and_reference_parsing_agree_on_any_donor_bytes(
        donor in prop::collection::vec(prop_oneof![
            8 => b'a'..=b'z',
            1 => Just(b'\\'),
            1 => Just(b'"'),
            1 => Just(b'u'),
            1 => prop::sample::select(&b"0123456789abcdefABCDEF"[..]),
            1 => 0u8..0x20,
            2 => 0x80u8..=0xff,
        ], 0..24),
    ) {
        let line = line_with_donor(&donor);
        prop_assert_eq!(parse_line(&line, "main"), parse_line_reference(&line, "main"), "{}", String::from_utf8_lossy(&line));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn sparse_and_exact_replay_agree(lines in prop::collection::vec(prop_oneof![8 => line(), 1 => Just(String::new())], 0..40), strict: bool, shuffle: bool) {
        let mut lines = lines;
        if !shuffle {
            // Mostly-sorted logs take the streaming path; shuffled ones the buffered one.
            lines.sort_by_key(|l| l.get(7..9).map(str::to_owned));
        }
        let text = lines.join("\n");
        let rules = Rules::default();
        let options = ReplayOptions { strict, timeline: true, ..ReplayOptions::default() };
        let fast = replay_bytes(text.as_bytes(), &rules, options.clone());
        let exact = exact_replay(text.as_bytes(), &rules, options);
        prop_assert_eq!(fast, exact, "{}", text);
    }
}

#[test]
fn a_deletion_spelled_with_escapes_is_still_applied() {
    // The sparse pass looks for the type's name; an escaped name forces the exact rescan.
    let text = concat!(
        r#"{"seq":1,"ts":"2025-01-01T00:00:00Z","type":"DonationAdded","mech_id":"main","payload":{"units":500}}"#,
        "\n",
        r#"{"seq":2,"ts":"2025-01-01T00:00:01Z","type":"Donation\u0044eleted","mech_id":"main","payload":{"deleted_seq":1}}"#,
        "\n",
    );
    let result = replay_bytes(text.as_bytes(), &Rules::default(), ReplayOptions::default()).expect("lenient");
    assert_eq!(result.state.cumulative_donations_cents, 0);
    assert_eq!(result.state.evo_acc, 0);
}

#[test]
fn a_deletion_hidden_behind_a_bad_line_with_its_seq_counts_once() {
    // Line 2 is bad (invalid ts), so line 3's seq 2 is not a duplicate and its deletion counts.
    let text = concat!(
        r#"{"seq":1,"ts":"2025-01-01T00:00:00Z","type":"DonationAdded","mech_id":"main","payload":{"units":500}}"#,
        "\n",
        r#"{"seq":2,"ts":"2025-01-01T25:00:00Z","type":"DonationAdded","mech_id":"main","payload":{"units":1}}"#,
        "\n",
        r#"{"seq":2,"ts":"2025-01-01T00:00:01Z","type":"DonationDeleted","mech_id":"main","payload":{"deleted_seq":1}}"#,
        "\n",
        r#"{"seq":2,"ts":"2025-01-01T00:00:02Z","type":"DonationDeleted","mech_id":"main","payload":{"deleted_seq":1}}"#,
        "\n",
    );
    let result = replay_bytes(text.as_bytes(), &Rules::default(), ReplayOptions::default()).expect("lenient");
    assert_eq!(result.state.cumulative_donations_cents, 0, "deleted once: line 4 is a duplicate of line 3");
    let kinds: Vec<_> = result.diagnostics.iter().map(|d| (d.kind, d.line)).collect();
    assert_eq!(
        kinds,
        vec![(mechfund_core::DiagnosticKind::BadLine, Some(2)), (mechfund_core::DiagnosticKind::DuplicateSeq, Some(4))]
    );
}
