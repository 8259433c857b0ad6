//! Property tests: no parser panics, whatever text it is given, and errors always name the file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test harness

use carbide_config::carbon_conf::ConfigEnv;
use carbide_config::pyre::{PyRegex, Replacement, sub};
use carbide_config::*;
use proptest::prelude::*;

/// Text built from the pieces config files are made of, so the parsers get past their first
/// checks, mixed with arbitrary characters.
fn config_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("[cache]".to_string()),
        Just("[DEFAULT]".to_string()),
        Just("[pre]".to_string()),
        Just("[a]".to_string()),
        Just("pattern = ".to_string()),
        Just("retentions = ".to_string()),
        Just("destinations = ".to_string()),
        Just("default = true".to_string()),
        Just("xFilesFactor = ".to_string()),
        Just("aggregationMethod = ".to_string()),
        Just(" (60) = sum ".to_string()),
        Just("<a>".to_string()),
        Just("<<b>>".to_string()),
        Just("%(x)s".to_string()),
        Just("60s:1d,".to_string()),
        Just("h:2004:a".to_string()),
        Just("[::1]:2".to_string()),
        Just("\\1".to_string()),
        Just("\\g<n>".to_string()),
        Just("(?P<n>".to_string()),
        Just("\n".to_string()),
        Just("\n  ".to_string()),
        Just("\r".to_string()),
        Just(" = ".to_string()),
        "[ -~]{0,6}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

fn check_err(e: &ConfigError, path: &str) {
    assert_eq!(e.path, path);
    assert!(e.to_string().starts_with(&format!("{path}:{}: ", e.line)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn file_parsers_never_panic(text in config_text()) {
        let env = ConfigEnv { graphite_root: "/".into(), storage_dir: None, home: Some("/home/u".into()) };
        for program in ["carbon-cache", "carbon-relay", "carbon-aggregator"] {
            if let Err(e) = parse_carbon_conf("c.conf", &text, program, Some("a"), &env) {
                check_err(&e, "c.conf");
            }
        }
        if let Ok((s, _)) = parse_storage_schemas("s.conf", &text).map_err(|e| check_err(&e, "s.conf")) {
            let _ = s.schema_for("a.b.c");
        }
        if let Ok((a, _)) = parse_storage_aggregation("a.conf", &text).map_err(|e| check_err(&e, "a.conf")) {
            let _ = a.settings_for("a.b.c");
        }
        if let Ok(r) = parse_relay_rules("r.conf", &text).map_err(|e| check_err(&e, "r.conf")) {
            let _ = r.destinations_for("a.b");
        }
        if let Ok((rules, _)) = parse_aggregation_rules("g.conf", &text).map_err(|e| check_err(&e, "g.conf")) {
            for r in &rules {
                let _ = r.aggregate_metric("a.b.c");
            }
        }
        if let Ok((rw, _)) = parse_rewrite_rules("w.conf", &text).map_err(|e| check_err(&e, "w.conf")) {
            let _ = RewriteRules::apply(&rw.pre, "a.b.c");
        }
        if let Ok((l, _)) = parse_regex_list("l.conf", &text).map_err(|e| check_err(&e, "l.conf")) {
            let _ = l.contains("a.b");
        }
        let _ = parse_destination(&text);
    }

    #[test]
    fn regex_translation_never_panics(pattern in "[-a-c.*+?{}()\\[\\]^$|\\\\0-9,:<>=!#PgxiAZbBdwsu ]{0,16}", repl in "[a-c\\\\0-9g<>$]{0,8}", text in "[a-c.\\n]{0,8}") {
        if let Ok(r) = PyRegex::new(&pattern) {
            let _ = r.is_match(&text);
            if let Ok(rep) = Replacement::parse(&repl, &r) {
                let _ = sub(&r, &rep, &text);
                let _ = rep.to_rust_syntax();
            }
        }
    }

    #[test]
    fn any_unicode_never_panics(s in "\\PC{0,40}") {
        let _ = PyRegex::new(&s);
        let _ = carbide_config::ini::Ini::parse("u.conf", &s);
        let _ = parse_aggregation_rules("u.conf", &s);
        let _ = carbide_config::schemas::parse_retention(&s);
    }
}
