//! A destination that stays down while its spill file fills: by its size limit
//! (`--spill-max-mib`), or by the disk refusing writes (EFBIG under `ulimit -f`, which is what a
//! full disk looks like to one process). Either way `carbide relay` must keep running, drop the
//! points that do not fit with a counter (`dropped` on `/metrics`, `fullQueueDrops` in its
//! self-metrics; `spillErrors` too for a failing disk) and a rate-limited log line, deliver every
//! point to the live destination, and, when the dead one comes back, deliver to it every point
//! that fit (memory queue, then spill), in the order they were sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod relay_common;

use std::time::{Duration, Instant};

use relay_common::{Dest, Proc, free_port, now, wait_until};

const N: usize = 60_000;
const MAX_QUEUE: usize = 1000;

/// The sample of `name` for destination `dest` on the relay's `/metrics` page.
fn prom(relay: &Proc, name: &str, dest: u16) -> f64 {
    let (status, page) = relay.admin_get("/metrics");
    assert!(status.contains(" 200 "), "{status}\n{page}");
    let key = format!("carbide_relay_destination_{name}{{destination=\"127.0.0.1:{dest}\"}} ");
    let line = page
        .lines()
        .find(|l| l.starts_with(&key))
        .unwrap_or_else(|| panic!("{key:?} not on the page:\n{page}"));
    line[key.len()..].parse().unwrap()
}

/// `test.*` points a destination received, as (name, value), in order.
fn test_points(d: &Dest) -> Vec<(String, f64)> {
    d.named("test.")
        .iter()
        .map(|l| {
            let mut f = l.split(' ');
            let name = f.next().unwrap().to_string();
            (name, f.next().unwrap().parse().unwrap())
        })
        .collect()
}

fn sent(i: usize) -> (String, f64) {
    (format!("test.m{i:06}"), i as f64)
}

/// Sum of a dead destination's self-metric `what` as the live destination received it.
fn self_metric_sum(live: &Dest, dead: u16, what: &str) -> f64 {
    let suffix = format!(".destinations.127_0_0_1:{dead}:None.{what} ");
    live.named("carbon.relays.")
        .iter()
        .filter_map(|l| {
            let i = l.find(&suffix)?;
            l[i + suffix.len()..].split(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}

/// Runs the scenario; returns (dropped, spill errors) for the dead destination.
fn run(args: &[&str], fsize_kib: Option<u64>) -> (f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let live = Dest::start();
    let dead = free_port();
    std::fs::write(
        tmp.path().join("relay-rules.conf"),
        format!(
            "[test]\npattern = ^test\\.\ndestinations = 127.0.0.1:{l}, 127.0.0.1:{dead}\n\n\
             [default]\ndefault = true\ndestinations = 127.0.0.1:{l}\n",
            l = live.port
        ),
    )
    .unwrap();
    let mut relay = Proc::start_limited(
        "relay",
        tmp.path(),
        &format!(
            "RELAY_METHOD = rules\nDESTINATIONS = 127.0.0.1:{}, 127.0.0.1:{dead}\n\
             DESTINATION_PROTOCOL = line\nCARBON_METRIC_INTERVAL = 1\nMAX_QUEUE_SIZE = {MAX_QUEUE}\n",
            live.port
        ),
        args,
        fsize_kib,
    );
    let t = now();
    let started = Instant::now();
    relay.send(
        &(0..N)
            .map(|i| format!("test.m{i:06} {i} {t}\n"))
            .collect::<String>(),
    );
    wait_until(
        Duration::from_secs(60),
        "the live destination to get every point",
        || live.named("test.").len() >= N,
    );
    wait_until(
        Duration::from_secs(20),
        "the dead destination to see every point",
        || prom(&relay, "attempted_total", dead) >= N as f64,
    );
    let elapsed = started.elapsed().as_secs_f64();
    assert!(relay.alive(), "the relay died:\n{}", relay.log());
    assert_eq!(test_points(&live), (0..N).map(sent).collect::<Vec<_>>());

    let queued = prom(&relay, "queued", dead);
    let spilled = prom(&relay, "spilled_total", dead);
    let dropped = prom(&relay, "dropped_total", dead);
    let errors = prom(&relay, "spill_errors_total", dead);
    assert_eq!(queued, MAX_QUEUE as f64, "{}", relay.log());
    assert!(
        spilled > 0.0 && dropped > 0.0,
        "spilled {spilled} dropped {dropped}"
    );
    assert_eq!(queued + spilled + dropped, N as f64);
    assert_eq!(prom(&relay, "spill_queued", dead), spilled);
    assert_eq!(prom(&relay, "dropped_total", live.port), 0.0);
    // One drop line a second at most.
    let log = relay.log();
    let lines = log.matches("dropping point").count();
    assert!(
        lines >= 1 && lines as f64 <= elapsed + 2.0,
        "{lines} drop lines in {elapsed:.1} s:\n{log}"
    );
    wait_until(
        Duration::from_secs(20),
        "fullQueueDrops in the self-metrics",
        || self_metric_sum(&live, dead, "fullQueueDrops") == dropped,
    );
    assert_eq!(self_metric_sum(&live, dead, "spillErrors"), errors);

    // The destination returns: everything that fit arrives, in order, and nothing else.
    let back = Dest::start_on(dead);
    let fit = (queued + spilled) as usize;
    wait_until(Duration::from_secs(60), "the spill to be replayed", || {
        back.named("test.").len() >= fit && prom(&relay, "spill_queued", dead) == 0.0
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(test_points(&back), (0..fit).map(sent).collect::<Vec<_>>());
    assert!(relay.alive(), "the relay died:\n{}", relay.log());
    (dropped, errors)
}

#[test]
fn spill_file_at_its_size_limit_drops_the_rest_and_replays_what_fit() {
    let (dropped, errors) = run(&["--spill-max-mib", "1"], None);
    assert!(dropped > 0.0);
    assert_eq!(errors, 0.0, "a size limit is not a disk error");
}

#[test]
fn full_disk_drops_with_an_error_count_and_replays_what_fit() {
    // 256 KiB per file for the relay process: the spill file hits EFBIG long before its 1 GiB
    // limit (the log file is far below it).
    let (dropped, errors) = run(&[], Some(256));
    assert!(errors > 0.0);
    assert_eq!(errors, dropped, "every drop here is a disk error");
}
