//! The real carbon-aggregator (Debian graphite-carbon 1.1.7) as an oracle: its carbon.conf and
//! rule files, the process, a deterministic input stream, and the parse of what it emits, shared
//! by `relay_aggregator_diff.rs` (against `carbide aggregator`) and `serve_aggregator.rs`
//! (against `carbide serve --aggregation-rules`).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The real program.
pub const CARBON_AGGREGATOR: &str = "/usr/bin/carbon-aggregator";

/// A child process killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fails, naming the installer, unless carbon-aggregator is installed.
pub fn require_carbon_aggregator() {
    assert!(
        Path::new(CARBON_AGGREGATOR).exists(),
        "{CARBON_AGGREGATOR} missing: install Debian graphite-carbon (scripts/install-test-deps.sh)"
    );
}

/// What an aggregator reads: receivers, one line-protocol destination, and the rule files.
pub struct AggConf<'a> {
    /// LINE_RECEIVER_PORT.
    pub line: u16,
    /// PICKLE_RECEIVER_PORT.
    pub pickle: u16,
    /// The single destination's port (DESTINATION_PROTOCOL = line).
    pub dest: u16,
    /// MAX_AGGREGATION_INTERVALS.
    pub max_intervals: u32,
    /// FORWARD_ALL.
    pub forward_all: bool,
    /// aggregation-rules.conf.
    pub rules: &'a str,
    /// rewrite-rules.conf.
    pub rewrite: &'a str,
}

/// Writes dir/conf/{carbon.conf, storage-schemas.conf, aggregation-rules.conf,
/// rewrite-rules.conf} (and the directories carbon wants); returns carbon.conf's path.
pub fn write_conf(dir: &Path, c: &AggConf<'_>) -> PathBuf {
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
FORWARD_ALL = {fwd}
DESTINATIONS = 127.0.0.1:{dest}
DESTINATION_PROTOCOL = line
REPLICATION_FACTOR = 1
MAX_AGGREGATION_INTERVALS = {max}
MAX_QUEUE_SIZE = 1000000
MAX_DATAPOINTS_PER_MESSAGE = 500
CARBON_METRIC_INTERVAL = 0
LOG_LISTENER_CONNECTIONS = False
ENABLE_LOGROTATION = False
",
        line = c.line,
        pickle = c.pickle,
        dest = c.dest,
        max = c.max_intervals,
        fwd = if c.forward_all { "True" } else { "False" },
    );
    let conf_dir = dir.join("conf");
    std::fs::write(conf_dir.join("carbon.conf"), conf).unwrap();
    std::fs::write(
        conf_dir.join("storage-schemas.conf"),
        "[default]\npattern = .*\nretentions = 1s:1h\n",
    )
    .unwrap();
    std::fs::write(conf_dir.join("aggregation-rules.conf"), c.rules).unwrap();
    std::fs::write(conf_dir.join("rewrite-rules.conf"), c.rewrite).unwrap();
    conf_dir.join("carbon.conf")
}

/// Starts carbon-aggregator (instance `a`, in the foreground) on a conf from [`write_conf`]
/// under `dir`, and waits for its line receiver on `line`.
pub fn start_carbon_aggregator(dir: &Path, conf: &Path, line: u16) -> Guard {
    require_carbon_aggregator();
    start_carbon_daemon(CARBON_AGGREGATOR, dir, conf, line)
}

