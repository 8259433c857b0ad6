//! The differential harness shared by the graphite_web_* tests: the same whisper tree and the same
//! `now`, served by graphite-web 1.1.8 (gunicorn, started on a free loopback port) and by carbide's
//! web API, and a comparison of their answers. Fails, naming scripts/install-test-deps.sh, when
//! graphite-web or gunicorn is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)] // shared test helpers

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use carbide_core::Retention;
use serde_json::Value;

pub const NOW: i64 = 1_700_000_000 - 1_700_000_000 % 60;

pub use carbide_testkit::free_port;

pub fn write_tree(root: &Path) {
    let retentions = Retention::parse_list("60:720,300:600").unwrap();
    let mut metrics: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
    for (h, host) in ["web1", "web2", "web3"].iter().enumerate() {
        for (k, kind) in ["user", "system"].iter().enumerate() {
            let pts = (1..=200)
                .filter(|i| (i + h as i64) % 7 != 0)
                .map(|i| {
                    let v = ((i * (h as i64 + 2) * (k as i64 + 1)) % 37) as f64 * 1.5 - 4.0;
                    (NOW - i * 60, v)
                })
                .collect();
            metrics.push((format!("servers.{host}.cpu.{kind}"), pts));
        }
        let counter = (1..=200)
            .map(|i| (NOW - i * 60, ((300 - i) * (h as i64 + 1) % 500) as f64))
            .collect();
        metrics.push((format!("servers.{host}.requests"), counter));
    }
    metrics.push((
        "other.single".into(),
        vec![(NOW - 120, 100.0), (NOW - 60, 1e300 * 1e10)],
    ));
    for (name, pts) in metrics {
        write_series(root, &name, &retentions, &pts);
    }
}

/// Writes one whisper file `name` (dots become directories) under `root` with these points.
pub fn write_series(root: &Path, name: &str, retentions: &[Retention], pts: &[(i64, f64)]) {
    let mut path = root.to_path_buf();
    for part in name.split('.') {
        path.push(part);
    }
    path.set_extension("wsp");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    carbide_whisper::file::create(&path, retentions, &Default::default()).unwrap();
    carbide_whisper::file::update_many(&path, pts, NOW, false).unwrap();
}

/// Renders every target over every range (`from=…&until=…`) on both servers as JSON; the
/// differences, one message each.
pub fn render_differences(s: &Servers, targets: &[&str], ranges: &[&str]) -> Vec<String> {
    let mut failures = Vec::new();
    for t in targets {
        for range in ranges {
            let path = format!("/render?target={}&{range}&now={NOW}&format=json", enc(t));
            if let Err(e) = compare(s, "GET", &path, None) {
                failures.push(e);
            }
        }
    }
    failures
}

/// Fails the test with every difference listed.
pub fn assert_no_differences(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

pub mod graphite_web;

pub use graphite_web::Gunicorn;

/// graphite-web with the default test settings and one worker.
pub fn start_graphite_web(dir: &Path, whisper: &Path, port: u16) -> Gunicorn {
    graphite_web::start(dir, whisper, port, "", 1)
}

/// A tiny HTTP/1.0 client: (status, body).
pub fn http(port: u16, method: &str, path: &str, form: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let body = form.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n");
    if form.is_some() {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

pub fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

/// Equal, except that numbers (find intervals, wall-clock based: `time.time()` minus the
/// retention, and the file's mtime) may differ by 5 s.
pub fn intervals_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= 5.0,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| intervals_close(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| intervals_close(v, w)))
        }
        _ => a == b,
    }
}

