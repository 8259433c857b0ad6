//! Differential test against carbon 1.1's own `ConsistentHashingRouter` (carbon-relay's
//! consistent-hashing), run by /usr/bin/python3: the same rings must have the same points and send
//! 10 000 random names to the same destinations, for carbon_ch and fnv1a_ch, replication 1 to 3,
//! with DIVERSE_REPLICAS on and off, and with rings full of colliding points.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use carbide_routing::{Algorithm, CarbonHash, ConsistentRing, Destination, FastRing, HashRing, Ring};
use serde_json::{Value, json};

const PYTHON: &str = "/usr/bin/python3";

/// Builds each case's ring with carbon's router and prints its points and every name's route.
const SCRIPT: &str = r#"
import json, sys
from carbon.routers import ConsistentHashingRouter, FastHashingRouter

class Settings(object):
    pass

spec = json.load(sys.stdin)
result = []
for case in spec["cases"]:
    s = Settings()
    s.REPLICATION_FACTOR = case["replication"]
    s.DIVERSE_REPLICAS = case["diverse"]
    s.ROUTER_HASH_TYPE = case["hash"]
    fast = case["fast"]
    router = (FastHashingRouter if fast else ConsistentHashingRouter)(s)
    for host, port, instance in case["dests"]:
        router.addDestination((host, port, instance))
    points = router.ring.sorted_nodes if fast else router.ring.ring
    ring = [[pos, node[0], node[1]] for pos, node in points]
    routes = [[[d[0], d[2]] for d in router.getDestinations(m)] for m in spec["metrics"]]
    result.append({"ring": ring, "routes": routes})
json.dump(result, sys.stdout)
"#;

struct Case {
    /// carbon's fast-hashing instead of consistent-hashing.
    fast: bool,
    hash: CarbonHash,
    replication: usize,
    diverse: bool,
    dests: Vec<Destination>,
}

fn hosts(n: usize, prefix: &str) -> Vec<Destination> {
    (0..n)
        .map(|i| Destination::new(format!("{prefix}{i}"), 2004))
        .collect()
}

fn with_instances(hosts: &[&str], instances: &[&str]) -> Vec<Destination> {
    hosts
        .iter()
        .flat_map(|h| {
            instances
                .iter()
                .map(move |i| Destination::with_instance(*h, 2004, *i))
        })
        .collect()
}

/// Servers and instances whose Python repr needs quotes switched, escapes, or non-ASCII.
fn odd_destinations() -> Vec<Destination> {
    let hosts = [
        "plain",
        "it's",
        "say\"hi\"",
        "both'\"",
        "back\\slash",
        "café",
        "nb\u{a0}sp",
        "zw\u{200b}",
        "😀",
        "tab\there",
        "中文",
        "\u{7f}del",
    ];
    let mut out = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        out.push(Destination::new(*h, 2004));
        out.push(Destination::with_instance(
            *h,
            2005,
            ["a", "it's", "\\", "é", "None", ""][i % 6],
        ));
    }
    out
}

/// buckytools' 39-node ring, which has colliding points.
fn bucky_39() -> Vec<Destination> {
    let mut hosts: Vec<String> = (10..=18).map(|i| format!("graphite0{i}-g5")).collect();
    hosts.extend((19..=22).map(|i| format!("graphite-data0{i}-g5")));
    hosts
        .iter()
        .flat_map(|h| ["a", "b", "c"].map(|i| Destination::with_instance(h.clone(), 2004, i)))
        .collect()
}

