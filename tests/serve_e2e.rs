//! `carbide serve` as one whole single-node Graphite: the cache, the web API and StatsD in one
//! process, started as the real binary on free loopback ports.
//!
//! - a line point is in /render within moments, and a new metric is in /metrics/find (a glob, so
//!   the index and not a disk lookup) as soon as its file is created;
//! - StatsD flushes land in the cache and so in whisper and /render;
//! - heavy renders running all the time do not stop points from being persisted, and a request
//!   over the series limit is a 400;
//! - SIGTERM makes a final StatsD flush into the cache, which is written (or dumped and replayed),
//!   so after a restart every counter and line point is there; a port flag of 0 turns a part off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache_common::{carbide_exe, free_port, free_tcp_udp_port, free_udp_port, now, send, wait_until};

/// Every port of one `carbide serve`.
#[derive(Debug, Clone, Copy)]
struct ServePorts {
    line: u16,
    pickle: u16,
    carbonlink: u16,
    admin: u16,
    web: u16,
    statsd: u16,
    statsd_admin: u16,
}

impl ServePorts {
    fn free() -> ServePorts {
        // StatsD needs the port free for both UDP and TCP.
        let statsd = free_tcp_udp_port();
        ServePorts {
            line: free_port(),
            pickle: free_port(),
            carbonlink: free_port(),
            admin: free_port(),
            web: free_port(),
            statsd,
            statsd_admin: free_port(),
        }
    }
}

/// A running `carbide serve`, SIGKILLed if a test fails before stopping it.
struct Serve {
    child: Option<Child>,
    ports: ServePorts,
    log: PathBuf,
}

impl Serve {
    fn start(data: &Path, ports: ServePorts, extra: &[&str]) -> Serve {
        // The log goes to a file beside the data (info level), shown when a test fails.
        let log = data.with_file_name(format!("serve-{}.log", ports.line));
        let child = Command::new(carbide_exe())
            .arg("serve")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--line-port={}", ports.line))
            .arg(format!("--pickle-port={}", ports.pickle))
            .arg(format!("--carbonlink-port={}", ports.carbonlink))
            .arg(format!("--admin-port={}", ports.admin))
            .arg(format!("--web-port={}", ports.web))
            .arg(format!("--statsd-port={}", ports.statsd))
            .arg(format!("--statsd-admin-port={}", ports.statsd_admin))
            .arg("--metric-interval=0")
            .args(extra)
            .env("CARBIDE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut s = Serve {
            child: Some(child),
            ports,
            log,
        };
        wait_until(Duration::from_secs(30), "carbide serve listening", || {
            if let Some(status) = s.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("carbide serve exited at start with {status}:\n{}", s.log());
            }
            TcpStream::connect(("127.0.0.1", ports.line)).is_ok()
        });
        s
    }

    /// What the server has logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status (which must be success).
    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        cache_common::terminate(&mut child, Duration::from_secs(30), "carbide serve");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// GET on loopback: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("web connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// The non-null `(ts, value)` points of one series rendered as json over `[from, until)`.
