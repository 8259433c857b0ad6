//! Shared by the `tests/cache_*.rs` end-to-end suites (and `benches/cache.rs`): one carbon.conf
//! written for both `carbide cache` and the real carbon-cache (Debian graphite-carbon 1.1.7), the
//! two processes started on free loopback ports and always stopped (SIGTERM, then SIGKILL) when
//! their handle drops, plus senders, a pickle encoder and whisper-tree readers.

#![allow(dead_code)]
// Test support: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The real carbon-cache.
pub const CARBON_CACHE: &str = "/usr/bin/carbon-cache";
/// The interpreter graphite-carbon and graphite-web are installed for.
pub const PYTHON: &str = "/usr/bin/python3";

#[allow(unused_imports)] // each test binary uses its own subset
pub use carbide_testkit::{free_port, free_tcp_udp_port, free_udp_port};

/// Listener ports of one server.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Plaintext TCP.
    pub line: u16,
    /// Pickle.
    pub pickle: u16,
    /// Carbonlink (CACHE_QUERY_PORT).
    pub query: u16,
    /// carbide's admin HTTP (unused by carbon).
    pub admin: u16,
}

impl Ports {
    /// Four free ports.
    pub fn free() -> Ports {
        Ports {
            line: free_port(),
            pickle: free_port(),
            query: free_port(),
            admin: free_port(),
        }
    }
}

/// Schemas shared by both servers: 1 s steps so every distinct timestamp is its own slot, and a
/// second archive so aggregation between archives is exercised.
pub const SCHEMAS: &str = "\
[carbon]
pattern = ^carbon\\.
retentions = 60:1d

[bench]
pattern = ^bench\\.
retentions = 10s:1h

[default]
pattern = .*
retentions = 1s:1h,60s:1d
";

/// carbon's example aggregation rules.
pub const AGGREGATION: &str = "\
[min]
pattern = \\.min$
xFilesFactor = 0.1
aggregationMethod = min

[max]
pattern = \\.max$
xFilesFactor = 0.1
aggregationMethod = max

[sum]
pattern = \\.count$
xFilesFactor = 0
aggregationMethod = sum

[default_average]
pattern = .*
xFilesFactor = 0.5
aggregationMethod = average
";

/// Writes `dir/conf/{carbon.conf,storage-schemas.conf,storage-aggregation.conf}` and returns the
/// carbon.conf path. Throttles are lifted (MAX_CREATES_PER_MINUTE, MAX_UPDATES_PER_SECOND and
/// MAX_CACHE_SIZE = inf) unless `extra` ("KEY = value" lines, read last) says otherwise.
pub fn write_conf(dir: &Path, ports: Ports, extra: &str) -> PathBuf {
    let conf = dir.join("conf");
    for d in ["conf", "whisper", "log", "run", "lists"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let d = dir.display();
    let text = format!(
        "[cache]
DATABASE = whisper
STORAGE_DIR = {d}/
LOCAL_DATA_DIR = {d}/whisper/
WHITELISTS_DIR = {d}/lists/
LOG_DIR = {d}/log/
PID_DIR = {d}/run/
ENABLE_LOGROTATION = False
USER =
USE_WHITELIST = False
CARBON_METRIC_PREFIX = carbon
CARBON_METRIC_INTERVAL = 0
LOG_LISTENER_CONNECTIONS = False
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line}
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle}
PICKLE_RECEIVER_MAX_LENGTH = 1048576
USE_INSECURE_UNPICKLER = False
ENABLE_UDP_LISTENER = False
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {query}
MAX_CREATES_PER_MINUTE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CACHE_SIZE = inf
USE_FLOW_CONTROL = True
CACHE_WRITE_STRATEGY = sorted
WHISPER_AUTOFLUSH = False
WHISPER_FALLOCATE_CREATE = True
LOG_UPDATES = False
LOG_CREATES = False
LOG_CACHE_HITS = False
LOG_CACHE_QUEUE_SORTS = False
ENABLE_TAGS = False
TAG_HASH_FILENAMES = True

[cache:a]
{extra}
",
        line = ports.line,
        pickle = ports.pickle,
        query = ports.query,
    );
    std::fs::write(conf.join("carbon.conf"), text).unwrap();
    std::fs::write(conf.join("storage-schemas.conf"), SCHEMAS).unwrap();
    std::fs::write(conf.join("storage-aggregation.conf"), AGGREGATION).unwrap();
    conf.join("carbon.conf")
}

