//! Differential tests of the Combine and Calculate functions against graphite-web 1.1.8 (see
//! common/mod.rs for the harness), plus exponentialMovingAverage against hand-computed values
//! (graphite-web 1.1.8's is broken, see below).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use carbide_core::Retention;
use common::*;
use serde_json::Value;

/// `hw.daily`: ten days at 10-minute steps with a daily cycle, a trend and some gaps, so the
/// Holt-Winters functions have their 7-day bootstrap. `ema.ramp`: 1, 2, 3, … every minute.
fn fixture(root: &std::path::Path) {
    let ten_min = Retention::parse_list("600:2100").unwrap();
    let pts: Vec<(i64, f64)> = (1..=1440)
        .filter(|i| i % 53 != 0)
        .map(|i| {
            let t = NOW - i * 600;
            let phase = (t % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
            (t, 50.0 + 20.0 * phase.sin() + (i % 7) as f64 - i as f64 * 0.01)
        })
        .collect();
    write_series(root, "hw.daily", &ten_min, &pts);
    let minute = Retention::parse_list("60:720").unwrap();
    let ramp: Vec<(i64, f64)> = (1..=300).map(|i| (NOW - i * 60, (301 - i) as f64)).collect();
    write_series(root, "ema.ramp", &minute, &ramp);
}

#[test]
fn combine_and_calculate_functions_match_graphite_web() {
    let s = servers_with(fixture);
    let targets = [
        // Combine
        "diffSeries(servers.web1.cpu.*)",
        "diffSeries(servers.web1.requests,servers.web2.requests,servers.web3.cpu.user)",
        "multiplySeries(servers.web1.cpu.*)",
        "multiplySeries(servers.web1.requests)",
        "rangeOfSeries(servers.*.cpu.user)",
        "countSeries(servers.*.cpu.*)",
        "countSeries()",
        "countSeries(nothing.here)",
        "stddevSeries(servers.*.cpu.user)",
        "percentileOfSeries(servers.*.cpu.*,50)",
        "percentileOfSeries(servers.*.cpu.*,75,true)",
        "percentileOfSeries(servers.*.cpu.user,99.5)",
        "sumSeriesWithWildcards(servers.*.cpu.*,1)",
        "averageSeriesWithWildcards(servers.*.cpu.*,1,3)",
        "multiplySeriesWithWildcards(servers.web1.cpu.*,3)",
        "aggregateWithWildcards(servers.*.cpu.*,\"max\",1)",
        "aggregateWithWildcards(servers.*.cpu.*,\"sumSeries\",3)",
        "aggregateWithWildcards(servers.*.cpu.*,\"median\",1)",
        "groupByNodes(servers.*.cpu.*,\"sum\",1)",
        "groupByNodes(servers.*.cpu.*,\"diffSeries\",3)",
        "groupByNodes(servers.*.cpu.*,\"multiplySeries\",1,3)",
        "groupByNodes(servers.*.cpu.*,\"rangeOfSeries\",3)",
        "groupByNodes(servers.*.cpu.*,\"stddev\",1)",
        "groupByNodes(servers.*.cpu.*,\"median\")",
        "group(servers.web1.cpu.user,servers.web2.requests,nothing.here)",
        "pct(servers.web1.cpu.*)",
        "pct(servers.web1.cpu.*,200)",
        "pct(servers.*.cpu.user,servers.web2.requests)",
        "pct(servers.*.cpu.*,None,1)",
        "pct(servers.*.cpu.*,servers.*.requests,1)",
        "pct(servers.web{1,2}.cpu.user,servers.web{1,3}.requests,1)",
        "weightedAverage(servers.*.cpu.user,servers.*.requests,1)",
        "weightedAverage(servers.*.cpu.user,servers.*.cpu.system,1)",
        "weightedAverage(servers.*.cpu.user,servers.*.requests,0)",
        "diffSeriesLists(servers.*.cpu.user,servers.*.cpu.system)",
        "sumSeriesLists(servers.*.cpu.user,servers.*.cpu.system)",
        "multiplySeriesLists(servers.*.cpu.user,servers.*.requests)",
        "divideSeriesLists(servers.*.cpu.user,servers.*.cpu.system)",
        "aggregateSeriesLists(servers.*.cpu.user,servers.*.cpu.system,\"max\")",
        "aggregateSeriesLists(servers.*.cpu.user,servers.*.cpu.system,\"avgSeries\",0.9)",
        "powSeries(servers.web1.cpu.user,servers.web2.cpu.user)",
        "powSeries(servers.web1.requests)",
        "powSeries(servers.web1.cpu.*,servers.web2.cpu.system)",
        "reduceSeries(mapSeries(servers.*.cpu.*,1),\"asPercent\",3,\"user\",\"system\")",
        "reduce(map(servers.*.cpu.*,1),\"diffSeries\",3,\"system\",\"user\")",
        "reduceSeries(mapSeries(servers.*.cpu.*,1),\"divideSeries\",-1,\"user\",\"system\")",
        "applyByNode(servers.*.cpu.*,1,\"sumSeries(%.cpu.*)\")",
        "applyByNode(servers.*.cpu.user,1,\"maxSeries(%.*.*)\",\"%.max\")",
        "applyByNode(nothing.here,1,\"sumSeries(%)\")",
        // Calculate
        "movingSum(servers.web1.cpu.user,5)",
        "movingMin(servers.web1.cpu.user,\"10min\")",
        "movingMax(servers.*.requests,3)",
        "movingMedian(servers.web1.cpu.user,4,0.5)",
        "movingMedian(servers.web2.cpu.*,\"5min\")",
        "movingWindow(servers.web1.cpu.user,5)",
        "movingWindow(servers.web1.cpu.user,5,\"rangeOf\")",
        "movingWindow(servers.web1.cpu.user,\"5min\",\"avg_zero\",0.3)",
        "movingWindow(servers.web3.cpu.system,6,\"count\",0.9)",
        "movingSum(sumSeries(servers.*.cpu.user),3)",
        "nPercentile(servers.*.cpu.user,50)",
        "nPercentile(servers.web1.requests,95)",
        "nPercentile(servers.web1.requests,12.5)",
        "stdev(servers.web1.cpu.user,5)",
        "stdev(servers.*.requests,10,0.5)",
        "linearRegression(servers.web1.requests)",
        "linearRegression(servers.web2.cpu.user)",
        "linearRegression(servers.*.requests,\"1699990000\")",
        "aggregateLine(servers.web1.cpu.user)",
        "aggregateLine(servers.*.cpu.user,\"max\",true)",
        "aggregateLine(servers.web1.cpu.user,\"sum\")",
        "aggregateLine(nothing.here)",
        "identity(\"the.time\")",
        "holtWintersForecast(hw.daily)",
        "holtWintersForecast(hw.daily,\"2d\",\"12h\")",
        "holtWintersConfidenceBands(hw.daily)",
        "holtWintersConfidenceBands(hw.daily,2)",
        "holtWintersConfidenceArea(hw.daily)",
        "holtWintersAberration(hw.daily)",
        "holtWintersAberration(hw.daily,1)",
        // a bootstrap longer than the data: whisper answers from the 300 s archive
        // (alone the forecast is empty, and graphite-web's JSON renderer answers [] when every series
        // is empty: `if any(data)`, a render-format quirk outside these functions)
        "group(holtWintersForecast(servers.web1.requests),servers.web1.cpu.user)",
        "holtWintersConfidenceBands(servers.web1.requests,3,\"1d\",\"2h\")",
        "movingWindow(servers.web1.cpu.user,\"-5min\",\"max\")",
        "movingSum(servers.web1.cpu.user,2.5)",
        // mixed steps (60 s and 600 s): normalize() consolidates to the lcm
        "diffSeries(servers.web1.cpu.user,hw.daily)",
        "sumSeriesLists(servers.web1.cpu.user,hw.daily)",
        "divideSeriesLists(hw.daily,servers.web1.requests)",
        "powSeries(hw.daily,servers.web1.cpu.user)",
        "percentileOfSeries(group(hw.daily,servers.web1.cpu.user),50)",
        "countSeries(hw.daily,servers.*.requests)",
        "weightedAverage(group(hw.daily,servers.web1.cpu.user),group(servers.web2.requests,servers.web3.requests))",
        // empty inputs
        "diffSeries(nothing.here)",
        "stddevSeries(nothing.*)",
        "percentileOfSeries(nothing.here,50)",
        "sumSeriesWithWildcards(nothing.here,1)",
        "groupByNodes(nothing.here,\"sum\",1)",
        "weightedAverage(nothing.a,nothing.b)",
        "divideSeriesLists(nothing.here,nothing.here)",
        "powSeries(nothing.here)",
        "movingSum(nothing.here,5)",
        "nPercentile(nothing.here,50)",
        "stdev(nothing.here,5)",
        "holtWintersForecast(nothing.here)",
        "holtWintersAberration(nothing.here)",
        // errors graphite-web reports as InputParameterError (400s for us)
        "aggregateWithWildcards(servers.*.cpu.*,\"bogus\",1)",
        "movingWindow(servers.web1.cpu.user,5,\"bogus\")",
    ];
    let failures = render_differences(&s, &targets, &["from=-1h", "from=-3h&until=-1h", "from=-2d"]);
    assert_no_differences(&failures);

    // Errors: graphite-web 1.1.8 answers these with an error page; ours are 400s.
    for t in [
        "percentileOfSeries(servers.*.cpu.user,0)",
        "diffSeriesLists(servers.*.cpu.user,servers.web1.cpu.system)",
        "divideSeriesLists(servers.*.cpu.user,servers.web1.cpu.system)",
        "weightedAverage(servers.*.cpu.user,servers.web1.requests,1)",
        "pct(servers.*.cpu.*,100,1)",
        // a MISSING result before any normalize() ran: graphite-web 500s (UnboundLocalError)
        "pct(servers.web{1,2}.cpu.user,servers.web{2,3}.requests,1)",
        "pct(servers.*.cpu.*,sumSeries(servers.*.requests),\"name\")",
        "reduceSeries(servers.*.cpu.*,\"asPercent\",3,\"user\",\"system\")",
    ] {
        let path = format!("/render?target={}&from=-1h&now={NOW}&format=json", enc(t));
        let (gs, gb) = http(s.gw, "GET", &path, None).unwrap();
        let (os, ob) = http(s.ours, "GET", &path, None).unwrap();
        assert_eq!(os, 400, "{t}: ours {ob}");
        assert!(gs >= 400, "{t}: graphite-web answered {gs}: {gb:.300}");
    }

    // mapSeries alone: graphite-web 1.1.8 answers 500 (it returns a list of lists, which only
    // reduceSeries reads); ours returns the groups one after another.
    let path = format!(
        "/render?target={}&from=-1h&now={NOW}&format=json",
        enc("mapSeries(servers.*.cpu.*,3)")
    );
    let (st, body) = http(s.ours, "GET", &path, None).unwrap();
    assert_eq!(st, 200, "{body}");
    let names: Vec<String> = parse(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "servers.web1.cpu.system",
            "servers.web2.cpu.system",
            "servers.web3.cpu.system",
            "servers.web1.cpu.user",
            "servers.web2.cpu.user",
            "servers.web3.cpu.user"
        ]
    );

    // exponentialMovingAverage: graphite-web 1.1.8 never updates the average (every point is the
    // seed) and fails with an UnboundLocalError (500) on interval windows; later graphite-web fixed
    // both. Ours follows the fix: seed = mean of the first window, then c*v + (1-c)*ema.
    let ramp = |target: &str| -> Vec<Value> {
        let path = format!("/render?target={}&from=-1h&now={NOW}&format=json", enc(target));
        let (st, body) = http(s.ours, "GET", &path, None).unwrap();
        assert_eq!(st, 200, "{target}: {body}");
        parse(&body).as_array().unwrap().clone()
    };
    let out = ramp("exponentialMovingAverage(ema.ramp,4)");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["target"], "exponentialMovingAverage(ema.ramp,4)");
    assert_eq!(out[0]["tags"]["exponentialMovingAverage"], "4");
    let points = out[0]["datapoints"].as_array().unwrap();
    // Refetched from NOW-3840, whisper's first point is NOW-3780 (value 238): the seed window is
    // 238..241, then 242.. up to 300 at NOW-60 and nothing at NOW; the output starts 240 s later.
    let c = 2.0 / 5.0;
    let mut ema = (238.0 + 239.0 + 240.0 + 241.0) / 4.0;
    let mut want = vec![Some(ema)];
    for v in 242..=300 {
        ema = c * f64::from(v) + (1.0 - c) * ema;
        want.push(Some((ema * 1e6).round() / 1e6));
    }
    want.push(None);
    let got: Vec<Option<f64>> = points.iter().map(|p| p[0].as_f64()).collect();
    assert_eq!(got.len(), want.len(), "{points:?}");
    for (g, w) in got.iter().zip(&want) {
        match (g, w) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}"),
            _ => assert_eq!(g, w, "{got:?}"),
        }
    }
    assert_eq!(points[0][1].as_i64(), Some(NOW - 3540));
    let out = ramp("exponentialMovingAverage(ema.ramp,\"3min\")");
    assert_eq!(out[0]["target"], "exponentialMovingAverage(ema.ramp,\"3min\")");
    let first = out[0]["datapoints"][0][0].as_f64().unwrap();
    // From NOW-3780 the first point is NOW-3720 (value 239): seed 239..241.
    assert_eq!(first, (239.0 + 240.0 + 241.0) / 3.0);
}
