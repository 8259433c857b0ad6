//! SIGHUP makes `carbide relay` re-read relay-rules.conf and `carbide aggregator` re-read
//! aggregation-rules.conf and rewrite-rules.conf, without a restart and without losing the
//! connection to its destinations. A broken file on reload keeps the rules in use and the log
//! names the file and line. The files' mtimes are put back to what they were, so the aggregator's
//! own 10 s mtime poll cannot be what picked the change up: only the signal can.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod relay_common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use relay_common::{Dest, Proc, now, wait_until};

/// Rewrites `file` and gives it back the mtime it had (`touch -r` from a saved copy of it).
fn rewrite_keeping_mtime(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    let stamp = dir.join(format!("{file}.mtime"));
    if !stamp.exists() {
        std::fs::write(&stamp, "").unwrap();
        assert!(
            Command::new("touch")
                .arg("-r")
                .arg(&path)
                .arg(&stamp)
                .status()
                .unwrap()
                .success()
        );
    }
    std::fs::write(&path, text).unwrap();
    assert!(
        Command::new("touch")
            .arg("-r")
            .arg(&stamp)
            .arg(&path)
            .status()
            .unwrap()
            .success()
    );
}

fn relay_rules(to: u16, default: u16) -> String {
    format!(
        "[moved]\npattern = ^route\\.\ndestinations = 127.0.0.1:{to}\n\n\
         [default]\ndefault = true\ndestinations = 127.0.0.1:{default}\n"
    )
}

#[test]
fn sighup_reloads_relay_rules_and_a_broken_file_keeps_the_old_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (Dest::start(), Dest::start());
    std::fs::write(tmp.path().join("relay-rules.conf"), relay_rules(a.port, b.port)).unwrap();
    let mut relay = Proc::start(
        "relay",
        tmp.path(),
        &format!(
            "RELAY_METHOD = rules\nDESTINATIONS = 127.0.0.1:{}, 127.0.0.1:{}\n\
             DESTINATION_PROTOCOL = line\nCARBON_METRIC_INTERVAL = 0\n",
            a.port, b.port
        ),
    );
    let t = now();
    relay.send(&format!("route.one 1 {t}\nother.one 1 {t}\n"));
    wait_until(Duration::from_secs(20), "route.one at A, other.one at B", || {
        a.named("route.one").len() == 1 && b.named("other.one").len() == 1
    });

    // route.* now goes to B.
    rewrite_keeping_mtime(tmp.path(), "relay-rules.conf", &relay_rules(b.port, b.port));
    relay.signal("HUP");
    relay.wait_log("SIGHUP: rules re-read", 1);
    relay.send(&format!("route.two 2 {t}\n"));
    wait_until(Duration::from_secs(20), "route.two at B", || {
        b.named("route.two").len() == 1
    });
    assert!(
        a.named("route.two").is_empty(),
        "the old rule still routed route.two to A"
    );

    // A broken file: the log names file:line, and route.* keeps going to B.
    rewrite_keeping_mtime(
        tmp.path(),
        "relay-rules.conf",
        "[default]\ndefault = true\ndestinations = 127.0.0.1:1\n\n[bad]\npattern = (unclosed\ndestinations = 127.0.0.1:1\n",
    );
    relay.signal("HUP");
    relay.wait_log("keeping the previous rules", 1);
    let log = relay.log();
    let line = log
        .lines()
        .find(|l| l.contains("keeping the previous rules"))
        .unwrap();
    assert!(line.contains("relay-rules.conf:"), "file:line named: {line}");
    relay.send(&format!("route.three 3 {t}\n"));
    wait_until(Duration::from_secs(20), "route.three at B", || {
        b.named("route.three").len() == 1
    });
    assert!(a.named("route.three").is_empty());
    assert!(relay.alive(), "a bad reload must not stop the relay");
    assert_eq!(
        relay.log().matches("SIGHUP: rules re-read").count(),
        1,
        "{}",
        relay.log()
    );
}

#[test]
fn sighup_reloads_aggregation_and_rewrite_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = Dest::start();
    std::fs::write(
        tmp.path().join("aggregation-rules.conf"),
        "agg.<x>.first (1) = sum in.<x>.*\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("rewrite-rules.conf"), "[pre]\n").unwrap();
    let mut agg = Proc::start(
        "aggregator",
        tmp.path(),
        &format!(
            "DESTINATIONS = 127.0.0.1:{}\nDESTINATION_PROTOCOL = line\nFORWARD_ALL = False\n\
             CARBON_METRIC_INTERVAL = 0\n",
            dest.port
        ),
    );
    let t = now();
    agg.send(&format!("in.a.b 1 {t}\nin.a.c 2 {t}\nraw.a.d 100 {t}\n"));
    wait_until(Duration::from_secs(20), "agg.a.first", || {
        !dest.named("agg.a.first ").is_empty()
    });
    assert_eq!(dest.named("agg.a.first ")[0], format!("agg.a.first 3 {t}"));
    // The aggregator's admin /metrics counts what it received and computed.
    let (_, page) = agg.admin_get("/metrics");
    assert!(
        page.contains("\ncarbide_relay_points_received_total 3\n"),
        "{page}"
    );
    assert!(
        page.contains("\ncarbide_aggregator_points_emitted_total "),
        "{page}"
    );
    assert!(
        !page.contains("\ncarbide_aggregator_points_emitted_total 0\n"),
        "{page}"
    );

    // New output name and method, and a [pre] rewrite that turns raw.* into in.*.
    rewrite_keeping_mtime(
        tmp.path(),
        "aggregation-rules.conf",
        "agg.<x>.second (1) = max in.<x>.*\n",
    );
    rewrite_keeping_mtime(tmp.path(), "rewrite-rules.conf", "[pre]\n^raw\\. = in.\n");
    agg.signal("HUP");
    agg.wait_log("SIGHUP: rules re-read", 1);
    let t2 = t + 60;
    agg.send(&format!("in.a.b 1 {t2}\nraw.a.d 100 {t2}\n"));
    wait_until(Duration::from_secs(20), "agg.a.second", || {
        !dest.named("agg.a.second ").is_empty()
    });
    assert_eq!(
        dest.named("agg.a.second "),
        vec![format!("agg.a.second 100 {t2}")],
        "max over in.a.b and the rewritten raw.a.d"
    );
    let firsts = dest.named("agg.a.first ").len();

    // A broken aggregation rule: both files keep their rules (the rewrite change is not applied
    // either), and the log names file:line.
    rewrite_keeping_mtime(
        tmp.path(),
        "aggregation-rules.conf",
        "agg.<x>.second (1) = max in.<x>.*\nnot a rule\n",
    );
    rewrite_keeping_mtime(tmp.path(), "rewrite-rules.conf", "[pre]\n");
    agg.signal("HUP");
    agg.wait_log("keeping the previous rules", 1);
    let log = agg.log();
    let line = log
        .lines()
        .find(|l| l.contains("keeping the previous rules"))
        .unwrap();
    assert!(
        line.contains("aggregation-rules.conf:2"),
        "file:line named: {line}"
    );
    let t3 = t + 120;
    agg.send(&format!("raw.a.d 7 {t3}\n"));
    wait_until(Duration::from_secs(20), "agg.a.second at t3", || {
        dest.named("agg.a.second ")
            .iter()
            .any(|l| l.ends_with(&format!(" {t3}")))
    });
    assert!(
        dest.named("agg.a.second ")
            .contains(&format!("agg.a.second 7 {t3}"))
    );
    assert_eq!(
        dest.named("agg.a.first ").len(),
        firsts,
        "the old rules came back"
    );
    assert!(agg.alive());
}
