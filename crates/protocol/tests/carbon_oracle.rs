//! Differential tests that run carbon 1.1.7's own receiver, carbonlink and tag code (Debian
//! graphite-carbon under /usr/bin/python3) on the same input as our codecs.

mod common;

use carbide_protocol::carbonlink::{Reply, Request, decode_request};
use carbide_protocol::line::{CarbonAction, datagram_lines, listed_name, parse_line, parse_line_str};
use carbide_protocol::pickle::{Limits, loads};
use carbide_protocol::points::{PointsError, decode_points};
use carbide_protocol::tags::{TaggedSeries, encode};
use common::{Rng, canon, hex, run_python, unhex};

const NOW: f64 = 1_700_000_123.25;

/// Shared Python set-up: carbon's receivers with time, logging and events captured.
const CARBON_HARNESS: &str = r#"
import types
from carbon import protocols, events
NOW = 1700000123.25
protocols.time = types.SimpleNamespace(time=lambda: NOW)
out = []
def fbits(x): return struct.pack('>d', x).hex()
def capture(metric, dp):
    out.append('P:%s:%s:%s' % (metric.encode('utf-8').hex(), fbits(dp[0]), fbits(dp[1])))
events.metricReceived.handlers = [capture]
def listener(msg):
    if msg.startswith('invalid pickle'): out.append('I')
    else: out.append('L')
protocols.log.listener = listener
"#;

fn points_token(name: &str, ts: f64, value: f64) -> String {
    format!(
        "P:{}:{}:{}",
        hex(name.as_bytes()),
        hex(&ts.to_be_bytes()),
        hex(&value.to_be_bytes())
    )
}

fn random_line(rng: &mut Rng) -> Vec<u8> {
    let names = ["a.b", "x", "ü", "a;t=v", "carbon.agents.h.x"];
    let numbers = [
        "1",
        "-1",
        "1.5",
        "1e3",
        "1E-3",
        "1_000",
        "_1",
        "1__0",
        "1_",
        "inf",
        "-Infinity",
        "nan",
        "NaN",
        "+nan",
        "0x10",
        ".",
        "5.",
        ".5",
        "1e",
        "١٢",
        "１",
        "-1.9",
        "-0.5",
        "-2",
        "1e999",
        "x",
        "0",
        "-0",
        "1700000000",
        "1.7e9",
        "1e+5",
        "++1",
    ];
    let seps = [
        " ", "\t", "  ", "\u{a0}", "\u{1c}", "\u{3000}", "\u{200b}", "\u{b}", "\u{85}",
    ];
    let mut s = String::new();
    if rng.below(4) == 0 {
        s.push_str(rng.pick(&seps));
    }
    let fields = match rng.below(10) {
        0 => rng.below(6),
        _ => 3,
    };
    for i in 0..fields {
        if i > 0 {
            s.push_str(rng.pick(&seps));
        }
        s.push_str(if i == 0 {
            rng.pick(&names)
        } else {
            rng.pick(&numbers)
        });
    }
    if rng.below(4) == 0 {
        s.push_str(rng.pick(&[" ", "\r", "\t \r"]));
    }
    let mut b = s.into_bytes();
    if rng.below(30) == 0 {
        let at = rng.below(b.len() + 1);
        b.insert(at, 0xff);
    }
    b
}

const LINE_SCRIPT: &str = r#"
r = protocols.MetricLineReceiver()
r.peerName = 'peer'
r.resetTimeout = lambda: None
for line in sys.stdin:
    data = bytes.fromhex(line.strip()) if line.strip() != '-' else b''
    out.clear()
    try:
        r.lineReceived(data)
    except Exception as e:
        out.append('E:' + type(e).__name__)
    print(' '.join(out) or 'S')
"#;

