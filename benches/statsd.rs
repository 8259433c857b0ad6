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
//! Knobs: BENCH_SECONDS (3), BENCH_RECEIVERS (carbide's UDP threads, 2), BENCH_CARBIDE (another
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

fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

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
    let mut out = Vec::new();
    let mut i: u64 = 0;
    for _ in 0..200 {
        let mut d = Vec::new();
        let mut n = 0;
        loop {
            let line = match i % 10 {
                0..=6 => format!("bench.counter.k{}:1|c", i % 10_000),
                7 | 8 => format!("bench.timer.k{}:{}|ms", i % 1000, i % 500),
                _ => format!("bench.gauge.k{}:{}|g", i % 1000, i % 100),
            };
            if d.len() + line.len() + 1 > 1400 {
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
