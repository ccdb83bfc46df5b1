//! Criterion benchmarks of replay on a generated, DDC-like log (see mechfund-loggen):
//! `replay_bytes` over a 100k-event log held in memory (single-threaded, both passes), and
//! `parse_line` alone on typical lines: a donation, a donation whose donor is written with `\u`
//! escapes, and a member count; and every line of that log parsed from its text against the same
//! lines decoded from packs of 4,096 (`parse::pack`, what the server's store replays). Kept short (10 samples, ~3 s each) so
//! `cargo bench -p mechfund-core` finishes in about a minute; BENCHMARKS.md has the method.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mechfund_core::parse::pack::{pack, unpack};
use mechfund_core::{Line, ReplayOptions, Rules, parse_line, replay_bytes};

const EVENTS: u64 = 100_000;

fn replay(c: &mut Criterion) {
    let log = mechfund_loggen::log_text(EVENTS, 1);
    let rules = Rules::default();
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Bytes(log.len() as u64));
    group.bench_function("replay_bytes/100k", |b| {
        b.iter(|| replay_bytes(black_box(log.as_bytes()), &rules, ReplayOptions::default()))
    });
    group.finish();

    let parsed: Vec<Line> = log.lines().map(|line| parse_line(line.as_bytes(), "main")).collect();
    let packs: Vec<Vec<u8>> = parsed.chunks(4096).map(pack).collect();
    let mut group = c.benchmark_group("lines");
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("parse_every_line/100k", |b| {
        b.iter(|| log.lines().filter(|line| matches!(parse_line(line.as_bytes(), "main"), Line::Mine(_))).count())
    });
    group.bench_function("unpack_every_line/100k", |b| {
        b.iter(|| {
            let mut mine = 0;
            for packed in black_box(&packs) {
                let mut lines = unpack(packed).expect("a pack");
                while let Some(line) = lines.next_line().expect("a line") {
                    mine += usize::from(matches!(line, Line::Mine(_)));
                }
            }
            mine
        })
    });
    group.finish();

    let first = |pred: &dyn Fn(&str) -> bool| log.lines().find(|l| pred(l)).expect("a generated log has every kind");
    let lines = [
        ("donation", first(&|l| l.contains(r#""type":"DonationAdded""#) && !l.contains("\\u"))),
        ("donation_escaped_donor", first(&|l| l.contains(r#""type":"DonationAdded""#) && l.contains("\\u"))),
        ("member_count", first(&|l| l.contains(r#""type":"MemberCountUpdated""#))),
    ];
    let mut group = c.benchmark_group("parse_line");
    for (name, line) in lines {
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse_line(black_box(line.as_bytes()), "main")));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = replay
}
criterion_main!(benches);
