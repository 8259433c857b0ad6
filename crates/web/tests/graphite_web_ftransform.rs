//! Differential tests of the Transform, Alias and Special functions (crates/render/src/functions/
//! transform.rs, alias.rs, special.rs) against graphite-web 1.1.8; the three functions only
//! graphite-web 1.1.10 has (compressPeriodicGaps, upper, lower) and randomWalk (random values)
//! are checked against hand-computed answers instead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;
use common::*;

use carbide_core::Retention;
use serde_json::Value;

/// Extra series: `test.gappy` (gaps of 1..5 points, zeros, negatives, values in (0, 1)) and
/// `test.periodic` (a value every third minute, the rest missing).
fn fixtures(root: &std::path::Path) {
    let retentions = Retention::parse_list("60:720,300:600").unwrap();
    let gappy: Vec<(i64, f64)> = (1..=200)
        .filter(|i| [0, 1, 2, 5, 9].contains(&(i % 11)))
        .map(|i| (NOW - i * 60, ((i * 7) % 13) as f64 / 10.0 - 0.3))
        .collect();
    write_series(root, "test.gappy", &retentions, &gappy);
    let periodic: Vec<(i64, f64)> = (1..=200)
        .filter(|i| i % 3 == 0)
        .map(|i| (NOW - i * 60, i as f64))
        .collect();
    write_series(root, "test.periodic", &retentions, &periodic);
}

const X: &str = "servers.web1.cpu.user";

