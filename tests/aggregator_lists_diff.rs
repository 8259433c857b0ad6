//! Whitelist and blacklist in the aggregator, against the real carbon-aggregator (Debian
//! graphite-carbon 1.1.7). Both read the same carbon.conf (USE_WHITELIST, FORWARD_ALL), the same
//! aggregation and rewrite rules and the same lists, get the same stream, and send to their own
//! line sink; the last value of every (aggregate, interval), every forwarded raw point, and the
//! self-metric counters (blacklistMatches, whitelistRejects, metricsReceived) must agree.
//!
//! carbon applies the lists in the receiver (protocols.py `metricReceived`): to the name as
//! received, before the `[pre]` rewrite and before aggregation, then drops NaN values. So a
//! blacklisted name never reaches a buffer nor FORWARD_ALL, a name the rewrite turns into a
//! blacklisted one still does, and the aggregates (`metricGenerated`) are never filtered, even
//! when their own names are listed. carbon re-reads each file every 10 s when its mtime changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod relay_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_common::aggregator_oracle::{
    AggConf, Parsed, assert_same_outputs, parse, send_all, start_carbon_aggregator, wait_quiet, write_conf,
};
use relay_common::{Dest, Proc, free_port, now, wait_until};

const RULES: &str = "\
<env>.agg.<metric>.sum (1) = sum <env>.host*.<metric>
<env>.agg.<metric>.count (1) = count <env>.host*.<metric>
all.<rest>.total (1) = sum deep.<<rest>>
";

const REWRITE: &str = "[pre]\n^incoming\\. = prod.\n";

/// Round 1: `^prod\.host2\.` drops prod.host2 as received, not incoming.host2 (which the rewrite
/// then names prod.host2); `\.total$` would drop the aggregate all.a.b.total if aggregates were
/// filtered; `^probe\.b` keeps the reload probe out until the edit.
const BLACKLIST1: &str = "# before the rewrite\n^prod\\.host2\\.\n\\.noisy\\.\n\\.total$\n^probe\\.b\n";
const WHITELIST1: &str = "^prod\\.\n^incoming\\.\n^deep\\.\n^other\\.\n";
/// Round 2, written while both run: noisy and tmp pass, deep and other are rejected.
const BLACKLIST2: &str = "# edited\n^incoming\\.host1\\.\n";
const WHITELIST2: &str = "^prod\\.\n^incoming\\.\n^tmp\\.\n^probe\\.\n";

/// Both programs' conf directory gets the same files; `line`/`pickle`/`dest` differ.
fn setup(dir: &Path, line: u16, dest: u16) -> PathBuf {
    let conf = write_conf(
        dir,
        &AggConf {
            line,
            pickle: free_port(),
            dest,
            max_intervals: 100,
            forward_all: true,
            rules: RULES,
            rewrite: REWRITE,
        },
    );
    // Self-metrics every second carry the list counters; the lists are read.
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("CARBON_METRIC_INTERVAL = 0\n", "CARBON_METRIC_INTERVAL = 1\n");
    assert!(text.contains("CARBON_METRIC_INTERVAL = 1\n"));
    std::fs::write(&conf, text + "USE_WHITELIST = True\n").unwrap();
    write_lists(conf.parent().unwrap(), BLACKLIST1, WHITELIST1);
    conf
}

