//! The protobuf receiver (PROTOBUF_RECEIVER_PORT) against the real carbon-cache (Debian
//! graphite-carbon 1.1.7 with python3-protobuf): payloads serialized by carbon's own
//! `carbon_pb2.Payload` under the real protobuf library, plus hand-built frames (unknown fields, a
//! name after its points, a payload cut short by a tag 0, a name that is not UTF-8, an oversized
//! frame), sent to both; then the two whisper trees are compared: same files, same fetches.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use cache_common::{Kind, PYTHON, Server, fetch_all, files, free_port, send, wait_tree_stable, wait_until};

/// Serializes payloads with carbon's `carbon_pb2` and prints each as a hex frame (4-byte
/// big-endian length, then the payload), one per line.
const BUILD: &str = r#"
import sys, struct
from carbon.carbon_pb2 import Payload
t = int(sys.argv[1])
def frame(metrics):
    p = Payload()
    for name, points in metrics:
        m = p.metrics.add()
        m.metric = name
        for ts, v in points:
            x = m.points.add()
            x.timestamp = ts
            x.value = v
    b = p.SerializeToString()
    print((struct.pack('!L', len(b)) + b).hex())
frame([('pb.a', [(t, 1.0), (t + 1, 2.0)]), ('pb.b', [(t, -3.5)]), ('pb.nan', [(t, float('nan'))]),
       ('pb.nanmix', [(t, 1.0), (t + 1, float('nan'))]), ('pb.tag;b=2;a=1', [(t, 4.0)]),
       ('pb.dup', [(t, 1.0), (t, 9.0)]), ('pb.zero', [(0, 5.0)]), ('pb.neg0', [(t, -0.0)]),
       ('pb.big', [(t, 1e300), (t + 1, 5e-324)]), ('pb.a', [(t + 2, 3.0)])])
frame([('pb.many.m%d' % (i % 20), [(t + i // 20, float(i))]) for i in range(200)])
frame([])
"#;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn delimited(field: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(field << 3 | 2);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

fn point(ts: i64, v: f64) -> Vec<u8> {
    let mut p = vec![0x08];
    varint(ts as u64, &mut p);
    p.push(0x11);
    p.extend_from_slice(&v.to_le_bytes());
    p
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// Frames written by hand, each `(bytes, what carbon does)`.
fn hand_frames(t: i64) -> Vec<u8> {
    let mut out = Vec::new();
    // A name after its points, unknown fields of several wire types, a timestamp sent twice.
    let mut p = point(t + 5, 7.0);
    p.extend_from_slice(&[0x18, 0x01, 0x25, 1, 2, 3, 4]);
    p.push(0x08);
    varint((t + 6) as u64, &mut p);
    let mut m = Vec::new();
    delimited(2, &p, &mut m);
    m.extend_from_slice(&[0x1b, 0x08, 0x01, 0x1c]); // an unknown group
    delimited(1, b"pb.hand.late", &mut m);
    let mut payload = Vec::new();
    delimited(1, &m, &mut payload);
    payload.extend_from_slice(&[0x2a, 0x02, 0xff, 0xff]); // an unknown length-delimited field
    out.extend(framed(&payload));
    // Tag 0 ends the top level: the first metric lands, the rest of the frame is ignored.
    let mut payload = Vec::new();
    for name in ["pb.early", "pb.ignored"] {
        let mut m = Vec::new();
        delimited(1, name.as_bytes(), &mut m);
        delimited(2, &point(t, 1.0), &mut m);
        delimited(1, &m, &mut payload);
        if name == "pb.early" {
            payload.push(0x00);
        }
    }
    out.extend(framed(&payload));
    // A name that is not UTF-8 loses its whole frame (pb.lost too)...
    let mut payload = Vec::new();
    for name in [&b"pb.lost"[..], b"pb.bad\xff"] {
        let mut m = Vec::new();
        delimited(1, name, &mut m);
        delimited(2, &point(t, 1.0), &mut m);
        delimited(1, &m, &mut payload);
    }
    out.extend(framed(&payload));
    // ...as does a truncated one; the connection lives on and the next frame lands.
    out.extend(framed(&[0x0a, 0x05, 0x0a, 0x01]));
    let mut m = Vec::new();
    delimited(1, b"pb.after", &mut m);
    delimited(2, &point(t, 11.0), &mut m);
    let mut payload = Vec::new();
    delimited(1, &m, &mut payload);
    out.extend(framed(&payload));
    out
}

fn wait_listening(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn protobuf_payloads_land_as_in_carbon_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (pb_ours, pb_theirs) = (free_port(), free_port());
    let extra = |p: u16| format!("PROTOBUF_RECEIVER_INTERFACE = 127.0.0.1\nPROTOBUF_RECEIVER_PORT = {p}\n");
    let ours = Server::start(Kind::Carbide, &tmp.path().join("carbide"), &extra(pb_ours), &[]);
    let theirs = Server::start(Kind::Carbon, &tmp.path().join("carbon"), &extra(pb_theirs), &[]);
    wait_listening(pb_ours);
    wait_listening(pb_theirs);

    let t = (cache_common::now() / 60) * 60 - 300;
    let out = Command::new(PYTHON)
        .arg("-c")
        .arg(BUILD)
        .arg(t.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}"));
    assert!(
        out.status.success(),
        "carbon_pb2 failed (needs graphite-carbon and python3-protobuf: scripts/install-test-deps.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stream: Vec<u8> = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        stream.extend((0..line.len() / 2).map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16).unwrap()));
    }
    stream.extend(hand_frames(t));
    for port in [pb_ours, pb_theirs] {
        send(port, &stream);
        // An oversized frame (2**20 + 1) drops the connection in both.
        let mut big = ((1u32 << 20) + 1).to_be_bytes().to_vec();
        big.extend(vec![0u8; 1024]);
        send(port, &big);
    }

    let expected = 31;
    wait_until(
        Duration::from_secs(60),
        "carbide wrote every protobuf metric",
        || files(&ours.whisper()).len() >= expected && ours.cache_size() == 0,
    );
    wait_tree_stable(&theirs.whisper(), expected, Duration::from_secs(60));
    let (a, b) = (files(&ours.whisper()), files(&theirs.whisper()));
    assert_eq!(a, b, "file sets differ");
    assert_eq!(a.len(), expected, "{a:?}");
    for f in ["pb/hand/late.wsp", "pb/early.wsp", "pb/after.wsp", "pb/zero.wsp"] {
        assert!(a.contains(&f.to_string()), "{f} missing: {a:?}");
    }
    for f in ["pb/ignored.wsp", "pb/lost.wsp", "pb/nan.wsp"] {
        assert!(!a.contains(&f.to_string()), "{f} stored: {a:?}");
    }
    let now = cache_common::now() + 5;
    let fa = fetch_all(&ours.whisper(), now - 3000, now);
    let fb = fetch_all(&theirs.whisper(), now - 3000, now);
    assert_eq!(fa, fb, "fetches differ");
    let ca = fetch_all(&ours.whisper(), now - 80_000, now);
    let cb = fetch_all(&theirs.whisper(), now - 80_000, now);
    assert_eq!(ca, cb, "60 s archives differ");
    let (from, _, step, vals) = &fa["pb/hand/late.wsp"];
    let got: Vec<(i64, f64)> = vals
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (from + i as i64 * step, v)))
        .collect();
    assert_eq!(got, vec![(t + 6, 7.0)], "the last timestamp of a point wins");
    assert!(
        ours.metric("carbide_bad_lines_total") >= 2.0,
        "bad frames not counted"
    );
}
