//! Differential tests against the real etsy statsd 0.9.0 (node).
//!
//! Each case starts `node stats.js config.js` on loopback: UDP on a free port, its graphite
//! backend pointed at a TCP listener this test runs. After statsd's first flush arrives, the test
//! sends one phase of packets per flush interval to node and to [`Statsd`], then compares each
//! flushed payload line by line: the same names, in the same order, the same value strings and
//! the same timestamps. The engine is flushed at the timestamp node used, so even
//! `statsd.timestamp_lag` must match.
//!
//! Values not compared (names and positions still are), because they measure wall-clock time
//! rather than the data:
//! - `processing_time`, `graphiteStats.calculationtime`, `graphiteStats.flush_time`: ms timings;
//! - `graphiteStats.last_flush`: the clock when the previous write finished;
//! - `graphiteStats.flush_length`: the previous payload's length, which includes the timings
//!   (compared as long as every timing so far printed the same as ours);
//! - the timestamps of the four `graphiteStats.*` lines, taken when the TCP connection opens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use carbide_statsd::parse::TcpFramer;
use carbide_statsd::{Config, StatKind, Statsd};
use serde_json::{Value, json};

const INTERVAL_MS: u64 = 400;

/// One line as received: name, value, timestamp.
type Line = (String, String, String);

struct Node {
    child: Child,
    stderr: std::path::PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn died(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "node statsd exited ({status}): {}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            )),
            _ => None,
        }
    }
}

use carbide_testkit::{free_port as free_tcp_port, free_udp_port};

/// Deep-merges `extra` into `base`.
fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e.clone(),
    }
}

fn parse_payload(text: &str) -> Vec<Line> {
    text.lines()
        .map(|l| {
            let mut parts = l.rsplitn(3, ' ');
            let ts = parts.next().unwrap_or("").to_string();
            let value = parts.next().unwrap_or("").to_string();
            let name = parts.next().unwrap_or("").to_string();
            (name, value, ts)
        })
        .collect()
}

const TIMINGS: [&str; 3] = [
    ".processing_time",
    ".graphiteStats.calculationtime",
    ".graphiteStats.flush_time",
];

/// Which part of a line is compared: (value, timestamp). `lengths_comparable` holds while every
/// timing node reported so far printed as ours ("0"): then payload lengths must agree too.
fn compared(name: &str, lengths_comparable: bool) -> (bool, bool) {
    let is_timing = TIMINGS.iter().any(|t| name.contains(t))
        || name.contains(".graphiteStats.last_flush")
        || (name.contains(".graphiteStats.flush_length") && !lengths_comparable);
    let backend_line = name.contains(".graphiteStats.") && !name.contains("calculationtime");
    (!is_timing, !backend_line)
}