#[test]
fn line_parsing_agrees_with_carbons_line_receiver() {
    let mut rng = Rng(0x11ee_5eed_0000_0042);
    let mut lines: Vec<Vec<u8>> = [
        &b"a.b 1 2"[..],
        b"  a.b\t1e3   100.5 \r",
        b"a 1_000 -1",
        b"a 1 -1.9",
        b"a 1 -0.5",
        b"a nan 2",
        b"a nan inf",
        b"a 1 inf",
        b"a 1 nan",
        b"a\xc2\xa01 5",
        b"a\x1c1\x1f5",
        b"a 1",
        b"",
        b"   ",
        b"a 1 2 3",
        b"a\xff 1 2",
        b"a 0x10 1",
        "ü ١ 5".as_bytes(),
    ]
    .iter()
    .map(|l| l.to_vec())
    .collect();
    lines.extend((0..3000).map(|_| random_line(&mut rng)));
    let input: String = lines
        .iter()
        .map(|l| if l.is_empty() { "-\n".into() } else { hex(l) + "\n" })
        .collect();
    let out = run_python(&format!("{CARBON_HARNESS}\n{LINE_SCRIPT}"), &input);
    let answers: Vec<&str> = out.lines().collect();
    assert_eq!(answers.len(), lines.len());
    let mut failures = Vec::new();
    let mut points = 0;
    for (line, want) in lines.iter().zip(answers) {
        let ours = match parse_line(line, NOW) {
            Ok(p) => {
                points += 1;
                points_token(p.name, p.timestamp, p.value)
            }
            Err(e) => match e.carbon_action() {
                CarbonAction::SkipLogged => "L".into(),
                CarbonAction::SkipSilently => "S".into(),
                CarbonAction::DropConnection => "E".into(),
            },
        };
        let want_kind = if want.starts_with("E:") { "E" } else { want };
        if ours != want_kind {
            failures.push(format!(
                "{:?}: carbon {want}, ours {ours}",
                String::from_utf8_lossy(line)
            ));
        }
    }
    assert_agree(&failures);
    assert!(points > 300, "only {points} lines gave points");
}

const UDP_SCRIPT: &str = r#"
r = protocols.MetricDatagramReceiver()
r.resetTimeout = lambda: None
for line in sys.stdin:
    data = bytes.fromhex(line.strip()) if line.strip() != '-' else b''
    out.clear()
    try:
        r.datagramReceived(data, ('10.0.0.1', 2003))
    except Exception as e:
        out.append('E:' + type(e).__name__)
    print(' '.join(out) or 'S')
"#;

#[test]
fn datagrams_agree_with_carbons_udp_receiver() {
    let mut rng = Rng(0x0d9a_0000_7777_0003);
    let breaks = [
        "\n", "\r\n", "\r", "\u{b}", "\u{c}", "\u{1c}", "\u{1e}", "\u{85}", "\u{2028}", "\n\n",
    ];
    let mut datagrams: Vec<Vec<u8>> = vec![b"a 1 2\nb 1 nan\nc 3 4".to_vec(), b"a 1 inf\nb 1 2".to_vec()];
    for _ in 0..1500 {
        let mut d = Vec::new();
        for i in 0..1 + rng.below(5) {
            if i > 0 {
                d.extend_from_slice(rng.pick(&breaks).as_bytes());
            }
            d.extend(random_line(&mut rng));
        }
        datagrams.push(d);
    }
    let input: String = datagrams
        .iter()
        .map(|d| if d.is_empty() { "-\n".into() } else { hex(d) + "\n" })
        .collect();
    let out = run_python(&format!("{CARBON_HARNESS}\n{UDP_SCRIPT}"), &input);
    assert_eq!(out.lines().count(), datagrams.len());
    let mut failures = Vec::new();
    let (mut points, mut lost) = (0, 0);
    for (d, want) in datagrams.iter().zip(out.lines()) {
        let mut toks: Vec<String> = Vec::new();
        match datagram_lines(d) {
            Err(_) => toks.push("E".into()),
            Ok(lines) => {
                for line in lines {
                    match parse_line_str(line, NOW) {
                        Ok(p) => toks.push(points_token(p.name, p.timestamp, p.value)),
                        Err(e) => match e.carbon_udp_action() {
                            CarbonAction::SkipLogged => toks.push("L".into()),
                            CarbonAction::SkipSilently => {}
                            CarbonAction::DropConnection => {
                                toks.push("E".into());
                                break;
                            }
                        },
                    }
                }
            }
        }
        points += toks.iter().filter(|t| t.starts_with("P:")).count();
        lost += usize::from(toks.last().is_some_and(|t| t == "E"));
        let ours = if toks.is_empty() {
            "S".to_string()
        } else {
            toks.join(" ")
        };
        let want: Vec<&str> = want
            .split(' ')
            .map(|t| if t.starts_with("E:") { "E" } else { t })
            .collect();
        if ours != want.join(" ") {
            failures.push(format!(
                "{:?}: carbon {want:?}\n   ours {ours}",
                String::from_utf8_lossy(d)
            ));
        }
    }
    assert_agree(&failures);
    assert!(
        points > 300 && lost > 10,
        "weak corpus: {points} points, {lost} lost"
    );
}

