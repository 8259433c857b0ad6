//! One corrupt (zero-length) whisper file among 1 000 good ones: every good metric's points land,
//! the failure is counted on the Prometheus endpoint, and the process keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::time::Duration;

use cache_common::{Kind, Ports, Server, points_of, send, wait_until, write_conf};

#[test]
fn a_zero_length_file_does_not_stop_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("carbide");
    let ports = Ports::free();
    write_conf(&dir, ports, "");
    let bad = dir.join("whisper/corrupt/m500.wsp");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, b"").unwrap();
    let mut s = Server::start_with(Kind::Carbide, &dir, ports, &[]);
    let t = (cache_common::now() / 60) * 60 - 120;
    let mut lines = String::new();
    for m in 0..1000 {
        for p in 0..3 {
            lines.push_str(&format!("corrupt.m{m} {} {}\n", m * 10 + p, t + p));
        }
    }
    send(ports.line, lines.as_bytes());
    let now = cache_common::now() + 1;
    wait_until(Duration::from_secs(60), "all good metrics on disk", || {
        (0..1000)
            .filter(|m| *m != 500)
            .all(|m| points_of(&s.whisper(), &format!("corrupt.m{m}"), now).len() == 3)
    });
    for m in (0..1000).filter(|m| *m != 500) {
        let got = points_of(&s.whisper(), &format!("corrupt.m{m}"), now);
        let want: Vec<(i64, f64)> = (0..3).map(|p| (t + p, (m * 10 + p) as f64)).collect();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), want, "corrupt.m{m}");
    }
    wait_until(Duration::from_secs(30), "the failed write counted", || {
        s.metric("carbide_write_errors_total") >= 1.0
    });
    assert_eq!(
        std::fs::metadata(&bad).unwrap().len(),
        0,
        "the corrupt file was rewritten"
    );
    assert!(s.alive(), "carbide died on a corrupt file");
    // Its points are dropped once (as carbon's writer drops a batch whose write raises), not
    // retried forever: the cache drains and exactly its 3 points are counted as dropped.
    s.wait_drained(Duration::from_secs(30));
    assert_eq!(s.metric("carbide_points_dropped_total"), 3.0);
    // Still serving: a new point for a good metric lands.
    send(ports.line, format!("corrupt.m1 99 {}\n", t + 30).as_bytes());
    wait_until(Duration::from_secs(30), "a later point lands", || {
        points_of(&s.whisper(), "corrupt.m1", now + 5).get(&(t + 30)) == Some(&99.0)
    });
    assert!(s.stop(), "carbide did not stop on SIGTERM");
}
