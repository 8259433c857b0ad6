//! `carbide relay` in front of three `carbide cache` instances: consistent hashing with
//! REPLICATION_FACTOR = 2, one cache stopped for a while under load and restarted. Every point
//! must end up in the whisper files of exactly the caches carbon's own router (Debian
//! graphite-carbon 1.1.7, `carbon.routers.ConsistentHashingRouter`) picks for its metric, and the
//! down cache's share must have gone through the relay's spill file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "cache_common/mod.rs"]
mod cache_common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache_common::{Kind, Ports, Server, carbide_exe, free_port, now, points_of, wait_until};

/// A running `carbide relay`, killed when dropped.
struct Relay {
    child: Child,
    line: u16,
    dir: PathBuf,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Relay {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("relay.log")).unwrap_or_default()
    }
}

const INSTANCES: [&str; 3] = ["a", "b", "c"];

fn start_relay(dir: &Path, caches: &[Ports], extra: &str) -> Relay {
    std::fs::create_dir_all(dir).unwrap();
    let (line, pickle) = (free_port(), free_port());
    let dests: Vec<String> = caches
        .iter()
        .zip(INSTANCES)
        .map(|(p, i)| format!("127.0.0.1:{}:{i}", p.pickle))
        .collect();
    let conf = format!(
        "[relay]
STORAGE_DIR = {d}/
LOG_DIR = {d}/
PID_DIR = {d}/
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line}
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle}
RELAY_METHOD = consistent-hashing
REPLICATION_FACTOR = 2
DIVERSE_REPLICAS = False
DESTINATIONS = {dests}
DESTINATION_PROTOCOL = pickle
MAX_QUEUE_SIZE = 300
MAX_DATAPOINTS_PER_MESSAGE = 100
CARBON_METRIC_INTERVAL = 0
{extra}
",
        d = dir.display(),
        dests = dests.join(", ")
    );
    std::fs::write(dir.join("carbon.conf"), conf).unwrap();
    let log = std::fs::File::create(dir.join("relay.log")).unwrap();
    let child = Command::new(carbide_exe())
        .arg("relay")
        .arg("-c")
        .arg(dir.join("carbon.conf"))
        .arg("--spool-dir")
        .arg(dir.join("spool"))
        .env("CARBIDE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start carbide relay");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", line)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "relay not listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Relay {
        child,
        line,
        dir: dir.to_path_buf(),
    }
}

/// carbon's own router's answer for each metric: `metric -> {instance}`.
fn carbon_destinations(caches: &[Ports], metrics: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let script = r#"
import sys
from carbon.routers import ConsistentHashingRouter
class S: REPLICATION_FACTOR = 2; DIVERSE_REPLICAS = False; ROUTER_HASH_TYPE = None
r = ConsistentHashingRouter(S)
lines = sys.stdin.read().split('\n')
for d in lines[0].split(','):
    h, p, i = d.split(':')
    r.addDestination((h, int(p), i))
for m in lines[1:]:
    if m:
        print(m, ' '.join(i for (h, p, i) in r.getDestinations(m)))
"#;
    let mut input = caches
        .iter()
        .zip(INSTANCES)
        .map(|(p, i)| format!("127.0.0.1:{}:{i}", p.pickle))
        .collect::<Vec<_>>()
        .join(",");
    for m in metrics {
        input.push('\n');
        input.push_str(m);
    }
    let py = Path::new(cache_common::PYTHON);
    assert!(
        py.exists() && Path::new("/usr/lib/python3/dist-packages/carbon").exists(),
        "python3 with graphite-carbon missing: run scripts/install-test-deps.sh"
    );
    let mut child = Command::new(py)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "carbon router: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut w = l.split(' ');
            let m = w.next().unwrap().to_string();
            (m, w.map(str::to_string).collect())
        })
        .collect()
}

/// Our router (carbide_relay) for the same settings, as instance names.
fn carbide_destinations(caches: &[Ports], metrics: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    use carbide_relay::router::Router;
    let conf = format!(
        "[relay]\nRELAY_METHOD = consistent-hashing\nREPLICATION_FACTOR = 2\nDIVERSE_REPLICAS = False\nDESTINATIONS = {}\n",
        caches
            .iter()
            .zip(INSTANCES)
            .map(|(p, i)| format!("127.0.0.1:{}:{i}", p.pickle))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let env = carbide_config::ConfigEnv {
        graphite_root: "/tmp".into(),
        storage_dir: None,
        home: None,
    };
    let (s, _) = carbide_config::parse_carbon_conf("carbon.conf", &conf, "relay", None, &env).unwrap();
    let r = Router::from_settings(&s, None, vec![]).unwrap();
    let (mut out, mut scratch) = (vec![], vec![]);
    metrics
        .iter()
        .map(|m| {
            r.route(m, &mut out, &mut scratch);
            (m.clone(), out.iter().map(|&i| INSTANCES[i].to_string()).collect())
        })
        .collect()
}

fn send_phase(port: u16, metrics: &[String], base: i64, steps: std::ops::Range<i64>, pace: Duration) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for k in steps {
        let mut batch = String::new();
        for (i, m) in metrics.iter().enumerate() {
            batch.push_str(&format!("{m} {} {}\n", value(i, k), base + k));
        }
        s.write_all(batch.as_bytes()).unwrap();
        std::thread::sleep(pace);
    }
    cache_common::finish(s);
}