const LISTED_SCRIPT: &str = r#"
import re
from carbon import instrumentation
from carbon.regexlist import BlackList, WhiteList
BlackList.regex_list = [re.compile(r'^black\.')]
WhiteList.regex_list = [re.compile(r'^ok\.'), re.compile(r'^black\.')]
instrumentation.increment = lambda k, v=1: out.append({'blacklistMatches': 'B', 'whitelistRejects': 'W'}[k])
line = protocols.MetricLineReceiver()
pick = protocols.MetricPickleReceiver()
for r in (line, pick):
    r.peerName = 'peer'
    r.resetTimeout = lambda: None
pick.unpickler = protocols.get_unpickler(insecure=False)
def answer(f, data):
    out.clear()
    try:
        f(data)
    except Exception as e:
        out.append('E:' + type(e).__name__)
    print(data.hex(), ' '.join(out) or 'S')
for name in ['black.a', 'other.a', 'ok.a']:
    for value, ts in [('nan', '100'), ('1', 'inf'), ('1', '-inf'), ('1', 'nan'), ('nan', 'nan'),
                      ('x', '100'), ('1', 'x'), ('1', '-1'), ('1', '100')]:
        answer(line.lineReceived, ('%s %s %s' % (name, value, ts)).encode())
    for ts, value in [(100, float('nan')), (float('inf'), 1), (float('nan'), 1), (100, 'x'),
                      ('x', 1), (-1, 1), (100, 2)]:
        answer(pick.stringReceived, pickle.dumps([(name, (ts, value))], protocol=2))
"#;

/// With a blacklist and a whitelist, carbon's `metricReceived` counts a listed-out name before
/// it drops a NaN value or calls `int()` on the timestamp; a line or entry that fails to split or
/// convert never reaches the lists. `listed_name` says which names a receiver must check.
#[test]
fn listed_out_names_are_counted_before_nan_and_timestamp_checks_as_carbon_does() {
    // The same lists as the script's: blacklist ^black\., whitelist ^ok\. and ^black\.
    let lists = |name: &str| {
        if name.starts_with("black.") {
            Some("B")
        } else if !name.starts_with("ok.") {
            Some("W")
        } else {
            None
        }
    };
    let action = |a: CarbonAction| match a {
        CarbonAction::SkipLogged => "L",
        CarbonAction::SkipSilently => "S",
        CarbonAction::DropConnection => "E",
    };
    let out = run_python(&format!("{CARBON_HARNESS}\n{LISTED_SCRIPT}"), "");
    let (mut failures, mut counted) = (Vec::new(), 0);
    for row in out.lines() {
        let (data, want) = row.split_once(' ').expect("two columns");
        let want = if want.starts_with("E:") { "E" } else { want };
        let data = unhex(data);
        let ours = if data.starts_with(b"\x80") {
            let entries = decode_points(&data, NOW, &Limits::default()).expect("a pickle");
            let [entry] = &entries[..] else {
                panic!("one entry")
            };
            match entry {
                Ok(p) => {
                    lists(&p.name).map_or_else(|| points_token(&p.name, p.timestamp, p.value), String::from)
                }
                Err(e) => match e.listed_name().and_then(lists) {
                    Some(list) => list.into(),
                    None => action(e.carbon_action()).into(),
                },
            }
        } else {
            match parse_line(&data, NOW) {
                Ok(p) => {
                    lists(p.name).map_or_else(|| points_token(p.name, p.timestamp, p.value), String::from)
                }
                Err(e) => match listed_name(&data, &e).and_then(lists) {
                    Some(list) => list.into(),
                    None => action(e.carbon_action()).into(),
                },
            }
        };
        counted += usize::from(want == "B" || want == "W");
        if ours != want {
            failures.push(format!(
                "{:?}: carbon {want}, ours {ours}",
                String::from_utf8_lossy(&data)
            ));
        }
    }
    assert_agree(&failures);
    assert!(counted > 20, "weak corpus: {counted} counted by the lists");
}