/// graphite-web writes Infinity as 1e9999, which serde_json cannot read: map it to a sentinel.
pub fn parse(body: &str) -> Value {
    let fixed = body.replace("-1e9999", "-1.5e308").replace("1e9999", "1.5e308");
    serde_json::from_str(&fixed).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

pub struct Servers {
    /// graphite-web's port.
    pub gw: u16,
    /// carbide's port.
    pub ours: u16,
    _gunicorn: Gunicorn,
    /// Holds the whisper tree (`whisper/`) and graphite-web's files (`gw/`).
    pub dir: tempfile::TempDir,
}

pub fn servers() -> Servers {
    servers_with(|_| {})
}

/// Both servers over the standard tree plus whatever `extra` writes into the whisper root.
pub fn servers_with(extra: impl FnOnce(&Path)) -> Servers {
    servers_in_zone("UTC", extra)
}

/// [`servers_with`], both servers set to `time_zone` (graphite-web's `TIME_ZONE`, carbide's
/// `--tz`).
pub fn servers_in_zone(time_zone: &str, extra: impl FnOnce(&Path)) -> Servers {
    let dir = tempfile::tempdir().unwrap();
    let whisper = dir.path().join("whisper");
    write_tree(&whisper);
    extra(&whisper);
    let gw = free_port();
    let gunicorn = graphite_web::start(
        &dir.path().join("gw"),
        &whisper,
        gw,
        &format!("TIME_ZONE = '{time_zone}'"),
        1,
    );
    let ours = start_ours(&whisper, time_zone, None);
    Servers {
        gw,
        ours,
        _gunicorn: gunicorn,
        dir,
    }
}

/// carbide's web API over `whisper` on a free port, in a thread of this process (federating to
/// `cluster` when given); its port.
pub fn start_ours(
    whisper: &Path,
    time_zone: &str,
    cluster: Option<Arc<carbide_web::cluster::ClusterServers>>,
) -> u16 {
    let storage = Arc::new(carbide_storage::Storage::open(whisper).unwrap());
    let state = Arc::new(carbide_web::WebState {
        storage,
        time_zone: time_zone.into(),
        limits: Default::default(),
        cluster,
    });
    let listener = carbide_testkit::listen();
    let ours = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            carbide_web::run(l, state, std::future::pending()).await.unwrap();
        });
    });
    ours
}

pub fn compare(s: &Servers, method: &str, path: &str, form: Option<&str>) -> Result<(), String> {
    compare_ports(s.gw, s.ours, method, path, form)
}

/// [`compare`] between any graphite-web port `gw` and carbide port `ours`.
pub fn compare_ports(gw: u16, ours: u16, method: &str, path: &str, form: Option<&str>) -> Result<(), String> {
    let (gs, gb) = http(gw, method, path, form).ok_or("graphite-web did not answer")?;
    let (os, ob) = http(ours, method, path, form).ok_or("carbide did not answer")?;
    if gs != os {
        return Err(format!(
            "{path} {form:?}: status graphite-web {gs} vs ours {os}\n gw: {gb:.300}\n ours: {ob:.300}"
        ));
    }
    if gs != 200 {
        return Ok(());
    }
    let (mut g, mut o) = (parse(&gb), parse(&ob));
    // graphite-web shuffles find results before a stable sort by the last segment, so nodes of the
    // same name come in random order: compare completer and treejson answers as sets.
    if path.contains("/metrics/find") {
        for v in [&mut g, &mut o] {
            let list = match v {
                Value::Object(m) => m.get_mut("metrics").and_then(Value::as_array_mut),
                Value::Array(a) => Some(a),
                _ => None,
            };
            if let Some(list) = list {
                list.sort_by_key(|x| x.to_string());
            }
        }
    }
    if !close(&g, &o) {
        return Err(format!("{path} {form:?}:\n gw:   {g}\n ours: {o}"));
    }
    Ok(())
}

/// Requests `path` from both servers and compares status and body byte for byte (csv, raw, and
/// json where the spelling of numbers matters).
pub fn compare_text(s: &Servers, path: &str) -> Result<(), String> {
    let (gs, gb) = http(s.gw, "GET", path, None).ok_or("graphite-web did not answer")?;
    let (os, ob) = http(s.ours, "GET", path, None).ok_or("carbide did not answer")?;
    if gs != os {
        return Err(format!(
            "{path}: status graphite-web {gs} vs ours {os}\n gw: {gb:.300}\n ours: {ob:.300}"
        ));
    }
    if gs == 200 && gb != ob {
        return Err(format!("{path}:\n gw:   {gb:.2000}\n ours: {ob:.2000}"));
    }
    Ok(())
}

pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
