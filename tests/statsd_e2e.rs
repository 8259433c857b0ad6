//! `carbide statsd` end to end: the same packets to it and to the real etsy statsd 0.9.0 (node),
//! both flushing to graphite listeners this test runs; and the proxy mode in front of UDP
//! backends, losing no line.
//!
//! Both servers flush every 1000 ms aligned to whole seconds of the wall clock (statsd's
//! `getFlushTimeout`), so after both flushed the same second the test sends everything to both
//! and compares the next flush of each. Values not compared (names still are): the ms timings
//! (`processing_time`, `graphiteStats.*`), which measure the clock, not the data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HINT: &str = "run scripts/install-test-deps.sh (it installs node and statsd@0.9.0)";

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn statsd_dir() -> PathBuf {
    let oracles = std::env::var_os("CARBIDE_ORACLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracles"));
    let dir = oracles.join("statsd/node_modules/statsd");
    assert!(
        dir.join("stats.js").is_file(),
        "etsy statsd 0.9.0 is missing at {}: {HINT}",
        dir.display()
    );
    dir
}

use carbide_testkit::free_tcp_udp_port as free_port;

/// A graphite listener: each connection's payload on the channel.
fn capture() -> (u16, mpsc::Receiver<Vec<u8>>) {
    let l = carbide_testkit::listen();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let mut s = Vec::new();
            let _ = c.read_to_end(&mut s);
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

struct Peer {
    _proc: Kill,
    udp: SocketAddr,
    tcp: SocketAddr,
    flushes: mpsc::Receiver<Vec<u8>>,
    pickle: bool,
}

fn config(graphite: u16, port: u16, mgmt: u16, pickle: bool) -> serde_json::Value {
    serde_json::json!({
        "graphiteHost": "127.0.0.1",
        "graphitePort": if pickle { 9 } else { graphite },
        "graphitePicklePort": if pickle { graphite } else { 9 },
        "graphiteProtocol": if pickle { "pickle" } else { "text" },
        "servers": [
            {"server": "./servers/udp", "address": "127.0.0.1", "port": port},
            {"server": "./servers/tcp", "address": "127.0.0.1", "port": port},
        ],
        "mgmt_address": "127.0.0.1",
        "mgmt_port": mgmt,
        "flushInterval": 1000,
        "percentThreshold": [90, 50],
        "histogram": [{"metric": "h", "bins": [10, 100, "inf"]}],
        "automaticConfigReload": false,
    })
}

fn start(etsy: bool, dir: &Path, pickle: bool) -> Peer {
    let (gport, flushes) = capture();
    let port = free_port();
    let conf = config(gport, port, free_port(), pickle);
    let name = match (etsy, pickle) {
        (true, false) => "etsy.js",
        (true, true) => "etsy-pickle.js",
        (false, false) => "carbide.json",
        (false, true) => "carbide-pickle.json",
    };
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&conf).unwrap()).unwrap();
    let child = if etsy {
        let sd = statsd_dir();
        Command::new("node")
            .arg(sd.join("stats.js"))
            .arg(&path)
            .current_dir(&sd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node ({e}): {HINT}"))
    } else {
        Command::new(env!("CARGO_BIN_EXE_carbide"))
            .args(["statsd", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    Peer {
        _proc: Kill(child),
        udp: addr,
        tcp: addr,
        flushes,
        pickle,
    }
}

/// One flush: its timestamp and each name's value.
struct Flushed {
    ts: Option<i64>,
    values: BTreeMap<String, String>,
}

fn parse_text(payload: &[u8]) -> Flushed {
    let payload = String::from_utf8_lossy(payload);
    let mut ts = None;
    let values = payload
        .lines()
        .filter_map(|l| {
            let mut p = l.rsplitn(3, ' ');
            let t = p.next()?;
            ts = ts.or_else(|| t.parse().ok());
            let v = p.next()?;
            Some((p.next()?.to_string(), v.to_string()))
        })
        .collect();
    Flushed { ts, values }
}

/// Pickle frames as carbon's pickle receiver reads them: each `(name, (ts, value))` through
/// `float()`; values are compared as the floats carbon would store (`{:?}` of the f64).
fn parse_pickle(payload: &[u8]) -> Flushed {
    use carbide_protocol::framing::{PICKLE_MAX_FRAME, frames};
    use carbide_protocol::pickle::{LegacyStrings, Limits, Value, loads_with};
    let mut ts = None;
    let mut values = BTreeMap::new();
    let mut it = frames(payload, usize::MAX);
    for frame in it.by_ref() {
        let frame = frame.unwrap();
        assert!(
            frame.len() <= PICKLE_MAX_FRAME,
            "a frame carbon refuses: {} bytes",
            frame.len()
        );
        let v = loads_with(frame, &Limits::default(), LegacyStrings::Utf8).unwrap();
        let Value::List(items) = v else {
            panic!("pickle payload is not a list: {v:?}")
        };
        for item in items {
            let Value::Tuple(t) = item else { panic!("{item:?}") };
            let [Value::Str(name), Value::Tuple(p)] = t.as_slice() else {
                panic!("{t:?}")
            };
            let [t, v] = p.as_slice() else { panic!("{p:?}") };
            let t = t.to_py_float().unwrap();
            assert_eq!(t.fract(), 0.0, "{name}: timestamp {t}");
            ts = ts.or(Some(t as i64));
            let v = v.to_py_float().unwrap();
            values.insert(name.clone(), format!("{v:?}"));
        }
    }
    assert_eq!(it.consumed(), payload.len(), "trailing bytes after the frames");
    Flushed { ts, values }
}

fn timing(name: &str) -> bool {
    name.contains(".processing_time") || name.contains(".graphiteStats.")
}

fn next_flush(p: &Peer, who: &str) -> Flushed {
    let payload = p
        .flushes
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{who} did not flush within 10 s"));
    if p.pickle {
        parse_pickle(&payload)
    } else {
        parse_text(&payload)
    }
}

/// Waits until both flushed the same timestamp.
fn align(a: &Peer, b: &Peer) {
    let ts = |f: &Flushed| f.ts;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut x, mut y) = (next_flush(a, "etsy statsd"), next_flush(b, "carbide statsd"));
    loop {
        assert!(Instant::now() < deadline, "flushes never aligned");
        match ts(&x).cmp(&ts(&y)) {
            std::cmp::Ordering::Equal => return,
            std::cmp::Ordering::Less => x = next_flush(a, "etsy statsd"),
            std::cmp::Ordering::Greater => y = next_flush(b, "carbide statsd"),
        }
    }
}

fn packets() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"api.hits:1|c\napi.hits:2|c|@0.1\napi.hits:-3|c".to_vec(),
        b"api.time:320|ms\napi.time:10|ms|@0.5\napi.time:15.5|ms".to_vec(),
        b"h:5|ms\nh:50|ms\nh:500|ms\nh:1e3|ms".to_vec(),
        b"mem:100|g\nmem:+5|g\nmem:-20|g\nneg:-5|g".to_vec(),
        b"users:alice|s\nusers:bob|s\nusers:alice|s".to_vec(),
        b"bad\n:1|c\nx:1|q\nx:abc|c\nrate:1|c|@0\nrate2:1|c|@2\n".to_vec(),
        b"we ird/key!:1|c\nmulti:1|c:2|c".to_vec(),
        vec![0xff, 0xfe, b':', b'1', b'|', b'c', b'\n', 0, 1, 2],
    ];
    for i in 0..200 {
        v.push(format!("many.k{i}:{i}|c\nmany.t{}:{i}|ms", i % 7).into_bytes());
    }
    v
}

