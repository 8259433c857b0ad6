//! Whitelist and blacklist in the relay, against the real carbon-relay (Debian graphite-carbon
//! 1.1.7): the same stream goes through both, each in front of its own line sink, and the sets of
//! names that come out must be equal. With USE_WHITELIST off neither file is read (everything
//! passes, the blacklist too); with it on, the blacklist drops first and a non-empty whitelist
//! keeps only its matches; when the files change, both pick up the new lists without a signal
//! (carbon re-reads them every 10 s).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod relay_common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use relay_common::aggregator_oracle::{Guard, send_all, start_carbon_daemon, wait_quiet};
use relay_common::{Dest, Proc, free_port, now};

const CARBON_RELAY: &str = "/usr/bin/carbon-relay";

const BLACKLIST: &str = "# noisy things\n\\.noisy\\.\n^tmp\\.\n";
const WHITELIST: &str = "^app\\.\n^db\\.\n^tmp\\.\n";
/// The lists after the edit: the blacklist empty (comments only), the whitelist narrower.
const BLACKLIST2: &str = "# nothing\n";
const WHITELIST2: &str = "^db\\.\n";

/// The relay settings both programs read.
fn relay_settings(dest: u16, use_whitelist: bool) -> String {
    format!(
        "RELAY_METHOD = consistent-hashing\nDESTINATIONS = 127.0.0.1:{dest}\n\
         DESTINATION_PROTOCOL = line\nREPLICATION_FACTOR = 1\nCARBON_METRIC_INTERVAL = 0\n\
         USE_WHITELIST = {}\nMAX_QUEUE_SIZE = 100000\n",
        if use_whitelist { "True" } else { "False" }
    )
}

fn write_lists(dir: &Path, black: &str, white: &str) {
    std::fs::write(dir.join("blacklist.conf"), black).unwrap();
    std::fs::write(dir.join("whitelist.conf"), white).unwrap();
}

