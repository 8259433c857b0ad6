//! Differential test of the protobuf receiver's decoder against the real thing: carbon 1.1.7's
//! own `carbon_pb2.Payload` (Debian graphite-carbon) parsed by Debian's python3-protobuf 3.21
//! (the C++ parser), exactly as `MetricProtobufReceiver.stringReceived` does. Thousands of frames
//! — valid payloads serialized by the Python library itself, payloads with unknown fields, wrong
//! wire types, groups, repeated singular fields, hand-made edge cases, and random mutations and
//! truncations of all of them — must give the same verdict (refused, or the same points in the
//! same order, and whether the parser stopped early at a tag 0 or end-group tag).

mod common;

use carbide_protocol::protobuf::{decode_payload, encode_payload};
use common::{Rng, hex, run_python, unhex};

/// Reads one hex frame per line; prints `E` (DecodeError), or `O <consumed> <points>` where points
/// are `name_hex:ts:value_bits_hex` separated by spaces. Lines starting with `P` instead ask
/// Python to serialize a payload described as `name_hex:ts:bits_hex,...;name_hex:...` (after `<count>|`) and print
/// the bytes, so Python's own serializer builds part of the corpus.
const ORACLE: &str = r#"
import warnings
warnings.simplefilter('ignore')
try:
    from carbon.carbon_pb2 import Payload
    from google.protobuf.message import DecodeError
except ImportError as e:
    sys.stderr.write('needs graphite-carbon and python3-protobuf (scripts/install-test-deps.sh): %s\n' % e)
    sys.exit(2)
for line in sys.stdin:
    line = line.strip()
    if line.startswith('P'):
        p = Payload()
        count, body = line[1:].split('|', 1)
        for m in (body.split(';') if int(count) else []):
            parts = m.split(',')
            mp = p.metrics.add()
            mp.metric = bytes.fromhex(parts[0]).decode('utf-8')
            for pt in parts[1:]:
                ts, bits = pt.split(':')
                x = mp.points.add()
                x.timestamp = int(ts)
                x.value = struct.unpack('>d', bytes.fromhex(bits))[0]
        print(p.SerializeToString().hex())
        sys.stdout.flush()
        continue
    data = bytes.fromhex(line[1:])
    p = Payload()
    try:
        n = p.MergeFromString(data)
    except DecodeError:
        print('E')
        sys.stdout.flush()
        continue
    out = []
    for m in p.metrics:
        for x in m.points:
            out.append('%s:%d:%s' % (m.metric.encode('utf-8').hex(), x.timestamp, struct.pack('>d', x.value).hex()))
    print('O %d %s' % (0 if n == len(data) else 1, ' '.join(out)))
    sys.stdout.flush()
"#;

