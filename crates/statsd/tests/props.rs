//! Property tests: the parser and engine never panic, lines round-trip, counts are conserved,
//! and the relay keeps every line on its key's backend.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use carbide_statsd::jsnum::{js_number, js_to_string};
use carbide_statsd::parse::{Line, Value};
use carbide_statsd::relay::Relay;
use carbide_statsd::{Config, Statsd};
use proptest::prelude::*;

fn engine(json: &str) -> Statsd {
    Statsd::new(Config::from_json(json).unwrap(), 1_700_000_000_000).unwrap()
}

proptest! {
    #[test]
    fn arbitrary_packets_never_panic(
        packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..8),
        sanitize in any::<bool>(),
        legacy in any::<bool>(),
    ) {
        let json = format!(
            r#"{{"keyNameSanitize": {sanitize}, "graphite": {{"legacyNamespace": {legacy}}},
                "percentThreshold": [90, -10, 150], "deleteIdleStats": {sanitize},
                "histogram": [{{"metric": "", "bins": [1, "inf"]}}], "carbideMaxKeys": 50}}"#
        );
        let mut e = engine(&json);
        for p in &packets {
            e.handle_packet(p);
            e.handle_tcp_packet(p);
        }
        let f = e.flush(1_700_000_010_000);
        let text = f.to_text();
        // Every line is `name value ts`, and with sanitising on, a name has no space or newline.
        for l in &f.lines {
            if sanitize {
                prop_assert!(!l.name.contains([' ', '\n']), "{:?}", l.name);
            }
            prop_assert!(!l.value.to_string().is_empty());
        }
        prop_assert_eq!(text.lines().count(), f.lines.len());
        e.flush(1_700_000_020_000);
    }

    #[test]
    fn structured_lines_never_panic(
        lines in prop::collection::vec(
            "[a-z;:|@#,. /\\-+0-9eExsgmch]{0,30}", 0..20),
    ) {
        let mut e = engine(r#"{"percentThreshold": [50, -50]}"#);
        e.handle_text(&lines.join("\n"));
        e.flush(1_700_000_010_000);
    }

    #[test]
    fn valid_lines_round_trip(
        key in "[a-zA-Z0-9_.-]{1,24}",
        value in prop_oneof![any::<f64>().prop_filter("finite", |v| v.is_finite()),
                             (-1000i32..1000).prop_map(f64::from)],
        kind in 0usize..4,
        rate in prop::option::of(1u32..=1000),
    ) {
        let (ty, expect_value) = match kind {
            0 => ("c", Value::Counter(value)),
            1 => ("ms", Value::Timer(value.abs())),
            2 => ("g", Value::Gauge { value, delta: value.is_sign_negative() && value != 0.0 }),
            _ => ("s", Value::Set("")),
        };
        let text_value = match kind {
            1 => js_to_string(value.abs()),
            _ => js_to_string(value),
        };
        let rate_text = rate.map(|r| format!("|@{}", js_to_string(f64::from(r) / 1000.0)));
        let line = format!("{key}:{text_value}|{ty}{}", rate_text.clone().unwrap_or_default());
        let parsed = Line::parse(&line, true);
        prop_assert_eq!(parsed.key(), key.as_str());
        let samples: Vec<_> = parsed.samples().collect();
        prop_assert_eq!(samples.len(), 1);
        let sample = samples[0].unwrap();
        let want_rate = rate.map_or(1.0, |r| f64::from(r) / 1000.0);
        prop_assert_eq!(sample.sample_rate, want_rate);
        match (sample.value, expect_value) {
            (Value::Set(m), Value::Set(_)) => prop_assert_eq!(m, text_value.as_str()),
            (got, want) => prop_assert_eq!(got, want),
        }
    }

    #[test]
    fn js_number_text_round_trips(v in any::<f64>()) {
        let text = js_to_string(v);
        let back = js_number(&text);
        if v.is_nan() {
            prop_assert!(back.is_nan());
        } else {
            prop_assert_eq!(back, v, "{}", text);
        }
    }

    #[test]
    fn integer_counters_are_conserved(
        samples in prop::collection::vec(("[a-c]", -50i32..50), 1..60),
    ) {
        let mut e = engine(r#"{"flushInterval": 1000}"#);
        let packet: String = samples.iter().map(|(k, v)| format!("{k}:{v}|c\n")).collect();
        e.handle_text(&packet);
        let f = e.flush(1_700_000_001_000);
        for key in ["a", "b", "c"] {
            let sum: i32 = samples.iter().filter(|(k, _)| k == key).map(|(_, v)| v).sum();
            let sent = samples.iter().any(|(k, _)| k == key);
            let got = f.value(&format!("stats_counts.{key}"));
            let got = got.as_deref();
            let want = sum.to_string();
            if sent {
                prop_assert_eq!(got, Some(want.as_str()));
                prop_assert_eq!(f.value(&format!("stats.{key}")), Some(want.clone()));
            } else {
                prop_assert_eq!(got, None);
            }
        }
    }

    #[test]
    fn relay_keeps_lines_on_their_backend(
        lines in prop::collection::vec("[a-z.]{1,12}:[0-9]{1,4}\\|c", 0..80),
        backends in 1usize..6,
        packet_len in 10usize..200,
    ) {
        let r = Relay::new(backends, packet_len, "sr", None).unwrap();
        let input = lines.join("\n");
        let packets = r.route(input.as_bytes());
        let mut seen: Vec<String> = Vec::new();
        for p in &packets {
            let text = String::from_utf8(p.data.clone()).unwrap();
            let body: Vec<&str> = text.lines().collect();
            prop_assert!(p.data.len() <= packet_len + 1 || body.len() == 1);
            for l in body {
                let key = l.split(':').next().unwrap();
                prop_assert_eq!(r.backend_for(key.as_bytes()), p.backend);
                if !l.starts_with("sr.statsProcessed:") {
                    seen.push(l.to_string());
                }
            }
        }
        let mut want = lines.clone();
        want.sort();
        seen.sort();
        prop_assert_eq!(seen, want);
    }
}