#[test]
fn transform_alias_special_match_graphite_web() {
    let s = servers_with(fixtures);
    let targets: Vec<String> = [
        // add: the name truncates the constant with %d, the tag keeps the float.
        "add(@,10)",
        "add(servers.*.cpu.system,-2.5)",
        "add(nothing.here,1)",
        "@|add(5)|round()",
        "exp(scale(@,0.1))",
        "log(@)",
        "log(test.gappy,2)",
        // an integer parameter given a float: graphite-web logs the invalid value and uses it.
        "log(@,2.5)",
        "pow(@,2)",
        "pow(@,0.5)",
        "pow(test.gappy,-1)",
        "squareRoot(@)",
        "invert(test.gappy)",
        "round(@)",
        "round(scale(@,0.37),1)",
        "round(@,-1)",
        "round(@,precision=2)",
        "sigmoid(@)",
        "sigmoid(test.gappy)",
        "logit(test.gappy)",
        "logit(scale(@,0.02))",
        "minMax(@)",
        "minMax(test.gappy)",
        "minMax(nothing.here)",
        "offsetToZero(@)",
        "offsetToZero(servers.*.requests)",
        "isNonNull(@)",
        "isNonNull(test.gappy)",
        "delay(@,2)",
        "delay(@,-3)",
        // Python's series[:-0] is empty: delay by 0 leaves no values at all.
        "delay(@,0)",
        "delay(@,1000)",
        "delay(@,steps=1)",
        "scaleToSeconds(servers.web1.requests,1)",
        "scaleToSeconds(@,3600)",
        "scaleToSeconds(@,2.5)",
        "integralByInterval(@,\"1h\")",
        "integralByInterval(test.gappy,\"30min\")",
        "interpolate(@)",
        "interpolate(test.gappy)",
        "interpolate(test.gappy,2)",
        "interpolate(test.gappy,0)",
        "changed(@)",
        "changed(test.gappy)",
        "cumulative(@)",
        "timeSlice(@,\"1699995000\",\"1699998800\")",
        "timeSlice(@,\"22:00 20231114\",\"20231115\")",
        "sumSeries(timeSlice(servers.*.cpu.user,\"1699990000\",\"1699998000\"))",
        "timeStack(@,\"10min\",0,3)",
        "timeStack(@)",
        "timeStack(@,\"-1h\",1,3)",
        "@|timeStack(\"30min\",0,2)",
        "time(\"the.time\")",
        "timeFunction(\"t\",300)",
        "sin(\"the.sine\")",
        "sinFunction(\"s\",2,120)",
        "smartSummarize(@,\"10min\")",
        "smartSummarize(@,\"1h\",\"avg\")",
        "smartSummarize(test.gappy,\"7min\",\"max\")",
        "smartSummarize(@,\"15min\",\"last\",\"hours\")",
        "smartSummarize(@,\"1h\",\"sum\",\"days\")",
        "smartSummarize(@,\"20min\",\"count\",true)",
        "smartSummarize(servers.*.requests,\"30min\",\"median\",\"minutes\")",
        "aliasByMetric(servers.*.cpu.*)",
        "aliasByMetric(scale(@,2))",
        "legendValue(@,\"avg\")",
        "legendValue(@,\"last\",\"max\",\"si\")",
        "legendValue(servers.*.requests,\"total\",\"binary\")",
        "legendValue(test.gappy,\"count\",\"min\")",
        "legendValue(@,\"bogus\")",
        "aliasQuery(@,\"cpu\\.user\",\"requests\",\"req %d\")",
        "aliasQuery(servers.*.cpu.user,\"servers\\.(web\\d)\\.cpu\\.user\",\"servers.\\1.requests\",\"%s reqs\")",
        "aliasQuery(@,\"cpu\\.user\",\"cpu.system\",\"sys %.1f\")",
        "setXFilesFactor(@,0.5)",
        "xFilesFactor(test.gappy,1)",
        "fallbackSeries(nothing.here,constantLine(1))",
        "fallbackSeries(@,constantLine(1))",
        "substr(@,1)",
        "substr(@,1,3)",
        "substr(scale(@,2),2)",
        "substr(@,-2)",
        "cactiStyle(servers.*.cpu.user)",
        "cactiStyle(servers.*.cpu.system,\"si\")",
        "cactiStyle(servers.*.requests,\"binary\",\"b\")",
        "cactiStyle(test.gappy,None,\"ms\")",
        "cactiStyle(nothing.here)",
    ]
    .iter()
    .map(|t| t.replace('@', X))
    .collect();
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    let mut failures = render_differences(&s, &targets, &["from=-1h", "from=-3h&until=-1h", "from=-2d"]);
    // Consolidation: cumulative is consolidateBy sum; xFilesFactor is what maxDataPoints reads.
    let consolidated = [
        format!("cumulative({X})"),
        "xFilesFactor(test.gappy,0.5)".to_string(),
        "xFilesFactor(test.gappy,0.1)".to_string(),
        format!("delay({X},1)"),
        format!("log({X})"),
    ];
    let consolidated: Vec<&str> = consolidated.iter().map(String::as_str).collect();
    failures.extend(render_differences(
        &s,
        &consolidated,
        &["from=-1d&maxDataPoints=40", "from=-6h&maxDataPoints=7"],
    ));
    // events(): graphite-web reads its (here empty) events table; one null per second.
    failures.extend(render_differences(
        &s,
        &["events(\"*\")", "events(\"deploy\",\"web\")"],
        &["from=-10min", "from=-1h&until=-50min"],
    ));
    // timeSlice's default end is "now" on the wall clock, not the request's now: the two
    // servers read the clock a moment apart, so the end may differ by a second or two.
    let path = format!(
        "/render?target={}&from=-3h&until=-1h&now={NOW}&format=json",
        enc(&format!("timeSlice({X},\"1699997000\")"))
    );
    let (gs, gb) = http(s.gw, "GET", &path, None).unwrap();
    let (os, ob) = http(s.ours, "GET", &path, None).unwrap();
    assert_eq!((gs, os), (200, 200), "{path}");
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = |body: &str| -> i64 {
        parse(body)[0]["tags"]["timeSliceEnd"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (ge, oe) = (end(&gb), end(&ob));
    assert!(
        (ge - wall).abs() <= 60 && (oe - wall).abs() <= 60,
        "ends {ge} / {oe} are not the wall clock {wall}"
    );
    let (g, o) = (parse(&gb), parse(&ob.replace(&oe.to_string(), &ge.to_string())));
    if !close(&g, &o) {
        failures.push(format!("{path}:\n gw:   {g}\n ours: {o}"));
    }
    assert_no_differences(&failures);

    // randomWalk: random values, so only the shape is compared (names, timestamps, first 0).
    for t in ["randomWalk(\"walk\")", "randomWalkFunction(\"w\",300)"] {
        let path = format!("/render?target={}&from=-2h&now={NOW}&format=json", enc(t));
        let (gs, gb) = http(s.gw, "GET", &path, None).unwrap();
        let (os, ob) = http(s.ours, "GET", &path, None).unwrap();
        assert_eq!((gs, os), (200, 200), "{t}");
        let shape = |body: &str| -> Vec<(Value, Vec<Value>, Value)> {
            parse(body)
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let points = s["datapoints"].as_array().unwrap();
                    let ts = points.iter().map(|p| p[1].clone()).collect();
                    (s["target"].clone(), ts, points[0][0].clone())
                })
                .collect()
        };
        let (g, o) = (shape(&gb), shape(&ob));
        assert_eq!(g.len(), o.len(), "{t}");
        for (gg, oo) in g.iter().zip(&o) {
            assert_eq!((&gg.0, &gg.1), (&oo.0, &oo.1), "{t}");
            assert_eq!(oo.2.as_f64(), Some(0.0), "{t}: a walk starts at 0");
        }
        let walk = parse(&ob);
        let values: Vec<f64> = walk[0]["datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_f64().unwrap())
            .collect();
        assert!(
            values.windows(2).all(|w| (w[1] - w[0]).abs() <= 0.5),
            "{t}: steps are random() - 0.5"
        );
        assert!(values.windows(2).any(|w| w[1] != w[0]), "{t}: the walk moves");
    }

    // Bad input: a clear 400 from us (graphite-web answers 500 or 400 for each of these).
    for t in [
        "delay(servers.web1.cpu.user,1.5)",
        "round(servers.web1.cpu.user,1.5)",
        "log(servers.web1.cpu.user,1)",
        "smartSummarize(servers.web1.cpu.user,\"1h\",\"bogus\")",
        "integralByInterval(servers.web1.cpu.user,\"0s\")",
        "timeSlice(servers.web1.cpu.user,\"garbage\")",
        "aliasQuery(servers.web1.cpu.user,\"cpu\",\"nothing\",\"x %d\")",
        "aliasQuery(servers.web1.cpu.user,\"cpu\\.user\",\"requests\",\"no conversion\")",
        "legendValue(servers.web1.cpu.user)",
        "cactiStyle(other.single)",
        "events(1)",
    ] {
        let path = format!("/render?target={}&from=-1h&now={NOW}&format=json", enc(t));
        let (gs, _) = http(s.gw, "GET", &path, None).unwrap();
        let (os, ob) = http(s.ours, "GET", &path, None).unwrap();
        assert_eq!(os, 400, "{t}: {ob}");
        assert!(gs >= 400, "{t}: graphite-web answered {gs}");
    }

    // A zero or negative step loops forever in graphite-web (its worker times out); ours refuses.
    for t in [
        "smartSummarize(servers.web1.cpu.user,\"-1h\")",
        "time(\"t\",0)",
        "sin(\"s\",1,-60)",
        "randomWalk(\"w\",0)",
    ] {
        let path = format!("/render?target={}&from=-1h&now={NOW}&format=json", enc(t));
        let (os, ob) = http(s.ours, "GET", &path, None).unwrap();
        assert_eq!(os, 400, "{t}: {ob}");
    }

    // graphite-web 1.1.10's functions, which 1.1.8 lacks: hand-computed answers.
    let render = |t: &str, range: &str| -> Value {
        let path = format!("/render?target={}&{range}&now={NOW}&format=json", enc(t));
        let (os, ob) = http(s.ours, "GET", &path, None).unwrap();
        assert_eq!(os, 200, "{t}: {ob}");
        parse(&ob)
    };
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["target"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&render("upper(servers.web1.cpu.*)", "from=-1h")),
        ["SERVERS.WEB1.CPU.SYSTEM", "SERVERS.WEB1.CPU.USER"]
    );
    assert_eq!(
        names(&render("lower(upper(servers.web1.cpu.user),0,-1,99)", "from=-1h")),
        ["sERVERS.WEB1.CPU.USEr"]
    );
    assert_eq!(
        names(&render("upper(servers.web1.cpu.user,1,-2)", "from=-1h")),
        ["sErvers.web1.cpu.usEr"]
    );
    // test.periodic has value i at NOW - 60 i for i divisible by 3. From -1h the fetch holds
    // NOW-3540 .. NOW; the first truthy values are at indexes 2, 5, 8 (Nones between), so the
    // step becomes 180 s from NOW-3420, each bucket keeping its last value: 57, 54, …, 3, then
    // the bucket at NOW, which has no value.
    let compressed = render("compressPeriodicGaps(test.periodic)", "from=-1h");
    assert_eq!(names(&compressed), ["compressPeriodicGaps(test.periodic)"]);
    let mut want: Vec<Value> = (0..19)
        .map(|k| serde_json::json!([(57 - 3 * k) as f64, NOW - 3420 + 180 * k]))
        .collect();
    want.push(serde_json::json!([null, NOW]));
    assert_eq!(compressed[0]["datapoints"].as_array().unwrap(), &want);
    // No period to find: the series comes back as it was, renamed.
    let plain = render("compressPeriodicGaps(servers.web1.requests)", "from=-1h");
    let raw = render("servers.web1.requests", "from=-1h");
    assert_eq!(plain[0]["datapoints"], raw[0]["datapoints"]);
}
