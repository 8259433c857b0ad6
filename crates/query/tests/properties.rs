//! Property tests: no parser panics on any input, and every AST survives `Display` → parse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test harness: failing loudly is the point

use carbide_query::attime::{parse_at_time, parse_shift_interval, parse_time_offset, time_zone};
use carbide_query::glob::{Glob, PathGlob};
use carbide_query::grammar::{Arg, Call, Expr, Template, parse_target, parse_target_lenient};
use carbide_query::tags::{TagExpr, TagQuery};
use proptest::prelude::*;

/// Text that looks like targets: the grammar's own symbols mixed with words and any character.
fn target_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("(".to_string()),
        Just(")".to_string()),
        Just(",".to_string()),
        Just(".".to_string()),
        Just("|".to_string()),
        Just("=".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("template".to_string()),
        Just("true".to_string()),
        Just("inf".to_string()),
        "[a-z]{1,4}",
        "-?[0-9]{1,3}(\\.[0-9]{1,2})?(e-?[0-9])?",
        "[ \t\n]",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-zA-Z0-9_]{0,6}".prop_filter("a call named template reads back as a template", |n| {
        n != "template"
    })
}

fn path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z0-9*?:@=$#-]{1,4}",
        ("[a-z0-9]{1,3}", "[a-z0-9*]{1,3}").prop_map(|(a, b)| format!("{{{a},{b}}}")),
        prop::sample::select(vec!["(", ")", "'", "\"", "|", "\\"]).prop_map(String::from),
    ];
    let element = prop::collection::vec(piece, 1..4).prop_map(|v| v.concat());
    // A leading `m` keeps the whole path from reading as a number or a keyword in argument position.
    prop::collection::vec(element, 1..4).prop_map(|v| format!("m{}", v.join(".")))
}

fn string_content() -> impl Strategy<Value = String> {
    let double_ok = prop::collection::vec(
        prop::sample::select(vec![
            "a", "b", " ", "$1", "(", ")", ",", ".", "|", "'", "\\\\", "\\n", "\\x4f", "\\\"", "\"\"",
        ]),
        0..6,
    );
    let single_ok = prop::collection::vec(prop::sample::select(vec!["a", "\"", "''", "\\'", " "]), 0..6);
    prop_oneof![
        double_ok.prop_map(|v| v.concat()),
        single_ok.prop_map(|v| v.concat())
    ]
}

fn literal() -> impl Strategy<Value = Arg> {
    prop_oneof![
        any::<i64>().prop_map(Arg::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Arg::Float),
        string_content().prop_map(Arg::Str),
    ]
}

fn scalar() -> impl Strategy<Value = Arg> {
    prop_oneof![
        literal(),
        any::<bool>().prop_map(Arg::Bool),
        Just(Arg::None),
        Just(Arg::Float(f64::INFINITY)),
        Just(Arg::Float(f64::NEG_INFINITY)),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = path().prop_map(Expr::Path);
    leaf.prop_recursive(4, 24, 4, |inner| {
        let arg = prop_oneof![scalar(), inner.clone().prop_map(Arg::Expr)];
        let call = (
            name(),
            prop::collection::vec(arg.clone(), 0..4),
            prop::collection::vec((name(), arg), 0..3),
        )
            .prop_map(|(n, args, kwargs)| {
                let kwargs = if args.is_empty() { Vec::new() } else { kwargs };
                Call::new(n, args, kwargs)
            })
            .boxed();
        let template_inner = prop_oneof![call.clone().prop_map(Expr::Call), path().prop_map(Expr::Path)];
        let template = (
            template_inner,
            prop::collection::vec(literal(), 0..3),
            prop::collection::vec((name(), literal()), 0..3),
            any::<bool>(),
        )
            .prop_map(|(inner, args, kwargs, positional)| {
                let (args, kwargs) = if positional {
                    (args, Vec::new())
                } else {
                    (Vec::new(), kwargs)
                };
                Expr::Template(Box::new(Template { inner, args, kwargs }))
            });
        prop_oneof![call.prop_map(Expr::Call), template]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn target_parser_never_panics(s in target_like()) {
        let strict = parse_target(&s);
        let lenient = parse_target_lenient(&s);
        // A whole parse is also the longest prefix parse.
        if let Ok(whole) = &strict {
            prop_assert_eq!(&lenient.as_ref().map(|(e, _)| e.clone()).ok(), &Some(whole.clone()));
        }
        if let Ok((_, used)) = lenient {
            prop_assert!(used <= s.chars().count() + 7 * s.matches('\t').count());
        }
    }

    #[test]
    fn target_parser_never_panics_on_any_string(s in any::<String>()) {
        let _ = parse_target(&s);
        let _ = parse_target_lenient(&s);
    }

    #[test]
    fn display_then_parse_gives_the_same_ast(e in expr()) {
        let e = e.with_canonical_raw();
        let shown = e.to_string();
        let back = parse_target(&shown);
        prop_assert_eq!(back, Ok(e), "shown as {}", shown);
    }

    #[test]
    fn time_parsers_never_panic(s in target_like(), now in -100_000_000_000i64..300_000_000_000, zone in 0usize..3) {
        let tz = time_zone(["UTC", "Europe/Berlin", "Australia/Sydney"][zone]).unwrap();
        let _ = parse_at_time(&s, now, &tz);
        let _ = parse_time_offset(&s);
        let _ = parse_shift_interval(&s);
    }

    #[test]
    fn offsets_are_additive(a in 0u32..100_000, b in 0u32..100_000) {
        let both = parse_time_offset(&format!("-{a}h{b}min")).unwrap();
        prop_assert_eq!(both, -(i64::from(a) * 3600 + i64::from(b) * 60));
    }

    #[test]
    fn globs_never_panic(p in "[a-c\\[\\]!^*?{},.\\\\-]{0,12}", n in "[a-c\\[\\]!^*?{},.-]{0,8}") {
        if let Ok(g) = Glob::new(&p) {
            let _ = g.matches(&n);
        }
        if let Ok(g) = PathGlob::new(&p) {
            let _ = g.matches(&n);
        }
    }

    #[test]
    fn star_matches_every_segment_and_literals_match_themselves(n in "[a-z0-9_-]{0,10}") {
        prop_assert!(Glob::new("*").unwrap().matches(&n));
        prop_assert!(Glob::new(&n).unwrap().matches(&n));
        let dotted = format!("{}.x", n);
        prop_assert!(!PathGlob::new("*").unwrap().matches(&dotted));
    }

    #[test]
    fn tag_parsers_never_panic(s in any::<String>()) {
        if let Ok(e) = TagExpr::parse(&s) {
            prop_assert_eq!(TagExpr::parse(&e.to_string()), Ok(e.clone()));
            let _ = e.matches(&s);
        }
        let _ = TagQuery::parse(&[s.as_str(), "name=x"]);
    }
}
