//! `carbide relay` against carbon-c-relay 3.7 (Debian) in the same run: plaintext lines per second
//! through a carbon_ch relay with replication 1 in front of three destinations, with each relay's
//! CPU seconds and peak RSS.
//!
//! The destinations are three TCP sinks in this process that only count the newlines they read.
//! Both relays get the same three members (127.0.0.1 with instances a, b, c, so carbon_ch spreads
//! the names over them), the same queue size (BENCH_QUEUE, 250 000 points per destination) and batch size
//! (2 500), and two worker threads (carbon-c-relay `-w 2`; carbide's tokio runtime uses one worker
//! per core, 2 here). carbon-c-relay runs in submission mode (`-s`) so it adds no statistics lines
//! of its own; carbide runs with CARBON_METRIC_INTERVAL = 0 for the same reason.
//!
//! A sender in this process writes BENCH_LINES lines (BENCH_METRICS distinct names) through
//! BENCH_CONNECTIONS TCP connections as fast as the relay reads. The clock runs from the first
//! byte sent until the sinks together have counted every line sent. Carbide losing any line fails
//! the benchmark; carbon-c-relay, which drops a few thousand lines in some runs even on an idle
//! machine, is timed to the last line it delivered (nothing more for 10 s), its rate counts the
//! lines delivered, and the loss is reported. CPU seconds are the relay process's utime + stime over the run
//! (/proc/PID/stat); peak RSS is VmHWM (/proc/PID/status). The relays run one after the other,
//! never at once, alternating for BENCH_ROUNDS rounds, each round with fresh processes.
//!
//! Run: `cargo bench --bench relay` (needs `scripts/install-test-deps.sh` for carbon-c-relay).
//! Knobs: BENCH_LINES (5000000), BENCH_METRICS (100000), BENCH_CONNECTIONS (2), BENCH_ROUNDS (3),
//! BENCH_QUEUE (250000), BENCH_BATCH (2500), BENCH_ONLY (`carbide` or `c-relay`),
//! BENCH_CARBIDE_ARGS (extra `carbide relay` arguments, for comparing its options).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark reports by panicking

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const C_RELAY: &str = "/usr/bin/carbon-c-relay";
const WORKERS: usize = 2;

/// Points queued per destination (both relays): BENCH_QUEUE, default 250 000. With its own
/// default of 25 000, carbon-c-relay drops lines in this benchmark on a loaded 2-core machine (a
/// full queue stalls the client at most `-L` 4 times, then drops), which fails the run.
fn queue() -> usize {
    knob("BENCH_QUEUE", 250_000)
}

/// Points per write (both relays): BENCH_BATCH, default carbon-c-relay's 2 500.
fn batch() -> usize {
    knob("BENCH_BATCH", 2_500)
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

use carbide_testkit::free_port;

/// (utime + stime seconds, peak RSS KiB) of a process.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    (ticks / 100.0, hwm)
}

/// A destination that reads everything and counts newlines, on every connection it accepts.
struct Sink {
    port: u16,
    lines: Arc<AtomicU64>,
}

