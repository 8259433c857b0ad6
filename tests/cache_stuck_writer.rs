//! A stuck writer is visible and harmless: with WHISPER_LOCK_WRITES = True, another process
//! (util-linux `flock`) holds an exclusive flock on one whisper file, so the writer that takes
//! the next update for that metric blocks in flock(LOCK_EX), as carbon's would. `/admin/writers`
//! names the metric and its file with a growing duration, the other writers keep ingesting other
//! metrics, and once the lock is released the blocked point lands.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::process::{Command, Stdio};
use std::time::Duration;

use cache_common::{Kind, Server, points_of, send, wait_until, wsp_path};
use serde_json::Value;

/// The `/admin/writers` entry working on `metric`: `(state, seconds, file)`.
fn writer_on(s: &Server, metric: &str) -> Option<(String, f64, String)> {
    let body = s.admin_get("/admin/writers");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["writers"].as_array()?.iter().find_map(|w| {
        (w["metric"].as_str() == Some(metric)).then(|| {
            (
                w["state"].as_str().unwrap_or_default().to_string(),
                w["seconds"].as_f64().unwrap_or(-1.0),
                w["file"].as_str().unwrap_or_default().to_string(),
            )
        })
    })
}

#[test]
fn a_writer_blocked_on_a_lock_shows_in_admin_writers_and_others_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        Kind::Carbide,
        &tmp.path().join("carbide"),
        "WHISPER_LOCK_WRITES = True",
        &["--writers=4"],
    );
    let t = cache_common::now() - 60;
    send(s.ports.line, format!("stuck.a 1 {t}\n").as_bytes());
    let file = wsp_path(&s.whisper(), "stuck.a");
    wait_until(Duration::from_secs(30), "stuck.a created", || {
        file.exists() && s.cache_size() == 0
    });

    // Hold LOCK_EX on the file from another process.
    let mut holder = Command::new("flock")
        .args(["-x", "-o"])
        .arg(&file)
        .arg("-c")
        // holds the lock until its stdin closes (dropped below), so nothing outlives the test
        .arg("echo locked; read x")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("util-linux flock");
    {
        use std::io::Read;
        let mut buf = [0u8; 7];
        holder.stdout.take().unwrap().read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"locked\n");
    }
    send(s.ports.line, format!("stuck.a 2 {}\n", t + 1).as_bytes());
    wait_until(Duration::from_secs(10), "a writer on stuck.a", || {
        writer_on(&s, "stuck.a").is_some()
    });
    let (state, first, path) = writer_on(&s, "stuck.a").unwrap();
    assert_eq!(state, "writing");
    assert_eq!(
        std::path::Path::new(&path),
        file.as_path(),
        "/admin/writers does not name the file"
    );

    // Meanwhile other metrics are ingested and written by the other writers.
    let mut lines = String::new();
    for i in 0..200 {
        lines.push_str(&format!("other.m{i} {i} {t}\n"));
    }
    send(s.ports.line, lines.as_bytes());
    let now = cache_common::now() + 1;
    wait_until(Duration::from_secs(30), "other metrics written", || {
        (0..200).all(|i| points_of(&s.whisper(), &format!("other.m{i}"), now).len() == 1)
    });
    std::thread::sleep(Duration::from_millis(1200));
    let (state, later, _) = writer_on(&s, "stuck.a").expect("the stuck writer vanished");
    assert_eq!(state, "writing");
    assert!(later >= first + 1.0, "duration not growing: {first} then {later}");
    assert_eq!(points_of(&s.whisper(), "stuck.a", now).len(), 1);
    // The SIGQUIT snapshot says the same and the process lives on.
    assert_eq!(s.cache_size(), 1, "only the blocked point should be cached");

    // Release: the blocked point lands and the writer moves on.
    drop(holder.stdin.take());
    let _ = holder.wait();
    wait_until(Duration::from_secs(30), "stuck.a's second point", || {
        points_of(&s.whisper(), "stuck.a", now).len() == 2
    });
    wait_until(Duration::from_secs(10), "writer released", || {
        writer_on(&s, "stuck.a").is_none_or(|(st, _, _)| st != "writing")
    });
}
