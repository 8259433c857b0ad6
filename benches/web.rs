//! The web API end to end: `carbide web` (the real binary) against graphite-web 1.1.8 under gunicorn
//! in the same run, over the same whisper tree, with the same requests.
//!
//! Five requests, each sent BENCH_REQUESTS times in sequence (one at a time, one server at a time;
//! a new HTTP/1.0 connection each, timed from connect until the last byte of the answer):
//! - `sumSeries(sum.*)` over 1 000 series × 1 day of 60 s points (1 440 points each);
//! - `groupByNode(servers.*.cpu.*,1,"sumSeries")` over 10 000 series (1 000 hosts × 10 cpus,
//!   1 hour of 60 s points each), giving 1 000 series;
//! - `/metrics/find?query=find.*.m*7` over 100 000 metric names (100 directories of 1 000), giving
//!   10 000 nodes;
//! - `big.g12*` (10 directories) and `big.*.m0123456` (one metric) over 1 000 000 more names
//!   (1 000 directories of 1 000; BENCH_BIG_FIND sets how many, 0 leaves them out).
//!
//! Both servers must first give the same answer (series names, point counts, the sum of all values;
//! the set of found paths) or the benchmark fails. The first answer of each (the check) is not timed.
//! Reported: p50 and p99 latency (nearest rank; with 30 requests p99 is the slowest), the ratio, and
//! the CPU seconds (utime + stime from /proc/PID/stat) each server spent over its timed requests —
//! for gunicorn, the master plus its workers.
//!
//! Run: `cargo bench --bench web` (needs graphite-web and gunicorn: `scripts/install-test-deps.sh`).
//! Knobs: BENCH_REQUESTS (30), BENCH_GUNICORN_WORKERS (2), BENCH_ONLY (run only the requests whose
//! label starts with this: `sumSeries`, `groupByNode` or `find`), BENCH_BIG_FIND (1000000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark reports by panicking

#[path = "../crates/web/tests/common/graphite_web.rs"]
mod graphite_web;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use carbide_core::Retention;
use carbide_whisper::file::{CreateOptions, create, update_many};
use serde_json::Value;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

use carbide_testkit::free_port;

/// CPU seconds (user + system) of one process so far; 0 when it is gone.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// The pids of `pid`'s children (gunicorn's workers).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else { continue };
        let ppid = stat[close + 2..].split_whitespace().nth(1);
        if ppid == Some(pid.to_string().as_str()) {
            out.push(child);
        }
    }
    out
}