fn render(port: u16, target: &str, from: i64, until: i64) -> Vec<(i64, f64)> {
    let (status, body) = get(
        port,
        &format!("/render?target={target}&from={from}&until={until}&format=json"),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let Some(series) = v.as_array().and_then(|a| a.first()) else {
        return Vec::new();
    };
    series["datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p[1].as_i64()?, p[0].as_f64()?)))
        .collect()
}

/// The paths `/metrics/find` returns for `query`.
fn find(port: u16, query: &str) -> Vec<String> {
    let (status, body) = get(port, &format!("/metrics/find?query={query}&format=completer"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap().trim_end_matches('.').to_string())
        .collect()
}

/// Polls every 5 ms; returns how long `cond` took to hold.
fn within(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

fn statsd_udp(port: u16, payload: &str) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(payload.as_bytes(), ("127.0.0.1", port)).unwrap();
}

/// The StatsD console's answer to one command.
fn console(port: u16, command: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    writeln!(s, "{command}").unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.ends_with(b"END\n\n") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn serve_web_reads_the_cache_finds_new_metrics_and_stores_statsd() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ports = ServePorts::free();
    let serve = Serve::start(&data, ports, &["--statsd-flush-interval=1000"]);
    let p = serve.ports;
    wait_until(Duration::from_secs(30), "web API up", || {
        TcpStream::connect(("127.0.0.1", p.web)).is_ok()
    });
    assert_eq!(get(p.web, "/version"), (200, "1.1.10".to_string()));

    // A point on the line port: in /render (literal target) and in find (a glob over the index,
    // not a disk lookup) within moments.
    let t = now() - 60;
    let t = t - t % 10;
    send(p.line, format!("serve.e2e.line 7.5 {t}\n").as_bytes());
    let seen = within(Duration::from_secs(10), "the line point in /render", || {
        render(p.web, "serve.e2e.line", t - 60, t + 60) == vec![(t, 7.5)]
    });
    let found = within(Duration::from_secs(10), "the new metric in find", || {
        find(p.web, "serve.e2e.*").contains(&"serve.e2e.line".to_string())
    });
    eprintln!("line point rendered after {seen:?}, found after a further {found:?}");

    // Later points to an existing metric: each is in /render at once, whatever the writers do.
    for i in 1..=5 {
        let ts = t + 10 * i;
        send(p.line, format!("serve.e2e.line {i} {ts}\n").as_bytes());
        within(Duration::from_secs(5), "a later point in /render", || {
            render(p.web, "serve.e2e.line", t - 60, t + 120).contains(&(ts, i as f64))
        });
    }
    // The web API merges exactly what is on disk plus what is still in the cache: once written,
    // the file alone holds the same points.
    let on_disk = || {
        let path = cache_common::wsp_path(&data, "serve.e2e.line");
        carbide_whisper::file::fetch(&path, t - 60, Some(t + 120), now(), None)
            .ok()
            .flatten()
            .map(|f| {
                f.values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (f.from + i as i64 * f.step, v)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    within(Duration::from_secs(10), "the points written to whisper", || {
        on_disk().len() == 6
    });
    assert_eq!(render(p.web, "serve.e2e.line", t - 60, t + 120), on_disk());

    // StatsD: counters over UDP and TCP are flushed into the cache, then whisper and /render.
    statsd_udp(p.statsd, "serve.e2e.hits:2|c\nserve.e2e.temp:21|g");
    let mut tcp = TcpStream::connect(("127.0.0.1", p.statsd)).unwrap();
    tcp.write_all(b"serve.e2e.hits:3|c\n").unwrap();
    drop(tcp);
    let total = |v: &[(i64, f64)]| v.iter().map(|x| x.1).sum::<f64>();
    within(Duration::from_secs(15), "statsd counters in /render", || {
        total(&render(
            p.web,
            "stats_counts.serve.e2e.hits",
            now() - 120,
            now() + 60,
        )) == 5.0
    });
    within(Duration::from_secs(15), "a statsd gauge in /render", || {
        render(p.web, "stats.gauges.serve.e2e.temp", now() - 120, now() + 60)
            .iter()
            .any(|x| x.1 == 21.0)
    });
    within(Duration::from_secs(15), "statsd metrics on disk", || {
        cache_common::wsp_path(&data, "stats_counts.serve.e2e.hits").is_file()
    });
    assert!(find(p.web, "stats_counts.serve.e2e.*").contains(&"stats_counts.serve.e2e.hits".to_string()));
    drop(serve);
}

/// Sets up `n` metrics with six hours of 10 s points each, in a tree the server indexes at start.
fn heavy_tree(root: &Path, n: usize, now: i64) {
    let r = carbide_core::Retention::parse_list("10s:6h,1m:7d,10m:5y").unwrap();
    let points: Vec<(i64, f64)> = (0..2100).map(|i| (now - 10 * i, i as f64)).collect();
    for m in 0..n {
        let path = cache_common::wsp_path(root, &format!("heavy.m{m}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        carbide_whisper::file::create(&path, &r, &Default::default()).unwrap();
        carbide_whisper::file::update_many(&path, &points, now, false).unwrap();
    }
}

#[test]
fn serve_keeps_persisting_while_heavy_renders_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let t0 = now();
    heavy_tree(&data, 200, t0);
    let mut ports = ServePorts::free();
    ports.statsd = 0;
    let serve = Serve::start(
        &data,
        ports,
        &["--web-threads=2", "--max-series=150", "--writers=2"],
    );
    let p = serve.ports;
    wait_until(Duration::from_secs(30), "web API up", || {
        TcpStream::connect(("127.0.0.1", p.web)).is_ok()
    });
    // Past the series limit: a clear 400, not an out-of-memory.
    let (status, body) = get(p.web, "/render?target=heavy.*&format=json");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("150"), "{body}");

    // The same ingestion with and without heavy renders running: 100 new metrics x 50 points.
    let root = data.clone();
    let ingest = |prefix: &str| -> Duration {
        let start = Instant::now();
        let t = now() - 600;
        let t = t - t % 10;
        for m in 0..100 {
            let mut batch = String::new();
            for i in 0..50 {
                batch.push_str(&format!("{prefix}.m{m} {i} {}\n", t - 10 * i));
            }
            send(p.line, batch.as_bytes());
        }
        wait_until(Duration::from_secs(60), "every ingested point on disk", || {
            (0..100).all(|m| {
                let path = cache_common::wsp_path(&root, &format!("{prefix}.m{m}"));
                carbide_whisper::file::fetch(&path, t - 600, Some(t + 10), now(), None)
                    .ok()
                    .flatten()
                    .is_some_and(|f| f.values.iter().flatten().count() == 50)
            })
        });
        start.elapsed()
    };
    let idle = ingest("idle");
    const HEAVY: &str = "/render?target=sumSeries(movingAverage(heavy.m1*,60))&target=maxSeries(integral(heavy.m1*))&from=-6h&format=json";
    let one = Instant::now();
    let (status, body) = get(p.web, HEAVY);
    assert_eq!(status, 200, "{body}");
    let one = one.elapsed();

    // Eight clients render 111 series x 6 h with window functions without pause (more than
    // --web-threads, so some always wait), while the same points go in again.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let renders = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (stop, renders) = (stop.clone(), renders.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, body) = get(p.web, HEAVY);
                    assert_eq!(status, 200, "{body}");
                    renders.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Load established: renders are completing, and more are queued behind them.
    wait_until(Duration::from_secs(60), "heavy renders under way", || {
        renders.load(std::sync::atomic::Ordering::Relaxed) >= 2
    });
    let before = renders.load(std::sync::atomic::Ordering::Relaxed);
    let loaded = ingest("loaded");
    let during = renders.load(std::sync::atomic::Ordering::Relaxed) - before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    eprintln!(
        "5000 points on 100 new metrics persisted in {idle:?} idle, {loaded:?} under 8 looping \
         renders (one render alone: {one:?}; {during} renders finished meanwhile)"
    );
    assert!(
        loaded < Duration::from_secs(5),
        "ingestion starved by renders: {loaded:?}"
    );
    drop(serve);
}

#[test]
fn serve_sigterm_flushes_statsd_and_keeps_every_point_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ports = ServePorts::free();
    // An hour between flushes: the counters below reach the cache only by the final flush,
    // however slow a loaded machine makes this test.
    let mut serve = Serve::start(&data, ports, &["--statsd-flush-interval=3600000"]);
    let p = serve.ports;
    wait_until(Duration::from_secs(30), "statsd console up", || {
        TcpStream::connect(("127.0.0.1", p.statsd_admin)).is_ok()
    });
    for _ in 0..10 {
        statsd_udp(p.statsd, "serve.term.hits:1|c");
    }
    let mut tcp = TcpStream::connect(("127.0.0.1", p.statsd)).unwrap();
    tcp.write_all(b"serve.term.hits:5|c\nserve.term.level:42|g\n")
        .unwrap();
    drop(tcp);
    wait_until(Duration::from_secs(10), "statsd to count every packet", || {
        console(p.statsd_admin, "counters").contains("'serve.term.hits': 15")
    });
    let t = now() - 120;
    let t = t - t % 10;
    let lines: String = (0..20)
        .map(|i| format!("serve.term.line{} {i} {t}\n", i % 4))
        .collect();
    send(p.line, lines.as_bytes());
    serve.stop();

    // Restarted with StatsD turned off by its port flag (its console too).
    let mut ports2 = ServePorts::free();
    ports2.statsd = 0;
    let serve2 = Serve::start(&data, ports2, &[]);
    let p2 = serve2.ports;
    wait_until(Duration::from_secs(30), "web API up", || {
        TcpStream::connect(("127.0.0.1", p2.web)).is_ok()
    });
    let (from, until) = (now() - 300, now() + 120);
    let hits = render(p2.web, "stats_counts.serve.term.hits", from, until);
    assert_eq!(
        hits.iter().map(|x| x.1).sum::<f64>(),
        15.0,
        "{hits:?}\nfirst run:\n{}\nsecond run:\n{}",
        serve.log(),
        serve2.log()
    );
    assert!(
        render(p2.web, "stats.gauges.serve.term.level", from, until)
            .iter()
            .any(|x| x.1 == 42.0)
    );
    for m in 0..4 {
        // Each metric got 16 + m, last one wins in its slot.
        let want = f64::from(16 + m);
        assert_eq!(
            render(p2.web, &format!("serve.term.line{m}"), t - 60, t + 60),
            vec![(t, want)],
            "serve.term.line{m}"
        );
    }
    assert!(TcpStream::connect(("127.0.0.1", p2.statsd_admin)).is_err());
    drop(serve2);
}

/// Runs `carbide serve` expecting it to refuse to start: its stderr.
fn refused(data: &Path, ports: ServePorts, extra: &[&str]) -> String {
    let mut child = Command::new(carbide_exe())
        .arg("serve")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--line-port={}", ports.line))
        .arg(format!("--pickle-port={}", ports.pickle))
        .arg(format!("--carbonlink-port={}", ports.carbonlink))
        .arg(format!("--admin-port={}", ports.admin))
        .arg(format!("--web-port={}", ports.web))
        .arg(format!("--statsd-port={}", ports.statsd))
        .arg(format!("--statsd-admin-port={}", ports.statsd_admin))
        .args(extra)
        .env("CARBIDE_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = cache_common::exit_within(
        &mut child,
        Duration::from_secs(30),
        "carbide serve (which should refuse to start)",
    );
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.success(), "carbide serve exited with {status}: {err}");
    err
}

#[test]
fn serve_refuses_a_busy_web_port_and_a_zero_flush_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ports = ServePorts::free();
    let busy = std::net::TcpListener::bind(("127.0.0.1", ports.web)).unwrap();
    let err = refused(&data, ports, &[]);
    assert!(
        err.contains("web API") && err.contains(&ports.web.to_string()),
        "{err}"
    );
    drop(busy);
    let err = refused(&data, ServePorts::free(), &["--statsd-flush-interval=0"]);
    assert!(err.contains("statsd-flush-interval"), "{err}");
}

/// Appends `v` as a protobuf varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One carbon.Payload frame (4-byte length, then `Payload { Metric { metric, Point {ts, v} } }`)
/// built field by field from carbon.proto, as carbon's protobuf clients send it.
fn protobuf_frame(name: &str, ts: u32, value: f64) -> Vec<u8> {
    let mut point = vec![0x08];
    varint(&mut point, u64::from(ts));
    point.push(0x11);
    point.extend_from_slice(&value.to_le_bytes());
    let mut metric = vec![0x0a];
    varint(&mut metric, name.len() as u64);
    metric.extend_from_slice(name.as_bytes());
    metric.push(0x12);
    varint(&mut metric, point.len() as u64);
    metric.extend_from_slice(&point);
    let mut payload = vec![0x0a];
    varint(&mut payload, metric.len() as u64);
    payload.extend_from_slice(&metric);
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

/// The receivers carbon has off by default are there in serve when asked for: plaintext over UDP
/// and the protobuf receiver.
#[test]
fn serve_takes_udp_protobuf_and_http_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ports = ServePorts::free();
    let udp = free_udp_port();
    let protobuf = free_port();
    let http = free_port();
    let serve = Serve::start(
        &data,
        ports,
        &[
            &format!("--udp-port={udp}"),
            &format!("--protobuf-port={protobuf}"),
            &format!("--http-port={http}"),
        ],
    );
    let p = serve.ports;
    wait_until(Duration::from_secs(30), "web API up", || {
        TcpStream::connect(("127.0.0.1", p.web)).is_ok()
    });
    let t = now() - 60;
    let t = t - t % 10;
    send(protobuf, &protobuf_frame("serve.pb.m", t as u32, 2.5));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(format!("serve.udp.m 4 {t}\n").as_bytes(), ("127.0.0.1", udp))
        .unwrap();
    within(Duration::from_secs(10), "the protobuf point in /render", || {
        render(p.web, "serve.pb.m", t - 60, t + 60) == vec![(t, 2.5)]
    });
    within(Duration::from_secs(10), "the udp point in /render", || {
        render(p.web, "serve.udp.m", t - 60, t + 60) == vec![(t, 4.0)]
    });
    let line = format!("serve.http.m 6 {t}");
    let mut s = TcpStream::connect(("127.0.0.1", http)).unwrap();
    write!(
        s,
        "POST / HTTP/1.0\r\nContent-Length: {}\r\n\r\n{line}",
        line.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    within(Duration::from_secs(10), "the posted point in /render", || {
        render(p.web, "serve.http.m", t - 60, t + 60) == vec![(t, 6.0)]
    });
}
