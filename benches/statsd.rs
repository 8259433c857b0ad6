//! `carbide statsd` against etsy statsd 0.9.0 (node) in the same run, on loopback UDP: the
//! highest rate of metrics per second each takes with zero drops, with CPU seconds and peak RSS.
//!
//! Each side runs alone (never both at once) with flushInterval 1000 ms and its graphite backend
//! pointed at a listener here. A sender thread paces 1400-byte datagrams (≈100 metrics each: 70 %
//! counters, 20 % timers, 10 % gauges over 10 000 keys) at a target rate for BENCH_SECONDS. The
//! flushed `statsd.metrics_received` counts are summed until two flushes are empty: a trial
//! passes when that sum equals the metrics sent. Rates climb ×1.5 from a start until a trial
//! drops; the last clean rate is reported. The sender shares the two cores with the server.
//!
//! Run: `cargo bench --bench statsd` (needs `scripts/install-test-deps.sh`).
//!
//! `BENCH_MODE=burst` measures a cardinality burst instead: BURST_KEYS (1 000 000) distinct keys,
//! one sample each (90 % counters, 10 % timers), sent at BURST_RATE (70 000 keys/s) right after a
//! flush, all within one BURST_INTERVAL_MS (20 000) flush interval, to carbide (unbounded, then
//! with `carbideMaxKeys` = half the keys) and to etsy statsd. For the flush after the burst it
//! reports the time from the flush's due time (one interval after the previous flush reached the
//! listener) to its last byte at the listener, its size, how many burst keys it holds with the
//! right value (the rest were lost), `metrics_received`, `keys_over_limit`, and peak RSS; for
//! carbide also the longest time a flush held the engine lock (receivers wait only that long),
//! read from its `stalled_ms` debug log. etsy formats on its one thread: the whole flush stalls.
//! Knobs: BENCH_SECONDS (3), BENCH_RECEIVERS (carbide's UDP threads, 2), BENCH_DATAGRAM_BYTES
//! (1400; a small value such as 30 sends one metric per datagram, as most clients do), BENCH_CARBIDE (another
//! `carbide` binary to run instead of this build's, e.g. a copy of the previous version, so two
//! versions can be compared on the same loaded machine minutes apart).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark reports by panicking

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `carbide` to benchmark: BENCH_CARBIDE, or the one built with this bench.
fn carbide_bin() -> PathBuf {
    std::env::var_os("BENCH_CARBIDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_carbide")))
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

use carbide_testkit::free_tcp_udp_port as free_port;

/// (utime + stime seconds, peak RSS KiB) of a process.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, hwm)
}

/// The datagrams the sender cycles through.
fn datagrams() -> Vec<(Vec<u8>, u64)> {
    let datagram_bytes = knob("BENCH_DATAGRAM_BYTES", 1400) as usize;
    let mut out = Vec::new();
    let mut i: u64 = 0;
    for _ in 0..(200_000 / datagram_bytes).clamp(200, 20_000) {
        let mut d = Vec::new();
        let mut n = 0;
        loop {
            let line = match i % 10 {
                0..=6 => format!("bench.counter.k{}:1|c", i % 10_000),
                7 | 8 => format!("bench.timer.k{}:{}|ms", i % 1000, i % 500),
                _ => format!("bench.gauge.k{}:{}|g", i % 1000, i % 100),
            };
            if !d.is_empty() && d.len() + line.len() + 1 > datagram_bytes {
                break;
            }
            if !d.is_empty() {
                d.push(b'\n');
            }
            d.extend_from_slice(line.as_bytes());
            n += 1;
            i += 1;
        }
        out.push((d, n));
    }
    out
}

struct Trial {
    rate: f64,
    sent: u64,
    counted: u64,
    cpu: f64,
    secs: f64,
}