/// Replaces each list whole (write, then rename), so no reader sees a half-written file; the
/// whitelist first, so that carbon, should it look in between, still drops the probe by the
/// blacklist.
fn write_lists(dir: &Path, black: &str, white: &str) {
    for (name, text) in [("whitelist.conf", white), ("blacklist.conf", black)] {
        let tmp = dir.join(format!(".{name}.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

const HOSTS: i64 = 5;

/// One round at `times`: three environments × 5 hosts × {cpu, mem, noisy.x}, `deep.*` (the
/// `<<rest>>` rule), a name no rule matches (`other.thing`), one no list admits, NaN values on
/// a blacklisted, a rejected and an admitted name, and infinite and NaN timestamps on listed-out
/// names.
fn stream(times: impl IntoIterator<Item = i64>, round: i64) -> String {
    let mut s = String::new();
    for t in times {
        for (e, env) in ["prod", "incoming", "tmp"].into_iter().enumerate() {
            for h in 0..HOSTS {
                for (m, metric) in ["cpu", "mem", "noisy.x"].into_iter().enumerate() {
                    let v = ((h * 31 + t * 7 + round * 3 + m as i64 * 11 + e as i64 * 5) % 97) as f64 + 0.5;
                    s.push_str(&format!("{env}.host{h}.{metric} {v} {t}\n"));
                }
            }
        }
        for (i, name) in ["deep.a.b", "deep.noisy.c", "other.thing", "unlisted.metric"]
            .into_iter()
            .enumerate()
        {
            s.push_str(&format!("{name} {} {t}\n", (t % 50) as f64 + i as f64 * 0.25));
        }
        s.push_str(&format!(
            "prod.host2.cpu nan {t}\ntmp.nan nan {t}\nprod.host0.nan nan {t}\n"
        ));
        // Timestamps carbon's int() refuses, which would cost the connection were the names
        // not listed out first: blacklisted in this round, and never whitelisted.
        let black = if round == 1 {
            "prod.host2"
        } else {
            "incoming.host1"
        };
        s.push_str(&format!("{black}.inf 1 inf\nunlisted.metric 1 nan\n"));
    }
    s
}

/// Output lines of the data (not self-metrics, not probes).
fn data(d: &Dest) -> Vec<String> {
    d.lines()
        .into_iter()
        .filter(|l| !l.starts_with("carbon.") && !l.starts_with("probe."))
        .collect()
}

/// The sum of every self-metric report of `counter` (each covers one interval).
fn counter(d: &Dest, counter: &str) -> f64 {
    let suffix = format!(".{counter}");
    d.lines()
        .iter()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let name = f.next()?;
            (name.starts_with("carbon.aggregator.") && name.ends_with(&suffix))
                .then(|| f.next()?.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

fn probes_seen(d: &Dest) -> usize {
    d.lines().iter().filter(|l| l.starts_with("probe.b.")).count()
}

/// Sends `text` to both and waits until each sink has more data lines than `before` and both
/// have been quiet for 3 s (carbon's aggregates come at its 1 s ticks; it can stall on a loaded
/// machine).
fn round(ports: [u16; 2], sinks: [&Dest; 2], text: &str) {
    let before = [data(sinks[0]).len(), data(sinks[1]).len()];
    send_all(&ports, text);
    wait_quiet(
        Duration::from_secs(30),
        Duration::from_secs(3),
        "both sinks",
        || {
            let (a, b) = (data(sinks[0]).len(), data(sinks[1]).len());
            (a > before[0] && b > before[1]).then_some(a + b)
        },
    );
}

/// Asserts carbon's and carbide's outputs are the same; returns carbon's.
fn same_outputs(sinks: [&Dest; 2]) -> Parsed {
    let carbon = parse(&data(sinks[0]));
    assert_same_outputs(&carbon, &parse(&data(sinks[1])));
    carbon
}

/// The three list counters, carbon's then carbide's, less `probes` (rejected, admitted) per side.
fn same_counters(sinks: [&Dest; 2], probes: [(f64, f64); 2]) -> [f64; 3] {
    let get = |i: usize| {
        let (rejected, admitted) = probes[i];
        [
            counter(sinks[i], "blacklistMatches") - rejected,
            counter(sinks[i], "whitelistRejects"),
            counter(sinks[i], "metricsReceived") - admitted,
        ]
    };
    let (c, o) = (get(0), get(1));
    assert_eq!(
        c, o,
        "[blacklistMatches, whitelistRejects, metricsReceived]: carbon {c:?}, carbide {o:?}"
    );
    c
}

#[test]
fn aggregator_lists_match_carbon_aggregator() {
    let tmp = tempfile::tempdir().unwrap();
    let sinks = [Dest::start(), Dest::start()];
    let sinks = [&sinks[0], &sinks[1]];
    let (cl, ol) = (free_port(), free_port());
    let cdir = tmp.path().join("carbon");
    let carbon_conf = setup(&cdir, cl, sinks[0].port);
    let our_conf = setup(&tmp.path().join("carbide"), ol, sinks[1].port);
    let _carbon = start_carbon_aggregator(&cdir, &carbon_conf, cl);
    let ours = Proc::start_on("aggregator", &our_conf, ol, &["--instance=a", "--no-spill"]);
    let ports = [cl, ol];

    // Round 1.
    let t1 = now();
    let times1 = (t1 - 4)..t1;
    round(ports, sinks, &stream(times1.clone(), 1));
    let (agg, raw) = same_outputs(sinks);
    let t = times1.start;
    // prod.host2 dropped as received; incoming.host2 became prod.host2 after the lists.
    assert_eq!(agg.get(&("prod.agg.cpu.count".into(), t)), Some(&9.0), "{agg:?}");
    assert_eq!(raw[&("prod.host2.cpu".into(), t)].len(), 1);
    assert_eq!(raw[&("prod.host0.cpu".into(), t)].len(), 2, "FORWARD_ALL");
    // Aggregates are not filtered, though all.a.b.total is blacklisted and not whitelisted.
    assert!(agg.contains_key(&("all.a.b.total".into(), t)), "{agg:?}");
    assert!(!agg.contains_key(&("all.noisy.c.total".into(), t)));
    assert!(!agg.keys().any(|(n, _)| n.starts_with("tmp.")), "{agg:?}");
    assert!(raw.contains_key(&("other.thing".into(), t)));
    for gone in [
        "unlisted.metric",
        "prod.host0.noisy.x",
        "tmp.host0.cpu",
        "deep.noisy.c",
    ] {
        assert!(!raw.contains_key(&(gone.into(), t)), "{gone} forwarded");
    }
    let c1 = same_counters(sinks, [(0.0, 0.0); 2]);
    assert!(c1.iter().all(|&n| n > 0.0), "{c1:?}");

    // The edit, picked up while running (carbon looks every 10 s, carbide every 5 s). A probe
    // passes only under both new lists; under the old ones the blacklist drops it first (carbon
    // re-reads the whitelist before the blacklist, so the same in between).
    write_lists(&cdir.join("conf"), BLACKLIST2, WHITELIST2);
    write_lists(&tmp.path().join("carbide/conf"), BLACKLIST2, WHITELIST2);
    let mut sent = 0;
    wait_until(Duration::from_secs(30), "both to re-read the lists", || {
        if probes_seen(sinks[0]) > 0 && probes_seen(sinks[1]) > 0 {
            return true;
        }
        sent += 1;
        send_all(&ports, &format!("probe.b.{sent} 1 {}\n", now()));
        std::thread::sleep(Duration::from_millis(250));
        false
    });
    ours.wait_log("whitelist and blacklist re-read", 1);

    // Round 2, in later intervals than round 1.
    let t2 = now().max(t1 + 3);
    let times2 = (t2 - 3)..t2;
    round(ports, sinks, &stream(times2.clone(), 2));
    let (agg, raw) = same_outputs(sinks);
    let t = times2.start;
    assert_eq!(agg.get(&("tmp.agg.cpu.count".into(), t)), Some(&5.0), "{agg:?}");
    // incoming.host1 dropped now, prod.host2 back.
    assert_eq!(agg.get(&("prod.agg.cpu.count".into(), t)), Some(&9.0), "{agg:?}");
    assert_eq!(raw[&("prod.host1.cpu".into(), t)].len(), 1);
    assert!(raw.contains_key(&("prod.host0.noisy.x".into(), t)));
    assert!(!raw.contains_key(&("other.thing".into(), t)));
    assert!(!agg.contains_key(&("all.a.b.total".into(), t)));
    let probes = |d: &Dest| {
        let seen = probes_seen(d) as f64;
        (sent as f64 - seen, seen)
    };
    let c2 = same_counters(sinks, [probes(sinks[0]), probes(sinks[1])]);
    assert!(c2.iter().zip(c1).all(|(b, a)| *b > a), "{c1:?} then {c2:?}");
}
