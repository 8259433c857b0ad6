//! `carbide relay` reports on each destination the way carbon-relay does, as
//! `carbon.relays.<host>.destinations.<host_port_instance>.*` points in its own output: read back
//! here from the live destination they are routed to, while a second destination is down.
//! Counters are per interval (summed here over the intervals), queue sizes and `connected` are
//! gauges. The down destination takes exactly the points sent, so every figure is exact: with a
//! spill directory its queue fills (MAX_QUEUE_SIZE) and the rest spills; without one it holds
//! MAX_QUEUE_SIZE × 1.25 and drops the rest (fullQueueDrops).
//!
//! The same figures, as totals since start, are on the admin port's Prometheus `/metrics`, one
//! sample per destination; they must agree with the self-metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod relay_common;

use std::collections::BTreeMap;
use std::time::Duration;

use relay_common::{Dest, Proc, free_port, now, write_conf};

/// carbon's HOSTNAME: the host name with dots as `_`.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .replace('.', "_")
}

/// Per self-metric name (after `destinations.<dest>.`): every value reported so far, in order.
type Reports = BTreeMap<String, Vec<f64>>;

/// The [`Reports`] under `prefix` that `dest` has received.
fn reports(dest: &Dest, prefix: &str) -> Reports {
    let mut out: Reports = BTreeMap::new();
    for l in dest.named(prefix) {
        let mut f = l.split(' ');
        let (name, value) = (f.next().unwrap(), f.next().unwrap());
        out.entry(name[prefix.len()..].to_string())
            .or_default()
            .push(value.parse().unwrap());
    }
    out
}

/// The sample of `name` for `destination` (or the unlabelled one) on a `/metrics` page.
fn prom(page: &str, name: &str, destination: Option<&str>) -> f64 {
    let key = match destination {
        Some(d) => format!("{name}{{destination=\"{d}\"}} "),
        None => format!("{name} "),
    };
    let line = page
        .lines()
        .find(|l| l.starts_with(&key))
        .unwrap_or_else(|| panic!("{key:?} not on the page:\n{page}"));
    line[key.len()..].parse().unwrap()
}

fn sum(r: &Reports, k: &str) -> f64 {
    r.get(k).map_or(0.0, |v| v.iter().sum())
}

fn last(r: &Reports, k: &str) -> f64 {
    r.get(k).and_then(|v| v.last().copied()).unwrap_or(f64::NAN)
}

const N: usize = 100;
/// Above one report's burst of self-metrics (25 points), so the live destination never overflows.
const MAX_QUEUE: usize = 40;

/// Starts a relay in front of `live` and a dead port, sends N points to the dead one (the
/// self-metrics go to the live one), and waits until the dead destination's counters have seen
/// them all; returns the (live, dead) reports, the relay's log, and its `/metrics` page with the
/// (live, dead) destination labels.
fn run(spill: bool) -> (Reports, Reports, String, Metrics) {
    let tmp = tempfile::tempdir().unwrap();
    let live = Dest::start();
    let dead = free_port();
    std::fs::write(
        tmp.path().join("relay-rules.conf"),
        format!(
            "[test]\npattern = ^test\\.\ndestinations = 127.0.0.1:{dead}\n\n\
             [default]\ndefault = true\ndestinations = 127.0.0.1:{l}\n",
            l = live.port
        ),
    )
    .unwrap();
    let args: &[&str] = if spill { &[] } else { &["--no-spill"] };
    let relay = Proc::start_with(
        "relay",
        tmp.path(),
        &format!(
            "RELAY_METHOD = rules\nDESTINATIONS = 127.0.0.1:{}, 127.0.0.1:{dead}\n\
             DESTINATION_PROTOCOL = line\nCARBON_METRIC_INTERVAL = 1\nMAX_QUEUE_SIZE = {MAX_QUEUE}\n\
             MAX_DATAPOINTS_PER_MESSAGE = 7\n",
            live.port
        ),
        args,
    );
    let t = now();
    relay.send(&(0..N).map(|i| format!("test.m{i} {i} {t}\n")).collect::<String>());
    let base = format!("carbon.relays.{}.destinations.", host());
    let live_prefix = format!("{base}127_0_0_1:{}:None.", live.port);
    let dead_prefix = format!("{base}127_0_0_1:{dead}:None.");
    let start = std::time::Instant::now();
    loop {
        let d = reports(&live, &dead_prefix);
        if sum(&d, "attemptedRelays") >= N as f64 && d.get("queued").is_some_and(|v| v.len() >= 2) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no report of {N} points for the dead destination: {d:?}\n{:?}\n{}",
            live.lines(),
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        live.named("test.").is_empty(),
        "the rules send test.* to the dead destination only"
    );
    let (status, page) = relay.admin_get("/metrics");
    assert!(status.contains(" 200 "), "{status}\n{page}");
    let metrics = Metrics {
        page,
        live: format!("127.0.0.1:{}", live.port),
        dead: format!("127.0.0.1:{dead}"),
    };
    (
        reports(&live, &live_prefix),
        reports(&live, &dead_prefix),
        relay.log(),
        metrics,
    )
}

/// A relay's `/metrics` page and its two destinations' labels.
struct Metrics {
    page: String,
    live: String,
    dead: String,
}

impl Metrics {
    fn live(&self, name: &str) -> f64 {
        prom(
            &self.page,
            &format!("carbide_relay_destination_{name}"),
            Some(&self.live),
        )
    }
    fn dead(&self, name: &str) -> f64 {
        prom(
            &self.page,
            &format!("carbide_relay_destination_{name}"),
            Some(&self.dead),
        )
    }
    fn role(&self, name: &str) -> f64 {
        prom(&self.page, name, None)
    }
}