fn assert_same(case: &str, flush_no: usize, node: &[Line], ours: &[Line], lengths: &mut bool) {
    if std::env::var_os("CARBIDE_STATSD_DUMP").is_some() {
        eprintln!("== {case} flush {flush_no}");
        for (n, v, t) in node {
            eprintln!("{n} {v} {t}");
        }
    }
    let render = |ls: &[Line]| {
        ls.iter()
            .map(|(n, v, t)| format!("{n} {v} {t}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let comparable = *lengths;
    *lengths &= node
        .iter()
        .zip(ours)
        .all(|(a, b)| !TIMINGS.iter().any(|t| a.0.contains(t)) || a.1 == b.1);
    let mismatch = node.len() != ours.len()
        || node.iter().zip(ours).any(|(a, b)| {
            let (value, ts) = compared(&a.0, comparable);
            a.0 != b.0 || (value && a.1 != b.1) || (ts && a.2 != b.2)
        });
    assert!(
        !mismatch,
        "case {case}, flush {flush_no}: payloads differ\n--- etsy statsd\n{}\n--- carbide\n{}",
        render(node),
        render(ours)
    );
}

/// What the test does to both statsd and the engine during an interval.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// One UDP datagram.
    Udp(&'a [u8]),
    /// One TCP connection carrying these bytes in a single write.
    Tcp(&'a [u8]),
    /// One admin console command (`delcounters a.*`); statsd's "deleted:" lines must match.
    Admin(&'a str),
}

/// Runs one case: `phases[i]` are the UDP packets sent during interval i (after the first flush).
fn run_case(case: &str, config: Value, phases: &[Vec<&[u8]>]) {
    let steps: Vec<Vec<Step<'_>>> = phases
        .iter()
        .map(|p| p.iter().map(|b| Step::Udp(b)).collect())
        .collect();
    run_steps(case, config, &steps);
}

/// Sends an admin command and returns statsd's reply up to its `END`.
fn admin(port: u16, command: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(command.as_bytes()).unwrap();
    let mut reply = String::new();
    let mut buf = [0u8; 4096];
    while !reply.contains("END\n\n") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "admin connection closed before END: {reply:?}");
        reply.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    reply
}

/// Runs one case of steps, one list per flush interval. A loaded machine can delay node past a
/// flush boundary, so a packet lands in the next interval; that shows as a different
/// `packets_received` and reruns the case (at most three times), as does a port another test
/// took first. Any other difference fails.
fn run_steps(case: &str, config: Value, phases: &[Vec<Step<'_>>]) {
    let mut slips = Vec::new();
    for _ in 0..3 {
        match try_steps(case, config.clone(), phases) {
            Ok(()) => return,
            Err(slip) => slips.push(slip),
        }
    }
    panic!("case {case}: packets kept missing their flush interval: {slips:?}");
}

/// A packet counted in another interval by node than by us.
fn timing_slip(node: &[Line], ours: &[Line]) -> Option<String> {
    node.iter()
        .filter(|l| l.0.contains(".packets_received"))
        .find(|n| ours.iter().any(|o| o.0 == n.0 && o.1 != n.1))
        .map(|n| format!("{} {}", n.0, n.1))
}

fn try_steps(case: &str, config: Value, phases: &[Vec<Step<'_>>]) -> Result<(), String> {
    let dir = common::statsd_dir();
    let node_bin = common::node();

    let listener = carbide_testkit::listen();
    let graphite_port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut s = String::new();
            if conn.read_to_string(&mut s).is_ok() && tx.send(s).is_err() {
                break;
            }
        }
    });

    let udp_port = free_udp_port();
    let tcp_port = free_tcp_port();
    let mgmt_port = free_tcp_port();
    let mut full = json!({
        "graphiteHost": "127.0.0.1",
        "graphitePort": graphite_port,
        "servers": [
            {"server": "./servers/udp", "address": "127.0.0.1", "port": udp_port},
            {"server": "./servers/tcp", "address": "127.0.0.1", "port": tcp_port},
        ],
        "mgmt_address": "127.0.0.1",
        "mgmt_port": mgmt_port,
        "flushInterval": INTERVAL_MS,
        "automaticConfigReload": false,
    });
    merge(&mut full, &config);
    let tmp = tempfile::tempdir().unwrap();
    let conf_path = tmp.path().join("config.js");
    std::fs::write(&conf_path, serde_json::to_string_pretty(&full).unwrap()).unwrap();
    let stderr_path = tmp.path().join("stderr");
    let mut node = Node {
        child: Command::new(node_bin)
            .arg(dir.join("stats.js"))
            .arg(&conf_path)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap(),
        stderr: stderr_path,
    };

    // A port picked free can be taken by another test before node binds it; node then exits
    // with EADDRINUSE and the case reruns on fresh ports. Any other death fails.
    let wait_flush = |node: &mut Node| -> Result<Vec<Line>, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(p) = rx.recv_timeout(Duration::from_millis(100)) {
                return Ok(parse_payload(&p));
            }
            if let Some(msg) = node.died() {
                if msg.contains("EADDRINUSE") {
                    return Err(format!("port taken: {msg}"));
                }
                panic!("case {case}: {msg}");
            }
            assert!(
                Instant::now() < deadline,
                "case {case}: no flush from node statsd"
            );
        }
    };
    let flush_ts = |lines: &[Line]| -> i64 { lines.first().and_then(|l| l.2.parse().ok()).unwrap_or(0) };

    // Flush 0: nothing sent yet. Packets may only go out once node's UDP socket is bound, which
    // the first flush proves (the socket is bound in the tick after start-up).
    let first = wait_flush(&mut node)?;
    // Node's start second shows as `last_flush` before its first write; it is part of the
    // payload length reported next.
    let startup_s: i64 = first
        .iter()
        .find(|l| l.0.contains(".graphiteStats.last_flush"))
        .and_then(|l| l.1.parse().ok())
        .unwrap_or(0);
    let config = Config::from_json(&full.to_string()).unwrap();
    let mut engine = Statsd::new(config, startup_s * 1000).unwrap();
    let ours = engine.flush(flush_ts(&first) * 1000);
    let mut lengths = true;
    assert_same(case, 0, &first, &parse_payload(&ours.to_text()), &mut lengths);

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, phase) in phases.iter().enumerate() {
        for step in phase {
            match *step {
                Step::Udp(packet) => {
                    sock.send_to(packet, ("127.0.0.1", udp_port)).unwrap();
                    engine.handle_packet(packet);
                }
                Step::Tcp(bytes) => {
                    let mut conn = TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
                    conn.write_all(bytes).unwrap();
                    drop(conn);
                    let mut framer = TcpFramer::default();
                    if let Some(packet) = framer.push(bytes) {
                        engine.handle_tcp_packet(&packet);
                    }
                }
                Step::Admin(command) => {
                    let reply = admin(mgmt_port, command);
                    let mut words = command.split(' ');
                    let kind = match words.next() {
                        Some("delcounters") => StatKind::Counters,
                        Some("deltimers") => StatKind::Timers,
                        Some("delgauges") => StatKind::Gauges,
                        other => panic!("unsupported admin command {other:?}"),
                    };
                    let mut want = String::new();
                    for bucket in words {
                        let deleted = engine.delete_stats(kind, bucket);
                        if deleted.is_empty() {
                            want.push_str(&format!("metric {bucket} not found\n"));
                        }
                        for d in deleted {
                            want.push_str(&format!("deleted: {d}\n"));
                        }
                    }
                    want.push_str("END\n\n");
                    assert_eq!(reply, want, "case {case}: admin {command:?}");
                }
            }
        }
        let got = wait_flush(&mut node)?;
        let ours = parse_payload(&engine.flush(flush_ts(&got) * 1000).to_text());
        if let Some(slip) = timing_slip(&got, &ours) {
            return Err(format!("flush {}: node had {slip}", i + 1));
        }
        assert_same(case, i + 1, &got, &ours, &mut lengths);
    }
    drop(node);
    drop(tmp);
    Ok(())
}

