//! `carbide serve --aggregation-rules --rewrite-rules` is carbon-aggregator-cache: received points
//! run rewrite `[pre]`, the aggregator and rewrite `[post]`, and what comes out lands in the
//! local cache and so in whisper.
//!
//! The real carbon-aggregator (Debian graphite-carbon 1.1.7; aggregator-cache runs the same
//! processors with `write` in place of `relay`) reads the same rule files and the same stream, and
//! sends what it emits to a capture listener. Every aggregate it emits for an interval — the last
//! one, after late points re-opened the interval — must be the value in serve's whisper file for
//! that slot, with no other slots filled; every raw point it forwards (FORWARD_ALL, under its
//! `[post]` name) must be in whisper too. A second serve with `--forward-all false` stores the
//! same aggregates and no raw point at all, as carbon does without FORWARD_ALL.
//!
//! Frequencies are 10 s and 20 s so that every interval is one slot of serve's 10 s retention.
//!
//! Without an oracle: points from every receiver — line, pickle, UDP — and StatsD's flushes (which
//! carbon would receive over TCP) all pass `[pre]` and the aggregator, and what the aggregator
//! still holds at SIGTERM is computed into whisper before the process exits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;
mod relay_common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relay_common::aggregator_oracle::{
    AggConf, Guard, close, input, is_aggregate, last_values, send_all, start_carbon_aggregator, wait_port,
    wait_quiet, write_conf,
};
use relay_common::{Dest, free_port, now, wait_until};

const RULES: &str = "\
<env>.agg.<metric>.sum (10) = sum <env>.host*.<metric>
<env>.agg.<metric>.avg (10) = avg <env>.host*.<metric>
<env>.agg.<metric>.min (20) = min <env>.host*.<metric>
<env>.agg.<metric>.max (10) = max <env>.host*.<metric>
<env>.agg.<metric>.p50 (10) = p50 <env>.host*.<metric>
<env>.agg.<metric>.p90 (20) = p90 <env>.host*.<metric>
<env>.agg.<metric>.p999 (10) = p999 <env>.host*.<metric>
<env>.agg.<metric>.count (10) = count <env>.host*.<metric>
all.<rest>.total (10) = sum deep.<<rest>>
";

const REWRITE: &str = "\
[pre]
^incoming\\. = prod.

[post]
^prod\\.host = h.prod.host
";

/// A `carbide serve` with only its line receiver open (every other port 0) and the rule files.
fn start_serve(data: &Path, conf_dir: &Path, line: u16, extra: &[&str]) -> Guard {
    let mut g = Guard(
        Command::new(env!("CARGO_BIN_EXE_carbide"))
            .arg("serve")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--line-port={line}"))
            .args([
                "--pickle-port=0",
                "--carbonlink-port=0",
                "--admin-port=0",
                "--web-port=0",
                "--statsd-port=0",
                "--statsd-admin-port=0",
                "--metric-interval=0",
                "--max-aggregation-intervals=100",
            ])
            .arg("--aggregation-rules")
            .arg(conf_dir.join("aggregation-rules.conf"))
            .arg("--rewrite-rules")
            .arg(conf_dir.join("rewrite-rules.conf"))
            .args(extra)
            .env("CARBIDE_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(line, &mut g, "carbide serve");
    g
}

/// SIGTERM, then a successful exit: the cache (and the aggregator's last word) is on disk.
fn stop(mut g: Guard) {
    cache_common::terminate(&mut g.0, Duration::from_secs(30), "carbide serve");
}

fn wsp(data: &Path, name: &str) -> PathBuf {
    data.join(format!("{}.wsp", name.replace('.', "/")))
}

/// The filled slots of a metric's whisper file from `from` on.
fn slots(data: &Path, name: &str, from: i64) -> BTreeMap<i64, f64> {
    let path = wsp(data, name);
    let f = carbide_whisper::file::fetch(&path, from, Some(now() + 10), now(), None)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .unwrap();
    f.values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (f.from + i as i64 * f.step, v)))
        .collect()
}

