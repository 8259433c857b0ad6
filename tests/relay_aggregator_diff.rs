//! `carbide aggregator` against the real carbon-aggregator (Debian graphite-carbon 1.1.7,
//! /usr/bin/carbon-aggregator): the same aggregation-rules.conf (every method, several
//! frequencies, `<<field>>`, `<field>` and `*` patterns), the same rewrite-rules.conf and the same
//! input stream; each sends (DESTINATION_PROTOCOL = line) to a capture listener in this test. The
//! last value each emits for every (aggregate, interval) must agree, and FORWARD_ALL must forward
//! the same raw points under the same (rewritten) names.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CARBON_AGGREGATOR: &str = "/usr/bin/carbon-aggregator";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Accepts connections and collects every line they send.
fn capture() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = lines.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let out = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(s).lines().map_while(Result::ok) {
                    out.lock().unwrap().push(line);
                }
            });
        }
    });
    (port, lines)
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

fn write_conf(dir: &Path, line: u16, pickle: u16, dest: u16) -> std::path::PathBuf {
    for d in ["conf", "log", "run", "whisper", "lists"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let d = dir.display();
    let conf = format!(
        "[aggregator]
STORAGE_DIR = {d}/
LOCAL_DATA_DIR = {d}/whisper/
WHITELISTS_DIR = {d}/lists/
LOG_DIR = {d}/log/
PID_DIR = {d}/run/
USER =
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line}
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle}
ENABLE_UDP_LISTENER = False
FORWARD_ALL = True
DESTINATIONS = 127.0.0.1:{dest}
DESTINATION_PROTOCOL = line
REPLICATION_FACTOR = 1
MAX_AGGREGATION_INTERVALS = 100
MAX_QUEUE_SIZE = 1000000
MAX_DATAPOINTS_PER_MESSAGE = 500
CARBON_METRIC_INTERVAL = 0
LOG_LISTENER_CONNECTIONS = False
ENABLE_LOGROTATION = False
"
    );
    let c = dir.join("conf");
    std::fs::write(c.join("carbon.conf"), conf).unwrap();
    std::fs::write(
        c.join("storage-schemas.conf"),
        "[default]\npattern = .*\nretentions = 1s:1h\n",
    )
    .unwrap();
    std::fs::write(c.join("aggregation-rules.conf"), RULES).unwrap();
    std::fs::write(c.join("rewrite-rules.conf"), REWRITE).unwrap();
    c.join("carbon.conf")
}

fn wait_port(port: u16, p: &mut Proc, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = p.0.try_wait() {
            panic!("{what} exited ({st}) before listening");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} not listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The input: two environments × 7 hosts × 3 metrics over 12 recent seconds, plus unmatched and
/// `deep.*` metrics; deterministic pseudo-random values with repeats.
fn input(now: i64) -> String {
    let mut s = String::new();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 20000) as f64 / 100.0 - 50.0
    };
    for t in (now - 12)..now {
        for env in ["prod", "incoming"] {
            for h in 0..7 {
                for m in ["cpu", "mem", "disk.io"] {
                    let v = if h == 3 { 7.0 } else { rnd() };
                    s.push_str(&format!("{env}.host{h}.{m} {v} {t}\n"));
                }
            }
        }
        s.push_str(&format!("deep.a.b.c {} {t}\n", rnd()));
        s.push_str(&format!("deep.x {} {t}\n", rnd()));
        s.push_str(&format!("unmatched.metric {} {t}\n", rnd()));
    }
    s
}

type Parsed = (BTreeMap<(String, i64), f64>, BTreeMap<(String, i64), Vec<f64>>);

/// Splits captured lines into aggregates (last value per name and interval) and forwarded raw points.
fn parse(lines: &[String]) -> Parsed {
    let (mut agg, mut raw) = (BTreeMap::new(), BTreeMap::<(String, i64), Vec<f64>>::new());
    for l in lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 3, "bad line {l:?}");
        let key = (f[0].to_string(), f[2].parse::<i64>().unwrap());
        let v: f64 = f[1].parse().unwrap();
        if f[0].contains(".agg.") || f[0].starts_with("all.") {
            agg.insert(key, v);
        } else {
            raw.entry(key).or_default().push(v);
        }
    }
    for v in raw.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    (agg, raw)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-12 * a.abs().max(b.abs())
}

