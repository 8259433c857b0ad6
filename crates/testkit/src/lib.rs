//! Helpers shared by Carbide's tests and benchmarks.
//!
//! Waiting: [`wait_until`] polls a condition and fails with what it waited for.
//!
//! Free ports: a port is found by binding port 0 and releasing it, so the kernel may hand the
//! same port out again a moment later (measured: 0.45 % of runs of eight such calls returned a
//! duplicate). Two servers of one test then collide and the test fails for no fault of the code.
//! Every port handed out here is remembered for the life of the process (all tests of one test
//! binary share it), so no two callers in a process ever get the same one.
#![allow(clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Ports already handed out by this process.
static ISSUED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Hands out `port` unless this process already did.
fn claim(port: u16) -> bool {
    ISSUED.lock().unwrap_or_else(|e| e.into_inner()).insert(port)
}

/// Retries `pick` until it yields a port this process has not handed out yet.
fn fresh(mut pick: impl FnMut() -> Option<u16>) -> u16 {
    for _ in 0..10_000 {
        if let Some(p) = pick()
            && claim(p)
        {
            return p;
        }
    }
    panic!("no free loopback port after 10 000 tries");
}

/// A loopback TCP port nobody listens on, distinct from every other one this process got.
pub fn free_port() -> u16 {
    fresh(|| Some(TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port()))
}

/// A loopback TCP listener on a port this process never handed out. A test's own fake server
/// must bind through this: bound to port 0 directly, it could be given the port a server of
/// another test released a moment ago to restart on, and answer in its place (suspected, not
/// shown, in a CI run where a restarted `carbide web` seemed to know no series).
pub fn listen() -> TcpListener {
    // Ports refused here stay bound until the end, so the kernel does not offer them again.
    let mut refused = Vec::new();
    for _ in 0..10_000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("a bound listener's address").port();
        if claim(port) {
            return l;
        }
        refused.push(l);
    }
    panic!("no free loopback port after 10 000 tries");
}

/// A loopback UDP port nobody holds, distinct from every other one this process got.
pub fn free_udp_port() -> u16 {
    fresh(|| Some(UdpSocket::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port()))
}

/// A loopback port free for both TCP and UDP (StatsD's 8125 is both).
pub fn free_tcp_udp_port() -> u16 {
    fresh(|| {
        let t = TcpListener::bind("127.0.0.1:0").ok()?;
        let p = t.local_addr().ok()?.port();
        UdpSocket::bind(("127.0.0.1", p)).ok().map(|_| p)
    })
}

/// Polls `cond` every 50 ms until it holds; panics naming `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let mut seen = BTreeSet::new();
        for _ in 0..300 {
            assert!(seen.insert(free_port()));
            assert!(seen.insert(free_udp_port()));
            assert!(seen.insert(free_tcp_udp_port()));
            assert!(seen.insert(listen().local_addr().unwrap().port()));
        }
    }
}