fn send_all(p: &Peer, udp: &UdpSocket) {
    for (i, pkt) in packets().iter().enumerate() {
        udp.send_to(pkt, p.udp).unwrap();
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let mut tcp = TcpStream::connect(p.tcp).unwrap();
    tcp.write_all(b"tcp.c:4|c\ntcp.t:7|ms\ntcp.partial:1").unwrap();
    tcp.write_all(b"|c\n").unwrap();
}

#[test]
fn flushes_match_etsy_statsd() {
    flushes_match(false);
}

/// graphiteProtocol "pickle": both pickle to a listener here; decoded as carbon decodes them, the
/// names, timestamps and values are the same.
#[test]
fn pickle_flushes_match_etsy_statsd() {
    flushes_match(true);
}

fn flushes_match(pickle: bool) {
    let dir = tempfile::tempdir().unwrap();
    let etsy = start(true, dir.path(), pickle);
    let ours = start(false, dir.path(), pickle);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut last = String::new();
    for attempt in 0..3 {
        align(&etsy, &ours);
        // Send early in the interval, to both.
        std::thread::sleep(Duration::from_millis(150));
        send_all(&etsy, &udp);
        send_all(&ours, &udp);
        let a = next_flush(&etsy, "etsy statsd");
        let b = next_flush(&ours, "carbide statsd");
        assert_eq!(a.ts, b.ts, "flush timestamps differ");
        let (a, b) = (a.values, b.values);
        let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b), "flushed names differ");
        let packets = "stats.statsd.packets_received";
        if a.get(packets) != b.get(packets) {
            last = format!(
                "attempt {attempt}: packets {:?} vs {:?}",
                a.get(packets),
                b.get(packets)
            );
            continue; // a packet slipped into another interval on a loaded machine
        }
        assert!(a.len() > 400, "too few lines: {}", a.len());
        for (name, v) in &a {
            if !timing(name) {
                assert_eq!(Some(v), b.get(name), "{name}");
            }
        }
        return;
    }
    panic!("packets kept missing the interval: {last}");
}