#[test]
fn aggregator_matches_carbon_aggregator() {
    assert!(
        Path::new(CARBON_AGGREGATOR).exists(),
        "{CARBON_AGGREGATOR} missing: install Debian graphite-carbon (scripts/install-test-deps.sh)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (cap_carbon, got_carbon) = capture();
    let (cap_ours, got_ours) = capture();
    let (cl, cp) = (free_port(), free_port());
    let (ol, op) = (free_port(), free_port());
    let carbon_conf = write_conf(&tmp.path().join("carbon"), cl, cp, cap_carbon);
    let our_conf = write_conf(&tmp.path().join("ours"), ol, op, cap_ours);
    let cdir = tmp.path().join("carbon");
    let mut carbon = Proc(
        Command::new(CARBON_AGGREGATOR)
            .arg(format!("--config={}", carbon_conf.display()))
            .arg("--instance=a")
            .arg(format!("--logdir={}", cdir.join("log").display()))
            .arg(format!("--pidfile={}", cdir.join("run/agg.pid").display()))
            .arg("--nodaemon")
            .arg("start")
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut ours = Proc(
        Command::new(env!("CARGO_BIN_EXE_carbide"))
            .arg("aggregator")
            .arg("-c")
            .arg(&our_conf)
            .arg("--instance=a")
            .arg("--no-spill")
            .env("CARBIDE_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(cl, &mut carbon, "carbon-aggregator");
    wait_port(ol, &mut ours, "carbide aggregator");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let data = input(now);
    // Same bytes, in a few chunks, to both.
    for port in [cl, ol] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(data.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    // Longest frequency is 3 s: after two more periods every interval has been (re-)emitted.
    let expected_raw = data.lines().count();
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let (a, b) = (got_carbon.lock().unwrap().len(), got_ours.lock().unwrap().len());
        if start.elapsed() > Duration::from_secs(60) {
            panic!("timed out: carbon sent {a} lines, carbide {b}");
        }
        if start.elapsed() > Duration::from_secs(8) && a > expected_raw / 2 && b > expected_raw / 2 {
            let before = (a, b);
            std::thread::sleep(Duration::from_secs(4));
            let after = (got_carbon.lock().unwrap().len(), got_ours.lock().unwrap().len());
            if before == after {
                break;
            }
        }
    }
    let (c_agg, c_raw) = parse(&got_carbon.lock().unwrap());
    let (o_agg, o_raw) = parse(&got_ours.lock().unwrap());
    assert!(
        c_agg.len() > 100,
        "carbon emitted only {} aggregates",
        c_agg.len()
    );
    assert_eq!(
        c_agg.keys().collect::<Vec<_>>(),
        o_agg.keys().collect::<Vec<_>>(),
        "different (aggregate, interval) sets"
    );
    for (k, v) in &c_agg {
        assert!(close(*v, o_agg[k]), "{k:?}: carbon {v}, carbide {}", o_agg[k]);
    }
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
    assert_eq!(
        c_raw.keys().collect::<Vec<_>>(),
        o_raw.keys().collect::<Vec<_>>(),
        "forwarded names"
    );
    for (k, v) in &c_raw {
        let o = &o_raw[k];
        assert_eq!(v.len(), o.len(), "{k:?}");
        assert!(
            v.iter().zip(o).all(|(a, b)| close(*a, *b)),
            "{k:?}: {v:?} vs {o:?}"
        );
    }
    assert!(
        c_raw.keys().any(|(n, _)| n.starts_with("h.prod.host")),
        "[post] rewrite applied"
    );
}

#[test]
fn malformed_aggregation_rule_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = write_conf(tmp.path(), free_port(), free_port(), free_port());
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