fn metrics_received(payload: &str) -> u64 {
    payload
        .lines()
        .find_map(|l| {
            let mut p = l.split(' ');
            (p.next()? == "stats_counts.statsd.metrics_received").then(|| p.next())?
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn trial(
    pid: u32,
    port: u16,
    flushes: &mpsc::Receiver<String>,
    rate: f64,
    secs: u64,
    data: &[(Vec<u8>, u64)],
) -> Trial {
    // Quiesce: drain flushes until one is empty.
    while flushes
        .recv_timeout(Duration::from_secs(3))
        .map(|p| metrics_received(&p))
        .unwrap_or(0)
        != 0
    {}
    let (cpu0, _) = usage(pid);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut k = 0usize;
    let total = (rate * secs as f64) as u64;
    while sent < total {
        // Pace: metrics due by now.
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        if sent >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        while sent < due.min(total) {
            let (d, n) = &data[k % data.len()];
            sock.send(d).unwrap();
            sent += n;
            k += 1;
        }
    }
    let secs_taken = start.elapsed().as_secs_f64();
    let mut counted = 0;
    let mut empty = 0;
    while empty < 2 {
        let p = flushes
            .recv_timeout(Duration::from_secs(10))
            .expect("no flush for 10 s");
        let m = metrics_received(&p);
        counted += m;
        if m == 0 { empty += 1 } else { empty = 0 }
    }
    let (cpu1, _) = usage(pid);
    Trial {
        rate: sent as f64 / secs_taken,
        sent,
        counted,
        cpu: cpu1 - cpu0,
        secs: secs_taken,
    }
}

struct Result {
    best: Option<Trial>,
    rss_kib: u64,
    trials: Vec<Trial>,
}

fn run(name: &str, mut cmd: Command, port: u16, gl: TcpListener, start_rate: f64) -> Result {
    let (tx, flushes) = mpsc::channel();
    std::thread::spawn(move || {
        for c in gl.incoming() {
            let Ok(mut c) = c else { return };
            let mut s = String::new();
            let _ = c.read_to_string(&mut s);
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    let child = Kill(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let pid = child.0.id();
    flushes
        .recv_timeout(Duration::from_secs(15))
        .unwrap_or_else(|_| panic!("{name}: no first flush"));
    let data = datagrams();
    let secs = knob("BENCH_SECONDS", 3);
    let mut rate = start_rate;
    let mut trials = Vec::new();
    let mut best: Option<Trial> = None;
    for _ in 0..12 {
        let t = trial(pid, port, &flushes, rate, secs, &data);
        eprintln!(
            "{name}: {:>10.0} metrics/s offered, sent {} counted {} ({} dropped), cpu {:.2}s over {:.2}s",
            t.rate,
            t.sent,
            t.counted,
            t.sent.saturating_sub(t.counted),
            t.cpu,
            t.secs
        );
        let clean = t.counted == t.sent;
        if clean {
            best = Some(Trial { ..t });
            rate *= 1.5;
        } else {
            trials.push(t);
            break;
        }
    }
    let (_, rss) = usage(pid);
    Result {
        best,
        rss_kib: rss,
        trials,
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let statsd = std::env::var_os("CARBIDE_ORACLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/oracles"))
        .join("statsd/node_modules/statsd");
    assert!(
        statsd.join("stats.js").is_file(),
        "etsy statsd missing: run scripts/install-test-deps.sh"
    );
    let tmp = tempfile::tempdir().unwrap();
    if std::env::var("BENCH_MODE").as_deref() == Ok("burst") {
        burst_main(&statsd, tmp.path());
        return;
    }

    let ours = {
        let gl = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free_port();
        let conf = tmp.path().join("carbide.json");
        let cfg = serde_json::json!({
            "graphiteHost": "127.0.0.1", "graphitePort": gl.local_addr().unwrap().port(),
            "address": "127.0.0.1", "port": port, "mgmt_port": free_port(), "flushInterval": 1000,
            "carbideReceivers": knob("BENCH_RECEIVERS", 2),
        });
        std::fs::write(&conf, cfg.to_string()).unwrap();
        let mut cmd = Command::new(carbide_bin());
        cmd.args(["statsd", "--config"]).arg(&conf);
        run("carbide", cmd, port, gl, 200_000.0)
    };
    let etsy = {
        let gl = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free_port();
        let conf = tmp.path().join("etsy.js");
        let cfg = serde_json::json!({
            "graphiteHost": "127.0.0.1", "graphitePort": gl.local_addr().unwrap().port(),
            "address": "127.0.0.1", "port": port, "mgmt_port": free_port(), "flushInterval": 1000,
        });
        std::fs::write(&conf, cfg.to_string()).unwrap();
        let mut cmd = Command::new("node");
        cmd.arg(statsd.join("stats.js")).arg(&conf).current_dir(&statsd);
        run("etsy statsd", cmd, port, gl, 50_000.0)
    };
    println!(
        "\n| program | metrics/s, 0 drops | CPU s per 1 M metrics | peak RSS MiB | first dropping rate (dropped) |"
    );
    println!("|---|---:|---:|---:|---|");
    for (name, r) in [("carbide statsd", &ours), ("etsy statsd 0.9.0", &etsy)] {
        let (rate, cpu) = r
            .best
            .as_ref()
            .map_or((0.0, 0.0), |t| (t.rate, t.cpu / (t.sent as f64 / 1e6)));
        let drop = r.trials.first().map_or("none".into(), |t| {
            format!(
                "{:.0}/s ({} of {})",
                t.rate,
                t.sent - t.counted.min(t.sent),
                t.sent
            )
        });
        println!(
            "| {name} | {rate:.0} | {cpu:.2} | {:.0} | {drop} |",
            r.rss_kib as f64 / 1024.0
        );
    }
    let ratio = match (&ours.best, &etsy.best) {
        (Some(a), Some(b)) => a.rate / b.rate,
        _ => 0.0,
    };
    println!("\nratio (zero-drop rate): {ratio:.1}×");
}

// ---------------------------------------------------------------------------------------------
// BENCH_MODE=burst: a 1 M-key cardinality burst inside one flush interval.

/// One graphite connection: when it was accepted, when its last byte came, what it held.
struct Delivery {
    accepted: Instant,
    done: Instant,
    payload: Vec<u8>,
}

fn burst_listener(gl: TcpListener) -> mpsc::Receiver<Delivery> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for c in gl.incoming() {
            let Ok(mut c) = c else { return };
            let accepted = Instant::now();
            let mut payload = Vec::new();
            let _ = c.read_to_end(&mut payload);
            let done = Instant::now();
            if tx
                .send(Delivery {
                    accepted,
                    done,
                    payload,
                })
                .is_err()
            {
                return;
            }
        }
    });
    rx
}

/// `1400`-byte datagrams of `keys` distinct keys, one sample each: 90 % counters
/// (`burst.c.k<i>:1|c`), 10 % timers (`burst.t.k<i>:<i%1000>|ms`).
fn burst_datagrams(keys: u64) -> Vec<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut d = Vec::new();
    let mut n = 0;
    for i in 0..keys {
        let line = if i % 10 == 9 {
            format!("burst.t.k{i}:{}|ms", i % 1000)
        } else {
            format!("burst.c.k{i}:1|c")
        };
        if d.len() + line.len() + 1 > 1400 {
            out.push((std::mem::take(&mut d), n));
            n = 0;
        }
        if !d.is_empty() {
            d.push(b'\n');
        }
        d.extend_from_slice(line.as_bytes());
        n += 1;
    }
    if n > 0 {
        out.push((d, n));
    }
    out
}

struct Burst {
    flush_ms: f64,
    /// carbide only: the longest time a flush held the engine lock (its `stalled_ms` log).
    stall_ms: Option<f64>,
    lines: u64,
    bytes: usize,
    present: u64,
    metrics_received: u64,
    keys_over_limit: Option<u64>,
    rss_kib: u64,
    send_secs: f64,
}

/// Keys of the burst whose one sample is in the flush (counter count 1, timer count 1), and
/// statsd's own counters.
fn burst_count(payload: &[u8], keys: u64) -> (u64, u64, u64, Option<u64>) {
    let mut seen = vec![false; keys as usize];
    let (mut lines, mut received, mut over) = (0u64, 0u64, None);
    for l in payload.split(|b| *b == b'\n') {
        if l.is_empty() {
            continue;
        }
        lines += 1;
        let Ok(l) = std::str::from_utf8(l) else { continue };
        let mut p = l.split(' ');
        let (Some(name), Some(v)) = (p.next(), p.next()) else {
            continue;
        };
        let idx = if let Some(k) = name.strip_prefix("stats_counts.burst.c.k") {
            (v == "1").then_some(k)
        } else if let Some(k) = name
            .strip_prefix("stats.timers.burst.t.k")
            .and_then(|k| k.strip_suffix(".count"))
        {
            (v == "1").then_some(k)
        } else {
            if name == "stats_counts.statsd.metrics_received" {
                received = v.parse().unwrap_or(0);
            } else if name == "stats_counts.statsd.keys_over_limit" {
                over = v.parse().ok();
            }
            None
        };
        if let Some(i) = idx.and_then(|k| k.parse::<usize>().ok())
            && let Some(s) = seen.get_mut(i)
        {
            *s = true;
        }
    }
    (seen.iter().filter(|s| **s).count() as u64, lines, received, over)
}

fn burst_run(name: &str, mut cmd: Command, port: u16, gl: TcpListener, interval_ms: u64) -> Burst {
    let deliveries = burst_listener(gl);
    let mut child = Kill(cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap());
    let stalls = child.0.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            let mut worst: Option<f64> = None;
            let lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
            for line in lines.map_while(std::result::Result::ok) {
                let ms = line
                    .split_once("stalled_ms=")
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .and_then(|v| v.parse::<f64>().ok());
                if let Some(ms) = ms {
                    worst = Some(worst.map_or(ms, |w| w.max(ms)));
                }
            }
            worst
        })
    });
    let pid = child.0.id();
    let keys = knob("BURST_KEYS", 1_000_000);
    let rate = knob("BURST_RATE", 70_000) as f64;
    let data = burst_datagrams(keys);
    let interval = Duration::from_millis(interval_ms);
    // A quiet flush marks the schedule: the burst flush starts one interval after it.
    let quiet = deliveries
        .recv_timeout(interval + Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{name}: no first flush"));
    let flush_due = quiet.accepted + interval;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    let start = Instant::now();
    let (mut sent, mut k) = (0u64, 0usize);
    while k < data.len() {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        if sent >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        while sent < due && k < data.len() {
            sock.send(&data[k].0).unwrap();
            sent += data[k].1;
            k += 1;
        }
    }
    let send_secs = start.elapsed().as_secs_f64();
    assert!(
        Instant::now() < flush_due,
        "{name}: the burst took {send_secs:.1} s, past the flush: raise BURST_INTERVAL_MS or BURST_RATE"
    );
    let burst = deliveries
        .recv_timeout(interval + Duration::from_secs(300))
        .unwrap_or_else(|_| panic!("{name}: no flush after the burst"));
    let (present, lines, metrics_received, keys_over_limit) = burst_count(&burst.payload, keys);
    let (_, rss_kib) = usage(pid);
    drop(child);
    let stall_ms = stalls.and_then(|t| t.join().ok()).flatten();
    let r = Burst {
        stall_ms,
        flush_ms: burst.done.saturating_duration_since(flush_due).as_secs_f64() * 1000.0,
        lines,
        bytes: burst.payload.len(),
        present,
        metrics_received,
        keys_over_limit,
        rss_kib,
        send_secs,
    };
    eprintln!(
        "{name}: sent {sent} keys in {send_secs:.1} s; flush {:.0} ms after its due time (engine lock held {:?} ms; {} lines, {} MB, last byte {:.0} ms after accept), {present} keys present, metrics_received {metrics_received}, keys_over_limit {keys_over_limit:?}, peak RSS {} MiB",
        r.flush_ms,
        r.stall_ms,
        lines,
        r.bytes / 1_000_000,
        burst.done.saturating_duration_since(burst.accepted).as_secs_f64() * 1000.0,
        rss_kib / 1024
    );
    r
}