/// Starts one of carbon's Twisted daemons (`program`: carbon-aggregator, carbon-relay) as
/// instance `a` in the foreground on `conf`, logs and pid under `dir`, and waits for its line
/// receiver on `line`.
pub fn start_carbon_daemon(program: &str, dir: &Path, conf: &Path, line: u16) -> Guard {
    let name = Path::new(program)
        .file_name()
        .map_or_else(|| program.to_string(), |n| n.to_string_lossy().into_owned());
    let mut g = Guard(
        Command::new(program)
            .arg(format!("--config={}", conf.display()))
            .arg("--instance=a")
            .arg(format!("--logdir={}", dir.join("log").display()))
            .arg(format!(
                "--pidfile={}",
                dir.join(format!("run/{name}.pid")).display()
            ))
            .arg("--nodaemon")
            .arg("start")
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(line, &mut g, &name);
    g
}

/// Waits until `port` accepts, failing if the process exits first.
pub fn wait_port(port: u16, p: &mut Guard, what: &str) {
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

/// Sends `data` on one connection to each port, closing the write side after it.
pub fn send_all(ports: &[u16], data: &str) {
    for &port in ports {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(data.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
}

/// The input at each of `times`: two environments (`incoming.` is renamed to `prod.` by the
/// rewrite rules) × 7 hosts × 3 metrics, plus `deep.*` and unmatched metrics; deterministic
/// pseudo-random values (seeded by `seed`), with one host always 7 so methods see repeats.
pub fn input(times: impl IntoIterator<Item = i64>, seed: u64) -> String {
    let mut s = String::new();
    let mut x: u64 = 0x9e3779b97f4a7c15 ^ seed;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 20000) as f64 / 100.0 - 50.0
    };
    for t in times {
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

/// Aggregates (the last value per name and interval) and forwarded raw points (every value per
/// name and timestamp, sorted).
pub type Parsed = (BTreeMap<(String, i64), f64>, BTreeMap<(String, i64), Vec<f64>>);

/// True for the aggregate names the rules of these tests produce.
pub fn is_aggregate(name: &str) -> bool {
    name.contains(".agg.") || name.starts_with("all.")
}

/// Splits captured `name value timestamp` lines into [`Parsed`].
pub fn parse(lines: &[String]) -> Parsed {
    let (mut agg, mut raw) = (BTreeMap::new(), BTreeMap::<(String, i64), Vec<f64>>::new());
    for l in lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 3, "bad line {l:?}");
        let key = (f[0].to_string(), f[2].parse::<f64>().unwrap() as i64);
        let v: f64 = f[1].parse().unwrap();
        if is_aggregate(f[0]) {
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

/// The last value sent for every (name, timestamp), in the order the lines were received: what a
/// whisper slot ends up holding when every line is written.
pub fn last_values(lines: &[String]) -> BTreeMap<(String, i64), f64> {
    let mut out = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 3, "bad line {l:?}");
        out.insert(
            (f[0].to_string(), f[2].parse::<f64>().unwrap() as i64),
            f[1].parse::<f64>().unwrap(),
        );
    }
    out
}

/// Equal up to float rounding (sums in a different order) and carbon's line client, which sends
/// values as `%.10f`.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-12 * a.abs().max(b.abs())
}

/// Asserts carbide emitted what carbon did: the same (aggregate, interval) set with close values,
/// and the same forwarded (name, timestamp) set with close values in the same order.
pub fn assert_same_outputs(carbon: &Parsed, ours: &Parsed) {
    let ((c_agg, c_raw), (o_agg, o_raw)) = (carbon, ours);
    assert_eq!(
        c_agg.keys().collect::<Vec<_>>(),
        o_agg.keys().collect::<Vec<_>>(),
        "different (aggregate, interval) sets"
    );
    for (k, v) in c_agg {
        assert!(close(*v, o_agg[k]), "{k:?}: carbon {v}, carbide {}", o_agg[k]);
    }
    assert_eq!(
        c_raw.keys().collect::<Vec<_>>(),
        o_raw.keys().collect::<Vec<_>>(),
        "different forwarded (name, timestamp) sets"
    );
    for (k, v) in c_raw {
        let o = &o_raw[k];
        assert!(
            v.len() == o.len() && v.iter().zip(o).all(|(a, b)| close(*a, *b)),
            "{k:?}: carbon {v:?}, carbide {o:?}"
        );
    }
}

/// Waits until `count()` is `Some` and has not changed for `quiet`, failing after `limit`;
/// `None` means "not ready yet" (nothing to compare).
pub fn wait_quiet(limit: Duration, quiet: Duration, what: &str, mut count: impl FnMut() -> Option<usize>) {
    let start = Instant::now();
    let mut last = (None, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let n = count();
        if n.is_none() || n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not settled after {limit:?} ({n:?})"
        );
    }
}
