//! graphite-web 1.1.8 under gunicorn on a whisper tree, as the graphite_web_* tests,
//! tests/serve_graphite_web.rs and benches/web.rs run it: one settings file, a django migrate, and
//! a wait until it answers. Fails, naming scripts/install-test-deps.sh, when it is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)] // test helper

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The gunicorn master; stopped with its workers when dropped.
pub struct Gunicorn(pub Child);

impl Gunicorn {
    /// The master's pid (its workers are its children).
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Gunicorn {
    /// SIGINT is gunicorn's quick shutdown: the master kills its workers, then exits. A SIGKILL
    /// to the master alone (what this did before) left each worker running for up to half the
    /// 600 s timeout, until its next check of its parent: a dozen after every test run.
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    if write!(s, "GET /metrics/find?query=* HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Starts graphite-web with its files under `dir` over the whisper tree `whisper`, listening on
/// `port` with `workers` gunicorn workers; `extra_settings` (Python lines) are appended to the
/// settings, so they override the defaults (CARBONLINK_HOSTS = [], no cluster).
pub fn start(dir: &Path, whisper: &Path, port: u16, extra_settings: &str, workers: usize) -> Gunicorn {
    for prog in [
        "/usr/bin/gunicorn",
        "/usr/lib/python3/dist-packages/graphite/wsgi.py",
    ] {
        assert!(
            Path::new(prog).exists(),
            "{prog} is missing: comparing with graphite-web needs Debian's graphite-web and gunicorn; run scripts/install-test-deps.sh"
        );
    }
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(dir.join("log")).unwrap();
    let d = dir.display();
    let settings = format!(
        "SECRET_KEY = 'carbide-test'\nALLOWED_HOSTS = ['127.0.0.1', 'localhost']\nTIME_ZONE = 'UTC'\n\
         LOG_ROTATION = False\nGRAPHITE_ROOT = '/usr/share/graphite-web'\nSTATIC_ROOT = '/usr/share/graphite-web/static'\n\
         CONF_DIR = '{d}/conf'\nSTORAGE_DIR = '{d}'\nLOG_DIR = '{d}/log'\nINDEX_FILE = '{d}/index'\n\
         WHISPER_DIR = '{}'\nCARBONLINK_HOSTS = []\nCLUSTER_SERVERS = []\n\
         DATABASES = {{'default': {{'NAME': '{d}/graphite.db', 'ENGINE': 'django.db.backends.sqlite3', 'USER': '', 'PASSWORD': '', 'HOST': '', 'PORT': ''}}}}\n\
         FUNCTION_PLUGINS = []\n{extra_settings}\n",
        whisper.display()
    );
    std::fs::write(conf.join("carbide_test_settings.py"), settings).unwrap();
    let env = [
        ("PYTHONPATH", conf.display().to_string()),
        ("GRAPHITE_SETTINGS_MODULE", "carbide_test_settings".into()),
        ("DJANGO_SETTINGS_MODULE", "graphite.settings".into()),
        ("PYTHONWARNINGS", "ignore".into()),
    ];
    let status = Command::new("/usr/bin/python3")
        .args(["-m", "django", "migrate", "--run-syncdb", "-v0"])
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "django migrate for graphite-web failed");
    let child = Command::new("/usr/bin/gunicorn")
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args(["--workers", &workers.to_string(), "--timeout", "600"])
        .args(["--pythonpath", &conf.display().to_string()])
        .arg("graphite.wsgi:application")
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("log/gunicorn.log")).unwrap())
        .spawn()
        .unwrap();
    let g = Gunicorn(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !answers(port) {
        assert!(
            Instant::now() < deadline,
            "graphite-web did not answer within 120 s; see {d}/log"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    g
}
