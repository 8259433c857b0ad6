//! The server end to end on loopback: UDP, TCP, the console and the flush to a graphite
//! listener run by the test; the console's inspect output compared with node's `util.inspect`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use carbide_statsd_server::{ServerOptions, StatsdServer};

fn options(json: &str) -> ServerOptions {
    let mut o = ServerOptions::from_json(json).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    o.udp = Some(any);
    o.tcp = Some(any);
    o.mgmt = Some(any);
    o.receivers = 2;
    o
}

/// A graphite listener: every connection's payload, whole, on the channel.
fn capture() -> (SocketAddr, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut s = String::new();
            let _ = c.read_to_string(&mut s);
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

fn admin(addr: SocketAddr, cmd: &str, until: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(cmd.as_bytes()).unwrap();
    let mut out = String::new();
    let mut buf = [0u8; 65536];
    while !out.ends_with(until) {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "console closed: {out:?}");
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    out
}

fn value<'a>(payload: &'a str, name: &str) -> Option<&'a str> {
    payload.lines().find_map(|l| {
        let mut p = l.split(' ');
        (p.next() == Some(name)).then(|| p.next().unwrap_or(""))
    })
}

/// Waits for a flush in which `name` has a value.
fn flush_with(rx: &mpsc::Receiver<String>, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(p) = rx.recv_timeout(Duration::from_millis(200))
            && value(&p, name).is_some_and(|v| v != "0")
        {
            return p;
        }
    }
    panic!("no flush carried {name}");
}

#[test]
fn udp_tcp_flush_to_graphite() {
    let (graphite, rx) = capture();
    let mut o = options(r#"{"flushInterval": 300}"#);
    o.graphite = vec![graphite.to_string()];
    let server = StatsdServer::start(o, None).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"a:1|c\na:2|c|@0.5\ng:5|g", server.udp_addr().unwrap())
        .unwrap();
    let mut tcp = TcpStream::connect(server.tcp_addr().unwrap()).unwrap();
    tcp.write_all(b"t:10|ms\nt:20|").unwrap();
    tcp.write_all(b"ms\n").unwrap();
    drop(tcp);
    let p = flush_with(&rx, "stats.timers.t.count");
    let p = if value(&p, "stats_counts.a").is_some_and(|v| v != "0") {
        p
    } else {
        flush_with(&rx, "stats_counts.a")
    };
    assert_eq!(value(&p, "stats_counts.a"), Some("5"), "{p}");
    assert_eq!(value(&p, "stats.gauges.g"), Some("5"), "{p}");
    let p2 = if value(&p, "stats.timers.t.upper").is_some() {
        p
    } else {
        flush_with(&rx, "stats.timers.t.count")
    };
    assert_eq!(value(&p2, "stats.timers.t.upper"), Some("20"), "{p2}");
    assert_eq!(value(&p2, "stats.timers.t.count"), Some("2"), "{p2}");
    server.shutdown();
}

