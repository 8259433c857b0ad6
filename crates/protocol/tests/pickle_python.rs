//! Differential tests of the pickle codec against Python's `pickle` and carbon's own
//! `SafeUnpickler` (Debian graphite-carbon 1.1.7, /usr/bin/python3).

mod common;

use carbide_protocol::pickle::{Protocol, Value, dumps_with, loads};
use common::{Rng, canon, hex, run_python, unhex};

/// Python builds pickles of many objects at protocols 0-5, plus hand-written Python 2 and
/// hostile pickles, and reports what carbon's SafeUnpickler makes of each.
const CORPUS: &str = r#"
from carbon.util import SafeUnpickler
def verdict(data):
    try:
        return canon(SafeUnpickler.loads(data))
    except Exception as e:
        return 'ERR:' + type(e).__name__
shared = [1, 2]
objs = [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**31, -2**31 - 1, 2**63 - 1,
        -2**63, 2**63, -2**63 - 1, 2**64, 2**100, -2**1000, 10**400,
        0.0, -0.0, 1.5, -2.25, 1e300, 1e-310, float('inf'), float('-inf'), float('nan'), 0.1,
        '', 'a', 'a.b.c', '\u00e9', '\U0001F600', "it's", 'q"uote', 'back\\slash', 'new\nline',
        'x' * 300, '\x00\x7f', 'tab\there', '\u20ac' * 100,
        None, True, False, [], (), {}, [1, [2, [3]]], (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4),
        {'a': 1, 'b': [1, 2]}, {1: 'x', 2.5: 'y', (1, 2): 'z', None: 0, 'k': True},
        [('a.b', (1700000000, 1.5)), ('c', (1700000000.0, -1))],
        [shared, shared, {'k': shared}], (shared, shared),
        {str(i): i for i in range(1001)}, list(range(2500)),
        b'', b'abc', bytes(range(256)), b'x' * 300,
        set(), {1, 2, 'a'}, frozenset(), frozenset({(1, 2), 'b'}), [frozenset({1}), {2}]]
for o in objs:
    for p in range(6):
        data = pickle.dumps(o, protocol=p)
        print('N', data.hex(), verdict(data))
hand = [
    b"(lp0\n(S'a.b'\np1\n(I100\nF1.5\ntp2\ntp3\na.",
    b"\x80\x02]q\x00U\x03a.bq\x01K\x01G?\xf8\x00\x00\x00\x00\x00\x00\x86\x86q\x02a.",
    b"S'\xff'\n.", b"U\x01\xff.", b"T\x02\x00\x00\x00ab.", b"S'a\\x41\\n\\101\\q'\n.", b'S"dq"\n.',
    b"S'unterminated\n.", b"V\\u00e9abc\\\\u0041\n.",
    b"I01\n.", b"I00\n.", b"I010\n.", b"I 5\n.", b"I5 \n.", b"I1_0\n.", b"Ix\n.", b"I-0\n.",
    b"I99999999999999999999\n.", b"I0x1f\n.", b"L123L\n.", b"L-99999999999999999999L\n.",
    b"F1e999\n.", b"F 1\n.", b"Fnan\n.", b"F-inf\n.", b"F1_0\n.",
    b"(I1\nI2\nd.", b"(I1\nd.", b"(lp0\nI1\naI2\na0.", b"(K\x011N.", b"K\x012\x86.", b"(K\x010.",
    b"\x80\x06N.", b"N", b"", b".", b"\x80\x02",
    b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01K\x02\x86.",
    b"\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00K\x01.",
    b"\x80\x04K\x05\x94h\x00\x86.", b"K\x05p7\ng7\n\x86.", b"K\x05p-1\n.", b"g3\n.", b"h\x03.",
    b"}(K\x01K\x02\x88K\x03G?\xf0\x00\x00\x00\x00\x00\x00K\x04u.",
    b"}(K\x01K\x02\x89K\x03u.", b"}(]K\x01u.", b"}(\x85K\x01u.", b"}(K\x01]\x85K\x01u.",
    b")K\x01a.", b"]K\x00K\x01s.", b"(a.", b"a.", b"]a.", b"\x86.", b"t.", b"l.", b"e.",
    b"\x80\x04\x8f(K\x01K\x01G?\xf0\x00\x00\x00\x00\x00\x00\x90.", b"\x80\x04(K\x01\x88\x91.",
    b"\x80\x04](\x90.", b"\x8b\xff\xff\xff\xff.", b"T\xff\xff\xff\xff.", b"X\xff\xff\xff\x7f",
    b"\x8d\xff\xff\xff\xff\xff\xff\xff\x7f", b"\x8a\x02\xff\x7f.", b"\x8a\x09" + b"\x00" * 8 + b"\x80.",
    b"cos\nsystem\n(S'echo hi'\ntR.", b"\x80\x04\x8c\x02os\x8c\x06system\x93.",
    b"ccopy_reg\n_reconstructor\n.", b"c__builtin__\nobject\n.", b"cbuiltins\nlist\n.",
    b"Pabc\n.", b"N\x8aQ.", b"NR.", b"]Nb.", b"\x82\x01.", b"(cbuiltins\nlist\no.", b"(ibuiltins\nlist\n.",
    b"\x97.", b"\x98.", b"\xff.", b"C\x02ab.", b"\x8e\x01\x00\x00\x00\x00\x00\x00\x00a.",
]
for data in hand:
    print('N', data.hex() or '-', verdict(data))