fn sink() -> Sink {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let lines = Arc::new(AtomicU64::new(0));
    let count = lines.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let k = buf[..n].iter().filter(|&&b| b == b'\n').count();
                            count.fetch_add(k as u64, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    Sink { port, lines }
}

/// The input: `metrics` names, one line each per 10 s step, until `lines` lines; split into one
/// contiguous block per connection.
fn input(lines: usize, metrics: usize, conns: usize) -> Vec<Vec<u8>> {
    let t0 = 1_700_000_000u64;
    let per = lines.div_ceil(conns);
    (0..conns)
        .map(|c| {
            let mut b = Vec::with_capacity(per * 48);
            for i in c * per..((c + 1) * per).min(lines) {
                let m = i % metrics;
                let ts = t0 + 10 * (i / metrics) as u64;
                writeln!(b, "bench.host{:03}.cpu.m{m} {} {ts}", m % 500, i % 1000).unwrap();
            }
            b
        })
        .collect()
}

/// The lines in the senders' buffers.
fn lines_in(data: &[Vec<u8>]) -> u64 {
    data.iter()
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .sum()
}

struct Run {
    seconds: f64,
    /// Lines the sinks counted (carbon-c-relay sometimes drops some; carbide must not).
    delivered: u64,
    cpu: f64,
    rss_kib: u64,
    per_sink: Vec<u64>,
}

/// Sends `data` to `port` and waits until the sinks have counted `total` lines. Carbide must
/// deliver every line; carbon-c-relay (`lossy`) drops a few at times even on an idle machine, so
/// for it the run ends 10 s after the last line arrived, timed to that line, with the loss reported.
fn run(
    lossy: bool,
    name: &str,
    pid: u32,
    port: u16,
    data: &Arc<Vec<Vec<u8>>>,
    sinks: &[Sink],
    log: &Path,
) -> Run {
    let total = lines_in(data);
    let (cpu0, _) = usage(pid);
    let start = Instant::now();
    let senders: Vec<_> = (0..data.len())
        .map(|c| {
            let data = data.clone();
            let name = name.to_string();
            let log = log.to_path_buf();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                for chunk in data[c].chunks(64 * 1024) {
                    s.write_all(chunk).unwrap_or_else(|e| {
                        let log = std::fs::read_to_string(&log).unwrap_or_default();
                        panic!("{name}: sending failed (the relay dropped the connection?): {e}\n{log}")
                    });
                }
                s.flush().unwrap();
                // Closing with unread data in flight is fine: the relay reads to EOF.
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let sent_at = start.elapsed().as_secs_f64();
    let count = || sinks.iter().map(|s| s.lines.load(Ordering::Relaxed)).sum::<u64>();
    let mut last = (0, Instant::now());
    let mut last_at = start.elapsed();
    let ended = loop {
        let n = count();
        if n >= total {
            break start.elapsed();
        }
        if n != last.0 {
            last = (n, Instant::now());
            last_at = start.elapsed();
        } else if lossy && last.1.elapsed() > Duration::from_secs(10) {
            break last_at;
        } else if last.1.elapsed() > Duration::from_secs(20) {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{name}: the sinks counted {n} of {total} lines and nothing more came for 20 s; its log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let seconds = ended.as_secs_f64();
    // Anything beyond `total` would be lines the relay made up: wait a moment and check.
    std::thread::sleep(Duration::from_millis(300));
    let delivered = count();
    assert!(
        delivered <= total,
        "{name}: sinks counted more lines than were sent"
    );
    if delivered < total {
        eprintln!("{name}: LOST {} of {total} lines", total - delivered);
    }
    let (cpu1, rss_kib) = usage(pid);
    eprintln!(
        "{name}: {delivered} lines in {seconds:.2} s (sender done at {sent_at:.2} s), {:.0} lines/s, cpu {:.2} s, peak RSS {} KiB",
        delivered as f64 / seconds,
        cpu1 - cpu0,
        rss_kib
    );
    Run {
        seconds,
        delivered,
        cpu: cpu1 - cpu0,
        rss_kib,
        per_sink: sinks.iter().map(|s| s.lines.load(Ordering::Relaxed)).collect(),
    }
}

fn wait_listening(port: u16, child: &mut Kill, name: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = child.0.try_wait().unwrap() {
            panic!("{name} exited at start: {st}");
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{name} not listening");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn carbide(dir: &Path, data: &Arc<Vec<Vec<u8>>>) -> Run {
    let sinks: Vec<Sink> = (0..3).map(|_| sink()).collect();
    let port = free_port();
    let dests: Vec<String> = sinks
        .iter()
        .zip(["a", "b", "c"])
        .map(|(s, i)| format!("127.0.0.1:{}:{i}", s.port))
        .collect();
    let conf = format!(
        "[relay]
STORAGE_DIR = {d}/
LOG_DIR = {d}/
PID_DIR = {d}/
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {port}
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle}
RELAY_METHOD = consistent-hashing
ROUTER_HASH_TYPE = carbon_ch
REPLICATION_FACTOR = 1
DESTINATIONS = {dests}
DESTINATION_PROTOCOL = line
MAX_QUEUE_SIZE = {q}
MAX_DATAPOINTS_PER_MESSAGE = {b}
CARBON_METRIC_INTERVAL = 0
",
        d = dir.display(),
        pickle = free_port(),
        q = queue(),
        b = batch(),
        dests = dests.join(", ")
    );
    std::fs::write(dir.join("carbon.conf"), conf).unwrap();
    let log = std::fs::File::create(dir.join("carbide.log")).unwrap();
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_carbide"))
            .arg("relay")
            .arg("-c")
            .arg(dir.join("carbon.conf"))
            .arg("--spool-dir")
            .arg(dir.join("spool"))
            .arg("--no-admin")
            .args(
                std::env::var("BENCH_CARBIDE_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .env("CARBIDE_LOG", "warn")
            .env("TOKIO_WORKER_THREADS", WORKERS.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_listening(port, &mut child, "carbide relay");
    run(
        false,
        "carbide relay",
        child.0.id(),
        port,
        data,
        &sinks,
        &dir.join("carbide.log"),
    )
}

fn c_relay(dir: &Path, data: &Arc<Vec<Vec<u8>>>) -> Run {
    let sinks: Vec<Sink> = (0..3).map(|_| sink()).collect();
    let port = free_port();
    let members: Vec<String> = sinks
        .iter()
        .zip(["a", "b", "c"])
        .map(|(s, i)| format!("127.0.0.1:{}={i}", s.port))
        .collect();
    let conf = dir.join("c-relay.conf");
    std::fs::write(
        &conf,
        format!(
            "cluster c carbon_ch replication 1 {} ;\nmatch * send to c ;\n",
            members.join(" ")
        ),
    )
    .unwrap();
    let mut child = Kill(
        Command::new(C_RELAY)
            .arg("-f")
            .arg(&conf)
            .args(["-p", &port.to_string()])
            .args(["-w", &WORKERS.to_string()])
            .args(["-q", &queue().to_string()])
            .args(["-b", &batch().to_string()])
            .arg("-s")
            .arg("-l")
            .arg(dir.join("c-relay.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("c-relay.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    // No connection before it says it has started: carbon-c-relay 3.7.3 listens before its
    // workers exist, and a client connecting in that window resets or, now and then, crashes it
    // (SIGSEGV) — seen in this benchmark while it polled the port.
    let log = dir.join("c-relay.log");
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("startup sequence complete")
    {
        if let Some(st) = child.0.try_wait().unwrap() {
            panic!(
                "carbon-c-relay exited at start ({st}):\n{}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default(),
                std::fs::read_to_string(dir.join("c-relay.err")).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "carbon-c-relay did not finish starting"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run(
        true,
        "carbon-c-relay",
        child.0.id(),
        port,
        data,
        &sinks,
        &dir.join("c-relay.log"),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    assert!(
        Path::new(C_RELAY).is_file(),
        "{C_RELAY} missing: run scripts/install-test-deps.sh (Debian package carbon-c-relay)"
    );
    let lines = knob("BENCH_LINES", 5_000_000);
    let metrics = knob("BENCH_METRICS", 100_000);
    let conns = knob("BENCH_CONNECTIONS", 2).max(1);
    let rounds = knob("BENCH_ROUNDS", 3).max(1);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let data = Arc::new(input(lines, metrics, conns));
    let total = lines_in(&data);
    eprintln!(
        "{total} lines ({:.0} MiB) over {metrics} names, {conns} connections, {rounds} rounds",
        data.iter().map(Vec::len).sum::<usize>() as f64 / (1 << 20) as f64
    );
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for r in 0..rounds {
        let tmp = tempfile::tempdir().unwrap();
        // Alternate who goes first, so neither always gets the warmer machine.
        let order: [bool; 2] = if r % 2 == 0 { [true, false] } else { [false, true] };
        for carbide_turn in order {
            if carbide_turn && only != "c-relay" {
                ours.push(carbide(tmp.path(), &data));
            }
            if !carbide_turn && only != "carbide" {
                theirs.push(c_relay(tmp.path(), &data));
            }
        }
    }
    let show = |name: &str, runs: &[Run]| {
        let rate = median(runs.iter().map(|r| r.delivered as f64 / r.seconds).collect());
        let cpu = median(runs.iter().map(|r| r.cpu).collect());
        let rss = median(runs.iter().map(|r| r.rss_kib as f64 / 1024.0).collect());
        let rates: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.0}", r.delivered as f64 / r.seconds))
            .collect();
        let lost: Vec<String> = runs.iter().map(|r| (total - r.delivered).to_string()).collect();
        println!(
            "| {name} | {rate:.0} | {cpu:.2} | {:.2} | {rss:.0} | {} | {} | {:?} |",
            cpu * 1e6 / total as f64,
            rates.join(", "),
            lost.join(", "),
            runs[0].per_sink
        );
        (rate, cpu, rss)
    };
    println!(
        "\n| relay | lines/s delivered (median) | CPU s (median) | CPU s per 1 M lines | peak RSS MiB | lines/s of each round | lines lost each round | lines per sink (round 1) |"
    );
    println!("|---|---:|---:|---:|---:|---|---|---|");
    let a = (!ours.is_empty()).then(|| show("carbide relay", &ours));
    let b = (!theirs.is_empty()).then(|| show("carbon-c-relay 3.7", &theirs));
    if let (Some(a), Some(b)) = (a, b) {
        let per_round: Vec<String> = ours
            .iter()
            .zip(&theirs)
            .map(|(x, y)| format!("{:.2}×", y.seconds / x.seconds))
            .collect();
        println!(
            "\nratio: {:.2}× the lines/s (rounds: {}), {:.2}× less CPU, {:.2}× less peak RSS",
            a.0 / b.0,
            per_round.join(", "),
            b.1 / a.1,
            b.2 / a.2
        );
    }
}
