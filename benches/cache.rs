//! The cache role end to end: `carbide cache` against Debian's carbon-cache (graphite-carbon 1.1.7)
//! in the same run, with the same carbon.conf (throttles lifted: MAX_CREATES_PER_MINUTE,
//! MAX_UPDATES_PER_SECOND and MAX_CACHE_SIZE = inf; CACHE_WRITE_STRATEGY = sorted).
//!
//! A sender in this process pushes BENCH_LINES plaintext lines over BENCH_METRICS metrics through
//! BENCH_CONNECTIONS TCP connections, and the clock runs until every point is on disk: every
//! metric's whisper file exists and holds the pass's last point (polled with carbide's whisper
//! reader; carbide's `/admin/cache` must also say 0). For carbide the clock stops when its cache
//! is first seen empty (a point leaves it only once written), if the one read of the files that
//! follows finds every point; for carbon, whose cache cannot be asked, when the file poll (every
//! 200 ms, only files not yet complete) first finds them all. Pass 1 writes onto new files (creates
//! included), pass 2 sends the same number of new points onto the existing files. For each server
//! process: CPU seconds from /proc/<pid>/stat (utime + stime, per pass) and peak RSS (VmHWM from
//! /proc/<pid>/status, cumulative since start). The servers run one after the other, never at once.
//!
//! Run: `cargo bench --bench cache` (needs `scripts/install-test-deps.sh`).
//! Knobs: BENCH_METRICS (100000), BENCH_LINES (5000000, the goal size), BENCH_CONNECTIONS (4),
//! BENCH_WRITERS (carbide writer threads, 4), BENCH_ONLY (`carbide` or `carbon`), BENCH_TRACE (print
//! carbide's cache size and update count every 100 ms), BENCH_NO_SETTLE (skip the wait below).
//!
//! ext4 without a journal (this machine's root) skips inodes deleted in the last 60 s, or 360 s
//! while their inode-table block is dirty, when it allocates one (`recently_deleted`). Right after
//! a run deleted its 200 000 files, a create cost 40-160 µs of kernel time instead of 14 µs, and
//! pass 1 measured that instead of the server. The run therefore notes when it deleted its trees,
//! and the next run waits until 360 s have passed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark reports by panicking

