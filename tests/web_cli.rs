//! `carbide web` end to end: the binary indexes a whisper tree, serves find and render on loopback,
//! and finds a metric created after it started.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.split_whitespace().nth(1)?.parse().ok()?, body.to_string()))
}

fn create(root: &std::path::Path, name: &str, now: i64) {
    let mut path = root.to_path_buf();
    for part in name.split('.') {
        path.push(part);
    }
    path.set_extension("wsp");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let r = carbide_core::Retention::parse_list("60:100").unwrap();
    carbide_whisper::file::create(&path, &r, &Default::default()).unwrap();
    carbide_whisper::file::update_many(&path, &[(now - 120, 4.0), (now - 60, 6.0)], now, false).unwrap();
}

#[test]
fn web_serves_find_and_render_and_sees_new_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let now = 1_700_000_000 - 1_700_000_000 % 60;
    create(dir.path(), "app.a.count", now);
    create(dir.path(), "app.b.count", now);
    let (_k, port) = start_web(dir.path(), &[]);
    assert_eq!(get(port, "/version").unwrap(), (200, "1.1.10".to_string()));
    let (s, body) = get(port, "/metrics/find?query=app.*&format=completer").unwrap();
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["metrics"].as_array().unwrap().len(), 2, "{body}");
    let (s, body) = get(
        port,
        &format!("/render?target=sumSeries(app.*.count)&from=-5min&now={now}&format=json"),
    )
    .unwrap();
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["target"], "sumSeries(app.*.count)");
    let values: Vec<f64> = v[0]["datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p[0].as_f64())
        .collect();
    assert_eq!(values, vec![8.0, 12.0]);
    // A metric created after start is found on its first literal query.
    create(dir.path(), "app.c.count", now);
    let (s, body) = get(port, "/metrics/find?query=app.c.count").unwrap();
    assert_eq!(s, 200);
    assert!(body.contains("app.c.count"), "{body}");
    // png is not implemented: a clear 4xx, not a broken image.
    let (s, body) = get(port, "/render?target=app.a.count").unwrap();
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("format"), "{body}");
}

#[test]
fn a_bad_time_limit_is_refused_with_a_message() {
    let err = refused(&["--max-time=-1"]);
    assert!(err.contains("--max-time -1"), "{err}");
}

/// Runs `carbide web` with `args` on an empty tree, expects it to refuse to start, and returns
/// what it said on stderr.
fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_carbide"))
        .args(["web", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "carbide web started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Starts `carbide web` with `args` on a free port and waits for it to answer.
fn start_web(data_dir: &std::path::Path, args: &[&str]) -> (Kill, u16) {
    let port = carbide_testkit::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_carbide"))
        .args(["web", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let k = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(port, "/version").is_none() {
        assert!(Instant::now() < deadline, "carbide web did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (k, port)
}

/// The non-null values of the first series of a json render.
fn json_values(port: u16, path: &str) -> Vec<(f64, i64)> {
    let (s, body) = get(port, path).unwrap();
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v[0]["datapoints"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p[0].as_f64()?, p[1].as_i64()?)))
                .collect()
        })
        .unwrap_or_default()
}

mod cache_common;

/// `--carbonlink-hosts`: points `carbide cache` and the real carbon-cache hold but have not
/// written (their writers throttled to one update a second behind 100 bigger queues) are merged
/// into renders of the file on disk, as graphite-web merges CARBONLINK_HOSTS answers.
#[test]
fn web_merges_unwritten_points_from_carbonlink_hosts() {
    use cache_common::{Kind, Server, send};
    let tmp = tempfile::tempdir().unwrap();
    let throttle = "MAX_UPDATES_PER_SECOND = 1";
    let servers = [
        Server::start(Kind::Carbide, &tmp.path().join("carbide"), throttle, &[]),
        Server::start(Kind::Carbon, &tmp.path().join("carbon"), throttle, &[]),
    ];
    let t = cache_common::now() / 60 * 60;
    let mut lines = String::new();
    for i in 0..100 {
        for j in 0..20 {
            lines.push_str(&format!("link.big.m{i} {j} {}\n", t - 600 + j));
        }
    }
    lines.push_str(&format!("hot.metric 5 {}\nhot.metric 7 {}\n", t - 120, t - 60));
    for s in &servers {
        // On disk: one older point, in a file the web finds.
        let path = s.whisper().join("hot").join("metric.wsp");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let r = carbide_core::Retention::parse_list("60:1440").unwrap();
        carbide_whisper::file::create(&path, &r, &Default::default()).unwrap();
        carbide_whisper::file::update_many(&path, &[(t - 300, 3.0)], t, false).unwrap();
        send(s.ports.line, lines.as_bytes());
    }
    let render = format!("/render?target=hot.metric&from={}&until={t}&format=json", t - 600);
    for s in &servers {
        let hosts = format!("127.0.0.1:{}", s.ports.query);
        let (_web, port) = start_web(&s.whisper(), &["--carbonlink-hosts", &hosts]);
        let (_plain, plain_port) = start_web(&s.whisper(), &[]);
        let want = vec![(3.0, t - 300), (5.0, t - 120), (7.0, t - 60)];
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = json_values(port, &render);
        while got != want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            got = json_values(port, &render);
        }
        assert_eq!(got, want, "{:?}", s.kind);
        // Without carbonlink only the disk is read (the cache has not written the points yet).
        assert_eq!(
            json_values(plain_port, &render),
            vec![(3.0, t - 300)],
            "{:?}",
            s.kind
        );
    }
}

#[test]
fn a_bad_carbonlink_host_is_refused_with_a_message() {
    let err = refused(&["--carbonlink-hosts", "localhost"]);
    assert!(err.contains("host:port[:instance]"), "{err}");
}

/// `--cluster-servers`: a `carbide web` federating to a second one finds and renders the second
/// one's metrics next to its own (the differential version, against graphite-web, is
/// crates/web/tests/graphite_web_cluster.rs).
#[test]
fn web_finds_and_renders_a_cluster_servers_metrics() {
    let now = 1_700_000_000 - 1_700_000_000 % 60;
    let (far_dir, near_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    create(far_dir.path(), "far.only", now);
    create(near_dir.path(), "near.only", now);
    let (_far, far) = start_web(far_dir.path(), &[]);
    let cluster = format!("127.0.0.1:{far}");
    let (_near, near) = start_web(near_dir.path(), &["--cluster-servers", &cluster]);
    let (s, body) = get(near, "/metrics/find?query=*&format=completer").unwrap();
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("\"far.\"") && body.contains("\"near.\""), "{body}");
    let render = format!(
        "/render?target=*.only&from={}&until={now}&now={now}&format=json",
        now - 300
    );
    let (s, body) = get(near, &render).unwrap();
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["target"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["far.only", "near.only"], "{body}");
    assert_eq!(v[0]["datapoints"], v[1]["datapoints"], "{body}");
    assert!(body.contains(&format!("[6.0, {}]", now - 60)), "{body}");
    // local=1, as cluster members ask each other, stays local.
    let (_, body) = get(near, &format!("{render}&local=1")).unwrap();
    assert!(!body.contains("far.only"), "{body}");
}

#[test]
fn a_bad_cluster_server_is_refused_with_a_message() {
    let err = refused(&["--cluster-servers", "nohost"]);
    assert!(err.contains("expected host:port"), "{err}");
}