fn value(i: usize, k: i64) -> f64 {
    i as f64 * 1000.0 + k as f64 + 0.25
}

#[test]
fn relay_replicates_by_carbon_ring_and_replays_a_down_cache_from_spill() {
    let tmp = tempfile::tempdir().unwrap();
    let mut caches: Vec<Server> = INSTANCES
        .iter()
        .map(|i| Server::start(Kind::Carbide, &tmp.path().join(format!("cache-{i}")), "", &[]))
        .collect();
    let ports: Vec<Ports> = caches.iter().map(|c| c.ports).collect();
    let relay = start_relay(&tmp.path().join("relay"), &ports, "");

    let metrics: Vec<String> = (0..150).map(|i| format!("relaytest.host{i}.cpu")).collect();
    let ours = carbide_destinations(&ports, &metrics);
    let carbons = carbon_destinations(&ports, &metrics);
    assert_eq!(ours, carbons, "carbide's ring and carbon's router disagree");
    for (m, d) in &ours {
        assert_eq!(d.len(), 2, "{m}: two replicas");
    }

    let base = now() - 1200;
    // Phase 1: all up.
    send_phase(relay.line, &metrics, base, 0..10, Duration::from_millis(20));
    let wait_points = |caches: &[Server], upto: i64| {
        wait_until(Duration::from_secs(90), "points on their replicas", || {
            ours.iter().enumerate().all(|(i, (m, dests))| {
                caches.iter().zip(INSTANCES).all(|(c, inst)| {
                    let got = points_of(&c.whisper(), m, now());
                    if dests.contains(inst) {
                        (0..upto)
                            .all(|k| got.get(&(base + k)) == Some(&value(metrics_index(&metrics, m, i), k)))
                    } else {
                        got.is_empty()
                    }
                })
            })
        })
    };
    wait_points(&caches, 10);

    // Phase 2: cache b down; load continues, b's share overflows its 300-point queue into the spill.
    assert!(caches[1].stop(), "cache b did not stop");
    std::thread::sleep(Duration::from_millis(300));
    send_phase(relay.line, &metrics, base, 10..40, Duration::from_millis(50));
    let spill = tmp
        .path()
        .join("relay/spool/127_0_0_1:".to_string() + &ports[1].pickle.to_string() + ":b.spill");
    let spilled = std::fs::metadata(&spill).map(|m| m.len()).unwrap_or(0);
    assert!(
        spilled > 0,
        "nothing spilled to {}; relay log:\n{}",
        spill.display(),
        relay.log()
    );
    // The others kept receiving while b was down.
    wait_until(Duration::from_secs(60), "a and c keep up while b is down", || {
        ours.iter().filter(|(_, d)| !d.contains("b")).all(|(m, _)| {
            let i = metrics_index(&metrics, m, 0);
            caches
                .iter()
                .zip(INSTANCES)
                .filter(|(_, inst)| ours[m].contains(*inst))
                .all(|(c, _)| points_of(&c.whisper(), m, now()).get(&(base + 39)) == Some(&value(i, 39)))
        })
    });

    // Phase 3: b back (same ports and data), more load; everything must arrive.
    let dir_b = caches[1].dir.clone();
    caches[1] = Server::start_with(Kind::Carbide, &dir_b, ports[1], &[]);
    send_phase(relay.line, &metrics, base, 40..50, Duration::from_millis(20));
    wait_points(&caches, 50);
    wait_until(Duration::from_secs(30), "spill file emptied", || {
        std::fs::metadata(&spill).map(|m| m.len()).unwrap_or(0) == 0
    });
    let log = relay.log();
    assert!(
        log.contains("destination unreachable")
            || log.contains("send failed")
            || log.contains("closed the connection"),
        "the outage is logged:\n{log}"
    );
    drop(relay);
}

fn metrics_index(metrics: &[String], m: &str, _hint: usize) -> usize {
    metrics.iter().position(|x| x == m).unwrap()
}

#[test]
fn malformed_relay_rules_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    std::fs::write(
        tmp.path().join("carbon.conf"),
        format!(
            "[relay]\nSTORAGE_DIR = {d}/\nLINE_RECEIVER_PORT = {}\nPICKLE_RECEIVER_PORT = {}\n\
             RELAY_METHOD = rules\nDESTINATIONS = 127.0.0.1:2004\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("relay-rules.conf"),
        "[default]\ndefault = true\ndestinations = 127.0.0.1:2004\n\n[bad]\npattern = (unclosed\ndestinations = 127.0.0.1:2004\n",
    )
    .unwrap();
    let out = Command::new(carbide_exe())
        .arg("relay")
        .arg("-c")
        .arg(tmp.path().join("carbon.conf"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("relay-rules.conf:"),
        "names the file and line: {err}"
    );
}