/// Starts carbon-relay in the foreground on dir/conf/carbon.conf (lists beside it).
fn start_carbon_relay(dir: &Path, dest: u16, use_whitelist: bool) -> (Guard, u16) {
    assert!(
        Path::new(CARBON_RELAY).exists(),
        "{CARBON_RELAY} missing: install Debian graphite-carbon (scripts/install-test-deps.sh)"
    );
    for d in ["conf", "log", "run"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let (line, pickle) = (free_port(), free_port());
    let d = dir.display();
    std::fs::write(
        dir.join("conf/carbon.conf"),
        format!(
            "[relay]\nSTORAGE_DIR = {d}/\nLOG_DIR = {d}/log/\nPID_DIR = {d}/run/\nUSER =\n\
             LINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {line}\n\
             PICKLE_RECEIVER_INTERFACE = 127.0.0.1\nPICKLE_RECEIVER_PORT = {pickle}\n\
             LOG_LISTENER_CONNECTIONS = False\nENABLE_LOGROTATION = False\n{}",
            relay_settings(dest, use_whitelist)
        ),
    )
    .unwrap();
    write_lists(&dir.join("conf"), BLACKLIST, WHITELIST);
    // carbon's start-up insists on it even for a relay.
    std::fs::write(
        dir.join("conf/storage-schemas.conf"),
        "[default]\npattern = .*\nretentions = 1s:1h\n",
    )
    .unwrap();
    let g = start_carbon_daemon(CARBON_RELAY, dir, &dir.join("conf/carbon.conf"), line);
    (g, line)
}

/// Names on every side of the lists: whitelisted, blacklisted within the whitelist, both, and
/// neither; `round` makes each round's names distinct.
fn stream(round: u32) -> String {
    let t = now();
    let mut s = String::new();
    for i in 0..40 {
        for prefix in ["app", "db", "web", "tmp", "app.noisy", "db.x.noisy", "noisy"] {
            s.push_str(&format!("{prefix}.r{round}.m{i} {i} {t}\n"));
        }
    }
    s
}

/// The names a sink received in `round`.
fn names(d: &Dest, round: u32) -> BTreeSet<String> {
    let tag = format!(".r{round}.");
    d.lines()
        .iter()
        .filter_map(|l| l.split(' ').next())
        .filter(|n| n.contains(&tag))
        .map(str::to_string)
        .collect()
}

/// Sends round `round` to both relays and waits until both sinks are quiet; returns what each
/// passed on (carbon, carbide).
fn round(ports: [u16; 2], sinks: [&Dest; 2], r: u32) -> (BTreeSet<String>, BTreeSet<String>) {
    send_all(&ports, &stream(r));
    wait_quiet(
        Duration::from_secs(30),
        // carbon-relay can stall for a second or more on a loaded machine.
        Duration::from_millis(3000),
        "both sinks",
        || {
            let (a, b) = (names(sinks[0], r).len(), names(sinks[1], r).len());
            (a > 0 && b > 0).then_some(a + b)
        },
    );
    (names(sinks[0], r), names(sinks[1], r))
}

fn prom(relay: &Proc, name: &str) -> f64 {
    let (_, page) = relay.admin_get("/metrics");
    let key = format!("{name} ");
    let line = page
        .lines()
        .find(|l| l.starts_with(&key))
        .unwrap_or_else(|| panic!("{key:?} not on the page:\n{page}"));
    line[key.len()..].parse().unwrap()
}

/// Both relays with the same lists and USE_WHITELIST; returns them and their sinks.
fn both(use_whitelist: bool) -> (tempfile::TempDir, Guard, u16, Proc, [Dest; 2]) {
    let tmp = tempfile::tempdir().unwrap();
    let sinks = [Dest::start(), Dest::start()];
    let (carbon, carbon_line) = start_carbon_relay(&tmp.path().join("carbon"), sinks[0].port, use_whitelist);
    let ours = tmp.path().join("carbide");
    std::fs::create_dir_all(&ours).unwrap();
    write_lists(&ours, BLACKLIST, WHITELIST);
    let relay = Proc::start("relay", &ours, &relay_settings(sinks[1].port, use_whitelist));
    (tmp, carbon, carbon_line, relay, sinks)
}

#[test]
fn lists_are_ignored_without_use_whitelist_as_carbon_relay_does() {
    let (_tmp, _carbon, carbon_line, relay, sinks) = both(false);
    let (theirs, ours) = round([carbon_line, relay.line], [&sinks[0], &sinks[1]], 1);
    assert_eq!(theirs.len(), 7 * 40, "carbon-relay passes everything");
    assert_eq!(ours, theirs);
    assert_eq!(prom(&relay, "carbide_relay_blacklist_matches_total"), 0.0);
    assert_eq!(prom(&relay, "carbide_relay_whitelist_rejects_total"), 0.0);
}

#[test]
fn lists_filter_and_reload_as_carbon_relay_does() {
    let (tmp, _carbon, carbon_line, relay, sinks) = both(true);
    let ports = [carbon_line, relay.line];
    let (theirs, ours) = round(ports, [&sinks[0], &sinks[1]], 1);
    // app and db, less their noisy ones (tmp is whitelisted but blacklisted).
    assert_eq!(theirs.len(), 2 * 40, "{theirs:?}");
    assert_eq!(ours, theirs);
    // Blacklisted: tmp, app.noisy, db.x.noisy (`\.noisy\.` needs a dot before); then rejected:
    // web and noisy.
    assert_eq!(prom(&relay, "carbide_relay_blacklist_matches_total"), 3.0 * 40.0);
    assert_eq!(prom(&relay, "carbide_relay_whitelist_rejects_total"), 2.0 * 40.0);
    assert_eq!(prom(&relay, "carbide_relay_points_received_total"), 2.0 * 40.0);

    // Edit the lists; carbon looks every 10 s, carbide every 5 s.
    write_lists(&tmp.path().join("carbon/conf"), BLACKLIST2, WHITELIST2);
    write_lists(&tmp.path().join("carbide"), BLACKLIST2, WHITELIST2);
    std::thread::sleep(Duration::from_secs(11));
    relay.wait_log("whitelist and blacklist re-read", 1);
    let (theirs, ours) = round(ports, [&sinks[0], &sinks[1]], 2);
    // db, the noisy one included now.
    assert_eq!(theirs.len(), 2 * 40, "{theirs:?}");
    assert!(theirs.iter().all(|n| n.starts_with("db.")), "{theirs:?}");
    assert_eq!(ours, theirs);
}