fn cases() -> Vec<Case> {
    use CarbonHash::{CarbonCh, Fnv1aCh};
    let c = |hash, replication, diverse, dests| Case {
        fast: false,
        hash,
        replication,
        diverse,
        dests,
    };
    let f = |hash, replication, diverse, dests| Case {
        fast: true,
        hash,
        replication,
        diverse,
        dests,
    };
    let twelve = with_instances(
        &["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"],
        &["a", "b", "c"],
    );
    let carbon_test = vec![
        Destination::with_instance("127.0.0.1", 2004, "ba603c36342304ed77953f84ac4d357b"),
        Destination::with_instance("127.0.0.2", 2004, "5dd63865534f84899c6e5594dba6749a"),
        Destination::with_instance("127.0.0.3", 2004, "866a18b81f2dc4649517a1df13e26f28"),
    ];
    vec![
        c(CarbonCh, 1, true, hosts(3, "cache")),
        c(CarbonCh, 2, true, twelve.clone()),
        c(CarbonCh, 3, false, twelve.clone()),
        c(CarbonCh, 3, true, bucky_39()),
        c(CarbonCh, 2, false, bucky_39()),
        c(CarbonCh, 2, true, hosts(50, "store-")),
        c(CarbonCh, 3, true, odd_destinations()),
        c(CarbonCh, 2, false, odd_destinations()),
        c(Fnv1aCh, 1, true, carbon_test),
        // No instances: every member's point keys are "i-None", so all collide and get bumped.
        c(Fnv1aCh, 2, true, hosts(5, "10.1.0.")),
        c(Fnv1aCh, 3, false, hosts(5, "10.1.0.")),
        // The same instance names on every host collide too.
        c(Fnv1aCh, 2, true, twelve.clone()),
        c(Fnv1aCh, 3, false, odd_destinations()),
        // One member: carbon yields it twice when replicas are not diverse (see below).
        c(CarbonCh, 2, false, hosts(1, "solo")),
        c(Fnv1aCh, 3, true, hosts(1, "solo")),
        // fast-hashing: members sorted by the hash of their tuple text.
        f(CarbonCh, 1, true, hosts(7, "fast-")),
        f(CarbonCh, 2, true, twelve.clone()),
        f(CarbonCh, 3, false, odd_destinations()),
        f(Fnv1aCh, 2, false, twelve.clone()),
        f(Fnv1aCh, 3, true, odd_destinations()),
    ]
}

fn hash_name(h: CarbonHash) -> &'static str {
    match h {
        CarbonHash::CarbonCh => "carbon_ch",
        CarbonHash::Fnv1aCh => "fnv1a_ch",
        CarbonHash::Mmh3Ch => "mmh3_ch",
    }
}

fn run_carbon(python: &str, spec: &Value) -> Vec<Value> {
    common::require(python, "python3 with Debian's graphite-carbon 1.1.7");
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let input = serde_json::to_vec(spec).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("python3 output");
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "carbon's router failed (is graphite-carbon installed? scripts/install-test-deps.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(v) => v,
        other => panic!("unexpected output {other}"),
    }
}

fn node_json(d: &Destination) -> Value {
    json!([d.host, d.instance])
}

