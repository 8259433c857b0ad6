//! No point is lost across SIGTERM: 1 M points (10 k metrics × 100) go in over several
//! connections while the writers are throttled, so nearly all of it is still cached when SIGTERM
//! arrives with `--shutdown-timeout 0`; the process must dump the rest, and the next start must
//! replay the dump and write every point to whisper. While the writers are slow, graphite-web's
//! carbonlink client reads the cached points.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cache_common::{Kind, Ports, Server, carbonlink_query, finish, wait_until, write_conf};

const METRICS: usize = 10_000;
const POINTS: i64 = 100;
const CONNECTIONS: usize = 8;

#[test]
fn a_million_points_survive_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("carbide");
    let ports = Ports::free();
    // bench.* is 10 s:1 h (4.3 KB a file); 100 points 10 s apart fit.
    write_conf(&dir, ports, "MAX_UPDATES_PER_SECOND = 20");
    let mut first = Server::start_with(Kind::Carbide, &dir, ports, &["--shutdown-timeout=0"]);
    let t0 = (cache_common::now() / 10) * 10 - 10 * POINTS - 60;
    let started = Instant::now();
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", ports.line)).unwrap();
                let mut buf = Vec::with_capacity(1 << 20);
                for m in (c..METRICS).step_by(CONNECTIONS) {
                    for p in 0..POINTS {
                        writeln!(buf, "bench.sig.m{m} {} {}", m as i64 * 1000 + p, t0 + p * 10).unwrap();
                    }
                    if buf.len() > 1 << 20 {
                        s.write_all(&buf).unwrap();
                        buf.clear();
                    }
                }
                s.write_all(&buf).unwrap();
                finish(s);
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let total = METRICS as f64 * POINTS as f64;
    wait_until(Duration::from_secs(60), "every point received", || {
        first.metric("carbide_points_received_total") >= total
    });
    eprintln!("1 M points received in {:?}", started.elapsed());
    let cached = first.cache_size();
    assert!(
        cached > 900_000,
        "throttled writers should leave most points cached, got {cached}"
    );

    // Points received while writers are slow are readable via carbonlink.
    let asked: Vec<String> = [1, 77, 4321, 9999]
        .iter()
        .map(|m| format!("bench.sig.m{m}"))
        .collect();
    let got = carbonlink_query(ports.query, &asked);
    let mut from_cache = 0;
    for (i, m) in [1i64, 77, 4321, 9999].iter().enumerate() {
        let pts = &got[&asked[i]];
        if pts.is_empty() {
            continue; // already written by the throttled writers
        }
        from_cache += 1;
        let want: Vec<(f64, f64)> = (0..POINTS)
            .map(|p| ((t0 + p * 10) as f64, (m * 1000 + p) as f64))
            .collect();
        // A throttled writer may already have taken the points that had arrived when it picked
        // the metric: what the cache still holds is the rest, in order (the restart below checks
        // that the two together are everything).
        assert!(
            want.ends_with(pts),
            "carbonlink answer for {} is not the newest points in order: {pts:?}",
            asked[i]
        );
    }
    assert!(
        from_cache >= 3,
        "carbonlink found only {from_cache} of 4 cached metrics"
    );

    assert!(
        first.stop_within(Duration::from_secs(60)),
        "carbide did not exit on SIGTERM"
    );
    let dump = dir.join("whisper/.carbide-cache-a.dump");
    let size = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 1_000_000,
        "no dump (or a tiny one: {size} bytes) at {}",
        dump.display()
    );

    // Restart with the throttle lifted: the dump is replayed and written.
    write_conf(&dir, ports, "");
    let second = Server::start_with(Kind::Carbide, &dir, ports, &[]);
    second.wait_drained(Duration::from_secs(150));
    let now = cache_common::now();
    let mut missing = 0;
    for m in 0..METRICS {
        let path = cache_common::wsp_path(&second.whisper(), &format!("bench.sig.m{m}"));
        let r = carbide_whisper::file::fetch(&path, t0 - 1, Some(t0 + POINTS * 10), now, None)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .unwrap();
        assert_eq!(r.step, 10);
        for p in 0..POINTS {
            let i = ((t0 + p * 10 - r.from) / 10) as usize;
            if r.values.get(i).copied().flatten() != Some((m as i64 * 1000 + p) as f64) {
                missing += 1;
            }
        }
    }
    assert_eq!(
        missing, 0,
        "{missing} of {total} points missing from whisper after the restart"
    );
    assert!(
        !dump.exists() || std::fs::metadata(&dump).unwrap().len() == 0,
        "dump not consumed after replay"
    );
}
