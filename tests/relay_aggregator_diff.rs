//! `carbide aggregator` against the real carbon-aggregator (Debian graphite-carbon 1.1.7,
//! /usr/bin/carbon-aggregator): the same aggregation-rules.conf (every method, several
//! frequencies, `<<field>>`, `<field>` and `*` patterns), the same rewrite-rules.conf and the same
//! input stream; each sends (DESTINATION_PROTOCOL = line) to a capture listener in this test. The
//! last value each emits for every (aggregate, interval) must agree, and FORWARD_ALL must forward
//! the same raw points under the same (rewritten) names.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod relay_common;

use std::process::{Command, Stdio};
use std::time::Duration;

use relay_common::aggregator_oracle::{
    AggConf, Guard, assert_same_outputs, input, parse, send_all, start_carbon_aggregator, wait_port,
    wait_quiet, write_conf,
};
use relay_common::{Dest, free_port};

const RULES: &str = "\
# every method, three frequencies
<env>.agg.<metric>.sum (1) = sum <env>.host*.<metric>
<env>.agg.<metric>.avg (2) = avg <env>.host*.<metric>
<env>.agg.<metric>.min (3) = min <env>.host*.<metric>
<env>.agg.<metric>.max (1) = max <env>.host*.<metric>
<env>.agg.<metric>.p50 (2) = p50 <env>.host*.<metric>
<env>.agg.<metric>.p75 (1) = p75 <env>.host*.<metric>
<env>.agg.<metric>.p80 (1) = p80 <env>.host*.<metric>
<env>.agg.<metric>.p90 (3) = p90 <env>.host*.<metric>
<env>.agg.<metric>.p95 (1) = p95 <env>.host*.<metric>
<env>.agg.<metric>.p99 (2) = p99 <env>.host*.<metric>
<env>.agg.<metric>.p999 (1) = p999 <env>.host*.<metric>
<env>.agg.<metric>.count (1) = count <env>.host*.<metric>
all.<rest>.total (2) = sum deep.<<rest>>
";

const REWRITE: &str = "\
[pre]
^incoming\\. = prod.

[post]
^prod\\.host = h.prod.host
";

fn conf(line: u16, pickle: u16, dest: u16) -> AggConf<'static> {
    AggConf {
        line,
        pickle,
        dest,
        max_intervals: 100,
        forward_all: true,
        rules: RULES,
        rewrite: REWRITE,
    }
}

#[test]
fn aggregator_matches_carbon_aggregator() {
    let tmp = tempfile::tempdir().unwrap();
    let (cap_carbon, cap_ours) = (Dest::start(), Dest::start());
    let (cl, cp) = (free_port(), free_port());
    let (ol, op) = (free_port(), free_port());
    let cdir = tmp.path().join("carbon");
    let carbon_conf = write_conf(&cdir, &conf(cl, cp, cap_carbon.port));
    let our_conf = write_conf(&tmp.path().join("ours"), &conf(ol, op, cap_ours.port));
    let _carbon = start_carbon_aggregator(&cdir, &carbon_conf, cl);
    let mut ours = Guard(
        Command::new(env!("CARGO_BIN_EXE_carbide"))
            .arg("aggregator")
            .arg("-c")
            .arg(&our_conf)
            .arg("--instance=a")
            .arg("--no-spill")
            .arg("--no-admin")
            .env("CARBIDE_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(ol, &mut ours, "carbide aggregator");

    let now = relay_common::now();
    let data = input((now - 12)..now, 0);
    // Same bytes to both.
    send_all(&[cl, ol], &data);
    // Longest frequency is 3 s: once both have been quiet for 4 s every interval was (re-)emitted.
    let expected_raw = data.lines().count();
    wait_quiet(
        Duration::from_secs(60),
        Duration::from_secs(4),
        "aggregator outputs",
        || {
            let (a, b) = (cap_carbon.lines().len(), cap_ours.lines().len());
            (a > expected_raw / 2 && b > expected_raw / 2).then_some(a + b)
        },
    );
    let carbon = parse(&cap_carbon.lines());
    assert_same_outputs(&carbon, &parse(&cap_ours.lines()));
    let (c_agg, c_raw) = &carbon;
    assert!(
        c_agg.len() > 100,
        "carbon emitted only {} aggregates",
        c_agg.len()
    );
    // Every method appears.
    for m in [
        "sum", "avg", "min", "max", "p50", "p75", "p80", "p90", "p95", "p99", "p999", "count",
    ] {
        assert!(
            c_agg.keys().any(|(n, _)| n.ends_with(&format!(".{m}"))),
            "no {m} output"
        );
    }
    assert!(
        c_agg.keys().any(|(n, _)| n == "all.a.b.c.total"),
        "<<field>> across dots"
    );
    assert!(
        c_raw.keys().any(|(n, _)| n.starts_with("h.prod.host")),
        "[post] rewrite applied"
    );
}

#[test]
fn malformed_aggregation_rule_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = write_conf(tmp.path(), &conf(free_port(), free_port(), free_port()));
    std::fs::write(
        tmp.path().join("conf/aggregation-rules.conf"),
        "# ok\na.sum (60) = sum a.*\nthis is not a rule\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_carbide"))
        .arg("aggregator")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("aggregation-rules.conf:3"), "{err}");
}
