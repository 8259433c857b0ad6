//! The plaintext UDP listener against the real carbon-cache (Debian graphite-carbon 1.1.7, with
//! ENABLE_UDP_LISTENER = True): the same datagrams to both — several lines per datagram, an
//! unterminated last line (kept: carbon splits a datagram with `str.splitlines()`), `\r\n`, `\r`,
//! `\v`, U+2028 and NEL line breaks, bad lines among good ones, NaN, `-1`, a tagged name, and a
//! datagram with invalid UTF-8 (lost whole by both) — then the two whisper trees are compared:
//! the same file set and the same fetch results.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache_common;

use std::net::UdpSocket;
use std::time::Duration;

use cache_common::{Kind, Server, fetch_all, files, free_udp_port, wait_tree_stable, wait_until};

fn datagrams(t: i64) -> Vec<Vec<u8>> {
    let mut d: Vec<Vec<u8>> = vec![
        format!("udp.a 1 {t}\nudp.b 2 {t}\n").into_bytes(),
        // no newline at the end of the datagram: still a whole line to carbon
        format!("udp.c 3 {t}").into_bytes(),
        format!(
            "udp.crlf 4 {t}\r\nudp.cr 5 {t}\rudp.vt 6 {t}\x0budp.u2028 7 {t}\u{2028}udp.nel 8 {t}\u{85}udp.ff 9 {t}\x0c"
        )
        .into_bytes(),
        format!("udp.bad notanumber {t}\nudp.ok 10 {t}\ngarbage\n\nudp.bad.fields 1 {t} x\n").into_bytes(),
        // one byte that is not UTF-8 loses the whole datagram (carbon's data.decode('utf-8') raises)
        {
            let mut v = format!("udp.badutf8 1 {t}\n").into_bytes();
            v.extend_from_slice(b"udp.badutf8b \xff\xfe 1\n");
            v
        },
        format!("udp.nan nan {t}\nudp.now 11 -1\n").into_bytes(),
        format!("udp.tag;b=2;a=1 12 {t}\n").into_bytes(),
        format!("  udp.ws \t 13   {t}  \n").into_bytes(),
        format!("udp.fts 14 {t}.7\n").into_bytes(),
        format!("udp.dup 1 {t}\nudp.dup 2 {t}\n").into_bytes(),
    ];
    for i in 0..200 {
        d.push(format!("udp.many.m{} {i} {}\n", i % 20, t + i / 20).into_bytes());
    }
    d
}

#[test]
fn udp_datagrams_land_as_in_carbon_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (up_ours, up_theirs) = (free_udp_port(), free_udp_port());
    let extra = |p: u16| {
        format!("ENABLE_UDP_LISTENER = True\nUDP_RECEIVER_INTERFACE = 127.0.0.1\nUDP_RECEIVER_PORT = {p}\n")
    };
    let ours = Server::start(Kind::Carbide, &tmp.path().join("carbide"), &extra(up_ours), &[]);
    let theirs = Server::start(Kind::Carbon, &tmp.path().join("carbon"), &extra(up_theirs), &[]);
    let t = (cache_common::now() / 60) * 60 - 300;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in datagrams(t) {
        for p in [up_ours, up_theirs] {
            sock.send_to(&d, ("127.0.0.1", p)).unwrap();
        }
        // loopback UDP is lossless at this pace; a burst could overflow carbon's receive buffer
        std::thread::sleep(Duration::from_millis(2));
    }
    let expected = 35;
    wait_until(Duration::from_secs(60), "carbide wrote every UDP metric", || {
        files(&ours.whisper()).len() >= expected && ours.cache_size() == 0
    });
    wait_tree_stable(&theirs.whisper(), expected, Duration::from_secs(60));

    let (a, b) = (files(&ours.whisper()), files(&theirs.whisper()));
    assert_eq!(a, b, "file sets differ");
    assert_eq!(a.len(), expected, "{a:?}");
    for f in ["udp/c.wsp", "udp/nel.wsp", "udp/u2028.wsp", "udp/fts.wsp"] {
        assert!(a.contains(&f.to_string()), "{f} missing: {a:?}");
    }
    assert!(
        !a.iter().any(|f| f.contains("badutf8")),
        "a datagram with invalid UTF-8 was partly stored: {a:?}"
    );
    let now = cache_common::now() + 5;
    let fa = fetch_all(&ours.whisper(), now - 3000, now);
    let fb = fetch_all(&theirs.whisper(), now - 3000, now);
    for (path, v) in &fb {
        if path == "udp/now.wsp" {
            continue;
        }
        assert_eq!(fa.get(path), Some(v), "fetch of {path} differs");
    }
    // `-1` is "now" in both: one point of 11 near the send time.
    for tree in [&fa, &fb] {
        let (from, _, step, vals) = &tree["udp/now.wsp"];
        let got: Vec<(i64, f64)> = vals
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (from + i as i64 * step, v)))
            .collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, 11.0);
        assert!((got[0].0 - now).abs() < 120, "{got:?} vs now {now}");
    }
    // the last value of a duplicated timestamp wins in both
    let (_, _, _, dup) = &fa["udp/dup.wsp"];
    assert!(dup.contains(&Some(2.0)) && !dup.contains(&Some(1.0)), "{dup:?}");
}