#[test]
fn destination_counters_with_spilling() {
    let (live, dead, log, m) = run(true);
    assert_eq!(last(&live, "connected"), 1.0, "{live:?}\n{log}");
    // The live destination carries the self-metrics: what it reports sent, it received.
    assert!(sum(&live, "sent") > 0.0, "{live:?}");
    assert!(sum(&live, "batchesSent") > 0.0, "{live:?}");
    assert_eq!(sum(&live, "fullQueueDrops"), 0.0);
    assert_eq!(sum(&live, "spilled"), 0.0);

    assert_eq!(last(&dead, "connected"), 0.0, "{dead:?}");
    assert_eq!(sum(&dead, "attemptedRelays"), N as f64, "{dead:?}");
    assert_eq!(sum(&dead, "sent"), 0.0);
    assert_eq!(sum(&dead, "queuedUntilConnected"), N as f64);
    assert_eq!(last(&dead, "queued"), MAX_QUEUE as f64);
    assert_eq!(sum(&dead, "spilled"), (N - MAX_QUEUE) as f64);
    assert_eq!(last(&dead, "spillQueued"), (N - MAX_QUEUE) as f64);
    assert_eq!(sum(&dead, "fullQueueDrops"), 0.0);
    assert!(
        dead.get("relayMaxQueueLength")
            .unwrap()
            .contains(&(MAX_QUEUE as f64))
    );
    assert!(sum(&dead, "connectFailures") >= 1.0);

    // /metrics: the same figures as totals.
    assert_eq!(
        m.role("carbide_relay_points_received_total"),
        N as f64,
        "{}",
        m.page
    );
    assert_eq!(m.live("connected"), 1.0);
    assert_eq!(m.dead("connected"), 0.0);
    assert_eq!(m.dead("attempted_total"), N as f64);
    assert_eq!(m.dead("sent_total"), 0.0);
    assert_eq!(m.dead("queued"), MAX_QUEUE as f64);
    assert_eq!(m.dead("spilled_total"), (N - MAX_QUEUE) as f64);
    assert_eq!(m.dead("spill_queued"), (N - MAX_QUEUE) as f64);
    assert_eq!(m.dead("dropped_total"), 0.0);
    assert_eq!(m.dead("queued_until_connected_total"), N as f64);
    assert!(m.dead("connect_failures_total") >= sum(&dead, "connectFailures"));
    // Sent points are the self-metrics, some reported after this page was read.
    assert!(m.live("sent_total") >= sum(&live, "sent") && m.live("sent_total") > 0.0);
    assert!(m.live("batches_total") > 0.0);
    assert!(m.role("carbide_resident_memory_bytes") > 0.0);
}

#[test]
fn destination_counters_without_spilling_count_drops() {
    let (live, dead, log, m) = run(false);
    assert_eq!(last(&live, "connected"), 1.0, "{live:?}\n{log}");
    assert_eq!(sum(&live, "fullQueueDrops"), 0.0);
    let held = MAX_QUEUE + MAX_QUEUE / 4;
    assert_eq!(sum(&dead, "attemptedRelays"), N as f64, "{dead:?}");
    assert_eq!(last(&dead, "queued"), held as f64);
    assert_eq!(sum(&dead, "fullQueueDrops"), (N - held) as f64);
    assert_eq!(sum(&dead, "spilled"), 0.0);
    assert_eq!(sum(&dead, "queuedUntilConnected"), held as f64);
    assert_eq!(last(&dead, "connected"), 0.0);

    assert_eq!(m.dead("attempted_total"), N as f64, "{}", m.page);
    assert_eq!(m.dead("queued"), held as f64);
    assert_eq!(m.dead("dropped_total"), (N - held) as f64);
    assert_eq!(m.dead("spilled_total"), 0.0);
    assert_eq!(m.dead("spill_queued"), 0.0);
    assert_eq!(m.live("dropped_total"), 0.0);
}

#[test]
fn an_admin_address_in_use_is_a_start_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    write_conf(
        "relay",
        tmp.path(),
        &format!(
            "RELAY_METHOD = consistent-hashing\nDESTINATIONS = 127.0.0.1:{}\n",
            free_port()
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_carbide"))
        .arg("relay")
        .arg("-c")
        .arg(tmp.path().join("carbon.conf"))
        .arg("--no-spill")
        .arg(format!("--admin={addr}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for admin HTTP on {addr}")),
        "{err}"
    );
}

#[test]
fn the_default_admin_port_taken_is_only_a_warning() {
    use relay_common::aggregator_oracle::{Guard, wait_port};
    let tmp = tempfile::tempdir().unwrap();
    // Whoever holds 127.0.0.1:7081 (this test, or anything else on the host), the relay must start.
    let _held = std::net::TcpListener::bind("127.0.0.1:7081");
    let line = write_conf(
        "relay",
        tmp.path(),
        &format!(
            "RELAY_METHOD = consistent-hashing\nDESTINATIONS = 127.0.0.1:{}\n",
            free_port()
        ),
    );
    let log = tmp.path().join("relay.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut relay = Guard(
        std::process::Command::new(env!("CARGO_BIN_EXE_carbide"))
            .arg("relay")
            .arg("-c")
            .arg(tmp.path().join("carbon.conf"))
            .arg("--no-spill")
            .env("CARBIDE_LOG", "info")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    wait_port(line, &mut relay, "carbide relay");
    relay_common::wait_until(Duration::from_secs(10), "the warning", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("cannot listen for admin HTTP on 127.0.0.1:7081")
    });
}