#[test]
fn counters_sample_rates_and_bad_lines() {
    let packets: Vec<&[u8]> = vec![
        b"hits:1|c",
        b"hits:2|c|@0.5\nhits:3|c|@0.1\nhits:1|c|@5",
        b"zero:1|c|@0\nzero_nan:0|c|@0",
        b"multi:1|c:2|c:3|ms:x|c",
        b"float:0.1|c\nfloat:0.2|c",
        b"big:1e21|c\ntiny:1e-7|c\nhex:0x10|c\nneg:-3|c\nspaces: 4 |c",
        b"histo:5|h\nweird:6|zz\nnotype:7|\ncr:1|c\r\n",
        b"bad\nbad2:1\nbad3:x|c\nbad4:1|c|@-1\nbad5:1|c|@\nbad6:1|c|0.5\nbad7:1|c|\n\n\n",
        b"10:1|c\n2:1|c\n01:1|c",
        b"a b/c$d\xc3\xa9e:1|c\ninvalid\xff\xfeutf8:1|c\nnbsp\xc2\xa0x:1|c",
        b"tagged:1|c|#env:prod,host:a:b\ntagged:1|c|#env:prod,host:a:b|#ignored\nsemi;t=1:2|c",
        b"__proto__:5|c\nrate:1|c|@0.5|extra\nexp:1|c|@1e-3\nhexrate:1|c|@0x10",
        b"statsd.bad_lines_seen:10|c",
    ];
    run_case("counters", json!({}), &[packets, vec![], vec![b"hits:1|c"]]);
}

#[test]
fn timers_percentiles_and_histograms() {
    let packets: Vec<&[u8]> = vec![
        b"api:10|ms\napi:20|ms\napi:30|ms\napi:40|ms\napi:50|ms",
        b"api:5|ms|@0.5\napi:100|ms|@0.1\napi:1.5|ms",
        b"one:7|ms",
        b"two:3|ms:1|ms",
        b"foo.skip:1|ms\nfoo.skip:2|ms",
        b"neg:-5|ms\nneg:-5|ms \nneg:3|ms\t",
        b"same:2|ms\nsame:2|ms\nsame:2|ms",
        b"tagged:1|ms|#k:v\ntagged:0.5|ms|#k:v\ntagged:200|ms|#k:v",
        b"frac:0.1|ms\nfrac:0.2|ms\nfrac:0.3|ms\nfrac:0.7|ms",
        b"bad:-1|ms\nbad:x|ms",
        b"inf:Infinity|ms\ninf:1|ms\ninf:Infinity|ms\nminf:-Infinity|ms \nminf:2|ms ",
        b"hexms:0x10|ms\nsci:1e3|ms\nsci:2.5e-3|ms",
    ];
    run_case(
        "timers",
        json!({
            "percentThreshold": [90, -10, 50, 99.9, 150, -100, 0],
            "histogram": [
                {"metric": "foo", "bins": []},
                {"metric": "", "bins": [0.5, 10, 100, "inf"]},
            ],
        }),
        &[packets, vec![], vec![b"api:1|ms"]],
    );
}

