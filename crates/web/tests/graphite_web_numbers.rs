//! How numbers are spelt in json, csv and raw, byte for byte against graphite-web 1.1.8: whisper
//! gives floats (`1.0`), but countSeries, identity, isNonNull and events() make Python ints (`1`),
//! which stay ints through alias/sort/filter functions and through sum/max/min/first/last
//! consolidation, and become floats through an average or any arithmetic on a float parameter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;
use common::*;

#[test]
fn ints_and_floats_are_spelt_as_graphite_web_spells_them() {
    let s = servers();
    let when = NOW - 3000;
    for port in [s.gw, s.ours] {
        let event = format!(r#"{{"what": "deploy", "tags": "web", "when": {when}}}"#);
        let (status, body) = http(port, "POST", "/events/", Some(&event)).unwrap();
        assert_eq!(status, 200, "POST /events/ on {port}: {body}");
    }
    let targets = [
        "servers.web1.cpu.user",
        "countSeries(servers.*.cpu.*)",
        "countSeries()",
        "alias(countSeries(servers.*.requests),\"n\")",
        "sortByName(countSeries(servers.*.requests))",
        "scale(countSeries(servers.*.requests),2)",
        "sumSeries(countSeries(servers.*.requests),countSeries(servers.*.cpu.*))",
        "sumSeries(isNonNull(servers.web1.cpu.user),servers.web1.cpu.user)",
        "maxSeries(isNonNull(servers.*.cpu.user))",
        "diffSeries(isNonNull(servers.*.cpu.user))",
        "averageSeries(isNonNull(servers.*.cpu.user))",
        "aggregate(servers.*.cpu.user,\"count\")",
        "aggregate(isNonNull(servers.*.cpu.user),\"rangeOf\")",
        "consolidateBy(countSeries(servers.*.requests),\"sum\")",
        "consolidateBy(countSeries(servers.*.requests),\"max\")",
        "identity(\"t\")",
        "isNonNull(servers.web1.cpu.user)",
        "offset(isNonNull(servers.web1.cpu.user),1)",
        "transformNull(servers.web1.cpu.user)",
        "transformNull(servers.web1.cpu.user,0)",
        "transformNull(isNonNull(servers.web1.cpu.user))",
        "transformNull(servers.web1.cpu.user,0,servers.web2.cpu.user)",
        // Keyword forms: graphite-web prefetches only positional paths, so a keyword
        // referenceSeries (or seriesList) that no positional argument names is empty.
        "transformNull(servers.web1.cpu.user,referenceSeries=servers.web2.cpu.user)",
        "transformNull(servers.web1.cpu.user,default=3,referenceSeries=servers.web2.cpu.user)",
        "transformNull(servers.web1.cpu.user,default=3)",
        "transformNull(servers.web1.cpu.user,3,nothing.here)",
        "transformNull(servers.web1.cpu.user,3,referenceSeries=nothing.here)",
        "transformNull(servers.web1.cpu.user,5,sumSeries(servers.web2.cpu.user,nothing.here))",
        "constantLine(3)",
        "events(\"web\")",
    ];
    let mut failures = Vec::new();
    for target in targets {
        // events() has one point a second: keep its range short.
        let (from, until) = if target.starts_with("events") {
            (when - 30, when + 90)
        } else {
            (NOW - 1800, NOW)
        };
        for format in ["json", "csv", "raw"] {
            let path = format!(
                "/render?target={}&from={from}&until={until}&now={NOW}&format={format}",
                enc(target)
            );
            if let Err(e) = compare_text(&s, &path) {
                failures.push(e);
            }
            // maxDataPoints consolidates json: average makes floats of ints, sum keeps them.
            if format != "json" {
                continue;
            }
            if let Err(e) = compare_text(&s, &format!("{path}&maxDataPoints=7")) {
                failures.push(e);
            }
        }
    }
    // A keyword argument's path is fetched when another target (or a positional argument
    // anywhere in the request) names the same path expression.
    let keyword = enc("transformNull(servers.web1.cpu.user,referenceSeries=servers.web2.cpu.user)");
    for other in [
        "servers.web2.cpu.user",
        "sumSeries(servers.web2.cpu.user)",
        "servers.web2.cpu.*",
        "transformNull(servers.web3.cpu.user,referenceSeries=servers.web2.cpu.user)",
    ] {
        let path = format!(
            "/render?target={keyword}&target={}&from={}&until={NOW}&now={NOW}&format=raw",
            enc(other),
            NOW - 1800
        );
        if let Err(e) = compare_text(&s, &path) {
            failures.push(e);
        }
    }
    // The ints really are there (the comparison above would also pass if neither had any).
    let (_, raw) = http(
        s.ours,
        "GET",
        &format!(
            "/render?target=countSeries(servers.*.requests)&from={}&until={NOW}&now={NOW}&format=raw",
            NOW - 600
        ),
        None,
    )
    .unwrap();
    assert!(raw.trim_end().ends_with("|3,3,3,3,3,3,3,3,3,3"), "{raw}");
    assert_no_differences(&failures);
}
