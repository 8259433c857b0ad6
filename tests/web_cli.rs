//! `carbide web` end to end: the binary indexes a whisper tree, serves find and render on loopback,
//! and finds a metric created after it started.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_carbide"))
        .args(["web", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _k = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(port, "/version").is_none() {
        assert!(Instant::now() < deadline, "carbide web did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_carbide"))
        .args(["web", "--listen", "127.0.0.1:0", "--max-time=-1", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--max-time -1"), "{err}");
}