#[test]
fn gauges_with_deltas_and_sets() {
    let p1: Vec<&[u8]> = vec![
        b"g:10|g\ng:+5|g\ng:-3|g",
        b"fresh:-4|g\nfresh:+1|g",
        b"zero:0|g\nzero:+3|g\nzero:-1|g",
        b"nan:Infinity|g\nnan:-Infinity|g",
        b"space: -2|g\nhex:0x1f|g\nbad:x|g",
        b"s:a|s\ns:b|s\ns:a|s\ns:|s\ns:__proto__|s\ns:constructor|s",
        b"s2:1|s:2|s:1|s\nrate:1|s|@0.5",
    ];
    let p2: Vec<&[u8]> = vec![b"g:+1|g\nnan:+5|g\ns:c|s\nnew:+7|g"];
    run_case("gauges_sets", json!({}), &[p1, p2, vec![]]);
}

#[test]
fn delete_idle_stats_with_gauge_ttl() {
    let p1: Vec<&[u8]> = vec![
        b"c:1|c\nt:1|ms\ng:1|g\ns:x|s\nkeep.packets_received:1|c",
        b"g2:5|g",
    ];
    let p2: Vec<&[u8]> = vec![b"g2:+1|g\nc2:1|c"];
    run_case(
        "delete_idle",
        json!({"deleteIdleStats": true, "gaugesMaxTTL": 2, "percentThreshold": 95}),
        &[p1, p2, vec![], vec![b"c:1|c\ng:+2|g"]],
    );
}

#[test]
fn delete_switches_individually() {
    let p1: Vec<&[u8]> = vec![b"c:1|c\nt:1|ms\ng:1|g\ns:x|s"];
    run_case(
        "delete_some",
        json!({"deleteIdleStats": true, "deleteCounters": false, "deleteGauges": false}),
        &[p1, vec![]],
    );
}

#[test]
fn new_namespace_prefixes_and_suffix() {
    let p1: Vec<&[u8]> = vec![
        b"c:3|c\nt:1|ms\nt:2|ms\ng:4|g\ns:x|s",
        b"tag:1|c|#a:b\ntag:5|ms|#a:b\ntag:1|g|#a:b\ntag:1|s|#a:b",
    ];
    run_case(
        "new_namespace",
        json!({
            "prefixStats": "sd",
            "graphite": {
                "legacyNamespace": false,
                "globalPrefix": "carbide",
                "prefixCounter": "cnt",
                "prefixTimer": "",
                "prefixGauge": "gg",
                "prefixSet": "st",
                "globalSuffix": "host1",
            },
            "histogram": [{"metric": "t", "bins": [1.5, "inf"]}],
        }),
        &[p1.clone(), vec![]],
    );
    run_case(
        "new_namespace_no_prefix",
        json!({"graphite": {"legacyNamespace": false, "globalPrefix": ""}, "flush_counts": false}),
        std::slice::from_ref(&p1),
    );
    run_case(
        "legacy_suffix",
        json!({"graphite": {"globalSuffix": "sfx"}, "prefixStats": "mystatsd"}),
        &[p1],
    );
}

#[test]
fn unsanitized_keys_and_timer_filter() {
    let p1: Vec<&[u8]> = vec![
        b"a b/c:1|c\nsp ace:2|ms|#t:x y\nutf\xc3\xa9:1|g",
        // Invalid UTF-8 in a tag survives unsanitised: U+FFFD per maximal subpart, as node.
        b"k:1|c|#t:\xff\xed\xa0\x80\xf0\x9f.\xe2\x82x\xc0\xaf",
        b"t:1|ms\nt:2|ms\nt:3|ms\nt:4|ms",
    ];
    run_case(
        "unsanitized",
        json!({
            "keyNameSanitize": false,
            "percentThreshold": [90, 99.9, -50],
            "calculatedTimerMetrics": ["count", "upper_percent", "mean", "histogram", "count_ps"],
            "histogram": [{"metric": "", "bins": [2, "inf"]}],
        }),
        &[p1, vec![]],
    );
}