const PICKLE_SCRIPT: &str = r#"
r = protocols.MetricPickleReceiver()
r.peerName = 'peer'
r.resetTimeout = lambda: None
r.unpickler = protocols.get_unpickler(insecure=False)
objs = [
    [('a.b', (1700000000, 1.5)), ('c', (1700000000.0, -1))],
    [('a', (-1, 2)), ('b', ('12', '3_0')), ('c', '12'), ('d', b'12'), ('e', (None, 1)),
     ('f', (1, float('nan'))), ('g', (1, 2, 3)), ('h', (1,)), 'xy', 5, {'j': None, (7, 8): None},
     ['k', [1, 2]], ('m', (1, 2)), ('v', (-1.5, 3)), ('\u00fc', ('\u0661', 2)), ('t', (True, False)),
     ('u', (1, 'x')), ('w', (2**70, 1)), ('y', (' 5 ', b' 6 '))],
    [('l', (2**2000, 1)), ('after', (1, 1))],
    [('n', (float('inf'), 1)), ('o', (1, 1))],
    [('p', (float('nan'), 1)), ('o', (1, 1))],
    [(b'q', (1, 1)), ('r', (1, 1))],
    [(5, (1, 1))], [(b'q', ('x', 1))],
    'abc', b'ab', 5, None, {'a': 1}, (('s', (1, 2)),), set(), frozenset([('z', (1, 2))]), [],
]
cases = [pickle.dumps(o, protocol=p) for o in objs for p in range(6)]
cases += [
    b"(lp0\n(S'a.b'\np1\n(I100\nF1.5\ntp2\ntp3\na.",
    b"\x80\x02]q\x00U\x03a.bq\x01K\x01G?\xf8\x00\x00\x00\x00\x00\x00\x86\x86q\x02a.",
    b"(lp0\n(S'\xff'\np1\n(I100\nF1.5\ntp2\ntp3\na.",
    b"cos\nsystem\n(S'echo hi'\ntR.", b"garbage", b"",
]
for data in cases:
    out.clear()
    try:
        r.stringReceived(data)
    except Exception as e:
        out.append('E:' + type(e).__name__)
    print(data.hex() or '-', ' '.join(out) or 'S')
"#;

#[test]
fn pickle_batches_agree_with_carbons_pickle_receiver() {
    let out = run_python(&format!("{CARBON_HARNESS}\n{PICKLE_SCRIPT}"), "");
    let mut failures = Vec::new();
    let mut cases = 0;
    for line in out.lines() {
        let (data, want) = line.split_once(' ').expect("two columns");
        let data = if data == "-" { Vec::new() } else { unhex(data) };
        let want: Vec<&str> = want
            .split(' ')
            .map(|t| if t.starts_with("E:") { "E" } else { t })
            .collect();
        let ours: Vec<String> = match decode_points(&data, NOW, &Limits::default()) {
            Err(PointsError::NotIterable) => vec!["E".into()],
            Err(PointsError::Pickle(_)) => vec!["I".into()],
            Ok(entries) => {
                let mut toks = Vec::new();
                for e in entries {
                    match e {
                        Ok(p) => toks.push(points_token(&p.name, p.timestamp, p.value)),
                        Err(e) => match e.carbon_action() {
                            CarbonAction::SkipLogged => toks.push("L".into()),
                            CarbonAction::SkipSilently => {}
                            CarbonAction::DropConnection => {
                                toks.push("E".into());
                                break;
                            }
                        },
                    }
                }
                if toks.is_empty() { vec!["S".into()] } else { toks }
            }
        };
        if ours != want {
            failures.push(format!("{}: carbon {want:?}\n   ours {ours:?}", hex(&data)));
        }
        cases += 1;
    }
    assert_agree(&failures);
    assert!(cases > 100, "only {cases} cases");
}

const CARBONLINK_SCRIPT: &str = r#"
from carbon.cache import MetricCache
replies = []
class T:
    def write(self, d): replies.append(d)
h = protocols.CacheManagementHandler()
h.transport = T()
h.unpickler = protocols.get_unpickler(insecure=False)
h.peerAddr = 'x'
c = MetricCache()
c.store('a.b', (10.0, 1.5)); c.store('a.b', (20.0, 2.5)); c.store('x.y', (30.0, -1.0))
# Exactly how graphite-web's CarbonLinkPool builds its requests (CARBONLINK_PICKLE_PROTOCOL=-1).
reqs = [dict(type='cache-query', metric='a.b'), dict(type='cache-query', metric='nope'),
        dict(type='cache-query', metric='x.y'),
        dict(type='cache-query-bulk', metrics=['a.b', 'x.y', 'nope', 'a.b']),
        dict(type='bogus'), dict(type=5), dict(type=1.5), dict(type=None), dict(type=b'x'),
        dict(type=1e16), dict(type=('t',)), dict(type=('a', 'b')), dict(type=()), dict(type='cache-query ', metric='a.b')]
for p in (-1, 2, 3, 4, 0):
    for req in reqs:
        data = pickle.dumps(req, protocol=p)
        replies.clear()
        try:
            h.stringReceived(data)
            print(data.hex(), canon(pickle.loads(replies[0][4:])))
        except Exception as e:
            print(data.hex(), 'E:' + type(e).__name__)
"#;

