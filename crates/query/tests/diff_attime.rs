//! Differential tests: `parse_at_time` / `parse_time_offset` against graphite-web's
//! `graphite.render.attime.parseATTime` / `parseTimeOffset`, in UTC and two zones with DST.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test harness: failing loudly is the point

mod common;

use carbide_query::attime::{parse_at_time, parse_time_offset, time_zone};
use common::{Rng, run_graphite};
use serde_json::{Value, json};

const AT_TIME_SCRIPT: &str = r#"
import pytz, datetime
from graphite.render.attime import parseATTime
out = []
for s, now, tzname in json.load(sys.stdin):
    tz = pytz.timezone(tzname)
    now_dt = datetime.datetime.fromtimestamp(now, pytz.utc)
    try:
        out.append(int(parseATTime(s, tz, now_dt).timestamp()))
    except Exception as e:
        out.append(None)
print(json.dumps(out))
"#;

const OFFSET_SCRIPT: &str = r#"
from graphite.render.attime import parseTimeOffset
out = []
for s in json.load(sys.stdin):
    try:
        d = parseTimeOffset(s)
        out.append(d.days * 86400 + d.seconds)
    except Exception:
        out.append(None)
print(json.dumps(out))
"#;

/// Instants the references are read against: an ordinary Sunday, and days of DST changes in Berlin
/// and New York (so `02:30` falls into a gap or a fold), a leap day and a year end.
const NOWS: &[i64] = &[
    1_584_275_696, // 2020-03-15 12:34:56 UTC, Sunday
    1_585_483_200, // 2020-03-29 12:00 UTC, Berlin spring forward
    1_603_627_200, // 2020-10-25 12:00 UTC, Berlin fall back
    1_583_661_600, // 2020-03-08 10:00 UTC, New York spring forward
    1_604_232_000, // 2020-11-01 12:00 UTC, New York fall back
    1_582_977_600, // 2020-02-29 12:00 UTC
    1_609_455_599, // 2020-12-31 22:59:59 UTC
    // The instants graphite-web's own test_attime.py mocks: 2015-03-08 12:00 and 2017-10-13 11:00 in
    // Los Angeles, 2015-01-01 11:00, 2010-03-30, 2016-02-29 and 2013-02-28 in UTC.
    1_425_841_200,
    1_507_917_600,
    1_420_110_000,
    1_269_907_200,
    1_456_704_000,
    1_362_009_600,
];

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Etc/GMT+5",
];

const REFERENCES: &[&str] = &[
    "",
    "now",
    "NOW",
    " now ",
    "noon",
    "midnight",
    "teatime",
    "today",
    "yesterday",
    "tomorrow",
    "noon yesterday",
    "noon_yesterday",
    "midnight tomorrow",
    "teatime today",
    "9am",
    "9pm",
    "12am",
    "12pm",
    "13pm",
    "0am",
    "11am yesterday",
    "10:30",
    "2:30",
    "02:30",
    "1:45",
    "10:30am",
    "10:30pm",
    "10:30 am",
    "23:59",
    "24:00",
    "10:61",
    "1:5",
    "10:",
    ":30",
    "100:30",
    "10:30_20200102",
    "10:30 03/29/2020",
    "02:30 20201025",
    "02:30 03/08/2020",
    "01:30 11/01/2020",
    "01/02/2020",
    "1/2/20",
    "01/02/70",
    "01/02/69",
    "01/02/1969",
    "01/02/1899",
    "12/31/9999",
    "02/30/2020",
    "13/01/2020",
    "01/02",
    "1/2/3/4",
    "20200101",
    "20201231",
    "20200230",
    "20201301",
    "19000101",
    "19010101",
    "jan1",
    "jan 1",
    "January 15",
    "feb29",
    "feb30",
    "jan2020",
    "jan",
    "march",
    "dec31",
    "may 5",
    "sunday",
    "monday",
    "Tuesday",
    "wed",
    "thursday",
    "fri",
    "saturday",
    "noon monday",
    "9am friday",
    "sun",
    "foo",
    "1584275696",
    "0",
    "1",
    "99999999999",
    "253402300799",
    "253402300800",
    "12345678",
    "123456789",
    "nowish",
    "now now",
    "1am2pm",
    "a:b",
    "cam",
    // From graphite-web's test_attime.py.
    "12:0020150308",
    "9:0020150308",
    "20150110",
    "midnight+1h",
    "midnight_tomorrow",
    "midnight_tomorrow+3h",
    "midnight+3h",
    "january8",
    "january10",
    "january800",
    "january",
    "02/25/15",
    "02/23/10",
    "20100223",
    "8:50",
    "8:50am",
    "8:50pm",
    "8am",
    "10pm",
    "-1year",
    "-4years",
    "-1month",
    "noon+yesterday",
    ":",
    "random",
];