/// Which server a [`Server`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `carbide cache`.
    Carbide,
    /// Debian's carbon-cache.py.
    Carbon,
}

/// A running server; SIGTERM (then SIGKILL after 20 s) when dropped.
pub struct Server {
    /// Which one.
    pub kind: Kind,
    /// Its ports.
    pub ports: Ports,
    /// Its directory (conf/, whisper/, log/).
    pub dir: PathBuf,
    child: Option<Child>,
}

/// `program` as a command, or `sh -c '<prefix> exec "$0" "$@"' program` when a prefix is given
/// (arguments added later land in `$@`; the pid stays the program's thanks to `exec`).
fn shell(program: &str, prefix: &str) -> Command {
    if prefix.is_empty() {
        return Command::new(program);
    }
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("{prefix} exec \"$0\" \"$@\""))
        .arg(program);
    c
}

/// Sends SIGTERM to `child` and waits for a successful exit within `limit` (the shutdown drains
/// the cache to disk, so a failure or a hang loses data); kills it and fails the test otherwise.
pub fn terminate(child: &mut Child, limit: Duration, what: &str) {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "cannot signal {what}");
    let status = exit_within(child, limit, what);
    assert!(status.success(), "{what} exited with {status}");
}

/// Waits up to `limit` for `child` to exit and returns its status; kills it and fails the test
/// if it is still running then.
pub fn exit_within(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The built binary.
pub fn carbide_exe() -> &'static str {
    // BENCH_CARBIDE runs another build (an A/B of two commits with the same bench binary).
    static EXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        std::env::var("BENCH_CARBIDE").unwrap_or_else(|_| env!("CARGO_BIN_EXE_carbide").to_string())
    })
}

impl Server {
    /// Writes the config into `dir` and starts `kind` on fresh ports; waits for its listeners.
    pub fn start(kind: Kind, dir: &Path, extra: &str, carbide_args: &[&str]) -> Server {
        let ports = Ports::free();
        write_conf(dir, ports, extra);
        Server::start_with(kind, dir, ports, carbide_args)
    }

    /// Starts `kind` on an existing `dir` (config already written for `ports`).
    pub fn start_with(kind: Kind, dir: &Path, ports: Ports, carbide_args: &[&str]) -> Server {
        Server::start_in_shell(kind, dir, ports, carbide_args, "")
    }