#[test]
fn proxy_loses_no_line() {
    let backends: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let list: Vec<String> = backends
        .iter()
        .map(|b| b.local_addr().unwrap().to_string())
        .collect();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_carbide"))
        .args([
            "statsd",
            "--port",
            &port.to_string(),
            "--packet-len",
            "1400",
            "--proxy",
        ])
        .arg(list.join(","))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = [0u8; 32];
    let _ = child.stdout.as_mut().unwrap().read(&mut banner);
    let _kill = Kill(child);
    let (tx, rx) = mpsc::channel::<(usize, Vec<u8>)>();
    for (i, b) in backends.into_iter().enumerate() {
        let tx = tx.clone();
        b.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = b.recv(&mut buf) {
                assert!(n <= 1401, "packet of {n} bytes");
                if tx.send((i, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let total = 20_000;
    let mut sent = Vec::new();
    for chunk in 0..total / 40 {
        let lines: Vec<String> = (0..40)
            .map(|i| format!("proxy.k{}:1|c", chunk * 40 + i))
            .collect();
        sender
            .send_to(lines.join("\n").as_bytes(), ("127.0.0.1", port))
            .unwrap();
        sent.extend(lines);
        if chunk % 10 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    let mut processed = 0u64;
    while let Ok((backend, data)) = rx.recv_timeout(Duration::from_secs(5)) {
        for line in String::from_utf8(data).unwrap().lines() {
            if let Some(n) = line.strip_prefix("statsrelay.statsProcessed:") {
                processed += n.trim_end_matches("|c").parse::<u64>().unwrap();
                continue;
            }
            assert!(got.insert(line.to_string(), backend).is_none(), "{line} twice");
        }
        if got.len() == sent.len() && processed == total as u64 {
            break;
        }
    }
    assert_eq!(got.len(), sent.len(), "lines lost between proxy and backends");
    assert_eq!(processed, total as u64);
    // Every key went to the backend its hash names (FNV-1a-64 + jump, as StatsRelay).
    let relay = carbide_statsd_server::carbide_statsd::Relay::new(3, 1400, "statsrelay", None).unwrap();
    for (line, backend) in &got {
        let key = line.split(':').next().unwrap();
        assert_eq!(relay.backend_for(key.as_bytes()), *backend, "{line}");
    }
}

/// SIGTERM right after the last packet: every packet the kernel accepted is in the final flush.
/// UDP datagrams still queued on the sockets and TCP lines still unread are read after the signal,
/// before the final flush; a periodic flush (60 s interval) may happen meanwhile, so the counts
/// are summed over every flush until the process is gone.
#[test]
fn sigterm_loses_no_received_packet() {
    let (gport, flushes) = capture();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("carbide.json");
    let conf = serde_json::json!({
        "graphiteHost": "127.0.0.1", "graphitePort": gport, "address": "127.0.0.1", "port": port,
        "mgmt_port": free_port(), "flushInterval": 60000, "carbideReceivers": 2,
    });
    std::fs::write(&path, conf.to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_carbide"))
        .args(["statsd", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"statsd listening");
    let pid = child.id();
    let child = Kill(child);

    let datagrams = 20_000u64;
    let tcp_lines = 5_000u64;
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.connect(("127.0.0.1", port)).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for i in 0..datagrams {
        udp.send(format!("bye.udp:1|c\nbye.t:{}|ms", i % 100).as_bytes())
            .unwrap();
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let lines = "bye.tcp:1|c\n".repeat(tcp_lines as usize);
    tcp.write_all(lines.as_bytes()).unwrap();
    // Datagrams the kernel itself refused (a full receive buffer on a loaded machine) were never
    // accepted; loopback drops at send time, so the count is final now.
    let kernel_drops = udp_drops(port);
    assert!(
        kernel_drops < datagrams / 2,
        "{kernel_drops} datagrams dropped by the kernel"
    );
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            assert!(st.success(), "carbide statsd exited with {st}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "carbide statsd did not exit within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(tcp);
    let mut sum: BTreeMap<String, f64> = BTreeMap::new();
    let mut n = 0;
    while let Ok(payload) = flushes.recv_timeout(Duration::from_secs(2)) {
        n += 1;
        for (name, v) in parse_text(&payload).values {
            *sum.entry(name).or_default() += v.parse::<f64>().unwrap_or(0.0);
        }
    }
    assert!(n >= 1, "no final flush");
    let get = |k: &str| sum.get(k).copied().unwrap_or(0.0);
    let accepted = (datagrams - kernel_drops) as f64;
    assert_eq!(get("stats_counts.bye.udp"), accepted, "UDP counts lost");
    assert_eq!(get("stats.timers.bye.t.count"), accepted, "timer samples lost");
    assert_eq!(get("stats_counts.bye.tcp"), tcp_lines as f64, "TCP lines lost");
}

/// The kernel's drop count over every UDP socket bound to `port` (/proc/net/udp's last column).
fn udp_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = f.get(1)?;
            let p = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (p == port).then(|| f.last()?.parse::<u64>().ok())?
        })
        .sum()
}