# Hostile pickles that Python itself loads (or tries to), which we must refuse with a typed error.
deep = b'\x80\x02' + b']' * 200 + b'a' * 199 + b'.'
laughs = b'\x80\x02]q\x00' + b''.join(bytes([40, 104, i - 1, 104, i - 1, 108, 113, i]) for i in range(1, 40)) + b'.'
big = b'\x80\x02X\xe8\x03\x00\x00' + b'x' * 1000 + b'q\x00(' + b'h\x00' * 100000 + b'l.'
recursive = b'\x80\x02]q\x00h\x00a.'
rec_dict = b'\x80\x02}q\x00K\x01h\x00s.'
print('H', deep.hex(), 'TooDeep')
print('H', laughs.hex(), 'TooManyItems')
print('H', big.hex(), 'TooManyBytes')
print('H', recursive.hex(), 'Recursive')
print('H', rec_dict.hex(), 'Recursive')
# Lone surrogates: Python strings may hold them, Rust strings cannot (documented deviation).
print('H', b"V\\ud800\n.".hex(), 'BadArgument')
print('H', b"X\x03\x00\x00\x00\xed\xa0\x80.".hex(), 'InvalidUtf8')
print('H', b'\x80\x05\x96\x01\x00\x00\x00\x00\x00\x00\x00x.'.hex(), 'Unsupported')
"#;

#[test]
fn decoding_agrees_with_carbons_safe_unpickler() {
    let out = run_python(CORPUS, "");
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut accepted = 0;
    for line in out.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(kind), Some(data), Some(want)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("bad oracle line {line:?}");
        };
        let data = if data == "-" { Vec::new() } else { unhex(data) };
        let got = loads(&data);
        match kind {
            "N" => match (&got, want.strip_prefix("ERR:")) {
                (Ok(v), None) => {
                    assert_eq!(canon(v), want, "pickle {}", hex(&data));
                    accepted += 1;
                }
                (Err(_), Some(_)) => {}
                (Ok(v), Some(e)) => {
                    failures.push(format!("carbon raised {e}, we decoded {v:?} from {}", hex(&data)))
                }
                (Err(e), None) => failures.push(format!(
                    "carbon decoded {want}, we failed ({e}) on {}",
                    hex(&data)
                )),
            },
            "H" => {
                let Err(e) = &got else {
                    panic!("hostile pickle {want} was accepted")
                };
                assert!(format!("{e:?}").starts_with(want), "hostile {want}: got {e:?}");
            }
            other => panic!("unknown kind {other}"),
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 500, "only {checked} oracle cases");
    assert!(accepted > 200, "only {accepted} accepted cases");
}

fn random_scalar(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => Value::None,
        1 => Value::Bool(rng.below(2) == 1),
        2 => {
            let shift = rng.below(64);
            Value::Int(rng.next() as i64 >> shift)
        }
        3 => Value::Int(rng.below(70000) as i64 - 300),
        4 => Value::Float(f64::from_bits(rng.next())),
        5 => Value::Float(rng.pick(&[0.0, -0.0, 1.5, f64::INFINITY, f64::NAN, 1e-320, 0.1])),
        6 => {
            let mut bytes = vec![0xabu8; 1 + rng.below(20)];
            bytes[0] = rng.below(256) as u8;
            carbide_protocol::pickle::BigInt::value_from_twos_le(&bytes)
        }
        _ => {
            let alphabet = ["a", ".", "é", "😀", "'", "\"", "\\", "\n", "\0", " ", "€", "z"];
            let long = rng.below(10) == 0;
            let n = rng.below(if long { 400 } else { 8 });
            Value::Str((0..n).map(|_| rng.pick(&alphabet)).collect())
        }
    }
}

fn random_key(rng: &mut Rng) -> Value {
    match rng.below(3) {
        0 => Value::Int(rng.below(1000) as i64),
        1 => Value::Tuple(vec![Value::Int(rng.below(10) as i64), Value::Str("t".into())]),
        _ => Value::Str(format!("k{}", rng.below(1000))),
    }
}