    /// Like [`Server::start_with`], but run through `sh -c '<shell_prefix> exec <server> ...'`
    /// (e.g. `ulimit -n 64;`), so the process inherits what the prefix sets.
    pub fn start_in_shell(
        kind: Kind,
        dir: &Path,
        ports: Ports,
        carbide_args: &[&str],
        shell_prefix: &str,
    ) -> Server {
        let conf = dir.join("conf/carbon.conf");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log/console.log"))
            .unwrap();
        let child = match kind {
            Kind::Carbide => shell(carbide_exe(), shell_prefix)
                .arg("cache")
                .arg("-c")
                .arg(&conf)
                .arg("--instance=a")
                .arg(format!("--admin=127.0.0.1:{}", ports.admin))
                .args(carbide_args)
                .env("CARBIDE_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("cannot start the carbide binary"),
            Kind::Carbon => {
                if !Path::new(CARBON_CACHE).exists() {
                    panic!(
                        "{CARBON_CACHE} missing: install Debian graphite-carbon (scripts/install-test-deps.sh)"
                    );
                }
                shell(CARBON_CACHE, shell_prefix)
                    .arg(format!("--config={}", conf.display()))
                    .arg("--instance=a")
                    .arg(format!("--logdir={}", dir.join("log").display()))
                    .arg(format!("--pidfile={}", dir.join("run/carbon.pid").display()))
                    .arg("--nodaemon")
                    .arg("start")
                    .env("PYTHONWARNINGS", "ignore")
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .expect("cannot start /usr/bin/carbon-cache")
            }
        };
        let mut s = Server {
            kind,
            ports,
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        let mut wait = vec![ports.line, ports.pickle, ports.query];
        if kind == Kind::Carbide {
            wait.push(ports.admin);
        }
        for p in wait {
            s.wait_port(p, Duration::from_secs(60));
        }
        s
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn wait_port(&mut self, port: u16, limit: Duration) {
        let start = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if !self.alive() {
                panic!(
                    "{:?} exited before listening on {port}; log:\n{}",
                    self.kind,
                    self.log()
                );
            }
            if start.elapsed() > limit {
                panic!(
                    "{:?} not listening on {port} after {limit:?}; log:\n{}",
                    self.kind,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Console log and carbon's own console.log, for failure messages.
    pub fn log(&self) -> String {
        let mut out = String::new();
        for f in ["log/console.log", "log/carbon-cache-a/console.log"] {
            if let Ok(t) = std::fs::read_to_string(self.dir.join(f)) {
                let tail: String = t
                    .chars()
                    .rev()
                    .take(4000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                out.push_str(&format!("--- {f}\n{tail}\n"));
            }
        }
        out
    }

    /// The whisper tree.
    pub fn whisper(&self) -> PathBuf {
        self.dir.join("whisper")
    }

    /// SIGTERM, wait up to `limit`, SIGKILL if still running; returns whether it exited in time.
    pub fn stop_within(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Stops it (see [`Server::stop_within`]).
    pub fn stop(&mut self) -> bool {
        self.stop_within(Duration::from_secs(30))
    }

    /// GET on the admin port (carbide only): the body.
    pub fn admin_get(&self, path: &str) -> String {
        http_get(self.ports.admin, path)
    }

    /// `/admin/cache` `size`.
    pub fn cache_size(&self) -> u64 {
        let body = self.admin_get("/admin/cache");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("/admin/cache: {e}: {body}"));
        v["size"].as_u64().unwrap()
    }

    /// A counter or gauge from `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let body = self.admin_get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{body}"))
    }

    /// Polls until the admin cache size is 0 (carbide only).
    pub fn wait_drained(&self, limit: Duration) {
        let start = Instant::now();
        while self.cache_size() != 0 {
            assert!(start.elapsed() < limit, "cache not drained after {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_within(Duration::from_secs(20));
    }
}

/// A minimal HTTP/1.0 GET; returns the body.
pub fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("admin connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Sends `data` on one TCP connection and closes it (after the peer has read it: we half-close
/// and wait for EOF so the bytes are not lost to a reset).
pub fn send(port: u16, data: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(data).expect("send");
    finish(s);
}

/// Half-closes and waits (up to 30 s) for the server to close its side.
pub fn finish(mut s: TcpStream) {
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut sink = [0u8; 4096];
    while let Ok(n) = s.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

/// A pickle timestamp: int or float, as senders use both.
#[derive(Debug, Clone, Copy)]
pub enum Ts {
    /// BININT.
    Int(i32),
    /// BINFLOAT.
    Float(f64),
}

/// A protocol-2 pickle of `[(name, (ts, value)), ...]`, as carbon-relay sends, with its 4-byte
/// big-endian length prefix.
pub fn pickle_frame(points: &[(&str, Ts, f64)]) -> Vec<u8> {
    let mut p = vec![0x80, 2, b']', b'('];
    for (name, ts, value) in points {
        p.push(b'X');
        p.extend_from_slice(&(name.len() as u32).to_le_bytes());
        p.extend_from_slice(name.as_bytes());
        match ts {
            Ts::Int(i) => {
                p.push(b'J');
                p.extend_from_slice(&i.to_le_bytes());
            }
            Ts::Float(f) => {
                p.push(b'G');
                p.extend_from_slice(&f.to_be_bytes());
            }
        }
        p.push(b'G');
        p.extend_from_slice(&value.to_be_bytes());
        p.push(0x86);
        p.push(0x86);
    }
    p.extend_from_slice(b"e.");
    let mut out = (p.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&p);
    out
}

/// Every regular file under `root`, as paths relative to it.
pub fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A fetch result: `(from, until, step, values)`.
pub type Series = (i64, i64, i64, Vec<Option<f64>>);

/// Whisper fetch of every `.wsp` under `root` over `[from, now]` (every archive that covers it
/// picks the finest), as `path -> (from, until, step, values)`.
pub fn fetch_all(root: &Path, from: i64, now: i64) -> BTreeMap<String, Series> {
    files(root)
        .into_iter()
        .filter(|f| f.ends_with(".wsp"))
        .map(|f| {
            let r = carbide_whisper::file::fetch(&root.join(&f), from, Some(now), now, None)
                .unwrap_or_else(|e| panic!("fetch {f}: {e}"))
                .unwrap_or_else(|| panic!("fetch {f}: nothing"));
            (f, (r.from, r.until, r.step, r.values))
        })
        .collect()
}

/// The filesystem path carbon uses for an untagged metric.
pub fn wsp_path(root: &Path, metric: &str) -> PathBuf {
    root.join(format!("{}.wsp", metric.replace('.', "/")))
}

#[allow(unused_imports)] // each test binary uses its own subset
pub use carbide_testkit::{now, wait_until};

/// The values of a fetch of one untagged metric over the last hour (1 s archive), keyed by
/// timestamp, non-empty slots only.
pub fn points_of(root: &Path, metric: &str, now: i64) -> BTreeMap<i64, f64> {
    let path = wsp_path(root, metric);
    let Ok(Some(r)) = carbide_whisper::file::fetch(&path, now - 3500, Some(now), now, None) else {
        return BTreeMap::new();
    };
    r.values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (r.from + i as i64 * r.step, v)))
        .collect()
}

/// graphite-web 1.1.8's own carbonlink client (`graphite.carbonlink.CarbonLinkPool`, protocol-5
/// pickled requests) against a real TCP port: prints `{metric: [[ts, value], ...]}` as JSON.
const CARBONLINK_CLIENT: &str = r#"
import os, sys, json, warnings
warnings.simplefilter('ignore')
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'graphite.settings')
from graphite.carbonlink import CarbonLinkPool
port = int(sys.argv[1])
pool = CarbonLinkPool([('127.0.0.1', port, None)], 10.0)
out = {}
for m in sys.stdin.read().split('\n'):
    if m:
        out[m] = sorted([float(t), float(v)] for t, v in pool.query(m))
print(json.dumps(out))
"#;

/// Queries `metrics` over carbonlink on `port` with graphite-web's client; `metric -> points`.
pub fn carbonlink_query(port: u16, metrics: &[String]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(CARBONLINK_CLIENT)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {PYTHON} ({e}): needs graphite-web 1.1.8; run scripts/install-test-deps.sh")
        });
    let input = metrics.join("\n");
    let mut stdin = child.stdin.take().unwrap();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    let _ = w.join();
    assert!(
        out.status.success(),
        "graphite-web carbonlink client failed (is graphite-web installed? scripts/install-test-deps.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: BTreeMap<String, Vec<(f64, f64)>> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    v
}

/// Waits until the whisper tree under `root` has at least `min_files` files and has not changed
/// (names and mtimes) for 1.5 s: how to know carbon-cache, which has no cache-size endpoint, has
/// written everything.
pub fn wait_tree_stable(root: &Path, min_files: usize, limit: Duration) {
    let mut last = String::new();
    let mut stable = 0;
    wait_until(
        limit,
        &format!("{} stable with {min_files} files", root.display()),
        || {
            let f = files(root);
            let sig: String = f
                .iter()
                .map(|p| {
                    let m = std::fs::metadata(root.join(p)).map(|m| m.modified().ok());
                    format!("{p}{m:?};")
                })
                .collect();
            if f.len() >= min_files && sig == last {
                stable += 1;
            } else {
                stable = 0;
            }
            last = sig;
            stable >= 15
        },
    );
}
