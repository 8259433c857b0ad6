//! `carbide serve`: a whole single-node Graphite with no config file. Lines and pickles land in
//! whisper with the embedded schemas (10 s:6 h, 1 min:7 d, 10 min:5 y; carbon.* at 1 min), its own
//! `carbon.agents.*` metrics appear every `--metric-interval`, carbonlink answers, and SIGTERM
//! ends it cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::process::{Command, Stdio};
use std::time::Duration;

use cache_common::{
    Ports, Ts, carbide_exe, carbonlink_query, files, http_get, pickle_frame, send, wait_until,
};

#[test]
fn serve_runs_on_embedded_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let p = Ports::free();
    let mut child = Command::new(carbide_exe())
        .arg("serve")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--line-port={}", p.line))
        .arg(format!("--pickle-port={}", p.pickle))
        .arg(format!("--carbonlink-port={}", p.query))
        .arg(format!("--admin-port={}", p.admin))
        .arg("--metric-interval=1")
        // The web API and StatsD have their own test (serve_e2e.rs); off here, so no fixed port.
        .arg("--web-port=0")
        .arg("--statsd-port=0")
        .env("CARBIDE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Stop it on every path, including a failed assertion.
    struct Term(u32);
    impl Drop for Term {
        fn drop(&mut self) {
            let _ = Command::new("kill").arg("-TERM").arg(self.0.to_string()).status();
        }
    }
    let guard = Term(child.id());
    for port in [p.line, p.pickle, p.query, p.admin] {
        wait_until(Duration::from_secs(30), "serve listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }
    let t = (cache_common::now() / 60) * 60 - 120;
    send(p.line, format!("serve.line 1.5 {t}\n").as_bytes());
    send(
        p.pickle,
        &pickle_frame(&[("serve.pickle;dc=x", Ts::Int(t as i32), 2.5)]),
    );
    let root = data.clone();
    wait_until(Duration::from_secs(30), "points and self-metrics on disk", || {
        let f = files(&root);
        f.contains(&"serve/line.wsp".to_string())
            && f.iter().any(|x| x.starts_with("_tagged/"))
            && f.iter()
                .any(|x| x.starts_with("carbon/agents/") && x.ends_with("committedPoints.wsp"))
    });
    let line = cache_common::wsp_path(&root, "serve.line");
    let info = carbide_whisper::file::info(&line).unwrap();
    let layout: Vec<(u32, u32)> = info
        .archives
        .iter()
        .map(|a| (a.seconds_per_point, a.points))
        .collect();
    assert_eq!(layout, vec![(10, 2160), (60, 10080), (600, 262_800)]);
    let now = cache_common::now();
    let r = carbide_whisper::file::fetch(&line, t - 1, Some(t + 9), now, None)
        .unwrap()
        .unwrap();
    assert_eq!(r.values, vec![Some(1.5)]);
    // The admin endpoint and carbonlink answer.
    assert!(http_get(p.admin, "/metrics").contains("carbide_points_received_total"));
    let got = carbonlink_query(p.query, &["serve.never".to_string()]);
    assert_eq!(got["serve.never"], vec![]);
    drop(guard); // SIGTERM
    let status = cache_common::exit_within(&mut child, Duration::from_secs(30), "carbide serve");
    assert!(status.success(), "carbide serve exited with {status}");
}
