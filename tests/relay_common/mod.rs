//! Shared by the `tests/relay_*.rs` suites that run the `carbide relay` / `carbide aggregator`
//! binary: line-protocol destinations that record what they receive, and a child process that is
//! always killed when its handle drops.

#![allow(dead_code)]
// Test support: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod aggregator_oracle;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A line-protocol destination: every line it receives, in order, on any connection.
pub struct Dest {
    /// Its port on 127.0.0.1.
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Dest {
    /// Listens on a free loopback port.
    pub fn start() -> Dest {
        Dest::start_on(0)
    }

    /// Listens on `port` of loopback (0: a free one): a destination coming back.
    pub fn start_on(port: u16) -> Dest {
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = l.local_addr().unwrap().port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let store = lines.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let store = store.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(c).lines() {
                        let Ok(line) = line else { return };
                        store.lock().unwrap().push(line);
                    }
                });
            }
        });
        Dest { port, lines }
    }

    /// Everything received so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Received lines whose metric name starts with `prefix`.
    pub fn named(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

/// A running `carbide relay` or `carbide aggregator`, killed when dropped.
pub struct Proc {
    child: Child,
    /// Its line receiver.
    pub line: u16,
    /// Its admin HTTP port (`/metrics`).
    pub admin: u16,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Writes `[section]` with the receivers on free ports plus `conf` into dir/carbon.conf and
    /// starts `carbide <role>` on it; waits for the line receiver.
    pub fn start(role: &str, dir: &Path, conf: &str) -> Proc {
        Proc::start_with(role, dir, conf, &[])
    }

    /// [`Proc::start`] with extra command-line arguments.
    pub fn start_with(role: &str, dir: &Path, conf: &str, args: &[&str]) -> Proc {
        Proc::start_limited(role, dir, conf, args, None)
    }

    /// [`Proc::start_with`], and with `fsize_kib`, run as `bash -c "ulimit -f <fsize_kib>; exec
    /// carbide ..."`: a write past that file size fails with EFBIG (a full disk, for this process
    /// only). No `trap '' XFSZ`: carbide ignores SIGXFSZ itself, which this also shows.
    pub fn start_limited(role: &str, dir: &Path, conf: &str, args: &[&str], fsize_kib: Option<u64>) -> Proc {
        let line = write_conf(role, dir, conf);
        Proc::spawn(role, &dir.join("carbon.conf"), line, args, fsize_kib)
    }

    /// Starts `carbide <role>` on an existing carbon.conf (the one a carbon daemon of the same
    /// test reads too) whose line receiver is `line`; spool and log go beside the file.
    pub fn start_on(role: &str, conf: &Path, line: u16, args: &[&str]) -> Proc {
        Proc::spawn(role, conf, line, args, None)
    }

    fn spawn(role: &str, conf: &Path, line: u16, args: &[&str], fsize_kib: Option<u64>) -> Proc {
        let dir = conf.parent().unwrap();
        let admin = free_port();
        let log = dir.join(format!("{role}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = match fsize_kib {
            None => Command::new(env!("CARGO_BIN_EXE_carbide")),
            Some(kib) => {
                let mut c = Command::new("bash");
                c.arg("-c")
                    .arg(format!("ulimit -f {kib}; exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_carbide"));
                c
            }
        };
        let child = cmd
            .arg(role)
            .arg("-c")
            .arg(conf)
            .arg("--spool-dir")
            .arg(dir.join("spool"))
            .arg(format!("--admin=127.0.0.1:{admin}"))
            .args(args)
            .env("CARBIDE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start carbide");
        let mut p = Proc {
            child,
            line,
            admin,
            log,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", line)).is_err() {
            if let Some(st) = p.child.try_wait().unwrap() {
                panic!("carbide {role} exited at start ({st}):\n{}", p.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "carbide {role} not listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    /// `GET path` on the admin port: (status line, body).
    pub fn admin_get(&self, path: &str) -> (String, String) {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(("127.0.0.1", self.admin)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        (head.lines().next().unwrap_or("").to_string(), body.to_string())
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal (`HUP`, `TERM`) to this process by its PID.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends plaintext lines on a fresh connection.
    pub fn send(&self, text: &str) {
        use std::io::Write;
        let mut s = TcpStream::connect(("127.0.0.1", self.line)).unwrap();
        s.write_all(text.as_bytes()).unwrap();
    }

    /// Waits until `what` appears in the log `n` times.
    pub fn wait_log(&self, what: &str, n: usize) {
        wait_until(
            Duration::from_secs(20),
            &format!("{what:?} ×{n} in the log"),
            || self.log().matches(what).count() >= n,
        );
    }
}

/// Writes `[role]` with the receivers on free ports plus `conf` into dir/carbon.conf; returns the
/// line receiver's port.
pub fn write_conf(role: &str, dir: &Path, conf: &str) -> u16 {
    let line = free_port();
    let text = format!(
        "[{role}]
STORAGE_DIR = {d}/
LOG_DIR = {d}/
PID_DIR = {d}/
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line}
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle}
{conf}
",
        d = dir.display(),
        pickle = free_port(),
    );
    std::fs::write(dir.join("carbon.conf"), text).unwrap();
    line
}

pub use carbide_testkit::free_port;

#[allow(unused_imports)] // each test binary uses its own subset
pub use carbide_testkit::{now, wait_until};