#[test]
fn tcp_server_and_admin_deletes() {
    let phase1 = vec![
        Step::Udp(b"a.x:1|c\na.y:2|c\nab:3|c\nt.one:1|ms\ng.one:5|g"),
        Step::Udp(b"caf\xc3\xa9:1|c"),
        // node's TCP server decodes as 'ascii' (high bit cleared): \xc3\xa9 reads as "C)".
        // Last in its interval: a TCP connection overtakes no later datagram then.
        Step::Tcp(b"caf\xc3\xa9:1|c\ntcp:2|c\ntcp:3|ms\npartial:1|c"),
    ];
    let phase2 = vec![
        Step::Admin("delcounters a.* ab missing"),
        Step::Admin("deltimers t.one"),
        Step::Admin("delgauges g.*"),
        Step::Udp(b"ab:1|c\ng.one:+2|g"),
    ];
    let phase3 = vec![
        // statsd's own counter deleted: `undefined + 1` makes it NaN for good.
        Step::Admin("delcounters statsd.packets_received"),
        Step::Udp(b"x:1|c"),
    ];
    run_steps("tcp_admin", json!({}), &[phase1, phase2, phase3, vec![]]);
}

/// Random lines from a grammar of valid and invalid pieces: values node reads oddly (` 1`,
/// `0x1f`, `.5`, `-0`, `Infinity`), unknown and padded types, good and bad rates, several
/// segments, tags. Rates that crash node (`@+1`, `@ 1`, `@Infinity`) and keys named after
/// `Object.prototype` members are left out (see the crate docs).
fn random_packets(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut s = seed;
    let mut next = move |n: usize| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % n as u64) as usize
    };
    let keys = [
        "a",
        "b.c",
        "7",
        "42",
        "007",
        "x y",
        "p/q",
        "t\tab",
        "caf\u{e9}",
        "k;t=1",
        "dots..x",
        "",
        "statsd.bad_lines_seen",
        "u-v_w",
    ];
    let values = [
        "1",
        "0",
        "-0",
        "2.5",
        " 3 ",
        "0x1f",
        "1e3",
        ".5",
        "5.",
        "-7",
        "+4",
        "Infinity",
        "1e21",
        "1e-7",
        "0.1",
        "abc",
        "",
        "0b11",
        "12345678901234567890",
        "-1.5e-3",
    ];
    let types = ["c", "ms", "g", "s", "h", "zz", "ms ", " g", "", "S", "c\r"];
    let rates = [
        "",
        "",
        "",
        "|@0.5",
        "|@0",
        "|@2",
        "|@.1",
        "|@1e-1",
        "|@-1",
        "|@",
        "|@abc",
        "|@0x2",
        "|0.5",
        "|@0.25|extra",
    ];
    let tags = ["", "", "", "|#env:prod", "|#a:b:c,d", "|#", "|#x;y:z|#w"];
    let mut packets = Vec::new();
    for _ in 0..count {
        let mut p = String::new();
        for l in 0..(1 + next(4)) {
            if l > 0 {
                p.push('\n');
            }
            p.push_str(keys[next(keys.len())]);
            if next(10) == 0 {
                continue; // no ':' at all
            }
            for seg in 0..(1 + next(3)) {
                p.push(':');
                p.push_str(values[next(values.len())]);
                if next(12) > 0 || seg > 0 {
                    p.push('|');
                    p.push_str(types[next(types.len())]);
                    p.push_str(rates[next(rates.len())]);
                }
            }
            p.push_str(tags[next(tags.len())]);
        }
        if next(5) == 0 {
            p.push('\n');
        }
        packets.push(p.into_bytes());
    }
    packets
}

#[test]
fn random_lines_against_node() {
    // CARBIDE_STATSD_RANDOM_ROUNDS=N adds N more seeds (each ~2 s) for a longer search.
    let extra: u64 = std::env::var("CARBIDE_STATSD_RANDOM_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let more = (0..extra).map(|i| {
        let legacy = i % 2 == 0;
        (
            0x9e37_79b9_u64.wrapping_mul(i + 7),
            json!({"percentThreshold": [95, -5, 33.3], "graphite": {"legacyNamespace": legacy},
                   "deleteIdleStats": i % 3 == 0, "histogram": [{"metric": "a", "bins": [0.5, "inf"]}]}),
        )
    });
    for (seed, config) in [
        (0x1234_5678_u64, json!({"percentThreshold": [90, -25, 50.5]})),
        (
            0xdead_beef_u64,
            json!({"deleteIdleStats": true, "histogram": [{"metric": "", "bins": [1, 3.5, "inf"]}]}),
        ),
        (
            0x0bad_cafe_u64,
            json!({"keyNameSanitize": false, "graphite": {"legacyNamespace": false}}),
        ),
    ]
    .into_iter()
    .chain(more)
    {
        let p1 = random_packets(seed, 60);
        let p2 = random_packets(seed ^ 0xffff, 60);
        let phases: Vec<Vec<&[u8]>> = vec![
            p1.iter().map(Vec::as_slice).collect(),
            p2.iter().map(Vec::as_slice).collect(),
            vec![],
        ];
        run_case(&format!("random_{seed:x}"), config, &phases);
    }
}