fn random_value(rng: &mut Rng, depth: usize, with_bytes_sets: bool) -> Value {
    if depth == 0 || rng.below(3) == 0 {
        if with_bytes_sets && rng.below(5) == 0 {
            return Value::Bytes((0..rng.below(300)).map(|_| rng.below(256) as u8).collect());
        }
        return random_scalar(rng);
    }
    let big = depth == 1 && rng.below(20) == 0;
    let n = rng.below(if big { 1200 } else { 5 });
    let kinds = if with_bytes_sets { 5 } else { 3 };
    match rng.below(kinds) {
        0 => Value::List(
            (0..n)
                .map(|_| random_value(rng, depth - 1, with_bytes_sets))
                .collect(),
        ),
        1 => Value::Tuple(
            (0..n)
                .map(|_| random_value(rng, depth - 1, with_bytes_sets))
                .collect(),
        ),
        2 => {
            let mut seen = std::collections::HashSet::new();
            let mut entries = Vec::new();
            for _ in 0..n {
                let k = random_key(rng);
                if seen.insert(canon(&k)) {
                    entries.push((k, random_value(rng, depth - 1, with_bytes_sets)));
                }
            }
            Value::Dict(entries)
        }
        3 => Value::Set(dedup_keys(rng, n)),
        _ => Value::FrozenSet(dedup_keys(rng, n)),
    }
}

fn dedup_keys(rng: &mut Rng, n: usize) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    (0..n)
        .map(|_| random_key(rng))
        .filter(|k| seen.insert(canon(k)))
        .collect()
}

const LOAD: &str = r#"
from carbon.util import SafeUnpickler
for line in sys.stdin:
    data = bytes.fromhex(line.strip())
    a = canon(pickle.loads(data))
    try:
        b = canon(SafeUnpickler.loads(data))
    except Exception as e:
        b = 'ERR:' + type(e).__name__
    print(a, b)
"#;

#[test]
fn our_pickles_load_in_python_and_carbon_identically() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut cases: Vec<(Value, Protocol, bool)> = Vec::new();
    let fixed = [
        Value::Dict(vec![(
            "datapoints".into(),
            Value::List(vec![Value::Tuple(vec![Value::Float(10.0), Value::Float(1.5)])]),
        )]),
        Value::Dict(vec![("error".into(), "Invalid request type \"x\"".into())]),
        Value::List((0..2001).map(Value::Int).collect()),
        Value::Dict((0..2001).map(|i| (Value::Int(i), Value::None)).collect()),
        Value::Int(i64::MIN),
        Value::Int(i64::MAX),
        Value::Str("x".repeat(70000)),
    ];
    for v in fixed {
        cases.push((v, Protocol::V2, true));
    }
    for i in 0..300 {
        let plain = i % 2 == 0;
        let v = random_value(&mut rng, 4, !plain);
        let proto = if plain {
            rng.pick(&[Protocol::V2, Protocol::V3, Protocol::V4, Protocol::V5])
        } else {
            rng.pick(&[Protocol::V2, Protocol::V4, Protocol::V5])
        };
        cases.push((v, proto, plain));
    }
    let input: String = cases
        .iter()
        .map(|(v, p, _)| hex(&dumps_with(v, *p)) + "\n")
        .collect();
    let out = run_python(LOAD, &input);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), cases.len());
    for ((v, proto, plain), line) in cases.iter().zip(lines) {
        let (py, carbon) = line.split_once(' ').expect("two columns");
        assert_eq!(py, canon(v), "{proto:?} {v:?}");
        // Values without bytes/sets must also pass carbon's safe unpickler (which refuses the
        // globals Python needs for bytes and sets below protocol 3/4).
        if *plain {
            assert_eq!(carbon, canon(v), "carbon SafeUnpickler on {proto:?} {v:?}");
        }
        // And our own decoder reads back what we wrote (when it is global-free).
        if carbon.starts_with("ERR") {
            assert!(loads(&dumps_with(v, *proto)).is_err());
        } else {
            assert_eq!(loads(&dumps_with(v, *proto)).map(|d| canon(&d)), Ok(canon(v)));
        }
    }
}

const BATCH: &str = r#"
data = bytes.fromhex(sys.stdin.readline().strip())
ints = bytes.fromhex(sys.stdin.readline().strip())
names = ['a.b', 'ü.x', 'carbon.agents.h.cpu'] * 700
# What carbon's relay sends: the (float ts, float value) pairs its receivers produced.
relay = [(n, (1700000000.0 + i, i * 0.5)) for i, n in enumerate(names)]
# What the aggregator sends: int interval timestamps.
agg = [(n, (1700000000 + i * 60, -1.25)) for i, n in enumerate(names)]
print(canon(pickle.loads(data)) == canon(relay), canon(pickle.loads(ints)) == canon(agg))
"#;

#[test]
fn point_batches_load_like_carbons_relay_and_aggregator_batches() {
    let names: Vec<&str> = ["a.b", "ü.x", "carbon.agents.h.cpu"]
        .iter()
        .copied()
        .cycle()
        .take(2100)
        .collect();
    let relay = carbide_protocol::pickle::encode_points(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, 1_700_000_000.0 + i as f64, i as f64 * 0.5)),
    );
    let agg = carbide_protocol::pickle::encode_points(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, 1_700_000_000 + i as i64 * 60, -1.25)),
    );
    let out = run_python(BATCH, &format!("{}\n{}\n", hex(&relay), hex(&agg)));
    assert_eq!(out.trim(), "True True");
}
