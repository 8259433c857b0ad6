//! Property tests: decoders never panic on arbitrary bytes, encoders round-trip, and framing
//! does not depend on how the bytes were chunked.

use carbide_protocol::carbonlink::decode_request;
use carbide_protocol::framing::{encode_frame, frames};
use carbide_protocol::line::{LineError, LineSplitter, parse_line, parse_line_str};
use carbide_protocol::pickle::{LegacyStrings, Limits, Protocol, Value, dumps_with, loads, loads_with};
use carbide_protocol::points::decode_points;
use carbide_protocol::tags::TaggedSeries;
use proptest::prelude::*;

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>()
            .prop_filter("NaN never equals itself", |f| !f.is_nan())
            .prop_map(Value::Float),
        ".{0,20}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 9..20)
            .prop_map(|b| carbide_protocol::pickle::BigInt::value_from_twos_le(&b)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Tuple),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Dict(m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect())),
        ]
    })
}

/// Opcodes (with arguments) that build and reference containers, mixed at random.
const SOUP: &[&[u8]] = &[
    b"(",
    b"]",
    b"}",
    b")",
    b"a",
    b"e",
    b"s",
    b"u",
    b"t",
    b"l",
    b"d",
    b"0",
    b"1",
    b"2",
    b"N",
    b"K\x01",
    b"q\x00",
    b"h\x00",
    b"q\x01",
    b"h\x01",
    b"\x94",
    b"\x85",
    b"\x86",
    b"\x8f",
    b"\x90",
    b"\x91",
    b"X\x01\x00\x00\x00a",
    b".",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn pickle_round_trips(v in value(), p in prop_oneof![Just(Protocol::V2), Just(Protocol::V3), Just(Protocol::V4), Just(Protocol::V5)]) {
        prop_assert_eq!(loads(&dumps_with(&v, p)), Ok(v));
    }

    #[test]
    fn pickle_decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = loads(&data);
        let mut prefixed = vec![0x80, 2];
        prefixed.extend_from_slice(&data);
        let _ = loads(&prefixed);
        let tight = Limits { max_depth: 3, max_items: 10, max_bytes: 16, max_memo: 4 };
        let _ = loads_with(&prefixed, &tight, LegacyStrings::Bytes);
        let _ = decode_points(&prefixed, 0.0, &Limits::default());
        let _ = decode_request(&prefixed, &Limits::default());
    }

    #[test]
    fn pickle_decoder_survives_opcode_soup(ops in proptest::collection::vec(prop::sample::select(SOUP), 0..60)) {
        let data: Vec<u8> = ops.concat();
        let _ = loads(&data);
    }

    #[test]
    fn line_parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(p) = parse_line(&line, 1.0) {
            prop_assert!(!p.name.is_empty());
            prop_assert!(!p.value.is_nan());
            prop_assert!(p.timestamp.is_finite());
        }
    }

    #[test]
    fn line_splitting_ignores_chunking(
        lines in proptest::collection::vec("[a-z0-9 .\r]{0,12}", 0..20),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let data: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
        let whole: Vec<Vec<u8>> = {
            let mut s = LineSplitter::new(16);
            s.split(&data).map(|l| l.map(<[u8]>::to_vec).unwrap_or_default()).collect()
        };
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
        points.push(data.len());
        points.sort_unstable();
        let mut s = LineSplitter::new(16);
        let mut buf: Vec<u8> = Vec::new();
        let mut got = Vec::new();
        let mut prev = 0;
        for p in points {
            buf.extend_from_slice(&data[prev..p]);
            prev = p;
            let mut it = s.split(&buf);
            for l in it.by_ref() {
                got.push(l.map(<[u8]>::to_vec).unwrap_or_default());
            }
            let used = it.consumed();
            buf.drain(..used);
        }
        prop_assert_eq!(got, whole);
        prop_assert!(buf.is_empty());
    }

    /// The one-pass reader of plain ASCII lines must agree with the general path (UTF-8 decode,
    /// Python split, Python float) on every line, including the near misses it hands over.
    #[test]
    fn plain_line_fast_path_agrees_with_the_general_path(
        line in "[a-c.0-9 _+eE\\-]{0,12}|[a-z.]{1,8} -?[0-9]{1,17}(\\.[0-9]{0,3})? -?[0-9]{1,17}[ \t\r]?"
    ) {
        let general: Result<_, LineError> = parse_line_str(&line, 7.0);
        prop_assert_eq!(parse_line(line.as_bytes(), 7.0), general);
    }

    #[test]
    fn frames_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..10)) {
        let mut buf = Vec::new();
        for p in &payloads {
            prop_assert!(encode_frame(p, &mut buf).is_ok());
        }
        let got: Vec<Vec<u8>> = frames(&buf, 40).map(|f| f.map(<[u8]>::to_vec).unwrap_or_default()).collect();
        prop_assert_eq!(got, payloads);
    }

    #[test]
    fn tagged_normal_form_is_a_fixpoint(name in "[a-c~.]{1,4}(;[a-c!^]{0,2}=[a-c~=.]{0,3}){0,4}|[a-c]{1,3}\\{([a-c]{1,2}=\"[a-c\\\\\"]{1,3}\",?){0,3}\\}") {
        if let Ok(series) = TaggedSeries::parse(&name) {
            let path = series.path();
            let again = TaggedSeries::parse(&path).map(|s| s.path());
            prop_assert_eq!(again, Ok(path));
        }
    }
}