fn burst_main(statsd: &Path, tmp: &Path) {
    let interval_ms = knob("BURST_INTERVAL_MS", 20_000);
    let keys = knob("BURST_KEYS", 1_000_000);
    let carbide = |max_keys: Option<u64>| {
        let gl = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free_port();
        let conf = tmp.join(format!("carbide-burst-{max_keys:?}.json"));
        let mut cfg = serde_json::json!({
            "graphiteHost": "127.0.0.1", "graphitePort": gl.local_addr().unwrap().port(),
            "address": "127.0.0.1", "port": port, "mgmt_port": free_port(),
            "flushInterval": interval_ms, "carbideReceivers": knob("BENCH_RECEIVERS", 2),
        });
        if let Some(m) = max_keys {
            cfg["carbideMaxKeys"] = m.into();
        }
        std::fs::write(&conf, cfg.to_string()).unwrap();
        let mut cmd = Command::new(carbide_bin());
        cmd.args(["statsd", "--config"])
            .arg(&conf)
            .env("CARBIDE_LOG", "warn,carbide_statsd_server=debug");
        let name = match max_keys {
            Some(m) => format!("carbide statsd, carbideMaxKeys {m}"),
            None => "carbide statsd".to_string(),
        };
        (name.clone(), burst_run(&name, cmd, port, gl, interval_ms))
    };
    let mut results = vec![carbide(None), carbide(Some(keys / 2))];
    {
        let gl = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free_port();
        let conf = tmp.join("etsy-burst.js");
        let cfg = serde_json::json!({
            "graphiteHost": "127.0.0.1", "graphitePort": gl.local_addr().unwrap().port(),
            "address": "127.0.0.1", "port": port, "mgmt_port": free_port(), "flushInterval": interval_ms,
        });
        std::fs::write(&conf, cfg.to_string()).unwrap();
        let mut cmd = Command::new("node");
        cmd.arg(statsd.join("stats.js")).arg(&conf).current_dir(statsd);
        let name = "etsy statsd 0.9.0".to_string();
        results.push((name.clone(), burst_run(&name, cmd, port, gl, interval_ms)));
    }
    println!(
        "\n| program | keys sent | send s | flush ms (due → last byte) | lock held ms | lines | MB | keys in flush | lost | metrics_received | keys_over_limit | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, r) in &results {
        println!(
            "| {name} | {keys} | {:.1} | {:.0} | {} | {} | {:.0} | {} | {} | {} | {} | {:.0} |",
            r.send_secs,
            r.flush_ms,
            r.stall_ms.map_or("– (one thread)".into(), |v| format!("{v:.0}")),
            r.lines,
            r.bytes as f64 / 1e6,
            r.present,
            keys - r.present.min(keys),
            r.metrics_received,
            r.keys_over_limit.map_or("-".into(), |v| v.to_string()),
            r.rss_kib as f64 / 1024.0
        );
    }
}
