//! The request's `tz` and graphite-web's `TIME_ZONE` in the functions that read or align wall-clock
//! time (timeSlice, verticalLine, integralByInterval, linearRegression, hitcount's alignToInterval,
//! smartSummarize's alignTo, timeShift's alignDst), against graphite-web 1.1.8 in UTC and in
//! America/New_York, with requests in zones a whole and a half hour off (New York, Kolkata).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;
use common::*;

const X: &str = "servers.web1.cpu.user";

/// Targets whose answers depend on the zone (`@` stands for a whisper series).
const TARGETS: &[&str] = &[
    // parsed in TIME_ZONE; walked from the start's wall clock read in TIME_ZONE.
    "timeSlice(@,\"19:00 20231114\",\"21:30 20231114\")",
    "timeSlice(servers.web*.requests,\"1699980000\",\"1699990000\")",
    // the request's zone, compared and placed by wall clock in TIME_ZONE.
    "verticalLine(\"15:00 20231114\",\"deploy\")",
    "verticalLine(\"1699990000\")",
    "verticalLine(\"1699990000\",\"x\")",
    "integralByInterval(@,\"1h\")",
    "integralByInterval(servers.web2.requests,\"2h\")",
    "linearRegression(@)",
    "linearRegression(@,\"18:00 20231114\",\"21:00 20231114\")",
    "hitcount(@,\"1h\",true)",
    "hitcount(@,\"1d\",true)",
    "hitcount(@,\"10min\",true)",
    "hitcount(@,\"30s\",true)",
    "hitcount(servers.web3.requests,\"3h\",alignToInterval=true)",
    "smartSummarize(@,\"1h\",\"sum\",\"hours\")",
    "smartSummarize(@,\"1d\",\"avg\",\"days\")",
    "smartSummarize(@,\"15min\",\"max\",\"minutes\")",
    "smartSummarize(@,\"1w\",\"sum\",\"weeks\")",
    "smartSummarize(@,\"1w\",\"sum\",\"weeks3\")",
    "smartSummarize(@,\"30d\",\"sum\",\"months\")",
    "smartSummarize(@,\"1y\",\"sum\",\"years\")",
    "smartSummarize(@,\"7s\",\"last\",\"seconds\")",
    // ten days back is across the end of DST in New York (2023-11-05).
    "timeShift(@,\"10d\",true,true)",
    "timeShift(@,\"10d\",false,true)",
    "timeShift(@,\"-1d\",true,true)",
    "timeShift(@,\"10d\")",
    "timeStack(@,\"5d\",0,3)",
];

const RANGES: &[&str] = &["from=-6h", "from=-2d", "from=18:00_20231114&until=21:30_20231114"];

fn differences(s: &Servers, zones: &[Option<&str>]) -> Vec<String> {
    let mut failures = Vec::new();
    for zone in zones {
        let tz = zone.map(|z| format!("&tz={}", enc(z))).unwrap_or_default();
        for t in TARGETS {
            let t = t.replace('@', X);
            for range in RANGES {
                let path = format!("/render?target={}&{range}&now={NOW}&format=json{tz}", enc(&t));
                if let Err(e) = compare(s, "GET", &path, None) {
                    failures.push(e);
                }
            }
        }
        // csv shows the timestamps in the zone.
        let path = format!("/render?target={X}&from=-30min&now={NOW}&format=csv{tz}");
        if let Err(e) = compare_text(s, &path) {
            failures.push(e);
        }
    }
    failures
}

#[test]
fn request_tz_reaches_the_functions_under_utc() {
    let s = servers();
    let zones = [
        None,
        Some("America/New_York"),
        Some("Asia/Kolkata"),
        Some("No/Such_Zone"),
    ];
    assert_no_differences(&differences(&s, &zones));
    // The zone changes these answers at all (else the comparison above proves little).
    for t in [
        "hitcount(@,\"1d\",true)",
        "integralByInterval(@,\"1h\")",
        "timeSlice(@,\"19:00 20231114\",\"21:30 20231114\")",
        "smartSummarize(@,\"1h\",\"sum\",\"hours\")",
    ] {
        let path = format!(
            "/render?target={}&from=-6h&now={NOW}&format=json",
            enc(&t.replace('@', X))
        );
        let utc = http(s.ours, "GET", &path, None).unwrap().1;
        let kolkata = http(s.ours, "GET", &format!("{path}&tz=Asia/Kolkata"), None)
            .unwrap()
            .1;
        assert_ne!(utc, kolkata, "{t} is the same in UTC and Asia/Kolkata");
    }
}

#[test]
fn time_zone_setting_is_the_default_and_the_process_zone() {
    let s = servers_in_zone("America/New_York", |_| {});
    let zones = [None, Some("UTC"), Some("Asia/Kolkata")];
    assert_no_differences(&differences(&s, &zones));
}