const OFFSETS: &[&str] = &[
    "",
    "-1d",
    "+1d",
    "-1h",
    "+30min",
    "-5min",
    "-5minutes",
    "-1w",
    "-2weeks",
    "-1mon",
    "-1month",
    "-1y",
    "-2years",
    "-1h30min",
    "+1d2h3min4s",
    "-10s",
    "-10sec",
    "-1m",
    "-1mo",
    "-1",
    "-d",
    "+",
    "-",
    "-1x",
    "+1H",
    "-1h-1h",
    "-999999999d",
    "-1000000000d",
    "-99999999999999999999y",
    "-0d",
];

fn compare(cases: &[(String, i64, &str)]) {
    let input: Vec<Value> = cases.iter().map(|(s, now, tz)| json!([s, now, tz])).collect();
    let theirs = run_graphite(AT_TIME_SCRIPT, &Value::Array(input));
    let theirs = theirs.as_array().expect("list");
    assert_eq!(theirs.len(), cases.len());
    let mut failures = Vec::new();
    for ((s, now, tz), want) in cases.iter().zip(theirs) {
        let zone = time_zone(tz).expect("zone");
        let ours = parse_at_time(s, *now, &zone).ok();
        if ours != want.as_i64() {
            failures.push(format!("{s:?} now={now} tz={tz}: ours {ours:?}, graphite {want}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn references_and_offsets_match_graphite() {
    let mut cases = Vec::new();
    for &tz in ZONES {
        for &now in NOWS {
            for r in REFERENCES {
                cases.push((r.to_string(), now, tz));
            }
            for o in OFFSETS {
                cases.push((o.to_string(), now, tz));
                cases.push((format!("now{o}"), now, tz));
                cases.push((format!("noon yesterday{o}"), now, tz));
            }
        }
    }
    cases.push(("now-1d+2h".into(), NOWS[0], "UTC"));
    cases.push(("20200101+1d".into(), NOWS[0], "UTC"));
    cases.push(("12/31/9999+1d".into(), NOWS[0], "UTC"));
    cases.push(("01/01/0001-1d".into(), NOWS[0], "UTC"));
    assert!(cases.len() > 1000);
    compare(&cases);
}

#[test]
fn random_strings_match_graphite() {
    const PIECES: &[&str] = &[
        "0",
        "1",
        "2",
        "3",
        "9",
        "12",
        "30",
        "2020",
        "/",
        ":",
        "+",
        "-",
        "am",
        "pm",
        "now",
        "noon",
        "d",
        "h",
        "min",
        "s",
        "w",
        "mon",
        "y",
        "m",
        "jan",
        "fri",
        "today",
        "yesterday",
        " ",
        "_",
        ",",
        "x",
        "midnight",
        "teatime",
        "1d",
        "20200315",
    ];
    let mut rng = Rng::new(7);
    let mut cases = Vec::new();
    for i in 0..3000 {
        let n = 1 + rng.below(6);
        let s: String = (0..n).map(|_| *rng.pick(PIECES)).collect();
        cases.push((s, NOWS[i % NOWS.len()], ZONES[i % ZONES.len()]));
    }
    compare(&cases);
}

#[test]
fn offsets_match_graphite() {
    let mut inputs: Vec<String> = OFFSETS.iter().map(|s| s.to_string()).collect();
    for extra in [
        "5min",
        "1d",
        "1H",
        "+5",
        "5 min",
        "1h1",
        "7days",
        "1minute1second",
        "3y2mon",
        "-0s",
        "1é",
    ] {
        inputs.push(extra.to_string());
    }
    let mut rng = Rng::new(11);
    const PIECES: &[&str] = &[
        "1", "25", "+", "-", "s", "min", "h", "d", "w", "mon", "y", "m", "x", "seconds",
    ];
    for _ in 0..1000 {
        let n = 1 + rng.below(5);
        inputs.push((0..n).map(|_| *rng.pick(PIECES)).collect());
    }
    let theirs = run_graphite(OFFSET_SCRIPT, &json!(inputs));
    let theirs = theirs.as_array().expect("list");
    let mut failures = Vec::new();
    for (s, want) in inputs.iter().zip(theirs) {
        let ours = parse_time_offset(s).ok();
        if ours != want.as_i64() {
            failures.push(format!("{s:?}: ours {ours:?}, graphite {want}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