/// Our verdict in the oracle's notation.
fn ours(frame: &[u8]) -> String {
    match decode_payload(frame) {
        Err(_) => "E".into(),
        Ok(d) => {
            let pts: Vec<String> = d
                .points
                .iter()
                .map(|p| {
                    format!(
                        "{}:{}:{}",
                        hex(p.name.as_bytes()),
                        p.timestamp,
                        hex(&p.value.to_be_bytes())
                    )
                })
                .collect();
            format!("O {} {}", u8::from(d.stopped_early_at.is_some()), pts.join(" "))
        }
    }
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

type Metric = (String, Vec<(u32, f64)>);

fn random_metrics(rng: &mut Rng) -> Vec<Metric> {
    let names = [
        "a.b",
        "servers.web01.cpu",
        "",
        "x;tag=v",
        "\u{e9}t\u{e9}.\u{1F600}",
        "sp ace",
        "nul\u{0}name",
        "a",
    ];
    let values = [
        0.0,
        -0.0,
        1.5,
        -2.25,
        1e300,
        5e-324,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        42.0,
        0.1,
    ];
    let stamps = [0u32, 1, 1_700_000_000, u32::MAX, 127, 128, 16_384];
    (0..rng.below(4))
        .map(|_| {
            let name = if rng.below(5) == 0 {
                "m".repeat(rng.below(300))
            } else {
                rng.pick(&names).to_string()
            };
            let points = (0..rng.below(5))
                .map(|_| {
                    let ts = if rng.below(3) == 0 {
                        rng.next() as u32
                    } else {
                        rng.pick(&stamps)
                    };
                    let v = if rng.below(3) == 0 {
                        f64::from_bits(rng.next())
                    } else {
                        rng.pick(&values)
                    };
                    (ts, v)
                })
                .collect();
            (name, points)
        })
        .collect()
}

fn describe(metrics: &[Metric]) -> String {
    metrics
        .iter()
        .map(|(n, pts)| {
            let mut s = hex(n.as_bytes());
            for (ts, v) in pts {
                s.push_str(&format!(",{ts}:{}", hex(&v.to_be_bytes())));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// A random unknown field (every wire type, groups included, sometimes nested).
fn unknown_field(rng: &mut Rng, out: &mut Vec<u8>, depth: usize) {
    let field = rng.pick(&[3u64, 4, 15, 16, 2047, 536_870_911]);
    match rng.below(if depth > 2 { 4 } else { 5 }) {
        0 => {
            varint(field << 3, out);
            varint(rng.next() >> rng.below(64), out);
        }
        1 => {
            varint(field << 3 | 1, out);
            out.extend_from_slice(&rng.next().to_le_bytes());
        }
        2 => {
            varint(field << 3 | 2, out);
            let n = rng.below(6);
            varint(n as u64, out);
            out.extend((0..n).map(|_| rng.next() as u8));
        }
        3 => {
            varint(field << 3 | 5, out);
            out.extend_from_slice(&(rng.next() as u32).to_le_bytes());
        }
        _ => {
            varint(field << 3 | 3, out);
            for _ in 0..rng.below(3) {
                unknown_field(rng, out, depth + 1);
            }
            varint(field << 3 | 4, out);
        }
    }
}

/// A payload written field by field with noise: unknown fields, wrong wire types for known
/// field numbers, names after points, names twice, points with fields repeated or missing.
fn noisy_payload(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, points) in random_metrics(rng) {
        let mut m = Vec::new();
        let name_at = rng.below(points.len() + 1);
        for (i, (ts, v)) in points.iter().enumerate() {
            if i == name_at {
                m.push(0x0a);
                varint(name.len() as u64, &mut m);
                m.extend_from_slice(name.as_bytes());
            }
            let mut p = Vec::new();
            if rng.below(4) == 0 {
                unknown_field(rng, &mut p, 0);
            }
            if rng.below(5) != 0 {
                p.push(0x11);
                p.extend_from_slice(&v.to_le_bytes());
            }
            if rng.below(5) != 0 {
                p.push(0x08);
                varint(
                    u64::from(*ts) | if rng.below(4) == 0 { rng.next() << 32 } else { 0 },
                    &mut p,
                );
            }
            match rng.below(8) {
                0 => p.extend_from_slice(&[0x08, 0x07]), // timestamp again: last wins
                1 => p.extend_from_slice(&[0x10, 0x07]), // value as a varint: unknown
                2 => p.extend_from_slice(&[0x0d, 1, 2, 3, 4]), // timestamp as fixed32: unknown
                _ => {}
            }
            m.push(0x12);
            varint(p.len() as u64, &mut m);
            m.extend_from_slice(&p);
            if rng.below(6) == 0 {
                unknown_field(rng, &mut m, 0);
            }
        }
        if name_at == points.len() {
            m.push(0x0a);
            varint(name.len() as u64, &mut m);
            m.extend_from_slice(name.as_bytes());
        }
        if rng.below(8) == 0 {
            m.extend_from_slice(&[0x0a, 0x01, b'z']); // a second name: the last counts
        }
        if rng.below(8) == 0 {
            m.extend_from_slice(&[0x10, 0x01]); // points as a varint: unknown
        }
        out.push(0x0a);
        varint(m.len() as u64, &mut out);
        out.extend_from_slice(&m);
        if rng.below(6) == 0 {
            unknown_field(rng, &mut out, 0);
        }
    }
    out
}

fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(3) {
        match rng.below(6) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.pick(&[0x00, 0x04, 0x0c, 0x0e, 0x0f, 0x0b, 0x80, 0xff, 0x7f]);
            }
            2 if !b.is_empty() => b.truncate(rng.below(b.len())),
            3 => {
                let i = rng.below(b.len() + 1);
                b.insert(i, rng.next() as u8);
            }
            4 => {
                let i = rng.below(b.len() + 1);
                b.splice(i..i, [0x00, 0x0c, 0x1c, 0x1b, 0x80][..1 + rng.below(4)].to_vec());
            }
            _ => {}
        }
    }
    b
}

const HAND: &[&[u8]] = &[
    b"",
    b"\x0a\x00",
    b"\x0a\x04\x0a\x02\xff\xfe",
    b"\x0a\x05\x0a\x03\xed\xa0\x80", // a UTF-16 surrogate in UTF-8 form
    b"\x0a\x06\x0a\x04\xf0\x9f\x98\x80",
    b"\x0a\x04\x0a\x02\xc0\x80", // overlong NUL
    b"\x08\x05",
    b"\x0a\x02\x08\x05",
    b"\x0a\x0d\x12\x0b\x09\x01\x01\x01\x01\x01\x01\x01\x01\x10\x05",
    b"\x0a\x08\x12\x06\x08\xff\xff\xff\xff\x1f",
    b"\x0a\x0d\x12\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"\x0a\x0d\x12\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"\x0a\x0e\x12\x0c\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"\x02\x00",
    b"\x00\x00",
    b"\x00",
    b"\x04",
    b"\x0c",
    b"\x0e",
    b"\x0f",
    b"\x1b\x08\x01\x1c\x0a\x03\x0a\x01a",
    b"\x1b\x08\x01",
    b"\x1b\x24",
    b"\x1b\x00",
    b"\x0a\x03\x0a\x01a\x00\x0a\x03\x0a\x01b",
    b"\x0a\x03\x0a\x01a\x0c\x0a\x03\x0a\x01b",
    b"\x0a\x02\x00\x00",
    b"\x0a\x02\x0c\x00",
    b"\x0a\x05\x0a\x01",
    b"\x0a\x06\x12\x04\x11\x00\x00\x00",
    b"\x0a\x06\x0a\x01a\x0a\x01b",
    b"\x0a\x06\x12\x04\x08\x01\x08\x02",
    b"\x0a\x0a\x18\x05\x0a\x01a\x25\x01\x02\x03\x04",
    b"\x0a\x00\x0a\x00",
    b"\x0a\xff\xff\xff\xff\x0f",
    b"\x0a\xff\xff\xff\xff\x07",
    b"\x0a\x80\x80\x80\x80\x00",
    b"\x0a\x80\x80\x80\x80\x80\x00",
    b"\xf8\xff\xff\xff\x0f\x01",
    b"\x80\x80\x80\x80\x10\x01",
    b"\x80\x80\x80\x80\x10\x01\x0a\x03\x0a\x01a",
    b"\x88\x80\x80\x80\x80\x00\x01",
    b"\x88\x80\x80\x80\x00\x01",
    b"\x8a\x00\x00",
    b"\x0a\x04\x12\x02\x1c\x00",
    b"\x0a\x04\x12\x02\x00\x00",
    b"\x0b\x0c",
    b"\x0b\x0a\x01a\x0c",
    b"\x13\x14",
    b"\x0a\x05\x13\x0a\x01a\x14",
];

fn deep(groups: usize) -> Vec<u8> {
    let mut v = vec![0x1b; groups];
    v.extend(vec![0x1c; groups]);
    v
}

/// Groups nested inside a Point inside a Metric.
fn deep_in_point(groups: usize) -> Vec<u8> {
    let mut p = deep(groups);
    p.extend_from_slice(&[0x08, 0x01]);
    let mut m = vec![0x12];
    varint(p.len() as u64, &mut m);
    m.extend(p);
    let mut out = vec![0x0a];
    varint(m.len() as u64, &mut out);
    out.extend(m);
    out
}

#[test]
fn decoder_agrees_with_carbon_pb2_under_python_protobuf() {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    // 1. Python serializes random payloads; those bytes join the corpus.
    let described: Vec<Vec<Metric>> = (0..300).map(|_| random_metrics(&mut rng)).collect();
    let input: String = described
        .iter()
        .map(|m| format!("P{}|{}\n", m.len(), describe(m)))
        .collect();
    let serialized: Vec<Vec<u8>> = run_python(ORACLE, &input).lines().map(unhex).collect();
    assert_eq!(serialized.len(), described.len());
    let mut corpus: Vec<Vec<u8>> = HAND.iter().map(|b| b.to_vec()).collect();
    for d in [99, 100, 101, 98] {
        corpus.push(deep(d));
        corpus.push(deep_in_point(d));
    }
    for (metrics, bytes) in described.iter().zip(&serialized) {
        // our encoder writes what protobuf writes
        let refs: Vec<(&str, &[(u32, f64)])> =
            metrics.iter().map(|(n, p)| (n.as_str(), p.as_slice())).collect();
        assert_eq!(&encode_payload(&refs), bytes, "encoding of {metrics:?}");
        corpus.push(bytes.clone());
    }
    for _ in 0..700 {
        corpus.push(noisy_payload(&mut rng));
    }
    let base = corpus.clone();
    for _ in 0..3000 {
        let b = base[rng.below(base.len())].clone();
        corpus.push(mutate(&mut rng, b));
    }
    for _ in 0..300 {
        let n = rng.below(40);
        corpus.push((0..n).map(|_| rng.next() as u8).collect());
    }

    let input: String = corpus.iter().map(|b| format!("D{}\n", hex(b))).collect();
    let theirs: Vec<String> = run_python(ORACLE, &input).lines().map(str::to_string).collect();
    assert_eq!(
        theirs.len(),
        corpus.len(),
        "the oracle answered {} of {}",
        theirs.len(),
        corpus.len()
    );
    let mut failures = Vec::new();
    let (mut refused, mut early) = (0, 0);
    for (b, t) in corpus.iter().zip(&theirs) {
        let o = ours(b);
        if o.trim_end() != t.trim_end() {
            failures.push(format!("frame {}\n  carbon: {t}\n  ours:   {o}", hex(b)));
        }
        refused += usize::from(t == "E");
        early += usize::from(t.starts_with("O 1"));
    }
    eprintln!(
        "{} frames: {refused} refused by carbon_pb2, {early} stopped early, {} mismatches",
        corpus.len(),
        failures.len()
    );
    assert!(
        refused > 200 && early > 20,
        "the corpus does not exercise errors enough"
    );
    assert!(
        failures.is_empty(),
        "{} of {} frames differ:\n{}",
        failures.len(),
        corpus.len(),
        failures[..failures.len().min(15)].join("\n")
    );
}