#[test]
fn serve_aggregates_into_whisper_as_carbon_aggregator_computes() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = Dest::start();
    let (cl, cp) = (free_port(), free_port());
    let cdir = tmp.path().join("carbon");
    let conf = write_conf(
        &cdir,
        &AggConf {
            line: cl,
            pickle: cp,
            dest: cap.port,
            max_intervals: 100,
            forward_all: true,
            rules: RULES,
            rewrite: REWRITE,
        },
    );
    let conf_dir = cdir.join("conf");
    let _carbon = start_carbon_aggregator(&cdir, &conf, cl);
    let (fwd_data, agg_data) = (tmp.path().join("fwd"), tmp.path().join("agg-only"));
    let (fwd_line, agg_line) = (free_port(), free_port());
    let fwd = start_serve(&fwd_data, &conf_dir, fwd_line, &[]);
    let agg_only = start_serve(&agg_data, &conf_dir, agg_line, &["--forward-all", "false"]);
    let ports = [cl, fwd_line, agg_line];

    let t = now();
    let base = t - t.rem_euclid(20);
    let from = base - 60;
    send_all(&ports, &input([base - 40, base - 30, base - 20, base - 10], 1));
    let sent = Instant::now();
    // The first computation, 10 s after the buffers were made; then late points re-open two of
    // the intervals (new values at the same timestamps), for every aggregator alike.
    wait_until(Duration::from_secs(90), "carbon's first aggregates", || {
        cap.lines().iter().any(|l| is_aggregate(l))
    });
    send_all(&ports, &input([base - 30, base - 20], 2));
    // Every buffer computes again within 20 s of its creation.
    wait_quiet(
        Duration::from_secs(60),
        Duration::from_secs(3),
        "carbon-aggregator's output",
        || (sent.elapsed() > Duration::from_secs(22)).then(|| cap.lines().len()),
    );
    stop(fwd);
    stop(agg_only);

    let lines = cap.lines();
    let all = last_values(&lines);
    let mut aggregates: BTreeMap<&str, BTreeMap<i64, f64>> = BTreeMap::new();
    let mut raw: BTreeMap<&str, BTreeMap<i64, f64>> = BTreeMap::new();
    for ((name, ts), v) in &all {
        let to = if is_aggregate(name) {
            &mut aggregates
        } else {
            &mut raw
        };
        to.entry(name.as_str()).or_default().insert(*ts, *v);
    }
    let re_emitted = lines
        .iter()
        .filter(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f[0] == "prod.agg.cpu.sum" && f[2].parse::<f64>().unwrap() as i64 == base - 30
        })
        .count();
    assert!(
        re_emitted >= 2,
        "late points re-emitted the interval ({re_emitted}×)"
    );
    // prod.agg.{cpu,mem}.<8 methods> (`<metric>` is one node: disk.io is not aggregated, and
    // incoming.* became prod.* in [pre]) and all.{a.b.c,x}.total.
    assert_eq!(
        aggregates.len(),
        2 * 8 + 2,
        "carbon's aggregates: {:?}",
        aggregates.keys()
    );
    for data in [&fwd_data, &agg_data] {
        for (name, want) in &aggregates {
            let got = slots(data, name, from);
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{name}: slots in {}",
                data.display()
            );
            for (ts, v) in want {
                assert!(close(got[ts], *v), "{name}@{ts}: carbon {v}, carbide {}", got[ts]);
            }
        }
    }
    // FORWARD_ALL: every raw point carbon passed on, under its [post] name, last value per slot.
    assert!(raw.keys().any(|n| n.starts_with("h.prod.host")), "[post] applied");
    assert!(raw.contains_key("unmatched.metric"));
    for (name, want) in &raw {
        // carbon's line client sends values as %.10f: equal up to that rounding.
        let got = slots(&fwd_data, name, from);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (ts, v) in want {
            assert!(close(got[ts], *v), "{name}@{ts}: carbon {v}, carbide {}", got[ts]);
        }
        assert!(
            !wsp(&agg_data, name).exists(),
            "{name} stored without FORWARD_ALL"
        );
    }
    for d in [&fwd_data, &agg_data] {
        assert!(!d.join("incoming").exists(), "[pre] renames before the cache");
    }
}

#[test]
fn serve_refuses_a_missing_or_malformed_rules_file() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |rules: &Path| {
        Command::new(env!("CARGO_BIN_EXE_carbide"))
            .arg("serve")
            .arg(format!("--data-dir={}", tmp.path().join("data").display()))
            .arg(format!("--line-port={}", free_port()))
            .args([
                "--pickle-port=0",
                "--carbonlink-port=0",
                "--admin-port=0",
                "--web-port=0",
            ])
            .args(["--statsd-port=0", "--statsd-admin-port=0"])
            .arg("--aggregation-rules")
            .arg(rules)
            .output()
            .unwrap()
    };
    let missing = tmp.path().join("nope.conf");
    let out = run(&missing);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.conf: does not exist"), "{err}");
    let bad = tmp.path().join("aggregation-rules.conf");
    std::fs::write(&bad, "a.sum (60) = sum a.*\n\nthis is not a rule\n").unwrap();
    let out = run(&bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("aggregation-rules.conf:3"), "{err}");
}

