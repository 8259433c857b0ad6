//! The defined behaviour for bad destinations, end to end through a running relay: an unreachable
//! destination queues, then spills, then (without a spill file) drops with a count; a destination
//! that accepts and then stops reading is detected by the stall timeout, its batch is re-sent on a
//! new connection, and the relay goes on (only what the stalled peer's kernel buffers had already
//! taken is lost with that connection, as with carbon).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carbide_config::{CarbonSettings, ConfigEnv, parse_carbon_conf};
use carbide_protocol::framing::decode_frame;
use carbide_protocol::pickle::Limits;
use carbide_protocol::points::decode_points;
use carbide_relay::router::Router;
use carbide_relay::service::{Options, Role, Running, start};

fn settings(dests: &str, extra: &str) -> CarbonSettings {
    let text = format!(
        "[relay]\nLINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = 0\nPICKLE_RECEIVER_INTERFACE = 127.0.0.1\n\
         PICKLE_RECEIVER_PORT = 0\nRELAY_METHOD = consistent-hashing\nDESTINATIONS = {dests}\nCARBON_METRIC_INTERVAL = 0\n{extra}"
    );
    let env = ConfigEnv {
        graphite_root: "/tmp/g".into(),
        storage_dir: None,
        home: None,
    };
    parse_carbon_conf("carbon.conf", &text, "relay", None, &env)
        .unwrap()
        .0
}

async fn relay(s: &CarbonSettings, spool: Option<std::path::PathBuf>, stall: Duration) -> Running {
    let router = Router::from_settings(s, None, vec![]).unwrap();
    start(
        s,
        router,
        Role::Relay,
        Options {
            spool_dir: spool,
            spill_max_bytes: 1 << 30,
            stall_timeout: stall,
            metric_group: "relays",
            metric_host: "test".into(),
            lists: None,
        },
    )
    .await
    .unwrap()
}

async fn send_lines(r: &Running, n: usize) {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(r.line_addr.unwrap())
        .await
        .unwrap();
    let mut buf = String::new();
    for i in 0..n {
        buf.push_str(&format!("m.{} {i} 1700000000\n", i % 50));
        if buf.len() > 60_000 {
            s.write_all(buf.as_bytes()).await.unwrap();
            buf.clear();
        }
    }
    s.write_all(buf.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
}

async fn wait(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_destination_spills_past_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&format!("127.0.0.1:{}", dead_port()), "MAX_QUEUE_SIZE = 100\n");
    let r = relay(&s, Some(dir.path().to_path_buf()), Duration::from_secs(5)).await;
    send_lines(&r, 1000).await;
    let q = r.outputs.queues[0].clone();
    wait(Duration::from_secs(10), "1000 points accepted", || {
        q.stats.attempted.load(Ordering::Relaxed) == 1000
    })
    .await;
    assert_eq!(q.len(), 100);
    assert_eq!(q.stats.spilled.load(Ordering::Relaxed), 900);
    assert_eq!(q.stats.dropped.load(Ordering::Relaxed), 0);
    wait(Duration::from_secs(5), "a failed connect", || {
        q.stats.connect_failures.load(Ordering::Relaxed) > 0
    })
    .await;
    assert!(!q.stats.connected.load(Ordering::Relaxed));
    r.shutdown(Duration::from_millis(100)).await;
    let spill: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(spill.len(), 1);
    let text = std::fs::read_to_string(spill[0].path()).unwrap();
    assert_eq!(
        text.lines().count(),
        1000,
        "the 100 queued in memory go to the front of the spill file at shutdown, the 900 spilled stay"
    );
    assert_eq!(text.lines().next(), Some("m.0 0.0 1700000000.0"));
    assert_eq!(text.lines().nth(999), Some("m.49 999.0 1700000000.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_destination_without_spill_drops_and_counts() {
    let s = settings(&format!("127.0.0.1:{}", dead_port()), "MAX_QUEUE_SIZE = 100\n");
    let r = relay(&s, None, Duration::from_secs(5)).await;
    send_lines(&r, 1000).await;
    let q = r.outputs.queues[0].clone();
    wait(Duration::from_secs(10), "1000 points seen", || {
        q.stats.attempted.load(Ordering::Relaxed) == 1000
    })
    .await;
    assert_eq!(q.len(), 125, "MAX_QUEUE_SIZE × 1.25");
    assert_eq!(q.stats.dropped.load(Ordering::Relaxed), 875);
    r.shutdown(Duration::from_millis(100)).await;
}

/// A destination whose first connection is accepted and never read; later ones are read fully.
/// What a test destination received: (metric, value) in arrival order.
type Received = Arc<Mutex<Vec<(String, f64)>>>;

fn stalling_destination() -> (u16, Received) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let out = got.clone();
    std::thread::spawn(move || {
        let mut held = vec![];
        for (n, s) in l.incoming().flatten().enumerate() {
            if n == 0 {
                held.push(s);
                continue;
            }
            let out = out.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![];
                let mut chunk = [0u8; 65536];
                loop {
                    let k = match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => k,
                    };
                    buf.extend_from_slice(&chunk[..k]);
                    let mut at = 0;
                    while let Ok(Some(f)) = decode_frame(&buf[at..], 1 << 24) {
                        for p in decode_points(f.payload, 0.0, &Limits::default())
                            .unwrap()
                            .into_iter()
                            .flatten()
                        {
                            out.lock().unwrap().push((p.name, p.value));
                        }
                        at += f.consumed;
                    }
                    buf.drain(..at);
                }
            });
        }
        drop(held);
    });
    (port, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_destination_is_detected_and_the_relay_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (port, got) = stalling_destination();
    let s = settings(
        &format!("127.0.0.1:{port}"),
        "MAX_QUEUE_SIZE = 20000\nMAX_DATAPOINTS_PER_MESSAGE = 500\n",
    );
    let r = relay(&s, Some(dir.path().to_path_buf()), Duration::from_secs(1)).await;
    let n = 1_000_000;
    send_lines(&r, n).await;
    let q = r.outputs.queues[0].clone();
    wait(Duration::from_secs(60), "the stall to be detected", || {
        q.stats.send_failures.load(Ordering::Relaxed) > 0
    })
    .await;
    wait(
        Duration::from_secs(120),
        "the queue and spill delivered on the new connection",
        || q.is_empty() && got.lock().unwrap().iter().any(|(_, v)| *v as usize == n - 1),
    )
    .await;
    assert_eq!(q.stats.dropped.load(Ordering::Relaxed), 0);
    let distinct = got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, v)| *v as u64)
        .collect::<HashSet<_>>()
        .len();
    let sent = q.stats.sent.load(Ordering::Relaxed) as usize;
    assert!(distinct > n / 2, "only {distinct} of {n} arrived");
    assert!(sent >= distinct, "sent {sent} counts every point written");
    let _ = std::io::stderr().flush();
    r.shutdown(Duration::from_millis(100)).await;
}