#[test]
fn carbonlink_replies_agree_with_carbons_cache_management_handler() {
    let out = run_python(&format!("{CARBON_HARNESS}\n{CARBONLINK_SCRIPT}"), "");
    let cache = |m: &str| -> Vec<(f64, f64)> {
        match m {
            "a.b" => vec![(10.0, 1.5), (20.0, 2.5)],
            "x.y" => vec![(30.0, -1.0)],
            _ => vec![],
        }
    };
    let mut n = 0;
    for line in out.lines() {
        let (data, want) = line.split_once(' ').expect("two columns");
        let decoded = decode_request(&unhex(data), &Limits::default());
        n += 1;
        if want.starts_with("E:") {
            // Carbon raised (and would drop the connection); we must refuse too.
            assert!(decoded.is_err(), "carbon raised {want}, we decoded {decoded:?}");
            continue;
        }
        let req = decoded.expect("request decodes");
        let reply = match &req {
            Request::CacheQuery { metric } => Reply::Datapoints(cache(metric)),
            Request::CacheQueryBulk { metrics } => {
                let mut by: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
                for m in metrics {
                    if !by.iter().any(|(k, _)| k == m) {
                        by.push((m.clone(), cache(m)));
                    }
                }
                Reply::DatapointsByMetric(by)
            }
            Request::Unknown { kind } => Reply::invalid_type(kind),
            other => panic!("unexpected request {other:?}"),
        };
        let got = loads(&reply.encode()).expect("our reply decodes");
        assert_eq!(canon(&got), want, "request {req:?}");
    }
    assert_eq!(n, 70);
}

const TAGS_SCRIPT: &str = r#"
from carbon.util import TaggedSeries
for line in sys.stdin:
    name = bytes.fromhex(line.strip()).decode('utf-8')
    try:
        path = TaggedSeries.parse(name).path
    except Exception:
        path = None
    norm = path if path is not None else name
    print('ERR' if path is None else path.encode().hex(),
          TaggedSeries.encode(norm, '/', True).encode().hex(),
          TaggedSeries.encode(norm, '/', False).encode().hex())
"#;

#[test]
fn tagged_names_agree_with_carbons_tagged_series() {
    let mut rng = Rng(0x7a65_0000_1111_2222);
    let tokens = [
        "a",
        "b.c",
        ";",
        "=",
        "~",
        "!",
        "^",
        "{",
        "}",
        "\"",
        "\\",
        ",",
        ":",
        " ",
        "é",
        "name",
        "x=1",
        ";t=v",
        ";b=2",
        ";a=1",
        "{t=\"v\"}",
        "\\\"",
        "\n",
        ".",
        "t=\"v\"",
        "\",",
        "a.b=2",
    ];
    let mut names: Vec<String> = [
        "a.b",
        "~a.b",
        "a;b=1;a=2",
        "a;a=1;a.b=2",
        "a;name=zz;b=1",
        r#"a{b="1",a="2"}"#,
        r#"a{b="x\"y",c="p\\q"}"#,
        r#"a{b="1":,c="2"}"#,
        r#"a{b="1"}x"}"#,
        "some.metric;tag1=value2;tag2=value.2",
        ".lead.dot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for _ in 0..4000 {
        let n = 1 + rng.below(8);
        let mut s = String::new();
        if rng.below(3) == 0 {
            s.push_str("m.x");
        }
        for _ in 0..n {
            s.push_str(rng.pick(&tokens));
        }
        if rng.below(3) == 0 {
            s.push_str("\"}");
        }
        names.push(s);
    }
    let input: String = names.iter().map(|n| hex(n.as_bytes()) + "\n").collect();
    let out = run_python(TAGS_SCRIPT, &input);
    let mut failures = Vec::new();
    let mut parsed = 0;
    for (name, line) in names.iter().zip(out.lines()) {
        let cols: Vec<&str> = line.split(' ').collect();
        let path = TaggedSeries::parse(name).map(|s| s.path()).ok();
        let ours_path = path
            .as_ref()
            .map(|p| hex(p.as_bytes()))
            .unwrap_or_else(|| "ERR".into());
        let norm = path.clone().unwrap_or_else(|| name.clone());
        let ours = [
            ours_path,
            hex(encode(&norm, '/', true).as_bytes()),
            hex(encode(&norm, '/', false).as_bytes()),
        ];
        if path.is_some() {
            parsed += 1;
        }
        if cols != ours {
            failures.push(format!("{name:?}: carbon {cols:?} ours {ours:?}"));
        }
    }
    assert_eq!(out.lines().count(), names.len());
    assert_agree(&failures);
    assert!(parsed > 500, "only {parsed} names parsed");
}

/// Fails with every case where carbon and we disagree.
fn assert_agree(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