#[test]
fn every_receiver_and_statsd_flushes_go_through_the_aggregator() {
    use cache_common::{Ts, free_udp_port, pickle_frame};
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("aggregation-rules.conf");
    let rewrite = tmp.path().join("rewrite-rules.conf");
    std::fs::write(
        &rules,
        "in.sum (60) = sum in.*\nagg.statsd.<x> (60) = sum stats_counts.<x>\n",
    )
    .unwrap();
    std::fs::write(&rewrite, "[pre]\n^pre\\. = in.\n").unwrap();
    let data = tmp.path().join("data");
    let (line, pickle, udp) = (free_port(), free_port(), free_udp_port());
    // StatsD needs the port free for both UDP and TCP.
    let statsd = loop {
        let p = free_udp_port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            break p;
        }
    };
    let mut g = Guard(
        Command::new(env!("CARGO_BIN_EXE_carbide"))
            .arg("serve")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--line-port={line}"))
            .arg(format!("--pickle-port={pickle}"))
            .arg(format!("--udp-port={udp}"))
            .arg(format!("--statsd-port={statsd}"))
            .args([
                "--carbonlink-port=0",
                "--admin-port=0",
                "--web-port=0",
                "--statsd-admin-port=0",
                "--statsd-flush-interval=1000",
                "--metric-interval=0",
                "--forward-all=false",
            ])
            .arg("--aggregation-rules")
            .arg(&rules)
            .arg("--rewrite-rules")
            .arg(&rewrite)
            .env("CARBIDE_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(line, &mut g, "carbide serve");
    wait_port(pickle, &mut g, "carbide serve (pickle)");
    // A slot well inside the 60 s interval, so all three land in one.
    let t = now() - now().rem_euclid(60) - 60;
    send_all(&[line], &format!("in.line 1 {t}\n"));
    let mut s = TcpStream::connect(("127.0.0.1", pickle)).unwrap();
    s.write_all(&pickle_frame(&[("pre.pickle", Ts::Int(t as i32), 2.0)]))
        .unwrap();
    drop(s);
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(format!("in.udp 4 {t}\n").as_bytes(), ("127.0.0.1", udp))
        .unwrap();
    u.send_to(b"hits:5|c", ("127.0.0.1", statsd)).unwrap();
    // Two StatsD flushes (1 s apart) carry the counter; then SIGTERM computes what is pending.
    std::thread::sleep(Duration::from_millis(2500));
    stop(g);
    let sum = slots(&data, "in.sum", t - 60);
    assert_eq!(sum, BTreeMap::from([(t, 7.0)]), "line + pickle ([pre]) + UDP");
    let hits: f64 = slots(&data, "agg.statsd.hits", now() - 600).values().sum();
    assert_eq!(hits, 5.0, "StatsD's flushes were aggregated");
    for raw in [
        "in.line",
        "in.pickle",
        "pre.pickle",
        "in.udp",
        "stats_counts.hits",
    ] {
        assert!(!wsp(&data, raw).exists(), "{raw} stored without FORWARD_ALL");
    }
}

#[test]
fn sighup_rereads_the_rules_in_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("aggregation-rules.conf"), "first (60) = sum in.*\n").unwrap();
    std::fs::write(conf.join("rewrite-rules.conf"), "").unwrap();
    let data = tmp.path().join("data");
    let line = free_port();
    let g = start_serve(&data, &conf, line, &["--forward-all=false"]);
    let t = now() - now().rem_euclid(60) - 60;
    send_all(&[line], &format!("in.a 1 {t}\n"));
    std::thread::sleep(Duration::from_millis(300));
    // New rules clear the buffers, as carbon's do: `first` never sees a value computed.
    std::fs::write(conf.join("aggregation-rules.conf"), "second (60) = max in.*\n").unwrap();
    std::fs::write(conf.join("rewrite-rules.conf"), "[pre]\n^raw\\. = in.\n").unwrap();
    let pid = g.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(1000));
    send_all(&[line], &format!("in.a 3 {t}\nraw.b 5 {t}\n"));
    std::thread::sleep(Duration::from_millis(300));
    stop(g);
    assert_eq!(slots(&data, "second", t - 60), BTreeMap::from([(t, 5.0)]));
    assert!(
        !wsp(&data, "first").exists(),
        "the old rules' buffers were cleared"
    );
}
