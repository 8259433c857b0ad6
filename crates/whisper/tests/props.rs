//! Property tests for the format's invariants, run in memory (`Vec<u8>` storage).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::collections::HashMap;

use carbide_core::{AggregationMethod, Retention};
use carbide_whisper::header::validate_archive_list;
use carbide_whisper::{Header, Whisper};
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000;

/// An empty file image for a valid layout.
fn image(layout: &[(u32, u32)], method: AggregationMethod, xff: f32) -> Vec<u8> {
    let mut archives: Vec<Retention> = layout
        .iter()
        .map(|&(s, p)| Retention {
            seconds_per_point: s,
            points: p,
        })
        .collect();
    validate_archive_list(&mut archives).unwrap();
    let header = Header::for_new_file(&archives, method, xff).unwrap();
    let mut bytes = header.encode();
    bytes.resize(header.file_size() as usize, 0);
    bytes
}

fn layouts() -> impl Strategy<Value = Vec<(u32, u32)>> {
    (
        prop_oneof![Just(1u32), Just(10), Just(60)],
        10u32..200,
        2u32..6,
        5u32..100,
    )
        .prop_map(|(spp, points, factor, extra)| {
            let next = spp * factor;
            vec![(spp, points), (next, spp * points / next + extra)]
        })
}

fn methods() -> impl Strategy<Value = AggregationMethod> {
    proptest::sample::select(AggregationMethod::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Within the finest archive's retention, a fetch returns, for each interval, the value of the
    /// newest point in it (the first such point of a call when timestamps tie), later calls winning.
    #[test]
    fn fetch_returns_what_was_written(
        layout in layouts(),
        calls in prop::collection::vec(prop::collection::vec((0i64..600, -1e9f64..1e9), 0..40), 1..4),
    ) {
        let mut db = Whisper::open(image(&layout, AggregationMethod::Average, 0.5)).unwrap();
        let (spp, points) = layout[0];
        let retention = i64::from(spp) * i64::from(points);
        let step = i64::from(spp);
        let mut model: HashMap<i64, f64> = HashMap::new();
        for call in &calls {
            // Ages below retention - step: a full retention spans points + 1 intervals, and the
            // oldest would share its ring slot with the newest.
            let pts: Vec<(i64, f64)> =
                call.iter().map(|&(age, v)| (NOW - age % (retention - step), v)).collect();
            db.update_many(&pts, NOW).unwrap();
            let mut winners: HashMap<i64, (i64, f64)> = HashMap::new();
            for &(ts, v) in &pts {
                let interval = ts - ts.rem_euclid(step);
                match winners.get(&interval) {
                    Some(&(best, _)) if best >= ts => {}
                    _ => { winners.insert(interval, (ts, v)); }
                }
            }
            for (interval, (_, v)) in winners {
                model.insert(interval, v);
            }
        }
        let from = NOW - retention + step;
        let fetched = db.fetch(from, Some(NOW), NOW, None).unwrap().unwrap();
        prop_assert_eq!(fetched.step, step);
        prop_assert_eq!(fetched.values.len() as i64, (fetched.until - fetched.from) / step);
        for (ts, v) in fetched.points() {
            prop_assert_eq!(v, model.get(&ts).copied(), "at {}", ts);
        }
    }

    /// A coarser archive holds the aggregate of the finer points under it once xFilesFactor is met.
    #[test]
    fn propagation_aggregates(method in methods(), values in prop::collection::vec(-1e6f64..1e6, 5)) {
        let mut db = Whisper::open(image(&[(60, 100), (300, 100)], method, 0.0)).unwrap();
        let base = NOW - NOW % 300 - 300;
        let pts: Vec<(i64, f64)> = values.iter().enumerate().map(|(i, &v)| (base + 60 * i as i64, v)).collect();
        db.update_many(&pts, NOW).unwrap();
        let coarse = db.header().archives[1];
        let f = db.archive_fetch(&coarse, base - 1, base).unwrap();
        let neighbors: Vec<Option<f64>> = values.iter().copied().map(Some).collect();
        let expected = carbide_whisper::aggregate::aggregate(method, &values, &neighbors);
        prop_assert_eq!(f.values[0], expected);
    }

    /// The header codec round-trips every valid layout.
    #[test]
    fn header_round_trips(layout in layouts(), method in methods(), xff in 0.0f32..=1.0) {
        let bytes = image(&layout, method, xff);
        let db = Whisper::open(bytes.clone()).unwrap();
        prop_assert_eq!(db.header().encode(), bytes[..db.header().size()].to_vec());
        prop_assert_eq!(db.header().aggregation, method);
        prop_assert_eq!(db.header().file_size() as usize, bytes.len());
    }

    /// Arbitrary bytes are refused or used, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(mut db) = Whisper::open(bytes) {
            let _ = db.update_many(&[(NOW, 1.0), (NOW - 3600, 2.0)], NOW);
            let _ = db.fetch(NOW - 86400, None, NOW, None);
        }
    }

    /// Damaging a valid file's header anywhere never panics a later operation.
    #[test]
    fn damaged_headers_never_panic(layout in layouts(), at in 0usize..40, byte in any::<u8>()) {
        let mut bytes = image(&layout, AggregationMethod::Sum, 0.5);
        let at = at.min(bytes.len() - 1);
        bytes[at] = byte;
        if let Ok(mut db) = Whisper::open(bytes) {
            let _ = db.update_many(&[(NOW, 1.0), (NOW - 7200, 2.0)], NOW);
            let _ = db.fetch(NOW - 86400, None, NOW, None);
        }
    }
}