#[test]
fn console_commands() {
    let server =
        StatsdServer::start(options(r#"{"flushInterval": 600000, "foo": {"bar": 1}}"#), None).unwrap();
    let mgmt = server.mgmt_addr().unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(
        b"x.a:1|c\nx.b:2|c\ny:3|c\nt:1|ms\nt:2|ms\ng:-0|g\nbad line",
        server.udp_addr().unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.with_engine(|e| e.counters().count()) < 6 {
        assert!(Instant::now() < deadline, "packet not received");
        std::thread::sleep(Duration::from_millis(20));
    }
    let counters = admin(mgmt, "counters", "END\n\n");
    assert_eq!(
        counters,
        "{\n  'statsd.bad_lines_seen': 1,\n  'statsd.packets_received': 1,\n  'statsd.metrics_received': 7,\n  'x.a': 1,\n  'x.b': 2,\n  y: 3\n}\nEND\n\n"
    );
    assert_eq!(admin(mgmt, "timers", "END\n\n"), "{ t: [ 1, 2 ] }\nEND\n\n");
    assert_eq!(admin(mgmt, "gauges", "END\n\n"), "{ g: -0 }\nEND\n\n");
    assert_eq!(
        admin(mgmt, "delcounters x.* nope", "END\n\n"),
        "deleted: x.a\ndeleted: x.b\nmetric nope not found\nEND\n\n"
    );
    assert_eq!(admin(mgmt, "health", "\n"), "health: up\n");
    assert_eq!(admin(mgmt, "health down", "\n"), "health: down\n");
    assert_eq!(admin(mgmt, "health", "\n"), "health: down\n");
    assert_eq!(admin(mgmt, "nonsense", "\n"), "ERROR\n");
    let stats = admin(mgmt, "stats", "END\n\n");
    let names: Vec<&str> = stats
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        names,
        [
            "uptime",
            "messages.last_msg_seen",
            "messages.bad_lines_seen",
            "graphite.last_flush",
            "graphite.last_exception",
            "graphite.flush_time",
            "graphite.flush_length",
            "END"
        ]
    );
    assert!(stats.contains("messages.bad_lines_seen: 1\n"), "{stats}");
    let config = admin(mgmt, "config", "foo > bar: 1\n");
    assert!(config.contains("flushInterval: 600000\n"), "{config}");
    // quit closes the connection.
    let mut c = TcpStream::connect(mgmt).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"quit").unwrap();
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn bad_input_is_bounded() {
    let server = StatsdServer::start(
        options(r#"{"flushInterval": 600000, "carbideMaxKeys": 1000}"#),
        None,
    )
    .unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = server.udp_addr().unwrap();
    // Binary garbage and the largest datagram.
    let garbage: Vec<u8> = (0..60_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    udp.send_to(&garbage, to).unwrap();
    // Sample rates 0 and above 1: statsd's own checks decide (both are bad lines).
    udp.send_to(b"z:1|c|@0\nz:1|c|@2", to).unwrap();
    // A cardinality burst: 20 000 keys against a bound of 1000.
    for chunk in 0..200 {
        let p: String = (0..100).map(|i| format!("k{}:1|c\n", chunk * 100 + i)).collect();
        udp.send_to(p.as_bytes(), to).unwrap();
        if chunk % 20 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // A TCP line that never ends is cut off at the limit.
    let mut tcp = TcpStream::connect(server.tcp_addr().unwrap()).unwrap();
    let big = vec![b'a'; 256 * 1024];
    for _ in 0..8 {
        if tcp.write_all(&big).is_err() {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (packets, over, keys) = server.with_engine(|e| {
            let packets = e
                .counters()
                .find(|(k, _)| *k == "statsd.packets_received")
                .map(|(_, v)| v);
            (packets, e.stats().keys_over_limit, e.counters().count())
        });
        if packets == Some(202.0) && server.tcp_overflows() == 1 {
            // 20 000 new keys, at most 1000 (the k's and possibly `z`) admitted.
            assert!((19_000..=19_001).contains(&over), "{over}");
            assert!(keys <= 1000 + 4 + 1, "{keys} keys held");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "packets {packets:?}, overflows {}",
            server.tcp_overflows()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let bad = server.with_engine(|e| e.stats().bad_lines_seen);
    assert!(bad >= 2, "{bad}");
}

/// node's util.inspect on the same objects.
#[test]
fn inspect_matches_node() {
    use carbide_statsd_server::inspect;
    let cases: Vec<Vec<(String, Vec<f64>)>> = vec![
        vec![],
        vec![("a".into(), vec![])],
        vec![("t".into(), (1..=7).map(f64::from).collect())],
        vec![
            ("t".into(), (1..=30).map(|i| f64::from(i) * 1.5).collect()),
            ("u.v".into(), vec![-0.0, 1e21, 0.1]),
        ],
        vec![("big".into(), (0..150).map(|i| f64::from(i * i)).collect())],
        vec![(
            "x".into(),
            vec![123456.789, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0],
        )],
        (0..12)
            .map(|i| (format!("key.{i}"), vec![f64::from(i)]))
            .collect(),
    ];
    for case in cases {
        let js = format!(
            "const o = {{}}; {} process.stdout.write(require('util').inspect(o) + '\\u0001' + require('util').inspect(Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v.length ? v[0] : 0]))));",
            case.iter()
                .map(|(k, v)| format!(
                    "o[{}] = [{}];",
                    serde_json::to_string(k).unwrap(),
                    v.iter()
                        .map(|x| if *x == 0.0 && x.is_sign_negative() {
                            "-0".to_string()
                        } else {
                            format!("{x:e}")
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                ))
                .collect::<String>()
        );
        let out = Command::new("node")
            .arg("-e")
            .arg(&js)
            .output()
            .unwrap_or_else(|e| panic!("node not found ({e}); run scripts/install-test-deps.sh"));
        let text = String::from_utf8(out.stdout).unwrap();
        let (arrays, numbers) = text.split_once('\u{1}').unwrap();
        let ours = inspect::arrays(case.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        assert_eq!(ours, arrays, "case {case:?}");
        let ours = inspect::numbers(
            case.iter()
                .map(|(k, v)| (k.as_str(), v.first().copied().unwrap_or(0.0))),
        );
        assert_eq!(ours, numbers, "case {case:?}");
    }
}