#[path = "../tests/cache_common/mod.rs"]
mod cache_common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use cache_common::{Kind, Server, finish};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where a run notes when it deleted its trees (unix seconds).
fn deleted_marker() -> std::path::PathBuf {
    std::env::temp_dir().join("carbide-bench-cache.deleted")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Waits until the files a previous run deleted no longer slow inode allocation (module docs).
fn settle_filesystem() {
    const SETTLE_S: u64 = 360;
    let deleted = std::fs::read_to_string(deleted_marker())
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let Some(deleted) = deleted else { return };
    let wait = (deleted + SETTLE_S).saturating_sub(unix_now());
    if wait == 0 || std::env::var_os("BENCH_NO_SETTLE").is_some() {
        return;
    }
    eprintln!(
        "waiting {wait} s: the last run deleted its files {} s ago (see the module docs)",
        SETTLE_S - wait
    );
    std::thread::sleep(Duration::from_secs(wait));
}

fn metric_name(m: usize) -> String {
    // bench.* is 10 s:1 h in the shared schemas (4.3 KB a file); 100 directories of 1 000 files.
    format!("bench.g{}.m{m}", m % 100)
}

/// CPU seconds (user + system) of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ") ".
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// A `kB` field of /proc/<pid>/status in MiB (0 once the process is gone): VmHWM is the peak
/// resident set, VmRSS the current one.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

struct Pass {
    seconds: f64,
    points: usize,
    cpu: f64,
    rss: f64,
}

/// Sends one pass and waits until it is on disk.
fn pass(s: &Server, metrics: usize, lines: usize, conns: usize, t0: i64) -> Pass {
    let per = lines.div_ceil(metrics);
    let last_ts = t0 + 10 * (per as i64 - 1);
    let cpu0 = cpu_seconds(s.pid());
    let updates = |s: &Server| (s.kind == Kind::Carbide).then(|| s.metric("carbide_update_operations_total"));
    let updates0 = updates(s);
    let started = Instant::now();
    // Samples the cache's size and the resident set while the pass runs: the peak RSS is mostly
    // the points waiting for their writes, and this says how many there were.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = (s.kind == Kind::Carbide).then(|| {
        let (pid, admin, on) = (s.pid(), s.ports.admin, sampling.clone());
        // BENCH_TRACE=1 prints the samples: when the writers work and how the cache fills.
        let trace = std::env::var_os("BENCH_TRACE").is_some();
        std::thread::spawn(move || {
            let mut peak = (0.0f64, 0.0f64);
            while on.load(std::sync::atomic::Ordering::Relaxed) {
                let body = cache_common::http_get(admin, "/metrics");
                let gauge = |name: &str| -> f64 {
                    body.lines()
                        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0.0)
                };
                let points = gauge("carbide_cache_points");
                if trace {
                    eprintln!(
                        "  {:6.2} s: {points:9.0} points held, {:7.0} updates",
                        started.elapsed().as_secs_f64(),
                        gauge("carbide_update_operations_total")
                    );
                }
                if points > peak.0 {
                    peak = (points, status_mib(pid, "VmRSS"));
                }
                std::thread::sleep(Duration::from_millis(if trace { 100 } else { 50 }));
            }
            peak
        })
    });
    let port = s.ports.line;
    let senders: Vec<_> = (0..conns)
        .map(|c| {
            std::thread::spawn(move || {
                let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let mut buf = Vec::with_capacity(1 << 20);
                // Every metric reports once per 10 s interval, as collectors do.
                for p in 0..per {
                    for m in (c..metrics).step_by(conns) {
                        writeln!(buf, "{} {} {}", metric_name(m), p + m, t0 + 10 * p as i64).unwrap();
                        if buf.len() >= 1 << 20 {
                            sock.write_all(&buf).unwrap();
                            buf.clear();
                        }
                    }
                }
                sock.write_all(&buf).unwrap();
                finish(sock);
            })
        })
        .collect();
    for th in senders {
        th.join().unwrap();
    }
    let sent = started.elapsed();
    // Poll only the metrics not yet seen complete.
    let root = s.whisper();
    let mut pending: Vec<usize> = (0..metrics).collect();
    let limit = Duration::from_secs(1800);
    // When carbide's cache was first seen empty: its points leave the cache only once written
    // (confirm-on-persist), so that is when everything was on disk, provided the first read of
    // the files below finds every point. Reading 100 000 files takes the bench ~0.6 s, which is
    // not the server's time.
    let mut drained_at = None;
    let mut rounds = 0;
    loop {
        // Carbide says when its cache is empty (every point confirmed on disk): wait for that
        // before reading 100 000 files, so the poll does not take CPU from the writers. The files
        // are still read to check every point is there.
        if s.kind == Kind::Carbide && s.metric("carbide_cache_points") != 0.0 {
            assert!(
                started.elapsed() < limit,
                "carbide's cache not empty after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        if s.kind == Kind::Carbide && drained_at.is_none() {
            drained_at = Some(started.elapsed());
        }
        rounds += 1;
        let now = cache_common::now() + 20;
        pending.retain(|&m| !has_point(&root, &metric_name(m), last_ts, (per - 1 + m) as f64, now));
        let cache_empty = s.kind != Kind::Carbide || s.cache_size() == 0;
        if pending.is_empty() && cache_empty {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "{:?}: {} metrics not on disk after {limit:?}",
            s.kind,
            pending.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let seconds = match drained_at {
        Some(t) if rounds == 1 => t.as_secs_f64(),
        _ => started.elapsed().as_secs_f64(),
    };
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    if let Some((points, rss)) = sampler.map(|t| t.join().unwrap()) {
        eprintln!(
            "{:?}: most points in the cache {points:.0}, RSS then {rss:.0} MiB",
            s.kind
        );
    }
    eprintln!("{:?}: sent in {sent:?}, on disk after {seconds:.1} s", s.kind);
    if let (Some(a), Some(b)) = (updates0, updates(s)) {
        eprintln!(
            "{:?}: {} update_many calls, {:.2} points per update",
            s.kind,
            b - a,
            (per * metrics) as f64 / (b - a)
        );
    }
    Pass {
        seconds,
        points: per * metrics,
        cpu: cpu_seconds(s.pid()) - cpu0,
        rss: status_mib(s.pid(), "VmHWM"),
    }
}

fn has_point(root: &Path, metric: &str, ts: i64, value: f64, now: i64) -> bool {
    let path = cache_common::wsp_path(root, metric);
    match carbide_whisper::file::fetch(&path, ts - 1, Some(ts + 9), now, None) {
        Ok(Some(r)) => r.values.contains(&Some(value)),
        _ => false,
    }
}

fn run(kind: Kind, dir: &Path, metrics: usize, lines: usize, conns: usize, writers: usize) -> [Pass; 2] {
    let w = format!("--writers={writers}");
    let s = Server::start(kind, dir, "", &[w.as_str()]);
    let t0 = (cache_common::now() / 10) * 10 - 1200;
    let first = pass(&s, metrics, lines, conns, t0);
    let per = lines.div_ceil(metrics) as i64;
    let second = pass(&s, metrics, lines, conns, t0 + 10 * per);
    [first, second]
}

fn main() {
    let metrics = knob("BENCH_METRICS", 100_000);
    let lines = knob("BENCH_LINES", 5_000_000);
    let conns = knob("BENCH_CONNECTIONS", 4);
    let writers = knob("BENCH_WRITERS", 4);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    settle_filesystem();
    let tmp = tempfile::tempdir().unwrap();
    let ours = (only != "carbon").then(|| {
        run(
            Kind::Carbide,
            &tmp.path().join("carbide"),
            metrics,
            lines,
            conns,
            writers,
        )
    });
    let theirs = (only != "carbide").then(|| {
        run(
            Kind::Carbon,
            &tmp.path().join("carbon"),
            metrics,
            lines,
            conns,
            writers,
        )
    });

    tmp.close().unwrap();
    std::fs::write(deleted_marker(), unix_now().to_string()).unwrap();
    println!(
        "\n{} lines over {metrics} metrics, {conns} TCP connections; carbide --writers={writers}\n",
        lines
    );
    println!("| pass | server | points/s to disk | seconds | CPU s | peak RSS MiB |");
    println!("|---|---|---:|---:|---:|---:|");
    for (i, label) in ["1: new files", "2: existing files"].iter().enumerate() {
        for (name, r) in [("carbide cache", &ours), ("carbon-cache 1.1.7", &theirs)] {
            if let Some(r) = r {
                let p = &r[i];
                println!(
                    "| {label} | {name} | {:.0} | {:.1} | {:.1} | {:.0} |",
                    p.points as f64 / p.seconds,
                    p.seconds,
                    p.cpu,
                    p.rss
                );
            }
        }
        if let (Some(a), Some(b)) = (&ours, &theirs) {
            println!(
                "| {label} | ratio | {:.1}× | | {:.1}× less | {:.1}× less |",
                b[i].seconds / a[i].seconds,
                b[i].cpu / a[i].cpu.max(0.01),
                b[i].rss / a[i].rss.max(0.01)
            );
        }
    }
}
