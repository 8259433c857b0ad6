//! Packets and admin commands that arrive while a big flush is being formatted.
//!
//! The server holds its engine lock only for [`Statsd::begin_flush`] and
//! [`Statsd::finish_flush`]; [`carbide_statsd::PendingFlush::format`] runs without it. These
//! tests take the lock exactly as the server does and prove, by completion and by the flushed
//! values rather than by timing, that:
//! - a receiver thread gets the lock and applies packets while the flush of 200 000 keys is
//!   taken but not yet formatted (the receiver finishes before formatting even starts);
//! - those packets are in the next flush, none in the current one;
//! - the split flush (of 20 000 keys) is line for line the sequential one (`flush`, then the same packets and
//!   admin deletes, then `flush`) — the order node's single thread imposes, which the
//!   differential tests in `etsy_statsd.rs` hold to etsy statsd — with deleteIdleStats,
//!   deleteGauges' TTL, persisting gauges, and deletes racing the flush.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::sync::{Arc, Mutex};

use carbide_statsd::{Config, Flush, FlushTimings, StatKind, Statsd};

const START_MS: i64 = 1_700_000_000_000;
const KEYS: usize = 200_000;

fn engine(json: &str) -> Statsd {
    Statsd::new(Config::from_json(json).unwrap(), START_MS).unwrap()
}

/// Every kind of key, `keys` in all, in packets of 50 lines.
fn load(e: &mut Statsd, keys: usize) {
    let mut packet = String::new();
    for i in 0..keys {
        let line = match i % 4 {
            0 => format!("big.c.{i}:1|c|@0.5\n"),
            1 => format!("big.t.{i}:{}|ms\n", i % 997),
            2 => format!("big.g.{i}:{i}|g\n"),
            _ => format!("big.s.{i}:{}|s\n", i % 7),
        };
        packet.push_str(&line);
        if i % 50 == 49 {
            e.handle_packet(packet.as_bytes());
            packet.clear();
        }
    }
    e.handle_packet(packet.as_bytes());
}

/// What arrives during the flush: new and existing keys of each type, a gauge delta on a
/// persisting gauge, and a bad line.
const DURING: &[&[u8]] = &[
    b"big.c.0:5|c\nlate.c:2|c\nlate.t:7|ms\nbig.t.1:3|ms",
    b"big.g.2:+10|g\nlate.g:-4|g\nbig.s.3:new|s\nlate.s:a|s\nnot a line",
];

fn value(f: &Flush, name: &str) -> Option<String> {
    f.value(name)
}

fn lines(f: &Flush) -> Vec<(String, String)> {
    // The four graphiteStats lines carry wall-clock bookkeeping set by a sender; both runs
    // here have none, so they compare too.
    f.lines
        .iter()
        .map(|l| (format!("{} {}", l.name, l.timestamp), l.value.to_string()))
        .collect()
}

