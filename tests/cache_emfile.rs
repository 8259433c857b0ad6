//! Out of file descriptors: `carbide cache` under `ulimit -n 64` gets more connections than it has
//! descriptors. accept() fails with EMFILE; that is logged (rate-limited, not once per retry), the
//! process stays up, and once the clients hang up it accepts again: every connection's point —
//! those that waited in the listen backlog too — and a point from a fresh connection reach whisper.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use cache_common::{Kind, Ports, Server, finish, points_of, send, wait_until, write_conf};

const CONNS: usize = 120;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Lines of the log that report a failed accept.
fn accept_errors(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("accept") && (l.contains("os error 24") || l.contains("Too many open files")))
        .count()
}

#[test]
fn emfile_is_logged_and_accepting_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("carbide");
    let ports = Ports::free();
    write_conf(&dir, ports, "");
    let mut s = Server::start_in_shell(Kind::Carbide, &dir, ports, &["--writers=2"], "ulimit -n 64;");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("64")),
        "ulimit not applied:\n{limits}"
    );
    let base = open_fds(s.pid());
    assert!(base < 60, "{base} descriptors open before any client");
    let t = cache_common::now() - 60;

    // More connections than descriptors, each with one point, all held open.
    let conns: Vec<TcpStream> = (0..CONNS)
        .map(|i| {
            let mut c = TcpStream::connect(("127.0.0.1", ports.line)).unwrap();
            writeln!(c, "emfile.c{i} {i} {t}").unwrap();
            c
        })
        .collect();
    wait_until(
        Duration::from_secs(15),
        "an EMFILE accept error in the log",
        || accept_errors(&s.log()) >= 1,
    );
    let fds = open_fds(s.pid());
    assert!(
        fds >= 62,
        "only {fds} descriptors open: the process should be at its limit of 64"
    );
    // The accept loop keeps retrying while saturated; the log must not get a line per retry.
    std::thread::sleep(Duration::from_secs(3));
    let logged = accept_errors(&s.log());
    assert!(
        logged <= 3,
        "{logged} accept-error lines in 3 s: not rate-limited\n{}",
        s.log()
    );
    assert!(s.alive(), "EMFILE killed the process");

    // Hang up: accepted connections close, backlogged ones get accepted and read, all in turn.
    let closers: Vec<_> = conns
        .into_iter()
        .map(|c| std::thread::spawn(move || finish(c)))
        .collect();
    for c in closers {
        c.join().unwrap();
    }
    send(ports.line, format!("emfile.fresh 7 {t}\n").as_bytes());
    let now = cache_common::now() + 1;
    wait_until(Duration::from_secs(60), "every point on disk", || {
        points_of(&s.whisper(), "emfile.fresh", now).len() == 1
            && (0..CONNS).all(|i| points_of(&s.whisper(), &format!("emfile.c{i}"), now).len() == 1)
    });
    for i in 0..CONNS {
        let got: Vec<(i64, f64)> = points_of(&s.whisper(), &format!("emfile.c{i}"), now)
            .into_iter()
            .collect();
        assert_eq!(got, vec![(t, i as f64)], "emfile.c{i}");
    }
    s.wait_drained(Duration::from_secs(30));
    assert!(
        s.log().contains("accepting again"),
        "recovery not logged:\n{}",
        s.log()
    );
    assert!(s.stop(), "no clean stop after EMFILE");
}
