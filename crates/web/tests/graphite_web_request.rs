//! Behaviour that spans a whole /render request, against graphite-web 1.1.8: `stacked()` keeps its
//! running totals across targets (requestContext['totalStack']), the request's `xFilesFactor`
//! reaches every series and consolidation, and verticalLine without a label is a series named
//! `None` (json `null`, csv empty).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;
use common::*;

#[test]
fn request_wide_options_match_graphite_web() {
    let s = servers();
    let range = format!("from={}&until={NOW}&now={NOW}", NOW - 3600);
    let q = |targets: &[&str], extra: &str, format: &str| {
        let t: Vec<String> = targets.iter().map(|t| format!("target={}", enc(t))).collect();
        format!("/render?{}&{range}&format={format}{extra}", t.join("&"))
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        // stacked across targets, the default stack and named ones.
        (
            vec!["stacked(servers.web1.cpu.*)", "stacked(servers.web2.cpu.*)"],
            "",
        ),
        (
            vec![
                "stacked(servers.web1.cpu.user,\"a\")",
                "stacked(servers.web2.cpu.user,\"b\")",
                "stacked(servers.web3.cpu.user,\"a\")",
            ],
            "",
        ),
        (
            vec!["stacked(servers.web1.requests)", "stacked(servers.web1.requests)"],
            "&maxDataPoints=10",
        ),
        // the request's xFilesFactor on fetched series, maxDataPoints and function-made series.
        (
            vec!["servers.web1.cpu.user"],
            "&xFilesFactor=0.9&maxDataPoints=11",
        ),
        (
            vec!["servers.web1.cpu.user"],
            "&xFilesFactor=0.5&maxDataPoints=11",
        ),
        (
            vec!["sumSeries(servers.*.cpu.user)"],
            "&xFilesFactor=1&maxDataPoints=7",
        ),
        (
            vec!["summarize(servers.web1.cpu.user,\"10min\")"],
            "&xFilesFactor=0.95",
        ),
        (
            vec!["consolidateBy(servers.web2.cpu.system,\"max\")"],
            "&xFilesFactor=0.9&maxDataPoints=5",
        ),
        (
            vec!["xFilesFactor(servers.web2.cpu.system,0.1)"],
            "&xFilesFactor=0.9&maxDataPoints=5",
        ),
        (vec!["servers.web1.cpu.user"], "&xFilesFactor=abc"),
        // verticalLine with and without a label.
        (vec!["verticalLine(\"1699998180\")"], ""),
        (vec!["verticalLine(\"1699998180\",\"deploy\")"], ""),
        (vec!["alias(verticalLine(\"1699998180\"),\"x\")"], ""),
        (vec!["scale(verticalLine(\"1699998180\"),2)"], ""),
    ];
    let mut failures = Vec::new();
    for (targets, extra) in &cases {
        for format in ["json", "csv", "raw"] {
            let path = q(targets, extra, format);
            // Every case but the bad xFilesFactor renders: a pair of errors would compare equal.
            let (status, _) = http(s.gw, "GET", &path, None).unwrap();
            assert_eq!(
                status == 200,
                !extra.contains("abc"),
                "graphite-web {status} for {path}"
            );
            if let Err(e) = compare_text(&s, &path) {
                failures.push(e);
            }
        }
    }
    // The totals really carry over: the second target starts from the first's sum.
    let (_, body) = http(
        s.ours,
        "GET",
        &q(
            &["stacked(servers.web1.requests)", "stacked(servers.web1.requests)"],
            "",
            "raw",
        ),
        None,
    )
    .unwrap();
    let last: Vec<f64> = body
        .lines()
        .map(|l| {
            let mut values = l.split_once('|').unwrap().1.split(',');
            values.rfind(|v| *v != "None").unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(last.len(), 2, "{body}");
    assert_eq!(last[1], 2.0 * last[0], "{body}");
    assert_no_differences(&failures);
}