#[test]
fn receivers_are_not_held_by_formatting_and_count_in_the_next_flush() {
    let shared = Arc::new(Mutex::new(engine(r#"{"flushInterval": 10000}"#)));
    load(&mut shared.lock().unwrap(), KEYS);

    // The flush thread's first step, under the lock.
    let pending = shared
        .lock()
        .unwrap()
        .begin_flush(START_MS + 10_000, FlushTimings::default());
    assert_eq!(pending.keys(), KEYS + 3, "the burst and statsd's three counters");

    // A receiver on another thread, while the lines are not yet built: it must get the lock
    // and finish, or this join never returns.
    let receiver = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            for p in DURING {
                shared.lock().unwrap().handle_packet(p);
            }
        })
    };
    receiver.join().unwrap();
    assert!(
        shared.try_lock().is_ok(),
        "the lock is free while the flush is pending"
    );

    // Formatting, concurrently with more receiving.
    let formatter = std::thread::spawn(move || pending.format());
    let receiver = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.lock().unwrap().handle_packet(b"late.c:1|c"))
    };
    receiver.join().unwrap();
    let flush = formatter.join().unwrap();
    shared.lock().unwrap().finish_flush(&flush);

    // The flush is the state at its instant.
    assert_eq!(value(&flush, "stats_counts.big.c.0").as_deref(), Some("2"));
    assert_eq!(value(&flush, "stats_counts.late.c").as_deref(), None);
    assert_eq!(value(&flush, "stats.timers.big.t.1.count").as_deref(), Some("1"));
    assert_eq!(value(&flush, "stats.gauges.big.g.2").as_deref(), Some("2"));
    assert_eq!(value(&flush, "stats.sets.big.s.3.count").as_deref(), Some("1"));
    assert_eq!(
        value(&flush, "stats_counts.statsd.metrics_received").as_deref(),
        Some(KEYS.to_string().as_str())
    );
    assert_eq!(value(&flush, "statsd.numStats").as_deref(), Some("200003"));

    // Everything that arrived during it is in the next one.
    let next = shared.lock().unwrap().flush(START_MS + 20_000);
    assert_eq!(value(&next, "stats_counts.big.c.0").as_deref(), Some("5"));
    assert_eq!(value(&next, "stats_counts.late.c").as_deref(), Some("3"));
    assert_eq!(value(&next, "stats.timers.big.t.1.count").as_deref(), Some("1"));
    assert_eq!(value(&next, "stats.timers.big.t.1.upper").as_deref(), Some("3"));
    assert_eq!(value(&next, "stats.timers.late.t.upper").as_deref(), Some("7"));
    assert_eq!(value(&next, "stats.gauges.big.g.2").as_deref(), Some("12"));
    assert_eq!(value(&next, "stats.gauges.late.g").as_deref(), Some("-4"));
    assert_eq!(value(&next, "stats.sets.big.s.3.count").as_deref(), Some("1"));
    assert_eq!(value(&next, "stats.sets.late.s.count").as_deref(), Some("1"));
    assert_eq!(
        value(&next, "stats_counts.statsd.packets_received").as_deref(),
        Some("3")
    );
    assert_eq!(
        value(&next, "stats_counts.statsd.metrics_received").as_deref(),
        Some("10")
    );
    assert_eq!(
        value(&next, "stats_counts.statsd.bad_lines_seen").as_deref(),
        Some("1")
    );
    let flen = flush.to_text().encode_utf16().count().to_string();
    assert_eq!(
        value(&next, "stats.statsd.graphiteStats.flush_length").as_deref(),
        Some(flen.as_str())
    );
}

/// What happens between the flush instant and the next flush; returns what the deletes found.
fn between(e: &mut Statsd) -> Vec<Vec<String>> {
    for p in DURING {
        e.handle_packet(p);
    }
    vec![
        e.delete_stats(StatKind::Counters, "big.c.4"),
        e.delete_stats(StatKind::Gauges, "big.g.6"),
        e.delete_stats(StatKind::Timers, "big.t.5"),
        e.delete_stats(StatKind::Counters, "late.*"),
    ]
}

#[test]
fn split_flush_is_the_sequential_flush() {
    for config in [
        r#"{}"#,
        r#"{"deleteIdleStats": true}"#,
        r#"{"deleteGauges": true, "gaugesMaxTTL": 2, "deleteSets": true}"#,
        r#"{"deleteCounters": true, "deleteTimers": true, "percentThreshold": [50, 99],
            "histogram": [{"metric": "big", "bins": [10, 100]}]}"#,
    ] {
        let mut sequential = engine(config);
        let mut split = engine(config);
        load(&mut sequential, 20_000);
        load(&mut split, 20_000);
        let mut want = Vec::new();
        let mut got = Vec::new();
        for n in 1..=3 {
            let now = START_MS + n * 10_000;
            want.push(sequential.flush(now));
            let deleted = between(&mut sequential);

            let pending = split.begin_flush(now, FlushTimings::default());
            assert_eq!(between(&mut split), deleted, "{config}: deletes racing flush {n}");
            let flush = pending.format();
            split.finish_flush(&flush);
            got.push(flush);
        }
        for (n, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(lines(w), lines(g), "{config}: flush {}", n + 1);
        }
        assert!(want[0].lines.len() > 20_000, "{config}: the burst was flushed");
        assert_eq!(
            want[0].value("stats_counts.big.c.4").as_deref(),
            Some("2"),
            "{config}: a key deleted during the flush is in it"
        );
        assert_eq!(want[1].value("stats_counts.big.c.4").as_deref(), None, "{config}");
    }
}