/// CPU seconds of a process and its children.
fn tree_cpu_seconds(pid: u32) -> f64 {
    cpu_seconds(pid) + children(pid).into_iter().map(cpu_seconds).sum::<f64>()
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.0 GET: (status, body).
fn get(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(600))).ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&resp[..split]);
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, resp[split + 4..].to_vec()))
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn wait_ready(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some((200, _)) = get(port, "/metrics/find?query=*") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not answer within 120 s; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn start_carbide(whisper: &Path, dir: &Path, port: u16) -> Proc {
    let log = dir.join("carbide-web.log");
    let child = Command::new(env!("CARGO_BIN_EXE_carbide"))
        .args(["web", "--data-dir"])
        .arg(whisper)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--max-series", "100000"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let p = Proc(child);
    wait_ready(port, "carbide web", &log);
    p
}

/// graphite-web 1.1.8 under gunicorn with `workers` workers and timeouts raised past the queries'.
fn start_graphite_web(dir: &Path, whisper: &Path, port: u16, workers: usize) -> graphite_web::Gunicorn {
    graphite_web::start(
        dir,
        whisper,
        port,
        "FETCH_TIMEOUT = 600\nFIND_TIMEOUT = 600",
        workers,
    )
}

fn whisper_path(root: &Path, name: &str) -> PathBuf {
    let mut path = root.to_path_buf();
    for part in name.split('.') {
        path.push(part);
    }
    path.set_extension("wsp");
    path
}

fn write_series(root: &Path, name: &str, ret: &[Retention], pts: &[(i64, f64)], now: i64) {
    let path = whisper_path(root, name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let opts = CreateOptions {
        sparse: pts.is_empty(),
        ..Default::default()
    };
    create(&path, ret, &opts).unwrap();
    update_many(&path, pts, now, false).unwrap();
}

/// Writes the three sub-trees; `t0` is the newest point's timestamp.
fn write_tree(root: &Path, t0: i64, big: i64) {
    // 2 days of room for 1 day of data: the window stays inside the retention however long the run.
    let day = Retention::parse_list("60:2880").unwrap();
    for s in 0..1000i64 {
        let pts: Vec<(i64, f64)> = (0..1440i64)
            .map(|i| (t0 - i * 60, ((i * 7 + s * 13) % 101) as f64 * 0.5))
            .collect();
        write_series(root, &format!("sum.s{s:04}"), &day, &pts, t0);
    }
    let hour = Retention::parse_list("60:120").unwrap();
    for h in 0..1000i64 {
        for c in 0..10i64 {
            let pts: Vec<(i64, f64)> = (0..60i64)
                .map(|i| (t0 - i * 60, ((i + h * 3 + c) % 17) as f64))
                .collect();
            write_series(root, &format!("servers.host{h:04}.cpu.{c}"), &hour, &pts, t0);
        }
    }
    // The smallest file whisper allows (one 60 s point, 40 bytes), created sparse, no data.
    let tiny = Retention::parse_list("60:1").unwrap();
    for m in 0..100_000i64 {
        write_series(root, &format!("find.g{:02}.m{m:05}", m / 1000), &tiny, &[], t0);
    }
    // The "find over 1 M metrics": 1 000 directories of 1 000.
    for m in 0..big {
        write_series(root, &format!("big.g{:03}.m{m:07}", m / 1000), &tiny, &[], t0);
    }
}

/// What must agree between the two servers: series names with (point count, non-null count, sum).
fn render_summary(body: &[u8]) -> Vec<(String, usize, usize, f64)> {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:.300}", String::from_utf8_lossy(body)));
    let mut out: Vec<(String, usize, usize, f64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let pts = s["datapoints"].as_array().unwrap();
            let vals: Vec<f64> = pts.iter().filter_map(|p| p[0].as_f64()).collect();
            (
                s["target"].as_str().unwrap().to_string(),
                pts.len(),
                vals.len(),
                vals.iter().sum(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn find_summary(body: &[u8]) -> BTreeSet<String> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

/// Checks that both answers agree; returns a one-line description.
fn check(kind: &str, ours: &[u8], theirs: &[u8]) -> String {
    if kind == "find" {
        let (o, t) = (find_summary(ours), find_summary(theirs));
        assert_eq!(o, t, "find answers differ");
        return format!("{} nodes", o.len());
    }
    let (o, t) = (render_summary(ours), render_summary(theirs));
    assert_eq!(o.len(), t.len(), "series counts differ");
    let mut total = 0.0;
    for (a, b) in o.iter().zip(&t) {
        assert_eq!((&a.0, a.1, a.2), (&b.0, b.1, b.2), "series differ");
        assert!(
            (a.3 - b.3).abs() <= 1e-9 * a.3.abs().max(b.3.abs()),
            "{}: sum {} vs {}",
            a.0,
            a.3,
            b.3
        );
        total += a.3;
    }
    let points: usize = o.iter().map(|s| s.2).sum();
    format!("{} series, {points} values, sum {total}", o.len())
}

/// Latencies in ms of `n` sequential requests, and the server's CPU seconds over them.
fn time_requests(port: u16, path: &str, n: usize, cpu: &dyn Fn() -> f64, logs: &Path) -> (Vec<f64>, f64) {
    let cpu0 = cpu();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (status, _) = get(port, path).expect("no answer");
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        if status != 200 {
            dump_logs(logs);
        }
        assert_eq!(status, 200, "{path}");
    }
    let used = cpu() - cpu0;
    lat.sort_by(f64::total_cmp);
    (lat, used)
}

/// Prints the tail of a server's logs (graphite-web's exception.log says why it answered 500).
fn dump_logs(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let tail: String = text
            .chars()
            .rev()
            .take(3000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        eprintln!("--- {}:\n{tail}", entry.path().display());
    }
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn main() {
    let n = knob("BENCH_REQUESTS", 30);
    let workers = knob("BENCH_GUNICORN_WORKERS", 2);
    let dir = tempfile::tempdir().unwrap();
    let whisper = dir.path().join("whisper");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let t0 = now - now % 60;
    let big = knob("BENCH_BIG_FIND", 1_000_000) as i64;
    let t = Instant::now();
    write_tree(&whisper, t0, big);
    eprintln!(
        "wrote {} whisper files in {:.1} s",
        111_000 + big,
        t.elapsed().as_secs_f64()
    );

    let ours_port = free_port();
    let t = Instant::now();
    let ours = start_carbide(&whisper, dir.path(), ours_port);
    eprintln!("carbide web up in {:.1} s", t.elapsed().as_secs_f64());
    let gw_port = free_port();
    let t = Instant::now();
    let gw = start_graphite_web(&dir.path().join("gw"), &whisper, gw_port, workers);
    eprintln!(
        "graphite-web (gunicorn, {workers} workers) up in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let ours_pid = ours.0.id();
    let gw_logs = dir.path().join("gw/log");
    let gw_pid = gw.0.id();

    let day = format!("from={}&until={t0}", t0 - 86_400);
    let hour = format!("from={}&until={t0}", t0 - 3_600);
    let cases = [
        (
            "sumSeries, 1 000 series × 1 day",
            "render",
            format!("/render?target={}&{day}&format=json", enc("sumSeries(sum.*)")),
        ),
        (
            "groupByNode, 10 000 series × 1 h",
            "render",
            format!(
                "/render?target={}&{hour}&format=json",
                enc("groupByNode(servers.*.cpu.*,1,\"sumSeries\")")
            ),
        ),
        (
            "find, 100 000 metrics",
            "find",
            format!("/metrics/find?query={}&format=treejson", enc("find.*.m*7")),
        ),
        (
            "find, 1 M metrics, a directory prefix",
            "find",
            format!("/metrics/find?query={}&format=treejson", enc("big.g12*")),
        ),
        (
            "find, 1 M metrics, one name in every directory",
            "find",
            format!("/metrics/find?query={}&format=treejson", enc("big.*.m0123456")),
        ),
    ];
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|c| big > 0 || !c.0.contains("1 M"))
        .collect();

    let mut rows = Vec::new();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for (label, kind, path) in cases.iter().filter(|c| c.0.starts_with(only.as_str())) {
        let (os, ob) = get(ours_port, path).expect("carbide did not answer");
        let (gs, gb) = get(gw_port, path).expect("graphite-web did not answer");
        if gs != 200 {
            dump_logs(&dir.path().join("gw/log"));
        }
        assert_eq!(
            (os, gs),
            (200, 200),
            "{path}: carbide {os} {:.300} / graphite-web {gs} {:.300}",
            String::from_utf8_lossy(&ob),
            String::from_utf8_lossy(&gb)
        );
        let same = check(kind, &ob, &gb);
        eprintln!("{label}: both answer {same}");
        let (o, ocpu) = time_requests(ours_port, path, n, &|| cpu_seconds(ours_pid), dir.path());
        eprintln!(
            "  carbide web: p50 {:.1} ms p99 {:.1} ms",
            pct(&o, 50.0),
            pct(&o, 99.0)
        );
        let (g, gcpu) = time_requests(gw_port, path, n, &|| tree_cpu_seconds(gw_pid), &gw_logs);
        eprintln!(
            "  graphite-web: p50 {:.1} ms p99 {:.1} ms",
            pct(&g, 50.0),
            pct(&g, 99.0)
        );
        rows.push((label, same, o, ocpu, g, gcpu));
    }

    println!(
        "\n{n} sequential requests per server and query; gunicorn with {workers} workers; load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| request | answer (same on both) | carbide p50 ms | carbide p99 ms | graphite-web p50 ms | graphite-web p99 ms | ratio p50 | ratio p99 | CPU s carbide | CPU s graphite-web |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, same, o, ocpu, g, gcpu) in rows {
        let (o50, o99, g50, g99) = (pct(&o, 50.0), pct(&o, 99.0), pct(&g, 50.0), pct(&g, 99.0));
        println!(
            "| {label} | {same} | {o50:.1} | {o99:.1} | {g50:.1} | {g99:.1} | {:.1}× | {:.1}× | {ocpu:.2} | {gcpu:.2} |",
            g50 / o50,
            g99 / o99
        );
    }
    drop(ours);
    drop(gw);
}