/// Runs every case through carbon and through us; returns how many rings had bumped points.
fn compare(python: &str, cases: &[Case], names: &[String]) -> usize {
    let spec = json!({
        "metrics": names,
        "cases": cases.iter().map(|c| json!({
            "fast": c.fast,
            "hash": hash_name(c.hash),
            "replication": c.replication,
            "diverse": c.diverse,
            "dests": c.dests.iter().map(|d| json!([d.host, d.port, d.instance])).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let results = run_carbon(python, &spec);
    assert_eq!(results.len(), cases.len());
    let mut out = Vec::new();
    let mut collisions_seen = 0;
    for (case_no, (case, result)) in cases.iter().zip(&results).enumerate() {
        let theirs = result["ring"].as_array().unwrap();
        let ring = if case.fast {
            let ring = FastRing::carbon(case.hash, case.dests.clone(), case.diverse).unwrap();
            // carbon orders tied hashes by Python set order, which changes from run to run.
            let hashes: Vec<i64> = theirs.iter().map(|p| p[0].as_i64().unwrap()).collect();
            assert!(
                hashes.windows(2).all(|w| w[0] < w[1]),
                "case {case_no}: tied member hashes"
            );
            let ours: Vec<Value> = ring
                .member_order()
                .map(|n| node_json(&ring.destinations()[n.index()]))
                .collect();
            let theirs: Vec<Value> = theirs.iter().map(|p| json!([p[1], p[2]])).collect();
            assert_eq!(ours, theirs, "case {case_no}: member order differs");
            HashRing::Fast(ring)
        } else {
            let ring = ConsistentRing::carbon(case.hash, case.dests.clone(), case.diverse).unwrap();
            let ours: Vec<Value> = ring
                .points()
                .map(|(p, n)| {
                    let d = &ring.destinations()[n.index()];
                    json!([p, d.host, d.instance])
                })
                .collect();
            assert_eq!(&ours, theirs, "case {case_no}: ring points differ");
            // Bumped points sit next to each other or above 65535 (mmh3: check neighbours only).
            if ours
                .windows(2)
                .any(|w| w[1][0].as_i64().unwrap() == w[0][0].as_i64().unwrap() + 1)
                || (case.hash != CarbonHash::Mmh3Ch && ours.iter().any(|p| p[0].as_i64().unwrap() > 65535))
            {
                collisions_seen += 1;
            }
            HashRing::Consistent(ring)
        };
        let routes = result["routes"].as_array().unwrap();
        assert_eq!(routes.len(), names.len());
        for (name, want) in names.iter().zip(routes) {
            ring.route(name.as_bytes(), case.replication, &mut out);
            let got: Vec<Value> = out
                .iter()
                .map(|n| node_json(&ring.destinations()[n.index()]))
                .collect();
            let mut want: Vec<Value> = want.as_array().unwrap().clone();
            if !case.fast && case.dests.len() == 1 && !case.diverse && case.replication > 1 {
                // carbon's get_nodes yields a lone member twice (once up front, once from its walk),
                // so a non-diverse router sends to it twice. We send once.
                assert_eq!(want.len(), 2, "case {case_no}: carbon's double yield changed");
                want.dedup();
            }
            assert_eq!(got, want, "case {case_no}: {name:?} routed differently");
        }
    }
    collisions_seen
}

#[test]
fn carbon_rings_and_routes_match_carbon() {
    let names = common::utf8_names(0xca7b0, 10_000);
    let collisions = compare(PYTHON, &cases(), &names);
    assert!(
        collisions >= 5,
        "too few rings with colliding points: {collisions}"
    );
}

/// The Python for the mmh3_ch oracle: CARBIDE_MMH3_PYTHON, else the venv that
/// scripts/install-test-deps.sh makes over /usr/bin/python3's packages with PyPI's mmh3 added
/// (Debian packages carbon but not mmh3). Fails, naming what is missing, when it cannot import both.
fn mmh3_python() -> String {
    let python = std::env::var("CARBIDE_MMH3_PYTHON").unwrap_or_else(|_| {
        let oracles = std::env::var("CARBIDE_ORACLES")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/oracles").to_owned());
        format!("{oracles}/carbon-venv/bin/python")
    });
    let ok = Command::new(&python)
        .args(["-c", "import carbon.hashing, mmh3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} cannot import Python's mmh3 module (PyPI) together with carbon: \
         run scripts/install-test-deps.sh, or set CARBIDE_MMH3_PYTHON to a Python that has both"
    );
    python
}

#[test]
fn carbon_mmh3_rings_match_carbon() {
    let python = mmh3_python();
    let twelve = with_instances(
        &["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"],
        &["a", "b", "c"],
    );
    let m = |fast, replication, diverse, dests| Case {
        fast,
        hash: CarbonHash::Mmh3Ch,
        replication,
        diverse,
        dests,
    };
    let cases = vec![
        m(false, 1, true, hosts(3, "cache")),
        m(false, 3, true, twelve.clone()),
        m(false, 2, false, odd_destinations()),
        m(true, 1, true, hosts(7, "fast-")),
        m(true, 2, true, twelve),
        m(true, 3, false, odd_destinations()),
    ];
    compare(&python, &cases, &common::utf8_names(0x3333, 10_000));
    // The default algorithm of fast-hashing must be reachable through the public enum too.
    let ring = HashRing::build(
        Algorithm::CarbonFast {
            hash: CarbonHash::Mmh3Ch,
            diverse_replicas: true,
        },
        hosts(3, "x"),
    )
    .unwrap();
    assert_eq!(ring.destinations().len(), 3);
}
