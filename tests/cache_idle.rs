//! Idle and stalled clients, against the real carbon-cache. With METRIC_CLIENT_IDLE_TIMEOUT = 2
//! both servers close a connection that has delivered no metric for 2 s — one that stopped in the
//! middle of a line, and one that sent a line and went quiet — while a client that keeps sending
//! stays connected, and clients on other connections are never held up. Without the setting
//! (carbon's default, None) a quiet connection stays open, in both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cache_common::{Kind, Server, send, wait_until, wsp_path};

/// Waits up to `limit` for the server to close `c`: `Some(elapsed)` on EOF or reset.
fn closed_within(c: &mut TcpStream, limit: Duration, since: Instant) -> Option<Duration> {
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => Some(since.elapsed()),
        Ok(n) => panic!("the server sent {n} bytes"),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(_) => Some(since.elapsed()),
    }
}

/// What one server did with the idle connections: seconds until the half-line and the quiet
/// connections were closed, and whether the chatty one survived.
fn idle_behaviour(s: &Server, t: i64) -> (Duration, Duration, bool) {
    let port = s.ports.line;
    let start = Instant::now();
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"idle.half 1").unwrap();
    let mut quiet = TcpStream::connect(("127.0.0.1", port)).unwrap();
    writeln!(quiet, "idle.quiet 1 {t}").unwrap();
    let mut chatty = TcpStream::connect(("127.0.0.1", port)).unwrap();

    // Others are not held up by the stalled ones.
    for i in 0..20 {
        send(port, format!("idle.other{i} {i} {t}\n").as_bytes());
    }
    wait_until(Duration::from_secs(20), "other clients' points on disk", || {
        (0..20).all(|i| wsp_path(&s.whisper(), &format!("idle.other{i}")).exists())
    });

    // The chatty client sends a metric every 500 ms for 4 s: never idle for 2 s.
    let chat = std::thread::spawn(move || {
        for i in 0..8 {
            if writeln!(chatty, "idle.chatty {i} {}", t + i).is_err() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let mut probe = [0u8; 1];
        chatty.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        matches!(chatty.read(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock)
    });
    let h =
        closed_within(&mut half, Duration::from_secs(10), start).expect("half-line connection never closed");
    let q = closed_within(&mut quiet, Duration::from_secs(10), start).expect("quiet connection never closed");
    let alive = chat.join().unwrap();
    (h, q, alive)
}

#[test]
fn idle_timeout_closes_quiet_and_stalled_clients_like_carbon() {
    let tmp = tempfile::tempdir().unwrap();
    let t = cache_common::now() - 60;
    let mut results = vec![];
    for kind in [Kind::Carbon, Kind::Carbide] {
        let s = Server::start(
            kind,
            &tmp.path().join(format!("{kind:?}")),
            "METRIC_CLIENT_IDLE_TIMEOUT = 2",
            &[],
        );
        let (h, q, alive) = idle_behaviour(&s, t);
        eprintln!("{kind:?}: half-line closed after {h:?}, quiet after {q:?}, chatty alive: {alive}");
        assert!(
            h >= Duration::from_millis(1500) && h < Duration::from_secs(6),
            "{kind:?}: half-line connection closed after {h:?}"
        );
        assert!(
            q >= Duration::from_millis(1500) && q < Duration::from_secs(6),
            "{kind:?}: quiet connection closed after {q:?}"
        );
        assert!(alive, "{kind:?}: a client sending every 500 ms was disconnected");
        wait_until(
            Duration::from_secs(20),
            "idle.quiet and idle.chatty on disk",
            || {
                wsp_path(&s.whisper(), "idle.quiet").exists()
                    && wsp_path(&s.whisper(), "idle.chatty").exists()
            },
        );
        assert!(
            !wsp_path(&s.whisper(), "idle.half").exists(),
            "{kind:?}: the half line was stored"
        );
        results.push(alive);
    }
    assert_eq!(results, [true, true]);
}

#[test]
fn without_a_timeout_quiet_connections_stay_open_like_carbon() {
    let tmp = tempfile::tempdir().unwrap();
    let t = cache_common::now() - 60;
    for kind in [Kind::Carbon, Kind::Carbide] {
        let s = Server::start(kind, &tmp.path().join(format!("{kind:?}")), "", &[]);
        let start = Instant::now();
        let mut half = TcpStream::connect(("127.0.0.1", s.ports.line)).unwrap();
        half.write_all(b"idle.half 1").unwrap();
        let mut quiet = TcpStream::connect(("127.0.0.1", s.ports.line)).unwrap();
        writeln!(quiet, "idle.quiet 1 {t}").unwrap();
        send(s.ports.line, format!("idle.other 1 {t}\n").as_bytes());
        wait_until(Duration::from_secs(20), "idle.other on disk", || {
            wsp_path(&s.whisper(), "idle.other").exists()
        });
        let wait = Duration::from_secs(3).saturating_sub(start.elapsed()) + Duration::from_millis(100);
        assert_eq!(
            closed_within(&mut half, wait, start),
            None,
            "{kind:?} closed the half-line client"
        );
        assert_eq!(
            closed_within(&mut quiet, Duration::from_millis(100), start),
            None,
            "{kind:?} closed the quiet client"
        );
        // The half line, completed late, still counts.
        writeln!(half, " {t}").unwrap();
        drop(quiet);
        cache_common::finish(half);
        wait_until(Duration::from_secs(20), "idle.half on disk", || {
            wsp_path(&s.whisper(), "idle.half").exists()
        });
    }
}
